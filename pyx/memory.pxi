# Process resources (included by loop.pyx): EAL, the mbuf pool, and external malloc heaps
# on transparent huge pages for DPDK objects that --no-huge would put on 4 KiB pages.

cdef bint _eal_ready = False
cdef rte_mempool *_pool = NULL
cdef void *_pool_mem = NULL           # its huge-page heap with --no-huge
cdef size_t _pool_len = 0
cdef unsigned _table_seq = 0          # rte_lpm names must be unique per process


def eal_init(list args):
    """Initialize EAL once per process with argv `args` (args[0] is the program name)."""
    global _eal_ready
    if _eal_ready:
        fail("rte_eal_init: EAL is already initialized in this process", EALREADY)
    cdef list enc = [a.encode() for a in args]
    cdef int argc = len(enc), i
    cdef char **argv = <char **>check_alloc(malloc((argc + 1) * sizeof(char *)),
                                            "rte_eal_init argv")
    for i in range(argc):
        argv[i] = enc[i]
    argv[argc] = NULL
    try:
        check(rte_eal_init(argc, argv), "rte_eal_init(" + " ".join(args[1:]) + ")", True)
    finally:
        free(argv)                    # EAL copies what it keeps
    _eal_ready = True


def lock_memory():
    """Lock the process's pages, now and future, as testpmd does by default: with
    --no-huge EAL memory (and the flow table) would otherwise be faulted in, page by
    page, by the worker while it sets up flows. 0, or the errno of mlockall()."""
    if mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
        return 0
    return errno


def eal_ready():
    return _eal_ready


cdef int thp_heap(bytes name, size_t want, str what, void **mem, size_t *size,
                  size_t extra=0) except -1:
    """An external malloc heap `name` over at least `want` bytes of memory on transparent
    huge pages (thp.pxd), for DPDK objects that --no-huge would put on 4 KiB pages; its
    socket id. Memory the machine does not have (`extra`: what the caller maps besides)
    is a clear error, not the OOM killer."""
    cdef size_t n = thp_size(want)
    avail = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) << 10
    if avail and n + extra > avail:
        fail(f"{what}: {(n + extra) >> 20} MiB on huge pages, {avail >> 20} MiB available",
             ENOMEM)
    mem[0] = thp_map(n)
    if mem[0] == NULL:
        from dataplane.errors import DataplaneError
        raise DataplaneError(f"{what}: mmap of {n >> 20} MiB", errno, "mmap failed")
    size[0] = n
    check(rte_malloc_heap_create(name), f"rte_malloc_heap_create({name.decode()})", True)
    check(rte_malloc_heap_memory_add(name, mem[0], n, NULL, n // HUGE_PAGE, HUGE_PAGE),
          f"rte_malloc_heap_memory_add({name.decode()}, {n >> 20} MiB)", True)
    return rte_malloc_heap_get_socket(name)


def pool_create(unsigned n=8192, unsigned data_room=RTE_MBUF_DEFAULT_BUF_SIZE,
                unsigned cache=256):
    """The process's mbuf pool (created once; later calls return its size)."""
    global _pool, _pool_mem, _pool_len
    cdef int socket = rte_socket_id()
    if _pool == NULL:
        if not rte_eal_has_hugepages():
            # --no-huge: the pool on transparent huge pages (a net_pcap source keeps the
            # whole pcap in mbufs; on 4 KiB pages every few packets missed the TLB)
            socket = thp_heap(b"dp_mbufs", <size_t>n * (data_room + 384) + 8 * n + (16 << 20),
                              f"mbuf pool dp_mbufs (n={n})", &_pool_mem, &_pool_len)
        _pool = <rte_mempool *>check_ptr(
            rte_pktmbuf_pool_create(b"dp_mbufs", n, cache, 0, data_room, socket),
            f"rte_pktmbuf_pool_create(dp_mbufs, n={n})")
    return rte_mempool_in_use_count(_pool) + rte_mempool_avail_count(_pool)


def pool_in_use():
    """mbufs currently out of the pool (leak checks: must return to its start value)."""
    if _pool == NULL:
        return 0
    return rte_mempool_in_use_count(_pool)


cdef uint16_t fill_burst(rte_mbuf **pkts, list frames, uint16_t in_port,
                         uint32_t seg=0) except? 0xffff:
    """Fresh mbufs holding `frames` (at most a burst), as if received on in_port; on
    failure none is kept. A frame longer than an mbuf's room is chained over several
    segments, as a PMD receives a jumbo frame; seg > 0: at most seg bytes per segment."""
    cdef uint16_t n = 0, j
    cdef uint32_t off, size, room
    cdef char *dst
    cdef bytes f
    cdef rte_mbuf *t
    try:
        for f in frames:
            pkts[n] = rte_pktmbuf_alloc(_pool)
            if pkts[n] == NULL:
                fail("mbuf pool exhausted (tests: Core.process)", ENOBUFS)
            n += 1
            pkts[n - 1].port = in_port
            off = 0
            t = pkts[n - 1]
            while True:
                room = rte_pktmbuf_tailroom(t)
                size = len(f) - off
                if seg and size > seg:
                    size = seg
                if size > room:
                    size = room
                dst = rte_pktmbuf_append(t, <uint16_t>size)
                memcpy(dst, <const char *>f + off, size)
                if t != pkts[n - 1] and rte_pktmbuf_chain(pkts[n - 1], t) != 0:
                    rte_pktmbuf_free(t)
                    raise ValueError(f"frame of {len(f)} bytes: too many segments")
                off += size
                if off >= len(f):
                    break
                t = rte_pktmbuf_alloc(_pool)
                if t == NULL:
                    fail("mbuf pool exhausted (tests: Core.process)", ENOBUFS)
    except BaseException:
        for j in range(n):
            rte_pktmbuf_free(pkts[j])
        raise
    return n
