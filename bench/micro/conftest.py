"""EAL once per session (rte_hash, rte_lpm and mbufs need it), and a `timed` fixture that
records each benchmark's time per operation."""
from __future__ import annotations

import os

import pytest

from oracles import OPS

_per_op: list[tuple[str, dict]] = []


@pytest.fixture(scope="session", autouse=True)
def eal():
    """EAL can be initialized only once per process: --no-huge, 1 GiB, no PCI, a
    file prefix of this process's own."""
    from dataplane import _core
    if not _core.eal_ready():
        _core.eal_init(["dp-micro", "-l", "0", "--no-huge", "-m", "1024", "--no-pci",
                        "--file-prefix", f"mb{os.getpid()}", "--no-shconf",
                        "--log-level", "lib.eal:warning"])
    return _core


@pytest.fixture
def timed(benchmark, request):
    """timed(fn, *args, ops=OPS): benchmark fn, which does `ops` operations per call,
    store ns per operation in the result's extra_info, and return fn's result (with
    --benchmark-disable: one call, nothing stored)."""
    def run(fn, *args, ops=OPS):
        result = benchmark(fn, *args)
        if benchmark.stats is not None:
            s = benchmark.stats.stats
            per_op = {"ops_per_call": ops,
                      "ns_per_op_min": s.min / ops * 1e9,
                      "ns_per_op_median": s.median / ops * 1e9,
                      "ns_per_op_mean": s.mean / ops * 1e9}
            benchmark.extra_info.update(per_op)
            _per_op.append((request.node.nodeid.split("::", 1)[1], per_op))
        return result
    return run


def pytest_terminal_summary(terminalreporter):
    if not _per_op:
        return
    tr = terminalreporter
    tr.section("ns per operation (min / median of the rounds)")
    width = max(len(name) for name, _ in _per_op)
    for name, p in _per_op:
        tr.write_line(f"{name:<{width}}  {p['ns_per_op_min']:8.2f}  "
                      f"{p['ns_per_op_median']:8.2f}")
