# DPDK telemetry (included by loop.pyx): the forwarder's counters as commands on EAL's
# telemetry socket, /var/run/dpdk/<file-prefix>/dpdk_telemetry.v2 as root (the forwarder's
# prefix is dp<pid>), so `dpdk-telemetry.py -f dp<pid>` reads them from the running process:
#
#   /dataplane/stats             totals: rx, tx, drops by reason, mirror copies, flow table
#   /dataplane/ports[,NAME]      per port: rx, tx, drops by reason, mirrored and
#                                mirror_dropped (NAME: that port only)
#   /dataplane/groups[,NAME]     per group: packets per member slot (NAME: that group only)
#
# Keys are config names with every character outside [A-Za-z0-9_] made '_' (telemetry
# accepts no other; each entry carries its real "name"); a parameter may be either. A
# reply is one JSON text of at most 16 KiB and a dict holds at most 256 entries: what
# does not fit is left out (32 ports fit; many groups: ask for one by name).
#
# The callbacks run in DPDK's telemetry client threads: C only, no GIL, no Python object.
# They read a C snapshot source (tel_src_t) that telemetry_attach() builds: pointers to
# the workers' contexts plus the names copied as C strings. The counters are the workers'
# own, written without atomics; a reply is a racy snapshot of relaxed 64-bit loads, each
# value one the worker wrote (so every counter is monotonic across replies).
#
# Lifetime, the race with freeing (the choice): the source pointer `_tel` is read and
# used only under the mutex `dp_tel_mu`, and telemetry_attach() keeps a reference to the Core, so its
# ctx_t structs (and the member counters and flow table counters they hold) cannot be
# freed while it is attached. telemetry_detach() sets `_tel` to NULL under the same mutex,
# so when it returns no callback is using the core: from then on the Core may be freed,
# and a later command finds no core and answers null. `Core.close()` frees the member
# counters while the object lives on: detach before calling it (the forwarder never
# does; it keeps its Core until the process exits, and the attachment with it, so
# telemetry keeps answering with the final counters while the process shuts down). The
# active-flow count is created - deleted (what flow_full() uses), not rte_hash_count():
# a callback never touches the flow table's hash, whose memory is unmapped when freed.
from libc.string cimport strcmp, strlen
from includes.rte_telemetry cimport *

cdef extern from *:
    """
    #include <pthread.h>
    #include <stdint.h>
    static pthread_mutex_t dp_tel_mu = PTHREAD_MUTEX_INITIALIZER;
    static inline void dp_tel_lock(void) { pthread_mutex_lock(&dp_tel_mu); }
    static inline void dp_tel_unlock(void) { pthread_mutex_unlock(&dp_tel_mu); }
    /* a worker's counter, read from another thread: one untorn load, never cached */
    static inline uint64_t dp_tel_load(const uint64_t *p)
    { return __atomic_load_n(p, __ATOMIC_RELAXED); }
    """
    void dp_tel_lock() nogil
    void dp_tel_unlock() nogil
    uint64_t dp_tel_load(const uint64_t *p) nogil

cdef enum:
    TEL_NAME = 64                  # a copied name, NUL included

ctypedef struct tel_group_t:
    char key[TEL_NAME]
    char name[TEL_NAME]
    uint16_t members               # member slots at attach (live adds show once they count)
    uint32_t index                 # group id: member_pkts[index * MAX_MEMBERS + slot]

ctypedef struct tel_src_t:
    ctx_t *w[MAX_WORKERS]
    int nworkers
    int nports
    int ngroups
    char node[TEL_NAME]
    char slot[N_COUNTERS][TEL_NAME]    # counter slot names; "" = unused slot
    char pkey[MAX_PORTS][TEL_NAME]
    char pname[MAX_PORTS][TEL_NAME]
    tel_group_t *groups

cdef tel_src_t *_tel = NULL        # guarded by dp_tel_mu
cdef object _tel_core = None       # the attached Core: keeps its contexts alive
cdef bint _tel_registered = False


# ------------------------------------------------------------------ filling a reply

cdef int tel_add(rte_tel_data *d, const char *name, rte_tel_data *sub) noexcept nogil:
    """Add container sub to dict d under name; the library frees it after the reply. Not
    added (d full): freed here."""
    cdef int rc = rte_tel_data_add_dict_container(d, name, sub, 0)
    if rc < 0:
        rte_tel_data_free(sub)
    return rc


cdef void tel_port_sums(const tel_src_t *s, int p, uint64_t *out) noexcept nogil:
    """out[slot] += port p's counter summed over the workers."""
    cdef int w, j
    for w in range(s.nworkers):
        for j in range(N_COUNTERS):
            out[j] += dp_tel_load(&s.w[w].ports[p].cnt[j])


