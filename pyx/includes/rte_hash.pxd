# DPDK 22.11 LTS: rte_hash.h (cuckoo hash: the flow table)
from libc.stdint cimport uint8_t, uint32_t, int32_t

cdef extern from "rte_hash.h" nogil:
    struct rte_hash:
        pass
    ctypedef uint32_t (*rte_hash_function)(const void *key, uint32_t key_len,
                                          uint32_t init_val) noexcept nogil
    struct rte_hash_parameters:
        const char *name
        uint32_t entries
        uint32_t reserved
        uint32_t key_len
        rte_hash_function hash_func
        uint32_t hash_func_init_val
        int socket_id
        uint8_t extra_flag
    const uint8_t RTE_HASH_EXTRA_FLAGS_EXT_TABLE
    const uint8_t RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF
    const uint8_t RTE_HASH_EXTRA_FLAGS_MULTI_WRITER_ADD
    const int RTE_HASH_LOOKUP_BULK_MAX
    rte_hash *rte_hash_create(const rte_hash_parameters *params)
    void rte_hash_free(rte_hash *h)
    int rte_hash_reset(rte_hash *h)
    int32_t rte_hash_count(const rte_hash *h)
    int32_t rte_hash_add_key(const rte_hash *h, const void *key)
    int32_t rte_hash_del_key(const rte_hash *h, const void *key)
    int32_t rte_hash_lookup(const rte_hash *h, const void *key)
    ctypedef uint32_t hash_sig_t
    int rte_hash_lookup_bulk(const rte_hash *h, const void **keys, uint32_t num_keys,
                             int32_t *positions)
    int rte_hash_lookup_with_hash_bulk(const rte_hash *h, const void **keys,
                                       hash_sig_t *sig, uint32_t num_keys,
                                       int32_t *positions)
    int32_t rte_hash_add_key_with_hash(const rte_hash *h, const void *key, hash_sig_t sig)
    int32_t rte_hash_lookup_with_hash(const rte_hash *h, const void *key, hash_sig_t sig)
    int32_t rte_hash_del_key_with_hash(const rte_hash *h, const void *key, hash_sig_t sig)
    int rte_hash_add_key_data(const rte_hash *h, const void *key, void *data)
    int rte_hash_lookup_data(const rte_hash *h, const void *key, void **data)
    int32_t rte_hash_iterate(const rte_hash *h, const void **key, void **data,
                             uint32_t *next)
    int rte_hash_free_key_with_position(const rte_hash *h, const int32_t position)
    int rte_hash_get_key_with_position(const rte_hash *h, const int32_t position,
                                       void **key)
