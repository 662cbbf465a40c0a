"""Differential test: the Cython core against the reference model, byte for byte and
counter for counter (docs/packet-path.md), on one deterministic corpus.

The corpus: every crafted frame of test_forwarding (IPv4 with options, IPv6 with each
extension-header kind, VLAN/QinQ, every truncation of several packets, bad version and
IHL, TTL corners, no route, ICMP/ICMPv6, multicast, martians, fragments in and out of
order), random and byte-mutated frames, and samples/sample.pcap. It runs in bursts of
varied size on several ingress ports (L3 ports in four VRFs and a port without a VRF);
after every burst the outputs and every counter (ports, group members, fragment table)
must be identical.
"""
from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet import ICMP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest
from scapy.layers.l2 import Dot1Q
from scapy.utils import RawPcapReader

from backends import make_backend
from dataplane.config.model import HashSpec
from helpers import make_config, port_mac
import test_forwarding as tf

SEED = 0xD1FF
SEGMENT = 1500          # frames per fresh pair of backends: the core's fragment entries
                        # live 2 s and the model's never expire, so keep each run short
RANDOM_FRAMES = 1500
MUTATED_FRAMES = 1500

PORTS = (("p0", "default"), ("up1", "default"), ("up2", "default"), ("r0", "red"),
         ("ce1", None), ("r1", "red"), ("b0", "blue"), ("g0", "green"))
NEXTHOPS = {"nh1": ("up1", "02:00:00:00:01:01"), "nh2": ("up2", "02:00:00:00:02:02"),
            "nh3": ("up1", "02:00:00:00:01:03"), "nh4": ("up2", "02:00:00:00:02:04"),
            "nh5": ("r1", "02:00:00:00:03:05"),
            "spine1": ("up1", "02:00:00:00:01:12"), "spine2": ("up2", "02:00:00:00:02:12")}
GROUPS = {
    "spines": [("nh2", 0), ("nh3", 1), ("nh1", 1)],                  # a drained member
    "fabric": [("spine1", 1), ("spine2", 1)],                        # the sample's spines
    "weighted": [("nh1", 1), ("nh4", 3), ("nh5", 0), ("nh2", 2)],
    "sym": [("nh1", 1), ("nh2", 1), ("nh3", 1)],
    "l3frag": [("nh2", 1), ("nh4", 2), ("nh3", 1)],
    "drained": [("nh1", 0), ("nh2", 0)],                             # routes nothing
}
HASHES = {
    "weighted": HashSpec(fields=("src_ip", "dst_ip", "proto", "src_port", "dst_port",
                                 "flow_label", "ingress_port")),
    "sym": HashSpec(symmetric=True),
    "l3frag": HashSpec(fragments="l3", symmetric=True),
}
VRFS = {
    "default": [
        ("10.0.0.0/8", "nh1"), ("10.1.0.0/16", "nh2"), ("10.1.2.0/24", "nh1"),
        ("10.1.2.128/25", "nh3"), ("10.2.0.0/16", "spines"), ("10.2.128.0/17", "nh3"),
        ("10.3.0.0/16", "fabric"), ("10.4.0.0/16", "sym"), ("10.5.0.0/16", "sym"),
        ("10.6.0.0/16", "l3frag"), ("10.7.0.0/16", "weighted"), ("10.7.7.7/32", "nh4"),
        ("10.8.0.0/16", "drained"),
        ("2001:db8::/32", "nh1"), ("2001:db8:1::/48", "nh2"), ("2001:db8:1:2::/64", "nh3"),
        ("2001:db8:2::/48", "spines"), ("2001:db8:3::/48", "fabric"),
        ("2001:db8:4::/48", "sym"), ("2001:db8:5::/48", "sym"),
        ("2001:db8:6::/48", "l3frag"), ("2001:db8:7::/48", "weighted"),
        ("2001:db8:ff::1/128", "nh4"), ("2001:db8:8::/48", "drained")],
    "red": [("10.0.0.0/8", "nh5"), ("10.9.0.0/16", "weighted"), ("0.0.0.0/0", "nh2"),
            ("::/0", "nh2"), ("2001:db8:2::/48", "spines")],
    "blue": [("2001:db8:9::/48", "nh4")],                # no IPv4 route at all
    "green": [("0.0.0.0/0", "nh1"), ("::/0", "nh3")],    # default routes only
}
# up1: packet mode (the core hashes plain IPv4 straight from the packet); r1: packet mode
# with fat-flow rules (the key is built and masked for the hash)
CFG = make_config(ports=PORTS, nexthops=NEXTHOPS, groups=GROUPS, vrfs=VRFS, hashes=HASHES,
                  modes={"up1": "packet", "r1": "packet"},
                  fat_flows={"r1": [{"proto": "udp", "port": 0, "src_prefix_len": 24},
                                    {"proto": "tcp", "port": 80, "ignore": "src"}]})
