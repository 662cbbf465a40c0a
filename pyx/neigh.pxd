# Neighbour stage (docs/virtual-networks.md §5-§6): ARP and ND the forwarder answers
# (gateway addresses, proxy ARP/ND), learns from or consumes; next hops resolved by ARP /
# ND: packets toward an unresolved one are held per worker and released once its MAC is
# known; worker 0 sends the requests.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset
from includes.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_free, rte_pktmbuf_alloc,
                                rte_pktmbuf_append)
from includes.rte_ip cimport rte_raw_cksum
from includes.rte_lpm cimport rte_lpm_lookup
from includes.rte_lpm6 cimport rte_lpm6_lookup
from includes.shim cimport dp_mtod, dp_load64, dp_store64, dp_cut
from consts cimport *
from parse cimport pkt_t, rd16, rd32
from route cimport vrf_t
from rewrite cimport nexthop_t
from ecmp cimport group_t
from vnet cimport (vnet_t, vn_vrf_t, neigh_t, held_t, addr_t, host_t, NEIGH_VALID, NEIGH_NONE,
                   FWD_L3, FWD_L2, ACT_BRIDGE, ACT_ARP, X_HELD, X_REQUEST)
from ctx cimport ctx_t, port_t, drop, clock_now
from tx cimport tx_enqueue
from bridge cimport bridge, stage_x, in_prefix, zero


# ---------------------------------------------------------------- neighbours

cdef inline void neigh_learn(ctx_t *c, uint16_t in_port, uint8_t family, const uint8_t *ip,
                             const uint8_t *mac) noexcept nogil:
    """An ARP/ND frame from (in_port, ip) with link-layer address mac: confirms every
    neighbour that is that address on that port."""
    cdef vnet_t *vn = c.vn
    cdef neigh_t *e
    cdef uint32_t j
    cdef uint64_t w = 0
    cdef int alen = 4 if family == 4 else 16
    if mac[0] & 1 or zero(mac, 6):
        return
    for j in range(vn.n_neigh):
        e = &vn.neigh[j]
        if e.port == in_port and e.family == family and memcmp(e.ip, ip, alen) == 0:
            if w == 0:
                memcpy(&w, mac, 6)
                w |= NEIGH_VALID
            e.confirmed = clock_now(c)
            dp_store64(&e.mac, w)


cdef inline bint neigh_out(void *cp, rte_mbuf *m, uint32_t j) noexcept nogil:
    """A packet for neighbour j: its MAC written (1: send it now), or held in this
    worker's queue (0), or dropped arp_unresolved on its ingress port when that queue is
    full (0). Called through ctx.on_neigh: out of line, off the static-MAC path."""
    cdef ctx_t *c = <ctx_t *>cp
    cdef uint64_t w = dp_load64(&c.vn.neigh[j].mac)
    cdef held_t *h = &c.held
    cdef uint32_t slot
    if w & NEIGH_VALID and h.n[j] == 0:   # never ahead of packets held before it
        memcpy(dp_mtod(m), &w, 6)
        return 1
    if h.n[j] >= c.vn.queue:
        drop(&c.ports[c.in_port], m, D_ARP_UNRESOLVED)
        return 0
    slot = j * c.vn.queue + h.n[j]
    h.m[slot] = m
    h.in_port[slot] = c.in_port
    h.n[j] += 1
    h.total += 1
    return 0


