# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The forwarding core, `dataplane._core`: one extension module, one C unit, so that the
whole packet path inlines into the worker loop and process state is shared without a
cross-module C API. Read in this order (docs/workers.md §5 has the stage map):

  pyx/ctx.pxd            a worker's context, the published table version
  pyx/classify.pxd ...   the stages, one .pxd each, in the order a packet meets them
  pyx/pipeline.pxd       packet_burst / flow_burst: the stages as named phases
  pyx/tx.pxd             buffered TX per worker queue
  this file              the worker loop; class Core: ports, launch, stop, test hooks
  pyx/core.pxi           class Tables: compiled tables in, published versions, counters out
  pyx/flowtable.pxi      a worker's flow table memory
  pyx/memory.pxi         EAL, the mbuf pool, huge-page heaps
  pyx/loopport.pxi       loopback rings for `run --loop`

Python (dataplane/runtime.py) drives it; workers run `worker()` and touch no Python
object. `Core.process()` pushes frames through the very same `process_burst()` on real
mbufs from the real mempool, for the differential tests.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
from libc.errno cimport errno
from posix.mman cimport mlockall, MCL_CURRENT, MCL_FUTURE
from posix.unistd cimport usleep

from includes.rte_eal cimport rte_eal_init
from includes.rte_launch cimport rte_eal_remote_launch, rte_eal_wait_lcore
from includes.rte_lcore cimport rte_socket_id
from includes.rte_cycles cimport rte_rdtsc, rte_get_tsc_hz
from includes.rte_memory cimport SOCKET_ID_ANY
from includes.rte_prefetch cimport rte_prefetch0
from includes.rte_mempool cimport (rte_mempool, rte_mempool_in_use_count,
                                   rte_mempool_avail_count)
from includes.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_pool_create, rte_pktmbuf_alloc,
                                rte_pktmbuf_free, rte_pktmbuf_append, rte_pktmbuf_tailroom,
                                rte_pktmbuf_chain,
                                RTE_MBUF_DEFAULT_BUF_SIZE)
from includes.rte_ethdev cimport *
from includes.rte_lpm cimport *
from includes.rte_lpm6 cimport *
from includes.rte_hash cimport *
from includes.rte_rcu_qsbr cimport *
from includes.rte_malloc cimport (rte_malloc_heap_create, rte_malloc_heap_destroy,
                                  rte_malloc_heap_get_socket, rte_malloc_heap_memory_add,
                                  rte_malloc_heap_memory_remove, rte_eal_has_hugepages)
from includes.rte_ring cimport rte_ring, rte_ring_create, rte_ring_free, RING_F_SP_ENQ, RING_F_SC_DEQ
from includes.rte_eth_ring cimport rte_eth_from_rings
from includes.shim cimport dp_mtod, dp_tx_buffer_size, dp_flag_get, dp_flag_set, dp_ptr_set
from errors cimport check, check_ptr, check_alloc, fail
from libc.errno cimport ENOMEM, EINVAL, EALREADY, ENOBUFS
from consts cimport *
from thp cimport thp_map, thp_unmap, thp_size, HUGE_PAGE
from rss cimport RSS_SYMMETRIC_KEY
from loopport cimport (pcap_walk_t, pcap_walk, pcap_queues, ring_fill, ring_drain,
                       PCAP_NOT_PCAP, PCAP_TRUNCATED, PCAP_NO_MBUF, PCAP_TOO_LONG,
                       PCAP_RING_FULL)
from parse cimport flow_key_t, be16
from hashing cimport key_mask4, F_L3, F_SYMMETRIC
from route cimport vrf_t
from rewrite cimport nexthop_t
from ecmp cimport group_t, frag_table_t
from mpls_input cimport mpls_t, lfib_entry_t, pw_t, be32
from fatflow cimport fat_rules_t
from flow cimport (flow_table_t, flow_entry_t, emc_slot_t, flow_age, flow_delete, flow_flush,
                   flow_age_paced, flow_sig, AGE_SLICE, EMC_SLOTS, KEY_SLOT)
