"""The packet path (docs/packet-path.md) against independent oracles, run against both
backends (the Cython core and the reference model) through the `backend` fixture.

Oracles: scapy decoding and rebuilding, RFC values, counting. Tests of reference-internal
helpers (`parse` field extraction, `checksum_update`) are at the end and reference-only.
"""
from __future__ import annotations

import functools
import importlib.util
import random
import socket
import struct
from collections import Counter
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert, IPOption_RR, fragment
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting, fragment6)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw
from scapy.utils import RawPcapReader, checksum

from dataplane.config.model import HashSpec
from dataplane.drops import DROP_REASONS
from dataplane.reference import checksum_update, parse
from helpers import DEFAULT_GROUPS, DEFAULT_NEXTHOPS, DEFAULT_VRFS, make_config, port_mac

ROOT = Path(__file__).resolve().parent.parent
CFG = make_config()
P0, UP1, UP2, R0, CE1 = range(5)
SPINES = [nh for nh, w in DEFAULT_GROUPS["spines"] if w > 0]        # nh3, nh1
DRAINED = [nh for nh, w in DEFAULT_GROUPS["spines"] if w == 0]      # nh2
PAYLOAD = Raw(b"payload-bytes-0123456789")


def eth(*layers, port=P0):
    pkt = Ether(src="02:aa:00:00:00:01", dst=port_mac(port))
    for layer in layers:
        pkt = pkt / layer
    return pkt


def v4(dst="10.9.9.9", src="100.64.0.1", **kw):
    return IP(src=src, dst=dst, **kw)


def v6(dst="2001:db8:ff::1", src="2001:db8:aa::1", **kw):
    return IPv6(src=src, dst=dst, **kw)


# --- running frames through a backend ----------------------------------------------------

def delta(before: dict, after: dict) -> dict:
    return {port: {k: after[port][k] - before[port][k] for k in after[port]} for port in after}


def run(fwd, frames, port=P0):
    """Process `frames` as one burst; (outputs, counter increments)."""
    before = fwd.counters()
    out = fwd.process(port, [bytes(f) for f in frames])
    return out, delta(before, fwd.counters())


def nexthop(cfg, name: str):
    return next(nh for nh in cfg.nexthops if nh.name == name)


def nexthop_of(cfg, egress: int, out: bytes) -> str:
    """The next hop an output went to: its egress port and destination MAC."""
    hits = [nh.name for nh in cfg.nexthops if nh.port_index == egress and nh.mac == out[:6]]
    assert len(hits) == 1, (egress, out[:6].hex(), hits)
    return hits[0]


def dropped(fwd, frame, port=P0) -> str:
    """Run one frame that must drop; return the one reason counted on the ingress port."""
    out, ctr = run(fwd, [frame], port)
    assert out == []
    name = fwd.cfg.ports[port].name
    reasons = {r: n for r, n in ctr[name].items() if r in DROP_REASONS and n}
    assert ctr[name]["rx"] == 1 and len(reasons) == 1 and sum(reasons.values()) == 1, ctr
    assert all(c["tx"] == 0 for c in ctr.values())
    return next(iter(reasons))


def forwarded_via(fwd, frame, nexthops, port=P0) -> tuple[str, bytes]:
    """Run one frame that must go to one of `nexthops` (a name or names); check the rewrite
    with scapy; return (the next hop taken, the output frame)."""
    frame = bytes(frame)
    allowed = {nexthops} if isinstance(nexthops, str) else set(nexthops)
    out, ctr = run(fwd, [frame], port)
    assert len(out) == 1, (out, ctr)
    egress, data = out[0]
    nh = nexthop_of(fwd.cfg, egress, data)
    assert nh in allowed
    assert ctr[fwd.cfg.ports[port].name]["rx"] == 1 and ctr[fwd.cfg.ports[egress].name]["tx"] == 1
    assert sum(c[r] for c in ctr.values() for r in DROP_REASONS) == 0
    check_rewrite(frame, data, nexthop(fwd.cfg, nh).mac, fwd.cfg.ports[egress].mac)
    return nh, data


def forwarded(fwd, frame, nexthop: str, port=P0) -> bytes:
    return forwarded_via(fwd, frame, nexthop, port)[1]


def check_rewrite(frame: bytes, out: bytes, nh_mac: bytes, src_mac: bytes) -> None:
    pin, pout = Ether(frame), Ether(out)
    assert (pout.dst, pout.src) == (mac_text(nh_mac), mac_text(src_mac))
    assert Dot1Q not in pout and Dot1AD not in pout
    tags = sum(layer in (Dot1Q, Dot1AD) for layer in pin.layers())
    ip_in, ip_out = frame[14 + 4 * tags:], out[14:]
    assert len(ip_in) == len(ip_out)             # padding kept, nothing added
    if IP in pin:
        assert pout.type == 0x0800 and pout[IP].ttl == pin[IP].ttl - 1
        changed = {8, 10, 11}
        hlen = pin[IP].ihl * 4
        if checksum(ip_in[:hlen]) == 0:          # valid in → scapy's recomputation out
            rebuilt = pout[IP].copy()
            del rebuilt.chksum
            assert IP(bytes(rebuilt)).chksum == pout[IP].chksum
        # one's complement sum preserved: a wrong checksum stays wrong by as much
        assert checksum(ip_out[:hlen]) == checksum(ip_in[:hlen])
    else:
        assert pout.type == 0x86DD and pout[IPv6].hlim == pin[IPv6].hlim - 1
        changed = {7}
    assert [b for i, b in enumerate(ip_in) if i not in changed] == \
           [b for i, b in enumerate(ip_out) if i not in changed]


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


