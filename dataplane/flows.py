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


# what `dataplane flow` reads of each flow: key -> (types, what)
FIELDS = {"vrf": (int, "an integer"), "family": (int, "4 or 6"), "src": (str, "an address"),
          "dst": (str, "an address"), "proto": (int, "an integer"),
          "sport": (int, "an integer"), "dport": (int, "an integer"),
          "in_port": (int, "an integer"), "nh_id": (int, "an integer"),
          "group": ((int, type(None)), "an integer or null"),
          "member": ((int, type(None)), "an integer or null"),
          "packets": (int, "an integer"), "bytes": (int, "an integer"),
          "closing": (bool, "true or false"), "fin": (bool, "true or false"),
          "rst": (bool, "true or false")}


def check(flows) -> list[dict]:
    """flows if it is a list of flows as a replay writes them; else ValueError naming
    the first thing wrong (a file of the wrong shape)."""
    if not isinstance(flows, list):
        raise ValueError(f"not a list of flows but a JSON {type(flows).__name__}")
    for i, f in enumerate(flows):
        if not isinstance(f, dict):
            raise ValueError(f"flow {i} is not an object but a JSON {type(f).__name__}")
        for key, (types, what) in FIELDS.items():
            v = f.get(key, KeyError)
            if v is KeyError:
                raise ValueError(f"flow {i} has no {key!r}")
            if not isinstance(v, types) or (isinstance(v, bool) and types is int):
                raise ValueError(f"flow {i}: {key!r} must be {what}, got {repr(v)[:40]}")
        for key in ("src", "dst"):
            try:
                ipaddress.ip_address(f[key])
            except ValueError:
                raise ValueError(f"flow {i}: {key!r} must be an IP address, "
                                 f"got {f[key][:40]!r}") from None
    return flows


def load(path: str) -> list[dict]:
    """Flows of a replay: DIR/flows.json, or the file itself (ValueError if it is not a
    list of flows)."""
    p = Path(path)
    return check(json.loads((p / "flows.json" if p.is_dir() else p).read_text()))


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
