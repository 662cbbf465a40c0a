# Compiled tables in, counters out (included by loop.pyx). `Tables` loads what
# dataplane/config/compile.py made into C tables, publishes changed versions to the
# workers RCU-style (docs/workers.md §4), and reads the workers' counters and flows.

from libc.errno cimport ENOSPC

cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)


cdef void free_vrf(vrf_t *v) noexcept nogil:
    if v.lpm4 != NULL:
        rte_lpm_free(v.lpm4)
    if v.lpm6 != NULL:
        rte_lpm6_free(v.lpm6)
    v.lpm4 = NULL
    v.lpm6 = NULL


cdef int lpm4_fill(rte_lpm *lpm, uint32_t n_tbl8, const uint32_t *addr, const uint8_t *plen,
                   const uint32_t *nh, size_t n) noexcept nogil:
    """Write routes (prefix lengths 1 to 32, distinct) into an empty rte_lpm's tables
    as rte_lpm_add would leave them, in one pass: 0, or -ENOMEM / -ENOSPC (more tbl8
    groups needed than n_tbl8). rte_lpm_add scans every rule of the same length for a
    duplicate and every tbl8 group for a free one, so a million adds take minutes
    (O(n^2)); here the routes are ordered by length (shortest first, so a longer prefix
    overwrites what a shorter one wrote, as rte_lpm's depth checks decide) and each
    writes its tbl24 range, or its tbl8 range in the group of its /24 (made on first
    use from the tbl24 entry it replaces, entry 0 flagged in use, as tbl8_alloc does).
    Lookups see exactly rte_lpm_add's result (tests/test_config_scale.py compares them).
    The rule table stays empty: the table is built once and never changed (a change
    of routes builds a new one)."""
    cdef uint32_t *tbl24 = <uint32_t *>&lpm.tbl24[0]
    cdef uint32_t *tbl8 = <uint32_t *>lpm.tbl8
    cdef uint32_t *order = <uint32_t *>malloc(n * sizeof(uint32_t) + 1)
    cdef size_t start[34]
    cdef size_t i, t, t2, end
    cdef uint32_t a, e, old, base, groups = 0, d
    if order == NULL:
        return -ENOMEM
    memset(start, 0, sizeof(start))
    for i in range(n):                     # counting sort by length, stable
        start[plen[i] + 1] += 1
    for d in range(1, 34):
        start[d] += start[d - 1]
    for i in range(n):
        order[start[plen[i]]] = <uint32_t>i
        start[plen[i]] += 1
    for t in range(n):
        i = order[t]
        d = plen[i]
        if d == 0 or d > 32:
            continue
        a = addr[i] & ((<uint32_t>0xFFFFFFFF) << (32 - d))
        e = (nh[i] & 0xFFFFFF) | <uint32_t>RTE_LPM_LOOKUP_SUCCESS | (d << 26)
        if d <= 24:
            end = (a >> 8) + (<size_t>1 << (24 - d))
            for t2 in range(a >> 8, end):
                tbl24[t2] = e
            continue
        old = tbl24[a >> 8]
        if (old & RTE_LPM_VALID_EXT_ENTRY_BITMASK) != RTE_LPM_VALID_EXT_ENTRY_BITMASK:
            if groups == n_tbl8:
                free(order)
                return -ENOSPC
            base = groups * RTE_LPM_TBL8_GROUP_NUM_ENTRIES
            for t2 in range(RTE_LPM_TBL8_GROUP_NUM_ENTRIES):
                tbl8[base + t2] = old if old & RTE_LPM_LOOKUP_SUCCESS else 0
            tbl8[base] |= <uint32_t>0x02000000           # the group is in use
            tbl24[a >> 8] = groups | <uint32_t>RTE_LPM_VALID_EXT_ENTRY_BITMASK
            groups += 1
        else:
            base = (old & 0xFFFFFF) * RTE_LPM_TBL8_GROUP_NUM_ENTRIES
        end = base + (a & 0xFF) + (<size_t>1 << (32 - d))
        for t2 in range(base + (a & 0xFF), end):
            tbl8[t2] = e | (tbl8[t2] & <uint32_t>0x02000000)
    free(order)
    return 0


