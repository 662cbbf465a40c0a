# DPDK 22.11 LTS: rte_memory.h
from libc.stdint cimport uint64_t

cdef extern from "rte_memory.h" nogil:
    const int SOCKET_ID_ANY
    ctypedef uint64_t rte_iova_t
