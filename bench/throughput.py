#!/usr/bin/env python3
"""Forwarding throughput as a ratio to dpdk-testpmd, measured in one run on one vdev.

Both sides get one forwarding lcore and the same source: a net_pcap vdev replaying a
64-byte UDP pcap from memory (infinite_rx=1) with no tx_pcap, so the PMD drops on
transmit and neither side is capped by pcap writing. testpmd runs in macswap mode (the
ceiling the issues name) and io mode; we run a scenario's config with `dataplane run`.
Absolute Mpps on a shared machine mean little; the ratio is the figure.

Flow setup (`--scenario setup`: 4 M new flows into an empty table) is also run with
`dataplane run --loop`: the port is a net_ring loopback preloaded with the same frames, so
receive and transmit are pointer moves and no PMD copies a frame. That is the per-core
setup rate the ≥ 5 M/s target is judged on; net_pcap's replay copy alone takes about
190 cycles per packet here (docs/flow-table.md §9), more than a NIC's RX and TX.

Workers (`--workers 1,2`): for each N of the list, in alternating rounds (N=1, N=2, N=1,
N=2, ...), these sides, each with N forwarding lcores:
- ours on `run --loop` rings: one ring per worker, holding the frames RSS gives it, from
  a loop pcap in two layouts (--loop-layouts, make_loop_pcap): "grouped", queue 0's
  frames, then queue 1's, ..., and "mixed", the frames in pcap order (a capture whose
  flows alternate). A ring fill that walks the pcap once, taking an mbuf per frame from
  the one pool, interleaves the workers' mbufs on mixed and 2 workers then ran at 0.76x
  one on l3 (grouped 1.78x); pyx/loopport.pxd ring_fill now fills queue by queue, so
  both layouts give each worker one block of mbufs and mixed checks that it still does;
- ours on net_pcap: one `rx_pcap=` per worker, the pcap split by RSS
  (dataplane.rss.split_pcap), `infinite_rx=1`, no tx file (see pcap_vdev);
- testpmd macswap, `--nb-cores N --rxq N --txq N` on that same vdev.
With N workers the lcore map is main lcore 0 on CPU 0 and worker lcore w on CPU w mod
<CPUs> ("0@0,1@1,2@0" on this 2-CPU machine: the second worker shares CPU 0 with the main
lcore), the same for testpmd (its main lcore 0 only prints stats). Every side runs with
--no-huge -m 512 as above. A loop ring's frames carry TTL 255 (each pass decrements it)
and the ring is sized so that no frame expires within --loop-seconds (checked:
`ttl_expired` must stay 0). Before each run the bench waits (up to --settle s) for the
machine to go idle, and measures the CPU the rest of the machine used during the run
(`foreign_cpu`, in CPUs); a run with more than --max-foreign is repeated (--attempts runs
in all; the rejected figures are kept in the JSON). The N=2/N=1 scaling of the loop side is
judged against SCALING_TARGET (1.7x), on the grouped layout (the mixed layout's verdict
is reported beside it). The JSON's `workers` section holds every run.

    python bench/throughput.py [--scenario l3|ecmp|flows-64|flows-1k|flows-100k|flows-1m|setup|
                                           churn|push-eli|mpls-udp[,...]]
                               [--seconds 5] [--rounds 3] [--json FILE]
                               [--workers 1,2] [--loop-seconds S] [--stats-interval S]
                               [--loop-layouts grouped,mixed] [--settle S] [--quiet CPUS]
                               [--max-foreign CPUS] [--attempts N]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"l3": 0.75, "ecmp": 0.65, "flows-64": 0.55, "flows-1k": 0.55,
           "flows-100k": 0.35, "flows-1m": 0.35, "setup": 0.0, "churn": 0.0,
           "push-eli": 0.55, "mpls-udp": 0.50}
SETUP_TARGET = 5e6             # new flows per second per core
EAL_MEM = ["--no-huge", "-m", "512", "--no-pci", "--no-shconf"]
# the memory every side runs on (--memory): "hugepages" (2 MiB hugepages from hugetlbfs,
# EAL --in-memory, so a killed side leaves no files) or "no-huge" (4 KiB pages; ours then
# maps its mbuf pool and flow table on transparent huge pages, which testpmd cannot)
MEMORY = "no-huge"
HUGEPAGES_WANTED = 2048        # 4 GiB: flows-1m's testpmd takes 1.5 GiB, ours as much


def hugepages_free() -> int:
    """Free 2 MiB hugepages, 0 unless hugetlbfs is mounted somewhere."""
    mounts = Path("/proc/mounts").read_text()
    if " hugetlbfs " not in mounts:
        return 0
    m = re.search(r"HugePages_Free:\s+(\d+)", Path("/proc/meminfo").read_text())
    return int(m.group(1)) if m else 0


def choose_memory(asked: str) -> tuple[str, str]:
    """(mode, why): auto takes hugepages when they can be had (running `make hugepages`
    first when short and root), else no-huge."""
    if asked == "no-huge":
        return "no-huge", "asked (--memory no-huge)"
    if hugepages_free() < HUGEPAGES_WANTED // 2 and os.geteuid() == 0:
        subprocess.run(["make", "-s", "--no-print-directory", "hugepages",
                        f"HUGEPAGES={HUGEPAGES_WANTED}"], cwd=ROOT, check=False)
    free = hugepages_free()
    if free >= 256:
        return "hugepages", f"{free} free 2 MiB hugepages"
    why = (f"only {free} free 2 MiB hugepages (make hugepages, as root, reserves them)")
    if asked == "hugepages":
        raise SystemExit(f"--memory hugepages: {why}")
    return "no-huge", why


def eal_mem(mb: int = 512) -> list[str]:
    """testpmd's EAL memory flags on MEMORY."""
    if MEMORY == "hugepages":
        return ["-m", str(mb), "--in-memory", "--no-pci"]
    return ["--no-huge", "-m", str(mb), "--no-pci", "--no-shconf"]


