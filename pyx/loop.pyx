# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The forwarding core: EAL, mempool, ports, compiled tables and the one nogil poll loop.

Python (dataplane/runtime.py) drives this module; the worker lcore runs `worker()` and
touches no Python object. `Core.process()` pushes frames through the very same
`process_burst()` on real mbufs from the real mempool, for the differential tests.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset, memcmp
from libc.errno cimport errno
from posix.mman cimport mlockall, MCL_CURRENT, MCL_FUTURE

from includes.rte_eal cimport rte_eal_init
from includes.rte_launch cimport rte_eal_remote_launch, rte_eal_wait_lcore
from includes.rte_lcore cimport rte_socket_id
from includes.rte_cycles cimport rte_rdtsc, rte_get_tsc_hz
from includes.rte_memory cimport SOCKET_ID_ANY
from includes.rte_prefetch cimport rte_prefetch0
from includes.rte_mempool cimport (rte_mempool, rte_mempool_in_use_count,
                                   rte_mempool_avail_count)
from includes.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_pool_create, rte_pktmbuf_alloc,
                                rte_pktmbuf_free, rte_pktmbuf_append, rte_pktmbuf_adj,
                                rte_pktmbuf_prepend, rte_pktmbuf_trim,
                                RTE_MBUF_DEFAULT_BUF_SIZE)
from includes.rte_ethdev cimport *
from includes.rte_lpm cimport *
from includes.rte_lpm6 cimport *
from includes.shim cimport (dp_mtod, dp_tx_buffer_size, dp_flag_get, dp_flag_set,
                            dp_ptr_get, dp_ptr_set)
from includes.rte_rcu_qsbr cimport *
from libc.stdint cimport int32_t
from posix.unistd cimport usleep
from errors cimport check, check_ptr
import ipaddress
import numpy as np
from dataplane import ecmp, hashing
from parse cimport *
from route cimport vrf_t, route, NH_NONE, NH_GROUP
from ecmp cimport (group_t, frag_table_t, select_member, follow_fragment, group_hash,
                  group_pkt_hash4,
                  MAX_MEMBERS, NO_MEMBER, MEMBER_REMOVED, MEMBER_ACTIVE, MEMBER_DRAIN)
from hashing cimport key_mask4, key_hash, pkt_hash4, bucket_of, F_L3, F_SYMMETRIC
from rewrite cimport nexthop_t, rewrite, ttl_dec4, TUN_NONE, TUN_UDP, TUN_GRE
from mpls cimport (mpls_t, lfib_entry_t, pw_t, mpls_region, overlay_decap, for_tunnel,
                   transit_hash, frame_hash, entropy_label, write_push, write_outer, be32,
                   MAX_SWAP, A_SWAP, A_POP, A_POP_LOOKUP, A_POP_XC, PW_TTL, PIPE_TTL)
from fatflow cimport fat_rules_t, fat_mask, NO_PREFIX
from flow cimport (flow_table_t, flow_entry_t, emc_slot_t, flow_tcp, flow_age, flow_delete,
                  flow_age_paced, flow_full, key_eq, AGE_SLICE,
                  flow_sig, emc_find, emc_put, EMC_SLOTS, KEY_SLOT, bucket_prefetch)
from includes.rte_hash cimport *
from includes.rte_hash_crc cimport rte_hash_crc
from includes.rte_malloc cimport (rte_malloc_heap_create, rte_malloc_heap_destroy,
                                  rte_malloc_heap_get_socket, rte_malloc_heap_memory_add,
                                  rte_malloc_heap_memory_remove, rte_eal_has_hugepages)
from thp cimport thp_map, thp_unmap, thp_size, HUGE_PAGE
from includes.rte_ring cimport rte_ring, rte_ring_create, rte_ring_free, RING_F_SP_ENQ, RING_F_SC_DEQ
from includes.rte_eth_ring cimport rte_eth_from_ring, rte_eth_from_rings
from rss cimport RSS_SYMMETRIC_KEY
from loopport cimport (pcap_walk_t, pcap_walk, pcap_queues, ring_fill, ring_drain, PCAP_NOT_PCAP,
                       PCAP_TRUNCATED, PCAP_NO_MBUF, PCAP_TOO_LONG, PCAP_RING_FULL)

from consts cimport *
DEF HASH_BYTES_PER_SLOT = 90       # an rte_hash's memory per key slot (docs/flow-table.md §6)

ctypedef struct port_t:
    uint16_t port_id           # DPDK port id
    uint16_t vrf               # VRF index of an L3 port
    uint8_t l3                 # 0: not an L3 port (cross-connect, later issues)
    uint8_t rx                 # 1: the worker polls this port
    uint8_t bound              # 1: a DPDK port is attached
    uint8_t flow_mode          # 1: flow mode (the flow table pins flows); 0: packet mode
    uint16_t pw                # pseudowire of an attachment circuit, NO_PW: none
    uint64_t cnt[N_COUNTERS]   # rx, tx, drops by reason (dataplane/drops.py)
    rte_eth_dev_tx_buffer *txb
    fat_rules_t fat

ctypedef struct tables_t:
    # One published version of the forwarding tables (docs/workers.md): immutable once
    # published; a change builds a new version that shares what it does not change.
    vrf_t *vrfs
    nexthop_t *nhs
    group_t *groups
    mpls_t *mpls               # LFIB, pseudowires, node MPLS settings
    uint64_t version

ctypedef struct shared_t:
    tables_t *current          # workers load it once per loop iteration
    rte_rcu_qsbr *rcu          # each worker reports a quiescent state per iteration

