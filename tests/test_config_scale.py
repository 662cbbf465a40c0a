"""Configuration and replay at scale (issue 18, "Main job at scale"): the fast paths read
exactly what the slow ones did.

- Runs of one-line routes are read without YAML (dataplane/config/routes.py): the same
  document, the same routes, the same error lines as YAML and the per-route checkers
  give (forced by disabling the runs), including where the fast path must step aside
  (a run inside a block scalar, an alias).
- The IPv4 prefix parse of the fast path accepts exactly what ipaddress accepts.
- The rte_lpm written in one pass (pyx/core.pxi lpm4_fill) answers every lookup as
  rte_lpm_add's table does.
- A configuration of 20,000 routes loads and forwards to sampled routes as a Python
  ipaddress longest-prefix match says (a replay through the real forwarder).
- The C flow-key walk over output pcaps (dataplane._pcapscan.flow_keys) reads what
  dataplane.spread.flow_of reads, frame by frame.

Timings are in bench/config_scale.py and bench/replay_scale.py, not here.
"""
from __future__ import annotations

import ipaddress
import json
import random
import struct
import subprocess

import numpy as np
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment,
                                IPv6ExtHdrHopByHop, IPv6ExtHdrRouting)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.sctp import SCTP

from dataplane.config import ConfigError, load_text
from dataplane.config import routes as fast
from dpdk_util import ROOT, cli_argv, child_env, port, port_mac, write_config, write_pcap

HEAD = """\
node: {name: leaf1}
ports:
  - {name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {name: up1, devargs: net_null1, mac: "02:00:00:00:00:02"}
nexthops:
  nh1: {port: up1, mac: "02:00:00:00:01:01"}
  nh2: {port: up1, mac: "02:00:00:00:01:02"}
groups:
  g: {members: [{nexthop: nh1}, {nexthop: nh2}]}
vrfs:
  default:
    routes:
"""


def result(text: str, slow: bool, monkeypatch) -> tuple:
    """('ok', routes, raw document) or ('errors', lines) of load_text(text), read with
    the route runs (slow False) or with YAML alone."""
    with monkeypatch.context() as m:
        if slow:
            m.setattr(fast, "RUN_MIN", 1 << 40)
        try:
            cfg = load_text(text, "lab.yaml")
        except ConfigError as e:
            return ("errors", e.errors)
        return ("ok", [(v.name, list(v.routes)) for v in cfg.vrfs],
                fast.expand_runs(cfg.raw))


def both(text: str, monkeypatch) -> tuple:
    quick, slow = result(text, False, monkeypatch), result(text, True, monkeypatch)
    assert quick == slow
    return quick


def route_lines(rng: random.Random, n: int, indent: int = 6) -> list[str]:
    """n one-line routes in every form the fast path reads, and some it leaves to YAML."""
    out, seen = [], set()
    while len(out) < n:
        plen = rng.choice([8, 16, 20, 24, 28, 32])
        net = ipaddress.IPv4Network((rng.getrandbits(32) >> (32 - plen) << (32 - plen), plen))
        if net in seen:
            continue
        seen.add(net)
        via = rng.choice(["nh1", "nh2", "g", "'nh1'", '"g"'])
        prefix = rng.choice([f'"{net}"', f"'{net}'", str(net)])
        out.append(" " * indent + f"- {{prefix: {prefix}, via: {via}}}")
    return out


def test_runs_read_as_yaml_reads_them(monkeypatch):
    rng = random.Random(1)
    lines = route_lines(rng, 300)
    lines[40:40] = ['      - {prefix: "2001:db8::/32", via: nh1}',
                    "      - prefix: 10.200.0.0/16",                      # block style
                    "        via: nh2",
                    "      # a comment between routes",
                    '      - {prefix: "10.201.0.0/16", via: nh1}   # a trailing comment',
                    "      - {prefix: 10.202.0.0/24, via: g}"]
    got = both(HEAD + "\n".join(lines) + "\n", monkeypatch)
    assert got[0] == "ok"
    routes = got[1][0][1]
    assert len(routes) == 304
    assert routes[40].prefix == ipaddress.ip_network("2001:db8::/32")
    assert routes[41].via == "nh2" and routes[43].via_group