# --- forwarding and rewrite ------------------------------------------------------------

L4 = [TCP(sport=1234, dport=80, flags="S"), UDP(sport=53, dport=5353),
      SCTP(sport=3868, dport=3868), ICMP(type=8, id=0x4242, seq=7)]
L4_V6 = L4[:3] + [ICMPv6EchoRequest(id=0x4242, seq=7), ICMPv6DestUnreach()]
TAGS = [(), (Dot1Q(vlan=10),), (Dot1AD(vlan=100), Dot1Q(vlan=10)), (Dot1Q(vlan=5), Dot1Q(vlan=6))]


@pytest.mark.parametrize("l4", L4, ids=lambda x: x.name)
@pytest.mark.parametrize("tags", TAGS, ids=len)
def test_ipv4_forwarded(backend, l4, tags):
    forwarded(backend(CFG), eth(*tags, v4(), l4, PAYLOAD), "nh1")


@pytest.mark.parametrize("l4", L4_V6, ids=lambda x: x.name)
@pytest.mark.parametrize("tags", TAGS[:3], ids=len)
def test_ipv6_forwarded(backend, l4, tags):
    forwarded(backend(CFG), eth(*tags, v6(fl=0x12345), l4, PAYLOAD), "nh1")


IPV4_OPTIONS = eth(v4(options=[IPOption_Router_Alert(), IPOption_RR(routers=["1.2.3.4"])]),
                   TCP(), PAYLOAD)


def test_ipv4_options(backend):
    assert Ether(bytes(IPV4_OPTIONS))[IP].ihl > 5
    forwarded(backend(CFG), IPV4_OPTIONS, "nh1")


# every extension-header kind the parser skips: hop-by-hop, routing, destination options,
# fragment (atomic and first), AH; and the most it skips, 8
IPV6_EXTS = {
    "hbh": [IPv6ExtHdrHopByHop()],
    "hbh-rt-dst": [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(addresses=["2001:db8::9"]),
                   IPv6ExtHdrDestOpt()],
    "dst-frag": [IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(m=1, offset=0, id=0xDEADBEEF)],
    "atomic-frag": [IPv6ExtHdrFragment(m=0, offset=0, id=7)],
    "ah-dst": [AH(nh=60, payloadlen=4, icv=bytes(12)), IPv6ExtHdrDestOpt()],
    "8-ext": [IPv6ExtHdrDestOpt()] * 8,
}


@pytest.mark.parametrize("exts", IPV6_EXTS.values(), ids=IPV6_EXTS.keys())
def test_ipv6_extension_headers(backend, exts):
    forwarded(backend(CFG), eth(v6(), *exts, TCP(sport=4444, dport=443), PAYLOAD), "nh1")


def test_too_many_ipv6_extension_headers(backend):
    assert dropped(backend(CFG), eth(v6(), *[IPv6ExtHdrDestOpt()] * 9, TCP())) == "unsupported"


def test_ttl(backend):
    fwd = backend(CFG)
    for ttl in (0, 1):
        assert dropped(fwd, eth(v4(ttl=ttl), UDP())) == "ttl_expired"
        assert dropped(fwd, eth(v6(hlim=ttl), UDP())) == "ttl_expired"
    for ttl in (2, 64, 255):
        forwarded(fwd, eth(v4(ttl=ttl), UDP(), PAYLOAD), "nh1")
        forwarded(fwd, eth(v6(hlim=ttl), UDP(), PAYLOAD), "nh1")


def test_ethernet_padding_kept(backend):
    fwd = backend(CFG)
    for tags in [(), (Dot1Q(vlan=7),)]:
        pkt = bytes(eth(*tags, v4(), ICMP(type=8))) + bytes(range(1, 19))
        out = forwarded(fwd, pkt, "nh1")
        assert out.endswith(bytes(range(1, 19))) and len(out) == len(pkt) - 4 * len(tags)
    out = forwarded(fwd, bytes(eth(v6(), UDP())) + b"\xee" * 6, "nh1")
    assert out.endswith(b"\xee" * 6)


def test_untagging_may_leave_a_runt(backend):
    # §4.1: no re-padding; a 60-byte tagged frame leaves as 56 bytes
    pkt = bytes(eth(Dot1Q(vlan=3), v4(), UDP()))
    pkt += bytes(60 - len(pkt))
    assert len(forwarded(backend(CFG), pkt, "nh1")) == 56


