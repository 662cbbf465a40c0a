"""The MPLS contract (docs/mpls.md) in the reference model (dataplane/reference/mpls_input.py,
mpls_hash.py, push.py, mpls_output.py).

scapy is the oracle (inputs built with it, outputs decoded by it; label, s and ttl always
set explicitly: scapy's defaults rewrite a label before IP and use TTL 0). When tshark is
installed it decodes the same frames as a second oracle; every assertion made with scapy
is made without it, so nothing here is skipped when tshark is absent."""
from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest
from scapy.contrib.mpls import MPLS, EoMCW
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from dataplane import hashing
from dataplane.reference.mpls_hash import (pw_flow_hash, pw_flow_key, transit_hash,
                                           transit_key)
from dataplane.reference.mpls_input import (ELI, ETH_MPLS, LfibEntry, Lse, MplsDrop,
                                            l2_payload, overlay_decap, parse_stack, pop,
                                            process, pw_decap, swap)
from dataplane.reference.mpls_output import pw_encap
from dataplane.reference.parse import ETH_IPV4, ETH_IPV6
from dataplane.reference.push import (build_stack, el_pair_index, gre_encap, push_ip,
                                      udp_encap)
from dataplane.reference.rewrite import eth_frame

ROOT = Path(__file__).resolve().parent.parent
TSHARK = shutil.which("tshark")
SEED = 0x5EED0001
FIVE_TUPLE = 0x1F
NH_MAC, PORT_MAC = bytes.fromhex("020000000101"), bytes.fromhex("020000000002")


# ---- helpers --------------------------------------------------------------------------

def ipv4(src="10.0.0.1", dst="10.0.0.2", sport=1234, dport=80, ttl=64, tos=0, ip_id=1,
         payload=b"payload!") -> bytes:
    return bytes(IP(src=src, dst=dst, ttl=ttl, tos=tos, id=ip_id)
                 / TCP(sport=sport, dport=dport) / Raw(payload))


def ipv6(src="2001:db8::1", dst="2001:db8::2", sport=40000, dport=443, hlim=64, tc=0, fl=0):
    return bytes(IPv6(src=src, dst=dst, hlim=hlim, tc=tc, fl=fl)
                 / TCP(sport=sport, dport=dport) / Raw(b"payload!"))


def lse(label, tc=0, s=0, ttl=64) -> MPLS:
    return MPLS(label=label, cos=tc, s=s, ttl=ttl)


def region_of(*entries, payload: bytes = b"") -> bytes:
    """A label region built by scapy: entries are (label, tc, s, ttl)."""
    pkt = None
    for e in entries:
        pkt = lse(*e) if pkt is None else pkt / lse(*e)
    return bytes(pkt) + payload


def scapy_stack(pkt):
    """[(label, tc, s, ttl)] of the first MPLS stack in a scapy packet, and what follows."""
    out, layer = [], pkt.getlayer(MPLS)
    while isinstance(layer, MPLS):
        out.append((layer.label, layer.cos, layer.s, layer.ttl))
        layer = layer.payload
    return out, layer


def mpls_frame(region: bytes) -> bytes:
    return eth_frame(NH_MAC, PORT_MAC, ETH_MPLS, region)


