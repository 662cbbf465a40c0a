"""MPLS in the reference model, on raw bytes: the contract of docs/mpls.md (SPEC §7, §8).

Every operation the Cython core will implement, in pure Python so that
scapy and tshark can be the independent oracles in tests/test_mpls_reference.py:

    parse_stack            §2   label stack entries up to the bottom, bounds-checked
    process                §4-§5 a received stack through the LFIB: swap, pop (PHP),
                                 pop-lookup, pop-xconnect, explicit null, ELI/EL pairs
    build_stack, push_ip   §6-§7 ingress push, ELI/EL placement under ERLD, TTL/TC
    transit_key            §8   the bytes the transit hash CRCs (EL, labels, payload guess)
    pw_flow_key, pw_encap,
    pw_decap               §9   Ethernet pseudowires, FAT label, control word
    udp_encap, gre_encap,
    overlay_decap          §10  MPLS-over-UDP and MPLS-over-GRE

Drops are raised as MplsDrop(reason); the hash itself is docs/hashing.md's (hashing.py).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

from .. import hashing
from .parse import parse

ETH_IPV4, ETH_IPV6, ETH_MPLS, ETH_MPLS_MC = 0x0800, 0x86DD, 0x8847, 0x8848
VLAN_TPIDS = (0x8100, 0x88A8)

IPV4_NULL, ROUTER_ALERT, IPV6_NULL, IMPLICIT_NULL = 0, 1, 2, 3    # RFC 3032 §2.1
ELI = 7                             # RFC 6790; 14 is the OAM alert label (RFC 3429), not the ELI
FIRST_UNRESERVED = 16

MAX_STACK = 16                      # entries parsed before giving up (`unsupported`)
MAX_PUSH = 16                       # entries one push writes (64 bytes of headroom)
PIPE_TTL = 255                      # pushed TTL under the pipe model (RFC 3443)
PW_TTL = 255                        # transport and PW labels pushed over a frame
FAT_TTL = 1                         # RFC 6391
OUTER_TTL = 64                      # overlay outer IPv4 TTL / IPv6 hop limit
MPLS_UDP_PORT = 6635                # RFC 7510 §3
GRE_PROTO_MPLS = 0x8847             # RFC 4023 §4
IPPROTO_UDP, IPPROTO_GRE = 17, 47
CONTROL_WORD = bytes(4)             # RFC 4385 §3 / RFC 4448 §4.6: nibble 0, flags 0, seq 0

# What docs/mpls.md §3 adds to dataplane/drops.py, and its one counter that is no drop.
MPLS_DROP_REASONS = ("no_lfib_entry", "mpls_ttl_expired")
MPLS_COUNTERS = ("el_not_readable",)

TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
ECHO = {ICMP: (8, 0), ICMPV6: (128, 129)}
IPV6_EXT = (0, 43, 60, 44, 51)


class MplsDrop(Exception):
    """The packet is dropped; args[0] is the named drop reason."""

    @property
    def reason(self) -> str:
        return self.args[0]


def _need(buf: bytes, off: int, n: int, end: Optional[int] = None) -> None:
    if (len(buf) if end is None else end) - off < n:
        raise MplsDrop("truncated")


# ---- §1-§2 label stack entries ------------------------------------------------------

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


def eth_frame(dst_mac: bytes, src_mac: bytes, etype: int, payload: bytes) -> bytes:
    return dst_mac + src_mac + etype.to_bytes(2, "big") + payload


# ---- IP header helpers ---------------------------------------------------------------

def checksum_update(hc: int, old: int, new: int) -> int:
    """RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), as docs/packet-path.md §4.3."""
    s = (~hc & 0xFFFF) + (~old & 0xFFFF) + new
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


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


# ---- §6-§7 push: ELI/EL placement, TTL and TC -----------------------------------------

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


# ---- §4-§5 a received stack through the LFIB ------------------------------------------

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


# ---- §8 transit hashing ---------------------------------------------------------------

def guess_ip(buf: bytes, off: int) -> Optional[tuple]:
    """§8.3: hash fields of an IP header at `off`, read without validating more than the
    lengths it reads (a guess never drops): (family, src, dst, proto, sport, dport,
    flow_label), or None when the bytes cannot be an IP header of that version."""
    if len(buf) - off < 1:
        return None
    version = buf[off] >> 4
    if version == 4:
        ihl = (buf[off] & 0xF) * 4
        if len(buf) - off < 20 or ihl < 20 or len(buf) - off < ihl:
            return None
        proto = buf[off + 9]
        not_fragment = struct.unpack_from("!H", buf, off + 6)[0] & 0x3FFF == 0
        sport, dport = _ports(buf, off + ihl, proto, ICMP) if not_fragment else (0, 0)
        return 4, buf[off + 12:off + 16], buf[off + 16:off + 20], proto, sport, dport, 0
    if version == 6:
        if len(buf) - off < 40:
            return None
        proto = buf[off + 6]
        flow_label = struct.unpack_from("!I", buf, off)[0] & 0xFFFFF
        sport, dport = _ports(buf, off + 40, proto, ICMPV6)
        return 6, buf[off + 8:off + 24], buf[off + 24:off + 40], proto, sport, dport, flow_label
    return None


def _ports(buf: bytes, l4: int, proto: int, icmp: int) -> tuple[int, int]:
    if proto in (TCP, UDP, SCTP) and len(buf) - l4 >= 4:
        return struct.unpack_from("!HH", buf, l4)
    if proto == icmp and len(buf) - l4 >= 6 and buf[l4] in ECHO[icmp]:
        echo_id = struct.unpack_from("!H", buf, l4 + 4)[0]
        return echo_id, echo_id
    return 0, 0


@dataclass
class TransitKey:
    kind: str           # el | labels | labels+ipv4 | labels+ipv6
    key: bytes          # what the CRC runs over
    payload: str        # the guess: ipv4 ipv6 cw other short unreadable off (or el)


def _label_word(label: int) -> bytes:
    return label.to_bytes(4, "big")             # 20 bits right-aligned, like the flow label


def transit_key(region: bytes, *, erld: int, payload_guess: bool, mask: int,
                ingress_port: int = 0) -> TransitKey:
    """§8: the key of a labelled packet forwarded through a group, from the stack as
    received. The group's field mask selects the guessed IP fields only."""
    stack, payload = parse_stack(region)
    readable = stack[:erld]
    for i, e in enumerate(readable[:-1]):       # the EL too must be within erld
        if e.label == ELI:
            return TransitKey("el", _label_word(readable[i + 1].label), "el")
    key = b"".join(_label_word(e.label) for e in readable if e.label >= FIRST_UNRESERVED)
    if not payload_guess:
        return TransitKey("labels", key, "off")
    if len(stack) > erld:                       # the bottom is beyond the readable depth
        return TransitKey("labels", key, "unreadable")
    if len(region) - payload < 1:
        return TransitKey("labels", key, "short")
    nibble = region[payload] >> 4
    if nibble not in (4, 6):
        return TransitKey("labels", key, "cw" if nibble == 0 else "other")
    fields = guess_ip(region, payload)
    if fields is None:
        return TransitKey("labels", key, "short")
    family, src, dst, proto, sport, dport, flow_label = fields
    ip_key = hashing.hash_key(family, src, dst, proto, sport, dport, ingress_port, flow_label,
                              mask)
    return TransitKey(f"labels+ipv{family}", key + ip_key, f"ipv{family}")


