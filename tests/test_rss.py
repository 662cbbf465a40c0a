"""Software RSS (dataplane/rss.py, its C twin pyx/rss.pxd through dataplane._rss): the
published Toeplitz vectors, the symmetric key, the hash input rules on scapy-built frames,
C against Python on random and truncated frames, and the pcap split and merge. No EAL."""
from __future__ import annotations

import ipaddress
import random
import struct
from collections import Counter

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrDestOpt,
                                IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from dataplane import _rss as C
from dataplane import rss as P
from dataplane.rss import MS_KEY, SYMMETRIC_KEY

BACKENDS = [pytest.param(P, id="python"), pytest.param(C, id="c")]


def eth(src="02:00:00:00:00:01", dst="02:00:00:00:00:02", **fields):
    """Ether with both MACs set: without dst scapy resolves it on the live network."""
    return Ether(src=src, dst=dst, **fields)


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def ports(sport: int, dport: int) -> bytes:
    return struct.pack(">HH", sport, dport)


# --- published vectors ------------------------------------------------------------------
# Microsoft, "Verifying the RSS Hash Calculation" (learn.microsoft.com/windows-hardware/
# drivers/network/verifying-the-rss-hash-calculation; source MicrosoftDocs/
# windows-driver-docs, windows-driver-docs-pr/network/verifying-the-rss-hash-calculation.md),
# reproduced in DPDK app/test/test_thash.c (v4_tbl, v6_tbl, "From 82599 Datasheet 7.1.2.8.3
# RSS Verification Suite"). Columns: destination, dport, source, sport, hash of the
# addresses only, hash with TCP ports. The hash input is src, dst[, sport, dport].
V4_VECTORS = [
    ("161.142.100.80", 1766, "66.9.149.187", 2794, 0x323E8FC2, 0x51CCC178),
    ("65.69.140.83", 4739, "199.92.111.2", 14230, 0xD718262A, 0xC626B0EA),
    ("12.22.207.184", 38024, "24.19.198.95", 12898, 0xD2D0A5DE, 0x5C2B394A),
    ("209.142.163.6", 2217, "38.27.205.30", 48228, 0x82989176, 0xAFC7327F),
    ("202.188.127.2", 1303, "153.39.163.191", 44251, 0x5D1809C5, 0x10E828A2),
]
V6_VECTORS = [
    ("3ffe:2501:200:3::1", 1766, "3ffe:2501:200:1fff::7", 2794, 0x2CC18CD5, 0x40207D3D),
    ("ff02::1", 4739, "3ffe:501:8::260:97ff:fe40:efab", 14230, 0x0F0C461C, 0xDDE51BBF),
    ("fe80::200:f8ff:fe21:67cf", 38024, "3ffe:1900:4545:3:200:f8ff:fe21:67cf", 44251,
     0x4B61E985, 0x02D1FEEF),
]


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("vector", V4_VECTORS + V6_VECTORS, ids=lambda v: v[2])
def test_published_vectors(impl, vector):
    dst, dport, src, sport, addrs_only, with_tcp = vector
    addrs = packed(src) + packed(dst)
    assert impl.toeplitz(MS_KEY, addrs) == addrs_only
    assert impl.toeplitz(MS_KEY, addrs + ports(sport, dport)) == with_tcp


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("vector", V4_VECTORS + V6_VECTORS, ids=lambda v: v[2])
def test_published_vectors_through_frames(impl, vector):
    """The same vectors end to end: frame -> rss_input -> hash."""
    dst, dport, src, sport, addrs_only, with_tcp = vector
    l3 = IP if ":" not in src else IPv6
    tcp = eth() / l3(src=src, dst=dst) / TCP(sport=sport, dport=dport)
    icmp = eth() / l3(src=src, dst=dst) / (ICMP() if l3 is IP else ICMPv6EchoRequest())
    assert impl.rss_hash(bytes(tcp), MS_KEY) == with_tcp
    assert impl.rss_hash(bytes(icmp), MS_KEY) == addrs_only


