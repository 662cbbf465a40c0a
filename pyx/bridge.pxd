# Bridge stage (docs/virtual-networks.md §3-§4): the binding check, MAC learning, and
# frames bridged by their destination MAC: to the port the bridge table names, or
# flooded to every other port of the VRF (one rte_pktmbuf_copy per extra port).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport memcmp, memcpy
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_copy, rte_pktmbuf_free
from includes.rte_hash cimport rte_hash_lookup_data, rte_hash_add_key_data
from consts cimport *
from parse cimport pkt_t, rd16, short_of
from vnet cimport (vnet_t, vn_vrf_t, pair_t, addr_t, BT_STATIC, BT_LEARNED, XSTAGE, X_FLOOD)
from ctx cimport ctx_t, port_t, drop, clock_now
from tx cimport tx_enqueue


cdef inline uint64_t bridge_key(uint16_t vrf, const uint8_t *mac) noexcept nogil:
    """The bridge table's 8-byte key: the VRF (big-endian), then the MAC."""
    cdef uint64_t k = 0
    cdef uint8_t *b = <uint8_t *>&k
    b[0] = <uint8_t>(vrf >> 8)
    b[1] = <uint8_t>vrf
    memcpy(b + 2, mac, 6)
    return k


cdef inline uint16_t l2_header(const uint8_t *d, uint32_t n, uint16_t *et) noexcept nogil:
    """Ethernet + at most two VLAN tags: the offset past them and the EtherType; 0 when
    the frame is too short for them."""
    cdef uint16_t off = 14
    cdef int tags = 0
    if n < 14:
        return 0
    et[0] = rd16(d + 12)
    while (et[0] == 0x8100 or et[0] == 0x88a8) and tags < 2:
        if n < off + 4u:
            return 0
        et[0] = rd16(d + off + 2)
        off += 4
        tags += 1
    return off


cdef inline bint in_prefix(const addr_t *a, uint8_t family, const uint8_t *ip) noexcept nogil:
    cdef uint8_t whole, rest, mask
    if a.family != family:
        return 0
    whole = a.plen >> 3
    rest = a.plen & 7
    if memcmp(a.addr, ip, whole) != 0:
        return 0
    if rest == 0:
        return 1
    mask = <uint8_t>(0xff << (8 - rest))
    return (a.addr[whole] & mask) == (ip[whole] & mask)


cdef inline bint mac_allowed(const port_t *pt, const uint8_t *mac) noexcept nogil:
    cdef uint16_t i
    for i in range(pt.n_bmacs):
        if memcmp(pt.bmacs + 6 * i, mac, 6) == 0:
            return 1
    return 0


cdef inline bint pair_allowed(const port_t *pt, const uint8_t *mac, uint8_t family,
                              const uint8_t *ip) noexcept nogil:
    cdef uint16_t i
    for i in range(pt.n_pairs):
        if memcmp(pt.pairs[i].mac, mac, 6) == 0 and in_prefix(&pt.pairs[i].a, family, ip):
            return 1
    return 0


cdef inline bint zero(const uint8_t *a, int n) noexcept nogil:
    cdef int i
    for i in range(n):
        if a[i]:
            return 0
    return 1


cdef inline int bind_check(const port_t *pt, const pkt_t *p, const uint8_t *d, uint32_t n,
                           uint16_t off, uint16_t et) noexcept nogil:
    """§4: 0 when the frame's source is the port's binding or an allowed pair, else
    spoofed (or truncated: the source address lies past the frame)."""
    cdef const uint8_t *smac = d + 6
    if not mac_allowed(pt, smac):
        return D_SPOOFED
    if pt.n_pairs == 0:                    # MAC-only binding
        return 0
    if et == 0x0800:
        if n < off + 20u:
            return short_of(p, off + 20, n)
        if zero(d + off + 12, 4) or pair_allowed(pt, smac, 4, d + off + 12):
            return 0
        return D_SPOOFED
    if et == 0x86dd:
        if n < off + 40u:
            return short_of(p, off + 40, n)
        if zero(d + off + 8, 16) or (d[off + 8] == 0xfe and (d[off + 9] & 0xc0) == 0x80):
            return 0                       # :: (DAD) and link-local
        return 0 if pair_allowed(pt, smac, 6, d + off + 8) else D_SPOOFED
    if et == 0x0806:
        if n < off + 28u:
            return short_of(p, off + 28, n)
        if memcmp(d + off + 8, smac, 6) != 0:
            return D_SPOOFED
        if zero(d + off + 14, 4) or pair_allowed(pt, smac, 4, d + off + 14):
            return 0
        return D_SPOOFED
    return 0


