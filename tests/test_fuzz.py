"""Fuzzing the packet path against the reference model (fuzz/README.md).

- test_fuzz_fixed_seed: fuzz/harness.py under atheris (libFuzzer) in a child, -seed=1,
  50,000 inputs from the seed corpus (fuzz/make_corpus.py: frames of the differential
  corpora) on: any finding (crash, exception, byte or counter difference, accounting gap,
  mbuf left in use) fails it. About 40 s of fuzzing on this 2-CPU machine.
- test_fuzz_under_asan: 5,000 inputs (the seed corpus, then seeded mutations) with the
  extensions of `make asan-build` (-fsanitize=address) preloaded with libasan, as
  tests/test_live.py runs its child; skipped without an up to date ASAN build unless
  DP_ASAN_REQUIRED=1.
- test_harness_*: the harness itself: its input format, and that it does catch a
  difference, a counter the model did not count and an accounting gap planted in the
  model.
- test_udp6_checksum_over_odd_length_segments: what the fuzzer found (DPDK 22.11's
  rte_raw_cksum_mbuf() loses carries over odd-length segments; push.pxd sums the chain
  itself now). Failed with 0xa5db, 0xa5eb, 0xa616 for 0xa5c4 before the fix.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "fuzz" / "harness.py"
sys.path.append(str(ROOT / "fuzz"))
import harness  # noqa: E402
import make_corpus  # noqa: E402

RUNS = 50_000
ASAN_RUNS = 5_000
SEED = 1
TIMEOUT = 600           # the pass takes ~60 s here; generous for a loaded machine


@pytest.fixture(scope="session")
def seed_corpus(tmp_path_factory) -> Path:
    """The seed corpus, made once per session (about 10 s: the corpora use scapy)."""
    out = tmp_path_factory.mktemp("fuzz") / "seeds"
    make_corpus.write(out)
    return out


def have_atheris() -> bool:
    import importlib.util
    return importlib.util.find_spec("atheris") is not None


def run_harness(tmp: Path, seeds: Path, runs: int, env=None,
                atheris: bool = True) -> tuple[str, float]:
    """The harness on a copy of the seeds (libFuzzer adds to its corpus directory):
    (its output, seconds). atheris False (or atheris not installed): the seeded
    random.Random driver. Fails the test on a finding, with the harness's message."""
    corpus = tmp / "corpus"
    shutil.copytree(seeds, corpus)
    art = tmp / "artifacts"
    art.mkdir()
    if atheris and have_atheris():
        argv = [sys.executable, str(HARNESS), f"-seed={SEED}", f"-runs={runs}",
                "-timeout=60", "-rss_limit_mb=4096", "-max_len=4096",
                "-print_final_stats=1", f"-artifact_prefix={art}/", str(corpus)]
    else:
        # atheris missing from this venv (.venv/bin/pip install -r requirements.txt):
        # the same inputs and checks, mutated by a seeded random.Random instead
        argv = [sys.executable, str(HARNESS), "--random", str(runs), "--seed", str(SEED),
                "--artifacts", str(art), str(corpus)]
    t0 = time.monotonic()
    try:
        r = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the fuzz pass did not finish in {TIMEOUT} s:\n{(e.stderr or '')[-4000:]}",
                    pytrace=False)
    secs = time.monotonic() - t0
    out = r.stdout + r.stderr
    if r.returncode != 0:
        found = out.find("=== Uncaught Python exception")
        if found < 0:
            found = out.find("==ERROR") if "==ERROR" in out else max(0, len(out) - 6000)
        saved = sorted(p.name for p in art.iterdir())
        pytest.fail(f"the fuzz pass found something (exit {r.returncode}; saved {saved}; "
                    f"python fuzz/harness.py --show FILE reruns one):\n"
                    f"{out[found:found + 6000]}", pytrace=False)
    return out, secs


def execs_of(out: str) -> int:
    m = re.findall(r"^Done (\d+) runs in", out, re.M) or \
        re.findall(r"^random pass: (\d+) inputs", out, re.M)
    assert m, out[-3000:]
    return int(m[-1])


