# Memory on transparent huge pages (docs/flow-table.md §6). With --no-huge, EAL memory
# and malloc()ed memory sit on 4 KiB pages: every random access to a large flow table
# then misses the TLB too (a two-level page walk in a VM). A 2 MiB page covers 512 times
# as much. The kernel grants them to regions that ask (transparent_hugepage=madvise).
from libc.stdint cimport uint8_t
from libc.errno cimport errno, EINVAL
from posix.mman cimport (mmap, munmap, mprotect, madvise, PROT_NONE, PROT_READ,
                         PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED)

cdef extern from "sys/mman.h" nogil:
    const int MADV_HUGEPAGE

cdef enum:
    HUGE_PAGE = 2 << 20
    MADV_POPULATE_WRITE_ = 23      # Linux ≥ 5.14 (not in every libc's headers)

cdef inline size_t thp_size(size_t n) noexcept nogil:
    return (n + HUGE_PAGE - 1) & ~(<size_t>HUGE_PAGE - 1)

cdef inline void *thp_map(size_t n) noexcept nogil:
    """thp_size(n) bytes, zeroed, 2 MiB aligned, asked for on huge pages, and faulted in
    now (the worker must never page-fault). NULL when mmap fails. The region is mapped
    inaccessible first: under mlockall(MCL_FUTURE) a plain mapping would be faulted in
    on 4 KiB pages before madvise() could ask for huge ones."""
    cdef size_t sz = thp_size(n), i
    cdef uint8_t *raw = <uint8_t *>mmap(NULL, sz + HUGE_PAGE, PROT_NONE,
                                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
    cdef uint8_t *a
    if <void *>raw == MAP_FAILED:
        return NULL
    a = <uint8_t *>((<size_t>raw + HUGE_PAGE - 1) & ~(<size_t>HUGE_PAGE - 1))
    if a > raw:
        munmap(raw, a - raw)
    munmap(a + sz, raw + sz + HUGE_PAGE - (a + sz))
    madvise(a, sz, MADV_HUGEPAGE)      # refused (THP off): 4 KiB pages, still correct
    if mprotect(a, sz, PROT_READ | PROT_WRITE) != 0:
        munmap(a, sz)
        return NULL
    if madvise(a, sz, MADV_POPULATE_WRITE_) != 0:
        if errno != EINVAL:            # out of memory: fail now, not in the worker
            munmap(a, sz)
            return NULL
        i = 0                          # an older kernel: touch every page

        while i < sz:
            a[i] = 0
            i += 4096
    return a

cdef inline void thp_unmap(void *a, size_t n) noexcept nogil:
    if a != NULL:
        munmap(a, thp_size(n))