cdef inline void nh_tx(ctx_t *c, rte_mbuf *m, const nexthop_t *nh,
                       rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    """A routed packet toward next hop nh, ready but for a resolved destination MAC."""
    if nh.neigh != NEIGH_NONE and not c.on_neigh(<void *>c, m, nh.neigh):
        return
    tx_enqueue(c, m, nh.port, out, out_port, k)


cdef inline void neigh_release(ctx_t *c) noexcept nogil:
    """The held packets of neighbours resolved since: their MAC written, staged oldest
    first (counted tx on their port); what does not fit stays for the next call."""
    cdef vnet_t *vn = c.vn
    cdef held_t *h = &c.held
    cdef uint32_t j, base, i, sent
    cdef uint64_t w
    cdef uint16_t port
    for j in range(vn.n_neigh):
        if h.n[j] == 0:
            continue
        w = dp_load64(&vn.neigh[j].mac)
        if not (w & NEIGH_VALID):
            continue
        base = j * vn.queue
        port = vn.neigh[j].port
        sent = 0
        while sent < h.n[j]:
            memcpy(dp_mtod(h.m[base + sent]), &w, 6)
            if not stage_x(c, h.m[base + sent], port, X_HELD, h.in_port[base + sent]):
                break
            c.ports[port].cnt[C_TX] += 1
            sent += 1
        for i in range(sent, h.n[j]):
            h.m[base + i - sent] = h.m[base + i]
            h.in_port[base + i - sent] = h.in_port[base + i]
        h.n[j] -= sent
        h.total -= sent


cdef inline void neigh_drop_held(ctx_t *c) noexcept nogil:
    """At stop: every held packet dropped arp_unresolved on its ingress port."""
    cdef vnet_t *vn = c.vn
    cdef held_t *h = &c.held
    cdef uint32_t j, i
    if vn == NULL or h.n == NULL:
        return
    for j in range(vn.n_neigh):
        for i in range(h.n[j]):
            drop(&c.ports[h.in_port[j * vn.queue + i]], h.m[j * vn.queue + i],
                 D_ARP_UNRESOLVED)
        h.n[j] = 0
    h.total = 0


cdef inline uint16_t icmp6_cksum(const uint8_t *ip, const uint8_t *icmp,
                                 uint32_t n) noexcept nogil:
    """RFC 4443 §2.3: the ICMPv6 checksum over the pseudo header and n bytes."""
    cdef uint8_t ph[40]
    cdef uint32_t s
    cdef uint16_t v
    memcpy(ph, ip + 8, 32)
    ph[32] = 0; ph[33] = 0
    ph[34] = <uint8_t>(n >> 8); ph[35] = <uint8_t>n
    ph[36] = 0; ph[37] = 0; ph[38] = 0; ph[39] = 58
    s = <uint32_t>rte_raw_cksum(ph, 40) + rte_raw_cksum(icmp, n)
    s = (s & 0xffff) + (s >> 16)
    s = (s & 0xffff) + (s >> 16)
    v = <uint16_t>~s
    return v                               # native-order word: stored as it is


cdef inline void ns_body(uint8_t *d, const uint8_t *dmac, const uint8_t *smac,
                         const uint8_t *src, const uint8_t *dst, uint8_t icmp_type,
                         uint32_t flags, const uint8_t *target, uint8_t opt,
                         const uint8_t *ll, uint16_t off) noexcept nogil:
    """An NS or NA at d: Ethernet MACs (the EtherType and any tags between are the
    caller's), IPv6 at off, ICMPv6 with one link-layer option: 72 bytes after off."""
    cdef uint8_t *ip = d + off
    cdef uint8_t *ic = ip + 40
    cdef uint16_t ck
    memcpy(d, dmac, 6)
    memcpy(d + 6, smac, 6)
    ip[0] = 0x60; ip[1] = 0; ip[2] = 0; ip[3] = 0
    ip[4] = 0; ip[5] = 32; ip[6] = 58; ip[7] = 255
    memcpy(ip + 8, src, 16)
    memcpy(ip + 24, dst, 16)
    memset(ic, 0, 32)
    ic[0] = icmp_type
    ic[4] = <uint8_t>(flags >> 24)
    memcpy(ic + 8, target, 16)
    ic[24] = opt
    ic[25] = 1
    memcpy(ic + 26, ll, 6)
    ck = icmp6_cksum(ip, ic, 32)
    memcpy(ic + 2, &ck, 2)


cdef inline bint set_len(rte_mbuf *m, uint32_t n) noexcept nogil:
    """Make the packet n bytes long (cut or grown in its first segment)."""
    if m.pkt_len > n:
        dp_cut(m, n)
        return 1
    if m.pkt_len < n:
        if m.nb_segs > 1:
            return 0
        return rte_pktmbuf_append(m, <uint16_t>(n - m.pkt_len)) != NULL
    return 1


cdef inline rte_mbuf *request(ctx_t *c, const neigh_t *e, const uint8_t *known) noexcept nogil:
    """§6: an ARP request / NS for e, broadcast (known NULL) or unicast to known."""
    cdef rte_mbuf *m = rte_pktmbuf_alloc(c.vn.pool)
    cdef const uint8_t *pmac = c.ports[e.port].mac
    cdef uint8_t *d
    cdef uint8_t dmac[6]
    cdef uint8_t dst[16]
    if m == NULL:
        return NULL
    if e.family == 4:
        d = <uint8_t *>rte_pktmbuf_append(m, 60)
        if d == NULL:
            rte_pktmbuf_free(m)
            return NULL
        memset(d, 0, 60)
        if known != NULL:
            memcpy(d, known, 6)
        else:
            memset(d, 0xff, 6)
        memcpy(d + 6, pmac, 6)
        d[12] = 0x08; d[13] = 0x06
        d[15] = 1; d[16] = 0x08; d[18] = 6; d[19] = 4; d[21] = 1
        memcpy(d + 22, pmac, 6)
        memcpy(d + 28, e.src, 4)
        memcpy(d + 38, e.ip, 4)
        return m
    d = <uint8_t *>rte_pktmbuf_append(m, 86)
    if d == NULL:
        rte_pktmbuf_free(m)
        return NULL
    if known != NULL:
        memcpy(dmac, known, 6)
        memcpy(dst, e.ip, 16)
    else:
        dmac[0] = 0x33; dmac[1] = 0x33; dmac[2] = 0xff
        memcpy(dmac + 3, e.ip + 13, 3)
        memset(dst, 0, 16)
        dst[0] = 0xff; dst[1] = 0x02; dst[11] = 1; dst[12] = 0xff
        memcpy(dst + 13, e.ip + 13, 3)
    d[12] = 0x86; d[13] = 0xdd
    ns_body(d, dmac, pmac, e.src, dst, 135, 0, e.ip, 1, pmac, 14)
    return m


cdef inline void send_request(ctx_t *c, neigh_t *e, const uint8_t *known) noexcept nogil:
    cdef rte_mbuf *m = request(c, e, known)
    if m == NULL:
        return
    if stage_x(c, m, e.port, X_REQUEST, e.port):     # a request's ingress: its port
        c.ports[e.port].cnt[C_ARP_SENT] += 1
    else:
        rte_pktmbuf_free(m)


cdef inline void neigh_tick(ctx_t *c, uint64_t now) noexcept nogil:
    """§6, worker 0: expire, refresh (unicast from 2/3 of reachable_time) and resolve
    (broadcast while incomplete) every neighbour, one request per retry interval."""
    cdef vnet_t *vn = c.vn
    cdef neigh_t *e
    cdef uint32_t j
    cdef uint64_t w
    cdef uint8_t known[8]
    for j in range(vn.n_neigh):
        e = &vn.neigh[j]
        w = dp_load64(&e.mac)
        if w & NEIGH_VALID:
            if now >= e.confirmed + vn.reach_tsc:
                dp_store64(&e.mac, 0)      # expired: incomplete, asked again at once
                e.next_req = now
            else:
                if now >= e.confirmed + vn.reach_tsc * 2 // 3 and now >= e.next_req:
                    memcpy(known, &w, 6)
                    send_request(c, e, known)
                    e.next_req = now + vn.retry_tsc
                continue
        if now >= e.next_req:
            send_request(c, e, NULL)
            e.next_req = now + vn.retry_tsc


# ---------------------------------------------------------------- answering

cdef inline bint routable(uint8_t family, const uint8_t *t) noexcept nogil:
    """Not an address parse's destination checks refuse (0/8, 127/8, 224/4,
    255.255.255.255; ::, ::1, fe80::/10, ff00::/8): a default route must not make
    proxy ARP / ND answer for link-local neighbours or multicast."""
    if family == 4:
        return not (t[0] == 0 or t[0] == 127 or (t[0] & 0xf0) == 0xe0 or
                    (t[0] == 255 and t[1] == 255 and t[2] == 255 and t[3] == 255))
    if t[0] == 0xff or (t[0] == 0xfe and (t[1] & 0xc0) == 0x80):
        return 0
    return not (zero(t, 15) and t[15] <= 1)


cdef inline bint routed_elsewhere(const ctx_t *c, uint16_t vrf, uint16_t in_port,
                                  uint8_t family, const uint8_t *t) noexcept nogil:
    """T has a route whose next hop (or any live group member) leaves by another port."""
    cdef const vrf_t *v = &c.vrfs[vrf]
    cdef uint32_t nh
    cdef const group_t *g
    cdef uint32_t i
    if not routable(family, t):
        return 0
    if family == 4:
        if v.lpm4 == NULL or rte_lpm_lookup(v.lpm4, rd32(t), &nh) != 0:
            nh = v.default4
    else:
        if v.lpm6 == NULL or rte_lpm6_lookup(v.lpm6, t, &nh) != 0:
            nh = v.default6
    if nh == NH_NONE:
        return 0
    if nh & NH_GROUP:
        g = &c.groups[nh & ~(<uint32_t>NH_GROUP)]
        for i in range(g.n_members):
            if (g.member_state[i] != MEMBER_REMOVED and
                    c.nhs[g.member_nh[i]].port != in_port):
                return 1
        return 0
    return c.nhs[nh].port != in_port


cdef inline bint answer(const ctx_t *c, const port_t *pt, uint16_t in_port, uint8_t family,
                        const uint8_t *t, uint8_t *mac, bint *router) noexcept nogil:
    """§5.2: the MAC the forwarder answers an ARP request / NS for target t with."""
    cdef const vn_vrf_t *vr = &c.vn.vrfs[pt.vrf]
    cdef const host_t *hs
    cdef uint32_t i
    cdef int alen = 4 if family == 4 else 16
    for i in range(vr.n_gw):
        if vr.gw[i].family == family and memcmp(vr.gw[i].addr, t, alen) == 0:
            memcpy(mac, pt.gw_mac, 6)
            router[0] = 1
            return 1
    if not pt.proxy:
        return 0
    for i in range(vr.n_hosts):
        hs = &vr.hosts[i]
        if hs.port != in_port and in_prefix(&hs.a, family, t):
            memcpy(mac, hs.mac, 6)
            router[0] = 0
            return 1
    if vr.fwd != FWD_L2 and routed_elsewhere(c, pt.vrf, in_port, family, t):
        memcpy(mac, pt.gw_mac, 6)
        router[0] = 1
        return 1
    return 0


cdef inline bint to_us(const port_t *pt, const uint8_t *d) noexcept nogil:
    return memcmp(d, pt.mac, 6) == 0 or memcmp(d, pt.gw_mac, 6) == 0


cdef inline void taken(port_t *pt, rte_mbuf *m) noexcept nogil:
    pt.cnt[C_CONSUMED] += 1
    rte_pktmbuf_free(m)


cdef inline void arp_in(ctx_t *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                        rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    """An ARP frame (classify checked its 28 bytes)."""
    cdef uint8_t *d = p.data
    cdef uint16_t off = p.l2_len
    cdef uint8_t *a = d + off
    cdef uint16_t op
    cdef uint8_t mac[6]
    cdef uint8_t sha[6]
    cdef uint8_t spa[4]
    cdef bint router = 0
    cdef uint32_t n
    if not (rd16(a) == 1 and rd16(a + 2) == 0x0800 and a[4] == 6 and a[5] == 4):
        if pt.fwd == FWD_L3:
            drop(pt, m, D_UNSUPPORTED)
        else:
            bridge(c, pt, m, p, in_port, out, out_port, k)
        return
    op = rd16(a + 6)
    neigh_learn(c, in_port, 4, a + 14, a + 8)
    if (op == 1 and memcmp(a + 14, a + 24, 4) != 0 and
            answer(c, pt, in_port, 4, a + 24, mac, &router)):
        n = off + 28u
        if n < 60:
            n = 60
        if set_len(m, n):
            memcpy(sha, a + 8, 6)
            memcpy(spa, a + 14, 4)
            memcpy(d, sha, 6)              # back to the asker
            memcpy(d + 6, mac, 6)
            a[7] = 2
            memcpy(a + 14, a + 24, 4)      # spa = the target
            memcpy(a + 8, mac, 6)
            memcpy(a + 18, sha, 6)
            memcpy(a + 24, spa, 4)
            memset(d + off + 28, 0, n - off - 28)
            pt.cnt[C_ARP_REPLIED] += 1
            tx_enqueue(c, m, in_port, out, out_port, k)
            return
    if pt.fwd == FWD_L3 or (op == 2 and to_us(pt, d)):
        taken(pt, m)
        return
    bridge(c, pt, m, p, in_port, out, out_port, k)


cdef inline const uint8_t *nd_option(const uint8_t *o, const uint8_t *end,
                                     uint8_t want) noexcept nogil:
    """The first ND option of type `want` with a 6-byte link-layer address (NULL: none)."""
    while o + 8 <= end:
        if o[1] == 0:
            return NULL                    # malformed: a zero length never ends
        if o[0] == want and o[1] == 1:
            return o + 2
        o += 8 * o[1]
    return NULL


cdef inline void nd_in(ctx_t *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                       rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    """An NS or NA (classify checked its fixed part)."""
    cdef uint8_t *d = p.data
    cdef uint16_t off = p.l2_len
    cdef uint8_t *ip = d + off
    cdef uint8_t *ic = ip + 40
    cdef uint32_t end = off + 40u + rd16(ip + 4)
    cdef const uint8_t *ll
    cdef uint8_t mac[6]
    cdef uint8_t asker[6]
    cdef uint8_t target[16]
    cdef uint8_t src[16]
    cdef bint router = 0
    cdef uint32_t flags
    cdef uint8_t typ = ic[0]
    if end > p.len:
        end = p.len
    if typ == 135:
        if not zero(ip + 8, 16):
            ll = nd_option(ic + 24, d + end, 1)
            if ll != NULL:
                neigh_learn(c, in_port, 6, ip + 8, ll)
            if (memcmp(ic + 8, ip + 8, 16) != 0 and
                    answer(c, pt, in_port, 6, ic + 8, mac, &router) and
                    set_len(m, off + 72u)):
                memcpy(asker, d + 6, 6)
                memcpy(target, ic + 8, 16)
                memcpy(src, ip + 8, 16)
                flags = 0x60000000             # S | O
                if router:
                    flags |= (<uint32_t>1) << 31   # R
                ns_body(d, asker, mac, target, src, 136, flags, target, 2, mac, off)
                pt.cnt[C_ARP_REPLIED] += 1
                tx_enqueue(c, m, in_port, out, out_port, k)
                return
    else:
        ll = nd_option(ic + 24, d + end, 2)
        neigh_learn(c, in_port, 6, ic + 8, ll if ll != NULL else d + 6)
    if pt.fwd == FWD_L3 or (typ == 136 and to_us(pt, d)):
        taken(pt, m)
        return
    bridge(c, pt, m, p, in_port, out, out_port, k)


cdef inline void vn_emit(ctx_t *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                         rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    """The VN actions classify chose: bridge, ARP, ND."""
    if p.act == ACT_BRIDGE:
        bridge(c, pt, m, p, in_port, out, out_port, k)
    elif p.act == ACT_ARP:
        arp_in(c, pt, m, p, in_port, out, out_port, k)
    else:
        nd_in(c, pt, m, p, in_port, out, out_port, k)
