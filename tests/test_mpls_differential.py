"""Differential test for MPLS (docs/mpls.md): the Cython core against the reference model,
byte for byte and counter for counter, on a deterministic corpus of labelled frames.

The corpus: label stacks built from the LFIB's labels, explicit nulls, reserved labels,
ELI/EL pairs and unknown labels, with TTLs around expiry, over IPv4/IPv6/control-word/
Ethernet/random payloads; every truncation of a sample of them; MPLS-over-UDP and
MPLS-over-GRE to the tunnel address (and to elsewhere); IP packets routed to labelled,
entropy and tunnel next hops; frames entering pseudowires on attachment circuits; and
byte mutations of all of these. Two configurations cover both TTL models, payload
guessing on and off, IPv4 and IPv6 tunnels, and flow- and packet-mode ports.
"""
from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet import GRE, ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from backends import make_backend
from dataplane.config import load_text

SEED = 0x3A15
MUTATED = 1200
SEGMENT = 1500

MACS = {p: f"02:00:00:00:00:{i + 1:02x}" for i, p in enumerate(
    ("p0", "p1", "up1", "up2", "ce1", "ce2", "r0"))}


def config(variant: str):
    v6 = variant == "b"
    tunnel_address = "2001:db8:ffff::1" if v6 else "192.0.2.1"
    remote = "2001:db8:eeee::9" if v6 else "203.0.113.9"
    text = f"""
node: {{name: mplsdiff, seed: 0x5eed0001, tunnel_address: "{tunnel_address}"}}
ports:
  - {{name: p0, devargs: net_null0, mac: "{MACS['p0']}"}}
  - {{name: p1, devargs: net_null1, mac: "{MACS['p1']}", mode: packet}}
  - {{name: up1, devargs: net_null2, mac: "{MACS['up1']}"}}
  - {{name: up2, devargs: net_null3, mac: "{MACS['up2']}", mode: packet}}
  - {{name: ce1, devargs: net_null4, mac: "{MACS['ce1']}", xconnect: pw1}}
  - {{name: ce2, devargs: net_null5, mac: "{MACS['ce2']}", xconnect: pw2}}
  - {{name: r0, devargs: net_null6, mac: "{MACS['r0']}", vrf: red}}
vrfs:
  default:
    routes:
      - {{prefix: 10.0.0.0/8, via: lsp1}}
      - {{prefix: 10.1.0.0/16, via: lsps}}
      - {{prefix: 10.2.0.0/16, via: deep}}
      - {{prefix: 10.3.0.0/16, via: shallow}}
      - {{prefix: 10.4.0.0/16, via: gw_udp}}
      - {{prefix: 10.5.0.0/16, via: gw_gre}}
      - {{prefix: 10.6.0.0/16, via: plain}}
      - {{prefix: 10.7.0.0/16, via: mixed}}
      - {{prefix: "2001:db8::/32", via: lsp1}}
      - {{prefix: "2001:db8:1::/48", via: lsps}}
      - {{prefix: "2001:db8:4::/48", via: gw_udp}}
      - {{prefix: "2001:db8:6::/48", via: plain}}
  red:
    routes:
      - {{prefix: 0.0.0.0/0, via: plain}}
      - {{prefix: 172.16.0.0/12, via: lsp2}}
      - {{prefix: "::/0", via: plain2}}
nexthops:
  lsp1: {{port: up1, mac: "02:00:00:00:01:01", labels: [16001], entropy: true}}
  lsp2: {{port: up2, mac: "02:00:00:00:01:02", labels: [16002, 17002], entropy: true, erld: 3}}
  lsp3: {{port: up1, mac: "02:00:00:00:01:03", labels: [16003]}}
  deep: {{port: up2, mac: "02:00:00:00:01:04", labels: [21, 22, 23, 24, 25, 26, 27, 28],
         entropy: true, erld: 4}}
  shallow: {{port: up1, mac: "02:00:00:00:01:05", labels: [31, 32, 33], entropy: true,
            erld: 2}}
  gw_udp: {{port: up2, mac: "02:00:00:00:01:06", labels: [20],
           tunnel: {{type: mpls-udp, remote: "{remote}"}}}}
  gw_gre: {{port: up1, mac: "02:00:00:00:01:07", labels: [40, 41],
           tunnel: {{type: mpls-gre, remote: "{remote}"}}}}
  plain: {{port: up1, mac: "02:00:00:00:01:08"}}
  plain2: {{port: up2, mac: "02:00:00:00:01:09"}}
groups:
  lsps:
    members:
      - {{nexthop: lsp1, weight: 1}}
      - {{nexthop: lsp2, weight: 2}}
      - {{nexthop: lsp3, weight: 1}}
      - {{nexthop: plain, weight: 0}}
  mixed:
    members:
      - {{nexthop: plain, weight: 1}}
      - {{nexthop: gw_udp, weight: 1}}
      - {{nexthop: lsp3, weight: 1}}
    hash: {{fields: [src_ip, dst_ip, proto, src_port, dst_port, ingress_port],
            symmetric: true}}
mpls:
  erld: {4 if v6 else 8}
  payload_guess: {"false" if v6 else "true"}
  ttl_model: {"pipe" if v6 else "uniform"}
  lfib:
    - {{label: 100, action: swap, labels: [200], via: lsps}}
    - {{label: 101, action: swap, labels: [201, 202, 203], via: lsp3}}
    - {{label: 102, action: swap, labels: [204], via: gw_udp}}
    - {{label: 103, action: swap, labels: [205], via: mixed}}
    - {{label: 110, action: pop}}
    - {{label: 111, action: pop}}
    - {{label: 300, action: pop-lookup, vrf: red}}
    - {{label: 301, action: pop-lookup, vrf: default}}
    - {{label: 500, action: pop-xconnect, pseudowire: pw1}}
    - {{label: 501, action: pop-xconnect, pseudowire: pw2}}
pseudowires:
  pw1: {{ac_port: ce1, label: 600, via: lsps, fat: true, control_word: true}}
  pw2: {{ac_port: ce2, label: 601, via: {"gw_gre" if v6 else "lsp2"}}}
"""
    return load_text(text, f"mpls-diff-{variant}.yaml")


