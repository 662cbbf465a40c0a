# One converter from DPDK return codes to the project's exception (dataplane.errors).
from includes.shim cimport dp_errno
from includes.rte_errno cimport rte_strerror
from libc.errno cimport ENOMEM

cdef inline int check(long rc, str what, bint use_rte_errno=False) except -1:
    """rc < 0 → DataplaneError(errno, rte_strerror, what). Returns rc otherwise.
    Most DPDK calls return -errno; a few (rte_eal_init) return -1 and set rte_errno."""
    cdef int err
    if rc >= 0:
        return <int>rc
    err = dp_errno() if use_rte_errno else <int>-rc
    from dataplane.errors import DataplaneError
    raise DataplaneError(what, err, rte_strerror(err).decode())

cdef inline int fail(str what, int err) except -1:
    """Raise the project's error for errno `err` (a name from libc.errno, never a
    number) with its rte_strerror text."""
    from dataplane.errors import DataplaneError
    raise DataplaneError(what, err, rte_strerror(err).decode())

cdef inline void *check_alloc(void *p, str what) except? NULL:
    """A setup-time malloc/calloc: NULL → the project's error, ENOMEM."""
    if p != NULL:
        return p
    fail(what, ENOMEM)
    return NULL

cdef inline void *check_ptr(void *p, str what) except? NULL:
    cdef int err
    if p != NULL:
        return p
    err = dp_errno()
    from dataplane.errors import DataplaneError
    raise DataplaneError(what, err, rte_strerror(err).decode())
