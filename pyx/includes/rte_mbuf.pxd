# DPDK 22.11 LTS: rte_mbuf.h (only the fields used)
from libc.stdint cimport uint16_t, uint32_t
from includes.rte_mempool cimport rte_mempool

cdef extern from "rte_mbuf.h" nogil:
    struct rte_mbuf:
        uint16_t data_off
        uint16_t data_len
        uint32_t pkt_len
        uint16_t nb_segs
        uint16_t port
        rte_mempool *pool
        rte_mbuf *next
    const uint16_t RTE_MBUF_DEFAULT_BUF_SIZE
    rte_mempool *rte_pktmbuf_pool_create(const char *name, unsigned n, unsigned cache_size,
                                         uint16_t priv_size, uint16_t data_room_size,
                                         int socket_id)
    rte_mbuf *rte_pktmbuf_alloc(rte_mempool *mp)
    void rte_pktmbuf_free(rte_mbuf *m)
    void rte_pktmbuf_free_bulk(rte_mbuf **mbufs, unsigned count)
    char *rte_pktmbuf_append(rte_mbuf *m, uint16_t len)
    char *rte_pktmbuf_adj(rte_mbuf *m, uint16_t len)
    char *rte_pktmbuf_prepend(rte_mbuf *m, uint16_t len)
    int rte_pktmbuf_trim(rte_mbuf *m, uint16_t len)
    uint16_t rte_pktmbuf_headroom(const rte_mbuf *m)
    uint16_t rte_pktmbuf_tailroom(const rte_mbuf *m)
    int rte_pktmbuf_chain(rte_mbuf *head, rte_mbuf *tail)
    rte_mbuf *rte_pktmbuf_copy(const rte_mbuf *m, rte_mempool *mp, uint32_t offset,
                               uint32_t length)