def memory_record() -> dict:
    """What the JSON says of the memory every side ran on."""
    if MEMORY == "hugepages":
        return {"mode": "hugepages", "testpmd_eal": eal_mem(),
                "ours_eal": "eal.no_huge false, eal.extra [--in-memory]",
                "note": "every side on 2 MiB hugepages from hugetlbfs"}
    return {"mode": "no-huge", "testpmd_eal": eal_mem(),
            "ours_eal": "eal.memory_mb 512, eal.no_huge (default true)",
            "note": "every side --no-huge; ours maps its mbuf pool (and flow table) on "
                    "transparent huge pages, testpmd cannot: not the same memory"}
SCALING_TARGET = 1.7           # ours on loop rings, 2 workers over 1 (main lcore sharing a CPU)
LOOP_TTL = 255                 # a loop ring's frames: forwarded LOOP_TTL - 1 times each
LOOP_RATE_GUESS = 60e6         # packets/s one worker might reach on a loop ring (over-estimate)
LOOP_MBUF_SIZE = 256           # 128 data bytes: 64-byte frames, ~1 M of them per worker
LOOP_SCENARIOS = {"l3", "ecmp", *("flows-64 flows-1k flows-100k flows-1m setup churn".split())}


def make_pcap(path: str, flows: int = 64, ttl: int = 64) -> None:
    """64-byte frames (60 + FCS): UDP from `flows` sources to 10.x destinations."""
    from scapy.all import IP, UDP, Ether, Raw, wrpcap
    pkts = []
    for i in range(flows):
        p = (Ether(src="02:00:00:00:00:10", dst="02:00:00:00:00:01") /
             IP(src=f"192.168.{i // 256}.{i % 256}", dst=f"10.{i % 7}.{i % 13}.{i}", ttl=ttl) /
             UDP(sport=1024 + i, dport=5000 + i % 17))
        pkts.append(p / Raw(b"\0" * (60 - len(p))))
    wrpcap(path, pkts)


def make_flows_pcap(path: str, flows: int, ttl: int = 64) -> None:
    """`flows` 64-byte UDP frames, one per flow (source address and port vary), written
    with numpy: scapy would take minutes for a million."""
    import numpy as np
    n = flows
    rec = np.zeros((n, 16 + 60), dtype=np.uint8)
    rec[:, 8:12] = np.frombuffer(np.uint32(60).tobytes(), np.uint8)      # caplen
    rec[:, 12:16] = np.frombuffer(np.uint32(60).tobytes(), np.uint8)     # len
    f = rec[:, 16:]
    f[:, 0:6] = [2, 0, 0, 0, 0, 1]
    f[:, 6:12] = [2, 0, 0, 0, 0, 0x10]
    f[:, 12:14] = [8, 0]
    i = np.arange(n, dtype=np.uint32)
    ip = f[:, 14:34]
    ip[:, 0], ip[:, 3], ip[:, 8], ip[:, 9] = 0x45, 46, ttl, 17
    src = (100 << 24 | 64 << 16) + i                                     # 100.64.0.0 + i
    dst = np.uint32(10 << 24 | 2 << 16 | 0 << 8 | 1) + (i % 251)         # 10.2.0.1..
    for b in range(4):
        ip[:, 12 + b] = (src >> (24 - 8 * b)) & 0xFF
        ip[:, 16 + b] = (dst >> (24 - 8 * b)) & 0xFF
    words = ip.reshape(n, 10, 2).astype(np.uint32)
    s = (words[:, :, 0] << 8 | words[:, :, 1]).sum(axis=1)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    c = ~s & 0xFFFF
    ip[:, 10], ip[:, 11] = c >> 8, c & 0xFF
    sport = 1024 + (i % 50000)
    udp = f[:, 34:42]
    udp[:, 0], udp[:, 1] = sport >> 8, sport & 0xFF
    udp[:, 2], udp[:, 3] = 0x13, 0x88                                    # 5000
    udp[:, 5] = 26
    with open(path, "wb") as out:
        out.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 65535, 1], dtype="<u4")
                  .tobytes()[:24])
        out.write(rec.tobytes())


FLOW_SCENARIOS = {"flows-64": 64, "flows-1k": 1024, "flows-100k": 100_000,
                  "flows-1m": 1_000_000, "setup": 4_000_000, "churn": 1_000_000}


def pcap_vdev(pcaps: list[str]) -> str:
    """The net_pcap source: one rx_pcap per queue (net_pcap makes one RX queue per
    rx_pcap), each replayed from memory forever. No tx_pcap/tx_iface: net_pcap 22.11
    then adds one TX queue per RX queue that counts and drops ("tx_drop"), so N queues
    get N TX queues without a tx file (verified: testpmd reports "RX queue number: 2 Tx
    queue number: 2"; tx_pcap=/dev/null per queue would also give N TX queues but caps
    everything at about 8.5 Mpps writing pcap records)."""
    return ",".join(["net_pcap0", *(f"rx_pcap={p}" for p in pcaps), "infinite_rx=1"])


def lcore_map(workers: int, cpus: int | None = None) -> str:
    """EAL lcores for a main lcore and `workers` workers: "0-1" for one worker; for more,
    lcore l on CPU l mod cpus ("0@0,1@1,2@0" on 2 CPUs: worker 2 shares CPU 0 with the
    main lcore)."""
    cpus = cpus or os.cpu_count() or 1
    if workers == 1:
        return "0-1"
    return ",".join(f"{lc}@{lc % cpus}" for lc in range(workers + 1))


