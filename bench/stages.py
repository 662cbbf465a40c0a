#!/usr/bin/env python3
"""Instructions per packet by pipeline stage, counted by callgrind (no PMU here).

Runs `dataplane run` on a scenario of bench/throughput.py (net_pcap replaying a 64-byte
pcap from memory, transmit dropped) under `valgrind --tool=callgrind`, collecting only
inside the worker loop (`--toggle-collect` on it: start-up is not counted, the PMD's RX
and TX called from it are). The whole packet path is one C unit inlined into the loop, so
each line of pyx/loop.c is mapped back to the stage it came from by the `/* "file.pxd":N`
markers Cython writes above the code of each source line; DPDK's inline headers count
under their header, called functions (the PMD) under their name. Divided by the packets
the run received. Instruction counts are exact and repeatable whatever else the machine
does, unlike its cycles; they are not cycles (a cache miss costs one instruction here).

`--testpmd` also counts dpdk-testpmd macswap on the same vdev and pcap (the whole run,
by function; its packet path is its RX, its forwarding function and its TX).

    python bench/stages.py --scenario flows-64 [--seconds 15] [--testpmd] [--json FILE]
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

import throughput  # noqa: E402  (scenario configs and pcaps)

WORKER = "__pyx_f_9dataplane_5_core_worker"
MARK = re.compile(r'/\* "([^"]+)":(\d+)')
# which stage a pyx source file is (pipeline.pxd's phases are split by function below)
STAGE_OF_FILE = {"loop.pyx": "loop", "tx.pxd": "tx", "parse.pxd": "parse",
                 "classify.pxd": "classify", "route.pxd": "route", "rewrite.pxd": "rewrite",
                 "flow.pxd": "flow", "hashing.pxd": "hashing", "ecmp.pxd": "ecmp",
                 "fatflow.pxd": "fatflow", "push.pxd": "push", "mpls_output.pxd": "mpls_output",
                 "mpls_input.pxd": "mpls_input", "mpls_hash.pxd": "mpls_hash",
                 "ctx.pxd": "ctx", "rss.pxd": "rss"}


def source_map(c_file: Path) -> dict[int, tuple[str, int]]:
    """C line -> (pyx file, line) of the last Cython marker above it."""
    out, cur = {}, ("?", 0)
    for i, line in enumerate(c_file.read_text().splitlines(), 1):
        m = MARK.search(line)
        if m:
            cur = (m.group(1), int(m.group(2)))
        out[i] = cur
    return out


def pipeline_functions(pxd: Path) -> list[tuple[int, str]]:
    """(first line, name) of each cdef function of a .pxd, to split pipeline.pxd by phase."""
    res = []
    for i, line in enumerate(pxd.read_text().splitlines(), 1):
        m = re.match(r"cdef inline \S+ \*?(\w+)\(", line)
        if m:
            res.append((i, m.group(1)))
    return res


def parse_callgrind(path: Path):
    """Self cost per (function, file, line) and inclusive cost per called function, from
    an uncompressed callgrind file (--compress-strings=no --compress-pos=no)."""
    self_cost = collections.Counter()
    call_cost = collections.Counter()
    fl = fi = fn = cfn = cob = None
    after_call = False
    with open(path) as f:
        for line in f:
            if line[0].isdigit() or line[0] in "+-*":
                parts = line.split()
                if len(parts) < 2:
                    continue
                cost = int(parts[1])
                if after_call:
                    call_cost[(fn, cfn, cob)] += cost
                    after_call = False
                else:
                    self_cost[(fn, fi or fl, int(parts[0]) if parts[0].isdigit() else 0)] += cost
                continue
            key, _, val = line.rstrip("\n").partition("=")
            if key == "fl":
                fl, fi = val, None
            elif key in ("fi", "fe"):
                fi = val
            elif key == "fn":
                fn, fi = val, None
            elif key == "cfn":
                cfn = val
            elif key == "cob":
                cob = val
            elif key == "calls":
                after_call = True
    return self_cost, call_cost


def stage_costs(cg: Path, c_file: Path, pipeline: Path) -> collections.Counter:
    smap = source_map(c_file)
    phases = pipeline_functions(pipeline)
    self_cost, call_cost = parse_callgrind(cg)
    ours = {"__pyx_f_9dataplane_5_core_worker"} | {fn for fn, _, _ in self_cost
                                                   if fn and "__pyx_f_" in fn}
    out = collections.Counter()
    lines = collections.Counter()
    for (fn, file, line), cost in self_cost.items():
        if fn not in ours:
            continue                   # a callee's own lines: counted as its call below
        if file and file.endswith("loop.c"):
            src, n = smap.get(line, ("?", 0))
            lines[(src, n)] += cost
            if src == "pipeline.pxd":
                name = "pipeline"
                for first, fname in phases:
                    if n >= first:
                        name = f"pipeline:{fname}"
                out[name] += cost
            else:
                out[STAGE_OF_FILE.get(src, src)] += cost
        else:
            out[f"dpdk inline:{os.path.basename(file or '?')}"] += cost
    for (fn, cfn, cob), cost in call_cost.items():
        if fn in ours and cfn not in ours:
            obj = os.path.basename(cob or "")
            out[f"call:{cfn if not cfn.startswith('0x') else obj + ':' + cfn}"] += cost
    out.lines = lines
    return out


def valgrind(cmd: list[str], out: Path, extra: list[str] = (), **kw):
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
          "--compress-strings=no", "--compress-pos=no", *extra]
    return subprocess.run(vg + cmd, capture_output=True, text=True, **kw)


def run_ours(scenario: str, seconds: float, tmp: Path) -> tuple[collections.Counter, int]:
    pcap = tmp / "in.pcap"
    if scenario in throughput.FLOW_SCENARIOS:
        throughput.make_flows_pcap(str(pcap), throughput.FLOW_SCENARIOS[scenario])
    else:
        throughput.make_pcap(str(pcap))
    cfg = tmp / "bench.yaml"
    cfg.write_text(throughput.scenario_config(scenario, str(pcap)))
    res, cg = tmp / "run.json", tmp / "cg.ours"
    r = valgrind([sys.executable, "-m", "dataplane.cli", "run", str(cfg), "--duration",
                  str(seconds), "--json", str(res), "-q"], cg,
                 [f"--toggle-collect={WORKER}"], cwd=ROOT, timeout=seconds * 60 + 600)
    if r.returncode:
        raise SystemExit(f"dataplane run under callgrind failed:\n{r.stderr[-2000:]}")
    packets = json.loads(res.read_text())["rx"]
    return stage_costs(cg, ROOT / "pyx" / "loop.c", ROOT / "pyx" / "pipeline.pxd"), packets


def run_testpmd(scenario: str, seconds: float, tmp: Path) -> tuple[collections.Counter, int]:
    pcap = tmp / "in.pcap"
    cmd = throughput.testpmd_cmd(str(pcap), "macswap", throughput.FLOW_SCENARIOS.get(
        scenario, 64))
    cg = tmp / "cg.testpmd"
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
          "--compress-strings=no", "--compress-pos=no"]
    p = subprocess.Popen(vg + cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=seconds * 3 + 30)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)   # testpmd stops cleanly on SIGINT and prints totals
        out, _ = p.communicate(timeout=300)
    rx = [int(x) for x in re.findall(r"RX-packets:\s+(\d+)", out)]
    if not rx:
        raise SystemExit(f"testpmd under callgrind: no packet count\n{out[-2000:]}")
    self_cost, call_cost = parse_callgrind(cg)
    by_fn = collections.Counter()
    for (fn, _, _), cost in self_cost.items():
        by_fn[fn] += cost
    total = sum(by_fn.values())
    # its packet path: functions of at least 1 % of the run (start-up is spread thin)
    return collections.Counter({f: c for f, c in by_fn.items() if c > total / 100}), max(rx)


def table(costs: collections.Counter, packets: int) -> list[tuple[str, float]]:
    return sorted(((k, v / packets) for k, v in costs.items() if v / packets >= 0.05),
                  key=lambda kv: -kv[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="flows-64")
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="run time under callgrind (about 50x slower than native)")
    ap.add_argument("--testpmd", action="store_true", help="also count testpmd macswap")
    ap.add_argument("--json", help="default: bench/results/stages-<scenario>.json")
    ap.add_argument("--lines", type=int, default=0, metavar="N",
                    help="also print the N costliest source lines of the packet path")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dpstages") as t:
        tmp = Path(t)
        costs, packets = run_ours(a.scenario, a.seconds, tmp)
        rows = table(costs, packets)
        res = {"scenario": a.scenario, "packets": packets,
               "instructions_per_packet": round(sum(v for _, v in rows), 1),
               "stages": {k: round(v, 2) for k, v in rows}}
        print(f"{a.scenario}: {packets:,} packets, "
              f"{res['instructions_per_packet']} instructions/packet in the worker loop")
        for k, v in rows:
            print(f"  {v:8.1f}  {k}")
        if a.lines:
            src = {}
            for (f, n), v in costs.lines.most_common(a.lines):
                path = ROOT / "pyx" / f
                if f not in src:
                    src[f] = path.read_text().splitlines() if path.exists() else []
                text = src[f][n - 1].strip() if 0 < n <= len(src[f]) else ""
                print(f"  {v / packets:8.1f}  {f}:{n}  {text[:90]}")
        if a.testpmd:
            tc, tp = run_testpmd(a.scenario, a.seconds, tmp)
            trows = table(tc, tp)
            res["testpmd"] = {"packets": tp, "instructions_per_packet":
                              round(sum(v for _, v in trows), 1),
                              "functions": {k: round(v, 2) for k, v in trows}}
            print(f"testpmd macswap: {tp:,} packets, "
                  f"{res['testpmd']['instructions_per_packet']} instructions/packet")
            for k, v in trows:
                print(f"  {v:8.1f}  {k}")
    path = Path(a.json or HERE / "results" / f"stages-{a.scenario}.json")
    path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"→ {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
