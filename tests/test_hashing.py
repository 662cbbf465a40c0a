"""The flow hash contract (docs/hashing.md, SPEC §3): published vectors, the documented
vector table, and the C hash of the packet path (dataplane._hashing, DPDK rte_hash_crc)
against the pure-Python reference (dataplane.hashing) on random inputs."""
from __future__ import annotations

import ipaddress
import random
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from dataplane import _hashing as C
from dataplane import hashing as P
from dataplane.crc32c import crc32c, crc32c_raw

ROOT = Path(__file__).resolve().parent.parent
M32 = 0xFFFFFFFF
FIVE_TUPLE = ["src_ip", "dst_ip", "proto", "src_port", "dst_port"]
ALL_MASKS = range(256)              # every combination of the 7 field bits and symmetric


# --- CRC32-C: published check values ------------------------------------------------

def c_crc32c(data: bytes) -> int:
    """The standard CRC32-C from the C path: rte_hash_crc from ~0, then the final XOR."""
    return C.crc32c_raw(data, M32) ^ M32


# RFC 3720 (iSCSI) appendix B.4, CRC32-C of 32- and 48-byte messages
RFC3720_B4 = [
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (bytes.fromhex("01c00000000000000000000000000000"
                   "14000000000004000000001400000018"
                   "28000000000000000200000000000000"), 0xD9963A56),
]


def test_check_value_both_implementations():
    assert crc32c(b"123456789") == 0xE3069283
    assert c_crc32c(b"123456789") == 0xE3069283
    assert zlib.crc32(b"123456789") == 0xCBF43926      # a different CRC, not ours


@pytest.mark.parametrize("data,expected", RFC3720_B4)
def test_rfc3720_vectors(data, expected):
    assert crc32c(data) == expected
    assert c_crc32c(data) == expected


def test_raw_register_is_rte_hash_crc():
    """crc32c_raw: the register from the caller's init, no final XOR (rte_hash_crc)."""
    assert crc32c_raw(b"", 0x12345678) == 0x12345678
    assert C.crc32c_raw(b"", 0x12345678) == 0x12345678
    assert crc32c_raw(b"123456789", M32) == 0xE3069283 ^ M32


def test_c_crc_matches_software_crc_on_random_data():
    """DPDK's SSE4.2 / 8-4-2-1 byte paths against the table-driven CRC, every length
    0..80 and random initial values (like DPDK's own hash_crc equivalence test)."""
    rng = random.Random(3720)
    for length in range(81):
        for _ in range(12):
            data = rng.randbytes(length)
            init = rng.getrandbits(32)
            assert C.crc32c_raw(data, init) == crc32c_raw(data, init), (length, data, init)


# --- fmix32: the murmur3 finalizer, checked through published MurmurHash3 vectors ----

