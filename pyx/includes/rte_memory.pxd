# DPDK 22.11 LTS: rte_memory.h
cdef extern from "rte_memory.h" nogil:
    const int SOCKET_ID_ANY
