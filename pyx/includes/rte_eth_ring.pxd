# DPDK 22.11 LTS: rte_eth_ring.h (net_ring PMD: an ethdev over caller-owned rings)
from includes.rte_ring cimport rte_ring

cdef extern from "rte_eth_ring.h" nogil:
    int rte_eth_from_ring(rte_ring *r)
