# The pipeline (docs/packet-path.md, stage map in docs/workers.md §5): one burst from one
# port through the stages, as named phases. Packet mode runs each packet through
# classify → route → hash → ecmp → rewrite/push → tx in one pass; flow mode does
# 1. flow_keys (parse, classify, flow key, fat-flow mask, signature),
# 2. flow_lookup (exact-match cache, then one rte_hash bulk lookup for the rest),
# 3. per packet flow_decide (the entry's decision, or route + hash + member + new entry)
#    and emit_routed (rewrite or push, TX enqueue).
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport memset
from includes.rte_mbuf cimport rte_mbuf
from includes.rte_prefetch cimport rte_prefetch0
from includes.rte_hash cimport (rte_hash_lookup_with_hash, rte_hash_add_key_with_hash,
                                rte_hash_del_key_with_hash, rte_hash_lookup_with_hash_bulk)
from includes.shim cimport dp_mtod, dp_pullup
from consts cimport *
from parse cimport pkt_t, flow_key_t, build_key, ACT_IP
from classify cimport classify
from mpls_input cimport mpls_t, mpls_region, overlay_decap
from fatflow cimport fat_mask
from hashing cimport flow_key_hash, pkt_hash4, bucket_of
from flow cimport (flow_table_t, flow_entry_t, flow_tcp, flow_full, key_eq, flow_sig, emc_find,
                   emc_put, bucket_prefetch, EMC_SLOTS)
from route cimport route
from ecmp cimport group_t, select_member, follow_fragment, group_hash, group_pkt_hash4
from rewrite cimport nexthop_t, rewrite
from push cimport push_ip, cut_end
from mpls_output cimport emit_mpls
from tx cimport tx_enqueue
from mirror cimport mirror_rx
from vnet cimport ACT_BRIDGE
from neigh cimport nh_tx, vn_emit
from bridge cimport bridge_learn
from ctx cimport ctx_t, port_t, drop, clock_now


cdef enum:
    PULLUP = 512               # bytes of a chained packet made contiguous for its headers


ctypedef struct flow_burst_t:
    # what the phases of one flow-mode burst hand each other
    pkt_t pkt[BURST]
    flow_key_t key[BURST]
    int res[BURST]             # 0: decide; > 0: drop reason; < 0: a miss, -1 - its slot
    int32_t at[BURST]          # flow-table position per packet, -1: no entry found
    uint8_t agg[BURST]         # 1: a fat-flow rule masked the key
    uint16_t nkeyed            # packets with a key: their index and signature
    uint16_t kidx[BURST]
    uint32_t ksig[BURST]
    uint16_t nk                # keys to look up in rte_hash: key, signature, packet, result
    const void *kp[BURST]
    uint32_t sig[BURST]
    uint16_t idx[BURST]
    int32_t pos[BURST]
    uint16_t nc                # entries created in this burst: signature, packet, position
    uint32_t csig[BURST]
    uint16_t cidx[BURST]
    int32_t cpos[BURST]
    uint8_t cslot[64]          # signature & 63 → the last entry created there,
    uint8_t cnext[BURST]       # and each created entry's predecessor (0xff: none)
    bint direct                # insert-or-find with rte_hash_add, no EMC, no bulk lookup
    bint early                 # prefetch cuckoo buckets as keys are made
    uint64_t now

ctypedef struct decision_t:
    flow_entry_t *e            # the packet's flow entry (NULL: none, stateless)
    group_t *g                 # its group (NULL: a plain next hop)
    uint32_t nh_id
    uint32_t h                 # flow entropy (valid when e or g)
    uint16_t mem               # group member slot


# ---------------------------------------------------------------- MPLS through pointers

cdef inline void emit_mpls_cb(void *c, port_t *pt, rte_mbuf *m, const pkt_t *p, uint16_t in_port,
                       rte_mbuf **out, uint16_t *out_port, uint16_t *k) noexcept nogil:
    if p.act >= ACT_BRIDGE:                # virtual networks: bridge, ARP, ND
        vn_emit(<ctx_t *>c, pt, m, p, in_port, out, out_port, k)
    else:
        emit_mpls(<ctx_t *>c, pt, m, p, in_port, out, out_port, k)


cdef inline int region_cb(const mpls_t *mp, pkt_t *p, uint32_t off, uint32_t end,
                   uint16_t vrf) noexcept nogil:
    return mpls_region(mp, p, off, end, vrf)


