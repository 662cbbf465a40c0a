#!/usr/bin/env python3
"""Configuration loading at scale (issue 18, "Main job at scale"): seconds and peak RSS of
`dataplane check` and of loading the routes into the core, for large route tables.

Configurations (written here, deterministic):
- `100k-32`: 100,000 IPv4 /32 routes (hosts spread over 10.0.0.0/8; 1 in 8 via the
  ECMP group, the rest over 4 next hops);
- `1m-v4`: 1,000,000 IPv4 routes of an Internet-like mix of lengths (≈ 60 % /24, 32 %
  /17-/23, 6 % /8-/16, 2 % /25-/32), distinct, in random order.
Each has eal.memory_mb as `check` asks for it, flow_table.entries 65536 (the flow
table is not what is measured) and one worker.

Measured per configuration, each in a child process under /usr/bin/time-like
accounting (wait4's ru_maxrss: the child's peak RSS):
- `check`: `python -m dataplane.cli check CONFIG` (parse, validate, memory estimate,
  host checks);
- `load`: `python -m dataplane.cli replay CONFIG --in tiny.pcap --out-dir DIR -q`:
  everything `check` does, then EAL, the rte_lpm build, ports, a 64-frame replay to
  sampled routes and the summary; the frames' outputs are checked against a longest-
  prefix match done here with Python's ipaddress (the oracle).

    python bench/config_scale.py [--cases 100k-32,1m-v4] [--keep DIR]
                                 [--json bench/results/config_scale.json]
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import platform
import random
import resource
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TARGET_SECONDS = 20.0          # 1 M IPv4 routes checked and loaded
TARGET_RSS_MB = 1024

HEAD = """\
node: {{name: scale}}
eal: {{lcores: "0-1", memory_mb: {memory_mb}}}
flow_table: {{entries: 65536}}
ports:
  - {{name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}}
  - {{name: up1, devargs: net_null1, mac: "02:00:00:00:00:02"}}
nexthops:
  nh0: {{port: up1, mac: "02:00:00:00:01:00"}}
  nh1: {{port: up1, mac: "02:00:00:00:01:01"}}
  nh2: {{port: up1, mac: "02:00:00:00:01:02"}}
  nh3: {{port: up1, mac: "02:00:00:00:01:03"}}
groups:
  grp:
    members:
      - {{nexthop: nh0, weight: 1}}
      - {{nexthop: nh1, weight: 1}}
vrfs:
  default:
    routes:
"""
VIAS = ("nh0", "nh1", "nh2", "nh3", "nh1", "nh2", "nh3", "grp")
NEXTHOP_MACS = {f"nh{i}": bytes([2, 0, 0, 0, 1, i]) for i in range(4)}


def routes_100k_32(rng: random.Random) -> list[tuple[int, int]]:
    hosts = rng.sample(range(1, 1 << 24), 100_000)
    return [((10 << 24) | h, 32) for h in hosts]


def routes_1m_v4(rng: random.Random) -> list[tuple[int, int]]:
    """1 M distinct prefixes, Internet-like lengths, inside 1.0.0.0-223.255.255.255."""
    mix = [(24, 600_000), (23, 90_000), (22, 100_000), (21, 40_000), (20, 30_000),
           (19, 20_000), (18, 10_000), (17, 30_000), (16, 40_000), (15, 4_000),
           (14, 3_000), (13, 2_000), (12, 500), (11, 300), (10, 150), (9, 30), (8, 20),
           (25, 5_000), (26, 5_000), (27, 4_000), (28, 3_000), (29, 3_000), (30, 2_000),
           (32, 8_000)]
    out = []
    for plen, n in mix:
        room = (223 << 24) >> (32 - plen)       # networks of this length below 224/8
        start = (1 << 24) >> (32 - plen)        # from 1.0.0.0
        for net in rng.sample(range(start, room), n):
            out.append((net << (32 - plen), plen))
    assert len(out) == 1_000_000, len(out)
    rng.shuffle(out)
    return out


CASES = {"100k-32": routes_100k_32, "1m-v4": routes_1m_v4}


def write_config(path: Path, routes: list[tuple[int, int]], memory_mb: int) -> None:
    lines = [HEAD.format(memory_mb=memory_mb)]
    for i, (net, plen) in enumerate(routes):
        lines.append(f'      - {{prefix: "{ipaddress.IPv4Address(net)}/{plen}", '
                     f'via: {VIAS[i % len(VIAS)]}}}\n')
    path.write_text("".join(lines))


def child(argv: list[str]) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run argv; (result, wall seconds, the child's peak RSS in MiB)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.monotonic()
    p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    out, err = p.stdout.read(), p.stderr.read()
    return (subprocess.CompletedProcess(argv, p.returncode, out, err), wall,
            usage.ru_maxrss // 1024)


def needed_memory_mb(routes: list[tuple[int, int]], ports: int = 2) -> int:
    """The eal.memory_mb `check` asks for (dataplane/config/memory.py's estimate for one
    VRF of these routes, two ports, one worker), computed without loading the config."""
    sys.path.insert(0, str(ROOT))
    from dataplane.config import memory
    need = (memory.lpm4_bytes(len(routes), sum(plen > 24 for _, plen in routes))
            + memory.EAL_BASE + memory.PER_PORT * ports)
    return -(-need // memory.MiB)


def lpm_oracle(routes: list[tuple[int, int]]):
    """addr -> index of the longest matching route (ipaddress, by prefix length)."""
    by_len: dict[int, dict[int, int]] = {}
    for i, (net, plen) in enumerate(routes):
        by_len.setdefault(plen, {})[net] = i
    lens = sorted(by_len, reverse=True)

    def lookup(addr: int):
        for plen in lens:
            net = int(ipaddress.IPv4Network((addr, plen), strict=False).network_address)
            hit = by_len[plen].get(net)
            if hit is not None:
                return hit
        return None
    return lookup


def tiny_pcap(path: Path, routes, rng: random.Random, n: int = 64) -> list[int]:
    """n UDP frames to addresses inside sampled routes (and two outside any); their
    destination addresses."""
    dsts = []
    for net, plen in rng.sample(routes, n - 2):
        host = rng.randrange(1 << (32 - plen)) if plen < 32 else 0
        dsts.append(net | host)
    dsts += [(240 << 24) | 1, (0xE0 << 24) - 1]          # no route (class E, 223.255.255.255)
    recs = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, dst in enumerate(dsts):
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 0, 0, 64, 17, 0,
                         bytes([100, 64, 0, 1]), dst.to_bytes(4, "big"))
        s = sum(struct.unpack("!10H", ip))
        s = (s & 0xFFFF) + (s >> 16)
        ip = ip[:10] + struct.pack("!H", ~s & 0xFFFF) + ip[12:]
        udp = struct.pack("!HHHH", 1000 + i, 53, 26, 0) + bytes(18)
        frame = bytes([2, 0, 0, 0, 0, 1, 2, 0xAA, 0, 0, 0, 1, 8, 0]) + ip + udp
        recs.append(struct.pack("<IIII", 1_700_000_000, i, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(recs))
    return dsts


def check_outputs(out: Path, routes, dsts: list[int]) -> dict:
    """Each frame's next hop (by destination MAC in up1.pcap) against the oracle."""
    lookup = lpm_oracle(routes)
    data = (out / "up1.pcap").read_bytes()
    off, got = 24, {}
    while off < len(data):
        cap = struct.unpack_from("<I", data, off + 8)[0]
        frame = data[off + 16:off + 16 + cap]
        got[int.from_bytes(frame[30:34], "big")] = frame[:6]
        off += 16 + cap
    wrong = 0
    for dst in dsts:
        i = lookup(dst)
        if i is None:
            wrong += dst in got
            continue
        via = VIAS[i % len(VIAS)]
        macs = ({NEXTHOP_MACS["nh0"], NEXTHOP_MACS["nh1"]} if via == "grp"
                else {NEXTHOP_MACS[via]})
        wrong += got.get(dst) not in macs
    return {"frames": len(dsts), "forwarded": len(got), "wrong": wrong}


