# Loopback ports for `run --loop` (included by loop.pyx): net_ring ethdevs over rings this
# module owns, one ring per worker, preloaded with a pcap's frames (pyx/loopport.pxd).

cdef rte_ring *_loop_rings[MAX_PORTS * MAX_WORKERS]
cdef int _nloop = 0

PCAP_ERRORS = {PCAP_NOT_PCAP: "not a classic pcap file (pcapng is not supported here)",
               PCAP_TRUNCATED: "truncated: a record runs past the end of the file",
               PCAP_NO_MBUF: "mbuf pool exhausted", PCAP_TOO_LONG: "frame longer than an mbuf",
               PCAP_RING_FULL: "ring full"}


def pcap_frames(bytes data):
    """(frames, longest frame, link type) of a classic pcap file held in `data`; a
    malformed file raises ValueError."""
    cdef pcap_walk_t w
    cdef const uint8_t *b = <const uint8_t *><const char *>data
    cdef size_t n = len(data)
    cdef int r
    with nogil:
        r = pcap_walk(b, n, &w)
    if r:
        raise ValueError(f"{PCAP_ERRORS[r]} (after {w.frames} frames)")
    return w.frames, w.longest, w.linktype


def loop_port(str name, bytes data, int workers=1):
    """A net_ring port with one rte_ring per worker, each both that worker's RX and TX
    queue, filled with the pcap `data`'s frames (in mbufs of the pool) that RSS gives
    that worker: what a worker transmits on it, it receives again. Its DPDK device name
    (for Core.bind_port)."""
    global _nloop
    cdef pcap_walk_t w
    cdef const uint8_t *b = <const uint8_t *><const char *>data
    cdef size_t n = len(data)
    cdef unsigned size
    cdef int r
    cdef uint64_t counts[MAX_WORKERS]
    cdef rte_ring *rings[MAX_WORKERS]
    cdef char dev[64]
    if _pool == NULL:
        raise RuntimeError("pool_create() must run before loop_port()")
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"1 to {MAX_WORKERS} workers")
    if _nloop + workers > MAX_PORTS * MAX_WORKERS:
        raise ValueError(f"at most {MAX_PORTS} loopback ports")
    pcap_frames(data)
    memset(counts, 0, sizeof(counts))
    with nogil:
        pcap_queues(b, n, workers, &w, counts)
    for q in range(workers):
        size = 2
        while size <= counts[q]:       # capacity is size - 1: every mbuf fits back in
            size <<= 1
        rings[q] = <rte_ring *>check_ptr(
            rte_ring_create(f"{name}_q{q}".encode(), size, SOCKET_ID_ANY,
                            RING_F_SP_ENQ | RING_F_SC_DEQ),
            f"rte_ring_create({name}_q{q}, {size})")
        _loop_rings[_nloop] = rings[q]  # loop_ports_free() drains and frees it
        _nloop += 1
    w.frames = 0
    with nogil:
        r = ring_fill(rings, workers, _pool, b, n, &w)
    if r:
        raise ValueError(f"{name}: frame {w.frames}: {PCAP_ERRORS[r]}")
    pid = check(rte_eth_from_rings(name.encode(), rings, workers, rings, workers,
                                   rte_socket_id()), f"rte_eth_from_rings({name})", True)
    check(rte_eth_dev_get_name_by_port(pid, dev), "rte_eth_dev_get_name_by_port")
    return dev.decode()


def loop_ports_free():
    """Drain and free the loopback rings (worker stopped, ports closed: net_ring leaves
    caller-owned rings alone); the mbufs they still held."""
    global _nloop
    cdef uint64_t total = 0
    while _nloop:
        _nloop -= 1
        total += ring_drain(_loop_rings[_nloop])
        rte_ring_free(_loop_rings[_nloop])
    return total
