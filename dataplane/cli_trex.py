"""`dataplane trex render` and `replay --trex`: a TRex profile's packets, as the port it
is loaded on would send them, computed by TRex's own library (streams) and our
field-engine interpreter (dataplane/trex/vm.py)."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from .console import err, out

DEFAULT_PACKETS = 10000


def add_tunables(p: argparse.ArgumentParser) -> None:
    # as TRex's console: everything after -t belongs to the profile's own argparse
    p.add_argument("-t", dest="tunables", nargs=argparse.REMAINDER, default=[],
                   metavar="TUNABLES", help="the profile's tunables (must come last)")


def add_parsers(sub) -> None:
    t = sub.add_parser("trex", help="TRex profiles: render the packets a TRex port sends")
    ts = t.add_subparsers(dest="trex_cmd", required=True)
    r = ts.add_parser("render", help="write the packets a TRex port would send to a pcap",
                      usage="dataplane trex render PROFILE --out FILE.pcap [-n N] "
                            "[--port P] [--line-rate GBPS] [-t TUNABLES...]")
    r.add_argument("profile")
    r.add_argument("--out", required=True, metavar="FILE.pcap")
    r.add_argument("-n", "--packets", type=int, default=DEFAULT_PACKETS)
    r.add_argument("--port", type=int, default=0, help="TRex port id (direction = port %% 2)")
    r.add_argument("--line-rate", type=float, default=10.0, metavar="GBPS",
                   help="port speed for percentage and bps rates (default 10)")
    add_tunables(r)


def render_profile(profile: str, path: str, packets: int, port: int = 0,
                   tunables=(), line_rate_gbps: float = 10.0) -> dict:
    """Render `packets` frames of `profile` on TRex port `port` into the pcap `path`."""
    from .trex.library import load_streams
    from .trex.render import render, write_pcap
    if packets < 1:
        raise ValueError(f"-n {packets}: at least one packet")
    if not line_rate_gbps > 0:
        raise ValueError(f"--line-rate {line_rate_gbps}: must be > 0")
    streams = load_streams(profile, tunables, port=port)
    frames = render(streams, packets, line_rate_bps=line_rate_gbps * 1e9)
    write_pcap(path, frames)
    return {"profile": profile, "port": port, "streams": len(streams),
            "packets": len(frames), "bytes": sum(len(f) for _, f in frames), "out": path}


def cmd_trex(a) -> int:
    from .trex.library import TrexError
    try:
        r = render_profile(a.profile, a.out, a.packets, a.port, a.tunables, a.line_rate)
    except (TrexError, ValueError) as e:
        err.print(f"error: {e}", highlight=False, markup=False)
        return 2
    except OSError as e:
        err.print(f"error: {e.filename}: {e.strerror}", highlight=False, markup=False)
        return 2
    out.print(f"{r['packets']:,} packets ({r['bytes']:,} bytes) of {r['streams']} "
              f"stream(s) from {a.profile} on TRex port {a.port} → {a.out}", highlight=False)
    return 0


def trex_inputs(cfg, specs: list[str], out_dir: str, packets: int, tunables=()) -> dict:
    """--trex [PORT=]PROFILE: render each profile for the TRex port wired to dataplane port
    PORT (TRex port i ↔ the config's i-th port; a bare PROFILE feeds the first port) into
    OUT_DIR/trex-PORT.pcap, and return {port: pcap} for the replay."""
    names = [p.name for p in cfg.ports]
    inputs = {}
    os.makedirs(out_dir, exist_ok=True)
    for s in specs:
        port, eq, profile = s.partition("=")
        if not eq or port not in names:
            port, profile = names[0], s
        if port in inputs:
            raise ValueError(f"port {port} given twice")
        path = str(Path(out_dir) / f"trex-{port}.pcap")
        render_profile(profile, path, packets, names.index(port), tunables)
        inputs[port] = path
    return inputs
