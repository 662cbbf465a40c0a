"""Live table changes under traffic (docs/workers.md, RCU publishing): while `run --loop`
forwards, replace a group's bucket table N times and a VRF's routes M times, then let
every frame die of its TTL and write what happened to OUT_JSON.

    python tests/live_stress.py CONFIG PCAP OUT_JSON [--group-changes 1000]
                                [--route-changes 100] [--restart-rounds 0] [--settle 120]
    python tests/live_stress.py --write-inputs DIR [--per-worker 131100]
                                (writes DIR/stress.yaml and DIR/stress.pcap)

CONFIG and PCAP are what --write-inputs makes. Run it as its own process (EAL initializes
once per process). tests/test_live.py runs it and checks the result; `make asan` runs it
against extensions built with -fsanitize=address.

The setup (write_inputs) is built so that a wrong table read shows in the counters:
- every port is a net_ring loopback preloaded with the pcap (runtime.Forwarder, loop=);
  a frame sent on port P comes back on P and is routed again, so a frame with TTL t is
  received exactly t times wherever it goes: once all frames are dead,
  rx == sum(TTLs) and ttl_expired == frames, per port rx == preloaded + tx.
- group `spines` has three members on three distinct ports (m0, m1, m2); the toggled
  prefix 10.99.0.0/16 (and 2001:db8:99::/48) goes to nexthop `nx` on port `x`. Port
  `trap` (port 0) and its next hop `trap_nh` (next hop 0, where a zeroed or stale index
  lands) are used by no route or member ever: trap's tx must stay 0. The trap port
  sits in VRF `quarantine`, which has no routes: its own preloaded frames are dropped
  there as no_route, exactly once each, and take no part in the rest.
- m0, m2 and x are packet-mode ports (every packet is an LPM lookup and a bucket-table
  read of the version being replaced), m1 is a flow-mode port (pinned flows, a removed
  member's flows re-hashed through the bucket table).
- the pcap mixes long-lived frames (TTL/hop limit 255) that keep traffic flowing through
  the change window and short-lived ones (TTL 2..6); the changes start once the
  short-lived ones are dead. Each port's ring (one per worker) holds as many frames as
  the long-lived ones of the four forwarding ports together (write_inputs): whatever
  the weights and pinned flows (flow-mode m1 keeps every flow pinned to s1 until s1 is
  removed), no ring overflows (tx_full, asserted 0).
"""
from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import random
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

GROUP = "spines"
VRF = "default"
MEMBERS = ["s0", "s1", "s2"]
EXTRA = {"10.99.0.0/16": "nx", "2001:db8:99::/48": "nx"}     # toggled on and off
# (weight, present) per member slot, cycled; at least two members stay live, and no
# member gets more than half of the buckets
PATTERNS = [
    [(1, True), (1, True), (1, True)],
    [(1, True), (2, True), (1, True)],
    [(0, True), (1, True), (1, True)],         # drain s0
    [(1, True), (1, True), (1, True)],
    [(1, True), (1, True), (0, True)],         # drain s2
    [(2, True), (1, True), (1, True)],
    [(1, True), (1, False), (1, True)],        # remove s1: its pinned flows re-hashed
    [(1, True), (1, True), (1, True)],         # s1 back
    [(1, True), (1, True), (2, True)],
    [(1, False), (1, True), (1, True)],        # remove s0
    [(1, True), (0, True), (1, True)],         # s0 back, drain s1
]

PORTS = ["trap", "m0", "m1", "m2", "x"]
MODES = {"trap": "packet", "m0": "packet", "m1": "flow", "m2": "packet", "x": "packet"}
NEXTHOPS = {"trap_nh": "trap", "s0": "m0", "s1": "m1", "s2": "m2", "nx": "x"}
BASE_ROUTES = {"10.0.0.0/8": GROUP, "2001:db8::/32": GROUP}


def port_mac(i: int) -> str:
    return f"02:00:00:00:00:{i + 1:02x}"


