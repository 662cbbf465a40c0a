"""The `dataplane` command: check, run, replay, explain, nh, flow, drivers (the verbs of
a running forwarder's control socket are in cli_live.py)."""
from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli_live import LIVE_COMMANDS, ask, socket_args
from .cli_trex import add_parsers as add_trex_parsers
from .mirror import add_parsers as add_mirror_parsers
from .cli_trex import add_tunables
from .console import err, out
from .drops import DROP_REASONS
from .limits import VNET_COUNTERS


def split_eal(argv: list[str]) -> tuple[list[str], list[str]]:
    """Everything after the first `--` goes to EAL unchanged."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


class Parser(argparse.ArgumentParser):
    """argparse with its errors in one line (exit status 2): `dataplane run: error:
    argument --duration: ...` (the usage is in --help)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def seconds_arg(lo: float, hi: float = 10 * 365 * 86400):
    """An argparse type: a finite number of seconds from lo to hi (nan, inf, 0 and
    negative numbers would run forever or not at all)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = None
        if v is None or not lo <= v <= hi:      # nan fails both comparisons
            raise argparse.ArgumentTypeError(
                f"must be a number of seconds from {lo:g} to {hi:.0f}, got {text[:40]!r}")
        return v
    return parse


def int_arg(lo: int, hi: int | None = None, what: str = "an integer"):
    """An argparse type: an integer from lo to hi."""
    def parse(text: str) -> int:
        try:
            v = int(text) if len(text) <= 40 else None
        except ValueError:
            v = None
        if v is None or v < lo or (hi is not None and v > hi):
            rule = f"{what} from {lo} to {hi}" if hi is not None else f"{what} >= {lo}"
            raise argparse.ArgumentTypeError(f"must be {rule}, got {text[:40]!r}")
        return v
    return parse


port_arg = int_arg(0, 65535, "a port")


def protocol(text: str) -> int:
    """An IP protocol by name (tcp, udp, ...) or number 0-255; ValueError says which."""
    from .explain import PROTOS
    if text.isdigit() and len(text) <= 3 and int(text) <= 255:
        return int(text)
    if text.lower() in PROTOS:
        return PROTOS[text.lower()]
    raise ValueError(f"must be a protocol number from 0 to 255 or one of "
                     f"{', '.join(PROTOS)}, got {text[:40]!r}")


def protocol_arg(text: str) -> int:
    """protocol() as an argparse type."""
    try:
        return protocol(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def fail(message: str) -> int:
    """One error line; exit status 2."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return 2


def load_config(path: str, host: bool = True):
    """The configuration at path, checked; host: also against this host (its CPUs and
    memory), for the commands that run it."""
    from .config import ConfigError, load
    try:
        return load(path, host=host)
    except ConfigError as e:
        err.print(f"[red]invalid configuration[/red]\n{escape(str(e))}", highlight=False,
                  markup=True)
        raise SystemExit(2)
    except OSError as e:
        err.print(f"{path}: {e.strerror}")
        raise SystemExit(2)


def cmd_check(a) -> int:
    cfg = load_config(a.config)
    routes = sum(len(v.routes) for v in cfg.vrfs)
    out.print(f"{a.config}: OK — node {cfg.node.name} (seed 0x{cfg.node.seed:08x}), "
              f"{len(cfg.ports)} ports, {len(cfg.vrfs)} VRFs, {routes} routes, "
              f"{len(cfg.nexthops)} next hops, {len(cfg.groups)} groups")
    return 0


def parse_inputs(cfg, specs: list[str]) -> dict[str, str]:
    """--in [PORT=]FILE: a bare FILE feeds the first port."""
    names = [p.name for p in cfg.ports]
    inputs = {}
    for s in specs:
        port, eq, path = s.partition("=")
        if not eq or port not in names:
            port, path = names[0], s
        if port in inputs:
            raise SystemExit(f"--in: port {port} given twice")
        inputs[port] = path
    return inputs


