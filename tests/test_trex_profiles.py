"""The TRex profiles of trex_profiles/ load in TRex's own client library and send what their
docstrings promise; their pairing configs (trex_profiles/configs/) pass `dataplane check`
and match the profiles (MACs, labels, tunnel address, the feature each one shows).

Every profile is loaded by TRex v3.08's library (dataplane/trex/library.py, a plain
python3 subprocess; a missing library raises TrexError, which says where it looked: no
skip) with its default tunables, at least one non-default set, and on port 1 (direction
1). Each stream's compiled packet is decoded with the venv's scapy, an oracle independent
of TRex's bundled scapy, and its headers checked; every field-engine instruction is
checked to be a simple one (flow var inc/dec/random, write, masked write, checksum fix,
trim), to write inside the packet and onto the field the docstring names (the writes are
applied here to a copy of the packet for a few variable values, and the result decoded),
and a checksum fix must follow writes into an IP or L4 header.
"""
from __future__ import annotations

import ast
import base64
import ipaddress
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from scapy.contrib.mpls import MPLS, EoMCW  # noqa: F401  (binds UDP 6635, EtherType 0x8847)
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Padding, Raw

from dataplane.config import validate
from dataplane.trex.library import TrexError, load_streams

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "trex_profiles"
CONFIGS = PROFILES / "configs"
PROFILE_NAMES = sorted(p.stem for p in PROFILES.glob("*.py") if p.stem != "trex_common")
CONFIG_FILES = sorted(CONFIGS.glob("*.yaml"))

TREX_MAC = "02:00:00:00:10:%02x"        # TRex port i: ...:(i + 1)
DUT_MAC = "02:00:00:00:00:%02x"         # the pairing config's port i: ...:(i + 1)
L4_UDP, L4_TCP, L4_IP = 11, 13, 17      # CTRexVmInsFixHwCs.L4_TYPE_*
SIMPLE_INSTRUCTIONS = {"flow_var", "write_flow_var", "write_mask_flow_var",
                       "fix_checksum_hw", "trim_pkt_size"}
ALT_MACS = ("--src-mac", "02:aa:00:00:00:07", "--dst-mac", "02:bb:00:00:00:09")


@dataclass(frozen=True)
class Case:
    profile: str
    tunables: tuple = ()
    port: int = 0

    @property
    def direction(self) -> int:
        return self.port % 2               # as TRex (and load_streams) default it

    def arg(self, name: str, default):
        """The value of tunable `name` in this case (a flag: True when present)."""
        t = list(self.tunables)
        if name in t:
            i = t.index(name)
            if isinstance(default, bool):
                return True
            return type(default)(t[i + 1])
        return default

    def __str__(self) -> str:
        tunables = " -t " + " ".join(self.tunables) if self.tunables else ""
        return f"{self.profile}[port {self.port}]{tunables}"


