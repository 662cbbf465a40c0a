"""Load the YAML configuration (SPEC §12), check all of it, and build the model.

Every problem is reported, not only the first, one line each:
``<file>: <path.in.document>: must be <rule>, got <value>``, where the path uses dots
for keys and ``[i]`` for list items. Checkers are small functions ``(ctx, value)``
that return the converted value, or BAD after recording an error at ``ctx``; a
record's spec maps each allowed key to ``(checker, default)``, with REQUIRED as the
default of a key that must be present.

mpls and pseudowires are compiled into Config.mpls and Config.pseudowires (and each
attachment circuit's Port.xconnect_index); a port's mirror into Port.mirror
(docs/mirroring.md). ``Config.raw`` keeps the whole document as parsed.

Virtual networks (docs/virtual-networks.md §1): `neighbors`, a VRF's forwarding, bridge
and gateway keys, a port's `bind` and `proxy_arp`, next hops without a mac. Once all of
it is valid, the next hops, groups and routes that `bind` and `allowed_address_pairs`
imply (config/vnet.py derive) are appended after the file's own, so no index moves.

Hostile documents (issue 18) end in errors, in bounded time: a value in a message is
cut to about 80 characters without building its whole repr (rules.short), aliases that
expand the document past a limit are refused before it is built (a "billion laughs"
bomb), an integer too long for Python to convert is a value like any other (HugeInt),
and list items that are not mappings are reported, not dereferenced. With --no-huge the
memory the LPM tables and the rest need in EAL is checked against eal.memory_mb
(config/memory.py); load(host=True) also checks the CPUs and memory of this host
(config/host.py).
"""
from __future__ import annotations

import ipaddress
import os
import re

import numpy as np
import yaml

from ..crc32c import crc32c
from ..limits import (MAX_FAT_EXCLUDE, MAX_GROUPS, MAX_MEMBERS, MAX_NEXTHOPS, MAX_PORTS,
                      MAX_ROUTES_PER_VRF, MAX_VRFS)
from .lcores import parse_lcores
from .routes import (NODES_PER_ROUTE, RUN_TAG, RouteRun, RouteTableBuilder, find_runs,
                     prefix_lengths, repeated, run_lines, runs_in_place)
from . import vnet
from .model import (AllowedPair, Analyzer, Bind, Config, Eal, FlowTable, Gateway, Group,
                    HashSpec, LfibRule, Member, Mirror, Mpls, Neighbors, NextHop, Node, Port,
                    Pseudowire, Route, RouteTable, StaticMac, Tunnel, Vrf)
from .rules import (BAD, BUCKETS, ConfigError, Ctx, EAL, FLOW_TABLE, HASH, LFIB_ACTIONS,
                    MAX_SWAP_LABELS, NODE_NAME_RE, REQUIRED, TUNNEL, HugeInt, _hint, _is_int,
                    boolean, devargs_checker, fat_flows, fields, integer, ip_address, label,
                    labels, list_of, name, named, named_like, one_of, prefix, record,
                    seconds, short, unicast_mac, unique)


# ---- virtual networks (docs/virtual-networks.md §1) ---------------------------------

FORWARDINGS = ("l3", "l2", "l2_l3")
MAX_GATEWAY_IPS = 16            # gateway.ip addresses of one VRF

NEIGHBORS = record({
    "reachable_time": (seconds, Neighbors.reachable_time),
    "retry": (seconds, Neighbors.retry),
    "queue": (integer(1, 64), Neighbors.queue)}, Neighbors)


def host_prefix(ctx, value):
    """A prefix, or a bare address as its /32 or /128 (bind.ip, AAP ip)."""
    if isinstance(value, str) and "/" not in value:
        try:
            return ipaddress.ip_network(value)
        except ValueError:
            return ctx.error("an IPv4 or IPv6 address or prefix", value)
    return prefix(ctx, value)


def _unicast(address) -> bool:
    return not (address.is_multicast or address.is_unspecified
                or address == ipaddress.IPv4Address("255.255.255.255"))


def unicast_ip(ctx, value):
    """A unicast IPv4 or IPv6 address (not multicast, unspecified nor broadcast)."""
    address = ip_address(ctx, value)
    if address is not BAD and not _unicast(address):
        return ctx.error("a unicast address", value)
    return address


def interface(ctx, value):
    """A unicast address with its prefix length, "10.9.0.1/24" (gateway.ip)."""
    rule = 'an IPv4 or IPv6 address with its prefix length, like "10.9.0.1/24"'
    if not (isinstance(value, str) and "/" in value):
        return ctx.error(rule, value)
    try:
        iface = ipaddress.ip_interface(value)
    except ValueError:
        return ctx.error(rule, value)
    if not _unicast(iface.ip):
        return ctx.error("a unicast address with its prefix length", value)
    return iface


def _with_routes(routes, more: list[Route], names: tuple[list[str], list[str]]):
    """A VRF's routes (a list or a RouteTable) with `more` after them; a RouteTable
    stays one (its columns extended, its names those of every next hop and group)."""
    if not isinstance(routes, RouteTable):
        return list(routes) + more
    if not more:
        routes.names = names
        return routes
    nets = [r.prefix for r in more]
    addrs = [int(n.network_address) for n in nets]
    return RouteTable(
        np.concatenate([routes.family, np.array([n.version for n in nets], np.uint8)]),
        np.concatenate([routes.hi, np.array([a >> 64 for a in addrs], np.uint64)]),
        np.concatenate([routes.lo, np.array([a & 0xFFFFFFFFFFFFFFFF for a in addrs],
                                            np.uint64)]),
        np.concatenate([routes.plen, np.array([n.prefixlen for n in nets], np.uint8)]),
        np.concatenate([routes.via_group, np.array([r.via_group for r in more], bool)]),
        np.concatenate([routes.via_index, np.array([r.via_index for r in more],
                                                   np.uint32)]),
        names)


_ABSENT = object()


