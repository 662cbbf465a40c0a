# Mirror stage (SPEC §9, docs/mirroring.md): a copy of 1 in N packets a port receives
# (as received, before any stage touches them) or sends (as handed to its TX), made in
# a new mbuf of the packet's own pool; raw, or behind Ethernet/IP/UDP and the metadata
# header toward an analyzer. A burst's copies are staged and sent after its packets,
# through a TX buffer of the mirrored port's own: a copy that cannot be made or that the
# PMD refuses is counted mirror_dropped on the mirrored port, and never takes an
# original's place in a TX buffer or changes the original.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy
from includes.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_copy, rte_pktmbuf_prepend,
                                rte_pktmbuf_free, rte_pktmbuf_alloc)
from includes.rte_ethdev cimport rte_eth_tx_buffer, rte_eth_tx_buffer_flush
from includes.rte_cycles cimport rte_rdtsc
from includes.rte_ip cimport rte_raw_cksum
from consts cimport *
from ctx cimport ctx_t, port_t, mirror_t, refused
from push cimport udp6_cksum


cdef inline void put16(uint8_t *d, uint32_t v) noexcept nogil:
    d[0] = <uint8_t>(v >> 8)
    d[1] = <uint8_t>v


cdef inline void put32(uint8_t *d, uint32_t v) noexcept nogil:
    put16(d, v >> 16)
    put16(d + 2, v)


cdef inline bint mirror_sampled(mirror_t *mr, int d) noexcept nogil:
    """1 in N of a direction's packets: the first, then every Nth (per worker)."""
    cdef uint32_t t = mr.tick[d]
    mr.tick[d] = 0 if t + 1 >= mr.sample else t + 1
    return t == 0


cdef inline uint64_t mirror_time(const ctx_t *c) noexcept nogil:
    """Now, in ns since the Unix epoch (the TSC from a base taken at start)."""
    if c.mirror_fake_ns:
        return c.mirror_fake_ns
    return c.ts_base_ns + <uint64_t>(<double>(rte_rdtsc() - c.ts_base_tsc) * c.ns_per_tsc)


cdef inline bint analyzer_header(const ctx_t *c, const mirror_t *mr, rte_mbuf *m,
                                 uint8_t d, uint16_t in_port, uint16_t out_port,
                                 uint32_t seq) noexcept nogil:
    """Ethernet, IP, UDP and the metadata header (docs/mirroring.md §3) in front of the
    copy m, from the mirror's template; 0 when it cannot be (no headroom, or an IP
    packet over 65535 bytes)."""
    cdef uint32_t olen = m.pkt_len, udp_len = 8 + MIRROR_META_LEN + olen, s
    cdef uint64_t ts = mirror_time(c)
    cdef const port_t *ing = &c.ports[in_port]
    cdef uint8_t *d0
    cdef uint8_t *ip
    cdef uint8_t *l4
    cdef uint8_t *meta
    if udp_len + (0 if mr.v6 else 20) > 0xffff:
        return 0
    d0 = <uint8_t *>rte_pktmbuf_prepend(m, mr.hlen)
    if d0 == NULL:
        return 0
    memcpy(d0, mr.hdr, mr.hlen)
    ip = d0 + 14
    if mr.v6:
        put16(ip + 4, udp_len)
        l4 = ip + 40
    else:
        put16(ip + 2, 20 + udp_len)
        s = mr.osum + 20 + udp_len        # the template's words, plus the length
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        put16(ip + 10, ~s & 0xffff)
        l4 = ip + 20
    put16(l4 + 4, udp_len)
    meta = l4 + 8
    meta[3] = d
    put16(meta + 4, in_port)
    put16(meta + 6, out_port)
    put16(meta + 8, ing.vrf if ing.l3 else MIRROR_NONE)
    put16(meta + 10, c.worker)
    put32(meta + 16, olen)
    put32(meta + 20, seq)
    put32(meta + 24, <uint32_t>(ts >> 32))
    put32(meta + 28, <uint32_t>ts)
    if mr.v6:                         # over IPv6 the UDP checksum is computed (RFC 8200)
        udp6_cksum(m, ip, l4, udp_len)
    return 1


