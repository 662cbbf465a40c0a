/* Tiny C shims for DPDK 22.11 macros that Cython cannot call directly
 * (macros taking a type, per-lcore variables). */
#ifndef DP_SHIM_H
#define DP_SHIM_H
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

static inline uint8_t *dp_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, uint8_t *); }
static inline int dp_errno(void) { return rte_errno; }
static inline size_t dp_tx_buffer_size(uint16_t n) { return RTE_ETH_TX_BUFFER_SIZE(n); }
#ifndef DP_DEBUG
#define DP_DEBUG 0
#endif

/* DPDK's rte_cpu_to_be_16 is inline asm on x86, which the compiler cannot fold. */
static inline uint16_t dp_bswap16(uint16_t x) { return __builtin_bswap16(x); }
static inline uint32_t dp_bswap32(uint32_t x) { return __builtin_bswap32(x); }

/* The stop flag is written by the main lcore and polled by workers. */
static inline int dp_flag_get(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dp_flag_set(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* The published table version (docs/workers.md): the main lcore stores a new pointer,
 * workers load it once per loop iteration. */
static inline void *dp_ptr_get(void **p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dp_ptr_set(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* A resolved next hop's MAC word (pyx/neigh.pxd): whichever worker learns it stores it,
 * every worker loads it per packet. */
static inline uint64_t dp_load64(uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dp_store64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* Cut a packet to its first `end` bytes (0 or >= pkt_len: nothing), whatever segment
 * byte `end` falls in: the segment holding it is shortened and the ones after it freed
 * (rte_pktmbuf_trim only trims within the last segment). */
static inline void dp_cut(struct rte_mbuf *m, uint32_t end)
{
    struct rte_mbuf *s = m, *rest;
    uint32_t off = 0;
    uint16_t nseg = 1;
    if (end == 0 || end >= m->pkt_len)
        return;
    while (off + s->data_len < end) {
        off += s->data_len;
        s = s->next;
        nseg++;
    }
    s->data_len = (uint16_t)(end - off);
    rest = s->next;
    s->next = NULL;
    m->nb_segs = nseg;
    m->pkt_len = end;
    if (rest != NULL)
        rte_pktmbuf_free(rest);
}
/* BSD's m_pullup: make the first `want` bytes of a chained packet (at most its length
 * and what the first segment can hold) contiguous in the first segment, so its headers
 * can be read in place. A PMD's first segment holds a whole data room (2 KB) and makes
 * this a no-op; segments it empties are freed. */
static inline void dp_pullup(struct rte_mbuf *m, uint32_t want)
{
    struct rte_mbuf *s;
    uint32_t need, take, room;
    if (m->nb_segs == 1 || m->data_len >= want)
        return;
    if (want > m->pkt_len)
        want = m->pkt_len;
    room = rte_pktmbuf_tailroom(m);
    need = want > m->data_len ? want - m->data_len : 0;
    if (need > room)
        need = room;
    while (need && m->next != NULL) {
        s = m->next;
        take = s->data_len < need ? s->data_len : need;
        memcpy(rte_pktmbuf_mtod_offset(m, char *, m->data_len),
               rte_pktmbuf_mtod(s, char *), take);
        m->data_len += take;
        s->data_off += take;
        s->data_len -= take;
        need -= take;
        if (s->data_len == 0) {
            m->next = s->next;
            m->nb_segs--;
            s->next = NULL;
            rte_pktmbuf_free_seg(s);
        }
    }
}
#endif  /* DP_SHIM_H */
