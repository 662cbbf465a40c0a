"""Reference of pyx/rewrite.pxd: Ethernet toward the next hop, TTL / hop limit - 1."""
# docs/packet-path.md §4.
from __future__ import annotations

from ..config.model import NextHop
from .parse import Parsed


def checksum_update(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') in one's complement (end-around carry)."""
    s = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def rewrite(frame: bytes, p: Parsed, nh: NextHop, src_mac: bytes) -> bytes:
    """Untagged Ethernet toward `nh`, TTL / hop limit decremented; nothing else changes."""
    ip = bytearray(frame[p.l3:])                # IP packet plus any Ethernet padding
    if p.family == 4:
        old = ip[8] << 8 | ip[9]                # the 16-bit word TTL | protocol
        ip[8] -= 1
        hc = checksum_update(ip[10] << 8 | ip[11], old, ip[8] << 8 | ip[9])
        ip[10:12] = hc.to_bytes(2, "big")
        etype = b"\x08\x00"
    else:
        ip[7] -= 1
        etype = b"\x86\xdd"
    return nh.mac + src_mac + etype + bytes(ip)


def eth_frame(dst_mac: bytes, src_mac: bytes, etype: int, payload: bytes) -> bytes:
    return dst_mac + src_mac + etype.to_bytes(2, "big") + payload
