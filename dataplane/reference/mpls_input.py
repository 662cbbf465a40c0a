"""Reference of pyx/mpls_input.pxd: label stacks through the LFIB, overlay decap."""
# docs/mpls.md §1-§6, §9.2, §10.2 (SPEC §7, §8) on raw bytes, so that scapy and tshark can
# be the independent oracles in tests/test_mpls_reference.py:
#     parse_stack      §2    label stack entries up to the bottom, bounds-checked
#     process          §4-§5 a received stack through the LFIB: swap, pop (PHP),
#                            pop-lookup, pop-xconnect, explicit null, ELI/EL pairs
#     pw_decap         §9.2  below a pseudowire label: FAT label, control word, frame
#     overlay_decap    §10.2 the label region inside MPLS-over-UDP / MPLS-over-GRE
# Drops are raised as MplsDrop(reason). The label values and overlay constants the other
# MPLS stages share live here, as they do in pyx/mpls_input.pxd.
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .parse import IPV6_EXT, VLAN_TPIDS, parse
from .rewrite import checksum_update

ETH_MPLS, ETH_MPLS_MC = 0x8847, 0x8848

IPV4_NULL, ROUTER_ALERT, IPV6_NULL, IMPLICIT_NULL = 0, 1, 2, 3    # RFC 3032 §2.1
ELI = 7                             # RFC 6790; 14 is the OAM alert label (RFC 3429), not the ELI
FIRST_UNRESERVED = 16

MAX_STACK = 16                      # entries parsed before giving up (`unsupported`)
MPLS_UDP_PORT = 6635                # RFC 7510 §3
GRE_PROTO_MPLS = 0x8847             # RFC 4023 §4
IPPROTO_UDP, IPPROTO_GRE = 17, 47

# What docs/mpls.md §3 adds to dataplane/drops.py, and its one counter that is no drop.
MPLS_DROP_REASONS = ("no_lfib_entry", "mpls_ttl_expired")
MPLS_COUNTERS = ("el_not_readable",)


class MplsDrop(Exception):
    """The packet is dropped; args[0] is the named drop reason."""

    @property
    def reason(self) -> str:
        return self.args[0]


def _need(buf: bytes, off: int, n: int, end: Optional[int] = None) -> None:
    if (len(buf) if end is None else end) - off < n:
        raise MplsDrop("truncated")


# ---- §1-§2 label stack entries -------------------------------------------------------

@dataclass(frozen=True)
class Lse:
    """One label stack entry, RFC 3032 §2.1 (TC per RFC 5462): label:20 tc:3 s:1 ttl:8."""
    label: int
    tc: int = 0
    s: int = 0
    ttl: int = 0

    def pack(self) -> bytes:
        return struct.pack("!I", self.label << 12 | self.tc << 9 | self.s << 8 | self.ttl)

    @classmethod
    def unpack(cls, buf: bytes, off: int = 0) -> "Lse":
        w = struct.unpack_from("!I", buf, off)[0]
        return cls(w >> 12, w >> 9 & 7, w >> 8 & 1, w & 0xFF)


def pack_stack(entries: Sequence[Lse]) -> bytes:
    return b"".join(e.pack() for e in entries)


def parse_stack(buf: bytes, off: int = 0, end: Optional[int] = None) -> tuple[list[Lse], int]:
    """§2: entries from `off` down to the first with S=1; returns them and the payload
    offset. 4 bytes per entry (`truncated`), at most MAX_STACK (`unsupported`), an ELI
    with S=1 has no EL below it (`parse_error`)."""
    stack: list[Lse] = []
    while True:
        if len(stack) == MAX_STACK:
            raise MplsDrop("unsupported")
        _need(buf, off, 4, end)
        e = Lse.unpack(buf, off)
        off += 4
        stack.append(e)
        if e.label == ELI and e.s:
            raise MplsDrop("parse_error")
        if e.s:
            return stack, off


def l2_payload(frame: bytes) -> tuple[int, int]:
    """docs/packet-path.md §1: (EtherType, offset) after at most two VLAN tags."""
    _need(frame, 0, 14)
    etype, off = struct.unpack_from("!H", frame, 12)[0], 14
    for tags in range(3):
        if etype not in VLAN_TPIDS:
            break
        if tags == 2:
            raise MplsDrop("unsupported")
        _need(frame, off, 4)
        etype, off = struct.unpack_from("!H", frame, off + 2)[0], off + 4
    return etype, off


# ---- IP header helpers ---------------------------------------------------------------

