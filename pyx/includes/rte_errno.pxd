# DPDK 22.11 LTS: rte_errno.h (rte_errno itself is a per-lcore macro: see shim.h)
cdef extern from "rte_errno.h" nogil:
    const char *rte_strerror(int errnum)
