"""Flow table lookups (pyx/flow.pxd flow_sig + rte_hash) on an rte_hash made like a
worker's flow table (48-byte keys, flow_sig as hash_func, extendable buckets, twice the
flows in key slots): hits return the positions the inserts returned, misses -ENOENT."""
from __future__ import annotations

import errno
import random

import numpy as np
import pytest

from dataplane import _micro as micro
from dataplane.crc32c import crc32c_raw
from dataplane.reference.fatflow import FlowKey
from oracles import M64, OPS, cycled_sum

SMALL = 1024                # flows: the table stays in cache
BIG = 1 << 20               # the default flow_table.entries
STEP = 0x9E3779B1           # odd: queries walk the big table's keys in a scattered order

pytestmark = pytest.mark.benchmark(group="flow")


def reference_keys(seed: int, n: int, vrf: int) -> list[bytes]:
    """n distinct v4/v6 TCP/UDP keys as the reference lays them out."""
    rng = random.Random(seed)
    out = set()
    while len(out) < n:
        family = rng.choice((4, 6))
        alen = 4 if family == 4 else 16
        out.add(FlowKey(vrf, family, rng.randbytes(alen), rng.randbytes(alen),
                        rng.choice((6, 17)), rng.randrange(65536), rng.randrange(65536)))
    return [k.packed() for k in sorted(out, key=lambda k: (k.src, k.dst))]


@pytest.fixture(scope="module")
def small():
    table = micro.FlowTable(SMALL)
    raw = reference_keys(1, SMALL, 0)
    keys = micro.Blob.of(raw, 48)
    pos = table.add(keys)
    assert sorted(pos.tolist()) == sorted(set(pos.tolist()))       # one slot each
    # the signature the lookups pass is the CRC32-C register of the key from 0
    assert micro.flow_sigs(keys)[:128] == [crc32c_raw(k, 0) for k in raw[:128]]
    miss = micro.Blob.of(reference_keys(2, SMALL, 1), 48)
    return table, keys, pos, miss


@pytest.fixture(scope="module")
def big():
    table = micro.FlowTable(BIG)
    pos = table.add(micro.gen_keys(BIG, 7, 0))
    assert len(np.unique(pos)) == BIG
    query = micro.gen_keys(BIG, 7, 0, STEP)
    expect = pos[(np.arange(BIG, dtype=np.uint64) * STEP) % BIG]
    return table, query, expect, micro.gen_keys(BIG, 7, 1, STEP)


@pytest.mark.parametrize("how", ["single", "bulk"])
@pytest.mark.parametrize("case", ["hit-1k", "miss-1k", "hit-1M", "miss-1M"])
def test_flow_lookup(timed, request, case, how):
    outcome, size = case.split("-")
    if size == "1k":
        table, keys, pos, miss = request.getfixturevalue("small")
    else:
        table, keys, pos, miss = request.getfixturevalue("big")
    if outcome == "miss":
        keys, pos = miss, np.full(len(miss), -errno.ENOENT, dtype=np.int32)
    for way in ("hash_func", "single", "bulk"):    # the table's own hash_func agrees
        assert np.array_equal(micro.flow_lookups(table, keys, way), pos), way
    keys.cursor = 0
    got = timed(micro.flow_lookup_loop, table, keys, OPS, how == "bulk")
    # the last call covered the OPS keys before the cursor (the big set is walked on)
    assert got & M64 == cycled_sum(pos.tolist() if size == "1k" else
                             pos[(keys.cursor - OPS + np.arange(OPS)) % len(pos)].tolist())
