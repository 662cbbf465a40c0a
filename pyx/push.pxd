# Push and encap stage (docs/mpls.md §5-§7, §10): label stacks painted from each next
# hop's precomputed entries (one copy, ELI/EL placed at configuration time), the
# MPLS-over-UDP/GRE outer header from its template, and an IP packet made labelled.
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_adj, rte_pktmbuf_prepend, rte_pktmbuf_trim
from includes.rte_ip cimport rte_raw_cksum
from includes.shim cimport dp_bswap16, dp_cut, dp_mtod
from consts cimport *
from parse cimport pkt_t
from rewrite cimport nexthop_t, ttl_dec4
from mpls_input cimport mpls_t, be32, PIPE_TTL, OUTER_TTL, MPLS_UDP_PORT
from mpls_hash cimport entropy_label
from ctx cimport ctx_t, port_t, drop

cdef inline void write_push(mpls_t *mp, uint8_t *dst, const nexthop_t *nh, uint32_t tc,
                            uint32_t ttl, uint32_t h, bint bottom) noexcept nogil:
    """The next hop's precomputed transport entries (ELI/EL placed at config time), one
    copy: TC and TTL ORed in (ELI and EL keep TTL 0), the EL value, S on the last when
    nothing follows. Counts el_not_readable."""
    cdef uint32_t n = nh.n_push, i, w, tcw = be32(tc << 9), ttlw = be32(ttl)
    cdef int el = nh.el_at
    for i in range(n):             # word by word: a variable-length memcpy is rep movs
        w = nh.push[i] | tcw | (ttlw & nh.ttl_on[i])
        memcpy(dst + 4 * i, &w, 4)
    if el >= 0:
        w = nh.push[el] | tcw | be32(entropy_label(h) << 12)
        memcpy(dst + 4 * el, &w, 4)
        mp.el_not_readable += nh.el_unreadable
    if bottom and n:
        dst[4 * n - 2] |= 1        # S: the low bit of an entry's third byte

cdef inline void write_outer(rte_mbuf *m, uint8_t *d, const nexthop_t *nh, uint32_t rlen,
                             uint32_t tc, uint32_t h) noexcept nogil:
    """§10.1: Ethernet, outer IPv4/IPv6 and UDP or GRE (a per-next-hop template) in
    front of the rlen-byte label region that already sits at d + 14 + nh.olen (d is m's
    data; the region may go on in m's later segments)."""
    cdef uint8_t *ip = d + 14
    cdef uint8_t *l4
    cdef uint32_t inner = rlen + (8 if nh.tunnel == TUN_UDP else 4), s
    # fixed-size copies (a variable length would be rep movs)
    if nh.v6:
        memcpy(d, nh.outer, 54)
    else:
        memcpy(d, nh.outer, 34)
    if nh.tunnel == TUN_UDP:
        memcpy(d + nh.olen + 6, nh.outer + nh.olen + 6, 8)
    else:
        memcpy(d + nh.olen + 10, nh.outer + nh.olen + 10, 4)
    if not nh.v6:
        ip[1] = <uint8_t>(tc << 5)
        s = 20 + inner
        ip[2] = <uint8_t>(s >> 8); ip[3] = <uint8_t>s
        s += nh.osum + (tc << 5)      # the template's words, plus TOS and length
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        ip[10] = <uint8_t>(~s >> 8); ip[11] = <uint8_t>~s
        l4 = ip + 20
    else:
        s = (6U << 28) | ((tc << 5) << 20) | (h & 0xfffff)
        ip[0] = <uint8_t>(s >> 24); ip[1] = <uint8_t>(s >> 16)
        ip[2] = <uint8_t>(s >> 8); ip[3] = <uint8_t>s
        ip[4] = <uint8_t>(inner >> 8); ip[5] = <uint8_t>inner
        l4 = ip + 40
    if nh.tunnel == TUN_GRE:
        return
    s = 49152 + h % 16384
    l4[0] = <uint8_t>(s >> 8); l4[1] = <uint8_t>s
    l4[4] = <uint8_t>(inner >> 8); l4[5] = <uint8_t>inner
    if nh.v6:                         # over IPv6: computed (RFC 8200 §8.1); IPv4: 0
        udp6_cksum(m, ip, l4, inner)


