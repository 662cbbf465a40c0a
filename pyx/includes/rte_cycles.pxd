# DPDK 22.11 LTS: rte_cycles.h
from libc.stdint cimport uint64_t

cdef extern from "rte_cycles.h" nogil:
    uint64_t rte_rdtsc()
    uint64_t rte_get_tsc_hz()
