# Parse stage: Ethernet, <= 2 VLAN tags, IPv4 (+options), IPv6 (+extension headers),
# TCP/UDP/SCTP/ICMP. The contract is docs/packet-path.md; every read is bounds-checked.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

# Counter slots (C_*, D_*) come from consts.pxd, generated from dataplane/limits.py.
from consts cimport *

cdef enum:
    R_MPLS = 100               # parse(): a label stack at l2_len (not a counter slot)
    ACT_IP = 0                 # pkt_t.act: routed as IP (also after a pop)
    ACT_SWAP = 1               # labelled out after an LFIB swap
    ACT_XC = 2                 # pop-xconnect: the inner frame out on the AC port
    ACT_PW = 3                 # a frame from an attachment circuit into its pseudowire

ctypedef struct pkt_t:
    uint8_t *data          # frame start (first segment)
    uint32_t len           # bytes readable from data
    uint16_t l2_len        # Ethernet + VLAN tags: offset of the IP header
    uint16_t l3_len        # IP header incl. options / extension headers
    uint8_t family         # 4 or 6
    uint8_t proto          # L4 protocol (after IPv6 extension headers)
    uint8_t ttl
    uint8_t frag           # 1: a fragment (MF or offset != 0)
    uint8_t l4             # 1: L4 fields parsed (not a non-first fragment)
    uint8_t tcp_flags
    uint8_t icmp_type
    uint16_t sport         # host order; 0 when absent
    uint16_t dport
    uint16_t icmp_id
    uint32_t flow_label
    uint32_t frag_id       # IPv4 identification / IPv6 fragment identification
    uint16_t ip_len        # IPv4 total length / IPv6 40 + payload length
    uint16_t vrf           # the VRF the packet is routed in
    uint8_t act            # ACT_*: what happens to the packet (docs/mpls.md)
    uint8_t popped         # 1: arrived labelled: no IP TTL check or decrement
    uint8_t nstack         # entries of the received label stack
    uint8_t learn          # 1: learn its source MAC in the flow-mode burst loop, in order
    uint16_t end           # end of the frame's meaningful bytes (0: data_len)
    uint16_t region        # offset of the received label stack
    uint16_t payload       # offset just past its bottom entry
    uint16_t cut           # swap: past the swapped entry; xc: the inner frame
    uint32_t aux           # swap: LFIB entry; xc, pw: pseudowire index
    uint32_t lse           # swap: the swapped entry (host order): TC and S
    uint32_t more          # bytes of the packet past what is readable at data: its
                           # later mbuf segments (length checks count them, reads never)

cdef inline uint16_t rd16(const uint8_t *p) noexcept nogil:
    return <uint16_t>((p[0] << 8) | p[1])