cdef inline int decap_cb(const mpls_t *mp, pkt_t *p, uint16_t vrf) noexcept nogil:
    return overlay_decap(mp, p, vrf)


cdef inline bint push_cb(void *c, port_t *pt, rte_mbuf *m, const pkt_t *p, const nexthop_t *nh,
                  uint32_t h) noexcept nogil:
    return push_ip(<ctx_t *>c, pt, m, p, nh, h)


# ---------------------------------------------------------------- hashes without an entry

cdef inline uint32_t entropy_hash(const ctx_t *c, const port_t *pt, const pkt_t *p,
                                  flow_key_t *key, uint16_t in_port) noexcept nogil:
    """The flow entropy of a packet routed via a next hop (not a group) with no flow
    entry: what its entry would store (docs/flow-table.md §3)."""
    if p.family == 4 and not p.frag and pt.fat.n_rules == 0:     # same bytes, no key
        return pkt_hash4(p, in_port, c.entropy_fields, c.entropy_mask4, c.seed)
    build_key(p, p.vrf, key)
    if pt.fat.n_rules:
        fat_mask(&pt.fat, key)
    return flow_key_hash(key, in_port, p.flow_label, c.entropy_fields, c.entropy_mask4, c.seed)


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


# ---------------------------------------------------------------- output of routed IP

cdef inline void emit_routed(ctx_t *c, port_t *pt, group_t *g, uint16_t mem, uint32_t nh_id,
                             rte_mbuf *m, const pkt_t *p, uint32_t h, bint have_h,
                             flow_key_t *key, uint16_t in_port, rte_mbuf **out,
                             uint16_t *out_port, uint16_t *k) noexcept nogil:
    """The end of every routed packet's path: the group member's (or route's) next hop,
    rewrite or push, enqueue for TX; a group with no member left drops it as no_route.
    h: the flow entropy when have_h (a flow entry's, or the group hash)."""
    cdef const nexthop_t *nh
    if g != NULL:
        if mem == NO_MEMBER:
            drop(pt, m, D_NO_ROUTE)
            return
        c.member_pkts[g.id * MAX_MEMBERS + mem] += 1
        nh_id = g.member_nh[mem]
    nh = &c.nhs[nh_id]
    if nh.plain:                           # MACs known, nothing to push: one test
        cut_end(m, p.end)
        rewrite(m, p, nh)
        tx_enqueue(c, m, nh.port, out, out_port, k)
        return
    if nh.n_push == 0 and nh.tunnel == TUN_NONE:
        cut_end(m, p.end)
        rewrite(m, p, nh)
    else:
        if not have_h:
            h = entropy_hash(c, pt, p, key, in_port)
        if not c.on_push(c, pt, m, p, nh, h):
            return
    nh_tx(c, m, nh, out, out_port, k)


# ---------------------------------------------------------------- packet mode

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
        if m.nb_segs > 1:                  # a chained (jumbo) packet: headers in place
            dp_pullup(m, PULLUP)
        p.data = dp_mtod(m)
        p.len = m.data_len
        p.more = m.pkt_len - m.data_len
        r = classify(c, pt, &p)
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
        emit_routed(c, pt, g, mem, nh_id, m, &p, h, g != NULL, &key, in_port, out, out_port, &k)
    return k


# ---------------------------------------------------------------- flow mode

cdef inline void flow_keys(ctx_t *c, port_t *pt, flow_burst_t *b, rte_mbuf **pkts,
                           uint16_t n) noexcept nogil:
    """Phase 1: parse and classify; IP packets with ports (non-first fragments have none:
    no table) get their flow key, fat-flow masked, and its signature."""
    cdef flow_table_t *ft = &c.flows
    cdef rte_mbuf *m
    cdef pkt_t *p
    cdef uint16_t i
    b.nkeyed = 0
    for i in range(n):
        m = pkts[i]
        if i + 2 < n:
            rte_prefetch0(dp_mtod(pkts[i + 2]))
        p = &b.pkt[i]
        memset(p, 0, sizeof(pkt_t))
        if m.nb_segs > 1:                  # a chained (jumbo) packet: headers in place
            dp_pullup(m, PULLUP)
        p.data = dp_mtod(m)
        p.len = m.data_len
        p.more = m.pkt_len - m.data_len
        b.at[i] = -1
        b.res[i] = classify(c, pt, p)
        if b.res[i] == 0 and p.act == ACT_IP and p.l4:
            build_key(p, p.vrf, &b.key[i])
            b.agg[i] = fat_mask(&pt.fat, &b.key[i]) if pt.fat.n_rules else 0   # no call
            b.ksig[b.nkeyed] = flow_sig(&b.key[i])
            if not b.direct:
                rte_prefetch0(&ft.emc[b.ksig[b.nkeyed] & (EMC_SLOTS - 1)])
            if b.early:
                bucket_prefetch(ft, b.ksig[b.nkeyed])
            b.kidx[b.nkeyed] = i
            b.nkeyed += 1


