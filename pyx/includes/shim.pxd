# Shims for DPDK 22.11 macros (see shim.h).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from includes.rte_mbuf cimport rte_mbuf

cdef extern from "shim.h" nogil:
    uint8_t *dp_mtod(rte_mbuf *m)
    int dp_errno()
    size_t dp_tx_buffer_size(uint16_t n)
    bint DP_DEBUG
    int dp_flag_get(int *p)
    void dp_flag_set(int *p, int v)
    uint16_t dp_bswap16(uint16_t x)
    uint32_t dp_bswap32(uint32_t x)
    void *dp_ptr_get(void **p)
    void dp_ptr_set(void **p, void *v)
    uint64_t dp_load64(uint64_t *p)
    void dp_store64(uint64_t *p, uint64_t v)
    void dp_cut(rte_mbuf *m, uint32_t end)
    void dp_pullup(rte_mbuf *m, uint32_t want)
