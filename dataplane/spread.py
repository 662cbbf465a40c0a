"""How a replay spread traffic over each group's members: packets (from the core's
per-member counters), flows (distinct 5-tuples seen in the output pcaps on each member's
next hop) and the imbalance: max over live members of realised share / configured share
(1.0 is perfect; for equal weights it is max/mean)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from .config.model import Config
from .reference.forwarder import Lpm
from .reference.parse import parse

MAX_FLOW_SCAN = 5_000_000      # output frames; beyond this, flow counts are skipped


def imbalance(counts: list[int], weights: list[int]) -> float:
    total, wsum = sum(counts), sum(weights)
    if not total or not wsum:
        return 0.0
    return max((c / total) / (w / wsum) for c, w in zip(counts, weights) if w)


def group_stats(cfg: Config, packets: list[list[int]]) -> dict:
    """packets[g][m]: the core's per-member packet counters."""
    out = {}
    for g, counts in zip(cfg.groups, packets):
        weights = [m.weight for m in g.members]
        out[g.name] = {
            "members": [{"nexthop": m.nexthop, "weight": m.weight, "packets": c}
                        for m, c in zip(g.members, counts)],
            "packets": sum(counts),
            "imbalance_packets": round(imbalance(counts, weights), 4),
        }
    return out


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
    lpms = []
    for v in cfg.vrfs:
        t = {4: Lpm(32), 6: Lpm(128)}
        for r in v.routes:
            t[r.prefix.version].add(r)
        lpms.append(t)
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
            # TTL was decremented on the way out; parse() must not drop it as expired
            info = parse(frame)
            if info.family == 0:
                continue
            groups_hit = {r.via_index for t in lpms
                          for r in [t[info.family].lookup(info.dst)] if r and r.via_group}
            key = (info.family, info.src, info.dst, info.proto, info.icmp_id or info.sport,
                   info.dport)
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
