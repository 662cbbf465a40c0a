"""The validated configuration: what `load()` returns and what the backends compile.

Everything here is already checked (see validate.py); the backends (the Cython core and
the reference model) may assume every reference resolves and every value is in range.
Indexes are dense and stable: ports, VRFs, next hops and groups are numbered in the
order they appear in the file, which is also their index in the C tables. What the
validator derives for virtual networks (docs/virtual-networks.md §1: next hops, groups
and routes of `bind` and `allowed_address_pairs`, marked implicit) comes after the
file's own, so their indexes do not move.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from collections.abc import Sequence
from typing import Optional, Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

HASH_FIELDS = ("src_ip", "dst_ip", "proto", "src_port", "dst_port",
               "flow_label", "ingress_port")
DEFAULT_HASH_FIELDS = ("src_ip", "dst_ip", "proto", "src_port", "dst_port")


@dataclass
class Node:
    name: str
    seed: int                                   # 32-bit; derived from name when absent
    tunnel_address: Optional[ipaddress.IPv4Address | ipaddress.IPv6Address] = None


@dataclass
class Eal:
    lcores: str = "0-1"                         # main lcore first, then one worker
    memory_mb: int = 512
    no_huge: bool = True
    mbufs: int = 8192                           # mbuf pool size
    mbuf_size: int = 2176                       # data room incl. 128 B headroom
    mlock: bool = True                          # mlockall() after EAL init (as testpmd)
    extra: list[str] = field(default_factory=list)


@dataclass
class FlowTable:
    entries: int = 1 << 20
    idle_timeout: float = 300.0
    tcp_close_timeout: float = 10.0
    on_full: str = "hash"                       # hash | drop


FAT_FLOW_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}   # icmp: 58 on IPv6


@dataclass
class FatFlowRule:
    """One `ports[].fat_flows` rule (SPEC §5, docs/flow-table.md §2)."""
    proto: int                                  # 6, 17, 132, or 1 = ICMP (ICMPv6 on IPv6)
    port: int = 0                               # 0: every packet of the protocol
    ignore: str = "none"                        # none | src | dst
    src_prefix_len: Optional[int] = None        # keep this many leading bits
    dst_prefix_len: Optional[int] = None


@dataclass
class Analyzer:
    """`ports[].mirror.analyzer` (docs/mirroring.md): copies go as UDP with a metadata
    header to address:udp_port, from `source`, in an Ethernet frame to the next hop
    `via` (its MAC, out of its port)."""
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    udp_port: int
    via: str                                    # a next hop without labels or tunnel
    via_index: int
    source: ipaddress.IPv4Address | ipaddress.IPv6Address   # default node.tunnel_address


@dataclass
class Mirror:
    """`ports[].mirror` (SPEC §9, docs/mirroring.md): a copy of 1 in `sample` packets
    received (rx), sent (tx) or both, raw out of port `to` or to an analyzer."""
    direction: str = "both"                     # rx | tx | both
    sample: int = 1
    to: Optional[str] = None                    # raw copies out of this port, or
    to_index: int = 0
    analyzer: Optional[Analyzer] = None         # UDP + metadata to an analyzer
    egress_index: int = 0                       # the port copies leave by: `to`, or the
    #                                             analyzer's next hop's port


@dataclass
class AllowedPair:
    """One `ports[].bind.allowed_address_pairs` entry (docs/virtual-networks.md §1)."""
    ip: IPNetwork                               # a bare address is a /32 or /128
    mac: bytes                                  # the validator fills in bind.mac
    mode: str = "active-standby"                # active-standby | active-active


@dataclass
class Bind:
    """`ports[].bind`: the port's assigned identity (anti-spoofing, docs §4)."""
    mac: bytes
    ip: list = field(default_factory=list)      # IPNetworks (bare address → /32, /128)
    allowed_address_pairs: list = field(default_factory=list)   # AllowedPair


@dataclass
class Port:
    name: str
    index: int
    devargs: str
    mac: bytes                                  # 6 bytes
    vrf: Optional[str] = "default"
    vrf_index: int = 0
    mode: str = "flow"                          # flow | packet
    xconnect: Optional[str] = None              # the pseudowire of an attachment circuit
    xconnect_index: Optional[int] = None        # its index in Config.pseudowires
    fat_flows: list[FatFlowRule] = field(default_factory=list)
    fat_flow_exclude: list[IPNetwork] = field(default_factory=list)
    mirror: Optional[Mirror] = None             # SPEC §9
    bind: Optional[Bind] = None                 # docs/virtual-networks.md §4
    proxy_arp: bool = False                     # docs/virtual-networks.md §5

    @property
    def dev_name(self) -> str:
        """The name EAL gives the device: devargs up to the first comma."""
        return self.devargs.split(",", 1)[0]


@dataclass
class Tunnel:
    type: str                                   # mpls-udp | mpls-gre (SPEC §8)
    remote: ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass
class NextHop:
    name: str
    index: int
    port: str
    port_index: int
    mac: Optional[bytes]                        # destination MAC, 6 bytes; None:
    #                                             resolved by ARP / ND at run time
    labels: list[int] = field(default_factory=list)
    entropy: bool = False
    erld: int = 8
    tunnel: Optional[Tunnel] = None             # encapsulate toward tunnel.remote
    ip: Optional[ipaddress.IPv4Address | ipaddress.IPv6Address] = None   # on `port`
    implicit: bool = False                      # derived by the validator (`PORT~bind`,
    #                                             `PORT~aap~MAC`), not in the file


@dataclass
class HashSpec:
    fields: tuple[str, ...] = DEFAULT_HASH_FIELDS
    symmetric: bool = False
    fragments: str = "follow"                   # follow | l3