cdef inline void bridge_learn(ctx_t *c, uint16_t in_port, uint16_t vrf,
                              const uint8_t *smac) noexcept nogil:
    """§3: a unicast source MAC → the ingress port (static entries stay where they are;
    a learned one seen elsewhere moves, counted mac_moved on its new port)."""
    cdef vnet_t *vn = c.vn
    cdef uint64_t key, data
    cdef void *v
    cdef int32_t pos
    if smac[0] & 1:
        return
    key = bridge_key(vrf, smac)
    pos = rte_hash_lookup_data(vn.bridge, &key, &v)
    if pos >= 0:
        vn.seen[pos] = clock_now(c)
        data = <uint64_t>v
        if (data & 0xffff) != in_port and not ((data >> 16) & BT_STATIC):
            rte_hash_add_key_data(vn.bridge, &key, <void *>(<uint64_t>in_port |
                                                             (<uint64_t>BT_LEARNED << 16)))
            c.ports[in_port].cnt[C_MAC_MOVED] += 1
        return
    # several workers may learn: the key and its data go in together (lock-free readers)
    if rte_hash_add_key_data(vn.bridge, &key, <void *>(<uint64_t>in_port |
                                                        (<uint64_t>BT_LEARNED << 16))) == 0:
        pos = rte_hash_lookup_data(vn.bridge, &key, &v)
        if pos >= 0:
            vn.seen[pos] = clock_now(c)
            vn.hits[pos] = 0


cdef inline bint stage_x(ctx_t *c, rte_mbuf *m, uint16_t port, uint8_t kind,
                         uint16_t in_port) noexcept nogil:
    """An extra frame for `port`, sent after the burst's own packets (0: no room);
    in_port: its ingress, as a tx mirror copy names it."""
    if c.n_x >= XSTAGE:
        return 0
    c.x_out[c.n_x] = m
    c.x_port[c.n_x] = port
    c.x_in[c.n_x] = in_port
    c.x_kind[c.n_x] = kind
    c.n_x += 1
    return 1


cdef inline void flood(ctx_t *c, port_t *pt, rte_mbuf *m, uint16_t in_port, rte_mbuf **out,
                       uint16_t *out_port, uint16_t *k) noexcept nogil:
    """To every other port of the VRF in port order: the original to the first, a copy
    to each further one (counted flooded there, flood_dropped when none can be had)."""
    cdef const vn_vrf_t *vr = &c.vn.vrfs[pt.vrf]
    cdef uint16_t i, first = 0xffff, d
    cdef rte_mbuf *cp
    for i in range(vr.n_ports):
        d = vr.ports[i]
        if d == in_port:
            continue
        if first == 0xffff:
            first = d
            continue
        cp = rte_pktmbuf_copy(m, m.pool, 0, 0xffffffff)
        if cp == NULL:
            c.ports[d].cnt[C_FLOOD_DROPPED] += 1
        elif not stage_x(c, cp, d, X_FLOOD, in_port):
            rte_pktmbuf_free(cp)
            c.ports[d].cnt[C_FLOOD_DROPPED] += 1
        else:
            c.ports[d].cnt[C_FLOODED] += 1
    if first == 0xffff:                    # a VRF of one port: nowhere to go
        drop(pt, m, D_UNKNOWN_UNICAST)
        return
    tx_enqueue(c, m, first, out, out_port, k)


cdef inline void bridge(ctx_t *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                        rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    """§3: a frame bridged by its destination MAC, unmodified."""
    cdef vnet_t *vn = c.vn
    cdef const uint8_t *dst = p.data
    cdef uint64_t key
    cdef void *v
    cdef int32_t pos
    cdef uint16_t port
    if dst[0] & 1:                         # broadcast, multicast
        flood(c, pt, m, in_port, out, out_port, k)
        return
    key = bridge_key(pt.vrf, dst)
    pos = rte_hash_lookup_data(vn.bridge, &key, &v)
    if pos < 0:
        if vn.vrfs[pt.vrf].flood_uu:
            flood(c, pt, m, in_port, out, out_port, k)
        else:
            drop(pt, m, D_UNKNOWN_UNICAST)
        return
    port = <uint16_t>(<uint64_t>v & 0xffff)
    if port == in_port:
        drop(pt, m, D_HAIRPIN)
        return
    vn.hits[pos] += 1
    vn.seen[pos] = clock_now(c)
    tx_enqueue(c, m, port, out, out_port, k)
