"""Reference of pyx/flow.pxd: the flow table, its TCP state, aging and counters."""
# docs/flow-table.md §4-§5, SPEC §4. A dict keyed by the masked flow key; capacity, TCP
# state, aging and counters follow the contract exactly, so the differential tests can
# compare `flows()` and the counters with the Cython core's.
from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass
from typing import Optional

from ..config.model import FlowTable as FlowTableSpec
from .fatflow import FlowKey
from .parse import TCP

TCP_FIN, TCP_RST = 0x01, 0x04


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
