"""Route and rewrite stages of the reference model: docs/packet-path.md §2.9-§5.

The oracle the Cython core is diffed against, byte for byte and counter for counter.
Clarity over speed: LPM is a dict per prefix length, probed longest first.
"""
from __future__ import annotations

from typing import Optional

from ..config.model import Config, Group, NextHop, Route
from ..drops import DROP_REASONS
from .parse import Parsed, parse


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


def select_member(group: Group, parsed: Parsed) -> Optional[int]:
    """Next hop index for a packet routed to `group`: the first member not drained.

    Placeholder for ECMP (SPEC §3/§6); None when every member is drained.
    """
    return next((m.nexthop_index for m in group.members if m.weight > 0), None)


def checksum_update(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') in one's complement (end-around carry)."""
    s = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def rewrite(frame: bytes, p: Parsed, nh: NextHop, src_mac: bytes) -> bytes:
    """Untagged Ethernet toward `nh`, TTL / hop limit decremented; nothing else changes."""
    ip = bytearray(frame[p.l3:])                # IP packet plus any Ethernet padding
    if p.family == 4:
        old = ip[8] << 8 | ip[9]                # the 16-bit word TTL | protocol
        ip[8] -= 1
        hc = checksum_update(ip[10] << 8 | ip[11], old, ip[8] << 8 | ip[9])
        ip[10:12] = hc.to_bytes(2, "big")
        etype = b"\x08\x00"
    else:
        ip[7] -= 1
        etype = b"\x86\xdd"
    return nh.mac + src_mac + etype + bytes(ip)


class ReferenceForwarder:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.lpm = [{4: Lpm(32), 6: Lpm(128)} for _ in cfg.vrfs]
        for vrf in cfg.vrfs:
            for route in vrf.routes:
                self.lpm[vrf.index][route.prefix.version].add(route)
        zero = dict.fromkeys(("rx", "tx") + DROP_REASONS, 0)
        self._counters = [dict(zero) for _ in cfg.ports]

    def process(self, in_port: int, frames: list[bytes]) -> list[tuple[int, bytes]]:
        """Forward one burst received on `in_port`: (egress port, frame) in input order."""
        out = []
        rx = self._counters[in_port]
        for frame in frames:
            rx["rx"] += 1
            result = self.forward(in_port, frame)
            if isinstance(result, str):
                rx[result] += 1
            else:
                self._counters[result[0]]["tx"] += 1
                out.append(result)
        return out

    def forward(self, in_port: int, frame: bytes) -> tuple[int, bytes] | str:
        """(egress port, frame) or the drop reason."""
        port = self.cfg.ports[in_port]
        if port.vrf is None:                    # not an L3 port (pseudowire AC: later)
            return "unsupported"
        p = parse(frame, in_port)
        if p.drop:
            return p.drop
        nh = self.resolve(port.vrf_index, p)
        if nh is None:
            return "no_route"
        return nh.port_index, rewrite(frame, p, nh, self.cfg.ports[nh.port_index].mac)

    def resolve(self, vrf_index: int, p: Parsed) -> Optional[NextHop]:
        route = self.lpm[vrf_index][p.family].lookup(p.dst)
        if route is None:
            return None
        if not route.via_group:
            return self.cfg.nexthops[route.via_index]
        nh_index = select_member(self.cfg.groups[route.via_index], p)
        return None if nh_index is None else self.cfg.nexthops[nh_index]

    def counters(self) -> dict[str, dict[str, int]]:
        return {port.name: dict(c) for port, c in zip(self.cfg.ports, self._counters)}
