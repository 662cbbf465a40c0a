# DPDK 22.11 LTS: rte_mempool.h (only what is used)
cdef extern from "rte_mempool.h" nogil:
    struct rte_mempool:
        pass
    unsigned rte_mempool_avail_count(const rte_mempool *mp)
    unsigned rte_mempool_in_use_count(const rte_mempool *mp)
    void rte_mempool_free(rte_mempool *mp)
