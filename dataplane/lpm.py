"""Longest-prefix match in pure Python, for the control-plane tools (`explain`, the replay
summary) and the reference model: a dict per prefix length, probed longest first."""
from __future__ import annotations

from typing import Optional

from .config.model import Route, Vrf


class Lpm:
    """Longest-prefix match over one VRF and family: {prefix length: {network: route}}."""

    def __init__(self, bits: int):
        self.bits = bits
        self.by_len: dict[int, dict[int, Route]] = {}

    def add(self, route: Route) -> None:
        # a later duplicate replaces an earlier one, as rte_lpm_add does
        net = route.prefix
        self.by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = route

    def lookup(self, addr: bytes) -> Optional[Route]:
        a = int.from_bytes(addr, "big")
        for plen in sorted(self.by_len, reverse=True):
            hit = self.by_len[plen].get(a >> (self.bits - plen) << (self.bits - plen))
            if hit is not None:
                return hit
        return None


def vrf_tables(vrfs: list[Vrf]) -> list[dict[int, Lpm]]:
    """One {4: Lpm, 6: Lpm} per VRF, indexed like `vrfs`, every route added in order."""
    tables = []
    for vrf in vrfs:
        t = {4: Lpm(32), 6: Lpm(128)}
        for route in vrf.routes:
            t[route.prefix.version].add(route)
        tables.append(t)
    return tables
