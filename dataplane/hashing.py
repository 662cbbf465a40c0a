"""The flow hash contract (docs/hashing.md), in pure Python: the reference for pyx/hashing.pxd.

    key   = src | dst | proto | 0 | sport | dport | ingress_port [| flow_label]   (network order)
            addresses 4 bytes (IPv4, key 16 bytes) or 16 bytes (IPv6, key 44 bytes);
            unselected fields are zero; `symmetric` orders the (address, port) pairs first
    crc   = CRC32-C register over key from 0xFFFFFFFF, no final XOR   (= rte_hash_crc)
    hash  = fmix32(crc ^ seed)                                        (murmur3 finalizer)
    bucket = (hash * n_buckets) >> 32
"""
from __future__ import annotations

from dataclasses import dataclass

from .crc32c import crc32c_raw

FIELD_BITS = {"src_ip": 1, "dst_ip": 2, "proto": 4, "src_port": 8, "dst_port": 16,
              "flow_label": 32, "ingress_port": 64}
SYMMETRIC = 128
L3_FIELDS = 1 | 2 | 4
M32 = 0xFFFFFFFF


def field_mask(fields, symmetric: bool = False) -> int:
    m = 0
    for f in fields:
        m |= FIELD_BITS[f]
    return m | (SYMMETRIC if symmetric else 0)


def fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def hash_input(family: int, src: bytes, dst: bytes, proto: int, sport: int, dport: int,
             ingress: int, flow_label: int, mask: int) -> bytes:
    """The key bytes the CRC runs over."""
    alen = 4 if family == 4 else 16
    if mask & SYMMETRIC and (src > dst or (src == dst and sport > dport)):
        src, dst, sport, dport = dst, src, dport, sport
    z = bytes(alen)
    key = bytearray((src if mask & 1 else z) + (dst if mask & 2 else z))
    key += bytes([proto if mask & 4 else 0, 0])
    key += (sport if mask & 8 else 0).to_bytes(2, "big")
    key += (dport if mask & 16 else 0).to_bytes(2, "big")
    key += (ingress if mask & 64 else 0).to_bytes(2, "big")
    if family == 6:
        key += (flow_label if mask & 32 else 0).to_bytes(4, "big")
    return bytes(key)


def crc(key: bytes) -> int:
    return crc32c_raw(key, M32)


def finalize(crc_value: int, seed: int) -> int:
    return fmix32(crc_value ^ (seed & M32))


def bucket_of(h: int, n: int) -> int:
    return (h * n) >> 32


def entropy_label(h: int) -> int:
    """RFC 6790 entropy label (and RFC 6391 FAT label): never a reserved label."""
    return 16 + h % ((1 << 20) - 16)


def udp_source_port(h: int) -> int:
    """MPLS-over-UDP source port (RFC 7510): the dynamic range."""
    return 49152 + h % 16384


@dataclass
class Explained:
    key: bytes
    crc: int
    hash: int


def explain(family, src, dst, proto, sport, dport, ingress, flow_label, mask, seed):
    key = hash_input(family, src, dst, proto, sport, dport, ingress, flow_label, mask)
    c = crc(key)
    return Explained(key, c, finalize(c, seed))


def flow_hash(family, src, dst, proto, sport, dport, ingress, flow_label, mask, seed) -> int:
    return explain(family, src, dst, proto, sport, dport, ingress, flow_label, mask,
                   seed).hash
