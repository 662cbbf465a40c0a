# Virtual-network tables in and out (docs/virtual-networks.md): the bridge table
# (rte_hash, lock-free readers, several writers: the workers learn), the VRFs' flood
# lists, gateway addresses and known hosts, the neighbours of next hops without a MAC,
# each worker's held packets. Included by loop.pyx before core.pxi.
from vnet cimport (vnet_t, vn_vrf_t, neigh_t, held_t, host_t, addr_t, pair_t, NEIGH_VALID,
                   NEIGH_NONE, BT_STATIC, BT_LEARNED, MAX_GW, X_FLOOD, X_HELD, X_REQUEST)
from neigh cimport neigh_release, neigh_tick, neigh_drop_held, neigh_out


cdef int _bridge_seq = 0


cdef void fill_addr(addr_t *a, tuple spec):
    """(family, prefix length, 16-byte address) into *a."""
    cdef bytes b = spec[2]
    a.family = spec[0]
    a.plen = spec[1]
    memset(a.addr, 0, 16)
    memcpy(a.addr, <const char *>b, len(b))


cdef vnet_t *vnet_create(spec, ctx_t **workers, int nworkers) except NULL:
    """A compile.VnetTable into the shared tables; each worker's held-packet queues."""
    global _bridge_seq
    cdef vnet_t *vn = <vnet_t *>check_alloc(calloc(1, sizeof(vnet_t)), "virtual networks")
    cdef rte_hash_parameters hp
    cdef vn_vrf_t *vr
    cdef neigh_t *e
    cdef held_t *h
    cdef uint64_t key, hz = rte_get_tsc_hz()
    cdef int32_t pos
    cdef bytes b
    try:
        vn.pool = _pool
        vn.capacity = spec.capacity
        _bridge_seq += 1
        name = f"br_{_bridge_seq}".encode()
        memset(&hp, 0, sizeof(hp))
        hp.name = name
        hp.entries = vn.capacity
        hp.key_len = 8
        hp.socket_id = rte_socket_id()
        hp.extra_flag = (RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF |
                         RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD)
        vn.bridge = <rte_hash *>check_ptr(rte_hash_create(&hp),
                                          f"rte_hash_create(bridge, {hp.entries} entries)")
        # positions run up to entries + the per-lcore key caches of a multi-writer table
        vn.capacity = spec.capacity * 2 + 64 * 128
        vn.seen = <uint64_t *>check_alloc(calloc(vn.capacity, 8), "bridge entry clocks")
        vn.hits = <uint64_t *>check_alloc(calloc(vn.capacity, 8), "bridge entry counters")
        vn.nvrfs = len(spec.vrfs)
        vn.vrfs = <vn_vrf_t *>check_alloc(calloc(max(1, vn.nvrfs), sizeof(vn_vrf_t)),
                                          "VN VRFs")
        for i, v in enumerate(spec.vrfs):
            vr = &vn.vrfs[i]
            vr.fwd = v.fwd
            vr.flood_uu = v.flood_uu
            vr.learn = v.learn
            vr.aging_tsc = <uint64_t>(v.aging * hz)
            vr.n_ports = len(v.ports)
            for j, p in enumerate(v.ports):
                vr.ports[j] = p
            if len(v.gw) > MAX_GW:
                raise ValueError(f"at most {MAX_GW} gateway addresses per VRF")
            vr.n_gw = len(v.gw)
            for j, a in enumerate(v.gw):
                fill_addr(&vr.gw[j], a)
            vr.n_hosts = len(v.hosts)
            vr.hosts = <host_t *>check_alloc(calloc(max(1, vr.n_hosts), sizeof(host_t)),
                                             "VN hosts")
            for j, (fam, plen, addr, mac, port) in enumerate(v.hosts):
                fill_addr(&vr.hosts[j].a, (fam, plen, addr))
                b = mac
                memcpy(vr.hosts[j].mac, <const char *>b, 6)
                vr.hosts[j].port = port
        for vrf, mac, port in spec.statics:
            b = mac
            key = bridge_key(vrf, <const uint8_t *>b)
            check(rte_hash_add_key_data(vn.bridge, &key, <void *>(
                <uint64_t>port | (<uint64_t>BT_STATIC << 16))), "bridge table: static MAC")
        vn.n_neigh = len(spec.neighbours)
        vn.neigh = <neigh_t *>check_alloc(calloc(max(1, vn.n_neigh), sizeof(neigh_t)),
                                          "neighbours")
        for j, (port, fam, ip, src) in enumerate(spec.neighbours):
            e = &vn.neigh[j]
            e.port = port
            e.family = fam
            b = ip
            memcpy(e.ip, <const char *>b, len(b))
            b = src
            memcpy(e.src, <const char *>b, len(b))
        vn.reach_tsc = <uint64_t>(spec.reachable_time * hz)
        vn.retry_tsc = <uint64_t>(spec.retry * hz)
        vn.queue = spec.queue
        for w in range(nworkers):
            h = &workers[w].held
            h.m = <rte_mbuf **>check_alloc(calloc(max(1, vn.n_neigh * vn.queue),
                                                  sizeof(rte_mbuf *)), "held packets")
            h.in_port = <uint16_t *>check_alloc(calloc(max(1, vn.n_neigh * vn.queue), 2),
                                                "held packets' ports")
            h.n = <uint8_t *>check_alloc(calloc(max(1, vn.n_neigh), 1), "held counts")
            workers[w].vn = vn
    except BaseException:
        vnet_free(vn, workers, nworkers)
        raise
    return vn


cdef void vnet_free(vnet_t *vn, ctx_t **workers, int nworkers):
    cdef held_t *h
    if vn == NULL:
        return
    for w in range(nworkers):
        if workers[w] == NULL:
            continue
        neigh_drop_held(workers[w])
        h = &workers[w].held
        free(h.m)
        free(h.in_port)
        free(h.n)
        h.m = NULL
        h.in_port = NULL
        h.n = NULL
        workers[w].vn = NULL
    if vn.bridge != NULL:
        rte_hash_free(vn.bridge)
    free(vn.seen)
    free(vn.hits)
    if vn.vrfs != NULL:
        for i in range(vn.nvrfs):
            free(vn.vrfs[i].hosts)
    free(vn.vrfs)
    free(vn.neigh)
    free(vn)


cdef load_port_vn(port_t *pt, p, list keep):
    """A port's VN fields (compile.PortTable); its binding arrays live in bytearrays
    `keep` holds for as long as the workers' ports point into them."""
    cdef bytes b = p.mac
    cdef pair_t *pr
    memcpy(pt.mac, <const char *>b, 6)
    b = p.gw_mac
    memcpy(pt.gw_mac, <const char *>b, 6)
    pt.fwd = p.fwd
    pt.vn = p.vn
    pt.slow = p.vn or not p.l3
    pt.proxy = p.proxy
    pt.n_pairs = len(p.pairs)
    pt.n_bmacs = len(p.bmacs)
    pairs = bytearray(max(1, pt.n_pairs) * sizeof(pair_t))
    pr = <pair_t *><char *>pairs
    for i, (fam, plen, addr, mac) in enumerate(p.pairs):
        fill_addr(&pr[i].a, (fam, plen, addr))
        b = mac
        memcpy(pr[i].mac, <const char *>b, 6)
    macs = bytearray(b"".join(p.bmacs) or bytes(6))
    keep.append(pairs)
    keep.append(macs)
    pt.pairs = pr
    pt.bmacs = <uint8_t *><char *>macs


cdef mac_text(const uint8_t *m):
    return ":".join(f"{m[i]:02x}" for i in range(6))