CASES = {
    "udp_flows": [Case("udp_flows"), Case("udp_flows", port=1),
                  Case("udp_flows", ("--flows", "5", "--size", "128")),
                  Case("udp_flows", ("--flows", "70000", "--size", "1514") + ALT_MACS, 1)],
    "imix": [Case("imix"), Case("imix", port=1),
             Case("imix", ("--flows", "3") + ALT_MACS)],
    "ipv6_flows": [Case("ipv6_flows"), Case("ipv6_flows", port=1),
                   Case("ipv6_flows", ("--flows", "20000", "--size", "62")),
                   Case("ipv6_flows", ("--size", "1518") + ALT_MACS, 1)],
    "syn_flood": [Case("syn_flood"), Case("syn_flood", port=1),
                  Case("syn_flood", ("--established", "0", "--size", "128")),
                  Case("syn_flood", ("--established", "300", "--syn-delay-ms", "5") + ALT_MACS,
                       1)],
    "ip_fragments": [Case("ip_fragments"), Case("ip_fragments", port=1),
                     Case("ip_fragments", ("--flows", "3", "--datagram", "1490")),
                     Case("ip_fragments", ("--datagram", "9000", "--mtu", "1280",
                                           "--reverse") + ALT_MACS, 1),
                     Case("ip_fragments", ("--datagram", "100", "--mtu", "68"))],
    "lsr_entropy": [Case("lsr_entropy"), Case("lsr_entropy", port=1),
                    Case("lsr_entropy", ("--flows", "10", "--size", "60", "--label", "100")),
                    Case("lsr_entropy", ("--fixed-inner",) + ALT_MACS, 1)],
    "pw_ethernet": [Case("pw_ethernet"), Case("pw_ethernet", port=1),
                    Case("pw_ethernet", ("--cw",)),
                    Case("pw_ethernet", ("--cw", "--fat", "--flows", "9", "--size", "200")),
                    Case("pw_ethernet", ("--no-cw", "--fat", "--macs", "6", "--label", "0")),
                    Case("pw_ethernet", ("--cw", "--macs", "4", "--pw-label", "777",
                                         "--label", "0") + ALT_MACS, 1)],
    "mpls_udp": [Case("mpls_udp"), Case("mpls_udp", port=1),
                 Case("mpls_udp", ("--flows", "4", "--size", "90", "--label", "301",
                                   "--tunnel-address", "198.51.100.1",
                                   "--remote", "198.51.100.2")),
                 Case("mpls_udp", ("--size", "1514",) + ALT_MACS, 1)],
    "fat_flow_ssh": [Case("fat_flow_ssh"), Case("fat_flow_ssh", port=1),
                     Case("fat_flow_ssh", ("--sessions", "64511", "--clients", "8",
                                           "--size", "60")),
                     Case("fat_flow_ssh", ("--sessions", "5",) + ALT_MACS, 1)],
}
ALL_CASES = [c for name in sorted(CASES) for c in CASES[name]]
# tunables each profile must refuse (besides -t --bogus), with a word of the message
REFUSED = {
    "udp_flows": [(("--size", "59"), "--size")],
    "imix": [(("--size", "128"), "unrecognized")],
    "ipv6_flows": [(("--size", "61"), "--size")],
    "syn_flood": [(("--established", "-1"), "--established")],
    "ip_fragments": [(("--datagram", "1480"), "--datagram")],
    "lsr_entropy": [(("--label", "7"), "--label")],
    "pw_ethernet": [(("--macs", "5"), "--macs"), (("--cw", "--size", "67"), "--size")],
    "mpls_udp": [(("--tunnel-address", "192.0.2.300"), "IPv4")],
    "fat_flow_ssh": [(("--sessions", "64513"), "--sessions")],
}


# ---- loading (TRex's library, one python3 subprocess per load: run them in parallel) --

_loaded: dict = {}


def _load(key):
    profile, tunables, port = key
    try:
        return load_streams(PROFILES / f"{profile}.py", tunables, port=port)
    except TrexError as e:
        return e


@pytest.fixture(scope="module")
def loaded():
    keys = [(c.profile, c.tunables, c.port) for c in ALL_CASES]
    keys += [(name, ("--bogus",), 0) for name in PROFILE_NAMES]
    keys += [(name, t, 0) for name, refused in REFUSED.items() for t, _ in refused]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for key, result in zip(keys, pool.map(_load, keys)):
            _loaded[key] = result
    return _loaded


def streams_of(loaded, case: Case) -> list:
    result = loaded[(case.profile, case.tunables, case.port)]
    if isinstance(result, TrexError):
        raise result
    return result


# ---- packets and field-engine programs -------------------------------------------------

def raw_of(stream) -> bytes:
    return base64.b64decode(stream["packet"]["binary"])


def layer_offset(pkt, cls, nth: int = 0) -> int:
    """Offset of the nth `cls` layer of a decoded frame (exact class, not a subclass)."""
    total, layer, seen = len(bytes(pkt)), pkt, 0
    while layer is not None and not isinstance(layer, (Raw, Padding)) and layer.name:
        if type(layer) is cls:
            if seen == nth:
                return total - len(bytes(layer))
            seen += 1
        layer = layer.payload if layer.payload else None
    raise AssertionError(f"no {cls.__name__}:{nth} in {pkt.summary()}")


def label_stack(raw: bytes, off: int = 14):
    """[(label, tc, s, ttl)] from `off` to the bottom of stack, and the payload offset."""
    stack = []
    while True:
        word = int.from_bytes(raw[off:off + 4], "big")
        stack.append((word >> 12, (word >> 9) & 7, (word >> 8) & 1, word & 0xFF))
        off += 4
        if word >> 8 & 1:
            return stack, off


def instructions(stream) -> list:
    return stream["vm"]["instructions"]


def flow_vars(stream) -> dict:
    return {i["name"]: i for i in instructions(stream) if i["type"] == "flow_var"}


def writes(stream) -> set:
    """{(offset, bytes, mask)} of the program's writes (mask None for a plain write)."""
    sizes = {n: v["size"] for n, v in flow_vars(stream).items()}
    out = set()
    for i in instructions(stream):
        if i["type"] == "write_flow_var":
            out.add((i["pkt_offset"], sizes[i["name"]], None))
        elif i["type"] == "write_mask_flow_var":
            out.add((i["pkt_offset"], i["pkt_cast_size"], i["mask"]))
    return out


