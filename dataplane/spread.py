"""How a replay spread traffic over each group's members: packets (from the core's
per-member counters), flows (distinct 5-tuples seen in the output pcaps on each member's
next hop) and the imbalance: max over live members of realised share / configured share
(1.0 is perfect; for equal weights it is max/mean)."""
from __future__ import annotations

import struct
from collections import defaultdict
from pathlib import Path
from typing import Optional

from .config.model import Config
from .lpm import vrf_tables

MAX_FLOW_SCAN = 5_000_000      # output frames; beyond this, flow counts are skipped

VLAN_TPIDS = (0x8100, 0x88A8)
IPV6_EXT = (0, 43, 60, 44, 51)          # hop-by-hop, routing, dest opts, fragment, AH
MAX_EXT = 8                             # the packet path's limit (docs/packet-path.md §3)
TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
L4_NEED = {TCP: 20, UDP: 8, SCTP: 12, ICMP: 8, ICMPV6: 8}
ECHO = {ICMP: (8, 0), ICMPV6: (128, 129)}   # types whose bytes 4-5 are the echo id


def imbalance(counts: list[int], weights: list[int]) -> float:
    total, wsum = sum(counts), sum(weights)
    if not total or not wsum:
        return 0.0
    return max((c / total) / (w / wsum) for c, w in zip(counts, weights) if w)


def group_stats(cfg: Config, packets: list[list[int]], members: dict | None = None) -> dict:
    """packets[g][m]: the core's per-member packet counters. members: {group: [(next hop,
    weight)]} per slot when live changes made them differ from cfg."""
    out = {}
    for g, counts in zip(cfg.groups, packets):
        slots = (members or {}).get(g.name) or [(m.nexthop, m.weight) for m in g.members]
        weights = [w for _, w in slots]
        out[g.name] = {
            "members": [{"nexthop": nh, "weight": w, "packets": c}
                        for (nh, w), c in zip(slots, counts)],
            "packets": sum(counts),
            "imbalance_packets": round(imbalance(counts, weights), 4),
        }
    return out


def _u16(b: bytes, off: int) -> int:
    return struct.unpack_from("!H", b, off)[0]


def flow_of(frame: bytes) -> Optional[tuple[int, bytes, bytes, int, int, int]]:
    """(family, src, dst, proto, source port or ICMP echo id, destination port) of an
    Ethernet frame carrying IPv4 or IPv6 after at most two VLAN tags; None otherwise (or
    when the IP header or the packet its length fields announce is cut short).

    The fields the packet path reads (docs/packet-path.md §1-§2), without its checks
    (TTL, martians: output frames were forwarded, their TTL already decremented). IPv6
    extension headers are walked as the packet path walks them; L4 fields are read within
    the IP packet, none of a non-first fragment, and are 0 when absent or cut short."""
    if len(frame) < 14:
        return None
    etype, off = _u16(frame, 12), 14
    for _ in range(2):
        if etype not in VLAN_TPIDS:
            break
        if len(frame) < off + 4:
            return None
        etype, off = _u16(frame, off + 2), off + 4
    if etype == 0x0800:
        if len(frame) - off < 20 or frame[off] >> 4 != 4:
            return None
        ihl, total = (frame[off] & 0xF) * 4, _u16(frame, off + 2)
        if ihl < 20 or total < ihl or len(frame) - off < total:
            return None
        family, proto, end, icmp = 4, frame[off + 9], off + total, ICMP
        src, dst = frame[off + 12:off + 16], frame[off + 16:off + 20]
        l4 = off + ihl if _u16(frame, off + 6) & 0x1FFF == 0 else None
    elif etype == 0x86DD:
        if len(frame) - off < 40 or frame[off] >> 4 != 6:
            return None
        end = off + 40 + _u16(frame, off + 4)
        if len(frame) < end:
            return None
        family, proto, l4, icmp = 6, frame[off + 6], off + 40, ICMPV6
        src, dst = frame[off + 8:off + 24], frame[off + 24:off + 40]
        count = 0
        while proto in IPV6_EXT:
            # the packet path drops these (unsupported, truncated); the addresses stand
            if count == MAX_EXT or end - l4 < 2:
                return family, src, dst, 0, 0, 0
            size = (8 if proto == 44 else (frame[l4 + 1] + 2) * 4 if proto == 51
                    else (frame[l4 + 1] + 1) * 8)
            if end - l4 < size:
                return family, src, dst, 0, 0, 0
            first = proto != 44 or _u16(frame, l4 + 2) >> 3 == 0
            proto, l4, count = frame[l4], l4 + size, count + 1
            if not first:                           # a non-first fragment: no L4
                l4 = None
                break
    else:
        return None
    sport = dport = 0
    if l4 is not None and proto in (TCP, UDP, SCTP, icmp) and end - l4 >= L4_NEED[proto]:
        if proto == icmp:
            if frame[l4] in ECHO[icmp]:
                sport = _u16(frame, l4 + 4)
        else:
            sport, dport = _u16(frame, l4), _u16(frame, l4 + 2)
    return family, src, dst, proto, sport, dport


def add_flow_counts(cfg: Config, groups: dict, out_dir: str) -> None:
    """Count distinct flows per member from DIR/<port>.pcap (frames leave on the member's
    next hop: egress port + destination MAC, and their destination routes to the group)."""
    from scapy.utils import RawPcapReader
    if not cfg.groups:
        return
    by_hop = defaultdict(list)                 # (port index, dst mac) → [(group, member)]
    for g in cfg.groups:
        for i, m in enumerate(g.members):
            nh = cfg.nexthops[m.nexthop_index]
            by_hop[(nh.port_index, nh.mac)].append((g.index, i))
    lpms = vrf_tables(cfg.vrfs)
    flows = defaultdict(set)
    scanned = 0
    for p in cfg.ports:
        path = Path(out_dir) / f"{p.name}.pcap"
        if not path.exists():
            continue
        for frame, _ in RawPcapReader(str(path)):
            scanned += 1
            if scanned > MAX_FLOW_SCAN:
                return
            cands = by_hop.get((p.index, frame[:6]))
            if not cands:
                continue
            key = flow_of(frame)
            if key is None:
                continue
            family, dst = key[0], key[2]
            groups_hit = {r.via_index for t in lpms
                          for r in [t[family].lookup(dst)] if r and r.via_group}
            for gi, mi in cands:
                if gi in groups_hit:
                    flows[(gi, mi)].add(key)
    for g in cfg.groups:
        st = groups[g.name]
        counts = [len(flows[(g.index, i)]) for i in range(len(g.members))]
        for m, c in zip(st["members"], counts):
            m["flows"] = c
        st["flows"] = sum(counts)
        st["imbalance_flows"] = round(imbalance(counts, [m.weight for m in g.members]), 4)
