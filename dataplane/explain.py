"""`dataplane explain`: how one flow is routed and load-shared, step by step.

The software version of a switch's `show load-balance destination`: the route matched,
the hash fields used, the key bytes, seed, CRC, finalized hash, bucket and member. The
hash is computed by the C code of the packet path (dataplane._hashing) and checked
against the pure-Python reference; a disagreement is reported, never hidden.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Optional

from . import ecmp, hashing
from .config.model import Config
from .lpm import Lpm

PROTOS = {"icmp": 1, "tcp": 6, "udp": 17, "icmpv6": 58, "sctp": 132}


@dataclass
class Explanation:
    vrf: str
    route: Optional[str] = None
    via: Optional[str] = None
    group: Optional[str] = None
    fields: list[str] = field(default_factory=list)
    symmetric: bool = False
    key: str = ""
    seed: int = 0
    crc: int = 0
    hash: int = 0
    buckets: int = 0
    bucket: int = 0
    member: Optional[int] = None
    nexthop: Optional[str] = None
    port: Optional[str] = None
    mac: Optional[str] = None
    reference_agrees: bool = True
    entropy_label: int = 0
    udp_source_port: int = 0

    def rows(self) -> list[tuple[str, str]]:
        r = [("vrf", self.vrf), ("route", self.route or "no route")]
        if self.route is None:
            return r
        r.append(("via", self.via))
        if self.group:
            r += [("group", self.group),
                  ("hash fields", ", ".join(self.fields) + (" (symmetric)" if self.symmetric
                                                             else "")),
                  ("key", self.key), ("seed", f"0x{self.seed:08x}"),
                  ("crc32c", f"0x{self.crc:08x}"), ("hash", f"0x{self.hash:08x}"),
                  ("bucket", f"{self.bucket} of {self.buckets}"),
                  ("member", str(self.member)),
                  ("entropy label", str(self.entropy_label)),
                  ("mpls-udp source port", str(self.udp_source_port)),
                  ("reference model", "agrees" if self.reference_agrees else "DISAGREES")]
        r += [("next hop", self.nexthop), ("egress port", self.port), ("dst mac", self.mac)]
        return r


def explain(cfg: Config, src: str, dst: str, proto: int = 6, sport: int = 0, dport: int = 0,
            in_port: Optional[str] = None, vrf: Optional[str] = None,
            flow_label: int = 0) -> Explanation:
    from . import _hashing
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version != d.version:
        raise ValueError(f"{src} and {dst} are not the same address family")
    port = cfg.port(in_port) if in_port else cfg.ports[0]
    vrf_name = vrf or port.vrf or cfg.vrfs[0].name
    v = cfg.vrf(vrf_name)
    out = Explanation(vrf=vrf_name, seed=cfg.node.seed)
    lpm = Lpm(32 if d.version == 4 else 128)
    for r in v.routes:
        if r.prefix.version == d.version:
            lpm.add(r)
    route = lpm.lookup(d.packed)
    if route is None:
        return out
    out.route, out.via = str(route.prefix), route.via
    nh_index = route.via_index
    if route.via_group:
        g = cfg.groups[route.via_index]
        mask = hashing.field_mask(g.hash.fields, g.hash.symmetric)
        args = (d.version, s.packed, d.packed, proto, sport, dport, port.index, flow_label, mask)
        key, out.crc, out.hash = _hashing.explain(*args, cfg.node.seed)
        ref = hashing.explain(*args, cfg.node.seed)
        out.reference_agrees = (ref.key, ref.crc, ref.hash) == (key, out.crc, out.hash)
        out.group, out.fields, out.symmetric = g.name, list(g.hash.fields), g.hash.symmetric
        out.key, out.buckets = key.hex(), g.buckets
        out.entropy_label = hashing.entropy_label(out.hash)
        out.udp_source_port = hashing.udp_source_port(out.hash)
        table = ecmp.build_or_none([m.weight for m in g.members], g.buckets)
        out.bucket = hashing.bucket_of(out.hash, g.buckets)
        if table is None:
            out.nexthop = "none: every member drained"
            return out
        out.member = int(table[out.bucket])
        nh_index = g.members[out.member].nexthop_index
    nh = cfg.nexthops[nh_index]
    out.nexthop, out.port = nh.name, nh.port
    out.mac = nh.mac.hex(":") if nh.mac is not None else f"resolved by ARP/ND for {nh.ip}"
    return out
