#!/usr/bin/env python3
"""Where a multi-worker loop-ring run spends its CPUs: each worker's packets per sample
interval, and per thread (main lcore, workers, EAL's threads) the CPU time, the time it
was runnable but waiting for its CPU (/proc/.../schedstat) and its involuntary context
switches, over the measured window.

It runs the forwarder in this process as `dataplane run --loop` does (Forwarder, loop
rings of throughput.py's workers comparison: TTL-255 frames, ring sized so none expires),
but its own main loop: it sleeps --poll seconds at a time (run's loop sleeps 10 ms) and
reads every worker's counters every --sample seconds (run reads the total every
--stats-interval). --sample 0 reads nothing until the end (the rate is then the whole
window's). One EAL per process: one configuration per invocation.

    python bench/workers_probe.py [--scenario l3] [--lcores 0@0,1@1,2@0] [--seconds 3]
                                  [--poll 0.01] [--sample 0.1] [--layout grouped|mixed]
                                  [--frames-per-worker N] [--warmup S] [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import throughput as tp  # noqa: E402


def threads() -> dict[int, dict]:
    """Per thread of this process: name, CPU seconds, runqueue wait seconds, involuntary
    switches, the CPU it last ran on."""
    out = {}
    hz = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        d = f"/proc/self/task/{tid}"
        try:
            name = Path(d, "comm").read_text().strip()
            st = Path(d, "stat").read_text().rsplit(")", 1)[1].split()
            run_ns, wait_ns, _ = map(int, Path(d, "schedstat").read_text().split())
            nvcs = int([x for x in Path(d, "status").read_text().splitlines()
                        if x.startswith("nonvoluntary_ctxt_switches")][0].split()[1])
        except (OSError, IndexError):
            continue
        out[int(tid)] = {"name": name, "cpu_s": (int(st[11]) + int(st[12])) / hz,
                         "run_s": run_ns / 1e9, "wait_s": wait_ns / 1e9,
                         "nvcsw": nvcs, "cpu": int(st[36])}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="l3", choices=sorted(tp.LOOP_SCENARIOS))
    ap.add_argument("--lcores", default="0@0,1@1,2@0")
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--poll", type=float, default=0.01, help="main loop sleep (s)")
    ap.add_argument("--sample", type=float, default=0.1,
                    help="read the workers' counters this often (0: only at the end)")
    ap.add_argument("--frames-per-worker", type=int,
                    help="loop ring size (default: enough that no frame expires within "
                         "--seconds at throughput.LOOP_RATE_GUESS)")
    ap.add_argument("--warmup", type=float, default=0.3, help="seconds before measuring")
    ap.add_argument("--layout", choices=("grouped", "mixed"), default="grouped",
                    help="loop pcap layout (throughput.make_loop_pcap)")
    ap.add_argument("--json")
    a = ap.parse_args()
    from dataplane.config.lcores import parse_lcores
    from dataplane import runtime
    from dataplane.cli import load_config
    nworkers = len(parse_lcores(a.lcores)) - 1
    packets = tp.FLOW_SCENARIOS.get(a.scenario, 64)
    per_worker = a.frames_per_worker or math.ceil(
        tp.LOOP_RATE_GUESS * (a.seconds + a.warmup + 0.5) / (tp.LOOP_TTL - 1))
    with tempfile.TemporaryDirectory(prefix="dpprobe") as tmp:
        base, loop = os.path.join(tmp, "base.pcap"), os.path.join(tmp, "loop.pcap")
        if a.scenario in tp.FLOW_SCENARIOS:
            tp.make_flows_pcap(base, packets, ttl=tp.LOOP_TTL)
        else:
            tp.make_pcap(base, ttl=tp.LOOP_TTL)
        info = tp.make_loop_pcap(base, loop, nworkers, per_worker, a.layout)
        cfgf = Path(tmp, "probe.yaml")
        cfgf.write_text(tp.scenario_config(a.scenario, base, loop=True, lcores=a.lcores,
                                           mbuf_size=tp.LOOP_MBUF_SIZE))
        cfg = load_config(str(cfgf))
        fw = runtime.Forwarder(cfg, ["--log-level", "lib.eal:warning"], loop)
    fw.start()
    time.sleep(a.warmup)                    # not measured
    t0, th0, b0, w0 = time.monotonic(), threads(), tp.busy_seconds(), time.time()
    rx0 = [w["rx"] for w in fw.stats()["workers"]]
    samples = [(0.0, rx0)]
    nxt = t0 + a.sample if a.sample else math.inf
    end = t0 + a.seconds
    while (now := time.monotonic()) < end:
        if now >= nxt:
            samples.append((now - t0, [w["rx"] for w in fw.stats()["workers"]]))
            nxt = now + a.sample
        time.sleep(a.poll)
    t1, th1, b1, w1 = time.monotonic(), threads(), tp.busy_seconds(), time.time()
    fw.stop()
    s = fw.stats()
    samples.append((t1 - t0, [w["rx"] for w in s["workers"]]))
    fw.close()
    wall = t1 - t0
    per = [[(b[1][w] - a_[1][w]) / (b[0] - a_[0]) / 1e6 for a_, b in zip(samples, samples[1:])]
           for w in range(nworkers)]
    whole = [(samples[-1][1][w] - rx0[w]) / wall / 1e6 for w in range(nworkers)]
    thr = []
    for tid, x in sorted(th1.items()):
        y = th0.get(tid)
        if not y:
            continue
        thr.append({"tid": tid, "name": x["name"], "cpu": x["cpu"],
                    "cpu_share": round((x["cpu_s"] - y["cpu_s"]) / wall, 3),
                    "run_share": round((x["run_s"] - y["run_s"]) / wall, 3),
                    "runqueue_wait_share": round((x["wait_s"] - y["wait_s"]) / wall, 3),
                    "involuntary_switches": x["nvcsw"] - y["nvcsw"]})
    own = sum(x["cpu_s"] - th0[t]["cpu_s"] for t, x in th1.items() if t in th0)
    res = {"scenario": a.scenario, "lcores": a.lcores, "frames_per_worker_asked": per_worker,
           "poll_s": a.poll,
           "sample_s": a.sample, "seconds": round(wall, 3), "loop": info,
           "window_epoch": [round(w0, 3), round(w1, 3)],
           "ttl_expired": s["drops"]["ttl_expired"],
           "total_mpps": round(sum(whole), 3),
           "per_worker_mpps": [round(x, 3) for x in whole],
           "per_worker_lcore": [w["lcore"] for w in s["workers"]],
           "per_worker_mpps_per_interval": [[round(v, 2) for v in p] for p in per],
           "threads": thr,
           # CPUs the rest of the machine used in the window (busy time less this process)
           "foreign_cpu": round(max(0.0, (b1 - b0) - own) / wall, 3)}
    print(f"{a.scenario} lcores {a.lcores} {a.layout} poll {a.poll} s sample {a.sample} s: "
          f"{res['total_mpps']:.2f} Mpps, per worker {res['per_worker_mpps']}"
          + f"; other processes {res['foreign_cpu']:.2f} CPUs"
          + ("  (frames expired: figures invalid)" if res["ttl_expired"] else ""))
    for w, p in enumerate(per):
        if len(p) > 1:
            print(f"  worker {w} (lcore {res['per_worker_lcore'][w]}) Mpps per interval: "
                  f"min {min(p):.1f} median {statistics.median(p):.1f} max {max(p):.1f}")
    for t in thr:
        print(f"  {t['name']:16} cpu {t['cpu']}  on-CPU {t['run_share']:.3f}  "
              f"waiting for CPU {t['runqueue_wait_share']:.3f}  "
              f"involuntary switches {t['involuntary_switches']}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