def murmur3_x86_32(data: bytes, seed: int) -> int:
    """MurmurHash3_x86_32 with the project's fmix32 as its last step."""
    c1, c2 = 0xCC9E2D51, 0x1B873593

    def rotl(x, r):
        return ((x << r) | (x >> (32 - r))) & M32

    h = seed
    body = len(data) // 4 * 4
    for i in range(0, body, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = rotl(k * c1 & M32, 15) * c2 & M32
        h = (rotl(h ^ k, 13) * 5 + 0xE6546B64) & M32
    tail = data[body:]
    if tail:
        k = int.from_bytes(tail, "little")
        h ^= rotl(k * c1 & M32, 15) * c2 & M32
    return P.fmix32(h ^ len(data))


# Published MurmurHash3_x86_32 test vectors (SMHasher / widely reproduced)
MURMUR3_VECTORS = [
    (b"", 0, 0x00000000),
    (b"", 1, 0x514E28B7),
    (b"", 0xFFFFFFFF, 0x81F16F39),
    (b"\0\0\0\0", 0, 0x2362F9DE),
    (b"aaaa", 0x9747B28C, 0x5A97808A),
    (b"abc", 0, 0xB3DD93FA),
    (b"Hello, world!", 0x9747B28C, 0x24884CBA),
    (b"The quick brown fox jumps over the lazy dog", 0x9747B28C, 0x2FA826CD),
]

# For an empty input murmur3 is fmix32(seed): these are fmix32's own known values.
FMIX32_KNOWN = {0x00000000: 0x00000000, 0x00000001: 0x514E28B7, 0xFFFFFFFF: 0x81F16F39}


@pytest.mark.parametrize("data,seed,expected", MURMUR3_VECTORS)
def test_fmix32_through_murmur3_vectors(data, seed, expected):
    assert murmur3_x86_32(data, seed) == expected


def c_fmix32(x: int) -> int:
    """The C finalizer, reached through explain(): hash = fmix32(crc ^ seed), so a seed of
    crc ^ x makes the C path return fmix32(x)."""
    a = bytes([10, 0, 0, 1])
    _, crc, _ = C.explain(4, a, a, 6, 1, 2, 0, 0, 31, 0)
    return C.explain(4, a, a, 6, 1, 2, 0, 0, 31, crc ^ x)[2]


@pytest.mark.parametrize("x,expected", sorted(FMIX32_KNOWN.items()))
def test_fmix32_known_values_both_implementations(x, expected):
    assert P.fmix32(x) == expected
    assert c_fmix32(x) == expected


def test_fmix32_c_matches_python_on_random_values():
    rng = random.Random(32)
    for _ in range(500):
        x = rng.getrandbits(32)
        assert c_fmix32(x) == P.fmix32(x)


def test_fmix32_is_a_bijection_on_a_sample():
    xs = np.random.default_rng(5).integers(0, 1 << 32, 20000, dtype=np.uint64)
    assert len({P.fmix32(int(x)) for x in xs}) == len(set(xs.tolist()))


# --- key layout: an independent construction with struct ------------------------------

def oracle_key(family, src, dst, proto, sport, dport, ingress, flow_label, mask) -> bytes:
    """docs/hashing.md "Key layout", built with struct rather than field by field."""
    if mask & P.SYMMETRIC and (src, sport) > (dst, dport):
        src, dst, sport, dport = dst, src, dport, sport
    zero = bytes(len(src))

    def sel(bit, value, default):
        return value if mask & bit else default

    key = (sel(1, src, zero) + sel(2, dst, zero) +
           struct.pack("!BBHHH", sel(4, proto, 0), 0, sel(8, sport, 0), sel(16, dport, 0),
                       sel(64, ingress, 0)))
    if family == 6:
        key += struct.pack("!I", sel(32, flow_label, 0))
    return key


def random_tuple(rng: random.Random, family: int):
    alen = 4 if family == 4 else 16
    src = rng.randbytes(alen)
    r = rng.random()
    if r < 0.15:
        dst = src                                  # equal addresses: ports decide order
    elif r < 0.3:
        dst = src[:-1] + bytes([rng.getrandbits(8)])   # differ in the last byte only
    else:
        dst = rng.randbytes(alen)
    sport = rng.getrandbits(16)
    dport = sport if rng.random() < 0.05 else rng.getrandbits(16)
    return (family, src, dst, rng.choice([1, 6, 17, 58, 132, rng.getrandbits(8)]), sport,
            dport, rng.getrandbits(16), rng.getrandbits(20))


def test_key_lengths_and_field_bits():
    assert P.FIELD_BITS == {"src_ip": 1, "dst_ip": 2, "proto": 4, "src_port": 8,
                            "dst_port": 16, "flow_label": 32, "ingress_port": 64}
    assert P.SYMMETRIC == 128
    assert P.field_mask(FIVE_TUPLE) == 0x1F
    assert P.field_mask(FIVE_TUPLE, symmetric=True) == 0x9F
    v4 = (bytes(4), bytes(4))
    v6 = (bytes(16), bytes(16))
    for mask in (0, 0xFF):
        assert len(C.key_bytes(4, *v4, 6, 1, 2, 3, 4, mask)) == 16
        assert len(C.key_bytes(6, *v6, 6, 1, 2, 3, 4, mask)) == 44
    with pytest.raises(ValueError):
        C.key_bytes(4, bytes(16), bytes(16), 6, 1, 2, 3, 4, 0x1F)


def test_ipv4_key_ignores_flow_label():
    """IPv4 has no flow label: the bit selects nothing and the key stays 16 bytes."""
    a, b = bytes([1, 2, 3, 4]), bytes([5, 6, 7, 8])
    for impl in (C.key_bytes, P.hash_input):
        assert impl(4, a, b, 6, 1, 2, 3, 0xABCDE, 0xFF) == impl(4, a, b, 6, 1, 2, 3, 0, 0xFF)


@pytest.mark.parametrize("family", [4, 6])
def test_key_layout_every_mask_both_implementations(family):
    rng = random.Random(family)
    for mask in ALL_MASKS:
        for _ in range(8):
            t = random_tuple(rng, family)
            want = oracle_key(*t, mask)
            assert P.hash_input(*t, mask) == want, (t, mask)
            assert C.key_bytes(*t, mask) == want, (t, mask)


# --- C against the reference on random inputs ----------------------------------------

@pytest.mark.parametrize("family", [4, 6])
def test_explain_c_matches_reference_random(family):
    """Key, CRC and finalized hash: thousands of random tuples, every field mask (with and
    without symmetric), random seeds."""
    rng = random.Random(100 + family)
    n = 0
    for mask in ALL_MASKS:
        for _ in range(10):
            t = random_tuple(rng, family)
            seed = rng.getrandbits(32)
            key, crc, h = C.explain(*t, mask, seed)
            ref = P.explain(*t, mask, seed)
            assert (key, crc, h) == (ref.key, ref.crc, ref.hash), (t, mask, seed)
            assert crc == crc32c_raw(oracle_key(*t, mask), M32)
            n += 1
    assert n == 2560


def v4_arrays(rng: np.random.Generator, n: int):
    src = rng.integers(0, 1 << 32, n, dtype=np.uint32)
    dst = np.where(rng.random(n) < 0.1, src, rng.integers(0, 1 << 32, n, dtype=np.uint32))
    return (src, dst.astype(np.uint32), rng.integers(0, 256, n, dtype=np.uint8),
            rng.integers(0, 65536, n, dtype=np.uint16),
            rng.integers(0, 65536, n, dtype=np.uint16))


def test_hash_v4_many_matches_reference():
    rng = np.random.default_rng(7)
    src, dst, proto, sport, dport = v4_arrays(rng, 3000)
    for mask in (0x1F, 0x9F, 0x07, 0x87, 0x18, 0x00, 0x5F):
        seed = int(rng.integers(0, 1 << 32))
        hs = C.hash_v4_many(src, dst, proto, sport, dport, mask, seed)
        for i in range(0, len(src), 7):
            t = (4, int(src[i]).to_bytes(4, "big"), int(dst[i]).to_bytes(4, "big"),
                 int(proto[i]), int(sport[i]), int(dport[i]), 0, 0)
            assert int(hs[i]) == P.flow_hash(*t, mask, seed), (t, mask)
        buckets = C.buckets_many(hs, 4093)
        assert [int(b) for b in buckets[:200]] == [P.bucket_of(int(h), 4093) for h in hs[:200]]


def test_crc_v4_many_is_the_raw_register_with_any_init():
    rng = np.random.default_rng(8)
    arrays = v4_arrays(rng, 500)
    for init in (M32, 0, 0x5EED0001):
        crcs = C.crc_v4_many(*arrays, 0x1F, init)
        for i in range(0, 500, 5):
            key = C.key_bytes(4, int(arrays[0][i]).to_bytes(4, "big"),
                              int(arrays[1][i]).to_bytes(4, "big"), int(arrays[2][i]),
                              int(arrays[3][i]), int(arrays[4][i]), 0, 0, 0x1F)
            assert int(crcs[i]) == crc32c_raw(key, init)
    crcs = C.crc_v4_many(*arrays, 0x1F)                  # default init: the contract's
    assert (crcs == C.crc_v4_many(*arrays, 0x1F, M32)).all()
    hashes = C.hash_v4_many(*arrays, 0x1F, 0x5EED0001)
    assert [int(h) for h in hashes] == [P.fmix32(int(c) ^ 0x5EED0001) for c in crcs]


# --- the packet path itself: pkt_hash on frames (IPv4 fast path included) -------------

def v4_address(rng: random.Random) -> bytes:
    """A routable-looking address (not 0/8, 127/8, 224/4 and above: no martian drops)."""
    return bytes([rng.choice([1, 10, 100, 126, 128, 172, 192, 198, 203, 223]),
                  *rng.randbytes(3)])


def v6_address(rng: random.Random) -> bytes:
    return bytes([0x20, rng.getrandbits(8)]) + rng.randbytes(14)


def l4_header(rng: random.Random, proto: int, sport: int, dport: int) -> bytes:
    if proto == 6:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x10, 512, 0, 0)
    if proto == 17:
        return struct.pack("!HHHH", sport, dport, 8, 0)
    if proto == 132:
        return struct.pack("!HHII", sport, dport, 0, 0)
    if proto in (1, 58):                     # echo or not, chosen by the caller's sport
        kind = rng.choice({1: [8, 0, 3, 11], 58: [128, 129, 1, 135]}[proto])
        return struct.pack("!BBHHH", kind, 0, 0, sport, dport)
    return rng.randbytes(8)


