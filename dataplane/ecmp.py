"""Resilient weighted bucket tables for next-hop groups (SPEC §6).

A group's table has n buckets; each holds a member index. Weights are realised by the
number of buckets a member owns: the floor or the ceiling of its exact share n·w/W, so
every member is within one bucket of it (within 1 % of the configured share for n ≥ 100).
Changes are minimal-disruption. `rebalance()` picks, among those quotas, the ones nearest
the table's current counts, frees only buckets above quota and gives them to members
below theirs; so a removed member's buckets are exactly the ones that move, an added
member takes from every other member in proportion to what it holds (each within one
bucket), and a weight change moves the fewest buckets any valid table could.
This runs at configuration time (and on live changes); the packet path only indexes.
"""
from __future__ import annotations

import numpy as np

UNOWNED = -1


def quotas(weights: list[int], n: int, current=None) -> list[int]:
    """Buckets per member, each the floor or the ceiling of n·w/W (W = sum of weights).

    Without `current`: largest remainder (ties: lower member index), so a fresh table is
    a function of the weights alone. With `current` (the bucket counts of the table being
    changed): the quotas nearest to it, i.e. the fewest buckets to move; when buckets must
    be taken, they are taken in proportion to what each member holds, and when they must
    be given, they go first to members already receiving."""
    total = sum(weights)
    if total <= 0 or min(weights) < 0:
        raise ValueError("a group needs weights >= 0 and a member with weight > 0")
    lo = [n * w // total for w in weights]
    rem = [n * w % total for w in weights]          # exact share = lo + rem / total
    hi = [q + (r > 0) for q, r in zip(lo, rem)]
    if current is None:
        q = list(lo)
        order = sorted(range(len(weights)), key=lambda i: (-rem[i], i))
        for i in order[:n - sum(q)]:
            q[i] += 1
        return q
    c = [int(x) for x in current]
    if len(c) != len(weights):
        raise ValueError("current counts and weights differ in length")
    q = [min(max(ci, l), h) for ci, l, h in zip(c, lo, hi)]   # nearest valid count each
    excess = sum(q) - n                              # |excess| more buckets must move
    if excess > 0:
        # take one more bucket from `excess` members now at their ceiling, keeping each
        # member's loss nearest its proportional part c·L/C of the L buckets that move
        moving = sum(max(0, ci - qi) for ci, qi in zip(c, q)) + excess
        held = sum(c) or 1
        cand = [i for i in range(len(q)) if q[i] > lo[i]]
        cand.sort(key=lambda i: ((c[i] - q[i] + 1) * held - c[i] * moving, i))
        for i in cand[:excess]:
            q[i] -= 1
    elif excess < 0:
        # give one more bucket to members now at their floor: first to those receiving
        # anyway (so an added member alone gains), then by largest remainder
        cand = [i for i in range(len(q)) if q[i] < hi[i]]
        cand.sort(key=lambda i: (c[i] >= q[i], -rem[i], i))
        for i in cand[:-excess]:
            q[i] += 1
    return q


def build(weights: list[int], n: int) -> np.ndarray:
    """A fresh table: members interleaved by smooth weighted round robin over quotas."""
    q = np.array(quotas(weights, n), dtype=np.int64)
    table = np.empty(n, dtype=np.uint16)
    current = np.zeros(len(q), dtype=np.int64)
    for b in range(n):
        current += q
        best = int(current.argmax())            # the first maximum: ties to lower index
        current[best] -= n
        table[b] = best
    return table


def build_or_none(weights: list[int], n: int):
    """build(), or None when every member is drained (the group then routes nothing)."""
    return build(weights, n) if sum(weights) > 0 else None


def rebalance(table: np.ndarray, weights: list[int]) -> np.ndarray:
    """A new table for `weights` (indexed by member; a removed member has weight 0 and
    no buckets afterwards) that moves the fewest buckets from `table`."""
    n, k = len(table), len(weights)
    new = table.astype(np.int32)
    new[new >= k] = UNOWNED                     # members beyond the new list are gone
    have = np.bincount(new[new >= 0], minlength=k)
    q = np.array(quotas(weights, n, current=have), dtype=np.int64)
    givers = np.flatnonzero(have > q)
    for rank, m in enumerate(givers):
        owned = np.flatnonzero(new == m)
        surplus = int(have[m] - q[m])
        # give back buckets spread evenly over the member's own (not a run at the end),
        # each giver at its own phase, so that a receiver's new buckets are spread
        # evenly over the table (and the hash space) rather than bunched
        phase = (rank + 0.5) / len(givers)
        new[owned[((np.arange(surplus) + phase) * len(owned) / surplus).astype(np.int64)]] = \
            UNOWNED
    free = np.flatnonzero(new == UNOWNED)
    need = q - np.bincount(new[new >= 0], minlength=k)
    # interleave the receivers over the free buckets: member m's j-th bucket goes at
    # position (j + 1/2) / need[m] of the free list
    receiver = np.repeat(np.arange(k), need)
    position = np.concatenate([(np.arange(g) + 0.5) / g for g in need if g > 0] or [[]])
    assert len(free) == len(receiver)
    new[free] = receiver[np.lexsort((receiver, position))]
    return new.astype(np.uint16)


def realised_shares(table: np.ndarray, members: int) -> list[float]:
    counts = np.bincount(table, minlength=members)
    return [float(c) / len(table) for c in counts]


def moved(old: np.ndarray, new: np.ndarray) -> int:
    return int((old != new).sum())
