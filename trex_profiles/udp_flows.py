"""TRex STL profile: UDP 5-tuple scale, N flows of one frame size.

    start -f trex_profiles/udp_flows.py -m 1mpps --port 0 -t --flows 1000 --size 60

Pairs with trex_profiles/configs/l3_ecmp.yaml (TRex port i is wired to the config's i-th
port: p0, p1).

Sends one continuous stream of Ether / IPv4 / UDP frames of exactly --size bytes (without
FCS; the payload pads the datagram, IP and UDP lengths include it). Flow i of --flows
(0 <= i < N, taken in turn, packet k belongs to flow k mod N):

    direction 0 (port 0):  16.0.0.1 + i  ->  48.0.0.(16 + i % 16)   UDP 49152 + i % 16384 -> 5001
    direction 1 (port 1):  48.0.0.1 + i  ->  16.0.0.(16 + i % 16)   (the same ports)

so exactly N distinct 5-tuples repeat. Ether src is the TRex port's MAC
(02:00:00:00:10:0<port+1>), dst the pairing config's port MAC (02:00:00:00:00:0<port+1>).
Field engine: one `inc` flow variable (the flow index), three writes (IP src, the low
nibble of IP dst, the low 14 bits of the UDP source port), then the IPv4 header and UDP
checksums are fixed with STLVmFixChecksumHw.

Outcome (replay of the rendered packets into p0 of l3_ecmp.yaml): every packet is
forwarded, none dropped; 48.0.0.0/8 goes via group `spines` (4 members, 2 on p1 and 2
on p2): N flow entries are created, every flow leaves on exactly one member (one
destination MAC), and each member takes 25 % +- 3 % of the flows and, with an equal
number of packets per flow, of the packets (the group's `imbalance` close to 1).
Direction 1 (into p1) is routed back to TRex port 0 via next hop `trex0` on p0.

Tunables: --flows N (1000), --size BYTES (60, at least 60), --src-mac, --dst-mac.
"""
from scapy.layers.inet import IP, UDP
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, ip2int, parse_args,
                         profile_args, sized)

# (first source, destination) per direction: 1 swaps the client and server roles
ROLES = {0: ("16.0.0.1", "48.0.0.16"), 1: ("48.0.0.1", "16.0.0.16")}
MAX_FLOWS = (1 << 24) - 2              # the source stays inside its /8


class UdpFlows(object):
    """UDP flows for a route via an ECMP group."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "UDP 5-tuple scale: --flows flows of --size bytes")
        p.add_argument("--flows", type=int, default=1000, help="distinct 5-tuples")
        add_size(p, 60)
        args = parse_args(p, tunables, port_id)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        base = ether(args) / IP(src=src, dst=dst, ttl=64) / UDP(sport=49152, dport=5001)
        pkt = sized(p, base, args.size)

        vm = STLVM()
        vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
        vm.write(fv_name="flow", pkt_offset="IP.src", add_val=ip2int(src))
        vm.write_mask(fv_name="flow", pkt_offset="IP.dst", offset_fixup=3, pkt_cast_size=1,
                      mask=0x0F)
        vm.write_mask(fv_name="flow", pkt_offset="UDP.sport", pkt_cast_size=2, mask=0x3FFF)
        vm.fix_chksum_hw(l3_offset="IP", l4_offset="UDP",
                         l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP)
        return [STLStream(name="udp_flows", packet=STLPktBuilder(pkt=pkt, vm=vm),
                          mode=STLTXCont(pps=1000))]


def register():
    return UdpFlows()
