# ECMP stage: pick a group member for a packet.
# For now: the group's first member with weight > 0 (the hash contract comes next).
from libc.stdint cimport uint32_t
from parse cimport pkt_t

ctypedef struct group_t:
    uint32_t n_buckets
    uint32_t *buckets          # next-hop index per bucket

cdef inline uint32_t select_member(const group_t *g, const pkt_t *p) noexcept nogil:
    return g.buckets[0]