def test_keys():
    assert len(SYMMETRIC_KEY) == len(MS_KEY) == 40
    assert C.SYMMETRIC_KEY == SYMMETRIC_KEY          # the C array in pyx/rss.pxd


@pytest.mark.parametrize("impl", BACKENDS)
def test_toeplitz_key_too_short(impl):
    with pytest.raises(ValueError):
        impl.toeplitz(MS_KEY[:15], bytes(12))
    with pytest.raises(ValueError):
        impl.rss_hash(bytes(eth() / IP() / TCP()), MS_KEY[:39])
    assert impl.toeplitz(MS_KEY[:16], bytes(12)) == 0


def test_toeplitz_c_matches_python_random():
    rng = random.Random(1)
    for _ in range(2000):
        data = rng.randbytes(rng.randrange(0, 37))
        key = rng.randbytes(len(data) + 4 + rng.randrange(0, 8))
        assert C.toeplitz(key, data) == P.toeplitz(key, data)


# --- symmetric key ----------------------------------------------------------------------

def flow_frames(rng: random.Random, count: int):
    """(A->B, B->A) frame pairs: IPv4/IPv6, TCP/UDP, random addresses and ports."""
    for i in range(count):
        v6 = i % 2
        a, b = (str(ipaddress.ip_address(rng.getrandbits(128 if v6 else 32)))
                for _ in range(2))
        sport, dport = rng.randrange(65536), rng.randrange(65536)
        l3 = IPv6 if v6 else IP
        l4 = TCP if i % 4 < 2 else UDP
        yield (bytes(eth() / l3(src=a, dst=b) / l4(sport=sport, dport=dport)),
               bytes(eth() / l3(src=b, dst=a) / l4(sport=dport, dport=sport)))


@pytest.mark.parametrize("impl", BACKENDS)
def test_symmetric_key_both_directions_hash_alike(impl):
    for forward, reverse in flow_frames(random.Random(2), 400):
        assert impl.rss_input(forward) != impl.rss_input(reverse)
        assert impl.rss_hash(forward, SYMMETRIC_KEY) == impl.rss_hash(reverse, SYMMETRIC_KEY)


@pytest.mark.parametrize("impl", BACKENDS)
def test_ms_key_is_not_symmetric(impl):
    pairs = list(flow_frames(random.Random(3), 400))
    differ = sum(impl.rss_hash(f, MS_KEY) != impl.rss_hash(r, MS_KEY) for f, r in pairs)
    assert differ >= 0.95 * len(pairs)


# --- hash input rules -------------------------------------------------------------------

A4, B4 = "10.1.2.3", "192.0.2.77"
A6, B6 = "2001:db8::1", "2001:db8:ffff::2"
ADDRS4 = packed(A4) + packed(B4)
ADDRS6 = packed(A6) + packed(B6)
PORTS = ports(1234, 80)


def ipv4_fragments():
    """A TCP segment cut into three IPv4 fragments (first, middle, last)."""
    pkt = IP(src=A4, dst=B4) / TCP(sport=1234, dport=80) / Raw(bytes(100))
    frags = fragment(pkt, fragsize=40)
    assert len(frags) == 3 and frags[0].flags.MF and frags[0].frag == 0
    return [eth() / f for f in frags]


