"""Compile a validated Config into the flat tables the C core copies in (pyx/core.pxi).

Everything that needs a decision is made here: label stacks with the ELI/EL pair placed,
overlay header templates, fat-flow rules as numbers, LFIB entries, bucket tables
(dataplane/ecmp.py), hash field masks (dataplane/hashing.py). The C side copies fields and
builds DPDK objects (rte_lpm, rte_hash) from them; it imports no Python module of the
control plane. Live changes (dataplane/control.py) compile through the same functions.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import ecmp, hashing
from ..limits import (A_POP, A_POP_LOOKUP, A_POP_XC, A_SWAP, IGNORE_DST, IGNORE_NONE,
                      IGNORE_SRC, MAX_FAT_EXCLUDE, MAX_FAT_RULES, MAX_PUSH, MAX_SWAP,
                      MEMBER_ACTIVE, MEMBER_DRAIN, MEMBER_REMOVED, MIRROR_HDR_MAX, MIRROR_RX,
                      MIRROR_TX, NH_GROUP, NO_PREFIX, NO_PW, TUN_GRE, TUN_NONE, TUN_UDP)
from ..mirror import meta_template
from . import vnet
from .model import FAT_FLOW_PROTOS, Config

ACTIONS = {"swap": A_SWAP, "pop": A_POP, "pop-lookup": A_POP_LOOKUP, "pop-xconnect": A_POP_XC}
IGNORE = {"none": IGNORE_NONE, "src": IGNORE_SRC, "dst": IGNORE_DST}


@dataclass
class FatTable:
    rules: list[tuple[int, int, int, int, int]]   # proto, port, ignore, src_plen, dst_plen
    exclude: list[tuple[int, int, bytes]]         # family, prefix length, address


@dataclass
class MirrorTable:
    """A port's mirror (docs/mirroring.md)."""
    dirs: int                  # MIRROR_RX | MIRROR_TX
    dest: int                  # index of the port its copies leave by
    sample: int                # 1 in N
    analyzer: bool             # UDP + metadata (else raw copies)
    v6: bool                   # the analyzer is reached over IPv6
    hdr: bytes                 # analyzer: Ethernet + IP + UDP + metadata template
    osum: int                  # analyzer over IPv4: sum of the template IP header's words


@dataclass
class PortTable:
    index: int
    l3: bool                   # in a VRF (else: a pseudowire attachment circuit)
    vrf: int
    flow_mode: bool
    pw: int                    # pseudowire index, or NO_PW
    fat: FatTable
    mirror: Optional[MirrorTable] = None
    # virtual networks (docs/virtual-networks.md)
    mac: bytes = bytes(6)      # the port's own MAC
    gw_mac: bytes = bytes(6)   # the gateway MAC of frames from this port
    fwd: int = 0               # FWD_L3 / FWD_L2 / FWD_L2L3 of its VRF
    vn: bool = False           # frames take the VN classify path (bind, l2, l2_l3)
    proxy: bool = False
    pairs: list = field(default_factory=list)    # binding: (family, plen, addr16, mac)
    bmacs: list = field(default_factory=list)    # binding: allowed MACs


@dataclass
class VnVrfTable:
    fwd: int
    flood_uu: bool
    learn: bool
    aging: float
    ports: list[int]           # flood list, port order
    gw: list[tuple[int, int, bytes]]                   # own addresses: family, plen, addr16
    hosts: list[tuple[int, int, bytes, bytes, int]]    # family, plen, addr16, mac, port


@dataclass
class VnetTable:
    capacity: int              # bridge table entries
    vrfs: list[VnVrfTable]
    statics: list[tuple[int, bytes, int]]              # VRF, MAC, port
    neighbours: list[tuple[int, int, bytes, bytes]]    # port, family, ip16, request source16
    reachable_time: float
    retry: float
    queue: int


FWD = {"l3": 0, "l2": 1, "l2_l3": 2}
NEIGH_NONE = 0xFFFFFFFF
BRIDGE_ENTRIES = 65536         # an l2 / l2_l3 VRF's learned and static MACs, all VRFs


