# TX stage: packets a burst produced are enqueued per egress port (this worker's TX
# queue), sent straight to the PMD when half a burst or more goes to one port with
# nothing buffered (as testpmd does), and the buffers drained on a TSC timer. What a
# PMD refuses is freed and counted tx_full on the egress port. A port that mirrors what
# it sends gets its copy here (pyx/mirror.pxd).
from libc.stdint cimport uint16_t, uint64_t
from includes.rte_mbuf cimport rte_mbuf, rte_pktmbuf_free
from includes.rte_ethdev cimport rte_eth_tx_buffer, rte_eth_tx_buffer_flush, rte_eth_tx_burst
from consts cimport *
from ctx cimport ctx_t, port_t, refused
from mirror cimport mirror_tx, mirror_flush
from vnet cimport X_FLOOD, X_HELD, X_REQUEST


cdef inline void tx_enqueue(ctx_t *c, rte_mbuf *m, uint16_t port, rte_mbuf **out,
                            uint16_t *out_port, uint16_t *k) noexcept nogil:
    """Put a processed packet in the burst's output for `port` (counted tx now; a
    refusal later moves it to tx_full); a port that mirrors what it sends copies it
    now, as it is handed to TX (pyx/mirror.pxd)."""
    cdef port_t *pt = &c.ports[port]
    out[k[0]] = m
    out_port[k[0]] = port
    pt.cnt[C_TX] += 1
    k[0] += 1
    if pt.mirror_tx:
        mirror_tx(c, pt, port, m)


cdef inline void tx_refused(rte_mbuf **pkts, uint16_t unsent, void *userdata) noexcept nogil:
    """TX buffer error callback: the PMD refused `unsent` packets: tx_full."""
    refused(pkts, unsent, <uint64_t *>userdata, C_TX, D_TX_FULL)


cdef inline void flood_refused(rte_mbuf **pkts, uint16_t unsent, void *userdata) noexcept nogil:
    """A flood-copy TX buffer's error callback: flooded → flood_dropped of their port."""
    refused(pkts, unsent, <uint64_t *>userdata, C_FLOODED, C_FLOOD_DROPPED)


cdef inline void x_mirror(ctx_t *c) noexcept nogil:
    """tx mirror copies of the staged extra frames (flood copies, released packets,
    requests), as they are handed to TX, each naming its own ingress."""
    cdef port_t *dst
    cdef uint16_t j, saved = c.in_port
    for j in range(c.n_x):
        dst = &c.ports[c.x_port[j]]
        if dst.mirror_tx:
            c.in_port = c.x_in[j]
            mirror_tx(c, dst, c.x_port[j], c.x_out[j])
    c.in_port = saved


cdef inline void x_send(ctx_t *c) noexcept nogil:
    """The extra frames staged (docs/virtual-networks.md): flood copies through their own
    buffer, released held packets through the port's, requests straight to the PMD."""
    cdef port_t *dst
    cdef uint16_t j
    cdef rte_mbuf *m
    if c.mirroring:
        x_mirror(c)
    for j in range(c.n_x):
        dst = &c.ports[c.x_port[j]]
        m = c.x_out[j]
        if not dst.bound:                  # no device to send it to
            rte_pktmbuf_free(m)
            if c.x_kind[j] == X_FLOOD:
                dst.cnt[C_FLOODED] -= 1
                dst.cnt[C_FLOOD_DROPPED] += 1
            elif c.x_kind[j] == X_HELD:
                dst.cnt[C_TX] -= 1
                dst.cnt[D_TX_FULL] += 1
            else:
                dst.cnt[C_ARP_SENT] -= 1
        elif c.x_kind[j] == X_FLOOD:
            rte_eth_tx_buffer(dst.port_id, c.worker, dst.ftxb, m)
        elif c.x_kind[j] == X_HELD:
            rte_eth_tx_buffer(dst.port_id, c.worker, dst.txb, m)
        elif rte_eth_tx_burst(dst.port_id, c.worker, &m, 1) == 0:
            rte_pktmbuf_free(m)
            dst.cnt[C_ARP_SENT] -= 1
    c.n_x = 0


cdef inline void tx_flush(ctx_t *c) noexcept nogil:
    cdef uint16_t i
    for i in range(c.nports):
        if c.ports[i].bound:
            rte_eth_tx_buffer_flush(c.ports[i].port_id, c.worker, c.ports[i].txb)
    if c.flooding:                     # flood copies after the ports' own packets
        for i in range(c.nports):
            if c.ports[i].bound:
                rte_eth_tx_buffer_flush(c.ports[i].port_id, c.worker, c.ports[i].ftxb)
    if c.mirroring:                    # mirror copies after the ports' own packets
        mirror_flush(c)


cdef inline void tx_send(ctx_t *c, rte_mbuf **out, uint16_t *out_port,
                         uint16_t k) noexcept nogil:
    """The k packets a burst produced, toward their egress ports on this worker's queue."""
    cdef port_t *dst = &c.ports[out_port[0]]
    cdef uint16_t j = 1
    while j < k and out_port[j] == out_port[0]:
        j += 1
    if j == k and k >= BURST // 2 and dst.txb.length == 0:
        # half a burst or more to one port, nothing buffered before it: straight to the
        # PMD, as testpmd does (order kept; what it refuses is tx_full)
        j = rte_eth_tx_burst(dst.port_id, c.worker, out, k)
        if j < k:
            tx_refused(out + j, k - j, <void *>dst.cnt)
        return
    for j in range(k):
        dst = &c.ports[out_port[j]]
        rte_eth_tx_buffer(dst.port_id, c.worker, dst.txb, out[j])