def tshark(tmp_path, frames, *fields):
    """One row per frame: the values of each field, a list per field (all occurrences);
    None when tshark is not installed."""
    if not TSHARK:
        return None
    path = tmp_path / "frames.pcap"
    wrpcap(str(path), [Raw(f) for f in frames], linktype=1)
    cmd = [TSHARK, "-r", str(path), "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [[v.split(",") if v else [] for v in line.split("\t")] for line in out.splitlines()]


def tshark_stack(row, first=0):
    """(label, tc, s, ttl) tuples from the mpls.label/exp/bottom/ttl columns of a row."""
    cols = row[first:first + 4]
    return [tuple(int(v, 0) for v in entry) for entry in zip(*cols)]


MPLS_FIELDS = ("mpls.label", "mpls.exp", "mpls.bottom", "mpls.ttl")


def drop(fn, *args, **kwargs) -> str:
    with pytest.raises(MplsDrop) as e:
        fn(*args, **kwargs)
    return e.value.reason


# ---- §0-§2 entries and parsing ------------------------------------------------------------

def test_lse_matches_scapy_bit_for_bit():
    rng = random.Random(1)
    for _ in range(2000):
        label, tc, s, ttl = rng.randrange(1 << 20), rng.randrange(8), rng.randrange(2), \
            rng.randrange(256)
        wire = bytes(MPLS(label=label, cos=tc, s=s, ttl=ttl))
        assert Lse(label, tc, s, ttl).pack() == wire
        assert Lse.unpack(wire) == Lse(label, tc, s, ttl)


def test_parse_stack_bounds():
    body = region_of((100, 0, 0, 9), (200, 5, 1, 8), payload=ipv4())
    stack, off = parse_stack(body)
    assert stack == [Lse(100, 0, 0, 9), Lse(200, 5, 1, 8)] and off == 8
    assert drop(parse_stack, body[:6]) == "truncated"             # half an entry
    assert drop(parse_stack, body[:4]) == "truncated"             # no bottom of stack
    sixteen = region_of(*[(100 + i, 0, int(i == 15), 9) for i in range(16)])
    assert len(parse_stack(sixteen)[0]) == 16
    seventeen = region_of(*[(100 + i, 0, int(i == 16), 9) for i in range(17)])
    assert drop(parse_stack, seventeen) == "unsupported"
    assert drop(parse_stack, region_of((100, 0, 0, 9), (7, 0, 1, 0))) == "parse_error"
    # the end of an overlay's IP payload bounds the stack, not the frame
    assert drop(parse_stack, body, 0, 6) == "truncated"


def test_l2_payload_vlan_tags():
    frame = bytes(Ether() / Dot1Q(vlan=5) / Dot1Q(vlan=6, type=0x8847)
                  / lse(100, 0, 1, 9) / IP())
    assert l2_payload(frame) == (ETH_MPLS, 22)
    three = bytes(Ether() / Dot1Q() / Dot1Q() / Dot1Q(type=0x8847) / lse(100, 0, 1, 9))
    assert drop(l2_payload, three) == "unsupported"


# ---- §6-§7 ingress push -----------------------------------------------------------------

def test_push_ip_uniform_with_entropy(tmp_path):
    ip = ipv4(ttl=64, tos=0xB8)                  # EF: precedence 5
    h = 0xCFD65EFB
    out = push_ip(ip, [16001, 16002], [300], h=h, entropy=True, erld=8)
    assert out.el_readable
    el = hashing.entropy_label(h)
    expected = [(16001, 5, 0, 63), (16002, 5, 0, 63), (7, 5, 0, 0), (el, 5, 0, 0),
                (300, 5, 1, 63)]
    stack, inner = scapy_stack(Ether(mpls_frame(out.data)))
    assert stack == expected
    assert isinstance(inner, IP) and inner.ttl == 63 and inner.tos == 0xB8
    rebuilt = IP(bytes(inner))
    del rebuilt.chksum                           # recomputed by scapy: the update is exact
    assert IP(bytes(rebuilt)).chksum == inner.chksum
    assert bytes(inner.payload) == bytes(IP(ip).payload)           # payload untouched
    rows = tshark(tmp_path, [mpls_frame(out.data)], *MPLS_FIELDS, "ip.ttl")
    if rows is not None:
        assert tshark_stack(rows[0]) == expected and rows[0][4] == ["63"]


def test_push_ip_pipe_and_ipv6():
    ip = ipv6(hlim=10, tc=0x60)                  # traffic class 0x60: precedence 3
    out = push_ip(ip, [16001], h=5, ttl_model="pipe")
    stack, inner = scapy_stack(MPLS(out.data))
    assert stack == [(16001, 3, 1, 255)]
    assert isinstance(inner, IPv6) and inner.hlim == 9             # the IP hop still counts
    assert bytes(inner.payload) == bytes(IPv6(ip).payload)


def test_push_ip_ttl_expired_is_the_ip_paths():
    assert drop(push_ip, ipv4(ttl=1), [16001], h=0) == "ttl_expired"
    assert push_ip(ipv4(ttl=2), [16001], h=0).data[3] == 1        # label TTL 1 leaves


def test_push_depth_eight_and_more():
    labels = list(range(16001, 16009))
    out = push_ip(ipv4(), labels, [300], h=99, entropy=True, erld=16)
    stack, inner = scapy_stack(MPLS(out.data))
    assert [e[0] for e in stack] == labels + [7, hashing.entropy_label(99), 300]
    assert [e[2] for e in stack] == [0] * 10 + [1] and isinstance(inner, IP)
    build_stack(list(range(16001, 16017)), tc=0, ttl=64)          # 16 entries: the limit
    with pytest.raises(ValueError):
        build_stack(list(range(16001, 16016)), tc=0, ttl=64, entropy=True, el=16)


def test_eli_is_label_7_not_14(tmp_path):
    """VPP tests label 14 (the OAM alert label); RFC 6790's ELI is 7. Each assertion
    below fails if the ELI constant, the push, the transit hash or the egress used 14."""
    assert ELI == 7
    out = push_ip(ipv4(), [16001], h=1234, entropy=True)
    stack, _ = scapy_stack(MPLS(out.data))
    assert stack[1][0] == 7 and stack[1][3] == 0 and stack[2][0] == hashing.entropy_label(1234)
    with_7 = region_of((16001, 0, 0, 9), (7, 0, 0, 0), (5000, 0, 0, 0), (300, 0, 1, 9),
                       payload=ipv4())
    with_14 = with_7[:4] + Lse(14, 0, 0, 0).pack() + with_7[8:]
    args = dict(erld=8, payload_guess=True, mask=FIVE_TUPLE)
    assert transit_key(with_7, **args).key == (5000).to_bytes(4, "big")
    assert transit_key(with_14, **args).kind == "labels+ipv4"    # 14 is no indicator
    lfib = {16001: LfibEntry("pop"), 300: LfibEntry("pop-lookup", vrf=1)}
    assert process(with_7, lfib).kind == "ip"                     # pair popped
    assert drop(process, with_14, lfib) == "unsupported"          # 14 reached at top
    if TSHARK:
        path = tmp_path / "eli.pcap"
        wrpcap(str(path), [Raw(mpls_frame(out.data))], linktype=1)
        text = subprocess.run([TSHARK, "-r", str(path), "-V"], capture_output=True,
                              text=True, check=True).stdout
        assert "Label: 7 (Entropy Label Indicator (ELI))" in text


def test_entropy_label_never_reserved():
    rng = random.Random(7)
    span = (1 << 20) - 16
    edges = [0, 1, 15, 16, span - 1, span, span + 15, 2 * span, 0xFFFFFFFF, 0xFFFFFFF0]
    for h in edges + [rng.getrandbits(32) for _ in range(100_000)]:
        el = hashing.entropy_label(h)
        assert 16 <= el <= 0xFFFFF
    assert hashing.entropy_label(0) == 16 and hashing.entropy_label(span - 1) == 0xFFFFF
    assert hashing.entropy_label(span) == 16
    for h in edges:                              # and as pushed, decoded by scapy
        stack, _ = scapy_stack(MPLS(push_ip(ipv4(), [16001], h=h, entropy=True).data))
        assert stack[2][0] >= 16


@pytest.mark.parametrize("n,erld,k,readable", [
    (1, 8, 1, True),            # directly below the transport label: EL at 3
    (3, 8, 3, True),
    (6, 8, 6, True),            # EL at 8 = erld
    (7, 8, 6, True),            # below the 6th: the deepest readable place
    (8, 4, 2, True),
    (1, 3, 1, True),
    (5, 3, 1, True),
    (1, 2, 1, False),           # EL can be at 3 at best: not readable, default place
    (3, 2, 3, False),
    (4, 1, 4, False),
])
def test_erld_placement(n, erld, k, readable):
    transport = list(range(16001, 16001 + n))
    assert el_pair_index(n, erld) == (k, readable)
    out = push_ip(ipv4(), transport, [300], h=42, entropy=True, erld=erld)
    assert out.el_readable is readable           # False: count el_not_readable, no drop
    stack, inner = scapy_stack(MPLS(out.data))
    labels = [e[0] for e in stack]
    assert labels == transport[:k] + [7, hashing.entropy_label(42)] + transport[k:] + [300]
    assert (labels.index(7) + 2 <= erld) is readable
    assert isinstance(inner, IP)


# ---- §4-§6 LFIB actions and TTL ----------------------------------------------------------

def test_swap_one_for_two_keeps_tc_and_bottom():
    body = region_of((100, 3, 0, 10), (300, 1, 1, 63), payload=ipv4())
    for model in ("uniform", "pipe"):            # an LSR swap is the same in both
        out = swap(body, [200, 201], model)
        stack, inner = scapy_stack(MPLS(out))
        assert stack == [(200, 3, 0, 9), (201, 3, 0, 9), (300, 1, 1, 63)]
        assert bytes(inner) == ipv4()
    bottom = swap(region_of((100, 2, 1, 5), payload=ipv4()), [200])
    assert scapy_stack(MPLS(bottom))[0] == [(200, 2, 1, 4)]


def test_swap_ttl_expiry():
    for ttl in (0, 1):
        body = region_of((100, 0, 0, ttl), (300, 0, 1, 63), payload=ipv4())
        assert drop(swap, body, [200]) == "mpls_ttl_expired"
    assert swap(region_of((100, 0, 1, 2), payload=ipv4()), [200])[3] == 1


@pytest.mark.parametrize("model,label_ttl,ip_ttl,out_ttl", [
    ("uniform", 10, 64, 9),     # the label's TTL, lower, is copied to the IP header
    ("uniform", 50, 20, 19),    # never raised above the IP TTL: the lower one - 1
    ("pipe", 10, 64, 63),       # the IP header counts this node only
    ("uniform", 1, 64, None),   # label expires
    ("uniform", 50, 1, None),   # the lower TTL decides
    ("pipe", 50, 1, None),      # the IP TTL expires at the pipe's egress
    ("pipe", 1, 64, None),
])
def test_php_pop_ttl(model, label_ttl, ip_ttl, out_ttl):
    for ip in (ipv4(ttl=ip_ttl), ipv6(hlim=ip_ttl)):
        body = region_of((100, 5, 1, label_ttl), payload=ip)
        if out_ttl is None:
            assert drop(pop, body, model) == "mpls_ttl_expired"
            continue
        res = pop(body, model)
        assert res.kind == "ip" and res.vrf is None and res.ttl == out_ttl
        if ip[0] >> 4 == 4:
            pkt = IP(res.data)
            assert pkt.ttl == out_ttl
            again = IP(res.data)
            del again.chksum
            assert IP(bytes(again)).chksum == pkt.chksum           # checksum still exact
        else:
            pkt = IPv6(res.data)
            assert pkt.hlim == out_ttl
        assert bytes(pkt.payload) == bytes((IP if ip[0] >> 4 == 4 else IPv6)(ip).payload)


def test_pop_exposing_a_label_continues_in_the_lfib():
    lfib = {100: LfibEntry("pop"), 200: LfibEntry("swap", (201,))}
    body = region_of((100, 0, 0, 30), (200, 4, 1, 63), payload=ipv4())
    res = process(body, lfib)
    assert res.kind == "mpls" and res.entry.labels == (201,)
    assert scapy_stack(MPLS(res.data))[0] == [(201, 4, 1, 29)]      # one decrement, lowest
    res = process(body, lfib, "pipe")
    assert scapy_stack(MPLS(res.data))[0] == [(201, 4, 1, 62)]


def test_eli_el_popped_wherever_they_sit():
    ip = ipv4(ttl=64)
    el = 0x12345
    # the EL value and 7 are LFIB keys here: neither may ever select an entry
    lfib = {100: LfibEntry("pop"), 300: LfibEntry("pop-lookup", vrf=2),
            el: LfibEntry("swap", (999,)), 7: LfibEntry("swap", (998,)),
            500: LfibEntry("pop-xconnect", control_word=False)}
    cases = {
        "top (upstream PHP left them)": [(7, 0, 0, 0), (el, 0, 0, 0), (300, 0, 1, 20)],
        "below the popped label": [(100, 0, 0, 20), (7, 0, 0, 0), (el, 0, 0, 0),
                                   (300, 0, 1, 60)],
        "below the VPN label": [(100, 0, 0, 20), (300, 0, 0, 60), (7, 0, 0, 0),
                                (el, 0, 1, 0)],
        "two pairs": [(7, 0, 0, 0), (el, 0, 0, 0), (100, 0, 0, 20), (7, 0, 0, 0),
                      (el, 0, 0, 0), (300, 0, 1, 60)],
    }
    for name, entries in cases.items():
        res = process(region_of(*entries, payload=ip), lfib)
        assert (res.kind, res.vrf) == ("ip", 2), name
        assert IP(res.data).ttl == 19 and bytes(IP(res.data).payload) == bytes(IP(ip).payload)
    frame = bytes(Ether(dst="00:11:22:33:44:55") / IP() / UDP())
    res = process(region_of((500, 0, 0, 9), (7, 0, 0, 0), (el, 0, 0, 0), (77777, 0, 1, 1),
                            payload=frame), lfib)
    assert (res.kind, res.data, res.fat) == ("pw", frame, 77777)
    # a pair with nothing below: the payload is routed in the ingress port's VRF
    res = process(region_of((7, 0, 0, 0), (el, 0, 1, 0), payload=ip), lfib)
    assert (res.kind, res.vrf, IP(res.data).ttl) == ("ip", None, 63)
    # a transit swap leaves a pair deeper in the stack alone (it is the egress's)
    body = region_of((16001, 0, 0, 9), (7, 0, 0, 0), (el, 0, 0, 0), (300, 0, 1, 9))
    out = process(body, {16001: LfibEntry("swap", (16002,))}).data
    assert [e[0] for e in scapy_stack(MPLS(out))[0]] == [16002, 7, el, 300]


def test_explicit_null_and_reserved_labels():
    lfib = {200: LfibEntry("swap", (201,))}
    res = process(region_of((0, 0, 1, 9), payload=ipv4()), lfib)
    assert res.kind == "ip" and IP(res.data).ttl == 8
    res = process(region_of((2, 0, 1, 9), payload=ipv6()), lfib)
    assert res.kind == "ip" and IPv6(res.data).hlim == 8
    res = process(region_of((0, 0, 0, 9), (200, 0, 1, 63), payload=ipv4()), lfib)
    assert res.kind == "mpls" and scapy_stack(MPLS(res.data))[0] == [(201, 0, 1, 8)]
    for label in (1, 3, 4, 13, 14, 15):
        body = region_of((label, 0, 1, 9), payload=ipv4())
        assert drop(process, body, lfib) == "unsupported", label


def test_lfib_misses_and_malformed_payloads():
    lfib = {300: LfibEntry("pop-lookup", vrf=1), 100: LfibEntry("pop")}
    assert drop(process, region_of((123, 0, 1, 9), payload=ipv4()), lfib) == "no_lfib_entry"
    # unsupported label checked before the TTL, the TTL before the LFIB lookup
    assert drop(process, region_of((123, 0, 1, 1), payload=ipv4()), lfib) == \
        "mpls_ttl_expired"
    assert drop(process, region_of((14, 0, 1, 1), payload=ipv4()), lfib) == "unsupported"
    left = region_of((300, 0, 0, 9), (16001, 0, 1, 9), payload=ipv4())
    assert drop(process, left, lfib) == "unsupported"            # labels below a VPN label
    not_ip = region_of((100, 0, 1, 9), payload=b"\x50" + bytes(40))
    assert drop(process, not_ip, lfib) == "parse_error"
    assert drop(process, region_of((100, 0, 1, 9), payload=ipv4()[:19]), lfib) == "truncated"
    assert drop(process, region_of((100, 0, 1, 9)), lfib) == "truncated"


# ---- §8 transit hashing -------------------------------------------------------------------

def key_of(region, erld=8, guess=True, mask=FIVE_TUPLE, port=0):
    return transit_key(region, erld=erld, payload_guess=guess, mask=mask, ingress_port=port)


def words(*labels) -> bytes:
    return b"".join(x.to_bytes(4, "big") for x in labels)


def test_transit_key_payload_guess():
    top = [(16001, 0, 0, 9), (300, 0, 1, 9)]
    v4 = key_of(region_of(*top, payload=ipv4(sport=5555, dport=80)), port=3)
    assert v4.kind == "labels+ipv4"
    assert v4.key == words(16001, 300) + hashing.hash_input(
        4, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), 6, 5555, 80, 3, 0, FIVE_TUPLE)
    fl = key_of(region_of(*top, payload=ipv6(fl=0x12345)), mask=0x3F)
    assert fl.kind == "labels+ipv6" and fl.key[-4:] == bytes.fromhex("00012345")
    assert len(fl.key) == 8 + 44
    cw = key_of(region_of(*top, payload=bytes(4) + bytes(Ether() / IP())))
    assert (cw.kind, cw.payload, cw.key) == ("labels", "cw", words(16001, 300))
    other = key_of(region_of(*top, payload=b"\x20" + bytes(60)))
    assert (other.kind, other.payload) == ("labels", "other")
    off = key_of(region_of(*top, payload=ipv4()), guess=False)
    assert (off.kind, off.payload, off.key) == ("labels", "off", words(16001, 300))
    short = key_of(region_of(*top, payload=ipv4()[:19]))
    assert (short.kind, short.payload) == ("labels", "short")