def lpm4_lookups(routes, const uint32_t[::1] probes, bint by_add=False):
    """The next-hop id (NH_NONE: no match) of each probe address in an rte_lpm holding
    the IPv4 routes of `routes` (compile.RouteColumns; /0 left out), written by
    lpm4_fill as the core does, or (by_add) by rte_lpm_add route by route, DPDK's own
    way: tests/test_config_scale.py checks that the two agree."""
    global _table_seq
    cdef rte_lpm_config c
    cdef rte_lpm *lpm
    cdef const uint32_t[::1] a = routes.v4_addr
    cdef const uint8_t[::1] p = routes.v4_plen
    cdef const uint32_t[::1] h = routes.v4_nh
    cdef size_t n = a.shape[0], i
    cdef uint32_t hop
    out = np.full(probes.shape[0], NH_NONE, np.uint32)
    cdef uint32_t[::1] o = out
    memset(&c, 0, sizeof(c))
    c.max_rules = max(1024, 2 * n)
    c.number_tbl8s = max(256, int((routes.v4_plen > 24).sum()) + 16)
    _table_seq += 1
    lpm = <rte_lpm *>check_ptr(rte_lpm_create(f"lt_{_table_seq}".encode(), SOCKET_ID_ANY, &c),
                               "rte_lpm_create(lpm4_lookups)")
    try:
        if by_add:
            for i in range(n):
                if p[i]:
                    check(rte_lpm_add(lpm, a[i], p[i], h[i]), "rte_lpm_add")
        elif n:
            check(lpm4_fill(lpm, c.number_tbl8s, &a[0], &p[0], &h[0], n), "lpm4_fill")
        for i in range(<size_t>probes.shape[0]):
            if rte_lpm_lookup(lpm, probes[i], &hop) == 0:
                o[i] = hop
    finally:
        rte_lpm_free(lpm)
    return out


def add_up(rows):
    """Per-worker counter dicts → one dict of sums."""
    out = dict(rows[0]) if rows else {}
    for r in rows[1:]:
        for k, v in r.items():
            out[k] += v
    return out


def tsc_hz():
    return rte_get_tsc_hz()


def counter_slots():
    """(rx, tx, first drop slot, number of slots) as the C enum has them (tests check
    they match dataplane/limits.py)."""
    return C_RX, C_TX, D_PARSE_ERROR, N_COUNTERS


def mirror_slots():
    """(mirrored, mirror_dropped): the slots of the mirror counters."""
    return C_MIRRORED, C_MIRROR_DROPPED


def vnet_slots():
    """Slots of the virtual-network counters, in dataplane.limits.VNET_COUNTERS order."""
    return (C_CONSUMED, C_ARP_REPLIED, C_FLOODED, C_FLOOD_DROPPED, C_ARP_SENT, C_MAC_MOVED)


