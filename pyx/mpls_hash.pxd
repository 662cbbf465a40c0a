# Hash stage of labelled packets and frames (docs/mpls.md §8, §9.1): a transit LSR's hash
# of the label stack (the EL when an ELI is readable, payload guessing past the bottom of
# stack) and a pseudowire frame's hash (inner IP 5-tuple, else its MACs); the entropy
# label value of a hash.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset
from includes.rte_hash_crc cimport rte_hash_crc
from consts cimport *
from parse cimport *
from hashing cimport hash_input, finalize, KEY_WORDS
from mpls_input cimport mpls_t, be32, MAX_STACK, ELI

cdef inline uint32_t guess_key(const uint8_t *b, uint32_t avail, uint32_t want,
                               uint8_t *k, uint16_t ingress, uint32_t fields) noexcept nogil:
    """§8.3: the hash key of an IP header guessed at b (version `want`, 0: either);
    0 when the bytes cannot be one (a guess never drops)."""
    cdef uint32_t v, ihl, l4
    cdef uint8_t proto
    cdef uint16_t sport = 0, dport = 0
    cdef bint ports
    if avail < 1:
        return 0
    v = b[0] >> 4
    if want and v != want:
        return 0
    if v == 4:
        ihl = (b[0] & 15) * 4
        if avail < 20 or ihl < 20 or avail < ihl:
            return 0
        proto = b[9]
        l4 = ihl
        ports = (rd16(b + 6) & 0x3fff) == 0
    elif v == 6:
        if avail < 40:
            return 0
        proto = b[6]
        l4 = 40
        ports = 1
    else:
        return 0
    if ports:
        if proto == 6 or proto == 17 or proto == 132:
            if avail - l4 >= 4:
                sport = rd16(b + l4)
                dport = rd16(b + l4 + 2)
        elif (proto == 1 and v == 4) or (proto == 58 and v == 6):
            if avail - l4 >= 6 and ((v == 4 and (b[l4] == 8 or b[l4] == 0)) or
                                    (v == 6 and (b[l4] == 128 or b[l4] == 129))):
                sport = rd16(b + l4 + 4)
                dport = sport
    if v == 4:
        return hash_input(k, 4, b + 12, b + 16, proto, sport, dport, ingress, 0, fields)
    return hash_input(k, 6, b + 8, b + 24, proto, sport, dport, ingress,
                    rd32(b) & 0xfffff, fields)

cdef inline uint32_t transit_hash(const mpls_t *mp, const pkt_t *p, uint32_t fields,
                                  uint16_t ingress, uint32_t seed) noexcept nogil:
    """§8: the hash of a labelled packet, from the stack as received: the EL when an
    ELI and its EL are within erld; else the non-reserved labels within erld, plus the
    guessed IP fields when the bottom of stack is within erld."""
    cdef const uint8_t *d = p.data + p.region
    cdef uint32_t n = p.nstack, r = n if n < mp.erld else mp.erld, i, klen = 0, label, g, e
    cdef uint8_t key[4 * MAX_STACK + 48]
    cdef uint64_t ip[KEY_WORDS]
    for i in range(r):
        if (rd32(d + 4 * i) >> 12) == ELI and i + 1 < r:
            label = be32(rd32(d + 4 * i + 4) >> 12)
            return finalize(rte_hash_crc(&label, 4, 0xffffffffU), seed)
    for i in range(r):
        label = rd32(d + 4 * i) >> 12
        if label >= 16:
            label = be32(label)
            memcpy(key + klen, &label, 4)
            klen += 4
    if mp.guess and n <= mp.erld:
        d = p.data + p.payload
        e = p.end if p.end <= p.len else p.len        # readable: the first segment
        if e > p.payload and ((d[0] >> 4) == 4 or (d[0] >> 4) == 6):
            g = guess_key(d, e - p.payload, 0, <uint8_t *>ip, ingress, fields)
            memcpy(key + klen, ip, g)
            klen += g
    return finalize(rte_hash_crc(key, klen, 0xffffffffU), seed)

cdef inline uint32_t frame_hash(const uint8_t *f, uint32_t n, uint32_t fields,
                                uint16_t ingress, uint32_t seed) noexcept nogil:
    """§9.1: the inner flow hash of a frame entering a pseudowire: its IP key after
    Ethernet and at most two VLAN tags, else dst MAC | src MAC | bytes 12-13 | 00 00."""
    cdef uint64_t k[KEY_WORDS]
    cdef uint32_t off = 14, klen = 0, tags = 0
    cdef uint16_t et
    if n >= 14:
        et = rd16(f + 12)
        while et == 0x8100 or et == 0x88a8:
            if tags == 2 or n < off + 4:
                et = 0
                break
            et = rd16(f + off + 2)
            off += 4
            tags += 1
        if et == 0x0800:
            klen = guess_key(f + off, n - off, 4, <uint8_t *>k, ingress, fields)
        elif et == 0x86dd:
            klen = guess_key(f + off, n - off, 6, <uint8_t *>k, ingress, fields)
    if klen == 0:
        k[0] = 0
        k[1] = 0
        memcpy(k, f, 14)
        klen = 16
    return finalize(rte_hash_crc(k, klen, 0xffffffffU), seed)

cdef inline uint32_t entropy_label(uint32_t h) noexcept nogil:
    return 16 + h % ((1 << 20) - 16)

