# ECMP stage: a group's resilient bucket table (built by dataplane/ecmp.py) picks the member
# for a flow hash; fragments follow their first fragment through a small fragment table.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy
from parse cimport pkt_t, flow_key_t
from hashing cimport (flow_key_hash, pkt_hash4, key_mask4, bucket_of, hash_input, crc_key, F_L3, KEY_MAX, KEY_WORDS, F_SYMMETRIC)

from consts cimport *

cdef enum:
    FRAG_SLOTS = 4096          # direct-mapped: a collision evicts, an entry expires

ctypedef struct group_t:
    uint32_t id                # its index: per-worker member counters are [id][member]
    uint32_t n_buckets
    uint16_t *buckets          # member slot per bucket
    uint32_t n_members
    uint32_t fields            # hash field mask (hashing.pxd F_*), incl. F_SYMMETRIC
    uint64_t mask4[2]          # IPv4 key mask for `fields`
    uint64_t mask4_l3[2]       # ... for the L3 fields only (fragments)
    uint8_t frag_follow        # 1: fragments: follow; 0: fragments: l3
    uint32_t member_nh[MAX_MEMBERS]
    uint8_t member_state[MAX_MEMBERS]   # MEMBER_* below

ctypedef struct frag_entry_t:
    uint64_t expires           # TSC; 0 = empty
    uint32_t group
    uint16_t member
    uint8_t klen
    uint8_t key[KEY_MAX]       # family-tagged (src, dst, proto, id)

ctypedef struct frag_table_t:
    uint64_t timeout_tsc
    uint64_t followed          # later fragments that found their first fragment
    uint64_t fallback          # non-first fragments with no entry: hashed on L3
    frag_entry_t slots[FRAG_SLOTS]

cdef inline uint32_t frag_key(const pkt_t *p, uint8_t *k) noexcept nogil:
    """(src, dst, proto, IP id / IPv6 fragment id) in a zeroed key buffer; its length."""
    cdef const uint8_t *ip = p.data + p.l2_len
    cdef uint32_t n = hash_input(k, p.family, ip + (12 if p.family == 4 else 8),
                               ip + (16 if p.family == 4 else 24), p.proto, 0, 0, 0, 0, F_L3)
    k[n - 4] = <uint8_t>(p.frag_id >> 24)
    k[n - 3] = <uint8_t>(p.frag_id >> 16)
    k[n - 2] = <uint8_t>(p.frag_id >> 8)
    k[n - 1] = <uint8_t>p.frag_id
    return n

cdef inline uint32_t group_hash(const group_t *g, const flow_key_t *k, uint16_t ingress,
                                uint32_t flow_label, uint32_t seed,
                                bint l3_only) noexcept nogil:
    if l3_only:
        return flow_key_hash(k, ingress, flow_label, g.fields & (F_L3 | F_SYMMETRIC), g.mask4_l3,
                        seed)
    return flow_key_hash(k, ingress, flow_label, g.fields, g.mask4, seed)

cdef inline uint32_t group_pkt_hash4(const group_t *g, const pkt_t *p, uint16_t ingress,
                                     uint32_t seed, bint l3_only) noexcept nogil:
    """group_hash() of an IPv4 packet with no fat-flow masking, from the packet."""
    if l3_only:
        return pkt_hash4(p, ingress, g.fields & (F_L3 | F_SYMMETRIC), g.mask4_l3, seed)
    return pkt_hash4(p, ingress, g.fields, g.mask4, seed)

cdef inline uint16_t follow_fragment(group_t *g, uint32_t gid, const pkt_t *p,
                                     const flow_key_t *k, uint16_t ingress, uint32_t seed,
                                     frag_table_t *ft, uint64_t now, uint16_t pinned,
                                     uint32_t h) noexcept nogil:
    """fragments: follow — a first fragment records its member (`pinned` when a flow
    entry already decided it, else by `h`, its full hash); later ones look it up."""
    cdef uint64_t kbuf[KEY_WORDS]
    cdef uint8_t *fk = <uint8_t *>kbuf
    cdef uint32_t n = frag_key(p, fk)
    cdef frag_entry_t *e = &ft.slots[crc_key(fk, n) & (FRAG_SLOTS - 1)]
    cdef uint16_t m
    if p.l4:
        # first fragment: decided on its full 5-tuple, like the flow's other packets
        m = pinned
        if m == NO_MEMBER:
            m = g.buckets[bucket_of(h, g.n_buckets)]
        e.expires = now + ft.timeout_tsc
        e.group = gid
        e.member = m
        e.klen = <uint8_t>n
        memcpy(e.key, fk, n)
        return m
    if e.expires > now and e.group == gid and e.klen == n and memcmp(e.key, fk, n) == 0:
        ft.followed += 1
        return e.member
    ft.fallback += 1
    return g.buckets[bucket_of(group_hash(g, k, ingress, p.flow_label, seed, 1), g.n_buckets)]

cdef inline uint16_t select_member(group_t *g, uint32_t gid, const pkt_t *p,
                                   const flow_key_t *k, uint16_t ingress, uint32_t seed,
                                   frag_table_t *ft, uint64_t now, uint32_t h) noexcept nogil:
    """The member slot for a packet without a flow entry (docs/hashing.md); h is its
    group hash (group_hash(..., not g.frag_follow): with fragments: l3 every packet
    hashes on src/dst/proto only)."""
    if g.n_buckets == 0:
        return NO_MEMBER
    if p.frag and g.frag_follow:
        return follow_fragment(g, gid, p, k, ingress, seed, ft, now, NO_MEMBER, h)
    return g.buckets[bucket_of(h, g.n_buckets)]