def test_transit_key_el_and_erld():
    ip = ipv4()
    body = region_of((16001, 0, 0, 9), (7, 0, 0, 0), (5000, 0, 0, 0), (300, 0, 1, 9),
                     payload=ip)
    assert key_of(body).key == words(5000)
    assert key_of(body, erld=3).kind == "el"                        # EL at 3: readable
    at_edge = key_of(body, erld=2)                                  # ELI at 2, EL beyond
    assert (at_edge.kind, at_edge.payload, at_edge.key) == \
        ("labels", "unreadable", words(16001))                      # 7 is never hashed
    deep = region_of(*[(16001 + i, 0, 0, 9) for i in range(4)], (300, 0, 1, 9), payload=ip)
    assert key_of(deep, erld=4).key == words(16001, 16002, 16003, 16004)
    assert key_of(deep, erld=4).payload == "unreadable"             # bottom beyond erld
    assert key_of(deep, erld=5).kind == "labels+ipv4"
    null = key_of(region_of((16001, 0, 0, 9), (0, 0, 1, 9), payload=ip))
    assert null.key[:4] == words(16001) and null.kind == "labels+ipv4"   # 0 not hashed


def test_transit_hash_is_crc_then_fmix():
    body = region_of((16001, 0, 0, 9), (300, 0, 1, 9), payload=ipv4())
    k = key_of(body).key
    assert transit_hash(body, erld=8, payload_guess=True, mask=FIVE_TUPLE, seed=SEED) == \
        hashing.fmix32(hashing.crc(k) ^ SEED)


