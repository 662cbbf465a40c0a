"""TRex STL profile: TCP SYN flood from random sources, beside a few established flows.

    start -f trex_profiles/syn_flood.py -m 1mpps --port 0 -t --established 16 --size 60

Pairs with trex_profiles/configs/syn_flood.yaml (TRex port i is wired to the config's
i-th port: p0, p1).

Sends two continuous streams of Ether / IPv4 / TCP frames of --size bytes (without FCS):

- `established` (1,000 pps, starts at once; --established 0 leaves it out): ACK segments
  of --established sessions, session i (packet k belongs to session k mod E):
  16.255.0.1 + i : 40000 + i -> 48.0.0.1 : 80, flags A, the TCP payload pads the frame.
- `syn` (100,000 pps, 100 times the established stream; starts after --syn-delay-ms,
  default 50 ms, so every established session is seen before the flood): SYN segments
  from random sources 16.0.0.0 - 16.254.255.255 and random source ports 1025 - 65535 to
  48.0.0.1 : 80, no payload (a 54-byte SYN; zero Ethernet padding up to --size lies
  outside the IP total length). random_seed is fixed: every run sends the same sources.

Direction 1 (port 1) swaps the roles: the sources are 48.255.0.1 + i and 48.0.0.0 -
48.254.255.254, the target 16.0.0.1. Ether src is the TRex port's MAC
(02:00:00:00:10:0<port+1>), dst the pairing config's port MAC (02:00:00:00:00:0<port+1>).
Field engine: `inc` (session) or `random` (source, port) flow variables, writes of IP src
and TCP sport, then STLVmFixChecksumHw (IPv4 + TCP).

Outcome (replay into p0 of syn_flood.yaml: flow_table.entries 1024, on_full drop,
48.0.0.0/8 via group `spines`): the E established sessions get flow entries first and
every one of their packets is forwarded on its pinned member; the SYNs fill the rest of
the table (1024 - E entries), then every SYN of a new source is dropped and counted as
`flow_table_full` (ingress port p0's drop reason and the node counter) while the
established packets keep flowing. rx(p0) = forwarded + flow_table_full; flows created =
1024. With on_full: hash instead, nothing is dropped: the flood beyond the table is
forwarded statelessly and only counted.

Tunables: --established N (16; 0: SYN flood only), --size BYTES (60, at least 60),
--syn-delay-ms MS (50), --src-mac, --dst-mac.
"""
from scapy.layers.inet import IP, TCP
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, ether_padded, ip2int,
                         parse_args, profile_args, sized)

# per direction: (random SYN sources min, max, first established client, target)
ROLES = {0: ("16.0.0.0", "16.254.255.255", "16.255.0.1", "48.0.0.1"),
         1: ("48.0.0.0", "48.254.255.254", "48.255.0.1", "16.0.0.1")}
EST_PPS, SYN_PPS = 1000, 100000
MAX_ESTABLISHED = 65535 - 40000


class SynFlood(object):
    """A SYN flood and the established sessions it must not disturb."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "TCP SYN flood from random sources + established flows")
        p.add_argument("--established", type=int, default=16,
                       help="established sessions sent beside the flood (0: none)")
        add_size(p, 60)
        p.add_argument("--syn-delay-ms", type=float, default=50.0,
                       help="the flood starts this long after the established stream")
        args = parse_args(p, tunables, port_id)
        check_range(p, "--established", args.established, 0, MAX_ESTABLISHED)
        if args.syn_delay_ms < 0:
            p.error("--syn-delay-ms must be >= 0, got %g" % args.syn_delay_ms)
        if args.size < 60:
            p.error("--size must be at least 60, got %d" % args.size)
        check_macs(p, args)

        syn_min, syn_max, client, target = ROLES[1 if direction else 0]
        eth = ether(args)
        streams = []

        if args.established:
            base = eth / IP(src=client, dst=target, ttl=64) / TCP(
                sport=40000, dport=80, flags="A", seq=1000, ack=2000, window=65535)
            vm = STLVM()
            vm.var(name="session", min_value=0, max_value=args.established - 1, size=4,
                   op="inc")
            vm.write(fv_name="session", pkt_offset="IP.src", add_val=ip2int(client))
            vm.write_mask(fv_name="session", pkt_offset="TCP.sport", pkt_cast_size=2,
                          mask=0xFFFF, add_val=40000)
            vm.fix_chksum_hw(l3_offset="IP", l4_offset="TCP",
                             l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP)
            pkt = sized(p, base, args.size)
            streams.append(STLStream(name="established",
                                     packet=STLPktBuilder(pkt=pkt, vm=vm),
                                     mode=STLTXCont(pps=EST_PPS)))

        base = eth / IP(src=syn_min, dst=target, ttl=64) / TCP(
            sport=1025, dport=80, flags="S", seq=0, window=65535)
        vm = STLVM()
        vm.var(name="src", min_value=syn_min, max_value=syn_max, size=4, op="random")
        vm.var(name="sport", min_value=1025, max_value=65535, size=2, op="random")
        vm.write(fv_name="src", pkt_offset="IP.src")
        vm.write(fv_name="sport", pkt_offset="TCP.sport")
        vm.fix_chksum_hw(l3_offset="IP", l4_offset="TCP",
                         l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP)
        # Ethernet padding (outside the IP total length): the SYN carries no data;
        # remove_fcs=False keeps the Padding layer, which TRex would otherwise strip
        pkt = ether_padded(base, args.size)
        streams.append(STLStream(name="syn",
                                 packet=STLPktBuilder(pkt=pkt, vm=vm, remove_fcs=False),
                                 mode=STLTXCont(pps=SYN_PPS), random_seed=0x5EED,
                                 isg=args.syn_delay_ms * 1000.0 if args.established else 0.0))
        return streams


def register():
    return SynFlood()