def random_frame(rng: random.Random, family: int):
    """(frame, family, src, dst, proto, sport, dport, flow_label, kind): an Ethernet frame
    with 0-2 VLAN tags; whole packet, first fragment or later fragment."""
    proto = rng.choice([6, 17, 132, 1 if family == 4 else 58, 47, 89])
    sport, dport = rng.getrandbits(16), rng.getrandbits(16)
    if rng.random() < 0.1:
        dport = sport
    kind = rng.choice(["whole"] * 6 + ["first", "later"])
    eth = bytes.fromhex("020000000001020000000010")
    for _ in range(rng.choice([0, 0, 1, 2])):
        eth += struct.pack("!HH", rng.choice([0x8100, 0x88A8]), rng.getrandbits(12))
    l4 = b"" if kind == "later" else l4_header(rng, proto, sport, dport)
    payload = l4 + rng.randbytes(rng.randrange(0, 24))
    flow_label = 0
    if family == 4:
        src, dst = v4_address(rng), v4_address(rng)
        if rng.random() < 0.1:
            dst = src
        frag = {"whole": 0, "first": 0x2000, "later": 0x2000 * rng.getrandbits(1) | 185}[kind]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), rng.getrandbits(16),
                         frag, 64, proto, 0, src, dst)
        frame = eth + struct.pack("!H", 0x0800) + ip + payload
    else:
        src, dst = v6_address(rng), v6_address(rng)
        if rng.random() < 0.1:
            dst = src
        flow_label = rng.getrandbits(20)
        ext, nh = b"", proto
        if kind != "whole":
            offset = 0 if kind == "first" else 185
            ext = struct.pack("!BBHI", proto, 0, offset << 3 | 1, rng.getrandbits(32))
            nh = 44
        ip = struct.pack("!IHBB16s16s", 6 << 28 | flow_label, len(ext) + len(payload), nh,
                         64, src, dst)
        frame = eth + struct.pack("!H", 0x86DD) + ip + ext + payload
    return frame, src, dst