P0, UP1, UP2, R0, CE1, R1, B0, G0 = range(len(PORTS))
INGRESS = [P0] * 5 + [UP1] * 2 + [R0, R1, R1, B0, G0, CE1]   # mostly p0, every role sometimes

V4_DSTS = ["10.1.9.9", "10.1.2.3", "10.1.2.200", "10.2.0.1", "10.2.200.1", "10.3.1.1",
           "10.4.1.1", "10.5.1.1", "10.6.1.1", "10.7.1.1", "10.7.7.7", "10.8.1.1", "10.9.1.1",
           "10.99.0.1", "11.0.0.1", "192.0.2.1", "240.0.0.1", "224.0.0.5", "255.255.255.255",
           "127.0.0.1", "0.0.0.9"]
V6_DSTS = ["2001:db8:1::1", "2001:db8:1:2::1", "2001:db8:2::5", "2001:db8:3::1",
           "2001:db8:4::1", "2001:db8:5::1", "2001:db8:6::1", "2001:db8:7::1", "2001:db8:8::1",
           "2001:db8:9::1", "2001:db8:ff::1", "2001:db8:ff::2", "2001:db9::1", "fec0::1",
           "ff02::1", "fe80::1", "::1", "::"]
V4_SRCS = ["100.64.0.1", "10.5.3.3", "10.4.3.3", "0.1.2.3", "127.0.0.1", "224.0.0.1",
           "255.255.255.255", "240.1.1.1"]
V6_SRCS = ["2001:db8:aa::1", "2001:db8:5::3", "2001:db8:4::3", "::", "::1", "ff02::1",
           "fe80::1", "febf::1"]


# --- the corpus ----------------------------------------------------------------------------

def crafted() -> list[bytes]:
    eth, v4, v6 = tf.eth, tf.v4, tf.v6
    out = []
    for tags in tf.TAGS:
        out += [eth(*tags, v4(), l4, tf.PAYLOAD) for l4 in tf.L4]
        out += [eth(*tags, v6(fl=0x12345), l4, tf.PAYLOAD) for l4 in tf.L4_V6]
    out.append(tf.IPV4_OPTIONS)
    out += [eth(v6(), *exts, TCP(sport=4444, dport=443), tf.PAYLOAD)
            for exts in tf.IPV6_EXTS.values()]
    out.append(eth(v6(), *[tf.IPv6ExtHdrDestOpt()] * 9, TCP()))
    for ttl in (0, 1, 2, 3, 64, 255):
        out += [eth(v4(ttl=ttl), UDP(), tf.PAYLOAD), eth(v6(hlim=ttl), UDP(), tf.PAYLOAD)]
    out += [bytes(eth(*tags, v4(), ICMP(type=8))) + bytes(range(1, 19))
            for tags in [(), (Dot1Q(vlan=7),)]]
    out.append(bytes(eth(v6(), UDP())) + b"\xee" * 6)
    for target in tf.CHECKSUM_CORNERS:
        out += tf.checksum_corner_frames(target)
    out += tf.random_header_frames(100, seed=77)
    out += tf.WRONG_CHECKSUMS
    out += [pkt for pkt, _ in tf.DROP_CASES]
    for pkt in tf.TRUNCATE:
        frame = bytes(pkt)
        out += [frame[:n] for n in range(len(frame) + 1)]
    for dst in V4_DSTS:
        out += [eth(v4(dst=dst), UDP(sport=7, dport=9)), eth(v4(dst=dst), ICMP(type=8, id=5))]
    for dst in V6_DSTS:
        out += [eth(v6(dst=dst), TCP(sport=7, dport=9)), eth(v6(dst=dst), ICMPv6EchoRequest(id=5))]
    for net in ("10.2", "10.3", "10.6", "10.7", "2001:db8:2", "2001:db8:6", "2001:db8:7"):
        out += tf.udp_flows(40, net, seed=len(out))
    for a, b in tf.both_directions(40, seed=3):
        out += [a, b]
    return [bytes(f) for f in out] + fast_path_edges()


