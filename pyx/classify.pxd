# Classify stage: what a received frame is by its ingress port's role (SPEC §2.3): IP in
# the port's VRF, a label stack for the LFIB, an overlay packet for the node's tunnel
# address, or a frame of a pseudowire attachment circuit.
from libc.stdint cimport uint16_t
from consts cimport *
from parse cimport pkt_t, parse, R_MPLS, ACT_PW
from mpls_input cimport for_tunnel
from ctx cimport ctx_t, port_t


cdef inline int classify(ctx_t *c, const port_t *pt, pkt_t *p) noexcept nogil:
    """Parse a received frame and decide its kind (pkt_t.act): IP to route (also after
    an MPLS pop or an overlay decap), a swap, a pseudowire decap or encap. 0 or the
    drop reason."""
    cdef int r
    if not pt.l3:
        if pt.pw == NO_PW:
            return D_UNSUPPORTED
        if p.len < 14:
            return D_TRUNCATED
        p.act = ACT_PW
        p.aux = pt.pw
        return 0
    p.vrf = pt.vrf
    r = parse(p)
    if r == R_MPLS:
        return c.on_region(&c.mpls, p, p.l2_len, p.len + p.more, pt.vrf)
    if c.mpls.tun_family and (r == 0 or r == D_TTL_EXPIRED) and for_tunnel(&c.mpls, p):
        return c.on_decap(&c.mpls, p, pt.vrf)
    return r