@pytest.mark.parametrize("family", [4, 6])
def test_packet_path_hash_matches_reference_on_frames(family):
    """frame_hash runs the packet path's own parse + pkt_hash (for IPv4, the masked
    two-word fast path rather than hash_input); the reference parses the same frame and
    hashes it by the contract. Every field mask, random ingress ports and seeds, VLAN
    tags, fragments, ICMP echo and non-echo, protocols without ports."""
    from dataplane.reference.ecmp import packet_hash
    from dataplane.reference.parse import parse
    rng = random.Random(200 + family)
    for mask in ALL_MASKS:
        for _ in range(6):
            frame, src, dst = random_frame(rng, family)
            ingress, seed = rng.getrandbits(16), rng.getrandbits(32)
            ref = parse(frame, ingress)
            assert ref.drop is None, (frame.hex(), ref.drop)
            want = packet_hash(ref, mask, seed)
            got = C.frame_hash(frame, ingress, mask, seed)
            assert got == want, (frame.hex(), mask, ingress, seed)


def test_packet_path_hash_is_the_documented_vector():
    """The v4-tcp-seed and v6-flowlabel vectors again, from whole frames."""
    from scapy.all import IP, TCP, Ether, IPv6
    v4 = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / TCP(sport=1234, dport=80)
    assert C.frame_hash(bytes(v4), 0, 0x1F, 0x5EED0001) == 0xD9AB26AA
    assert C.frame_hash(bytes(v4), 3, 0x5F, 0x5EED0001) == 0x82AC9852
    v6 = (Ether() / IPv6(src="2001:db8::1", dst="2001:db8::2", fl=0x12345, hlim=9) /
          TCP(sport=40000, dport=443))
    assert C.frame_hash(bytes(v6), 0, 0x3F, 0x5EED0001) == 0xD97E0D98
    assert C.frame_hash(bytes(v6), 0, 0x1F, 0x5EED0001) == 0xC0A5A6EB


