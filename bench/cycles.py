#!/usr/bin/env python3
"""TSC cycles per packet of the packet path alone (process_burst(): parse → flow table →
route → rewrite), without RX or TX, in this process on real mbufs.

throughput.py measures what an operator sees but on this shared machine its ratios move
by ±10 % between minutes; this figure is for comparing two builds of the core (A/B) —
take the low percentile, which background load inflates least.

    python bench/cycles.py [--scenario flows-64|flows-1k|l3|ecmp|setup|...] [--rounds N]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import throughput  # noqa: E402  (scenario configs and pcaps)


def frames_of(path: str) -> list[bytes]:
    from scapy.utils import RawPcapReader
    return [bytes(data) for data, _ in RawPcapReader(path)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default="flows-64")
    ap.add_argument("--flows", type=int, help="frames (flows) in the input; default: the "
                    "scenario's (setup: 1 M new flows)")
    ap.add_argument("--rounds", type=int, default=20000 // 64,
                    help="passes over the frames (setup: always 1)")
    ap.add_argument("--json", help="write the result here")
    a = ap.parse_args()
    from dataplane import _core
    from dataplane.control import Control
    from dataplane.config import load_text
    _core.eal_init(["dp-cycles", "-l", "0", "--no-huge", "-m", "2048", "--no-pci",
                    "--file-prefix", f"dpc{os.getpid()}", "--no-shconf",
                    "--log-level", "lib.eal:warning"])
    _core.lock_memory()                                # as the forwarder: no page faults
    setup = a.scenario == "setup"
    n = a.flows or (1_000_000 if setup else throughput.FLOW_SCENARIOS.get(a.scenario, 64))
    _core.pool_create(8192)
    with tempfile.TemporaryDirectory(prefix="dpcycles") as tmp:
        pcap = os.path.join(tmp, "in.pcap")
        if a.scenario in throughput.FLOW_SCENARIOS:
            throughput.make_flows_pcap(pcap, n)
        else:
            throughput.make_pcap(pcap)
        frames = frames_of(pcap)
        cfg = load_text(throughput.scenario_config(a.scenario, pcap))
    core = Control.open(cfg).core
    rounds = 1 if setup else a.rounds
    if not setup:
        core.cycles(0, frames, 2)                      # warm: flows created, caches filled
    per_burst = core.cycles(0, frames, rounds)
    # the medians of each tenth of the run, in time order: this machine switches between
    # two speeds (about 1.8x apart) for tens of milliseconds at a time, which shows here
    tenth = max(1, len(per_burst) // 10)
    tenths = [round(statistics.median(per_burst[i:i + tenth]))
              for i in range(0, min(10 * tenth, len(per_burst)), tenth)]
    per_burst.sort()
    hz = _core.tsc_hz()
    res = {"scenario": a.scenario, "frames": len(frames), "rounds": rounds,
           "bursts": len(per_burst), "tsc_hz": hz,
           "cycles_p10": round(per_burst[len(per_burst) // 10], 1),
           "cycles_median": round(statistics.median(per_burst), 1),
           "cycles_by_tenth": tenths, "flows": core.flow_counters()}
    print(f"{a.scenario}: {res['cycles_p10']} cycles/packet (p10), {res['cycles_median']}"
          f" median, over {len(per_burst)} bursts; {hz / 1e9:.2f} GHz TSC")
    print(f"medians by tenth of the run: {tenths}")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
