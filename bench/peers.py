#!/usr/bin/env python3
"""Ours against dpdk-testpmd and OVS-DPDK, in one invocation, on the same vdev and memory.

Every side gets one forwarding lcore and the same source, bench/throughput.py's: a
net_pcap vdev replaying a 64-byte UDP pcap from memory (infinite_rx=1), transmit
dropped by the PMD. Rounds alternate the sides (ours, testpmd macswap, OVS, ours, ...)
so the machine's background load hits them alike; the figure of a side is its median
over the rounds. OVS-DPDK is started privately by bench/ovs.py for each of its runs
(its own database, sockets and EAL prefix; nothing of the system's OVS is touched) and
its rate is read from its own port counters. If OVS cannot run here, the reason is
printed and recorded and the rest still runs.

Scenarios (ours = bench/throughput.py's scenario; OVS = bench/ovs.py's rules):
    l3          ours: routing, packet mode          OVS single: one output flow
    flows-N     ours: flow mode, group of 4, N flows (64, 1k, 100k, 1m)
                OVS select: a select group, hash over the 5-tuple, 4 buckets
    push-eli    ours: push [16001][ELI][EL]         OVS push_mpls: push one label
    ecmp        ours: packet mode, weighted group   OVS select (weights 1 1 1 1)
Targets (issue 16): ours >= 2x OVS's select group at 64 flows, >= 1.5x its push_mpls.

    python bench/peers.py [--scenario l3,flows-64,...] [--rounds 3] [--seconds 5]
                          [--memory auto|hugepages|no-huge] [--no-ovs] [--json FILE]
Writes bench/results/peers.json and, by bench/plot.py, peers.png and flows.png.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ovs  # noqa: E402
import plot  # noqa: E402
import throughput as tp  # noqa: E402

OVS_SCENARIO = {"l3": "single", "ecmp": "select", "push-eli": "push_mpls",
                "flows-64": "select", "flows-1k": "select", "flows-100k": "select",
                "flows-1m": "select"}
DEFAULT = ("l3", "flows-64", "flows-1k", "flows-100k", "flows-1m", "push-eli")
TARGETS_VS_OVS = {"flows-64": 2.0, "push-eli": 1.5}


def pcap_for(scenario: str, tmp: str) -> tuple[str, int]:
    path = os.path.join(tmp, f"{scenario}.pcap")
    n = tp.FLOW_SCENARIOS.get(scenario, 64)
    if scenario in tp.FLOW_SCENARIOS:
        tp.make_flows_pcap(path, n)
    else:
        tp.make_pcap(path)
    return path, n


def ovs_memory_mb(packets: int) -> int:
    # net_pcap keeps the whole pcap in mbufs of the port's pool
    return 512 if packets <= 10000 else 1536 if packets <= 200_000 else 3072


def measure_ovs(pcap: str, scenario: str, packets: int, seconds: float,
                install: bool) -> tuple[float | None, str | None, dict | None]:
    try:
        r = ovs.run(pcap, scenarios=(OVS_SCENARIO[scenario],), seconds=seconds,
                    memory=tp.MEMORY, memory_mb=ovs_memory_mb(packets), install=install)
        res = r[OVS_SCENARIO[scenario]]
        return res["mpps"], None, res
    except ovs.OvsError as e:
        return None, str(e), None


def run_scenario(a, scenario: str, tmp: str) -> dict:
    pcap, packets = pcap_for(scenario, tmp)
    runs = {"ours": [], "testpmd": [], "ovs": []}
    ovs_error, ovs_detail = (None if a.ovs else "--no-ovs"), None
    for rnd in range(a.rounds):
        mpps, _ = tp.ours(tp.scenario_config(scenario, pcap), a.seconds, tmp)
        runs["ours"].append(round(mpps, 3))
        runs["testpmd"].append(round(tp.testpmd(pcap, "macswap", a.seconds, packets), 3))
        if ovs_error is None:
            m, ovs_error, ovs_detail = measure_ovs(pcap, scenario, packets, a.seconds,
                                                   install=not a.no_install)
            if m is not None:
                runs["ovs"].append(m)
        print(f"  {scenario} round {rnd + 1}: ours {runs['ours'][-1]:.2f}, testpmd "
              f"{runs['testpmd'][-1]:.2f}, OVS "
              + (f"{runs['ovs'][-1]:.2f}" if runs["ovs"] and ovs_error is None
                 else f"- ({ovs_error})") + " Mpps", flush=True)
    med = {k: round(statistics.median(v), 3) if v else None for k, v in runs.items()}
    res = {"flows": packets, "ovs_scenario": OVS_SCENARIO[scenario], "runs": runs,
           "median": med,
           "ours_vs_testpmd": round(med["ours"] / med["testpmd"], 3),
           "target_vs_testpmd": tp.TARGETS.get(scenario)}
    res["meets_target_vs_testpmd"] = (res["ours_vs_testpmd"] >= res["target_vs_testpmd"]
                                      if res["target_vs_testpmd"] else None)
    if med["ovs"]:
        res["ours_vs_ovs"] = round(med["ours"] / med["ovs"], 3)
        if scenario in TARGETS_VS_OVS:
            res["target_vs_ovs"] = TARGETS_VS_OVS[scenario]
            res["meets_target_vs_ovs"] = res["ours_vs_ovs"] >= TARGETS_VS_OVS[scenario]
        res["ovs_last_run"] = {k: ovs_detail.get(k) for k in
                               ("pmd_cpu", "foreign_cpu", "datapath_flows", "buckets",
                                "rx_mpps", "pmd")} if ovs_detail else None
    if ovs_error:
        res["ovs_error"] = ovs_error
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenario", default=",".join(DEFAULT),
                    type=lambda s: [x for x in s.split(",") if x])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--memory", choices=("auto", "hugepages", "no-huge"), default="auto")
    ap.add_argument("--no-ovs", dest="ovs", action="store_false")
    ap.add_argument("--no-install", action="store_true",
                    help="do not apt-get OVS-DPDK when it is missing")
    ap.add_argument("--json", default=str(HERE / "results" / "peers.json"))
    a = ap.parse_args()
    bad = [s for s in a.scenario if s not in OVS_SCENARIO]
    if bad:
        ap.error(f"unknown scenario(s) {bad}; known: {', '.join(OVS_SCENARIO)}")
    tp.MEMORY, why = tp.choose_memory(a.memory)
    print(f"memory: {tp.MEMORY} on every side ({why})")
    ovs.sweep_stale()
    out = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rounds": a.rounds,
           "seconds": a.seconds, "memory": tp.memory_record(), "build": tp.build_id(),
           "frame_bytes": 64, "scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="dppeers") as tmp:
        for sc in a.scenario:
            out["scenarios"][sc] = run_scenario(a, sc, tmp)
            Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\n{'scenario':12}{'ours':>8}{'testpmd':>9}{'OVS':>8}{'/testpmd':>10}"
          f"{'target':>8}{'/OVS':>7}{'target':>8}   (Mpps, medians of {a.rounds} rounds, "
          f"{tp.MEMORY})")
    for sc, r in out["scenarios"].items():
        m = r["median"]
        print(f"{sc:12}{m['ours']:8.2f}{m['testpmd']:9.2f}"
              f"{(m['ovs'] or 0):8.2f}{r['ours_vs_testpmd']:10.3f}"
              f"{(r['target_vs_testpmd'] or 0):8.2f}{r.get('ours_vs_ovs', 0):7.2f}"
              f"{r.get('target_vs_ovs', 0):8.1f}"
              + (f"   OVS: {r['ovs_error']}" if r.get("ovs_error") else ""))
    print(f"wrote {a.json}")
    res_dir = Path(a.json).parent
    for made in (plot.plot_peers(out, res_dir), plot.plot_flows(out, res_dir)):
        if made:
            print(f"wrote {made}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