def apply(stream, **values) -> bytes:
    """The stream's packet after its writes with the flow variables at `values` (what the
    field engine writes; checksums are not recomputed here)."""
    pkt = bytearray(raw_of(stream))
    sizes = {n: v["size"] for n, v in flow_vars(stream).items()}
    for i in instructions(stream):
        if i["type"] == "write_flow_var":
            n, o = sizes[i["name"]], i["pkt_offset"]
            v = (values[i["name"]] + i["add_value"]) % (1 << 8 * n)
            pkt[o:o + n] = v.to_bytes(n, "big")
        elif i["type"] == "write_mask_flow_var":
            n, o = i["pkt_cast_size"], i["pkt_offset"]
            v = values[i["name"]] % (1 << 8 * n) + i["add_value"]
            v = v << i["shift"] if i["shift"] >= 0 else v >> -i["shift"]
            old = int.from_bytes(pkt[o:o + n], "big")
            pkt[o:o + n] = (((old & ~i["mask"]) | (v & i["mask"])) % (1 << 8 * n)).to_bytes(
                n, "big")
    return bytes(pkt)


def assert_flow_var(stream, name, lo, hi, op="inc", size=None):
    v = flow_vars(stream)[name]
    assert (v["min_value"], v["max_value"], v["op"]) == (lo, hi, op), v
    if size is not None:
        assert v["size"] == size, v


def ip_int(text: str) -> int:
    return int(ipaddress.ip_address(text))


def ip_text(n: int) -> str:
    return str(ipaddress.ip_address(n))


def assert_fix(stream, l3_offset, l4_type, raw=None):
    """The program ends with one STLVmFixChecksumHw on the IP header at l3_offset."""
    ins = instructions(stream)
    fixes = [i for i in ins if i["type"] == "fix_checksum_hw"]
    assert len(fixes) == 1 and ins[-1] is fixes[0], ins
    fix = fixes[0]
    raw = raw or raw_of(stream)
    assert fix["l2_len"] == l3_offset and fix["l4_type"] == l4_type, fix
    version = raw[l3_offset] >> 4
    header = (raw[l3_offset] & 15) * 4 if version == 4 else 40
    assert version in (4, 6) and fix["l3_len"] == header, fix
    proto = raw[l3_offset + 9] if version == 4 else raw[l3_offset + 6]
    assert {L4_UDP: 17, L4_TCP: 6}.get(l4_type, proto) == proto, (fix, proto)


# ---- what every stream of every profile must satisfy --------------------------------

def check_common(case: Case, streams: list):
    assert streams, f"{case}: no stream"
    names = [s["name"] for s in streams]
    assert len(set(names)) == len(names) and all(names), names
    src = case.arg("--src-mac", TREX_MAC % (case.port + 1))
    dst = case.arg("--dst-mac", DUT_MAC % (case.port + 1))
    for s in streams:
        raw = raw_of(s)
        assert len(raw) >= 60, (s["name"], len(raw))
        eth = Ether(raw)
        assert (eth.src, eth.dst) == (src, dst), (s["name"], eth.src, eth.dst)
        # TRex sends the packet's own MACs: source and destination override flags set
        assert s["flags"] & 1 and (s["flags"] >> 1) & 3 == 1, s["flags"]
        assert s["mode"]["type"] == "continuous" and s["mode"]["rate"]["value"] > 0
        defined = set()
        for i in instructions(s):
            assert i["type"] in SIMPLE_INSTRUCTIONS, i
            if i["type"] == "flow_var":
                assert i["op"] in ("inc", "dec", "random") and not i.get("value_list"), i
                assert i["min_value"] <= i["max_value"], i
                defined.add(i["name"])
            elif i["type"] == "write_flow_var":
                assert i["name"] in defined, i
                size = flow_vars(s)[i["name"]]["size"]
                assert 0 <= i["pkt_offset"] and i["pkt_offset"] + size <= len(raw), i
            elif i["type"] == "write_mask_flow_var":
                assert i["name"] in defined, i
                assert 0 <= i["pkt_offset"] and \
                    i["pkt_offset"] + i["pkt_cast_size"] <= len(raw), i
            elif i["type"] == "fix_checksum_hw":
                assert 14 <= i["l2_len"] and i["l2_len"] + i["l3_len"] <= len(raw), i
        for off, n, _ in writes(s):
            assert off >= 12, (s["name"], off)        # MACs are never rewritten
        check_checksum_rule(s, raw, DECODERS.get(case.profile, Ether)(raw))


def decode_pw(raw: bytes):
    """An Ethernet PW frame as what it is: labels, control word if any, inner frame (scapy
    alone would dissect a frame whose inner MAC starts with 4 or 6 as IP)."""
    _, off = label_stack(raw)
    head = Ether(raw[:off])
    return head / (EoMCW(raw[off:]) if raw[off] >> 4 == 0 else Ether(raw[off:]))


