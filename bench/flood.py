#!/usr/bin/env python3
"""A SYN flood at 100x the flow table beside established TCP flows (docs/flow-table.md
§10 "Floods", issue 18).

Traffic (one pcap on the client port p0, every frame 66 bytes, written with numpy):
- `established` TCP sessions from 100.64.0.0/16 to 10.3.0.0/16:443: a SYN (with MSS,
  SACK, window-scale options), then data packets (ACK|PSH, 12 payload bytes: b"ES", the
  flow number and the packet number, both 32-bit) every so often;
- a SYN flood of `flood` distinct flows from random sources (anything outside
  100.64.0.0/16) and random source ports to random hosts of 10.3.0.0/16, port 80.
Layouts:
- "before": every session's SYN and first data packet, then the flood with the
  sessions' other data packets spread evenly through it. The sessions' entries exist
  before the flood; the first entries - established flood SYNs fill the table, the rest
  find it full.
- "after": the first `entries` flood SYNs (they fill the table), then the rest of the
  flood with the sessions (SYN first, then their data) spread through it: the sessions
  arrive at a full table.

Both layouts run for `on_full: hash` and `on_full: drop` through the real forwarder:
`dataplane replay` on net_pcap vdevs (one worker), then its summary.json and flows.json,
and the output pcaps parsed with numpy (fixed-size records): which packets of the
sessions left, on which member (and whether that is the member the group's bucket table
gives them). Mpps there is the replay's own (rx over forwarding time, net_pcap reading
and writing files included).

Unless --no-loop, also `dataplane run --loop` on the "before" traffic, one port whose
members are on that port too: its ring is preloaded with the pcap, what the forwarder
sends comes back, so the first pass is the same input without net_pcap's files ("first
pass" Mpps) and later passes repeat it at a full table (with hash every flood SYN comes
back and is forwarded statelessly again; with drop the refused SYNs are gone, so later
passes are only the sessions and the admitted SYNs). During the run the sessions'
entries are read through the control socket (flow verb, matched server-side).
`foreign_cpu`: CPUs other processes kept busy meanwhile (the machine is shared).

    python bench/flood.py [--entries 65536] [--flood 6553600] [--established 1000]
                          [--data 100] [--modes hash,drop] [--layouts before,after]
                          [--loop-seconds 16] [--query-at 3] [--no-loop]
                          [--json bench/results/flood.json]

tests/test_flood.py imports this file for make_traffic / read_frames / member_of.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

FRAME = 66                      # every frame: Ethernet 14 + IPv4 20 + TCP 32 (or 20 + 12 data)
REC = 16 + FRAME                # pcap record: header + frame
PORT_MACS = ["02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03",
             "02:00:00:00:00:04"]
CLIENT_MAC = "02:aa:00:00:00:01"
MEMBERS = [("s1", "up1", "02:00:00:00:01:01"), ("s2", "up2", "02:00:00:00:02:01"),
           ("s3", "up3", "02:00:00:00:03:01")]
SEED = 0x0F100D00               # node seed (explicit, so tests can compute members)
EST_NET = (100 << 24) | (64 << 16)          # 100.64.0.0/16: the sessions' clients
DST_NET = (10 << 24) | (3 << 16)            # 10.3.0.0/16: routed via group spines
MAGIC = b"ES"
SYN, ACK, PSH = 0x02, 0x10, 0x08
SYN_OPTIONS = bytes.fromhex("020405b4" "0402" "01" "030307" "0101")   # 12 bytes


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def config_doc(entries: int, on_full: str, mbufs: int = 8192, lcores: str = "0-1",
               memory_mb: int = 512) -> dict:
    """p0 (clients), up1..up3 (one member of group spines each); 10.3.0.0/16 via spines.
    Devargs are net_null: replay replaces them, run --loop too."""
    ports = [{"name": n, "devargs": f"net_null{i}", "mac": PORT_MACS[i], "vrf": "default"}
             for i, n in enumerate(["p0", "up1", "up2", "up3"])]
    return {"node": {"name": "flood", "seed": SEED},
            "eal": {"lcores": lcores, "memory_mb": memory_mb, "mbufs": mbufs},
            "flow_table": {"entries": entries, "on_full": on_full},
            "ports": ports,
            "vrfs": {"default": {"routes": [{"prefix": "10.3.0.0/16", "via": "spines"},
                                            {"prefix": "100.64.0.0/10", "via": "back"}]}},
            "nexthops": {**{n: {"port": p, "mac": m} for n, p, m in MEMBERS},
                         "back": {"port": "p0", "mac": "02:00:00:00:0a:01"}},
            "groups": {"spines": {"members": [{"nexthop": n, "weight": 1}
                                              for n, _, _ in MEMBERS]}}}


# ------------------------------------------------------------------ traffic (numpy)

def _csum_fold(s: np.ndarray) -> np.ndarray:
    s = s.astype(np.uint64)
    while True:
        hi = s >> 16
        if not hi.any():
            return s
        s = (s & 0xFFFF) + hi


def _words(a: np.ndarray) -> np.ndarray:
    """Big-endian 16-bit words of each row (rows of even length), summed."""
    w = a.reshape(a.shape[0], -1, 2).astype(np.uint64)
    return (w[:, :, 0] << 8 | w[:, :, 1]).sum(axis=1)


def _put(col: np.ndarray, value, nbytes: int) -> None:
    """Write value (array or scalar) big-endian into col[:, 0:nbytes]."""
    v = np.asarray(value, dtype=np.uint64)
    for b in range(nbytes):
        col[:, b] = (v >> np.uint64(8 * (nbytes - 1 - b))) & np.uint64(0xFF)


def frames(src, dst, sport, dport, flags, payload=None, seq=None) -> np.ndarray:
    """(n, 66) uint8: Ethernet / IPv4 / TCP to p0's MAC. SYNs (payload None) carry 12
    bytes of options; the others 12 bytes of payload (rows of `payload`). Both
    checksums computed."""
    n = len(src)
    f = np.zeros((n, FRAME), dtype=np.uint8)
    f[:, 0:6] = np.frombuffer(mac(PORT_MACS[0]), np.uint8)
    f[:, 6:12] = np.frombuffer(mac(CLIENT_MAC), np.uint8)
    f[:, 12:14] = (8, 0)
    ip = f[:, 14:34]
    ip[:, 0] = 0x45
    _put(ip[:, 2:4], FRAME - 14, 2)
    _put(ip[:, 4:6], np.arange(n, dtype=np.uint64) & 0xFFFF, 2)
    ip[:, 6] = 0x40                                                   # DF
    ip[:, 8], ip[:, 9] = 64, 6
    _put(ip[:, 12:16], src, 4)
    _put(ip[:, 16:20], dst, 4)
    c = ~_csum_fold(_words(ip)) & 0xFFFF
    _put(ip[:, 10:12], c, 2)
    tcp = f[:, 34:]
    _put(tcp[:, 0:2], sport, 2)
    _put(tcp[:, 2:4], dport, 2)
    _put(tcp[:, 4:8], 1000 if seq is None else seq, 4)
    flags = np.broadcast_to(np.asarray(flags, dtype=np.uint8), (n,))
    syn = (flags & SYN) != 0
    _put(tcp[:, 8:12], np.where(syn, 0, 1), 4)                        # ack number
    tcp[:, 12] = np.where(syn, 8 << 4, 5 << 4)
    tcp[:, 13] = flags
    _put(tcp[:, 14:16], 64240, 2)
    tcp[syn, 20:32] = np.frombuffer(SYN_OPTIONS, np.uint8)
    if payload is not None:
        tcp[~syn, 20:32] = payload[~syn]
    pseudo = _words(ip[:, 12:20]) + 6 + (FRAME - 34)
    c = ~_csum_fold(pseudo + _words(tcp)) & 0xFFFF
    _put(tcp[:, 16:18], c, 2)
    return f


def flood_tuples(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n distinct (src, sport, dst) from random sources outside 100.64.0.0/16, source
    ports 1024-65535, destinations 10.3.x.y (y 1..254); destination port 80."""
    rng = np.random.default_rng(seed)
    src = np.empty(0, np.uint64)
    sport = np.empty(0, np.uint64)
    dst = np.empty(0, np.uint64)
    while len(src) < n:
        m = int((n - len(src)) * 1.05) + 16
        s = rng.integers(1 << 24, 0xE0000000, m, dtype=np.uint64)    # 1.0.0.0-223.255...
        s = s[((s >> 16) != (EST_NET >> 16)) & ((s >> 24) != 127)]   # not martian
        p = rng.integers(1024, 65536, len(s), dtype=np.uint64)
        d = DST_NET + rng.integers(0, 256, len(s), dtype=np.uint64) * 256 + \
            rng.integers(1, 255, len(s), dtype=np.uint64)
        src, sport, dst = (np.concatenate(x) for x in ((src, s), (sport, p), (dst, d)))
        key = (src << 32) | (sport << 16) | (dst & 0xFFFF)
        _, first = np.unique(key, return_index=True)
        keep = np.sort(first)
        src, sport, dst = src[keep], sport[keep], dst[keep]
    return src[:n], sport[:n], dst[:n]