cdef inline uint16_t chain_cksum(rte_mbuf *m, uint32_t off, uint32_t n) noexcept nogil:
    """One's-complement sum (folded, native order) of `n` bytes from `off` over the
    segment chain. Not rte_raw_cksum_mbuf: in DPDK 22.11 it truncates a segment's
    unfolded sum to 16 bits before swapping one that starts at an odd offset, losing
    carries (found by fuzz/harness.py). Each piece is folded first, then swapped."""
    cdef uint32_t s = 0, done = 0, k
    cdef uint16_t t
    while m != NULL and off >= m.data_len:
        off -= m.data_len
        m = m.next
    while m != NULL and done < n:
        k = m.data_len - off
        if k > n - done:
            k = n - done
        t = rte_raw_cksum(dp_mtod(m) + off, k)
        if done & 1:
            t = dp_bswap16(t)
        s += t
        done += k
        off = 0
        m = m.next
    s = (s & 0xffff) + (s >> 16)
    return <uint16_t>((s & 0xffff) + (s >> 16))


cdef inline void udp6_cksum(rte_mbuf *m, const uint8_t *ip, uint8_t *l4,
                            uint32_t n) noexcept nogil:
    """Write the UDP checksum of an outer IPv6 header at 14 (RFC 8200 §8.1): the pseudo
    header from `ip`, then `n` bytes of UDP from `l4` over the whole chain."""
    cdef uint8_t ph[40]
    cdef uint32_t s
    cdef uint16_t body, c
    memcpy(ph, ip + 8, 32)
    ph[32] = 0; ph[33] = 0
    ph[34] = <uint8_t>(n >> 8); ph[35] = <uint8_t>n
    ph[36] = 0; ph[37] = 0; ph[38] = 0; ph[39] = 17
    if m.nb_segs == 1:
        body = rte_raw_cksum(l4, n)
    else:
        body = chain_cksum(m, 14 + 40, n)
    s = <uint32_t>rte_raw_cksum(ph, 40) + body
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    c = <uint16_t>~s
    if c == 0:
        c = 0xffff
    memcpy(l4 + 6, &c, 2)             # native words summed: stored as they are


cdef inline uint8_t *reframe(rte_mbuf *m, uint32_t keep, uint32_t hdr) noexcept nogil:
    """Drop the first `keep` bytes and make room for `hdr` new ones (NULL: no room)."""
    if keep >= hdr:
        return <uint8_t *>rte_pktmbuf_adj(m, <uint16_t>(keep - hdr))
    return <uint8_t *>rte_pktmbuf_prepend(m, <uint16_t>(hdr - keep))


cdef inline void cut_end(rte_mbuf *m, uint32_t end) noexcept nogil:
    """Drop what follows byte `end` (an overlay's Ethernet padding, an IP packet's
    padding before it goes into a tunnel), in whichever segment it lies."""
    if end and end < m.pkt_len:
        dp_cut(m, end)


cdef inline bint finish_labelled(ctx_t *c, port_t *pt, rte_mbuf *m, uint8_t *d,
                                 const nexthop_t *nh, uint32_t tc, uint32_t h) noexcept nogil:
    """Ethernet (EtherType 0x8847) or the overlay in front of a label region that is
    already written at d + 14 + nh.olen; d NULL: no headroom (never with 128 bytes)."""
    if d == NULL:
        drop(pt, m, D_UNSUPPORTED)
        return 0
    if nh.tunnel != TUN_NONE:
        write_outer(m, d, nh, m.pkt_len - 14 - nh.olen, tc, h)
    else:
        memcpy(d, nh.eth, 12)
        d[12] = 0x88
        d[13] = 0x47
    return 1


cdef inline bint push_ip(ctx_t *c, port_t *pt, rte_mbuf *m, const pkt_t *p,
                         const nexthop_t *nh, uint32_t h) noexcept nogil:
    """An IP packet via a labelled or tunnel next hop (docs/mpls.md §7, §10): the IP hop
    (TTL, unless popped), then the labels (uniform: the new IP TTL; pipe: 255; TC = IP
    precedence) and the overlay."""
    cdef uint32_t hdr = 14 + nh.olen + 4 * nh.n_push, ttl, tc
    cdef uint8_t *d
    cdef uint8_t *ip
    cut_end(m, p.l2_len + p.ip_len if nh.tunnel != TUN_NONE else p.end)
    d = reframe(m, p.l2_len, hdr)
    if d == NULL:
        return finish_labelled(c, pt, m, d, nh, 0, h)
    ip = d + hdr
    if p.family == 4:
        if not p.popped:
            ttl_dec4(ip)
        ttl = ip[8]
        tc = ip[1] >> 5
    else:
        if not p.popped:
            ip[7] -= 1
        ttl = ip[7]
        tc = (ip[0] & 15) >> 1
    write_push(&c.mpls, d + 14 + nh.olen, nh, tc, PIPE_TTL if c.mpls.pipe else ttl, h, 1)
    return finish_labelled(c, pt, m, d, nh, tc, h)
