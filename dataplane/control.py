"""Changes to a Core's tables while its workers forward (SPEC §10, docs/workers.md).

Each change is compiled by dataplane/config/compile.py, then published by the Core as a
new table version (one atomic pointer store; the old version is freed after every worker
passed a quiescent state). This is the API the control socket calls.
"""
from __future__ import annotations

import ipaddress

from .config import compile as compiler
from .config.model import Config
from .limits import NH_GROUP


class Control:
    def __init__(self, core, cfg: Config, tables: compiler.Compiled):
        self.core, self.cfg, self.tables = core, cfg, tables

    @classmethod
    def open(cls, cfg: Config, workers: int = 1, drain_us: int = 100) -> "Control":
        """Compile cfg and load it into a new Core (EAL and the mbuf pool must exist)."""
        from . import _core
        tables = compiler.compile_config(cfg)
        return cls(_core.Core(tables, workers=workers, drain_us=drain_us), cfg, tables)

    # ---------------------------------------------------------------- groups

    def update_group(self, index: int, members) -> int:
        """Group `index` gets members[i] = (next-hop index, weight, present) for member
        slot i (slots keep their index; weight 0 drains; present False removes: its
        pinned flows are re-hashed). The bucket table moves the fewest buckets. The
        published version number."""
        if not 0 <= index < len(self.cfg.groups):
            raise ValueError(f"no group {index}")
        members = list(members)
        if len(members) < len(self.tables.groups[index].member_nh):
            raise ValueError("update_group: member slots cannot be taken away; "
                             "mark a removed member present=False")
        if any(not 0 <= nh < self.core.nexthop_count for nh, _, _ in members):
            raise ValueError("update_group: no such next hop")
        g = compiler.group_table(self.cfg, index, members,
                                 self.tables.group_buckets.get(index))
        self.core.set_group(g)
        self.tables.groups[index] = g
        self.tables.group_buckets[index] = g.buckets
        return self.core.version

    def group_table(self, index: int):
        t = self.tables.group_buckets.get(index)
        return None if t is None else t.copy()

    def add_nexthops(self, nexthops: list) -> int:
        """Append compiled next hops (compile.NextHopTable), published as one version."""
        self.core.add_nexthops(nexthops)
        self.tables.nexthops += nexthops
        return self.core.version

    # ---------------------------------------------------------------- routes

    def via_id(self, via: str) -> int:
        """The next-hop id of a next hop or group name (a route's `via`)."""
        for n in self.cfg.nexthops:
            if n.name == via:
                return n.index
        for g in self.cfg.groups:
            if g.name == via:
                return g.index | NH_GROUP
        raise ValueError(f"no next hop or group named {via!r}")

    def vrf_index(self, vrf) -> int:
        if isinstance(vrf, int):
            if not 0 <= vrf < len(self.cfg.vrfs):
                raise ValueError(f"no vrf {vrf}")
            return vrf
        for v in self.cfg.vrfs:
            if v.name == vrf:
                return v.index
        raise ValueError(f"no vrf named {vrf!r}")

    def routes(self, vrf) -> dict:
        """A VRF's routes, {ip_network: next-hop id}."""
        return self.tables.routes[self.vrf_index(vrf)].as_dict()

    def set_routes(self, vrf, routes: dict) -> int:
        """Replace a VRF's routes ({ip_network: next-hop id}); the published version."""
        i = self.vrf_index(vrf)
        columns = compiler.RouteColumns.from_dict(routes)
        self.core.set_routes(i, columns)
        self.tables.routes[i] = columns
        return self.core.version

    def apply(self, change: dict) -> int:
        """One change as the control plane sends it:
        {"op": "group", "group": index, "members": [(nh index, weight, present)]},
        {"op": "route_add", "vrf": name or index, "prefix": "10.0.0.0/8", "via": name},
        {"op": "route_del", "vrf": name or index, "prefix": "10.0.0.0/8"}.
        Each is one published version; the reply is its number."""
        op = change.get("op")
        if op == "group":
            return self.update_group(change["group"], change["members"])
        if op in ("route_add", "route_del"):
            prefix = ipaddress.ip_network(change["prefix"])
            routes = self.routes(change["vrf"])
            if op == "route_add":
                routes[prefix] = self.via_id(change["via"])
            elif routes.pop(prefix, None) is None:
                raise ValueError(f"no route {prefix} in vrf {change['vrf']}")
            return self.set_routes(change["vrf"], routes)
        raise ValueError(f"unknown change {op!r}")
