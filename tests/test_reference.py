"""The reference model (docs/packet-path.md) against scapy as the independent oracle."""
from __future__ import annotations

import importlib.util
import random
import socket
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_Router_Alert, IPOption_RR
from scapy.layers.inet6 import (ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6,
                                IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
                                IPv6ExtHdrRouting)
from scapy.layers.ipsec import AH
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.layers.sctp import SCTP
from scapy.packet import Raw
from scapy.utils import RawPcapReader, checksum

from dataplane.drops import DROP_REASONS
from dataplane.reference import ReferenceForwarder, checksum_update, parse
from helpers import DEFAULT_NEXTHOPS, make_config, port_mac

ROOT = Path(__file__).resolve().parent.parent
CFG = make_config()
P0, UP1, UP2, R0, CE1 = range(5)
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


def run(frame, port=P0, cfg=CFG):
    fwd = ReferenceForwarder(cfg)
    out = fwd.process(port, [bytes(frame)])
    return out, fwd.counters()


def dropped(frame, port=P0, cfg=CFG) -> str:
    """Run one frame that must drop; return the one reason counted on the ingress port."""
    out, ctr = run(frame, port, cfg)
    assert out == []
    name = cfg.ports[port].name
    reasons = {r: n for r, n in ctr[name].items() if r in DROP_REASONS and n}
    assert ctr[name]["rx"] == 1 and len(reasons) == 1 and sum(reasons.values()) == 1, ctr
    assert all(c["tx"] == 0 for c in ctr.values())
    return next(iter(reasons))


def forwarded(frame, nexthop: str, port=P0, cfg=CFG) -> bytes:
    """Run one frame that must go to `nexthop`; check the rewrite with scapy; return it."""
    frame = bytes(frame)
    out, ctr = run(frame, port, cfg)
    egress = cfg.port(DEFAULT_NEXTHOPS[nexthop][0]).index
    assert [e for e, _ in out] == [egress]
    assert ctr[cfg.ports[port].name]["rx"] == 1 and ctr[cfg.ports[egress].name]["tx"] == 1
    assert sum(c[r] for c in ctr.values() for r in DROP_REASONS) == 0
    check_rewrite(frame, out[0][1], DEFAULT_NEXTHOPS[nexthop][1], port_mac(egress))
    return out[0][1]


def check_rewrite(frame: bytes, out: bytes, nh_mac: str, src_mac: str) -> None:
    pin, pout = Ether(frame), Ether(out)
    assert (pout.dst, pout.src) == (nh_mac, src_mac)
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


# --- forwarding and rewrite ------------------------------------------------------------

L4 = [TCP(sport=1234, dport=80, flags="S"), UDP(sport=53, dport=5353),
      SCTP(sport=3868, dport=3868), ICMP(type=8, id=0x4242, seq=7)]
L4_V6 = L4[:3] + [ICMPv6EchoRequest(id=0x4242, seq=7), ICMPv6DestUnreach()]


@pytest.mark.parametrize("l4", L4, ids=lambda x: x.name)
@pytest.mark.parametrize("tags", [(), (Dot1Q(vlan=10),), (Dot1AD(vlan=100), Dot1Q(vlan=10)),
                                  (Dot1Q(vlan=5), Dot1Q(vlan=6))], ids=len)
def test_ipv4_forwarded(l4, tags):
    forwarded(eth(*tags, v4(), l4, PAYLOAD), "nh1")


@pytest.mark.parametrize("l4", L4_V6, ids=lambda x: x.name)
@pytest.mark.parametrize("tags", [(), (Dot1Q(vlan=10),), (Dot1AD(vlan=100), Dot1Q(vlan=10))],
                         ids=len)
def test_ipv6_forwarded(l4, tags):
    forwarded(eth(*tags, v6(fl=0x12345), l4, PAYLOAD), "nh1")


def test_ipv4_options():
    pkt = eth(v4(options=[IPOption_Router_Alert(), IPOption_RR(routers=["1.2.3.4"])]),
              TCP(), PAYLOAD)
    assert Ether(bytes(pkt))[IP].ihl > 5
    forwarded(pkt, "nh1")


@pytest.mark.parametrize("exts", [
    [IPv6ExtHdrHopByHop()],
    [IPv6ExtHdrHopByHop(), IPv6ExtHdrRouting(addresses=["2001:db8::9"]), IPv6ExtHdrDestOpt()],
    [IPv6ExtHdrDestOpt(), IPv6ExtHdrFragment(m=1, offset=0, id=0xDEADBEEF)],
    [AH(nh=60, payloadlen=4, icv=bytes(12)), IPv6ExtHdrDestOpt()],
    [IPv6ExtHdrDestOpt()] * 8,
], ids=["hbh", "hbh-rt-dst", "dst-frag", "ah-dst", "8-ext"])
def test_ipv6_extension_headers(exts):
    pkt = eth(v6(), *exts, TCP(sport=4444, dport=443), PAYLOAD)
    p = parse(bytes(pkt))
    assert (p.drop, p.proto, p.sport, p.dport) == (None, 6, 4444, 443)
    forwarded(pkt, "nh1")