def eal_lcore_flag(lcores: str) -> list[str]:
    return ["--lcores", lcores] if "@" in lcores or "(" in lcores else ["-l", lcores]


def scenario_config(name: str, pcap: str, loop: bool = False, lcores: str = "0-1",
                    rx_pcaps: list[str] | None = None, mbuf_size: int | None = None) -> str:
    """The YAML config of a scenario: one port on the net_pcap source, routes to next
    hops on that port (transmit is dropped by the PMD). loop: for `run --loop`, whose
    ring brings its own mbufs for the frames. lcores: eal.lcores (main first, then the
    workers); rx_pcaps: one rx_pcap per worker queue instead of `pcap`; mbuf_size:
    overrides eal.mbuf_size."""
    import yaml
    nexthops = {f"nh{i}": {"port": "p0", "mac": f"02:00:00:00:00:{0x0f + i:02x}"}
                for i in range(1, 5)}
    port = {"name": "p0", "devargs": pcap_vdev(rx_pcaps or [pcap]),
            "mac": "02:00:00:00:00:01", "mode": "packet"}
    doc = {"node": {"name": "bench"}, "eal": {"lcores": lcores, "memory_mb": 512,
                                              "mbufs": 8192},
           "ports": [port], "nexthops": nexthops}
    if name == "l3":                                   # plain routing, packet mode
        doc["nexthops"] = {k: nexthops[k] for k in ("nh1", "nh2")}
        routes = [("10.0.0.0/8", "nh1"), ("10.1.0.0/16", "nh2"), ("192.168.0.0/16", "nh1")]
    elif name == "ecmp":                               # a weighted group with a drained member
        weights = [1, 1, 2, 0]
        routes = [("10.0.0.0/8", "spines"), ("192.168.0.0/16", "nh1")]
    elif name == "push-eli":                           # LER push: transport + ELI/EL
        doc["nexthops"] = {"nh1": dict(nexthops["nh1"], labels=[16001], entropy=True)}
        routes = [("10.0.0.0/8", "nh1")]
    elif name == "mpls-udp":                           # MPLS-over-UDP toward a remote PE
        doc["node"]["tunnel_address"] = "192.0.2.1"
        doc["nexthops"] = {"nh1": dict(nexthops["nh1"], labels=[20], tunnel={
            "type": "mpls-udp", "remote": "203.0.113.9"})}
        routes = [("10.0.0.0/8", "nh1")]
    elif name in FLOW_SCENARIOS:                       # flow mode
        n = FLOW_SCENARIOS[name]
        weights = [1, 1, 1, 1]
        routes = [("10.0.0.0/8", "spines")]
        port["mode"] = "flow"
        # with --no-huge the mbuf pool and flow table are mapped outside EAL memory
        doc["eal"] = {"lcores": lcores, "memory_mb": 512,
                      "mbufs": 8192 if loop else mbufs_for(n),
                      "mbuf_size": 256 if n > 10000 else 2176}
        # setup: 4 M new flows into an empty 4 Mi table (the first pass is all setups);
        # churn: 1 µs idle timeout, so every packet is a new flow and aging deletes
        doc["flow_table"] = {"entries": 1 << 22 if name == "setup" else 1 << 20,
                             "idle_timeout": 0.000001 if name == "churn" else 300.0}
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    if name in ("ecmp",) or name in FLOW_SCENARIOS:
        doc["groups"] = {"spines": {"members": [{"nexthop": f"nh{i + 1}", "weight": w}
                                                for i, w in enumerate(weights)]}}
    doc["vrfs"] = {"default": {"routes": [{"prefix": p, "via": v} for p, v in routes]}}
    if mbuf_size:
        doc["eal"]["mbuf_size"] = mbuf_size
    if MEMORY == "hugepages":          # the same memory as testpmd: EAL's, on hugepages
        doc["eal"]["no_huge"] = False
        doc["eal"]["extra"] = ["--in-memory"]
        n = FLOW_SCENARIOS.get(name, 0)
        doc["eal"]["memory_mb"] = 3072 if n > 2_000_000 else 1536 if n > 10000 else 512
    return yaml.safe_dump(doc, sort_keys=False)


def mbufs_for(packets: int) -> int:
    """net_pcap infinite_rx keeps the whole pcap in mbufs."""
    return max(8192, packets + 16384)


def testpmd_cmd(pcap: str, mode: str, packets: int = 64, rx_pcaps: list[str] | None = None,
                lcores: str = "0-1", cores: int = 1) -> list[str]:
    """testpmd on the net_pcap source (pcap_vdev); with rx_pcaps, one RX (and TX) queue
    per file and `cores` forwarding lcores (--nb-cores), lcores as eal.lcores."""
    cmd = ["dpdk-testpmd", *eal_lcore_flag(lcores), *eal_mem(),
           "--file-prefix", f"tpmd{os.getpid()}",
           "--vdev", pcap_vdev(rx_pcaps or [pcap]), "--",
           f"--forward-mode={mode}", "--stats-period", "1",
           f"--total-num-mbufs={mbufs_for(packets)}", f"--nb-cores={cores}"]
    if rx_pcaps:
        cmd += [f"--rxq={len(rx_pcaps)}", f"--txq={len(rx_pcaps)}"]
    if packets > 10000:
        cmd[cmd.index("512")] = "3072" if packets > 2_000_000 else "1536"
        cmd.append("--mbuf-size=256")
    return cmd


