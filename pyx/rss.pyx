# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""dataplane._rss: Python entry points to the C software RSS of pyx/rss.pxd (the same
inline functions a worker loop runs), and a fast pcap splitter for multi-worker replays.
The pure-Python reference is dataplane/rss.py; this module does not import it."""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy
from rss cimport (toeplitz_hash, rss_input as c_rss_input, rss_hash_frame, rss_queue,
                  RSS_SYMMETRIC_KEY, RSS_KEY_LEN, RSS_INPUT_MAX)

SYMMETRIC_KEY = (<const char *>RSS_SYMMETRIC_KEY)[:RSS_KEY_LEN]

cdef enum:
    PCAP_HEADER = 24
    RECORD_HEADER = 16


def toeplitz(const uint8_t[::1] key, const uint8_t[::1] data):
    """The 32-bit Toeplitz hash of data under key (len(key) >= len(data) + 4)."""
    if key.shape[0] < data.shape[0] + 4:
        raise ValueError(f"key must be at least {data.shape[0] + 4} bytes for "
                         f"{data.shape[0]} input bytes, got {key.shape[0]}")
    if data.shape[0] == 0:
        return 0
    return toeplitz_hash(&key[0], &data[0], <uint32_t>data.shape[0])


def rss_input(const uint8_t[::1] frame):
    """The bytes a NIC hashes for this Ethernet frame (b"" when it hashes none)."""
    cdef uint8_t out[RSS_INPUT_MAX]
    if frame.shape[0] == 0:
        return b""
    n = c_rss_input(&frame[0], <uint32_t>frame.shape[0], out)
    return (<char *>out)[:n]


cdef const uint8_t *key_ptr(const uint8_t[::1] key) except NULL:
    if key.shape[0] < RSS_KEY_LEN:
        raise ValueError(f"key must be at least {RSS_KEY_LEN} bytes, got {key.shape[0]}")
    return &key[0]


def rss_hash(const uint8_t[::1] frame, const uint8_t[::1] key=SYMMETRIC_KEY):
    """The frame's RSS hash under key (0 for non-IP, truncated or malformed frames)."""
    cdef const uint8_t *k = key_ptr(key)
    if frame.shape[0] == 0:
        return 0
    return rss_hash_frame(&frame[0], <uint32_t>frame.shape[0], k)


cdef inline uint32_t rd32(const uint8_t *p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef bint pcap_big_endian(const uint8_t[::1] pcap) except -1:
    """Check the global header (classic pcap, Ethernet); True for a big-endian file."""
    cdef Py_ssize_t size = pcap.shape[0]
    if size < PCAP_HEADER:
        raise ValueError(f"pcap: global header must be {PCAP_HEADER} bytes, got {size}")
    magic = bytes(pcap[:4])
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        big = False
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        big = True
    else:
        raise ValueError("pcap: magic must be a1b2c3d4 (us) or a1b23c4d (ns) in either "
                         f"byte order, got {magic.hex()}")
    link = rd32(&pcap[20], big) & 0xffff
    if link != 1:
        raise ValueError(f"pcap: link type must be 1 (Ethernet), got {link}")
    return big


def split(const uint8_t[::1] pcap, long n, const uint8_t[::1] key=SYMMETRIC_KEY):
    """Split a classic pcap into n pcaps (same global header, records in order) by the
    RSS queue of each frame. The record walk and copies run in C without the GIL."""
    cdef const uint8_t *k
    cdef const uint8_t *p
    cdef bint big
    cdef uint64_t size, off, incl = 0, count = 0, i, max_records
    cdef uint16_t queue
    cdef int err = 0
    cdef uint16_t *queues = NULL
    cdef uint64_t *fill = NULL
    cdef char **dst = NULL
    if n < 1 or n > 0xffff:
        raise ValueError(f"n must be 1..65535, got {n}")
    k = key_ptr(key)
    big = pcap_big_endian(pcap)
    p = &pcap[0]
    size = <uint64_t>pcap.shape[0]
    max_records = (size - PCAP_HEADER) // RECORD_HEADER
    # the queue of each record, then each part's size: two walks, so every output is
    # allocated once at its final size
    queues = <uint16_t *>malloc((max_records + 1) * sizeof(uint16_t))
    fill = <uint64_t *>calloc(n, sizeof(uint64_t))
    dst = <char **>calloc(n, sizeof(char *))
    try:
        if queues == NULL or fill == NULL or dst == NULL:
            raise MemoryError()
        with nogil:
            off = PCAP_HEADER
            while off < size:
                if size - off < RECORD_HEADER:
                    err = 1
                    break
                incl = rd32(p + off + 8, big)
                if size - off - RECORD_HEADER < incl:
                    err = 2
                    break
                queue = rss_queue(rss_hash_frame(p + off + RECORD_HEADER, <uint32_t>incl, k),
                                  <uint16_t>n)
                queues[count] = queue
                fill[queue] += RECORD_HEADER + incl
                count += 1
                off += RECORD_HEADER + incl
        if err == 1:
            raise ValueError(f"pcap: record {count} at offset {off}: header must be "
                             f"{RECORD_HEADER} bytes, got {size - off}")
        if err == 2:
            raise ValueError(f"pcap: record {count} at offset {off}: {incl} captured bytes "
                             f"must follow its header, got {size - off - RECORD_HEADER}")
        parts = []
        for i in range(<uint64_t>n):
            part = PyBytes_FromStringAndSize(NULL, PCAP_HEADER + fill[i])
            dst[i] = PyBytes_AS_STRING(part)
            memcpy(dst[i], p, PCAP_HEADER)
            dst[i] += PCAP_HEADER
            parts.append(part)
        with nogil:
            off = PCAP_HEADER
            for i in range(count):
                incl = RECORD_HEADER + rd32(p + off + 8, big)
                memcpy(dst[queues[i]], p + off, incl)
                dst[queues[i]] += incl
                off += incl
        return parts
    finally:
        free(queues)
        free(fill)
        free(dst)
