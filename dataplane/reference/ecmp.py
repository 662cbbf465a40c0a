"""Reference of pyx/ecmp.pxd: group member choice, fragment table, the packet hash."""
# docs/hashing.md §5, §7, SPEC §3, §6.
from __future__ import annotations

from typing import Optional

from .. import hashing
from ..config.model import Group
from ..ecmp import build, build_or_none, rebalance
from .fatflow import FlowKey, flow_key, flow_key_hash
from .parse import Parsed


def packet_hash(p: Parsed, mask: int, seed: int) -> int:
    """The flow hash of docs/hashing.md; an ICMP echo id stands in for both ports, so a
    reply hashes like its request."""
    return hashing.flow_hash(p.family, p.src, p.dst, p.proto, p.icmp_id or p.sport,
                             p.icmp_id or p.dport, p.in_port, p.flow_label, mask, seed)


REMOVED, ACTIVE, DRAIN = "removed", "active", "drain"     # member slot states


class GroupState:
    """A group's member slots, bucket table and per-member packet counts (SPEC §6).

    Slots keep their index for the group's life: a member added live is a new slot, a
    removed one stays as a REMOVED slot (flows pinned to it are re-hashed), weight 0
    drains (DRAIN: keeps its pinned flows, owns no bucket)."""

    def __init__(self, group: Group):
        self.group = group
        self.member_nh = [m.nexthop_index for m in group.members]
        self.state = [ACTIVE if m.weight else DRAIN for m in group.members]
        self.table = build_or_none([m.weight for m in group.members], group.buckets)
        self.mask = hashing.field_mask(group.hash.fields, group.hash.symmetric)
        self.l3_mask = self.mask & (hashing.L3_FIELDS | hashing.SYMMETRIC)
        self.follow = group.hash.fragments == "follow"
        self.packets = [0] * len(group.members)

    def bucket_member(self, h: int) -> int:
        return int(self.table[hashing.bucket_of(h, len(self.table))])

    def update(self, members: list[tuple[int, int, bool]]) -> None:
        """Live change: members[i] = (next-hop index, weight, present) for slot i. The new
        table moves the fewest buckets (dataplane.ecmp.rebalance); the Cython core does the
        same."""
        if len(members) < len(self.member_nh):
            raise ValueError("a group's member slots cannot shrink: mark removed members "
                             "present=False")
        weights = [w if present else 0 for _, w, present in members]
        if sum(weights) == 0:
            self.table = None
        elif self.table is None:
            self.table = build(weights, self.group.buckets)
        else:
            self.table = rebalance(self.table, weights)
        self.member_nh = [nh for nh, _, _ in members]
        self.state = [REMOVED if not present else ACTIVE if w else DRAIN
                      for _, w, present in members]
        self.packets += [0] * (len(members) - len(self.packets))


class FragmentTable:
    """Later fragments follow their first fragment's member (SPEC §3, fragments: follow).

    Bounded like the core's: SLOTS direct-mapped slots indexed by the CRC of the key
    (family-sized (src, dst, proto) key with the IP / IPv6 fragment id in its last 4
    bytes); a first fragment overwrites its slot. No expiry in the model (the core's
    entries live 2 s, longer than any test)."""
    SLOTS = 4096

    def __init__(self):
        self.slots: dict[int, tuple[int, bytes, int]] = {}   # slot → (group, key, member)
        self.followed = self.fallback = 0

    @staticmethod
    def key(p: Parsed) -> bytes:
        k = hashing.hash_input(p.family, p.src, p.dst, p.proto, 0, 0, 0, 0, hashing.L3_FIELDS)
        return k[:-4] + p.frag_id.to_bytes(4, "big")

    def put(self, group: int, p: Parsed, member: int) -> None:
        k = self.key(p)
        self.slots[hashing.crc(k) % self.SLOTS] = (group, k, member)

    def get(self, group: int, p: Parsed):
        k = self.key(p)
        e = self.slots.get(hashing.crc(k) % self.SLOTS)
        return e[2] if e is not None and e[:2] == (group, k) else None


def group_hash(gs: GroupState, k: FlowKey, p: Parsed, seed: int, l3_only: bool) -> int:
    return flow_key_hash(k, p.in_port, p.flow_label, gs.l3_mask if l3_only else gs.mask, seed)


def select_member(gs: GroupState, p: Parsed, seed: int, frags: FragmentTable,
                  key: Optional[FlowKey] = None, pinned: Optional[int] = None):
    """The member slot for packet p in group gs (docs/hashing.md §5, §7), hashed from its
    (fat-flow masked) flow key; `pinned`: the member a flow entry already decided, which a
    first fragment records. None when every member is drained."""
    if key is None:
        key = flow_key(p, 0)
    if pinned is not None:
        if p.frag_first and gs.follow:
            frags.put(gs.group.index, p, pinned)
        return pinned
    if gs.table is None:
        return None
    if not gs.follow:                       # fragments: l3 — every packet on src/dst/proto
        return gs.bucket_member(group_hash(gs, key, p, seed, True))
    if not p.is_fragment:
        return gs.bucket_member(group_hash(gs, key, p, seed, False))
    if p.frag_first:
        m = gs.bucket_member(group_hash(gs, key, p, seed, False))
        frags.put(gs.group.index, p, m)
        return m
    m = frags.get(gs.group.index, p)
    if m is not None:
        frags.followed += 1
        return m
    frags.fallback += 1
    return gs.bucket_member(group_hash(gs, key, p, seed, True))
