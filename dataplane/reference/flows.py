"""Flow stage of the reference model: flow key, fat-flow masking, the flow table, TCP state
and aging (docs/flow-table.md, SPEC §4 and §5).

The oracle for pyx/flow.pxd and pyx/fatflow.pxd. The table is a dict keyed by the masked
flow key; capacity, TCP state, aging and counters follow the contract exactly, so the
differential tests can compare `flows()` and the counters with the Cython core's.
"""
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, replace
from typing import Optional

from .. import hashing
from ..config.model import FatFlowRule, FlowTable as FlowTableSpec, IPNetwork, Port
from .parse import ICMP, ICMPV6, TCP, Parsed

TCP_FIN, TCP_RST = 0x01, 0x04
ICMP_OF = {4: ICMP, 6: ICMPV6}          # the ICMP the parser reads in each family


@dataclass(frozen=True)
class FlowKey:
    """VRF + family + addresses + protocol + ports (docs/flow-table.md §1). Addresses are
    4 or 16 bytes; ports are host-order ints (ICMP: sport = echo id or 0, dport = type)."""
    vrf: int
    family: int
    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int

    @property
    def icmp(self) -> bool:
        return self.proto == ICMP_OF[self.family]

    def reversed(self) -> FlowKey:
        return replace(self, src=self.dst, dst=self.src, sport=self.dport, dport=self.sport)

    def packed(self) -> bytes:
        """The 48 bytes the core's rte_hash stores (docs/flow-table.md §1)."""
        return (self.src.ljust(16, b"\0") + self.dst.ljust(16, b"\0")
                + self.sport.to_bytes(2, "big") + self.dport.to_bytes(2, "big")
                + self.vrf.to_bytes(2, "big") + bytes([self.proto, self.family]) + bytes(8))


def flow_key(p: Parsed, vrf: int) -> FlowKey:
    """The key of a parsed packet (before fat-flow masking)."""
    if p.proto == ICMP_OF[p.family]:
        sport, dport = p.icmp_id, p.icmp_type       # both 0 when L4 was not parsed
    else:
        sport, dport = p.sport, p.dport
    return FlowKey(vrf, p.family, p.src, p.dst, p.proto, sport, dport)


def key_hash(k: FlowKey, in_port: int, flow_label: int, mask: int, seed: int) -> int:
    """docs/flow-table.md §3: the hash of docs/hashing.md from the key; ICMP: the key's
    source port (echo id, or 0) stands in for both hash ports."""
    sport, dport = (k.sport, k.sport) if k.icmp else (k.sport, k.dport)
    return hashing.flow_hash(k.family, k.src, k.dst, k.proto, sport, dport, in_port,
                             flow_label, mask, seed)


# ---- fat flows -----------------------------------------------------------------------

def _keep_bits(addr: bytes, plen: int) -> bytes:
    bits = len(addr) * 8
    plen = min(plen, bits)
    n = int.from_bytes(addr, "big")
    return (n >> (bits - plen) << (bits - plen)).to_bytes(len(addr), "big")


class FatFlows:
    """One ingress port's fat-flow rules (docs/flow-table.md §2)."""

    def __init__(self, rules: list[FatFlowRule], exclude: list[IPNetwork]):
        self.rules = list(rules)
        self.exclude = list(exclude)

    @classmethod
    def of_port(cls, port: Port) -> FatFlows:
        return cls(port.fat_flows, port.fat_flow_exclude)

    def excluded(self, k: FlowKey) -> bool:
        src, dst = ipaddress.ip_address(k.src), ipaddress.ip_address(k.dst)
        return any(net.version == k.family and (src in net or dst in net)
                   for net in self.exclude)

    def rule_for(self, k: FlowKey) -> Optional[FatFlowRule]:
        """The rule that applies to key k, or None (no rule, or an excluded address)."""
        if not self.rules or self.excluded(k):
            return None
        if k.icmp:
            candidates = [r for r in self.rules if r.proto == ICMP]
        elif k.proto == ICMP:                # ICMP (1) inside IPv6 is not ICMP here
            candidates = []
        else:
            candidates = [r for r in self.rules if r.proto == k.proto]
        specific = [r for r in candidates
                    if r.port and not k.icmp and r.port in (k.sport, k.dport)]
        if specific:
            return min(specific, key=lambda r: r.port)     # lower port wins
        return next((r for r in candidates if r.port == 0), None)

    def mask(self, k: FlowKey) -> tuple[FlowKey, bool]:
        """(masked key, whether a rule applied: the key then names an aggregate)."""
        rule = self.rule_for(k)
        if rule is None:
            return k, False
        if rule.port:
            sport = k.sport if k.sport == rule.port else 0
            dport = k.dport if k.dport == rule.port else 0
        else:
            sport = dport = 0
        zero = bytes(len(k.src))
        src = zero if rule.ignore == "src" else k.src
        dst = zero if rule.ignore == "dst" else k.dst
        if rule.src_prefix_len is not None:
            src = _keep_bits(src, rule.src_prefix_len)
        if rule.dst_prefix_len is not None:
            dst = _keep_bits(dst, rule.dst_prefix_len)
        return replace(k, src=src, dst=dst, sport=sport, dport=dport), True