cdef class Tables:
    """The compiled tables (one published version at a time) and the workers' contexts
    that read them: per worker its ports' TX buffers and counters, flow table, fragment
    table and member counters."""
    cdef ctx_t *w[MAX_WORKERS]
    cdef int nworkers
    cdef shared_t shared
    cdef tables_t *t               # the current version (being built until live)
    cdef bint live                 # published: changes are copy-on-write + grace period
    cdef int nvrfs, nnhs, ngroups
    cdef list vrf_names
    cdef list launched             # lcores of the running workers (loop.pyx)
    cdef list flow_memory          # per worker: FlowMemory
    cdef list mirror_copies        # tests: the mirror copies Core.process() made
    cdef public uint64_t grace_waits   # grace periods waited
    cdef vnet_t *vn                # virtual networks (docs/virtual-networks.md)
    cdef list vn_keep              # the ports' binding arrays

    def __cinit__(self):
        self.launched = []
        self.flow_memory = []
        self.mirror_copies = []
        self.vn_keep = []
        self.t = <tables_t *>check_alloc(calloc(1, sizeof(tables_t)), "tables")
        self.t.mpls = <mpls_t *>check_alloc(calloc(1, sizeof(mpls_t)), "MPLS tables")
        self.shared.current = self.t

    def __init__(self, compiled, int workers=1, drain_us=100):
        """Load `compiled` (dataplane.config.compile.Compiled) for `workers` workers."""
        cdef ctx_t *c
        cdef size_t sz = rte_rcu_qsbr_get_memsize(workers)
        cdef void *mem = NULL
        if _pool == NULL:
            raise RuntimeError("pool_create() must run before Core()")
        if len(compiled.ports) > MAX_PORTS:
            raise ValueError(f"at most {MAX_PORTS} ports")
        if not 1 <= workers <= MAX_WORKERS:
            raise ValueError(f"1 to {MAX_WORKERS} workers, got {workers}")
        if posix_memalign(&mem, 64, sz) != 0:
            fail(f"RCU state for {workers} workers", ENOMEM)
        memset(mem, 0, sz)
        self.shared.rcu = <rte_rcu_qsbr *>mem
        check(rte_rcu_qsbr_init(self.shared.rcu, workers), "rte_rcu_qsbr_init", True)
        for i in range(workers):
            check(rte_rcu_qsbr_thread_register(self.shared.rcu, i),
                  "rte_rcu_qsbr_thread_register", True)
        ts_ns, ts_tsc = time.time_ns(), rte_rdtsc()    # mirror timestamps' base
        for i in range(workers):
            c = self.w[i] = <ctx_t *>check_alloc(calloc(1, sizeof(ctx_t)),
                                                 f"worker {i} context")
            c.ts_base_ns = ts_ns
            c.ts_base_tsc = ts_tsc
            c.ns_per_tsc = 1e9 / rte_get_tsc_hz()
            self.nworkers = i + 1
            c.worker = i
            c.shared = &self.shared
            c.drain_tsc = rte_get_tsc_hz() * drain_us // 1000000
            c.nports = len(compiled.ports)
            c.seed = compiled.seed
            c.on_region = region_cb
            c.on_decap = decap_cb
            c.on_mpls = emit_mpls_cb
            c.on_push = push_cb
            c.on_vn = vn_cb
            c.on_arpnd = arpnd_cb
            c.on_neigh = neigh_out
            c.frag = <frag_table_t *>check_alloc(calloc(1, sizeof(frag_table_t)),
                                                 f"worker {i} fragment table")
            c.frag.timeout_tsc = rte_get_tsc_hz() * 2
            c.entropy_fields = compiled.entropy_fields
            key_mask4(c.entropy_fields, c.entropy_mask4)
            for p in compiled.ports:
                load_port(&c.ports[p.index], p)
                load_port_vn(&c.ports[p.index], p, self.vn_keep)
                c.flooding |= p.fwd != 0
                c.mirroring |= p.mirror is not None
        self._load_nexthops(compiled.nexthops)
        self.ngroups = len(compiled.groups)
        self.t.groups = <group_t *>check_alloc(calloc(max(1, self.ngroups), sizeof(group_t)),
                                               f"{self.ngroups} groups")
        for g in compiled.groups:
            self.set_group(g)
        self._load_vrfs(compiled.vrf_names, compiled.routes)
        self._load_mpls(compiled.mpls)
        self.vn = vnet_create(compiled.vnet, self.w, workers)
        for i in range(workers):
            self.w[i].member_pkts = <uint64_t *>check_alloc(
                calloc(max(1, self.ngroups) * MAX_MEMBERS, sizeof(uint64_t)),
                f"worker {i} member counters")
        for i in range(workers):
            self.flow_memory.append(FlowMemory())
            if compiled.flow_table is not None:
                flow_table_create(&self.w[i].flows, compiled.flow_table, i,
                                  self.flow_memory[i])
        self.live = True
        for i in range(workers):
            tables_refresh(self.w[i])

    @property
    def workers(self):
        return self.nworkers

    @property
    def version(self):
        return self.t.version

    # ------------------------------------------------------------------ loading

    cdef _load_nexthops(self, list nexthops):
        self.nnhs = len(nexthops)
        self.t.nhs = <nexthop_t *>check_alloc(calloc(max(1, self.nnhs), sizeof(nexthop_t)),
                                              f"{self.nnhs} next hops")
        for i, n in enumerate(nexthops):
            load_nexthop(&self.t.nhs[i], n)

    def add_nexthops(self, list nexthops):
        """Append next hops (compile.NextHopTable) with the next ids: a new next-hop
        array is published; existing ids, and the flows that pin them, are unchanged."""
        cdef nexthop_t *arr
        cdef nexthop_t *old_arr
        cdef tables_t *nt
        cdef int n = self.nnhs + len(nexthops)
        if not nexthops:
            return
        if n > NH_GROUP:
            raise ValueError("too many next hops")
        arr = <nexthop_t *>check_alloc(calloc(n, sizeof(nexthop_t)), f"{n} next hops")
        memcpy(arr, self.t.nhs, self.nnhs * sizeof(nexthop_t))
        try:
            for i, nh in enumerate(nexthops):
                load_nexthop(&arr[self.nnhs + i], nh)
        except BaseException:
            free(arr)
            raise
        old_arr = self.t.nhs
        nt = self._next_version()
        nt.nhs = arr
        self._publish(nt)
        self.nnhs = n
        free(old_arr)

    @property
    def nexthop_count(self):
        return self.nnhs

    cdef _load_mpls(self, spec):
        """The LFIB (an rte_hash on the 20-bit label), pseudowires and node settings."""
        global _table_seq
        cdef mpls_t *mp = self.t.mpls
        cdef rte_hash_parameters hp
        cdef lfib_entry_t *ent
        cdef uint32_t label
        cdef int32_t pos
        cdef bytes a = spec.tun_addr
        mp.erld = spec.erld
        mp.guess = spec.guess
        mp.pipe = spec.pipe
        mp.tun_family = spec.tun_family
        memcpy(mp.tun_addr, <const char *>a, len(a))
        mp.pws = <pw_t *>check_alloc(calloc(max(1, len(spec.pws)), sizeof(pw_t)),
                                     f"{len(spec.pws)} pseudowires")
        for i, pw in enumerate(spec.pws):
            mp.pws[i].ac_port = pw.ac_port
            mp.pws[i].label = pw.label
            mp.pws[i].via = pw.via
            mp.pws[i].fat = pw.fat
            mp.pws[i].cw = pw.cw
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
        mp.entries = <lfib_entry_t *>check_alloc(calloc(hp.entries, sizeof(lfib_entry_t)),
                                                 f"LFIB ({hp.entries} entries)")
        for rule in spec.lfib:
            label = rule.label
            pos = check(rte_hash_add_key(mp.lfib, &label), f"LFIB: add label {label}")
            if pos >= <int32_t>hp.entries:
                raise ValueError(f"LFIB: position {pos} beyond {hp.entries} entries")
            ent = &mp.entries[pos]
            ent.action = rule.action
            ent.n_labels = len(rule.labels)
            for i, x in enumerate(rule.labels):
                ent.labels[i] = be32(x)
            ent.via = rule.via
            ent.vrf = rule.vrf
            ent.pw = rule.pw

    cdef _load_vrfs(self, list names, list routes):
        self.nvrfs = len(names)
        self.vrf_names = list(names)
        self.t.vrfs = <vrf_t *>check_alloc(calloc(max(1, self.nvrfs), sizeof(vrf_t)),
                                           f"{self.nvrfs} VRFs")
        for i in range(self.nvrfs):
            self.t.vrfs[i].default4 = self.t.vrfs[i].default6 = NH_NONE
            self._build_vrf(&self.t.vrfs[i], i, routes[i])

    cdef _build_vrf(self, vrf_t *v, int index, routes):
        """VRF `index`'s LPM tables for `routes` (compile.RouteColumns: per family the
        network addresses, prefix lengths and next-hop ids, as numpy arrays) into *v.
        IPv4 is written in one pass (lpm4_fill), IPv6 added route by route without the
        GIL (rte_lpm6 finds rules by hash)."""
        global _table_seq
        cdef rte_lpm_config c4
        cdef rte_lpm6_config c6
        cdef const uint32_t[::1] a4 = routes.v4_addr
        cdef const uint8_t[::1] p4 = routes.v4_plen
        cdef const uint32_t[::1] n4 = routes.v4_nh
        cdef const uint8_t[:, ::1] a6 = routes.v6_addr
        cdef const uint8_t[::1] p6 = routes.v6_plen
        cdef const uint32_t[::1] n6 = routes.v6_nh
        cdef size_t k4 = a4.shape[0], k6 = p6.shape[0], i
        cdef int r = 0
        name_of = self.vrf_names[index]
        v.lpm4 = NULL
        v.lpm6 = NULL
        v.default4 = v.default6 = NH_NONE
        _table_seq += 1
        try:
            if k4 and p4[np.argmax(routes.v4_plen)]:
                memset(&c4, 0, sizeof(c4))
                c4.max_rules = max(1024, 2 * k4)
                c4.number_tbl8s = max(256, int((routes.v4_plen > 24).sum()) + 16)
                name = f"l4_{_table_seq}".encode()
                v.lpm4 = <rte_lpm *>check_ptr(rte_lpm_create(name, SOCKET_ID_ANY, &c4),
                                              f"rte_lpm_create(vrf {name_of})")
                with nogil:
                    r = lpm4_fill(v.lpm4, c4.number_tbl8s, &a4[0], &p4[0], &n4[0], k4)
                check(r, f"load {k4} IPv4 routes in vrf {name_of}")
            if k6 and p6[np.argmax(routes.v6_plen)]:
                memset(&c6, 0, sizeof(c6))
                c6.max_rules = max(1024, 2 * k6)
                c6.number_tbl8s = max(256, 14 * k6)
                name = f"l6_{_table_seq}".encode()
                v.lpm6 = <rte_lpm6 *>check_ptr(rte_lpm6_create(name, SOCKET_ID_ANY, &c6),
                                               f"rte_lpm6_create(vrf {name_of})")
                with nogil:
                    for i in range(k6):
                        if p6[i]:
                            r = rte_lpm6_add(v.lpm6, &a6[i, 0], p6[i], n6[i])
                            if r < 0:
                                break
                if r < 0:
                    check(r, f"rte_lpm6_add: add route "
                             f"{ipaddress.IPv6Address(bytes(a6[i]))}/{p6[i]} in vrf {name_of}")
            for i in range(k4):
                if p4[i] == 0:
                    v.default4 = n4[i]
            for i in range(k6):
                if p6[i] == 0:
                    v.default6 = n6[i]
        except BaseException:
            free_vrf(v)
            raise

    # ------------------------------------------------------------------ publishing

    cdef tables_t *_next_version(self) except NULL:
        """A copy of the current version's table pointers, to change and publish."""
        cdef tables_t *nt = <tables_t *>check_alloc(malloc(sizeof(tables_t)), "table version")
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

    def set_group(self, g):
        """Install group g.index (a compile.GroupTable: member next hops and states,
        bucket table, hash fields). Live: copy-on-write of the group array, published."""
        cdef int index = g.index
        cdef uint16_t[::1] tb = np.ascontiguousarray(
            g.buckets if g.buckets is not None else [], dtype=np.uint16)
        cdef group_t *arr = self.t.groups
        cdef group_t *old_arr
        cdef group_t *grp
        cdef uint16_t *old_buckets
        cdef uint16_t *nb = NULL
        cdef tables_t *nt
        if not 0 <= index < self.ngroups:
            raise ValueError(f"no group {index}")
        n = len(g.member_nh)
        if n > MAX_MEMBERS or len(g.states) != n or (len(tb) and max(tb) >= n):
            raise ValueError("bad group table")
        if n < self.t.groups[index].n_members:
            raise ValueError("member slots cannot be taken away")
        if any(not 0 <= nh < self.nnhs for nh in g.member_nh):
            raise ValueError("bad member next hop")
        if len(tb):                    # an empty table: every member drained
            nb = <uint16_t *>check_alloc(malloc(len(tb) * sizeof(uint16_t)),
                                         f"group {index} buckets")
            memcpy(nb, &tb[0], len(tb) * sizeof(uint16_t))
        if self.live:
            arr = <group_t *>malloc(self.ngroups * sizeof(group_t))
            if arr == NULL:
                free(nb)
                fail(f"{self.ngroups} groups", ENOMEM)
            memcpy(arr, self.t.groups, self.ngroups * sizeof(group_t))
        grp = &arr[index]
        old_buckets = grp.buckets
        grp.id = index
        grp.buckets = nb
        grp.n_buckets = len(tb)
        grp.n_members = n
        for i in range(n):
            grp.member_nh[i] = g.member_nh[i]
            grp.member_state[i] = g.states[i]
        grp.fields = g.fields
        grp.frag_follow = g.follow
        key_mask4(grp.fields, grp.mask4)
        key_mask4(grp.fields & (F_L3 | F_SYMMETRIC), grp.mask4_l3)
        if self.live:
            old_arr = self.t.groups
            nt = self._next_version()
            nt.groups = arr
            self._publish(nt)
            free(old_arr)
        free(old_buckets)

    def set_routes(self, int index, routes):
        """Replace VRF `index`'s routes (compile.RouteColumns): new LPM tables are built
        beside the old ones and published; the old ones are freed after the grace
        period."""
        cdef vrf_t nv
        cdef vrf_t old
        cdef vrf_t *arr
        cdef vrf_t *old_arr
        cdef tables_t *nt
        if not 0 <= index < self.nvrfs:
            raise ValueError(f"no vrf {index}")
        for nh_id in np.unique(np.concatenate([routes.v4_nh, routes.v6_nh])).tolist():
            if not (nh_id & NH_GROUP and (nh_id & ~NH_GROUP) < self.ngroups or
                    not nh_id & NH_GROUP and nh_id < self.nnhs):
                raise ValueError(f"bad next-hop id {nh_id}")
        self._build_vrf(&nv, index, routes)
        arr = <vrf_t *>malloc(max(1, self.nvrfs) * sizeof(vrf_t))
        if arr == NULL:
            free_vrf(&nv)
            fail(f"{self.nvrfs} VRFs", ENOMEM)
        memcpy(arr, self.t.vrfs, self.nvrfs * sizeof(vrf_t))
        old = arr[index]
        arr[index] = nv
        old_arr = self.t.vrfs
        nt = self._next_version()
        nt.vrfs = arr
        self._publish(nt)
        free(old_arr)
        free_vrf(&old)

    # ------------------------------------------------------------------ counters

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

    def group_counters(self, int index, per_worker=False):
        """Packets per member slot of group `index` (summed over workers)."""
        n = self.t.groups[index].n_members
        rows = [[self.w[w].member_pkts[index * MAX_MEMBERS + i] for i in range(n)]
                for w in range(self.nworkers)]
        return rows if per_worker else [sum(col) for col in zip(*rows)]

    def frag_counters(self, per_worker=False):
        rows = [{"frag_followed": self.w[i].frag.followed,
                 "frag_fallback": self.w[i].frag.fallback} for i in range(self.nworkers)]
        return rows if per_worker else add_up(rows)

    def mpls_counters(self, per_worker=False):
        rows = [{"el_not_readable": self.w[i].mpls.el_not_readable}
                for i in range(self.nworkers)]
        return rows if per_worker else add_up(rows)

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

    # ------------------------------------------------------------------ flows

    # ------------------------------------------------------------------ virtual networks

    def bridge_table(self):
        """[(vrf, mac bytes, port, "static" | "learned", hits)] sorted by (vrf, mac)."""
        cdef const void *kp
        cdef void *v
        cdef uint32_t it = 0
        cdef int32_t pos
        cdef const uint8_t *kb
        cdef uint64_t data
        out = []
        if self.vn == NULL:
            return out
        while True:
            pos = rte_hash_iterate(self.vn.bridge, &kp, &v, &it)
            if pos < 0:
                break
            kb = <const uint8_t *>kp
            data = <uint64_t>v
            out.append(((kb[0] << 8) | kb[1], bytes((<const char *>kb)[2:8]),
                        <int>(data & 0xffff),
                        "static" if (data >> 16) & BT_STATIC else "learned",
                        self.vn.hits[pos]))
        return sorted(out)

    def bridge_age(self, now=None):
        """Remove learned entries unused for their VRF's mac_aging (clock: worker 0's, or
        `now` in TSC ticks); their slots are freed after a grace period. The count."""
        cdef const void *kp
        cdef void *v
        cdef uint32_t it = 0
        cdef int32_t pos
        cdef uint64_t data, t
        cdef const uint8_t *kb
        if self.vn == NULL:
            return 0
        t = now if now is not None else clock_now(self.w[0])
        gone = []
        while True:
            pos = rte_hash_iterate(self.vn.bridge, &kp, &v, &it)
            if pos < 0:
                break
            data = <uint64_t>v
            kb = <const uint8_t *>kp
            if (data >> 16) & BT_LEARNED and t >= self.vn.seen[pos] + \
                    self.vn.vrfs[(kb[0] << 8) | kb[1]].aging_tsc:
                gone.append(bytes((<const char *>kb)[:8]))
        freed = []
        for k in gone:
            pos = rte_hash_del_key(self.vn.bridge, <const char *>k)
            if pos >= 0:
                freed.append(pos)
        if freed:
            self._grace()          # lock-free readers: a slot is reused only after it
            for pos in freed:
                rte_hash_free_key_with_position(self.vn.bridge, pos)
                self.vn.seen[pos] = 0
                self.vn.hits[pos] = 0
        return len(freed)

    def neighbors(self):
        """[(port, ip text, mac bytes or None, "incomplete" | "reachable")]."""
        cdef neigh_t *e
        cdef uint64_t w
        out = []
        if self.vn == NULL:
            return out
        for j in range(self.vn.n_neigh):
            e = &self.vn.neigh[j]
            w = e.mac
            ip = ipaddress.ip_address(bytes((<char *>e.ip)[:4 if e.family == 4 else 16]))
            out.append((e.port, str(ip),
                        bytes((<char *>&w)[:6]) if w & NEIGH_VALID else None,
                        "reachable" if w & NEIGH_VALID else "incomplete"))
        return out

    def held_count(self):
        """Packets held for unresolved next hops, over the workers."""
        return sum(self.w[i].held.total for i in range(self.nworkers))

    def set_mirror_time(self, ns):
        """Tests: the timestamp of every mirror copy, in ns (None: the clock)."""
        for w in range(self.nworkers):
            self.w[w].mirror_fake_ns = 0 if ns is None else max(1, <uint64_t>ns)

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

    def flow_flush(self):
        """Delete every flow entry. While the workers run, each flushes its own table
        (a flag it polls once per loop iteration): only a worker writes its table."""
        cdef ctx_t *c
        if not self.launched:
            for w in range(self.nworkers):
                flow_flush(&self.w[w].flows)
            return
        for w in range(self.nworkers):
            if self.w[w].flows.capacity:
                dp_flag_set(&self.w[w].flush_req, 1)
        for w in range(self.nworkers):
            c = self.w[w]
            with nogil:
                while dp_flag_get(&c.flush_req):
                    usleep(50)

    def flows(self):
        """Every flow entry of every worker as a dict (workers stopped, or a racy
        snapshot)."""
        cdef flow_table_t *ft
        cdef flow_entry_t *e
        cdef flow_key_t *k
        cdef void *kv
        cdef uint32_t i
        cdef double hz = rte_get_tsc_hz()
        from socket import AF_INET, inet_ntop      # IPv4 text: ipaddress's, 10x faster
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
                if alen == 4:
                    src = inet_ntop(AF_INET, (<char *>k.src)[:4])
                    dst = inet_ntop(AF_INET, (<char *>k.dst)[:4])
                else:
                    src = str(ipaddress.IPv6Address((<char *>k.src)[:16]))
                    dst = str(ipaddress.IPv6Address((<char *>k.dst)[:16]))
                out.append({
                    "vrf": be16(k.vrf), "family": k.family, "src": src, "dst": dst,
                    "proto": k.proto, "sport": be16(k.sport), "dport": be16(k.dport),
                    "in_port": e.in_port, "nh_id": nh_used, "group": grp,
                    "member": None if grp is None or e.member == NO_MEMBER else e.member,
                    "hash": e.hash, "packets": e.packets, "bytes": e.bytes,
                    "first_seen": e.first_seen / hz, "last_seen": e.last_seen / hz,
                    "fin": bool(e.fin), "rst": bool(e.rst),
                    "closing": e.closing_since != 0, "worker": w})
        return out

    def memory_regions(self):
        """The regions mapped outside EAL memory on transparent huge pages (--no-huge):
        [(what, address, bytes)], for diagnostics and the tests that check /proc."""
        cdef flow_table_t *ft
        cdef FlowMemory fm
        out = []
        if _pool_mem != NULL:
            out.append(("mbuf pool", <size_t>_pool_mem, _pool_len))
        for w in range(self.nworkers):
            ft = &self.w[w].flows
            fm = self.flow_memory[w]
            if fm.mem != NULL:
                out.append(("flow table rte_hash", <size_t>fm.mem, fm.size))
            if ft.entries != NULL:
                out.append(("flow entries", <size_t>ft.entries,
                            thp_size(ft.slots * sizeof(flow_entry_t))))
        return out

    def bucket_array(self, int worker=0):
        """(address, mask) of the located rte_hash bucket array, None if not located."""
        if self.w[worker].flows.bkt == NULL:
            return None
        return <size_t>self.w[worker].flows.bkt, self.w[worker].flows.bkt_mask

    # ------------------------------------------------------------------ teardown

    cdef _free_tables(self):
        """Every table of the current version and every worker's own (workers stopped)."""
        cdef ctx_t *c
        cdef tables_t *t = self.t
        vnet_free(self.vn, self.w, self.nworkers)
        self.vn = NULL
        for w in range(self.nworkers):
            c = self.w[w]
            free(c.frag)
            c.frag = NULL
            free(c.member_pkts)
            c.member_pkts = NULL
            flow_table_free(&c.flows)
            if w < len(self.flow_memory):
                (<FlowMemory>self.flow_memory[w]).release()
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
                t.mpls.lfib = NULL
            free(t.mpls.entries)
            t.mpls.entries = NULL
            free(t.mpls.pws)
            t.mpls.pws = NULL

    def __dealloc__(self):
        if self.launched:
            return      # a running worker still reads the tables: leaking beats a crash
        self._free_tables()
        for w in range(self.nworkers):
            free(self.w[w])
            self.w[w] = NULL
        if self.t != NULL:
            free(self.t.mpls)
            free(self.t)
            self.t = NULL
        free(self.shared.rcu)
        self.shared.rcu = NULL


