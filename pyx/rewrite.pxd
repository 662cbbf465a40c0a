# Rewrite stage: strip VLAN tags, paint the next hop's precomputed MACs, decrement TTL /
# hop limit (IPv4 checksum updated incrementally per RFC 1624 eqn. 3).
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_adj
from includes.shim cimport dp_mtod
from parse cimport pkt_t

ctypedef struct nexthop_t:
    uint8_t eth[12]            # destination MAC, then the egress port's MAC
    uint16_t port              # egress port index

cdef inline void ttl_dec4(uint8_t *ip) noexcept nogil:
    # m = (TTL, proto) 16-bit word; HC' = ~(~HC + ~m + m')
    cdef uint32_t m = (<uint32_t>ip[8] << 8) | ip[9]
    cdef uint32_t m2 = m - 0x100
    cdef uint32_t s = ((~((<uint32_t>ip[10] << 8) | ip[11])) & 0xffff) + ((~m) & 0xffff) + m2
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    s = (~s) & 0xffff
    ip[8] -= 1
    ip[10] = <uint8_t>(s >> 8)
    ip[11] = <uint8_t>s

cdef inline void rewrite(rte_mbuf *m, const pkt_t *p, const nexthop_t *nh) noexcept nogil:
    cdef uint8_t *d
    if p.l2_len > 14:
        rte_pktmbuf_adj(m, p.l2_len - 14)
    d = dp_mtod(m)
    memcpy(d, nh.eth, 12)
    if p.family == 4:
        d[12] = 0x08
        d[13] = 0x00
        ttl_dec4(d + 14)
    else:
        d[12] = 0x86
        d[13] = 0xdd
        d[14 + 7] -= 1