# --- properties of the contract ------------------------------------------------------

def test_symmetric_hashes_both_directions_the_same():
    rng = random.Random(9)
    for family in (4, 6):
        for _ in range(500):
            fam, a, b, proto, sa, sb, _, fl = random_tuple(rng, family)
            for impl in (P.flow_hash, lambda *x: C.explain(*x)[2]):
                fwd = impl(fam, a, b, proto, sa, sb, 0, fl, 0x9F, 1)
                rev = impl(fam, b, a, proto, sb, sa, 0, fl, 0x9F, 1)
                assert fwd == rev
            if (a, sa) != (b, sb):
                assert (P.flow_hash(fam, a, b, proto, sa, sb, 0, fl, 0x1F, 1) !=
                        P.flow_hash(fam, b, a, proto, sb, sa, 0, fl, 0x1F, 1))


def test_symmetric_icmp_echo_request_and_reply_hash_the_same():
    from scapy.all import ICMP, IP, Ether

    from dataplane.reference.ecmp import packet_hash
    from dataplane.reference.parse import parse
    mask = P.field_mask(FIVE_TUPLE, symmetric=True)
    req = Ether() / IP(src="10.0.0.1", dst="10.0.0.2", ttl=9) / ICMP(type=8, id=0x1234)
    rep = Ether() / IP(src="10.0.0.2", dst="10.0.0.1", ttl=9) / ICMP(type=0, id=0x1234)
    assert packet_hash(parse(bytes(req)), mask, 7) == packet_hash(parse(bytes(rep)), mask, 7)


def test_seed_as_crc_init_is_affine():
    """Why the seed is not the CRC initial value: for keys of one length, changing the
    initial value XORs the same constant into every CRC (docs/hashing.md)."""
    rng = random.Random(11)
    for seed in (0, 0x5EED0001, crc32c(b"leaf1")):
        for length in (16, 44):
            deltas = {C.crc32c_raw(k, seed) ^ C.crc32c_raw(k, M32)
                      for k in (rng.randbytes(length) for _ in range(200))}
            assert len(deltas) == 1
    # the finalized hash has no such constant: the seed changes each hash differently
    a = bytes(4)
    deltas = {C.explain(4, a, rng.randbytes(4), 6, 1, 2, 0, 0, 0x1F, 0x5EED0001)[2] ^
              C.explain(4, a, rng.randbytes(4), 6, 1, 2, 0, 0, 0x1F, 0)[2] for _ in range(50)}
    assert len(deltas) == 50