def established_tuples(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n sessions (n <= 64,000): 100.64.(i // 250).(i % 250 + 1):(20000 + i) ->
    10.3.(i % 251).(i % 253 + 1):443."""
    i = np.arange(n, dtype=np.uint64)
    src = EST_NET + (i // 250) * 256 + i % 250 + 1
    dst = DST_NET + (i % 251) * 256 + i % 253 + 1
    return src, 20000 + i, dst


def make_traffic(entries: int, flood: int, established: int, data: int,
                 layout: str = "before", seed: int = 18) -> tuple[np.ndarray, dict]:
    """The frames (n, 66) in order and what they are: {"kind": 0 flood / 1 session SYN /
    2 session data, "flow": flood index or session number, "pkt": data packet number}
    arrays, plus the tuples. Each session sends a SYN and `data` data packets."""
    fs, fp, fd = flood_tuples(flood, seed)
    es, ep, ed = established_tuples(established)
    E = established
    # the sessions' stream: all SYNs, then data rounds 0..data-1
    s_flow = np.concatenate([np.arange(E), np.tile(np.arange(E), data)])
    s_pkt = np.concatenate([np.full(E, -1), np.repeat(np.arange(data), E)])
    s_kind = np.where(s_pkt < 0, 1, 2)
    if layout == "before":
        head_n = 2 * E                       # SYNs and data round 0 before the flood
        head = ("s", 0, head_n)
        body_sessions = (head_n, len(s_flow))
        body_flood = (0, flood)
    elif layout == "after":
        fill = min(entries, flood)
        head = ("f", 0, fill)
        body_sessions = (0, len(s_flow))
        body_flood = (fill, flood)
    else:
        raise ValueError(layout)
    # order: (kind, index into the flood or the sessions' stream)
    nf = body_flood[1] - body_flood[0]
    ns = body_sessions[1] - body_sessions[0]
    key = np.concatenate([(np.arange(nf) + 0.5) / max(nf, 1), (np.arange(ns) + 1.0) / (ns + 1)])
    src_is_flood = np.concatenate([np.ones(nf, bool), np.zeros(ns, bool)])
    idx = np.concatenate([np.arange(body_flood[0], body_flood[1]),
                          np.arange(body_sessions[0], body_sessions[1])])
    order = np.argsort(key, kind="stable")
    body_f, body_i = src_is_flood[order], idx[order]
    head_f = np.full(head[2] - head[1], head[0] == "f")
    head_i = np.arange(head[1], head[2])
    is_flood = np.concatenate([head_f, body_f])
    index = np.concatenate([head_i, body_i])
    n = len(index)
    kind = np.zeros(n, np.int8)
    flow = np.zeros(n, np.int64)
    pkt = np.full(n, -1, np.int64)
    fi = index[is_flood]
    si = index[~is_flood]
    flow[is_flood] = fi
    kind[~is_flood] = s_kind[si]
    flow[~is_flood] = s_flow[si]
    pkt[~is_flood] = s_pkt[si]
    src = np.where(is_flood, fs[np.where(is_flood, index, 0)], es[np.where(is_flood, 0, flow)])
    sport = np.where(is_flood, fp[np.where(is_flood, index, 0)], ep[np.where(is_flood, 0, flow)])
    dst = np.where(is_flood, fd[np.where(is_flood, index, 0)], ed[np.where(is_flood, 0, flow)])
    dport = np.where(is_flood, 80, 443).astype(np.uint64)
    flags = np.where(kind == 2, ACK | PSH, SYN).astype(np.uint8)
    payload = np.zeros((n, 12), np.uint8)
    payload[:, 0:2] = np.frombuffer(MAGIC, np.uint8)
    _put(payload[:, 2:6], np.where(kind == 2, flow, 0).astype(np.uint64), 4)
    _put(payload[:, 6:10], np.where(kind == 2, pkt, 0).astype(np.uint64), 4)
    seq = np.where(kind == 2, 1001 + np.maximum(pkt, 0) * 12, 1000).astype(np.uint64)
    f = frames(src, dst, sport, dport, flags, payload, seq)
    meta = {"kind": kind, "flow": flow, "pkt": pkt,
            "flood": (fs, fp, fd), "sessions": (es, ep, ed)}
    return f, meta


def write_pcap(path, f: np.ndarray) -> int:
    """A classic pcap of the (n, 66) frames; returns bytes written."""
    n = len(f)
    rec = np.zeros((n, REC), np.uint8)
    i = np.arange(n, dtype=np.uint64)
    hdr = rec[:, :16].view("<u4")
    hdr[:, 0] = 1700000000 + i // 1_000_000
    hdr[:, 1] = i % 1_000_000
    hdr[:, 2] = FRAME
    hdr[:, 3] = FRAME
    rec[:, 16:] = f
    with open(path, "wb") as out:
        out.write(np.array([0xA1B2C3D4, 0x00040002, 0, 0, 65535, 1], "<u4").tobytes()[:24])
        rec.tofile(out)
    return 24 + rec.nbytes


def read_frames(path) -> np.ndarray:
    """Frames of a pcap our replay wrote (every frame 66 bytes), as (n, 66) uint8."""
    data = np.fromfile(path, np.uint8)
    body = data[24:]
    if len(body) % REC:
        raise ValueError(f"{path}: not {FRAME}-byte frames only")
    rec = body.reshape(-1, REC)
    lens = rec[:, 8:16].copy().view("<u4")
    if not (lens == FRAME).all():
        raise ValueError(f"{path}: not {FRAME}-byte frames only")
    return rec[:, 16:]


def u32(col: np.ndarray) -> np.ndarray:
    c = col.astype(np.uint64)
    return c[:, 0] << 24 | c[:, 1] << 16 | c[:, 2] << 8 | c[:, 3]


def session_packets(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask of rows that are session packets, flow, packet number: -1 for a SYN), from
    the source address (the sessions own 100.64.0.0/16) and the payload."""
    src = u32(f[:, 26:30])
    sess = (src >> 16) == (EST_NET >> 16)
    data = sess & (f[:, 47] & ACK != 0) & (f[:, 47] & SYN == 0)
    flow = np.where(sess, (src & 0xFFFF) // 256 * 250 + (src & 0xFF) - 1, -1)
    pkt = np.where(data, u32(f[:, 60:64]).astype(np.int64), -1)
    fl_pay = u32(f[:, 56:60]).astype(np.int64)
    if data.any():
        assert (fl_pay[data] == flow[data]).all(), "payload flow number != source"
    return sess, flow.astype(np.int64), pkt


def member_of(port: str, dst_mac: bytes) -> int | None:
    """The member whose next hop is (egress port name, destination MAC), or None."""
    for i, (_, p, m) in enumerate(MEMBERS):
        if p == port and mac(m) == bytes(dst_mac):
            return i
    return None


@functools.lru_cache(maxsize=None)
def bucket_table(buckets: int = 4096) -> tuple[int, ...]:
    from dataplane import ecmp
    return tuple(int(m) for m in ecmp.build([1] * len(MEMBERS), buckets))


def expected_member(src: int, dst: int, sport: int, dport: int, buckets: int = 4096) -> int:
    """The member the group's bucket table gives this TCP flow (docs/flow-table.md §3)."""
    from dataplane import hashing
    h = hashing.flow_hash(4, int(src).to_bytes(4, "big"), int(dst).to_bytes(4, "big"), 6,
                          int(sport), int(dport), 0, 0, 0x1f, SEED)
    table = bucket_table(buckets)
    return table[hashing.bucket_of(h, len(table))]


def ip_text(a: int) -> str:
    a = int(a)
    return f"{a >> 24}.{a >> 16 & 255}.{a >> 8 & 255}.{a & 255}"


# ------------------------------------------------------------------ runs

def cpu_mark() -> tuple[float, float, float]:
    """(wall, machine busy CPU seconds from /proc/stat, our children's CPU seconds)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.monotonic(), busy, r.ru_utime + r.ru_stime


def foreign_cpu(mark: tuple[float, float, float]) -> float:
    """CPUs the rest of the machine (other users' processes) kept busy since mark: the
    machine's busy time less our children's, over the wall time. This machine has two
    CPUs and is shared; the worker lcore competes with whatever runs on its CPU."""
    now = cpu_mark()
    wall = now[0] - mark[0]
    return round(max(0.0, (now[1] - mark[1]) - (now[2] - mark[2])) / wall, 2) if wall else 0.0


def cli(*args, timeout: float = 3600) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "dataplane.cli", *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def analyse(out: Path, meta: dict, established: int, data: int) -> dict:
    """What left: per session, packets forwarded and the members they left on; the
    flows.json entries of the sessions."""
    sent = 1 + data                                  # per session: SYN + data
    got = np.zeros(established, np.int64)
    members = [set() for _ in range(established)]
    for name in ["p0", "up1", "up2", "up3"]:
        path = out / f"{name}.pcap"
        if not path.exists() or path.stat().st_size <= 24:
            continue
        f = read_frames(path)
        sess, flow, _ = session_packets(f)
        if not sess.any():
            continue
        rows = np.nonzero(sess)[0]
        np.add.at(got, flow[rows], 1)
        macs = f[rows, 0:6]
        for m_i, (_, p, m) in enumerate(MEMBERS):
            if p != name:
                continue
            hit = (macs == np.frombuffer(mac(m), np.uint8)).all(axis=1)
            for fl in np.unique(flow[rows[hit]]):
                members[fl].add(m_i)
    flows = json.loads((out / "flows.json").read_text())
    es, ep, ed = meta["sessions"]
    want = {(ip_text(es[i]), ip_text(ed[i]), int(ep[i])): i for i in range(established)}
    entries = {}
    for fl in flows:
        k = (fl["src"], fl["dst"], fl["sport"])
        if k in want and fl["proto"] == 6 and fl["dport"] == 443:
            entries[want[k]] = fl
    return {"sent_per_session": sent, "forwarded": got, "members": members,
            "entries": entries, "flows_in_table": len(flows)}


def replay_case(tmp: Path, a, on_full: str, layout: str) -> dict:
    f, meta = make_traffic(a.entries, a.flood, a.established, a.data, layout)
    pcap = tmp / f"{layout}.pcap"
    t0 = time.monotonic()
    write_pcap(pcap, f)
    gen_s = time.monotonic() - t0
    n = len(f)
    del f
    cfg = tmp / f"{on_full}.yaml"
    import yaml
    cfg.write_text(yaml.safe_dump(config_doc(a.entries, on_full, memory_mb=a.memory_mb),
                                  sort_keys=False))
    out = tmp / f"out-{on_full}-{layout}"
    t0 = time.monotonic()
    mark = cpu_mark()
    r = cli("replay", cfg, "--in", f"p0={pcap}", "--out-dir", out)
    foreign = foreign_cpu(mark)
    wall = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"replay {on_full}/{layout} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    s = json.loads((out / "summary.json").read_text())
    res = analyse(out, meta, a.established, a.data)
    sent = res["sent_per_session"] * a.established
    fwd = int(res["forwarded"].sum())
    per_flow = res["forwarded"] / res["sent_per_session"]
    entries = res["entries"]
    moved = sum(1 for ms in res["members"] if len(ms) > 1)
    pinned_ok = sum(1 for i, e in entries.items()
                    if res["members"][i] == {e["member"]}
                    and e["packets"] == res["sent_per_session"])
    es, ep, ed = meta["sessions"]
    on_table = sum(1 for i in range(a.established)
                   if res["members"][i] == {expected_member(es[i], ed[i], ep[i], 443)})
    row = {
        "on_full": on_full, "layout": layout, "packets": n,
        "flood_syns": a.flood, "established_flows": a.established,
        "established_packets": sent, "established_forwarded": fwd,
        "established_forwarded_share": round(fwd / sent, 6),
        "worst_flow_share": round(float(per_flow.min()), 6),
        "established_entries_present": len(entries),
        "established_entries_pinned_and_counted": pinned_ok,
        "established_flows_on_two_members": moved,
        "established_flows_on_their_bucket_table_member": on_table,
        "flows_in_table": res["flows_in_table"],
        "flow_counters": s["flows"],
        "drops": {k: v for k, v in s["drops"].items() if v},
        "rx": s["rx"], "tx": s["tx"], "not_received": s["not_received"],
        "mbufs_in_use_after": s["mbufs_in_use_after"],
        "forwarding_seconds": s["seconds"], "mpps": round(s["pps"] / 1e6, 3),
        "replay_wall_seconds": round(wall, 2), "pcap_write_seconds": round(gen_s, 2),
        "foreign_cpu": foreign,
    }
    for p in out.glob("*.pcap"):
        p.unlink()
    pcap.unlink()
    return row


def loop_config_doc(entries: int, on_full: str) -> dict:
    """One port, p0, whose loop ring holds the frames; the members' next hops are on p0
    too, so what is forwarded comes back to the ring (and is forwarded again until its
    TTL runs out: 63 times for TTL 64)."""
    doc = config_doc(entries, on_full)
    doc["ports"] = doc["ports"][:1]
    doc["nexthops"] = {n: {"port": "p0", "mac": m} for n, _, m in MEMBERS}
    doc["vrfs"]["default"]["routes"] = doc["vrfs"]["default"]["routes"][:1]
    doc["eal"]["mbuf_size"] = 256          # 128 data bytes: ~450 B an mbuf
    return doc


def loop_case(tmp: Path, a, on_full: str) -> dict:
    """`run --loop` on the "before" traffic: p0 is a ring preloaded with it, what the
    forwarder sends comes back, so the first pass is the replay's input without net_pcap
    (rate while rx < frames) and later passes repeat it (with drop, without the refused
    flood SYNs: they are gone). Near the end the sessions' entries are read through the
    control socket (`dataplane flow --json`)."""
    import yaml
    f, meta = make_traffic(a.entries, a.flood, a.established, a.data, "before")
    pcap = tmp / "loop.pcap"
    write_pcap(pcap, f)
    n = len(f)
    del f
    cfg = tmp / f"loop-{on_full}.yaml"
    cfg.write_text(yaml.safe_dump(loop_config_doc(a.entries, on_full), sort_keys=False))
    res = tmp / f"loop-{on_full}.json"
    sock = tmp / f"loop-{on_full}.sock"
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    mark = cpu_mark()
    proc = subprocess.Popen([sys.executable, "-m", "dataplane.cli", "run", str(cfg), "--loop",
                             str(pcap), "--duration", str(a.loop_seconds),
                             "--stats-interval", "0.1", "--json", str(res), "-q",
                             "--socket", str(sock)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    entries, query = None, {}
    try:
        deadline = time.monotonic() + 600
        while not sock.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        t_start = time.monotonic()           # the socket listens just before the worker starts
        time.sleep(a.query_at)
        t_q = time.monotonic()
        # the control socket's flow verb, matched server-side (the CLI's `dataplane flow
        # --match` fetches the whole table, 23 MB for 65,536 flows, and filters locally)
        sys.path.insert(0, str(ROOT))
        from dataplane.client import ControlError, request
        try:
            entries = request(str(sock), {"cmd": "flow", "match": "100.64.0.0/16",
                                          "limit": 1 << 30}, timeout=120)["flows"]
            query = {"ok": True}
        except (ControlError, OSError, ValueError) as e:
            query = {"ok": False, "error": str(e)[-300:]}
            print(f"flow query failed: {e}", file=sys.stderr)
        query.update(at_s=round(t_q - t_start, 2), took_s=round(time.monotonic() - t_q, 2))
        _, err = proc.communicate(timeout=a.loop_seconds + 600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    foreign = foreign_cpu(mark)
    if proc.returncode != 0:
        raise SystemExit(f"run --loop {on_full} failed ({proc.returncode}):\n{err[-3000:]}")
    s = json.loads(res.read_text())
    pts = s.get("samples") or []

    def rate(points):
        r = [(b[1] - x[1]) / (b[0] - x[0]) for x, b in zip(points, points[1:])
             if 0 < b[0] - x[0] < 0.3]                 # consecutive samples only
        r = r[1:] or r
        return round(float(np.median(r)) / 1e6, 3) if r else None

    q0 = query.get("at_s", 1e9) - 0.1
    q1 = q0 + query.get("took_s", 0) + 0.3
    # rates between samples outside the query (its reply is built on the main lcore's CPU)
    first = [p for p in pts if p[1] < n and not q0 <= p[0] <= q1]
    later = [p for p in pts if p[1] >= n and not q0 <= p[0] <= q1]
    es, ep, ed = meta["sessions"]
    want = {(ip_text(es[i]), ip_text(ed[i]), int(ep[i])): expected_member(es[i], ed[i],
                                                                          ep[i], 443)
            for i in range(a.established)}
    found = pinned = 0
    if entries is not None:
        for fl in entries:
            k = (fl["src"], fl["dst"], fl["sport"])
            if k in want and fl["dport"] == 443:
                found += 1
                pinned += fl["member"] == want[k] and fl["packets"] >= 1 + a.data
    pcap.unlink()
    return {"on_full": on_full, "frames": n, "seconds": s.get("seconds"),
            "rx": s.get("rx"), "tx": s.get("tx"),
            "mpps_first_pass": rate(first),
            # with drop the refused SYNs do not come back: later passes are the sessions
            # and the admitted SYNs only, until their TTL runs out
            "mpps_later_passes": rate(later) if on_full == "hash" else None,
            "interval_mpps": [[round(b[0], 2), round((b[1] - x[1]) / (b[0] - x[0]) / 1e6, 2)]
                              for x, b in zip(pts, pts[1:]) if b[0] > x[0]],
            "mpps_whole_run": round(s.get("pps", 0) / 1e6, 3),
            "flow_counters": s.get("flows"),
            "drops": {k: v for k, v in (s.get("drops") or {}).items() if v},
            "established_entries_found_during_run": found if entries is not None else None,
            "established_entries_pinned_during_run":
                pinned if entries is not None else None,
            "flow_query": query, "foreign_cpu": foreign,
            "mbufs_in_use_after": s.get("mbufs_in_use_after")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=65536)
    ap.add_argument("--flood", type=int, default=6_553_600)
    ap.add_argument("--established", type=int, default=1000)
    ap.add_argument("--data", type=int, default=100, help="data packets per session")
    ap.add_argument("--modes", default="hash,drop")
    ap.add_argument("--layouts", default="before,after")
    ap.add_argument("--memory-mb", type=int, default=512)
    ap.add_argument("--loop-seconds", type=float, default=16.0)
    ap.add_argument("--query-at", type=float, default=3.0,
                    help="read the sessions' entries through the control socket this long "
                         "after the loop run started (the reply takes 4-7 s here: the "
                         "server lists the whole table to match it)")
    ap.add_argument("--no-loop", action="store_true")
    ap.add_argument("--json", default=str(HERE / "results" / "flood.json"))
    a = ap.parse_args()
    rows, loops = [], []
    with tempfile.TemporaryDirectory(prefix="flood-") as t:
        tmp = Path(t)
        for on_full in a.modes.split(","):
            for layout in a.layouts.split(","):
                row = replay_case(tmp, a, on_full, layout)
                rows.append(row)
                print(json.dumps({k: row[k] for k in (
                    "on_full", "layout", "packets", "established_forwarded_share",
                    "worst_flow_share", "established_entries_present",
                    "established_entries_pinned_and_counted",
                    "established_flows_on_their_bucket_table_member", "mpps", "foreign_cpu",
                    "replay_wall_seconds")}), flush=True)
            if not a.no_loop:
                loops.append(loop_case(tmp, a, on_full))
                print(json.dumps(loops[-1]), flush=True)
    doc = {"command": " ".join(["python", "bench/flood.py", *sys.argv[1:]]),
           "when": time.strftime("%Y-%m-%d %H:%M:%S"), "host": platform.node(),
           "cpus": os.cpu_count(), "entries": a.entries, "flood": a.flood,
           "established": a.established, "data_per_session": a.data,
           "replay": rows, "loop": loops}
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(doc, indent=2, default=int))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