def addr16(net) -> tuple[int, int, bytes]:
    """(family, prefix length, address padded to 16 bytes) of a network, or of an
    interface address (gateway.ip: the address itself)."""
    if isinstance(net, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return net.version, net.network.prefixlen, net.ip.packed.ljust(16, b"\0")
    return net.version, net.prefixlen, net.network_address.packed.ljust(16, b"\0")


def port_vn(cfg: Config, p) -> dict:
    """A port's VN fields of PortTable."""
    if p.vrf is None:
        return {"mac": bytes(p.mac), "gw_mac": bytes(p.mac)}
    vrf = cfg.vrfs[p.vrf_index]
    pairs, macs = vnet.allowed(p) if p.bind is not None else ([], set())
    ordered = [p.bind.mac] + [a.mac for a in p.bind.allowed_address_pairs] if p.bind else []
    bmacs = list(dict.fromkeys(m for m in ordered if m in macs))
    return {"mac": bytes(p.mac), "gw_mac": vnet.gateway_mac(cfg, p.vrf_index, p.index),
            "fwd": FWD[vrf.forwarding], "vn": vrf.forwarding != "l3" or p.bind is not None,
            "proxy": p.proxy_arp,
            "pairs": [addr16(net) + (mac,) for mac, net in pairs], "bmacs": bmacs}


def vnet_table(cfg: Config) -> VnetTable:
    vrfs = []
    for v in cfg.vrfs:
        gw = [addr16(a) for a in (v.gateway.ip if v.gateway else [])]
        hosts = [addr16(net) + (mac, port) for net, mac, port in vnet.proxy_hosts(cfg, v.index)]
        vrfs.append(VnVrfTable(FWD[v.forwarding], v.flood_unknown_unicast, v.mac_learning,
                               v.mac_aging, vnet.vrf_ports(cfg, v.index), gw, hosts))
    statics = vnet.static_macs(cfg)
    l2 = any(v.forwarding != "l3" for v in cfg.vrfs)
    neigh = []
    for port, ip in vnet.neighbours(cfg):
        src = vnet.request_source(cfg, port, ip)
        neigh.append((port, ip.version, ip.packed.ljust(16, b"\0"),
                      src.packed.ljust(16, b"\0")))
    nb = cfg.neighbors
    return VnetTable(max(BRIDGE_ENTRIES if l2 else 1024, 2 * len(statics)), vrfs, statics,
                     neigh, nb.reachable_time, nb.retry, nb.queue)


@dataclass
class NextHopTable:
    eth: bytes                 # destination MAC + egress port MAC (12 bytes)
    port: int
    push: list[int]            # label stack entries (host order, label << 12), outermost first
    ttl_on: list[bool]         # entry takes the packet's TTL (ELI and EL keep TTL 0)
    el_at: int                 # index of the EL entry, -1: none
    el_unreadable: bool        # the EL lies beyond the next hop's erld
    tunnel: int                # TUN_*
    v6: bool                   # IPv6 outer header
    olen: int                  # outer IP + UDP/GRE bytes after Ethernet
    outer: bytes               # Ethernet + outer header template
    osum: int                  # sum of the template's IPv4 header words
    neigh: int = NEIGH_NONE    # its neighbour when the MAC is resolved (ARP/ND)


@dataclass
class GroupTable:
    index: int
    member_nh: list[int]
    states: list[int]          # MEMBER_*
    buckets: Optional[np.ndarray]   # uint16 member slot per bucket; None: all drained
    fields: int                # hashing.field_mask(), incl. the symmetric flag
    follow: bool               # fragments: follow


@dataclass
class LfibEntry:
    label: int
    action: int
    labels: list[int]          # swap: label << 12 (host order)
    via: int                   # next-hop id (NH_GROUP | group for a group)
    vrf: int
    pw: int


@dataclass
class PseudowireTable:
    ac_port: int
    label: int                 # label << 12
    via: int
    fat: bool
    cw: bool


@dataclass
class MplsTable:
    erld: int
    guess: bool
    pipe: bool
    tun_family: int            # 0: no tunnel address, else 4 or 6
    tun_addr: bytes
    pws: list[PseudowireTable]
    lfib: list[LfibEntry]


@dataclass
class FlowTableSpec:
    entries: int
    idle_timeout: float
    tcp_close_timeout: float
    on_full_drop: bool


@dataclass
class RouteColumns:
    """A VRF's routes as the core loads them (pyx/core.pxi _build_vrf), per family: the
    network addresses, prefix lengths and next-hop ids (via_id), numpy arrays."""
    v4_addr: np.ndarray        # uint32, host order
    v4_plen: np.ndarray        # uint8
    v4_nh: np.ndarray          # uint32
    v6_addr: np.ndarray        # uint8 (n, 16), network order
    v6_plen: np.ndarray        # uint8
    v6_nh: np.ndarray          # uint32

    def __len__(self) -> int:
        return len(self.v4_plen) + len(self.v6_plen)

    @classmethod
    def from_dict(cls, routes: dict) -> "RouteColumns":
        """From {ip_network: next-hop id} (live changes: dataplane/control.py)."""
        v4 = [(int(p.network_address), p.prefixlen, nh) for p, nh in routes.items()
              if p.version == 4]
        v6 = [(p.network_address.packed, p.prefixlen, nh) for p, nh in routes.items()
              if p.version == 6]
        return cls(np.array([a for a, _, _ in v4], np.uint32),
                   np.array([n for _, n, _ in v4], np.uint8),
                   np.array([h for _, _, h in v4], np.uint32),
                   np.frombuffer(b"".join(a for a, _, _ in v6), np.uint8).reshape(-1, 16).copy(),
                   np.array([n for _, n, _ in v6], np.uint8),
                   np.array([h for _, _, h in v6], np.uint32))

    def as_dict(self) -> dict:
        """{ip_network: next-hop id} (made on demand: a million routes take a while)."""
        import ipaddress
        out = {ipaddress.IPv4Network((int(a), int(n))): int(h)
               for a, n, h in zip(self.v4_addr, self.v4_plen, self.v4_nh)}
        out.update({ipaddress.IPv6Network((bytes(a), int(n))): int(h)
                    for a, n, h in zip(self.v6_addr, self.v6_plen, self.v6_nh)})
        return out


def route_columns(routes) -> RouteColumns:
    """A VRF's routes (a list of Route, or a model.RouteTable) in the core's columns."""
    from .model import RouteTable
    if not isinstance(routes, RouteTable):
        return RouteColumns.from_dict(routes_of_list(routes))
    nh = routes.via_index.astype(np.uint32) | np.where(routes.via_group, np.uint32(NH_GROUP),
                                                       np.uint32(0))
    v4, v6 = routes.family == 4, routes.family == 6
    hi, lo = routes.hi[v6], routes.lo[v6]
    v6_addr = np.empty((len(hi), 16), np.uint8)
    v6_addr[:, :8] = hi.astype(">u8").view(np.uint8).reshape(-1, 8)
    v6_addr[:, 8:] = lo.astype(">u8").view(np.uint8).reshape(-1, 8)
    return RouteColumns(routes.lo[v4].astype(np.uint32), routes.plen[v4].astype(np.uint8),
                        nh[v4], v6_addr, routes.plen[v6].astype(np.uint8), nh[v6])


@dataclass
class Compiled:
    """Everything Core() copies in."""
    seed: int
    entropy_fields: int        # hash fields of a flow's entropy when not via a group
    ports: list[PortTable]
    nexthops: list[NextHopTable]
    groups: list[GroupTable]
    vrf_names: list[str]
    routes: list[RouteColumns]   # per VRF
    mpls: MplsTable
    flow_table: Optional[FlowTableSpec]   # None: no flow-mode L3 port, no table
    group_buckets: dict = field(default_factory=dict)   # index → current bucket table
    vnet: Optional[VnetTable] = None


def via_id(via_index: int, via_group: bool) -> int:
    return via_index | (NH_GROUP if via_group else 0)


def fat_table(p) -> FatTable:
    rules = list(p.fat_flows or [])
    excl = list(p.fat_flow_exclude or [])
    if len(rules) > MAX_FAT_RULES or len(excl) > MAX_FAT_EXCLUDE:
        raise ValueError(f"port {p.name}: at most {MAX_FAT_RULES} fat-flow rules and "
                         f"{MAX_FAT_EXCLUDE} exclude prefixes")
    out = []
    for r in rules:
        proto = FAT_FLOW_PROTOS.get(r.proto, r.proto)
        out.append((1 if proto in (1, 58) else proto, r.port, IGNORE[r.ignore or "none"],
                    NO_PREFIX if r.src_prefix_len is None else r.src_prefix_len,
                    NO_PREFIX if r.dst_prefix_len is None else r.dst_prefix_len))
    return FatTable(out, [(n.version, n.prefixlen, n.network_address.packed) for n in excl])


def outer_template(eth: bytes, src, tunnel) -> tuple[bytes, int]:
    """A tunnel next hop's Ethernet + outer IP + UDP/GRE header with the per-packet
    fields (TOS/traffic class, lengths, checksums, UDP source port) zero, and the sum of
    the IPv4 header's 16-bit words (the checksum is finished per packet)."""
    udp = tunnel.type == "mpls-udp"
    proto = 17 if udp else 47
    l4 = (bytes(2) + (6635).to_bytes(2, "big") + bytes(4)) if udp else b"\0\0\x88\x47"
    if tunnel.remote.version == 4:
        ip = bytes([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]) + src.packed + \
            tunnel.remote.packed
        return eth + b"\x08\x00" + ip + l4, sum(int.from_bytes(ip[i:i + 2], "big")
                                                 for i in range(0, 20, 2))
    ip = bytes([0x60, 0, 0, 0, 0, 0, proto, 64]) + src.packed + tunnel.remote.packed
    return eth + b"\x86\xdd" + ip + l4, 0


MIRROR_DIRS = {"rx": MIRROR_RX, "tx": MIRROR_TX, "both": MIRROR_RX | MIRROR_TX}


def mirror_table(cfg: Config, p) -> Optional[MirrorTable]:
    """A port's mirror: raw copies out of `to`, or the analyzer's header template
    (docs/mirroring.md §3): Ethernet to the `via` next hop's MAC from its port's MAC,
    IPv4 (DF, id 0, TTL 64) or IPv6 (hop limit 64) from `source` to `address`, UDP
    from and to `udp_port`, the metadata header; lengths, checksums and the per-copy
    fields zero (the C core fills them per copy)."""
    m = p.mirror
    if m is None:
        return None
    dirs = MIRROR_DIRS[m.direction]
    if m.analyzer is None:
        return MirrorTable(dirs, m.to_index, m.sample, False, False, b"", 0)
    a = m.analyzer
    nh = cfg.nexthops[a.via_index]
    eth = bytes(nh.mac) + bytes(cfg.ports[nh.port_index].mac)
    udp = struct.pack("!HHHH", a.udp_port, a.udp_port, 0, 0)
    if a.address.version == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 0, 0, 0x4000, 64, 17, 0,
                         a.source.packed, a.address.packed)
        osum = sum(struct.unpack("!10H", ip))
        hdr = eth + b"\x08\x00" + ip + udp + meta_template(m.sample)
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, 0, 17, 64, a.source.packed,
                         a.address.packed)
        osum = 0
        hdr = eth + b"\x86\xdd" + ip + udp + meta_template(m.sample)
    assert len(hdr) <= MIRROR_HDR_MAX
    return MirrorTable(dirs, nh.port_index, m.sample, True, a.address.version == 6, hdr,
                       osum)


