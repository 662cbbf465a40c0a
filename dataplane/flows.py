"""Flow listing in the style of the vRouter `flow` tool: list, match, get.

Works on the flow tables a replay leaves in DIR/flows.json (and on `Core.flows()` of a
running forwarder, which the control socket will serve): each flow is a dict with the
key (vrf, family, src, dst, proto, sport, dport), in_port, next hop, group and pinned
member, the flow hash, packets, bytes, first/last seen and TCP state.
"""
from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Iterable, Optional

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6", 132: "sctp"}


def load(path: str) -> list[dict]:
    """Flows of a replay: DIR/flows.json, or the file itself."""
    p = Path(path)
    return json.loads((p / "flows.json" if p.is_dir() else p).read_text())


def match(flows: Iterable[dict], addr: Optional[str] = None, port: Optional[int] = None,
          proto: Optional[int] = None, vrf: Optional[int] = None) -> list[dict]:
    """Flows with `addr` (an address or prefix) as source or destination, `port` as
    either port, and the given protocol and VRF — the `flow --match` of the vRouter."""
    net = ipaddress.ip_network(addr, strict=False) if addr else None
    out = []
    for f in flows:
        if net is not None and not any(
                ipaddress.ip_address(a).version == net.version and
                ipaddress.ip_address(a) in net for a in (f["src"], f["dst"])):
            continue
        if port is not None and port not in (f["sport"], f["dport"]):
            continue
        if proto is not None and f["proto"] != proto:
            continue
        if vrf is not None and f["vrf"] != vrf:
            continue
        out.append(f)
    return out


def ordered(flows: Iterable[dict]) -> list[dict]:
    """A stable order (so `get N` names the same flow twice): VRF, then the key."""
    def key(f):
        return (f["vrf"], f["family"], ipaddress.ip_address(f["src"]).packed,
                ipaddress.ip_address(f["dst"]).packed, f["proto"], f["sport"], f["dport"])
    return sorted(flows, key=key)


def endpoint(addr: str, port: int, proto: int) -> str:
    a = f"[{addr}]" if ":" in addr else addr
    return a if proto not in (6, 17, 132) else f"{a}:{port}"
