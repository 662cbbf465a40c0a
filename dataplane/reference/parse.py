"""Reference of pyx/parse.pxd: Ethernet, VLAN tags, IP and L4 header fields and checks."""
# docs/packet-path.md §1-§3, on raw bytes. Pure Python (struct only) so that scapy can act
# as the independent oracle in tests.
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

VLAN_TPIDS = (0x8100, 0x88A8)
MAX_TAGS = 2
ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
IPV6_EXT = (0, 43, 60, 44, 51)          # hop-by-hop, routing, dest opts, fragment, AH
MAX_EXT = 8
TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
L4_NEED = {TCP: 20, UDP: 8, SCTP: 12, ICMP: 8, ICMPV6: 8}
ECHO = {ICMP: (8, 0), ICMPV6: (128, 129)}   # types whose bytes 4-5 are the echo id


@dataclass
class Parsed:
    drop: Optional[str] = None          # drop reason, None when the packet may be routed
    in_port: int = 0
    family: int = 0                     # 4, 6, or 0 when not IP
    l3: int = 0                         # offset of the IP header
    l4: int = 0                         # offset of the L4 header, 0 when not parsed
    src: bytes = b""
    dst: bytes = b""
    proto: int = 0                      # last next header for IPv6
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    ttl: int = 0                        # TTL or hop limit as received
    is_fragment: bool = False
    frag_first: bool = False
    frag_id: int = 0                    # IPv4 id or IPv6 fragment header id
    icmp_type: int = 0
    icmp_code: int = 0
    icmp_id: int = 0
    flow_label: int = 0


class _Drop(Exception):
    pass


def _need(b: bytes, off: int, n: int, end: Optional[int] = None) -> None:
    if (len(b) if end is None else end) - off < n:
        raise _Drop("truncated")


def _u16(b: bytes, off: int) -> int:
    return struct.unpack_from("!H", b, off)[0]


def parse(frame: bytes, in_port: int = 0) -> Parsed:
    """Parse one frame; address and TTL checks included, routing not."""
    p = Parsed(in_port=in_port)
    try:
        _need(frame, 0, 14)
        etype, off = _u16(frame, 12), 14
        for tags in range(MAX_TAGS + 1):
            if etype not in VLAN_TPIDS:
                break
            if tags == MAX_TAGS:
                raise _Drop("unsupported")
            _need(frame, off, 4)
            etype, off = _u16(frame, off + 2), off + 4
        p.l3 = off
        if etype == ETH_IPV4:
            _ipv4(frame, off, p)
        elif etype == ETH_IPV6:
            _ipv6(frame, off, p)
        else:
            raise _Drop("unsupported")
    except _Drop as d:
        p.drop = d.args[0]
    return p


def _ipv4(b: bytes, off: int, p: Parsed) -> None:
    _need(b, off, 20)
    if b[off] >> 4 != 4:
        raise _Drop("parse_error")
    ihl = (b[off] & 0xF) * 4
    if ihl < 20:
        raise _Drop("parse_error")
    _need(b, off, ihl)
    total = _u16(b, off + 2)
    if total < ihl:
        raise _Drop("parse_error")
    _need(b, off, total)
    p.family, p.ttl, p.proto = 4, b[off + 8], b[off + 9]
    p.src, p.dst = b[off + 12:off + 16], b[off + 16:off + 20]
    p.frag_id = _u16(b, off + 4)
    flags_frag = _u16(b, off + 6)
    frag_off = flags_frag & 0x1FFF
    p.is_fragment = bool(flags_frag & 0x2000) or frag_off != 0
    p.frag_first = p.is_fragment and frag_off == 0
    if frag_off == 0:
        _l4(b, off + ihl, off + total, p)
    s, d = int.from_bytes(p.src, "big"), int.from_bytes(p.dst, "big")
    if s >> 24 in (0, 127) or s >> 28 == 0xE or s == 0xFFFFFFFF or d >> 24 in (0, 127):
        raise _Drop("martian")
    if d >> 28 == 0xE or d == 0xFFFFFFFF:
        raise _Drop("unsupported")
    if p.ttl <= 1:
        raise _Drop("ttl_expired")


def _ipv6(b: bytes, off: int, p: Parsed) -> None:
    _need(b, off, 40)
    if b[off] >> 4 != 6:
        raise _Drop("parse_error")
    end = off + 40 + _u16(b, off + 4)
    _need(b, off, end - off)
    p.family = 6
    p.flow_label = struct.unpack_from("!I", b, off)[0] & 0xFFFFF
    nh, p.ttl = b[off + 6], b[off + 7]
    p.src, p.dst = b[off + 8:off + 24], b[off + 24:off + 40]
    cur, count, parse_l4 = off + 40, 0, True
    while nh in IPV6_EXT:
        if count == MAX_EXT:
            raise _Drop("unsupported")
        _need(b, cur, 2, end)
        size = 8 if nh == 44 else (b[cur + 1] + 2) * 4 if nh == 51 else (b[cur + 1] + 1) * 8
        _need(b, cur, size, end)
        if nh == 44:
            frag_off, mf = _u16(b, cur + 2) >> 3, _u16(b, cur + 2) & 1
            p.frag_id = struct.unpack_from("!I", b, cur + 4)[0]
            p.is_fragment = bool(mf) or frag_off != 0
            p.frag_first = p.is_fragment and frag_off == 0
            parse_l4 = frag_off == 0
        nh, cur, count = b[cur], cur + size, count + 1
        if not parse_l4:
            break
    p.proto = nh
    if parse_l4:
        _l4(b, cur, end, p)
    s, d = p.src, p.dst
    loopback, unspec = bytes(15) + b"\x01", bytes(16)
    if (s in (unspec, loopback) or s[0] == 0xFF or (s[0] == 0xFE and s[1] & 0xC0 == 0x80)
            or d in (unspec, loopback) or (d[0] == 0xFE and d[1] & 0xC0 == 0x80)):
        raise _Drop("martian")
    if d[0] == 0xFF:
        raise _Drop("unsupported")
    if p.ttl <= 1:
        raise _Drop("ttl_expired")


def _l4(b: bytes, off: int, end: int, p: Parsed) -> None:
    """L4 fields from `off`, bounded by the IP packet's end (not the frame's)."""
    icmp = ICMP if p.family == 4 else ICMPV6    # ICMP in IPv6 (or ICMPv6 in IPv4) is opaque
    if p.proto not in (TCP, UDP, SCTP, icmp):
        return
    _need(b, off, L4_NEED[p.proto], end)
    p.l4 = off
    if p.proto == icmp:
        p.icmp_type, p.icmp_code = b[off], b[off + 1]
        if p.icmp_type in ECHO[p.proto]:
            p.icmp_id = _u16(b, off + 4)
    else:
        p.sport, p.dport = struct.unpack_from("!HH", b, off)
        if p.proto == TCP:
            p.tcp_flags = b[off + 13]
