# DPDK 22.11 LTS: rte_ip.h (only the one's-complement sums)
from libc.stdint cimport uint16_t, uint32_t
from includes.rte_mbuf cimport rte_mbuf
cdef extern from "rte_ip.h" nogil:
    unsigned short rte_raw_cksum(const void *buf, size_t len)
    int rte_raw_cksum_mbuf(const rte_mbuf *m, uint32_t off, uint32_t len, uint16_t *cksum)