# --- checksum ----------------------------------------------------------------------------

def udp4_with_checksum(ttl: int, target: int):
    """IPv4/UDP whose correct header checksum at TTL `ttl` is `target` (set through the id)."""
    pkt = v4(dst="10.7.7.7", ttl=ttl, id=0, chksum=0) / UDP(sport=1, dport=2)
    s = ~checksum(bytes(pkt)[:20]) & 0xFFFF          # one's complement sum of the other words
    pkt[IP].id = (0xFFFF - target - s) % 0xFFFF
    pkt[IP].chksum = None
    assert IP(bytes(pkt)).chksum == target
    return pkt


# 0xFFFF cannot be a correct IPv4 checksum (the words never sum to +0), so not listed
CHECKSUM_CORNERS = [0x0000, 0x0001, 0xFFFE]


def checksum_corner_frames(target: int) -> list:
    frames = []
    for ttl in (9, 10):                              # corner on the way out, then on the way in
        pkt = udp4_with_checksum(ttl, target)
        pkt[IP].ttl = 10
        frames.append(eth(pkt))
    return frames


@pytest.mark.parametrize("target", CHECKSUM_CORNERS)
def test_checksum_corners(backend, target):
    fwd = backend(CFG)
    for frame in checksum_corner_frames(target):
        forwarded(fwd, frame, "nh1")


def random_header_frames(n: int, seed: int = 1624) -> list:
    rng = random.Random(seed)
    return [eth(v4(dst=f"10.{rng.randrange(3, 256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                   src=f"100.64.{rng.randrange(256)}.{rng.randrange(256)}",
                   ttl=rng.randrange(2, 256), id=rng.randrange(65536), tos=rng.randrange(256),
                   proto=rng.choice([0, 47, 50, 89, 253])),      # no L4 parse
                Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(40)))))
            for _ in range(n)]


def test_checksum_random_headers(backend):
    fwd = backend(CFG)
    for frame in random_header_frames(300):
        forwarded(fwd, frame, "nh1")


WRONG_CHECKSUMS = [eth(v4(chksum=bad), UDP()) for bad in (0x0000, 0xFFFF, 0x1234)]


def test_wrong_checksum_stays_wrong_by_same_amount(backend):
    fwd = backend(CFG)
    for frame in WRONG_CHECKSUMS:
        forwarded(fwd, frame, "nh1")                      # check_rewrite asserts the sums


# --- drops -------------------------------------------------------------------------------

DROP_CASES = [
    # ARP for IPv4 over Ethernet is the forwarder's own (consumed, answered: test_vnet.py)
    (Ether(dst=port_mac(0)) / ARP(ptype=0x86DD), "unsupported"),
    (Ether(dst=port_mac(0), type=0x8848) / Raw(bytes(40)), "unsupported"),
    (eth(Dot1Q(), ARP(hwlen=8)), "unsupported"),
    (eth(Dot1Q(), Dot1Q(), Dot1Q(), v4(), UDP()), "unsupported"),
    (bytes(eth(Dot1AD(), Dot1Q(), Dot1Q()))[:22], "unsupported"),   # 3rd TPID alone decides
    (Ether(dst=port_mac(0), type=0x8100), "truncated"),
    (eth(v4(version=5), UDP()), "parse_error"),
    (eth(v4(ihl=4), UDP()), "parse_error"),
    (eth(v4(ihl=15), UDP()), "truncated"),
    (eth(v4(len=19), UDP()), "parse_error"),
    (eth(v4(ihl=6, options=[IPOption_Router_Alert()], len=22), UDP()), "parse_error"),
    (eth(v4(len=200), UDP()), "truncated"),
    (eth(v4(len=30), TCP()), "truncated"),           # TCP cut by total length, not frame
    (eth(v4(len=20 + 7), UDP()), "truncated"),
    (eth(v4(len=20 + 11, proto=132), SCTP()), "truncated"),
    (eth(v4(len=20 + 7), ICMP()), "truncated"),
    (eth(v4(flags="MF", len=20 + 8), TCP()), "truncated"),   # tiny first fragment
    (Ether(dst=port_mac(0), type=0x0800) / v6(), "parse_error"),
    (eth(v6(version=4), UDP()), "parse_error"),
    (Ether(dst=port_mac(0), type=0x86DD) / v4() / Raw(bytes(40)), "parse_error"),
    (eth(v6(plen=100), UDP()), "truncated"),
    (eth(v6(plen=7), UDP()), "truncated"),
    (eth(v6(plen=8 + 7), IPv6ExtHdrDestOpt(), UDP()), "truncated"),
    (eth(v6(plen=7), IPv6ExtHdrFragment(), UDP()), "truncated"),
    (eth(v6(plen=1), IPv6ExtHdrHopByHop()), "truncated"),
    (eth(v6(plen=7), ICMPv6EchoRequest()), "truncated"),
    (eth(v4(src="0.1.2.3"), UDP()), "martian"),
    (eth(v4(src="127.0.0.1"), UDP()), "martian"),
    (eth(v4(src="224.0.0.1"), UDP()), "martian"),
    (eth(v4(src="239.255.255.255"), UDP()), "martian"),
    (eth(v4(src="255.255.255.255"), UDP()), "martian"),
    (eth(v4(dst="0.0.0.1"), UDP()), "martian"),
    (eth(v4(dst="127.1.2.3"), UDP()), "martian"),
    (eth(v4(src="127.0.0.1", dst="224.0.0.5"), UDP()), "martian"),     # martian first
    (eth(v4(src="127.0.0.1", len=30), TCP()), "truncated"),          # parse before martian
    (eth(v4(dst="224.0.0.5"), UDP()), "unsupported"),
    (eth(v4(dst="239.1.1.1", ttl=1), UDP()), "unsupported"),           # before TTL
    (eth(v4(dst="255.255.255.255"), UDP()), "unsupported"),
    (eth(v4(dst="11.0.0.1"), UDP()), "no_route"),
    (eth(v4(dst="240.0.0.1"), UDP()), "no_route"),
    (eth(v4(dst="11.0.0.1", ttl=1), UDP()), "ttl_expired"),            # TTL before route
    (eth(v6(src="::"), UDP()), "martian"),
    (eth(v6(src="::1"), UDP()), "martian"),
    (eth(v6(src="ff02::1"), UDP()), "martian"),
    (eth(v6(src="fe80::1"), UDP()), "martian"),
    (eth(v6(src="febf::1"), UDP()), "martian"),
    (eth(v6(dst="::"), UDP()), "martian"),
    (eth(v6(dst="::1"), UDP()), "martian"),
    (eth(v6(dst="fe80::2"), UDP()), "martian"),
    (eth(v6(dst="ff02::1"), UDP()), "unsupported"),
    (eth(v6(dst="ff02::1", hlim=1), UDP()), "unsupported"),
    (eth(v6(dst="fec0::1"), UDP()), "no_route"),
    (eth(v6(dst="2001:db9::1"), UDP()), "no_route"),
    (eth(v6(dst="2001:db9::1", hlim=0), UDP()), "ttl_expired"),
]


