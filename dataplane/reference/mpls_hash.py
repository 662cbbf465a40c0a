"""Reference of pyx/mpls_hash.pxd: transit hash of a label stack, pseudowire frame hash."""
# docs/mpls.md §8 (transit_key: the bytes the transit hash CRCs: EL, labels, payload
# guess) and §9.3 (pw_flow_key: the inner flow of a frame entering a pseudowire); the
# hash itself is docs/hashing.md's (dataplane/hashing.py).
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Optional

from .. import hashing
from .mpls_input import ELI, FIRST_UNRESERVED, MplsDrop, l2_payload, parse_stack
from .parse import ECHO, ETH_IPV4, ETH_IPV6, ICMP, ICMPV6, SCTP, TCP, UDP


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
    ip_key = hashing.hash_input(family, src, dst, proto, sport, dport, ingress_port, flow_label,
                              mask)
    return TransitKey(f"labels+ipv{family}", key + ip_key, f"ipv{family}")


def transit_hash(region: bytes, *, erld: int, payload_guess: bool, mask: int, seed: int,
                 ingress_port: int = 0) -> int:
    k = transit_key(region, erld=erld, payload_guess=payload_guess, mask=mask,
                    ingress_port=ingress_port)
    return hashing.finalize(hashing.crc(k.key), seed)


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
        return hashing.hash_input(family, src, dst, proto, sport, dport, ingress_port,
                                flow_label, mask)
    return frame[0:14] + bytes(2)


def pw_flow_hash(frame: bytes, mask: int, seed: int, ingress_port: int = 0) -> int:
    return hashing.finalize(hashing.crc(pw_flow_key(frame, mask, ingress_port)), seed)