cdef inline void flow_lookup(flow_table_t *ft, flow_burst_t *b) noexcept nogil:
    """Phase 2: the exact-match cache, then one bulk lookup for the keys it missed (in
    direct mode none: each miss is inserted-or-found in phase 3)."""
    cdef uint16_t i, j
    cdef int32_t a
    b.nk = 0
    for j in range(b.nkeyed):
        i = b.kidx[j]
        a = -1 if b.direct else emc_find(ft, &b.key[i], b.ksig[j])
        if a >= 0:                                 # cached: no rte_hash lookup
            b.at[i] = a
            continue
        b.kp[b.nk] = &b.key[i]
        b.sig[b.nk] = b.ksig[j]
        b.idx[b.nk] = i
        b.nk += 1
    ft.emc_missed = b.nk != 0
    if b.nk and b.direct:
        for j in range(b.nk):
            b.res[b.idx[j]] = -1 - <int>j
    elif b.nk:
        rte_hash_lookup_with_hash_bulk(ft.h, b.kp, b.sig, b.nk, b.pos)
        for j in range(b.nk):
            b.at[b.idx[j]] = b.pos[j]
            b.res[b.idx[j]] = -1 - <int>j if b.pos[j] < 0 else 0   # a miss keeps its sig
            if b.pos[j] >= 0:
                emc_put(ft, &b.key[b.idx[j]], b.sig[j], b.pos[j])


cdef inline flow_entry_t *created_here(flow_table_t *ft, flow_burst_t *b,
                                       const flow_key_t *key, uint32_t sig) noexcept nogil:
    """An entry created earlier in this burst for key (a hit: no route lookup); created
    entries are chained by their signature's low bits."""
    cdef uint8_t j = b.cslot[sig & 63]
    while j != 0xff:
        if b.csig[j] == sig and key_eq(&b.key[b.cidx[j]], key):
            return &ft.entries[b.cpos[j]]
        j = b.cnext[j]
    return NULL


cdef inline void flow_hit(ctx_t *c, const pkt_t *p, const flow_key_t *key,
                          uint16_t in_port, uint64_t now, decision_t *d) noexcept nogil:
    """The entry's decision: its next hop, or its pinned member (re-hashed onto the live
    members when that member was removed); a first fragment records it."""
    cdef flow_entry_t *e = d.e
    cdef uint32_t gid
    cdef group_t *g
    d.nh_id = e.nh_id
    d.h = e.hash
    if not (e.nh_id & NH_GROUP):
        return
    gid = e.nh_id & ~(<uint32_t>NH_GROUP)
    g = d.g = &c.groups[gid]
    d.mem = e.member
    if g.member_state[d.mem] == MEMBER_REMOVED:
        if g.n_buckets:                    # else: no_route, entry kept as it is
            d.mem = g.buckets[bucket_of(e.hash, g.n_buckets)]
            e.member = d.mem
            c.flows.rehashed += 1
        else:
            d.mem = NO_MEMBER
    if p.frag and g.frag_follow and d.mem != NO_MEMBER:
        follow_fragment(g, gid, p, key, in_port, c.seed, c.frag, now, d.mem, 0)