@dataclass
class Member:
    nexthop: str
    nexthop_index: int
    weight: int


@dataclass
class Group:
    name: str
    index: int
    members: list[Member]
    buckets: int = 4096
    hash: HashSpec = field(default_factory=HashSpec)
    implicit: bool = False                      # derived (`aap~IP`): config/vnet.py


@dataclass
class Route:
    prefix: IPNetwork
    via: str                                    # a next hop or a group name
    via_group: bool = False
    via_index: int = 0                          # index in nexthops or groups


class RouteTable(Sequence):
    """A VRF's routes in columns (numpy arrays), in file order: what the validator makes
    of a routes list, so a million routes cost tens of MB, not a Route and an
    ip_network object each. Reading an item makes its Route; the bulk users (the
    memory estimate, compile → the core's LPM build) read the columns.

    Columns: family (4 or 6), the network address as two 64-bit halves (hi, lo: an
    IPv4 address is lo), prefix length, via_group and via_index; `names` gives the
    `via` name: (next-hop names, group names)."""

    def __init__(self, family, hi, lo, plen, via_group, via_index,
                 names: tuple[list[str], list[str]]):
        self.family, self.hi, self.lo, self.plen = family, hi, lo, plen
        self.via_group, self.via_index, self.names = via_group, via_index, names

    def __len__(self) -> int:
        return len(self.plen)

    def prefix(self, i: int) -> IPNetwork:
        plen = int(self.plen[i])
        if self.family[i] == 4:
            return ipaddress.IPv4Network((int(self.lo[i]), plen))
        return ipaddress.IPv6Network(((int(self.hi[i]) << 64) | int(self.lo[i]), plen))

    def _route(self, i: int) -> Route:
        group, via = bool(self.via_group[i]), int(self.via_index[i])
        return Route(self.prefix(i), self.names[group][via], group, via)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._route(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError("route index out of range")
        return self._route(i)

    def __iter__(self):
        return (self._route(i) for i in range(len(self)))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"RouteTable({len(self)} routes)"


@dataclass
class StaticMac:
    """One `vrfs.X.macs` entry: a static bridge table entry."""
    mac: bytes
    port: str
    port_index: int


@dataclass
class Gateway:
    """`vrfs.X.gateway`: the forwarder's own addresses in the virtual network."""
    ip: list = field(default_factory=list)      # IPv4Interface / IPv6Interface, file order
    mac: Optional[bytes] = None                 # None: the ingress port's mac


@dataclass
class Vrf:
    name: str
    index: int
    routes: Sequence[Route] = field(default_factory=list)   # a list, or a RouteTable
    forwarding: str = "l3"                      # l3 | l2 | l2_l3 (docs/virtual-networks.md)
    flood_unknown_unicast: bool = False         # l2 / l2_l3 only
    mac_learning: bool = False                  # l2 / l2_l3 only
    mac_aging: float = 300.0                    # seconds an unused learned MAC is kept
    macs: list[StaticMac] = field(default_factory=list)
    gateway: Optional[Gateway] = None


LFIB_ACTIONS = ("swap", "pop", "pop-lookup", "pop-xconnect")


@dataclass
class LfibRule:
    """One `mpls.lfib` entry (SPEC §7, docs/mpls.md §4-§5)."""
    label: int                                  # 16..2^20-1
    action: str                                 # swap | pop | pop-lookup | pop-xconnect
    labels: list[int] = field(default_factory=list)     # swap: written, outermost first
    via: Optional[str] = None                   # swap: a next hop or group name
    via_group: bool = False
    via_index: int = 0                          # index in nexthops or groups
    vrf: Optional[str] = None                   # pop-lookup
    vrf_index: int = 0
    pseudowire: Optional[str] = None            # pop-xconnect
    pw_index: int = 0                           # index in Config.pseudowires


@dataclass
class Mpls:
    erld: int = 8                               # readable depth for transit hashing
    payload_guess: bool = True
    ttl_model: str = "uniform"                  # uniform | pipe
    lfib: list[LfibRule] = field(default_factory=list)


@dataclass
class Pseudowire:
    """An Ethernet pseudowire (VPWS, docs/mpls.md §9): frames from ac_port go out with
    [transport][PW label][FAT?][CW?]; `pop-xconnect` of the reverse label delivers back."""
    name: str
    index: int
    ac_port: str
    ac_port_index: int
    label: int                                  # pushed toward the remote PE
    via: str                                    # transport next hop or group
    via_group: bool = False
    via_index: int = 0
    fat: bool = False
    control_word: bool = False


@dataclass
class Neighbors:
    """`neighbors`: resolution of next hops without a mac (docs/virtual-networks.md §6)."""
    reachable_time: float = 30.0                # seconds a learned MAC stays valid
    retry: float = 1.0                          # seconds between requests
    queue: int = 8                              # packets held per neighbour and worker


@dataclass
class Config:
    path: str
    node: Node
    ports: list[Port]
    vrfs: list[Vrf]
    nexthops: list[NextHop]
    groups: list[Group] = field(default_factory=list)
    flow_table: FlowTable = field(default_factory=FlowTable)
    eal: Eal = field(default_factory=Eal)
    mpls: Mpls = field(default_factory=Mpls)
    pseudowires: list[Pseudowire] = field(default_factory=list)
    neighbors: Neighbors = field(default_factory=Neighbors)
    raw: dict = field(default_factory=dict)     # the parsed YAML, for later features

    def port(self, name: str) -> Port:
        return next(p for p in self.ports if p.name == name)

    def vrf(self, name: str) -> Vrf:
        return next(v for v in self.vrfs if v.name == name)