class _Validator:
    def __init__(self, data: dict, file: str):
        self.errors: list[str] = []
        self.root = Ctx(file, self.errors)
        self.data = data
        # name -> index in file order, known before any section is checked so that
        # references can point forward; None when the section is unusable (its own
        # error is reported) and references into it are not checked.
        self.names = {
            "ports": self._port_names(data.get("ports", _ABSENT)),
            "vrfs": self._keys(data.get("vrfs", _ABSENT), {"default": 0}),
            "nexthops": self._keys(data.get("nexthops", _ABSENT), {}),
            "groups": self._keys(data.get("groups", _ABSENT), {}),
            "pseudowires": self._keys(data.get("pseudowires", _ABSENT), {}),
        }
        ports = data.get("ports")
        eal = data.get("eal")
        mbuf_size = eal.get("mbuf_size") if isinstance(eal, dict) else None
        if not (_is_int(mbuf_size) and 256 <= mbuf_size <= 65535):
            mbuf_size = Eal.mbuf_size
        self.devargs = devargs_checker(mbuf_size - 128)     # the mbuf's data room
        self.via = self.ref("a next hop or group", "nexthops", "groups")
        self.port_xconnect = {p["name"]: p.get("xconnect") for p in ports
                              if isinstance(p, dict) and isinstance(p.get("name"), str)
                              } if isinstance(ports, list) else {}
        # a port's VRF as written (None: an attachment circuit), for vrfs.X.macs[].port
        self.port_vrf = {p["name"]: None if p.get("xconnect") is not None
                         else p.get("vrf", "default") for p in ports
                         if isinstance(p, dict) and isinstance(p.get("name"), str)
                         } if isinstance(ports, list) else {}
        pseudowires = data.get("pseudowires")
        self.pw_ac_port = {k: pw.get("ac_port") for k, pw in pseudowires.items()
                           if isinstance(pw, dict)} if isinstance(pseudowires, dict) else {}

    @staticmethod
    def _keys(section, absent):
        if section is _ABSENT:
            return absent
        if section is None:
            return {}
        return {k: i for i, k in enumerate(section)} if isinstance(section, dict) else None

    @staticmethod
    def _port_names(ports):
        if not isinstance(ports, list):
            return None
        names = {}
        for i, p in enumerate(ports):
            if isinstance(p, dict) and isinstance(p.get("name"), str):
                names.setdefault(p["name"], i)
        return names

    def ref(self, rule: str, *sections: str):
        """A checker for a name that must be defined in one of `sections`."""
        def check(ctx, value):
            tables = [self.names[s] for s in sections]
            if any(t is None for t in tables) or (
                    isinstance(value, str) and any(value in t for t in tables)):
                return value
            defined = dict.fromkeys(n for t in tables for n in t)
            return ctx.error(f"{rule} defined under {' or '.join(sections)} "
                             f"({_hint(defined)})", value)
        return check

    def run(self, path: str) -> Config:
        top = fields(self.root, self.data, {
            "node": (self.node, REQUIRED),
            "eal": (EAL, Eal),
            "flow_table": (FLOW_TABLE, FlowTable),
            "ports": (self.ports, REQUIRED),
            "vrfs": (named(self.vrf, MAX_VRFS, "VRFs"), lambda: [Vrf("default", 0)]),
            "nexthops": (named(self.nexthop, MAX_NEXTHOPS, "nexthops"), list),
            "groups": (named(self.group, MAX_GROUPS, "groups"), list),
            "mpls": (self.mpls, None),
            "pseudowires": (named(self.pseudowire, 1 << 20, "pseudowires"), None),
            "neighbors": (NEIGHBORS, Neighbors),
        })
        if top is not BAD:
            self.cross_checks(top)
            self.derived_route_checks(top)
        if self.errors:
            raise ConfigError(self.errors)
        pseudowires = top["pseudowires"] or []
        for port in top["ports"]:
            if port.xconnect is not None:
                port.xconnect_index = self.names["pseudowires"][port.xconnect]
        cfg = Config(path=path, node=top["node"], ports=top["ports"], vrfs=top["vrfs"],
                     nexthops=top["nexthops"], groups=top["groups"],
                     flow_table=top["flow_table"], eal=top["eal"],
                     mpls=top["mpls"] or Mpls(), pseudowires=pseudowires,
                     neighbors=top["neighbors"], raw=self.data)
        self.add_derived(cfg)
        if self.errors:
            raise ConfigError(self.errors)
        self.memory_checks(cfg)
        if self.errors:
            raise ConfigError(self.errors)
        return cfg

    def derived_route_checks(self, top: dict) -> None:
        """A route the file writes in an l3 / l2_l3 VRF must not have a prefix that a
        port's bind.ip or allowed_address_pairs derives there."""
        ports, vrfs = top["ports"], top["vrfs"]
        if not isinstance(ports, list) or not isinstance(vrfs, list):
            return
        derived: dict[str, dict] = {}             # VRF name → {prefix: where}
        for i, port in enumerate(ports):
            if port is BAD or port.bind is None or not isinstance(port.vrf, str):
                continue
            here = derived.setdefault(port.vrf, {})
            for j, net in enumerate(port.bind.ip):
                here.setdefault(net, f"ports[{i}].bind.ip[{j}]")
            for j, pair in enumerate(port.bind.allowed_address_pairs):
                here.setdefault(pair.ip, f"ports[{i}].bind.allowed_address_pairs[{j}]")
        for vrf in vrfs:
            if vrf is BAD or vrf.forwarding not in vnet.ROUTED or vrf.routes is BAD \
                    or not derived.get(vrf.name):
                continue
            ours, routes = derived[vrf.name], vrf.routes
            if isinstance(routes, RouteTable):     # a million routes: one pass in numpy
                low = np.array([int(n.network_address) & 0xFFFFFFFFFFFFFFFF for n in ours],
                               np.uint64)
                plens = np.array([n.prefixlen for n in ours], np.uint8)
                near = np.flatnonzero(np.isin(routes.lo, low) & np.isin(routes.plen, plens)
                                      & (routes.family != 0))
                clashes = [k for k in near.tolist() if routes.prefix(k) in ours]
            else:
                clashes = [k for k, r in enumerate(routes) if r.prefix in ours]
            for k in clashes:
                net = routes.prefix(k) if isinstance(routes, RouteTable) else routes[k].prefix
                where = ours[net]
                self.root.at("vrfs").at(vrf.name).at("routes").at(k).at("prefix").error(
                    f"a prefix no port's bind routes ({where} has it)", str(net))

    def add_derived(self, cfg: Config) -> None:
        """Append what bind and allowed_address_pairs imply (config/vnet.py derive):
        implicit next hops, groups and routes; report what then exceeds a limit."""
        derived = vnet.derive(cfg)
        cfg.nexthops += derived.nexthops
        cfg.groups += derived.groups
        names = ([nh.name for nh in cfg.nexthops], [g.name for g in cfg.groups])
        for vrf in cfg.vrfs:
            vrf.routes = _with_routes(vrf.routes, derived.routes.get(vrf.index, []), names)
            more = len(derived.routes.get(vrf.index, ()))
            if more and len(vrf.routes) > MAX_ROUTES_PER_VRF:
                self.root.at("vrfs").at(vrf.name).at("routes").report(
                    f"must be at most {MAX_ROUTES_PER_VRF} routes with the {more} that its "
                    f"ports' bind derives, got {len(vrf.routes)} ({len(vrf.routes) - more} "
                    "in the file)")
        for key, what, items, most, more in (
                ("nexthops", "next hops", cfg.nexthops, MAX_NEXTHOPS, len(derived.nexthops)),
                ("groups", "groups", cfg.groups, MAX_GROUPS, len(derived.groups))):
            if more and len(items) > most:
                self.root.at(key).report(
                    f"must be at most {most} {what} with the {more} that the ports' bind "
                    f"derives, got {len(items)} ({len(items) - more} in the file)")

    def memory_checks(self, cfg: Config) -> None:
        """The LPM tables' limits, and (with --no-huge, where eal.memory_mb is all EAL
        has) the memory the configuration needs in EAL (config/memory.py)."""
        from . import memory
        for vrf in cfg.vrfs:
            n6 = len(prefix_lengths(vrf.routes)[1])
            if memory.lpm6_tbl8s(n6) > memory.LPM6_MAX_TBL8:
                most = memory.LPM6_MAX_TBL8 // memory.LPM6_TBL8_PER_ROUTE
                self.root.at("vrfs").at(vrf.name).at("routes").report(
                    f"must have at most {most} IPv6 routes (rte_lpm6 holds "
                    f"{memory.LPM6_MAX_TBL8} tbl8 groups, {memory.LPM6_TBL8_PER_ROUTE} "
                    f"per route), got {n6}")
        if self.errors or not cfg.eal.no_huge:
            return          # with huge pages EAL grows past -m: config/host.py checks
        try:
            workers = max(1, len(parse_lcores(cfg.eal.lcores)) - 1)
        except ValueError:
            workers = 1
        need = memory.need(cfg, workers)
        if need.eal_mb > cfg.eal.memory_mb:
            parts = ", ".join(f"{what} {-(-size // memory.MiB)} MiB"
                              for what, size, _ in need.eal)
            self.root.at("eal").at("memory_mb").report(
                f"must be at least {need.eal_mb} for this configuration ({parts}): raise "
                f"eal.memory_mb to {need.eal_mb}, got {cfg.eal.memory_mb}")

    def cross_checks(self, top: dict) -> None:
        groups, nexthops = self.names["groups"] or {}, self.names["nexthops"] or {}
        for group_name in groups:
            if group_name in nexthops:
                self.root.at("groups").at(str(group_name)).error(
                    "a name not used by a next hop", group_name)
        node = top["node"]
        if node is BAD or node.tunnel_address is BAD or not isinstance(top["nexthops"], list):
            return
        tunnels = [nh for nh in top["nexthops"]
                   if nh is not BAD and isinstance(nh.tunnel, Tunnel)
                   and nh.tunnel.remote is not BAD]
        if tunnels and node.tunnel_address is None:
            self.root.at("node").at("tunnel_address").report(
                f"is required when a next hop has a tunnel (nexthops.{tunnels[0].name})")
        for nh in tunnels:
            if node.tunnel_address and nh.tunnel.remote.version != node.tunnel_address.version:
                self.root.at("nexthops").at(nh.name).at("tunnel").at("remote").error(
                    f"an IPv{node.tunnel_address.version} address like node.tunnel_address",
                    str(nh.tunnel.remote))

    def node(self, ctx, value):
        node = fields(ctx, value, {
            "name": (named_like("a name of letters, digits, '_', '.' and '-'",
                                NODE_NAME_RE), REQUIRED),
            "seed": (integer(0, 0xFFFFFFFF), None),
            "tunnel_address": (ip_address, None)})
        if node is BAD:
            return BAD
        seed = node["seed"]
        if seed is None and isinstance(node["name"], str):
            seed = crc32c(node["name"].encode())
        return Node(node["name"], seed, node["tunnel_address"])

    def ports(self, ctx, value):
        ports = list_of(self.port, 1, MAX_PORTS, "ports")(ctx, value)
        if ports is BAD:
            return BAD
        for index, port in enumerate(ports):
            if port is not BAD:
                port.index = index
        unique(ctx, ports, "unique", "name")
        unique(ctx, ports, "a device not used by another port", "devargs",
               key=lambda d: d.split(",", 1)[0].lower())
        unique(ctx, ports, "a pseudowire no other port cross-connects", "xconnect")
        seen = set()
        for index, port in enumerate(ports):
            if port is BAD or not isinstance(port.xconnect, str) or port.xconnect in seen:
                continue                # a second port on one pseudowire: reported above
            seen.add(port.xconnect)
            ac_port = self.pw_ac_port.get(port.xconnect)
            if isinstance(ac_port, str) and isinstance(port.name, str) \
                    and ac_port != port.name:
                ctx.at(index).at("xconnect").error(
                    f"a pseudowire whose ac_port is {port.name}", port.xconnect)
        self.bind_checks(ctx, ports)
        return ports

    @staticmethod
    def bind_checks(ctx, ports: list) -> None:
        """Across the ports of a VRF: a bind.ip prefix is no other bind.ip nor AAP ip
        (each would be a route of its own), and an AAP ip has one mode."""
        seen: dict[tuple, tuple[str, str]] = {}     # (VRF, prefix) → (kind, where)
        for i, port in enumerate(ports):
            if port is BAD or port.bind is None or not isinstance(port.vrf, str):
                continue
            here = ctx.at(i).at("bind")
            for j, net in enumerate(port.bind.ip):
                first = seen.get((port.vrf, net))
                if first is not None and first[1] != f"ports[{i}]":
                    here.at("ip").at(j).error(
                        f"a prefix no other port of VRF {port.vrf} binds or lists "
                        f"({first[1]} has it)", str(net))
                seen.setdefault((port.vrf, net), ("bind", f"ports[{i}]"))
            for j, pair in enumerate(port.bind.allowed_address_pairs):
                first = seen.get((port.vrf, pair.ip))
                where = here.at("allowed_address_pairs").at(j)
                if first is None:
                    seen[(port.vrf, pair.ip)] = (pair.mode, where.path)
                elif first[0] == "bind":
                    where.at("ip").error(
                        f"an IP that no port of VRF {port.vrf} binds ({first[1]} has it in "
                        "bind.ip)", str(pair.ip))
                elif first[0] != pair.mode and not first[1].startswith(f"ports[{i}]."):
                    where.at("mode").error(
                        f"{first[0]} like {first[1]} (one IP has one mode in a VRF)",
                        pair.mode)

    def port(self, ctx, value):
        port = fields(ctx, value, {
            "name": (name, REQUIRED),
            "devargs": (self.devargs, REQUIRED),
            "mac": (unicast_mac, REQUIRED),
            "vrf": (self.ref("a VRF", "vrfs"), "default"),
            "mode": (one_of("flow", "packet"), "flow"),
            "fat_flows": (fat_flows, list),
            "fat_flow_exclude": (list_of(prefix, 0, MAX_FAT_EXCLUDE, "prefixes"), list),
            "mirror": (self.mirror, None),
            "xconnect": (self.ref("a pseudowire", "pseudowires"), None),
            "bind": (self.bind, None),
            "proxy_arp": (boolean, False)},
            none_is_empty=False)
        if port is BAD:
            return BAD
        vrfs = self.names["vrfs"]
        if port["xconnect"] is not None:
            if "vrf" in value:
                ctx.at("vrf").error("absent on a port with xconnect", value["vrf"])
            if "bind" in value:
                ctx.at("bind").error("absent on a port with xconnect (it is in no VRF)",
                                     value["bind"])
            if port["proxy_arp"] is True:
                ctx.at("proxy_arp").error("false on a port with xconnect (it is in no VRF)",
                                          True)
            port["vrf"] = None
        elif "vrf" not in value and vrfs is not None and "default" not in vrfs:
            ctx.at("vrf").report("is required when vrfs defines no 'default' VRF")
        mirror = port["mirror"]
        if mirror not in (None, BAD) and mirror.to is not None and mirror.to == port["name"]:
            ctx.at("mirror").at("to").error("a port other than the mirrored one", mirror.to)
        vrf_index = vrfs.get(port["vrf"], 0) if vrfs and isinstance(port["vrf"], str) else 0
        return Port(port["name"], 0, port["devargs"], port["mac"], port["vrf"], vrf_index,
                    port["mode"], port["xconnect"], fat_flows=port["fat_flows"],
                    fat_flow_exclude=port["fat_flow_exclude"],
                    mirror=mirror if mirror is not BAD else None,
                    bind=port["bind"] if port["bind"] is not BAD else None,
                    proxy_arp=port["proxy_arp"])

    def bind(self, ctx, value):
        """`ports[].bind` (docs/virtual-networks.md §1, §4); an AAP without mac gets
        bind.mac."""
        bind = fields(ctx, value, {
            "mac": (unicast_mac, REQUIRED),
            "ip": (list_of(host_prefix, 0, vnet.MAX_BIND_IPS, "prefixes"), list),
            "allowed_address_pairs": (list_of(self.allowed_pair, 0, vnet.MAX_AAPS,
                                              "pairs"), list)})
        if bind is BAD:
            return BAD
        ips, pairs = bind["ip"], bind["allowed_address_pairs"]
        if ips is not BAD:
            unique(ctx.at("ip"), ips, "unique in bind.ip")
        if pairs is not BAD:
            unique(ctx.at("allowed_address_pairs"), pairs,
                   "unique in the port's allowed_address_pairs", "ip")
        if bind["mac"] is BAD or ips is BAD or pairs is BAD or BAD in ips or \
                any(p is BAD or BAD in p.values() for p in pairs):
            return BAD
        return Bind(bind["mac"], ips, [
            AllowedPair(p["ip"], p["mac"] if p["mac"] is not None else bind["mac"],
                        p["mode"]) for p in pairs])

    def allowed_pair(self, ctx, value):
        return fields(ctx, value, {
            "ip": (host_prefix, REQUIRED),
            "mac": (unicast_mac, None),
            "mode": (one_of(*vnet.MODES), "active-standby")}, none_is_empty=False)

    def mirror(self, ctx, value):
        """`ports[].mirror` (SPEC §9, docs/mirroring.md): exactly one of `to` (raw copies
        out of that port) and `analyzer` (UDP with a metadata header)."""
        mirror = fields(ctx, value, {
            "to": (self.ref("a port", "ports"), None),
            "analyzer": (self.analyzer, None),
            "direction": (one_of("rx", "tx", "both"), "both"),
            "sample": (integer(1, 0xFFFFFFFF), 1)})
        if mirror is BAD:
            return BAD
        given = [k for k in ("to", "analyzer") if k in (value or {})]
        if not given:
            return ctx.at("to").report("is required unless analyzer is given (a mirror "
                                       "has exactly one of to and analyzer)")
        if len(given) == 2:
            return ctx.report("must have exactly one of to and analyzer, got both")
        if BAD in mirror.values():
            return BAD
        ports = self.names["ports"] or {}
        out = Mirror(mirror["direction"], mirror["sample"])
        if mirror["to"] is not None:
            out.to, out.to_index = mirror["to"], ports.get(mirror["to"], 0)
            out.egress_index = out.to_index
        else:
            out.analyzer, out.egress_index = mirror["analyzer"]
        return out

    def analyzer(self, ctx, value):
        """`ports[].mirror.analyzer`: (Analyzer, the index of the port copies leave by)."""
        an = fields(ctx, value, {
            "address": (ip_address, REQUIRED),
            "udp_port": (integer(1, 65535), REQUIRED),
            "via": (self.ref("a next hop", "nexthops"), REQUIRED),
            "source": (ip_address, None)})
        if an is BAD:
            return BAD
        address, via, source = an["address"], an["via"], an["source"]
        if address is not BAD and (address.is_multicast or address.is_unspecified):
            an["address"] = ctx.at("address").error("a unicast address", str(address))
        raw = self.data.get("nexthops")
        nh = raw.get(via) if isinstance(raw, dict) and isinstance(via, str) else None
        nh_port = None
        if isinstance(nh, dict):
            nh_port = nh.get("port")
            if nh.get("labels"):
                an["via"] = ctx.at("via").error(
                    "a next hop without labels (copies leave as plain IP)", via)
            elif nh.get("tunnel") is not None:
                an["via"] = ctx.at("via").error(
                    "a next hop without a tunnel (copies leave as plain IP)", via)
            elif "mac" not in nh:
                an["via"] = ctx.at("via").error(
                    "a next hop with a mac (copies are not held for ARP / ND)", via)
        if source is None:
            node = self.data.get("node")
            tunnel = node.get("tunnel_address") if isinstance(node, dict) else None
            try:
                source = ipaddress.ip_address(tunnel) if isinstance(tunnel, str) else None
            except ValueError:
                source = None           # node.tunnel_address reports its own error
            if source is None and tunnel is None:
                an["source"] = ctx.at("source").report(
                    "is required when node.tunnel_address is not set (the copies' IP "
                    "source address)")
            elif source is not None and address is not BAD \
                    and source.version != address.version:
                an["source"] = ctx.at("source").report(
                    f"is required: node.tunnel_address {source} is IPv{source.version}, "
                    f"the analyzer address IPv{address.version}")
        elif source is not BAD and address is not BAD and source.version != address.version:
            an["source"] = ctx.at("source").error(
                f"an IPv{address.version} address like address", str(source))
        if BAD in an.values() or source is None:
            return BAD
        nexthops, ports = self.names["nexthops"] or {}, self.names["ports"] or {}
        port_index = ports.get(nh_port, 0) if isinstance(nh_port, str) else 0
        return Analyzer(address, an["udp_port"], via, nexthops.get(via, 0), source), \
            port_index

    def vrf(self, ctx, vrf_name, index, value):
        vrf = fields(ctx, value, {
            "routes": (self.routes, list),
            "forwarding": (one_of(*FORWARDINGS), "l3"),
            "flood_unknown_unicast": (boolean, False),
            "mac_learning": (boolean, False),
            "mac_aging": (seconds, Vrf.mac_aging),
            "macs": (self.static_macs(vrf_name), list),
            "gateway": (self.gateway, None)})
        if vrf is BAD:
            return BAD
        forwarding, routes = vrf["forwarding"], vrf["routes"]
        if forwarding == "l2" and routes is not BAD and len(routes):
            ctx.at("routes").report(
                f"must be empty in an l2 VRF (it bridges, it does not route), got "
                f"{len(routes)} routes")
        for key in ("flood_unknown_unicast", "mac_learning"):
            if forwarding == "l3" and vrf[key] is True:
                ctx.at(key).error("false in an l3 VRF (bridging takes forwarding l2 or "
                                  "l2_l3)", True)
        return Vrf(vrf_name, index, routes, forwarding, vrf["flood_unknown_unicast"],
                   vrf["mac_learning"], vrf["mac_aging"],
                   vrf["macs"] if vrf["macs"] is not BAD else [],
                   vrf["gateway"] if vrf["gateway"] is not BAD else None)

    def static_macs(self, vrf_name: str):
        """A checker of `vrfs.<vrf_name>.macs`: unicast MACs, once each, on ports of
        that VRF."""
        def entry(ctx, value):
            item = fields(ctx, value, {"mac": (unicast_mac, REQUIRED),
                                       "port": (self.ref("a port", "ports"), REQUIRED)},
                          none_is_empty=False)
            if item is BAD:
                return BAD
            port = item["port"]
            port_vrf = self.port_vrf.get(port) if isinstance(port, str) else None
            if isinstance(port, str) and port in self.port_vrf \
                    and port_vrf != vrf_name and (port_vrf is None
                                                  or isinstance(port_vrf, str)):
                ours = [p for p, v in self.port_vrf.items() if v == vrf_name]
                item["port"] = ctx.at("port").error(
                    f"a port of VRF {vrf_name} ({_hint(ours) if ours else 'it has none'})",
                    port)
            if BAD in item.values():
                return BAD
            ports = self.names["ports"] or {}
            return StaticMac(item["mac"], item["port"], ports.get(item["port"], 0))

        def check(ctx, value):
            macs = list_of(entry, 0, vnet.MAX_STATIC_MACS, "MACs")(ctx, value)
            if macs is BAD:
                return BAD
            seen = set()
            for i, m in enumerate(macs):
                if m is not BAD and m.mac in seen:
                    ctx.at(i).at("mac").error("unique in the VRF's macs", vnet.mac_text(m.mac))
                elif m is not BAD:
                    seen.add(m.mac)
            return BAD if BAD in macs else macs
        return check

    def gateway(self, ctx, value):
        gateway = fields(ctx, value, {
            "ip": (list_of(interface, 0, MAX_GATEWAY_IPS, "addresses"), list),
            "mac": (unicast_mac, None)})
        if gateway is BAD:
            return BAD
        ips = gateway["ip"]
        if ips is not BAD:
            unique(ctx.at("ip"), ips, "an address not given twice", key=lambda i: i.ip)
        if ips is BAD or BAD in ips or gateway["mac"] is BAD:
            return BAD
        return Gateway(ips, gateway["mac"])

    def routes(self, ctx, value):
        """A VRF's routes as a model.RouteTable: each YAML item through route(), each
        run of one-line routes (config/routes.py) in bulk with the same checks."""
        if not isinstance(value, list):
            return ctx.error("a list", value)
        total = sum(len(v) if isinstance(v, RouteRun) else 1 for v in value)
        if total > MAX_ROUTES_PER_VRF:
            ctx.report(f"must be a list of 0 to {MAX_ROUTES_PER_VRF} routes, got {total} "
                       "routes")
        table = RouteTableBuilder()
        for item in value:
            if isinstance(item, RouteRun):
                self.route_run(ctx, table, item)
                continue
            route = self.route(ctx.at(table.count), item)
            if route is BAD or route.prefix is BAD:
                table.add(None)
            else:
                table.add(route.prefix, route.via_group, route.via_index)
        table, valid = table.table((list(self.names["nexthops"] or ()),
                                    list(self.names["groups"] or ())))
        for i in repeated(table, valid):
            ctx.at(i).at("prefix").error("unique in the VRF", str(table.prefix(i)))
        return table

    def route_run(self, ctx, table: RouteTableBuilder, run: RouteRun) -> None:
        """The routes of a RouteRun, checked as route() checks each: a prefix config/
        routes.py could not parse, and a via that names nothing, go through the same
        checkers (same messages, same paths), line by line in order."""
        start, n = table.count, len(run)
        resolved = []
        for name in run.via_names:
            tables = [self.names["nexthops"], self.names["groups"]]
            ok = any(t is None for t in tables) or any(name in t for t in tables)
            resolved.append((ok, *self.resolve_via(name)))
        via = np.frombuffer(run.via, np.uint32)
        via_ok = np.array([r[0] for r in resolved], bool)[via]
        group = np.array([r[1] for r in resolved], np.uint8)[via]
        index = np.array([r[2] for r in resolved], np.uint32)[via]
        family = np.full(n, 4, np.uint8)
        hi = np.zeros(n, np.uint64)
        lo = np.frombuffer(run.addr, np.uint32).astype(np.uint64)
        plen = np.frombuffer(run.plen, np.uint8).copy()
        valid = np.ones(n, np.uint8)
        for i in sorted(set(run.raw) | set(np.flatnonzero(~via_ok).tolist())):
            here = ctx.at(start + i)
            if i in run.raw:
                net = prefix(here.at("prefix"), run.raw[i])
                if net is BAD:
                    valid[i] = family[i] = 0
                else:
                    a = int(net.network_address)
                    family[i], hi[i], lo[i], plen[i] = (net.version, a >> 64,
                                                        a & 0xFFFFFFFFFFFFFFFF, net.prefixlen)
            if not via_ok[i]:
                self.via(here.at("via"), run.via_names[run.via[i]])
        table.add_columns(family, hi, lo, plen, group, index, valid)

    def resolve_via(self, via) -> tuple[bool, int]:
        """(via_group, via_index) of a `via` naming a next hop or a group."""
        nexthops, groups = self.names["nexthops"], self.names["groups"]
        if isinstance(via, str) and nexthops and via in nexthops:
            return False, nexthops[via]
        if isinstance(via, str) and groups and via in groups:
            return True, groups[via]
        return False, 0

    def route(self, ctx, value):
        route = fields(ctx, value, {"prefix": (prefix, REQUIRED), "via": (self.via, REQUIRED)},
                       none_is_empty=False)
        if route is BAD:
            return BAD
        return Route(route["prefix"], route["via"], *self.resolve_via(route["via"]))

    def nexthop(self, ctx, nh_name, index, value):
        nh = fields(ctx, value, {
            "port": (self.ref("a port", "ports"), REQUIRED),
            "mac": (unicast_mac, None),
            "ip": (unicast_ip, None),
            "labels": (labels, list),
            "entropy": (boolean, False),
            "erld": (integer(1, 16), 8),
            "tunnel": (TUNNEL, None)})
        if nh is BAD:
            return BAD
        value = value or {}                     # `nh1:` with nothing under it
        if "mac" not in value and "ip" not in value:
            ctx.at("mac").report("is required unless ip is given (then ARP / ND "
                                 "resolves the MAC)")
        port = nh["port"]
        if isinstance(port, str) and self.port_xconnect.get(port) is not None:
            ctx.at("port").error("a port without xconnect", port)
        if nh["entropy"] is True and nh["labels"] == []:
            ctx.at("entropy").error("false on a next hop without labels", True)
        elif nh["entropy"] is True and nh["tunnel"] not in (None, BAD):
            ctx.at("entropy").error("false on a tunnel next hop (the UDP source port "
                                    "carries the entropy)", True)
        if nh["tunnel"] not in (None, BAD) and nh["labels"] == []:
            if "labels" in value:
                ctx.at("labels").error("a non-empty list on a tunnel next hop", [])
            else:
                ctx.at("labels").report("is required on a tunnel next hop")
        ports = self.names["ports"]
        port_index = ports.get(port, 0) if ports and isinstance(port, str) else 0
        return NextHop(nh_name, index, port, port_index, nh["mac"], nh["labels"],
                       nh["entropy"], nh["erld"], nh["tunnel"], ip=nh["ip"])

    def group(self, ctx, group_name, index, value):
        group = fields(ctx, value, {
            "members": (self.members, REQUIRED),
            "buckets": (BUCKETS, 4096),
            "hash": (HASH, HashSpec)})
        if group is BAD:
            return BAD
        members, buckets = group["members"], group["buckets"]
        if members is not BAD and buckets is not BAD and buckets < len(members):
            ctx.at("buckets").error(f"at least the number of members ({len(members)})",
                                    buckets)
        return Group(group_name, index, members, buckets, group["hash"])

    def members(self, ctx, value):
        members = list_of(self.member, 1, MAX_MEMBERS, "members")(ctx, value)
        if members is BAD:
            return BAD
        unique(ctx, members, "unique in the group", "nexthop")
        weights = [m.weight for m in members if m is not BAD]
        if members and len(weights) == len(members) and BAD not in weights \
                and not any(weights):
            ctx.report(f"must have at least one member with weight > 0, got weights {weights}")
        return members

    def member(self, ctx, value):
        member = fields(ctx, value, {
            "nexthop": (self.ref("a next hop", "nexthops"), REQUIRED),
            "weight": (integer(0, 65535), 1)}, none_is_empty=False)
        if member is BAD:
            return BAD
        nexthops = self.names["nexthops"]
        nh = member["nexthop"]
        nh_index = nexthops.get(nh, 0) if nexthops and isinstance(nh, str) else 0
        return Member(nh, nh_index, member["weight"])

    def mpls(self, ctx, value):
        mpls = fields(ctx, value, {
            "erld": (integer(1, 16), Mpls.erld),
            "payload_guess": (boolean, Mpls.payload_guess),
            "ttl_model": (one_of("uniform", "pipe"), Mpls.ttl_model),
            "lfib": (self.lfib, list)})
        if mpls is BAD or BAD in mpls.values() or BAD in mpls["lfib"]:
            return BAD
        return Mpls(**mpls)

    def lfib(self, ctx, value):
        entries = list_of(self.lfib_entry)(ctx, value)
        if entries is BAD:
            return BAD
        unique(ctx, entries, "unique in the LFIB", "label")
        return [self.lfib_rule(entry) for entry in entries]

    def lfib_entry(self, ctx, value):
        action = value.get("action") if isinstance(value, dict) else None
        needed = LFIB_ACTIONS.get(action) if isinstance(action, str) else None
        spec = {"label": (label, REQUIRED), "action": (one_of(*LFIB_ACTIONS), REQUIRED)}
        by_action = {"labels": list_of(label, 1, MAX_SWAP_LABELS, "labels"), "via": self.via,
                     "vrf": self.ref("a VRF", "vrfs"),
                     "pseudowire": self.ref("a pseudowire", "pseudowires")}
        for key, check in by_action.items():
            if needed is None:          # unknown action: still check what is there
                spec[key] = (check, None)
            elif key in needed:
                spec[key] = (check, REQUIRED)
        return fields(ctx, value, spec, none_is_empty=False)

    def lfib_rule(self, entry):
        """An LfibRule from a checked `mpls.lfib` entry, references resolved; BAD when
        the entry has an error (already reported)."""
        if entry is BAD or BAD in entry.values() or BAD in (entry.get("labels") or ()):
            return BAD
        vrfs, pseudowires = self.names["vrfs"] or {}, self.names["pseudowires"] or {}
        action = entry["action"]
        rule = LfibRule(entry["label"], action)
        if action == "swap":
            rule.labels, rule.via = entry["labels"], entry["via"]
            rule.via_group, rule.via_index = self.resolve_via(entry["via"])
        elif action == "pop-lookup":
            rule.vrf, rule.vrf_index = entry["vrf"], vrfs.get(entry["vrf"], 0)
        elif action == "pop-xconnect":
            rule.pseudowire = entry["pseudowire"]
            rule.pw_index = pseudowires.get(entry["pseudowire"], 0)
        return rule

    def pseudowire(self, ctx, pw_name, index, value):
        pw = fields(ctx, value, {
            "ac_port": (self.ref("a port", "ports"), REQUIRED),
            "label": (label, REQUIRED),
            "via": (self.via, REQUIRED),
            "fat": (boolean, False),
            "control_word": (boolean, False)})
        if pw is not BAD:
            ac_port = pw["ac_port"]
            if isinstance(ac_port, str) and ac_port in self.port_xconnect \
                    and self.port_xconnect[ac_port] != pw_name:
                ctx.at("ac_port").error(f"a port whose xconnect is {pw_name}", ac_port)
        if pw is BAD or BAD in pw.values():
            return BAD
        ports = self.names["ports"] or {}
        return Pseudowire(pw_name, index, pw["ac_port"], ports.get(pw["ac_port"], 0),
                          pw["label"], pw["via"], *self.resolve_via(pw["via"]),
                          fat=pw["fat"], control_word=pw["control_word"])