@pytest.mark.parametrize("pkt,reason", DROP_CASES,
                         ids=lambda x: x if isinstance(x, str) else None)
def test_drop_reason(backend, pkt, reason):
    assert dropped(backend(CFG), pkt) == reason


TRUNCATE = [eth(v4(), TCP(), PAYLOAD),
            eth(v4(options=[IPOption_Router_Alert()]), ICMP(type=8)),
            eth(Dot1AD(), Dot1Q(), v4(), UDP()),
            eth(Dot1Q(), v6(), IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(m=1), SCTP()),
            eth(v6(), IPv6ExtHdrRouting(addresses=["2001:db8::1"]), ICMPv6EchoRequest()),
            eth(v6(), AH(nh=6, payloadlen=4, icv=bytes(12)), TCP())]


@pytest.mark.parametrize("pkt", TRUNCATE, ids=range(len(TRUNCATE)))
def test_truncated_at_every_length(backend, pkt):
    fwd = backend(CFG)
    frame = bytes(pkt)
    forwarded(fwd, frame, "nh1")
    for n in range(len(frame)):
        assert dropped(fwd, frame[:n]) == "truncated", n


# --- routing, VRFs, ports, counters ------------------------------------------------------

@pytest.mark.parametrize("port,dst,nexthops", [
    (P0, "10.9.9.9", "nh1"), (P0, "10.1.9.9", "nh2"), (P0, "10.1.2.3", "nh1"),
    (P0, "10.2.0.1", SPINES),                                 # group: any live member
    (P0, "2001:db8:ff::1", "nh1"), (P0, "2001:db8:1::1", "nh2"), (P0, "2001:db8:2::5", SPINES),
    (R0, "10.1.2.3", "nh2"), (R0, "2001:db9::1", "nh2"),      # VRF red
])
def test_route(backend, port, dst, nexthops):
    ip = v6(dst=dst) if ":" in dst else v4(dst=dst)
    forwarded_via(backend(CFG), eth(ip, UDP(), PAYLOAD, port=port), nexthops, port=port)


def test_vrf_isolation(backend):
    assert dropped(backend(CFG), eth(v4(dst="11.0.0.1"), UDP(), port=R0), port=R0) == "no_route"


def test_port_without_vrf_drops(backend):
    assert dropped(backend(CFG), eth(v4(), UDP(), port=CE1), port=CE1) == "unsupported"


def test_group_all_drained_is_no_route(backend):
    cfg = make_config(groups={"spines": [("nh1", 0), ("nh2", 0)]})
    fwd = backend(cfg)
    assert dropped(fwd, eth(v4(dst="10.2.0.1"), UDP())) == "no_route"
    assert dropped(fwd, eth(v6(dst="2001:db8:2::1"), UDP())) == "no_route"
    assert fwd.group_counters(0) == [0, 0]


