#!/usr/bin/env python3
"""Fuzz the packet path: the Cython core (`dataplane._core`, real mbufs) against the
reference model (`dataplane.reference`), with atheris (libFuzzer for Python).

One input is one burst (decode() below):

    byte 0   config variant: VARIANTS[b % 3] (test_differential's config, the two of
             test_mpls_differential)
    byte 1   ingress port: b % the config's port count
    byte 2   segment size for Core.process(seg=): SEGS[b % 16] (0 = one segment per
             frame up to the mbuf's 2,048 bytes, as a PMD receives it), doubled until
             the burst takes at most SEG_BUDGET mbufs
    byte 3   bits 0-2: padding appended to every frame (PADS), bits 3-5: the frames are
             repeated REPS times (bursts past the core's 32), bits 6-7: unused
    then     frames, each a 2-byte big-endian length and that many bytes (cut at the end
             of the input), at most MAX_FRAMES in all

Each burst goes through both sides; a finding (raised as Finding, which libFuzzer
reports as a crash and saves the input for) is:
- a crash of the process (SIGSEGV, abort: libFuzzer's deadly signal), a hang (-timeout),
  an exception from either side;
- a difference in the output (egress port and bytes, in order), in a counter delta of a
  port, a group member, the fragment table, MPLS or the flow table, or in the flow
  entries the burst created; frames the core drops as `split_headers` (a header past the
  part of a multi-segment mbuf it makes contiguous) are taken out of the model's burst,
  as tests/test_multiseg.py does (the model has no segments);
- an accounting gap on either side: rx != tx + drops, rx not the burst's size on the
  ingress port (or rx on another port), tx not the number of frames that left;
- mbufs left in use after the burst (the pool's in-use count before and after).

State does not carry from one input to the next (so that a saved input reproduces
alone): before each input the clocks of both sides move 10 s on (the core's fragment
entries live 2 s; the model's fragment slots are cleared) and after it both flow tables
are flushed; counters are compared as deltas.

    python fuzz/harness.py [libFuzzer flags] [corpus dirs]   fuzz (make fuzz)
    python fuzz/harness.py --show FILE...     decode inputs, run them, print the verdict
    python fuzz/harness.py --random N --seed S  N inputs from a seeded random.Random
                                              mutating the seed corpus, no atheris
"""
from __future__ import annotations

import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# after anything on PYTHONPATH: the ASAN build (build/asan/src) must win over the tree
for p in (str(ROOT), str(ROOT / "tests")):
    if p not in sys.path:
        sys.path.append(p)

VARIANTS = ("ip", "mpls-a", "mpls-b")
SEGS = (0, 0, 0, 0, 0, 0, 0, 0, 1, 7, 64, 100, 150, 256, 511, 1000)
PADS = (0, 0, 0, 0, 60, 600, 1500, 8000)
REPS = (1, 1, 1, 1, 2, 3, 16, 33)
MAX_FRAMES = 70            # the core splits bursts at 32: 33, 64, 65+ cross it
POOL_MBUFS = 8192
SEG_BUDGET = 4096          # mbufs one input may chain (the pool has POOL_MBUFS)
MBUF_ROOM = 2048           # RTE_MBUF_DEFAULT_DATAROOM: a longer frame is chained
CLOCK_STEP = 10.0          # seconds between inputs: the core's fragment entries live 2 s


class Finding(AssertionError):
    """The core and the model disagree, or one of them is wrong on its own."""


# Findings already understood, each with the test in tests/test_fuzz.py that reproduces it
# (xfail until the core is fixed): counted and logged, not raised, so that a long run
# goes on finding others. DP_FUZZ_STRICT=1 raises them too.
KNOWN: dict = {}
# (Found here and since fixed: "udp6-checksum-odd-segments", the outer UDP checksum over
# IPv6 of a chain with odd-length segments, which DPDK 22.11's rte_raw_cksum_mbuf()
# got wrong; push.pxd chain_cksum; tests/test_fuzz.py::test_udp6_checksum_over_odd_...)
STRICT = os.environ.get("DP_FUZZ_STRICT") == "1"