def set_ip_ttl(ip: bytes, ttl: int) -> bytes:
    """IPv4 TTL (checksum updated incrementally over the TTL|protocol word) or IPv6 hop
    limit; everything else, padding included, unchanged."""
    b = bytearray(ip)
    if b[0] >> 4 == 4:
        old = b[8] << 8 | b[9]
        b[8] = ttl
        hc = checksum_update(b[10] << 8 | b[11], old, b[8] << 8 | b[9])
        b[10:12] = hc.to_bytes(2, "big")
    else:
        b[7] = ttl
    return bytes(b)


def ip_ttl(ip: bytes) -> int:
    return ip[8] if ip[0] >> 4 == 4 else ip[7]


# ---- §4-§5 a received stack through the LFIB -----------------------------------------

@dataclass(frozen=True)
class LfibEntry:
    """One LFIB entry (config `mpls.lfib[]`), as the packet path needs it."""
    action: str                         # swap | pop | pop-lookup | pop-xconnect
    labels: tuple[int, ...] = ()        # swap: written in place of the top label
    vrf: Optional[int] = None           # pop-lookup: the VRF index
    control_word: bool = False          # pop-xconnect: the pseudowire's control_word
    name: str = ""                      # the `via`, VRF or pseudowire, for messages


EXPLICIT_NULL = LfibEntry("pop", name="explicit-null")


@dataclass
class Result:
    """What a received stack becomes (§4). kind:
    mpls  swap: `data` is the new label region, forward it via `entry` (transit hash §8)
    ip    `data` is the IP packet, routed in VRF `vrf` (None: the ingress port's VRF)
    pw    `data` is the Ethernet frame for the pseudowire's attachment circuit"""
    kind: str
    data: bytes
    entry: Optional[LfibEntry]
    vrf: Optional[int] = None
    ttl: int = 0                        # the TTL the packet leaves with (W, §6)
    fat: Optional[int] = None           # pw: the FAT label removed, if any


def _skip_pairs(stack: list[Lse], i: int) -> int:
    """ELI+EL pairs are popped together wherever processing reaches them (RFC 6790 §4.1)."""
    while i < len(stack) and stack[i].label == ELI:
        i += 2
    return i


def _next_ttl(w: Optional[int], ttl: int, ttl_model: str) -> int:
    """§6: W after reading one more TTL. Uniform keeps the lowest; pipe takes the new one."""
    t = ttl - 1
    w = t if w is None or ttl_model == "pipe" else min(w, t)
    if w < 1:
        raise MplsDrop("mpls_ttl_expired")
    return w


def _to_ip(region: bytes, off: int, w: Optional[int], ttl_model: str,
           entry: Optional[LfibEntry], vrf: Optional[int]) -> Result:
    _need(region, off, 1)
    version = region[off] >> 4
    if version not in (4, 6):
        raise MplsDrop("parse_error")
    _need(region, off, 20 if version == 4 else 40)
    ip = region[off:]
    w = _next_ttl(w, ip_ttl(ip), ttl_model)
    return Result("ip", set_ip_ttl(ip, w), entry, vrf, w)


def process(region: bytes, lfib: Mapping[int, LfibEntry], ttl_model: str = "uniform"
            ) -> Result:
    """§4: the label region (stack + payload, from the first entry to the end of the
    frame or of the overlay's IP payload) through the LFIB. Raises MplsDrop."""
    stack, payload = parse_stack(region)
    i, w, entry = 0, None, None
    while True:
        i = _skip_pairs(stack, i)
        if i == len(stack):                         # popped down to the payload
            return _to_ip(region, payload, w, ttl_model, entry, None)
        top = stack[i]
        if top.label < FIRST_UNRESERVED and top.label not in (IPV4_NULL, IPV6_NULL):
            raise MplsDrop("unsupported")
        w = _next_ttl(w, top.ttl, ttl_model)
        if top.label < FIRST_UNRESERVED:
            entry = EXPLICIT_NULL
        else:
            entry = lfib.get(top.label)
            if entry is None:
                raise MplsDrop("no_lfib_entry")
        if entry.action == "swap":
            new = [Lse(x, top.tc, 0, w) for x in entry.labels]
            new[-1] = Lse(new[-1].label, top.tc, top.s, w)
            return Result("mpls", pack_stack(new) + region[4 * (i + 1):], entry, ttl=w)
        i += 1
        if entry.action == "pop":
            continue
        if entry.action == "pop-lookup":
            if _skip_pairs(stack, i) != len(stack):
                raise MplsDrop("unsupported")
            return _to_ip(region, payload, w, ttl_model, entry, entry.vrf)
        if entry.action == "pop-xconnect":
            frame, fat = _below_pw(region, stack, i, payload, entry.control_word)
            return Result("pw", frame, entry, ttl=w, fat=fat)
        raise ValueError(f"unknown LFIB action {entry.action!r}")


