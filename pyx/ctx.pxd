# A worker's context (docs/workers.md): the published table version it reads, and what is
# its own: ports with its TX buffers and counters, flow table, fragment table, member
# counters. Nothing here is written by two lcores.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_free
from includes.rte_ethdev cimport rte_eth_dev_tx_buffer
from includes.rte_cycles cimport rte_rdtsc
from includes.rte_rcu_qsbr cimport rte_rcu_qsbr
from includes.shim cimport dp_ptr_get
from consts cimport *
from parse cimport pkt_t
from route cimport vrf_t
from rewrite cimport nexthop_t
from ecmp cimport group_t, frag_table_t
from mpls_input cimport mpls_t
from fatflow cimport fat_rules_t
from flow cimport flow_table_t
from vnet cimport vnet_t, held_t, pair_t, XSTAGE

ctypedef struct mirror_t:
    # A port's mirror (docs/mirroring.md): where its copies go and how; per worker, the
    # 1-in-N ticks, the copies' sequence numbers and a TX buffer of its own for them.
    uint16_t dest              # index of the port the copies leave by
    uint8_t analyzer           # 1: UDP + metadata to an analyzer; 0: raw copies
    uint8_t v6                 # the analyzer is reached over IPv6
    uint16_t hlen              # analyzer: bytes of hdr (Ethernet + IP + UDP + metadata)
    uint32_t sample            # copy 1 packet in N (per direction)
    uint32_t osum              # analyzer over IPv4: the template's IP header word sum
    uint32_t tick[2]           # rx, tx: packets seen since the last copy, mod sample
    uint32_t seq[2]            # rx, tx: packets sampled (the metadata's sequence)
    rte_eth_dev_tx_buffer *txb # this worker's buffer of copies toward dest
    uint8_t hdr[MIRROR_HDR_MAX]    # analyzer template; per copy: lengths, checksums, fields

ctypedef struct port_t:
    uint16_t port_id           # DPDK port id
    uint16_t vrf               # VRF index of an L3 port
    uint8_t l3                 # 0: not an L3 port (a pseudowire attachment circuit)
    uint8_t rx                 # 1: the worker polls this port
    uint8_t bound              # 1: a DPDK port is attached
    uint8_t flow_mode          # 1: flow mode (the flow table pins flows); 0: packet mode
    uint16_t pw                # pseudowire of an attachment circuit, NO_PW: none
    uint8_t mirror_rx          # 1: a copy of 1 in mirror.sample packets it receives
    uint8_t mirror_tx          # 1: ... of the packets it sends
    uint64_t cnt[N_COUNTERS]   # rx, tx, drops by reason, mirror (dataplane/limits.py COUNTERS)
    rte_eth_dev_tx_buffer *txb # this worker's TX buffer toward the port
    fat_rules_t fat
    mirror_t mirror
    # virtual networks (docs/virtual-networks.md)
    uint8_t fwd                # its VRF's forwarding: FWD_L3 / FWD_L2 / FWD_L2L3
    uint8_t vn                 # 1: frames take the VN classify path (bind, l2, l2_l3)
    uint8_t slow               # 1: not a plain L3 port (no VRF, or vn)
    uint8_t proxy              # proxy_arp
    uint8_t mac[6]             # the port's own MAC
    uint8_t gw_mac[6]          # the gateway MAC: IP to it is routed (l2_l3), ARP answers
    uint16_t n_pairs           # binding: allowed (MAC, prefix) pairs and MACs
    uint16_t n_bmacs
    pair_t *pairs
    uint8_t *bmacs             # n_bmacs * 6 bytes
    rte_eth_dev_tx_buffer *ftxb    # this worker's buffer of flood copies toward the port

ctypedef struct tables_t:
    # One published version of the forwarding tables: immutable once published; a change
    # builds a new version that shares what it does not change (docs/workers.md §4).
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
    int flush_req              # the main lcore asks this worker to flush its flow table
    uint16_t worker            # worker index = its RX/TX queue on every port
    uint16_t nports
    shared_t *shared
    const tables_t *cur        # the version vrfs/nhs/groups/mpls were taken from
    uint64_t cur_version       # its number: a freed version's address may come back
    uint64_t *member_pkts      # [group id * MAX_MEMBERS + member slot]
    uint64_t drain_tsc         # flush TX buffers at least this often
    uint64_t loops
    uint64_t fake_now          # tests: the clock (TSC units); 0 = rte_rdtsc()
    uint16_t in_port           # the port of the burst in process (a tx copy's ingress)
    uint8_t mirroring          # 1: some port mirrors (its copies' buffers are flushed)
    uint8_t flooding           # 1: some VRF bridges (flood copies' buffers are flushed)
    uint16_t n_mirror          # mirror copies the burst made, sent after its packets
    uint16_t mirror_src[MIRROR_STAGE]  # ... the mirrored port of each
    uint8_t mirror_dir[MIRROR_STAGE]   # ... MIRROR_RX or MIRROR_TX
    rte_mbuf *mirror_out[MIRROR_STAGE]
    uint64_t ts_base_ns        # mirror timestamps: Unix time in ns at TSC ts_base_tsc
    uint64_t ts_base_tsc
    double ns_per_tsc
    uint64_t mirror_fake_ns    # tests: every mirror timestamp; 0 = the TSC
    vnet_t *vn                 # virtual networks: shared tables, NULL: none
    held_t held                # packets waiting for their next hop's MAC
    uint64_t tick_next         # worker 0: clock of the next neighbour tick
    uint16_t n_x               # extra frames staged: flood copies, released, requests
    uint8_t x_kind[XSTAGE]
    uint16_t x_port[XSTAGE]
    uint16_t x_in[XSTAGE]      # ... their ingress (a tx mirror copy names it)
    rte_mbuf *x_out[XSTAGE]
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
    # the virtual-network classify path (pyx/classify.pxd classify_vn) likewise
    int (*on_vn)(void *c, const port_t *pt, pkt_t *p) noexcept nogil
    int (*on_arpnd)(pkt_t *p) noexcept nogil
    # a packet toward a next hop whose MAC ARP / ND resolves (pyx/neigh.pxd neigh_out)
    bint (*on_neigh)(void *c, rte_mbuf *m, uint32_t j) noexcept nogil


cdef inline void tables_refresh(ctx_t *c) noexcept nogil:
    """Take the published table version (once per loop iteration; the version stays
    valid until this worker's next quiescent report)."""
    cdef const tables_t *t = <const tables_t *>dp_ptr_get(<void **>&c.shared.current)
    cdef uint64_t el
    if t != c.cur or t.version != c.cur_version:
        c.cur = t
        c.cur_version = t.version
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


cdef inline void refused(rte_mbuf **pkts, uint16_t unsent, uint64_t *cnt, int sent,
                         int lost) noexcept nogil:
    """What a PMD refused from a TX buffer (its error callback): freed, moved from
    counter `sent` to `lost`."""
    cdef uint16_t i
    for i in range(unsent):
        rte_pktmbuf_free(pkts[i])
    cnt[lost] += unsent
    cnt[sent] -= unsent
