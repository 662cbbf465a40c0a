"""Virtual networks (docs/virtual-networks.md): what the validator derives from `bind`
and `allowed_address_pairs`, and the tables both backends (the Cython core's compile and
the reference model) read out of a validated Config, so the two cannot read it apart.

Everything here is a pure function of the Config; nothing is cached on it.

Derivation (docs §1), in an `l3` or `l2_l3` VRF: each `bind.ip` prefix is a route to the
implicit next hop of (port, bind.mac); each AAP IP a route to the implicit next hop of
(port, AAP mac) when one port of the VRF lists it, else to an implicit group over one
such next hop per listing port (port order, weight 1). One implicit next hop per
(port, mac), named by its first use: `PORT~bind` for a `bind.ip`, `PORT~aap~MAC` for an
AAP (MAC as aa:bb:cc:dd:ee:ff). A group is `aap~IP` (IP as the prefix text), or
`aap~IP~VRF` when another VRF already derived `aap~IP`. Implicit next hops come after the
file's, ports in order (per port: the bind next hop, then its AAPs' in list order);
groups after the file's, in the order their IP first appears (ports in order, AAPs in
list order); each VRF's derived routes after its own, in that order too.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from .model import Config, Group, HashSpec, IPNetwork, Member, NextHop, Port, Route

ROUTED = ("l3", "l2_l3")            # forwardings in which bind and AAP IPs are routed
MODES = ("active-standby", "active-active")
MAX_BIND_IPS = 16                   # bind.ip prefixes of one port
MAX_AAPS = 16                       # allowed_address_pairs of one port
MAX_STATIC_MACS = 65536             # vrfs.X.macs entries of one VRF


def mac_text(mac: bytes) -> str:
    return mac.hex(":")


def vrf_ports(cfg: Config, vrf_index: int) -> list[int]:
    """The indexes of the ports of VRF `vrf_index`, in port order (attachment circuits
    of pseudowires belong to no VRF)."""
    return [p.index for p in cfg.ports if p.vrf is not None and p.vrf_index == vrf_index]


# ---- derivation (the validator) ---------------------------------------------------

@dataclass
class AapPlan:
    """One AAP IP of a routed VRF: its mode (one per IP, the validator checks) and the
    (port index, mac) of each port listing it, in port order."""
    vrf_index: int
    ip: IPNetwork
    mode: str
    listings: list[tuple[int, bytes]] = field(default_factory=list)


def aap_plan(cfg: Config) -> list[AapPlan]:
    """The AAP IPs of routed VRFs, in the order they first appear (ports in order, each
    port's AAPs in list order)."""
    plans: dict[tuple[int, IPNetwork], AapPlan] = {}
    for port in _bound_routed_ports(cfg):
        for pair in port.bind.allowed_address_pairs:
            key = (port.vrf_index, pair.ip)
            plan = plans.setdefault(key, AapPlan(port.vrf_index, pair.ip, pair.mode))
            if all(p != port.index for p, _ in plan.listings):
                plan.listings.append((port.index, pair.mac))
    return list(plans.values())


def _bound_routed_ports(cfg: Config) -> list[Port]:
    return [p for p in cfg.ports if p.bind is not None and p.vrf is not None
            and cfg.vrfs[p.vrf_index].forwarding in ROUTED]


@dataclass
class Derived:
    """What derive() adds to a Config: next hops and groups to append (their indexes
    already those they get), and the routes to append to each VRF's."""
    nexthops: list[NextHop] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    routes: dict[int, list[Route]] = field(default_factory=dict)   # VRF index → routes


def derive(cfg: Config) -> Derived:
    """The implicit next hops, groups and routes of the bound ports of routed VRFs
    (module docstring). `cfg` holds the file's own objects only."""
    out = Derived()
    by_port_mac: dict[tuple[int, bytes], NextHop] = {}

    def nexthop(port: Port, mac: bytes, name: str) -> NextHop:
        nh = by_port_mac.get((port.index, mac))
        if nh is None:
            nh = NextHop(name, len(cfg.nexthops) + len(out.nexthops), port.name,
                         port.index, mac, implicit=True)
            by_port_mac[(port.index, mac)] = nh
            out.nexthops.append(nh)
        return nh

    ports = _bound_routed_ports(cfg)
    for port in ports:
        if port.bind.ip:
            nexthop(port, port.bind.mac, f"{port.name}~bind")
        for pair in port.bind.allowed_address_pairs:
            nexthop(port, pair.mac, f"{port.name}~aap~{mac_text(pair.mac)}")

    group_names = {g.name for g in cfg.groups}
    via: dict[tuple[int, IPNetwork], tuple[bool, int, str]] = {}
    for plan in aap_plan(cfg):
        key = (plan.vrf_index, plan.ip)
        if len(plan.listings) == 1:
            port_index, mac = plan.listings[0]
            nh = by_port_mac[(port_index, mac)]
            via[key] = (False, nh.index, nh.name)
            continue
        name = f"aap~{plan.ip}"
        if name in group_names:
            name = f"aap~{plan.ip}~{cfg.vrfs[plan.vrf_index].name}"
        group_names.add(name)
        members = [Member(by_port_mac[k].name, by_port_mac[k].index, 1)
                   for k in plan.listings]
        group = Group(name, len(cfg.groups) + len(out.groups), members, 4096, HashSpec(),
                      implicit=True)
        out.groups.append(group)
        via[key] = (True, group.index, name)

    for port in ports:
        routes = out.routes.setdefault(port.vrf_index, [])
        bind_nh = by_port_mac.get((port.index, port.bind.mac))
        for net in port.bind.ip:
            routes.append(Route(net, bind_nh.name, False, bind_nh.index))
        for pair in port.bind.allowed_address_pairs:
            group, index, name = via.pop((port.vrf_index, pair.ip), (None, 0, ""))
            if group is not None:                       # the IP's first listing
                routes.append(Route(pair.ip, name, group, index))
    return out


# ---- tables the backends read -------------------------------------------------------

def static_macs(cfg: Config) -> list[tuple[int, bytes, int]]:
    """The static bridge table: [(VRF index, MAC, port index)], per VRF in VRF order:
    its `macs`, then each bound port's bind.mac (port order), then each AAP MAC (the
    first port listing it); a MAC already in the VRF's table is skipped."""
    out = []
    for vrf in cfg.vrfs:
        seen: set[bytes] = set()

        def add(mac: bytes, port_index: int) -> None:
            if mac not in seen:
                seen.add(mac)
                out.append((vrf.index, mac, port_index))
        for entry in vrf.macs:
            add(entry.mac, entry.port_index)
        bound = [cfg.ports[i] for i in vrf_ports(cfg, vrf.index)
                 if cfg.ports[i].bind is not None]
        for port in bound:
            add(port.bind.mac, port.index)
        for port in bound:
            for pair in port.bind.allowed_address_pairs:
                add(pair.mac, port.index)
    return out


def allowed(port: Port) -> tuple[list[tuple[bytes, IPNetwork]], set[bytes]]:
    """(allowed pairs, allowed MACs) of a port (docs §4): pairs (bind.mac, each bind.ip)
    then (mac, ip) of each AAP, in file order; MACs bind.mac and the AAP MACs. A port
    without bind: ([], set()) (nothing is checked). No pairs with a `bind`: MAC-only
    binding."""
    if port.bind is None:
        return [], set()
    pairs = [(port.bind.mac, net) for net in port.bind.ip]
    pairs += [(pair.mac, pair.ip) for pair in port.bind.allowed_address_pairs]
    macs = {port.bind.mac} | {pair.mac for pair in port.bind.allowed_address_pairs}
    return pairs, macs


def proxy_hosts(cfg: Config, vrf_index: int) -> list[tuple[IPNetwork, bytes, int]]:
    """The hosts proxy ARP / ND knows in a VRF (docs §5.2): [(prefix, MAC, port index)]
    of each bind.ip (with bind.mac) and each AAP of its ports, port order, per port its
    bind.ip then its AAPs in file order; an IP several ports list has one entry each."""
    out = []
    for i in vrf_ports(cfg, vrf_index):
        bind = cfg.ports[i].bind
        if bind is None:
            continue
        out += [(net, bind.mac, i) for net in bind.ip]
        out += [(pair.ip, pair.mac, i) for pair in bind.allowed_address_pairs]
    return out


def neighbours(cfg: Config) -> list[tuple[int, ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """The neighbours to resolve (docs §6): the distinct (port index, ip) of the next
    hops without a mac, in next-hop order."""
    return list(dict.fromkeys((nh.port_index, nh.ip) for nh in cfg.nexthops
                              if nh.mac is None))


def neighbour_of(cfg: Config) -> dict[int, int]:
    """{next-hop index: index in neighbours(cfg)} of the next hops without a mac."""
    index = {key: i for i, key in enumerate(neighbours(cfg))}
    return {nh.index: index[(nh.port_index, nh.ip)] for nh in cfg.nexthops
            if nh.mac is None}


def gateway_mac(cfg: Config, vrf_index: int, in_port: int) -> bytes:
    """The VRF's gateway MAC for frames received on port `in_port`: gateway.mac, else
    that port's MAC."""
    gateway = cfg.vrfs[vrf_index].gateway
    if gateway is not None and gateway.mac is not None:
        return gateway.mac
    return cfg.ports[in_port].mac


def gateway_addresses(cfg: Config, vrf_index: int, family: int) -> list:
    """The VRF's gateway.ip addresses (without their length) of IP version `family`
    (4 or 6), in file order."""
    gateway = cfg.vrfs[vrf_index].gateway
    if gateway is None:
        return []
    return [iface.ip for iface in gateway.ip if iface.version == family]


def link_local(mac: bytes) -> ipaddress.IPv6Address:
    """fe80::/64 with the modified EUI-64 interface identifier of `mac` (RFC 4291
    appendix A: the universal/local bit flipped, ff:fe in the middle)."""
    eui = bytes([mac[0] ^ 0x02]) + mac[1:3] + b"\xff\xfe" + mac[3:6]
    return ipaddress.IPv6Address(b"\xfe\x80" + bytes(6) + eui)


def request_source(cfg: Config, port_index: int, ip):
    """The source address of the forwarder's ARP request / NS for `ip` on a port (docs
    §6): the first gateway.ip of the port's VRF whose prefix holds ip, else the VRF's
    first gateway address of ip's family, else 0.0.0.0 (an ARP probe) / the link-local
    address of the port's MAC."""
    port = cfg.ports[port_index]
    gateway = cfg.vrfs[port.vrf_index].gateway if port.vrf is not None else None
    ifaces = [i for i in (gateway.ip if gateway else []) if i.version == ip.version]
    for iface in ifaces:
        if ip in iface.network:
            return iface.ip
    if ifaces:
        return ifaces[0].ip
    return ipaddress.IPv4Address(0) if ip.version == 4 else link_local(port.mac)


def aap_groups(cfg: Config) -> list[tuple[int, str, list[int]]]:
    """The implicit AAP groups: [(group index, mode, [port index of each member slot])],
    in group order."""
    plans = [p for p in aap_plan(cfg) if len(p.listings) > 1]
    groups = [g for g in cfg.groups if g.implicit]
    assert len(plans) == len(groups), "the AAP groups are not those derive() made"
    return [(g.index, plan.mode, [port for port, _ in plan.listings])
            for g, plan in zip(groups, plans)]


def aap_members(cfg: Config, group_index: int, ports_up: set[int]
                ) -> list[tuple[int, int, bool]]:
    """The members of implicit AAP group `group_index` given the ports that are up:
    [(next-hop index, weight, present)] in slot order. active-active: a member is
    present when its port is up; active-standby: only the first member (slot order)
    whose port is up is present."""
    mode = next(m for g, m, _ in aap_groups(cfg) if g == group_index)
    out = []
    taken = False
    for member in cfg.groups[group_index].members:
        up = cfg.nexthops[member.nexthop_index].port_index in ports_up
        if mode == "active-standby":
            present = up and not taken
            taken = taken or present
        else:
            present = up
        out.append((member.nexthop_index, member.weight, present))
    return out