DECODERS = {"pw_ethernet": decode_pw}


def check_checksum_rule(stream, raw: bytes, pkt):
    """A write into an IPv4 header, a TCP header, or a UDP header whose checksum is in use
    (UDP over IPv6, or a non-zero one over IPv4) must be followed by a checksum fix of
    that header (STLVmFixChecksumHw, never the IPv4-only fix)."""
    assert bytes(pkt) == raw
    needs = set()                                  # IP header offsets needing a fix
    layer, total = pkt, len(raw)
    ip_off = None
    while layer is not None and not isinstance(layer, (Raw, Padding)):
        off = total - len(bytes(layer))
        if type(layer) in (IP, IPv6):
            ip_off = off
            span = (off, off + (layer.ihl * 4 if type(layer) is IP else 40))
            if type(layer) is IP and any(span[0] <= w < span[1] for w, _, _ in writes(stream)):
                needs.add(off)
        elif type(layer) in (TCP, UDP) and ip_off is not None:
            span = (off, off + (layer.dataofs * 4 if type(layer) is TCP else 8))
            checked = type(layer) is TCP or layer.chksum != 0 or raw[ip_off] >> 4 == 6
            if checked and any(span[0] <= w < span[1] for w, _, _ in writes(stream)):
                needs.add(ip_off)
        layer = layer.payload if layer.payload else None
    fixes = {i["l2_len"] for i in instructions(stream) if i["type"] == "fix_checksum_hw"}
    assert needs <= fixes, (stream["name"], needs, fixes)
    assert not any(i["type"] == "fix_checksum_ipv4" for i in instructions(stream))


# ---- per profile: the headers and writes its docstring promises -----------------------

def roles(case: Case, dir0, dir1):
    return dir0 if case.direction == 0 else dir1


def check_ipv4_udp_flows(case, s, flows, l3_nth=0, l4_nth=0, size=None):
    """udp_flows / imix / mpls_udp's inner flows: flow i = first src + i, dst low nibble
    16 + i % 16, UDP source 49152 + i % 16384 -> 5001."""
    raw = raw_of(s)
    pkt = Ether(raw)
    ip_off, udp_off = layer_offset(pkt, IP, l3_nth), layer_offset(pkt, UDP, l4_nth)
    src0, dst0 = roles(case, ("16.0.0.1", "48.0.0.16"), ("48.0.0.1", "16.0.0.16"))
    if size is not None:
        assert len(raw) == size
    assert_flow_var(s, "flow", 0, flows - 1, size=4)
    assert {(ip_off + 12, 4, None), (ip_off + 19, 1, 0x0F), (udp_off, 2, 0x3FFF)} <= writes(s)
    for i in sorted({0, 1, 17, flows - 1}):
        q = Ether(apply(s, flow=i))
        inner_ip = q.getlayer(IP, l3_nth + 1)
        inner_udp = q.getlayer(UDP, l4_nth + 1)
        assert inner_ip.src == ip_text(ip_int(src0) + i), (i, inner_ip.src)
        assert inner_ip.dst == ip_text(ip_int(dst0) + i % 16), (i, inner_ip.dst)
        assert (inner_udp.sport, inner_udp.dport) == (49152 + i % 16384, 5001)
        assert inner_ip.len == len(raw) - ip_off and inner_udp.len == len(raw) - udp_off
    assert_fix(s, ip_off, L4_UDP)


def check_udp_flows(case, streams):
    [s] = streams
    flows, size = case.arg("--flows", 1000), case.arg("--size", 60)
    assert writes(s) == {(26, 4, None), (33, 1, 0x0F), (34, 2, 0x3FFF)}
    check_ipv4_udp_flows(case, s, flows, size=size)


def check_imix(case, streams):
    assert [(s["name"], len(raw_of(s)), s["mode"]["rate"]["value"]) for s in streams] == \
        [("imix_60", 60, 28), ("imix_590", 590, 16), ("imix_1514", 1514, 4)]
    for s in streams:
        check_ipv4_udp_flows(case, s, case.arg("--flows", 1000))