def nexthop_table(cfg: Config, n, neigh: int = NEIGH_NONE) -> NextHopTable:
    # a MAC resolved by ARP/ND is written per packet (pyx/neigh.pxd): zero until then
    eth = bytes(n.mac or bytes(6)) + bytes(cfg.ports[n.port_index].mac)
    # the transport stack (docs/mpls.md §7): labels, then the ELI/EL pair below transport
    # label k (the EL value, TC, S and TTL come per packet)
    words = [x << 12 for x in n.labels]
    el_at, unreadable = -1, False
    if n.entropy and n.labels and n.tunnel is None:
        k = min(len(n.labels), n.erld - 2)
        unreadable = k < 1
        if k < 1:
            k = len(n.labels)
        words[k:k] = [7 << 12, 0]
        el_at = k + 1
    if len(words) > MAX_PUSH - 2:
        raise ValueError(f"next hop {n.name}: at most {MAX_PUSH - 2} entries")
    ttl_on = [not (el_at >= 0 and i in (el_at - 1, el_at)) for i in range(len(words))]
    tunnel, v6, olen, outer, osum = TUN_NONE, False, 0, b"", 0
    if n.tunnel is not None:
        tunnel = TUN_UDP if n.tunnel.type == "mpls-udp" else TUN_GRE
        v6 = n.tunnel.remote.version == 6
        olen = (40 if v6 else 20) + (8 if tunnel == TUN_UDP else 4)
        outer, osum = outer_template(eth, cfg.node.tunnel_address, n.tunnel)
    return NextHopTable(eth, n.port_index, words, ttl_on, el_at, unreadable, tunnel, v6,
                        olen, outer, osum, neigh)


