"""Virtual networks, the configuration side (docs/virtual-networks.md §1): every key
accepted and refused (one line at its path), what the validator derives from `bind`
and `allowed_address_pairs` (implicit next hops, groups and routes after the file's
own), with routes read by YAML and by the route-run fast path, and the tables
dataplane/config/vnet.py gives both backends.

Expected values are written out by hand (link_local: RFC 4291 appendix A), never
computed with the code under test.
"""
from __future__ import annotations

import copy
import ipaddress
import re
import time

import pytest
import yaml

from dataplane.config import ConfigError, load_text
from dataplane.config import routes as fast
from dataplane.config import validate, vnet
from dataplane.config.model import (AllowedPair, Bind, Gateway, HashSpec, Neighbors, Route,
                                    RouteTable, StaticMac)

DELETE = object()
LINE = 300                          # no error line is longer than this


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def net(text: str):
    return ipaddress.ip_network(text)


def base() -> dict:
    """up1 in default (l3), vm1 and vm2 in blue (l2_l3, vm1 bound), sw1 in green (l2)."""
    return {
        "node": {"name": "leaf1"},
        "ports": [
            {"name": "up1", "devargs": "net_null0", "mac": "02:00:00:00:00:01"},
            {"name": "vm1", "devargs": "net_null1", "mac": "02:00:00:00:00:02",
             "vrf": "blue", "bind": {"mac": "02:00:00:00:10:01", "ip": ["10.9.0.5/32"]}},
            {"name": "vm2", "devargs": "net_null2", "mac": "02:00:00:00:00:03",
             "vrf": "blue"},
            {"name": "sw1", "devargs": "net_null3", "mac": "02:00:00:00:00:04",
             "vrf": "green"},
        ],
        "vrfs": {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "nh1"}]},
                 "blue": {"forwarding": "l2_l3"},
                 "green": {"forwarding": "l2"}},
        "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"}},
    }