def check_ipv6_flows(case, streams):
    [s] = streams
    flows, size = case.arg("--flows", 1000), case.arg("--size", 128)
    raw = raw_of(s)
    assert len(raw) == size
    pkt = Ether(raw)
    assert pkt[IPv6].plen == size - 54 and pkt[IPv6].fl == 0 and pkt[UDP].len == size - 54
    src0, dst0 = roles(case, ("2001:db8:16::1", "2001:db8:48::10"),
                       ("2001:db8:48::1", "2001:db8:16::10"))
    assert_flow_var(s, "flow", 0, flows - 1, size=4)
    assert writes(s) == {(14 + 8 + 12, 4, None), (14 + 24 + 15, 1, 0x0F), (54, 2, 0x3FFF)}
    for i in sorted({0, 1, 17, flows - 1}):
        q = Ether(apply(s, flow=i))
        assert q[IPv6].src == ip_text(ip_int(src0) + i)
        assert q[IPv6].dst == ip_text(ip_int(dst0) + i % 16)
        assert (q[UDP].sport, q[UDP].dport) == (49152 + i % 16384, 5001)
    assert_fix(s, 14, L4_UDP)


def check_syn_flood(case, streams):
    established, size = case.arg("--established", 16), case.arg("--size", 60)
    delay = case.arg("--syn-delay-ms", 50.0)
    by_name = {s["name"]: s for s in streams}
    assert list(by_name) == (["established", "syn"] if established else ["syn"])
    syn_lo, syn_hi, client, target = roles(
        case, ("16.0.0.0", "16.254.255.255", "16.255.0.1", "48.0.0.1"),
        ("48.0.0.0", "48.254.255.254", "48.255.0.1", "16.0.0.1"))

    s = by_name["syn"]
    raw = raw_of(s)
    pkt = Ether(raw)
    assert len(raw) == size and pkt[IP].len == 40          # a bare SYN, Ethernet padding
    assert pkt[TCP].flags == "S" and pkt[TCP].dport == 80 and pkt[IP].dst == target
    assert bytes(pkt[TCP].payload) == b"\x00" * (size - 54)
    assert_flow_var(s, "src", ip_int(syn_lo), ip_int(syn_hi), "random", 4)
    assert_flow_var(s, "sport", 1025, 65535, "random", 2)
    assert writes(s) == {(26, 4, None), (34, 2, None)}
    assert s["random_seed"]                                  # the same flood every run
    assert s["isg"] == (delay * 1000.0 if established else 0.0)
    assert_fix(s, 14, L4_TCP)
    q = Ether(apply(s, src=ip_int(syn_lo) + 12345, sport=4242))
    assert (q[IP].src, q[TCP].sport) == (ip_text(ip_int(syn_lo) + 12345), 4242)

    if established:
        e = by_name["established"]
        raw = raw_of(e)
        pkt = Ether(raw)
        assert len(raw) == size and pkt[IP].len == size - 14
        assert pkt[TCP].flags == "A" and pkt[TCP].dport == 80 and pkt[IP].dst == target
        assert e["isg"] == 0 and s["mode"]["rate"]["value"] == \
            100 * e["mode"]["rate"]["value"]
        assert_flow_var(e, "session", 0, established - 1, size=4)
        assert writes(e) == {(26, 4, None), (34, 2, 0xFFFF)}
        for i in sorted({0, 1, established - 1}):
            q = Ether(apply(e, session=i))
            assert (q[IP].src, q[TCP].sport) == (ip_text(ip_int(client) + i), 40000 + i)
        assert_fix(e, 14, L4_TCP)


def check_ip_fragments(case, streams):
    flows, datagram = case.arg("--flows", 16), case.arg("--datagram", 4000)
    mtu, reverse = case.arg("--mtu", 1500), case.arg("--reverse", False)
    chunk = (mtu - 20) // 8 * 8
    count = math.ceil(datagram / chunk)
    assert [s["name"] for s in streams] == [f"frag{k}" for k in range(count)]
    src0, dst = roles(case, ("16.0.0.1", "48.0.0.1"), ("48.0.0.1", "16.0.0.1"))
    data = b""
    for k, s in enumerate(streams):
        raw = raw_of(s)
        pkt = Ether(raw)
        ip = pkt[IP]
        assert ip.proto == 17 and ip.dst == dst and ip.frag == k * chunk // 8
        assert ip.flags == ("MF" if k < count - 1 else 0), (k, ip.flags)
        assert len(raw) == max(60, 14 + ip.len)            # padding only below 60 bytes
        data += bytes(ip)[20:ip.len]
        assert ip.len - 20 == (chunk if k < count - 1 else datagram - k * chunk)
        assert_flow_var(s, "flow", 0, flows - 1, size=4)
        assert_flow_var(s, "ipid", 1, 65535, size=2)
        expected = {(26, 4, None), (18, 2, None)} | ({(34, 2, 0xFFFF)} if k == 0 else set())
        assert writes(s) == expected, (k, writes(s))
        assert_fix(s, 14, L4_IP)
        for i, ipid in ((0, 1), (flows - 1, 65535)):
            q = Ether(apply(s, flow=i, ipid=ipid))
            assert (q[IP].src, q[IP].id) == (ip_text(ip_int(src0) + i), ipid)
            if k == 0:
                assert q[UDP].sport == 49152 + i
        assert s["mode"]["rate"]["value"] == streams[0]["mode"]["rate"]["value"]
    # the fragments reassemble into the UDP datagram: header (checksum 0: none) + payload
    assert len(data) == datagram
    udp = UDP(data)
    assert (udp.dport, udp.len, udp.chksum) == (5001, datagram, 0)
    # in order on the wire (stream k starts k/K of an interval after stream 0): or reversed
    isgs = [s["isg"] for s in streams]
    interval = 1e6 / streams[0]["mode"]["rate"]["value"]
    assert isgs == sorted(isgs, reverse=reverse) and max(isgs) < interval