def config_doc(memory_mb: int = 1280, lcores: str = "0@0,1@1,2@0",
               flow_entries: int = 1 << 17) -> dict:
    return {
        "node": {"name": "live"},
        # mbuf_size 256: 128 data bytes, enough for these frames, so that the pool of
        # preloaded frames stays small; each route change builds a 64 MiB tbl24 beside
        # the old one; no mlockall (a container's RLIMIT_MEMLOCK may be small)
        "eal": {"lcores": lcores, "memory_mb": memory_mb, "mbufs": 4096,
                "mbuf_size": 256, "mlock": False},
        "flow_table": {"entries": flow_entries},      # every flow of m1 gets an entry
        "ports": [{"name": n, "devargs": f"net_null{i}", "mac": port_mac(i),
                   "vrf": "quarantine" if n == "trap" else VRF, "mode": MODES[n]}
                  for i, n in enumerate(PORTS)],
        "vrfs": {VRF: {"routes": [{"prefix": p, "via": v} for p, v in BASE_ROUTES.items()]},
                 "quarantine": {"routes": []}},
        "nexthops": {n: {"port": p, "mac": f"02:00:00:00:{0x10 + i:02x}:01"}
                     for i, (n, p) in enumerate(NEXTHOPS.items())},
        "groups": {GROUP: {"members": [{"nexthop": m, "weight": 1} for m in MEMBERS]}},
    }


# ---------------------------------------------------------------- frames

def _csum(b: bytes) -> int:
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def udp4(src: int, dst: int, sport: int, dport: int, ttl: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8, 0)
    ip = struct.pack("!BBHHHBBHII", 0x45, 0, 28, 1, 0, ttl, 17, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum(ip)) + ip[12:]
    return ETH4 + ip + udp


def udp6(src: bytes, dst: bytes, sport: int, dport: int, hlim: int) -> bytes:
    udp = struct.pack("!HHHH", sport, dport, 8, 0)
    return ETH6 + struct.pack("!IHBB16s16s", 6 << 28, 8, 17, hlim, src, dst) + udp


ETH4 = bytes.fromhex("020000000002" "02aa00000001" "0800")
ETH6 = bytes.fromhex("020000000002" "02aa00000001" "86dd")
NET10 = int(ipaddress.IPv4Address("10.0.0.0"))
NET10_99 = int(ipaddress.IPv4Address("10.99.0.0"))
SRC4 = int(ipaddress.IPv4Address("100.64.0.0"))
DB8 = ipaddress.IPv6Address("2001:db8::").packed[:4]


def ttl_of(frame: bytes) -> int:
    return frame[22] if frame[12:14] == b"\x08\x00" else frame[21]


def frames(n: int, rnd: random.Random, first: int = 0, long_share: float = 0.5) -> list:
    """n frames, each its own flow: IPv4 (3/4) and IPv6 UDP to both halves of 10.0.0.0/8
    and 2001:db8::/32, a tenth of them into the toggled prefixes (10.99.0.0/16,
    2001:db8:99::/48); long_share of them with TTL 255, the rest 2..6."""
    out = []
    for i in range(first, first + n):
        ttl = 255 if rnd.random() < long_share else rnd.randint(2, 6)
        extra = rnd.random() < 0.1
        sport, dport = 1024 + i % 60000, rnd.choice((53, 80, 443, 4789, 5000 + i % 97))
        if rnd.random() < 0.75:
            dst = (NET10_99 | rnd.getrandbits(16)) if extra else \
                (NET10 | rnd.getrandbits(24))
            out.append(udp4(SRC4 | i, dst | 1, sport, dport, ttl))
        else:
            hi = 0x99 if extra else rnd.getrandbits(16)
            dst = DB8 + struct.pack("!H", hi) + rnd.getrandbits(80).to_bytes(10, "big")
            src = DB8 + b"\xaa\xaa" + i.to_bytes(10, "big")
            out.append(udp6(src, dst, sport, dport, ttl))
    return out