def test_too_many_ipv6_extension_headers():
    assert dropped(eth(v6(), *[IPv6ExtHdrDestOpt()] * 9, TCP())) == "unsupported"


def test_ttl():
    for ttl in (0, 1):
        assert dropped(eth(v4(ttl=ttl), UDP())) == "ttl_expired"
        assert dropped(eth(v6(hlim=ttl), UDP())) == "ttl_expired"
    for ttl in (2, 64, 255):
        forwarded(eth(v4(ttl=ttl), UDP(), PAYLOAD), "nh1")
        forwarded(eth(v6(hlim=ttl), UDP(), PAYLOAD), "nh1")


def test_ethernet_padding_kept():
    for tags in [(), (Dot1Q(vlan=7),)]:
        pkt = bytes(eth(*tags, v4(), ICMP(type=8))) + bytes(range(1, 19))
        out = forwarded(pkt, "nh1")
        assert out.endswith(bytes(range(1, 19))) and len(out) == len(pkt) - 4 * len(tags)
    out = forwarded(bytes(eth(v6(), UDP())) + b"\xee" * 6, "nh1")
    assert out.endswith(b"\xee" * 6)


# --- checksum ----------------------------------------------------------------------------

def test_rfc1624_example():
    # RFC 1624 §4: eqn. 3 yields 0x0000 where eqn. 2 wrongly yields 0xFFFF
    assert checksum_update(0xDD2F, 0x5555, 0x3285) == 0x0000


def udp4_with_checksum(ttl: int, target: int):
    """IPv4/UDP whose correct header checksum at TTL `ttl` is `target` (set through the id)."""
    pkt = v4(dst="10.7.7.7", ttl=ttl, id=0, chksum=0) / UDP(sport=1, dport=2)
    s = ~checksum(bytes(pkt)[:20]) & 0xFFFF          # one's complement sum of the other words
    pkt[IP].id = (0xFFFF - target - s) % 0xFFFF
    pkt[IP].chksum = None
    assert IP(bytes(pkt)).chksum == target
    return pkt


# 0xFFFF cannot be a correct IPv4 checksum (the words never sum to +0), so not listed
@pytest.mark.parametrize("target", [0x0000, 0x0001, 0xFFFE])
def test_checksum_corners(target):
    for ttl in (9, 10):                              # corner on the way out, then on the way in
        pkt = udp4_with_checksum(ttl, target)
        pkt[IP].ttl = 10
        forwarded(eth(pkt), "nh1")


def test_checksum_random_headers():
    rng = random.Random(1624)
    for _ in range(300):
        ip = v4(dst=f"10.{rng.randrange(3, 256)}.{rng.randrange(256)}.{rng.randrange(256)}",
                src=f"100.64.{rng.randrange(256)}.{rng.randrange(256)}",
                ttl=rng.randrange(2, 256), id=rng.randrange(65536), tos=rng.randrange(256),
                proto=rng.choice([0, 47, 50, 89, 253]))   # no L4 parse
        forwarded(eth(ip, Raw(bytes(rng.randrange(256) for _ in range(rng.randrange(40))))),
                  "nh1")


def test_wrong_checksum_stays_wrong_by_same_amount():
    for bad in (0x0000, 0xFFFF, 0x1234):
        forwarded(eth(v4(chksum=bad), UDP()), "nh1")     # check_rewrite asserts the sums


# --- parse fields ------------------------------------------------------------------------

def addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


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


# --- drops -------------------------------------------------------------------------------

@pytest.mark.parametrize("pkt,reason", [
    (Ether(dst=port_mac(0)) / ARP(), "unsupported"),
    (Ether(dst=port_mac(0), type=0x8847) / Raw(bytes(40)), "unsupported"),
    (eth(Dot1Q(), ARP()), "unsupported"),
    (eth(Dot1Q(), Dot1Q(), Dot1Q(), v4(), UDP()), "unsupported"),
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
], ids=lambda x: x if isinstance(x, str) else None)
def test_drop_reason(pkt, reason):
    assert dropped(pkt) == reason


TRUNCATE = [eth(v4(), TCP(), PAYLOAD),
            eth(v4(options=[IPOption_Router_Alert()]), ICMP(type=8)),
            eth(Dot1AD(), Dot1Q(), v4(), UDP()),
            eth(Dot1Q(), v6(), IPv6ExtHdrHopByHop(), IPv6ExtHdrFragment(m=1), SCTP()),
            eth(v6(), IPv6ExtHdrRouting(addresses=["2001:db8::1"]), ICMPv6EchoRequest())]


