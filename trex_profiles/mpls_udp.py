"""TRex STL profile: MPLS-over-UDP (RFC 7510) to the node's tunnel address, inner IPv4 flows.

    start -f trex_profiles/mpls_udp.py -m 1mpps --port 0 -t --flows 1000 --tunnel-address 192.0.2.1

Pairs with trex_profiles/configs/mpls_udp.yaml (node.tunnel_address 192.0.2.1; TRex port
i is wired to the config's i-th port: p0, p1).

Sends one continuous stream of frames of exactly --size bytes (without FCS), as a remote
tunnel endpoint sends them:

    Ether / IPv4 --remote (203.0.113.9) -> --tunnel-address (192.0.2.1), TTL 64, DF /
    UDP 49152 + i % 16384 -> 6635, checksum 0 / MPLS --label (300) bottom of stack, TTL 64 /
    inner IPv4 / UDP / zero payload

Inner flow i of --flows (packet k belongs to flow k mod N):

    direction 0 (port 0):  16.0.0.1 + i -> 48.0.0.(16 + i % 16), UDP 49152 + i % 16384 -> 5001
    direction 1 (port 1):  48.0.0.1 + i -> 16.0.0.(16 + i % 16), the same ports

The outer UDP source port carries the flow's entropy (RFC 7510 §3); the outer UDP
checksum is 0, which RFC 7510 allows over IPv4 (the field engine rewrites the source
port, so a non-zero checksum would be wrong). The label is the service label that
selects the VRF at the tunnel endpoint. Ether src is the TRex port's MAC
(02:00:00:00:10:0<port+1>), dst the pairing config's port MAC (02:00:00:00:00:0<port+1>).
Field engine: one `inc` flow variable; writes of the outer UDP source port, the inner IP
src, the low nibble of the inner IP dst and the inner UDP source port; then
STLVmFixChecksumHw on the inner IPv4 + UDP (the outer IPv4 header does not change).

Outcome (replay into p0 of mpls_udp.yaml: node.tunnel_address 192.0.2.1, LFIB 300 ->
pop-lookup vrf red, red routes 48.0.0.0/8 via group `spines`): nothing dropped; every
packet is decapsulated (docs/mpls.md §10.2) and leaves as a plain IPv4 frame (EtherType
0x0800, no outer headers, no label) carrying the inner packet with TTL 63, routed in VRF
red: N flow entries (in VRF red), every inner flow on one member, each member 25 % +- 3 %
of the flows. The outer source port plays no part in that choice. A --tunnel-address
other than the config's is not decapsulated: such packets are routed as plain UDP in the
default VRF, which has no route for it (no_route).

Tunables: --flows N (1000), --size BYTES (128, at least 60), --tunnel-address A
(192.0.2.1), --remote A (203.0.113.9), --label L (300), --src-mac, --dst-mac.
"""
import argparse
import socket

from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, ip2int, parse_args,
                         profile_args, sized)

# inner (first source, destination) per direction: 1 swaps the client and server roles
ROLES = {0: ("16.0.0.1", "48.0.0.16"), 1: ("48.0.0.1", "16.0.0.16")}
MPLS_UDP_PORT = 6635
MAX_FLOWS = (1 << 24) - 2


def ipv4(text):
    try:
        socket.inet_pton(socket.AF_INET, text)
    except (OSError, ValueError):
        raise argparse.ArgumentTypeError("not an IPv4 address: %r" % text)
    return text


class MplsUdp(object):
    """MPLS-over-UDP toward the dataplane's tunnel address."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "MPLS-over-UDP (dst port 6635) with inner IPv4 flows")
        p.add_argument("--flows", type=int, default=1000, help="inner 5-tuples")
        add_size(p, 128)
        p.add_argument("--tunnel-address", type=ipv4, default="192.0.2.1",
                       help="outer destination: the pairing config's node.tunnel_address")
        p.add_argument("--remote", type=ipv4, default="203.0.113.9",
                       help="outer source: the remote tunnel endpoint")
        p.add_argument("--label", type=int, default=300,
                       help="service label (the config's pop-lookup label)")
        args = parse_args(p, tunables, port_id)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        check_range(p, "--label", args.label, 16, 0xFFFFF)
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        base = (ether(args) /
                IP(src=args.remote, dst=args.tunnel_address, ttl=64, id=0, flags="DF") /
                UDP(sport=49152, dport=MPLS_UDP_PORT, chksum=0) /
                MPLS(label=args.label, cos=0, s=1, ttl=64) /
                IP(src=src, dst=dst, ttl=64) / UDP(sport=49152, dport=5001))
        pkt = sized(p, base, args.size)

        vm = STLVM()
        vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
        # outer: the entropy source port 49152 + flow % 16384 (checksum 0 stays valid)
        vm.write_mask(fv_name="flow", pkt_offset="UDP:0.sport", pkt_cast_size=2, mask=0x3FFF)
        # inner 5-tuple
        vm.write(fv_name="flow", pkt_offset="IP:1.src", add_val=ip2int(src))
        vm.write_mask(fv_name="flow", pkt_offset="IP:1.dst", offset_fixup=3,
                      pkt_cast_size=1, mask=0x0F)
        vm.write_mask(fv_name="flow", pkt_offset="UDP:1.sport", pkt_cast_size=2, mask=0x3FFF)
        vm.fix_chksum_hw(l3_offset="IP:1", l4_offset="UDP:1",
                         l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP)
        return [STLStream(name="mpls_udp", packet=STLPktBuilder(pkt=pkt, vm=vm),
                          mode=STLTXCont(pps=1000))]


def register():
    return MplsUdp()
