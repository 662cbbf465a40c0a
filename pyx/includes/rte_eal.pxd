# DPDK 22.11 LTS: rte_eal.h, rte_launch.h, rte_lcore.h, rte_errno.h, rte_cycles.h
from libc.stdint cimport uint64_t

cdef extern from "rte_eal.h" nogil:
    int rte_eal_init(int argc, char **argv)
    int rte_eal_cleanup()

cdef extern from "rte_errno.h" nogil:
    const char *rte_strerror(int errnum)

cdef extern from "rte_launch.h" nogil:
    ctypedef int (*lcore_function_t)(void *) noexcept nogil
    int rte_eal_remote_launch(lcore_function_t f, void *arg, unsigned worker_id)
    int rte_eal_wait_lcore(unsigned worker_id)

cdef extern from "rte_lcore.h" nogil:
    unsigned rte_lcore_id()
    unsigned rte_get_main_lcore()
    unsigned rte_lcore_count()
    unsigned rte_get_next_lcore(unsigned i, int skip_main, int wrap)
    int rte_socket_id()
    const unsigned RTE_MAX_LCORE

cdef extern from "rte_cycles.h" nogil:
    uint64_t rte_rdtsc()
    uint64_t rte_get_tsc_hz()

cdef extern from "rte_memory.h" nogil:
    const int SOCKET_ID_ANY