def transit_hash(region: bytes, *, erld: int, payload_guess: bool, mask: int, seed: int,
                 ingress_port: int = 0) -> int:
    k = transit_key(region, erld=erld, payload_guess=payload_guess, mask=mask,
                    ingress_port=ingress_port)
    return hashing.finalize(hashing.crc(k.key), seed)


# ---- §9 Ethernet pseudowires ------------------------------------------------------------

def pw_flow_key(frame: bytes, mask: int, ingress_port: int = 0) -> bytes:
    """§9.3: the inner flow's key for the FAT label (and EL): the IP key of docs/hashing.md
    when the frame carries IPv4/IPv6 (after at most two VLAN tags), else the 16-byte MAC
    key dst MAC | src MAC | EtherType at offset 12 | 00 00."""
    try:
        etype, off = l2_payload(frame)
    except MplsDrop:
        etype, off = 0, 0
    want = {ETH_IPV4: 4, ETH_IPV6: 6}.get(etype)
    fields = guess_ip(frame, off) if want else None
    if fields is not None and fields[0] == want:
        family, src, dst, proto, sport, dport, flow_label = fields
        return hashing.hash_key(family, src, dst, proto, sport, dport, ingress_port,
                                flow_label, mask)
    return frame[0:14] + bytes(2)


def pw_flow_hash(frame: bytes, mask: int, seed: int, ingress_port: int = 0) -> int:
    return hashing.finalize(hashing.crc(pw_flow_key(frame, mask, ingress_port)), seed)


def pw_encap(frame: bytes, transport: Sequence[int], pw_label: int, *, fat: bool,
             control_word: bool, h: int, entropy: bool = False, erld: int = 8) -> PushResult:
    """§9.1: [transport][ELI EL if entropy][PW label][FAT label if fat][CW if control_word]
    frame. TTL 255 on transport and PW labels, FAT TTL 1, TC 0; FAT = EL =
    entropy_label(h), h the inner flow hash. A frame under 14 bytes is `truncated`."""
    _need(frame, 0, 14)
    label = hashing.entropy_label(h)
    service = [pw_label] + ([label] if fat else [])
    pushed = build_stack(transport, service, tc=0, ttl=PW_TTL, entropy=entropy, erld=erld,
                         el=label)
    if fat:                                     # the bottom entry: TTL 1, not 255
        last = pushed.stack[-1]
        pushed.stack[-1] = Lse(last.label, last.tc, 1, FAT_TTL)
    return PushResult(pushed.pack() + (CONTROL_WORD if control_word else b"") + frame,
                      pushed.el_readable)


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


# ---- §10 overlays -------------------------------------------------------------------------

def _addr(a) -> bytes:
    return a if isinstance(a, bytes) else ipaddress.ip_address(a).packed


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