def testpmd(pcap: str, mode: str, seconds: float, packets: int = 64,
            rx_pcaps: list[str] | None = None, lcores: str = "0-1", cores: int = 1) -> float:
    """Median Rx-pps of testpmd's periodic stats, the first two prints discarded (the
    first is printed at start, 0). It runs until `seconds` after its first print (it
    prints every 2 s here despite --stats-period 1), timed from that print rather than
    from launch: a loaded machine can take seconds to start it."""
    cmd = testpmd_cmd(pcap, mode, packets, rx_pcaps, lcores, cores)
    lines, first = [], None
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    # the deadline covers start and pcap loading
    killer = threading.Timer(seconds + 30 + packets / 100_000, p.kill)
    killer.start()
    try:
        for line in p.stdout:
            lines.append(line)
            if "Rx-pps" in line:
                now = time.monotonic()
                first = first or now
                if now - first >= seconds + 0.5 and sum("Rx-pps" in x for x in lines) >= 3:
                    break
    finally:
        killer.cancel()
        p.kill()
        p.wait()
        p.stdout.close()
    out = "".join(lines)
    rates = [int(x) for x in re.findall(r"Rx-pps:\s+(\d+)", out)]
    rates = [r for r in rates[2:] if r > 0]
    if not rates:
        raise SystemExit(f"testpmd {mode}: no rate measured; output:\n{out[-2000:]}")
    return statistics.median(rates) / 1e6


def ours(config_text: str, seconds: float, tmp: str, loop: str | None = None,
         stats_interval: float = 0.1, rx_below: int | None = None) -> tuple[float, dict]:
    """`dataplane run` (on a loop ring with `loop`): the median of the rates between its
    samples, the first two intervals discarded; rx_below: only samples taken before the
    total received reached it (a loop ring whose first frames may have expired after)."""
    cfg = Path(tmp, "bench.yaml")
    cfg.write_text(config_text)
    res = Path(tmp, "run.json")
    subprocess.run([sys.executable, "-m", "dataplane.cli", "run", str(cfg), "--duration",
                    str(seconds), "--stats-interval", str(stats_interval), "--json", str(res),
                    "-q", *(["--loop", loop] if loop else [])],
                   check=True, cwd=ROOT, timeout=seconds + 120)
    s = json.loads(res.read_text())
    pts = s["samples"]
    if rx_below is not None:
        pts = [p for p in pts if p[1] < rx_below]
    rates = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:])]
    rates = rates[2:] or rates
    if not rates:                      # too few samples (a long --stats-interval)
        return s["pps"] / 1e6, s
    return statistics.median(rates) / 1e6, s


