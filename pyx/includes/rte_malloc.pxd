# DPDK 22.11 LTS: rte_malloc.h (external heaps: memory the application maps itself)
from includes.rte_memory cimport rte_iova_t

cdef extern from "rte_malloc.h" nogil:
    int rte_malloc_heap_create(const char *heap_name)
    int rte_malloc_heap_destroy(const char *heap_name)
    int rte_malloc_heap_get_socket(const char *name)
    int rte_malloc_heap_memory_add(const char *heap_name, void *va_addr, size_t len,
                                   rte_iova_t *iova_addrs, unsigned int n_pages,
                                   size_t page_sz)
    int rte_malloc_heap_memory_remove(const char *heap_name, void *va_addr, size_t len)

cdef extern from "rte_eal.h" nogil:
    int rte_eal_has_hugepages()
