# Flow stage (SPEC §4, docs/flow-table.md): one table per worker on DPDK rte_hash (bulk
# lookups, twice `entries` key slots, at most `entries` flows admitted), entries in a
# parallel array indexed by the key's rte_hash position. Only the worker touches it.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, int32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset
from includes.rte_hash cimport (rte_hash, rte_hash_lookup, rte_hash_del_key,
                                rte_hash_del_key_with_hash, rte_hash_get_key_with_position)
from includes.rte_hash_crc cimport rte_hash_crc_8byte
from parse cimport flow_key_t, pkt_t
from includes.rte_prefetch cimport rte_prefetch0

cdef enum:
    AGE_SLICE = 64             # entries looked at per aging slice
    AGE_CATCHUP = 4            # at most this many slices per loop iteration
    TCP_FIN = 0x01
    TCP_RST = 0x04
    EMC_SLOTS = 4096           # exact-match cache in front of rte_hash (power of two)
    EMC_INSERT = 16            # one bulk-lookup hit in EMC_INSERT is cached
    KEY_SLOT = 64              # rte_hash key slot: 8-byte data pointer + 48-byte key, padded

ctypedef struct flow_entry_t:
    uint64_t packets
    uint64_t bytes
    uint64_t first_seen        # TSC
    uint64_t last_seen
    uint64_t closing_since     # TSC; 0 = not closing
    uint32_t nh_id             # route result: next-hop id or NH_GROUP | group
    uint32_t hash              # flow entropy (docs/hashing.md), computed once
    uint32_t gen               # creation number (never 0): validates EMC slots
    uint16_t member            # pinned group member slot, or NO_MEMBER
    uint16_t in_port
    uint8_t valid
    uint8_t aggregate          # a fat-flow aggregate: keeps no TCP state
    uint8_t fin                # a FIN was sent in this direction
    uint8_t rst
    uint32_t sig               # the key's rte_hash signature (deletes without rehashing)

ctypedef struct emc_slot_t:
    flow_key_t key
    uint32_t sig
    int32_t pos                # the key's rte_hash position
    uint32_t gen               # entries[pos].gen when cached; 0 = empty
    uint32_t pad

ctypedef struct flow_table_t:
    rte_hash *h
    const uint8_t *bkt         # the rte_hash's bucket array (NULL: not located)
    const uint8_t *keys        # its key store (located with it; NULL: not located)
    uint32_t bkt_mask          # its bucket index mask
    flow_entry_t *entries
    emc_slot_t *emc            # EMC_SLOTS direct-mapped by signature
    uint32_t next_gen
    uint32_t emc_tick
    uint32_t capacity          # flows at most (flow_table.entries)
    uint32_t slots             # rte_hash key slots = entries[] length: 2 × capacity
    uint32_t cursor            # aging position
    uint64_t age_step          # TSC between slices: one sweep per sweep period
    uint64_t age_step_idle     # the same with no flow closing (the idle timeout's pace)
    uint64_t closing           # entries with closing_since set
    uint64_t age_next          # TSC of the next slice
    uint64_t idle_tsc
    uint64_t close_tsc
    uint8_t on_full_drop
    uint8_t direct             # insert-or-find without a bulk lookup (bursts of new flows)
    uint8_t emc_missed         # the last burst had keys the EMC did not hold
    uint64_t created
    uint64_t deleted
    uint64_t aged
    uint64_t rehashed
    uint64_t full

cdef inline uint32_t flow_sig(const flow_key_t *k) noexcept nogil:
    """rte_hash's signature of a key: CRC32-C of its six words, unrolled and inlined
    (the table's hash_func, flow_sig_fn, computes the same for rte_hash's own calls)."""
    cdef const uint64_t *w = <const uint64_t *>k
    cdef uint32_t c = rte_hash_crc_8byte(w[0], 0)
    c = rte_hash_crc_8byte(w[1], c)
    c = rte_hash_crc_8byte(w[2], c)
    c = rte_hash_crc_8byte(w[3], c)
    c = rte_hash_crc_8byte(w[4], c)
    return rte_hash_crc_8byte(w[5], c)

cdef inline void bucket_prefetch(const flow_table_t *ft, uint32_t sig) noexcept nogil:
    """Prefetch both cuckoo buckets of a signature (rte_hash's own index functions:
    primary = sig & mask, secondary = (primary ^ (sig >> 16)) & mask) well before the
    bulk lookup, which prefetches them itself only right before reading them."""
    cdef uint32_t b
    if ft.bkt != NULL:
        b = sig & ft.bkt_mask
        rte_prefetch0(ft.bkt + (<size_t>b << 6))
        rte_prefetch0(ft.bkt + (<size_t>((b ^ (sig >> 16)) & ft.bkt_mask) << 6))

cdef inline bint key_eq(const flow_key_t *a, const flow_key_t *b) noexcept nogil:
    cdef const uint64_t *x = <const uint64_t *>a
    cdef const uint64_t *y = <const uint64_t *>b
    return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) |
            (x[4] ^ y[4]) | (x[5] ^ y[5])) == 0