def test_bucket_is_multiply_shift():
    assert P.bucket_of(0, 4096) == 0
    assert P.bucket_of(M32, 4096) == 4095
    assert P.bucket_of(0x80000000, 4096) == 2048
    assert P.bucket_of(0x80000000, 3) == 1
    assert P.bucket_of(M32, 4093) == 4092
    h = np.array([0, 1, 0x7FFFFFFF, 0x80000000, M32], dtype=np.uint32)
    for n in (1, 2, 3, 4096, 4093, 65536):
        assert C.buckets_many(h, n).tolist() == [(int(x) * n) >> 32 for x in h]


def test_entropy_values_range():
    for h in (0, 1, 15, (1 << 20) - 17, (1 << 20) - 16, M32, 0xDEADBEEF):
        el = P.entropy_label(h)
        assert 16 <= el < 1 << 20 and el == 16 + h % ((1 << 20) - 16)
        port = P.udp_source_port(h)
        assert 49152 <= port <= 65535 and port == 49152 + (h & 0x3FFF)
    assert P.entropy_label(0) == 16
    assert P.entropy_label((1 << 20) - 17) == (1 << 20) - 1


# --- the documented vectors -----------------------------------------------------------

LEAF1 = 0x3EF69BFF                      # crc32c(b"leaf1"): the default seed of node leaf1
D5, SYM5 = 0x1F, 0x9F

# name, src, dst, proto, sport, dport, ingress, flow_label, fields, seed,
#   key hex, crc, hash, bucket of 4096, entropy label, MPLS-over-UDP source port
VECTORS = [
    ("v4-tcp", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 0, 0, D5, 0,
     "0a0000010a000002060004d200500000", 0xF4F80954, 0xCFD65EFB, 3325, 470747, 57083),
    ("v4-tcp-seed", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 0, 0, D5, 0x5EED0001,
     "0a0000010a000002060004d200500000", 0xF4F80954, 0xD9AB26AA, 3482, 786522, 59050),
    ("v4-tcp-leaf1", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 0, 0, D5, LEAF1,
     "0a0000010a000002060004d200500000", 0xF4F80954, 0x514E1BE0, 1300, 945456, 56288),
    ("v4-tcp-rev", "10.0.0.2", "10.0.0.1", 6, 80, 1234, 0, 0, D5, 0x5EED0001,
     "0a0000020a0000010600005004d20000", 0xAF3E641C, 0xC9211786, 3218, 123062, 55174),
    ("v4-sym", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 0, 0, SYM5, 0x5EED0001,
     "0a0000010a000002060004d200500000", 0xF4F80954, 0xD9AB26AA, 3482, 786522, 59050),
    ("v4-sym-rev", "10.0.0.2", "10.0.0.1", 6, 80, 1234, 0, 0, SYM5, 0x5EED0001,
     "0a0000010a000002060004d200500000", 0xF4F80954, 0xD9AB26AA, 3482, 786522, 59050),
    ("v4-udp-l3", "192.0.2.1", "198.51.100.7", 17, 5000, 53, 0, 0, 0x07, 0x5EED0001,
     "c0000201c63364071100000000000000", 0x963741D0, 0x28660B80, 646, 406512, 52096),
    ("v4-icmp-echo", "192.0.2.1", "198.51.100.7", 1, 0x1234, 0x1234, 0, 0, D5, 0x5EED0001,
     "c0000201c63364070100123412340000", 0x24350295, 0x738B6152, 1848, 775394, 57682),
    ("v4-ingress", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 3, 0, 0x5F, 0x5EED0001,
     "0a0000010a000002060004d200500003", 0xE7A8FAA0, 0x82AC9852, 2090, 858882, 55378),
    ("v4-none", "10.0.0.1", "10.0.0.2", 6, 1234, 80, 3, 0, 0x00, 0x5EED0001,
     "00000000000000000000000000000000", 0xBD8F6515, 0x7368E510, 1846, 612480, 58640),
    ("v6-tcp", "2001:db8::1", "2001:db8::2", 6, 40000, 443, 0, 0x12345, D5, 0x5EED0001,
     "20010db8000000000000000000000001" "20010db8000000000000000000000002"
     "06009c4001bb000000000000", 0x5CF83809, 0xC0A5A6EB, 3082, 419739, 59115),
    ("v6-flowlabel", "2001:db8::1", "2001:db8::2", 6, 40000, 443, 0, 0x12345, 0x3F,
     0x5EED0001,
     "20010db8000000000000000000000001" "20010db8000000000000000000000002"
     "06009c4001bb000000012345", 0xC65FE84C, 0xD97E0D98, 3479, 976664, 52632),
    ("v6-sym-rev", "2001:db8::2", "2001:db8::1", 6, 443, 40000, 0, 0x12345, SYM5,
     0x5EED0001,
     "20010db8000000000000000000000001" "20010db8000000000000000000000002"
     "06009c4001bb000000000000", 0x5CF83809, 0xC0A5A6EB, 3082, 419739, 59115),
]