CONFIGS = {v: config(v) for v in ("a", "b")}
P0, P1, UP1, UP2, CE1, CE2, R0 = range(7)
L3_PORTS = [P0, P0, P0, P1, P1, UP1, UP2, R0]
LFIB_LABELS = [100, 101, 102, 103, 110, 111, 300, 301, 500, 501]


def lse(label: int, s: int = 0, ttl: int = 64, tc: int = 0) -> bytes:
    return struct.pack("!I", label << 12 | tc << 9 | s << 8 | ttl)


def eth(payload: bytes, port: int = P0, etype: int = 0x8847, tags: int = 0) -> bytes:
    head = bytes.fromhex(MACS[("p0", "p1", "up1", "up2", "ce1", "ce2", "r0")[port]]
                         .replace(":", "")) + bytes.fromhex("020000000099")
    for _ in range(tags):
        head += b"\x81\x00" + struct.pack("!H", 7)
    return head + struct.pack("!H", etype) + payload


def ip_payload(rng: random.Random) -> bytes:
    dst4 = rng.choice(["10.1.2.3", "10.9.9.9", "10.2.0.1", "10.3.0.1", "10.4.0.1",
                       "10.5.0.1", "10.6.0.1", "10.7.1.1", "172.16.5.5", "8.8.8.8",
                       "127.0.0.1", "224.0.0.5", "192.0.2.1"])
    dst6 = rng.choice(["2001:db8::5", "2001:db8:1::7", "2001:db8:4::1", "2001:db8:6::1",
                       "2001:db9::1", "ff02::1"])
    l4 = rng.choice([TCP(sport=rng.randrange(1024, 65535), dport=80, flags="S"),
                     UDP(sport=rng.randrange(1024, 65535), dport=53),
                     ICMP(type=8, id=rng.randrange(65536))])
    ttl = rng.choice([0, 1, 2, 3, 64, 255])
    tos = rng.choice([0, 0x20, 0xb8, 0xe0])
    if rng.random() < 0.7:
        pkt = IP(src=f"100.64.{rng.randrange(4)}.{rng.randrange(1, 255)}", dst=dst4, ttl=ttl,
                 tos=tos) / l4 / Raw(bytes(rng.randrange(0, 40)))
    else:
        if isinstance(l4, ICMP):
            l4 = UDP(sport=rng.randrange(1024, 65535), dport=4789)
        pkt = IPv6(src=f"2001:db8:aa::{rng.randrange(1, 999)}", dst=dst6, hlim=ttl, tc=tos,
                   fl=rng.randrange(1 << 20)) / l4 / Raw(bytes(rng.randrange(0, 40)))
    return bytes(pkt)


