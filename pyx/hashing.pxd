# Hash stage: the flow hash contract of docs/hashing.md. CRC32-C (DPDK rte_hash_crc, SSE4.2
# when present) over a fixed key layout, then the node seed mixed in by a non-linear
# finalizer (murmur3 fmix32): CRC is affine, so a seed used only as the CRC initial value
# would XOR one constant into every hash and leave a fabric polarized.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memcmp
from includes.rte_hash_crc cimport rte_hash_crc, rte_hash_crc_8byte
from includes.shim cimport dp_bswap16, dp_bswap32
from parse cimport pkt_t, flow_key_t

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

cdef inline uint32_t hash_input(uint8_t *k, uint8_t family, const uint8_t *src,
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

cdef inline void key_mask4(uint32_t fields, uint64_t *mask) noexcept nogil:
    """The IPv4 key (16 bytes, two little-endian words) masked to the selected fields."""
    cdef uint8_t m[16]
    cdef int i
    for i in range(16):
        m[i] = 0
    for i in range(4):
        if fields & F_SRC_IP:
            m[i] = 0xff
        if fields & F_DST_IP:
            m[4 + i] = 0xff
    if fields & F_PROTO:
        m[8] = 0xff
    for i in range(2):
        if fields & F_SRC_PORT:
            m[10 + i] = 0xff
        if fields & F_DST_PORT:
            m[12 + i] = 0xff
        if fields & F_INGRESS_PORT:
            m[14 + i] = 0xff
    memcpy(mask, m, 16)

cdef inline bint icmp_key(const flow_key_t *k) noexcept nogil:
    return (k.proto == 1 and k.family == 4) or (k.proto == 58 and k.family == 6)

cdef inline uint32_t flow_key_hash6(const flow_key_t *k, uint16_t ingress, uint32_t flow_label,
                               uint32_t fields, uint32_t seed) noexcept nogil:
    cdef uint64_t kbuf[KEY_WORDS]
    cdef uint16_t sport = dp_bswap16(k.sport), dport = dp_bswap16(k.dport)
    if icmp_key(k):
        dport = sport
    cdef uint32_t n = hash_input(<uint8_t *>kbuf, 6, k.src, k.dst, k.proto, sport, dport,
                               ingress, flow_label, fields)
    return finalize(crc_key(<uint8_t *>kbuf, n), seed)

cdef inline uint32_t hash4(uint32_t src, uint32_t dst, uint8_t proto, uint16_t sport,
                           uint16_t dport, uint16_t ingress, uint32_t fields,
                           const uint64_t *mask4, uint32_t seed) noexcept nogil:
    """The IPv4 flow hash from network-order fields: the 16-byte hash key is two words
    ANDed with the group's mask (the same bytes as hash_input())."""
    cdef uint32_t t
    cdef uint64_t w0, w1
    if fields & F_SYMMETRIC:
        if dp_bswap32(src) > dp_bswap32(dst) or (src == dst and
                                                 dp_bswap16(sport) > dp_bswap16(dport)):
            t = src; src = dst; dst = t
            t = sport; sport = dport; dport = <uint16_t>t
    w0 = (<uint64_t>src | (<uint64_t>dst << 32)) & mask4[0]
    w1 = (proto | (<uint64_t>sport << 16) | (<uint64_t>dport << 32)
          | (<uint64_t>dp_bswap16(ingress) << 48)) & mask4[1]
    return finalize(rte_hash_crc_8byte(w1, rte_hash_crc_8byte(w0, 0xffffffffU)), seed)

cdef inline uint32_t flow_key_hash(const flow_key_t *k, uint16_t ingress, uint32_t flow_label,
                              uint32_t fields, const uint64_t *mask4,
                              uint32_t seed) noexcept nogil:
    """The flow hash of a (fat-flow masked) key: the same bytes as hash_input(). ICMP: the
    key's source port (echo id, or 0) stands in for both ports, so a reply hashes like
    its request."""
    cdef uint32_t src, dst
    if k.family != 4:
        return flow_key_hash6(k, ingress, flow_label, fields, seed)
    memcpy(&src, k.src, 4)
    memcpy(&dst, k.dst, 4)
    return hash4(src, dst, k.proto, k.sport, k.sport if icmp_key(k) else k.dport, ingress,
                 fields, mask4, seed)

cdef inline uint32_t pkt_hash4(const pkt_t *p, uint16_t ingress, uint32_t fields,
                               const uint64_t *mask4, uint32_t seed) noexcept nogil:
    """flow_key_hash() of an IPv4 packet's unmasked key, read straight from the packet: the
    packet-mode fast path (no fat-flow rules, not a fragment). Same bytes, same hash."""
    cdef const uint8_t *ip = p.data + p.l2_len
    cdef uint32_t src, dst
    memcpy(&src, ip + 12, 4)
    memcpy(&dst, ip + 16, 4)
    if p.proto == 1:                   # ICMP: the echo id (or 0) as both ports
        return hash4(src, dst, 1, dp_bswap16(p.icmp_id), dp_bswap16(p.icmp_id), ingress,
                     fields, mask4, seed)
    return hash4(src, dst, p.proto, dp_bswap16(p.sport), dp_bswap16(p.dport), ingress,
                 fields, mask4, seed)

cdef inline uint32_t bucket_of(uint32_t h, uint32_t n) noexcept nogil:
    """Multiply-shift: the top bits of h pick the bucket (never h % 2^k)."""
    return <uint32_t>((<uint64_t>h * n) >> 32)