def known_finding(case, out_r, out_c, same_state: bool):
    """The name of the KNOWN finding this difference is, or None (none known now)."""
    return None


def clip(b: bytes, n: int = 64) -> str:
    return b.hex() if len(b) <= n else f"{b[:n].hex()}...({len(b)} bytes)"


@dataclass
class Case:
    variant: str
    port: int
    seg: int
    frames: list

    def describe(self) -> str:
        return (f"variant {self.variant} port {self.port} seg {self.seg} "
                f"{len(self.frames)} frame(s)")

    def reproducer(self) -> str:
        """A line of Python that runs this case again (fuzz/harness.py's check_case), or
        where to find the input when that line would be too long."""
        frames = ", ".join(f"bytes.fromhex({f.hex()!r})" for f in self.frames)
        if len(frames) > 3000:
            return ("python fuzz/harness.py --show FILE (the input libFuzzer saved)")
        return (f"check_case(Case({self.variant!r}, {self.port}, {self.seg}, "
                f"[{frames}]))")


# ---------------------------------------------------------------- input format

def port_counts() -> dict[str, int]:
    return {v: len(cfg.ports) for v, cfg in configs().items()}


def decode(data: bytes, nports=None) -> Case:
    """The case an input stands for; every byte string is one."""
    nports = nports or port_counts()
    head = data[:4].ljust(4, b"\0")
    variant = VARIANTS[head[0] % len(VARIANTS)]
    port = head[1] % nports[variant]
    seg = SEGS[head[2] % len(SEGS)]
    pad = PADS[head[3] & 7]
    reps = REPS[(head[3] >> 3) & 7]
    frames = []
    i = 4
    while i < len(data) and len(frames) < MAX_FRAMES:
        n = data[i] << 8 | data[i + 1] if i + 1 < len(data) else data[i]
        i += 2
        frames.append(bytes(data[i:i + n]))
        i += n
    if not frames:
        frames = [b""]
    frames = (frames * reps)[:MAX_FRAMES]
    if pad:
        frames = [f + PAD_BYTES[:pad] for f in frames]
    # keep the pool from running dry: segments twice as long until the burst fits
    while seg and sum(segments(len(f), seg) for f in frames) > SEG_BUDGET:
        seg = seg * 2 if seg * 2 < MBUF_ROOM else 0
    return Case(variant, port, seg, frames)


PAD_BYTES = bytes(range(256)) * 32


