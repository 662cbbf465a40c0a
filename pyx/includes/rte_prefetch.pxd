# DPDK 22.11 LTS: rte_prefetch.h
cdef extern from "rte_prefetch.h" nogil:
    void rte_prefetch0(const void *p)