def setup_rate(s: dict, flows: int) -> float:
    """New flows per second while the table fills (first pass over the pcap)."""
    pts = [p for p in s["samples"] if p[2] < 0.95 * flows]
    rates = [(b[2] - a[2]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if b[2] > a[2]]
    if not rates:
        raise SystemExit("setup: no sample caught the table filling; lower --interval")
    return statistics.median(rates[1:] or rates)


def net_of_vdev(rate: float, io_mpps: float) -> float:
    """Setups/s of the forwarding core alone: our time per new flow minus testpmd io's
    time per packet on the same vdev (net_pcap's replay copy and drop, which a NIC's
    rx/tx costs far less than), measured in the same round."""
    per = 1 / rate - 1 / (io_mpps * 1e6)
    if per <= 0:
        raise SystemExit(f"setup: {rate:.0f}/s is faster than testpmd io ({io_mpps} Mpps)")
    return 1 / per


# ---------------------------------------------------------------- machine load

HZ = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (user, nice, system, irq, softirq,
    steal: everything but idle and iowait), from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / HZ


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def wait_quiet(max_wait: float, limit: float) -> tuple[float, float]:
    """Wait until the machine uses less than `limit` CPUs (over 0.5 s), at most max_wait
    seconds: (seconds waited, CPUs busy in the last look)."""
    t0 = time.monotonic()
    while True:
        b0 = busy_seconds()
        time.sleep(0.5)
        load = (busy_seconds() - b0) / 0.5
        waited = time.monotonic() - t0
        if load < limit or waited >= max_wait:
            return round(waited, 1), round(load, 3)


def measured(fn, a) -> tuple[object, dict]:
    """fn() once the machine is quiet, with the CPU the rest of the machine used while it
    ran (`foreign_cpu`, in CPUs: machine busy time minus our child processes' CPU time,
    over the wall time); repeated (a.attempts in all) while that exceeds a.max_foreign.
    Returns fn's result and {waited_s, foreign_cpu, rejected: [earlier attempts]}."""
    rejected = []
    for attempt in range(a.attempts):
        waited, load = wait_quiet(a.settle, a.quiet)
        t0, b0, c0 = time.monotonic(), busy_seconds(), children_cpu()
        result = fn()
        wall = time.monotonic() - t0
        foreign = max(0.0, (busy_seconds() - b0) - (children_cpu() - c0)) / wall
        info = {"waited_s": waited, "load_before": load, "foreign_cpu": round(foreign, 3)}
        if foreign <= a.max_foreign or attempt == a.attempts - 1:
            return result, dict(info, attempt=attempt + 1, rejected=rejected)
        rejected.append(dict(info, result=result[0] if isinstance(result, tuple) else result))
        print(f"  (rejected: other processes used {foreign:.2f} CPUs during the run; again)")


# ---------------------------------------------------------------- workers


def pcap_records(data: bytes) -> int:
    """Records of a classic little-endian pcap held in data (the bench's own files)."""
    off, n = 24, 0
    while off + 16 <= len(data):
        off += 16 + struct.unpack_from("<I", data, off + 8)[0]
        n += 1
    return n


def make_loop_pcap(base: str, out: str, workers: int, per_worker: int,
                   layout: str = "grouped") -> dict:
    """The frames of `base` (TTL LOOP_TTL), repeated until every worker's ring holds at
    least per_worker of them under the RSS split (a worker gets the frames the split gives
    its net_pcap queue). layout "mixed": base repeated as it is, so consecutive frames
    belong to different workers; "grouped": all of queue 0's frames, then queue 1's, ...
    A ring fill taking an mbuf from the one pool per frame in file order gives the
    workers interleaved mbufs on mixed and a contiguous block each on grouped (as a NIC
    queue's mbufs, refilled from its worker's mempool cache, would be); ring_fill now
    fills queue by queue, a block each on both. The frame counts per worker."""
    from dataplane import rss
    data = Path(base).read_bytes()
    parts = rss.split_pcap(data, workers)
    counts = [pcap_records(part) for part in parts]
    copies = math.ceil(per_worker / max(1, min(c for c in counts if c) if any(counts) else 1))
    with open(out, "wb") as f:
        f.write(data[:24])
        for body in ([data[24:]] if layout == "mixed" else [p[24:] for p in parts]):
            for _ in range(copies):
                f.write(body)
    return {"frames": sum(counts) * copies, "frames_per_worker": [c * copies for c in counts],
            "copies_of_pcap": copies, "layout": layout, "ttl": LOOP_TTL,
            "mbuf_size": LOOP_MBUF_SIZE}


SIDES = ("ours_loop", "ours_loop_mixed", "ours_pcap", "testpmd_macswap")
LABELS = {"ours_loop": "ours, loop rings (grouped)",
          "ours_loop_mixed": "ours, loop rings (mixed)",
          "ours_pcap": "ours, net_pcap", "testpmd_macswap": "testpmd macswap, net_pcap"}


def run_workers(a, scenario: str, json_path: str) -> dict:
    """Every N of a.workers, in alternating rounds: ours on loop rings, ours on net_pcap,
    testpmd --nb-cores N on the same net_pcap vdev (module docstring)."""
    packets = FLOW_SCENARIOS.get(scenario, 64)
    loop_ok = scenario in LOOP_SCENARIOS
    loop_seconds = a.loop_seconds or min(a.seconds, 3)
    per_worker = math.ceil(LOOP_RATE_GUESS * (loop_seconds + 1) / (LOOP_TTL - 1))
    runs, rejected, setup = [], [], {"build": build_id()}
    with tempfile.TemporaryDirectory(prefix="dpbench") as tmp:
        from dataplane import rss
        pcap = os.path.join(tmp, "udp64.pcap")
        base = os.path.join(tmp, "loop-base.pcap")
        make = make_flows_pcap if scenario in FLOW_SCENARIOS else (
            lambda path, n, ttl=64: make_pcap(path, ttl=ttl))
        make(pcap, packets)
        data = Path(pcap).read_bytes()
        for n in a.workers:
            lc = lcore_map(n)
            parts = [pcap]
            if n > 1:                  # one rx_pcap per queue: RSS's share of the frames
                parts = []
                for q, part in enumerate(rss.split_pcap(data, n)):
                    parts.append(os.path.join(tmp, f"n{n}.rx{q}.pcap"))
                    Path(parts[-1]).write_bytes(part)
            setup[n] = {"lcores": lc, "ours_eal": eal_lcore_flag(lc),
                        "testpmd_args": testpmd_cmd(pcap, "macswap", packets,
                                                    parts if n > 1 else None, lc, n)[1:],
                        "frames_per_queue": [pcap_records(Path(f).read_bytes())
                                             for f in parts]}
            if loop_ok:
                if not os.path.exists(base):
                    make(base, packets, ttl=LOOP_TTL)
                # one ring per worker: with N=1 both layouts are the same file
                for layout in (["grouped"] if n == 1 else a.loop_layouts):
                    setup[n]["loop" if layout == "grouped" else f"loop_{layout}"] = \
                        make_loop_pcap(base, os.path.join(tmp, f"n{n}.loop-{layout}.pcap"),
                                       n, per_worker, layout)
        print(f"scenario {scenario}: workers {','.join(map(str, a.workers))}, "
              f"{a.rounds} rounds of {a.seconds:g} s (loop rings {loop_seconds:g} s)")
        for r in range(a.rounds):
            for n in a.workers:
                st, lc = setup[n], setup[n]["lcores"]
                parts = [pcap] if n == 1 else [os.path.join(tmp, f"n{n}.rx{q}.pcap")
                                               for q in range(n)]
                sides = []
                sides.append(("testpmd_macswap", lambda: (testpmd(
                    pcap, "macswap", a.seconds, packets, parts if n > 1 else None, lc, n),
                    None)))
                sides.append(("ours_pcap", lambda: ours(
                    scenario_config(scenario, pcap, lcores=lc, rx_pcaps=parts),
                    a.seconds, tmp, stats_interval=a.stats_interval)))
                for layout in ((["grouped"] if n == 1 else a.loop_layouts) if loop_ok else []):
                    key = "loop" if layout == "grouped" else f"loop_{layout}"
                    bound = min(f for f in st[key]["frames_per_worker"] if f) * (LOOP_TTL - 1)
                    sides.append(("ours_" + key, lambda layout=layout, bound=bound: ours(
                        scenario_config(scenario, pcap, loop=True, lcores=lc,
                                        mbuf_size=LOOP_MBUF_SIZE),
                        loop_seconds, tmp, loop=os.path.join(tmp, f"n{n}.loop-{layout}.pcap"),
                        stats_interval=a.stats_interval, rx_below=bound)))
                for side, fn in sides:
                    (mpps, s), info = measured(fn, a)
                    row = {"round": r + 1, "workers": n, "side": side,
                           "mpps": round(mpps, 3), **info}
                    for x in info["rejected"]:
                        rejected.append({"round": r + 1, "workers": n, "side": side,
                                         **{k: v for k, v in x.items() if k != "result"},
                                         "mpps": round(x["result"], 3)})
                    del row["rejected"]
                    if s is not None:
                        secs = s["seconds"] or 1
                        row["mpps_whole_run"] = round(s["pps"] / 1e6, 3)
                        row["per_worker_mpps"] = [round(w["rx"] / secs / 1e6, 3)
                                                  for w in s["workers"]]
                        row["per_worker_lcore"] = [w["lcore"] for w in s["workers"]]
                        row["drops"] = {k: v for k, v in s["drops"].items() if v}
                        row["samples"] = [[round(t, 4), rx] for t, rx, _ in s["samples"]]
                        if side.startswith("ours_loop"):
                            row["loop_frames"] = s.get("loop_frames")
                            # no frame may expire within the run (ring sized for it)
                            row["loop_ran_dry"] = s["drops"].get("ttl_expired", 0) > 0
                    runs.append(row)
                    print(f"  round {r + 1} N={n} {side:16} {mpps:7.2f} Mpps"
                          + (f"  per worker {row['per_worker_mpps']}" if s else "")
                          + f"  foreign {info['foreign_cpu']:.2f} CPU"
                          + ("  LOOP RAN DRY" if row.get("loop_ran_dry") else ""))
    return summarize_workers(a, scenario, runs, rejected, setup, loop_ok, loop_seconds)


def summarize_workers(a, scenario, runs, rejected, setup, loop_ok, loop_seconds) -> dict:
    sides = [x for x in SIDES if not x.startswith("ours_loop") or loop_ok and (
        x == "ours_loop" and "grouped" in a.loop_layouts or
        x == "ours_loop_mixed" and "mixed" in a.loop_layouts)]
    build = setup.pop("build")
    ns = a.workers

    def of(side, n):
        if side.startswith("ours_loop") and n == 1:
            side = "ours_loop"         # one ring: the layouts coincide (one set of runs)
        return [x["mpps"] for x in runs if x["side"] == side and x["workers"] == n]

    med = {side: {n: statistics.median(of(side, n)) for n in ns} for side in sides}
    ratio = {side: {n: med[side][n] / med["testpmd_macswap"][n] for n in ns}
             for side in sides if side != "testpmd_macswap"}
    scaling, scaling_rounds = {}, {}
    if 1 in ns:
        for side in sides:
            scaling[side] = {n: med[side][n] / med[side][1] for n in ns if n != 1}
            scaling_rounds[side] = {n: [round(x / y, 3) for x, y in zip(of(side, n), of(side, 1))]
                                    for n in ns if n != 1}
    target = {"side": "ours_loop", "workers": 2, "over_workers": 1,
              "target": SCALING_TARGET, "measured": None, "met": None}
    if loop_ok and 1 in ns and 2 in ns:
        for side in ("ours_loop", "ours_loop_mixed"):
            if side not in sides:
                continue
            t = {"measured": round(scaling[side][2], 3),      # ratio of the medians
                 "met": scaling[side][2] >= SCALING_TARGET,
                 "per_round": scaling_rounds[side][2],
                 "per_round_median": round(statistics.median(scaling_rounds[side][2]), 3)}
            if side == "ours_loop":
                target.update(t, layout="grouped")
            else:
                target["mixed_layout"] = t
        target["note"] = (
            "loop pcap grouped by RSS queue (each worker's mbufs one block of the pool "
            "whatever ring_fill does) and in pcap order (mixed: interleaved mbufs unless "
            "ring_fill fills queue by queue, as it does since loopport.pxd 16:57); both "
            "are reported, `met` is the grouped layout's")
    elif not loop_ok:
        target["note"] = (f"{scenario}: forwarded frames do not come back to a loop ring as "
                          "routable packets (encapsulated), so no loop side")
    dry = [x for x in runs if x.get("loop_ran_dry")]
    res = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "workers": ns, "rounds": a.rounds, "seconds": a.seconds, "loop_seconds": loop_seconds,
        "stats_interval": a.stats_interval, "frame_bytes": 64,
        "testpmd_mode": "macswap",
        "memory": memory_record(),
        "net_pcap": "one rx_pcap per queue (RSS split of the pcap), infinite_rx=1, no tx "
                    "file: net_pcap adds one tx_drop queue per rx queue",
        "setup": {str(n): v for n, v in setup.items()},
        "median_mpps": {side: {str(n): round(v, 3) for n, v in d.items()}
                        for side, d in med.items()},
        "ratio_vs_testpmd": {side: {str(n): round(v, 3) for n, v in d.items()}
                             for side, d in ratio.items()},
        "scaling_vs_1_worker": {side: {str(n): round(v, 3) for n, v in d.items()}
                                for side, d in scaling.items()},
        "scaling_vs_1_worker_per_round": {side: {str(n): v for n, v in d.items()}
                                          for side, d in scaling_rounds.items()},
        "scaling_target": target,
        "loop_layouts": a.loop_layouts if loop_ok else [],
        "loop_runs_ran_dry": len(dry),
        "foreign_cpu_max": max(x["foreign_cpu"] for x in runs),
        "runs": runs, "rejected_runs": rejected,
        "host": platform.node(), "cpu_count": os.cpu_count(), "build": build,
        "build_changed_during_run": build_id() != build,
    }
    print_workers_table(scenario, res, sides)
    return res


