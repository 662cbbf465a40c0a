"""Live table changes under traffic (SPEC §10, docs/workers.md): while `run --loop`
forwards with two workers, a group's bucket table is replaced 1,000 times and a VRF's
routes 100 times (tests/live_stress.py, in a child process: EAL once per process).
Nothing is lost or mis-sent, and no table version is read after it was freed:

- every frame is received exactly TTL times and then dropped `ttl_expired` (the run
  waits until all are dead): rx, tx and ttl_expired are exact sums of the pcap's TTLs,
  per port rx == preloaded frames + tx (what went into a port's ring came out of it),
  DPDK's own port counters (the rings' traffic) say the same;
- no other drop reason on a forwarding port (a stale or freed LPM table shows as
  no_route, a freed bucket table as garbage members or parse errors);
- a frame leaves only on a port some member or route pointed at: port `trap` (port 0,
  next hop 0, where a zeroed index lands) never transmits, each member's port sent
  exactly that member's packets;
- 1,100 versions published, 1,100 grace periods waited; each worker received packets
  over any two consecutive changes (the changes start once the short-lived frames are
  dead and end long before the long-lived ones are); mbufs all back after close.

test_changes_while_stopped_are_taken_on_restart: changes made while the workers are
stopped must be taken when they start again (a worker that tells versions apart by their
address alone keeps a freed version's tables when the new one reuses that address).

`make asan` builds the extensions with AddressSanitizer into build/asan/src and runs
test_live_changes_under_asan, which runs the same child with LD_PRELOAD=libasan: any
heap-use-after-free of a malloc'd table (version struct, group array, bucket table, VRF
array) aborts the child. ASAN does not see DPDK's own heap (rte_lpm tables): a freed LPM
table is caught by the counters above instead.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import live_stress
from dataplane.drops import DROP_REASONS

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "live_stress.py"
TIMEOUT = 300           # generous: two shared CPUs; a run takes 10-40 s here
ASAN_BUILD = Path(os.environ.get("DP_ASAN_BUILD", ROOT / "build" / "asan" / "src"))


def run_stress(tmp_path, per_worker: int, *args, env=None):
    """(OUT_JSON as a dict, TTL of every pcap frame, the child's stderr)."""
    cfg, pcap, ttls = live_stress.write_inputs(tmp_path / "in", per_worker)
    out = tmp_path / "out.json"
    argv = [sys.executable, str(SCRIPT), str(cfg), str(pcap), str(out), *map(str, args)]
    try:
        r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"live_stress.py did not finish in {TIMEOUT} s\n"
                             f"stderr:\n{e.stderr}") from None
    how = (f"killed by {signal.Signals(-r.returncode).name}" if r.returncode < 0
           else f"exit {r.returncode}")
    assert r.returncode == 0, f"live_stress.py: {how}\nstderr:\n{r.stderr[-6000:]}"
    assert "AddressSanitizer" not in r.stderr, r.stderr[-6000:]
    assert "Traceback" not in r.stderr, r.stderr
    print(r.stdout.strip())
    return json.loads(out.read_text()), ttls, r.stderr


def check_counters(d: dict, ttls: list[int]) -> None:
    """Exact TTL arithmetic, drop reasons, ports, members (see the module docstring)."""
    s = d["stats"]
    n = len(ttls)
    assert d["loop_frames"] == n
    assert d["alive_at_stop"] == 0, \
        f"{d['alive_at_stop']} frames still alive after {d['settle_seconds']:.1f} s"
    assert d["mbufs_in_use_after"] == 0
    forwarding = [p for p in d["ports"] if p != "trap"]
    ports = s["ports"]
    # every forwarding port holds the pcap: each frame received TTL times, t - 1 forwards
    assert s["rx"] == len(forwarding) * sum(ttls) + n
    assert s["tx"] == len(forwarding) * (sum(ttls) - n)
    assert s["rx"] == s["tx"] + sum(s["drops"].values())
    assert s["drops"] == {r: {"ttl_expired": len(forwarding) * n, "no_route": n}.get(r, 0)
                          for r in DROP_REASONS}
    for name in forwarding:
        assert {r: v for r, v in ports[name]["drops"].items() if v}.keys() <= \
            {"ttl_expired"}, (name, ports[name]["drops"])
    # the trap port: its own frames dropped in the route-less VRF quarantine, nothing out
    assert ports["trap"]["drops"] == {r: n if r == "no_route" else 0 for r in DROP_REASONS}
    assert "trap" not in d["target_ports"]
    for name, p in ports.items():
        assert p["rx"] == n + p["tx"], (name, p)        # rings empty at the end
        assert p["dpdk"]["ipackets"] == p["rx"] and p["dpdk"]["opackets"] == p["tx"], \
            (name, p)
        if p["tx"]:
            assert name in d["target_ports"], (name, p["tx"], d["target_ports"])
    # each member's port sent exactly that member's packets; the rest left via nx on x
    members = {m["nexthop"]: m["packets"] for m in s["groups"]["spines"]["members"]}
    for nh, port in (("s0", "m0"), ("s1", "m1"), ("s2", "m2")):
        assert ports[port]["tx"] == members[nh] > 0, (port, ports[port]["tx"], members)
    assert ports["x"]["tx"] == s["tx"] - sum(members.values()) > 0
    assert sum(w["rx"] for w in s["workers"]) == s["rx"]
    assert s["flows"]["flow_table_full"] == 0          # m1's flows all pinned
    assert s["flows"]["flow_rehashed"] > 0             # removed members' flows moved


