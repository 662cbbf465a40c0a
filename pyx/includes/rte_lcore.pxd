# DPDK 22.11 LTS: rte_lcore.h
cdef extern from "rte_lcore.h" nogil:
    unsigned rte_lcore_id()
    unsigned rte_get_main_lcore()
    unsigned rte_lcore_count()
    unsigned rte_get_next_lcore(unsigned i, int skip_main, int wrap)
    int rte_socket_id()
    const unsigned RTE_MAX_LCORE