# ---- the flow table ------------------------------------------------------------------

@dataclass
class FlowEntry:
    in_port: int                        # the port whose packet created the entry
    nh_id: int                          # route via a next hop: its index
    group: Optional[int]                # route via a group: its index
    member: Optional[int]               # ... and the pinned member slot
    hash: int                           # the hash the member was chosen with (entropy)
    first_seen: float
    last_seen: float
    fat: bool = False                   # an aggregate: created by a fat-flow-masked packet
    packets: int = 0
    bytes: int = 0
    fin: bool = False                   # a FIN was sent in this direction
    rst: bool = False                   # a RST was seen in this direction
    closing_since: Optional[float] = None


COUNTERS = ("flow_created", "flow_deleted", "flow_aged", "flow_rehashed", "flow_table_full")


class FlowTable:
    """One worker's table: exactly `spec.entries` flows fit."""

    def __init__(self, spec: FlowTableSpec):
        self.spec = spec
        self.entries: dict[FlowKey, FlowEntry] = {}
        self.counters = dict.fromkeys(COUNTERS, 0)
        self.clock: Optional[float] = None

    def now(self) -> float:
        return time.monotonic() if self.clock is None else self.clock

    @property
    def full(self) -> bool:
        return len(self.entries) >= self.spec.entries

    def get(self, k: FlowKey) -> Optional[FlowEntry]:
        return self.entries.get(k)

    def insert(self, k: FlowKey, e: FlowEntry) -> None:
        assert not self.full and k not in self.entries
        self.entries[k] = e
        self.counters["flow_created"] += 1

    def account(self, k: FlowKey, e: FlowEntry, length: int, tcp_flags: int,
                now: float) -> None:
        """A packet of the entry: counters, last seen, TCP state (§5)."""
        e.packets += 1
        e.bytes += length
        e.last_seen = now
        if k.proto == TCP and tcp_flags & (TCP_FIN | TCP_RST) and not e.fat:
            self.tcp(k, e, tcp_flags, now)

    def tcp(self, k: FlowKey, e: FlowEntry, flags: int, now: float) -> None:
        """FIN both ways or a RST either way: both directions closing. Aggregates (fat
        flows) outlive their sessions: they keep no TCP state and are never marked."""
        if flags & TCP_FIN:
            e.fin = True
        if flags & TCP_RST:
            e.rst = True
        r = self.entries.get(k.reversed())
        if r is not None and r.fat:
            r = None
        if e.rst or (r is not None and (r.rst or (e.fin and r.fin))):
            if e.closing_since is None:
                e.closing_since = now
            if r is not None and r.closing_since is None:
                r.closing_since = now

    def age_all(self) -> None:
        now = self.now()
        for k, e in list(self.entries.items()):
            if now - e.last_seen > self.spec.idle_timeout or (
                    e.closing_since is not None
                    and now - e.closing_since > self.spec.tcp_close_timeout):
                del self.entries[k]
                self.counters["flow_aged"] += 1
                self.counters["flow_deleted"] += 1

    def flush(self) -> None:
        self.counters["flow_deleted"] += len(self.entries)
        self.entries.clear()

    def listing(self, nexthop_of_member) -> list[dict]:
        """Every entry as the dict `Core.flows()` returns; `nexthop_of_member(group,
        member)` gives a group entry's current next hop."""
        out = []
        for k, e in self.entries.items():
            nh = e.nh_id if e.group is None else nexthop_of_member(e.group, e.member)
            out.append({
                "vrf": k.vrf, "family": k.family,
                "src": str(ipaddress.ip_address(k.src)),
                "dst": str(ipaddress.ip_address(k.dst)),
                "proto": k.proto, "sport": k.sport, "dport": k.dport,
                "in_port": e.in_port, "nh_id": nh, "group": e.group, "member": e.member,
                "hash": e.hash, "packets": e.packets, "bytes": e.bytes,
                "first_seen": e.first_seen, "last_seen": e.last_seen,
                "fin": e.fin, "rst": e.rst, "closing": e.closing_since is not None})
        return out

    def counter_values(self) -> dict[str, int]:
        return dict(self.counters, flows_active=len(self.entries))
