/* Tiny C shims for DPDK 22.11 macros that Cython cannot call directly
 * (macros taking a type, per-lcore variables). */
#ifndef DP_SHIM_H
#define DP_SHIM_H
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>

static inline uint8_t *dp_mtod(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, uint8_t *); }
static inline int dp_errno(void) { return rte_errno; }
static inline size_t dp_tx_buffer_size(uint16_t n) { return RTE_ETH_TX_BUFFER_SIZE(n); }
#ifndef DP_DEBUG
#define DP_DEBUG 0
#endif

/* DPDK's rte_cpu_to_be_16 is inline asm on x86, which the compiler cannot fold. */
static inline uint16_t dp_bswap16(uint16_t x) { return __builtin_bswap16(x); }
static inline uint32_t dp_bswap32(uint32_t x) { return __builtin_bswap32(x); }

/* The stop flag is written by the main lcore and polled by workers. */
static inline int dp_flag_get(int *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dp_flag_set(int *p, int v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
/* The published table version (docs/workers.md): the main lcore stores a new pointer,
 * workers load it once per loop iteration. */
static inline void *dp_ptr_get(void **p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void dp_ptr_set(void **p, void *v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }
#endif  /* DP_SHIM_H */