cdef void tel_counters(const tel_src_t *s, rte_tel_data *d,
                       const uint64_t *cnt) noexcept nogil:
    """name, rx, tx, dropped (their sum), drops {reason: packets}, the mirror counters
    (copies of the port's packets: no drop of its own) and the virtual-network ones
    (consumed, arp_replied, flooded, ...: docs/virtual-networks.md §7) into dict d."""
    cdef rte_tel_data *drops = rte_tel_data_alloc()
    cdef uint64_t dropped = 0
    cdef int j
    rte_tel_data_add_dict_u64(d, "rx", cnt[C_RX])
    rte_tel_data_add_dict_u64(d, "tx", cnt[C_TX])
    rte_tel_data_add_dict_u64(d, "mirrored", cnt[C_MIRRORED])
    rte_tel_data_add_dict_u64(d, "mirror_dropped", cnt[C_MIRROR_DROPPED])
    if drops != NULL:
        rte_tel_data_start_dict(drops)
    for j in range(D_PARSE_ERROR, C_MIRRORED):     # the drop reasons' slots
        if s.slot[j][0] == 0:
            continue
        dropped += cnt[j]
        if drops != NULL:
            rte_tel_data_add_dict_u64(drops, s.slot[j], cnt[j])
    for j in range(C_CONSUMED, C_MAC_MOVED + 1):     # virtual networks: no drops
        if s.slot[j][0] != 0:
            rte_tel_data_add_dict_u64(d, s.slot[j], cnt[j])
    rte_tel_data_add_dict_u64(d, "dropped", dropped)
    if drops != NULL:
        tel_add(d, "drops", drops)


cdef void tel_fill_stats(const tel_src_t *s, rte_tel_data *d) noexcept nogil:
    cdef uint64_t cnt[N_COUNTERS]
    cdef uint64_t created = 0, deleted = 0, aged = 0, rehashed = 0, full = 0, dl
    cdef const flow_table_t *ft
    cdef rte_tel_data *fl
    cdef int p, w
    memset(cnt, 0, sizeof(cnt))
    for p in range(s.nports):
        tel_port_sums(s, p, cnt)
    rte_tel_data_start_dict(d)
    rte_tel_data_add_dict_string(d, "node", s.node)
    tel_counters(s, d, cnt)
    for w in range(s.nworkers):
        ft = &s.w[w].flows
        dl = dp_tel_load(&ft.deleted)  # before created: created >= deleted holds
        deleted += dl
        created += dp_tel_load(&ft.created)
        aged += dp_tel_load(&ft.aged)
        rehashed += dp_tel_load(&ft.rehashed)
        full += dp_tel_load(&ft.full)
    fl = rte_tel_data_alloc()
    if fl != NULL:                 # the names of Tables.flow_counters()
        rte_tel_data_start_dict(fl)
        rte_tel_data_add_dict_u64(fl, "flow_created", created)
        rte_tel_data_add_dict_u64(fl, "flow_deleted", deleted)
        rte_tel_data_add_dict_u64(fl, "flow_aged", aged)
        rte_tel_data_add_dict_u64(fl, "flow_rehashed", rehashed)
        rte_tel_data_add_dict_u64(fl, "flow_table_full", full)
        rte_tel_data_add_dict_u64(fl, "flows_active",
                                  created - deleted if created > deleted else 0)
        tel_add(d, "flows", fl)
    rte_tel_data_add_dict_int(d, "workers", s.nworkers)
    rte_tel_data_add_dict_int(d, "ports", s.nports)
    rte_tel_data_add_dict_int(d, "groups", s.ngroups)


cdef bint tel_param(const char *params, char *out) noexcept nogil:
    """The command's parameter, blanks trimmed, into out (TEL_NAME bytes); False if there
    is none. One too long to be a name gives a want that matches no name."""
    cdef size_t i = 0, n
    if params == NULL:
        return False
    while params[i] == b' ' or params[i] == b'\t':
        i += 1
    n = strlen(params + i)
    while n and (params[i + n - 1] == b' ' or params[i + n - 1] == b'\t' or
                 params[i + n - 1] == b'\n' or params[i + n - 1] == b'\r'):
        n -= 1
    if n == 0:
        return False
    if n >= TEL_NAME:              # longer than any name: a want that matches none
        out[0] = 1
        out[1] = 0
        return True
    memcpy(out, params + i, n)
    out[n] = 0
    return True


