"""Resilient bucket tables (SPEC §6, docs/hashing.md §5): realised shares, and what a
member removal, addition or weight change moves — on the table itself and on 100 k
random flows hashed by the C hash of the packet path."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from dataplane import _hashing, ecmp
from dataplane.crc32c import crc32c

SIZES = [64, 97, 128, 251, 256, 1000, 1024, 4093, 4096, 8191, 65521, 65536]   # incl. primes
N_FLOWS = 100_000
SEED = crc32c(b"leaf1")


def exact(weights, n):
    total = sum(weights)
    return [n * w / total for w in weights]


def bounds(weights, n):
    """Each member's valid bucket count: floor or ceil of its exact share."""
    total = sum(weights)
    return [(n * w // total, -(-n * w // total)) for w in weights]


def counts(table, k):
    return np.bincount(table, minlength=k)[:k]


def random_weights(rng: random.Random, k: int) -> list[int]:
    kind = rng.random()
    if kind < 0.3:
        return [1] * k
    if kind < 0.6:
        return [rng.randint(1, 10) for _ in range(k)]
    return [rng.randint(1, 1000) for _ in range(k)]


def assert_valid(table, weights):
    """Every member within one bucket of its exact share (and drained members none)."""
    c = counts(table, len(weights))
    assert c.sum() == len(table) and table.max() < len(weights)
    for m, (lo, hi) in enumerate(bounds(weights, len(table))):
        assert lo <= c[m] <= hi, (m, c[m], lo, hi)


# --- quotas and realised shares -------------------------------------------------------

def test_quotas_within_one_bucket_many_weight_vectors():
    rng = random.Random(1)
    for _ in range(3000):
        k = rng.randint(1, 64)
        n = rng.choice(SIZES)
        w = random_weights(rng, k)
        if rng.random() < 0.2:
            w[rng.randrange(k)] = 0                       # a drained member
            if sum(w) == 0:
                continue
        q = ecmp.quotas(w, n)
        assert sum(q) == n
        for qi, e, wi in zip(q, exact(w, n), w):
            assert abs(qi - e) < 1
            if wi == 0:
                assert qi == 0
            if n >= 100:                                  # 1 bucket < 1 % of the table
                assert abs(qi / n - wi / sum(w)) < 0.01
            if e >= 100:                                  # ... and < 1 % of the share
                assert abs(qi / e - 1) < 0.01


def test_quotas_largest_remainder_ties_to_lower_index():
    assert ecmp.quotas([1, 1, 1], 64) == [22, 21, 21]
    assert ecmp.quotas([1, 4, 1], 4096) == [683, 2731, 682]   # equal remainders 4/6
    assert ecmp.quotas([3, 0, 1], 4096) == [3072, 0, 1024]
    with pytest.raises(ValueError):
        ecmp.quotas([0, 0], 4096)


def test_build_realises_quotas_and_shares_within_1pc():
    rng = random.Random(2)
    cases = [(rng.randint(1, 64), n) for n in SIZES[:9] for _ in range(4)]
    cases += [(2, 65521), (7, 65536), (3, 65536)]
    for k, n in cases:
        w = random_weights(rng, k)
        t = ecmp.build(w, n)
        assert len(t) == n and t.dtype == np.uint16
        assert counts(t, k).tolist() == ecmp.quotas(w, n)
        shares = ecmp.realised_shares(t, k)
        assert len(shares) == k and math.isclose(sum(shares), 1.0)
        tolerance = 0.01 if n >= 100 else 1 / n            # one bucket, under 1 % at 100
        for s, wi in zip(shares, w):
            assert abs(s - wi / sum(w)) < tolerance


def test_default_table_shares_within_1pc_of_share():
    """At the default 4096 buckets every member of up to 40 equal members is within 1 %
    of its own share (one bucket is under 1 % of 102 buckets)."""
    for k in range(1, 41):
        shares = ecmp.realised_shares(ecmp.build([1] * k, 4096), k)
        assert max(abs(s * k - 1) for s in shares) < 0.01


def test_build_spreads_each_member_over_the_table():
    """Smooth weighted round robin: no member's buckets bunch up (gaps at most twice the
    even spacing), so each member's flows come from the whole hash range."""
    rng = random.Random(3)
    for _ in range(40):
        k, n = rng.randint(2, 32), rng.choice([97, 1024, 4096])
        w = random_weights(rng, k)
        t = ecmp.build(w, n)
        for m in range(k):
            pos = np.flatnonzero(t == m)
            if len(pos) >= 2:
                gaps = np.diff(np.r_[pos, pos[0] + n])
                assert gaps.max() <= 2 * n / len(pos)


def test_drained_group():
    assert ecmp.build_or_none([0, 0, 0], 4096) is None
    t = ecmp.build_or_none([0, 1, 1], 4096)
    assert counts(t, 3).tolist() == [0, 2048, 2048]


# --- changes on the table -------------------------------------------------------------

def check_removal(t, w, r):
    w2 = list(w)
    w2[r] = 0
    t2 = ecmp.rebalance(t, w2)
    assert_valid(t2, w2)
    changed = t != t2
    assert ecmp.moved(t, t2) == int((t == r).sum())       # exactly the removed buckets
    assert (t[changed] == r).all() and not (t2 == r).any()
    # ... spread over the remaining members in proportion to their weights
    gain = counts(t2, len(w)) - counts(t, len(w))
    share = int((t == r).sum()) / sum(w2)
    for m in range(len(w)):
        if m != r:
            assert abs(gain[m] - share * w2[m]) < 2
    return t2


def test_removal_moves_exactly_the_removed_members_buckets():
    rng = random.Random(4)
    for _ in range(300):
        k, n = rng.randint(2, 64), rng.choice(SIZES[:9])
        w = random_weights(rng, k)
        check_removal(ecmp.build(w, n), w, rng.randrange(k))


@pytest.mark.parametrize("n", [65521, 65536])
def test_large_tables_removal_addition_weight_change(n):
    rng = random.Random(n)
    for k in (2, 5, 64):
        w = random_weights(rng, k)
        t = ecmp.build(w, n)
        assert_valid(t, w)
        check_removal(t, w, rng.randrange(k))
        check_addition(t, w, rng.randint(1, 10))
        w2 = list(w)
        w2[0] += 3
        check_weight_change(t, w, w2)


def test_removal_by_shortening_the_member_list():
    w = [1, 2, 3, 4]
    t = ecmp.build(w, 4096)
    t2 = ecmp.rebalance(t, w[:3])
    assert ecmp.moved(t, t2) == int((t == 3).sum()) and t2.max() == 2
    assert_valid(t2, w[:3])


def check_addition(t, w, w_new):
    k, n = len(w), len(t)
    w2 = w + [w_new]
    t2 = ecmp.rebalance(t, w2)
    assert_valid(t2, w2)
    changed = t != t2
    taken = int((t2 == k).sum())
    assert ecmp.moved(t, t2) == taken                       # only to the new member
    assert (t2[changed] == k).all()
    held = counts(t, k)
    lost = held - counts(t2, k + 1)[:k]
    assert (lost >= 0).all()
    # from every member in proportion to what it held, each within one bucket
    assert np.abs(lost - held * taken / n).max() <= 1
    return t2


def test_addition_takes_proportionally_from_every_member():
    rng = random.Random(5)
    for _ in range(300):
        k, n = rng.randint(1, 63), rng.choice(SIZES[:9])
        w = random_weights(rng, k)
        check_addition(ecmp.build(w, n), w, rng.choice([1, max(w), rng.randint(1, 50)]))


def test_addition_equal_weights_4_to_5():
    t = ecmp.build([1] * 4, 4096)
    t2 = check_addition(t, [1] * 4, 1)
    assert counts(t2, 5).tolist() in ([820, 819, 819, 819, 819], [819, 819, 819, 819, 820],
                                      [819, 820, 819, 819, 819], [819, 819, 820, 819, 819],
                                      [819, 819, 819, 820, 819])
    assert ecmp.moved(t, t2) == counts(t2, 5)[4]
    # the newcomer's buckets are spread over the table, not one run at its end
    pos = np.flatnonzero(t2 == 4)
    assert np.diff(np.r_[pos, pos[0] + 4096]).max() <= 2 * 4096 / len(pos)


def minimum_moves(held, weights, n):
    """The fewest buckets any valid table (every member within one bucket of its exact
    share) can move from a table with these counts."""
    b = bounds(weights, n)
    give = sum(max(0, c - hi) for c, (lo, hi) in zip(held, b))
    take = sum(max(0, lo - c) for c, (lo, hi) in zip(held, b))
    return max(give, take)


def check_weight_change(t, w, w2):
    n = len(t)
    t2 = ecmp.rebalance(t, w2)
    assert_valid(t2, w2)
    held, after = counts(t, len(w2)), counts(t2, len(w2))
    assert ecmp.moved(t, t2) == minimum_moves(held, w2, n)
    # never more than going from the old quotas to the fresh quotas of the new weights
    fresh = ecmp.quotas(w2, n)
    assert ecmp.moved(t, t2) <= sum(max(0, int(c) - q) for c, q in zip(held, fresh))
    # buckets only leave members that end with fewer, only reach members that end with more
    changed = t != t2
    assert set(t[changed].tolist()) <= set(np.flatnonzero(after < held).tolist())
    assert set(t2[changed].tolist()) <= set(np.flatnonzero(after > held).tolist())
    return t2


def test_weight_change_moves_the_minimum():
    rng = random.Random(6)
    for _ in range(300):
        k, n = rng.randint(2, 64), rng.choice(SIZES[:9])
        w = random_weights(rng, k)
        t = ecmp.build(w, n)
        w2 = list(w)
        for m in rng.sample(range(k), rng.randint(1, min(k, 3))):
            w2[m] = rng.randint(1, 2 * max(w))
        check_weight_change(t, w, w2)


def test_weight_change_one_to_two():
    t = ecmp.build([1, 1, 1], 4096)          # 1366 1365 1365
    t2 = ecmp.rebalance(t, [2, 1, 1])        # 2048 1024 1024
    assert counts(t2, 3).tolist() == [2048, 1024, 1024]
    assert ecmp.moved(t, t2) == 2048 - 1366


def test_live_changes_random_walk():
    """A random walk of additions, removals, drains and weight changes: every step is
    minimal and valid; the end differs from a fresh build by at most a bucket a member."""
    rng = random.Random(7)
    for n in (97, 4096):
        w = [1, 1, 1, 1]
        t = ecmp.build(w, n)
        for _ in range(60):
            op = rng.random()
            live = [m for m in range(len(w)) if w[m]]
            if op < 0.25 and len(w) < 64:
                new_w = rng.randint(1, 8)
                t = check_addition(t, w, new_w)
                w = w + [new_w]
            elif op < 0.5 and len(live) > 1:
                r = rng.choice(live)
                t = check_removal(t, w, r)
                w[r] = 0
            else:
                w2 = list(w)
                w2[rng.choice(live)] = rng.randint(1, 8)
                t = check_weight_change(t, w, w2)
                w = w2
        fresh = counts(ecmp.build(w, n), len(w))
        assert np.abs(counts(t, len(w)) - fresh).max() <= 1


# --- the same effects on 100 k random flows -------------------------------------------

@pytest.fixture(scope="module")
def flow_buckets():
    """Buckets (of 4096) of 100 k random IPv4 flows, hashed by the packet path's C code."""
    rng = np.random.default_rng(2024)
    h = _hashing.hash_v4_many(
        rng.integers(0, 1 << 32, N_FLOWS, dtype=np.uint32),
        rng.integers(0, 1 << 32, N_FLOWS, dtype=np.uint32),
        rng.choice(np.array([6, 17], dtype=np.uint8), N_FLOWS),
        rng.integers(1024, 65536, N_FLOWS).astype(np.uint16),
        rng.integers(1, 65536, N_FLOWS).astype(np.uint16), 0x1F, SEED)
    return _hashing.buckets_many(h, 4096)


def flow_tolerance(fraction: float) -> float:
    """5 binomial standard deviations of a fraction of 100 k flows, at least 0.2 %."""
    return max(0.002, 5 * math.sqrt(fraction * (1 - fraction) / N_FLOWS))


def test_flows_removal(flow_buckets):
    w = [1, 2, 3, 4, 5]
    t = ecmp.build(w, 4096)
    w2 = [1, 2, 0, 4, 5]
    t2 = ecmp.rebalance(t, w2)
    before, after = t[flow_buckets], t2[flow_buckets]
    moved = before != after
    assert (moved == (before == 2)).all()       # exactly the removed member's flows move
    frac = ecmp.moved(t, t2) / 4096
    assert abs(moved.mean() - frac) < flow_tolerance(frac)
    assert abs(moved.mean() - 3 / 15) < flow_tolerance(3 / 15)


def test_flows_addition(flow_buckets):
    t = ecmp.build([1] * 4, 4096)
    t2 = ecmp.rebalance(t, [1] * 5)
    before, after = t[flow_buckets], t2[flow_buckets]
    moved = before != after
    assert (after[moved] == 4).all() and (after == 4).sum() == moved.sum()
    frac = ecmp.moved(t, t2) / 4096
    assert abs(moved.mean() - frac) < flow_tolerance(frac)
    assert abs(moved.mean() - 1 / 5) < flow_tolerance(1 / 5)
    for m in range(4):                           # each old member gives ~1/5 of its flows
        mine = before == m
        assert abs(moved[mine].mean() - 1 / 5) < 5 * math.sqrt(0.16 / mine.sum())


def test_flows_weight_change(flow_buckets):
    t = ecmp.build([1, 1, 1, 1], 4096)
    t2 = ecmp.rebalance(t, [1, 1, 1, 3])         # 1024 each → 683 683 682 2048
    before, after = t[flow_buckets], t2[flow_buckets]
    moved = before != after
    assert (after[moved] == 3).all() and not (before[moved] == 3).any()
    frac = ecmp.moved(t, t2) / 4096
    assert ecmp.moved(t, t2) == 2048 - 1024
    assert abs(moved.mean() - frac) < flow_tolerance(frac)


def test_flows_drain_and_restore(flow_buckets):
    """Drain then restore a member: the restored member gets its share back, taken in
    proportion from the others (not necessarily the same buckets)."""
    w = [1, 1, 1]
    t = ecmp.build(w, 4096)
    t_drained = ecmp.rebalance(t, [1, 0, 1])
    t_back = ecmp.rebalance(t_drained, w)
    assert_valid(t_back, w)
    assert ecmp.moved(t_drained, t_back) == counts(t_back, 3)[1]
    share = (t_back[flow_buckets] == 1).mean()
    assert abs(share - 1 / 3) < flow_tolerance(1 / 3)


# --- load sharing: n = 2..16 members (SPEC §11) ---------------------------------------

def member_flow_shares(buckets, weights):
    t = ecmp.build(weights, 4096)
    return np.bincount(t[buckets], minlength=len(weights)) / len(buckets)


@pytest.mark.parametrize("kind", ["equal", "1..n"])
def test_load_sharing_100k_flows(flow_buckets, kind):
    """Every member within ±3 % (of all flows) of its configured share, and within 4.5
    binomial standard deviations of it: what a perfectly random choice would give."""
    for n in range(2, 17):
        w = [1] * n if kind == "equal" else list(range(1, n + 1))
        p = np.array(w) / sum(w)
        s = member_flow_shares(flow_buckets, w)
        assert np.abs(s - p).max() < 0.03
        z = np.abs(s - p) / np.sqrt(p * (1 - p) / N_FLOWS)
        assert z.max() < 4.5, (n, s, p)


def test_load_sharing_relative_3pc_1m_flows():
    """±3 % of each member's own share. With 100 k flows and 16 members a share holds 6 250
    flows and its binomial noise alone is 1.2 % of it, so this needs more flows: with
    1 M the noise is 0.4 % and 3 % is over 7 standard deviations."""
    n_flows = 1_000_000
    rng = np.random.default_rng(11)
    h = _hashing.hash_v4_many(
        rng.integers(0, 1 << 32, n_flows, dtype=np.uint32),
        rng.integers(0, 1 << 32, n_flows, dtype=np.uint32),
        rng.choice(np.array([6, 17], dtype=np.uint8), n_flows),
        rng.integers(1024, 65536, n_flows).astype(np.uint16),
        rng.integers(1, 65536, n_flows).astype(np.uint16), 0x1F, SEED)
    buckets = _hashing.buckets_many(h, 4096)
    for n in range(2, 17):
        for w in ([1] * n, list(range(1, n + 1))):
            p = np.array(w) / sum(w)
            s = member_flow_shares(buckets, w)
            assert np.abs(s / p - 1).max() < 0.03, (w, s / p)
