"""Software RSS as a NIC does it: the Toeplitz hash of a frame's addresses (and ports when
the frame is an unfragmented TCP or UDP packet), and the queue DPDK's default redirection
table gives that hash. Multi-worker mode uses it to give each worker the traffic a NIC
would give its queue; `split_pcap` does the same to a capture, `merge_pcaps` undoes it.

This is the pure-Python reference; pyx/rss.pxd is the C twin the packet path inlines and
dataplane._rss exposes it (tests/test_rss.py holds the two to the same answers).

Hash input rules (`rss_input`), on an Ethernet frame with at most two VLAN tags
(0x8100 / 0x88a8):
- IPv4 TCP/UDP, not a fragment: src addr, dst addr, src port, dst port (12 bytes).
- IPv4 other protocols, or any fragment (MF set or offset != 0, the first one too):
  src addr, dst addr (8 bytes).
- IPv6: extension headers hop-by-hop (0), routing (43) and destination options (60) are
  walked; a fragment header (44), or an upper layer other than TCP/UDP, gives src, dst
  (32 bytes); TCP/UDP gives src, dst, sport, dport (36 bytes).
- Anything else, truncated or malformed: b"" (hash 0). "Truncated" means the frame ends
  before a header the walk passes (an IPv4 header of IHL words, a whole IPv6 extension or
  fragment header) or before the two ports it hashes. Nothing here raises on frame bytes.
"""
from __future__ import annotations

import struct
from operator import itemgetter

try:
    from dataplane import _rss
except ImportError:                 # not built: the pure-Python path below still works
    _rss = None

# Woo & Park, "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling": a key
# with a 16-bit period makes swapping equal-sized src/dst fields leave the hash unchanged.
SYMMETRIC_KEY = bytes.fromhex("6d5a") * 20
# Microsoft's RSS verification key ("Verifying the RSS Hash Calculation"), the usual default.
MS_KEY = bytes.fromhex("6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c"
                       "6a42b73bbeac01fa")
KEY_LEN = 40                        # 36 input bytes (IPv6 + ports) need 36 + 4 key bytes
RETA_SIZE = 128                     # DPDK's default redirection table size

_VLAN_TPIDS = (0x8100, 0x88A8)
_IPV6_WALKED = (0, 43, 60)          # hop-by-hop, routing, destination options
_L4_PORTS = (6, 17)                 # TCP, UDP


def toeplitz(key: bytes, data: bytes) -> int:
    """The 32-bit Toeplitz hash: for each set bit i of data (MSB first), XOR in the 32 key
    bits starting at bit i. len(key) must be at least len(data) + 4."""
    key, data = bytes(key), bytes(data)
    if len(key) < len(data) + 4:
        raise ValueError(f"key must be at least {len(data) + 4} bytes for {len(data)} "
                         f"input bytes, got {len(key)}")
    k = int.from_bytes(key, "big")
    top = 8 * len(key) - 32         # shift that brings key bits [0, 32) to the bottom
    h = 0
    for i, byte in enumerate(data):
        for b in range(8):
            if byte & (0x80 >> b):
                h ^= (k >> (top - 8 * i - b)) & 0xFFFFFFFF
    return h


def rss_input(frame: bytes) -> bytes:
    """The bytes a NIC hashes for an Ethernet frame (see the module docstring)."""
    frame = bytes(frame)
    size = len(frame)
    if size < 14:
        return b""
    ethertype = int.from_bytes(frame[12:14], "big")
    off = 14
    for _ in range(2):
        if ethertype not in _VLAN_TPIDS:
            break
        if size - off < 4:
            return b""
        ethertype = int.from_bytes(frame[off + 2:off + 4], "big")
        off += 4

    if ethertype == 0x0800:
        if size - off < 20 or frame[off] >> 4 != 4:
            return b""
        hlen = (frame[off] & 0x0F) * 4
        if hlen < 20 or size - off < hlen:
            return b""
        addrs = frame[off + 12:off + 20]
        fragment = int.from_bytes(frame[off + 6:off + 8], "big") & 0x3FFF   # MF | offset
        if fragment or frame[off + 9] not in _L4_PORTS:
            return addrs
        off += hlen
        return addrs + frame[off:off + 4] if size - off >= 4 else b""

    if ethertype == 0x86DD:
        if size - off < 40 or frame[off] >> 4 != 6:
            return b""
        addrs = frame[off + 8:off + 40]
        next_header = frame[off + 6]
        off += 40
        while next_header in _IPV6_WALKED or next_header == 44:
            if next_header == 44:
                return addrs if size - off >= 8 else b""
            if size - off < 2:
                return b""
            hlen = (frame[off + 1] + 1) * 8
            if size - off < hlen:
                return b""
            next_header = frame[off]
            off += hlen
        if next_header not in _L4_PORTS:
            return addrs
        return addrs + frame[off:off + 4] if size - off >= 4 else b""
    return b""


def _check_key(key: bytes) -> None:
    if len(key) < KEY_LEN:
        raise ValueError(f"key must be at least {KEY_LEN} bytes, got {len(key)}")


def rss_hash(frame: bytes, key: bytes = SYMMETRIC_KEY) -> int:
    """The frame's RSS hash under key (0 when it has no hash input)."""
    _check_key(key)
    data = rss_input(frame)
    return toeplitz(key, data) if data else 0


