"""TRex STL profile: IPv6 UDP 5-tuple scale, N flows of one frame size.

    start -f trex_profiles/ipv6_flows.py -m 1mpps --port 0 -t --flows 1000 --size 128

Pairs with trex_profiles/configs/l3_ecmp.yaml (TRex port i is wired to the config's i-th
port: p0, p1).

Sends one continuous stream of Ether / IPv6 / UDP frames of exactly --size bytes (without
FCS, at least 62: the payload pads the datagram, payload length and UDP length include
it). Flow i of --flows (packet k belongs to flow k mod N):

    direction 0 (port 0):  2001:db8:16::1 + i -> 2001:db8:48::(16 + i % 16)
    direction 1 (port 1):  2001:db8:48::1 + i -> 2001:db8:16::(16 + i % 16)
    UDP 49152 + i % 16384 -> 5001 in both

(i is added to the low 32 bits of the source address). Flow label 0, hop limit 64.
Ether src is the TRex port's MAC (02:00:00:00:10:0<port+1>), dst the pairing config's
port MAC (02:00:00:00:00:0<port+1>). Field engine: one `inc` flow variable, writes of
the source's low 32 bits, the low nibble of the destination and the low 14 bits of the
UDP source port, then STLVmFixChecksumHw (UDP over IPv6: the checksum is mandatory).

Outcome (replay into p0 of l3_ecmp.yaml): nothing dropped; 2001:db8:48::/48 goes via
group `spines` (4 members over p1 and p2): N flow entries, every flow on exactly one
member, each member 25 % +- 3 % of the flows (hop limit 63 on the way out).

Tunables: --flows N (1000), --size BYTES (128, at least 62), --src-mac, --dst-mac.
"""
from scapy.layers.inet import UDP
from scapy.layers.inet6 import IPv6
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, parse_args,
                         profile_args, sized)

# (first source, destination) per direction: 1 swaps the client and server roles
ROLES = {0: ("2001:db8:16::1", "2001:db8:48::10"), 1: ("2001:db8:48::1", "2001:db8:16::10")}
MAX_FLOWS = (1 << 32) - 2


class Ipv6Flows(object):
    """IPv6 UDP flows for a route via an ECMP group."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "IPv6 UDP 5-tuple scale: --flows flows of --size bytes")
        p.add_argument("--flows", type=int, default=1000, help="distinct 5-tuples")
        add_size(p, 128)
        args = parse_args(p, tunables, port_id)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        base = (ether(args) / IPv6(src=src, dst=dst, hlim=64, fl=0) /
                UDP(sport=49152, dport=5001))
        pkt = sized(p, base, args.size)

        vm = STLVM()
        vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
        # low 32 bits of the source: ::1 + flow
        vm.write(fv_name="flow", pkt_offset="IPv6.src", offset_fixup=12, add_val=1)
        vm.write_mask(fv_name="flow", pkt_offset="IPv6.dst", offset_fixup=15,
                      pkt_cast_size=1, mask=0x0F)
        vm.write_mask(fv_name="flow", pkt_offset="UDP.sport", pkt_cast_size=2, mask=0x3FFF)
        vm.fix_chksum_hw(l3_offset="IPv6", l4_offset="UDP",
                         l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP)
        return [STLStream(name="ipv6_flows", packet=STLPktBuilder(pkt=pkt, vm=vm),
                          mode=STLTXCont(pps=1000))]


def register():
    return Ipv6Flows()
