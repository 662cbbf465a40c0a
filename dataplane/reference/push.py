"""Reference of pyx/push.pxd: label stack push (ELI/EL, TTL, TC), overlay outer header."""
# docs/mpls.md §6-§7 (build_stack, push_ip: ingress push, ELI/EL placement under ERLD,
# TTL/TC) and §10.1 (udp_encap, gre_encap: MPLS-over-UDP and MPLS-over-GRE).
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

from .. import hashing
from .mpls_input import (ELI, GRE_PROTO_MPLS, IPPROTO_GRE, IPPROTO_UDP, MPLS_UDP_PORT, Lse,
                         MplsDrop, _addr, ip_ttl, pack_stack, set_ip_ttl)

MAX_PUSH = 16                       # entries one push writes (64 bytes of headroom)
PIPE_TTL = 255                      # pushed TTL under the pipe model (RFC 3443)
OUTER_TTL = 64                      # overlay outer IPv4 TTL / IPv6 hop limit


# ---- IP header helpers ---------------------------------------------------------------

def ip_packet_length(ip: bytes) -> int:
    """The IP packet's own length, without the Ethernet padding that may follow it:
    IPv4 total length, IPv6 40 + payload length (§10: an overlay does not carry padding)."""
    if ip[0] >> 4 == 4:
        return struct.unpack_from("!H", ip, 2)[0]
    return 40 + struct.unpack_from("!H", ip, 4)[0]


def ip_precedence(ip: bytes) -> int:
    """The TC pushed over an IP packet: the top 3 bits of the TOS / traffic class."""
    tos = ip[1] if ip[0] >> 4 == 4 else (ip[0] & 0xF) << 4 | ip[1] >> 4
    return tos >> 5


def ipv4_checksum(header: bytes) -> int:
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


# ---- §6-§7 push: ELI/EL placement, TTL and TC ----------------------------------------

def el_pair_index(n_transport: int, erld: int) -> tuple[int, bool]:
    """§7: the number k of transport labels above the ELI/EL pair, and whether the EL
    (at position k + 2) is within the first `erld` labels. Directly below the transport
    labels when that is readable, else as deep as readable (k = erld - 2), never above
    the first transport label; when nothing is readable, below the transport labels."""
    k = min(n_transport, erld - 2)
    if k >= 1:
        return k, True
    return n_transport, False


@dataclass
class Pushed:
    stack: list[Lse]
    el_readable: bool = True        # False: count el_not_readable (never a drop)

    def pack(self) -> bytes:
        return pack_stack(self.stack)


def build_stack(transport: Sequence[int], service: Sequence[int] = (), *, tc: int, ttl: int,
                entropy: bool = False, erld: int = 8, el: int = 0) -> Pushed:
    """The entries one push writes, outermost first; the last has S=1. ELI and EL carry
    TTL 0 and the same TC as the labels around them (RFC 6790 §4.2)."""
    entries = [Lse(x, tc, 0, ttl) for x in [*transport, *service]]
    readable = True
    if entropy:
        if not transport:                       # the ELI would be the top label
            raise ValueError("entropy needs at least one transport label")
        k, readable = el_pair_index(len(transport), erld)
        entries[k:k] = [Lse(ELI, tc, 0, 0), Lse(el, tc, 0, 0)]
    last = entries[-1]
    entries[-1] = Lse(last.label, last.tc, 1, last.ttl)
    if len(entries) > MAX_PUSH:
        raise ValueError(f"a push writes at most {MAX_PUSH} entries, got {len(entries)}")
    return Pushed(entries, readable)


@dataclass
class PushResult:
    data: bytes                     # label stack + IP packet (the MPLS frame's payload)
    el_readable: bool


def push_ip(ip: bytes, transport: Sequence[int], service: Sequence[int] = (), *, h: int,
            entropy: bool = False, erld: int = 8, ttl_model: str = "uniform") -> PushResult:
    """§7: an IP packet routed via a labelled next hop. The IP hop happens first (TTL <= 1
    is the IP path's `ttl_expired`; TTL - 1 with the incremental checksum), then the
    labels: TTL = the new IP TTL (uniform) or 255 (pipe), TC = IP precedence,
    EL = entropy_label(h)."""
    if ip_ttl(ip) <= 1:
        raise MplsDrop("ttl_expired")
    ip = set_ip_ttl(ip, ip_ttl(ip) - 1)
    ttl = ip_ttl(ip) if ttl_model == "uniform" else PIPE_TTL
    pushed = build_stack(transport, service, tc=ip_precedence(ip), ttl=ttl, entropy=entropy,
                         erld=erld, el=hashing.entropy_label(h))
    return PushResult(pushed.pack() + ip, pushed.el_readable)


# ---- §10.1 overlays ------------------------------------------------------------------

def outer_ip(src, dst, proto: int, payload: bytes, *, tc: int, h: int) -> bytes:
    """§10.1: IPv4 (DF, id 0, TTL 64, checksum) or IPv6 (hop limit 64, flow label from
    the hash) toward the remote endpoint; DSCP = TC << 3 (class selector), ECN 0."""
    src, dst = _addr(src), _addr(dst)
    if len(src) == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, tc << 5, 20 + len(payload), 0, 0x4000,
                             OUTER_TTL, proto, 0, src, dst)
        return header[:10] + ipv4_checksum(header).to_bytes(2, "big") + header[12:] + payload
    word = 6 << 28 | (tc << 5) << 20 | (h & 0xFFFFF)
    return struct.pack("!IHBB16s16s", word, len(payload), proto, OUTER_TTL, src, dst) + payload


def udp6_checksum(src: bytes, dst: bytes, udp: bytes) -> int:
    """RFC 8200 §8.1 pseudo-header checksum; a result of 0 is sent as 0xFFFF (RFC 768)."""
    data = src + dst + struct.pack("!IxxxB", len(udp), IPPROTO_UDP) + udp
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s & 0xFFFF) or 0xFFFF


def udp_encap(region: bytes, src, dst, *, h: int) -> bytes:
    """§10.1 MPLS-over-UDP (RFC 7510): source port 49152 + h mod 16384, destination 6635,
    checksum 0 over IPv4, computed over IPv6. `region`: label stack + payload."""
    src, dst = _addr(src), _addr(dst)
    udp = struct.pack("!HHHH", hashing.udp_source_port(h), MPLS_UDP_PORT, 8 + len(region), 0)
    udp += region
    if len(src) == 16:
        udp = udp[:6] + udp6_checksum(src, dst, udp).to_bytes(2, "big") + udp[8:]
    return outer_ip(src, dst, IPPROTO_UDP, udp, tc=Lse.unpack(region).tc, h=h)


def gre_encap(region: bytes, src, dst, *, h: int) -> bytes:
    """§10.1 MPLS-over-GRE (RFC 4023 §4): a 4-byte GRE header, no flags, version 0,
    protocol 0x8847."""
    gre = struct.pack("!HH", 0, GRE_PROTO_MPLS) + region
    return outer_ip(src, dst, IPPROTO_GRE, gre, tc=Lse.unpack(region).tc, h=h)
