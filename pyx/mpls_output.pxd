# MPLS output stage: labelled packets that do not leave as routed IP (docs/mpls.md): an
# LFIB swap (transit hash over the stack as received, new labels in place of the top
# one), a pop-xconnect to the attachment circuit, and an attachment circuit's frame into
# its pseudowire ([transport][PW label][FAT][control word] frame).
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_adj
from consts cimport *
from parse cimport pkt_t, ACT_SWAP, ACT_XC
from hashing cimport bucket_of
from ecmp cimport group_t
from rewrite cimport nexthop_t
from mpls_input cimport lfib_entry_t, pw_t, be32, PW_TTL
from mpls_hash cimport transit_hash, frame_hash, entropy_label
from push cimport write_push, reframe, cut_end, finish_labelled
from ctx cimport ctx_t, port_t, drop
from tx cimport tx_enqueue
from neigh cimport nh_tx


cdef inline const nexthop_t *pick(ctx_t *c, port_t *pt, uint32_t via, uint32_t h,
                                  rte_mbuf *m) noexcept nogil:
    """The next hop of `via` for hash h (a group: its bucket table, no flow state);
    NULL after dropping the packet as no_route when every member is drained."""
    cdef group_t *g
    cdef uint16_t mem
    if not (via & NH_GROUP):
        return &c.nhs[via]
    g = &c.groups[via & ~(<uint32_t>NH_GROUP)]
    if g.n_buckets == 0:
        drop(pt, m, D_NO_ROUTE)
        return NULL
    mem = g.buckets[bucket_of(h, g.n_buckets)]
    c.member_pkts[g.id * MAX_MEMBERS + mem] += 1
    return &c.nhs[g.member_nh[mem]]


cdef inline void emit_mpls(ctx_t *c, port_t *pt, rte_mbuf *m, const pkt_t *p,
                           uint16_t in_port, rte_mbuf **out, uint16_t *out_port,
                           uint16_t *k) noexcept nogil:
    """Packets that do not leave as routed IP: an LFIB swap (transit hash over the stack
    as received), a pop-xconnect to the AC port, a frame into its pseudowire."""
    cdef const lfib_entry_t *ent
    cdef const pw_t *pw
    cdef const nexthop_t *nh
    cdef uint32_t st[MAX_PUSH]
    cdef uint32_t h = 0, via, tc, i, n, o
    cdef uint8_t *d
    if p.act == ACT_SWAP:
        ent = &c.mpls.entries[p.aux]
        via = ent.via
        if (via & NH_GROUP) or c.nhs[via].tunnel != TUN_NONE:
            h = transit_hash(&c.mpls, p, c.groups[via & ~(<uint32_t>NH_GROUP)].fields
                             if via & NH_GROUP else c.entropy_fields, in_port, c.seed)
        nh = pick(c, pt, via, h, m)
        if nh == NULL:
            return
        tc = (p.lse >> 9) & 7
        n = ent.n_labels
        for i in range(n):
            st[i] = ent.labels[i] | be32((tc << 9) | p.ttl)
        st[n - 1] |= be32(p.lse & 0x100)
        cut_end(m, p.end)
        d = reframe(m, p.cut, 14 + nh.olen + 4 * n)
        if d != NULL:
            for i in range(n):
                memcpy(d + 14 + nh.olen + 4 * i, &st[i], 4)
        if finish_labelled(c, pt, m, d, nh, tc, h):
            nh_tx(c, m, nh, out, out_port, k)
    elif p.act == ACT_XC:
        pw = &c.mpls.pws[p.aux]
        cut_end(m, p.end)
        rte_pktmbuf_adj(m, p.cut)
        tx_enqueue(c, m, pw.ac_port, out, out_port, k)
    else:                                  # ACT_PW
        pw = &c.mpls.pws[p.aux]
        via = pw.via
        h = frame_hash(p.data, p.len, c.groups[via & ~(<uint32_t>NH_GROUP)].fields
                       if via & NH_GROUP else c.entropy_fields, in_port, c.seed)
        nh = pick(c, pt, via, h, m)
        if nh == NULL:
            return
        o = 14 + nh.olen
        n = 4 * nh.n_push
        d = reframe(m, 0, o + n + 4 + 4 * pw.fat + 4 * pw.cw)
        if d != NULL:
            write_push(&c.mpls, d + o, nh, 0, PW_TTL, h, 0)
            o += n
            st[0] = be32(pw.label | (0 if pw.fat else 0x100) | PW_TTL)
            st[1] = be32((entropy_label(h) << 12) | 0x100 | 1)     # FAT: S, TTL 1
            st[2] = 0                                               # control word
            memcpy(d + o, st, 4)
            o += 4
            if pw.fat:
                memcpy(d + o, &st[1], 4)
                o += 4
            if pw.cw:
                memcpy(d + o, &st[2], 4)
        if finish_labelled(c, pt, m, d, nh, 0, h):
            nh_tx(c, m, nh, out, out_port, k)