def print_workers_table(scenario: str, res: dict, sides: list[str]) -> None:
    ns = res["workers"]
    med, ratio, sc = res["median_mpps"], res["ratio_vs_testpmd"], res["scaling_vs_1_worker"]
    head = "".join(f"{f'N={n}':>9}" for n in ns)
    scale_ns = [n for n in ns if n != 1] if sc else []
    head += "".join(f"{f'N={n}/N=1':>10}" for n in scale_ns)
    print(f"\nscenario {scenario}: Mpps, median of {res['rounds']} rounds "
          f"(memory: {MEMORY} on every side)")
    print(f"{'':28}{head}")
    for side in sides:
        line = f"{LABELS[side]:28}" + "".join(f"{med[side][str(n)]:9.2f}" for n in ns)
        line += "".join(f"{sc[side][str(n)]:10.2f}" for n in scale_ns)
        print(line)
    for side in ratio:
        print(f"{'ours ' + side[5:].replace('_', ' ') + ' / testpmd':28}"
              + "".join(f"{ratio[side][str(n)]:9.2f}" for n in ns))
    t = res["scaling_target"]
    for name, x in (("grouped", t if t["met"] is not None else None),
                    ("mixed", t.get("mixed_layout"))):
        if x:
            print(f"loop-ring scaling N=2/N=1, {name} rings: {x['measured']:.2f} (ratio of "
                  f"medians; per round {', '.join(f'{v:.2f}' for v in x['per_round'])}), "
                  f"target >= "
                  f"{t['target']}: {'met' if x['met'] else 'NOT met'}")
    for n in ns:
        st = res["setup"][str(n)]
        print(f"N={n}: lcores {st['lcores']} (ours eal.lcores, testpmd "
              f"{' '.join(st['ours_eal'])} --nb-cores={n}"
              + (f" --rxq={n} --txq={n}" if n > 1 else "") + ")"
              + (f", loop ring {st['loop']['frames_per_worker']} frames per worker"
                 if "loop" in st else ""))
    if res["build_changed_during_run"]:
        print("WARNING: dataplane/_core*.so was rebuilt during the run: rounds mix builds")
    print(f"other processes used at most {res['foreign_cpu_max']:.2f} CPUs during a kept run;"
          f" {len(res['rejected_runs'])} runs repeated for load; "
          f"{res['loop_runs_ran_dry']} loop runs ran dry")