def check_lsr_entropy(case, streams):
    [s] = streams
    flows, size = case.arg("--flows", 1000), case.arg("--size", 128)
    label, fixed = case.arg("--label", 16001), case.arg("--fixed-inner", False)
    raw = raw_of(s)
    assert len(raw) == size and Ether(raw).type == 0x8847
    stack, payload = label_stack(raw)
    assert stack == [(label, 0, 0, 64), (7, 0, 0, 0), (65536, 0, 1, 0)]
    pkt = Ether(raw)
    assert layer_offset(pkt, IP) == payload == 26 and pkt[UDP].dport == 5001
    assert_flow_var(s, "flow", 0, flows - 1, size=4)
    el = (22, 4, 0xFFFFF000)
    assert el in writes(s)
    for i in sorted({0, 1, flows - 1}):
        st, _ = label_stack(apply(s, flow=i))
        assert st[2] == (65536 + i, 0, 1, 0) and st[:2] == stack[:2]
    if fixed:
        assert writes(s) == {el}
        assert not any(i["type"] == "fix_checksum_hw" for i in instructions(s))
    else:
        check_ipv4_udp_flows_lsr(case, s, flows)


def check_ipv4_udp_flows_lsr(case, s, flows):
    src0 = roles(case, "16.0.0.1", "48.0.0.1")
    assert writes(s) == {(22, 4, 0xFFFFF000), (38, 4, None), (46, 2, 0x3FFF)}
    for i in sorted({0, 1, flows - 1}):
        q = Ether(apply(s, flow=i))
        assert (q[IP].src, q[UDP].sport) == (ip_text(ip_int(src0) + i), 49152 + i % 16384)
    assert_fix(s, 26, L4_UDP)


def check_pw_ethernet(case, streams):
    cw, fat = case.arg("--cw", False), case.arg("--fat", False)
    flows, size = case.arg("--flows", 64), case.arg("--size", 128)
    label, pw = case.arg("--label", 16001), case.arg("--pw-label", 500)
    macs = case.arg("--macs", "4,6").split(",")
    assert [s["name"] for s in streams] == [f"pw_mac{m}" for m in macs]
    src0 = roles(case, "10.10.0.1", "10.20.0.1")
    for nibble, s in zip(macs, streams):
        raw = raw_of(s)
        assert len(raw) == size and Ether(raw).type == 0x8847
        stack, off = label_stack(raw)
        expected = ([(label, 0, 0, 255)] if label else []) + [(pw, 0, 0 if fat else 1, 255)]
        expected += [(65536, 0, 1, 1)] if fat else []
        assert stack == expected, stack
        if cw:
            assert raw[off:off + 4] == b"\x00\x00\x00\x00"
            off += 4
        inner = Ether(raw[off:])
        assert inner.dst[0] == nibble and raw[off] >> 4 == int(nibble), inner.dst
        assert inner.src == "00:00:0c:06:00:02" and inner.type == 0x0800
        assert inner[IP].len == size - off - 14 and inner[UDP].dport == 5001
        # scapy makes the transit LSR's mistake: without a control word the inner frame
        # is dissected as IPv4 / IPv6 (first nibble), with one as an Ethernet frame
        after_bos = Ether(raw).getlayer(MPLS, len(stack)).payload
        if cw:
            assert isinstance(after_bos, EoMCW) and isinstance(after_bos.payload, Ether)
        else:
            assert isinstance(after_bos, IP if nibble == "4" else IPv6), after_bos.summary()
        ip_off, udp_off = off + 14, off + 34
        expected_writes = {(ip_off + 12, 4, None), (ip_off + 4, 2, None),
                           (udp_off, 2, 0x3FFF)}
        if fat:
            expected_writes.add((14 + 4 * (len(stack) - 1), 4, 0xFFFFF000))
        assert writes(s) == expected_writes
        assert_flow_var(s, "flow", 0, flows - 1, size=4)
        assert_flow_var(s, "ipid", 0, 65535, size=2)
        for i in sorted({0, 1, flows - 1}):
            q = apply(s, flow=i, ipid=1000 + i)
            st, _ = label_stack(q)
            inner = Ether(q[off:])
            assert inner[IP].src == ip_text(ip_int(src0) + i) and inner[IP].id == 1000 + i
            assert inner[UDP].sport == 49152 + i % 16384
            if fat:
                assert st[-1] == (65536 + i, 0, 1, 1)
        assert_fix(s, ip_off, L4_UDP)