def put(doc: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    for key in keys[:-1]:
        doc = doc[key] if isinstance(doc, list) or key in doc else doc.setdefault(key, {})
    if value is DELETE:
        del doc[keys[-1]]
    elif isinstance(doc, list) and keys[-1] == len(doc):
        doc.append(value)
    else:
        doc[keys[-1]] = value


def dump(doc: dict) -> str:
    return yaml.safe_dump(doc, sort_keys=False)


def loaded(changes: dict | None = None, doc: dict | None = None):
    doc = copy.deepcopy(base() if doc is None else doc)
    for path, value in (changes or {}).items():
        put(doc, path, value if value is DELETE else copy.deepcopy(value))
    return load_text(dump(doc), "lab.yaml")


def errors_of(changes: dict, doc: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loaded(changes, doc)
    errors = info.value.errors
    assert max(map(len, errors)) <= LINE
    return errors


XC = {"ports[4]": {"name": "ce1", "devargs": "net_null4", "mac": "02:00:00:00:00:05",
                   "xconnect": "pw1"},
      "pseudowires": {"pw1": {"ac_port": "ce1", "label": 500, "via": "nh1"}}}
AAP = "ports[1].bind.allowed_address_pairs"

CASES = [
    # neighbors
    ({"neighbors": {"queue": 0}}, "neighbors.queue: must be an integer from 1 to 64, got 0"),
    ({"neighbors": {"queue": 65}}, "neighbors.queue: must be an integer from 1 to 64, got 65"),
    ({"neighbors": {"retry": 0}}, "neighbors.retry: must be a number of seconds > 0, got 0"),
    ({"neighbors": {"reachable_time": "1s"}},
     "neighbors.reachable_time: must be a number of seconds > 0, got '1s'"),
    ({"neighbors": {"size": 1}},
     "neighbors: unknown key 'size', allowed: reachable_time, retry, queue"),
    ({"neighbors": [1]}, "neighbors: must be a mapping, got [1]"),
    # VRF forwarding, flooding, learning, aging
    ({"vrfs.blue.forwarding": "l4"},
     "vrfs.blue.forwarding: must be one of l3, l2, l2_l3, got 'l4'"),
    ({"vrfs.green.routes": [{"prefix": "10.0.0.0/8", "via": "nh1"}]},
     "vrfs.green.routes: must be empty in an l2 VRF (it bridges, it does not route), "
     "got 1 routes"),
    ({"vrfs.default.mac_learning": True},
     "vrfs.default.mac_learning: must be false in an l3 VRF (bridging takes forwarding l2 "
     "or l2_l3), got True"),
    ({"vrfs.blue.forwarding": "l3", "vrfs.blue.flood_unknown_unicast": True},
     "vrfs.blue.flood_unknown_unicast: must be false in an l3 VRF (bridging takes "
     "forwarding l2 or l2_l3), got True"),
    ({"vrfs.green.mac_learning": "yes"},
     "vrfs.green.mac_learning: must be true or false, got 'yes'"),
    ({"vrfs.green.mac_aging": 0},
     "vrfs.green.mac_aging: must be a number of seconds > 0, got 0"),
    ({"vrfs.green.mac_aging": float("inf")},
     "vrfs.green.mac_aging: must be a number of seconds > 0, got inf"),
    ({"vrfs.blue.bridge": 1},
     "vrfs.blue: unknown key 'bridge', allowed: routes, forwarding, flood_unknown_unicast, "
     "mac_learning, mac_aging, macs, gateway"),
    # macs
    ({"vrfs.blue.macs": [{"mac": "03:00:00:00:10:01", "port": "vm1"}]},
     "vrfs.blue.macs[0].mac: must be a unicast MAC address (low bit of the first byte "
     "clear), got '03:00:00:00:10:01'"),
    ({"vrfs.blue.macs": [{"mac": "02:00:00:00:10:09", "port": "up1"}]},
     "vrfs.blue.macs[0].port: must be a port of VRF blue (vm1, vm2), got 'up1'"),
    ({"vrfs.red": {"forwarding": "l2", "macs": [{"mac": "02:00:00:00:10:09",
                                                  "port": "sw1"}]}},
     "vrfs.red.macs[0].port: must be a port of VRF red (it has none), got 'sw1'"),
    ({"vrfs.blue.macs": [{"mac": "02:00:00:00:10:09", "port": "nope"}]},
     "vrfs.blue.macs[0].port: must be a port defined under ports (up1, vm1, vm2, sw1), "
     "got 'nope'"),
    ({"vrfs.blue.macs": [{"mac": "02:00:00:00:10:09", "port": "vm1"},
                         {"mac": "02:00:00:00:10:09", "port": "vm2"}]},
     "vrfs.blue.macs[1].mac: must be unique in the VRF's macs, got '02:00:00:00:10:09'"),
    ({"vrfs.blue.macs": [{"mac": "02:00:00:00:10:09"}]}, "vrfs.blue.macs[0].port: is required"),
    ({"vrfs.blue.macs": [None]}, "vrfs.blue.macs[0]: must be a mapping, got None"),
    ({"vrfs.blue.macs": {"mac": "02:00:00:00:10:09"}},
     "vrfs.blue.macs: must be a list, got {'mac': '02:00:00:00:10:09'}"),
    ({"vrfs.blue.macs": [{"mac": "02:00:00:00:10:09", "port": "vm1", "vlan": 5}]},
     "vrfs.blue.macs[0]: unknown key 'vlan', allowed: mac, port"),
    # gateway
    ({"vrfs.blue.gateway": {"ip": ["10.9.0.1"]}},
     'vrfs.blue.gateway.ip[0]: must be an IPv4 or IPv6 address with its prefix length, '
     'like "10.9.0.1/24", got \'10.9.0.1\''),
    ({"vrfs.blue.gateway": {"ip": ["10.9.0.1/33"]}},
     'vrfs.blue.gateway.ip[0]: must be an IPv4 or IPv6 address with its prefix length, '
     'like "10.9.0.1/24", got \'10.9.0.1/33\''),
    ({"vrfs.blue.gateway": {"ip": ["ff02::1/64"]}},
     "vrfs.blue.gateway.ip[0]: must be a unicast address with its prefix length, "
     "got 'ff02::1/64'"),
    ({"vrfs.blue.gateway": {"ip": ["10.9.0.1/24", "10.9.0.1/16"]}},
     "vrfs.blue.gateway.ip[1]: must be an address not given twice, got '10.9.0.1/16'"),
    ({"vrfs.blue.gateway": {"ip": "10.9.0.1/24"}},
     "vrfs.blue.gateway.ip: must be a list, got '10.9.0.1/24'"),
    ({"vrfs.blue.gateway": {"mac": "ff:ff:ff:ff:ff:ff"}},
     "vrfs.blue.gateway.mac: must be a unicast MAC address (low bit of the first byte "
     "clear), got 'ff:ff:ff:ff:ff:ff'"),
    ({"vrfs.blue.gateway": {"address": "10.9.0.1/24"}},
     "vrfs.blue.gateway: unknown key 'address', allowed: ip, mac"),
    # bind
    ({"ports[1].bind.mac": DELETE}, "ports[1].bind.mac: is required"),
    ({"ports[1].bind.mac": "01:00:5e:00:00:01"},
     "ports[1].bind.mac: must be a unicast MAC address (low bit of the first byte clear), "
     "got '01:00:5e:00:00:01'"),
    ({"ports[1].bind.ip": ["10.9.0.5/24"]},
     "ports[1].bind.ip[0]: must be a prefix with no host bits set, got '10.9.0.5/24'"),
    ({"ports[1].bind.ip": ["10.9.0.500"]},
     "ports[1].bind.ip[0]: must be an IPv4 or IPv6 address or prefix, got '10.9.0.500'"),
    ({"ports[1].bind.ip": [5]}, "ports[1].bind.ip[0]: must be an IPv4 or IPv6 prefix, got 5"),
    ({"ports[1].bind.ip": ["10.9.0.5", "10.9.0.5/32"]},
     "ports[1].bind.ip[1]: must be unique in bind.ip, got '10.9.0.5/32'"),
    ({"ports[1].bind.ip": [f"10.9.1.{i}" for i in range(17)]},
     "ports[1].bind.ip: must be a list of 0 to 16 prefixes, got 17 prefixes"),
    ({"ports[1].bind.vlan": 5},
     "ports[1].bind: unknown key 'vlan', allowed: mac, ip, allowed_address_pairs"),
    ({"ports[1].bind": "02:00:00:00:10:01"},
     "ports[1].bind: must be a mapping, got '02:00:00:00:10:01'"),
    ({AAP: [{"mac": "00:00:5e:00:01:01"}]}, f"{AAP}[0].ip: is required"),
    ({AAP: [{"ip": "10.9.0.100", "mode": "hot-standby"}]},
     f"{AAP}[0].mode: must be one of active-standby, active-active, got 'hot-standby'"),
    ({AAP: [{"ip": "10.9.0.100", "mac": "33:33:00:00:00:01"}]},
     f"{AAP}[0].mac: must be a unicast MAC address (low bit of the first byte clear), "
     "got '33:33:00:00:00:01'"),
    ({AAP: [{"ip": "10.9.0.100"}, {"ip": "10.9.0.100/32", "mac": "02:00:00:00:10:07"}]},
     f"{AAP}[1].ip: must be unique in the port's allowed_address_pairs, got '10.9.0.100/32'"),
    ({AAP: [{"ip": "10.9.0.100", "weight": 1}]},
     f"{AAP}[0]: unknown key 'weight', allowed: ip, mac, mode"),
    ({AAP: [None]}, f"{AAP}[0]: must be a mapping, got None"),
    ({AAP: [{"ip": f"10.9.1.{i}"} for i in range(17)]},
     f"{AAP}: must be a list of 0 to 16 pairs, got 17 pairs"),
    ({AAP: [{"ip": "10.9.0.5"}]},
     f"{AAP}[0].ip: must be an IP that no port of VRF blue binds (ports[1] has it in "
     "bind.ip), got '10.9.0.5/32'"),
    # across the ports of a VRF
    ({"ports[2].bind": {"mac": "02:00:00:00:10:02", "ip": ["10.9.0.5"]}},
     "ports[2].bind.ip[0]: must be a prefix no other port of VRF blue binds or lists "
     "(ports[1] has it), got '10.9.0.5/32'"),
    ({"ports[2].bind": {"mac": "02:00:00:00:10:02",
                        "allowed_address_pairs": [{"ip": "10.9.0.5/32"}]}},
     "ports[2].bind.allowed_address_pairs[0].ip: must be an IP that no port of VRF blue "
     "binds (ports[1] has it in bind.ip), got '10.9.0.5/32'"),
    ({AAP: [{"ip": "10.9.0.100"}],
      "ports[2].bind": {"mac": "02:00:00:00:10:02", "ip": ["10.9.0.100/32"]}},
     "ports[2].bind.ip[0]: must be a prefix no other port of VRF blue binds or lists "
     "(ports[1].bind.allowed_address_pairs[0] has it), got '10.9.0.100/32'"),
    ({AAP: [{"ip": "10.9.0.100"}],
      "ports[2].bind": {"mac": "02:00:00:00:10:02", "allowed_address_pairs": [
          {"ip": "10.9.0.100", "mode": "active-active"}]}},
     "ports[2].bind.allowed_address_pairs[0].mode: must be active-standby like "
     "ports[1].bind.allowed_address_pairs[0] (one IP has one mode in a VRF), "
     "got 'active-active'"),
    # bind and proxy_arp on a port in no VRF
    ({**XC, "ports[4].bind": {"mac": "02:00:00:00:10:05"}},
     "ports[4].bind: must be absent on a port with xconnect (it is in no VRF), "
     "got {'mac': '02:00:00:00:10:05'}"),
    ({**XC, "ports[4].proxy_arp": True},
     "ports[4].proxy_arp: must be false on a port with xconnect (it is in no VRF), got True"),
    ({"ports[1].proxy_arp": "on"}, "ports[1].proxy_arp: must be true or false, got 'on'"),
    ({"ports[0].foo": 1},
     "ports[0]: unknown key 'foo', allowed: name, devargs, mac, vrf, mode, fat_flows, "
     "fat_flow_exclude, mirror, xconnect, bind, proxy_arp"),
    # a route where bind routes
    ({"vrfs.blue.routes": [{"prefix": "10.8.0.0/16", "via": "nh1"},
                           {"prefix": "10.9.0.5/32", "via": "nh1"}]},
     "vrfs.blue.routes[1].prefix: must be a prefix no port's bind routes "
     "(ports[1].bind.ip[0] has it), got '10.9.0.5/32'"),
    ({AAP: [{"ip": "2001:db8:9::64"}],
      "vrfs.blue.routes": [{"prefix": "2001:db8:9::64/128", "via": "nh1"}]},
     "vrfs.blue.routes[0].prefix: must be a prefix no port's bind routes "
     f"({AAP}[0] has it), got '2001:db8:9::64/128'"),
    # next hops resolved by ARP / ND
    ({"nexthops.nh1.mac": DELETE},
     "nexthops.nh1.mac: is required unless ip is given (then ARP / ND resolves the MAC)"),
    ({"nexthops.nh1.ip": "224.0.0.5"}, "nexthops.nh1.ip: must be a unicast address, "
                                       "got '224.0.0.5'"),
    ({"nexthops.nh1.ip": "0.0.0.0"}, "nexthops.nh1.ip: must be a unicast address, "
                                     "got '0.0.0.0'"),
    ({"nexthops.nh1.ip": "255.255.255.255"},
     "nexthops.nh1.ip: must be a unicast address, got '255.255.255.255'"),
    ({"nexthops.nh1.ip": "::"}, "nexthops.nh1.ip: must be a unicast address, got '::'"),
    ({"nexthops.nh1.ip": "ff02::1:ff00:1"},
     "nexthops.nh1.ip: must be a unicast address, got 'ff02::1:ff00:1'"),
    ({"nexthops.nh1.ip": "10.0.0.0/24"},
     "nexthops.nh1.ip: must be an IPv4 or IPv6 address, got '10.0.0.0/24'"),
    ({"nexthops.nh2": {"port": "up1", "ip": "10.0.0.9"},
      "node.tunnel_address": "192.0.2.1",
      "ports[0].mirror": {"analyzer": {"address": "192.0.2.9", "udp_port": 4789,
                                       "via": "nh2"}}},
     "ports[0].mirror.analyzer.via: must be a next hop with a mac (copies are not held "
     "for ARP / ND), got 'nh2'"),
    # top level
    ({"bogus": 1}, "unknown key 'bogus', allowed: node, eal, flow_table, ports, vrfs, "
                   "nexthops, groups, mpls, pseudowires, neighbors"),
]


@pytest.mark.parametrize("changes, message", CASES)
def test_invalid(changes, message):
    assert errors_of(changes) == [f"lab.yaml: {message}"]


def test_every_error_is_reported_together():
    errors = errors_of({"ports[1].bind.mac": "01:00:00:00:00:00",
                        "vrfs.blue.mac_aging": -1, "neighbors": {"queue": 100},
                        "nexthops.nh1.mac": DELETE})
    assert [e.split(":")[1].strip() for e in errors] == [
        "ports[1].bind.mac", "vrfs.blue.mac_aging", "nexthops.nh1.mac", "neighbors.queue"]


# ------------------------------------------------------------------ accepted

DOCS = """\
node: {name: leaf1}
neighbors:
  reachable_time: 20
  retry: 0.5
  queue: 64
vrfs:
  blue:
    forwarding: l2_l3
    flood_unknown_unicast: false
    mac_learning: true
    mac_aging: 120
    macs:
      - {mac: "02:00:00:00:10:01", port: vm1}
    gateway:
      ip: [10.9.0.1/24, "2001:db8:9::1/64"]
      mac: "00:00:5e:00:01:00"
ports:
  - name: vm1
    devargs: net_null0
    mac: "02:00:00:00:00:01"
    vrf: blue
    bind:
      ip: [10.9.0.5/32, "2001:db8:9::5/128"]
      mac: "02:00:00:00:10:01"
      allowed_address_pairs:
        - {ip: 10.9.0.100/32, mac: "00:00:5e:00:01:01", mode: active-standby}
    proxy_arp: true
  - name: vm2
    devargs: net_null1
    mac: "02:00:00:00:00:02"
    vrf: blue
nexthops:
  host2: {port: vm2, ip: 10.9.0.6}
"""


def test_the_documented_example_builds_the_model():
    cfg = load_text(DOCS, "lab.yaml")
    assert cfg.neighbors == Neighbors(reachable_time=20.0, retry=0.5, queue=64)
    [blue] = cfg.vrfs
    assert (blue.name, blue.forwarding, blue.flood_unknown_unicast, blue.mac_learning,
            blue.mac_aging) == ("blue", "l2_l3", False, True, 120.0)
    assert blue.macs == [StaticMac(mac("02:00:00:00:10:01"), "vm1", 0)]
    assert blue.gateway == Gateway([ipaddress.IPv4Interface("10.9.0.1/24"),
                                    ipaddress.IPv6Interface("2001:db8:9::1/64")],
                                   mac("00:00:5e:00:01:00"))
    vm1, vm2 = cfg.ports
    assert vm1.bind == Bind(mac("02:00:00:00:10:01"),
                            [net("10.9.0.5/32"), net("2001:db8:9::5/128")],
                            [AllowedPair(net("10.9.0.100/32"), mac("00:00:5e:00:01:01"),
                                         "active-standby")])
    assert vm1.proxy_arp is True
    assert (vm2.bind, vm2.proxy_arp) == (None, False)
    host2 = cfg.nexthops[0]
    assert (host2.name, host2.port_index, host2.mac, host2.ip, host2.implicit) == (
        "host2", 1, None, ipaddress.IPv4Address("10.9.0.6"), False)
    names = [(nh.name, nh.index, nh.port_index, nh.mac, nh.implicit) for nh in cfg.nexthops]
    assert names == [("host2", 0, 1, None, False),
                     ("vm1~bind", 1, 0, mac("02:00:00:00:10:01"), True),
                     ("vm1~aap~00:00:5e:00:01:01", 2, 0, mac("00:00:5e:00:01:01"), True)]
    assert cfg.groups == []
    assert list(blue.routes) == [Route(net("10.9.0.5/32"), "vm1~bind", False, 1),
                                 Route(net("2001:db8:9::5/128"), "vm1~bind", False, 1),
                                 Route(net("10.9.0.100/32"), "vm1~aap~00:00:5e:00:01:01",
                                       False, 2)]


def test_defaults():
    cfg = loaded({"ports[1].bind": DELETE})
    assert cfg.neighbors == Neighbors(30.0, 1.0, 8)
    default = cfg.vrfs[0]
    assert (default.forwarding, default.flood_unknown_unicast, default.mac_learning,
            default.mac_aging, default.macs, default.gateway) == ("l3", False, False, 300.0,
                                                                   [], None)
    assert all(p.bind is None and p.proxy_arp is False for p in cfg.ports)
    assert cfg.nexthops[0].ip is None and cfg.nexthops[0].implicit is False
    assert [len(v.routes) for v in cfg.vrfs] == [1, 0, 0]


@pytest.mark.parametrize("changes", [
    {"vrfs.green.flood_unknown_unicast": True, "vrfs.green.mac_learning": True},
    {"vrfs.blue.flood_unknown_unicast": True, "vrfs.blue.mac_learning": True},
    {"vrfs.default.flood_unknown_unicast": False, "vrfs.default.mac_learning": False},
    {"vrfs.green.routes": []},
    {"vrfs.green.gateway": {"ip": ["10.7.0.1/24"]}},            # answered ARP, sources
    {"vrfs.blue.gateway": {"mac": "00:00:5e:00:01:00"}},         # ip: none
    {"vrfs.blue.gateway": None},
    {"ports[1].bind": {"mac": "02:00:00:00:10:01"}},             # MAC-only
    {"ports[3].bind": {"mac": "02:00:00:00:10:04", "ip": ["10.9.0.5"]}},   # other VRF
    {"ports[2].bind": {"mac": "02:00:00:00:10:02", "ip": ["10.9.0.0/24"]}},  # overlaps
    {"ports[1].proxy_arp": True, "ports[3].proxy_arp": False},
    {"nexthops.nh1.ip": "10.0.0.9"},                             # mac and ip
    {"nexthops.nh1.mac": DELETE, "nexthops.nh1.ip": "2001:db8::9"},
    {"vrfs.blue.macs": [{"mac": "02:00:00:00:10:01", "port": "vm2"}]},   # bind.mac too
    {"vrfs.default.routes": [{"prefix": "10.9.0.5/32", "via": "nh1"}]},  # other VRF
    {"vrfs.green.macs": [{"mac": "02:00:00:00:10:01", "port": "sw1"}]},
])
def test_valid(changes):
    loaded(changes)


def test_next_hop_with_mac_and_ip():
    cfg = loaded({"nexthops.nh1.ip": "10.0.0.9", "nexthops.nh2": {"port": "up1",
                                                                  "ip": "fe80::1"}})
    nh1, nh2 = cfg.nexthops[:2]
    assert (nh1.mac, nh1.ip) == (mac("02:00:00:00:01:01"), ipaddress.ip_address("10.0.0.9"))
    assert (nh2.mac, nh2.ip) == (None, ipaddress.ip_address("fe80::1"))


def test_long_values_are_cut():
    errors = errors_of({"ports[1].bind.mac": "x" * 5000,
                        "vrfs.blue.gateway": {"ip": ["y" * 5000]}})
    assert len(errors) == 2 and all(len(e) < 200 for e in errors)
    assert "(5000 characters)" in errors[0]


# ------------------------------------------------------------------ derivation

def three_ports(mode: str = "active-active") -> dict:
    """blue: vm1, vm2, vm3 all list 10.9.0.100 (vm2 without mac); vm1 also binds."""
    doc = base()
    doc["ports"][2]["bind"] = {"mac": "02:00:00:00:10:02", "allowed_address_pairs": [
        {"ip": "10.9.0.100", "mode": mode}]}
    doc["ports"].append({"name": "vm3", "devargs": "net_null4", "mac": "02:00:00:00:00:05",
                         "vrf": "blue", "bind": {
                             "mac": "02:00:00:00:10:03", "ip": ["2001:db8:9::3"],
                             "allowed_address_pairs": [
                                 {"ip": "10.9.0.100/32", "mac": "00:00:5e:00:01:01",
                                  "mode": mode}]}})
    doc["ports"][1]["bind"]["allowed_address_pairs"] = [
        {"ip": "10.9.0.100", "mac": "00:00:5e:00:01:01", "mode": mode},
        {"ip": "10.9.0.101"}]                                   # mac: bind.mac
    doc["groups"] = {"g1": {"members": [{"nexthop": "nh1"}]}}
    doc["vrfs"]["blue"]["routes"] = [{"prefix": "0.0.0.0/0", "via": "g1"}]
    return doc


def test_aap_on_several_ports_is_a_group():
    cfg = loaded(doc=three_ports())
    assert [(nh.name, nh.index, nh.port_index, nh.mac.hex(":"), nh.implicit)
            for nh in cfg.nexthops] == [
        ("nh1", 0, 0, "02:00:00:00:01:01", False),
        ("vm1~bind", 1, 1, "02:00:00:00:10:01", True),
        ("vm1~aap~00:00:5e:00:01:01", 2, 1, "00:00:5e:00:01:01", True),
        ("vm2~aap~02:00:00:00:10:02", 3, 2, "02:00:00:00:10:02", True),
        ("vm3~bind", 4, 4, "02:00:00:00:10:03", True),
        ("vm3~aap~00:00:5e:00:01:01", 5, 4, "00:00:5e:00:01:01", True)]
    g1, aap = cfg.groups
    assert (g1.name, g1.index, g1.implicit) == ("g1", 0, False)
    assert (aap.name, aap.index, aap.buckets, aap.hash, aap.implicit) == (
        "aap~10.9.0.100/32", 1, 4096, HashSpec(), True)
    assert [(m.nexthop, m.nexthop_index, m.weight) for m in aap.members] == [
        ("vm1~aap~00:00:5e:00:01:01", 2, 1), ("vm2~aap~02:00:00:00:10:02", 3, 1),
        ("vm3~aap~00:00:5e:00:01:01", 5, 1)]
    blue = cfg.vrfs[1]
    assert list(blue.routes) == [
        Route(net("0.0.0.0/0"), "g1", True, 0),                 # the file's first
        Route(net("10.9.0.5/32"), "vm1~bind", False, 1),
        Route(net("10.9.0.100/32"), "aap~10.9.0.100/32", True, 1),
        Route(net("10.9.0.101/32"), "vm1~bind", False, 1),      # (port, mac) reused
        Route(net("2001:db8:9::3/128"), "vm3~bind", False, 4)]
    assert [len(v.routes) for v in cfg.vrfs] == [1, 5, 0]


def test_the_files_indexes_do_not_move():
    plain = three_ports()
    for p in plain["ports"]:
        p.pop("bind", None)
    without, with_ = loaded(doc=plain), loaded(doc=three_ports())
    n, g = len(without.nexthops), len(without.groups)
    assert with_.nexthops[:n] == without.nexthops
    assert with_.groups[:g] == without.groups
    for a, b in zip(without.vrfs, with_.vrfs):
        assert list(b.routes)[:len(a.routes)] == list(a.routes)
    assert all(nh.implicit for nh in with_.nexthops[n:])
    assert all(gr.implicit for gr in with_.groups[g:])


def test_an_aap_alone_names_its_next_hop_by_the_aap():
    """A port without bind.ip: its AAP's next hop (bind.mac) is PORT~aap~MAC."""
    cfg = loaded({"ports[1].bind": {"mac": "02:00:00:00:10:01", "allowed_address_pairs": [
        {"ip": "10.9.0.100"}, {"ip": "2001:db8:9::100"}]}})
    assert [(nh.name, nh.index) for nh in cfg.nexthops] == [
        ("nh1", 0), ("vm1~aap~02:00:00:00:10:01", 1)]
    assert [(r.prefix, r.via, r.via_index) for r in cfg.vrfs[1].routes] == [
        (net("10.9.0.100/32"), "vm1~aap~02:00:00:00:10:01", 1),
        (net("2001:db8:9::100/128"), "vm1~aap~02:00:00:00:10:01", 1)]


def test_nothing_is_derived_in_an_l2_vrf():
    doc = three_ports()
    doc["vrfs"]["blue"] = {"forwarding": "l2"}
    cfg = loaded(doc=doc)
    assert [nh.name for nh in cfg.nexthops] == ["nh1"]
    assert [g.name for g in cfg.groups] == ["g1"]
    assert [len(v.routes) for v in cfg.vrfs] == [1, 0, 0]
    assert cfg.ports[1].bind.ip == [net("10.9.0.5/32")]


def test_one_aap_ip_in_two_vrfs_makes_two_groups():
    doc = three_ports()
    doc["vrfs"]["red"] = {}
    doc["ports"] += [
        {"name": f"r{i}", "devargs": f"net_null{5 + i}", "mac": f"02:00:00:00:00:1{i}",
         "vrf": "red", "bind": {"mac": f"02:00:00:00:20:0{i}",
                                "allowed_address_pairs": [{"ip": "10.9.0.100"}]}}
        for i in range(2)]
    cfg = loaded(doc=doc)
    assert [g.name for g in cfg.groups] == ["g1", "aap~10.9.0.100/32",
                                            "aap~10.9.0.100/32~red"]
    red = cfg.vrfs[3]
    assert list(red.routes) == [Route(net("10.9.0.100/32"), "aap~10.9.0.100/32~red", True, 2)]
    assert [m.nexthop for m in cfg.groups[2].members] == ["r0~aap~02:00:00:00:20:00",
                                                          "r1~aap~02:00:00:00:20:01"]


def test_derived_objects_count_against_the_limits(monkeypatch):
    monkeypatch.setattr(validate, "MAX_NEXTHOPS", 5)
    monkeypatch.setattr(validate, "MAX_GROUPS", 2)
    assert errors_of({}, three_ports()) == [
        "lab.yaml: nexthops: must be at most 5 next hops with the 5 that the ports' bind "
        "derives, got 6 (1 in the file)"]
    monkeypatch.setattr(validate, "MAX_NEXTHOPS", 6)
    assert loaded(doc=three_ports())
    monkeypatch.setattr(validate, "MAX_GROUPS", 1)
    assert errors_of({}, three_ports()) == [
        "lab.yaml: groups: must be at most 1 groups with the 1 that the ports' bind "
        "derives, got 2 (1 in the file)"]
    monkeypatch.setattr(validate, "MAX_GROUPS", 2)
    monkeypatch.setattr(validate, "MAX_ROUTES_PER_VRF", 4)
    assert errors_of({}, three_ports()) == [
        "lab.yaml: vrfs.blue.routes: must be at most 4 routes with the 4 that its ports' "
        "bind derives, got 5 (1 in the file)"]


# --------------------------------------------------- routes read by the fast path

def run_text(n: int, clash_at: int | None = None) -> str:
    """base() with n one-line routes in blue (a run the fast path reads), the one at
    clash_at on vm1's bound 10.9.0.5/32."""
    lines = [f"      - {{prefix: 10.{i >> 8}.{i & 255}.0/24, via: nh1}}" for i in range(n)]
    if clash_at is not None:
        lines[clash_at] = "      - {prefix: 10.9.0.5/32, via: nh1}"
    doc = base()
    doc["vrfs"]["blue"]["routes"] = "@ROUTES@"
    doc["ports"][2]["bind"] = {"mac": "02:00:00:00:10:02", "ip": ["2001:db8:9::2"],
                               "allowed_address_pairs": [{"ip": "10.9.0.100"}]}
    text = dump(doc)
    return text.replace("    routes: '@ROUTES@'\n", "    routes:\n" + "\n".join(lines) + "\n")


def load_both(text: str, monkeypatch):
    """(fast, slow): load_text with the route runs, and with YAML alone."""
    assert len(fast.find_runs(text)[1]) == 1            # the fast path takes the run
    out = []
    for slow in (False, True):
        with monkeypatch.context() as m:
            if slow:
                m.setattr(fast, "RUN_MIN", 1 << 40)
                assert fast.find_runs(text)[1] == []
            try:
                out.append(load_text(text, "lab.yaml"))
            except ConfigError as e:
                out.append(e.errors)
    return out


def test_derived_routes_follow_a_route_table(monkeypatch):
    quick, slow = load_both(run_text(300), monkeypatch)
    for cfg in (quick, slow):
        routes = cfg.vrfs[1].routes
        assert isinstance(routes, RouteTable) and len(routes) == 303
        assert routes[0] == Route(net("10.0.0.0/24"), "nh1", False, 0)
        assert routes[299] == Route(net("10.1.43.0/24"), "nh1", False, 0)
        assert list(routes[300:]) == [
            Route(net("10.9.0.5/32"), "vm1~bind", False, 1),
            Route(net("2001:db8:9::2/128"), "vm2~bind", False, 2),
            Route(net("10.9.0.100/32"), "vm2~bind", False, 2)]
        assert routes.names[0] == ["nh1", "vm1~bind", "vm2~bind"]
        assert routes.family[300:].tolist() == [4, 6, 4]
        assert cfg.vrfs[0].routes.names is routes.names       # every table: all names
    assert list(quick.vrfs[1].routes) == list(slow.vrfs[1].routes)


def test_a_clash_inside_a_run_is_reported_alike(monkeypatch):
    quick, slow = load_both(run_text(100, clash_at=57), monkeypatch)
    assert quick == slow == [
        "lab.yaml: vrfs.blue.routes[57].prefix: must be a prefix no port's bind routes "
        "(ports[1].bind.ip[0] has it), got '10.9.0.5/32'"]


def test_derived_routes_follow_a_list():
    cfg = loaded(doc=three_ports())
    cfg.vrfs[1].routes = [Route(net("10.1.0.0/16"), "nh1", False, 0)]
    names = ([nh.name for nh in cfg.nexthops], [g.name for g in cfg.groups])
    more = [Route(net("10.9.0.5/32"), "vm1~bind", False, 1)]
    assert validate._with_routes(cfg.vrfs[1].routes, more, names) == [
        Route(net("10.1.0.0/16"), "nh1", False, 0), Route(net("10.9.0.5/32"), "vm1~bind",
                                                          False, 1)]


# ------------------------------------------------------------------ vnet.py

def test_link_local_is_rfc_4291_eui_64():
    # RFC 4291 appendix A: 34-56-78-9A-BC-DE → interface identifier 3656:78FF:FE9A:BCDE
    assert vnet.link_local(mac("34:56:78:9a:bc:de")) == \
        ipaddress.IPv6Address("fe80::3656:78ff:fe9a:bcde")
    # the U/L bit set in the MAC is cleared in the identifier
    assert vnet.link_local(mac("02:00:00:00:00:01")) == ipaddress.IPv6Address("fe80::ff:fe00:1")
    assert vnet.link_local(mac("00:11:22:33:44:55")) == \
        ipaddress.IPv6Address("fe80::211:22ff:fe33:4455")
    assert vnet.link_local(mac("02:00:00:00:00:01")) in ipaddress.ip_network("fe80::/64")


def vnet_doc() -> dict:
    """base() plus gateways, static MACs, AAPs, an attachment circuit (in no VRF) and
    next hops resolved by ARP / ND."""
    doc = three_ports("active-standby")
    put(doc, "vrfs.blue.gateway", {"ip": ["192.0.2.1/24", "10.9.0.1/24", "2001:db8:9::1/64"],
                                    "mac": "00:00:5e:00:01:00"})
    put(doc, "vrfs.blue.macs", [{"mac": "02:00:00:00:10:02", "port": "vm1"},
                                {"mac": "02:00:00:00:99:01", "port": "vm3"}])
    put(doc, "vrfs.green.macs", [{"mac": "02:00:00:00:99:02", "port": "sw1"}])
    doc["ports"][3]["bind"] = {"mac": "02:00:00:00:10:04", "allowed_address_pairs": [
        {"ip": "10.7.0.9", "mac": "02:00:00:00:10:44"}]}
    doc["ports"].append({"name": "ce1", "devargs": "net_null9", "mac": "02:00:00:00:00:09",
                         "xconnect": "pw1"})
    doc["pseudowires"] = {"pw1": {"ac_port": "ce1", "label": 500, "via": "nh1"}}
    doc["nexthops"].update({
        "a": {"port": "vm2", "ip": "10.9.0.7"},
        "b": {"port": "vm2", "ip": "10.9.0.7", "labels": [16]},   # a's neighbour
        "c": {"port": "vm3", "ip": "10.9.0.7"},
        "d": {"port": "up1", "mac": "02:00:00:00:01:02", "ip": "10.0.0.2"},
        "e": {"port": "vm1", "ip": "2001:db8:9::7"}})
    return doc


def test_vrf_ports():
    cfg = loaded(doc=vnet_doc())
    assert [p.name for p in cfg.ports] == ["up1", "vm1", "vm2", "sw1", "vm3", "ce1"]
    assert vnet.vrf_ports(cfg, 0) == [0]                 # ce1 (vrf_index 0) is in no VRF
    assert vnet.vrf_ports(cfg, 1) == [1, 2, 4]
    assert vnet.vrf_ports(cfg, 2) == [3]


def test_static_macs():
    cfg = loaded(doc=vnet_doc())
    assert [(v, m.hex(":"), p) for v, m, p in vnet.static_macs(cfg)] == [
        (1, "02:00:00:00:10:02", 1),        # macs: vm2's bind.mac, put on vm1
        (1, "02:00:00:00:99:01", 4),
        (1, "02:00:00:00:10:01", 1),        # bind.mac of vm1 (vm2's: already there)
        (1, "02:00:00:00:10:03", 4),
        (1, "00:00:5e:00:01:01", 1),        # AAP MACs, first port listing
        (2, "02:00:00:00:99:02", 3),
        (2, "02:00:00:00:10:04", 3),        # an l2 VRF has its bind and AAP MACs too
        (2, "02:00:00:00:10:44", 3)]


def test_allowed():
    cfg = loaded(doc=vnet_doc())
    pairs, macs = vnet.allowed(cfg.ports[1])
    assert pairs == [(mac("02:00:00:00:10:01"), net("10.9.0.5/32")),
                     (mac("00:00:5e:00:01:01"), net("10.9.0.100/32")),
                     (mac("02:00:00:00:10:01"), net("10.9.0.101/32"))]
    assert macs == {mac("02:00:00:00:10:01"), mac("00:00:5e:00:01:01")}
    assert vnet.allowed(cfg.ports[0]) == ([], set())
    only_mac = loaded({"ports[1].bind": {"mac": "02:00:00:00:10:01"}})
    assert vnet.allowed(only_mac.ports[1]) == ([], {mac("02:00:00:00:10:01")})


def test_proxy_hosts():
    cfg = loaded(doc=vnet_doc())
    assert [(str(n), m.hex(":"), p) for n, m, p in vnet.proxy_hosts(cfg, 1)] == [
        ("10.9.0.5/32", "02:00:00:00:10:01", 1),
        ("10.9.0.100/32", "00:00:5e:00:01:01", 1),
        ("10.9.0.101/32", "02:00:00:00:10:01", 1),
        ("10.9.0.100/32", "02:00:00:00:10:02", 2),
        ("2001:db8:9::3/128", "02:00:00:00:10:03", 4),
        ("10.9.0.100/32", "00:00:5e:00:01:01", 4)]
    assert [(str(n), p) for n, _, p in vnet.proxy_hosts(cfg, 2)] == [("10.7.0.9/32", 3)]
    assert vnet.proxy_hosts(cfg, 0) == []


def test_neighbours():
    cfg = loaded(doc=vnet_doc())
    assert [nh.name for nh in cfg.nexthops[:6]] == ["nh1", "a", "b", "c", "d", "e"]
    v4, v6 = ipaddress.IPv4Address, ipaddress.IPv6Address
    assert vnet.neighbours(cfg) == [(2, v4("10.9.0.7")), (4, v4("10.9.0.7")),
                                    (1, v6("2001:db8:9::7"))]
    assert vnet.neighbour_of(cfg) == {1: 0, 2: 0, 3: 1, 5: 2}
    assert vnet.neighbours(loaded()) == [] and vnet.neighbour_of(loaded()) == {}


def test_gateway_mac_and_addresses():
    cfg = loaded(doc=vnet_doc())
    assert vnet.gateway_mac(cfg, 1, 2) == mac("00:00:5e:00:01:00")
    assert vnet.gateway_mac(cfg, 2, 3) == mac("02:00:00:00:00:04")     # sw1's own
    assert vnet.gateway_mac(cfg, 0, 0) == mac("02:00:00:00:00:01")
    v4, v6 = ipaddress.IPv4Address, ipaddress.IPv6Address
    assert vnet.gateway_addresses(cfg, 1, 4) == [v4("192.0.2.1"), v4("10.9.0.1")]
    assert vnet.gateway_addresses(cfg, 1, 6) == [v6("2001:db8:9::1")]
    assert vnet.gateway_addresses(cfg, 2, 4) == []
    no_mac = loaded({"vrfs.blue.gateway": {"ip": ["10.9.0.1/24"]}})
    assert vnet.gateway_mac(no_mac, 1, 2) == mac("02:00:00:00:00:03")


def test_request_source():
    cfg = loaded(doc=vnet_doc())
    a = ipaddress.ip_address
    assert vnet.request_source(cfg, 2, a("10.9.0.7")) == a("10.9.0.1")     # its prefix
    assert vnet.request_source(cfg, 2, a("192.0.2.77")) == a("192.0.2.1")
    assert vnet.request_source(cfg, 2, a("10.10.0.7")) == a("192.0.2.1")   # the first
    assert vnet.request_source(cfg, 1, a("2001:db8:9::7")) == a("2001:db8:9::1")
    assert vnet.request_source(cfg, 1, a("2001:db8:7::7")) == a("2001:db8:9::1")
    assert vnet.request_source(cfg, 3, a("10.7.0.1")) == a("0.0.0.0")      # no gateway
    assert vnet.request_source(cfg, 3, a("2001:db8::1")) == a("fe80::ff:fe00:4")
    v4_only = loaded({"vrfs.blue.gateway": {"ip": ["10.9.0.1/24"]}})
    assert vnet.request_source(v4_only, 2, a("2001:db8::1")) == a("fe80::ff:fe00:3")


def test_aap_groups_and_members():
    for mode in ("active-active", "active-standby"):
        cfg = loaded(doc=three_ports(mode))
        assert vnet.aap_groups(cfg) == [(1, mode, [1, 2, 4])]
    aa, standby = loaded(doc=three_ports()), loaded(doc=three_ports("active-standby"))
    assert vnet.aap_members(aa, 1, {0, 1, 2, 4}) == [(2, 1, True), (3, 1, True), (5, 1, True)]
    assert vnet.aap_members(aa, 1, {2, 4}) == [(2, 1, False), (3, 1, True), (5, 1, True)]
    assert vnet.aap_members(aa, 1, set()) == [(2, 1, False), (3, 1, False), (5, 1, False)]
    assert vnet.aap_members(standby, 1, {1, 2, 4}) == [(2, 1, True), (3, 1, False),
                                                       (5, 1, False)]
    assert vnet.aap_members(standby, 1, {2, 4}) == [(2, 1, False), (3, 1, True),
                                                    (5, 1, False)]
    assert vnet.aap_members(standby, 1, {4}) == [(2, 1, False), (3, 1, False), (5, 1, True)]
    assert vnet.aap_members(standby, 1, {0}) == [(2, 1, False), (3, 1, False),
                                                 (5, 1, False)]
    assert vnet.aap_groups(loaded()) == []


def test_aap_groups_of_two_vrfs():
    doc = three_ports()
    doc["vrfs"]["red"] = {}
    doc["ports"] += [
        {"name": f"r{i}", "devargs": f"net_null{5 + i}", "mac": f"02:00:00:00:00:1{i}",
         "vrf": "red", "bind": {"mac": f"02:00:00:00:20:0{i}", "allowed_address_pairs": [
             {"ip": "10.9.0.100", "mode": "active-standby"}]}} for i in range(2)]
    cfg = loaded(doc=doc)
    assert vnet.aap_groups(cfg) == [(1, "active-active", [1, 2, 4]),
                                    (2, "active-standby", [5, 6])]
    assert [nh.name for nh in cfg.nexthops[6:]] == ["r0~aap~02:00:00:00:20:00",
                                                   "r1~aap~02:00:00:00:20:01"]
    assert vnet.aap_members(cfg, 2, {5, 6}) == [(6, 1, True), (7, 1, False)]
    assert vnet.aap_members(cfg, 2, {6}) == [(6, 1, False), (7, 1, True)]


# ------------------------------------------------------------------ hostile values

def _places(doc, path=""):
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for key, value in items:
        here = f"{path}[{key}]" if isinstance(doc, list) else (
            f"{path}.{key}" if path else str(key))
        yield here, key
        if isinstance(value, (dict, list)):
            yield from _places(value, here)


HOSTILE = [None, [], {}, [None], {"x": None}, True, -1, 1.5, float("nan"), "x" * 5000,
           "ff:ff:ff:ff:ff:ff", "10.9.0.5/32"]


def test_every_place_takes_every_hostile_value():
    """vnet_doc() with each place replaced by each hostile value: ConfigError (bounded
    lines) or a Config, never another exception."""
    doc = vnet_doc()
    doc["neighbors"] = {"reachable_time": 30, "retry": 1, "queue": 8}
    places = [p for p, _ in _places(doc)]
    assert len(places) > 100
    t0 = time.monotonic()
    for path in places:
        for value in HOSTILE:
            d = copy.deepcopy(doc)
            put(d, path, value)
            try:
                load_text(dump(d), "lab.yaml")
            except ConfigError as e:
                # (the devargs message lists the installed vdev drivers: not ours)
                assert e.errors and (path.endswith("devargs") or
                                     max(map(len, e.errors)) <= LINE), (path, value)
            except Exception as e:          # noqa: BLE001 - the point of the test
                raise AssertionError(f"{path} = {str(value)[:40]}: "
                                     f"{type(e).__name__}: {str(e)[:300]}") from None
    assert time.monotonic() - t0 < 120
