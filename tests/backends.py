"""The two backends behind one interface, so each suite runs against both (as uvloop's
tests run against uvloop and asyncio): the Cython core and the pure-Python reference model.

Interface (that of ReferenceForwarder): process(in_port, frames) -> [(out_port, bytes)],
counters() -> {port name: {"rx", "tx", <drop reason>...}}, mirror_counters() ->
{port name: {"mirrored", "mirror_dropped"}}, group_counters(i) -> packets per
member slot, frag_counters() -> {"frag_followed", "frag_fallback"}, the flow table's
set_clock(seconds), age_all(), flows(), flow_flush(), flow_counters(), live
update_group(i, [(nexthop index, weight, present)]), mpls_counters(), the mirror copies
made since the last call take_mirrored() -> [(out port, 1 = rx or 2 = tx, bytes)] and
set_mirror_time(ns), close().
"""
from __future__ import annotations

import pytest

from dataplane.config.model import Config
from dataplane.drops import DROP_REASONS
from dataplane.limits import MIRROR_COUNTERS, VNET_COUNTERS
from dataplane.reference import ReferenceForwarder

BACKENDS = ("reference", "cython")


class ReferenceBackend(ReferenceForwarder):
    def close(self) -> None:
        pass                                    # pure Python: nothing to free


class CythonBackend:
    """`_core.Core` on real mbufs; EAL and the mbuf pool must exist (conftest `eal`)."""

    def __init__(self, cfg: Config):
        from dataplane.control import Control
        from dataplane.runtime import counter_names
        self.cfg = cfg
        self._names = counter_names()
        self.control = Control.open(cfg)
        self.core = self.control.core

    def process(self, in_port: int, frames) -> list[tuple[int, bytes]]:
        return self.core.process(in_port, [bytes(f) for f in frames])

    def counters(self) -> dict[str, dict[str, int]]:
        out = {}
        for port, row in zip(self.cfg.ports, self.core.counters()):
            slots = dict(zip(self._names, row))
            out[port.name] = {name: slots[name] for name in ("rx", "tx") + DROP_REASONS}
        return out

    def mirror_counters(self) -> dict[str, dict[str, int]]:
        out = {}
        for port, row in zip(self.cfg.ports, self.core.counters()):
            slots = dict(zip(self._names, row))
            out[port.name] = {name: slots[name] for name in MIRROR_COUNTERS}
        return out

    def take_mirrored(self) -> list[tuple[int, int, bytes]]:
        return self.core.take_mirrored()

    def set_mirror_time(self, ns) -> None:
        self.core.set_mirror_time(ns)

    def group_counters(self, index: int) -> list[int]:
        return self.core.group_counters(index)

    def frag_counters(self) -> dict[str, int]:
        return self.core.frag_counters()

    # the flow table and live group changes (docs/flow-table.md): straight through
    def set_clock(self, seconds) -> None:
        self.core.set_clock(seconds)

    def age_all(self) -> None:
        self.core.age_all()

    def flows(self) -> list[dict]:
        # one worker here: the reference model has no workers to name
        return [{k: v for k, v in f.items() if k != "worker"} for f in self.core.flows()]

    def flow_flush(self) -> None:
        self.core.flow_flush()

    def flow_counters(self) -> dict[str, int]:
        return self.core.flow_counters()

    def mpls_counters(self) -> dict[str, int]:
        return self.core.mpls_counters()

    def update_group(self, index: int, members) -> None:
        self.control.update_group(index, members)

    # virtual networks (docs/virtual-networks.md §8)
    def vnet_counters(self) -> dict[str, dict[str, int]]:
        out = {}
        for port, row in zip(self.cfg.ports, self.core.counters()):
            slots = dict(zip(self._names, row))
            out[port.name] = {name: slots[name] for name in VNET_COUNTERS}
        return out

    def neigh_tick(self) -> list[tuple[int, bytes]]:
        return self.core.neigh_tick()

    def bridge_table(self) -> list:
        return self.core.bridge_table()

    def bridge_age(self) -> int:
        return self.core.bridge_age()

    def neighbors(self) -> list:
        return self.core.neighbors()

    def drop_held(self) -> None:
        self.core.drop_held()

    def close(self) -> None:
        self.core.close()                       # frees the LPM tables (64 MiB per VRF)


def make_backend(name: str, cfg: Config):
    if name == "reference":
        return ReferenceBackend(cfg)
    if name == "cython":
        return CythonBackend(cfg)
    raise ValueError(f"unknown backend {name!r}")


@pytest.fixture
def open_backend(request):
    """A factory `open_backend(name, cfg)`; closes every backend it made at test end.
    The Cython backend pulls in EAL and the per-test mbuf leak check (conftest)."""
    made = []

    def make(name: str, cfg: Config):
        if name == "cython":
            request.getfixturevalue("mbuf_leak_check")
        b = make_backend(name, cfg)
        made.append(b)
        return b

    yield make
    for b in made:
        b.close()


@pytest.fixture(params=BACKENDS)
def backend(request, open_backend):
    """A factory `make(cfg)` for the backend this test instance runs against."""
    return lambda cfg: open_backend(request.param, cfg)