cdef void tel_fill_port(const tel_src_t *s, int p, rte_tel_data *d) noexcept nogil:
    cdef uint64_t cnt[N_COUNTERS]
    cdef rte_tel_data *pd = rte_tel_data_alloc()
    if pd == NULL:
        return
    memset(cnt, 0, sizeof(cnt))
    tel_port_sums(s, p, cnt)
    rte_tel_data_start_dict(pd)
    rte_tel_data_add_dict_string(pd, "name", s.pname[p])
    tel_counters(s, pd, cnt)
    tel_add(d, s.pkey[p], pd)


cdef int tel_fill_ports(const tel_src_t *s, const char *params,
                        rte_tel_data *d) noexcept nogil:
    cdef char want[TEL_NAME]
    cdef bint one = tel_param(params, want)
    cdef int p, found = 0
    rte_tel_data_start_dict(d)
    for p in range(s.nports):
        if one and strcmp(want, s.pname[p]) != 0 and strcmp(want, s.pkey[p]) != 0:
            continue
        tel_fill_port(s, p, d)
        found += 1
    return -1 if one and not found else 0


cdef void tel_fill_group(const tel_src_t *s, const tel_group_t *g,
                         rte_tel_data *d) noexcept nogil:
    """{name, packets, members: [packets per member slot]}: the slots at attach, and any
    slot beyond them that has counted packets since (a member added live)."""
    cdef uint64_t per[MAX_MEMBERS]
    cdef uint64_t total = 0
    cdef const uint64_t *mp
    cdef int w, m, n = g.members
    cdef rte_tel_data *gd = rte_tel_data_alloc()
    cdef rte_tel_data *arr
    if gd == NULL:
        return
    memset(per, 0, sizeof(per))
    for w in range(s.nworkers):
        mp = s.w[w].member_pkts
        if mp == NULL:
            continue
        for m in range(MAX_MEMBERS):
            per[m] += dp_tel_load(&mp[<size_t>g.index * MAX_MEMBERS + m])
    for m in range(MAX_MEMBERS):
        total += per[m]
        if per[m] and m >= n:
            n = m + 1
    rte_tel_data_start_dict(gd)
    rte_tel_data_add_dict_string(gd, "name", g.name)
    rte_tel_data_add_dict_u64(gd, "packets", total)
    arr = rte_tel_data_alloc()
    if arr != NULL:
        rte_tel_data_start_array(arr, RTE_TEL_U64_VAL)
        for m in range(n):
            rte_tel_data_add_array_u64(arr, per[m])
        tel_add(gd, "members", arr)
    tel_add(d, g.key, gd)


cdef int tel_fill_groups(const tel_src_t *s, const char *params,
                         rte_tel_data *d) noexcept nogil:
    cdef char want[TEL_NAME]
    cdef bint one = tel_param(params, want)
    cdef int i, found = 0
    rte_tel_data_start_dict(d)
    for i in range(s.ngroups):
        if one and strcmp(want, s.groups[i].name) != 0 and strcmp(want, s.groups[i].key) != 0:
            continue
        tel_fill_group(s, &s.groups[i], d)
        found += 1
    return -1 if one and not found else 0


# ------------------------------------------------------------------ the commands

cdef int tel_cmd_stats(const char *cmd, const char *params,
                       rte_tel_data *d) noexcept nogil:
    cdef int rc = -1
    dp_tel_lock()
    if _tel != NULL:
        tel_fill_stats(_tel, d)
        rc = 0
    dp_tel_unlock()
    return rc


cdef int tel_cmd_ports(const char *cmd, const char *params,
                       rte_tel_data *d) noexcept nogil:
    cdef int rc = -1
    dp_tel_lock()
    if _tel != NULL:
        rc = tel_fill_ports(_tel, params, d)
    dp_tel_unlock()
    return rc


cdef int tel_cmd_groups(const char *cmd, const char *params,
                        rte_tel_data *d) noexcept nogil:
    cdef int rc = -1
    dp_tel_lock()
    if _tel != NULL:
        rc = tel_fill_groups(_tel, params, d)
    dp_tel_unlock()
    return rc


cdef _tel_reg(bytes name, telemetry_cb fn, bytes help_):
    cdef int rc = rte_telemetry_register_cmd(name, fn, help_)
    if rc != 0:
        raise RuntimeError(f"rte_telemetry_register_cmd({name.decode()}): error {-rc}")