def test_burst_order_and_counters(backend):
    frames = [eth(v4(dst="10.1.0.1"), UDP()), eth(v4(ttl=1), UDP()), eth(v6(), TCP()),
              Ether() / ARP(ptype=0x86DD), eth(v4(dst="10.2.0.1"), TCP()),
              bytes(eth(v4(), UDP()))[:30],
              eth(v6(dst="2001:db8:1::1"), UDP())]
    fwd = backend(CFG)
    out = fwd.process(P0, [bytes(f) for f in frames])
    out += fwd.process(R0, [bytes(eth(v4(dst="10.0.0.1"), UDP(), port=R0))])
    assert [e for e, _ in out] == [UP2, UP1, UP1, UP2, UP2]   # spines' live members: up1
    assert [Ether(o)[IP].dst if IP in Ether(o) else Ether(o)[IPv6].dst for _, o in out] == \
           ["10.1.0.1", "2001:db8:ff::1", "10.2.0.1", "2001:db8:1::1", "10.0.0.1"]
    ctr = fwd.counters()
    zero = dict.fromkeys(("rx", "tx") + DROP_REASONS, 0)
    assert ctr == {"p0": {**zero, "rx": 7, "ttl_expired": 1, "unsupported": 1, "truncated": 1},
                   "up1": {**zero, "tx": 2}, "up2": {**zero, "tx": 3},
                   "r0": {**zero, "rx": 1}, "ce1": zero}
    spines = fwd.group_counters(0)
    assert sum(spines) == 1 and spines[0] == 0              # member 0 (nh2) is drained


def test_long_input_is_split_into_bursts(backend):
    # more frames than one burst (32), mixed verdicts: order and counts survive the split
    fwd = backend(CFG)
    frames = [eth(v4(dst=f"10.9.0.{i}", ttl=1 if i % 7 == 0 else 64), UDP(sport=i))
              for i in range(100)]
    out, ctr = run(fwd, frames)
    assert [Ether(o)[UDP].sport for _, o in out] == [i for i in range(100) if i % 7]
    assert ctr["p0"]["rx"] == 100 and ctr["p0"]["ttl_expired"] == 15
    assert ctr["up1"]["tx"] == 85


# --- ECMP groups -------------------------------------------------------------------------

@functools.cache                    # shared by both backends' runs of a test
def udp_flows(n: int, dst_net: str, seed: int) -> tuple[bytes, ...]:
    """n UDP frames with random addresses and ports; IPv4 dst in 10.x.0.0/16 (dst_net =
    "10.x") or IPv6 in 2001:db8:x::/48 (dst_net = "2001:db8:x")."""
    rng = random.Random(seed)
    frames = []
    for _ in range(n):
        sport, dport = rng.randrange(1, 65536), rng.randrange(1, 65536)
        if ":" in dst_net:
            ip = v6(src=f"2001:db8:aa::{rng.randrange(1, 65536):x}:{rng.randrange(65536):x}",
                    dst=f"{dst_net}::{rng.randrange(1, 65536):x}")
        else:
            ip = v4(src=f"100.64.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                    dst=f"{dst_net}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
        frames.append(bytes(eth(ip, UDP(sport=sport, dport=dport))))
    return tuple(frames)


def udp4_fast(src: int, dst: int, sport: int, dport: int) -> bytes:
    """IPv4/UDP with a valid header checksum, built with struct (thousands of flows)."""
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0, 64, 17, 0,
                                src.to_bytes(4, "big"), dst.to_bytes(4, "big")))
    hdr[10:12] = checksum(bytes(hdr)).to_bytes(2, "big")
    return (bytes.fromhex(port_mac(P0).replace(":", "")) + bytes.fromhex("02aa00000001")
            + b"\x08\x00" + bytes(hdr) + struct.pack("!HHHH", sport, dport, 8, 0))


def members_taken(fwd, out) -> Counter:
    return Counter(nexthop_of(fwd.cfg, egress, data) for egress, data in out)


@pytest.mark.parametrize("dst_net", ["10.2", "2001:db8:2"])
def test_ecmp_spreads_over_live_members(backend, dst_net):
    fwd = backend(CFG)
    frames = udp_flows(400, dst_net, seed=6)
    out, ctr = run(fwd, frames)
    assert len(out) == len(frames)
    taken = members_taken(fwd, out)
    assert set(taken) == set(SPINES)                          # every live member, no other
    for drained in DRAINED:
        assert taken[drained] == 0
    members = [nh for nh, _ in DEFAULT_GROUPS["spines"]]
    assert fwd.group_counters(0) == [taken[nh] for nh in members]
    for frame, (egress, data) in zip(frames[:20], out[:20]):  # rewrite, by scapy
        nh = nexthop(CFG, nexthop_of(CFG, egress, data))
        check_rewrite(frame, data, nh.mac, CFG.ports[egress].mac)


def test_ecmp_same_flow_same_member(backend):
    fwd = backend(CFG)
    frames = udp_flows(50, "10.2", seed=7)
    first = [data for _, data in fwd.process(P0, frames)]
    again = [data for _, data in fwd.process(P0, frames)]
    assert first == again


