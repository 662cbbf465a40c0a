# DPDK 22.11 LTS: rte_ip.h (only the one's-complement sum)
cdef extern from "rte_ip.h" nogil:
    unsigned short rte_raw_cksum(const void *buf, size_t len)
