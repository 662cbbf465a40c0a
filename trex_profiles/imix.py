"""TRex STL profile: IMIX (60/590/1514-byte UDP at 28:16:4 packets) over N flows.

    start -f trex_profiles/imix.py -m 10gbps --port 0 -t --flows 1000

Pairs with trex_profiles/configs/l3_ecmp.yaml (TRex port i is wired to the config's i-th
port: p0, p1).

Sends three continuous streams of Ether / IPv4 / UDP, as TRex's stock imix.py: `imix_60`
(60 bytes without FCS, 28 pps), `imix_590` (590 bytes, 16 pps) and `imix_1514` (1514
bytes, 4 pps); -m scales all three alike. Each stream cycles through the same --flows
5-tuples, flow i (packet k of a stream belongs to flow k mod N):

    direction 0 (port 0):  16.0.0.1 + i  ->  48.0.0.(16 + i % 16)   UDP 49152 + i % 16384 -> 5001
    direction 1 (port 1):  48.0.0.1 + i  ->  16.0.0.(16 + i % 16)   (the same ports)

so every flow carries packets of all three sizes. Ether src is the TRex port's MAC
(02:00:00:00:10:0<port+1>), dst the pairing config's port MAC (02:00:00:00:00:0<port+1>).
Field engine per stream: one `inc` flow variable, writes of IP src, the low nibble of
IP dst and the low 14 bits of the UDP source port, then STLVmFixChecksumHw (IPv4 + UDP).

Outcome (replay into p0 of l3_ecmp.yaml): nothing dropped; N flow entries (not 3 N: the
three sizes of one 5-tuple are one flow); every flow's 60-, 590- and 1514-byte packets
leave on one member of `spines` (one destination MAC per 5-tuple whatever the size), each
member 25 % +- 3 % of the flows; the byte shares follow the flow shares because every
flow has the same size mix.

Tunables: --flows N (1000), --src-mac, --dst-mac. (IMIX sizes are fixed: no --size.)
"""
from scapy.layers.inet import IP, UDP
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (check_macs, check_range, ether, ip2int, padded, parse_args,
                         profile_args)

# (first source, destination) per direction: 1 swaps the client and server roles
ROLES = {0: ("16.0.0.1", "48.0.0.16"), 1: ("48.0.0.1", "16.0.0.16")}
MAX_FLOWS = (1 << 24) - 2
# frame size without FCS, packets per second (the ratio is what counts: -m scales it)
IMIX = [(60, 28), (590, 16), (1514, 4)]


class Imix(object):
    """IMIX streams sharing one set of UDP flows."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "IMIX 60/590/1514 bytes at 28:16:4 over --flows flows")
        p.add_argument("--flows", type=int, default=1000, help="distinct 5-tuples")
        args = parse_args(p, tunables, port_id)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        base = ether(args) / IP(src=src, dst=dst, ttl=64) / UDP(sport=49152, dport=5001)
        streams = []
        for size, pps in IMIX:
            vm = STLVM()
            vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
            vm.write(fv_name="flow", pkt_offset="IP.src", add_val=ip2int(src))
            vm.write_mask(fv_name="flow", pkt_offset="IP.dst", offset_fixup=3,
                          pkt_cast_size=1, mask=0x0F)
            vm.write_mask(fv_name="flow", pkt_offset="UDP.sport", pkt_cast_size=2,
                          mask=0x3FFF)
            vm.fix_chksum_hw(l3_offset="IP", l4_offset="UDP",
                             l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP)
            pkt = padded(base, size)
            streams.append(STLStream(name="imix_%d" % size,
                                     packet=STLPktBuilder(pkt=pkt, vm=vm),
                                     mode=STLTXCont(pps=pps)))
        return streams


def register():
    return Imix()
