"""Compile a validated Config into the flat tables the C core copies in (pyx/core.pxi).

Everything that needs a decision is made here: label stacks with the ELI/EL pair placed,
overlay header templates, fat-flow rules as numbers, LFIB entries, bucket tables
(dataplane/ecmp.py), hash field masks (dataplane/hashing.py). The C side copies fields and
builds DPDK objects (rte_lpm, rte_hash) from them; it imports no Python module of the
control plane. Live changes (dataplane/control.py) compile through the same functions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import ecmp, hashing
from ..limits import (A_POP, A_POP_LOOKUP, A_POP_XC, A_SWAP, IGNORE_DST, IGNORE_NONE,
                      IGNORE_SRC, MAX_FAT_EXCLUDE, MAX_FAT_RULES, MAX_PUSH, MAX_SWAP,
                      MEMBER_ACTIVE, MEMBER_DRAIN, MEMBER_REMOVED, NH_GROUP, NO_PREFIX, NO_PW,
                      TUN_GRE, TUN_NONE, TUN_UDP)
from .model import FAT_FLOW_PROTOS, Config

ACTIONS = {"swap": A_SWAP, "pop": A_POP, "pop-lookup": A_POP_LOOKUP, "pop-xconnect": A_POP_XC}
IGNORE = {"none": IGNORE_NONE, "src": IGNORE_SRC, "dst": IGNORE_DST}


@dataclass
class FatTable:
    rules: list[tuple[int, int, int, int, int]]   # proto, port, ignore, src_plen, dst_plen
    exclude: list[tuple[int, int, bytes]]         # family, prefix length, address


@dataclass
class PortTable:
    index: int
    l3: bool                   # in a VRF (else: a pseudowire attachment circuit)
    vrf: int
    flow_mode: bool
    pw: int                    # pseudowire index, or NO_PW
    fat: FatTable


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
class Compiled:
    """Everything Core() copies in."""
    seed: int
    entropy_fields: int        # hash fields of a flow's entropy when not via a group
    ports: list[PortTable]
    nexthops: list[NextHopTable]
    groups: list[GroupTable]
    vrf_names: list[str]
    routes: list[dict]         # per VRF: {ip_network: next-hop id}
    mpls: MplsTable
    flow_table: Optional[FlowTableSpec]   # None: no flow-mode L3 port, no table
    group_buckets: dict = field(default_factory=dict)   # index → current bucket table


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


def nexthop_table(cfg: Config, n) -> NextHopTable:
    eth = bytes(n.mac) + bytes(cfg.ports[n.port_index].mac)
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
                        olen, outer, osum)


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


def routes_of(vrf) -> dict:
    return {r.prefix: via_id(r.via_index, r.via_group) for r in vrf.routes}


def compile_config(cfg: Config) -> Compiled:
    ports = [PortTable(p.index, p.vrf is not None, p.vrf_index if p.vrf is not None else 0,
                       p.mode == "flow", NO_PW if p.xconnect_index is None else p.xconnect_index,
                       fat_table(p)) for p in cfg.ports]
    groups = [group_table(cfg, g.index, [(m.nexthop_index, m.weight, True) for m in g.members])
              for g in cfg.groups]
    ft = cfg.flow_table
    need_flows = any(p.mode == "flow" and p.vrf is not None for p in cfg.ports)
    return Compiled(
        seed=cfg.node.seed,
        entropy_fields=hashing.field_mask(hashing.FIELD_BITS.keys() - {"flow_label",
                                                                        "ingress_port"}),
        ports=ports, nexthops=[nexthop_table(cfg, n) for n in cfg.nexthops],
        groups=groups, vrf_names=[v.name for v in cfg.vrfs],
        routes=[routes_of(v) for v in cfg.vrfs], mpls=mpls_table(cfg),
        flow_table=FlowTableSpec(ft.entries, ft.idle_timeout, ft.tcp_close_timeout,
                                 ft.on_full == "drop") if need_flows else None,
        group_buckets={g.index: g.buckets for g in groups})

