# Classify stage: what a received frame is by its ingress port's role (SPEC §2.3): IP in
# the port's VRF, a label stack for the LFIB, an overlay packet for the node's tunnel
# address, or a frame of a pseudowire attachment circuit.
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcmp
from consts cimport *
from parse cimport pkt_t, parse, short_of, R_MPLS, ACT_PW
from mpls_input cimport for_tunnel
from vnet cimport FWD_L2, FWD_L2L3, ACT_BRIDGE, ACT_ARP, ACT_ND
from bridge cimport l2_header, bind_check, bridge_learn
from ctx cimport ctx_t, port_t


cdef inline int arp_nd(pkt_t *p, const uint8_t *d, uint32_t n, uint16_t off,
                       uint16_t et) noexcept nogil:
    """ARP, or an NS / NA (IPv6, next header ICMPv6, hop limit 255, type 135/136): 0
    with the action set, a drop reason when it is short, -1 when neither."""
    if et == 0x0806:
        if n < off + 28u:
            return short_of(p, off + 28, n)
        p.l2_len = off
        p.act = ACT_ARP
        return 0
    if (et == 0x86dd and n > off + 40u and (d[off] >> 4) == 6 and d[off + 6] == 58 and
            d[off + 7] == 255 and (d[off + 40] == 135 or d[off + 40] == 136)):
        if n < off + 64u:
            return short_of(p, off + 64, n)
        p.l2_len = off
        p.act = ACT_ND
        return 0
    return -1


cdef inline int arp_nd_l3(pkt_t *p) noexcept nogil:
    cdef uint16_t et = 0
    cdef uint16_t off = l2_header(p.data, p.len, &et)
    if off == 0:
        return -1                          # parse says what is wrong
    return arp_nd(p, p.data, p.len, off, et)


cdef inline int classify_vn(ctx_t *c, const port_t *pt, pkt_t *p) noexcept nogil:
    """A port with a binding or in an l2 / l2_l3 VRF (docs/virtual-networks.md §2):
    binding check, learning, ARP / ND, then bridged or (l2_l3 to the gateway MAC, l3)
    routed. -1: take the L3 path."""
    cdef const uint8_t *d = p.data
    cdef uint32_t n = p.len
    cdef uint16_t et = 0
    cdef uint16_t off = l2_header(d, n, &et)
    cdef int r
    if off == 0:
        return short_of(p, 14 if n < 14 else n + 4, n)
    p.l2_len = off
    if pt.n_bmacs:
        r = bind_check(pt, p, d, n, off, et)
        if r:
            return r
    if c.vn.vrfs[pt.vrf].learn:
        if pt.flow_mode:                   # its burst loop learns, frame by frame
            p.learn = 1
        else:
            bridge_learn(c, c.in_port, pt.vrf, d + 6)
    r = arp_nd(p, d, n, off, et)
    if r >= 0:
        return r
    if pt.fwd == FWD_L2 or (pt.fwd == FWD_L2L3 and not (
            (et == 0x0800 or et == 0x86dd) and memcmp(d, pt.gw_mac, 6) == 0)):
        p.act = ACT_BRIDGE
        return 0
    return -1


cdef inline int classify(ctx_t *c, const port_t *pt, pkt_t *p) noexcept nogil:
    """Parse a received frame and decide its kind (pkt_t.act): IP to route (also after
    an MPLS pop or an overlay decap), a swap, a pseudowire decap or encap. 0 or the
    drop reason."""
    cdef int r, nd
    p.vrf = pt.vrf
    if pt.slow:                            # not a plain L3 port: one test for both
        if not pt.l3:
            if pt.pw == NO_PW:
                return D_UNSUPPORTED
            if p.len < 14:
                return D_TRUNCATED
            p.act = ACT_PW
            p.aux = pt.pw
            return 0
        r = c.on_vn(<void *>c, pt, p)      # out of line: the plain L3 path stays lean
        if r >= 0:
            return r
        p.l2_len = 0
    r = parse(p)
    if r == R_MPLS:
        return c.on_region(&c.mpls, p, p.l2_len, p.len + p.more, pt.vrf)
    if r != 0 or p.proto == 58:
        # ARP (parse: unsupported) or an NS / NA (maybe multicast or link-local:
        # unsupported, martian): the forwarder's own (docs/virtual-networks.md §5);
        # out of line too
        nd = c.on_arpnd(p)
        if nd >= 0:
            return nd
    if c.mpls.tun_family and (r == 0 or r == D_TTL_EXPIRED) and for_tunnel(&c.mpls, p):
        return c.on_decap(&c.mpls, p, pt.vrf)
    return r


cdef inline int vn_cb(void *c, const port_t *pt, pkt_t *p) noexcept nogil:
    return classify_vn(<ctx_t *>c, pt, p)


cdef inline int arpnd_cb(pkt_t *p) noexcept nogil:
    return arp_nd_l3(p)
