"""EAL once per pytest process (lazily, for the Cython backend) and an mbuf leak check."""
from __future__ import annotations

import os

import pytest

from backends import backend, open_backend  # noqa: F401  (registers the fixtures)

POOL_MBUFS = 8192


@pytest.fixture(scope="session")
def eal():
    """The `_core` module with EAL initialized and the mbuf pool created. EAL can be
    initialized only once per process, so this is session-wide and requested only by
    tests that use the Cython backend."""
    from dataplane import _core
    if not _core.eal_ready():
        _core.eal_init(["dp-test", "-l", "0", "--no-huge", "-m", "2048", "--no-pci",
                        "--file-prefix", f"dpt{os.getpid()}", "--no-shconf",
                        "--log-level", "lib.eal:warning"])
    _core.pool_create(POOL_MBUFS)
    return _core


@pytest.fixture
def mbuf_leak_check(request, eal):
    """Record mbufs in use now; pytest_runtest_call fails the test if that changed."""
    request.node.mbufs_before = eal.pool_in_use()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield                              # a failing test raises here: no check
    before = getattr(item, "mbufs_before", None)
    if before is not None:
        from dataplane import _core
        after = _core.pool_in_use()
        if after != before:
            pytest.fail(f"mbuf leak: {after - before:+d} mbufs in use after the test "
                        f"({before} before, {after} after)", pytrace=False)
    return result