def pw_frames(n_flows=64, same_flow=False, dst_mac="48:2c:a0:00:00:01"):
    """Frames of ONE MAC pair carrying different inner UDP flows (or one flow, varying
    IP id as real senders do)."""
    rng = random.Random(5)
    out = []
    for i in range(n_flows):
        sport = 1000 if same_flow else 1000 + i
        inner = (Ether(dst=dst_mac, src="00:00:0c:06:00:02")
                 / IP(src="192.168.1.10", dst="192.168.2.20", id=rng.randrange(65536))
                 / UDP(sport=sport, dport=53) / Raw(b"q" * 30))
        out.append(bytes(inner))
    return out


def members_hit(hashes, n=4):
    return {hashing.bucket_of(h, n) for h in hashes}


def test_mac_starting_with_4_without_control_word(tmp_path):
    """SPEC §7: a transit LSR guessing the payload reads an Ethernet PW without a control
    word whose destination MAC starts with 4 as IPv4: the 'addresses' and 'ports' it
    hashes are bytes of the inner frame, so one MAC pair spreads over every member
    (different inner flows) and even one inner flow is sprayed (the IP id varies):
    reordering. With the control word (first nibble 0) the PW hashes on its labels."""
    def hashes(frames, cw):
        out = []
        for f in frames:
            region = pw_encap(f, [16001], 500, fat=False, control_word=cw, h=0).data
            out.append(transit_hash(region, erld=8, payload_guess=True, mask=FIVE_TUPLE,
                                    seed=SEED))
        return out

    flows, one_flow = pw_frames(), pw_frames(same_flow=True)
    region = pw_encap(flows[0], [16001], 500, fat=False, control_word=False, h=0).data
    assert key_of(region).kind == "labels+ipv4"                     # misread as IPv4
    assert len(members_hit(hashes(flows, cw=False))) == 4           # spread over 4 members
    assert len(set(hashes(one_flow, cw=False))) > 1                 # one flow, sprayed
    assert len(set(hashes(flows, cw=True))) == 1                    # constant with the CW
    assert key_of(pw_encap(flows[0], [16001], 500, fat=False, control_word=True,
                           h=0).data).payload == "cw"
    # a MAC starting with 0 is not misread, CW or not
    zero = pw_frames(dst_mac="00:1b:21:00:00:01")
    assert len(set(hashes(zero, cw=False))) == 1
    # scapy and tshark make the same guess without the control word, not with it
    assert isinstance(MPLS(region).getlayer(MPLS, 2).payload, IP)
    cw_region = pw_encap(flows[0], [16001], 500, fat=False, control_word=True, h=0).data
    assert isinstance(MPLS(cw_region).getlayer(MPLS, 2).payload, EoMCW)
    rows = tshark(tmp_path, [mpls_frame(region), mpls_frame(cw_region)], "frame.protocols")
    if rows is not None:
        assert rows[0][0][0].startswith("eth:ethertype:mpls:ip")
        assert "pwethcw:eth:ethertype:ip:udp" in rows[1][0][0]