cdef inline void flow_insert(ctx_t *c, flow_burst_t *b, uint16_t i, int32_t a, uint32_t sig,
                             const pkt_t *p, uint16_t in_port, decision_t *d) noexcept nogil:
    """A new entry at rte_hash position a for packet i's flow: the route result, pinned
    member and entropy, chained for later packets of this burst."""
    cdef flow_table_t *ft = &c.flows
    cdef flow_entry_t *e = &ft.entries[a]
    memset(e, 0, sizeof(flow_entry_t))
    e.valid = 1
    ft.next_gen += 1
    if ft.next_gen == 0:                   # 0 marks an empty EMC slot
        ft.next_gen = 1
    e.gen = ft.next_gen
    e.sig = sig
    e.aggregate = b.agg[i]
    e.nh_id = d.nh_id
    e.member = d.mem
    e.in_port = in_port
    e.first_seen = b.now
    if d.g == NULL:
        d.h = flow_key_hash(&b.key[i], in_port, p.flow_label, c.entropy_fields, c.entropy_mask4,
                       c.seed)
    e.hash = d.h
    ft.created += 1
    b.csig[b.nc] = sig
    b.cidx[b.nc] = i
    b.cpos[b.nc] = a
    b.cnext[b.nc] = b.cslot[sig & 63]
    b.cslot[sig & 63] = <uint8_t>b.nc
    b.nc += 1
    d.e = e


cdef inline int flow_decide(ctx_t *c, port_t *pt, flow_burst_t *b, uint16_t i,
                            uint16_t in_port, decision_t *d) noexcept nogil:
    """Phase 3 for packet i: its entry's decision (found by the lookup, inserted-or-found
    in direct mode, or created earlier in this burst), else route + hash + member and a
    new entry. 0, or the reason to drop it."""
    cdef flow_table_t *ft = &c.flows
    cdef pkt_t *p = &b.pkt[i]
    cdef flow_key_t *key = &b.key[i]
    cdef int r = b.res[i]
    cdef uint32_t sig = b.sig[-1 - r] if r < 0 else 0
    cdef uint32_t gid
    cdef int32_t a, fresh = -1
    cdef bint lookup = p.l4
    # a first fragment uses its flow's entry but never makes one: RSS sends fragments by
    # addresses only, maybe to another worker than the flow's (docs/workers.md §3)
    cdef bint insert = lookup and not p.frag
    d.e = NULL
    d.g = NULL
    d.mem = NO_MEMBER
    d.h = 0
    if b.at[i] >= 0:
        d.e = &ft.entries[b.at[i]]
    elif lookup and b.direct:
        if flow_full(ft) or not insert:
            a = rte_hash_lookup_with_hash(ft.h, key, sig)
        else:
            a = rte_hash_add_key_with_hash(ft.h, key, sig)
        if a >= 0:
            if ft.entries[a].valid:
                d.e = &ft.entries[a]
            elif insert:
                fresh = a                  # a new slot: filled below, or given back
    elif lookup and b.nc:
        d.e = created_here(ft, b, key, sig)
    if d.e != NULL:
        flow_hit(c, p, key, in_port, b.now, d)
        return 0
    r = route(&c.vrfs[p.vrf], p, &d.nh_id)
    if r == 0 and d.nh_id & NH_GROUP:
        gid = d.nh_id & ~(<uint32_t>NH_GROUP)
        d.g = &c.groups[gid]
        if lookup:
            d.h = group_hash(d.g, key, in_port, p.flow_label, c.seed, not d.g.frag_follow)
        else:
            d.h = stateless_hash(c, pt, d.g, p, key, in_port)
        d.mem = select_member(d.g, gid, p, key, in_port, c.seed, c.frag, b.now, d.h)
        if d.mem == NO_MEMBER:             # every member drained: no entry
            r = D_NO_ROUTE
    if r:
        if fresh >= 0:                     # give back the slot rte_hash_add gave
            rte_hash_del_key_with_hash(ft.h, key, sig)
        return r
    if not insert:
        return 0
    a = fresh if fresh >= 0 else (-1 if flow_full(ft) else
                                  rte_hash_add_key_with_hash(ft.h, key, sig))
    if a < 0:
        ft.full += 1
        return D_FLOW_TABLE_FULL if ft.on_full_drop else 0
    flow_insert(c, b, i, a, sig, p, in_port, d)
    return 0