def test_bad_routes_are_reported_alike(monkeypatch):
    """Bad prefixes (host bits, not a prefix, leading zeros, /33, IPv6 host bits), an
    undefined via, YAML words as via, duplicates: each one line with its path, in
    order, exactly as without the fast path."""
    rng = random.Random(2)
    lines = route_lines(rng, 100)
    bad = {5: '- {prefix: "10.0.0.1/8", via: nh1}', 17: "- {prefix: 10.0.0.300/24, via: g}",
           23: "- {prefix: '010.0.0.0/8', via: nh1}", 31: '- {prefix: "10.0.0.0/33", via: g}',
           47: '- {prefix: "2001:db8::1/32", via: nh1}', 52: "- {prefix: 11.0.0.0/8, via: nope}",
           60: '- {prefix: "", via: ""}', 61: "- {prefix: 12.0.0.0/8, via: yes}",
           62: "- {prefix: 12.1.0.0/16, via: null}", 70: "- {prefix: 13.0.0.0/8, via: nh1}",
           71: "- {prefix: 13.0.0.0/8, via: nh2}", 72: "- {prefix: '13.0.0.0/8', via: nh1}",
           80: "- {prefix: 10.0.0.0/255.0.0.0, via: nh1}"}
    for i, text in bad.items():
        lines[i] = "      " + text
    got = both(HEAD + "\n".join(lines) + "\n", monkeypatch)
    assert got[0] == "errors"
    errors = got[1]
    assert all(e.startswith("lab.yaml: vrfs.default.routes[") for e in errors), errors
    assert any("routes[5].prefix: must be a prefix with no host bits set" in e for e in errors)
    assert any("routes[52].via: must be a next hop or group defined" in e for e in errors)
    assert any("routes[71].prefix: must be unique in the VRF, got '13.0.0.0/8'" in e
               for e in errors)
    assert len(errors) == len(set(errors))


def test_fast_path_steps_aside(monkeypatch):
    """A run inside a block scalar (an unknown key's text) and routes shared through an
    alias read as YAML reads them; a YAML error inside a run is YAML's own message."""
    rng = random.Random(3)
    lines = route_lines(rng, 40)
    text = HEAD.replace("node: {name: leaf1}\n", "node: {name: leaf1}\nnotes: |\n" +
                        "\n".join(route_lines(rng, 20, 2)) + "\n")
    assert both(text + "\n".join(lines) + "\n", monkeypatch)[0] == "errors"
    aliased = (HEAD.replace("    routes:\n", "    routes: &r\n") + "\n".join(lines) +
               "\n  blue:\n    routes: *r\n")
    got = both(aliased, monkeypatch)
    assert got[0] == "ok" and got[1][0][1] == got[1][1][1] and len(got[1][0][1]) == 40
    broken = lines[:]
    broken[20] = "     - {prefix: 10.9.0.0/16, via: nh1}"          # one space short
    assert both(HEAD + "\n".join(broken) + "\n", monkeypatch)[0] == "errors"


def test_ipv4_fast_parse_is_ipaddress():
    cases = ["10.0.0.0/8", "0.0.0.0/0", "255.255.255.255/32", "10.0.0.0/08", "10.0.0.0/008",
             "10.0.0.0/0008", "10.0.0.1/8", "10.0.0.0/33", "01.0.0.0/8", "1.2.3/24",
             "1.2.3.4.5/32", "256.0.0.0/8", "1.2.3.4/", "1.2.3.4", "/8", "1..2.3/8",
             "1.2.3.4/+8", "1.2.3.4/ 8", "0x1.0.0.0/8", "1.2.3.4/-0", "192.168.1.0/24"]
    rng = random.Random(4)
    for _ in range(2000):
        plen = rng.randrange(0, 34)
        a = rng.getrandbits(32)
        if rng.random() < 0.7 and plen <= 32:
            a = a >> (32 - plen) << (32 - plen) if plen else 0
        cases.append(f"{ipaddress.IPv4Address(a)}/{plen}")
    for text in cases:
        try:
            net = ipaddress.ip_network(text)
            want = (int(net.network_address), net.prefixlen) if net.version == 4 else None
        except ValueError:
            want = None
        got = fast._ipv4_network(text)
        # it may leave an odd valid spelling (/0008) to the checker, never accept a bad
        # one or read a good one differently; the usual spelling it always takes
        assert got is None or got == want, text
        if want is not None and text == f"{ipaddress.IPv4Address(want[0])}/{want[1]}":
            assert got == want, text