# ---- §9 pseudowires -----------------------------------------------------------------------

@pytest.mark.parametrize("fat,cw", [(False, False), (True, False), (False, True), (True, True)])
def test_pw_encap_decap_round_trip(tmp_path, fat, cw):
    frame = bytes(Ether(dst="00:1b:21:00:00:01", src="00:1b:21:00:00:02") / Dot1Q(vlan=7)
                  / IP(src="192.168.1.10", dst="192.168.2.20") / UDP(sport=7, dport=9)
                  / Raw(b"z" * 20))
    h = pw_flow_hash(frame, FIVE_TUPLE, SEED, ingress_port=4)
    assert pw_flow_key(frame, FIVE_TUPLE, 4) == hashing.hash_input(
        4, bytes([192, 168, 1, 10]), bytes([192, 168, 2, 20]), 17, 7, 9, 4, 0, FIVE_TUPLE)
    out = pw_encap(frame, [16001, 16002], 500, fat=fat, control_word=cw, h=h)
    expected = [(16001, 0, 0, 255), (16002, 0, 0, 255), (500, 0, int(not fat), 255)]
    if fat:
        expected.append((hashing.entropy_label(h), 0, 1, 1))
    stack, rest = scapy_stack(Ether(mpls_frame(out.data)))
    assert stack == expected
    if cw:
        assert isinstance(rest, EoMCW) and (rest.zero, rest.reserved, rest.seq) == (0, 0, 0)
        rest = rest.payload
    assert bytes(rest) == frame                  # scapy decodes the inner frame as is
    lfib = {16001: LfibEntry("pop"), 16002: LfibEntry("pop"),
            500: LfibEntry("pop-xconnect", control_word=cw, name="pw1")}
    res = process(out.data, lfib)
    assert (res.kind, res.data, res.fat) == ("pw", frame, expected[-1][0] if fat else None)
    assert pw_decap(out.data[8:], cw) == (500, res.fat, frame)
    rows = tshark(tmp_path, [mpls_frame(out.data)], *MPLS_FIELDS, "eth.dst", "vlan.id")
    if rows is not None:
        assert tshark_stack(rows[0]) == expected
        assert rows[0][4] == [":".join(f"{b:02x}" for b in NH_MAC), "00:1b:21:00:00:01"]
        assert rows[0][5] == ["7"]


