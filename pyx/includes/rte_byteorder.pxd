# DPDK 22.11 LTS: rte_byteorder.h
from libc.stdint cimport uint16_t, uint32_t

cdef extern from "rte_byteorder.h" nogil:
    uint16_t rte_be_to_cpu_16(uint16_t x)
    uint32_t rte_be_to_cpu_32(uint32_t x)
    uint16_t rte_cpu_to_be_16(uint16_t x)
    uint32_t rte_cpu_to_be_32(uint32_t x)
