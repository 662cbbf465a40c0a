# A loopback port (`dataplane run --loop PCAP`): a net_ring ethdev with one rte_ring per
# worker that is both that worker's RX and its TX queue, preloaded with a pcap's frames in mbufs. Receive is a
# pointer dequeue and transmit a pointer enqueue, so a run measures the forwarding core
# without a PMD's per-packet copy (net_pcap infinite_rx copies every frame it replays).
# Only the pcap walk and the fill live here; loop.pyx owns the rings.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_alloc, rte_pktmbuf_append, rte_pktmbuf_free
from includes.rte_mempool cimport rte_mempool
from includes.rte_ring cimport rte_ring, rte_ring_enqueue_burst, rte_ring_dequeue_burst
from includes.shim cimport dp_bswap32
from rss cimport rss_hash_frame, rss_queue, RSS_SYMMETRIC_KEY

cdef enum:
    PCAP_OK = 0
    PCAP_NOT_PCAP = 1        # bad magic or shorter than the file header
    PCAP_TRUNCATED = 2       # a record runs past the end of the file
    PCAP_NO_MBUF = 3         # the pool ran out while filling
    PCAP_TOO_LONG = 4        # a frame longer than an mbuf's data room
    PCAP_RING_FULL = 5

ctypedef struct pcap_walk_t:
    uint64_t frames          # records seen (the failing one's index on error)
    uint32_t longest
    uint32_t linktype
    bint swap                # file written in the other byte order


cdef inline uint32_t rd32(const uint8_t *p, bint swap) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return dp_bswap32(v) if swap else v


cdef inline int pcap_head(const uint8_t *b, size_t n, pcap_walk_t *w) noexcept nogil:
    """The classic pcap file header (either byte order, µs or ns stamps)."""
    cdef uint32_t magic
    w.frames = w.longest = 0
    if n < 24:
        return PCAP_NOT_PCAP
    magic = rd32(b, False)
    if magic == 0xA1B2C3D4U or magic == 0xA1B23C4DU:
        w.swap = False
    elif magic == 0xD4C3B2A1U or magic == 0x4D3CB2A1U:
        w.swap = True
    else:
        return PCAP_NOT_PCAP
    w.linktype = rd32(b + 20, w.swap) & 0xFFFF
    return PCAP_OK


cdef inline int pcap_walk(const uint8_t *b, size_t n, pcap_walk_t *w) noexcept nogil:
    """Count the records and the longest one without touching any mbuf."""
    cdef size_t off = 24
    cdef uint32_t cap
    cdef int r = pcap_head(b, n, w)
    if r:
        return r
    while off < n:
        if n - off < 16:
            return PCAP_TRUNCATED
        cap = rd32(b + off + 8, w.swap)
        if n - off - 16 < cap:
            return PCAP_TRUNCATED
        if cap > w.longest:
            w.longest = cap
        off += 16 + cap
        w.frames += 1
    return PCAP_OK


cdef inline uint16_t frame_queue(const uint8_t *f, uint32_t len, uint16_t nq) noexcept nogil:
    """The RX queue a NIC's RSS (symmetric Toeplitz key, default RETA) gives a frame."""
    if nq <= 1:
        return 0
    return rss_queue(rss_hash_frame(f, len, RSS_SYMMETRIC_KEY), nq)


cdef inline int pcap_queues(const uint8_t *b, size_t n, uint16_t nq, pcap_walk_t *w,
                            uint64_t *counts) noexcept nogil:
    """Frames per RSS queue of a pcap pcap_walk() accepted."""
    cdef size_t off = 24
    cdef uint32_t cap
    cdef int r0 = pcap_head(b, n, w)
    if r0:
        return r0
    while off < n:
        cap = rd32(b + off + 8, w.swap)
        counts[frame_queue(b + off + 16, cap, nq)] += 1
        off += 16 + cap
    return PCAP_OK


cdef inline int ring_fill(rte_ring **rings, uint16_t nq, rte_mempool *pool,
                          const uint8_t *b, size_t n, pcap_walk_t *w) noexcept nogil:
    """Every frame of a walked pcap into a fresh mbuf, enqueued in file order on the ring
    of its RSS queue (rings[frame_queue()]), as a NIC would spread them: one pass per
    queue, so each worker's mbufs are allocated together (interleaved, two workers'
    mbufs share pages and cache lines: 2 workers on loop rings ran at 0.76x one, grouped
    1.7-1.8x; bench/throughput.py --workers). On error w.frames is the failing frame's
    index; what was enqueued stays (the caller drains the rings)."""
    cdef uint16_t q
    cdef int r0
    cdef uint64_t total = 0
    for q in range(nq):
        r0 = ring_fill_queue(rings[q], q, nq, pool, b, n, w)
        total += w.frames
        if r0:
            return r0
    w.frames = total
    return PCAP_OK


cdef inline int ring_fill_queue(rte_ring *ring, uint16_t q, uint16_t nq, rte_mempool *pool,
                                const uint8_t *b, size_t n, pcap_walk_t *w) noexcept nogil:
    """The frames of queue q (all when nq is 1) onto ring; w.frames counts them."""
    cdef rte_mbuf *m
    cdef size_t off = 24
    cdef uint32_t cap
    cdef char *dst
    cdef int r0 = pcap_head(b, n, w)
    if r0:
        return r0
    while off < n:
        cap = rd32(b + off + 8, w.swap)
        if nq > 1 and frame_queue(b + off + 16, cap, nq) != q:
            off += 16 + cap
            continue
        m = rte_pktmbuf_alloc(pool)
        if m == NULL:
            return PCAP_NO_MBUF
        dst = rte_pktmbuf_append(m, <uint16_t>cap) if cap <= 0xFFFF else NULL
        if dst == NULL:
            rte_pktmbuf_free(m)
            return PCAP_TOO_LONG
        memcpy(dst, b + off + 16, cap)
        if rte_ring_enqueue_burst(ring, <void **>&m, 1, NULL) != 1:
            rte_pktmbuf_free(m)
            return PCAP_RING_FULL
        off += 16 + cap
        w.frames += 1
    return PCAP_OK


cdef inline uint64_t ring_drain(rte_ring *r) noexcept nogil:
    """Free every mbuf left in r; how many there were."""
    cdef rte_mbuf *m[32]
    cdef unsigned i, k
    cdef uint64_t total = 0
    while True:
        k = rte_ring_dequeue_burst(r, <void **>m, 32, NULL)
        if k == 0:
            return total
        for i in range(k):
            rte_pktmbuf_free(m[i])
        total += k
