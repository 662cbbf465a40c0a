# DPDK 22.11 LTS: rte_lpm6.h
from libc.stdint cimport uint8_t, uint32_t

cdef extern from "rte_lpm6.h" nogil:
    struct rte_lpm6:
        pass
    struct rte_lpm6_config:
        uint32_t max_rules
        uint32_t number_tbl8s
        int flags
    rte_lpm6 *rte_lpm6_create(const char *name, int socket_id, const rte_lpm6_config *config)
    void rte_lpm6_free(rte_lpm6 *lpm)
    int rte_lpm6_add(rte_lpm6 *lpm, const uint8_t *ip, uint8_t depth, uint32_t next_hop)
    int rte_lpm6_lookup(const rte_lpm6 *lpm, const uint8_t *ip, uint32_t *next_hop)