cdef inline bint hit_emit(ctx_t *c, flow_entry_t *e, rte_mbuf *m, const pkt_t *p,
                         const flow_key_t *key, uint64_t now, rte_mbuf **out,
                         uint16_t *out_port, uint16_t *k) noexcept nogil:
    """A found entry whose decision needs nothing more (not a fragment, its member still
    there, a plain rewrite next hop): the entry's counters, its member's next hop, TX.
    The same steps as flow_decide → flow_hit → emit_routed take for such a packet, without
    the decision record and the branches for every other case. 0, with nothing changed:
    the general path takes the packet."""
    cdef uint32_t nh_id = e.nh_id, gid
    cdef uint16_t mem = 0
    cdef group_t *g = NULL
    cdef const nexthop_t *nh
    if nh_id & NH_GROUP:
        gid = nh_id & ~(<uint32_t>NH_GROUP)
        g = &c.groups[gid]
        mem = e.member
        if mem == NO_MEMBER or g.member_state[mem] == MEMBER_REMOVED:
            return 0
        nh_id = g.member_nh[mem]
    nh = &c.nhs[nh_id]
    if not nh.plain:                       # labels, a tunnel, or a MAC by ARP/ND
        return 0
    e.packets += 1
    e.bytes += m.pkt_len
    e.last_seen = now
    if p.proto == 6 and p.tcp_flags & 0x05 and not e.aggregate:
        flow_tcp(&c.flows, e, key, p.tcp_flags, now)
    if g != NULL:
        c.member_pkts[g.id * MAX_MEMBERS + mem] += 1
    cut_end(m, p.end)
    rewrite(m, p, nh)
    tx_enqueue(c, m, nh.port, out, out_port, k)
    return 1


cdef inline uint16_t flow_burst(ctx_t *c, uint16_t in_port, rte_mbuf **pkts, uint16_t n,
                                rte_mbuf **out, uint16_t *out_port) noexcept nogil:
    """Flow mode (docs/flow-table.md): the three phases, then per packet the output."""
    cdef port_t *pt = &c.ports[in_port]
    cdef flow_table_t *ft = &c.flows
    cdef flow_burst_t b
    cdef decision_t d
    cdef rte_mbuf *m
    cdef pkt_t *p
    cdef uint16_t i, k = 0
    cdef int r
    pt.cnt[C_RX] += n
    b.now = clock_now(c)
    # mostly new flows in the last burst: no EMC and no bulk lookup; each key is
    # inserted-or-found with one rte_hash_add (it returns the position of a key already
    # there; a valid entry there is a hit)
    b.direct = ft.direct and not flow_full(ft)
    b.early = b.direct or ft.emc_missed     # all EMC hits lately: no bucket prefetch
    b.nc = 0
    flow_keys(c, pt, &b, pkts, n)
    flow_lookup(ft, &b)
    memset(b.cslot, 0xff, sizeof(b.cslot))
    for i in range(n):
        m = pkts[i]
        r = b.res[i]
        p = &b.pkt[i]
        if p.learn:                        # in frame order, as packet mode learns
            bridge_learn(c, in_port, pt.vrf, p.data + 6)
        if r > 0:
            drop(pt, m, r)
            continue
        if p.act != ACT_IP:
            c.on_mpls(c, pt, m, p, in_port, out, out_port, &k)
            continue
        if (b.at[i] >= 0 and not p.frag and
                hit_emit(c, &ft.entries[b.at[i]], m, p, &b.key[i], b.now, out, out_port, &k)):
            continue
        r = flow_decide(c, pt, &b, i, in_port, &d)
        if r:
            drop(pt, m, r)
            continue
        if d.e != NULL:
            d.e.packets += 1
            d.e.bytes += m.pkt_len
            d.e.last_seen = b.now
            if p.proto == 6 and p.tcp_flags & 0x05 and not d.e.aggregate:
                flow_tcp(ft, d.e, &b.key[i], p.tcp_flags, b.now)
        emit_routed(c, pt, d.g, d.mem, d.nh_id, m, p, d.h, d.e != NULL or d.g != NULL,
                    &b.key[i], in_port, out, out_port, &k)
    ft.direct = b.nc * 4 > b.nkeyed * 3
    return k


cdef inline uint16_t process_burst(ctx_t *c, uint16_t in_port, rte_mbuf **pkts, uint16_t n,
                                   rte_mbuf **out, uint16_t *out_port) noexcept nogil:
    """A burst from port in_port: packet-mode ports take the one-pass path, flow-mode
    ports the bulk flow-table path (chosen per burst, never per packet). A port that
    mirrors what it receives has its copies made first, before any stage touches the
    packets; they wait in c.mirror_out for the caller (mirror_send)."""
    c.in_port = in_port
    if c.ports[in_port].mirror_rx:
        mirror_rx(c, in_port, pkts, n)
    if c.ports[in_port].flow_mode:
        return flow_burst(c, in_port, pkts, n, out, out_port)
    return packet_burst(c, in_port, pkts, n, out, out_port)
