"""TRex STL profile: labelled traffic for a transit LSR, [transport][ELI 7][EL] over IPv4.

    start -f trex_profiles/lsr_entropy.py -m 1mpps --port 0 -t --flows 1000 --size 128

Pairs with trex_profiles/configs/lsr_entropy.yaml (TRex port i is wired to the config's
i-th port: p0, p1).

Sends one continuous stream of frames of exactly --size bytes (without FCS):

    Ether (0x8847) / MPLS --label (16001) TTL 64 / MPLS 7 (ELI) TTL 0 /
    MPLS EL, bottom of stack, TTL 0 / IPv4 / UDP / zero payload

RFC 6790: the ELI is label 7, the entropy label below it is per flow, ELI and EL carry
TTL 0. Flow i of --flows (packet k belongs to flow k mod N) has EL = 65536 + i and the
inner 5-tuple

    direction 0 (port 0):  16.0.0.1 + i -> 48.0.0.1, UDP 49152 + i % 16384 -> 5001
    direction 1 (port 1):  48.0.0.1 + i -> 16.0.0.1, the same ports

With --fixed-inner every packet carries the same inner 5-tuple (16.0.0.1:49152 ->
48.0.0.1:5001) and only the EL varies: whatever spreads the packets then is the EL.
Ether src is the TRex port's MAC (02:00:00:00:10:0<port+1>), dst the pairing config's
port MAC (02:00:00:00:00:0<port+1>). Field engine: one `inc` flow variable; a masked
write of the EL (20 bits, `<< 12`, into the third label stack entry), writes of the inner
IP src and UDP source port, then STLVmFixChecksumHw on the inner IPv4 + UDP.

Outcome (replay into p0 of lsr_entropy.yaml: LFIB 16001 -> swap [16002] via group
`core`, erld 8): nothing dropped; every frame leaves labelled 16002 / 7 / EL with the
ELI+EL pair and the payload unchanged (the swapped entry's TTL 63, ELI/EL TTL 0); the
transit hash is the EL alone (docs/mpls.md §8): all frames of one EL leave on one member,
member = buckets[(h * 4096) >> 32] with h = hashing.finalize(hashing.crc(EL as 4 bytes,
20 bits right-aligned), node seed), and the N ELs spread over the 4 members, 25 % +- 3 %
each with the default 1000 flows. With --fixed-inner the spread is the same, frame for
frame: the inner header plays no part. No flow entries: a swap keeps no state.

Tunables: --flows N (1000), --size BYTES (128, at least 60), --label L (16001),
--fixed-inner, --src-mac, --dst-mac.
"""
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, ip2int, parse_args,
                         profile_args, sized)

# (first source, destination) per direction: 1 swaps the client and server roles
ROLES = {0: ("16.0.0.1", "48.0.0.1"), 1: ("48.0.0.1", "16.0.0.1")}
ELI = 7
EL_BASE = 65536
MAX_FLOWS = (1 << 20) - EL_BASE


class LsrEntropy(object):
    """Transport label + ELI + per-flow EL over IPv4/UDP."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "[transport][ELI 7][EL] over IPv4/UDP, EL per flow")
        p.add_argument("--flows", type=int, default=1000, help="flows (one EL each)")
        add_size(p, 128)
        p.add_argument("--label", type=int, default=16001, help="transport label (top)")
        p.add_argument("--fixed-inner", action="store_true",
                       help="one inner 5-tuple for all flows: only the EL varies")
        args = parse_args(p, tunables, port_id)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        check_range(p, "--label", args.label, 16, 0xFFFFF)
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        base = (ether(args) /
                MPLS(label=args.label, cos=0, s=0, ttl=64) /
                MPLS(label=ELI, cos=0, s=0, ttl=0) /
                MPLS(label=EL_BASE, cos=0, s=1, ttl=0) /
                IP(src=src, dst=dst, ttl=64) / UDP(sport=49152, dport=5001))
        pkt = sized(p, base, args.size)

        vm = STLVM()
        vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
        # EL = 65536 + flow in the top 20 bits of the third entry (TC, S, TTL kept)
        vm.write_mask(fv_name="flow", pkt_offset="MPLS:2.label", pkt_cast_size=4,
                      mask=0xFFFFF000, shift=12, add_val=EL_BASE)
        if not args.fixed_inner:
            vm.write(fv_name="flow", pkt_offset="IP.src", add_val=ip2int(src))
            vm.write_mask(fv_name="flow", pkt_offset="UDP.sport", pkt_cast_size=2,
                          mask=0x3FFF)
            vm.fix_chksum_hw(l3_offset="IP", l4_offset="UDP",
                             l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP)
        return [STLStream(name="lsr_entropy", packet=STLPktBuilder(pkt=pkt, vm=vm),
                          mode=STLTXCont(pps=1000))]


def register():
    return LsrEntropy()