RULES = [
    ("ipv4-tcp", eth() / IP(src=A4, dst=B4) / TCP(sport=1234, dport=80), ADDRS4 + PORTS),
    ("ipv4-udp", eth() / IP(src=A4, dst=B4) / UDP(sport=1234, dport=80), ADDRS4 + PORTS),
    ("ipv4-options", eth() / IP(src=A4, dst=B4, options=b"\x01" * 8)
     / UDP(sport=1234, dport=80), ADDRS4 + PORTS),
    ("ipv4-df", eth() / IP(src=A4, dst=B4, flags="DF") / TCP(sport=1234, dport=80),
     ADDRS4 + PORTS),
    ("vlan", eth() / Dot1Q(vlan=5) / IP(src=A4, dst=B4) / TCP(sport=1234, dport=80),
     ADDRS4 + PORTS),
    ("qinq", eth() / Dot1AD(vlan=7) / Dot1Q(vlan=5) / IP(src=A4, dst=B4)
     / UDP(sport=1234, dport=80), ADDRS4 + PORTS),
    ("qinq-8100", eth() / Dot1Q(vlan=7) / Dot1Q(vlan=5) / IPv6(src=A6, dst=B6)
     / TCP(sport=1234, dport=80), ADDRS6 + PORTS),
    ("three-tags", eth() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3)
     / IP(src=A4, dst=B4) / TCP(sport=1234, dport=80), b""),
    ("ipv4-icmp", eth() / IP(src=A4, dst=B4) / ICMP(), ADDRS4),
    ("ipv4-gre", eth() / IP(src=A4, dst=B4, proto=47) / Raw(bytes(8)), ADDRS4),
    ("ipv4-first-fragment", ipv4_fragments()[0], ADDRS4),
    ("ipv4-middle-fragment", ipv4_fragments()[1], ADDRS4),
    ("ipv4-last-fragment", ipv4_fragments()[2], ADDRS4),
    ("ipv6-tcp", eth() / IPv6(src=A6, dst=B6) / TCP(sport=1234, dport=80), ADDRS6 + PORTS),
    ("ipv6-udp-vlan", eth() / Dot1Q(vlan=9) / IPv6(src=A6, dst=B6)
     / UDP(sport=1234, dport=80), ADDRS6 + PORTS),
    ("ipv6-ext-chain", eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop()
     / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt(options=[]) / TCP(sport=1234, dport=80),
     ADDRS6 + PORTS),
    ("ipv6-first-fragment", eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(m=1)
     / TCP(sport=1234, dport=80), ADDRS6),
    ("ipv6-later-fragment", eth() / IPv6(src=A6, dst=B6)
     / IPv6ExtHdrFragment(offset=10, nh=6) / Raw(bytes(16)), ADDRS6),
    ("ipv6-atomic-fragment", eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop()
     / IPv6ExtHdrFragment() / UDP(sport=1234, dport=80), ADDRS6),
    ("ipv6-icmp", eth() / IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(), ADDRS6),
    ("ipv6-no-next", eth() / IPv6(src=A6, dst=B6, nh=59), ADDRS6),
    ("arp", eth() / ARP(psrc=A4, pdst=B4), b""),
    ("ipv4-bad-version", eth(type=0x0800) / IPv6(src=A6, dst=B6), b""),
    ("ipv6-bad-version", eth(type=0x86DD) / IP(src=A4, dst=B4) / Raw(bytes(40)), b""),
    ("ipv4-ihl-4", eth() / IP(src=A4, dst=B4, ihl=4) / TCP(), b""),
    ("empty", b"", b""),
]


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("name, frame, expected", RULES, ids=[r[0] for r in RULES])
def test_rss_input_rules(impl, name, frame, expected):
    assert impl.rss_input(bytes(frame)) == expected
    assert impl.rss_hash(bytes(frame), MS_KEY) == (P.toeplitz(MS_KEY, expected)
                                                  if expected else 0)