def check_live(d: dict, group_changes: int, route_changes: int) -> None:
    changes = group_changes + route_changes
    assert (d["group_changes"], d["route_changes"]) == (group_changes, route_changes)
    assert d["version_after"] - d["version_before"] == changes
    assert d["grace_waits"] == changes
    assert d["patterns_used"] == len(live_stress.PATTERNS)
    assert all(d["ops"].values()), d["ops"]             # update_group, apply, set_routes
    w = d["window"]
    assert w["changes"] == changes
    # traffic flowed through every change: each worker received packets over any two
    # consecutive changes (a change waits for an iteration of each worker that ended
    # after its publish; the next one for a whole iteration begun after it: see
    # live_stress.run); a single interval may see none when both workers were
    # descheduled mid-iteration on a busy machine: counted, not asserted
    assert w["stalled_pairs_per_worker"] == [0] * len(w["rx_per_worker"]), \
        f"a worker received nothing over two consecutive changes (traffic ran out? more " \
        f"frames per worker): {w}"
    assert all(x > 0 for x in w["rx_per_worker"]), w
    assert w["tx"] > 0


GROUP_CHANGES, ROUTE_CHANGES = 1000, 100


# frames per worker: just above a power of two, so that a loopback ring (the power of two
# above) has room for twice its preload. Each worker burns its own frames' TTLs: the one
# alone on its CPU (lcore 1) up to three times faster than the one sharing the main
# lcore's CPU; 131100 keep the faster one's traffic flowing about twice as long as the
# 1,100 changes take on a busy machine here, with or without ASAN (which slows workers
# and changes alike: a grace period waits for the workers' iterations).
PER_WORKER = 131100


def test_live_changes_under_traffic(tmp_path):
    d, ttls, _ = run_stress(tmp_path, PER_WORKER, "--group-changes", GROUP_CHANGES,
                            "--route-changes", ROUTE_CHANGES)
    check_live(d, GROUP_CHANGES, ROUTE_CHANGES)
    check_counters(d, ttls)


def test_changes_while_stopped_are_taken_on_restart(tmp_path):
    """Workers stopped, a group change then a route change, workers started again, ten
    times: each restart forwards on the new version (none of the old version's freed
    tables is read). A worker that tells versions apart by their address alone takes the
    new version, malloc'd where the one it still holds was (freed by the first change),
    for its own and keeps that version's freed tables: it crashes or drops."""
    d, ttls, _ = run_stress(tmp_path, 33000, "--group-changes", 0, "--route-changes", 0,
                            "--restart-rounds", 10)
    assert d["version_final"] - d["version_before"] == 20
    assert all(x > 0 for x in d["restarts"]["rx_after_each"]), d["restarts"]
    s = d["stats"]
    n = len(ttls)
    assert d["alive_at_stop"] == 0 and d["mbufs_in_use_after"] == 0
    assert s["rx"] == 4 * sum(ttls) + n and s["tx"] == 4 * (sum(ttls) - n)
    assert s["drops"] == {r: {"ttl_expired": 4 * n, "no_route": n}.get(r, 0)
                          for r in DROP_REASONS}
    assert s["ports"]["trap"]["tx"] == 0


# ---------------------------------------------------------------- the same under ASAN

def libasan() -> Path | None:
    try:
        out = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(out) if out and Path(out).is_absolute() and Path(out).exists() else None


def asan_build_problem() -> str | None:
    """Why the ASAN build cannot be used now, or None."""
    pkg = ASAN_BUILD / "dataplane"
    missing = [m for m in ("_core", "_hashing", "_rss") if not list(pkg.glob(f"{m}.*.so"))]
    if missing:
        return f"no ASAN build in {ASAN_BUILD} (missing {', '.join(missing)}): make asan"
    if live_stress.source_digest(ASAN_BUILD) != live_stress.source_digest(ROOT):
        return f"the ASAN build in {ASAN_BUILD} is of other sources than the work tree: " \
               "make asan"
    if libasan() is None:
        return "gcc -print-file-name=libasan.so names no file"
    return None


def test_live_changes_under_asan(tmp_path):
    """test_live_changes_under_traffic with the extensions of `make asan`
    (-fsanitize=address) in a child preloaded with libasan. Skipped without an up to date
    ASAN build, unless DP_ASAN_REQUIRED=1 (make asan sets it): then that fails."""
    problem = asan_build_problem()
    if problem:
        if os.environ.get("DP_ASAN_REQUIRED") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    env = dict(os.environ, LD_PRELOAD=str(libasan()), PYTHONPATH=str(ASAN_BUILD),
               # Python's own allocations are never freed at exit: no leak report;
               # abort on the first error so that the child's exit status shows it
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1")
    d, ttls, _ = run_stress(tmp_path, PER_WORKER, "--group-changes", GROUP_CHANGES,
                            "--route-changes", ROUTE_CHANGES, env=env)
    assert d["asan"], "libasan is not mapped in the child"
    assert Path(d["core_file"]).resolve().is_relative_to(ASAN_BUILD.resolve()), \
        f"the child imported {d['core_file']}, not the ASAN build in {ASAN_BUILD}"
    check_live(d, GROUP_CHANGES, ROUTE_CHANGES)
    check_counters(d, ttls)
