# DPDK 22.11 LTS: rte_launch.h
cdef extern from "rte_launch.h" nogil:
    ctypedef int (*lcore_function_t)(void *) noexcept nogil
    int rte_eal_remote_launch(lcore_function_t f, void *arg, unsigned worker_id)
    int rte_eal_wait_lcore(unsigned worker_id)