WEIGHTED_CFG = make_config(
    nexthops={**DEFAULT_NEXTHOPS, "nh4": ("up2", "02:00:00:00:02:04")},
    groups={"spines": [("nh1", 1), ("nh4", 3)]})


def test_weighted_group_shares(backend):
    fwd = backend(WEIGHTED_CFG)
    rng = random.Random(13)
    n = 20_000
    frames = [udp4_fast(0x64400000 | rng.randrange(1 << 22), 0x0A020000 | rng.randrange(1 << 16),
                        rng.randrange(1, 65536), rng.randrange(1, 65536)) for _ in range(n)]
    out, ctr = run(fwd, frames)
    taken = members_taken(fwd, out)
    assert sum(taken.values()) == n
    assert abs(100 * taken["nh1"] / n - 25) <= 3 and abs(100 * taken["nh4"] / n - 75) <= 3, taken
    assert fwd.group_counters(0) == [taken["nh1"], taken["nh4"]]
    assert (ctr["up1"]["tx"], ctr["up2"]["tx"]) == (taken["nh1"], taken["nh4"])


SYM_NEXTHOPS = {**DEFAULT_NEXTHOPS, "nh4": ("up2", "02:00:00:00:02:04")}
SYM_GROUP = [("nh1", 1), ("nh2", 1), ("nh3", 1), ("nh4", 1)]
SYM_ROUTES = [("10.4.0.0/16", "sym"), ("10.5.0.0/16", "sym"),
              ("2001:db8:4::/48", "sym"), ("2001:db8:5::/48", "sym")]


def sym_config(symmetric: bool):
    return make_config(nexthops=SYM_NEXTHOPS, groups={**DEFAULT_GROUPS, "sym": SYM_GROUP},
                       vrfs={**DEFAULT_VRFS, "default": DEFAULT_VRFS["default"] + SYM_ROUTES},
                       hashes={"sym": HashSpec(symmetric=symmetric)})


@functools.cache
def both_directions(n: int, seed: int) -> tuple[tuple[bytes, bytes], ...]:
    """(A→B, B→A) frame pairs: TCP and UDP, IPv4 and IPv6, A in x:4 and B in x:5."""
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        sp, dp = rng.randrange(1, 65536), rng.randrange(1, 65536)
        if i % 2:
            a, b = f"10.4.{rng.randrange(256)}.{rng.randrange(1, 255)}", \
                   f"10.5.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            ip = v4
        else:
            a, b = f"2001:db8:4::{rng.randrange(1, 65536):x}", \
                   f"2001:db8:5::{rng.randrange(1, 65536):x}"
            ip = v6
        l4 = TCP if i % 4 < 2 else UDP
        pairs.append((bytes(eth(ip(src=a, dst=b), l4(sport=sp, dport=dp))),
                      bytes(eth(ip(src=b, dst=a), l4(sport=dp, dport=sp)))))
    return tuple(pairs)


def test_symmetric_group_both_directions_same_member(backend):
    fwd = backend(sym_config(symmetric=True))
    pairs = both_directions(200, seed=21)
    fwd_out = fwd.process(P0, [a for a, _ in pairs])
    rev_out = fwd.process(P0, [b for _, b in pairs])
    there = [nexthop_of(fwd.cfg, e, d) for e, d in fwd_out]
    back = [nexthop_of(fwd.cfg, e, d) for e, d in rev_out]
    assert there == back
    assert set(there) == {nh for nh, _ in SYM_GROUP}


def test_asymmetric_group_separates_directions(backend):
    # the control for the test above: without `symmetric` the directions do differ
    fwd = backend(sym_config(symmetric=False))
    pairs = both_directions(200, seed=21)
    there = [nexthop_of(fwd.cfg, e, d) for e, d in fwd.process(P0, [a for a, _ in pairs])]
    back = [nexthop_of(fwd.cfg, e, d) for e, d in fwd.process(P0, [b for _, b in pairs])]
    assert sum(x != y for x, y in zip(there, back)) > len(pairs) // 2


# --- fragments ---------------------------------------------------------------------------

def datagram(family: int, i: int, rng: random.Random, dst_net: str, size: int = 2500):
    """(fragment frames, the unfragmented frame of the same flow) for datagram i, whose
    IPv4 id / IPv6 fragment id is datagram_id(family, i)."""
    sport, dport = rng.randrange(1, 65536), rng.randrange(1, 65536)
    data = Raw(bytes(rng.randrange(256) for _ in range(size)))
    if family == 4:
        ip = v4(src=f"100.64.{i // 250}.{i % 250 + 1}", dst=f"{dst_net}.0.{i % 250 + 1}",
                id=datagram_id(4, i))
        frags = fragment(ip / UDP(sport=sport, dport=dport) / data, fragsize=1000)
    else:
        ip = v6(src=f"2001:db8:aa::{i + 1:x}", dst=f"{dst_net}::{i + 1:x}")
        frags = fragment6(ip / IPv6ExtHdrFragment(id=datagram_id(6, i))
                          / UDP(sport=sport, dport=dport) / data, 1000)
    whole = ip.copy()
    if family == 4:
        whole.id = 0x7000 + i
    return [bytes(eth(f)) for f in frags], bytes(eth(whole / UDP(sport=sport, dport=dport)))