def random_routes(rng: random.Random, n: int) -> list[tuple[int, int]]:
    """n distinct IPv4 prefixes, nested and overlapping, inside 10.0.0.0/8 mostly."""
    seen = set()
    while len(seen) < n:
        plen = rng.choice([8, 12, 16, 18, 20, 22, 23, 24, 24, 24, 25, 26, 28, 30, 31, 32])
        base = (10 << 24) | rng.getrandbits(rng.choice([12, 16, 24]))
        if rng.random() < 0.05:
            base = rng.getrandbits(32)
        seen.add((base >> (32 - plen) << (32 - plen), plen))
    return sorted(seen, key=lambda r: rng.random())


def test_lpm_fill_answers_as_rte_lpm_add(eal):
    from dataplane.config.compile import RouteColumns
    rng = random.Random(5)
    routes = random_routes(rng, 6000)
    cols = RouteColumns(np.array([a for a, _ in routes], np.uint32),
                        np.array([p for _, p in routes], np.uint8),
                        np.array([rng.randrange(1 << 20) for _ in routes], np.uint32),
                        np.zeros((0, 16), np.uint8), np.zeros(0, np.uint8),
                        np.zeros(0, np.uint32))
    probes = [a + off for a, p in routes for off in (0, (1 << (32 - p)) - 1,
                                                     rng.randrange(1 << (32 - p)))]
    probes += [rng.getrandbits(32) for _ in range(20000)]
    probes += [(10 << 24) | rng.getrandbits(24) for _ in range(20000)]
    probes = np.array(probes, np.uint32)
    filled = eal.lpm4_lookups(cols, probes)
    added = eal.lpm4_lookups(cols, probes, by_add=True)
    assert (filled == added).all(), np.flatnonzero(filled != added)[:10]
    assert (filled != 0xFFFFFF).sum() > len(probes) // 2


# ------------------------------------------------------------------ 20 k routes, forwarded

NEXTHOPS = {"a": "02:00:00:00:0a:01", "b": "02:00:00:00:0a:02", "c": "02:00:00:00:0a:03"}


