# Rewrite stage: strip VLAN tags, paint the next hop's precomputed MACs, decrement TTL /
# hop limit (IPv4 checksum updated incrementally per RFC 1624 eqn. 3).
from libc.stdint cimport uint8_t, int8_t, uint16_t, uint32_t
from libc.string cimport memcpy
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_adj
from includes.shim cimport dp_mtod
from parse cimport pkt_t

from consts cimport *

ctypedef struct nexthop_t:
    uint8_t eth[12]            # destination MAC, then the egress port's MAC
    uint16_t port              # egress port index
    uint8_t n_push             # transport entries (ELI/EL included) pushed over IP/frames
    int8_t el_at               # index of the EL in push[], -1: no entropy label
    uint8_t el_unreadable      # 1: the EL could not be placed within erld
    uint8_t tunnel             # TUN_*
    uint8_t olen               # outer IP + UDP/GRE bytes of a tunnel
    uint8_t v6                 # the tunnel is IPv6
    uint8_t plain              # 1: no labels, no tunnel, a known MAC: rewrite and send
    uint32_t push[MAX_PUSH]    # labels in network order; TC, S, TTL zero (ORed per packet)
    uint32_t ttl_on[MAX_PUSH]  # 0xffffffff where the entry takes the TTL (not ELI/EL)
    uint32_t neigh             # its neighbour (pyx/neigh.pxd) when the MAC is resolved
                               # by ARP/ND, else NEIGH_NONE
    uint32_t osum              # IPv4 tunnel: header word sum with TOS, length zero
    uint8_t outer[64]          # tunnel: Ethernet + outer IP + UDP/GRE template

cdef inline void ttl_dec4(uint8_t *ip) noexcept nogil:
    # RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with m the (TTL, proto) word and
    # m' = m - 0x100: ~m + m' is the constant 0xfeff for any TTL >= 1
    cdef uint32_t s = ((~((<uint32_t>ip[10] << 8) | ip[11])) & 0xffff) + 0xfeff
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
        if not p.popped:           # a popped packet's TTL is already W (docs/mpls.md §4)
            ttl_dec4(d + 14)
    else:
        d[12] = 0x86
        d[13] = 0xdd
        if not p.popped:
            d[14 + 7] -= 1