def datagram_id(family: int, i: int) -> int:
    return (0x1000 if family == 4 else 0x10000) + i


def frag_key(data: bytes):
    """(id, offset) of an output fragment, decoded by scapy."""
    p = Ether(data)
    if IPv6ExtHdrFragment in p:
        return p[IPv6ExtHdrFragment].id, p[IPv6ExtHdrFragment].offset
    return p[IP].id, p[IP].frag


@pytest.mark.parametrize("family,dst_net", [(4, "10.2"), (6, "2001:db8:2")])
def test_fragments_follow_first_fragment(backend, family, dst_net):
    fwd = backend(CFG)
    rng = random.Random(family)
    grams = [datagram(family, i, rng, dst_net) for i in range(24)]
    # interleaved: the fragment table holds many datagrams at once
    frames = [g[0][k] for k in range(max(len(g[0]) for g in grams)) for g in grams
              if k < len(g[0])]
    out, ctr = run(fwd, frames)
    assert len(out) == len(frames)
    by_id: dict[int, list] = {}
    for egress, data in out:
        ident, offset = frag_key(data)
        by_id.setdefault(ident, []).append((offset, nexthop_of(fwd.cfg, egress, data)))
    first_member = {}
    for ident, seq in by_id.items():
        assert [o for o, _ in seq] == sorted(o for o, _ in seq)     # in order
        assert len({m for _, m in seq}) == 1                         # one member
        first_member[ident] = seq[0][1]
    assert set(first_member.values()) == set(SPINES)                 # both live members used
    non_first = len(frames) - len(grams)
    assert fwd.frag_counters() == {"frag_followed": non_first, "frag_fallback": 0}
    # the first fragment decided on its 5-tuple, as for an unfragmented packet of the flow
    wholes = fwd.process(P0, [g[1] for g in grams])
    assert [nexthop_of(fwd.cfg, e, d) for e, d in wholes] == \
           [first_member[datagram_id(family, i)] for i in range(len(grams))]


@pytest.mark.parametrize("family,dst_net", [(4, "10.2"), (6, "2001:db8:2")])
def test_fragment_before_first_falls_back(backend, family, dst_net):
    fwd = backend(CFG)
    frags, _ = datagram(family, 0, random.Random(5), dst_net, size=3500)
    assert len(frags) >= 4
    order = [frags[2], frags[0], frags[1]] + frags[3:]
    out, _ = run(fwd, order)
    assert len(out) == len(frags)
    taken = [nexthop_of(fwd.cfg, e, d) for e, d in out]
    assert set(taken) <= set(SPINES)
    assert len(set(taken[1:])) == 1                        # the rest follow the first
    assert fwd.frag_counters() == {"frag_followed": len(frags) - 2, "frag_fallback": 1}


L3_CFG = make_config(hashes={"spines": HashSpec(fragments="l3")})


@pytest.mark.parametrize("family,dst_net", [(4, "10.2"), (6, "2001:db8:2")])
def test_fragments_l3_one_member_per_host_pair(backend, family, dst_net):
    fwd = backend(L3_CFG)
    rng = random.Random(family + 10)
    grams = [datagram(family, i, rng, dst_net) for i in range(24)]
    members = []
    for frags, _ in grams:
        out, _ = run(fwd, frags[1:] + frags[:1])           # order plays no part with l3
        taken = {nexthop_of(fwd.cfg, e, d) for e, d in out}
        assert len(out) == len(frags) and len(taken) == 1
        members += taken
    assert set(members) == set(SPINES)                     # different host pairs spread
    assert fwd.frag_counters() == {"frag_followed": 0, "frag_fallback": 0}


@pytest.mark.parametrize("family,dst_net", [(4, "10.2"), (6, "2001:db8:2")])
def test_fragments_l3_unfragmented_same_member(backend, family, dst_net):
    """SPEC §3: with `fragments: l3` the group hashes every packet, fragmented or not, on
    src/dst/proto only, so a datagram's fragments and any unfragmented packet between the
    same hosts with the same protocol take the same member, whatever its ports."""
    fwd = backend(L3_CFG)
    rng = random.Random(family + 20)
    for i in range(8):
        frags, whole = datagram(family, i, rng, dst_net)
        others = [datagram(family, i, rng, dst_net, size=10)[1] for _ in range(8)]
        out, _ = run(fwd, frags + [whole] + others)
        taken = [nexthop_of(fwd.cfg, e, d) for e, d in out]
        assert len(out) == len(frags) + 9 and len(set(taken)) == 1, taken


# --- the sample traffic and config -------------------------------------------------------