def queue_of(h: int, n_queues: int, reta_size: int = RETA_SIZE) -> int:
    """The queue of hash h under DPDK's default table reta[i] = i % n_queues, which the
    NIC indexes with the hash's low bits."""
    if n_queues < 1:
        raise ValueError(f"n_queues must be at least 1, got {n_queues}")
    if reta_size < 1 or reta_size & (reta_size - 1):
        raise ValueError(f"reta_size must be a power of two, got {reta_size}")
    return (h & (reta_size - 1)) % n_queues


# --- classic pcap -----------------------------------------------------------------------

_PCAP_HEADER = 24
_RECORD_HEADER = 16
_MAGICS = {                         # magic bytes -> (struct byte order, nanosecond stamps)
    b"\xd4\xc3\xb2\xa1": ("<", False), b"\xa1\xb2\xc3\xd4": (">", False),
    b"\x4d\x3c\xb2\xa1": ("<", True), b"\xa1\xb2\x3c\x4d": (">", True),
}


def _pcap_format(data: bytes, name: str = "pcap") -> tuple[str, bool]:
    """(byte order, ns stamps) of a classic Ethernet pcap's global header."""
    if len(data) < _PCAP_HEADER:
        raise ValueError(f"{name}: global header must be {_PCAP_HEADER} bytes, "
                         f"got {len(data)}")
    fmt = _MAGICS.get(data[:4])
    if fmt is None:
        raise ValueError(f"{name}: magic must be a1b2c3d4 (us) or a1b23c4d (ns) in either "
                         f"byte order, got {data[:4].hex()}")
    link = struct.unpack_from(fmt[0] + "I", data, 20)[0] & 0xFFFF
    if link != 1:
        raise ValueError(f"{name}: link type must be 1 (Ethernet), got {link}")
    return fmt


def _records(data: bytes, order: str, name: str = "pcap"):
    """(start, end) of each record, header included; ValueError on a truncated one."""
    size, off, count = len(data), _PCAP_HEADER, 0
    header = struct.Struct(order + "I")
    while off < size:
        if size - off < _RECORD_HEADER:
            raise ValueError(f"{name}: record {count} at offset {off}: header must be "
                             f"{_RECORD_HEADER} bytes, got {size - off}")
        incl = header.unpack_from(data, off + 8)[0]
        if size - off - _RECORD_HEADER < incl:
            raise ValueError(f"{name}: record {count} at offset {off}: {incl} captured "
                             f"bytes must follow its header, "
                             f"got {size - off - _RECORD_HEADER}")
        end = off + _RECORD_HEADER + incl
        yield off, end
        off, count = end, count + 1


def _check_n(n: int) -> None:
    if not 1 <= n <= 0xFFFF:
        raise ValueError(f"n must be 1..65535, got {n}")


def split_pcap_py(data: bytes, n: int, key: bytes = SYMMETRIC_KEY) -> list[bytes]:
    """Pure-Python `split_pcap`: the reference the C splitter is tested against."""
    _check_n(n)
    _check_key(key)
    data = bytes(data)
    order, _ = _pcap_format(data)
    parts = [[data[:_PCAP_HEADER]] for _ in range(n)]
    for start, end in _records(data, order):
        queue = queue_of(rss_hash(data[start + _RECORD_HEADER:end], key), n)
        parts[queue].append(data[start:end])
    return [b"".join(part) for part in parts]


def split_pcap(data: bytes, n: int, key: bytes = SYMMETRIC_KEY) -> list[bytes]:
    """Split a classic pcap (either byte order, us or ns stamps) into n pcaps with the same
    global header, each record going, in its original order, to the part of its RSS
    queue. Uses the C splitter when dataplane._rss is built."""
    if _rss is not None:
        return _rss.split(data, n, key)
    return split_pcap_py(data, n, key)


def merge_pcaps(parts: list[bytes]) -> bytes:
    """One classic pcap of every record of parts, in timestamp order; ties keep part order,
    then record order. The output takes parts[0]'s global header and byte order; every
    part must be Ethernet and share parts[0]'s timestamp resolution (us or ns)."""
    if not parts:
        raise ValueError("parts must hold at least one pcap, got none")
    first = bytes(parts[0])
    order0, ns0 = _pcap_format(first, "part 0")
    records = []                        # (timestamp, record bytes in order0)
    for index, part in enumerate(parts):
        name = f"part {index}"
        data = bytes(part)
        order, ns = _pcap_format(data, name)
        if ns != ns0:
            raise ValueError(f"{name}: timestamp resolution must match part 0 "
                             f"({'ns' if ns0 else 'us'}), got {'ns' if ns else 'us'}")
        for start, end in _records(data, order, name):
            fields = struct.unpack_from(order + "IIII", data, start)
            if order == order0:
                record = data[start:end]
            else:                       # rewrite the header in the output's byte order
                record = struct.pack(order0 + "IIII", *fields) + data[start + 16:end]
            records.append((fields[:2], record))
    records.sort(key=itemgetter(0))     # stable: ties stay in part, then record order
    return first[:_PCAP_HEADER] + b"".join(record for _, record in records)