cdef inline int32_t emc_find(const flow_table_t *ft, const flow_key_t *k,
                             uint32_t sig) noexcept nogil:
    """The EMC's position for k, or -1. A slot is only a hint: it counts when the entry
    at its position is still the one it cached (valid, same creation number)."""
    cdef const emc_slot_t *s = &ft.emc[sig & (EMC_SLOTS - 1)]
    cdef const flow_entry_t *e
    if s.sig != sig or not key_eq(&s.key, k):
        return -1
    e = &ft.entries[s.pos]
    if e.valid and e.gen == s.gen:
        return s.pos
    return -1

cdef inline void emc_put(flow_table_t *ft, const flow_key_t *k, uint32_t sig,
                         int32_t pos) noexcept nogil:
    cdef emc_slot_t *s
    ft.emc_tick += 1
    if ft.emc_tick % EMC_INSERT:       # sampled: a million flows must not thrash it
        return
    s = &ft.emc[sig & (EMC_SLOTS - 1)]
    s.key = k[0]
    s.sig = sig
    s.pos = pos
    s.gen = ft.entries[pos].gen

cdef inline bint flow_full(const flow_table_t *ft) noexcept nogil:
    return ft.created - ft.deleted >= ft.capacity

cdef inline void flow_delete(flow_table_t *ft, int32_t pos) noexcept nogil:
    """Delete the flow at pos. With the key store located, the key's address and its
    stored signature make one bucket search; otherwise rte_hash_get_key_with_position
    (which looks the key up to check it) and rte_hash_del_key (which hashes it again)."""
    cdef void *key
    if ft.keys != NULL:
        # rte_hash's key slot pos + 1 (slot 0 is unused): 8-byte data pointer, then key
        rte_hash_del_key_with_hash(ft.h, ft.keys + (<size_t>pos + 1) * KEY_SLOT + 8,
                                   ft.entries[pos].sig)
    elif rte_hash_get_key_with_position(ft.h, pos, &key) == 0:
        rte_hash_del_key(ft.h, key)
    ft.entries[pos].valid = 0
    if ft.entries[pos].closing_since:
        ft.closing -= 1
    ft.deleted += 1

cdef inline void flow_flush(flow_table_t *ft) noexcept nogil:
    """Delete every entry (the table's owner only)."""
    cdef uint32_t i
    for i in range(ft.slots):
        if ft.entries[i].valid:
            flow_delete(ft, i)

cdef inline void reverse_key(const flow_key_t *k, flow_key_t *r) noexcept nogil:
    r[0] = k[0]
    memcpy(r.src, k.dst, 16)
    memcpy(r.dst, k.src, 16)
    r.sport = k.dport
    r.dport = k.sport

cdef inline void flow_tcp(flow_table_t *ft, flow_entry_t *e, const flow_key_t *k,
                          uint8_t flags, uint64_t now) noexcept nogil:
    """FIN both ways or RST (either way) → both directions closing."""
    cdef flow_key_t rk
    cdef int32_t rpos
    cdef flow_entry_t *r = NULL
    if not (flags & (TCP_FIN | TCP_RST)):
        return
    if flags & TCP_FIN:
        e.fin = 1
    if flags & TCP_RST:
        e.rst = 1
    reverse_key(k, &rk)
    rpos = rte_hash_lookup(ft.h, &rk)
    if rpos >= 0 and ft.entries[rpos].valid and not ft.entries[rpos].aggregate:
        r = &ft.entries[rpos]
    if e.rst or (r != NULL and (r.rst or (e.fin and r.fin))):
        if not e.closing_since:
            e.closing_since = now
            ft.closing += 1
        if r != NULL and not r.closing_since:
            r.closing_since = now
            ft.closing += 1

cdef inline void flow_age(flow_table_t *ft, uint64_t now, uint32_t budget) noexcept nogil:
    """Look at `budget` entries from the cursor; delete idle or closed ones."""
    cdef flow_entry_t *e
    cdef uint32_t i
    for i in range(budget):
        e = &ft.entries[ft.cursor]
        if e.valid and ((now - e.last_seen > ft.idle_tsc) or
                        (e.closing_since and now - e.closing_since > ft.close_tsc)):
            flow_delete(ft, ft.cursor)
            ft.aged += 1
        ft.cursor += 1
        if ft.cursor == ft.slots:
            ft.cursor = 0


cdef inline void flow_age_paced(flow_table_t *ft, uint64_t now) noexcept nogil:
    """The worker's aging: slices paced by the TSC so the table is swept once per sweep
    period (docs/flow-table.md §5), not once per few loop iterations (which streamed the
    entries array through the cache on every burst). The period follows the close
    timeout only while some flow is closing, else the idle timeout. Behind schedule (a
    short timeout, a busy worker), it catches up AGE_CATCHUP slices per iteration."""
    cdef int i = 0
    cdef uint32_t slice = AGE_SLICE if ft.slots > AGE_SLICE else ft.slots
    cdef uint64_t step = ft.age_step if ft.closing else ft.age_step_idle
    while <int64_t>(now - ft.age_next) >= 0:
        if i == AGE_CATCHUP:
            if <int64_t>(now - ft.age_next) > <int64_t>(step * (ft.slots // slice)):
                ft.age_next = now              # a sweep behind: drop the debt, go on
            return
        flow_age(ft, now, slice)
        ft.age_next += step
        i += 1