cdef load_nexthop(nexthop_t *nh, n):
    """A compile.NextHopTable into *nh."""
    cdef bytes b = n.eth
    if len(n.push) > MAX_PUSH or len(n.outer) > sizeof(nh.outer) or len(b) != 12:
        raise ValueError("bad next-hop table")
    memcpy(nh.eth, <const char *>b, 12)
    nh.port = n.port
    nh.n_push = len(n.push)
    for j, word in enumerate(n.push):
        nh.push[j] = be32(word)
        nh.ttl_on[j] = 0xffffffff if n.ttl_on[j] else 0
    nh.el_at = n.el_at
    nh.neigh = n.neigh
    nh.el_unreadable = n.el_unreadable
    nh.tunnel = n.tunnel
    nh.v6 = n.v6
    nh.olen = n.olen
    nh.osum = n.osum
    b = n.outer
    memcpy(nh.outer, <const char *>b, len(b))
    # on the C fields: NEIGH_NONE is a C enum (-1 as a Python int), n.neigh a Python int
    nh.plain = nh.n_push == 0 and nh.tunnel == TUN_NONE and nh.neigh == NEIGH_NONE


cdef load_port(port_t *pt, p):
    """A compile.PortTable into a worker's port."""
    cdef fat_rules_t *fr = &pt.fat
    cdef bytes a
    pt.l3 = p.l3
    pt.vrf = p.vrf
    pt.flow_mode = p.flow_mode
    pt.pw = p.pw
    fr.n_rules = len(p.fat.rules)
    for i, (proto, port, ignore, splen, dplen) in enumerate(p.fat.rules):
        fr.rules[i].proto = proto
        fr.rules[i].port = port
        fr.rules[i].ignore = ignore
        fr.rules[i].src_plen = splen
        fr.rules[i].dst_plen = dplen
    fr.n_exclude = len(p.fat.exclude)
    for i, (family, plen, a) in enumerate(p.fat.exclude):
        fr.exclude[i].family = family
        fr.exclude[i].plen = plen
        memcpy(fr.exclude[i].addr, <const char *>a, len(a))
    load_mirror(pt, p.mirror)


cdef load_mirror(port_t *pt, m):
    """A compile.MirrorTable (or None) into a worker's port."""
    cdef mirror_t *mr = &pt.mirror
    cdef bytes hdr
    pt.mirror_rx = pt.mirror_tx = 0
    if m is None:
        return
    hdr = m.hdr
    if len(hdr) > MIRROR_HDR_MAX or m.sample < 1 or not 0 <= m.dest < MAX_PORTS:
        raise ValueError("bad mirror table")
    pt.mirror_rx = (m.dirs & MIRROR_RX) != 0
    pt.mirror_tx = (m.dirs & MIRROR_TX) != 0
    mr.dest = m.dest
    mr.sample = m.sample
    mr.analyzer = m.analyzer
    mr.v6 = m.v6
    mr.osum = m.osum
    mr.hlen = len(hdr)
    memcpy(mr.hdr, <const char *>hdr, len(hdr))
