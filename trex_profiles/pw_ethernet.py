"""TRex STL profile: Ethernet pseudowire frames whose inner destination MAC starts with 4 / 6.

    start -f trex_profiles/pw_ethernet.py -m 1mpps --port 0 -t --no-cw --flows 64 --size 128
    start -f trex_profiles/pw_ethernet.py -m 1mpps --port 0 -t --cw

Pairs with trex_profiles/configs/pw_ethernet.yaml, a transit LSR with payload_guess: true
(TRex port i is wired to the config's i-th port: p0, p1).

Sends, per value of --macs (default "4,6": two streams `pw_mac4` and `pw_mac6` at 1,000
pps each), frames of exactly --size bytes (without FCS) as a PE sends them into the core
(RFC 4448 raw mode):

    Ether (0x8847) / MPLS --label (transport, 16001) TTL 255 / MPLS --pw-label (500) TTL 255
    [/ MPLS FAT label, bottom of stack, TTL 1  (--fat)]
    [/ control word 00 00 00 00                (--cw; --no-cw, the default, leaves it out)]
    / inner Ether dst 48:2c:a0:00:00:01 (--macs 4) or 64:00:6a:00:00:01 (--macs 6),
      src 00:00:0c:06:00:02, type 0x0800 / IPv4 / UDP / zero payload

(--label 0 leaves the transport label out: the PW label is then the top label.) Inner
flow i of --flows (packet k of a stream belongs to flow k mod N): 10.10.0.1 + i ->
10.20.0.1, UDP 49152 + i % 16384 -> 5001 (direction 1 swaps the inner addresses); the
inner IP id counts up per packet, as a host's does; with --fat the FAT label is 65536 + i.
Ether src is the TRex port's MAC (02:00:00:00:10:0<port+1>), dst the pairing config's
port MAC (02:00:00:00:00:0<port+1>). Field engine: `inc` variables `flow` and `ipid`,
writes of the inner IP src, IP id and UDP source port (and the FAT label, masked
`<< 12`), then STLVmFixChecksumHw on the inner IPv4 + UDP.

Outcome (replay into p0 of pw_ethernet.yaml: LFIB 16001 -> swap [16002] and 500 ->
swap [501], both via group `core` of 4 members; erld 8, payload_guess true), nothing
dropped, labels swapped, inner frames untouched:
- --no-cw (default): the LSR reads the inner frame as an IP packet (first nibble 4 or 6,
  docs/mpls.md §8 "the MAC address starting with 4 problem"). Its "addresses" include
  the inner IP id and checksum, which change with every packet, so the frames of every
  inner flow, of both streams, are sprayed over all 4 members (per-flow order lost);
  the member shares are near 25 % each.
- --cw: the payload starts with nibble 0, the LSR hashes the labels only: every frame of
  the pseudowire (both streams, all inner flows) leaves on one and the same member.
- --cw --fat: labels only again, but the FAT label differs per inner flow: every inner
  flow on one member, the flows spread over the 4 members.

Tunables: --cw / --no-cw, --fat, --macs 4,6, --flows N (64), --size BYTES (128),
--label L (16001; 0 = none), --pw-label L (500), --src-mac, --dst-mac.
"""
from scapy.contrib.mpls import MPLS, EoMCW
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, ip2int, parse_args,
                         profile_args, sized)

INNER_DST = {"4": "48:2c:a0:00:00:01", "6": "64:00:6a:00:00:01"}
INNER_SRC = "00:00:0c:06:00:02"
# inner (first source, destination) per direction: 1 swaps them
ROLES = {0: ("10.10.0.1", "10.20.0.1"), 1: ("10.20.0.1", "10.10.0.1")}
FAT_BASE = 65536
MAX_FLOWS = 65535


class PwEthernet(object):
    """Ethernet PW frames, with or without a control word, for a transit LSR."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "Ethernet pseudowire frames, inner dst MAC 4x:/6x:")
        p.add_argument("--cw", dest="cw", action="store_true", default=False,
                       help="put the 4-byte control word (00 00 00 00) after the labels")
        p.add_argument("--no-cw", dest="cw", action="store_false",
                       help="no control word: the inner frame follows the bottom label")
        p.add_argument("--fat", action="store_true",
                       help="a FAT label per inner flow below the PW label (RFC 6391)")
        p.add_argument("--macs", default="4,6",
                       help="first nibbles of the inner destination MAC, one stream each")
        p.add_argument("--flows", type=int, default=64, help="inner flows per stream")
        add_size(p, 128)
        p.add_argument("--label", type=int, default=16001,
                       help="transport label on top (0: none, the PW label is on top)")
        p.add_argument("--pw-label", type=int, default=500, help="pseudowire label")
        args = parse_args(p, tunables, port_id)
        macs = [m.strip() for m in args.macs.split(",") if m.strip()]
        if not macs or any(m not in INNER_DST for m in macs) or len(set(macs)) < len(macs):
            p.error("--macs must list 4 and/or 6 once each, got %r" % args.macs)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        if args.label != 0 and not 16 <= args.label <= 0xFFFFF:
            p.error("--label must be 0 or from 16 to 1048575, got %d" % args.label)
        check_range(p, "--pw-label", args.pw_label, 16, 0xFFFFF)
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        streams = []
        for nibble in macs:
            outer = ether(args)
            if args.label:
                outer = outer / MPLS(label=args.label, cos=0, s=0, ttl=255)
            outer = outer / MPLS(label=args.pw_label, cos=0, s=0 if args.fat else 1, ttl=255)
            if args.fat:
                outer = outer / MPLS(label=FAT_BASE, cos=0, s=1, ttl=1)
            if args.cw:
                outer = outer / EoMCW(zero=0, reserved=0, seq=0)
            base = outer / (Ether(dst=INNER_DST[nibble], src=INNER_SRC, type=0x0800) /
                            IP(src=src, dst=dst, ttl=64, id=0) /
                            UDP(sport=49152, dport=5001))
            pkt = sized(p, base, args.size)

            vm = STLVM()
            vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
            vm.var(name="ipid", min_value=0, max_value=65535, size=2, op="inc")
            if args.fat:
                fat = "MPLS:%d.label" % (2 if args.label else 1)
                vm.write_mask(fv_name="flow", pkt_offset=fat, pkt_cast_size=4,
                              mask=0xFFFFF000, shift=12, add_val=FAT_BASE)
            vm.write(fv_name="flow", pkt_offset="IP.src", add_val=ip2int(src))
            vm.write(fv_name="ipid", pkt_offset="IP.id")
            vm.write_mask(fv_name="flow", pkt_offset="UDP.sport", pkt_cast_size=2,
                          mask=0x3FFF)
            vm.fix_chksum_hw(l3_offset="IP", l4_offset="UDP",
                             l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP)
            streams.append(STLStream(name="pw_mac%s" % nibble,
                                     packet=STLPktBuilder(pkt=pkt, vm=vm),
                                     mode=STLTXCont(pps=1000)))
        return streams


def register():
    return PwEthernet()
