# A worker's flow table memory (included by loop.pyx; the lookups are pyx/flow.pxd): an
# rte_hash with twice `entries` key slots, the entry array and the EMC; with --no-huge
# all on transparent huge pages (docs/flow-table.md §6).

DEF HASH_BYTES_PER_SLOT = 90       # an rte_hash's memory per key slot (docs/flow-table.md §6)


cdef uint32_t flow_sig_fn(const void *key, uint32_t key_len,
                          uint32_t init_val) noexcept nogil:
    """rte_hash's hash_func for the flow table: flow_sig(), which the fast path inlines."""
    return flow_sig(<const flow_key_t *>key)


cdef class FlowMemory:
    """The memory outside EAL's that one flow table uses (--no-huge): its rte_hash's
    malloc heap on huge pages."""
    cdef bytes heap
    cdef void *mem
    cdef size_t size

    cdef int heap_for(self, bytes name, uint32_t slots, int w) except -1:
        """With --no-huge, EAL memory sits on 4 KiB pages and the rte_hash's random
        bucket and key accesses miss the TLB: its memory comes instead from a heap of its
        own on transparent huge pages; the socket id for rte_hash_create()."""
        self.heap = name
        return thp_heap(name, HASH_BYTES_PER_SLOT * <size_t>slots + (4 << 20),
                        f"flow table ({slots // 2} flows) of worker {w}", &self.mem,
                        &self.size, slots * sizeof(flow_entry_t))

    cdef release(self):
        if self.heap is not None:
            if self.mem != NULL:
                rte_malloc_heap_memory_remove(self.heap, self.mem, self.size)
            rte_malloc_heap_destroy(self.heap)
            thp_unmap(self.mem, self.size)
        self.heap, self.mem, self.size = None, NULL, 0


cdef flow_table_create(flow_table_t *ft, spec, int w, FlowMemory fm):
    global _table_seq
    cdef rte_hash_parameters hp
    _table_seq += 1
    name = f"flows_{_table_seq}".encode()
    memset(&hp, 0, sizeof(hp))
    hp.name = name
    # twice the slots: the cuckoo buckets stay at most half full, where an insert rarely
    # has to displace keys (each displacement step is a cache miss; docs/flow-table.md
    # §6); flow_full() caps the flows at `entries`
    hp.entries = 2 * spec.entries
    hp.key_len = sizeof(flow_key_t)
    hp.hash_func = flow_sig_fn
    hp.socket_id = rte_socket_id()
    hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE   # exactly `entries` keys fit
    where = "EAL memory: raise eal.memory_mb or lower flow_table.entries"
    if not rte_eal_has_hugepages():
        hp.socket_id = fm.heap_for(name, hp.entries, w)
        where = "memory outside EAL's (mmap): lower flow_table.entries"
    ft.h = <rte_hash *>check_ptr(
        rte_hash_create(&hp),
        f"rte_hash_create(flow table of worker {w}, {spec.entries} flows in "
        f"{hp.entries} slots, ≈{(HASH_BYTES_PER_SLOT * hp.entries) >> 20} MiB of {where})")
    ft.entries = <flow_entry_t *>thp_map(hp.entries * sizeof(flow_entry_t))
    ft.emc = <emc_slot_t *>thp_map(EMC_SLOTS * sizeof(emc_slot_t))
    if ft.entries == NULL or ft.emc == NULL:
        fail(f"flow table entries of worker {w} "
             f"(≈{(hp.entries * sizeof(flow_entry_t)) >> 20} MiB on huge pages)", ENOMEM)
    ft.capacity = spec.entries
    ft.slots = hp.entries
    ft.idle_tsc = <uint64_t>(spec.idle_timeout * rte_get_tsc_hz())
    ft.close_tsc = <uint64_t>(spec.tcp_close_timeout * rte_get_tsc_hz())
    ft.on_full_drop = spec.on_full_drop
    locate_buckets(ft, hp.entries, fm.mem, fm.size)
    # sweep period: a quarter of the shorter timeout (of the idle timeout while no flow
    # is closing), from 1 ms to 10 s
    ft.age_step = age_step(ft.slots, min(spec.idle_timeout, spec.tcp_close_timeout))
    ft.age_step_idle = age_step(ft.slots, spec.idle_timeout)


cdef flow_table_free(flow_table_t *ft):
    if ft.h != NULL:
        rte_hash_free(ft.h)
        ft.h = NULL
    thp_unmap(ft.entries, ft.slots * sizeof(flow_entry_t))
    ft.entries = NULL
    thp_unmap(ft.emc, EMC_SLOTS * sizeof(emc_slot_t))
    ft.emc = NULL
    ft.capacity = 0
    ft.slots = 0


cdef uint64_t age_step(uint32_t slots, double timeout):
    """TSC between aging slices for a sweep period of timeout / 4 (1 ms to 10 s)."""
    sweep = min(10.0, max(0.001, timeout / 4))
    return max(1, <uint64_t>(sweep * rte_get_tsc_hz()) // max(1, slots // AGE_SLICE))


cdef locate_buckets(flow_table_t *ft, uint32_t slots, void *heap, size_t heap_len):
    """Find the rte_hash's bucket array for bucket_prefetch(). rte_hash keeps it in its
    private struct (rte_cuckoo_hash.h) right after bucket_bitmask, key_entry_size and
    key_store; the block is found by value, not by offset: the mask (from the slot
    count), the key entry size and the key store's address (from
    rte_hash_get_key_with_position) must all match, and the array must lie in the
    table's own heap. Anything else leaves bkt NULL (no early prefetch)."""
    cdef void *k1
    cdef const uint8_t *raw = <const uint8_t *>ft.h
    cdef uint32_t mask = 1, kes = KEY_SLOT, o
    cdef size_t store, bkt
    while mask < slots:
        mask <<= 1
    mask = mask // 8 - 1
    rte_hash_get_key_with_position(ft.h, 0, &k1)   # sets k1 even when empty
    store = <size_t>k1 - 8 - kes                    # slot 1's key; slot 0 is unused
    ft.bkt = NULL
    ft.keys = NULL
    for o in range(64, 512, 8):
        if ((<const uint32_t *>(raw + o))[0] == mask and
                (<const uint32_t *>(raw + o + 4))[0] == kes and
                (<const size_t *>(raw + o + 8))[0] == store):
            bkt = (<const size_t *>(raw + o + 16))[0]
            if (heap != NULL and bkt >= <size_t>heap and
                    bkt + (<size_t>(mask + 1) << 6) <= <size_t>heap + heap_len) or \
                    (heap == NULL and bkt % 64 == 0):
                ft.bkt = <const uint8_t *>bkt
                ft.bkt_mask = mask
                ft.keys = <const uint8_t *>store
            break
