# Fat-flow stage (SPEC §5, docs/flow-table.md §2): per ingress port rules that mask the flow
# key so that many sessions aggregate into one flow entry and one ECMP member.
from libc.stdint cimport uint8_t, uint16_t, uint32_t
from libc.string cimport memset
from parse cimport flow_key_t, be16

from consts cimport *

ctypedef struct fat_rule_t:
    uint8_t proto              # 6, 17, 132, or 1 for ICMP (matches ICMPv6 58 on IPv6)
    uint8_t ignore             # IGNORE_*
    uint8_t src_plen           # NO_PREFIX or a prefix length
    uint8_t dst_plen
    uint16_t port              # host order; 0 = any

ctypedef struct fat_prefix_t:
    uint8_t family
    uint8_t plen
    uint8_t addr[16]

ctypedef struct fat_rules_t:
    uint8_t n_rules
    uint8_t n_exclude
    fat_rule_t rules[MAX_FAT_RULES]
    fat_prefix_t exclude[MAX_FAT_EXCLUDE]

cdef inline bint prefix_has(const fat_prefix_t *pf, uint8_t family,
                            const uint8_t *a) noexcept nogil:
    cdef uint32_t i, full = pf.plen // 8, rest = pf.plen % 8
    if pf.family != family:
        return 0
    for i in range(full):
        if a[i] != pf.addr[i]:
            return 0
    if rest and ((a[full] ^ pf.addr[full]) & <uint8_t>(0xff << (8 - rest))):
        return 0
    return 1

cdef inline void mask_addr(uint8_t *a, uint32_t plen, uint32_t bits) noexcept nogil:
    """Keep the leading plen bits of a `bits`-bit address."""
    cdef uint32_t i
    if plen >= bits:
        return
    for i in range(plen // 8 + (1 if plen % 8 else 0), bits // 8):
        a[i] = 0
    if plen % 8:
        a[plen // 8] &= <uint8_t>(0xff << (8 - plen % 8))

cdef inline bint fat_mask(const fat_rules_t *fr, flow_key_t *k) noexcept nogil:
    """Mask k by the first applicable rule; 1 when one applied (the key is an aggregate)."""
    cdef uint32_t i, bits
    cdef const fat_rule_t *r
    cdef const fat_rule_t *best = NULL
    cdef const fat_rule_t *any_port = NULL
    cdef uint16_t sp, dp
    cdef uint8_t proto
    cdef bint icmp
    if fr.n_rules == 0:
        return 0
    for i in range(fr.n_exclude):
        if prefix_has(&fr.exclude[i], k.family, k.src) or \
           prefix_has(&fr.exclude[i], k.family, k.dst):
            return 0
    icmp = (k.proto == 1 and k.family == 4) or (k.proto == 58 and k.family == 6)
    # rules say 1 for ICMP of either family; protocol 1 inside IPv6 is not ICMP
    proto = 1 if icmp else (0 if k.proto == 1 else k.proto)
    sp = be16(k.sport)
    dp = be16(k.dport)
    for i in range(fr.n_rules):
        r = &fr.rules[i]
        if r.proto != proto:
            continue
        if r.port == 0:
            if any_port == NULL:
                any_port = r
        elif not icmp and (sp == r.port or dp == r.port):
            if best == NULL or r.port < best.port:
                best = r
    if best != NULL:
        if sp != best.port:
            k.sport = 0
        if dp != best.port:
            k.dport = 0
    elif any_port != NULL:
        best = any_port
        k.sport = 0
        k.dport = 0
    else:
        return 0
    bits = 32 if k.family == 4 else 128
    if best.ignore == IGNORE_SRC:
        memset(k.src, 0, 16)
    elif best.ignore == IGNORE_DST:
        memset(k.dst, 0, 16)
    if best.src_plen != NO_PREFIX:
        mask_addr(k.src, best.src_plen, bits)
    if best.dst_plen != NO_PREFIX:
        mask_addr(k.dst, best.dst_plen, bits)
    return 1