def inner_frame(rng: random.Random) -> bytes:
    kind = rng.randrange(5)
    src = "48:2c:a0:00:00:%02x" % rng.randrange(256)
    if kind == 0:
        return bytes(Ether(dst="00:00:0c:06:00:02", src=src) / ARP())
    if kind == 1:
        return bytes(Ether(dst=src, src="00:00:0c:06:00:02") / Dot1Q(vlan=5) /
                     IP(src="192.168.1.10", dst="192.168.2.20", id=rng.randrange(65536)) /
                     UDP(sport=rng.randrange(1024, 2048), dport=53))
    if kind == 2:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 30)))
    return bytes(Ether(dst=src, src="00:00:0c:06:00:02") / ip_payload(rng)[:rng.choice(
        [14, 60, 200])])


def stack(rng: random.Random) -> bytes:
    """A label stack of 1..18 entries, bottom S set (mostly)."""
    n = rng.choice([1, 1, 2, 2, 3, 4, 5, 8, 16, 17])
    entries = []
    i = 0
    while i < n:
        r = rng.random()
        ttl = rng.choice([0, 1, 2, 5, 64, 255])
        if r < 0.6:
            label = rng.choice(LFIB_LABELS)
        elif r < 0.7:
            label = rng.choice([0, 2])
        elif r < 0.8 and i + 1 < n:
            entries += [(7, ttl), (rng.randrange(16, 1 << 20), rng.choice([0, 64]))]
            i += 2
            continue
        elif r < 0.9:
            label = rng.choice([1, 3, 13, 14, 15, 7])
        else:
            label = rng.randrange(16, 1 << 20)
        entries.append((label, ttl))
        i += 1
    out = b""
    for k, (label, ttl) in enumerate(entries):
        bottom = k == len(entries) - 1 and rng.random() < 0.95
        out += lse(label, int(bottom), ttl, rng.randrange(8))
    return out


def payload(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.55:
        return ip_payload(rng)
    if r < 0.75:                                    # control word + frame
        cw = rng.choice([bytes(4), b"\x10\x00\x00\x00", b"\x20\x00\x00\x00"])
        return cw + inner_frame(rng)
    if r < 0.9:
        return inner_frame(rng)
    return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 50)))


def labelled(rng: random.Random) -> tuple[int, bytes]:
    port = rng.choice(L3_PORTS)
    return port, eth(stack(rng) + payload(rng), port, tags=rng.choice([0, 0, 0, 1, 2]))


def overlay(rng: random.Random, variant: str) -> tuple[int, bytes]:
    cfg = CONFIGS[variant]
    tun = str(cfg.node.tunnel_address)
    dst = tun if rng.random() < 0.85 else ("10.6.0.9" if ":" not in tun else "2001:db8:6::9")
    region = stack(rng) + payload(rng)
    if rng.random() < 0.5:
        l4 = UDP(sport=rng.randrange(49152, 65536), dport=rng.choice([6635, 6635, 6635, 4789]))
    else:
        flags = rng.choice([0, 0, 0x8000, 0x2000, 0x1000, 0xb000, 0x4000])
        l4 = GRE(chksum_present=bool(flags & 0x8000), key_present=bool(flags & 0x2000),
                 seqnum_present=bool(flags & 0x1000), strict_route_source=bool(flags & 0x4000),
                 proto=rng.choice([0x8847, 0x8847, 0x0800]))
    src = "198.51.100.7" if ":" not in tun else "2001:db8:77::7"
    outer = (IP(src=src, dst=dst, ttl=rng.choice([1, 64]),
                flags=rng.choice([0, 0, 0, 1])) if ":" not in tun else
             IPv6(src=src, dst=dst, hlim=rng.choice([1, 64])))
    port = rng.choice(L3_PORTS)
    frame = eth(bytes(outer / l4 / Raw(region)), port, etype=0x0800 if ":" not in tun
                else 0x86DD)
    if rng.random() < 0.2:
        frame += bytes(rng.randrange(1, 20))        # Ethernet padding after the outer IP
    return port, frame


def routed_ip(rng: random.Random) -> tuple[int, bytes]:
    port = rng.choice(L3_PORTS)
    p = ip_payload(rng)
    return port, eth(p, port, etype=0x0800 if p[0] >> 4 == 4 else 0x86DD,
                     tags=rng.choice([0, 0, 1]))


def ac_frame(rng: random.Random) -> tuple[int, bytes]:
    return rng.choice([CE1, CE2]), inner_frame(rng)