ctypedef struct ctx_t:
    int stop
    uint16_t worker            # worker index = its RX/TX queue on every port
    uint16_t nports
    shared_t *shared
    const tables_t *cur        # the version vrfs/nhs/groups/mpls were taken from
    uint64_t *member_pkts      # [group id * MAX_MEMBERS + member slot]
    uint64_t drain_tsc         # flush TX buffers at least this often
    uint64_t loops
    uint64_t fake_now          # tests: the clock (TSC units); 0 = rte_rdtsc()
    port_t ports[MAX_PORTS]
    vrf_t *vrfs
    nexthop_t *nhs
    group_t *groups
    uint32_t seed              # node hash seed
    uint32_t entropy_fields    # hash fields of a flow's entropy when not via a group
    uint64_t entropy_mask4[2]
    frag_table_t *frag
    flow_table_t flows
    mpls_t mpls                # the version's settings; el_not_readable is this worker's
    # MPLS work is called through pointers so that the compiler keeps it out of the IP
    # fast path's loops (inlined, it costs the plain IP path ~15 % in register pressure)
    int (*on_region)(const mpls_t *mp, pkt_t *p, uint32_t off, uint32_t end,
                     uint16_t vrf) noexcept nogil
    int (*on_decap)(const mpls_t *mp, pkt_t *p, uint16_t vrf) noexcept nogil
    void (*on_mpls)(void *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                    rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil
    bint (*on_push)(void *c, port_t *pt, rte_mbuf *m, const pkt_t *p, const nexthop_t *nh,
                    uint32_t h) noexcept nogil

assert D_TX_FULL - D_PARSE_ERROR == 6 and D_FLOW_TABLE_FULL == D_TX_FULL + 1
assert D_MPLS_TTL_EXPIRED == D_NO_LFIB_ENTRY + 1 == D_FLOW_TABLE_FULL + 2
DEF NO_PW = 0xffff


cdef inline void tables_refresh(ctx_t *c) noexcept nogil:
    """Take the published table version (once per loop iteration; the version stays
    valid until this worker's next quiescent report)."""
    cdef const tables_t *t = <const tables_t *>dp_ptr_get(<void **>&c.shared.current)
    cdef uint64_t el
    if t != c.cur:
        c.cur = t
        c.vrfs = t.vrfs
        c.nhs = t.nhs
        c.groups = t.groups
        el = c.mpls.el_not_readable
        c.mpls = t.mpls[0]
        c.mpls.el_not_readable = el


cdef inline uint64_t clock_now(const ctx_t *c) noexcept nogil:
    return c.fake_now if c.fake_now else rte_rdtsc()


cdef inline void drop(port_t *pt, rte_mbuf *m, int reason) noexcept nogil:
    """Free a packet and count it under its drop reason on the ingress port."""
    pt.cnt[reason] += 1
    rte_pktmbuf_free(m)


cdef inline int ingress(ctx_t *c, const port_t *pt, pkt_t *p) noexcept nogil:
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
        return c.on_region(&c.mpls, p, p.l2_len, p.len, pt.vrf)
    if c.mpls.tun_family and (r == 0 or r == D_TTL_EXPIRED) and for_tunnel(&c.mpls, p):
        return c.on_decap(&c.mpls, p, pt.vrf)
    return r


cdef inline uint8_t *reframe(rte_mbuf *m, uint32_t keep, uint32_t hdr) noexcept nogil:
    """Drop the first `keep` bytes and make room for `hdr` new ones (NULL: no room)."""
    if keep >= hdr:
        return <uint8_t *>rte_pktmbuf_adj(m, <uint16_t>(keep - hdr))
    return <uint8_t *>rte_pktmbuf_prepend(m, <uint16_t>(hdr - keep))


cdef inline void cut_end(rte_mbuf *m, uint32_t end) noexcept nogil:
    """Drop what follows byte `end` (an overlay's Ethernet padding, an IP packet's
    padding before it goes into a tunnel)."""
    if end and end < m.data_len:
        rte_pktmbuf_trim(m, <uint16_t>(m.data_len - end))


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


cdef inline bint finish_labelled(ctx_t *c, port_t *pt, rte_mbuf *m, uint8_t *d,
                                 const nexthop_t *nh, uint32_t tc, uint32_t h) noexcept nogil:
    """Ethernet (EtherType 0x8847) or the overlay in front of a label region that is
    already written at d + 14 + nh.olen; d NULL: no headroom (never with 128 bytes)."""
    if d == NULL:
        drop(pt, m, D_UNSUPPORTED)
        return 0
    if nh.tunnel != TUN_NONE:
        write_outer(d, nh, m.data_len - 14 - nh.olen, tc, h)
    else:
        memcpy(d, nh.eth, 12)
        d[12] = 0x88
        d[13] = 0x47
    return 1


cdef inline void stage(ctx_t *c, rte_mbuf *m, uint16_t port, rte_mbuf **out,
                       uint16_t *out_port, uint16_t *k) noexcept nogil:
    out[k[0]] = m
    out_port[k[0]] = port
    c.ports[port].cnt[C_TX] += 1
    k[0] += 1


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
            stage(c, m, nh.port, out, out_port, k)
    elif p.act == ACT_XC:
        pw = &c.mpls.pws[p.aux]
        cut_end(m, p.end)
        rte_pktmbuf_adj(m, p.cut)
        stage(c, m, pw.ac_port, out, out_port, k)
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
            stage(c, m, nh.port, out, out_port, k)


cdef void emit_mpls_cb(void *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                       rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    emit_mpls(<ctx_t *>c, pt, m, p, in_port, out, out_port, k)


cdef int region_cb(const mpls_t *mp, pkt_t *p, uint32_t off, uint32_t end,
                   uint16_t vrf) noexcept nogil:
    return mpls_region(mp, p, off, end, vrf)


cdef int decap_cb(const mpls_t *mp, pkt_t *p, uint16_t vrf) noexcept nogil:
    return overlay_decap(mp, p, vrf)


cdef inline uint32_t entropy_hash(const ctx_t *c, const port_t *pt, const pkt_t *p,
                                  flow_key_t *key, uint16_t in_port) noexcept nogil:
    """The flow entropy of a packet routed via a next hop (not a group) with no flow
    entry: what its entry would store (docs/flow-table.md §3)."""
    if p.family == 4 and not p.frag and pt.fat.n_rules == 0:     # same bytes, no key
        return pkt_hash4(p, in_port, c.entropy_fields, c.entropy_mask4, c.seed)
    build_key(p, p.vrf, key)
    if pt.fat.n_rules:
        fat_mask(&pt.fat, key)
    return key_hash(key, in_port, p.flow_label, c.entropy_fields, c.entropy_mask4, c.seed)


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


cdef bint push_cb(void *c, port_t *pt, rte_mbuf *m, const pkt_t *p, const nexthop_t *nh,
                  uint32_t h) noexcept nogil:
    return push_ip(<ctx_t *>c, pt, m, p, nh, h)


cdef inline uint16_t process_burst(ctx_t *c, uint16_t in_port, rte_mbuf **pkts, uint16_t n,
                                   rte_mbuf **out, uint16_t *out_port) noexcept nogil:
    """A burst from port in_port: packet-mode ports take the one-pass path, flow-mode
    ports the bulk flow-table path (chosen per burst, never per packet)."""
    if c.ports[in_port].flow_mode:
        return flow_burst(c, in_port, pkts, n, out, out_port)
    return packet_burst(c, in_port, pkts, n, out, out_port)


cdef inline uint32_t stateless_hash(const ctx_t *c, const port_t *pt, const group_t *g,
                                    const pkt_t *p, flow_key_t *key,
                                    uint16_t in_port) noexcept nogil:
    """The group hash of a packet without a flow-table lookup (packet mode, non-first
    fragments): plain IPv4 straight from the packet; otherwise the key is built (and
    fat-flow masked) only now, when a group needs it."""
    if p.family == 4 and not p.frag and pt.fat.n_rules == 0:
        return group_pkt_hash4(g, p, in_port, c.seed, not g.frag_follow)
    build_key(p, p.vrf, key)
    if pt.fat.n_rules:
        fat_mask(&pt.fat, key)
    return group_hash(g, key, in_port, p.flow_label, c.seed, not g.frag_follow)


cdef inline void emit(ctx_t *c, port_t *pt, group_t *g, uint16_t mem, uint32_t nh_id,
                      rte_mbuf *m, const pkt_t *p, uint32_t h, bint have_h, flow_key_t *key,
                      uint16_t in_port, rte_mbuf **out, uint16_t *out_port,
                      uint16_t *k) noexcept nogil:
    """The end of every routed packet's path: the group member's (or route's) next hop,
    rewrite or push, stage for TX; a group with no member left drops it as no_route.
    h: the flow entropy when have_h (a flow entry's, or the group hash)."""
    cdef const nexthop_t *nh
    if g != NULL:
        if mem == NO_MEMBER:
            drop(pt, m, D_NO_ROUTE)
            return
        c.member_pkts[g.id * MAX_MEMBERS + mem] += 1
        nh_id = g.member_nh[mem]
    nh = &c.nhs[nh_id]
    if nh.n_push == 0 and nh.tunnel == TUN_NONE:
        cut_end(m, p.end)
        rewrite(m, p, nh)
    else:
        if not have_h:
            h = entropy_hash(c, pt, p, key, in_port)
        if not c.on_push(c, pt, m, p, nh, h):
            return
    stage(c, m, nh.port, out, out_port, k)


cdef inline uint16_t packet_burst(ctx_t *c, uint16_t in_port, rte_mbuf **pkts, uint16_t n,
                                  rte_mbuf **out, uint16_t *out_port) noexcept nogil:
    """Packet mode: parse, route, group member by the hash, rewrite; no state."""
    cdef port_t *pt = &c.ports[in_port]
    cdef pkt_t p
    cdef flow_key_t key
    cdef rte_mbuf *m
    cdef uint32_t nh_id, gid, h = 0
    cdef uint16_t i, k = 0, mem
    cdef group_t *g
    cdef int r
    cdef uint64_t now = 0
    pt.cnt[C_RX] += n
    for i in range(n):
        m = pkts[i]
        if i + 2 < n:
            rte_prefetch0(dp_mtod(pkts[i + 2]))
        memset(&p, 0, sizeof(pkt_t))
        p.data = dp_mtod(m)
        p.len = m.data_len
        r = ingress(c, pt, &p)
        if r == 0:
            if p.act != ACT_IP:
                c.on_mpls(c, pt, m, &p, in_port, out, out_port, &k)
                continue
            r = route(&c.vrfs[p.vrf], &p, &nh_id)
        if r:
            drop(pt, m, r)
            continue
        if nh_id & NH_GROUP:
            gid = nh_id & ~(<uint32_t>NH_GROUP)
            g = &c.groups[gid]
            h = stateless_hash(c, pt, g, &p, &key, in_port)
            if p.frag and now == 0:
                now = clock_now(c)
            mem = select_member(g, gid, &p, &key, in_port, c.seed, c.frag, now, h)
        else:
            g = NULL
        emit(c, pt, g, mem, nh_id, m, &p, h, g != NULL, &key, in_port, out, out_port, &k)
    return k


cdef inline uint16_t flow_burst(ctx_t *c, uint16_t in_port, rte_mbuf **pkts, uint16_t n,
                                rte_mbuf **out, uint16_t *out_port) noexcept nogil:
    """Flow mode: parse, one bulk flow-table lookup, then per packet the entry's
    decision or route + hash + insert; rewrite (docs/flow-table.md)."""
    cdef port_t *pt = &c.ports[in_port]
    cdef flow_table_t *ft = &c.flows
    cdef pkt_t P[BURST]
    cdef flow_key_t K[BURST]
    cdef int res[BURST]
    cdef int32_t at[BURST]         # flow table position per packet, -1 = no entry
    cdef const void *kp[BURST]
    cdef uint32_t sig[BURST]
    cdef int32_t pos[BURST]
    cdef uint8_t agg[BURST]        # 1: a fat-flow rule masked the key
    cdef uint32_t csig[BURST]      # entries created in this burst: sig, packet, position
    cdef uint16_t cidx[BURST]
    cdef int32_t cpos[BURST]
    cdef uint16_t nc = 0
    cdef uint8_t cslot[64]         # signature & 63 → the last entry created there,
    cdef uint8_t cnext[BURST]      # and each created entry's predecessor (0xff: none)
    cdef uint16_t idx[BURST]
    cdef uint32_t ksig[BURST]      # signatures of the keyed packets, kidx their index
    cdef uint16_t kidx[BURST]
    cdef uint16_t nkeyed = 0
    cdef pkt_t *p
    cdef flow_key_t *key
    cdef flow_entry_t *e
    cdef rte_mbuf *m
    cdef uint32_t nh_id, gid, h
    cdef uint16_t i, j, k = 0, nk = 0, mem
    cdef group_t *g
    cdef int r
    cdef int32_t a, fresh
    cdef bint lookup, insert, direct, early
    cdef uint64_t now = clock_now(c)
    pt.cnt[C_RX] += n
    # mostly new flows in the last burst: no EMC and no bulk lookup; step 3 inserts-or-
    # finds each key with one rte_hash_add (it returns the position of a key already
    # there; a valid entry there is a hit)
    direct = ft.direct and not flow_full(ft)
    early = direct or ft.emc_missed      # all EMC hits lately: no bucket prefetch
    # 1. parse, build and mask the flow keys
    for i in range(n):
        m = pkts[i]
        if i + 2 < n:
            rte_prefetch0(dp_mtod(pkts[i + 2]))
        p = &P[i]
        memset(p, 0, sizeof(pkt_t))
        p.data = dp_mtod(m)
        p.len = m.data_len
        at[i] = -1
        res[i] = ingress(c, pt, p)
        if res[i] == 0 and p.act == ACT_IP and p.l4:   # non-first fragments: no table
            build_key(p, p.vrf, &K[i])
            agg[i] = fat_mask(&pt.fat, &K[i]) if pt.fat.n_rules else 0   # no call
            ksig[nkeyed] = flow_sig(&K[i])
            if not direct:
                rte_prefetch0(&ft.emc[ksig[nkeyed] & (EMC_SLOTS - 1)])
            if early:
                bucket_prefetch(ft, ksig[nkeyed])
            kidx[nkeyed] = i
            nkeyed += 1
    # 2. the exact-match cache, then one bulk lookup for the rest of the burst
    for j in range(nkeyed):
        i = kidx[j]
        a = -1 if direct else emc_find(ft, &K[i], ksig[j])
        if a >= 0:                                 # cached: no rte_hash lookup
            at[i] = a
            continue
        kp[nk] = &K[i]
        sig[nk] = ksig[j]
        idx[nk] = i
        nk += 1
    ft.emc_missed = nk != 0
    if nk and direct:
        for j in range(nk):
            res[idx[j]] = -1 - <int>j
    elif nk:
        rte_hash_lookup_with_hash_bulk(ft.h, kp, sig, nk, pos)
        for j in range(nk):
            at[idx[j]] = pos[j]
            res[idx[j]] = -1 - <int>j if pos[j] < 0 else 0    # a miss remembers its sig
            if pos[j] >= 0:
                emc_put(ft, &K[idx[j]], sig[j], pos[j])
    # 3. decide, rewrite, stage
    memset(cslot, 0xff, sizeof(cslot))
    for i in range(n):
        m = pkts[i]
        r = res[i]
        if r > 0:
            drop(pt, m, r)
            continue
        p = &P[i]
        if p.act != ACT_IP:
            c.on_mpls(c, pt, m, p, in_port, out, out_port, &k)
            continue
        key = &K[i]
        mem = NO_MEMBER
        g = NULL
        e = NULL
        h = 0
        lookup = p.l4
        # a first fragment uses its flow's entry but never makes one: RSS sends fragments
        # by addresses only, maybe to another worker than the flow's (docs/workers.md §3)
        insert = lookup and not p.frag
        fresh = -1
        if at[i] >= 0:
            e = &ft.entries[at[i]]
        elif lookup and direct:
            if flow_full(ft) or not insert:
                a = rte_hash_lookup_with_hash(ft.h, key, sig[-1 - r])
            else:
                a = rte_hash_add_key_with_hash(ft.h, key, sig[-1 - r])
            if a >= 0:
                if ft.entries[a].valid:
                    e = &ft.entries[a]
                elif insert:
                    fresh = a              # a new slot: filled below, or given back
        elif lookup and nc:
            # a packet of a flow created earlier in this burst is a hit (no route lookup):
            # created entries are chained by their signature's low bits
            j = cslot[sig[-1 - r] & 63]
            while j != 0xff:
                if csig[j] == sig[-1 - r] and key_eq(&K[cidx[j]], key):
                    e = &ft.entries[cpos[j]]
                    break
                j = cnext[j]
        if e != NULL:
            nh_id = e.nh_id
            h = e.hash
            if nh_id & NH_GROUP:
                gid = nh_id & ~(<uint32_t>NH_GROUP)
                g = &c.groups[gid]
                mem = e.member
                if g.member_state[mem] == MEMBER_REMOVED:
                    if g.n_buckets:            # else: no_route, entry kept as it is
                        mem = g.buckets[bucket_of(e.hash, g.n_buckets)]
                        e.member = mem
                        ft.rehashed += 1
                    else:
                        mem = NO_MEMBER
                if p.frag and g.frag_follow and mem != NO_MEMBER:
                    follow_fragment(g, gid, p, key, in_port, c.seed, c.frag, now, mem, 0)
        else:
            r = route(&c.vrfs[p.vrf], p, &nh_id)
            if r:
                unclaim(ft, key, sig, res[i], fresh)
                drop(pt, m, r)
                continue
            if nh_id & NH_GROUP:
                gid = nh_id & ~(<uint32_t>NH_GROUP)
                g = &c.groups[gid]
                if lookup:
                    h = group_hash(g, key, in_port, p.flow_label, c.seed, not g.frag_follow)
                else:
                    h = stateless_hash(c, pt, g, p, key, in_port)
                mem = select_member(g, gid, p, key, in_port, c.seed, c.frag, now, h)
                if mem == NO_MEMBER:           # every member drained: no entry
                    unclaim(ft, key, sig, res[i], fresh)
                    drop(pt, m, D_NO_ROUTE)
                    continue
            if insert:
                if fresh >= 0:
                    a = fresh
                else:
                    a = -1 if flow_full(ft) else \
                        rte_hash_add_key_with_hash(ft.h, key, sig[-1 - res[i]])
                if a < 0:
                    ft.full += 1
                    if ft.on_full_drop:
                        drop(pt, m, D_FLOW_TABLE_FULL)
                        continue
                else:
                    e = &ft.entries[a]
                    memset(e, 0, sizeof(flow_entry_t))
                    e.valid = 1
                    ft.next_gen += 1
                    if ft.next_gen == 0:           # 0 marks an empty EMC slot
                        ft.next_gen = 1
                    e.gen = ft.next_gen
                    e.sig = sig[-1 - res[i]]
                    e.aggregate = agg[i]
                    e.nh_id = nh_id
                    e.member = mem
                    e.in_port = in_port
                    e.first_seen = now
                    if g == NULL:
                        h = key_hash(key, in_port, p.flow_label, c.entropy_fields,
                                     c.entropy_mask4, c.seed)
                    e.hash = h
                    ft.created += 1
                    csig[nc] = sig[-1 - res[i]]
                    cidx[nc] = i
                    cpos[nc] = a
                    cnext[nc] = cslot[csig[nc] & 63]
                    cslot[csig[nc] & 63] = <uint8_t>nc
                    nc += 1
        if e != NULL:
            e.packets += 1
            e.bytes += m.pkt_len
            e.last_seen = now
            if p.proto == 6 and p.tcp_flags & 0x05 and not e.aggregate:
                flow_tcp(ft, e, key, p.tcp_flags, now)
        emit(c, pt, g, mem, nh_id, m, p, h, e != NULL or g != NULL, key, in_port,
             out, out_port, &k)
    ft.direct = nc * 4 > nkeyed * 3
    return k


cdef inline void unclaim(flow_table_t *ft, const flow_key_t *key, const uint32_t *sig,
                         int r, int32_t fresh) noexcept nogil:
    """Give back a slot that rte_hash_add gave a packet that then made no entry."""
    if fresh >= 0:
        rte_hash_del_key_with_hash(ft.h, key, sig[-1 - r])


cdef uint32_t flow_sig_fn(const void *key, uint32_t key_len,
                          uint32_t init_val) noexcept nogil:
    """rte_hash's hash_func for the flow table: flow_sig(), which the fast path inlines."""
    return flow_sig(<const flow_key_t *>key)


cdef void tx_refused(rte_mbuf **pkts, uint16_t unsent, void *userdata) noexcept nogil:
    """TX buffer error callback: the PMD refused `unsent` packets; free and count them."""
    cdef uint64_t *cnt = <uint64_t *>userdata
    cdef uint16_t i
    for i in range(unsent):
        rte_pktmbuf_free(pkts[i])
    cnt[D_TX_FULL] += unsent
    cnt[C_TX] -= unsent


cdef inline void flush_all(ctx_t *c) noexcept nogil:
    cdef uint16_t i
    for i in range(c.nports):
        if c.ports[i].bound:
            rte_eth_tx_buffer_flush(c.ports[i].port_id, c.worker, c.ports[i].txb)


cdef int worker(void *arg) noexcept nogil:
    """The poll loop: RX burst → process → buffered TX, drained on a TSC timer."""
    cdef ctx_t *c = <ctx_t *>arg
    cdef rte_mbuf *pkts[BURST]
    cdef rte_mbuf *out[BURST]
    cdef uint16_t out_port[BURST]
    cdef uint16_t i, j, n, k
    cdef port_t *dst
    cdef uint64_t now, last = rte_rdtsc()
    cdef rte_rcu_qsbr *rcu = c.shared.rcu
    cdef uint16_t q = c.worker
    c.flows.age_next = last
    rte_rcu_qsbr_thread_online(rcu, q)
    while not dp_flag_get(&c.stop):
        tables_refresh(c)
        for i in range(c.nports):
            if not c.ports[i].rx:
                continue
            n = rte_eth_rx_burst(c.ports[i].port_id, q, pkts, BURST)
            if n == 0:
                continue
            for j in range(n):         # mbufs from a ring (a loopback port) come cold
                rte_prefetch0(pkts[j])
            k = process_burst(c, i, pkts, n, out, out_port)
            if k == 0:
                continue
            dst = &c.ports[out_port[0]]
            j = 1
            while j < k and out_port[j] == out_port[0]:
                j += 1
            if j == k and k >= BURST // 2 and dst.txb.length == 0:
                # half a burst or more to one port, nothing buffered before it: straight
                # to the PMD, as testpmd does (order kept; what it refuses is tx_full)
                j = rte_eth_tx_burst(dst.port_id, q, out, k)
                if j < k:
                    tx_refused(out + j, k - j, <void *>dst.cnt)
                continue
            for j in range(k):
                dst = &c.ports[out_port[j]]
                rte_eth_tx_buffer(dst.port_id, q, dst.txb, out[j])
        now = rte_rdtsc()
        if now - last > c.drain_tsc:
            flush_all(c)
            last = now
        if c.flows.capacity:
            flow_age_paced(&c.flows, now)
        c.loops += 1
        rte_rcu_qsbr_quiescent(rcu, q)     # no table pointer held past this point
    rte_rcu_qsbr_thread_offline(rcu, q)
    flush_all(c)
    return 0


# ---------------------------------------------------------------- process-wide state

cdef bint _eal_ready = False
cdef rte_mempool *_pool = NULL
cdef void *_pool_mem = NULL           # its huge-page heap with --no-huge
cdef size_t _pool_len = 0
cdef unsigned _table_seq = 0          # rte_lpm names must be unique per process


NO_TABLE = object()            # a group whose members are all drained or removed
FAT_PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1}


def outer_template(bytes eth, src, tunnel):
    """A tunnel next hop's Ethernet + outer IP + UDP/GRE header with the per-packet
    fields (TOS/traffic class, lengths, checksums, UDP source port) zero, and the sum of
    the IPv4 header's 16-bit words (the checksum is finished per packet)."""
    udp = tunnel.type == "mpls-udp"
    proto = 17 if udp else 47
    l4 = (bytes(2) + (6635).to_bytes(2, "big") + bytes(4)) if udp else b"\0\0\x88\x47"
    if tunnel.remote.version == 4:
        ip = bytes([0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0]) + src.packed + \
            tunnel.remote.packed
        return eth + b"\x08\x00" + ip + l4, sum(int.from_bytes(ip[i:i + 2], "big")
                                                 for i in range(0, 20, 2))
    ip = bytes([0x60, 0, 0, 0, 0, 0, proto, 64]) + src.packed + tunnel.remote.packed
    return eth + b"\x86\xdd" + ip + l4, 0


def eal_init(list args):
    """Initialize EAL once per process with argv `args` (args[0] is the program name)."""
    global _eal_ready
    if _eal_ready:
        from dataplane.errors import DataplaneError
        raise DataplaneError("rte_eal_init: EAL is already initialized in this process", 114,
                             "Operation already in progress")
    cdef list enc = [a.encode() for a in args]
    cdef int argc = len(enc), i
    cdef char **argv = <char **>malloc((argc + 1) * sizeof(char *))
    for i in range(argc):
        argv[i] = enc[i]
    argv[argc] = NULL
    try:
        check(rte_eal_init(argc, argv), "rte_eal_init(" + " ".join(args[1:]) + ")", True)
    finally:
        free(argv)                    # EAL copies what it keeps
    _eal_ready = True


def lock_memory():
    """Lock the process's pages, now and future, as testpmd does by default: with
    --no-huge EAL memory (and the flow table) would otherwise be faulted in, page by
    page, by the worker while it sets up flows. 0, or the errno of mlockall()."""
    if mlockall(MCL_CURRENT | MCL_FUTURE) == 0:
        return 0
    return errno


def eal_ready():
    return _eal_ready


cdef int thp_heap(bytes name, size_t want, str what, void **mem, size_t *size,
                  size_t extra=0) except -1:
    """An external malloc heap `name` over at least `want` bytes of memory on transparent
    huge pages (thp.pxd), for DPDK objects that --no-huge would put on 4 KiB pages; its
    socket id. Memory the machine does not have (`extra`: what the caller maps besides)
    is a clear error, not the OOM killer."""
    cdef size_t n = thp_size(want)
    avail = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) << 10
    if avail and n + extra > avail:
        from dataplane.errors import DataplaneError
        raise DataplaneError(f"{what}: {(n + extra) >> 20} MiB on huge pages, {avail >> 20} MiB "
                             "available", 12, "Cannot allocate memory")
    mem[0] = thp_map(n)
    if mem[0] == NULL:
        from dataplane.errors import DataplaneError
        raise DataplaneError(f"{what}: mmap of {n >> 20} MiB", errno, "mmap failed")
    size[0] = n
    check(rte_malloc_heap_create(name), f"rte_malloc_heap_create({name.decode()})", True)
    check(rte_malloc_heap_memory_add(name, mem[0], n, NULL, n // HUGE_PAGE, HUGE_PAGE),
          f"rte_malloc_heap_memory_add({name.decode()}, {n >> 20} MiB)", True)
    return rte_malloc_heap_get_socket(name)


def pool_create(unsigned n=8192, unsigned data_room=RTE_MBUF_DEFAULT_BUF_SIZE,
                unsigned cache=256):
    """The process's mbuf pool (created once; later calls return its size)."""
    global _pool, _pool_mem, _pool_len
    cdef int socket = rte_socket_id()
    if _pool == NULL:
        if not rte_eal_has_hugepages():
            # --no-huge: the pool on transparent huge pages (a net_pcap source keeps the
            # whole pcap in mbufs; on 4 KiB pages every few packets missed the TLB)
            socket = thp_heap(b"dp_mbufs", <size_t>n * (data_room + 384) + 8 * n + (16 << 20),
                              f"mbuf pool dp_mbufs (n={n})", &_pool_mem, &_pool_len)
        _pool = <rte_mempool *>check_ptr(
            rte_pktmbuf_pool_create(b"dp_mbufs", n, cache, 0, data_room, socket),
            f"rte_pktmbuf_pool_create(dp_mbufs, n={n})")
    return rte_mempool_in_use_count(_pool) + rte_mempool_avail_count(_pool)


def pool_in_use():
    """mbufs currently out of the pool (leak checks: must return to its start value)."""
    if _pool == NULL:
        return 0
    return rte_mempool_in_use_count(_pool)


# ---------------------------------------------------------------- loopback ports

cdef rte_ring *_loop_rings[MAX_PORTS * MAX_WORKERS]
cdef int _nloop = 0

PCAP_ERRORS = {PCAP_NOT_PCAP: "not a classic pcap file (pcapng is not supported here)",
               PCAP_TRUNCATED: "truncated: a record runs past the end of the file",
               PCAP_NO_MBUF: "mbuf pool exhausted", PCAP_TOO_LONG: "frame longer than an mbuf",
               PCAP_RING_FULL: "ring full"}


def pcap_frames(bytes data):
    """(frames, longest frame, link type) of a classic pcap file held in `data`; a
    malformed file raises ValueError."""
    cdef pcap_walk_t w
    cdef const uint8_t *b = <const uint8_t *><const char *>data
    cdef size_t n = len(data)
    cdef int r
    with nogil:
        r = pcap_walk(b, n, &w)
    if r:
        raise ValueError(f"{PCAP_ERRORS[r]} (after {w.frames} frames)")
    return w.frames, w.longest, w.linktype


def loop_port(str name, bytes data, int workers=1):
    """A net_ring port with one rte_ring per worker, each both that worker's RX and TX
    queue, filled with the pcap `data`'s frames (in mbufs of the pool) that RSS gives
    that worker: what a worker transmits on it, it receives again. Its DPDK device name
    (for Core.bind_port)."""
    global _nloop
    cdef pcap_walk_t w
    cdef const uint8_t *b = <const uint8_t *><const char *>data
    cdef size_t n = len(data)
    cdef unsigned size
    cdef int r
    cdef uint64_t counts[MAX_WORKERS]
    cdef rte_ring *rings[MAX_WORKERS]
    cdef char dev[64]
    if _pool == NULL:
        raise RuntimeError("pool_create() must run before loop_port()")
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"1 to {MAX_WORKERS} workers")
    if _nloop + workers > MAX_PORTS * MAX_WORKERS:
        raise ValueError(f"at most {MAX_PORTS} loopback ports")
    pcap_frames(data)
    memset(counts, 0, sizeof(counts))
    with nogil:
        pcap_queues(b, n, workers, &w, counts)
    for q in range(workers):
        size = 2
        while size <= counts[q]:       # capacity is size - 1: every mbuf fits back in
            size <<= 1
        rings[q] = <rte_ring *>check_ptr(
            rte_ring_create(f"{name}_q{q}".encode(), size, SOCKET_ID_ANY,
                            RING_F_SP_ENQ | RING_F_SC_DEQ),
            f"rte_ring_create({name}_q{q}, {size})")
        _loop_rings[_nloop] = rings[q]  # loop_ports_free() drains and frees it
        _nloop += 1
    w.frames = 0
    with nogil:
        r = ring_fill(rings, workers, _pool, b, n, &w)
    if r:
        raise ValueError(f"{name}: frame {w.frames}: {PCAP_ERRORS[r]}")
    pid = check(rte_eth_from_rings(name.encode(), rings, workers, rings, workers,
                                   rte_socket_id()), f"rte_eth_from_rings({name})", True)
    check(rte_eth_dev_get_name_by_port(pid, dev), "rte_eth_dev_get_name_by_port")
    return dev.decode()


