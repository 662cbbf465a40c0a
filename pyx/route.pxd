# Route stage: longest-prefix match per VRF with DPDK rte_lpm / rte_lpm6.
# rte_lpm has no depth 0, so each VRF keeps its default route beside the tables.
from libc.stdint cimport uint8_t, uint32_t
from includes.rte_lpm cimport rte_lpm, rte_lpm_lookup
from includes.rte_lpm6 cimport rte_lpm6, rte_lpm6_lookup
from parse cimport pkt_t, rd32, D_NO_ROUTE

from consts cimport *

ctypedef struct vrf_t:
    rte_lpm *lpm4              # NULL when the VRF has no IPv4 route longer than /0
                               # (a tbl24 costs 64 MiB)
    rte_lpm6 *lpm6             # NULL likewise
    uint32_t default4          # next-hop id of 0.0.0.0/0, or NH_NONE
    uint32_t default6

cdef inline int route(const vrf_t *v, const pkt_t *p, uint32_t *nh) noexcept nogil:
    cdef const uint8_t *ip = p.data + p.l2_len
    if p.family == 4:
        if v.lpm4 != NULL and rte_lpm_lookup(v.lpm4, rd32(ip + 16), nh) == 0:
            return 0
        nh[0] = v.default4
    else:
        if v.lpm6 != NULL and rte_lpm6_lookup(v.lpm6, ip + 24, nh) == 0:
            return 0
        nh[0] = v.default6
    return D_NO_ROUTE if nh[0] == NH_NONE else 0
