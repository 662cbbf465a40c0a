# DPDK 22.11 LTS: rte_rcu_qsbr.h (quiescent-state based reclamation: when may an old
# table version be freed)
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "rte_rcu_qsbr.h" nogil:
    struct rte_rcu_qsbr:
        pass
    size_t rte_rcu_qsbr_get_memsize(uint32_t max_threads)
    int rte_rcu_qsbr_init(rte_rcu_qsbr *v, uint32_t max_threads)
    int rte_rcu_qsbr_thread_register(rte_rcu_qsbr *v, unsigned int thread_id)
    int rte_rcu_qsbr_thread_unregister(rte_rcu_qsbr *v, unsigned int thread_id)
    void rte_rcu_qsbr_thread_online(rte_rcu_qsbr *v, unsigned int thread_id)
    void rte_rcu_qsbr_thread_offline(rte_rcu_qsbr *v, unsigned int thread_id)
    void rte_rcu_qsbr_quiescent(rte_rcu_qsbr *v, unsigned int thread_id)
    uint64_t rte_rcu_qsbr_start(rte_rcu_qsbr *v)
    int rte_rcu_qsbr_check(rte_rcu_qsbr *v, uint64_t t, bint wait)
