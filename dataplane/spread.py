"""How a replay spread traffic over each group's members: packets (from the core's
per-member counters), flows (distinct 5-tuples that left on each member's next hop: from
the flow tables when they account for every packet, else from the output pcaps) and the
imbalance: max over live members of realised share / configured share (1.0 is perfect;
for equal weights it is max/mean)."""
from __future__ import annotations

import os
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


def set_flow_counts(cfg: Config, groups: dict, counts: dict) -> None:
    """Write flows per member ({(group index, member slot): flows}) and the flow
    imbalance into the summary's groups."""
    for g in cfg.groups:
        st = groups[g.name]
        per_member = [counts.get((g.index, i), 0) for i in range(len(st["members"]))]
        for m, c in zip(st["members"], per_member):
            m["flows"] = c
        st["flows"] = sum(per_member)
        st["imbalance_flows"] = round(imbalance(per_member,
                                                [m["weight"] for m in st["members"]]), 4)


def table_flow_counts(cfg: Config, groups: dict, flows: list[dict],
                      counters: dict) -> Optional[dict]:
    """Flows per member from the flow tables ({(group index, member slot): flows}), or
    None when the tables do not account for every packet a member carried.

    They do when, for every member, the packets of the entries pinned to it add up to
    its packet counter (so no packet went out through it without an entry: packet-mode
    ports, non-first fragments, protocols without ports, a full table with `on_full:
    hash`, labelled traffic), no entry was deleted or aged (its packets would be
    missing) or re-hashed to another member, and no port has fat-flow rules (an
    aggregate entry stands for many 5-tuples, and the figure counts 5-tuples). Then the
    distinct 5-tuples of those entries are exactly the flows a scan of the outputs
    finds (add_flow_counts): each entry's packets left on its member's next hop. ICMP
    entries keep the type as destination port; flow_of reads 0 there, so it is 0 here."""
    if any(p.fat_flows for p in cfg.ports) or any(
            counters.get(k) for k in ("flow_deleted", "flow_aged", "flow_rehashed",
                                      "flow_table_full")):
        return None
    carried = defaultdict(int)
    seen = defaultdict(set)
    for f in flows:
        g, m = f["group"], f["member"]
        if g is None or m is None:
            continue
        carried[(g, m)] += f["packets"]
        icmp = f["proto"] == (ICMP if f["family"] == 4 else ICMPV6)
        seen[(g, m)].add((f["family"], f["src"], f["dst"], f["proto"], f["sport"],
                          0 if icmp else f["dport"]))
    for g in cfg.groups:
        for i, m in enumerate(groups[g.name]["members"]):
            if carried.get((g.index, i), 0) != m["packets"]:
                return None
    return {k: len(v) for k, v in seen.items()}


SCAN_CHUNK = 1 << 20                    # records per C call (48 bytes of key each)


def add_flow_counts(cfg: Config, groups: dict, out_dir: str) -> None:
    """Count distinct flows per member from DIR/<port>.pcap (frames leave on the member's
    next hop: egress port + destination MAC, and their destination routes to the group).
    The frames' keys are read in C (dataplane._pcapscan.flow_keys, flow_of's rules),
    deduplicated with numpy; only each distinct destination is looked up here. A signal
    handler that raises KeyboardInterrupt cuts it short between chunks."""
    import mmap

    import numpy as np

    from . import _pcapscan
    if not cfg.groups:
        return
    by_hop = defaultdict(list)                 # (port index, dst mac) → [(group, member)]
    for g in cfg.groups:
        for i, m in enumerate(g.members):
            nh = cfg.nexthops[m.nexthop_index]
            if nh.mac is not None:     # a MAC resolved at run time is not known here
                by_hop[(nh.port_index, nh.mac)].append((g.index, i))
    lpms = None
    routed: dict[bytes, set] = {}             # (family + destination) → groups it routes to
    flows = defaultdict(set)
    scanned = 0
    for p in cfg.ports:
        path = Path(out_dir) / f"{p.name}.pcap"
        if not path.exists():
            continue
        macs = {int.from_bytes(mac + b"\0\0", "little"): cands
                for (port, mac), cands in by_hop.items() if port == p.index}
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size <= 24:
                continue
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                big = buf[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
                off = 24
                while off < len(buf):
                    keys, off = _pcapscan.flow_keys(buf, big, off, SCAN_CHUNK)
                    if not len(keys):
                        break
                    scanned += len(keys)
                    if scanned > MAX_FLOW_SCAN:
                        return
                    if not macs:
                        continue
                    mac = np.zeros((len(keys), 8), np.uint8)
                    mac[:, :6] = keys[:, :6]
                    mac = mac.view("<u8").ravel()
                    for value, cands in macs.items():
                        rows = keys[(mac == value) & (keys[:, 6] == 1), 7:46]
                        if not len(rows):
                            continue
                        distinct = np.unique(np.ascontiguousarray(rows).view(
                            np.dtype((np.void, rows.shape[1]))).ravel()).tolist()
                        for key in distinct:
                            dst = key[0:1] + key[17:33]
                            hit = routed.get(dst)
                            if hit is None:
                                if lpms is None:
                                    lpms = vrf_tables(cfg.vrfs)
                                family = key[0]
                                addr = key[17:21] if family == 4 else key[17:33]
                                hit = routed[dst] = {
                                    r.via_index for t in lpms
                                    for r in [t[family].lookup(addr)] if r and r.via_group}
                            for gi, mi in cands:
                                if gi in hit:
                                    flows[(gi, mi)].add(key)
    set_flow_counts(cfg, groups, {k: len(v) for k, v in flows.items()})