def loop_ports_free():
    """Drain and free the loopback rings (worker stopped, ports closed: net_ring leaves
    caller-owned rings alone); the mbufs they still held."""
    global _nloop
    cdef uint64_t total = 0
    while _nloop:
        _nloop -= 1
        total += ring_drain(_loop_rings[_nloop])
        rte_ring_free(_loop_rings[_nloop])
    return total


def tsc_hz():
    return rte_get_tsc_hz()


def counter_slots():
    """(rx, tx, first drop slot, number of slots) so Python can name the counters."""
    return C_RX, C_TX, D_PARSE_ERROR, N_COUNTERS


cdef uint16_t fill_burst(rte_mbuf **pkts, list frames, uint16_t in_port) except? 0xffff:
    """Fresh mbufs holding `frames` (at most a burst), as if received on in_port; on
    failure none is kept."""
    cdef uint16_t n = 0, j
    cdef char *dst
    cdef bytes f
    try:
        for f in frames:
            pkts[n] = rte_pktmbuf_alloc(_pool)
            if pkts[n] == NULL:
                raise MemoryError("mbuf pool exhausted")
            n += 1
            dst = rte_pktmbuf_append(pkts[n - 1], len(f))
            if dst == NULL:
                raise ValueError(f"frame of {len(f)} bytes does not fit an mbuf")
            memcpy(dst, <const char *>f, len(f))
            pkts[n - 1].port = in_port
    except BaseException:
        for j in range(n):
            rte_pktmbuf_free(pkts[j])
        raise
    return n


cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


cdef void free_vrf(vrf_t *v) noexcept nogil:
    if v.lpm4 != NULL:
        rte_lpm_free(v.lpm4)
    if v.lpm6 != NULL:
        rte_lpm6_free(v.lpm6)
    v.lpm4 = NULL
    v.lpm6 = NULL


cdef class Core:
    """The compiled tables (one published version, docs/workers.md) and the workers that
    read them: one context per worker lcore with its own flow table, fragment table,
    TX buffers and counters."""
    cdef ctx_t *w[MAX_WORKERS]
    cdef int nworkers
    cdef shared_t shared
    cdef tables_t *t               # the current version (being built until live)
    cdef bint live                 # published: changes are copy-on-write + grace period
    cdef int nvrfs, nnhs, ngroups
    cdef list launched             # lcores of the running workers
    cdef object cfg
    cdef dict _groups
    cdef dict _routes              # vrf index → {prefix: next-hop id}
    cdef list heaps                # per worker: the flow table's malloc heap (--no-huge)
    cdef void *heap_mem[MAX_WORKERS]
    cdef size_t heap_len[MAX_WORKERS]
    cdef public uint64_t grace_waits   # grace periods waited (tests, stats)

    def __cinit__(self):
        self.launched = []
        self.t = <tables_t *>calloc(1, sizeof(tables_t))
        if self.t == NULL:
            raise MemoryError()
        self.t.mpls = <mpls_t *>calloc(1, sizeof(mpls_t))
        if self.t.mpls == NULL:
            raise MemoryError()
        self.shared.current = self.t

    def __init__(self, cfg, drain_us=100, int workers=1):
        if _pool == NULL:
            raise RuntimeError("pool_create() must run before Core()")
        if len(cfg.ports) > MAX_PORTS:
            raise ValueError(f"at most {MAX_PORTS} ports")
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"1 to {MAX_WORKERS} workers, got {workers}")
        self.cfg = cfg
        self.heaps = [None] * workers
        cdef size_t sz = rte_rcu_qsbr_get_memsize(workers)
        cdef void *mem = NULL
        if posix_memalign(&mem, 64, sz) != 0:
            raise MemoryError()
        memset(mem, 0, sz)
        self.shared.rcu = <rte_rcu_qsbr *>mem
        check(rte_rcu_qsbr_init(self.shared.rcu, workers), "rte_rcu_qsbr_init", True)
        for i in range(workers):
            check(rte_rcu_qsbr_thread_register(self.shared.rcu, i),
                  "rte_rcu_qsbr_thread_register", True)
        cdef ctx_t *c
        entropy = hashing.field_mask(hashing.FIELD_BITS.keys() - {"flow_label",
                                                                   "ingress_port"})
        for i in range(workers):
            c = self.w[i] = <ctx_t *>calloc(1, sizeof(ctx_t))
            if c == NULL:
                raise MemoryError()
            self.nworkers = i + 1
            c.worker = i
            c.shared = &self.shared
            c.drain_tsc = rte_get_tsc_hz() * drain_us // 1000000
            c.nports = len(cfg.ports)
            c.seed = cfg.node.seed
            c.on_region = region_cb
            c.on_decap = decap_cb
            c.on_mpls = emit_mpls_cb
            c.on_push = push_cb
            c.frag = <frag_table_t *>calloc(1, sizeof(frag_table_t))
            if c.frag == NULL:
                raise MemoryError()
            c.frag.timeout_tsc = rte_get_tsc_hz() * 2
            c.entropy_fields = entropy
            key_mask4(c.entropy_fields, c.entropy_mask4)
            for p in cfg.ports:
                c.ports[p.index].l3 = p.vrf is not None
                c.ports[p.index].vrf = p.vrf_index if p.vrf is not None else 0
                c.ports[p.index].flow_mode = p.mode == "flow"
                c.ports[p.index].pw = NO_PW if p.xconnect_index is None else p.xconnect_index
                self._build_fat(p, &c.ports[p.index].fat)
        self._build_nexthops(cfg)
        self._build_groups(cfg)
        self._build_vrfs(cfg)
        self._build_mpls(cfg)
        for i in range(workers):
            self.w[i].member_pkts = <uint64_t *>calloc(max(1, self.ngroups) * MAX_MEMBERS,
                                                       sizeof(uint64_t))
            if self.w[i].member_pkts == NULL:
                raise MemoryError()
        if any(p.mode == "flow" and p.vrf is not None for p in cfg.ports):
            for i in range(workers):
                self._build_flow_table(cfg.flow_table, i)
        self.live = True
        for i in range(workers):
            tables_refresh(self.w[i])

    @property
    def workers(self):
        return self.nworkers

    @property
    def version(self):
        return self.t.version

    cdef _build_fat(self, p, fat_rules_t *fr):
        rules = list(getattr(p, "fat_flows", None) or [])
        excl = list(getattr(p, "fat_flow_exclude", None) or [])
        if len(rules) > MAX_FAT_RULES or len(excl) > MAX_FAT_EXCLUDE:
            raise ValueError(f"port {p.name}: at most {MAX_FAT_RULES} fat-flow rules and "
                             f"{MAX_FAT_EXCLUDE} exclude prefixes")
        fr.n_rules = len(rules)
        for i, r in enumerate(rules):
            proto = FAT_PROTOS.get(r.proto, r.proto)
            fr.rules[i].proto = 1 if proto in (1, 58) else proto
            fr.rules[i].port = r.port
            fr.rules[i].ignore = {"none": 0, "src": 1, "dst": 2}[r.ignore or "none"]
            fr.rules[i].src_plen = NO_PREFIX if r.src_prefix_len is None else r.src_prefix_len
            fr.rules[i].dst_plen = NO_PREFIX if r.dst_prefix_len is None else r.dst_prefix_len
        fr.n_exclude = len(excl)
        for i, net in enumerate(excl):
            fr.exclude[i].family = net.version
            fr.exclude[i].plen = net.prefixlen
            a = net.network_address.packed
            for b in range(len(a)):
                fr.exclude[i].addr[b] = a[b]

    # ------------------------------------------------------------------ flow tables

    cdef _build_flow_table(self, spec, int w):
        global _table_seq
        cdef rte_hash_parameters hp
        cdef flow_table_t *ft = &self.w[w].flows
        _table_seq += 1
        name = f"flows_{_table_seq}".encode()
        memset(&hp, 0, sizeof(hp))
        hp.name = name
        # twice the slots: the cuckoo buckets stay at most half full, where an insert
        # rarely has to displace keys (each displacement step is a cache miss;
        # docs/flow-table.md §6); flow_full() caps the flows at `entries`
        hp.entries = 2 * spec.entries
        hp.key_len = sizeof(flow_key_t)
        hp.hash_func = flow_sig_fn
        hp.socket_id = rte_socket_id()
        hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE   # exactly `entries` keys fit
        where = "EAL memory: raise eal.memory_mb or lower flow_table.entries"
        if not rte_eal_has_hugepages():
            hp.socket_id = self._flow_heap(name, hp.entries, w)
            where = "memory outside EAL's (mmap): lower flow_table.entries"
        ft.h = <rte_hash *>check_ptr(
            rte_hash_create(&hp),
            f"rte_hash_create(flow table of worker {w}, {spec.entries} flows in "
            f"{hp.entries} slots, ≈{(HASH_BYTES_PER_SLOT * hp.entries) >> 20} MiB of {where})")
        ft.entries = <flow_entry_t *>thp_map(hp.entries * sizeof(flow_entry_t))
        ft.emc = <emc_slot_t *>thp_map(EMC_SLOTS * sizeof(emc_slot_t))
        if ft.entries == NULL or ft.emc == NULL:
            raise MemoryError("flow table entries")
        ft.capacity = spec.entries
        ft.slots = hp.entries
        ft.idle_tsc = <uint64_t>(spec.idle_timeout * rte_get_tsc_hz())
        ft.close_tsc = <uint64_t>(spec.tcp_close_timeout * rte_get_tsc_hz())
        ft.on_full_drop = spec.on_full == "drop"
        self._locate_buckets(ft, hp.entries, w)
        # sweep period: a quarter of the shorter timeout (of the idle timeout while no
        # flow is closing), from 1 ms to 10 s
        ft.age_step = age_step(ft.slots, min(spec.idle_timeout, spec.tcp_close_timeout))
        ft.age_step_idle = age_step(ft.slots, spec.idle_timeout)

    cdef _locate_buckets(self, flow_table_t *ft, uint32_t slots, int w):
        """Find the rte_hash's bucket array for bucket_prefetch(). rte_hash keeps it in
        its private struct (rte_cuckoo_hash.h) right after bucket_bitmask,
        key_entry_size and key_store; the block is found by value, not by offset: the
        mask (from the slot count), the key entry size and the key store's address
        (from rte_hash_get_key_with_position) must all match, and the array must lie
        in the table's own heap. Anything else leaves bkt NULL (no early prefetch)."""
        cdef void *k1
        cdef const uint8_t *raw = <const uint8_t *>ft.h
        cdef uint32_t mask = 1, kes = KEY_SLOT, o
        cdef size_t store, bkt
        cdef void *heap = self.heap_mem[w]
        cdef size_t heap_len = self.heap_len[w]
        while mask < slots:
            mask <<= 1
        mask = mask // 8 - 1
        rte_hash_get_key_with_position(ft.h, 0, &k1)   # sets k1 even when empty
        store = <size_t>k1 - 8 - kes                    # slot 1's key; slot 0 is unused
        ft.bkt = NULL
        ft.keys = NULL
        for o in range(64, 512, 8):
            if ((<const uint32_t *>(raw + o))[0] == mask and
                    (<const uint32_t *>(raw + o + 4))[0] == kes and
                    (<const size_t *>(raw + o + 8))[0] == store):
                bkt = (<const size_t *>(raw + o + 16))[0]
                if (heap != NULL and bkt >= <size_t>heap and
                        bkt + (<size_t>(mask + 1) << 6) <= <size_t>heap + heap_len) or \
                        (heap == NULL and bkt % 64 == 0):
                    ft.bkt = <const uint8_t *>bkt
                    ft.bkt_mask = mask
                    ft.keys = <const uint8_t *>store
                break

    def bucket_array(self, int worker=0):
        """(address, mask) of the located rte_hash bucket array, None if not located."""
        if self.w[worker].flows.bkt == NULL:
            return None
        return <size_t>self.w[worker].flows.bkt, self.w[worker].flows.bkt_mask

    cdef int _flow_heap(self, bytes name, uint32_t slots, int w) except -1:
        """With --no-huge, EAL memory sits on 4 KiB pages and the rte_hash's random
        bucket and key accesses miss the TLB: its memory comes instead from a heap of
        its own on transparent huge pages; the socket id for rte_hash_create()."""
        self.heaps[w] = name               # close() removes and destroys it
        return thp_heap(name, HASH_BYTES_PER_SLOT * <size_t>slots + (4 << 20),
                        f"flow table ({slots // 2} flows) of worker {w}", &self.heap_mem[w],
                        &self.heap_len[w], slots * sizeof(flow_entry_t))

    # ------------------------------------------------------------------ tables

    cdef _build_nexthops(self, cfg):
        cdef nexthop_t *nh
        cdef bytes a
        self.nnhs = len(cfg.nexthops)
        self.t.nhs = <nexthop_t *>calloc(max(1, self.nnhs), sizeof(nexthop_t))
        for n in cfg.nexthops:
            nh = &self.t.nhs[n.index]
            eth = bytes(n.mac) + bytes(cfg.ports[n.port_index].mac)
            memcpy(nh.eth, <const char *>eth, 12)
            nh.port = n.port_index
            # the transport stack, precomputed (docs/mpls.md §7): labels, then the ELI/EL
            # pair below transport label k (the EL value, TC, S and TTL come per packet)
            words = [x << 12 for x in n.labels]
            nh.el_at = -1
            if n.entropy and n.labels and n.tunnel is None:
                k = min(len(n.labels), n.erld - 2)
                nh.el_unreadable = k < 1
                if k < 1:
                    k = len(n.labels)
                words[k:k] = [7 << 12, 0]
                nh.el_at = k + 1
            if len(words) > MAX_PUSH - 2:
                raise ValueError(f"next hop {n.name}: at most {MAX_PUSH - 2} entries")
            nh.n_push = len(words)
            for i, w in enumerate(words):
                nh.push[i] = be32(w)
                nh.ttl_on[i] = 0 if i in (nh.el_at - 1, nh.el_at) and nh.el_at >= 0 \
                    else 0xffffffff
            if n.tunnel is not None:
                nh.tunnel = TUN_UDP if n.tunnel.type == "mpls-udp" else TUN_GRE
                nh.v6 = n.tunnel.remote.version == 6
                nh.olen = (40 if nh.v6 else 20) + (8 if nh.tunnel == TUN_UDP else 4)
                a, nh.osum = outer_template(eth, cfg.node.tunnel_address, n.tunnel)
                memcpy(nh.outer, <const char *>a, len(a))

    cdef _build_mpls(self, cfg):
        """The LFIB (an rte_hash on the 20-bit label), pseudowires and node settings."""
        global _table_seq
        cdef mpls_t *mp = self.t.mpls
        cdef rte_hash_parameters hp
        cdef lfib_entry_t *ent
        cdef uint32_t label
        cdef int32_t pos
        cdef bytes a
        spec = cfg.mpls
        mp.erld = spec.erld
        mp.guess = spec.payload_guess
        mp.pipe = spec.ttl_model == "pipe"
        if cfg.node.tunnel_address is not None:
            a = cfg.node.tunnel_address.packed
            mp.tun_family = cfg.node.tunnel_address.version
            memcpy(mp.tun_addr, <const char *>a, len(a))
        mp.pws = <pw_t *>calloc(max(1, len(cfg.pseudowires)), sizeof(pw_t))
        for pw in cfg.pseudowires:
            mp.pws[pw.index].ac_port = pw.ac_port_index
            mp.pws[pw.index].label = pw.label << 12
            mp.pws[pw.index].via = pw.via_index | (NH_GROUP if pw.via_group else 0)
            mp.pws[pw.index].fat = pw.fat
            mp.pws[pw.index].cw = pw.control_word
        if not spec.lfib:
            return
        _table_seq += 1
        name = f"lfib_{_table_seq}".encode()
        memset(&hp, 0, sizeof(hp))
        hp.name = name
        hp.entries = max(64, 2 * len(spec.lfib))
        hp.key_len = 4
        hp.socket_id = rte_socket_id()
        mp.lfib = <rte_hash *>check_ptr(rte_hash_create(&hp),
                                        f"rte_hash_create(lfib, {hp.entries} entries)")
        mp.entries = <lfib_entry_t *>calloc(hp.entries, sizeof(lfib_entry_t))
        actions = {"swap": A_SWAP, "pop": A_POP, "pop-lookup": A_POP_LOOKUP,
                   "pop-xconnect": A_POP_XC}
        for rule in spec.lfib:
            label = rule.label
            pos = check(rte_hash_add_key(mp.lfib, &label), f"LFIB: add label {label}")
            if pos >= <int32_t>hp.entries:
                raise ValueError(f"LFIB: position {pos} beyond {hp.entries} entries")
            ent = &mp.entries[pos]
            ent.action = actions[rule.action]
            if len(rule.labels) > MAX_SWAP:
                raise ValueError(f"LFIB label {label}: at most {MAX_SWAP} swap labels")
            ent.n_labels = len(rule.labels)
            for i, x in enumerate(rule.labels):
                ent.labels[i] = be32(x << 12)
            ent.via = rule.via_index | (NH_GROUP if rule.via_group else 0)
            ent.vrf = rule.vrf_index
            ent.pw = rule.pw_index

    def mpls_counters(self, per_worker=False):
        rows = [{"el_not_readable": self.w[i].mpls.el_not_readable}
                for i in range(self.nworkers)]
        return rows if per_worker else add_up(rows)

    cdef _build_groups(self, cfg):
        cdef int i
        self.ngroups = len(cfg.groups)
        self.t.groups = <group_t *>calloc(max(1, self.ngroups), sizeof(group_t))
        for i in range(self.ngroups):
            self.t.groups[i].id = i
        self._groups = {}
        for grp in cfg.groups:
            self.update_group(grp.index, [(m.nexthop_index, m.weight, True)
                                          for m in grp.members])

    # ------------------------------------------------------------------ publishing

    cdef tables_t *_next_version(self) except NULL:
        """A copy of the current version's table pointers, to change and publish."""
        cdef tables_t *nt = <tables_t *>malloc(sizeof(tables_t))
        if nt == NULL:
            raise MemoryError()
        memcpy(nt, self.t, sizeof(tables_t))
        nt.version = self.t.version + 1
        return nt

    cdef _publish(self, tables_t *nt):
        """Make nt the version workers read (one atomic store), wait until every online
        worker has passed a quiescent state (rte_rcu_qsbr), then free the old version's
        struct: from then on nothing reads what the caller replaced, and it may free it."""
        cdef tables_t *old = self.t
        self.t = nt
        dp_ptr_set(<void **>&self.shared.current, nt)
        self._grace()
        free(old)

    cdef _grace(self):
        cdef uint64_t token = rte_rcu_qsbr_start(self.shared.rcu)
        with nogil:
            # polled, not spun: a worker may share this CPU with the main lcore
            while rte_rcu_qsbr_check(self.shared.rcu, token, False) == 0:
                usleep(20)
        self.grace_waits += 1

    def update_group(self, int index, members):
        """Install or change group `index`: members[i] = (next-hop index, weight, present)
        for member slot i. Slots keep their index: an added member is a new slot, a
        removed one stays as a hole (its pinned flows are re-hashed), weight 0 drains.
        The bucket table moves the fewest buckets (dataplane.ecmp.rebalance). Live: a new
        version is published while the workers forward (docs/workers.md)."""
        grp = self.cfg.groups[index]
        if len(members) < self.t.groups[index].n_members:
            raise ValueError("update_group: member slots cannot be taken away; "
                             "mark a removed member present=False")
        weights = [w if present else 0 for _, w, present in members]
        old = self._groups.get(index)
        if old is not None and old is not NO_TABLE and sum(weights) > 0:
            table = ecmp.rebalance(old, weights)
        else:
            table = ecmp.build_or_none(weights, grp.buckets)
        states = [MEMBER_REMOVED if not present else MEMBER_ACTIVE if w else MEMBER_DRAIN
                  for _, w, present in members]
        self.set_group(index, [nh for nh, _, _ in members], table,
                       hashing.field_mask(grp.hash.fields, grp.hash.symmetric),
                       grp.hash.fragments == "follow", states)
        self._groups[index] = NO_TABLE if table is None else table

    def group_table(self, int index):
        t = self._groups.get(index)
        return None if t is None or t is NO_TABLE else t.copy()

    def set_group(self, int index, list member_nh, table, uint32_t fields, bint follow,
                  states=None):
        """Install a group's members (next-hop ids), bucket table and member states
        (default: all active). Live: copy-on-write of the group array, published."""
        cdef uint16_t[::1] tb = np.ascontiguousarray(
            table if table is not None else [], dtype=np.uint16)
        cdef group_t *arr = self.t.groups
        cdef group_t *g
        cdef uint16_t *old_buckets
        cdef tables_t *nt
        cdef uint16_t *nb = NULL
        if not 0 <= index < self.ngroups:
            raise ValueError(f"no group {index}")
        if len(member_nh) > MAX_MEMBERS or (len(tb) and max(tb) >= len(member_nh)):
            raise ValueError("bad group table")
        if any(not 0 <= nh < self.nnhs for nh in member_nh):
            raise ValueError("bad member next hop")
        if states is None:
            states = [MEMBER_ACTIVE] * len(member_nh)
        if len(tb):                    # an empty table: every member drained
            nb = <uint16_t *>malloc(len(tb) * sizeof(uint16_t))
            if nb == NULL:
                raise MemoryError()
            memcpy(nb, &tb[0], len(tb) * sizeof(uint16_t))
        if self.live:
            arr = <group_t *>malloc(self.ngroups * sizeof(group_t))
            if arr == NULL:
                free(nb)
                raise MemoryError()
            memcpy(arr, self.t.groups, self.ngroups * sizeof(group_t))
        g = &arr[index]
        old_buckets = g.buckets
        g.buckets = nb
        g.n_buckets = len(tb)
        g.n_members = len(member_nh)
        for i, nh in enumerate(member_nh):
            g.member_nh[i] = nh
            g.member_state[i] = states[i]
        g.fields = fields
        g.frag_follow = follow
        key_mask4(fields, g.mask4)
        key_mask4(fields & (F_L3 | F_SYMMETRIC), g.mask4_l3)
        if self.live:
            old_arr = self.t.groups
            nt = self._next_version()
            nt.groups = arr
            self._publish(nt)
            free(old_arr)
        free(old_buckets)

    def group_counters(self, int index, per_worker=False):
        """Packets per member slot of group `index` (summed over workers)."""
        n = self.t.groups[index].n_members
        rows = [[self.w[w].member_pkts[index * MAX_MEMBERS + i] for i in range(n)]
                for w in range(self.nworkers)]
        return rows if per_worker else [sum(col) for col in zip(*rows)] if rows else []

    def frag_counters(self, per_worker=False):
        rows = [{"frag_followed": self.w[i].frag.followed,
                 "frag_fallback": self.w[i].frag.fallback} for i in range(self.nworkers)]
        return rows if per_worker else add_up(rows)

    cdef _build_vrfs(self, cfg):
        self.nvrfs = len(cfg.vrfs)
        self.t.vrfs = <vrf_t *>calloc(max(1, self.nvrfs), sizeof(vrf_t))
        self._routes = {}
        for vrf in cfg.vrfs:
            self._routes[vrf.index] = {r.prefix: r.via_index | (NH_GROUP if r.via_group
                                                                else 0)
                                       for r in vrf.routes}
            self._build_vrf(&self.t.vrfs[vrf.index], vrf.index)

    cdef _build_vrf(self, vrf_t *v, int index):
        """VRF `index`'s LPM tables from self._routes into *v (new tables)."""
        global _table_seq
        cdef rte_lpm_config c4
        cdef rte_lpm6_config c6
        cdef uint32_t nh_id
        cdef bytes a
        name_of = self.cfg.vrfs[index].name
        routes = self._routes[index]
        v.lpm4 = NULL
        v.lpm6 = NULL
        v.default4 = v.default6 = NH_NONE
        r4 = [p for p in routes if p.version == 4]
        r6 = [p for p in routes if p.version == 6]
        _table_seq += 1
        try:
            if any(p.prefixlen for p in r4):
                memset(&c4, 0, sizeof(c4))
                c4.max_rules = max(1024, 2 * len(r4))
                c4.number_tbl8s = max(256, sum(p.prefixlen > 24 for p in r4) + 16)
                name = f"l4_{_table_seq}".encode()
                v.lpm4 = <rte_lpm *>check_ptr(rte_lpm_create(name, SOCKET_ID_ANY, &c4),
                                              f"rte_lpm_create(vrf {name_of})")
            if any(p.prefixlen for p in r6):
                memset(&c6, 0, sizeof(c6))
                c6.max_rules = max(1024, 2 * len(r6))
                c6.number_tbl8s = max(256, 14 * len(r6))
                name = f"l6_{_table_seq}".encode()
                v.lpm6 = <rte_lpm6 *>check_ptr(rte_lpm6_create(name, SOCKET_ID_ANY, &c6),
                                               f"rte_lpm6_create(vrf {name_of})")
            for prefix, nh_id in routes.items():
                what = f"add route {prefix} in vrf {name_of}"
                if prefix.prefixlen == 0:
                    if prefix.version == 4:
                        v.default4 = nh_id
                    else:
                        v.default6 = nh_id
                elif prefix.version == 4:
                    check(rte_lpm_add(v.lpm4, int(prefix.network_address), prefix.prefixlen,
                                      nh_id), "rte_lpm_add: " + what)
                else:
                    a = prefix.network_address.packed
                    check(rte_lpm6_add(v.lpm6, <const uint8_t *>a, prefix.prefixlen,
                                       nh_id), "rte_lpm6_add: " + what)
        except BaseException:
            free_vrf(v)
            raise

    def via_id(self, str via):
        """The next-hop id of a next hop or group name (a route's `via`)."""
        for n in self.cfg.nexthops:
            if n.name == via:
                return n.index
        for g in self.cfg.groups:
            if g.name == via:
                return g.index | NH_GROUP
        raise ValueError(f"no next hop or group named {via!r}")

    def set_routes(self, int index, dict routes):
        """Replace VRF `index`'s routes ({ip_network: next-hop id}): new LPM tables are
        built beside the old ones and published; the old ones are freed after the
        grace period."""
        cdef vrf_t nv
        cdef vrf_t old
        cdef vrf_t *arr
        cdef tables_t *nt
        if index not in self._routes:
            raise ValueError(f"no vrf {index}")
        for nh_id in routes.values():
            if not (nh_id & NH_GROUP and (nh_id & ~NH_GROUP) < self.ngroups or
                    not nh_id & NH_GROUP and nh_id < self.nnhs):
                raise ValueError(f"bad next-hop id {nh_id}")
        saved = self._routes[index]
        self._routes[index] = dict(routes)
        try:
            self._build_vrf(&nv, index)
        except BaseException:
            self._routes[index] = saved
            raise
        arr = <vrf_t *>malloc(max(1, self.nvrfs) * sizeof(vrf_t))
        if arr == NULL:
            free_vrf(&nv)
            self._routes[index] = saved
            raise MemoryError()
        memcpy(arr, self.t.vrfs, self.nvrfs * sizeof(vrf_t))
        old = arr[index]
        arr[index] = nv
        old_arr = self.t.vrfs
        nt = self._next_version()
        nt.vrfs = arr
        self._publish(nt)
        free(old_arr)
        free_vrf(&old)

    def routes(self, int index):
        return dict(self._routes[index])

    def apply(self, change):
        """One live change, as the control plane sends it (docs/workers.md §RCU):
        {"op": "group", "group": index, "members": [(nh index, weight, present)]},
        {"op": "route_add", "vrf": index, "prefix": "10.0.0.0/8", "via": name},
        {"op": "route_del", "vrf": index, "prefix": "10.0.0.0/8"}. Each is one new
        published version; the reply is the version number."""
        op = change.get("op")
        if op == "group":
            self.update_group(change["group"], change["members"])
        elif op in ("route_add", "route_del"):
            prefix = ipaddress.ip_network(change["prefix"])
            routes = self.routes(change["vrf"])
            if op == "route_add":
                routes[prefix] = self.via_id(change["via"])
            elif routes.pop(prefix, None) is None:
                raise ValueError(f"no route {prefix} in vrf {change['vrf']}")
            self.set_routes(change["vrf"], routes)
        else:
            raise ValueError(f"unknown change {op!r}")
        return self.t.version

    # ------------------------------------------------------------------ ports

    def bind_port(self, int index, str dev_name, int nb_desc=1024, bint rx=True):
        """Attach DPDK port `dev_name` to config port `index`: configure one RX and one TX
        queue per worker (RSS with the symmetric Toeplitz key when the device has
        several queues), a TX buffer per worker, start."""
        cdef uint16_t pid
        cdef rte_eth_conf conf
        cdef rte_eth_dev_info info
        cdef uint16_t nrx = nb_desc, ntx = nb_desc
        cdef uint16_t nq = self.nworkers, q
        cdef port_t *pt
        cdef uint8_t key[40]
        name = dev_name.encode()
        check(rte_eth_dev_get_port_by_name(name, &pid), f"find DPDK port {dev_name!r}")
        check(rte_eth_dev_info_get(pid, &info), f"rte_eth_dev_info_get({dev_name})")
        if info.max_rx_queues < nq or info.max_tx_queues < nq:
            raise dataplane_error(
                f"port {self.cfg.ports[index].name}: device {dev_name} has "
                f"{info.max_rx_queues} RX / {info.max_tx_queues} TX queues, {nq} workers "
                "need one each (net_pcap: one rx_pcap= and tx_pcap= per worker)", 22,
                "Invalid argument")
        memset(&conf, 0, sizeof(conf))
        rss = RSS_HF & info.flow_type_rss_offloads
        if nq > 1 and rss:
            # the symmetric key (docs/workers.md): both directions of a flow, one worker
            for q in range(40):
                key[q] = RSS_SYMMETRIC_KEY[q]
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS
            conf.rx_adv_conf.rss_conf.rss_key = key
            conf.rx_adv_conf.rss_conf.rss_key_len = 40
            conf.rx_adv_conf.rss_conf.rss_hf = rss
        check(rte_eth_dev_configure(pid, nq, nq, &conf), f"rte_eth_dev_configure({dev_name})")
        check(rte_eth_dev_adjust_nb_rx_tx_desc(pid, &nrx, &ntx),
              f"rte_eth_dev_adjust_nb_rx_tx_desc({dev_name})")
        sock = rte_eth_dev_socket_id(pid)
        sock = sock if sock >= 0 else 0
        for q in range(nq):
            check(rte_eth_rx_queue_setup(pid, q, nrx, sock, NULL, _pool),
                  f"rte_eth_rx_queue_setup({dev_name}) of queue {q}")
            check(rte_eth_tx_queue_setup(pid, q, ntx, sock, NULL),
                  f"rte_eth_tx_queue_setup({dev_name}) of queue {q}")
        for q in range(nq):
            pt = &self.w[q].ports[index]
            pt.txb = <rte_eth_dev_tx_buffer *>calloc(1, dp_tx_buffer_size(BURST))
            check(rte_eth_tx_buffer_init(pt.txb, BURST), f"rte_eth_tx_buffer_init({dev_name})")
            check(rte_eth_tx_buffer_set_err_callback(pt.txb, tx_refused, <void *>pt.cnt),
                  f"rte_eth_tx_buffer_set_err_callback({dev_name})")
        check(rte_eth_dev_start(pid), f"rte_eth_dev_start({dev_name})")
        rte_eth_promiscuous_enable(pid)   # not every PMD supports it; harmless
        for q in range(nq):
            pt = &self.w[q].ports[index]
            pt.port_id = pid
            pt.bound = 1
            pt.rx = rx
        return pid

    def port_stats(self, int index):
        """DPDK's own counters for a bound port (ipackets, opackets, imissed, ...)."""
        cdef rte_eth_stats st
        if not self.w[0].ports[index].bound:
            return None
        check(rte_eth_stats_get(self.w[0].ports[index].port_id, &st), "rte_eth_stats_get")
        return {"ipackets": st.ipackets, "opackets": st.opackets, "ibytes": st.ibytes,
                "obytes": st.obytes, "imissed": st.imissed, "ierrors": st.ierrors,
                "oerrors": st.oerrors, "rx_nombuf": st.rx_nombuf}

    def close_ports(self):
        """Stop and close every bound port (the workers must be stopped)."""
        cdef port_t *pt
        for i in range(self.w[0].nports):
            pt = &self.w[0].ports[i]
            if pt.bound:
                rte_eth_dev_stop(pt.port_id)
                rte_eth_dev_close(pt.port_id)
            for q in range(self.nworkers):
                pt = &self.w[q].ports[i]
                pt.bound = 0
                pt.rx = 0
                free(pt.txb)
                pt.txb = NULL

    # ------------------------------------------------------------------ workers

    def launch(self, lcores):
        """Start worker w's poll loop on lcores[w] (an int: one worker)."""
        lcores = [lcores] if isinstance(lcores, int) else list(lcores)
        if len(lcores) != self.nworkers:
            raise ValueError(f"{self.nworkers} workers, {len(lcores)} lcores")
        for i, lc in enumerate(lcores):
            dp_flag_set(&self.w[i].stop, 0)
            check(rte_eal_remote_launch(worker, self.w[i], lc),
                  f"launch worker {i} on lcore {lc}")
            self.launched.append(lc)

    def stop(self):
        """Ask the workers to stop and wait for them (each drains its TX buffers)."""
        cdef unsigned lcore
        for i in range(self.nworkers):
            dp_flag_set(&self.w[i].stop, 1)
        for lc in self.launched:
            lcore = lc
            with nogil:
                rte_eal_wait_lcore(lcore)
        self.launched = []

    @property
    def running(self):
        return bool(self.launched)

    @property
    def loops(self):
        return sum(self.w[i].loops for i in range(self.nworkers))

    # ------------------------------------------------------------------ inspection

    def counters(self, per_worker=False):
        """Per port: a list of N_COUNTERS uint64 (slots from counter_slots()), summed
        over workers (per_worker: one such table per worker)."""
        rows = [[[self.w[w].ports[i].cnt[j] for j in range(N_COUNTERS)]
                 for i in range(self.w[0].nports)] for w in range(self.nworkers)]
        if per_worker:
            return rows
        return [[sum(rows[w][i][j] for w in range(self.nworkers)) for j in range(N_COUNTERS)]
                for i in range(self.w[0].nports)]

    def rx_total(self):
        cdef uint64_t t = 0
        for w in range(self.nworkers):
            for i in range(self.w[w].nports):
                t += self.w[w].ports[i].cnt[C_RX]
        return t

    cdef ctx_t *_idle(self, int worker) except NULL:
        if self.running:
            raise RuntimeError("the workers are running")
        if not 0 <= worker < self.nworkers:
            raise ValueError(f"no worker {worker}")
        tables_refresh(self.w[worker])
        return self.w[worker]

    def process(self, int in_port, frames, int worker=0):
        """Run frames through process_burst() on real mbufs (tests): [(out_port, bytes)]."""
        cdef rte_mbuf *pkts[BURST]
        cdef rte_mbuf *out[BURST]
        cdef uint16_t out_port[BURST]
        cdef uint16_t n, k, j
        cdef ctx_t *c = self._idle(worker)
        if not 0 <= in_port < c.nports:
            raise ValueError(f"no port {in_port}")
        result = []
        frames = list(frames)
        for start in range(0, len(frames), BURST):
            n = fill_burst(pkts, frames[start:start + BURST], in_port)
            k = process_burst(c, in_port, pkts, n, out, out_port)
            for j in range(k):
                result.append((out_port[j],
                               PyBytes_FromStringAndSize(<char *>dp_mtod(out[j]),
                                                         out[j].data_len)))
                rte_pktmbuf_free(out[j])
        return result

    def cycles(self, int in_port, frames, int rounds):
        """bench/cycles.py: TSC cycles per packet of process_burst() alone (no RX, no
        TX), burst by burst over `frames` (cycled `rounds` times; each burst's mbufs are
        filled before its clock starts and freed after it stops)."""
        cdef rte_mbuf *pkts[BURST]
        cdef rte_mbuf *out[BURST]
        cdef uint16_t out_port[BURST]
        cdef uint16_t n, k, j
        cdef uint64_t t0, t1
        cdef ctx_t *c = self._idle(0)
        if not 0 <= in_port < c.nports:
            raise RuntimeError("cycles(): no such port")
        frames = list(frames)
        res = []
        for _ in range(rounds):
            for start in range(0, len(frames), BURST):
                n = fill_burst(pkts, frames[start:start + BURST], in_port)
                t0 = rte_rdtsc()
                k = process_burst(c, in_port, pkts, n, out, out_port)
                t1 = rte_rdtsc()
                for j in range(k):
                    rte_pktmbuf_free(out[j])
                res.append((t1 - t0) / n)
        return res

    # ------------------------------------------------------------------ flows

    def set_clock(self, seconds):
        """Tests: the flow tables' clock in seconds (None: the TSC)."""
        for w in range(self.nworkers):
            self.w[w].fake_now = 0 if seconds is None else max(
                1, <uint64_t>(seconds * rte_get_tsc_hz()))

    def age_all(self):
        """Sweep every flow table once (the workers sweep a slice at a time)."""
        for w in range(self.nworkers):
            if self.w[w].flows.h != NULL:
                flow_age(&self.w[w].flows, clock_now(self.w[w]), self.w[w].flows.slots)

    def memory_regions(self):
        """The regions mapped outside EAL memory on transparent huge pages (--no-huge):
        [(what, address, bytes)], for diagnostics and the tests that check /proc."""
        cdef flow_table_t *ft
        out = []
        if _pool_mem != NULL:
            out.append(("mbuf pool", <size_t>_pool_mem, _pool_len))
        for w in range(self.nworkers):
            ft = &self.w[w].flows
            if self.heap_mem[w] != NULL:
                out.append(("flow table rte_hash", <size_t>self.heap_mem[w], self.heap_len[w]))
            if ft.entries != NULL:
                out.append(("flow entries", <size_t>ft.entries,
                            thp_size(ft.slots * sizeof(flow_entry_t))))
        return out

    def flow_counters(self, per_worker=False):
        cdef flow_table_t *ft
        rows = []
        for w in range(self.nworkers):
            ft = &self.w[w].flows
            rows.append({"flow_created": ft.created, "flow_deleted": ft.deleted,
                         "flow_aged": ft.aged, "flow_rehashed": ft.rehashed,
                         "flow_table_full": ft.full,
                         "flows_active": rte_hash_count(ft.h) if ft.h != NULL else 0})
        return rows if per_worker else add_up(rows)

    def flow_flush(self):
        cdef flow_table_t *ft
        cdef uint32_t i
        for w in range(self.nworkers):
            ft = &self.w[w].flows
            for i in range(ft.slots):
                if ft.entries[i].valid:
                    flow_delete(ft, i)

    def flows(self):
        """Every flow entry of every worker as a dict (workers stopped, or a racy
        snapshot)."""
        cdef flow_table_t *ft
        cdef flow_entry_t *e
        cdef flow_key_t *k
        cdef void *kv
        cdef uint32_t i
        cdef double hz = rte_get_tsc_hz()
        out = []
        for w in range(self.nworkers):
            ft = &self.w[w].flows
            for i in range(ft.slots):
                e = &ft.entries[i]
                if not e.valid or rte_hash_get_key_with_position(ft.h, i, &kv) != 0:
                    continue
                k = <flow_key_t *>kv
                alen = 4 if k.family == 4 else 16
                grp = (e.nh_id & ~(<uint32_t>NH_GROUP)) if e.nh_id & NH_GROUP else None
                nh_used = e.nh_id
                if grp is not None:
                    nh_used = (self.t.groups[grp].member_nh[e.member]
                               if e.member != NO_MEMBER else None)
                out.append({
                    "vrf": be16(k.vrf), "family": k.family,
                    "src": str(ipaddress.ip_address(bytes(k.src[:alen]))),
                    "dst": str(ipaddress.ip_address(bytes(k.dst[:alen]))),
                    "proto": k.proto, "sport": be16(k.sport), "dport": be16(k.dport),
                    "in_port": e.in_port, "nh_id": nh_used, "group": grp,
                    "member": None if grp is None or e.member == NO_MEMBER else e.member,
                    "hash": e.hash, "packets": e.packets, "bytes": e.bytes,
                    "first_seen": e.first_seen / hz, "last_seen": e.last_seen / hz,
                    "fin": bool(e.fin), "rst": bool(e.rst),
                    "closing": e.closing_since != 0, "worker": w})
        return out

    def close(self):
        """Free the tables (ports closed, workers stopped)."""
        cdef ctx_t *c
        cdef flow_table_t *ft
        self.stop()
        self.close_ports()
        for w in range(self.nworkers):
            c = self.w[w]
            ft = &c.flows
            free(c.frag)
            c.frag = NULL
            free(c.member_pkts)
            c.member_pkts = NULL
            if ft.h != NULL:
                rte_hash_free(ft.h)
                ft.h = NULL
            if self.heaps[w] is not None:
                if self.heap_mem[w] != NULL:
                    rte_malloc_heap_memory_remove(self.heaps[w], self.heap_mem[w],
                                                  self.heap_len[w])
                rte_malloc_heap_destroy(self.heaps[w])
                thp_unmap(self.heap_mem[w], self.heap_len[w])
                self.heaps[w], self.heap_mem[w], self.heap_len[w] = None, NULL, 0
            thp_unmap(ft.entries, ft.slots * sizeof(flow_entry_t))
            ft.entries = NULL
            thp_unmap(ft.emc, EMC_SLOTS * sizeof(emc_slot_t))
            ft.emc = NULL
            ft.capacity = 0
            ft.slots = 0
        self._free_tables()

    cdef _free_tables(self):
        cdef tables_t *t = self.t
        if t == NULL:
            return
        if t.vrfs != NULL:
            for i in range(self.nvrfs):
                free_vrf(&t.vrfs[i])
            free(t.vrfs)
            t.vrfs = NULL
        if t.groups != NULL:
            for i in range(self.ngroups):
                free(t.groups[i].buckets)
            free(t.groups)
            t.groups = NULL
        free(t.nhs)
        t.nhs = NULL
        if t.mpls != NULL:
            if t.mpls.lfib != NULL:
                rte_hash_free(t.mpls.lfib)
            free(t.mpls.entries)
            free(t.mpls.pws)
            free(t.mpls)
            t.mpls = NULL

    def __dealloc__(self):
        if self.launched:
            return      # a running worker still reads the tables: leaking beats a crash
        self.close()
        for w in range(self.nworkers):
            free(self.w[w])
            self.w[w] = NULL
        free(self.t)
        self.t = NULL
        free(self.shared.rcu)
        self.shared.rcu = NULL


def add_up(rows):
    """Per-worker counter dicts → one dict of sums."""
    out = dict(rows[0]) if rows else {}
    for r in rows[1:]:
        for k, v in r.items():
            out[k] += v
    return out


cdef uint64_t age_step(uint32_t slots, double timeout):
    """TSC between aging slices for a sweep period of timeout / 4 (1 ms to 10 s)."""
    sweep = min(10.0, max(0.001, timeout / 4))
    return max(1, <uint64_t>(sweep * rte_get_tsc_hz()) // max(1, slots // AGE_SLICE))


def dataplane_error(msg, err, text):
    from dataplane.errors import DataplaneError
    return DataplaneError(msg, err, text)


RSS_HF = (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP |
          RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 |
          RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_NONFRAG_IPV6_UDP)