def fast_path_edges() -> list[bytes]:
    """Frames on each edge of parse_fast4's conditions (pyx/parse.pxd): first octets
    around the martian and multicast ranges, total lengths around the UDP and TCP
    minimums and the frame's end, DF and MF, TTL 1 and 2, IHL 5 and 6, other protocols.
    Whatever side of an edge a frame is on, the core must agree with the model."""
    head = bytes.fromhex(port_mac(0).replace(":", "")) + bytes.fromhex("020000000099")
    out = []

    def v4(src=100, dst=10, proto=17, l4=8, total=None, frag=0, ttl=64, ihl=5, pad=0):
        body = bytes(range(1, l4 + 1))
        t = ihl * 4 + l4 if total is None else total
        hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, t, 7, frag, ttl, proto, 0,
                          bytes([src, 64, 0, 1]), bytes([dst, 2, 3, 4]))
        return head + b"\x08\x00" + hdr + bytes(ihl * 4 - 20) + body + bytes(pad)

    for octet in (1, 10, 126, 127, 128, 223, 224, 239, 240, 255, 0):
        out += [v4(src=octet), v4(dst=octet)]
    for proto, need in ((17, 8), (6, 20)):
        for l4 in (need - 1, need, need + 1):
            out += [v4(proto=proto, l4=l4), v4(proto=proto, l4=l4, pad=10)]
        out += [v4(proto=proto, l4=need, total=20 + need + 1),         # longer than the frame
                v4(proto=proto, l4=need, total=20 + need - 1)]
    for frag in (0x4000, 0x2000, 0x0001, 0x6000, 0x8000):
        out.append(v4(frag=frag))
    for ttl in (0, 1, 2):
        out += [v4(ttl=ttl), v4(ttl=ttl, proto=6, l4=20)]
    out += [v4(ihl=6), v4(ihl=6, proto=6, l4=20), v4(proto=1), v4(proto=132, l4=12),
            v4(proto=47)]
    out.append(head + b"\x08\x00" + b"\x46" + v4()[15:])             # IHL 6 in a 5's frame
    return out


def fragmented(rng: random.Random) -> list[bytes]:
    """Datagrams toward follow, l3 and plain next-hop routes: in order, interleaved,
    a non-first fragment first, and a first fragment missing."""
    out = []
    for family, nets in ((4, ("10.2", "10.3", "10.6", "10.7", "10.9")),
                         (6, ("2001:db8:2", "2001:db8:6", "2001:db8:7", "2001:db8:ff"))):
        for net in nets:
            grams = [tf.datagram(family, i, rng, net, size=rng.randrange(1200, 3500))
                     for i in range(6)]
            out += grams[0][0] + [grams[0][1]]                            # in order
            rest = [g[0] for g in grams[1:4]]
            out += [f[k] for k in range(max(map(len, rest))) for f in rest if k < len(f)]
            out += [grams[4][0][1], grams[4][0][0]] + grams[4][0][2:]     # non-first first
            out += grams[5][0][1:]                                        # first missing
    return out


