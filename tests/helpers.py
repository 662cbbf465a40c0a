"""Test helpers: build a validated Config straight from the dataclasses (no YAML loader)."""
from __future__ import annotations

import ipaddress

from dataplane.crc32c import crc32c
from dataplane.config.model import (FAT_FLOW_PROTOS, Config, FatFlowRule, FlowTable, Group,
                                    HashSpec, Member, NextHop, Node, Port, Route, Vrf)


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def port_mac(index: int) -> str:
    return f"02:00:00:00:00:{index + 1:02x}"


DEFAULT_PORTS = (("p0", "default"), ("up1", "default"), ("up2", "default"),
                 ("r0", "red"), ("ce1", None))
DEFAULT_NEXTHOPS = {"nh1": ("up1", "02:00:00:00:01:01"),
                    "nh2": ("up2", "02:00:00:00:02:02"),
                    "nh3": ("up1", "02:00:00:00:01:03")}
DEFAULT_GROUPS = {"spines": [("nh2", 0), ("nh3", 1), ("nh1", 1)]}   # nh2 drained
DEFAULT_VRFS = {
    "default": [("10.0.0.0/8", "nh1"), ("10.1.0.0/16", "nh2"), ("10.1.2.0/24", "nh1"),
                ("10.2.0.0/16", "spines"), ("2001:db8::/32", "nh1"),
                ("2001:db8:1::/48", "nh2"), ("2001:db8:2::/48", "spines")],
    "red": [("10.0.0.0/8", "nh2"), ("::/0", "nh2")],
}


def fat_rule(rule) -> FatFlowRule:
    """A FatFlowRule from a FatFlowRule or a YAML-style dict ({"proto": "tcp", ...})."""
    if isinstance(rule, FatFlowRule):
        return rule
    rule = dict(rule)
    return FatFlowRule(proto=FAT_FLOW_PROTOS[rule.pop("proto")], **rule)


def make_config(ports=DEFAULT_PORTS, nexthops=DEFAULT_NEXTHOPS, groups=DEFAULT_GROUPS,
                vrfs=DEFAULT_VRFS, node: str = "leaf1", seed: int | None = None,
                hashes: dict[str, HashSpec] | None = None,
                flow_table: FlowTable | None = None, modes: dict[str, str] | None = None,
                fat_flows: dict[str, list] | None = None,
                fat_flow_exclude: dict[str, list[str]] | None = None) -> Config:
    """ports: (name, vrf or None); nexthops: {name: (port, mac)};
    groups: {name: [(nexthop, weight)]}; vrfs: {name: [(prefix, nexthop or group)]};
    hashes: {group name: HashSpec} for groups that do not use the default hash;
    flow_table: the flow_table section (default: FlowTable()); modes: {port: "flow" or
    "packet"} (default flow); fat_flows: {port: [FatFlowRule or YAML-style dict]};
    fat_flow_exclude: {port: [prefix]}."""
    vrf_index = {name: i for i, name in enumerate(vrfs)}
    port_index = {name: i for i, (name, _) in enumerate(ports)}
    nh_index = {name: i for i, name in enumerate(nexthops)}
    group_index = {name: i for i, name in enumerate(groups)}
    return Config(
        path="<test>",
        node=Node(name=node, seed=crc32c(node.encode()) if seed is None else seed),
        ports=[Port(name=n, index=i, devargs=f"net_null{i}", mac=mac(port_mac(i)), vrf=v,
                    vrf_index=vrf_index.get(v, 0), xconnect=None if v else "pw1",
                    mode=(modes or {}).get(n, "flow"),
                    fat_flows=[fat_rule(r) for r in (fat_flows or {}).get(n, [])],
                    fat_flow_exclude=[ipaddress.ip_network(x)
                                      for x in (fat_flow_exclude or {}).get(n, [])])
               for i, (n, v) in enumerate(ports)],
        vrfs=[Vrf(name=n, index=i, routes=[
                  Route(prefix=ipaddress.ip_network(pfx), via=via, via_group=via in groups,
                        via_index=group_index[via] if via in groups else nh_index[via])
                  for pfx, via in routes])
              for i, (n, routes) in enumerate(vrfs.items())],
        nexthops=[NextHop(name=n, index=i, port=p, port_index=port_index[p], mac=mac(m))
                  for i, (n, (p, m)) in enumerate(nexthops.items())],
        groups=[Group(name=n, index=i, members=[Member(nh, nh_index[nh], w) for nh, w in ms],
                      hash=(hashes or {}).get(n, HashSpec()))
                for i, (n, ms) in enumerate(groups.items())],
        flow_table=flow_table or FlowTable(),
    )