def run_case(name: str, tmp: Path) -> dict:
    rng = random.Random(18)
    t0 = time.monotonic()
    routes = CASES[name](rng)
    cfg = tmp / f"{name}.yaml"
    mb = needed_memory_mb(routes)
    write_config(cfg, routes, mb)
    gen = time.monotonic() - t0
    print(f"{name}: {len(routes):,} routes, {cfg.stat().st_size / 1e6:.0f} MB of YAML, "
          f"eal.memory_mb {mb} (generated in {gen:.1f} s)", flush=True)
    res = {"routes": len(routes), "yaml_bytes": cfg.stat().st_size, "memory_mb": mb}
    r, wall, rss = child([sys.executable, "-m", "dataplane.cli", "check", str(cfg)])
    if r.returncode:
        raise SystemExit(f"check failed:\n{r.stdout}\n{r.stderr[-3000:]}")
    res["check"] = {"seconds": round(wall, 2), "peak_rss_mb": rss}
    print(f"  check: {wall:.1f} s, peak RSS {rss} MiB", flush=True)
    pcap = tmp / f"{name}.pcap"
    dsts = tiny_pcap(pcap, routes, rng)
    out = tmp / f"{name}-out"
    r, wall, rss = child([sys.executable, "-m", "dataplane.cli", "replay", str(cfg), "--in",
                          str(pcap), "--out-dir", str(out), "-q"])
    if r.returncode:
        raise SystemExit(f"replay failed:\n{r.stdout}\n{r.stderr[-3000:]}")
    res["load"] = {"seconds": round(wall, 2), "peak_rss_mb": rss,
                   "oracle": check_outputs(out, routes, dsts)}
    print(f"  load (replay of {len(dsts)} frames): {wall:.1f} s, peak RSS {rss} MiB, "
          f"oracle {res['load']['oracle']}", flush=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--keep", help="write the configs and outputs here (kept)")
    ap.add_argument("--json", default=str(HERE / "results" / "config_scale.json"))
    a = ap.parse_args()
    tmp = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="config-scale-"))
    tmp.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in a.cases.split(","):
        results[name] = run_case(name, tmp)
    big = results.get("1m-v4")
    verdict = None
    if big:
        total = big["check"]["seconds"] + big["load"]["seconds"]
        rss = max(big["check"]["peak_rss_mb"], big["load"]["peak_rss_mb"])
        verdict = {"check_plus_load_seconds": round(total, 2), "peak_rss_mb": rss,
                   "load_seconds": big["load"]["seconds"],
                   "pass": big["load"]["seconds"] <= TARGET_SECONDS and rss <= TARGET_RSS_MB
                   and big["load"]["oracle"]["wrong"] == 0}
    doc = {"bench": "config_scale", "target_seconds": TARGET_SECONDS,
           "target_rss_mb": TARGET_RSS_MB, "cases": results, "verdict_1m": verdict,
           "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "page_size": resource.getpagesize()}}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(doc, indent=2))
    print(f"wrote {a.json}" + (f": 1 M routes {verdict}" if verdict else ""))
    if not a.keep:
        for f in sorted(tmp.rglob("*"), reverse=True):
            f.rmdir() if f.is_dir() else f.unlink()
        tmp.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