def build_id() -> dict:
    """The extension measured (others rebuild it while the bench may run): file times and
    a digest of dataplane/_core*.so."""
    import hashlib
    out = {}
    for f in sorted((ROOT / "dataplane").glob("_core*.so")):
        out[f.name] = {"mtime": time.strftime("%Y-%m-%dT%H:%M:%S%z",
                                              time.localtime(f.stat().st_mtime)),
                       "sha256_12": hashlib.sha256(f.read_bytes()).hexdigest()[:12]}
    return out


def write_result(path: str, result: dict, workers: dict | None = None) -> None:
    """The scenario's JSON: the single-worker comparison at the top level, the --workers
    comparison under "workers"; a run of one kind keeps the other's section of the same
    scenario (each has its own measured_at)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = json.loads(p.read_text())
    except (OSError, ValueError):
        old = {}
    if old.get("scenario") != result["scenario"]:
        old = {}
    if workers is None:
        doc = dict(result, measured_at=result.get("measured_at")
                   or time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        if "workers" in old:
            doc["workers"] = old["workers"]
    else:
        doc = {k: v for k, v in old.items() if k != "workers"} or dict(result)
        doc["workers"] = workers
    p.write_text(json.dumps(doc, indent=2))


def parse_workers(text: str) -> list[int]:
    try:
        ns = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a list of worker counts like 1,2, got {text!r}")
    if not ns or min(ns) < 1 or len(set(ns)) != len(ns):
        raise argparse.ArgumentTypeError(f"distinct worker counts >= 1, got {text!r}")
    return ns


def parse_scenarios(text: str) -> list[str]:
    names = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in names if x not in TARGETS]
    if not names or bad:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {', '.join(bad) or text!r} "
            f"(choose from {', '.join(sorted(TARGETS))})")
    return names


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3, help="alternating runs; medians")
    ap.add_argument("--scenario", default=["l3"], type=parse_scenarios,
                    help="one or more of " + ", ".join(sorted(TARGETS)) + ", comma-separated")
    ap.add_argument("--json", help="default: bench/results/throughput-<scenario>.json "
                    "(with several scenarios, {scenario} in FILE is replaced)")
    ap.add_argument("--workers", type=parse_workers, default=None, metavar="N[,N...]",
                    help="compare these worker counts (default 1, the single-worker "
                         "comparison with testpmd macswap and io)")
    ap.add_argument("--loop-seconds", type=float,
                    help="--workers: seconds per loop-ring run (default min(--seconds, 3))")
    ap.add_argument("--loop-layouts", type=lambda x: [v for v in x.split(",") if v],
                    default=["grouped", "mixed"], metavar="grouped,mixed",
                    help="--workers: how the loop rings' frames are laid out in the pool "
                         "(make_loop_pcap); the scaling target is judged on grouped")
    ap.add_argument("--stats-interval", type=float, default=0.1,
                    help="--workers: our run's --stats-interval (the rate is the median "
                         "between its samples)")
    ap.add_argument("--settle", type=float, default=30,
                    help="--workers: wait at most this long for the machine to go idle "
                         "before each run")
    ap.add_argument("--quiet", type=float, default=0.15,
                    help="--workers: idle means below this many busy CPUs")
    ap.add_argument("--max-foreign", type=float, default=0.2,
                    help="--workers: repeat a run when other processes used more CPUs "
                         "than this during it")
    ap.add_argument("--attempts", type=int, default=3,
                    help="--workers: runs at most per figure (the last one is kept)")
    ap.add_argument("--memory", choices=("auto", "hugepages", "no-huge"), default="auto",
                    help="what every side runs on: hugepages (EAL --in-memory on hugetlbfs), "
                         "no-huge (4 KiB pages; ours on THP, testpmd cannot), auto: "
                         "hugepages when they can be had (default)")
    a = ap.parse_args()
    global MEMORY
    MEMORY, why = choose_memory(a.memory)
    print(f"memory: {MEMORY} on every side ({why})" + (
        "; note: testpmd cannot use transparent huge pages, ours maps its mbuf pool and "
        "flow table on them, so the sides are not on the same memory" if MEMORY == "no-huge"
        else ""))
    if not a.loop_layouts or set(a.loop_layouts) - {"grouped", "mixed"}:
        ap.error("--loop-layouts: grouped, mixed or both")
    if a.json and len(a.scenario) > 1 and "{scenario}" not in a.json:
        ap.error("--json with several scenarios needs {scenario} in the file name")
    for scenario in a.scenario:
        path = (a.json.replace("{scenario}", scenario) if a.json else
                str(HERE / "results" / f"throughput-{scenario}.json"))
        if a.workers is None:
            run_single(a, scenario, path)
        else:
            res = run_workers(a, scenario, path)
            write_result(path, {"scenario": scenario}, workers=res)
            print(f"wrote {path}")
    return 0


def run_single(a, scenario: str, json_path: str) -> None:
    """The single-worker comparison: testpmd macswap and io and ours on net_pcap."""
    a = argparse.Namespace(**vars(a))
    a.scenario, a.json = scenario, json_path
    macswaps, ios, ourss = [], [], []
    with tempfile.TemporaryDirectory(prefix="dpbench") as tmp:
        pcap = os.path.join(tmp, "udp64.pcap")
        packets = FLOW_SCENARIOS.get(a.scenario, 64)
        if a.scenario in FLOW_SCENARIOS:
            make_flows_pcap(pcap, packets)
        else:
            make_pcap(pcap)
        # alternate the runs so the machine's background load hits both sides alike
        setups, loops = [], []
        for _ in range(a.rounds):
            macswaps.append(testpmd(pcap, "macswap", a.seconds, packets))
            mpps, s = ours(scenario_config(a.scenario, pcap), a.seconds, tmp)
            ourss.append(mpps)
            setups.append(setup_rate(s, packets) if a.scenario == "setup"
                          else s["flows"]["flow_created"] / s["seconds"])
            ios.append(testpmd(pcap, "io", a.seconds, packets))
            if a.scenario == "setup":          # the same frames from a loopback ring
                loops.append(setup_rate(ours(scenario_config(a.scenario, pcap, loop=True),
                                             min(a.seconds, 2), tmp, loop=pcap)[1], packets))
    macswap, io, mpps = (statistics.median(x) for x in (macswaps, ios, ourss))
    ratio = mpps / macswap
    result = {
        "scenario": a.scenario, "frame_bytes": 64, "seconds": a.seconds,
        "testpmd_macswap_mpps": round(macswap, 3), "testpmd_io_mpps": round(io, 3),
        "ours_mpps": round(mpps, 3), "ratio_vs_macswap": round(ratio, 3),
        "runs": {"testpmd_macswap": macswaps, "testpmd_io": ios, "ours": ourss,
                 "flow_setups_per_s": setups},
        "ratio_vs_io": round(mpps / io, 3), "target_vs_macswap": TARGETS[a.scenario],
        "meets_target": ratio >= TARGETS[a.scenario],
        "ours_drops": {k: v for k, v in s["drops"].items() if v},
        "flows": s["flows"],
        "flow_setups_per_s": round(statistics.median(setups)),
        "memory": memory_record(), "host": platform.node(), "cpu_count": os.cpu_count(), "build": build_id(),
    }
    print(f"scenario {a.scenario}: testpmd macswap {macswap:.2f} Mpps, io {io:.2f} Mpps, "
          f"dataplane {mpps:.2f} Mpps → ratio {ratio:.3f} vs macswap "
          f"(target ≥ {TARGETS[a.scenario]}), {mpps / io:.3f} vs io")
    write_result(a.json, result)
    if a.scenario in ("setup", "churn"):
        rate = result["flow_setups_per_s"]
        # the same rate with the vdev's own cost per packet taken out: testpmd io's time
        # per packet (pcap rx + drop tx) in the same round, subtracted from ours per setup
        net = round(statistics.median(net_of_vdev(r, i) for r, i in zip(setups, ios)))
        result["flow_setups_per_s_net_of_vdev"] = net
        result["setup_target_per_s"] = SETUP_TARGET
        result["meets_target"] = rate >= SETUP_TARGET
        result["meets_target_net_of_vdev"] = net >= SETUP_TARGET
        print(f"flow setups: {rate / 1e6:.2f} M/s per core end to end on net_pcap, flows "
              f"created {s['flows']['flow_created']:,}, aged {s['flows']['flow_aged']:,};"
              f" {net / 1e6:.2f} M/s net of the vdev's rx/tx cost (testpmd io)")
        if loops:
            # the target is judged without net_pcap's replay copy (module docstring)
            loop = round(statistics.median(loops))
            result["runs"]["flow_setups_per_s_loopback"] = loops
            result["flow_setups_per_s_loopback"] = loop
            result["meets_target_end_to_end_net_pcap"] = result["meets_target"]
            result["meets_target"] = loop >= SETUP_TARGET
            print(f"flow setups from a loopback ring (no per-packet copy): "
                  f"{loop / 1e6:.2f} M/s per core, rounds "
                  f"{', '.join(f'{x / 1e6:.2f}' for x in loops)} "
                  f"(target ≥ {SETUP_TARGET / 1e6:.0f} M/s: "
                  f"{'met' if result['meets_target'] else 'NOT met'})")
        write_result(a.json, result)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    sys.exit(main())