@pytest.mark.parametrize("pkt", TRUNCATE, ids=range(len(TRUNCATE)))
def test_truncated_at_every_length(pkt):
    frame = bytes(pkt)
    forwarded(frame, "nh1")
    for n in range(len(frame)):
        assert dropped(frame[:n]) == "truncated", n


# --- routing, VRFs, ports, counters ------------------------------------------------------

@pytest.mark.parametrize("port,dst,nexthop", [
    (P0, "10.9.9.9", "nh1"), (P0, "10.1.9.9", "nh2"), (P0, "10.1.2.3", "nh1"),
    (P0, "10.2.0.1", "nh3"),                                  # group: nh2 drained, nh3 first
    (P0, "2001:db8:ff::1", "nh1"), (P0, "2001:db8:1::1", "nh2"), (P0, "2001:db8:2::5", "nh3"),
    (R0, "10.1.2.3", "nh2"), (R0, "2001:db9::1", "nh2"),      # VRF red
])
def test_route(port, dst, nexthop):
    ip = v6(dst=dst) if ":" in dst else v4(dst=dst)
    forwarded(eth(ip, UDP(), PAYLOAD, port=port), nexthop, port=port)


def test_vrf_isolation():
    assert dropped(eth(v4(dst="11.0.0.1"), UDP(), port=R0), port=R0) == "no_route"


def test_port_without_vrf_drops():
    assert dropped(eth(v4(), UDP(), port=CE1), port=CE1) == "unsupported"


def test_group_all_drained_is_no_route():
    cfg = make_config(groups={"spines": [("nh1", 0), ("nh2", 0)]})
    assert dropped(eth(v4(dst="10.2.0.1"), UDP()), cfg=cfg) == "no_route"


def test_burst_order_and_counters():
    frames = [eth(v4(dst="10.1.0.1"), UDP()), eth(v4(ttl=1), UDP()), eth(v6(), TCP()),
              Ether() / ARP(), eth(v4(dst="10.2.0.1"), TCP()), bytes(eth(v4(), UDP()))[:30],
              eth(v6(dst="2001:db8:1::1"), UDP())]
    fwd = ReferenceForwarder(CFG)
    out = fwd.process(P0, [bytes(f) for f in frames])
    out += fwd.process(R0, [bytes(eth(v4(dst="10.0.0.1"), UDP(), port=R0))])
    assert [e for e, _ in out] == [UP2, UP1, UP1, UP2, UP2]
    assert [Ether(o)[IP].dst if IP in Ether(o) else Ether(o)[IPv6].dst for _, o in out] == \
           ["10.1.0.1", "2001:db8:ff::1", "10.2.0.1", "2001:db8:1::1", "10.0.0.1"]
    ctr = fwd.counters()
    zero = dict.fromkeys(("rx", "tx") + DROP_REASONS, 0)
    assert ctr == {"p0": {**zero, "rx": 7, "ttl_expired": 1, "unsupported": 1, "truncated": 1},
                   "up1": {**zero, "tx": 2}, "up2": {**zero, "tx": 3},
                   "r0": {**zero, "rx": 1}, "ce1": zero}


# --- the sample traffic and config -------------------------------------------------------

def load_gen_sample():
    spec = importlib.util.spec_from_file_location("gen_sample", ROOT / "tools" / "gen_sample.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def replay(cfg, pcap: Path) -> dict:
    fwd = ReferenceForwarder(cfg)
    fwd.process(0, [data for data, _ in RawPcapReader(str(pcap))])
    return fwd.counters()


def test_sample_traffic():
    gen = load_gen_sample()
    cfg = make_config(ports=gen.PORTS, nexthops=gen.NEXTHOPS, groups=gen.GROUPS, vrfs=gen.VRFS)
    ctr = replay(cfg, ROOT / "samples" / "sample.pcap")
    p0 = ctr["p0"]
    assert p0["rx"] == gen.PACKETS
    assert {r: p0[r] for r in DROP_REASONS if p0[r]} == gen.DROPS
    assert ctr["up1"]["tx"] > 0 and ctr["up2"]["tx"] > 0
    assert ctr["up1"]["tx"] + ctr["up2"]["tx"] == gen.PACKETS - sum(gen.DROPS.values())
    try:
        from dataplane.config import load
    except ImportError:
        pytest.skip("YAML loader not available yet")
    assert replay(load(ROOT / "samples" / "sample.yaml"), ROOT / "samples" / "sample.pcap") == ctr