# The shortest prefix of each frame that still gives its full hash input: every byte of
# the headers walked and of the ports, and nothing more.
TRUNCATION = [
    ("ipv4-tcp", eth() / IP(src=A4, dst=B4) / TCP(sport=1234, dport=80), 14 + 20 + 4),
    ("ipv4-options", eth() / IP(src=A4, dst=B4, options=b"\x01" * 8)
     / UDP(sport=1234, dport=80), 14 + 28 + 4),
    ("qinq-ipv4-icmp", eth() / Dot1AD() / Dot1Q() / IP(src=A4, dst=B4) / ICMP(),
     14 + 8 + 20),
    ("ipv6-ext-udp", eth() / Dot1Q() / IPv6(src=A6, dst=B6) / IPv6ExtHdrHopByHop()
     / IPv6ExtHdrDestOpt(options=[]) / UDP(sport=1234, dport=80), 18 + 40 + 8 + 8 + 4),
    ("ipv6-fragment", eth() / IPv6(src=A6, dst=B6) / IPv6ExtHdrFragment(m=1)
     / TCP(sport=1234, dport=80), 14 + 40 + 8),
]


@pytest.mark.parametrize("impl", BACKENDS)
@pytest.mark.parametrize("name, frame, needed", TRUNCATION, ids=[t[0] for t in TRUNCATION])
def test_truncated_frames(impl, name, frame, needed):
    frame = bytes(frame)
    full = impl.rss_input(frame)
    assert full
    for cut in range(len(frame) + 1):
        assert impl.rss_input(frame[:cut]) == (full if cut >= needed else b""), cut
        assert impl.rss_hash(frame[:cut]) == (impl.rss_hash(frame) if cut >= needed else 0)


def random_frames(rng: random.Random, count: int):
    """Frames near the rules' edges: valid frames with a few bytes overwritten (the
    header bytes the walk reads most likely), random truncations and random bytes."""
    bases = [bytes(f) for _, f, _ in RULES] + [bytes(f) for _, f, _ in TRUNCATION]
    interesting = [0x08, 0x00, 0x86, 0xDD, 0x81, 0x88, 0xA8, 0x45, 0x46, 0x4F, 0x60, 0x44,
                   0x20, 0x3F, 0xFF, 0, 6, 17, 43, 44, 60, 1, 58, 59, 0x40]
    for _ in range(count):
        frame = bytearray(rng.choice(bases) or rng.randbytes(rng.randrange(80)))
        for _ in range(rng.randrange(4)):
            if frame:
                pos = min(int(rng.expovariate(1 / 30)), len(frame) - 1)
                frame[pos] = rng.choice(interesting) if rng.random() < 0.7 \
                    else rng.randrange(256)
        if rng.random() < 0.3:
            frame = frame[:rng.randrange(len(frame) + 1)]
        if rng.random() < 0.05:
            frame = bytearray(rng.randbytes(rng.randrange(120)))
        yield bytes(frame)


def test_c_matches_python_on_mutated_frames():
    kinds = Counter()
    for frame in random_frames(random.Random(4), 5000):
        expected = P.rss_input(frame)
        assert C.rss_input(frame) == expected, frame.hex()
        assert C.rss_hash(frame, MS_KEY) == P.rss_hash(frame, MS_KEY), frame.hex()
        kinds[len(expected)] += 1
    assert set(kinds) == {0, 8, 12, 32, 36}          # every rule was reached


# --- queues -----------------------------------------------------------------------------

def test_queue_of_uses_low_bits_and_default_reta():
    reta = [i % 3 for i in range(128)]
    for h in (0, 1, 127, 128, 0xDEADBEEF, 0xFFFFFFFF):
        assert P.queue_of(h, 3) == reta[h & 127]
    assert P.queue_of(0x1FF, 4, reta_size=256) == 0xFF % 4
    with pytest.raises(ValueError):
        P.queue_of(1, 0)
    with pytest.raises(ValueError):
        P.queue_of(1, 2, reta_size=100)


@pytest.mark.parametrize("key", [SYMMETRIC_KEY, MS_KEY], ids=["symmetric", "ms"])
@pytest.mark.parametrize("n", [2, 3])
def test_queue_spread(key, n):
    rng = random.Random(5)
    counts = Counter()
    for _ in range(10_000):
        data = rng.randbytes(8) + ports(rng.randrange(65536), rng.randrange(65536))
        counts[P.queue_of(C.toeplitz(key, data), n)] += 1
    for queue in range(n):
        share = sum(1 for i in range(128) if i % n == queue) / 128   # its reta entries
        assert abs(counts[queue] / 10_000 - share) < 0.02, counts