def check_mpls_udp(case, streams):
    [s] = streams
    flows, size = case.arg("--flows", 1000), case.arg("--size", 128)
    tunnel, remote = case.arg("--tunnel-address", "192.0.2.1"), case.arg("--remote",
                                                                          "203.0.113.9")
    raw = raw_of(s)
    assert len(raw) == size
    pkt = Ether(raw)
    outer, udp = pkt[IP], pkt[UDP]
    assert (outer.src, outer.dst, outer.ttl, outer.flags) == (remote, tunnel, 64, "DF")
    assert (udp.sport, udp.dport, udp.chksum, udp.len) == (49152, 6635, 0, size - 34)
    assert isinstance(udp.payload, MPLS)
    stack, off = label_stack(raw, 42)
    assert stack == [(case.arg("--label", 300), 0, 1, 64)] and off == 46
    assert layer_offset(pkt, IP, 1) == 46 and pkt.getlayer(UDP, 2).dport == 5001
    assert (34, 2, 0x3FFF) in writes(s)                      # the outer entropy port
    for i in sorted({0, 1, flows - 1}):
        assert Ether(apply(s, flow=i))[UDP].sport == 49152 + i % 16384
    check_ipv4_udp_flows(case, s, flows, l3_nth=1, l4_nth=1)
    assert writes(s) == {(34, 2, 0x3FFF), (58, 4, None), (65, 1, 0x0F), (66, 2, 0x3FFF)}


def check_fat_flow_ssh(case, streams):
    [s] = streams
    sessions, clients = case.arg("--sessions", 1000), case.arg("--clients", 1)
    size = case.arg("--size", 128)
    raw = raw_of(s)
    pkt = Ether(raw)
    assert len(raw) == size and pkt[IP].len == size - 14 and pkt[TCP].flags == "PA"
    assert_flow_var(s, "session", 1024, 1024 + sessions - 1, size=2)
    assert_flow_var(s, "client", 0, clients - 1, size=4)
    client_addr, client_port = roles(case, (26, 34), (30, 36))
    assert writes(s) == {(client_addr, 4, None), (client_port, 2, None)}
    for j, c in ((0, 0), (sessions - 1, clients - 1)):
        q = Ether(apply(s, session=1024 + j, client=c))
        client = ip_text(ip_int("16.0.0.1") + c)
        if case.direction == 0:
            assert (q[IP].src, q[TCP].sport, q[IP].dst, q[TCP].dport) == \
                (client, 1024 + j, "48.0.0.22", 22)
        else:
            assert (q[IP].src, q[TCP].sport, q[IP].dst, q[TCP].dport) == \
                ("48.0.0.22", 22, client, 1024 + j)
    assert_fix(s, 14, L4_TCP)


CHECKS = {name: globals()[f"check_{name}"] for name in CASES}


# ---- the tests ------------------------------------------------------------------------

def test_every_profile_has_cases():
    """A profile added to trex_profiles/ without cases here fails rather than go unchecked."""
    assert PROFILE_NAMES == sorted(CASES), (PROFILE_NAMES, sorted(CASES))
    for name, cases in CASES.items():
        assert Case(name) in cases and any(c.port == 1 for c in cases)
        assert any(c.tunables for c in cases), name


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_profile_compiles_and_sends_what_it_says(loaded, case):
    streams = streams_of(loaded, case)
    check_common(case, streams)
    CHECKS[case.profile](case, streams)


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_unknown_tunable_is_an_error(loaded, name):
    result = loaded[(name, ("--bogus",), 0)]
    assert isinstance(result, TrexError), result
    assert "--bogus" in str(result), str(result)


@pytest.mark.parametrize("name,tunables,word",
                         [(n, t, w) for n, refused in REFUSED.items() for t, w in refused],
                         ids=lambda v: " ".join(v) if isinstance(v, tuple) else str(v))
def test_bad_tunable_values_are_errors(loaded, name, tunables, word):
    result = loaded[(name, tunables, 0)]
    assert isinstance(result, TrexError), result
    assert word in str(result), str(result)