def load_gen_sample():
    spec = importlib.util.spec_from_file_location("gen_sample", ROOT / "tools" / "gen_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sample_frames() -> list[bytes]:
    return [data for data, _ in RawPcapReader(str(ROOT / "samples" / "sample.pcap"))]


def replay(fwd) -> dict:
    fwd.process(0, sample_frames())
    ctr = fwd.counters()
    ctr["p0"]["consumed"] = fwd.vnet_counters()["p0"]["consumed"]
    return ctr


def test_sample_traffic(backend):
    gen = load_gen_sample()
    cfg = make_config(ports=gen.PORTS, nexthops=gen.NEXTHOPS, groups=gen.GROUPS, vrfs=gen.VRFS)
    ctr = replay(backend(cfg))
    p0 = ctr["p0"]
    assert p0["rx"] == gen.PACKETS
    assert {r: p0[r] for r in DROP_REASONS if p0[r]} == gen.DROPS
    assert p0["consumed"] == gen.CONSUMED          # the ARP requests
    assert ctr["up1"]["tx"] > 0 and ctr["up2"]["tx"] > 0
    assert ctr["up1"]["tx"] + ctr["up2"]["tx"] == \
        gen.PACKETS - sum(gen.DROPS.values()) - gen.CONSUMED
    from dataplane.config import load
    assert replay(backend(load(ROOT / "samples" / "sample.yaml"))) == ctr


# --- reference-internal helpers (reference only) -----------------------------------------

def test_rfc1624_example():
    # RFC 1624 §4: eqn. 3 yields 0x0000 where eqn. 2 wrongly yields 0xFFFF
    assert checksum_update(0xDD2F, 0x5555, 0x3285) == 0x0000


def addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


@pytest.mark.parametrize("exts", IPV6_EXTS.values(), ids=IPV6_EXTS.keys())
def test_parse_extension_headers(exts):
    p = parse(bytes(eth(v6(), *exts, TCP(sport=4444, dport=443), PAYLOAD)))
    assert (p.drop, p.proto, p.sport, p.dport) == (None, 6, 4444, 443)


@pytest.mark.parametrize("pkt,fields", [
    (eth(v4(), TCP(sport=1, dport=2, flags="FA")), dict(proto=6, sport=1, dport=2, tcp_flags=0x11)),
    (eth(v4(), UDP(sport=3, dport=4)), dict(proto=17, sport=3, dport=4)),
    (eth(v4(), SCTP(sport=5, dport=6)), dict(proto=132, sport=5, dport=6)),
    (eth(v4(), ICMP(type=0, id=77)), dict(proto=1, icmp_type=0, icmp_id=77)),
    (eth(v4(), ICMP(type=3, code=1, id=77)), dict(proto=1, icmp_type=3, icmp_code=1, icmp_id=0)),
    (eth(v4(proto=47), Raw(bytes(30))), dict(proto=47, sport=0, dport=0, l4=0)),
    (eth(v4(id=99, flags="MF"), UDP(sport=7, dport=8)),
     dict(is_fragment=True, frag_first=True, frag_id=99, sport=7, dport=8)),
    (eth(v4(id=99, frag=100), UDP(sport=7, dport=8)),
     dict(is_fragment=True, frag_first=False, frag_id=99, sport=0, dport=0, l4=0)),
    (eth(v4(id=99, flags="DF"), UDP(sport=7, dport=8)), dict(is_fragment=False, frag_id=99)),
    (eth(v6(fl=0xABCDE), ICMPv6EchoReply(id=55)),
     dict(proto=58, icmp_type=129, icmp_id=55, flow_label=0xABCDE)),
    (eth(v6(nh=1), ICMP(type=8, id=3)), dict(proto=1, icmp_type=0, icmp_id=0, l4=0)),
    (eth(v6(), IPv6ExtHdrFragment(m=1, id=0x1234567), UDP(sport=7, dport=8)),
     dict(proto=17, is_fragment=True, frag_first=True, frag_id=0x1234567, sport=7)),
    (eth(v6(), IPv6ExtHdrFragment(offset=10, id=5, nh=6), Raw(bytes(20))),
     dict(proto=6, is_fragment=True, frag_first=False, frag_id=5, sport=0, l4=0)),
    (eth(v6(), IPv6ExtHdrFragment(offset=0, m=0, id=5), UDP(sport=7)),   # atomic fragment
     dict(proto=17, is_fragment=False, sport=7)),
    (eth(Dot1Q(), v6(hlim=9)), dict(proto=59, l3=18, ttl=9)),
])
def test_parse_fields(pkt, fields):
    p = parse(bytes(pkt))
    ip = pkt[IP] if IP in pkt and IPv6 not in pkt else pkt[IPv6]
    assert p.drop is None
    assert (p.family, p.src, p.dst) == (ip.version, addr(ip.src), addr(ip.dst))
    assert {k: getattr(p, k) for k in fields} == fields
    if "l4" not in fields and p.proto != 59:
        l4 = next(x for x in pkt.layers() if x in (TCP, UDP, SCTP, ICMP, ICMPv6EchoReply))
        assert p.l4 == len(pkt) - len(pkt[l4])
