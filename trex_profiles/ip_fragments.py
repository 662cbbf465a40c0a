"""TRex STL profile: IPv4 fragments of large UDP datagrams, several flows, in order.

    start -f trex_profiles/ip_fragments.py -m 10kpps --port 0 -t --flows 16 --datagram 4000

Pairs with trex_profiles/configs/ip_fragments.yaml (TRex port i is wired to the config's
i-th port: p0, p1).

Each datagram is a UDP datagram of --datagram bytes (8-byte header + payload) cut into
K = ceil(--datagram / F) IPv4 fragments, F = (--mtu - 20) rounded down to a multiple of
8 (defaults: 4000 bytes, MTU 1500 -> 1480 + 1480 + 1040 bytes, frames of 1514, 1514 and
1074 bytes). One continuous stream per fragment, `frag0` ... `frag<K-1>`, all at the same
rate (1,000 pps each, -m scales them alike); stream k starts k/K of a packet interval
after stream 0 (isg), so the wire carries frag0, frag1, ..., frag<K-1> of datagram n,
then those of datagram n + 1: the fragments of a datagram in order, never interleaved
with another datagram's. Only frag0 (offset 0, MF) carries the UDP header; the others
are payload (offset k * F / 8, MF on all but the last). Fragments shorter than 60 bytes
get zero Ethernet padding (outside the IP total length).

Datagram n belongs to flow i = n mod --flows and has IP id 1 + n mod 65535 (each
datagram its own id, the same in all its fragments):

    direction 0 (port 0):  16.0.0.1 + i -> 48.0.0.1, UDP 49152 + i -> 5001
    direction 1 (port 1):  48.0.0.1 + i -> 16.0.0.1, the same ports

The UDP checksum is 0 ("none", allowed over IPv4): a checksum covers the whole datagram,
which no single fragment's field engine can recompute, so it is left out rather than
sent wrong. Ether src is the TRex port's MAC (02:00:00:00:10:0<port+1>), dst the pairing
config's port MAC (02:00:00:00:00:0<port+1>). Field engine per stream: `inc` variables
`flow` (0 .. flows - 1) and `ipid` (1 .. 65535), stepping once per datagram in every
stream alike; writes of IP src, IP id and (frag0) the UDP source port; then
STLVmFixChecksumHw with l4_type L4_TYPE_IP (the IPv4 header checksum; the UDP checksum
stays 0).

Outcome (replay into p0 of ip_fragments.yaml, group `spines` with hash fragments:
follow): nothing dropped; every non-first fragment leaves on the member its datagram's
first fragment took (summary `fragments`: frag_followed = (K - 1) x datagrams,
frag_fallback = 0), and a first fragment takes the member of its flow's 5-tuple hash,
so all datagrams of a flow leave on one member (one destination MAC per source address)
and the flows spread over the 4 members. No flow entry is made (flow_created 0: a first
fragment looks its flow up but never creates an entry, docs/workers.md). With --reverse
(last fragment first) every non-first fragment arrives before its first fragment:
frag_fallback = (K - 1) x datagrams, frag_followed = 0, and those fragments are placed
by the L3 hash (src, dst, proto) while the first fragment takes the 5-tuple's member,
so most datagrams are split over two members (measured with the defaults: 750 of 1000).

Tunables: --flows N (16), --datagram BYTES (4000, UDP header included), --mtu BYTES
(1500), --reverse, --src-mac, --dst-mac.
"""
from scapy.layers.inet import IP, UDP
from scapy.packet import Raw
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (MIN_FRAME, check_macs, check_range, ether, ether_padded, ip2int,
                         parse_args, profile_args)

# (first source, destination) per direction: 1 swaps the client and server roles
ROLES = {0: ("16.0.0.1", "48.0.0.1"), 1: ("48.0.0.1", "16.0.0.1")}
PPS = 1000
MAX_FRAGMENTS = 64
MAX_FLOWS = 16384


class IpFragments(object):
    """In-order IPv4 fragments of UDP datagrams, one stream per fragment."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "IPv4 fragments of --datagram-byte UDP datagrams")
        p.add_argument("--flows", type=int, default=16, help="UDP flows (5-tuples)")
        p.add_argument("--datagram", type=int, default=4000,
                       help="UDP datagram length, 8-byte header included")
        p.add_argument("--mtu", type=int, default=1500, help="largest fragment (IP bytes)")
        p.add_argument("--reverse", action="store_true",
                       help="send each datagram's fragments last first")
        args = parse_args(p, tunables, port_id)
        check_range(p, "--flows", args.flows, 1, MAX_FLOWS)
        check_range(p, "--mtu", args.mtu, 68, 9000)
        chunk = (args.mtu - 20) // 8 * 8
        if not chunk < args.datagram <= 65507:
            p.error("--datagram must be above one fragment's %d bytes and at most 65507 "
                    "(it must fragment), got %d" % (chunk, args.datagram))
        count = -(-args.datagram // chunk)
        if count > MAX_FRAGMENTS:
            p.error("--datagram %d at --mtu %d makes %d fragments, at most %d"
                    % (args.datagram, args.mtu, count, MAX_FRAGMENTS))
        check_macs(p, args)

        src, dst = ROLES[1 if direction else 0]
        eth = ether(args)
        payload = bytes(bytearray(i & 0xFF for i in range(args.datagram - 8)))
        streams = []
        for k in range(count):
            last = k == count - 1
            ip = IP(src=src, dst=dst, ttl=64, id=1, proto=17, flags=0 if last else "MF",
                    frag=k * chunk // 8)
            if k == 0:
                l4 = UDP(sport=49152, dport=5001, len=args.datagram, chksum=0) / Raw(
                    payload[:chunk - 8])
            else:
                l4 = Raw(payload[k * chunk - 8:(k + 1) * chunk - 8])
            pkt = eth / ip / l4
            pkt = ether_padded(pkt, MIN_FRAME)

            vm = STLVM()
            vm.var(name="flow", min_value=0, max_value=args.flows - 1, size=4, op="inc")
            vm.var(name="ipid", min_value=1, max_value=65535, size=2, op="inc")
            vm.write(fv_name="flow", pkt_offset="IP.src", add_val=ip2int(src))
            vm.write(fv_name="ipid", pkt_offset="IP.id")
            if k == 0:
                vm.write_mask(fv_name="flow", pkt_offset="UDP.sport", pkt_cast_size=2,
                              mask=0xFFFF, add_val=49152)
            vm.fix_chksum_hw(l3_offset="IP", l4_offset=14 + 20,
                             l4_type=CTRexVmInsFixHwCs.L4_TYPE_IP)
            slot = (count - 1 - k) if args.reverse else k
            streams.append(STLStream(name="frag%d" % k,
                                     packet=STLPktBuilder(pkt=pkt, vm=vm, remove_fcs=False),
                                     mode=STLTXCont(pps=PPS),
                                     isg=slot * 1e6 / PPS / count))
        return streams


def register():
    return IpFragments()