def summary_table(s: dict, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    t.add_column("port")
    t.add_column("in", justify="right")
    t.add_column("out", justify="right")
    for r in DROP_REASONS:
        if s["drops"][r]:
            t.add_column(r, justify="right")
    # mirror copies (docs/mirroring.md §4): columns only when a port mirrors
    mirror = [m for m in ("mirrored", "mirror_dropped", "mirror_tx")
              if any(p.get(m) for p in s["ports"].values())]
    # and virtual networks' (docs/virtual-networks.md §7), only when any is non-zero
    mirror += [v for v in VNET_COUNTERS if any(p.get(v) for p in s["ports"].values())]
    for m in mirror:
        t.add_column(m, justify="right")
    for name, p in s["ports"].items():
        t.add_row(name, f"{p['rx']:,}", f"{p['tx']:,}",
                  *[f"{p['drops'][r]:,}" for r in DROP_REASONS if s["drops"][r]],
                  *[f"{p.get(m, 0):,}" for m in mirror])
    t.add_row("total", f"{s['rx']:,}", f"{s['tx']:,}",
              *[f"{s['drops'][r]:,}" for r in DROP_REASONS if s["drops"][r]],
              *[f"{sum(p.get(m, 0) for p in s['ports'].values()):,}" for m in mirror],
              style="bold")
    return t


def worker_table(s: dict) -> Table:
    """One row per worker: what its RX queues received, sent, dropped, and its flows."""
    t = Table(title="workers", title_justify="left")
    for col in ("worker", "lcore", "in", "out", "dropped", "flows created", "active"):
        t.add_column(col, justify="right")
    for w in s["workers"]:
        t.add_row(str(w["worker"]), str(w["lcore"]), f"{w['rx']:,}", f"{w['tx']:,}",
                  f"{sum(w['drops'].values()):,}", f"{w['flows']['flow_created']:,}",
                  f"{w['flows']['flows_active']:,}")
    return t


def group_table(name: str, g: dict) -> Table:
    flows = "flows" in g
    t = Table(title=f"group {name}: imbalance {g['imbalance_packets']:.3f} (packets)"
              + (f", {g['imbalance_flows']:.3f} (flows)" if flows else ""),
              title_justify="left")
    for col in ("member", "next hop", "weight", "packets", "share") + (("flows",) if flows
                                                                       else ()):
        t.add_column(col, justify="left" if col in ("member", "next hop") else "right")
    for i, m in enumerate(g["members"]):
        share = m["packets"] / g["packets"] if g["packets"] else 0.0
        t.add_row(str(i), m["nexthop"], str(m["weight"]), f"{m['packets']:,}",
                  f"{share:.1%}", *([f"{m['flows']:,}"] if flows else []))
    return t


def print_summary(s: dict, title: str, per_worker: bool = False) -> None:
    out.print(summary_table(s, title))
    for name, g in s.get("groups", {}).items():
        out.print(group_table(name, g))
    f = s.get("flows")
    if f and (f["flow_created"] or f["flow_table_full"]):
        out.print(f"flows: created {f['flow_created']:,}, aged {f['flow_aged']:,}, "
                  f"deleted {f['flow_deleted']:,}, rehashed {f['flow_rehashed']:,}, "
                  f"table full {f['flow_table_full']:,}, active {f['flows_active']:,}")
    if s.get("mirrored") or s.get("mirror_dropped"):
        out.print(f"mirror: {s['mirrored']:,} copies sent, {s['mirror_dropped']:,} that "
                  "could not be made or sent (mirror_dropped)")
    if s.get("mpls", {}).get("el_not_readable"):
        out.print(f"mpls: {s['mpls']['el_not_readable']:,} pushes placed the entropy label "
                  f"beyond the next hop's erld (el_not_readable)")
    if per_worker and s.get("workers"):
        out.print(worker_table(s))
    dropped = sum(s["drops"].values())
    out.print(f"{s['rx']:,} packets in {s['seconds']:.3f} s "
              f"({s['pps'] / 1e6:.3f} Mpps); forwarded {s['tx']:,}, dropped {dropped:,}"
              + (f", taken by the forwarder (ARP/ND) {s['consumed']:,}"
                 if s.get("consumed") else ""))
    if s.get("interrupted_during") == "post-run scan":
        out.print("[yellow]interrupted: the scan of the outputs for flows per group member "
                  "was cut short (no flow counts)[/yellow]")
    elif s.get("interrupted"):
        out.print("[yellow]interrupted: stopped before the end of the input[/yellow]")
    if s.get("not_received"):
        out.print(f"[yellow]{s['not_received']:,} input packets were not received by the "
                  "PMD[/yellow]")


def cmd_replay(a, eal: list[str]) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from . import runtime
    cfg = load_config(a.config)
    inputs = parse_inputs(cfg, a.inputs or [])
    if not inputs and not a.trex:
        raise runtime.InputError("replay: give --in [PORT=]PCAP or --trex [PORT=]PROFILE")
    # before anything is written: no input among the outputs, the out-dir ours alone
    runtime.check_inputs_not_written(cfg, inputs, a.out_dir, trex=bool(a.trex))
    runtime.lock_out_dir(a.out_dir)
    if a.trex:
        from .cli_trex import trex_inputs
        from .trex.library import TrexError
        try:
            trex = trex_inputs(cfg, a.trex, a.out_dir, a.packets, a.tunables)
        except (TrexError, ValueError) as e:
            raise runtime.InputError(f"--trex: {e}") from None
        except OSError as e:
            raise runtime.InputError(f"--trex: {e.filename}: {e.strerror}") from None
        for port in set(trex) & set(inputs):
            raise runtime.InputError(f"--in and --trex both feed port {port}")
        inputs.update(trex)
    counts = runtime.check_inputs(cfg, inputs)       # every record, before DPDK sees it
    total = sum(counts.values())
    with Progress("replay", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=total < 10000 or a.quiet) as bar:
        task = bar.add_task("replay", total=total)
        s = runtime.replay(cfg, inputs, a.out_dir, eal,
                           progress=lambda got, tot: bar.update(task, completed=got),
                           counts=counts, prepared=True)
    if not a.quiet:
        print_summary(s, f"replay of {', '.join(inputs.values())} → {a.out_dir}",
                      a.per_worker)
        if s.get("summary_file"):
            out.print(f"summary: {s['summary_file']}")
    if s.get("output_errors"):
        # net_pcap cannot report a failed write: the outputs were checked against the
        # ports' TX counters, and what is missing makes the replay fail
        err.print(f"[red]error:[/red] output lost: {escape('; '.join(s['output_errors']))}",
                  highlight=False)
        return 2
    ok = not s["not_received"] and not s["mbufs_in_use_after"] and not s["interrupted"]
    return 0 if ok else 1


def cmd_run(a, eal: list[str]) -> int:
    from . import runtime
    cfg = load_config(a.config)
    if a.json:
        runtime.check_writable(a.json, "--json")      # before forwarding, not after

    last = {"t": None, "rx": 0}
    status = None

    def report(s):
        """Every --stats-interval: on a terminal one live line, else a JSON line (both on
        stderr: stdout keeps the final summary)."""
        nonlocal status
        pps = ((s["rx"] - last["rx"]) / (s["seconds"] - last["t"])
               if last["t"] is not None and s["seconds"] > last["t"] else s["pps"])
        last.update(t=s["seconds"], rx=s["rx"])
        line = {"t": round(s["seconds"], 3), "rx": s["rx"], "tx": s["tx"],
                "dropped": sum(s["drops"].values()), "pps": round(pps),
                "flows_active": s["flows"]["flows_active"]}
        if err.is_terminal:
            from rich.status import Status
            text = (f"{line['t']:8.1f} s  rx {line['rx']:,}  tx {line['tx']:,}  dropped "
                    f"{line['dropped']:,}  {pps / 1e6:.2f} Mpps  flows {line['flows_active']:,}")
            if status is None:
                status = Status(text, console=err)
                status.start()
            else:
                status.update(text)
        else:
            print(json.dumps(line), file=sys.stderr, flush=True)

    def ready(path):
        if not a.quiet:
            err.print(f"control socket: {path}", highlight=False)

    try:
        s = runtime.run(cfg, eal, duration=a.duration, on_stats=None if a.quiet else report,
                        interval=a.stats_interval, loop=a.loop, socket_path=a.socket,
                        on_ready=ready)
    finally:
        if status is not None:
            status.stop()
    json_error = None
    if a.json:
        try:
            with open(a.json, "w") as f:
                json.dump(s, f, indent=2)
        except OSError as e:
            json_error = f"--json {a.json}: {e.strerror}"
    if not a.quiet:
        print_summary(s, f"run of {a.config}", a.per_worker)
    if json_error:
        err.print(f"[red]error:[/red] {escape(json_error)}", highlight=False)
        return 2
    return 0


def cmd_explain(a) -> int:
    import ipaddress
    from .explain import PROTOS, Explanation, explain
    if a.live:            # no CONFIG: the positionals are SRC DST [PROTO [SPORT [DPORT]]]
        if a.dport is not None or a.src is None:
            return fail("explain --live SRC DST [PROTO [SPORT [DPORT]]]")
        a.src, a.dst, proto_text, sport_text, a.dport = (
            a.config, a.src, a.dst or "tcp", a.proto, a.sport)
        try:
            a.sport = 0 if sport_text is None else port_arg(sport_text)
        except argparse.ArgumentTypeError as e:
            return fail(f"explain: SPORT {e}")
    elif a.src is None or a.dst is None:
        return fail("explain CONFIG SRC DST [PROTO [SPORT [DPORT]]] (or --live)")
    else:
        proto_text, a.sport = a.proto or "tcp", a.sport or 0
    try:
        proto = protocol(proto_text)
    except ValueError as e:
        return fail(f"explain: PROTO {e}")
    for what, addr in (("SRC", a.src), ("DST", a.dst)):
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            return fail(f"explain: {what} must be an IPv4 or IPv6 address, got {addr[:60]!r}")
    if a.dport is None:
        # ICMP / ICMPv6 echo: the id stands in for both ports (docs/hashing.md §2)
        a.dport = a.sport if proto in (PROTOS["icmp"], PROTOS["icmpv6"]) else 0
    if a.live:            # the running forwarder's routes and weights
        e = Explanation(**ask(a, {"cmd": "explain", "src": a.src, "dst": a.dst,
                                  "proto": proto, "sport": a.sport, "dport": a.dport,
                                  "in_port": a.in_port, "vrf": a.vrf,
                                  "flow_label": a.flow_label}))
    else:
        # an offline view: the configuration is not checked against this host
        cfg = load_config(a.config, host=False)
        if a.in_port is not None and a.in_port not in {p.name for p in cfg.ports}:
            return fail(f"explain: --in-port must be a port of {a.config} "
                        f"({', '.join(p.name for p in cfg.ports)}), got {a.in_port[:60]!r}")
        if a.vrf is not None and a.vrf not in {v.name for v in cfg.vrfs}:
            names = [v.name for v in cfg.vrfs]
            return fail(f"explain: --vrf must be a VRF of {a.config} ({', '.join(names[:8])}"
                        f"{', ...' if len(names) > 8 else ''}), got {a.vrf[:60]!r}")
        try:
            e = explain(cfg, a.src, a.dst, proto, a.sport, a.dport, a.in_port, a.vrf,
                        a.flow_label)
        except (ValueError, StopIteration) as ex:
            return fail(f"explain: {ex or 'no such port or VRF'}")
    if a.json:
        out.print_json(data=e.__dict__)
        return 0
    t = Table(title=f"{a.src} → {a.dst} proto {proto} ports {a.sport} → {a.dport}",
              show_header=False, title_justify="left")
    t.add_column("field", no_wrap=True)
    t.add_column("value", overflow="fold")      # never "…": a narrow terminal wraps
    for k, v in e.rows():
        t.add_row(k, v)
    if out.is_terminal:
        out.print(t)
    else:
        # off a terminal rich assumes 80 columns, too narrow for an IPv6 key (88 hex
        # digits): print at the table's own width, so every row stays whole on one line
        from rich.measure import Measurement
        need = Measurement.get(out, out.options.update_width(1000), t).maximum
        Console(soft_wrap=True, width=max(need, out.width)).print(t)
    return 0 if e.reference_agrees else 4


def nh_of_config(cfg) -> dict:
    """The `nh` report of a configuration (what a forwarder started with it would
    show before any traffic): the same shape as the control socket's `nh`."""
    from . import ecmp
    nhs = [{"id": nh.index, "name": nh.name, "port": nh.port,
            "mac": nh.mac.hex(":") if nh.mac is not None else "-",
            "labels": list(nh.labels),
            "state": "static" if nh.mac is not None else "incomplete",
            **({"ip": str(nh.ip)} if nh.mac is None else {})} for nh in cfg.nexthops]
    groups = {}
    for g in cfg.groups:
        weights = [m.weight for m in g.members]
        table = ecmp.build_or_none(weights, g.buckets)
        realised = (ecmp.realised_shares(table, len(weights)) if table is not None
                    else [0.0] * len(weights))
        total = sum(weights)
        groups[g.name] = {"n_buckets": g.buckets, "members": [
            {"member": i, "nexthop": m.nexthop, "weight": m.weight,
             "state": "active" if m.weight else "drain",
             "configured": m.weight / total if total else 0.0, "realised": r,
             "buckets": round(r * g.buckets), "packets": None}
            for i, (m, r) in enumerate(zip(g.members, realised))]}
    return {"nexthops": nhs, "groups": groups}


def print_nh(report: dict) -> None:
    t = Table(title="next hops", title_justify="left")
    for col in ("id", "name", "port", "dst mac", "labels", "resolution"):
        t.add_column(col)
    for nh in report["nexthops"]:
        # a next hop without mac: its ARP / ND state (docs/virtual-networks.md §6)
        state = nh.get("state", "static")
        t.add_row(str(nh["id"]), nh["name"], nh["port"], nh["mac"],
                  " ".join(map(str, nh["labels"])) or "-",
                  state if state == "static" else f"{state} ({nh.get('ip', '')})")
    out.print(t)
    for name, g in report["groups"].items():
        live = any(m["packets"] is not None for m in g["members"])
        t = Table(title=f"group {name}: {g['n_buckets']} buckets", title_justify="left")
        cols = ["member", "next hop", "weight", "state", "configured", "realised", "buckets"]
        for col in cols + (["packets"] if live else []):
            t.add_column(col, justify="left" if col in ("next hop", "state") else "right")
        for m in g["members"]:
            t.add_row(str(m["member"]), m["nexthop"], str(m["weight"]), m["state"],
                      f"{m['configured']:.4%}", f"{m['realised']:.4%}",
                      str(m["buckets"]), *([f"{m['packets']:,}"] if live else []))
        out.print(t)


def cmd_nh(a) -> int:
    """Next hops and groups with configured vs realised (bucket table) shares: of a
    configuration, or of a running forwarder (no CONFIG: its control socket)."""
    if a.config:
        report = nh_of_config(load_config(a.config, host=False))   # an offline view
    else:
        report = ask(a, {"cmd": "nh"})
    print_nh(report)
    if a.json:
        if a.json == "-":
            out.print_json(data=report)
        else:
            with open(a.json, "w") as f:
                json.dump({g: [{k: v for k, v in m.items() if k != "packets"} for m in r["members"]]
                           for g, r in report["groups"].items()}, f,
                          indent=2)
    return 0


def cmd_flow(a) -> int:
    from . import flows as fl
    if a.flush:
        if a.source:
            return fail("flow --flush acts on a running forwarder: no SOURCE")
        ask(a, {"cmd": "flow", "flush": True})
        out.print("flow table flushed")
        return 0
    try:
        if a.source:
            all_flows = fl.ordered(fl.load(a.source))
        else:
            all_flows = fl.ordered(ask(a, {"cmd": "flow", "limit": 1 << 30})["flows"])
            for f in all_flows:
                f.pop("index", None)
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else e
        return fail(f"{a.source}: cannot read flows ({reason})")
    try:
        sel = fl.match(all_flows, a.match, a.port, a.proto, a.vrf)
    except ValueError as e:
        return fail(f"--match: {e}")
    if a.get is not None:
        if not 0 <= a.get < len(all_flows):
            err.print(f"error: no flow {a.get} (there are {len(all_flows)})")
            return 2
        out.print_json(data=all_flows[a.get])
        return 0
    if a.json:
        out.print_json(data=sel)
        return 0
    index = {id(f): i for i, f in enumerate(all_flows)}
    t = Table(title=f"{len(sel):,} of {len(all_flows):,} flows", title_justify="left")
    for col in ("index", "vrf", "source", "destination", "proto", "in", "nh", "group/member",
                "packets", "bytes", "tcp"):
        t.add_column(col, justify="right" if col in ("index", "packets", "bytes") else "left")
    for f in sel[:a.limit]:
        tcp = "closing" if f["closing"] else ",".join(x for x in ("fin", "rst") if f[x])
        t.add_row(str(index[id(f)]), str(f["vrf"]), fl.endpoint(f["src"], f["sport"], f["proto"]),
                  fl.endpoint(f["dst"], f["dport"], f["proto"]),
                  fl.PROTO_NAMES.get(f["proto"], str(f["proto"])), str(f["in_port"]),
                  str(f["nh_id"]), "-" if f["group"] is None else f"{f['group']}/{f['member']}",
                  f"{f['packets']:,}", f"{f['bytes']:,}", tcp)
    out.print(t)
    if len(sel) > a.limit:
        out.print(f"({len(sel) - a.limit:,} more: --limit N or --json)")
    return 0


def cmd_drivers(a) -> int:
    """The DPDK PMDs installed here, read from their plugins (dataplane/drivers.py)."""
    from . import drivers as dr

    def print_wide(t: Table) -> None:
        """Off a terminal print t at its own width, so every row stays on one line."""
        if out.is_terminal:
            return out.print(t)
        from rich.measure import Measurement
        need = Measurement.get(out, out.options.update_width(1000), t).maximum
        Console(soft_wrap=True, width=max(need, out.width)).print(t)

    try:
        found, where = dr.discover(), f"{dr.pmd_dir()} (found by {dr.pmd_dir_source()})"
    except dr.Unavailable as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        return 2
    if a.name is not None:
        by_name = {d.name: d for d in found}     # NAME may be a device: net_pcap0
        one = by_name.get(a.name) or by_name.get(a.name.rstrip("0123456789"))
        if one is None:
            err.print(f"error: no driver {a.name!r} among the {len(found)} drivers in "
                      f"{where}", highlight=False, markup=False)
            return 2
        if a.json:
            print(json.dumps(one.as_dict(), indent=2))
            return 0
        t = Table(title=escape(f"{one.name}: {one.kind} driver, bus {one.bus or '?'}, "
                               f"{one.file}"), title_justify="left")
        t.add_column("devargs key", no_wrap=True)
        t.add_column("value", overflow="fold")
        for key, hint in one.params:
            t.add_row(escape(key), escape(hint))
        print_wide(t)
        if one.kmod:
            out.print(f"kernel modules: {one.kmod}", highlight=False, markup=False)
        if one.pci_ids:
            out.print(f"{len(one.pci_ids)} PCI ids (vendor:device, subsystem if not any):",
                      highlight=False)
            ids = [dr.pci_id_text(p) for p in one.pci_ids]
            for i in range(0, len(ids), 8):
                out.print("  " + "  ".join(ids[i:i + 8]), highlight=False, markup=False)
        return 0
    if a.json:
        print(json.dumps({"pmd_dir": str(dr.pmd_dir()), "found_by": dr.pmd_dir_source(),
                          "drivers": [d.as_dict() for d in found]}, indent=2))
        return 0
    t = Table(title=escape(f"{len(found)} drivers in {where}"), title_justify="left")
    for col in ("driver", "kind", "devargs keys", "devices", "file"):
        t.add_column(col, justify="right" if col == "devices" else "left",
                     overflow="fold" if col == "devargs keys" else "ellipsis",
                     no_wrap=col != "devargs keys")
    for d in found:
        devices = (f"{len(d.pci_ids)} PCI" if d.bus == "pci" else d.bus or "?")
        t.add_row(d.name, d.kind, escape(" ".join(d.keys)), devices,
                  escape(d.file.rsplit("/", 1)[-1]))
    print_wide(t)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv, eal = split_eal(sys.argv[1:] if argv is None else argv)
    ap = Parser(prog="dataplane", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("check", help="validate a configuration and exit")
    c.add_argument("config")
    r = sub.add_parser("replay", help="forward pcaps through net_pcap vdevs",
                       usage="dataplane replay CONFIG (--in [PORT=]PCAP | --trex "
                             "[PORT=]PROFILE [-n N]) --out-dir DIR [-- EAL args] "
                             "[-t TUNABLES...]")
    r.add_argument("config")
    r.add_argument("--in", dest="inputs", action="append", metavar="[PORT=]PCAP")
    r.add_argument("--trex", action="append", metavar="[PORT=]PROFILE",
                   help="render a TRex profile for the TRex port wired to PORT (TRex port "
                        "i = the config's i-th port) and replay it")
    r.add_argument("-n", "--packets", type=int, default=10000,
                   help="packets per --trex profile (default 10000)")
    r.add_argument("--out-dir", required=True)
    r.add_argument("-q", "--quiet", action="store_true")
    r.add_argument("--per-worker", action="store_true",
                   help="also a row per worker (summary.json always has them)")
    add_tunables(r)
    add_trex_parsers(sub)
    add_mirror_parsers(sub)
    u = sub.add_parser("run", help="forward until SIGINT/SIGTERM",
                       usage="dataplane run CONFIG [--duration S] [--loop PCAP] "
                             "[-- EAL args]")
    u.add_argument("config")
    u.add_argument("--loop", metavar="PCAP",
                   help="instead of the configured devices, every port is a loopback "
                        "ring preloaded with PCAP's frames: what it transmits it receives "
                        "again, with no per-packet copy (a benchmark source; each pass "
                        "decrements the TTL, so packets last about 63 passes)")
    u.add_argument("--duration", type=seconds_arg(0.001), help="stop after S seconds")
    u.add_argument("--stats-interval", type=seconds_arg(0.01), default=1.0)
    u.add_argument("--json", help="write the final stats here")
    u.add_argument("-q", "--quiet", action="store_true")
    u.add_argument("--per-worker", action="store_true",
                   help="also a row per worker (--json always has them)")
    u.add_argument("--socket", help="control socket path (default /run/dataplane/NODE.sock "
                                    "as root, else $XDG_RUNTIME_DIR/dataplane/NODE.sock)")
    for name, what in (("vif", "ports and their counters"), ("dropstats", "drops by reason"),
                       ("mpls", "the LFIB")):
        socket_args(sub.add_parser(name, help=f"{what} (running forwarder)"))
    rt = sub.add_parser("rt", help="routes or bridge table of a VRF (running forwarder)")
    rt.add_argument("vrf", nargs="?")
    rt.add_argument("--family", choices=("inet", "bridge"), default="inet",
                    help="inet: routes (default); bridge: the MAC table of an l2 / l2_l3 VRF")
    socket_args(rt)
    g = sub.add_parser("group", help="change a group's members live: add|remove|weight",
                       usage="dataplane group GROUP add NEXTHOP [--weight W] | remove NEXTHOP "
                             "| weight NEXTHOP W")
    g.add_argument("group")
    g.add_argument("action", choices=("add", "remove", "weight"))
    g.add_argument("nexthop")
    g.add_argument("value", nargs="?", type=int, help="weight (for `weight`)")
    g.add_argument("--weight", type=int)
    socket_args(g)
    ro = sub.add_parser("route", help="add or delete a route live",
                        usage="dataplane route add VRF PREFIX via NEXTHOP_OR_GROUP | "
                              "route del VRF PREFIX")
    ro.add_argument("action", choices=("add", "del"))
    ro.add_argument("vrf")
    ro.add_argument("prefix")
    ro.add_argument("via", nargs="*", help="via NAME")
    socket_args(ro)
    rl = sub.add_parser("reload", help="apply a new configuration's differences live")
    rl.add_argument("config")
    socket_args(rl)
    x = sub.add_parser("explain", help="show how a flow is routed and load-shared")
    x.add_argument("config", help="a configuration (with --live: SRC)")
    x.add_argument("src")
    x.add_argument("dst", nargs="?")
    x.add_argument("proto", nargs="?", help="name or number (default tcp)")
    x.add_argument("sport", nargs="?", type=port_arg,
                   help="source port (ICMP echo: the id)")
    x.add_argument("dport", nargs="?", type=port_arg, default=None,
                   help="destination port (default 0; ICMP echo: the id)")
    x.add_argument("--in-port", help="ingress port name (default: the first port)")
    x.add_argument("--vrf", help="VRF (default: the ingress port's)")
    x.add_argument("--flow-label", type=int_arg(0, (1 << 20) - 1, "a flow label"), default=0)
    x.add_argument("--json", action="store_true")
    x.add_argument("--live", action="store_true",
                   help="ask the running forwarder (its routes and weights now): "
                        "explain --live SRC DST [PROTO [SPORT [DPORT]]]")
    socket_args(x)
    n = sub.add_parser("nh", help="next hops and groups with realised shares")
    n.add_argument("config", nargs="?", help="a configuration (default: the running "
                                             "forwarder's control socket)")
    n.add_argument("--json", help="write the group shares here (- : print the report)")
    socket_args(n)
    f = sub.add_parser("flow", help="list / match / get / flush flows (a replay's or a "
                                    "running forwarder's)")
    f.add_argument("source", nargs="?", help="a replay's --out-dir (or its flows.json); "
                                             "default: the running forwarder")
    f.add_argument("--flush", action="store_true", help="delete every flow entry (running)")
    f.add_argument("--match", help="address or prefix on either side")
    f.add_argument("--port", type=port_arg, help="either L4 port")
    f.add_argument("--proto", type=protocol_arg, help="protocol name or number")
    f.add_argument("--vrf", type=int_arg(0, 255, "a VRF index"), help="VRF index")
    f.add_argument("--get", type=int_arg(0, what="a flow index"), metavar="INDEX",
                   help="one flow in full (JSON)")
    f.add_argument("--limit", type=int_arg(0, what="a number of flows"), default=50)
    f.add_argument("--json", action="store_true")
    socket_args(f)
    dr = sub.add_parser("drivers", help="the DPDK PMDs installed here: devargs keys, "
                                        "PCI ids (read from the PMD plugins)")
    dr.add_argument("name", nargs="?", metavar="NAME", help="one driver in full")
    dr.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.cmd == "drivers":
        return cmd_drivers(a)
    if a.cmd == "trex":
        from .cli_trex import cmd_trex
        return cmd_trex(a)
    if a.cmd == "mirror-decode":
        from .mirror import cmd_mirror_decode
        return cmd_mirror_decode(a)
    if a.cmd in LIVE_COMMANDS:
        return LIVE_COMMANDS[a.cmd](a)
    if a.cmd == "flow":
        return cmd_flow(a)
    if a.cmd == "nh":
        return cmd_nh(a)
    if a.cmd == "check":
        return cmd_check(a)
    if a.cmd == "explain":
        return cmd_explain(a)
    from .errors import DataplaneError
    from .runtime import InputError
    try:
        return cmd_replay(a, eal) if a.cmd == "replay" else cmd_run(a, eal)
    except DataplaneError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        return 3
    except InputError as e:
        err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        return 2
    except KeyboardInterrupt:          # SIGINT before the forwarder handles signals
        err.print("[red]error:[/red] interrupted", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
