"""The `dataplane` verbs that talk to a running forwarder's control socket
(docs/control.md): vif, dropstats, rt, mpls, group, route, reload, and the socket lookup
that nh, flow and explain --live share."""
from __future__ import annotations

from rich.table import Table

from .console import err, out
from .limits import VNET_COUNTERS


def ask(a, req: dict):
    """One request to the running forwarder's control socket (--socket, or the default
    for --node)."""
    import glob
    import os
    from .client import ControlError, request
    from .server import default_socket
    path = a.socket or (default_socket(a.node) if a.node else None)
    if path is None:            # the one forwarder running here, if there is one
        found = sorted(glob.glob(os.path.join(os.path.dirname(default_socket("x")),
                                              "*.sock")))
        if len(found) != 1:
            err.print(f"error: {len(found)} control sockets in "
                      f"{os.path.dirname(default_socket('x'))}: name one with --socket "
                      "PATH or --node NAME", highlight=False)
            raise SystemExit(2)
        path = found[0]
    try:
        return request(path, req)
    except ControlError as e:
        err.print(f"error: {e}", highlight=False)
        raise SystemExit(2)


def socket_args(p) -> None:
    p.add_argument("--socket", help="the forwarder's control socket")
    p.add_argument("--node", help="node name for the default socket path (default: the "
                                  "one forwarder running here)")
    if "--json" not in p._option_string_actions:
        p.add_argument("--json", action="store_true", help="machine output")


def print_rows(title: str, rows: list[dict], cols: list[str]) -> None:
    t = Table(title=title, title_justify="left")
    for c in cols:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(r.get(c, "")) for c in cols])
    out.print(t)


def cmd_vif(a) -> int:
    ports = ask(a, {"cmd": "vif"})
    if a.json:
        out.print_json(data=ports)
        return 0
    mirror = [c for c in ("mirrored", "mirror_dropped", "mirror_tx", *VNET_COUNTERS)
              if any(p.get(c) for p in ports)]       # columns only where they count
    print_rows("interfaces", [dict(p, rx=f"{p['rx']:,}", tx=f"{p['tx']:,}",
                                   drops=sum(p["drops"].values())) for p in ports],
               ["index", "name", "vrf", "mode", "mac", "rx", "tx", "drops", *mirror,
                "devargs"])
    return 0


def cmd_dropstats(a) -> int:
    d = ask(a, {"cmd": "dropstats"})
    if a.json:
        out.print_json(data=d)
        return 0
    print_rows("drops", [{"reason": k, "packets": f"{v:,}"} for k, v in d["total"].items()],
               ["reason", "packets"])
    return 0


def cmd_rt(a) -> int:
    r = ask(a, {"cmd": "rt", "vrf": a.vrf, "family": a.family})
    if a.json:
        out.print_json(data=r)
        return 0
    for vrf, rows in r.items():
        if a.family == "bridge":    # vRouter's `rt --dump N --family bridge` columns
            print_rows(f"bridge table of vrf {vrf} (flags: S static, L learned)", rows,
                       ["mac", "flags", "port", "stats"])
        else:
            print_rows(f"vrf {vrf}", rows, ["prefix", "via", "group"])
    return 0


def cmd_mpls(a) -> int:
    r = ask(a, {"cmd": "mpls"})
    if a.json:
        out.print_json(data=r)
        return 0
    print_rows("LFIB", r, ["label", "action", "labels", "via", "vrf", "pseudowire"])
    return 0


def cmd_group(a) -> int:
    weight = a.value if a.action == "weight" else a.weight
    r = ask(a, {"cmd": "group", "group": a.group, "action": a.action,
                "nexthop": a.nexthop, "weight": weight})
    return print_change(a, r)


def cmd_route(a) -> int:
    via = a.via[1:] if a.via[:1] == ["via"] else a.via
    if a.action == "add" and len(via) != 1:
        raise SystemExit("route add VRF PREFIX via NEXTHOP_OR_GROUP")
    r = ask(a, {"cmd": "route", "action": a.action, "vrf": a.vrf, "prefix": a.prefix,
                "via": via[0] if via else None})
    return print_change(a, r)


def cmd_reload(a) -> int:
    try:
        text = open(a.config, encoding="utf-8").read()
    except OSError as e:
        raise SystemExit(f"{a.config}: {e.strerror}")
    r = ask(a, {"cmd": "reload", "text": text, "path": a.config})
    return print_change(a, r)


def print_change(a, r: dict) -> int:
    if a.json:
        out.print_json(data=r)
    else:
        out.print(f"version {r['version']}: {', '.join(r['applied']) or 'nothing changed'}")
    return 0


LIVE_COMMANDS = {"vif": cmd_vif, "dropstats": cmd_dropstats, "rt": cmd_rt,
                 "mpls": cmd_mpls, "group": cmd_group, "route": cmd_route,
                 "reload": cmd_reload}
