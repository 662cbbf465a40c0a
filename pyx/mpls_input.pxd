# MPLS input stage: label stacks received (LFIB swap / pop / pop-lookup / pop-xconnect,
# ELI+EL pairs, TTL models) and MPLS-over-UDP/GRE decap at the node's tunnel address; the
# LFIB and pseudowire types. Hashing of labelled packets is mpls_hash.pxd, pushing
# push.pxd, the labelled output mpls_output.pxd. The contract is docs/mpls.md; the
# reference model is dataplane/reference/mpls_input.py. Every read is bounds-checked.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int32_t
from libc.string cimport memcpy, memset, memcmp
from includes.rte_hash cimport rte_hash, rte_hash_lookup
from includes.rte_hash_crc cimport rte_hash_crc
from includes.rte_ip cimport rte_raw_cksum
from includes.shim cimport dp_bswap16, dp_bswap32
from parse cimport *
from hashing cimport hash_input, finalize, KEY_WORDS
from rewrite cimport nexthop_t, ttl_dec4

from consts cimport *

cdef enum:
    MAX_STACK = 16             # entries parsed before giving up (`unsupported`)
    ELI = 7                    # RFC 6790; 14 is the OAM alert label, not the ELI
    MPLS_UDP_PORT = 6635       # RFC 7510 §3
    PW_TTL = 255               # transport and PW labels over a frame
    PIPE_TTL = 255
    OUTER_TTL = 64

ctypedef struct lfib_entry_t:
    uint8_t action             # A_*
    uint8_t n_labels           # swap
    uint16_t vrf               # pop-lookup
    uint32_t pw                # pop-xconnect
    uint32_t via               # swap: next-hop id (NH_GROUP set: a group)
    uint32_t labels[MAX_SWAP]  # swap: label << 12, network order

ctypedef struct pw_t:
    uint16_t ac_port           # port index of the attachment circuit
    uint8_t fat
    uint8_t cw
    uint32_t label             # PW label << 12 (host order)
    uint32_t via               # next-hop id (NH_GROUP set: a group)

ctypedef struct mpls_t:
    rte_hash *lfib             # 4-byte label → position in entries; NULL: empty LFIB
    lfib_entry_t *entries
    pw_t *pws
    uint8_t erld
    uint8_t guess              # payload_guess
    uint8_t pipe               # ttl_model: pipe
    uint8_t tun_family         # 0: no tunnel address; 4 or 6
    uint8_t tun_addr[16]
    uint64_t el_not_readable   # pushes whose EL lies beyond erld (a counter, never a drop)


cdef inline uint32_t be32(uint32_t host) noexcept nogil:
    return dp_bswap32(host)

cdef inline int ttl_step(int w, uint32_t ttl, bint pipe) noexcept nogil:
    """docs/mpls.md §6: W after reading one more TTL (uniform keeps the lowest)."""
    cdef int t = <int>ttl - 1
    if w < 0 or pipe or t < w:
        return t
    return w

cdef inline void set_ip_ttl(uint8_t *ip, uint8_t ttl) noexcept nogil:
    """IPv4 TTL with the RFC 1624 incremental checksum, or the IPv6 hop limit."""
    cdef uint32_t m, m2, s
    if (ip[0] >> 4) == 4:
        m = (<uint32_t>ip[8] << 8) | ip[9]
        m2 = (<uint32_t>ttl << 8) | ip[9]
        s = ((~((<uint32_t>ip[10] << 8) | ip[11])) & 0xffff) + ((~m) & 0xffff) + m2
        s = (s & 0xffff) + (s >> 16)
        s = (s & 0xffff) + (s >> 16)
        s = (~s) & 0xffff
        ip[8] = ttl
        ip[10] = <uint8_t>(s >> 8)
        ip[11] = <uint8_t>s
    else:
        ip[7] = ttl

cdef inline int to_ip(const mpls_t *mp, pkt_t *p, uint32_t off, uint32_t end, int w,
                      uint16_t vrf) noexcept nogil:
    """§4 'to IP': the payload at off is an IP packet routed in vrf with TTL W. `end`
    may lie past the first segment; reads stay within it (p.len)."""
    cdef uint8_t *ip = p.data + off
    cdef uint32_t v, rend = end if end <= p.len else p.len
    if rend - off < 1:
        return D_TRUNCATED if end - off < 1 else D_SPLIT_HEADERS
    v = ip[0] >> 4
    if v == 4:
        if rend - off < 20:
            return D_TRUNCATED if end - off < 20 else D_SPLIT_HEADERS
        w = ttl_step(w, ip[8], mp.pipe)
    elif v == 6:
        if rend - off < 40:
            return D_TRUNCATED if end - off < 40 else D_SPLIT_HEADERS
        w = ttl_step(w, ip[7], mp.pipe)
    else:
        return D_PARSE_ERROR
    if w < 1:
        return D_MPLS_TTL_EXPIRED
    set_ip_ttl(ip, <uint8_t>w)
    # the IP parse starts afresh (an overlay's outer header was parsed into p)
    p.l3_len = 0; p.family = 0; p.proto = 0; p.frag = 0; p.l4 = 0; p.tcp_flags = 0
    p.icmp_type = 0; p.sport = 0; p.dport = 0; p.icmp_id = 0; p.flow_label = 0
    p.frag_id = 0
    p.popped = 1
    p.vrf = vrf
    p.act = ACT_IP
    p.l2_len = <uint16_t>off
    p.more = end - rend                # the inner packet's bytes past the first segment
    if v == 4:
        return parse_ipv4(p, ip, rend - off)
    return parse_ipv6(p, ip, rend - off)