def mpls_table(cfg: Config) -> MplsTable:
    spec = cfg.mpls
    tun = cfg.node.tunnel_address
    pws = [PseudowireTable(pw.ac_port_index, pw.label << 12, via_id(pw.via_index, pw.via_group),
                           pw.fat, pw.control_word) for pw in cfg.pseudowires]
    lfib = []
    for rule in spec.lfib:
        if len(rule.labels) > MAX_SWAP:
            raise ValueError(f"LFIB label {rule.label}: at most {MAX_SWAP} swap labels")
        lfib.append(LfibEntry(rule.label, ACTIONS[rule.action], [x << 12 for x in rule.labels],
                              via_id(rule.via_index, rule.via_group), rule.vrf_index,
                              rule.pw_index))
    return MplsTable(spec.erld, spec.payload_guess, spec.ttl_model == "pipe",
                     tun.version if tun is not None else 0,
                     tun.packed if tun is not None else b"", pws, lfib)


def member_states(members) -> list[int]:
    """members: [(next-hop index, weight, present)] → MEMBER_* per slot."""
    return [MEMBER_REMOVED if not present else MEMBER_ACTIVE if w else MEMBER_DRAIN
            for _, w, present in members]


def group_table(cfg: Config, index: int, members, current=None) -> GroupTable:
    """Group `index` with members[i] = (next-hop index, weight, present) for slot i. Slots
    keep their index: an added member is a new slot, a removed one stays as a hole (its
    pinned flows are re-hashed), weight 0 drains. From `current` (the bucket table in
    force) the fewest buckets move (ecmp.rebalance)."""
    grp = cfg.groups[index]
    weights = [w if present else 0 for _, w, present in members]
    if current is not None and sum(weights) > 0:
        buckets = ecmp.rebalance(current, weights)
    else:
        buckets = ecmp.build_or_none(weights, grp.buckets)
    return GroupTable(index, [nh for nh, _, _ in members], member_states(members), buckets,
                      hashing.field_mask(grp.hash.fields, grp.hash.symmetric),
                      grp.hash.fragments == "follow")