from ctx cimport ctx_t, port_t, mirror_t, tables_t, shared_t, tables_refresh, clock_now
from pipeline cimport process_burst, region_cb, decap_cb, emit_mpls_cb, push_cb
from classify cimport vn_cb, arpnd_cb
from tx cimport tx_send, tx_flush, tx_refused, x_send, x_mirror, flood_refused
from bridge cimport bridge_key
from mirror cimport mirror_send, mirror_refused
import ipaddress
import time
import numpy as np

include "memory.pxi"
include "loopport.pxi"
include "flowtable.pxi"
include "vnet.pxi"
include "core.pxi"
include "telemetry.pxi"


cdef int worker(void *arg) noexcept nogil:
    """The poll loop of one worker lcore: take the published tables, RX a burst from this
    worker's queue of each port, process it, TX; drain the TX buffers on a TSC timer,
    age a slice of the flow table, report a quiescent state."""
    cdef ctx_t *c = <ctx_t *>arg
    cdef rte_mbuf *pkts[BURST]
    cdef rte_mbuf *out[BURST]
    cdef uint16_t out_port[BURST]
    cdef uint16_t i, j, n, k
    cdef uint64_t now, last = rte_rdtsc()
    cdef rte_rcu_qsbr *rcu = c.shared.rcu
    cdef uint16_t q = c.worker
    cdef uint64_t tick_tsc = rte_get_tsc_hz() // 100
    c.flows.age_next = last
    rte_rcu_qsbr_thread_online(rcu, q)
    while not dp_flag_get(&c.stop):
        tables_refresh(c)
        if c.held.total:               # next hops resolved since: their held packets
            neigh_release(c)
        if q == 0 and c.vn.n_neigh and last >= c.tick_next:   # ARP / ND requests
            neigh_tick(c, last)
            c.tick_next = last + tick_tsc
        if c.n_x:
            x_send(c)
            if c.n_mirror:
                mirror_send(c)
        for i in range(c.nports):
            if not c.ports[i].rx:
                continue
            n = rte_eth_rx_burst(c.ports[i].port_id, q, pkts, BURST)
            if n == 0:
                continue
            for j in range(n):         # mbufs from a ring (a loopback port) come cold
                rte_prefetch0(pkts[j])
            k = process_burst(c, i, pkts, n, out, out_port)
            if k:
                tx_send(c, out, out_port, k)
            if c.n_mirror:             # mirror copies, after the burst's own packets
                mirror_send(c)
            if c.n_x:                  # flood copies likewise (and their mirror copies)
                x_send(c)
                if c.n_mirror:
                    mirror_send(c)
        now = rte_rdtsc()
        if now - last > c.drain_tsc:
            tx_flush(c)
            last = now
        if c.flows.capacity:
            flow_age_paced(&c.flows, now)
            if dp_flag_get(&c.flush_req):  # `flow --flush`: only the owner writes its table
                flow_flush(&c.flows)
                dp_flag_set(&c.flush_req, 0)
        c.loops += 1
        rte_rcu_qsbr_quiescent(rcu, q)     # no table pointer held past this point
    rte_rcu_qsbr_thread_offline(rcu, q)
    tx_flush(c)
    neigh_drop_held(c)                 # still unresolved at stop: arp_unresolved
    return 0


cdef bytes mbuf_bytes(rte_mbuf *m):
    """A packet's bytes, over all its segments (checked against pkt_len)."""
    cdef rte_mbuf *s = m
    parts = []
    while s != NULL:
        parts.append(PyBytes_FromStringAndSize(<char *>dp_mtod(s), s.data_len))
        s = s.next
    data = b"".join(parts)
    if len(data) != m.pkt_len:
        raise AssertionError(f"mbuf chain holds {len(data)} bytes, pkt_len {m.pkt_len}")
    return data