def corpus(variant: str) -> list[tuple[int, bytes]]:
    rng = random.Random(SEED + ord(variant))
    items = []
    for _ in range(2500):
        r = rng.random()
        items.append(labelled(rng) if r < 0.45 else overlay(rng, variant) if r < 0.65
                     else routed_ip(rng) if r < 0.85 else ac_frame(rng))
    for port, frame in rng.sample(items, 60):       # every truncation of some
        items += [(port, frame[:n]) for n in range(0, len(frame), 3)]
    for _ in range(MUTATED):
        port, frame = rng.choice(items)
        f = bytearray(frame)
        for _ in range(rng.randrange(1, 4)):
            if f:
                f[rng.randrange(len(f))] = rng.randrange(256)
        items.append((port, bytes(f)))
    return items


def state(b, cfg) -> dict:
    return {"ports": b.counters(), "mpls": b.mpls_counters(),
            "groups": [b.group_counters(g.index) for g in cfg.groups],
            "flow_counters": b.flow_counters(),
            "flows": sorted((f["vrf"], f["family"], f["src"], f["dst"], f["proto"],
                             f["sport"], f["dport"], f["in_port"], f["nh_id"], f["member"],
                             f["hash"], f["packets"]) for f in b.flows())}


@pytest.mark.parametrize("variant", sorted(CONFIGS))
def test_mpls_differential(mbuf_leak_check, variant):
    cfg = CONFIGS[variant]
    items = corpus(variant)
    rng = random.Random(SEED)
    totals: dict = {}
    kinds: set = set()
    for start in range(0, len(items), SEGMENT):
        ref, cy = make_backend("reference", cfg), make_backend("cython", cfg)
        try:
            seg = items[start:start + SEGMENT]
            i = 0
            while i < len(seg):
                port = seg[i][0]
                n = rng.choice([1, 3, 32, 40])
                burst = [f for _, f in seg[i:i + n]]   # all on the first one's port
                i += n
                ref_out, cy_out = ref.process(port, burst), cy.process(port, burst)
                for egress, frame in ref_out:
                    kinds.add(kind(egress, frame))
                if ref_out != cy_out or state(ref, cfg) != state(cy, cfg):
                    pytest.fail(diagnose(cfg, port, burst, ref_out, cy_out), pytrace=False)
            st = state(ref, cfg)
            for name, c in st["ports"].items():
                for k, v in c.items():
                    totals[k] = totals.get(k, 0) + v
            totals["el_not_readable"] = (totals.get("el_not_readable", 0)
                                         + st["mpls"]["el_not_readable"])
            totals["flows"] = totals.get("flows", 0) + st["flow_counters"]["flow_created"]
        finally:
            ref.close()
            cy.close()
    assert kinds >= {"labelled", "ip", "mpls-udp", "mpls-gre", "ac"}, kinds
    # the corpus is worth diffing: every MPLS verdict occurs
    for k in ("tx", "truncated", "parse_error", "unsupported", "no_route", "no_lfib_entry",
              "mpls_ttl_expired", "el_not_readable", "flows"):
        assert totals.get(k), (k, totals)


def kind(egress: int, frame: bytes) -> str:
    """What left: a frame on an attachment circuit, a labelled frame, an overlay, IP."""
    if egress in (CE1, CE2):
        return "ac"
    etype = struct.unpack_from("!H", frame, 12)[0]
    if etype == 0x8847:
        return "labelled"
    proto = frame[14 + 9] if etype == 0x0800 else frame[14 + 6]
    l4 = 14 + (20 if etype == 0x0800 else 40)
    if proto == 17 and struct.unpack_from("!H", frame, l4 + 2)[0] == 6635:
        return "mpls-udp"
    return "mpls-gre" if proto == 47 else "ip"


def diagnose(cfg, port, burst, ref_out, cy_out) -> str:
    ref, cy = make_backend("reference", cfg), make_backend("cython", cfg)
    try:
        for k, frame in enumerate(burst):
            r, c = ref.process(port, [frame]), cy.process(port, [frame])
            rs, cs = state(ref, cfg), state(cy, cfg)
            if r != c or rs != cs:
                diff = {key: (rs[key], cs[key]) for key in rs if rs[key] != cs[key]}
                return (f"frame {k} on port {port} differs on its own:\n"
                        f"  frame     {frame.hex()}\n"
                        f"  reference {[(e, d.hex()) for e, d in r]}\n"
                        f"  cython    {[(e, d.hex()) for e, d in c]}\n"
                        f"  state (reference, cython) {diff}")
    finally:
        ref.close()
        cy.close()
    return f"a burst on port {port} differs but no single frame does: {burst}"