def routes_of_list(routes) -> dict:
    return {r.prefix: via_id(r.via_index, r.via_group) for r in routes}


def routes_of(vrf) -> dict:
    return routes_of_list(vrf.routes)


def compile_config(cfg: Config) -> Compiled:
    ports = [PortTable(p.index, p.vrf is not None, p.vrf_index if p.vrf is not None else 0,
                       p.mode == "flow", NO_PW if p.xconnect_index is None else p.xconnect_index,
                       fat_table(p), mirror_table(cfg, p), **port_vn(cfg, p)) for p in cfg.ports]
    up = {p.index for p in cfg.ports}      # at start every port counts as up
    aap = {gi for gi, _, _ in vnet.aap_groups(cfg)}
    groups = [group_table(cfg, g.index, vnet.aap_members(cfg, g.index, up) if g.index in aap
                          else [(m.nexthop_index, m.weight, True) for m in g.members])
              for g in cfg.groups]
    neigh = vnet.neighbour_of(cfg)
    ft = cfg.flow_table
    need_flows = any(p.mode == "flow" and p.vrf is not None for p in cfg.ports)
    return Compiled(
        seed=cfg.node.seed,
        entropy_fields=hashing.field_mask(hashing.FIELD_BITS.keys() - {"flow_label",
                                                                        "ingress_port"}),
        ports=ports,
        nexthops=[nexthop_table(cfg, n, neigh.get(n.index, NEIGH_NONE)) for n in cfg.nexthops],
        groups=groups, vrf_names=[v.name for v in cfg.vrfs],
        routes=[route_columns(v.routes) for v in cfg.vrfs], mpls=mpls_table(cfg),
        flow_table=FlowTableSpec(ft.entries, ft.idle_timeout, ft.tcp_close_timeout,
                                 ft.on_full == "drop") if need_flows else None,
        group_buckets={g.index: g.buckets for g in groups}, vnet=vnet_table(cfg))