def test_20k_routes_load_and_forward(tmp_path):
    """20,000 routes (nested, /8 to /32) load through `replay` (the fast path, the
    one-pass rte_lpm) and 400 frames to sampled routes (and 20 to no route) leave by
    the next hop a longest-prefix match over ipaddress networks gives."""
    rng = random.Random(6)
    routes = [(a, p, rng.choice(sorted(NEXTHOPS))) for a, p in random_routes(rng, 20000)]
    lines = [f'      - {{prefix: "{ipaddress.IPv4Network((a, p))}", via: {v}}}'
             for a, p, v in routes]
    doc = {"node": {"name": "leaf1"}, "eal": {"memory_mb": 192},
           "flow_table": {"entries": 65536},
           "ports": [port("p0", "net_null0", 0), port("up1", "net_null1", 1)],
           "nexthops": {n: {"port": "up1", "mac": m} for n, m in NEXTHOPS.items()}}
    cfg = write_config(tmp_path / "big.yaml", doc)
    cfg.write_text(cfg.read_text() + "vrfs:\n  default:\n    routes:\n" + "\n".join(lines)
                   + "\n")
    nets = {}
    for a, p, v in routes:
        nets.setdefault(p, {})[a] = v

    def oracle(addr: int):
        for p in sorted(nets, reverse=True):
            hit = nets[p].get(int(ipaddress.IPv4Network((addr, p), strict=False)
                                  .network_address))
            if hit:
                return hit
        return None
    def special(d: int) -> bool:                  # martian or multicast (docs/packet-path.md)
        return d >> 24 in (0, 127) or d >> 28 == 14 or d == 0xFFFFFFFF
    dsts = [d for a, p, _ in rng.sample(routes, 440)
            for d in [a + rng.randrange(1 << (32 - p))] if not special(d)][:400]
    unrouted = []
    while len(unrouted) < 20:                      # addresses no route covers
        d = rng.getrandbits(32)
        if not special(d) and oracle(d) is None:
            unrouted.append(d)
    dsts += unrouted
    frames = [bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                    IP(src="100.64.0.1", dst=str(ipaddress.IPv4Address(d)), ttl=64) /
                    UDP(sport=1000 + i, dport=53)) for i, d in enumerate(dsts)]
    pcap = write_pcap(tmp_path / "in.pcap", frames)
    out = tmp_path / "out"
    r = subprocess.run(cli_argv("replay", cfg, "--in", pcap, "--out-dir", out, "-q"),
                       cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    data = (out / "up1.pcap").read_bytes()
    off, left = 24, {}
    while off < len(data):
        cap = struct.unpack_from("<I", data, off + 8)[0]
        f = data[off + 16:off + 16 + cap]
        left[int.from_bytes(f[30:34], "big")] = f[:6]
        off += 16 + cap
    macs = {n: bytes.fromhex(m.replace(":", "")) for n, m in NEXTHOPS.items()}
    for d in dsts:
        want = oracle(d)
        assert left.get(d) == (macs[want] if want else None), ipaddress.IPv4Address(d)
    s = json.loads((out / "summary.json").read_text())
    assert s["drops"]["no_route"] == sum(oracle(d) is None for d in dsts) == 20
    assert s["tx"] == len(dsts) - s["drops"]["no_route"]


# ------------------------------------------------------------------ flow keys in C

def test_flow_keys_read_as_flow_of(tmp_path):
    from dataplane import _pcapscan, spread
    mac = dict(dst="02:00:00:00:01:01", src="02:00:00:00:00:02")
    frames = [
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2") / TCP(sport=1, dport=2),
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2") / UDP(sport=3, dport=4),
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2") / SCTP(sport=5, dport=6),
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2") / ICMP(type=8, id=77),
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2") / ICMP(type=3),
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2", frag=10) / UDP(sport=3, dport=4),
        Ether(**mac) / IP(src="10.0.0.1", dst="10.3.0.2", options=b"\x01\x01\x01\x01") / UDP(),
        Ether(**mac) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / IP(dst="10.3.0.9") / TCP(),
        Ether(**mac) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / Dot1Q(vlan=7) / IP() / TCP(),
        Ether(**mac) / IPv6(src="2001:db8::1", dst="2001:db8:3::2") / TCP(sport=9, dport=10),
        Ether(**mac) / IPv6(dst="2001:db8:3::2") / IPv6ExtHdrHopByHop() /
        IPv6ExtHdrRouting() / UDP(sport=11, dport=12),
        Ether(**mac) / IPv6(dst="2001:db8:3::2") / IPv6ExtHdrFragment(offset=0) / UDP(),
        Ether(**mac) / IPv6(dst="2001:db8:3::2") / IPv6ExtHdrFragment(offset=8) / UDP(),
        Ether(**mac) / IPv6(dst="2001:db8:3::2") / ICMPv6EchoRequest(id=99),
        Ether(**mac) / IP(dst="10.3.0.2", proto=58) / b"\x80\0\0\0\0\x05\0\0",
        Ether(**mac) / IPv6(dst="2001:db8:3::2", nh=1) / b"\x08\0\0\0\0\x05\0\0",
        Ether(**mac, type=0x0806) / (b"\0" * 28),
    ]
    raw = [bytes(f) for f in frames]
    raw += [raw[0][:20], raw[0][:40], raw[9][:60], raw[10][:70], b"\x02\0\0", b""]
    rng = random.Random(7)
    for _ in range(300):                                # mangled bytes
        f = bytearray(rng.choice(raw[:16]))
        for _ in range(rng.randrange(1, 4)):
            f[rng.randrange(len(f))] = rng.randrange(256)
        raw.append(bytes(f[:rng.randrange(len(f) + 1)]))
    path = write_pcap(tmp_path / "k.pcap", raw)
    keys, end = _pcapscan.flow_keys(path.read_bytes(), False, 24, 1 << 20)
    assert len(keys) == len(raw) and end == path.stat().st_size
    for frame, k in zip(raw, keys):
        want = spread.flow_of(frame)
        if len(frame) >= 6:
            assert bytes(k[:6]) == frame[:6]
        assert bool(k[6]) == (want is not None), frame.hex()
        if want is None:
            continue
        family, src, dst, proto, sport, dport = want
        alen = 4 if family == 4 else 16
        got = (k[7], bytes(k[8:8 + alen]), bytes(k[24:24 + alen]), k[40],
               int.from_bytes(bytes(k[42:44]), "big"), int.from_bytes(bytes(k[44:46]), "big"))
        assert got == (family, src, dst, proto, sport, dport), frame.hex()
