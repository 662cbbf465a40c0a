"""Live changes to a running forwarder (SPEC §10, docs/control.md §3).

Every change is made to the running configuration *document*: `group ... add|remove|weight`
and `route add|del` edit a copy of it, `reload` replaces it. The new document goes through
the configuration validator (the same code and messages as `dataplane check`), then the
difference to the running configuration is computed: what can change live (group
members and weights, routes of existing VRFs, next hops added) is compiled and published
RCU-style (dataplane/control.py); anything else is refused with the reason, and nothing
of that change is applied.

Indexes stay stable: flow entries pin next-hop ids, group ids and member slots, so a new
document's names are mapped onto the running index space (a new next hop is appended; a
group member that disappears keeps its slot, marked removed).
"""
from __future__ import annotations

import copy
import ipaddress
import threading

import yaml

from .config import ConfigError, load_text
from .config.compile import nexthop_table, routes_of
from .config.model import Config
from .config.routes import expand_runs
from .limits import NH_GROUP


class ChangeError(ValueError):
    """A change that was refused; `errors` lists every reason (validator lines)."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors))
        self.errors = errors


# sections that cannot change while running, and why
FIXED = {
    "node": "the node's name, seed and tunnel address are compiled into every worker",
    "eal": "EAL starts once per process",
    "ports": "ports are DPDK devices configured at start",
    "flow_table": "flow tables are allocated at start",
    "mpls": "the LFIB cannot change live in this version",
    "pseudowires": "pseudowires cannot change live in this version",
}


class Live:
    """The running configuration of a Forwarder and the changes made to it."""

    def __init__(self, fw):
        self.fw = fw
        self.cfg: Config = fw.cfg
        self._doc: dict | None = None     # the document, made on the first change
        self.lock = threading.Lock()          # one change at a time
        self.changes = 0
        # running group member slots: [(next-hop name, weight, present)]
        self.slots = {g.name: [(m.nexthop, m.weight, True) for m in g.members]
                      for g in self.cfg.groups}
        self.nh_index = {n.name: n.index for n in self.cfg.nexthops}

    @property
    def doc(self) -> dict:
        """The running configuration document, as YAML alone reads it: route runs
        (config/routes.py) expanded into {prefix, via} items, on first use (a million
        routes make a million dicts, which a forwarder that is never changed live need
        not hold)."""
        if self._doc is None:
            self._doc = expand_runs(self.cfg.raw)
        return self._doc

    @doc.setter
    def doc(self, value: dict) -> None:
        self._doc = value

    def members(self) -> dict:
        """{group: [(next hop, weight)]} per member slot as running (a removed member:
        weight 0), for the summaries."""
        return {g: [(nh, w if present else 0) for nh, w, present in slots]
                for g, slots in self.slots.items()}

    # ---------------------------------------------------------------- commands

    def group(self, name: str, action: str, nexthop: str, weight=None) -> dict:
        doc = copy.deepcopy(self.doc)
        groups = doc.get("groups") or {}
        if name not in groups:
            raise ChangeError([f"no group {name!r}; groups: {', '.join(groups) or 'none'}"])
        members = groups[name].setdefault("members", [])
        names = [m.get("nexthop") if isinstance(m, dict) else None for m in members]
        if action == "add":
            if nexthop in names:
                raise ChangeError([f"group {name}: {nexthop} is already a member"])
            members.append({"nexthop": nexthop, "weight": 1 if weight is None else weight})
        elif action in ("remove", "weight"):
            if nexthop not in names:
                raise ChangeError([f"group {name}: {nexthop} is not a member"])
            i = names.index(nexthop)
            if action == "remove":
                del members[i]
            else:
                if weight is None:
                    raise ChangeError([f"group {name} weight {nexthop}: a weight is needed"])
                members[i]["weight"] = weight
        else:
            raise ChangeError([f"group action must be add, remove or weight, got {action!r}"])
        return self.apply(doc)

    def route(self, action: str, vrf: str, prefix: str, via=None) -> dict:
        doc = copy.deepcopy(self.doc)
        vrfs = doc.setdefault("vrfs", {}) or {}
        if vrf not in vrfs:
            raise ChangeError([f"no vrf {vrf!r}; vrfs: {', '.join(vrfs) or 'none'}"])
        routes = vrfs[vrf].setdefault("routes", []) if vrfs[vrf] is not None else []
        try:
            net = ipaddress.ip_network(prefix, strict=False)
        except ValueError:
            net = None
        same = [r for r in routes if isinstance(r, dict) and _same_prefix(r.get("prefix"), net)]
        if action == "add":
            if via is None:
                raise ChangeError(["route add: `via` is needed"])
            for r in same:
                routes.remove(r)
            routes.append({"prefix": prefix, "via": via})
        elif action == "del":
            if not same:
                raise ChangeError([f"no route {prefix} in vrf {vrf}"])
            for r in same:
                routes.remove(r)
        else:
            raise ChangeError([f"route action must be add or del, got {action!r}"])
        return self.apply(doc)

    def reload(self, text: str, path: str) -> dict:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ChangeError([f"{path}: not YAML: {e}"]) from None
        return self.apply(doc, path)

    # ---------------------------------------------------------------- applying

    def apply(self, doc, path: str | None = None) -> dict:
        """Validate `doc`, refuse what cannot change live, publish the rest."""
        with self.lock:
            try:
                new = load_text(yaml.safe_dump(doc, sort_keys=False), path or self.cfg.path)
            except ConfigError as e:
                raise ChangeError(e.errors) from None
            plan = self._plan(new)
            done = self._execute(plan)
            self.cfg = new           # the running configuration (indexes: self.nh_index)
            self.doc = copy.deepcopy(doc)
            self.changes += 1
            return {"version": self.fw.core.version, "applied": done}

    def _plan(self, new: Config) -> dict:
        old, errors = self.cfg, []
        for key, why in FIXED.items():
            if _norm(old.raw.get(key)) != _norm(new.raw.get(key)):
                errors.append(f"{key}: cannot change live ({why})")
        if [v.name for v in old.vrfs] != [v.name for v in new.vrfs]:
            errors.append("vrfs: VRFs cannot be added or removed live (per-port state)")
        if [g.name for g in old.groups] != [g.name for g in new.groups]:
            errors.append("groups: groups cannot be added or removed live (per-worker "
                          "counters are sized at start)")
        old_nh = {n.name: n for n in old.nexthops}
        new_nh = [n for n in new.nexthops if n.name not in old_nh]
        for n in new.nexthops:
            o = old_nh.get(n.name)
            if o is not None and _nh_key(o) != _nh_key(n):
                errors.append(f"nexthops.{n.name}: a next hop cannot change live (flows "
                              "pin it); add a new one and move the routes or members")
        for n in new_nh:
            if n.mac is None:
                errors.append(f"nexthops.{n.name}: a next hop added live needs a mac (its "
                              "ARP/ND resolution is set up at start)")
        gone = set(old_nh) - {n.name for n in new.nexthops}
        for name in sorted(gone):
            errors.append(f"nexthops.{name}: a next hop cannot be removed live")
        for g in new.groups:
            og = next(x for x in old.groups if x.name == g.name)
            if (g.buckets, g.hash) != (og.buckets, og.hash):
                errors.append(f"groups.{g.name}: buckets and hash cannot change live")
        if errors:
            raise ChangeError(errors)
        # the running index space: existing names keep their index, new next hops follow
        index = dict(self.nh_index)
        for n in new_nh:
            index[n.name] = len(index)
        groups = {}
        for g in new.groups:
            slots = list(self.slots[g.name])
            want = {m.nexthop: m.weight for m in g.members}
            slots = [(nh, want.get(nh, w), nh in want) for nh, w, _ in slots]
            slots += [(m.nexthop, m.weight, True) for m in g.members
                      if m.nexthop not in {s[0] for s in slots}]
            if len(slots) > len(self.slots[g.name]) and len(slots) > 64:
                raise ChangeError([f"groups.{g.name}: more than 64 member slots (removed "
                                   "members keep theirs until restart)"])
            if slots != self.slots[g.name]:
                groups[g.name] = slots
        routes = {}
        gindex = {g.name: g.index for g in old.groups}
        for v in new.vrfs:
            ov = next(x for x in old.vrfs if x.name == v.name)
            if _routes(ov) != _routes(v):
                routes[ov.index] = {r.prefix: (gindex[r.via] | NH_GROUP) if r.via_group
                                    else index[r.via] for r in v.routes}
        return {"cfg": new, "nexthops": new_nh, "index": index, "groups": groups,
                "routes": routes}

    def _execute(self, plan) -> list[str]:
        fw, done = self.fw, []
        control = fw.control
        if plan["nexthops"]:
            tables = [nexthop_table(plan["cfg"], n) for n in plan["nexthops"]]
            control.add_nexthops(tables)
            for n in plan["nexthops"]:
                self.nh_index[n.name] = plan["index"][n.name]
            done.append("nexthops +" + ",".join(n.name for n in plan["nexthops"]))
        for name, slots in plan["groups"].items():
            gi = next(g.index for g in self.cfg.groups if g.name == name)
            control.update_group(gi, [(plan["index"][nh], w, present)
                                      for nh, w, present in slots])
            self.slots[name] = slots
            done.append(f"group {name}")
        for vi, routes in plan["routes"].items():
            control.set_routes(vi, routes)
            done.append(f"routes of vrf {self.cfg.vrfs[vi].name}")
        return done


def _same_prefix(text, net) -> bool:
    try:
        return net is not None and ipaddress.ip_network(text, strict=False) == net
    except (TypeError, ValueError):
        return False


def _norm(value):
    return yaml.safe_dump(value, sort_keys=True)


def _nh_key(n) -> tuple:
    return (n.port, n.mac, tuple(n.labels), n.entropy, n.erld,
            None if n.tunnel is None else (n.tunnel.type, n.tunnel.remote))


def _routes(v) -> dict:
    return {r.prefix: (r.via_group, r.via) for r in v.routes}


__all__ = ["ChangeError", "Live", "routes_of"]