cdef inline void mirror_copy(ctx_t *c, port_t *src, uint16_t src_index, rte_mbuf *m,
                             uint8_t d, uint16_t in_port, uint16_t out_port) noexcept nogil:
    """Stage a copy of m as it is now for port src's mirror: counted mirrored, or
    mirror_dropped when no mbuf (or no headroom) can be had. The sequence number counts
    sampled packets, so a copy lost here leaves a gap an analyzer sees."""
    cdef mirror_t *mr = &src.mirror
    cdef rte_mbuf *cp
    cdef uint32_t seq = mr.seq[d - 1]
    mr.seq[d - 1] = seq + 1
    if c.n_mirror >= MIRROR_STAGE:    # never: a burst makes at most 2 * BURST copies
        src.cnt[C_MIRROR_DROPPED] += 1
        return
    # rte_pktmbuf_copy refuses an empty packet (offset 0 is not below pkt_len 0)
    cp = rte_pktmbuf_copy(m, m.pool, 0, 0xffffffff) if m.pkt_len else rte_pktmbuf_alloc(m.pool)
    if cp == NULL:
        src.cnt[C_MIRROR_DROPPED] += 1
        return
    if mr.analyzer and not analyzer_header(c, mr, cp, d, in_port, out_port, seq):
        rte_pktmbuf_free(cp)
        src.cnt[C_MIRROR_DROPPED] += 1
        return
    c.mirror_out[c.n_mirror] = cp
    c.mirror_src[c.n_mirror] = src_index
    c.mirror_dir[c.n_mirror] = d
    c.n_mirror += 1
    src.cnt[C_MIRRORED] += 1


cdef inline void mirror_rx(ctx_t *c, uint16_t in_port, rte_mbuf **pkts,
                           uint16_t n) noexcept nogil:
    """The sampled packets of a burst as received on in_port (no egress yet)."""
    cdef port_t *pt = &c.ports[in_port]
    cdef uint16_t i
    for i in range(n):
        if mirror_sampled(&pt.mirror, 0):
            mirror_copy(c, pt, in_port, pkts[i], MIRROR_RX, in_port, MIRROR_NONE)


cdef inline void mirror_tx(ctx_t *c, port_t *pt, uint16_t port, rte_mbuf *m) noexcept nogil:
    """A packet as handed to port's TX, if sampled (its ingress: the burst's port)."""
    if mirror_sampled(&pt.mirror, 1):
        mirror_copy(c, pt, port, m, MIRROR_TX, c.in_port, port)


cdef inline void mirror_refused(rte_mbuf **pkts, uint16_t unsent,
                                void *userdata) noexcept nogil:
    """A mirror TX buffer's error callback: the PMD refused `unsent` copies (its ring
    is full); freed and moved from mirrored to mirror_dropped of the mirrored port."""
    refused(pkts, unsent, <uint64_t *>userdata, C_MIRRORED, C_MIRROR_DROPPED)


cdef inline void mirror_send(ctx_t *c) noexcept nogil:
    """The burst's staged copies into their mirrored ports' TX buffers (after the
    burst's own packets went to theirs)."""
    cdef port_t *src
    cdef port_t *dst
    cdef uint16_t j
    for j in range(c.n_mirror):
        src = &c.ports[c.mirror_src[j]]
        dst = &c.ports[src.mirror.dest]
        if src.mirror.txb != NULL and dst.bound:
            rte_eth_tx_buffer(dst.port_id, c.worker, src.mirror.txb, c.mirror_out[j])
        else:                          # no device to send it to
            rte_pktmbuf_free(c.mirror_out[j])
            src.cnt[C_MIRRORED] -= 1
            src.cnt[C_MIRROR_DROPPED] += 1
    c.n_mirror = 0


cdef inline void mirror_flush(ctx_t *c) noexcept nogil:
    """Drain every mirror TX buffer of this worker (on the TX drain timer, after the
    ports' own buffers)."""
    cdef port_t *src
    cdef uint16_t i
    for i in range(c.nports):
        src = &c.ports[i]
        if src.mirror.txb != NULL and c.ports[src.mirror.dest].bound:
            rte_eth_tx_buffer_flush(c.ports[src.mirror.dest].port_id, c.worker,
                                    src.mirror.txb)
