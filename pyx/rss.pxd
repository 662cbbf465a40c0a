# Software RSS: the Toeplitz hash a NIC computes over a frame's addresses (and ports), and
# the queue its default redirection table picks. Pure C, no DPDK and no Python objects,
# so a worker loop can inline it. Reference model and rules: dataplane/rss.py.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

cdef enum:
    RSS_KEY_LEN = 40           # a NIC's key; 36 input bytes (IPv6 + ports) need 36 + 4
    RSS_INPUT_MAX = 36         # room rss_input may write
    RSS_RETA_SIZE = 128        # DPDK's default redirection table size

# Woo & Park's symmetric key (0x6d5a repeated): A->B and B->A hash the same. Verbatim C so
# every module that cimports this file gets the array without a link-time symbol.
cdef extern from *:
    """
    static const unsigned char RSS_SYMMETRIC_KEY[40] = {
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
        0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a, 0x6d, 0x5a,
    };
    """
    const uint8_t RSS_SYMMETRIC_KEY[40]


cdef inline uint32_t toeplitz_hash(const uint8_t *key, const uint8_t *data,
                                   uint32_t n) noexcept nogil:
    """Toeplitz hash of data[0:n]; key must hold n + 4 bytes (read no further)."""
    # window holds the key bits from 8*i on; input bit b of byte i selects its top 32 bits
    # shifted left by b, so one 64-bit load per byte replaces a shift per bit
    cdef uint64_t window = 0
    cdef uint32_t h = 0, i, b, key_len = n + 4, mask
    cdef uint8_t byte
    for i in range(8):
        window = (window << 8) | (key[i] if i < key_len else 0)
    for i in range(n):
        byte = data[i]
        if byte:
            for b in range(8):
                mask = 0U - ((byte >> (7 - b)) & 1U)      # all ones when the bit is set
                h ^= <uint32_t>(window >> (32 - b)) & mask
        window = (window << 8) | (key[i + 8] if i + 8 < key_len else 0)
    return h


cdef inline uint16_t rss_rd16(const uint8_t *p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])


cdef inline uint32_t rss_input(const uint8_t *frame, uint32_t size,
                               uint8_t *out) noexcept nogil:
    """Write the bytes a NIC hashes for an Ethernet frame to out[RSS_INPUT_MAX]; return
    their count: 12 (IPv4 + ports), 8 (IPv4), 36 (IPv6 + ports), 32 (IPv6) or 0 (non-IP,
    truncated, malformed). Invariant: off <= size, so size - off never wraps."""
    cdef uint32_t off = 14, hlen, tag
    cdef uint16_t ethertype
    cdef uint8_t proto
    if size < 14:
        return 0
    ethertype = rss_rd16(frame + 12)
    for tag in range(2):                    # VLAN or QinQ: at most two tags
        if ethertype != 0x8100 and ethertype != 0x88a8:
            break
        if size - off < 4:
            return 0
        ethertype = rss_rd16(frame + off + 2)
        off += 4

    if ethertype == 0x0800:
        if size - off < 20 or (frame[off] >> 4) != 4:
            return 0
        hlen = (frame[off] & 0x0f) * 4U
        if hlen < 20 or size - off < hlen:
            return 0
        memcpy(out, frame + off + 12, 8)
        proto = frame[off + 9]
        # any fragment (MF or an offset, the first one too) lacks or splits the ports
        if (rss_rd16(frame + off + 6) & 0x3fff) or (proto != 6 and proto != 17):
            return 8
        off += hlen
        if size - off < 4:
            return 0
        memcpy(out + 8, frame + off, 4)
        return 12

    if ethertype == 0x86dd:
        if size - off < 40 or (frame[off] >> 4) != 6:
            return 0
        memcpy(out, frame + off + 8, 32)
        proto = frame[off + 6]
        off += 40
        while proto == 0 or proto == 43 or proto == 60 or proto == 44:
            if proto == 44:                 # fragment header: addresses only
                return 32 if size - off >= 8 else 0
            if size - off < 2:
                return 0
            hlen = (frame[off + 1] + 1U) * 8U
            if size - off < hlen:
                return 0
            proto = frame[off]
            off += hlen
        if proto != 6 and proto != 17:
            return 32
        if size - off < 4:
            return 0
        memcpy(out + 32, frame + off, 4)
        return 36
    return 0


cdef inline uint32_t rss_hash_frame(const uint8_t *frame, uint32_t size,
                                    const uint8_t *key) noexcept nogil:
    """The frame's RSS hash (0 when it has no hash input); key holds RSS_KEY_LEN bytes."""
    cdef uint8_t input[RSS_INPUT_MAX]
    cdef uint32_t n = rss_input(frame, size, input)
    return toeplitz_hash(key, input, n) if n else 0


cdef inline uint16_t rss_queue(uint32_t h, uint16_t n) noexcept nogil:
    """The queue of hash h under DPDK's default table reta[i] = i % n (n >= 1), indexed by
    the hash's low bits."""
    return <uint16_t>((h & (RSS_RETA_SIZE - 1)) % n)
