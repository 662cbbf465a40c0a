# DPDK 22.11 LTS: rte_eth_ring.h (net_ring PMD: an ethdev over caller-owned rings)
from includes.rte_ring cimport rte_ring

cdef extern from "rte_eth_ring.h" nogil:
    int rte_eth_from_ring(rte_ring *r)
    int rte_eth_from_rings(const char *name, rte_ring * const *rx_queues,
                           unsigned nb_rx_queues, rte_ring * const *tx_queues,
                           unsigned nb_tx_queues, unsigned numa_node)