def test_pw_with_entropy_and_non_ip_key():
    frame = bytes(Ether(dst="00:1b:21:00:00:01", src="00:1b:21:00:00:02", type=0x88CC)
                  / Raw(b"lldp" * 10))
    assert pw_flow_key(frame, FIVE_TUPLE) == frame[:14] + b"\x00\x00"
    h = pw_flow_hash(frame, FIVE_TUPLE, SEED)
    out = pw_encap(frame, [16001], 500, fat=True, control_word=True, h=h, entropy=True)
    el = hashing.entropy_label(h)
    stack, _ = scapy_stack(MPLS(out.data))
    assert stack == [(16001, 0, 0, 255), (7, 0, 0, 0), (el, 0, 0, 0), (500, 0, 0, 255),
                     (el, 0, 1, 1)]
    res = process(out.data, {16001: LfibEntry("pop"),
                             500: LfibEntry("pop-xconnect", control_word=True)})
    assert (res.kind, res.data) == ("pw", frame)


def test_fat_label_spreads_inner_flows_and_keeps_each_flow_together():
    def hashes(frames):
        out = []
        for f in frames:
            h = pw_flow_hash(f, FIVE_TUPLE, SEED)
            region = pw_encap(f, [16001], 500, fat=True, control_word=True, h=h).data
            assert key_of(region).payload == "cw"
            out.append(transit_hash(region, erld=8, payload_guess=True, mask=FIVE_TUPLE,
                                    seed=0x3EF69BFF))
        return out
    assert len(members_hit(hashes(pw_frames()))) == 4               # flows spread (RFC 6391)
    assert len(set(hashes(pw_frames(same_flow=True)))) == 1         # each flow stays whole


