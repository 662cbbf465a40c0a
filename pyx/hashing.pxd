# Hash stage: the flow hash contract of docs/hashing.md. CRC32-C (DPDK rte_hash_crc, SSE4.2
# when present) over a fixed key layout, then the node seed mixed in by a non-linear
# finalizer (murmur3 fmix32): CRC is affine, so a seed used only as the CRC initial value
# would XOR one constant into every hash and leave a fabric polarized.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memcmp
from includes.rte_hash_crc cimport rte_hash_crc
from parse cimport pkt_t

cdef enum:
    F_SRC_IP = 1
    F_DST_IP = 2
    F_PROTO = 4
    F_SRC_PORT = 8
    F_DST_PORT = 16
    F_FLOW_LABEL = 32
    F_INGRESS_PORT = 64
    F_SYMMETRIC = 128
    F_L3 = F_SRC_IP | F_DST_IP | F_PROTO
    KEY_MAX = 48
    KEY_WORDS = 6              # KEY_MAX / 8: uint64 words of a key buffer

cdef inline uint32_t fmix32(uint32_t h) noexcept nogil:
    h ^= h >> 16
    h *= 0x85ebca6bU
    h ^= h >> 13
    h *= 0xc2b2ae35U
    h ^= h >> 16
    return h

cdef inline void put16(uint8_t *k, uint16_t v) noexcept nogil:
    k[0] = <uint8_t>(v >> 8)
    k[1] = <uint8_t>v

cdef inline uint32_t hash_key(uint8_t *k, uint8_t family, const uint8_t *src,
                              const uint8_t *dst, uint8_t proto, uint16_t sport,
                              uint16_t dport, uint16_t ingress, uint32_t flow_label,
                              uint32_t fields) noexcept nogil:
    """Lay out the key (unselected fields zero) in k[KEY_MAX]; return its length."""
    cdef uint32_t alen = 4 if family == 4 else 16, o = 2 * alen
    cdef const uint8_t *t
    cdef uint16_t tp
    cdef int c
    if fields & F_SYMMETRIC:
        c = memcmp(src, dst, alen)
        if c > 0 or (c == 0 and sport > dport):
            t = src; src = dst; dst = t
            tp = sport; sport = dport; dport = tp
    (<uint64_t *>k)[0] = 0
    (<uint64_t *>k)[1] = 0
    (<uint64_t *>k)[2] = 0
    (<uint64_t *>k)[3] = 0
    (<uint64_t *>k)[4] = 0
    (<uint64_t *>k)[5] = 0
    if fields & F_SRC_IP:
        memcpy(k, src, alen)
    if fields & F_DST_IP:
        memcpy(k + alen, dst, alen)
    if fields & F_PROTO:
        k[o] = proto
    if fields & F_SRC_PORT:
        put16(k + o + 2, sport)
    if fields & F_DST_PORT:
        put16(k + o + 4, dport)
    if fields & F_INGRESS_PORT:
        put16(k + o + 6, ingress)
    if family == 4:
        return 16
    if fields & F_FLOW_LABEL:
        put16(k + o + 8, <uint16_t>(flow_label >> 16))
        put16(k + o + 10, <uint16_t>flow_label)
    return 44

cdef inline uint32_t crc_key(const uint8_t *k, uint32_t n) noexcept nogil:
    return rte_hash_crc(k, n, 0xffffffffU)

cdef inline uint32_t finalize(uint32_t crc, uint32_t seed) noexcept nogil:
    return fmix32(crc ^ seed)

cdef inline uint32_t pkt_hash(const pkt_t *p, uint16_t ingress, uint32_t fields,
                              uint32_t seed) noexcept nogil:
    """The packet's flow hash. ICMP echo: the id stands in for the source port.
    Packets without L4 (non-first fragments) hash with zero ports."""
    cdef uint64_t kbuf[KEY_WORDS]
    cdef const uint8_t *ip = p.data + p.l2_len
    cdef uint32_t n
    cdef uint16_t sport = p.sport
    if p.icmp_id:
        sport = p.icmp_id
    if p.family == 4:
        n = hash_key(<uint8_t *>kbuf, 4, ip + 12, ip + 16, p.proto, sport, p.dport,
                     ingress, 0, fields)
    else:
        n = hash_key(<uint8_t *>kbuf, 6, ip + 8, ip + 24, p.proto, sport, p.dport,
                     ingress, p.flow_label, fields)
    return finalize(crc_key(<uint8_t *>kbuf, n), seed)

cdef inline uint32_t bucket_of(uint32_t h, uint32_t n) noexcept nogil:
    """Multiply-shift: the top bits of h pick the bucket (never h % 2^k)."""
    return <uint32_t>((<uint64_t>h * n) >> 32)