def test_help_lists_the_tunables():
    with pytest.raises(TrexError) as e:
        load_streams(PROFILES / "pw_ethernet.py", ["--help"])
    assert "--no-cw" in str(e.value) and "--fat" in str(e.value)


def _docstring(name: str) -> str:
    return ast.get_docstring(ast.parse((PROFILES / f"{name}.py").read_text())) or ""


def paired_config(name: str) -> Path:
    doc = _docstring(name)
    names = [w.strip(".,;:()") for w in doc.split() if w.startswith("trex_profiles/configs/")]
    assert names, f"{name}.py names no trex_profiles/configs/*.yaml"
    return ROOT / names[0]


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_docstring_shows_start_line_config_and_outcome(name):
    doc = _docstring(name)
    assert f"start -f trex_profiles/{name}.py -m " in doc and " -t --" in doc, name
    assert paired_config(name).is_file(), paired_config(name)
    assert "Outcome" in doc and "Tunables:" in doc, name
    for cases in CASES[name]:
        for t in cases.tunables:
            if t.startswith("--") and t not in ("--src-mac", "--dst-mac"):
                assert t in doc, f"{name}: tunable {t} not documented"


def test_every_config_pairs_with_a_profile():
    paired = {paired_config(name) for name in PROFILE_NAMES}
    assert set(CONFIG_FILES) == paired, (CONFIG_FILES, paired)


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_passes_dataplane_check(path):
    r = subprocess.run([sys.executable, "-m", "dataplane.cli", "check", str(path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr


def _config(name):
    return validate.load(paired_config(name))


def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def _group(cfg, name):
    return next(g for g in cfg.groups if g.name == name)


def _route(cfg, vrf, prefix):
    vrf = next(v for v in cfg.vrfs if v.name == vrf)
    return next(r for r in vrf.routes if str(r.prefix) == prefix)


def _lfib(cfg, label):
    return next(r for r in cfg.mpls.lfib if r.label == label)


def _assert_four_members_over_ports(cfg, group):
    g = _group(cfg, group)
    nh = {n.name: n for n in cfg.nexthops}
    ports = {nh[m.nexthop].port for m in g.members}
    assert len(g.members) == 4 and all(m.weight == 1 for m in g.members)
    assert 2 <= len(ports) <= 4 and "p0" not in ports, ports


@pytest.mark.parametrize("name", PROFILE_NAMES)
def test_config_matches_its_profile(name):
    """The ports TRex sends to have the MACs the profiles put in Ether dst; the feature
    each profile shows is configured where its traffic arrives."""
    cfg = _config(name)
    for i in (0, 1):
        assert _mac(cfg.ports[i].mac) == DUT_MAC % (i + 1) and cfg.ports[i].vrf is not None
    if name in ("udp_flows", "imix", "ipv6_flows", "syn_flood", "ip_fragments",
                "fat_flow_ssh"):
        assert _route(cfg, "default", "48.0.0.0/8").via_group
        _assert_four_members_over_ports(cfg, _route(cfg, "default", "48.0.0.0/8").via)
        trex0 = next(n for n in cfg.nexthops if n.name == _route(cfg, "default",
                                                                   "16.0.0.0/8").via)
        assert _mac(trex0.mac) == TREX_MAC % 1 and trex0.port == "p0"
    if name == "ipv6_flows":
        assert _route(cfg, "default", "2001:db8:48::/48").via_group
    if name == "syn_flood":
        assert cfg.flow_table.entries == 1024 and cfg.flow_table.on_full == "drop"
    if name == "ip_fragments":
        assert _group(cfg, "spines").hash.fragments == "follow"
    if name == "fat_flow_ssh":
        for p in cfg.ports[:2]:
            assert [(r.proto, r.port, r.ignore) for r in p.fat_flows] == [(6, 22, "none")]
    if name in ("lsr_entropy", "pw_ethernet"):
        assert cfg.mpls.payload_guess and cfg.mpls.erld >= 3
        for label in ((16001,) if name == "lsr_entropy" else (16001, 500)):
            rule = _lfib(cfg, label)
            assert rule.action == "swap" and rule.via_group
            _assert_four_members_over_ports(cfg, rule.via)
    if name == "mpls_udp":
        assert str(cfg.node.tunnel_address) == "192.0.2.1"      # the profile's default
        rule = _lfib(cfg, 300)
        assert (rule.action, rule.vrf) == ("pop-lookup", "red")
        assert _route(cfg, "red", "48.0.0.0/8").via_group
        _assert_four_members_over_ports(cfg, _route(cfg, "red", "48.0.0.0/8").via)