# --- pcap split and merge ---------------------------------------------------------------

MAGICS = {("<", False): 0xA1B2C3D4, (">", False): 0xA1B2C3D4,
          ("<", True): 0xA1B23C4D, (">", True): 0xA1B23C4D}


def make_pcap(frames, order="<", ns=False, stamps=None, link=1) -> bytes:
    out = [struct.pack(order + "IHHiIII", MAGICS[order, ns], 2, 4, 0, 0, 65535, link)]
    for i, frame in enumerate(frames):
        sec, frac = stamps[i] if stamps else (1_700_000_000 + i // 1000, i % 1000)
        out.append(struct.pack(order + "IIII", sec, frac, len(frame), len(frame) + 3))
        out.append(frame)
    return b"".join(out)


def read_pcap(data: bytes):
    """[(sec, frac, frame)] of a pcap written by make_pcap or the splitter."""
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    out, off = [], 24
    while off < len(data):
        sec, frac, incl, _ = struct.unpack_from(order + "IIII", data, off)
        out.append((sec, frac, data[off + 16:off + 16 + incl]))
        off += 16 + incl
    return out


def traffic(seed: int, flows: int = 300):
    """Both directions of many flows, interleaved, plus frames of every rule."""
    rng = random.Random(seed)
    frames = []
    for forward, reverse in flow_frames(rng, flows):
        frames += [forward, reverse, forward]
    frames += [bytes(f) for _, f, _ in RULES] + list(random_frames(rng, 300))
    rng.shuffle(frames)
    return frames


@pytest.mark.parametrize("order, ns", list(MAGICS), ids=["le-us", "be-us", "le-ns", "be-ns"])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_split_c_matches_python(order, ns, n):
    pcap = make_pcap(traffic(6), order, ns)
    for key in (SYMMETRIC_KEY, MS_KEY):
        parts = C.split(pcap, n, key)
        assert parts == P.split_pcap_py(pcap, n, key)
        assert P.split_pcap(pcap, n, key) == parts
        assert all(part[:24] == pcap[:24] for part in parts)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_split_routes_every_record_once_by_its_queue(n):
    frames = traffic(7)
    records = read_pcap(make_pcap(frames))
    parts = [read_pcap(part) for part in P.split_pcap(make_pcap(frames), n)]
    assert sum(map(len, parts)) == len(records)
    for queue, part in enumerate(parts):
        assert all(P.queue_of(P.rss_hash(frame), n) == queue for _, _, frame in part)
        members = set(part)
        assert part == [r for r in records if r in members]    # original order kept
    assert Counter(r for part in parts for r in part) == Counter(records)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_split_keeps_both_directions_together(n):
    frames = [f for pair in flow_frames(random.Random(8), 200) for f in pair]
    where = {}
    for queue, part in enumerate(P.split_pcap(make_pcap(frames), n)):
        for _, _, frame in read_pcap(part):
            where[frame] = queue
    for i in range(0, len(frames), 2):
        assert where[frames[i]] == where[frames[i + 1]]
    assert len(set(where.values())) == n                 # and the flows are spread


@pytest.mark.parametrize("order, ns", list(MAGICS), ids=["le-us", "be-us", "le-ns", "be-ns"])
def test_merge_undoes_split(order, ns):
    pcap = make_pcap(traffic(9), order, ns)
    for n in (1, 2, 3):
        merged = P.merge_pcaps(P.split_pcap(pcap, n))
        assert merged == pcap                            # increasing stamps: exact
    shuffled = traffic(10)
    stamps = [(100 + random.Random(i).randrange(5), 7) for i in range(len(shuffled))]
    pcap = make_pcap(shuffled, order, ns, stamps)        # many ties, out of order
    merged = read_pcap(P.merge_pcaps(P.split_pcap(pcap, 3)))
    assert Counter(merged) == Counter(read_pcap(pcap))
    assert [r[:2] for r in merged] == sorted(r[:2] for r in merged)


def test_merge_order_is_stable():
    a, b, c, d = (bytes(eth(src=f"02:00:00:00:00:0{i}")) for i in range(4))
    part0 = make_pcap([a, b], stamps=[(5, 1), (5, 0)])
    part1 = make_pcap([c, d], stamps=[(5, 1), (4, 999_999)])
    merged = read_pcap(P.merge_pcaps([part0, part1]))
    assert merged == [(4, 999_999, d), (5, 0, b), (5, 1, a), (5, 1, c)]


def test_merge_mixed_byte_order_and_empty_parts():
    frames = traffic(11, flows=20)
    little = make_pcap(frames[::2], "<", stamps=[(2 * i, 0) for i in range(len(frames[::2]))])
    big = make_pcap(frames[1::2], ">", stamps=[(2 * i + 1, 0)
                                               for i in range(len(frames[1::2]))])
    empty = make_pcap([], ">")
    merged = P.merge_pcaps([little, empty, big])
    assert merged[:24] == little[:24]
    assert [f for _, _, f in read_pcap(merged)] == frames


def test_merge_refuses_mixed_resolution():
    with pytest.raises(ValueError, match="resolution"):
        P.merge_pcaps([make_pcap([b"x" * 60]), make_pcap([b"y" * 60], ns=True)])
    with pytest.raises(ValueError):
        P.merge_pcaps([])


BAD_PCAPS = [
    ("short-header", make_pcap([])[:20]),
    ("bad-magic", b"\x00" * 4 + make_pcap([])[4:]),
    ("not-ethernet", make_pcap([b"x" * 60], link=113)),
    ("short-record-header", make_pcap([b"x" * 60]) + b"\x00" * 10),
    ("truncated-record", make_pcap([b"x" * 60, b"y" * 60])[:-1]),
]


@pytest.mark.parametrize("split", [C.split, P.split_pcap_py], ids=["c", "python"])
@pytest.mark.parametrize("name, pcap", BAD_PCAPS, ids=[b[0] for b in BAD_PCAPS])
def test_split_rejects_bad_pcaps(split, name, pcap):
    with pytest.raises(ValueError, match="pcap"):
        split(pcap, 2, SYMMETRIC_KEY)


@pytest.mark.parametrize("split", [C.split, P.split_pcap_py], ids=["c", "python"])
def test_split_rejects_bad_arguments(split):
    pcap = make_pcap([b"x" * 60])
    for n in (0, 65536):
        with pytest.raises(ValueError, match="n must be"):
            split(pcap, n, SYMMETRIC_KEY)
    with pytest.raises(ValueError, match="key must be"):
        split(pcap, 2, SYMMETRIC_KEY[:36])


def test_split_error_messages_match():
    for _, pcap in BAD_PCAPS:
        with pytest.raises(ValueError) as c_error:
            C.split(pcap, 2, SYMMETRIC_KEY)
        with pytest.raises(ValueError) as py_error:
            P.split_pcap_py(pcap, 2, SYMMETRIC_KEY)
        assert str(c_error.value) == str(py_error.value)


def test_split_empty_pcap():
    pcap = make_pcap([])
    assert C.split(pcap, 3, SYMMETRIC_KEY) == [pcap] * 3 == P.split_pcap_py(pcap, 3)
    assert P.merge_pcaps([pcap, pcap]) == pcap


def test_split_pcap_falls_back_to_python(monkeypatch):
    pcap = make_pcap(traffic(12, flows=30))
    fast = P.split_pcap(pcap, 3)
    monkeypatch.setattr(P, "_rss", None)                 # as if the extension were not built
    assert P.split_pcap(pcap, 3) == fast