def test_pw_decap_errors():
    frame = bytes(Ether() / IP())
    lfib = {500: LfibEntry("pop-xconnect", control_word=True)}
    ok = region_of((500, 0, 1, 9), payload=bytes(4) + frame)
    assert process(ok, lfib).data == frame
    ach = region_of((500, 0, 1, 9), payload=b"\x10\x00\x00\x07" + frame)
    assert drop(process, ach, lfib) == "unsupported"              # PW ACH (OAM)
    bad = region_of((500, 0, 1, 9), payload=b"\x40\x00\x00\x00" + frame)
    assert drop(process, bad, lfib) == "parse_error"
    assert drop(process, region_of((500, 0, 1, 9), payload=b"\x00\x00"), lfib) == "truncated"
    short = region_of((500, 0, 1, 9), payload=bytes(4) + frame[:13])
    assert drop(process, short, lfib) == "truncated"
    extra = region_of((500, 0, 0, 9), (600, 0, 0, 1), (700, 0, 1, 1), payload=bytes(4) + frame)
    assert drop(process, extra, lfib) == "unsupported"            # only one FAT label
    assert drop(process, region_of((500, 0, 1, 1), payload=bytes(4) + frame), lfib) == \
        "mpls_ttl_expired"


# ---- §10 overlays -------------------------------------------------------------------------

LOCAL4, REMOTE4 = "192.0.2.1", "203.0.113.9"
LOCAL6, REMOTE6 = "2001:db8:ffff::1", "2001:db8:ffff::9"


def overlay_region(ttl=63):
    out = push_ip(ipv4(ttl=ttl + 1, tos=0x60), [], [20], h=0)       # service label only
    return out.data


@pytest.mark.parametrize("family", [4, 6])
def test_mpls_over_udp_round_trip(tmp_path, family):
    region = overlay_region()
    local, remote = (LOCAL4, REMOTE4) if family == 4 else (LOCAL6, REMOTE6)
    rng = random.Random(family)
    frames = []
    for h in [0, 16383, 16384, 0xFFFFFFFF] + [rng.getrandbits(32) for _ in range(200)]:
        outer = udp_encap(region, local, remote, h=h)
        frame = eth_frame(NH_MAC, PORT_MAC, ETH_IPV4 if family == 4 else ETH_IPV6, outer)
        pkt = Ether(frame)
        ip = pkt[IP] if family == 4 else pkt[IPv6]
        udp = pkt[UDP]
        assert (ip.src, ip.dst) == (local, remote)
        assert udp.dport == 6635 and udp.sport == 49152 + h % 16384
        assert 49152 <= udp.sport <= 65535 and udp.len == 8 + len(region)
        if family == 4:
            assert ip.flags == "DF" and ip.ttl == 64 and ip.tos == 3 << 5 and ip.id == 0
            assert udp.chksum == 0 and ip.len == 28 + len(region)
            check = IP(bytes(ip))
            del check.chksum
            assert IP(bytes(check)).chksum == ip.chksum
        else:
            assert ip.hlim == 64 and ip.tc == 3 << 5 and ip.fl == h & 0xFFFFF and ip.nh == 17
            check = IPv6(bytes(ip))
            del check[UDP].chksum
            assert IPv6(bytes(check))[UDP].chksum == udp.chksum != 0
        stack, inner = scapy_stack(pkt)
        assert stack == [(20, 3, 1, 63)] and bytes(inner) == region[4:]
        assert overlay_decap(frame, remote) == region
        frames.append(frame)
    res = process(overlay_decap(frames[0], remote), {20: LfibEntry("pop-lookup", vrf=3)})
    assert res.kind == "ip" and res.vrf == 3 and IP(res.data).ttl == 62
    rows = tshark(tmp_path, frames[:4], "udp.srcport", "udp.dstport", "udp.checksum",
                  *MPLS_FIELDS)
    if rows is not None:
        for row, sport in zip(rows, [49152, 65535, 49152, 49152 + 0xFFFFFFFF % 16384]):
            assert row[0] == [str(sport)] and row[1] == ["6635"]
            assert tshark_stack(row, 3) == [(20, 3, 1, 63)]
            if family == 4:
                assert int(row[2][0], 16) == 0


@pytest.mark.parametrize("family", [4, 6])
def test_mpls_over_gre_round_trip(tmp_path, family):
    region = overlay_region()
    local, remote = (LOCAL4, REMOTE4) if family == 4 else (LOCAL6, REMOTE6)
    outer = gre_encap(region, local, remote, h=0xABCDE)
    frame = eth_frame(NH_MAC, PORT_MAC, ETH_IPV4 if family == 4 else ETH_IPV6, outer)
    pkt = Ether(frame)
    gre = pkt[GRE]
    assert gre.proto == 0x8847 and (gre.chksum_present, gre.key_present, gre.seqnum_present,
                                    gre.version) == (0, 0, 0, 0)
    assert bytes(gre)[:4] == bytes.fromhex("00008847")
    if family == 4:
        assert pkt[IP].proto == 47 and pkt[IP].flags == "DF"
    else:
        assert pkt[IPv6].nh == 47 and pkt[IPv6].fl == 0xABCDE
    stack, inner = scapy_stack(pkt)
    assert stack == [(20, 3, 1, 63)] and bytes(inner) == region[4:]
    assert overlay_decap(frame, remote) == region
    rows = tshark(tmp_path, [frame], "gre.proto", *MPLS_FIELDS)
    if rows is not None:
        assert int(rows[0][0][0], 16) == 0x8847
        assert tshark_stack(rows[0], 1) == [(20, 3, 1, 63)]