def vector_args(v):
    name, src, dst, proto, sport, dport, ingress, fl, fields, seed = v[:10]
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    return (a.version, a.packed, b.packed, proto, sport, dport, ingress, fl, fields), seed


@pytest.mark.parametrize("v", VECTORS, ids=[v[0] for v in VECTORS])
def test_vector_both_implementations(v):
    args, seed = vector_args(v)
    key_hex, crc, h, bucket, el, port = v[10:]
    key = bytes.fromhex(key_hex)
    assert oracle_key(*args) == key                        # layout, independently
    assert crc32c(key) ^ M32 == crc                        # CRC, from the standard CRC32-C
    assert murmur3_x86_32(b"", crc ^ seed) == h            # fmix32 via murmur3 of b""
    assert C.explain(*args, seed) == (key, crc, h)
    ref = P.explain(*args, seed)
    assert (ref.key, ref.crc, ref.hash) == (key, crc, h)
    assert P.bucket_of(h, 4096) == bucket == int(C.buckets_many(
        np.array([h], dtype=np.uint32), 4096)[0])
    assert (h * 4096) >> 32 == bucket
    assert P.entropy_label(h) == el == 16 + h % ((1 << 20) - 16)
    assert P.udp_source_port(h) == port == 49152 + h % 16384
    if args[0] == 4:
        arr = [np.array([x], dtype=t) for x, t in zip(
            (int.from_bytes(args[1], "big"), int.from_bytes(args[2], "big"), args[3],
             args[4], args[5]), (np.uint32, np.uint32, np.uint8, np.uint16, np.uint16))]
        if not fields_need_ingress(args[8]):
            assert int(C.hash_v4_many(*arr, args[8], seed)[0]) == h


def fields_need_ingress(mask: int) -> bool:
    return bool(mask & 64)           # hash_v4_many hashes with ingress port 0


def test_default_seed_of_leaf1():
    assert crc32c(b"leaf1") == LEAF1


def doc_vectors() -> list[tuple]:
    """Rows of the vector table in docs/hashing.md."""
    text = (ROOT / "docs" / "hashing.md").read_text()
    rows = []
    for line in text.splitlines():
        m = re.match(r"\|\s*`?(v[46]-[\w-]+)`?\s*\|", line)
        if m:
            rows.append([c.strip().strip("`") for c in line.strip().strip("|").split("|")])
    return rows


def test_docs_vector_table_matches():
    """docs/hashing.md lists exactly these vectors (inputs and outputs)."""
    rows = {r[0]: r for r in doc_vectors()}
    assert set(rows) == {v[0] for v in VECTORS}
    for v in VECTORS:
        name, src, dst, proto, sport, dport, ingress, fl, fields, seed = v[:10]
        key_hex, crc, h, bucket, el, port = v[10:]
        r = rows[name]
        # | name | src | dst | proto | sport | dport | ingress | flow label | fields |
        #   seed | key | crc | hash | bucket | EL | UDP sport |
        assert r[1:9] == [src, dst, str(proto), str(sport), str(dport), str(ingress),
                          f"0x{fl:05x}", f"0x{fields:02x}"], name
        assert int(r[9], 16) == seed
        assert r[10].replace(" ", "") == key_hex
        assert [int(r[11], 16), int(r[12], 16), int(r[13]), int(r[14]), int(r[15])] == \
            [crc, h, bucket, el, port], name
