#!/usr/bin/env python3
"""Plots from the benchmarks' JSON, as PNG in bench/results/:

- peers.png   Mpps per scenario: ours, dpdk-testpmd macswap, OVS-DPDK (bench/peers.py)
- flows.png   Mpps against the number of flows (64 … 1 M, log axis), the same three
- stages.png  instructions per packet by pipeline stage (bench/stages.py), per scenario,
              before and after when a `stages-<scenario>-before.json` is there

    python bench/plot.py [--results bench/results]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
SIDES = (("ours", "dataplane", "#1f77b4"), ("testpmd", "dpdk-testpmd macswap", "#7f7f7f"),
         ("ovs", "OVS-DPDK", "#ff7f0e"))
FLOW_SCENARIOS = {"flows-64": 64, "flows-1k": 1024, "flows-100k": 100_000,
                  "flows-1m": 1_000_000}
# stage groups for the stacked bars (bench/stages.py names -> a legend entry)
GROUPS = (("RX (PMD)", ("call:librte_net_pcap.so.23.0:0x0000000000003f70",)),
          ("TX (PMD)", ("call:librte_net_pcap.so.23.0:0x00000000000069f0",)),
          ("parse + classify", ("parse", "classify", "dpdk inline:shim.h")),
          ("flow table", ("flow", "pipeline:flow_keys", "pipeline:flow_lookup",
                          "pipeline:flow_decide", "pipeline:flow_hit",
                          "pipeline:flow_burst", "dpdk inline:rte_crc_x86.h")),
          ("route", ("route", "dpdk inline:rte_lpm.h", "dpdk inline:rte_lpm6.h")),
          ("hash + member", ("hashing", "ecmp", "pipeline:stateless_hash",
                             "pipeline:entropy_hash", "mpls_hash")),
          ("rewrite / push", ("rewrite", "push", "mpls_output", "pipeline:emit_routed")),
          ("tx buffer", ("tx", "dpdk inline:rte_ethdev.h")))


def load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def plot_peers(peers: dict, out: Path) -> Path:
    names = list(peers["scenarios"])
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(names)), 4))
    w = 0.27
    for k, (side, label, color) in enumerate(SIDES):
        vals = [peers["scenarios"][n]["median"].get(side) or 0 for n in names]
        bars = ax.bar([i + (k - 1) * w for i in range(len(names))], vals, w, label=label,
                      color=color)
        for b, v in zip(bars, vals):
            if v:
                ax.annotate(f"{v:.1f}", (b.get_x() + b.get_width() / 2, v), ha="center",
                            va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels([f"{n}\n(OVS: {peers['scenarios'][n].get('ovs_scenario', '-')})"
                        for n in names], fontsize=8)
    ax.set_ylabel("Mpps, one forwarding core")
    ax.set_title(f"64-byte frames on net_pcap, {peers['memory']['mode']}, median of "
                 f"{peers['rounds']} alternating rounds", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "peers.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_flows(peers: dict, out: Path) -> Path | None:
    pts = [(FLOW_SCENARIOS[n], s) for n, s in peers["scenarios"].items()
           if n in FLOW_SCENARIOS]
    if len(pts) < 2:
        return None
    pts.sort(key=lambda p: p[0])
    fig, ax = plt.subplots(figsize=(6, 4))
    for side, label, color in SIDES:
        xs = [f for f, s in pts if s["median"].get(side)]
        ys = [s["median"][side] for f, s in pts if s["median"].get(side)]
        if xs:
            ax.plot(xs, ys, marker="o", label=label, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("distinct flows in the input (ours: flow mode; OVS: select group)")
    ax.set_ylabel("Mpps, one forwarding core")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"Forwarding rate against flows ({peers['memory']['mode']})", fontsize=9)
    fig.tight_layout()
    path = out / "flows.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def grouped(stages: dict) -> list[float]:
    vals, seen = [], set()
    for _, keys in GROUPS:
        vals.append(sum(stages.get(k, 0) for k in keys))
        seen.update(keys)
    vals.append(sum(v for k, v in stages.items() if k not in seen))    # the rest
    return vals


def plot_stages(results: Path, out: Path) -> Path | None:
    bars = []
    for f in sorted(results.glob("stages-*.json")):
        if f.stem.endswith("-before"):
            continue
        after = load(f)
        before = load(f.with_name(f.stem + "-before.json"))
        if not after:
            continue
        if before:
            bars.append((f"{after['scenario']}\nbefore", grouped(before["stages"])))
        bars.append((f"{after['scenario']}" + ("\nafter" if before else ""),
                     grouped(after["stages"])))
    if not bars:
        return None
    labels = [g for g, _ in GROUPS] + ["other"]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(bars)) + 2, 4.5))
    bottom = [0.0] * len(bars)
    cmap = plt.get_cmap("tab10")
    for j, label in enumerate(labels):
        vals = [b[1][j] for b in bars]
        ax.bar(range(len(bars)), vals, 0.6, bottom=bottom, label=label, color=cmap(j))
        bottom = [x + y for x, y in zip(bottom, vals)]
    for i, tot in enumerate(bottom):
        ax.annotate(f"{tot:.0f}", (i, tot), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([b[0] for b in bars], fontsize=7)
    ax.set_ylabel("instructions per packet (callgrind)")
    ax.set_title("Where a packet's instructions go, by stage (worker loop, RX and TX "
                 "included)", fontsize=9)
    ax.legend(fontsize=7, bbox_to_anchor=(1.01, 1), loc="upper left")
    fig.tight_layout()
    path = out / "stages.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    a = ap.parse_args()
    results = Path(a.results)
    made = []
    peers = load(results / "peers.json")
    if peers:
        made += [plot_peers(peers, results), plot_flows(peers, results)]
    made.append(plot_stages(results, results))
    made = [m for m in made if m]
    if not made:
        print(f"nothing to plot in {results} (run bench/peers.py, bench/stages.py)")
        return 1
    for m in made:
        print(f"wrote {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
