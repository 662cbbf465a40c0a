"""Reference of pyx/fatflow.pxd: the flow key of a packet, its hash, fat-flow masking."""
# docs/flow-table.md §1-§3, SPEC §5.
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Optional

from .. import hashing
from ..config.model import FatFlowRule, IPNetwork, Port
from .parse import ICMP, ICMPV6, Parsed

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


def flow_key_hash(k: FlowKey, in_port: int, flow_label: int, mask: int, seed: int) -> int:
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
