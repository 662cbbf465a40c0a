"""TRex STL profile: many SSH sessions (TCP to port 22) from different client ports.

    start -f trex_profiles/fat_flow_ssh.py -m 100kpps --port 0 -t --sessions 1000 --clients 1

Pairs with trex_profiles/configs/fat_flow_ssh.yaml (fat_flows {proto: tcp, port: 22} on
p0 and p1; TRex port i is wired to the config's i-th port: p0, p1).

Sends one continuous stream of Ether / IPv4 / TCP data segments (flags PA, the payload
pads the frame to exactly --size bytes without FCS). Session j of --sessions (packet k
belongs to session k mod S and to client k mod C):

    direction 0 (port 0):  client 16.0.0.1 + k % C : 1024 + j  ->  server 48.0.0.22 : 22
    direction 1 (port 1):  server 48.0.0.22 : 22  ->  client 16.0.0.1 + k % C : 1024 + j

i.e. up to lcm(S, C) distinct TCP sessions (S when C divides S, as with the defaults),
all between the same server and --clients client addresses, differing in the client's
source port: the case Contrail's fat flow {proto: tcp, port: 22} aggregates. Ether src
is the TRex port's MAC (02:00:00:00:10:0<port+1>), dst the pairing config's port MAC
(02:00:00:00:00:0<port+1>). Field engine: `inc` variables `session` and `client`, writes
of the client port and the client address, then STLVmFixChecksumHw (IPv4 + TCP).

Outcome (replay into p0 of fat_flow_ssh.yaml): nothing dropped; the fat-flow rule keeps
port 22 and zeroes the client port, so all sessions of one client are one aggregate:
flow_created = --clients (1 by default), and every packet of every session of a client
leaves on one member of `spines` (with the default single client: 100 % of the packets
on one member, the other 3 members idle). Without the rule (delete fat_flows from the
config) the same traffic makes --sessions flow entries spread over the 4 members (~25 %
each). Direction 1 (into p1, the mirrored rule there) aggregates the same way.

Tunables: --sessions N (1000), --clients N (1), --size BYTES (128, at least 60),
--src-mac, --dst-mac.
"""
from scapy.layers.inet import IP, TCP
from trex.stl.api import (CTRexVmInsFixHwCs, STLPktBuilder, STLStream, STLTXCont, STLVM)
from trex_common import (add_size, check_macs, check_range, ether, ip2int, parse_args,
                         profile_args, sized)

CLIENT, SERVER, SSH = "16.0.0.1", "48.0.0.22", 22
FIRST_PORT = 1024
MAX_SESSIONS = 65535 - FIRST_PORT + 1
MAX_CLIENTS = 65536


class FatFlowSsh(object):
    """SSH sessions that one fat-flow rule folds into one flow per client."""

    def get_streams(self, tunables=(), **kwargs):
        port_id = kwargs.get("port_id", 0)
        direction = kwargs.get("direction", 0)
        p = profile_args(__file__, "TCP sessions to port 22 from many client ports")
        p.add_argument("--sessions", type=int, default=1000,
                       help="client source ports 1024, 1025, ...")
        p.add_argument("--clients", type=int, default=1, help="client addresses")
        add_size(p, 128)
        args = parse_args(p, tunables, port_id)
        check_range(p, "--sessions", args.sessions, 1, MAX_SESSIONS)
        check_range(p, "--clients", args.clients, 1, MAX_CLIENTS)
        check_macs(p, args)

        if direction == 0:         # client -> server
            ip = IP(src=CLIENT, dst=SERVER, ttl=64)
            tcp = TCP(sport=FIRST_PORT, dport=SSH, flags="PA", seq=1000, ack=2000,
                      window=65535)
            client_addr, client_port = "IP.src", "TCP.sport"
        else:                      # server -> client: the roles swap
            ip = IP(src=SERVER, dst=CLIENT, ttl=64)
            tcp = TCP(sport=SSH, dport=FIRST_PORT, flags="PA", seq=2000, ack=1000,
                      window=65535)
            client_addr, client_port = "IP.dst", "TCP.dport"
        base = ether(args) / ip / tcp
        pkt = sized(p, base, args.size)

        vm = STLVM()
        vm.var(name="session", min_value=FIRST_PORT,
               max_value=FIRST_PORT + args.sessions - 1, size=2, op="inc")
        vm.var(name="client", min_value=0, max_value=args.clients - 1, size=4, op="inc")
        vm.write(fv_name="session", pkt_offset=client_port)
        vm.write(fv_name="client", pkt_offset=client_addr, add_val=ip2int(CLIENT))
        vm.fix_chksum_hw(l3_offset="IP", l4_offset="TCP",
                         l4_type=CTRexVmInsFixHwCs.L4_TYPE_TCP)
        return [STLStream(name="ssh_sessions", packet=STLPktBuilder(pkt=pkt, vm=vm),
                          mode=STLTXCont(pps=1000))]


def register():
    return FatFlowSsh()
