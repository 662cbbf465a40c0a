# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""dataplane._pcapscan: record walks over classic pcap bytes in C, for the replay's checks
of its inputs and outputs (dataplane/runtime.py) and its count of flows per group member
from the outputs (dataplane/spread.py). A Python loop over 3 M records took seconds; these
take milliseconds. Nothing here touches DPDK; the rules are the callers' (each function
says which Python code it stands for)."""
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t, int64_t
from libc.string cimport memcpy, memset

import numpy as np
cimport numpy as cnp

cnp.import_array()

cdef enum:
    PCAP_HEADER = 24
    RECORD_HEADER = 16
    KEY_BYTES = 48

cdef enum:                      # walk_classic's status
    OK = 0
    HEADER_CUT = 1                  # the file ends inside a record header
    BAD_LENGTHS = 2                 # caplen over the limit or over len
    DATA_CUT = 3                    # the file ends inside a record's frame

STATUS = {"ok": OK, "header_cut": HEADER_CUT, "bad_lengths": BAD_LENGTHS,
          "data_cut": DATA_CUT}


cdef inline uint32_t rd32(const uint8_t *p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint16_t be16(const uint8_t *p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]


def walk_classic(const uint8_t[::1] buf, bint big, int swap, uint64_t limit,
                 bint check_wire):
    """Walk the records of a classic pcap from offset 24, as libpcap reads them.

    swap: 0 keep caplen and len, 1 swap them when caplen > len (pcap 2.3), 2 always
    (before 2.3). A record whose captured length exceeds `limit`, or (check_wire) its
    original length, stops the walk. Returns (status, records, offset, caplen, len,
    captured bytes, records with caplen < len): status OK, or HEADER_CUT / BAD_LENGTHS /
    DATA_CUT for the record after `records` whole ones, which starts at `offset`."""
    cdef uint64_t size = <uint64_t>buf.shape[0], off = PCAP_HEADER, n = 0, total = 0, cut = 0
    cdef uint32_t cap = 0, wire = 0, t
    cdef int status = OK
    cdef const uint8_t *p
    if size < PCAP_HEADER:
        raise ValueError("shorter than the 24-byte pcap header")
    p = &buf[0]
    with nogil:
        while off < size:
            if size - off < RECORD_HEADER:
                status = HEADER_CUT
                break
            cap = rd32(p + off + 8, big)
            wire = rd32(p + off + 12, big)
            if swap == 2 or (swap == 1 and cap > wire):
                t = cap
                cap = wire
                wire = t
            if cap > limit or (check_wire and cap > wire):
                status = BAD_LENGTHS
                break
            if cap > size - off - RECORD_HEADER:
                status = DATA_CUT
                break
            total += cap
            cut += cap < wire
            off += RECORD_HEADER + cap
            n += 1
    return status, n, off, cap, wire, total, cut


cdef enum:
    ETH_VLAN = 0x8100
    ETH_QINQ = 0x88A8
    ETH_IP4 = 0x0800
    ETH_IP6 = 0x86DD


cdef inline bint flow_of(const uint8_t *f, int64_t n, uint8_t *k) noexcept nogil:
    """dataplane.spread.flow_of in C: the flow fields of an Ethernet frame into key k
    (family, addresses, protocol, ports); False when it has none. Key layout: [7]
    family, [8:24] source, [24:40] destination (IPv4 in the first 4 bytes), [40]
    protocol, [42:44] source port or ICMP echo id, [44:46] destination port (network
    order)."""
    cdef int64_t off = 14, end, l4 = -1, size
    cdef uint16_t etype
    cdef uint8_t proto, icmp, ihl
    cdef uint32_t total
    cdef int i, count
    cdef bint first
    if n < 14:
        return False
    etype = be16(f + 12)
    for i in range(2):
        if etype != ETH_VLAN and etype != ETH_QINQ:
            break
        if n < off + 4:
            return False
        etype = be16(f + off + 2)
        off += 4
    if etype == ETH_IP4:
        if n - off < 20 or f[off] >> 4 != 4:
            return False
        ihl = (f[off] & 0xF) * 4
        total = be16(f + off + 2)
        if ihl < 20 or total < ihl or n - off < total:
            return False
        k[7] = 4
        proto = f[off + 9]
        end = off + total
        icmp = 1
        memcpy(k + 8, f + off + 12, 4)
        memcpy(k + 24, f + off + 16, 4)
        if be16(f + off + 6) & 0x1FFF == 0:
            l4 = off + ihl
    elif etype == ETH_IP6:
        if n - off < 40 or f[off] >> 4 != 6:
            return False
        end = off + 40 + be16(f + off + 4)
        if n < end:
            return False
        k[7] = 6
        proto = f[off + 6]
        l4 = off + 40
        icmp = 58
        memcpy(k + 8, f + off + 8, 16)
        memcpy(k + 24, f + off + 24, 16)
        count = 0
        while proto == 0 or proto == 43 or proto == 60 or proto == 44 or proto == 51:
            # the packet path drops these (unsupported, truncated); the addresses stand
            if count == 8 or end - l4 < 2:
                return True
            if proto == 44:
                size = 8
            elif proto == 51:
                size = (<int64_t>f[l4 + 1] + 2) * 4
            else:
                size = (<int64_t>f[l4 + 1] + 1) * 8
            if end - l4 < size:
                return True
            first = proto != 44 or be16(f + l4 + 2) >> 3 == 0
            proto = f[l4]
            l4 += size
            count += 1
            if not first:                          # a non-first fragment: no L4
                l4 = -1
                break
    else:
        return False
    k[40] = proto
    if l4 < 0:
        return True
    if proto == icmp:
        if end - l4 >= 8 and ((icmp == 1 and (f[l4] == 8 or f[l4] == 0)) or
                              (icmp == 58 and (f[l4] == 128 or f[l4] == 129))):
            memcpy(k + 42, f + l4 + 4, 2)
    elif ((proto == 6 and end - l4 >= 20) or (proto == 17 and end - l4 >= 8) or
          (proto == 132 and end - l4 >= 12)):
        memcpy(k + 42, f + l4, 4)
    return True


def flow_keys(const uint8_t[::1] buf, bint big, uint64_t offset, uint64_t max_records):
    """The flow keys of at most max_records records of a classic pcap from `offset`:
    (keys, next offset). keys[i] is 48 bytes: [0:6] the frame's destination MAC, [6] 1
    when the frame carries a flow (dataplane.spread.flow_of is not None), then the key
    of flow_of above. A record cut short ends the walk (callers verified the file)."""
    cdef uint64_t size = <uint64_t>buf.shape[0], off = offset, n = 0, rows
    cdef uint32_t cap
    cdef const uint8_t *p = &buf[0]
    cdef const uint8_t *f
    cdef uint8_t *k
    rows = min(max_records, (size - min(size, off)) // RECORD_HEADER + 1)
    out = np.zeros((rows, KEY_BYTES), dtype=np.uint8)
    cdef uint8_t[:, ::1] keys = out
    with nogil:
        while off < size and n < rows:
            if size - off < RECORD_HEADER:
                break
            cap = rd32(p + off + 8, big)
            if cap > size - off - RECORD_HEADER:
                break
            f = p + off + RECORD_HEADER
            k = &keys[n, 0]
            if cap >= 6:
                memcpy(k, f, 6)
            k[6] = flow_of(f, cap, k)
            off += RECORD_HEADER + cap
            n += 1
    return out[:n], off