def known_of(out: str) -> dict:
    known: dict = {}
    for name, n in re.findall(r"^KNOWN FINDING (\S+) \(x(\d+)", out, re.M):
        known[name] = max(known.get(name, 0), int(n))
    return known


def test_fuzz_fixed_seed(tmp_path, seed_corpus):
    if not have_atheris():
        import warnings
        warnings.warn("atheris is not installed: the fixed-seed pass runs the seeded "
                      "random.Random driver instead (pip install -r requirements.txt)")
    out, secs = run_harness(tmp_path, seed_corpus, RUNS)
    execs = execs_of(out)
    assert execs >= RUNS, execs
    print(f"fuzz: {execs} inputs in {secs:.1f} s ({execs / secs:.0f}/s), no new finding; "
          f"known (reported by their own tests): {known_of(out) or 'none'}")


# ---------------------------------------------------------------- the same under ASAN

def test_fuzz_under_asan(tmp_path, seed_corpus):
    """ASAN_RUNS inputs with the ASAN build of the extensions: a heap overflow or a
    use-after-free in the core (malloc'd memory; DPDK's own heap and mbufs are not
    ASAN's) aborts the child. The whole seed corpus, then seeded mutations of it by the
    harness's random.Random driver: with gcc's libasan preloaded, atheris gets its
    coverage callbacks from libasan instead of its libFuzzer and sees no coverage at all
    (its mutations would all start from one empty input)."""
    from test_live import ASAN_BUILD, asan_build_problem, libasan
    problem = asan_build_problem()
    if problem:
        if os.environ.get("DP_ASAN_REQUIRED") == "1":
            pytest.fail(problem)
        pytest.skip(problem)
    env = dict(os.environ, LD_PRELOAD=str(libasan()), PYTHONPATH=str(ASAN_BUILD),
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1")
    out, secs = run_harness(tmp_path, seed_corpus, ASAN_RUNS, env=env, atheris=False)
    assert "AddressSanitizer" not in out, out[-6000:]
    m = re.search(r"^fuzz harness: dataplane._core from (\S+), libasan (mapped|not mapped)",
                  out, re.M)
    assert m, out[-3000:]
    assert m.group(2) == "mapped", "libasan is not mapped in the child"
    assert Path(m.group(1)).resolve().is_relative_to(ASAN_BUILD.resolve()), \
        f"the child imported {m.group(1)}, not the ASAN build in {ASAN_BUILD}"
    execs = execs_of(out)
    assert execs >= ASAN_RUNS, execs
    print(f"fuzz under ASAN: {execs} inputs in {secs:.1f} s, no finding; known "
          f"{known_of(out) or 'none'}")


# ---------------------------------------------------------------- the harness itself

def test_harness_input_format():
    """encode() and decode() agree; any bytes decode to a case (empty, short, huge
    lengths); padding never takes more mbufs than the pool can give."""
    nports = harness.port_counts()
    frames = [b"\x01" * 60, b"", bytes(range(256)) * 3]
    for variant in harness.VARIANTS:
        data = harness.encode(variant, nports[variant] - 1, frames, seg=64, nports=nports)
        case = harness.decode(data, nports)
        assert (case.variant, case.port, case.seg, case.frames) == \
            (variant, nports[variant] - 1, 64, frames)
    rep = harness.decode(harness.encode("ip", 0, frames, reps=33, pad=1500), nports)
    assert len(rep.frames) == harness.MAX_FRAMES
    assert rep.frames[0] == frames[0] + harness.PAD_BYTES[:1500]
    for data in (b"", b"\x05", b"\xff" * 3, b"\x00\x00\x08\x3f\xff\xff\x01",
                 bytes([2, 9, 8, 0x3f]) + b"\x10\x00" * 100):
        case = harness.decode(data, nports)
        assert 1 <= len(case.frames) <= harness.MAX_FRAMES
        assert case.port < nports[case.variant]
        assert sum(harness.segments(len(f), case.seg) for f in case.frames) <= \
            harness.SEG_BUDGET


@pytest.fixture
def checker(mbuf_leak_check):
    """The harness's Checker in this process (EAL of conftest: harness.eal() sees it)."""
    c = harness.checker()
    yield c
    c.known.clear()


def test_harness_catches_planted_differences(checker, monkeypatch):
    """The checks have teeth: a byte the model writes differently, a drop the model
    counts under another name, an rx the model counts twice, each raise a Finding;
    the unplanted case passes."""
    import test_differential as td
    from scapy.layers.inet import UDP
    frame = bytes(td.tf.eth(td.tf.v4(dst="10.1.2.3"), UDP(sport=1, dport=2), td.tf.PAYLOAD))
    expired = bytes(td.tf.eth(td.tf.v4(dst="10.1.2.3", ttl=1), UDP(), td.tf.PAYLOAD))
    case = harness.Case("ip", td.P0, 0, [frame, expired, frame])
    checker.run(case)                                   # as it is: the same
    ref = checker.pairs["ip"][0]
    real = type(ref).forward

    def flip(self, in_port, f):
        r = real(self, in_port, f)
        return r if isinstance(r, str) else (r[0], r[1][:-1] + bytes([r[1][-1] ^ 1]))

    def rename(self, in_port, f):
        r = real(self, in_port, f)
        return "no_route" if r == "ttl_expired" else r

    for plant, words in ((flip, "first difference at byte"),
                         (rename, "port counters (reference, core)")):
        monkeypatch.setattr(type(ref), "forward", plant)
        with pytest.raises(harness.Finding, match=re.escape(words)):
            checker.run(case)
        monkeypatch.setattr(type(ref), "forward", real)
    real_process = type(ref).process

    def double_rx(self, in_port, frames):
        self._counters[in_port]["rx"] += 1
        return real_process(self, in_port, frames)

    monkeypatch.setattr(type(ref), "process", double_rx)
    with pytest.raises(harness.Finding, match="accounting gap on the reference side"):
        checker.run(case)
    monkeypatch.setattr(type(ref), "process", real_process)
    checker.run(case)


# ---------------------------------------------------------------- what the fuzzer found

def udp6_tunnel_frame() -> tuple:
    """An 810-byte IPv4/UDP frame on p1 routed to 10.4.0.9, whose next hop (gw_udp) pushes
    label 20 and sends it in MPLS-over-UDP over IPv6 (config b of the MPLS differential)."""
    import test_mpls_differential as md
    from scapy.layers.inet import IP, UDP
    ip = IP(src="198.51.100.1", dst="10.4.0.9", ttl=64) / UDP(sport=4000, dport=5000) / \
        (bytes(range(256)) * 3)
    return md.CONFIGS["b"], md.P1, md.eth(bytes(ip), md.P1, 0x0800)


@pytest.mark.parametrize("seg", [0, 64, 100, 7, 101, 513])
def test_udp6_checksum_over_odd_length_segments(open_backend, seg):
    """The outer UDP checksum of MPLS-over-UDP over IPv6 is over every segment (RFC 8200
    §8.1) whatever the segments' lengths: the same bytes as the reference model, and the
    checksum scapy computes, in even-length segments and in odd-length ones (7, 101 or
    513 bytes: a segment then starts at an odd offset of the UDP payload; with DPDK's
    rte_raw_cksum_mbuf() these were 0xa5db, 0xa5eb, 0xa616 for 0xa5c4)."""
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import IPv6
    cfg, port, frame = udp6_tunnel_frame()
    ref, cy = open_backend("reference", cfg), open_backend("cython", cfg)
    want = ref.process(port, [frame])
    got = cy.core.process(port, [frame], 0, seg)
    assert len(got) == 1 and len(got[0][1]) == len(want[0][1]) == len(frame) + 40 + 8 + 4
    ip6 = IPv6(got[0][1][14:])
    clean = IPv6(got[0][1][14:])
    del clean[UDP].chksum
    right = IPv6(bytes(clean))[UDP].chksum
    assert (hex(ip6[UDP].chksum), got) == (hex(right), want)