def random_frame(rng: random.Random) -> bytes:
    kind = rng.random()
    if kind < 0.1:                                  # anything at all
        return rng.randbytes(rng.randrange(0, 100))
    head = bytes.fromhex(port_mac(0).replace(":", "")) + rng.randbytes(6)
    tags = b"".join(rng.choice([b"\x81\x00", b"\x88\xa8"]) + rng.randbytes(2)
                    for _ in range(rng.choice([0, 0, 0, 1, 2, 3])))
    if kind < 0.25:                                 # an EtherType worth parsing, random rest
        etype = rng.choice([b"\x08\x00", b"\x86\xdd", b"\x81\x00", b"\x88\xa8", b"\x08\x06"])
        return head + tags + etype + rng.randbytes(rng.randrange(0, 120))
    ip = random_ipv4(rng) if rng.random() < 0.5 else random_ipv6(rng)
    return head + tags + ip


def random_l4(rng: random.Random, proto: int) -> bytes:
    n = {6: 20, 17: 8, 132: 12, 1: 8, 58: 8}.get(proto, 0)
    body = bytearray(rng.randbytes(rng.choice([0, n // 2, n, n + rng.randrange(30)])))
    if proto in (1, 58) and body and rng.random() < 0.5:
        body[0] = rng.choice([0, 8, 3] if proto == 1 else [128, 129, 1])
    return bytes(body)


def random_ipv4(rng: random.Random) -> bytes:
    ihl = rng.choice([5, 5, 5, 6, 7, 15, 4])
    proto = rng.choice([6, 17, 132, 1, 58, 47, 0])
    flags_frag = rng.choice([0, 0, 0x4000, 0x2000, 0x2000 | rng.randrange(1, 0x2000),
                             rng.randrange(1, 0x2000)])
    src = rng.choice(V4_SRCS + ["100.64.%d.%d" % (rng.randrange(256), rng.randrange(256))] * 8)
    dst = rng.choice(V4_DSTS + ["10.%d.%d.%d" % (rng.randrange(1, 10), rng.randrange(256),
                                                 rng.randrange(256))] * 8)
    options = rng.randbytes(max(0, ihl * 4 - 20))
    l4 = random_l4(rng, proto)
    total = ihl * 4 + len(l4)
    total = rng.choice([total] * 6 + [total - 1, total + 1, rng.randrange(0, 200)])
    version = rng.choice([4] * 20 + [6, 5])
    hdr = struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, 0, total & 0xFFFF,
                      rng.randrange(65536), flags_frag, rng.choice([0, 1, 2, 3, 64, 255]),
                      proto, rng.randrange(65536), tf.addr(src), tf.addr(dst))
    return hdr + options + l4 + rng.randbytes(rng.choice([0, 0, 6]))


def random_ipv6(rng: random.Random) -> bytes:
    chain = bytearray()
    kinds = [rng.choice([0, 43, 60, 44, 51]) for _ in range(rng.choice([0, 0, 1, 2, 3, 8, 9]))]
    proto = rng.choice([6, 17, 132, 58, 1, 59])
    for i, kind in enumerate(kinds):
        nxt = kinds[i + 1] if i + 1 < len(kinds) else proto
        if kind == 44:
            chain += struct.pack("!BBHI", nxt, 0, rng.choice([0, 1, 8, 9, rng.randrange(65536)]),
                                 rng.randrange(1 << 32))
        elif kind == 51:
            n = rng.randrange(1, 4)
            chain += bytes([nxt, n]) + rng.randbytes((n + 2) * 4 - 2)
        else:
            n = rng.randrange(0, 2)
            chain += bytes([nxt, n]) + rng.randbytes((n + 1) * 8 - 2)
    first = kinds[0] if kinds else proto
    payload = bytes(chain) + random_l4(rng, proto)
    plen = rng.choice([len(payload)] * 6 + [len(payload) - 1, len(payload) + 3, 0])
    src = rng.choice(V6_SRCS + ["2001:db8:aa::%x" % rng.randrange(65536)] * 8)
    dst = rng.choice(V6_DSTS + ["2001:db8:%x::%x" % (rng.randrange(1, 10), rng.randrange(65536))]
                     * 8)
    version = rng.choice([6] * 20 + [4])
    hdr = struct.pack("!IHBB16s16s", version << 28 | rng.randrange(1 << 20), plen & 0xFFFF,
                      first, rng.choice([0, 1, 2, 64, 255]), tf.addr(src), tf.addr(dst))
    return hdr + payload + rng.randbytes(rng.choice([0, 0, 4]))


def mutated(rng: random.Random, base: list[bytes], n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        frame = bytearray(rng.choice(base))
        for _ in range(rng.randrange(1, 4)):
            if not frame:
                break
            i = rng.randrange(min(len(frame), 90))      # mostly the headers
            if rng.random() < 0.5:
                frame[i] ^= 1 << rng.randrange(8)
            else:
                frame[i] = rng.randrange(256)
        r = rng.random()
        if r < 0.1:
            frame = frame[:rng.randrange(len(frame) + 1)]
        elif r < 0.15:
            frame += rng.randbytes(rng.randrange(1, 30))
        out.append(bytes(frame))
    return out


def corpus() -> list[bytes]:
    rng = random.Random(SEED)
    frames = crafted()
    frames += fragmented(rng)
    base = list(frames)
    frames += [random_frame(rng) for _ in range(RANDOM_FRAMES)]
    frames += mutated(rng, base, MUTATED_FRAMES)
    frames += [data for data, _ in RawPcapReader(str(tf.ROOT / "samples" / "sample.pcap"))]
    return frames


def bursts(frames: list[bytes], rng: random.Random):
    """(ingress port, frames) bursts of 1..70 frames (the core splits at 32)."""
    i = 0
    while i < len(frames):
        n = rng.choice([1, 2, 7, 31, 32, 33, 64, 70, rng.randrange(1, 70)])
        yield rng.choice(INGRESS), frames[i:i + n]
        i += n


# --- comparing ---------------------------------------------------------------------------

def state(b) -> dict:
    return {"ports": b.counters(), "frag": b.frag_counters(),
            "groups": [b.group_counters(g.index) for g in CFG.groups],
            "flow_counters": b.flow_counters(),
            "flows": sorted((f["vrf"], f["family"], f["src"], f["dst"], f["proto"],
                             f["sport"], f["dport"], f["in_port"], f["nh_id"], f["member"],
                             f["hash"], f["packets"], f["bytes"])
                            for f in b.flows())}


def nonzero(d: dict) -> dict:
    return {p: {k: v for k, v in c.items() if v} for p, c in d.items() if any(c.values())}


def one_frame(b, port: int, frame: bytes):
    before = b.counters()
    out = b.process(port, [frame])
    return [(e, d.hex()) for e, d in out], nonzero(tf.delta(before, b.counters()))


def diagnose(port: int, burst: list[bytes], ref_out, cy_out, ref_state, cy_state) -> str:
    """Find the first frame of a differing burst that also differs on its own."""
    ref, cy = make_backend("reference", CFG), make_backend("cython", CFG)
    try:
        for k, frame in enumerate(burst):
            r, c = one_frame(ref, port, frame), one_frame(cy, port, frame)
            if r != c:
                return (f"frame {k} of a burst on port {port} differs on its own:\n"
                        f"  frame     {frame.hex()}\n  reference {r}\n  cython    {c}")
    finally:
        ref.close()
        cy.close()
    first = next((k for k, (a, b) in enumerate(zip(ref_out, cy_out)) if a != b),
                 min(len(ref_out), len(cy_out)))
    return (f"a burst on port {port} differs, but no frame of it does on its own (state: "
            f"fragment table, group counters):\n"
            f"  frames    {[f.hex() for f in burst]}\n"
            f"  output {first}: reference {ref_out[first:first + 1]}\n"
            f"             cython    {cy_out[first:first + 1]}\n"
            f"  reference {ref_state}\n  cython    {cy_state}")


def add(total, part):
    """Sum nested counters (dicts and lists of ints); total None is zero."""
    if isinstance(part, dict):
        return {k: add((total or {}).get(k), v) for k, v in part.items()}
    if isinstance(part, list):
        return [add(t, p) for t, p in zip(total or [None] * len(part), part)]
    return (total or 0) + part


def run_differential(frames: list[bytes], seed: int) -> dict:
    """Run frames through both backends in bursts, fresh backends every SEGMENT frames;
    fail at the first burst that differs. Return the counters summed over the segments."""
    rng = random.Random(seed)
    totals = None
    for start in range(0, len(frames), SEGMENT):
        ref, cy = make_backend("reference", CFG), make_backend("cython", CFG)
        try:
            for port, burst in bursts(frames[start:start + SEGMENT], rng):
                ref_out, cy_out = ref.process(port, burst), cy.process(port, burst)
                ref_state, cy_state = state(ref), state(cy)
                if ref_out != cy_out or ref_state != cy_state:
                    pytest.fail(diagnose(port, burst, ref_out, cy_out, ref_state, cy_state),
                                pytrace=False)
            totals = add(totals, {k: v for k, v in ref_state.items() if k != "flows"})
        finally:
            ref.close()
            cy.close()
    return totals


def test_differential(mbuf_leak_check):
    frames = corpus()
    assert len(frames) > 20_000 + RANDOM_FRAMES + MUTATED_FRAMES + 1000
    assert max(map(len, frames)) <= 2048                         # each fits one mbuf
    totals = run_differential(frames, seed=SEED)
    # the corpus is worth diffing: every verdict, every live member of every group (and
    # no drained one), both fragment-table paths
    verdicts = {k: sum(c[k] for c in totals["ports"].values())
                for k in ("rx", "tx", "parse_error", "truncated", "no_route", "ttl_expired",
                          "martian", "unsupported")}
    assert all(verdicts.values()), verdicts
    for g, packets in zip(CFG.groups, totals["groups"]):
        assert [n > 0 for n in packets] == [m.weight > 0 for m in g.members], (g.name, packets)
    assert all(totals["frag"].values()), totals["frag"]


def test_fragment_table_slot_collision(mbuf_leak_check):
    """Two datagrams in flight whose fragment keys share a slot of the core's fragment
    table (4096 slots, direct-mapped on the CRC of the key): the core evicts the first
    datagram's entry, the model (an unbounded dict) does not. Both must agree."""
    from scapy.layers.inet import IP, fragment
    from dataplane import hashing

    src, dst = tf.addr("100.64.0.1"), tf.addr("10.2.0.1")

    def slot(ident: int) -> int:
        key = hashing.hash_input(4, src, dst, 17, 0, 0, 0, 0, hashing.L3_FIELDS)
        return hashing.crc(key[:-4] + ident.to_bytes(4, "big")) & 4095

    other = next(i for i in range(2, 65536) if slot(i) == slot(1))
    a, b = [[bytes(tf.eth(f)) for f in fragment(
                IP(src="100.64.0.1", dst="10.2.0.1", id=ident) / UDP(sport=sport, dport=53)
                / tf.Raw(bytes(100)), fragsize=64)]
            for ident, sport in ((1, 1111), (other, 2222))]
    frames = [a[0], b[0], a[1], b[1]]
    ref, cy = make_backend("reference", CFG), make_backend("cython", CFG)
    try:
        results = [(be.process(P0, frames), state(be)) for be in (ref, cy)]
    finally:
        ref.close()
        cy.close()
    if results[0] != results[1]:
        ref_res, cy_res = [([(e, d[:6].hex()) for e, d in out],
                            {k: st[k] for k in ("frag", "groups")}) for out, st in results]
        pytest.fail(f"fragments A0 B0 A1 B1 (ids 1 and {other}):\n"
                    + "".join(f"  {f.hex()}\n" for f in frames)
                    + f"  reference (egress, dst MAC) {ref_res[0]}\n            {ref_res[1]}\n"
                    + f"  cython    (egress, dst MAC) {cy_res[0]}\n            {cy_res[1]}",
                    pytrace=False)