cdef _tel_register():
    """The three commands, once per process (the library keeps them until exit; with no
    core attached they answer null). Works before and after rte_eal_init."""
    global _tel_registered
    if _tel_registered:
        return
    _tel_reg(b"/dataplane/stats", tel_cmd_stats,
             b"Forwarder totals: rx, tx, drops by reason, flow table. No parameters")
    _tel_reg(b"/dataplane/ports", tel_cmd_ports,
             b"Per port: rx, tx, drops by reason. Parameter: a port name (else every port)")
    _tel_reg(b"/dataplane/groups", tel_cmd_groups,
             b"Per ECMP group: packets per member slot. Parameter: a group name (else all)")
    _tel_registered = True


# ------------------------------------------------------------------ attach / detach

def telemetry_keys(names):
    """Telemetry dict keys for names: characters outside [A-Za-z0-9_] become '_', at
    most TEL_NAME - 1 bytes, made unique by an _<position> suffix."""
    import re
    keys, seen = [], set()
    for i, name in enumerate(names):
        key = re.sub(r"[^A-Za-z0-9_]", "_", str(name))[:TEL_NAME - 8] or "_"
        while key in seen:
            key = f"{key}_{i}"[-(TEL_NAME - 1):]
        seen.add(key)
        keys.append(key)
    return keys


cdef void _tel_copy(char *dst, name) except *:
    cdef bytes b = str(name).encode()[:TEL_NAME - 1]
    memcpy(dst, <const char *>b, len(b))
    dst[len(b)] = 0


def telemetry_attach(Tables core, ports, groups=(), counters=None, node=""):
    """Serve `core`'s counters on the telemetry socket (registering the commands on first
    use). ports / groups: their names by index (config order); counters: the slot names
    (runtime.counter_names(); default: rx, tx, then dataplane.drops.DROP_REASONS). A core
    attached before is detached first."""
    global _tel, _tel_core
    cdef tel_src_t *s
    cdef int i
    ports, groups = list(ports), list(groups)
    if len(ports) != core.w[0].nports:
        raise ValueError(f"{len(ports)} port names for {core.w[0].nports} ports")
    if len(groups) != core.ngroups:
        raise ValueError(f"{len(groups)} group names for {core.ngroups} groups")
    if counters is None:
        from dataplane.drops import DROP_REASONS
        counters = [""] * N_COUNTERS
        counters[C_RX], counters[C_TX] = "rx", "tx"
        counters[C_MIRRORED], counters[C_MIRROR_DROPPED] = "mirrored", "mirror_dropped"
        for i, reason in enumerate(DROP_REASONS):
            counters[D_PARSE_ERROR + i] = reason
        from dataplane.limits import VNET_COUNTERS
        for i, name in enumerate(VNET_COUNTERS):
            counters[C_CONSUMED + i] = name
    counters = list(counters)
    if len(counters) != N_COUNTERS:
        raise ValueError(f"{len(counters)} counter names for {N_COUNTERS} slots")
    _tel_register()
    s = <tel_src_t *>check_alloc(calloc(1, sizeof(tel_src_t)), "telemetry source")
    try:
        s.groups = <tel_group_t *>check_alloc(
            calloc(max(1, len(groups)), sizeof(tel_group_t)), "telemetry groups")
        s.nworkers = core.nworkers
        for i in range(core.nworkers):
            s.w[i] = core.w[i]
        s.nports = len(ports)
        s.ngroups = len(groups)
        _tel_copy(s.node, node)
        for i, c in enumerate(counters):
            _tel_copy(s.slot[i], telemetry_keys([c])[0] if c else "")
        for i, (key, name) in enumerate(zip(telemetry_keys(ports), ports)):
            _tel_copy(s.pkey[i], key)
            _tel_copy(s.pname[i], name)
        for i, (key, name) in enumerate(zip(telemetry_keys(groups), groups)):
            _tel_copy(s.groups[i].key, key)
            _tel_copy(s.groups[i].name, name)
            s.groups[i].index = i
            s.groups[i].members = core.t.groups[i].n_members
    except BaseException:
        free(s.groups)
        free(s)
        raise
    telemetry_detach()
    _tel_core = core               # before publishing: the contexts outlive the pointer
    with nogil:
        dp_tel_lock()
        _tel = s
        dp_tel_unlock()


def telemetry_detach():
    """Stop serving the attached core: when this returns no callback reads it (commands
    answer null), and the Core may be freed."""
    global _tel, _tel_core
    cdef tel_src_t *old
    with nogil:
        dp_tel_lock()
        old = _tel
        _tel = NULL
        dp_tel_unlock()
    if old != NULL:
        free(old.groups)
        free(old)
    _tel_core = None


def telemetry_attached():
    """True while a core is attached."""
    return _tel != NULL