def swap(region: bytes, labels: Sequence[int], ttl_model: str = "uniform") -> bytes:
    """§5 swap: process() with an LFIB whose entry for the top label is `swap labels`."""
    stack, _ = parse_stack(region)
    top = stack[_skip_pairs(stack, 0)].label
    return process(region, {top: LfibEntry("swap", tuple(labels))}, ttl_model).data


def pop(region: bytes, ttl_model: str = "uniform") -> Result:
    """§5 pop (PHP) of the top label: process() with an LFIB entry `pop` for it."""
    stack, _ = parse_stack(region)
    top = stack[_skip_pairs(stack, 0)].label
    return process(region, {top: LfibEntry("pop")}, ttl_model)


# ---- §9.2 pseudowire decap -----------------------------------------------------------

def pw_decap(region: bytes, control_word: bool) -> tuple[int, Optional[int], bytes]:
    """§9.2 on a region whose top entry (after any ELI/EL pair) is the PW label:
    (PW label, FAT label or None, the frame). No TTL rule: process() applies those."""
    stack, payload = parse_stack(region)
    i = _skip_pairs(stack, 0)
    frame, fat = _below_pw(region, stack, i + 1, payload, control_word)
    return stack[i].label, fat, frame


def _below_pw(region: bytes, stack: list[Lse], i: int, payload: int, control_word: bool
              ) -> tuple[bytes, Optional[int]]:
    """Below the PW label (stack[i - 1]): ELI/EL pairs are popped, then at most one more
    entry, the bottom one, is the FAT label; then the control word when the pseudowire
    has one (first nibble 0; 1 is an ACH, `unsupported`); then the frame."""
    i = _skip_pairs(stack, i)
    fat = None
    if i < len(stack):
        if i != len(stack) - 1:
            raise MplsDrop("unsupported")
        fat = stack[i].label
    off = payload
    if control_word:
        _need(region, off, 4)
        nibble = region[off] >> 4
        if nibble == 1:
            raise MplsDrop("unsupported")
        if nibble != 0:
            raise MplsDrop("parse_error")
        off += 4
    _need(region, off, 14)
    return region[off:], fat


# ---- §10.2 overlay decap -------------------------------------------------------------

def _addr(a) -> bytes:
    return a if isinstance(a, bytes) else ipaddress.ip_address(a).packed


def overlay_decap(frame: bytes, tunnel_address) -> Optional[bytes]:
    """§10.2: the label region inside a frame addressed to the node's tunnel address, or
    None when the frame is not for the node (it is routed as any IP packet). The outer
    packet is parsed as docs/packet-path.md §1-§3 (its drops apply, not its TTL check);
    the region ends where the outer IP payload ends (Ethernet padding excluded)."""
    p = parse(frame)
    if p.drop not in (None, "ttl_expired"):
        raise MplsDrop(p.drop)
    if p.dst != _addr(tunnel_address):
        return None
    if p.is_fragment:
        raise MplsDrop("unsupported")
    if p.family == 4:
        l4 = p.l3 + (frame[p.l3] & 0xF) * 4
        end = p.l3 + struct.unpack_from("!H", frame, p.l3 + 2)[0]
    else:
        end = p.l3 + 40 + struct.unpack_from("!H", frame, p.l3 + 4)[0]
        l4, nh = p.l3 + 40, frame[p.l3 + 6]
        while nh in IPV6_EXT:                   # already walked once by parse()
            size = 8 if nh == 44 else (frame[l4 + 1] + 2) * 4 if nh == 51 else \
                (frame[l4 + 1] + 1) * 8
            nh, l4 = frame[l4], l4 + size
    if p.proto == IPPROTO_UDP and p.dport == MPLS_UDP_PORT:
        return frame[l4 + 8:end]
    if p.proto == IPPROTO_GRE:
        _need(frame, l4, 4, end)
        flags, proto = struct.unpack_from("!HH", frame, l4)
        if flags & ~0xB000 or proto != GRE_PROTO_MPLS:      # only C, K, S; version 0
            raise MplsDrop("unsupported")
        size = 4 + 4 * bin(flags & 0xB000).count("1")
        _need(frame, l4, size, end)
        return frame[l4 + size:end]
    raise MplsDrop("unsupported")