# ---- YAML --------------------------------------------------------------------------

class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):   # libyaml: ~5x faster
    """SafeLoader that records duplicate keys and reads 10:20:30 as a string.

    YAML 1.1 reads digits separated by colons as a base-60 integer, which turns an
    unquoted MAC such as 10:22:33:44:55:01 into a number.
    """

    def __init__(self, stream):
        super().__init__(stream)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue            # unhashable key: the base class reports it
            if first is not key_node:
                mark = key_node.start_mark
                self.duplicates.append(
                    f"line {mark.line + 1}, column {mark.column + 1}: duplicate key "
                    f"{short(key)} (first at line {first.start_mark.line + 1})")
        return super().construct_mapping(node, deep)


def _construct_int(loader, node):
    """An int, or HugeInt for one with more digits than Python converts (a value the
    checkers reject, shown cut), instead of a ValueError out of the YAML library."""
    try:
        return yaml.SafeLoader.construct_yaml_int(loader, node)
    except ValueError:
        return HugeInt(loader.construct_scalar(node))


_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _INT]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, re.compile(r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""", re.X), list("-+0123456789"))


# A document whose aliases expand it to more nodes than this is refused before it is
# built or checked (the validator walks the expanded document: a "billion laughs" bomb
# would never end): at least ALIAS_NODES, or ALIAS_FACTOR times the nodes written.
ALIAS_NODES = 100_000
ALIAS_FACTOR = 8


class _AliasBomb(Exception):
    def __init__(self, node, message: str):
        self.node, self.message = node, message


def _check_expansion(root, runs=()) -> None:
    """Raise _AliasBomb if the node graph under root, with every alias expanded, is
    larger than the limit or refers to itself. Iterative (depth is unbounded), and only
    collections are visited: a scalar counts one wherever it is, but a route run's
    placeholder (config/routes.py) counts as the nodes YAML makes of its routes."""
    scalar = yaml.ScalarNode
    if runs:
        weight = {str(i): NODES_PER_ROUTE * len(r) for i, r in enumerate(runs)}

        def nodes_of(k):
            return weight.get(k.value, 1) if k.tag.startswith(RUN_TAG) else 1
    else:
        def nodes_of(k):
            return 1
    size: dict[int, int] = {}        # id -> expanded size, of each collection done
    nodes = []                       # the collections in the order they were done
    distinct = 1
    on_path = set()
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if node.__class__ is scalar or key in size:
            continue
        kids = (node.value if isinstance(node, yaml.SequenceNode)
                else [n for pair in node.value for n in pair])
        if done:
            on_path.discard(key)
            total = 1
            for k in kids:
                total += nodes_of(k) if k.__class__ is scalar else size[id(k)]
            size[key] = total
            nodes.append(node)
            continue
        if key in on_path:
            raise _AliasBomb(node, "an alias refers to the value that contains it "
                                   "(a recursive alias): refused")
        on_path.add(key)
        distinct += sum(nodes_of(k) if k.__class__ is scalar else 1 for k in kids) \
            if runs else len(kids)
        stack.append((node, True))
        stack.extend((k, False) for k in kids
                     if k.__class__ is not scalar and id(k) not in size)
    limit = max(ALIAS_NODES, ALIAS_FACTOR * distinct)
    if size.get(id(root), 1) > limit:
        node = next(n for n in nodes if size[id(n)] > limit)     # the innermost
        raise _AliasBomb(node, f"aliases expand this value to more than {limit:,} nodes "
                               f"(the document has about {distinct:,}): refused (a YAML "
                               "alias bomb?)")


class _NotFast(Exception):
    """The route-run fast path cannot stand for YAML here: parse the original text."""


def _construct_run(loader, suffix, node):
    """A route run's placeholder → its RouteRun (config/routes.py); any other tag with
    this prefix is an unknown tag, as for SafeLoader."""
    runs = getattr(loader, "route_runs", None)
    value = node.value if isinstance(node, yaml.ScalarNode) else None
    if runs and suffix == loader.run_token and isinstance(value, str) and \
            value.isdigit() and int(value) < len(runs):
        loader.runs_built.add(int(value))
        return runs[int(value)]
    return loader.construct_undefined(node)


_Loader.add_multi_constructor(RUN_TAG, _construct_run)


def _parse(text: str, file: str):
    """The document in `text`. Runs of one-line routes are read by config/routes.py
    and stand in the document as RouteRuns (validated in bulk); YAML reads the rest. If
    that cannot stand for what YAML alone would read (a run inside a string, a
    placeholder outside a route list, an error inside a run), YAML reads it all."""
    fast, runs, token = find_runs(text)
    if runs:
        try:
            return _parse_yaml(fast, file, runs, token)
        except _NotFast:
            pass
    return _parse_yaml(text, file)


def _parse_yaml(text: str, file: str, runs=(), token: str = ""):
    loader = _Loader(text)
    loader.route_runs, loader.run_token, loader.runs_built = list(runs), token, set()
    spans = run_lines(runs)

    def in_run(mark) -> bool:
        return mark is None or any(a <= mark.line <= b for a, b in spans)
    try:
        node = loader.get_single_node()
        if node is not None and "&" in text and "*" in text:   # no alias, no expansion
            _check_expansion(node, runs)
        data = loader.construct_document(node) if node is not None else None
    except _AliasBomb as e:
        mark = e.node.start_mark
        if runs and in_run(mark):
            raise _NotFast() from None
        raise ConfigError([f"{file}: line {mark.line + 1}, column {mark.column + 1}: "
                           f"{e.message}"]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        if runs and in_run(mark):
            raise _NotFast() from None
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = ", ".join(filter(None, (e.context, e.problem)))
        raise ConfigError([f"{file}: {where}malformed YAML: {what}"]) from None
    except yaml.YAMLError as e:
        if runs:
            raise _NotFast() from None
        raise ConfigError([f"{file}: malformed YAML: {e}"]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError([f"{file}: {d}" for d in loader.duplicates])
    if runs and (len(loader.runs_built) != len(runs) or not runs_in_place(data, runs)):
        raise _NotFast()
    return data


def load_text(text: str, path: str = "<string>", host: bool = False) -> Config:
    """Parse and validate a configuration held in a string; raise ConfigError. host:
    also check it against this host (the CPUs of eal.lcores, memory: config/host.py)."""
    file = os.path.basename(path) or path
    data = _parse(text, file)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{file}: must be a mapping, got {short(data)}"])
    cfg = _Validator(data, file).run(str(path))
    if host:
        from .host import host_errors
        errors = host_errors(cfg, file)
        if errors:
            raise ConfigError(errors)
    return cfg


def load(path, host: bool = False) -> Config:
    """Read, parse and validate the configuration file at `path`; raise ConfigError.
    host: also check it against this host (config/host.py)."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else str(e)
        raise ConfigError([f"{os.path.basename(path)}: cannot read: {reason}"]) from None
    return load_text(text, path, host)