cdef class Core(Tables):
    """Tables plus the DPDK ports and worker lcores that use them."""

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
                f"port index {index}: device {dev_name} has "
                f"{info.max_rx_queues} RX / {info.max_tx_queues} TX queues, {nq} workers "
                "need one each (net_pcap: one rx_pcap= and tx_pcap= per worker)", EINVAL,
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
            pt.txb = <rte_eth_dev_tx_buffer *>check_alloc(
                calloc(1, dp_tx_buffer_size(BURST)), f"TX buffer of {dev_name} queue {q}")
            check(rte_eth_tx_buffer_init(pt.txb, BURST), f"rte_eth_tx_buffer_init({dev_name})")
            check(rte_eth_tx_buffer_set_err_callback(pt.txb, tx_refused, <void *>pt.cnt),
                  f"rte_eth_tx_buffer_set_err_callback({dev_name})")
            # flood copies' own buffer: a refused copy is flood_dropped, not tx_full
            pt.ftxb = <rte_eth_dev_tx_buffer *>check_alloc(
                calloc(1, dp_tx_buffer_size(BURST)), f"flood TX buffer of {dev_name} queue {q}")
            check(rte_eth_tx_buffer_init(pt.ftxb, BURST), f"rte_eth_tx_buffer_init({dev_name})")
            check(rte_eth_tx_buffer_set_err_callback(pt.ftxb, flood_refused, <void *>pt.cnt),
                  f"rte_eth_tx_buffer_set_err_callback(flood of {dev_name})")
            if pt.mirror_rx or pt.mirror_tx:
                # its copies' own buffer: a copy the PMD refuses is this port's
                # mirror_dropped, never an original's tx_full (pyx/mirror.pxd)
                pt.mirror.txb = <rte_eth_dev_tx_buffer *>check_alloc(
                    calloc(1, dp_tx_buffer_size(BURST)),
                    f"mirror TX buffer of {dev_name} queue {q}")
                check(rte_eth_tx_buffer_init(pt.mirror.txb, BURST),
                      f"rte_eth_tx_buffer_init(mirror of {dev_name})")
                check(rte_eth_tx_buffer_set_err_callback(pt.mirror.txb, mirror_refused,
                                                         <void *>pt.cnt),
                      f"rte_eth_tx_buffer_set_err_callback(mirror of {dev_name})")
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

    def port_up(self, int index):
        """The port's link is up (a port without a device counts as up)."""
        cdef rte_eth_link link
        if not self.w[0].ports[index].bound:
            return True
        memset(&link, 0, sizeof(link))
        if rte_eth_link_get_nowait(self.w[0].ports[index].port_id, &link) != 0:
            return True            # a PMD that cannot tell: not taken for down
        return bool(link.link_status)

    def close_ports(self):
        """Stop and close every bound port (the workers must be stopped)."""
        cdef port_t *pt
        cdef int rc
        failed = []
        for i in range(self.w[0].nports):
            pt = &self.w[0].ports[i]
            if pt.bound:
                # every port is stopped and closed; the first failure is raised after
                rc = rte_eth_dev_stop(pt.port_id)
                if rc < 0:
                    failed.append((f"rte_eth_dev_stop(port {i})", -rc))
                rc = rte_eth_dev_close(pt.port_id)
                if rc < 0:
                    failed.append((f"rte_eth_dev_close(port {i})", -rc))
            for q in range(self.nworkers):
                pt = &self.w[q].ports[i]
                pt.bound = 0
                pt.rx = 0
                free(pt.txb)
                pt.txb = NULL
                free(pt.ftxb)
                pt.ftxb = NULL
                free(pt.mirror.txb)
                pt.mirror.txb = NULL
        if failed:
            fail(failed[0][0], failed[0][1])

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

    # ------------------------------------------------------------------ test hooks

    cdef ctx_t *_idle(self, int worker) except NULL:
        if self.running:
            raise RuntimeError("the workers are running")
        if not 0 <= worker < self.nworkers:
            raise ValueError(f"no worker {worker}")
        tables_refresh(self.w[worker])
        return self.w[worker]

    def process(self, int in_port, frames, int worker=0, unsigned seg=0):
        """Run frames through process_burst() on real mbufs (tests): [(out_port, bytes)].
        A frame longer than an mbuf is received in several segments; seg > 0 makes
        segments of at most seg bytes (multi-segment tests)."""
        cdef rte_mbuf *pkts[BURST]
        cdef rte_mbuf *out[BURST]
        cdef uint16_t out_port[BURST]
        cdef uint16_t n, k, j
        cdef ctx_t *c = self._idle(worker)
        if not 0 <= in_port < c.nports:
            raise ValueError(f"no port {in_port}")
        result = []
        frames = list(frames)
        self._release_all(c, result)       # released first (docs/virtual-networks.md §8)
        for start in range(0, len(frames), BURST):
            n = fill_burst(pkts, frames[start:start + BURST], in_port, seg)
            k = process_burst(c, in_port, pkts, n, out, out_port)
            for j in range(k):
                result.append((out_port[j], mbuf_bytes(out[j])))
                rte_pktmbuf_free(out[j])
            self._take_staged(c, True)
            self._take_x(c, result)
        return result

    cdef _take_x(self, ctx_t *c, list result):
        """The extra frames staged (flood copies, released packets, requests), freed,
        appended to result as (port, bytes)."""
        cdef uint16_t j
        if c.mirroring:
            x_mirror(c)
            self._take_staged(c, True)
        for j in range(c.n_x):
            result.append((c.x_port[j], mbuf_bytes(c.x_out[j])))
            rte_pktmbuf_free(c.x_out[j])
        c.n_x = 0

    def neigh_tick(self, int worker=0):
        """Tests: what a worker loop iteration does for neighbours: release the held
        packets of resolved next hops, then (worker 0) expire, refresh and resolve at
        the clock. [(port, bytes)]: released packets, then requests."""
        cdef ctx_t *c = self._idle(worker)
        result = []
        self._release_all(c, result)
        if worker == 0 and c.vn.n_neigh:
            neigh_tick(c, clock_now(c))
        self._take_x(c, result)
        return result

    cdef _release_all(self, ctx_t *c, list result):
        """Every held packet whose next hop is resolved, staged and taken (the worker
        loop stages what fits and goes on at its next iteration)."""
        cdef uint32_t before
        while c.held.total:
            before = c.held.total
            neigh_release(c)
            self._take_x(c, result)
            if c.held.total == before:     # the rest wait for their MAC
                break

    def drop_held(self):
        """Tests: drop every held packet arp_unresolved (what a stopping worker does)."""
        for w in range(self.nworkers):
            neigh_drop_held(self._idle(w))

    cdef _take_staged(self, ctx_t *c, bint keep):
        """The mirror copies the last burst staged, freed; keep: into mirror_copies as
        (port they leave by, MIRROR_RX or MIRROR_TX, bytes)."""
        cdef uint16_t j
        for j in range(c.n_mirror):
            if keep:
                self.mirror_copies.append((c.ports[c.mirror_src[j]].mirror.dest,
                                           c.mirror_dir[j], mbuf_bytes(c.mirror_out[j])))
            rte_pktmbuf_free(c.mirror_out[j])
        c.n_mirror = 0

    def take_mirrored(self):
        """Tests: the mirror copies process() made since the last call, in the order
        made: [(port they leave by, MIRROR_RX or MIRROR_TX, bytes)]."""
        out, self.mirror_copies = self.mirror_copies, []
        return out

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
                self._take_staged(c, False)
                self._take_x(c, [])
                res.append((t1 - t0) / n)
        return res

    def close(self):
        """Stop the workers, close the ports, free the tables."""
        self.stop()
        self.close_ports()
        self._free_tables()

    def __dealloc__(self):
        if not self.launched and self.w[0] != NULL:
            self.close_ports()


def dataplane_error(msg, err, text):
    from dataplane.errors import DataplaneError
    return DataplaneError(msg, err, text)


RSS_HF = (RTE_ETH_RSS_IPV4 | RTE_ETH_RSS_FRAG_IPV4 | RTE_ETH_RSS_NONFRAG_IPV4_TCP |
          RTE_ETH_RSS_NONFRAG_IPV4_UDP | RTE_ETH_RSS_IPV6 | RTE_ETH_RSS_FRAG_IPV6 |
          RTE_ETH_RSS_NONFRAG_IPV6_TCP | RTE_ETH_RSS_NONFRAG_IPV6_UDP)