def segments(n: int, seg: int) -> int:
    per = min(seg, MBUF_ROOM) if seg else MBUF_ROOM
    return max(1, -(-n // per))


def encode(variant: str, port: int, frames, seg: int = 0, pad: int = 0, reps: int = 1,
           nports=None) -> bytes:
    """The input that decodes to these frames (the seed corpus generator)."""
    nports = nports or port_counts()
    assert port < nports[variant]
    out = bytearray([VARIANTS.index(variant), port, SEGS.index(seg),
                     PADS.index(pad) | REPS.index(reps) << 3])
    for f in frames:
        assert len(f) < 65536
        out += struct.pack("!H", len(f)) + f
    return bytes(out)


# ---------------------------------------------------------------- the two sides

_configs = None
FLOW_ENTRIES = 1024        # the smallest flow table a config may have (see configs())


def configs() -> dict:
    """The differential tests' configs, with the smallest flow table: listing or flushing
    the core's table walks every slot (11 ms each at the default 1 M entries, for every
    input), and a burst of at most MAX_FRAMES flows never fills 1,024."""
    global _configs
    if _configs is None:
        from dataclasses import replace
        import test_differential as td
        import test_mpls_differential as md
        _configs = {v: replace(c, flow_table=replace(c.flow_table, entries=FLOW_ENTRIES))
                    for v, c in (("ip", td.CFG), ("mpls-a", md.CONFIGS["a"]),
                                 ("mpls-b", md.CONFIGS["b"]))}
    return _configs


def eal():
    """EAL and the mbuf pool, once per process (as tests/conftest.py)."""
    from dataplane import _core
    if not _core.eal_ready():
        _core.eal_init(["dp-fuzz", "-l", "0", "--no-huge", "-m", "2048", "--no-pci",
                        "--file-prefix", f"dpfuzz{os.getpid()}", "--no-shconf",
                        "--log-level", "lib.eal:warning"])
    _core.pool_create(POOL_MBUFS)
    return _core


def sub(after, before):
    if isinstance(after, dict):
        return {k: sub(v, before[k]) for k, v in after.items()}
    if isinstance(after, list):
        return [sub(a, b) for a, b in zip(after, before)]
    return after - before


class Checker:
    """A Cython core and a reference model per config variant, opened once."""

    def __init__(self):
        from backends import make_backend
        self.core_mod = eal()
        self.cfgs = configs()
        self.nports = {v: len(c.ports) for v, c in self.cfgs.items()}
        self.pairs = {v: (make_backend("reference", c), make_backend("cython", c))
                      for v, c in self.cfgs.items()}
        self.now = 0.0
        self.execs = 0
        self.known: dict[str, int] = {}

    def close(self) -> None:
        for ref, cy in self.pairs.values():
            ref.close()
            cy.close()

    def snapshot(self, b, cfg) -> dict:
        return {"ports": b.counters(), "groups": [b.group_counters(g.index) for g in cfg.groups],
                "frag": b.frag_counters(), "mpls": b.mpls_counters(),
                "flow": b.flow_counters(), "vnet": b.vnet_counters()}

    @staticmethod
    def flows(b) -> list:
        return sorted((f["vrf"], f["family"], f["src"], f["dst"], f["proto"], f["sport"],
                       f["dport"], f["in_port"], f["nh_id"], f["member"], f["hash"],
                       f["packets"], f["bytes"]) for f in b.flows())

    def run_bytes(self, data: bytes) -> None:
        self.run(decode(data, self.nports))

    def run(self, case: Case) -> None:
        self.execs += 1
        cfg = self.cfgs[case.variant]
        ref, cy = self.pairs[case.variant]
        self.now += CLOCK_STEP
        for b in (ref, cy):
            b.set_clock(self.now)
        ref.frags.slots.clear()             # the core's entries have expired by now
        port, frames, seg = case.port, case.frames, case.seg
        try:
            in_use = self.core_mod.pool_in_use()
            before_c, before_r = self.snapshot(cy, cfg), self.snapshot(ref, cfg)
            try:
                out_c = cy.core.process(port, frames, 0, seg)
            except Exception as e:
                raise Finding(f"the core raised {type(e).__name__}: {e}\n"
                              + self.where(case)) from e
            d_c = sub(self.snapshot(cy, cfg), before_c)
            flows_c = self.flows(cy) if d_c["flow"]["flows_active"] else []
            left = self.core_mod.pool_in_use() - in_use
            if left:
                raise Finding(f"{left:+d} mbufs in use after the burst\n" + self.where(case))
            self.accounting("core", case, d_c, out_c)
            split = d_c["ports"][cfg.ports[port].name]["split_headers"]
            skipped = self.split_frames(case, split) if split else set()
            left = self.core_mod.pool_in_use() - in_use
            if left:
                raise Finding(f"{left:+d} mbufs in use after frames of the burst ran alone "
                              "(split_headers)\n" + self.where(case))
            kept = [f for i, f in enumerate(frames) if i not in skipped]
            try:
                out_r = ref.process(port, kept)
            except Exception as e:
                raise Finding(f"the reference model raised {type(e).__name__}: {e}\n"
                              + self.where(case)) from e
            d_r = sub(self.snapshot(ref, cfg), before_r)
            flows_r = self.flows(ref) if d_r["flow"]["flows_active"] else []
            self.accounting("reference", case, d_r, out_r, len(kept))
            if skipped:                     # what the model never saw
                row = d_c["ports"][cfg.ports[port].name]
                row["rx"] -= len(skipped)
                row["split_headers"] -= len(skipped)
            if out_c != out_r or d_c != d_r or flows_c != flows_r:
                msg = self.difference(case, skipped, out_r, out_c, d_r, d_c, flows_r,
                                      flows_c)
                name = known_finding(case, out_r, out_c, d_c == d_r and flows_c == flows_r)
                if name is None or STRICT:
                    raise Finding(msg)
                self.known_seen(name, msg)
        finally:
            for b in (ref, cy):
                if b.flow_counters()["flows_active"]:
                    b.flow_flush()

    def known_seen(self, name: str, msg: str) -> None:
        n = self.known[name] = self.known.get(name, 0) + 1
        if n & (n - 1) == 0 or n % 1000 == 0:      # 1, 2, 4, ... and every 1,000th
            print(f"KNOWN FINDING {name} (x{n}; {KNOWN[name]})"
                  + ("\n  " + msg.replace("\n", "\n  ") if n == 1 else ""),
                  file=sys.stderr, flush=True)

    def split_frames(self, case: Case, split: int) -> set:
        """Which frames of the burst the core drops as split_headers: each multi-segment
        frame alone (whether a header is readable depends on the frame and the segment
        size only)."""
        cfg = self.cfgs[case.variant]
        ref, cy = self.pairs[case.variant]
        name = cfg.ports[case.port].name
        out = set()
        for i, f in enumerate(case.frames):
            if segments(len(f), case.seg) == 1:
                continue
            before = cy.counters()[name]["split_headers"]
            cy.core.process(case.port, [f], 0, case.seg)
            if cy.counters()[name]["split_headers"] != before:
                out.add(i)
        if len(out) != split:
            raise Finding(f"{split} frame(s) dropped as split_headers in the burst, "
                          f"{len(out)} on their own ({sorted(out)})\n" + self.where(case))
        return out

    def accounting(self, side: str, case: Case, d: dict, out: list, n: int | None = None):
        from dataplane.drops import DROP_REASONS
        cfg = self.cfgs[case.variant]
        n = len(case.frames) if n is None else n
        ports = d["ports"]
        rx = {p: c["rx"] for p, c in ports.items() if c["rx"]}
        tx = sum(c["tx"] for c in ports.values())
        drops = sum(c[r] for c in ports.values() for r in DROP_REASONS)
        # ARP / ND the forwarder took (docs/virtual-networks.md §7): neither tx nor a drop
        taken = sum(c["consumed"] for c in d["vnet"].values())
        problems = []
        want_rx = {cfg.ports[case.port].name: n} if n else {}
        if rx != want_rx:
            problems.append(f"rx {rx}, the burst was {want_rx}")
        if sum(rx.values()) != tx + drops + taken:
            problems.append(f"rx {sum(rx.values())} != tx {tx} + drops {drops} + "
                            f"consumed {taken}")
        if tx != len(out):
            problems.append(f"tx {tx} but {len(out)} frame(s) left")
        if problems:
            nz = {p: {k: v for k, v in c.items() if v} for p, c in ports.items()
                  if any(c.values())}
            raise Finding(f"accounting gap on the {side} side: " + "; ".join(problems)
                          + f"\n  counters {nz}\n" + self.where(case))

    def where(self, case: Case) -> str:
        return f"  case: {case.describe()}\n  reproduce: {case.reproducer()}"

    def difference(self, case, skipped, out_r, out_c, d_r, d_c, flows_r, flows_c) -> str:
        lines = [f"the core and the reference model differ on {case.describe()}"
                 + (f" (frames {sorted(skipped)} split_headers, not compared)"
                    if skipped else "")]
        if out_c != out_r:
            k = next((i for i, (a, b) in enumerate(zip(out_r, out_c)) if a != b),
                     min(len(out_r), len(out_c)))
            lines.append(f"  output {k}: {len(out_r)} frame(s) left the reference model, "
                         f"{len(out_c)} the core")
            if k < min(len(out_r), len(out_c)):
                (er, fr), (ec, fc) = out_r[k], out_c[k]
                at = next((i for i, (a, b) in enumerate(zip(fr, fc)) if a != b),
                          min(len(fr), len(fc)))
                lo = max(0, at - 16)
                lines.append(f"    port {er} / {ec}, {len(fr)} / {len(fc)} bytes, first "
                             f"difference at byte {at}; bytes {lo}..{at + 16}:")
                lines.append(f"    reference {fr[lo:at + 16].hex()}")
                lines.append(f"    core      {fc[lo:at + 16].hex()}")
            else:
                extra = out_r[k:] or out_c[k:]
                lines.append(f"    only on the {'reference' if out_r[k:] else 'core'} "
                             f"side: {[(e, clip(f)) for e, f in extra[:3]]}")
        for key in d_r:
            if d_r[key] != d_c[key]:
                if key == "ports":
                    diff = {p: (nonzero(d_r[key][p]), nonzero(d_c[key][p]))
                            for p in d_r[key] if d_r[key][p] != d_c[key][p]}
                    lines.append(f"  port counters (reference, core): {diff}")
                else:
                    lines.append(f"  {key} (reference, core): {d_r[key]} {d_c[key]}")
        if flows_r != flows_c:
            lines.append(f"  flows reference {flows_r}\n  flows core      {flows_c}")
        lines.append(f"  frames {[clip(f) for f in case.frames]}")
        lines.append("  " + self.where(case).strip())
        return "\n".join(lines)


def nonzero(d: dict) -> dict:
    return {k: v for k, v in d.items() if v}


_checker: Checker | None = None


def checker() -> Checker:
    global _checker
    if _checker is None:
        _checker = Checker()
    return _checker


def check_case(case: Case) -> None:
    checker().run(case)


def TestOneInput(data: bytes) -> None:  # noqa: N802 (atheris' name)
    checker().run_bytes(data)


# ---------------------------------------------------------------- drivers

def corpus_inputs(dirs) -> list[bytes]:
    out = []
    for d in dirs:
        d = Path(d)
        files = sorted(d.iterdir()) if d.is_dir() else [d]
        out += [f.read_bytes() for f in files if f.is_file()]
    return out


def mutate(rng, data: bytes, pool: list[bytes]) -> bytes:
    """A few libFuzzer-like mutations (no coverage feedback): flip, set, insert, erase,
    cut, splice, header bytes."""
    b = bytearray(data)
    for _ in range(rng.randrange(1, 5)):
        r = rng.random()
        if not b or r < 0.05:
            b += rng.randbytes(rng.randrange(1, 64))
        elif r < 0.3:
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif r < 0.5:
            b[rng.randrange(len(b))] = rng.choice([0, 1, 0x7f, 0x80, 0xff, rng.randrange(256)])
        elif r < 0.6:
            b[rng.randrange(min(4, len(b)))] = rng.randrange(256)
        elif r < 0.7:
            i = rng.randrange(len(b) + 1)
            b[i:i] = rng.randbytes(rng.randrange(1, 16))
        elif r < 0.8:
            i = rng.randrange(len(b))
            del b[i:i + rng.randrange(1, 16)]
        elif r < 0.9:
            b = b[:rng.randrange(len(b) + 1)]
        else:
            other = rng.choice(pool)
            i = rng.randrange(len(other) + 1)
            b = b[:rng.randrange(len(b) + 1)] + bytearray(other[i:])
    return bytes(b)


def random_pass(n: int, seed: int, dirs, artifacts: Path | None = None) -> int:
    """n inputs: the corpus, then seeded mutations of it. A Finding propagates, its input
    saved as `artifacts`/crash-<sha1> first (as libFuzzer would)."""
    import hashlib
    import random
    rng = random.Random(seed)
    pool = corpus_inputs(dirs) or [b"\0\0\0\0"]
    c = checker()
    for k in range(n):
        data = pool[k] if k < len(pool) else mutate(rng, rng.choice(pool), pool)
        try:
            c.run_bytes(data)
        except BaseException:
            if artifacts is not None:
                path = Path(artifacts) / f"crash-{hashlib.sha1(data).hexdigest()}"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                print(f"Test unit written to {path}", file=sys.stderr, flush=True)
            raise
    return c.execs


def show(paths) -> int:
    c = checker()
    bad = 0
    for path in paths:
        data = Path(path).read_bytes()
        case = decode(data, c.nports)
        print(f"{path}: {case.describe()}, frame lengths {[len(f) for f in case.frames]}")
        try:
            known = dict(c.known)
            c.run(case)
            print("  known finding (above)" if c.known != known else "  same on both sides")
        except Finding as e:
            bad += 1
            print("  FINDING: " + str(e).replace("\n", "\n  "))
    return 1 if bad else 0


def report(log: Path) -> int:
    """Execs, rate and findings of a libFuzzer run from its log (make fuzz); non-zero
    when it found something (or the log shows no run)."""
    import re
    text = Path(log).read_text(errors="replace")
    execs = secs = None
    done = re.findall(r"^Done (\d+) runs in (\d+) second", text, re.M)
    units = re.findall(r"^stat::number_of_executed_units: *(\d+)", text, re.M)
    rate = re.findall(r"^stat::average_exec_per_sec: *(\d+)", text, re.M)
    fork = re.findall(r"^#(\d+): cov: .*? time: (\d+)s", text, re.M)
    if done:
        execs, secs = map(int, done[-1])
    elif units:
        execs = int(units[-1])
        secs = round(execs / int(rate[-1])) if rate and int(rate[-1]) else None
    elif fork:                              # -fork: the last status line
        execs, secs = map(int, fork[-1])
    status = re.findall(r"^harness exit status (\d+)", text, re.M)
    written = re.findall(r"Test unit written to (\S+)", text)
    findings = [u for u in written if not Path(u).name.startswith("slow-unit")]
    known: dict[str, int] = {}
    for name, n in re.findall(r"^KNOWN FINDING (\S+) \(x(\d+)", text, re.M):
        known[name] = max(known.get(name, 0), int(n))
    if execs is None:
        print(f"fuzz: no exec count in {log}")
    else:
        per = f"{execs / secs:,.0f}/s" if secs else "?/s"
        print(f"fuzz: {execs:,} execs in {secs} s ({per}); {len(findings)} new finding(s)"
              + "".join(f"\n  {u}" for u in findings))
    for name, n in known.items():
        print(f"  known finding {name}: at least {n} input(s) ({KNOWN.get(name, '?')})")
    if findings:
        print("  each: python fuzz/harness.py --show FILE")
    bad = findings or (status and status[-1] != "0") or execs is None
    return 1 if bad else 0


def announce(c: Checker) -> None:
    """Which _core this process runs (tests/test_fuzz.py checks the ASAN build's)."""
    try:
        asan = "libasan" in Path("/proc/self/maps").read_text()
    except OSError:
        asan = False
    print(f"fuzz harness: dataplane._core from {c.core_mod.__file__}, libasan "
          f"{'mapped' if asan else 'not mapped'}, strict {STRICT}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    import argparse
    if argv[1:2] and argv[1] in ("--show", "--random", "--report", "-h", "--help"):
        ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
        ap.add_argument("--show", nargs="+", metavar="FILE", help="run saved inputs")
        ap.add_argument("--random", type=int, metavar="N", help="N inputs, no atheris")
        ap.add_argument("--seed", type=int, default=0)
        ap.add_argument("--report", metavar="LOG", help="sum up a make fuzz log")
        ap.add_argument("--artifacts", metavar="DIR", help="--random: save a finding here")
        ap.add_argument("corpus", nargs="*", help="corpus directories (--random)")
        a = ap.parse_args(argv[1:])
        if a.show:
            return show(a.show)
        if a.report:
            return report(Path(a.report))
        if a.random is None:
            ap.print_help()
            return 0
        announce(checker())
        execs = random_pass(a.random, a.seed, a.corpus, a.artifacts)
        print(f"random pass: {execs} inputs, no finding")
        return 0
    import atheris
    # coverage feedback from the reference model (it mirrors the core's branches stage by
    # stage); the core's own C is not instrumented
    with atheris.instrument_imports(include=["dataplane.reference", "dataplane.hashing"]):
        import importlib
        for name in ("dataplane.reference", "dataplane.hashing"):
            importlib.import_module(name)
        configs()
    announce(checker())                # EAL, the pool, the six backends: before the clock
    if any(a.startswith(("-fork=", "-jobs=")) for a in argv[1:]):
        # libFuzzer starts each child with argv[0] and the flags joined by spaces, through
        # the shell: the venv's python on this file, not the file (not executable)
        argv = [f"{sys.executable} {Path(__file__).resolve()}"] + argv[1:]
    atheris.Setup(argv, TestOneInput)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