cdef inline uint32_t rd32(const uint8_t *p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline int short_of(const pkt_t *p, uint32_t need, uint32_t avail) noexcept nogil:
    """A header needs `need` bytes and `avail` are readable: truncated, or split_headers
    when the packet's later segments hold the rest (docs/packet-path.md §6)."""
    return D_SPLIT_HEADERS if need <= avail + p.more else D_TRUNCATED

cdef inline uint32_t l4_need(uint8_t proto, bint v6) noexcept nogil:
    """Bytes parse_l4 reads of an L4 header (0: none)."""
    if proto == 6:
        return 20
    if proto == 17 or (proto == 1 and not v6) or (proto == 58 and v6):
        return 8
    if proto == 132:
        return 12
    return 0

cdef inline int parse_l4(pkt_t *p, const uint8_t *l4, uint32_t avail, bint v6) noexcept nogil:
    cdef uint8_t proto = p.proto
    p.l4 = 1
    if proto == 6:
        if avail < 20:
            return D_TRUNCATED
        p.tcp_flags = l4[13]
    elif proto == 17:
        if avail < 8:
            return D_TRUNCATED
    elif proto == 132:
        if avail < 12:
            return D_TRUNCATED
    elif (proto == 1 and not v6) or (proto == 58 and v6):
        if avail < 8:
            return D_TRUNCATED
        p.icmp_type = l4[0]
        if (v6 and (l4[0] == 128 or l4[0] == 129)) or (not v6 and (l4[0] == 8 or l4[0] == 0)):
            p.icmp_id = rd16(l4 + 4)
        return 0
    else:
        return 0
    p.sport = rd16(l4)
    p.dport = rd16(l4 + 2)
    return 0

cdef inline int parse_l4_split(pkt_t *p, const uint8_t *l4, uint32_t readable,
                               uint32_t length, bint v6) noexcept nogil:
    """parse_l4 on the `readable` bytes of an L4 region of `length`: a header that the
    length holds but the first segment does not is split_headers, not truncated."""
    cdef int r = parse_l4(p, l4, readable, v6)
    if r == D_TRUNCATED and readable < length and l4_need(p.proto, v6) <= length:
        return D_SPLIT_HEADERS
    return r

cdef inline int parse_ipv4(pkt_t *p, const uint8_t *ip, uint32_t avail) noexcept nogil:
    cdef uint32_t ihl, total
    cdef uint16_t fo
    cdef int r
    if avail < 20:
        return short_of(p, 20, avail)
    if (ip[0] >> 4) != 4:
        return D_PARSE_ERROR
    ihl = (ip[0] & 15) * 4
    if ihl < 20:
        return D_PARSE_ERROR
    if avail < ihl:
        return short_of(p, ihl, avail)
    total = rd16(ip + 2)
    if total < ihl:
        return D_PARSE_ERROR
    if total > avail + p.more:
        return D_TRUNCATED
    p.family = 4
    p.proto = ip[9]
    p.ttl = ip[8]
    p.l3_len = <uint16_t>ihl
    p.frag_id = rd16(ip + 4)
    fo = rd16(ip + 6)
    p.ip_len = <uint16_t>total
    p.frag = (fo & 0x3fff) != 0
    if (fo & 0x1fff) == 0:
        r = parse_l4_split(p, ip + ihl, (total if total <= avail else avail) - ihl,
                           total - ihl, 0)
        if r:
            return r
    # martians, then addresses a unicast router does not forward
    if ip[12] == 0 or ip[12] == 127 or (ip[12] & 0xf0) == 0xe0 or rd32(ip + 12) == <uint32_t>0xffffffffU:
        return D_MARTIAN
    if ip[16] == 0 or ip[16] == 127:
        return D_MARTIAN
    if (ip[16] & 0xf0) == 0xe0 or rd32(ip + 16) == <uint32_t>0xffffffffU:
        return D_UNSUPPORTED
    if p.ttl <= 1 and not p.popped:
        return D_TTL_EXPIRED
    return 0

cdef inline bint v6_unspec_or_loop(const uint8_t *a) noexcept nogil:
    cdef int i
    for i in range(15):
        if a[i]:
            return 0
    return a[15] <= 1

cdef inline bint v6_link_local(const uint8_t *a) noexcept nogil:
    return a[0] == 0xfe and (a[1] & 0xc0) == 0x80

cdef inline int parse_ipv6(pkt_t *p, const uint8_t *ip, uint32_t avail) noexcept nogil:
    cdef uint32_t end, rend, off = 40, hl
    cdef uint8_t nh
    cdef uint16_t fo
    cdef int count = 0, r
    cdef bint l4 = 1
    if avail < 40:
        return short_of(p, 40, avail)
    if (ip[0] >> 4) != 6:
        return D_PARSE_ERROR
    end = 40 + <uint32_t>rd16(ip + 4)
    if end > avail + p.more:
        return D_TRUNCATED
    rend = end if end <= avail else avail       # what can be read: the first segment
    p.family = 6
    p.ip_len = <uint16_t>end
    p.ttl = ip[7]
    p.flow_label = rd32(ip) & 0xfffff
    nh = ip[6]
    while nh == 0 or nh == 43 or nh == 60 or nh == 44 or nh == 51:
        if count == 8:
            return D_UNSUPPORTED
        count += 1
        if rend < off + 2:
            return D_TRUNCATED if end < off + 2 else D_SPLIT_HEADERS
        if nh == 44:
            hl = 8
        elif nh == 51:
            hl = (<uint32_t>ip[off + 1] + 2) * 4
        else:
            hl = (<uint32_t>ip[off + 1] + 1) * 8
        if rend < off + hl:
            return D_TRUNCATED if end < off + hl else D_SPLIT_HEADERS
        if nh == 44:
            fo = rd16(ip + off + 2)
            p.frag = (fo & 0xfff9) != 0     # offset or M: an atomic fragment is not one
            p.frag_id = rd32(ip + off + 4)
            if fo & 0xfff8:
                l4 = 0
                nh = ip[off]
                off += hl
                break
        nh = ip[off]
        off += hl
    p.proto = nh
    p.l3_len = <uint16_t>off
    if l4:
        r = parse_l4_split(p, ip + off, rend - off, end - off, 1)
        if r:
            return r
    if v6_unspec_or_loop(ip + 8) or ip[8] == 0xff or v6_link_local(ip + 8):
        return D_MARTIAN
    if v6_unspec_or_loop(ip + 24) or v6_link_local(ip + 24):
        return D_MARTIAN
    if ip[24] == 0xff:
        return D_UNSUPPORTED
    if p.ttl <= 1 and not p.popped:
        return D_TTL_EXPIRED
    return 0

cdef inline bint unicast4(uint8_t octet) noexcept nogil:
    # a first octet that is neither martian (0, 127) nor multicast/reserved (>= 224)
    return <uint8_t>(octet - 1) < 126 or <uint8_t>(octet - 128) < 96

cdef inline bint parse_fast4(pkt_t *p, const uint8_t *ip, uint32_t avail) noexcept nogil:
    """The frame most traffic is: untagged IPv4 without options, not a fragment, UDP or
    TCP, unicast addresses, TTL > 1. Fills p exactly as parse_ipv4 would and returns 1;
    0 (p untouched) sends anything else down the general path. One test per condition
    instead of the general path's walk: about half its instructions (docs/performance.md)."""
    cdef uint32_t total = rd16(ip + 2)
    cdef uint8_t proto = ip[9]
    if ((rd16(ip + 6) & 0x3fff) or ip[8] <= 1 or total > avail or
            not (unicast4(ip[12]) and unicast4(ip[16]))):
        return 0
    if proto == 17:
        if total < 28:
            return 0
    elif proto == 6:
        if total < 40:
            return 0
        p.tcp_flags = ip[33]
    else:
        return 0
    p.l2_len = 14
    p.family = 4
    p.proto = proto
    p.ttl = ip[8]
    p.l3_len = 20
    p.frag_id = rd16(ip + 4)
    p.ip_len = <uint16_t>total
    p.l4 = 1
    p.sport = rd16(ip + 20)
    p.dport = rd16(ip + 22)
    return 1

cdef inline int parse(pkt_t *p) noexcept nogil:
    """Fill p from p.data/p.len; 0 or the drop reason (a counter slot)."""
    cdef const uint8_t *d = p.data
    cdef uint32_t n = p.len, off = 14
    cdef uint16_t et
    cdef int tags = 0
    if (n >= 42 and d[12] == 0x08 and d[13] == 0 and d[14] == 0x45 and not p.popped and
            parse_fast4(p, d + 14, n - 14)):
        return 0
    if n < 14:
        return short_of(p, 14, n)
    et = rd16(d + 12)
    while et == 0x8100 or et == 0x88a8:
        if tags == 2:
            return D_UNSUPPORTED
        if n < off + 4:
            return short_of(p, off + 4, n)
        et = rd16(d + off + 2)
        off += 4
        tags += 1
    p.l2_len = <uint16_t>off
    if et == 0x0800:
        return parse_ipv4(p, d + off, n - off)
    if et == 0x86dd:
        return parse_ipv6(p, d + off, n - off)
    if et == 0x8847:
        return R_MPLS
    return D_UNSUPPORTED

# The flow key (docs/flow-table.md §1): what the flow table stores and the hash reads.
ctypedef struct flow_key_t:
    uint8_t src[16]            # IPv4 in the first 4 bytes
    uint8_t dst[16]
    uint16_t sport             # network order; ICMP echo: id; other ICMP: 0
    uint16_t dport             # network order; ICMP: type
    uint16_t vrf               # network order
    uint8_t proto
    uint8_t family
    uint64_t pad               # zero: 48 bytes is a key size rte_hash compares with SIMD

cdef inline uint16_t be16(uint16_t host) noexcept nogil:
    return <uint16_t>((host >> 8) | (host << 8))

cdef inline void build_key(const pkt_t *p, uint16_t vrf, flow_key_t *k) noexcept nogil:
    """Whole 8-byte words only: the hash reads the key back as words right away, and a
    word assembled from several narrower stores cannot be store-forwarded (a stall of
    ~15 cycles per word, measured on the flow path). TCP/UDP/SCTP ports are read from the
    packet, already in network order, as the key stores them."""
    cdef const uint8_t *ip = p.data + p.l2_len
    cdef uint64_t *w = <uint64_t *>k
    cdef uint32_t a, b, ports = 0
    cdef uint8_t proto = p.proto
    if p.l4:
        if proto == 6 or proto == 17 or proto == 132:
            memcpy(&ports, ip + p.l3_len, 4)
        elif (proto == 1 and p.family == 4) or (proto == 58 and p.family == 6):
            ports = be16(p.icmp_id) | (<uint32_t>be16(p.icmp_type) << 16)
    if p.family == 4:
        memcpy(&a, ip + 12, 4)
        memcpy(&b, ip + 16, 4)
        w[0] = a
        w[1] = 0
        w[2] = b
        w[3] = 0
    else:
        memcpy(w, ip + 8, 32)
    w[4] = (ports | (<uint64_t>be16(vrf) << 32) | (<uint64_t>proto << 48) |
            (<uint64_t>p.family << 56))
    w[5] = 0
