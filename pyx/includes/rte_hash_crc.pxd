# DPDK 22.11 LTS: rte_hash_crc.h (CRC32-C, SSE4.2 when present)
from libc.stdint cimport uint32_t, uint64_t

cdef extern from "rte_hash_crc.h" nogil:
    uint32_t rte_hash_crc(const void *data, uint32_t data_len, uint32_t init_val)
    uint32_t rte_hash_crc_8byte(uint64_t data, uint32_t init_val)
