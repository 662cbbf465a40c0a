# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""dataplane._micro: test-only entry points for the micro benchmarks (bench/micro).

Each loop runs one packet-path stage `n` times in nogil C over inputs prepared once, by
cimporting the same .pxd stages that loop.pyx inlines, and returns a checksum of what it
computed so the compiler cannot drop the work. Beside each loop, a function returns the
individual results for the benchmarks' correctness checks. Production code never imports
this module; rte_hash, rte_lpm and the mbuf pool need EAL (bench/micro/conftest.py)."""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t, int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from includes.rte_hash cimport (rte_hash, rte_hash_parameters, rte_hash_create, rte_hash_free,
                                rte_hash_add_key_with_hash, rte_hash_lookup,
                                rte_hash_lookup_with_hash, rte_hash_lookup_with_hash_bulk,
                                RTE_HASH_EXTRA_FLAGS_EXT_TABLE)
from includes.rte_lpm cimport rte_lpm, rte_lpm_config, rte_lpm_create, rte_lpm_free, rte_lpm_add
from includes.rte_lpm6 cimport (rte_lpm6, rte_lpm6_config, rte_lpm6_create, rte_lpm6_free,
                                rte_lpm6_add)
from includes.rte_lcore cimport rte_socket_id
from includes.rte_memory cimport SOCKET_ID_ANY
from includes.rte_malloc cimport (rte_malloc_heap_create, rte_malloc_heap_destroy,
                                  rte_malloc_heap_get_socket, rte_malloc_heap_memory_add,
                                  rte_malloc_heap_memory_remove, rte_eal_has_hugepages)
from includes.rte_mempool cimport rte_mempool, rte_mempool_free
from includes.rte_mbuf cimport (rte_mbuf, rte_pktmbuf_pool_create, rte_pktmbuf_alloc,
                                rte_pktmbuf_free, RTE_MBUF_DEFAULT_BUF_SIZE)
from includes.shim cimport dp_mtod
from errors cimport check, check_ptr
from consts cimport BURST, NH_NONE, MAX_PUSH
from thp cimport thp_map, thp_unmap, thp_size, HUGE_PAGE
from parse cimport pkt_t, flow_key_t, parse, build_key
from hashing cimport crc_key, finalize, flow_key_hash, pkt_hash4, key_mask4
from flow cimport flow_sig
from route cimport vrf_t, route
from rewrite cimport nexthop_t, ttl_dec4
from mpls_input cimport be32
from push cimport push_ip, write_push
from ctx cimport ctx_t

import numpy as np

cdef enum:
    FRAME_SLOT = 128           # bytes per frame in a Packets buffer (frames are shorter)
    HASH_BYTES_PER_SLOT = 90   # as pyx/flowtable.pxi: an rte_hash's memory per key slot

NO_ROUTE = NH_NONE
cdef unsigned _seq = 0         # DPDK object names must be unique per process


cdef str _name(str kind):
    global _seq
    _seq += 1
    return f"mb_{kind}_{_seq}"


# ---------------------------------------------------------------- prepared inputs

cdef class Blob:
    """`count` records of `stride` bytes, zero-padded, on (transparent huge) pages that
    are faulted in up front. The loops read records from `cursor` on, wrapping around,
    and leave `cursor` where they stopped: a large input is walked across calls."""
    cdef uint8_t *mem
    cdef readonly uint32_t count, stride
    cdef public uint32_t cursor

    def __cinit__(self, uint32_t count, uint32_t stride):
        if count == 0 or stride == 0:
            raise ValueError("a Blob needs at least one record of at least one byte")
        self.count, self.stride = count, stride
        self.mem = <uint8_t *>thp_map(<size_t>count * stride)
        if self.mem == NULL:
            raise MemoryError(f"Blob of {count} x {stride} bytes")

    def __dealloc__(self):
        thp_unmap(self.mem, <size_t>self.count * self.stride)

    @staticmethod
    def of(records, uint32_t stride):
        """A Blob holding `records` (bytes, each at most `stride` long)."""
        cdef Blob b = Blob(len(records), stride)
        cdef bytes r
        for i, r in enumerate(records):
            if len(r) > stride:
                raise ValueError(f"record {i} has {len(r)} bytes, more than {stride}")
            memcpy(b.mem + <size_t>i * stride, <const char *>r, len(r))
        return b

    def record(self, uint32_t i):
        if i >= self.count:
            raise IndexError(i)
        return PyBytes_FromStringAndSize(<char *>self.mem + <size_t>i * self.stride,
                                         self.stride)

    def __len__(self):
        return self.count


cdef class Packets:
    """Frames in FRAME_SLOT-byte slots, each parsed once by parse.pxd into a pkt_t
    (`rcs`: parse()'s result per frame) for the stages that start from a parsed packet."""
    cdef Blob frames
    cdef uint32_t *lens
    cdef pkt_t *pkts
    cdef readonly list rcs

    def __cinit__(self, list frames):
        cdef uint32_t i
        self.frames = Blob.of(frames, FRAME_SLOT)
        self.lens = <uint32_t *>calloc(len(frames), sizeof(uint32_t))
        self.pkts = <pkt_t *>calloc(len(frames), sizeof(pkt_t))
        if self.lens == NULL or self.pkts == NULL:
            raise MemoryError("Packets")
        self.rcs = []
        for i in range(len(frames)):
            self.lens[i] = len(frames[i])
            self.pkts[i].data = self.frames.mem + <size_t>i * FRAME_SLOT
            self.pkts[i].len = self.lens[i]
            self.rcs.append(parse(&self.pkts[i]))

    def __dealloc__(self):
        free(self.lens)
        free(self.pkts)

    @property
    def cursor(self):
        return self.frames.cursor

    @cursor.setter
    def cursor(self, uint32_t v):
        self.frames.cursor = v

    def __len__(self):
        return self.frames.count


# ---------------------------------------------------------------- hashing.pxd

def crc32c(bytes data):
    """The standard CRC32-C of data through hashing.pxd's crc_key (rte_hash_crc from
    0xFFFFFFFF) with the final XOR: 0xE3069283 for b"123456789"."""
    return crc_key(<const uint8_t *><const char *>data, len(data)) ^ 0xffffffffU


def crc_finalize_loop(Blob keys, uint32_t key_len, uint32_t seed, uint32_t n):
    """finalize(crc_key(key), seed) over n keys (each the first key_len bytes of a
    record): rte_hash_crc plus the fmix32 finalizer. Sum of the hashes (mod 2^64)."""
    cdef uint32_t i = keys.cursor, k
    cdef uint64_t acc = 0
    if key_len > keys.stride:
        raise ValueError("key_len exceeds the record size")
    with nogil:
        for k in range(n):
            acc += finalize(crc_key(keys.mem + <size_t>i * keys.stride, key_len), seed)
            i += 1
            if i == keys.count:
                i = 0
    keys.cursor = i
    return acc


cdef inline void check_keys(Blob keys) except *:
    if keys.stride != sizeof(flow_key_t):
        raise ValueError(f"flow keys are {sizeof(flow_key_t)}-byte records, got {keys.stride}")


def flow_key_hash_loop(Blob keys, uint16_t ingress, uint32_t flow_label, uint32_t fields,
                       uint32_t seed, uint32_t n):
    """hashing.pxd flow_key_hash() over n flow keys (48-byte records). Sum."""
    cdef uint64_t mask4[2]
    cdef uint32_t i = keys.cursor, k
    cdef uint64_t acc = 0
    check_keys(keys)
    key_mask4(fields, mask4)
    with nogil:
        for k in range(n):
            acc += flow_key_hash(<const flow_key_t *>(keys.mem + <size_t>i * keys.stride),
                                 ingress, flow_label, fields, mask4, seed)
            i += 1
            if i == keys.count:
                i = 0
    keys.cursor = i
    return acc


def flow_key_hashes(Blob keys, uint16_t ingress, uint32_t flow_label, uint32_t fields,
                    uint32_t seed):
    """flow_key_hash() of every key, in order."""
    cdef uint64_t mask4[2]
    check_keys(keys)
    key_mask4(fields, mask4)
    return [flow_key_hash(<const flow_key_t *>(keys.mem + <size_t>i * keys.stride),
                          ingress, flow_label, fields, mask4, seed) for i in range(keys.count)]


def pkt_hash4_loop(Packets pk, uint16_t ingress, uint32_t fields, uint32_t seed, uint32_t n):
    """hashing.pxd pkt_hash4() (the packet-mode IPv4 hash, read from the packet) over n
    parsed IPv4 packets. Sum."""
    cdef uint64_t mask4[2]
    cdef uint32_t i = pk.frames.cursor, k, count = pk.frames.count
    cdef uint64_t acc = 0
    key_mask4(fields, mask4)
    with nogil:
        for k in range(n):
            acc += pkt_hash4(&pk.pkts[i], ingress, fields, mask4, seed)
            i += 1
            if i == count:
                i = 0
    pk.frames.cursor = i
    return acc


def pkt_hashes4(Packets pk, uint16_t ingress, uint32_t fields, uint32_t seed):
    cdef uint64_t mask4[2]
    key_mask4(fields, mask4)
    return [pkt_hash4(&pk.pkts[i], ingress, fields, mask4, seed) for i in range(len(pk))]


# ---------------------------------------------------------------- parse.pxd

def parse_key_loop(Packets pk, uint16_t vrf, uint32_t n):
    """parse() and build_key() of n frames, each from a zeroed pkt_t as the burst loop
    does. Sum of the keys' 8-byte words (a frame without a key adds parse's result)."""
    cdef pkt_t p
    cdef flow_key_t key
    cdef const uint64_t *w = <const uint64_t *>&key
    cdef uint32_t i = pk.frames.cursor, k, count = pk.frames.count
    cdef uint64_t acc = 0
    cdef int r
    with nogil:
        for k in range(n):
            memset(&p, 0, sizeof(pkt_t))
            p.data = pk.frames.mem + <size_t>i * FRAME_SLOT
            p.len = pk.lens[i]
            r = parse(&p)
            if r == 0 and p.l4:
                build_key(&p, vrf, &key)
                acc += w[0] + w[1] + w[2] + w[3] + w[4] + w[5]
            else:
                acc += <uint64_t>r
            i += 1
            if i == count:
                i = 0
    pk.frames.cursor = i
    return acc


def parse_keys(Packets pk, uint16_t vrf):
    """[(parse() result, the 48 key bytes or None when no key is built)] per frame."""
    cdef pkt_t p
    cdef flow_key_t key
    cdef int r
    out = []
    for i in range(len(pk)):
        memset(&p, 0, sizeof(pkt_t))
        p.data = pk.frames.mem + <size_t>i * FRAME_SLOT
        p.len = pk.lens[i]
        r = parse(&p)
        if r == 0 and p.l4:
            build_key(&p, vrf, &key)
            out.append((r, PyBytes_FromStringAndSize(<char *>&key, sizeof(flow_key_t))))
        else:
            out.append((r, None))
    return out


# ---------------------------------------------------------------- flow.pxd on rte_hash

cdef uint32_t flow_sig_fn(const void *key, uint32_t key_len, uint32_t init_val) noexcept nogil:
    """The table's hash_func, as pyx/flowtable.pxi: flow_sig()."""
    return flow_sig(<const flow_key_t *>key)


cdef class FlowTable:
    """An rte_hash made as pyx/flowtable.pxi makes a worker's flow table: twice `flows`
    key slots, 48-byte keys, flow_sig as hash_func, extendable buckets, and with
    --no-huge its memory on a heap of transparent huge pages."""
    cdef rte_hash *h
    cdef bytes heap
    cdef void *mem
    cdef size_t size
    cdef readonly uint32_t flows, slots

    def __cinit__(self, uint32_t flows):
        cdef rte_hash_parameters hp
        name = _name("flows").encode()
        self.flows, self.slots = flows, 2 * flows
        memset(&hp, 0, sizeof(hp))
        hp.name = name
        hp.entries = self.slots
        hp.key_len = sizeof(flow_key_t)
        hp.hash_func = flow_sig_fn
        hp.socket_id = rte_socket_id()
        hp.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE
        if not rte_eal_has_hugepages():
            self.size = thp_size(HASH_BYTES_PER_SLOT * <size_t>self.slots + (4 << 20))
            self.mem = thp_map(self.size)
            if self.mem == NULL:
                raise MemoryError(f"flow table heap of {self.size >> 20} MiB")
            self.heap = name
            check(rte_malloc_heap_create(name), "rte_malloc_heap_create", True)
            check(rte_malloc_heap_memory_add(name, self.mem, self.size, NULL,
                                             self.size // HUGE_PAGE, HUGE_PAGE),
                  "rte_malloc_heap_memory_add", True)
            hp.socket_id = rte_malloc_heap_get_socket(name)
        self.h = <rte_hash *>check_ptr(rte_hash_create(&hp),
                                       f"rte_hash_create({flows} flows, {self.slots} slots)")

    def __dealloc__(self):
        if self.h != NULL:
            rte_hash_free(self.h)
        if self.heap is not None:
            rte_malloc_heap_memory_remove(self.heap, self.mem, self.size)
            rte_malloc_heap_destroy(self.heap)
        if self.mem != NULL:
            thp_unmap(self.mem, self.size)

    def add(self, Blob keys):
        """Insert every key (rte_hash_add_key_with_hash with flow_sig, as flow_insert's
        path does); their positions (int32 array, in key order)."""
        cdef uint32_t i = 0
        cdef int32_t r = 0
        check_keys(keys)
        pos = np.empty(keys.count, dtype=np.int32)
        cdef int32_t[::1] out = pos
        with nogil:
            while i < keys.count:
                r = rte_hash_add_key_with_hash(self.h, keys.mem + <size_t>i * keys.stride,
                                               flow_sig(<const flow_key_t *>(
                                                   keys.mem + <size_t>i * keys.stride)))
                if r < 0:
                    break
                out[i] = r
                i += 1
        check(r, f"rte_hash_add_key_with_hash (key {i} of {keys.count})")
        return pos


def flow_sigs(Blob keys):
    """flow_sig() of every key."""
    check_keys(keys)
    return [flow_sig(<const flow_key_t *>(keys.mem + <size_t>i * keys.stride))
            for i in range(keys.count)]


def gen_keys(uint32_t n, uint64_t seed, uint16_t vrf, uint32_t step=1):
    """n distinct IPv4 flow keys laid out as build_key() does; record i holds key
    (i * step) % n, so an odd step (n a power of two) walks the same set in another
    order. Keys of another vrf are another set: misses."""
    cdef Blob b = Blob(n, sizeof(flow_key_t))
    cdef uint64_t *w
    cdef uint64_t x
    cdef uint32_t i, j
    with nogil:
        for i in range(n):
            j = <uint32_t>((<uint64_t>i * step) % n)
            x = seed ^ (<uint64_t>j * 0x9e3779b97f4a7c15ULL)     # splitmix64
            x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL
            x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL
            x ^= x >> 31
            w = <uint64_t *>(b.mem + <size_t>i * sizeof(flow_key_t))
            w[0] = <uint32_t>x                                   # src: random
            w[1] = 0
            w[2] = <uint32_t>(j * 0x9e3779b1U)                   # dst: distinct per j
            w[3] = 0
            w[4] = ((x >> 32) | (<uint64_t>((vrf >> 8) | ((vrf & 0xff) << 8)) << 32) |
                    (<uint64_t>(17 if j & 1 else 6) << 48) | (<uint64_t>4 << 56))
            w[5] = 0
    return b


def flow_lookup_loop(FlowTable t, Blob keys, uint32_t n, bint bulk):
    """n lookups: flow_sig() of each key, then rte_hash_lookup_with_hash (bulk=0: one at
    a time, the direct-mode path) or rte_hash_lookup_with_hash_bulk of BURST keys (the
    burst loop's phase 2, without its exact-match cache and early bucket prefetch). Sum
    of the positions (a miss adds -ENOENT)."""
    cdef const void *kp[BURST]
    cdef uint32_t sig[BURST]
    cdef int32_t pos[BURST]
    cdef uint32_t i = keys.cursor, k = 0, j, nb
    cdef int64_t acc = 0
    cdef const flow_key_t *key
    check_keys(keys)
    with nogil:
        while k < n:
            nb = n - k if n - k < BURST else BURST
            for j in range(nb):
                key = <const flow_key_t *>(keys.mem + <size_t>i * keys.stride)
                if bulk:
                    kp[j] = key
                    sig[j] = flow_sig(key)
                else:
                    acc += rte_hash_lookup_with_hash(t.h, key, flow_sig(key))
                i += 1
                if i == keys.count:
                    i = 0
            if bulk:
                rte_hash_lookup_with_hash_bulk(t.h, kp, sig, nb, pos)
                for j in range(nb):
                    acc += pos[j]
            k += nb
    keys.cursor = i
    return acc


def flow_lookups(FlowTable t, Blob keys, str how):
    """Every key's position (int32 array) looked up `how`: "hash_func" (rte_hash_lookup:
    the table computes the signature itself), "single" or "bulk" (as the loop)."""
    cdef uint32_t i, j, nb
    cdef const void *kp[BURST]
    cdef uint32_t sig[BURST]
    cdef int32_t res[BURST]
    check_keys(keys)
    pos = np.empty(keys.count, dtype=np.int32)
    cdef int32_t[::1] out = pos
    if how not in ("hash_func", "single", "bulk"):
        raise ValueError(how)
    i = 0
    while i < keys.count:
        nb = keys.count - i if keys.count - i < <uint32_t>BURST else <uint32_t>BURST
        for j in range(nb):
            kp[j] = keys.mem + <size_t>(i + j) * keys.stride
            sig[j] = flow_sig(<const flow_key_t *>kp[j])
            if how == "hash_func":
                out[i + j] = rte_hash_lookup(t.h, kp[j])
            elif how == "single":
                out[i + j] = rte_hash_lookup_with_hash(t.h, kp[j], sig[j])
        if how == "bulk":
            rte_hash_lookup_with_hash_bulk(t.h, kp, sig, nb, res)
            for j in range(nb):
                out[i + j] = res[j]
        i += nb
    return pos


# ---------------------------------------------------------------- route.pxd on rte_lpm

cdef class Vrf:
    """A VRF's tables made as Core._build_vrf (pyx/core.pxi) makes them from
    {ip_network: next-hop id}: rte_lpm / rte_lpm6 sized the same way, /0 beside them."""
    cdef vrf_t v

    def __cinit__(self, dict routes):
        cdef rte_lpm_config c4
        cdef rte_lpm6_config c6
        cdef bytes a
        self.v.lpm4 = NULL
        self.v.lpm6 = NULL
        self.v.default4 = self.v.default6 = NH_NONE
        r4 = [p for p in routes if p.version == 4]
        r6 = [p for p in routes if p.version == 6]
        if any(p.prefixlen for p in r4):
            memset(&c4, 0, sizeof(c4))
            c4.max_rules = max(1024, 2 * len(r4))
            c4.number_tbl8s = max(256, sum(p.prefixlen > 24 for p in r4) + 16)
            self.v.lpm4 = <rte_lpm *>check_ptr(
                rte_lpm_create(_name("l4").encode(), SOCKET_ID_ANY, &c4), "rte_lpm_create")
        if any(p.prefixlen for p in r6):
            memset(&c6, 0, sizeof(c6))
            c6.max_rules = max(1024, 2 * len(r6))
            c6.number_tbl8s = max(256, 14 * len(r6))
            self.v.lpm6 = <rte_lpm6 *>check_ptr(
                rte_lpm6_create(_name("l6").encode(), SOCKET_ID_ANY, &c6), "rte_lpm6_create")
        for prefix, nh_id in routes.items():
            if prefix.prefixlen == 0:
                if prefix.version == 4:
                    self.v.default4 = nh_id
                else:
                    self.v.default6 = nh_id
            elif prefix.version == 4:
                check(rte_lpm_add(self.v.lpm4, int(prefix.network_address), prefix.prefixlen,
                                  nh_id), f"rte_lpm_add({prefix})")
            else:
                a = prefix.network_address.packed
                check(rte_lpm6_add(self.v.lpm6, <const uint8_t *>a, prefix.prefixlen, nh_id),
                      f"rte_lpm6_add({prefix})")

    def __dealloc__(self):
        if self.v.lpm4 != NULL:
            rte_lpm_free(self.v.lpm4)
        if self.v.lpm6 != NULL:
            rte_lpm6_free(self.v.lpm6)


def route_loop(Vrf vrf, Packets pk, uint32_t n):
    """route.pxd route() (rte_lpm_lookup / rte_lpm6_lookup, else the VRF default) of n
    parsed packets. Sum of the next-hop ids (NO_ROUTE when none)."""
    cdef uint32_t i = pk.frames.cursor, k, count = pk.frames.count, nh
    cdef uint64_t acc = 0
    with nogil:
        for k in range(n):
            route(&vrf.v, &pk.pkts[i], &nh)
            acc += nh
            i += 1
            if i == count:
                i = 0
    pk.frames.cursor = i
    return acc


def routes_of(Vrf vrf, Packets pk):
    """route()'s next-hop id per packet, NO_ROUTE where it found none."""
    cdef uint32_t nh
    out = []
    for i in range(len(pk)):
        out.append(NH_NONE if route(&vrf.v, &pk.pkts[i], &nh) else nh)
    return out


# ---------------------------------------------------------------- push.pxd

cdef class Pusher:
    """push_ip()'s minimal real surroundings: a zeroed worker ctx_t (its mpls settings:
    the TTL model; its first port_t takes drops), the next hop loaded as
    load_nexthop (pyx/core.pxi) loads a compile.NextHopTable, and one mbuf from a small
    pool per frame. Before each push the mbuf is reset to the received frame (data
    offset, lengths, the frame's FRAME_SLOT bytes: part of the measured time)."""
    cdef ctx_t *c
    cdef nexthop_t nh
    cdef rte_mempool *pool
    cdef rte_mbuf **mbufs
    cdef uint16_t data_off
    cdef Packets pk
    cdef uint32_t *hashes

    def __cinit__(self, Packets pk, nexthop, hashes, bint pipe=False):
        cdef uint32_t i, n = len(pk)
        cdef bytes b = nexthop.eth
        if len(hashes) != n:
            raise ValueError("one hash per frame")
        if any(pk.rcs) or len(nexthop.push) > MAX_PUSH or len(b) != 12 or nexthop.tunnel:
            raise ValueError("parsed frames and a plain labelled next hop are needed")
        self.pk = pk
        self.c = <ctx_t *>calloc(1, sizeof(ctx_t))
        self.mbufs = <rte_mbuf **>calloc(n, sizeof(rte_mbuf *))
        self.hashes = <uint32_t *>calloc(n, sizeof(uint32_t))
        if self.c == NULL or self.mbufs == NULL or self.hashes == NULL:
            raise MemoryError("Pusher")
        self.c.mpls.pipe = pipe
        memset(&self.nh, 0, sizeof(nexthop_t))
        memcpy(self.nh.eth, <const char *>b, 12)
        self.nh.port = nexthop.port
        self.nh.n_push = len(nexthop.push)
        for i, word in enumerate(nexthop.push):
            self.nh.push[i] = be32(word)
            self.nh.ttl_on[i] = 0xffffffff if nexthop.ttl_on[i] else 0
        self.nh.el_at = nexthop.el_at
        self.nh.el_unreadable = nexthop.el_unreadable
        self.pool = <rte_mempool *>check_ptr(
            rte_pktmbuf_pool_create(_name("mbufs").encode(), n + 1, 0, 0,
                                    RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id()),
            "rte_pktmbuf_pool_create")
        for i in range(n):
            self.hashes[i] = hashes[i]
            self.mbufs[i] = rte_pktmbuf_alloc(self.pool)
            if self.mbufs[i] == NULL:
                raise MemoryError("mbuf")
        self.data_off = self.mbufs[0].data_off

    def __dealloc__(self):
        cdef uint32_t i
        if self.mbufs != NULL:
            for i in range(len(self.pk)):
                if self.mbufs[i] != NULL:
                    rte_pktmbuf_free(self.mbufs[i])
        if self.pool != NULL:
            rte_mempool_free(self.pool)
        free(self.mbufs)
        free(self.hashes)
        free(self.c)

    cdef inline uint8_t *push_one(self, uint32_t i) noexcept nogil:
        cdef rte_mbuf *m = self.mbufs[i]
        m.data_off = self.data_off
        m.data_len = <uint16_t>self.pk.lens[i]
        m.pkt_len = self.pk.lens[i]
        memcpy(dp_mtod(m), self.pk.frames.mem + <size_t>i * FRAME_SLOT, FRAME_SLOT)
        if not push_ip(self.c, &self.c.ports[0], m, &self.pk.pkts[i], &self.nh,
                       self.hashes[i]):
            self.mbufs[i] = rte_pktmbuf_alloc(self.pool)   # the drop freed it
            return NULL
        return dp_mtod(m)

    def frame(self, uint32_t i):
        """Frame i after push_ip() (as it would be sent)."""
        cdef uint8_t *d
        if i >= len(self.pk):
            raise IndexError(i)
        d = self.push_one(i)
        if d == NULL:
            raise RuntimeError(f"push_ip dropped frame {i}")
        return PyBytes_FromStringAndSize(<char *>d, self.mbufs[i].data_len)

    def labels(self, uint32_t tc, uint32_t ttl, uint32_t h):
        """write_push()'s label stack (bottom of stack set) for tc, ttl, hash h."""
        cdef uint8_t out[4 * MAX_PUSH]
        write_push(&self.c.mpls, out, &self.nh, tc, ttl, h, 1)
        return PyBytes_FromStringAndSize(<char *>out, 4 * self.nh.n_push)

    @property
    def el_not_readable(self):
        return self.c.mpls.el_not_readable

    @property
    def drops(self):
        return sum(self.c.ports[0].cnt)


def push_ip_loop(Pusher pu, uint32_t n):
    """push_ip() (IPv4 TTL and checksum, the label stack with ELI/EL, Ethernet) of n
    frames, each reset first. Sum of the top label entry (as a native word) plus the IP
    checksum << 32."""
    cdef uint32_t i = pu.pk.frames.cursor, k, count = len(pu.pk), top, hdr
    cdef uint64_t acc = 0
    cdef uint8_t *d
    hdr = 14 + 4 * pu.nh.n_push
    with nogil:
        for k in range(n):
            d = pu.push_one(i)
            if d != NULL:
                memcpy(&top, d + 14, 4)
                acc += top + ((<uint64_t>d[hdr + 10] << 40) | (<uint64_t>d[hdr + 11] << 32))
            i += 1
            if i == count:
                i = 0
    pu.pk.frames.cursor = i
    return acc


def write_push_loop(Pusher pu, uint32_t tc, uint32_t ttl, uint32_t n):
    """write_push() alone (the next hop's entries painted with TC, TTL and the EL of
    each frame's hash in turn) n times into one buffer. Sum of its native words."""
    cdef uint8_t out[4 * MAX_PUSH]
    cdef const uint32_t *w = <const uint32_t *>out
    cdef uint32_t i = 0, k, j, count = len(pu.pk)
    cdef uint64_t acc = 0
    with nogil:
        for k in range(n):
            write_push(&pu.c.mpls, out, &pu.nh, tc, ttl, pu.hashes[i], 1)
            for j in range(pu.nh.n_push):
                acc += w[j]
            i += 1
            if i == count:
                i = 0
    return acc


# ---------------------------------------------------------------- rewrite.pxd

def ttl_dec4_loop(Blob pristine, Blob work, uint32_t n):
    """work := pristine (IPv4 headers, TTL 255), then ttl_dec4() (TTL - 1 with the RFC
    1624 incremental checksum update) n times over them in turn. Sum of the checksums."""
    cdef uint32_t i = 0, k
    cdef uint64_t acc = 0
    if work.count != pristine.count or work.stride != pristine.stride or pristine.stride < 20:
        raise ValueError("work must be a Blob shaped like pristine (IPv4 headers)")
    if n > <uint64_t>pristine.count * 254:
        raise ValueError("n would take a TTL below 1")
    with nogil:
        memcpy(work.mem, pristine.mem, <size_t>pristine.count * pristine.stride)
        for k in range(n):
            ttl_dec4(work.mem + <size_t>i * work.stride)
            acc += (<uint32_t>work.mem[<size_t>i * work.stride + 10] << 8) | \
                work.mem[<size_t>i * work.stride + 11]
            i += 1
            if i == work.count:
                i = 0
    return acc
