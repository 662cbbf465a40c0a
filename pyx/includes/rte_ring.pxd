# DPDK 22.11 LTS: rte_ring.h (only what the loopback port uses)
cdef extern from "rte_ring.h" nogil:
    struct rte_ring:
        pass
    enum:
        RING_F_SP_ENQ
        RING_F_SC_DEQ
    rte_ring *rte_ring_create(const char *name, unsigned count, int socket_id,
                              unsigned flags)
    void rte_ring_free(rte_ring *r)
    unsigned rte_ring_enqueue_burst(rte_ring *r, void * const *obj_table, unsigned n,
                                    unsigned *free_space)
    unsigned rte_ring_dequeue_burst(rte_ring *r, void **obj_table, unsigned n,
                                    unsigned *available)