cdef inline uint32_t skip_pairs(const uint32_t *st, uint32_t i, uint32_t n) noexcept nogil:
    """ELI+EL pairs are popped together wherever processing reaches them."""
    while i < n and (st[i] >> 12) == ELI:
        i += 2                 # an ELI is never the bottom entry (parse_error)
    return i

cdef inline int lfib_find(const mpls_t *mp, uint32_t label) noexcept nogil:
    if mp.lfib == NULL:
        return -1
    return rte_hash_lookup(mp.lfib, &label)

cdef inline int mpls_region(const mpls_t *mp, pkt_t *p, uint32_t off, uint32_t end,
                            uint16_t in_vrf) noexcept nogil:
    """§2-§5: the label region [off, end) through the LFIB. 0 with p.act set (ACT_IP:
    p parsed as the IP packet to route), or the drop reason. `end` may lie past the
    first segment (p.len readable bytes): the stack and the PW's CW must be within it."""
    cdef const uint8_t *d = p.data
    cdef uint32_t st[MAX_STACK]
    cdef uint32_t n = 0, o = off, i = 0, e, label, payload
    cdef uint32_t rend = end if end <= p.len else p.len
    cdef int w = -1, pos
    cdef const lfib_entry_t *ent
    cdef const pw_t *pw
    while True:
        if n == MAX_STACK:
            return D_UNSUPPORTED
        if rend < o + 4:
            return D_TRUNCATED if end < o + 4 else D_SPLIT_HEADERS
        e = rd32(d + o)
        o += 4
        st[n] = e
        n += 1
        if (e >> 8) & 1:
            if (e >> 12) == ELI:
                return D_PARSE_ERROR
            break
    payload = o
    p.region = <uint16_t>off
    p.payload = <uint16_t>payload
    p.nstack = <uint8_t>n
    p.end = <uint16_t>end
    while True:
        i = skip_pairs(st, i, n)
        if i == n:
            return to_ip(mp, p, payload, end, w, in_vrf)
        e = st[i]
        label = e >> 12
        if label < 16 and label != 0 and label != 2:
            return D_UNSUPPORTED
        w = ttl_step(w, e & 0xff, mp.pipe)
        if w < 1:
            return D_MPLS_TTL_EXPIRED
        i += 1
        if label < 16:                 # explicit null: a pop (RFC 4182)
            continue
        pos = lfib_find(mp, label)
        if pos < 0:
            return D_NO_LFIB_ENTRY
        ent = &mp.entries[pos]
        if ent.action == A_POP:
            continue
        if ent.action == A_SWAP:
            p.act = ACT_SWAP
            p.aux = <uint32_t>pos
            p.cut = <uint16_t>(off + 4 * i)
            p.lse = e
            p.ttl = <uint8_t>w
            return 0
        if ent.action == A_POP_LOOKUP:
            if skip_pairs(st, i, n) != n:
                return D_UNSUPPORTED
            return to_ip(mp, p, payload, end, w, ent.vrf)
        # pop-xconnect (§9.2): pairs, at most the FAT label, the control word, the frame
        i = skip_pairs(st, i, n)
        if i < n and i != n - 1:
            return D_UNSUPPORTED
        pw = &mp.pws[ent.pw]
        o = payload
        if pw.cw:
            if rend < o + 4:
                return D_TRUNCATED if end < o + 4 else D_SPLIT_HEADERS
            if (d[o] >> 4) == 1:
                return D_UNSUPPORTED   # a PW associated channel (RFC 4385 §5): no OAM
            if (d[o] >> 4) != 0:
                return D_PARSE_ERROR
            o += 4
        if rend < o + 14:
            return D_TRUNCATED if end < o + 14 else D_SPLIT_HEADERS
        p.act = ACT_XC
        p.aux = ent.pw
        p.cut = <uint16_t>o
        p.ttl = <uint8_t>w
        return 0

cdef inline int overlay_decap(const mpls_t *mp, pkt_t *p, uint16_t in_vrf) noexcept nogil:
    """§10.2, for an IP packet addressed to the tunnel address: the label region inside
    MPLS-over-UDP or MPLS-over-GRE, processed as if received in an Ethernet frame."""
    cdef uint32_t l4 = <uint32_t>p.l2_len + p.l3_len, end = <uint32_t>p.l2_len + p.ip_len
    cdef uint32_t flags, size
    cdef const uint8_t *d = p.data
    cdef uint32_t rend = end if end <= p.len else p.len
    if p.frag:
        return D_UNSUPPORTED
    if p.proto == 17 and p.dport == MPLS_UDP_PORT:
        l4 += 8                        # parse_l4 checked the 8 bytes
    elif p.proto == 47:
        if rend < l4 + 4:
            return D_TRUNCATED if end < l4 + 4 else D_SPLIT_HEADERS
        flags = rd16(d + l4)
        if (flags & ~0xb000U) or rd16(d + l4 + 2) != 0x8847:
            return D_UNSUPPORTED       # only C, K, S; version 0; MPLS
        size = 4 + 4 * (((flags >> 15) & 1) + ((flags >> 13) & 1) + ((flags >> 12) & 1))
        if rend < l4 + size:
            return D_TRUNCATED if end < l4 + size else D_SPLIT_HEADERS
        l4 += size
    else:
        return D_UNSUPPORTED           # the node terminates nothing else
    return mpls_region(mp, p, l4, end, in_vrf)

cdef inline bint for_tunnel(const mpls_t *mp, const pkt_t *p) noexcept nogil:
    cdef const uint8_t *ip = p.data + p.l2_len
    if p.family != mp.tun_family:
        return 0
    if p.family == 4:
        return memcmp(ip + 16, mp.tun_addr, 4) == 0
    return memcmp(ip + 24, mp.tun_addr, 16) == 0