def test_overlay_decap_rules():
    region = overlay_region()
    frame = eth_frame(NH_MAC, PORT_MAC, ETH_IPV4, udp_encap(region, LOCAL4, REMOTE4, h=1))
    assert overlay_decap(frame, REMOTE4) == region                # for the remote node
    assert overlay_decap(frame, "192.0.2.99") is None             # not ours: routed
    padded = frame + bytes(20)                                      # Ethernet padding
    assert overlay_decap(padded, REMOTE4) == region
    other_port = bytes(Ether() / IP(src=LOCAL4, dst=REMOTE4) / UDP(sport=1, dport=4789) / region)
    assert drop(overlay_decap, other_port, REMOTE4) == "unsupported"
    keyed = bytes(Ether() / IP(src=LOCAL4, dst=REMOTE4, ttl=1)
                  / GRE(proto=0x8847, key_present=1, key=77, chksum_present=1) / region)
    assert overlay_decap(keyed, REMOTE4) == region                # C, K skipped; TTL 1 ok
    v1 = bytes(Ether() / IP(src=LOCAL4, dst=REMOTE4) / GRE(proto=0x8847, version=1) / region)
    assert drop(overlay_decap, v1, REMOTE4) == "unsupported"
    ipip = bytes(Ether() / IP(src=LOCAL4, dst=REMOTE4) / GRE(proto=0x0800) / ipv4())
    assert drop(overlay_decap, ipip, REMOTE4) == "unsupported"
    frag = bytes(Ether() / IP(src=LOCAL4, dst=REMOTE4, flags="MF") / UDP(dport=6635) / region)
    assert drop(overlay_decap, frag, REMOTE4) == "unsupported"
    martian = bytes(Ether() / IP(src="127.0.0.1", dst=REMOTE4) / UDP(dport=6635) / region)
    assert drop(overlay_decap, martian, REMOTE4) == "martian"
    ext = bytes(Ether() / IPv6(src=LOCAL6, dst=REMOTE6) / IPv6ExtHdrHopByHop()
                / UDP(sport=50000, dport=6635) / region)
    assert overlay_decap(ext, REMOTE6) == region


# ---- docs/mpls.md §12 vectors ------------------------------------------------------------

def vector_inputs():
    tcp4 = ipv4(sport=1234, dport=80)
    tcp6 = ipv6(sport=40000, dport=443, fl=0x12345)
    frame = bytes(Ether(dst="48:2c:a0:00:00:01", src="00:00:0c:06:00:02")
                  / IP(src="192.168.1.10", dst="192.168.2.20", id=7)
                  / UDP(sport=1000, dport=53))
    return {
        "el": (region_of((16001, 0, 0, 63), (7, 0, 0, 0), (470747, 0, 0, 0), (300, 0, 1, 63),
                         payload=tcp4), 8, FIVE_TUPLE),
        "labels-ipv4": (region_of((16001, 0, 0, 63), (300, 0, 1, 63), payload=tcp4), 8,
                        FIVE_TUPLE),
        "labels-ipv6": (region_of((16001, 0, 0, 63), (300, 0, 1, 63), payload=tcp6), 8, 0x3F),
        "explicit-null": (region_of((16001, 0, 0, 63), (0, 0, 1, 63), payload=tcp4), 8,
                          FIVE_TUPLE),
        "pw-cw-fat": (region_of((16001, 0, 0, 255), (500, 0, 0, 255), (123456, 0, 1, 1),
                                payload=bytes(4) + frame), 8, FIVE_TUPLE),
        "pw-no-cw": (region_of((16001, 0, 0, 255), (500, 0, 1, 255), payload=frame), 8,
                     FIVE_TUPLE),
        "erld-2": (region_of((16001, 0, 0, 63), (16002, 0, 0, 63), (7, 0, 0, 0),
                             (470747, 0, 0, 0), (300, 0, 1, 63), payload=tcp4), 2, FIVE_TUPLE),
    }


def doc_vectors() -> dict[str, list[str]]:
    text = (ROOT / "docs" / "mpls.md").read_text()
    section = text.split("## 12. Test vectors", 1)[1]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 6 and cells[0] in vector_inputs():
            rows[cells[0]] = cells
    return rows


def test_doc_vectors():
    rows = doc_vectors()
    inputs = vector_inputs()
    assert set(rows) == set(inputs)
    for name, (region, erld, mask) in inputs.items():
        k = transit_key(region, erld=erld, payload_guess=True, mask=mask)
        crc = hashing.crc(k.key)
        h = hashing.finalize(crc, SEED)
        row = rows[name]
        assert row[4] == k.kind, name
        assert row[5].replace(" ", "") == k.key.hex(), name
        assert int(row[6], 16) == crc and int(row[7], 16) == h, name
        assert int(row[8]) == hashing.bucket_of(h, 4096), name
