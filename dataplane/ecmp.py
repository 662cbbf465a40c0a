"""Resilient weighted bucket tables for next-hop groups (SPEC §6).

A group's table has n buckets; each holds a member index. Weights are realised by the
number of buckets a member owns (largest-remainder rounding, so every member is within
one bucket of its exact share). Changes are minimal-disruption: `rebalance()` moves only
buckets whose owner has more than its new quota, and gives them to the members short of
theirs. A removed member's buckets are exactly the ones that move; an added member takes
from the others in proportion to their surplus; a weight change moves the minimum.
This runs at configuration time (and on live changes); the packet path only indexes.
"""
from __future__ import annotations

import numpy as np

UNOWNED = -1


def quotas(weights: list[int], n: int) -> list[int]:
    """Buckets per member: largest remainder of n·w/W (ties: lower member index)."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("a group needs a member with weight > 0")
    exact = [n * w / total for w in weights]
    q = [int(x) for x in exact]
    rest = n - sum(q)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - q[i]), i))
    for i in order[:rest]:
        q[i] += 1
    return q


def build(weights: list[int], n: int) -> np.ndarray:
    """A fresh table: members interleaved by smooth weighted round robin over quotas."""
    q = quotas(weights, n)
    table = np.empty(n, dtype=np.uint16)
    current = [0] * len(q)
    for b in range(n):
        for i, w in enumerate(q):
            current[i] += w
        best = max(range(len(q)), key=lambda i: (current[i], -i))
        current[best] -= n
        table[b] = best
    return table


def build_or_none(weights: list[int], n: int):
    """build(), or None when every member is drained (the group then routes nothing)."""
    return build(weights, n) if sum(weights) > 0 else None


def rebalance(table: np.ndarray, weights: list[int]) -> np.ndarray:
    """A new table for `weights` (indexed by member; a removed member has weight 0 and
    no buckets afterwards) that moves the fewest buckets from `table`."""
    n = len(table)
    q = quotas(weights, n)
    new = table.astype(np.int32)
    new[new >= len(weights)] = UNOWNED          # members beyond the new list are gone
    for m in range(len(weights)):
        owned = np.flatnonzero(new == m)
        if len(owned) > q[m]:                   # give back the surplus, from the end
            new[owned[q[m]:]] = UNOWNED
    free = np.flatnonzero(new == UNOWNED)
    have = np.bincount(new[new >= 0], minlength=len(weights))
    need = [q[m] - int(have[m]) for m in range(len(weights))]
    # hand free buckets out one at a time to the member furthest below its quota, so a
    # newcomer's buckets are spread over the table rather than one contiguous run
    k = 0
    while k < len(free):
        m = max(range(len(weights)), key=lambda i: (need[i] / max(q[i], 1), -i))
        if need[m] <= 0:
            break
        new[free[k]] = m
        need[m] -= 1
        k += 1
    assert (new >= 0).all()
    return new.astype(np.uint16)


def realised_shares(table: np.ndarray, members: int) -> list[float]:
    counts = np.bincount(table, minlength=members)
    return [float(c) / len(table) for c in counts]


def moved(old: np.ndarray, new: np.ndarray) -> int:
    return int((old != new).sum())