def pcap_bytes(frame_list) -> bytes:
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i, b in enumerate(frame_list):
        parts.append(struct.pack("<IIII", 1700000000 + i // 1000, (i % 1000) * 1000,
                                 len(b), len(b)))
        parts.append(b)
    return b"".join(parts)


def records(pcap: bytes) -> list[bytes]:
    out, off = [], 24
    while off < len(pcap):
        cap = struct.unpack_from("<I", pcap, off + 8)[0]
        out.append(pcap[off + 16:off + 16 + cap])
        off += 16 + cap
    return out


def ring_size(frames_per_worker: int) -> int:
    """The loopback ring of a port for one worker (runtime loop_port: the power of two
    above its preload; it holds one entry less)."""
    size = 2
    while size <= frames_per_worker:
        size <<= 1
    return size


def write_inputs(out_dir, per_worker: int = 131100, workers: int = 2, seed: int = 1,
                 memory_mb: int = 1280,
                 lcores: str = "0@0,1@1,2@0") -> tuple[Path, Path, list[int]]:
    """stress.yaml and stress.pcap in out_dir; the TTL of every frame (in pcap order).
    The pcap holds exactly per_worker frames for each worker's RSS queue, of which
    exactly (ring - 1) // 4 long-lived (TTL 255): once the short-lived ones are dead,
    the long-lived frames of all four forwarding ports fit in any one ring."""
    import yaml
    from dataplane import rss
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    n_long = (ring_size(per_worker) - 1) // (len(PORTS) - 1)
    want = {True: n_long, False: per_worker - n_long}
    if want[False] < 0:
        raise ValueError(f"per_worker {per_worker}: too few frames")
    queues = [{True: [], False: []} for _ in range(workers)]
    made = 0
    while any(len(q[k]) < want[k] for q in queues for k in want):
        chunk = frames(max(1024, per_worker // 4), rnd, made, long_share=0.5)
        made += len(chunk)
        for q, part in zip(queues, rss.split_pcap(pcap_bytes(chunk), workers)):
            for f in records(part):
                kind = ttl_of(f) == 255
                if len(q[kind]) < want[kind]:
                    q[kind].append(f)
    every = [f for q in queues for f in q[True] + q[False]]
    doc = config_doc(memory_mb, lcores, 1 << max(16, per_worker.bit_length()))
    cfg = out / "stress.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    pcap = out / "stress.pcap"
    pcap.write_bytes(pcap_bytes(every))
    return cfg, pcap, [ttl_of(f) for f in every]


# ---------------------------------------------------------------- the ASAN build

DIGESTED = ("setup.py", "pyproject.toml", "tools/gen_consts.py", "pyx", "dataplane")


def source_digest(root) -> str:
    """sha256 over the sources an extension build reads (setup.py, pyx/, the package's
    Python, tools/gen_consts.py), not what it generates (pyx/*.c, pyx/consts.pxd, *.so):
    `make asan` copies these into build/asan/src, and test_live.py runs the ASAN build
    only while its copy still matches the work tree."""
    root = Path(root)
    h = hashlib.sha256()
    for top in DIGESTED:
        base = root / top
        files = [base] if base.is_file() else sorted(base.rglob("*")) if base.exists() \
            else []
        for f in files:
            rel = f.relative_to(root).as_posix()
            if (not f.is_file() or "__pycache__" in f.parts or f.suffix in (".c", ".so")
                    or rel == "pyx/consts.pxd"
                    or (top == "dataplane" and f.suffix != ".py")):
                continue
            h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------- the run

def asan_loaded() -> bool:
    """libasan mapped into this process (LD_PRELOAD of the ASAN build)."""
    try:
        return "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


class Stress:
    def __init__(self, fw, cfg):
        # the change API: Forwarder.control (dataplane/control.py) where it exists, else
        # the Core's own methods (same names)
        self.fw, self.ctl, self.cfg = fw, getattr(fw, "control", fw.core), cfg
        self.gi = next(g.index for g in cfg.groups if g.name == GROUP)
        self.vi = next(v.index for v in cfg.vrfs if v.name == VRF)
        self.member_nh = [self.ctl.via_id(m) for m in MEMBERS]
        self.targets = set()                    # next-hop names ever a member / target
        self.targets.update(MEMBERS)            # the initial members (all live)
        self.log = {"group": 0, "group_apply": 0, "route_set": 0, "route_apply": 0}
        self.patterns_used = set()
        self.secs = {"group": [], "route": []}

    def via(self, name: str) -> int:
        return self.ctl.via_id(name)

    def group_change(self, k: int) -> None:
        """One new version of the group: the k-th weight pattern (update_group, or the
        same through apply() every other time)."""
        pat = PATTERNS[k % len(PATTERNS)]
        members = [(nh, w, present) for nh, (w, present) in zip(self.member_nh, pat)]
        t0 = time.perf_counter()
        if k % 2:
            self.ctl.apply({"op": "group", "group": self.gi, "members": members})
            self.log["group_apply"] += 1
        else:
            self.ctl.update_group(self.gi, members)
            self.log["group"] += 1
        self.secs["group"].append(time.perf_counter() - t0)
        self.patterns_used.add(k % len(PATTERNS))
        self.targets.update(m for m, (w, present) in zip(MEMBERS, pat) if present)
        table = self.ctl.group_table(self.gi)
        live = {i for i, (w, present) in enumerate(pat) if present and w}
        assert table is not None and set(table.tolist()) == live, (pat, set(table.tolist()))

    def route_change(self, k: int) -> None:
        """One new version of the VRF's routes, every destination routable before and
        after (each version is complete: LPM tables built beside the old ones). Cycling:
        the base prefixes (IPv4 and IPv6) swap between one route and its two halves
        (set_routes); the IPv4 extra toggles (apply route_add / route_del); the base
        swaps back; the IPv6 extra toggles (set_routes)."""
        routes = self.ctl.routes(self.vi)
        step = k % 4
        t0 = time.perf_counter()
        if step in (0, 2):
            for p, via in BASE_ROUTES.items():
                net = ipaddress.ip_network(p)
                halves = list(net.subnets(prefixlen_diff=1))
                if net in routes:
                    del routes[net]
                    routes.update({h: self.via(via) for h in halves})
                else:
                    for h in halves:
                        del routes[h]
                    routes[net] = self.via(via)
            self.ctl.set_routes(self.vi, routes)
            self.log["route_set"] += 1
        else:
            p = [q for q in EXTRA if ipaddress.ip_network(q).version == (4 if step == 1
                                                                          else 6)][0]
            net = ipaddress.ip_network(p)
            if step == 1:
                if net in routes:
                    self.ctl.apply({"op": "route_del", "vrf": self.vi, "prefix": p})
                    del routes[net]
                else:
                    self.ctl.apply({"op": "route_add", "vrf": self.vi, "prefix": p,
                                     "via": EXTRA[p]})
                    routes[net] = self.via(EXTRA[p])
                self.log["route_apply"] += 1
            else:
                if net in routes:
                    del routes[net]
                else:
                    routes[net] = self.via(EXTRA[p])
                self.ctl.set_routes(self.vi, routes)
                self.log["route_set"] += 1
        self.secs["route"].append(time.perf_counter() - t0)
        got = self.ctl.routes(self.vi)
        assert got == routes, (got, routes)
        for p in BASE_ROUTES:                   # every base destination still covered
            net = ipaddress.ip_network(p)
            assert all(any(a in q for q in got) for a in (net[0], net[-1])), got
        names = {self.via(n): n for n in list(NEXTHOPS) + [GROUP]}
        self.targets.update(names[v] for v in got.values() if names[v] != GROUP)


def wait_rx(core, more_than: int, timeout: float) -> int:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = core.rx_total()
        if now > more_than:
            return now
        time.sleep(0.001)
    return core.rx_total()


def run(config: str, pcap: str, out_json: str, group_changes: int, route_changes: int,
        settle: float, restart_rounds: int = 0) -> dict:
    """Start the forwarder on the loop, make the changes while it forwards (measuring
    rx between consecutive changes), then restart_rounds times: stop the workers, one
    group and one route change, start them again. Wait until every frame died (rx quiet
    for 0.5 s, at most `settle` seconds), stop, write OUT_JSON."""
    from dataplane import _core, config as config_mod, runtime
    from dataplane.drops import DROP_REASONS
    cfg = config_mod.load(config)
    fw = runtime.Forwarder(cfg, loop=pcap)
    st = Stress(fw, cfg)
    core = fw.core
    rx_slot, tx_slot = _core.counter_slots()[:2]

    def per_worker(slot):
        return [sum(row[slot] for row in rows) for rows in core.counters(per_worker=True)]

    ttl_slot = _core.counter_slots()[2] + DROP_REASONS.index("ttl_expired")
    # the short-lived frames of the forwarding ports (all but trap) die first: from then
    # on the rings hold only long-lived frames, as many as one ring holds (write_inputs)
    short = sum(ttl_of(f) < 255 for f in records(Path(pcap).read_bytes()))
    forwarding = sum(p.name != "trap" for p in cfg.ports)

    version0, grace0 = core.version, core.grace_waits
    fw.start()
    t_warm = time.monotonic()
    while sum(per_worker(ttl_slot)) < forwarding * short and \
            time.monotonic() - t_warm < 30:
        time.sleep(0.001)
    warmup = time.monotonic() - t_warm
    rx0 = wait_rx(core, 0, 10.0)
    tx0, w_rx0 = per_worker(tx_slot), per_worker(rx_slot)
    t0 = time.monotonic()
    # interleaved: a route change after every group_changes / route_changes group changes
    every = max(1, group_changes // max(1, route_changes)) if route_changes else 0
    g = r = 0
    seen = [w_rx0]                  # each worker's rx after each change
    while g < group_changes or r < route_changes:
        if g < group_changes and (not every or r * every >= g or r >= route_changes):
            st.group_change(g)
            g += 1
        else:
            st.route_change(r)
            r += 1
        seen.append(per_worker(rx_slot))
    t1 = time.monotonic()
    deltas = [sum(b) - sum(a) for a, b in zip(seen, seen[1:])]
    # A change returns once every worker ended a loop iteration after the publish; that
    # iteration may have polled its rings before the change began. The next change's
    # grace period, though, takes a whole iteration that began after this one's publish:
    # over any two consecutive changes each worker must have received packets.
    stalled_pairs = [sum(b[w] == a[w] for a, b in zip(seen, seen[2:]))
                     for w in range(len(w_rx0))]
    rx1 = core.rx_total()
    tx1, w_rx1 = per_worker(tx_slot), per_worker(rx_slot)
    version1, grace1 = core.version, core.grace_waits
    # changes while the workers are stopped: each restart must take the new version
    restarts = []
    for k in range(restart_rounds):
        fw.stop()
        before = core.rx_total()
        st.group_change(g)
        g += 1
        st.route_change(r)
        r += 1
        fw.start()
        restarts.append(wait_rx(core, before, 5.0) - before)
    version2 = core.version
    # let every frame die of its TTL: rx stops growing
    quiet_since, prev = time.monotonic(), core.rx_total()
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline:
        time.sleep(0.05)
        cur = core.rx_total()
        if cur != prev:
            prev, quiet_since = cur, time.monotonic()
        elif time.monotonic() - quiet_since > 0.5:
            break
    t2 = time.monotonic()
    fw.stop()
    stats = fw.stats()
    alive = fw.mbufs_in_use()                 # frames still in the rings (TX drained)
    fw.close()
    mbufs_after = fw.mbufs_in_use()
    out = {
        "core_file": _core.__file__,
        "asan": asan_loaded(),
        "loop_frames": fw.loop_frames,
        "ports": [p.name for p in cfg.ports],
        "workers": len(fw.lcores),
        "group_changes": g, "route_changes": r,
        "ops": st.log, "patterns_used": len(st.patterns_used),
        "targets": sorted(st.targets),
        "target_ports": sorted({NEXTHOPS[t] for t in st.targets}),
        "version_before": version0, "version_after": version1, "version_final": version2,
        "grace_waits": grace1 - grace0,
        "window": {"seconds": t1 - t0, "rx": rx1 - rx0, "tx": sum(tx1) - sum(tx0),
                   "rx_per_worker": [b - a for a, b in zip(w_rx0, w_rx1)],
                   "rx_at_start": rx0, "changes": len(deltas),
                   "stalled_changes": sum(d == 0 for d in deltas),
                   "stalled_pairs_per_worker": stalled_pairs,
                   "min_rx_between_changes": min(deltas) if deltas else 0,
                   "median_rx_between_changes": sorted(deltas)[len(deltas) // 2]
                   if deltas else 0},
        "restarts": {"rounds": restart_rounds, "rx_after_each": restarts},
        "change_seconds": {k: {"n": len(v), "mean": sum(v) / len(v) if v else 0,
                               "max": max(v) if v else 0} for k, v in st.secs.items()},
        "warmup_seconds": warmup,
        "settle_seconds": t2 - t1,
        "alive_at_stop": alive,
        "mbufs_in_use_after": mbufs_after,
        "stats": stats,
    }
    Path(out_json).write_text(json.dumps(out, indent=2))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("config", nargs="?")
    ap.add_argument("pcap", nargs="?")
    ap.add_argument("out_json", nargs="?")
    ap.add_argument("--group-changes", type=int, default=1000)
    ap.add_argument("--route-changes", type=int, default=100)
    ap.add_argument("--settle", type=float, default=120.0,
                    help="seconds to wait, after the changes, for every frame to die")
    ap.add_argument("--restart-rounds", type=int, default=0,
                    help="then N times: stop the workers, a group and a route change, "
                         "start them")
    ap.add_argument("--write-inputs", metavar="DIR")
    ap.add_argument("--per-worker", type=int, default=131100,
                    help="frames per worker (RSS queue) in the pcap --write-inputs makes")
    a = ap.parse_args(argv)
    if a.write_inputs:
        cfg, pcap, ttls = write_inputs(a.write_inputs, a.per_worker)
        print(cfg, pcap, f"{len(ttls)} frames, {sum(t == 255 for t in ttls)} with TTL 255")
        return 0
    if not (a.config and a.pcap and a.out_json):
        ap.error("CONFIG PCAP OUT_JSON are required (or --write-inputs DIR)")
    out = run(a.config, a.pcap, a.out_json, a.group_changes, a.route_changes, a.settle,
              a.restart_rounds)
    w = out["window"]
    print(f"{out['group_changes']} group + {out['route_changes']} route changes "
          f"({out['restarts']['rounds']} rounds of them with the workers stopped); "
          f"{w['changes']} under traffic in {w['seconds']:.2f} s, {w['rx']} packets "
          f"received during them (per worker {w['rx_per_worker']}; between two changes "
          f"min {w['min_rx_between_changes']}, median {w['median_rx_between_changes']}, "
          f"{w['stalled_changes']} intervals without any; over two consecutive changes "
          f"per worker {w['stalled_pairs_per_worker']} without any); versions "
          f"{out['version_before']} -> {out['version_after']} -> {out['version_final']}, "
          f"{out['grace_waits']} grace periods under traffic; group change "
          f"{out['change_seconds']['group']['mean'] * 1e3:.2f} ms, route change "
          f"{out['change_seconds']['route']['mean'] * 1e3:.1f} ms (mean); all frames dead "
          f"after {out['settle_seconds']:.1f} s more (alive {out['alive_at_stop']}), mbufs "
          f"after close {out['mbufs_in_use_after']}; core {out['core_file']} "
          f"asan={out['asan']}")
    return 0


if __name__ == "__main__":
    # last: a PYTHONPATH entry (the ASAN build, `make asan`) comes before the work tree
    sys.path.append(str(ROOT))
    sys.exit(main())
