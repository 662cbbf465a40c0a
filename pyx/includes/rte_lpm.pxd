# DPDK 22.11 LTS: rte_lpm.h
from libc.stdint cimport uint8_t, uint32_t

cdef extern from "rte_lpm.h" nogil:
    # the tables are public (rte_lpm_lookup is inline); an entry is a 32-bit word, on
    # little-endian: next hop (or tbl8 group) bits 0-23, valid bit 24, valid_group
    # bit 25 (tbl24: the entry points to a tbl8 group), depth bits 26-31
    struct rte_lpm:
        uint32_t tbl24[1]       # RTE_LPM_TBL24_NUM_ENTRIES (2^24) entries in C
        uint32_t *tbl8          # number_tbl8s groups of RTE_LPM_TBL8_GROUP_NUM_ENTRIES
    enum:
        RTE_LPM_TBL24_NUM_ENTRIES
        RTE_LPM_TBL8_GROUP_NUM_ENTRIES
        RTE_LPM_LOOKUP_SUCCESS          # valid
        RTE_LPM_VALID_EXT_ENTRY_BITMASK  # valid | valid_group
    struct rte_lpm_config:
        uint32_t max_rules
        uint32_t number_tbl8s
        int flags
    rte_lpm *rte_lpm_create(const char *name, int socket_id, const rte_lpm_config *config)
    void rte_lpm_free(rte_lpm *lpm)
    int rte_lpm_add(rte_lpm *lpm, uint32_t ip, uint8_t depth, uint32_t next_hop)
    int rte_lpm_lookup(const rte_lpm *lpm, uint32_t ip, uint32_t *next_hop)
