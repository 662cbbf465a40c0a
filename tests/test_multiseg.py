"""Packets in more than one mbuf (docs/packet-path.md §6): a jumbo frame as a PMD
receives it, a chain of segments. Lengths (IP total length checks, trims, tunnel
lengths, checksums) count every segment; reads of headers stay in the first one, and a
header that continues into the second drops as `split_headers`.

- The MPLS differential corpus (every push, swap, pop, pseudowire and overlay path) in
  small segments, frame by frame against the reference model, which has no segments:
  the same output bytes and the same verdict, except where the core says split_headers.
- 9,000-byte frames on each path, in the pool's 2 KB segments: byte for byte against the
  reference model, and the outer lengths checked with scapy.
- End to end on net_pcap (the PMD chains a jumbo frame itself): a pseudowire over
  MPLS-over-UDP and routed IP, the output decoded by scapy and tshark.
"""
from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader, wrpcap

from backends import make_backend
import test_mpls_differential as md

ROOT = Path(__file__).resolve().parents[1]
JUMBO = 9000


def delta(before: dict, after: dict) -> dict:
    return {p: {k: after[p][k] - before[p][k] for k in after[p] if after[p][k] - before[p][k]}
            for p in after if any(after[p][k] - before[p][k] for k in after[p])}


@pytest.mark.parametrize("variant", sorted(md.CONFIGS))
@pytest.mark.parametrize("seg", [64, 150])
def test_mpls_corpus_in_small_segments(mbuf_leak_check, variant, seg):
    """Each frame with 600-1,500 bytes of trailing padding, so that past the 512 bytes
    the core pulls up for the headers (PULLUP) it goes on in `seg`-byte segments: cuts
    across segments, lengths and checksums over them."""
    cfg = md.CONFIGS[variant]
    rng = random.Random(seg)
    items = [(port, frame + rng.randbytes(rng.randrange(600, 1500)))
             for port, frame in md.corpus(variant)[:3000]]
    ref, cy = make_backend("reference", cfg), make_backend("cython", cfg)
    split = multi = same = 0
    try:
        for port, frame in items:
            rb, cb = ref.counters(), cy.counters()
            r_out = ref.process(port, [frame])
            c_out = cy.core.process(port, [frame], 0, seg)
            cd, rd = delta(cb, cy.counters()), delta(rb, ref.counters())
            if any(c.get("split_headers") for c in cd.values()):
                split += 1                 # the model has no segments: nothing to compare
                continue
            assert c_out == r_out and cd == rd, (
                f"port {port} frame {frame.hex()} in {seg}-byte segments:\n"
                f"  reference {r_out} {rd}\n  cython    {c_out} {cd}")
            multi += len(frame) > 512 + seg
            same += 1
    finally:
        ref.close()
        cy.close()
    # every frame was compared (the headers always fit the pulled-up part), each in
    # several segments
    assert same == len(items) and multi > 0.95 * same and split == 0, (same, multi, split)


def test_headers_past_the_pulled_up_part_are_split_headers(mbuf_leak_check):
    """An IPv6 packet whose extension headers run past the 512 bytes the core makes
    contiguous (PULLUP), in 64-byte segments: dropped as split_headers on its port, never
    parsed from bytes it cannot read; in one segment the same frame is forwarded as the
    reference model forwards it."""
    from scapy.layers.inet6 import IPv6ExtHdrDestOpt, PadN
    cfg = md.CONFIGS["a"]
    ip = (IPv6(src="2001:db8:77::1", dst="2001:db8::9") /
          IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0" * 250)] * 3) / UDP(sport=1, dport=2) /
          (b"p" * 900))
    frame = md.eth(bytes(ip), md.P0, 0x86DD)
    ref, cy = make_backend("reference", cfg), make_backend("cython", cfg)
    try:
        before = cy.counters()
        assert cy.core.process(md.P0, [frame], 0, 64) == []
        assert delta(before, cy.counters()) == {"p0": {"rx": 1, "split_headers": 1}}
        r_out = ref.process(md.P0, [frame])
        assert r_out and cy.core.process(md.P0, [frame]) == r_out
    finally:
        ref.close()
        cy.close()


def jumbo_frames(variant: str) -> list[tuple[str, int, bytes]]:
    """(path, port, frame) of 9,000 bytes on every path the config has."""
    cfg = md.CONFIGS[variant]
    tun = str(cfg.node.tunnel_address)
    body = bytes(range(256)) * 40

    def ip4(dst, size=JUMBO - 14):
        p = IP(src="198.51.100.1", dst=dst, ttl=64) / UDP(sport=4000, dport=5000)
        return bytes(p / body[:size - len(p)])

    def ip6(dst, size=JUMBO - 14):
        p = IPv6(src="2001:db8:77::1", dst=dst, hlim=64) / UDP(sport=4000, dport=5000)
        return bytes(p / body[:size - len(p)])

    inner = (bytes.fromhex("48aabbccdd01020000000042") + b"\x08\x00" +
             ip4("172.16.1.1", JUMBO - 14 - 30))
    out = [
        ("routed v4 -> push+ELI/EL", md.P0, md.eth(ip4("10.0.0.9"), md.P0, 0x0800)),
        ("routed v6 -> push+ELI/EL", md.P0, md.eth(ip6("2001:db8::9"), md.P0, 0x86DD)),
        ("routed v4 -> plain", md.P0, md.eth(ip4("10.6.0.9"), md.P0, 0x0800)),
        ("routed v4 -> MPLS-over-UDP", md.P1, md.eth(ip4("10.4.0.9"), md.P1, 0x0800)),
        ("routed v4 -> MPLS-over-GRE", md.P0, md.eth(ip4("10.5.0.9"), md.P0, 0x0800)),
        ("routed v4 -> group", md.P0, md.eth(ip4("10.1.0.9"), md.P0, 0x0800)),
        # a small IP packet padded to a jumbo frame: cut before it goes into the tunnel
        ("padded v4 -> MPLS-over-UDP", md.P1,
         md.eth(ip4("10.4.0.9", 100) + bytes(JUMBO - 114), md.P1, 0x0800)),
        ("swap", md.UP1, md.eth(md.lse(100, 1) + ip4("10.9.9.9", JUMBO - 18), md.UP1)),
        ("pop-lookup", md.UP1, md.eth(md.lse(301, 1) + ip4("10.6.0.9", JUMBO - 18), md.UP1)),
        ("pop-xconnect + CW", md.UP1,
         md.eth(md.lse(500, 1) + b"\0\0\0\0" + inner[:JUMBO - 22], md.UP1)),
        ("AC -> pw1 (FAT, CW)", md.CE1, inner),
        ("AC -> pw2", md.CE2, inner),
    ]
    region = md.lse(301, 1) + ip4("10.6.0.9", JUMBO - 100)
    if ":" in tun:
        ov = IPv6(src="2001:db8:77::7", dst=tun) / UDP(sport=50000, dport=6635) / region
        out.append(("MPLS-over-UDP decap", md.P0, md.eth(bytes(ov), md.P0, 0x86DD)))
    else:
        ov = IP(src="198.51.100.7", dst=tun) / UDP(sport=50000, dport=6635) / region
        gre = IP(src="198.51.100.7", dst=tun) / GRE(proto=0x8847) / region
        out += [("MPLS-over-UDP decap", md.P0, md.eth(bytes(ov), md.P0, 0x0800)),
                ("MPLS-over-GRE decap", md.P0, md.eth(bytes(gre), md.P0, 0x0800))]
    return out


def check_lengths(frame: bytes) -> None:
    """The length fields and checksums of what left agree with its size (scapy)."""
    et = struct.unpack_from("!H", frame, 12)[0]
    if et == 0x0800:
        ip = IP(frame[14:])
        assert ip.len == len(frame) - 14, (ip.len, len(frame))
        q = IP(frame[14:])
        del q.chksum
        assert IP(bytes(q)).chksum == ip.chksum
        if UDP in ip and ip[UDP].dport == 6635:
            assert ip[UDP].len == ip.len - 4 * ip.ihl
    elif et == 0x86DD:
        ip6 = IPv6(frame[14:])
        assert ip6.plen == len(frame) - 54
        if UDP in ip6 and ip6[UDP].dport == 6635:
            assert ip6[UDP].len == ip6.plen
            q = IPv6(frame[14:])
            del q[UDP].chksum
            assert IPv6(bytes(q))[UDP].chksum == ip6[UDP].chksum     # over every segment


@pytest.mark.parametrize("variant", sorted(md.CONFIGS))
def test_jumbo_frames_on_every_path(mbuf_leak_check, variant):
    cfg = md.CONFIGS[variant]
    ref, cy = make_backend("reference", cfg), make_backend("cython", cfg)
    try:
        for path, port, frame in jumbo_frames(variant):
            assert len(frame) >= JUMBO - 100
            for seg in (0, 1000):          # the pool's 2 KB segments; 1000-byte ones
                r_out = ref.process(port, [frame])
                c_out = cy.core.process(port, [frame], 0, seg)
                assert c_out == r_out, f"{path} ({seg or 'pool'} segments): " \
                    f"reference {[(e, len(f)) for e, f in r_out]}, " \
                    f"cython {[(e, len(f)) for e, f in c_out]}"
                assert c_out, f"{path}: nothing left ({cy.counters()})"
                for _, f in c_out:
                    check_lengths(f)
        drops = {k: v for c in cy.counters().values() for k, v in c.items()
                 if v and k not in ("rx", "tx")}
        assert not drops, drops
    finally:
        ref.close()
        cy.close()


def replay(tmp: Path, cfg_text: str, port: str, frames: list[bytes]) -> tuple[dict, Path]:
    cfg = tmp / "c.yaml"
    cfg.write_text(cfg_text)
    wrpcap(str(tmp / "in.pcap"), [Ether(f) for f in frames])
    out = tmp / "out"
    r = subprocess.run([sys.executable, "-m", "dataplane", "replay", str(cfg), "--in",
                        f"{port}={tmp / 'in.pcap'}", "--out-dir", str(out), "-q"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((out / "summary.json").read_text()), out


PW_CONFIG = """
node: {name: jumbo, tunnel_address: 192.0.2.1}
ports:
  - {name: ce1, devargs: net_null0, mac: "02:00:00:00:00:01", xconnect: pw1}
  - {name: p0, devargs: net_null1, mac: "02:00:00:00:00:02", vrf: default}
  - {name: up1, devargs: net_null2, mac: "02:00:00:00:00:03", vrf: default}
vrfs:
  default:
    routes: [{prefix: 10.0.0.0/8, via: plain}]
nexthops:
  gw: {port: up1, mac: "02:00:00:00:01:01", labels: [20],
       tunnel: {type: mpls-udp, remote: 203.0.113.9}}
  plain: {port: up1, mac: "02:00:00:00:01:02"}
pseudowires:
  pw1: {ac_port: ce1, label: 500, via: gw, fat: %s, control_word: %s}
"""


@pytest.mark.parametrize("fat,cw", [(False, False), (True, True)])
def test_pseudowire_jumbo_over_mpls_udp_end_to_end(tmp_path, fat, cw):
    """The issue's case: 9,000-byte frames into a pseudowire over MPLS-over-UDP leave
    whole, outer IPv4 and UDP lengths right (scapy and tshark), the frame inside intact."""
    frames = [bytes(Ether(dst="48:00:00:00:00:01", src="02:00:00:00:00:99") /
                    IP(src="172.16.0.1", dst="172.16.0.2") / UDP(sport=i, dport=53) /
                    (bytes([i]) * (size - 42)))
              for i, size in ((1, JUMBO), (2, 4000), (3, 1500), (4, 64))]
    s, out = replay(tmp_path, PW_CONFIG % (str(fat).lower(), str(cw).lower()), "ce1", frames)
    assert s["rx"] == s["tx"] == len(frames) and not any(s["drops"].values())
    sent = [bytes(d) for d, _ in RawPcapReader(str(out / "up1.pcap"))]
    extra = 14 + 20 + 8 + 4 + 4 + 4 * fat + 4 * cw        # eth, IP, UDP, 20, PW, FAT, CW
    assert sorted(map(len, sent)) == sorted(len(f) + extra for f in frames)
    for f in sent:
        p = Ether(f)
        assert p[IP].len == len(f) - 14 and p[UDP].len == len(f) - 34
        labels = MPLS(bytes(p[UDP].payload))
        assert labels.label == 20
        inner = bytes(p[UDP].payload)[8 + 4 * fat + 4 * cw:]
        assert inner in frames
    if shutil.which("tshark"):
        t = subprocess.run(["tshark", "-r", str(out / "up1.pcap"), "-T", "fields",
                            "-e", "frame.len", "-e", "ip.len", "-e", "udp.length"],
                           capture_output=True, text=True, timeout=60)
        # the outer header's fields first (tshark also decodes the frame inside)
        rows = [[int(v.split(",")[0]) for v in line.split("\t")[:3]]
                for line in t.stdout.split("\n") if line.strip()]
        assert len(rows) == len(frames)
        for flen, iplen, udplen in rows:
            assert iplen == flen - 14 and udplen == flen - 34


def test_jumbo_routed_end_to_end(tmp_path):
    """A 9,000-byte IPv4 packet is forwarded whole (it used to drop as `truncated`)."""
    frame = bytes(Ether(dst="02:00:00:00:00:02", src="02:00:00:00:00:99") /
                  IP(src="100.64.0.1", dst="10.1.2.3") / UDP(sport=1, dport=2) /
                  (b"j" * (JUMBO - 42)))
    s, out = replay(tmp_path, PW_CONFIG % ("false", "false"), "p0", [frame])
    assert s["tx"] == 1 and not any(s["drops"].values())
    (got,) = [bytes(d) for d, _ in RawPcapReader(str(out / "up1.pcap"))]
    p = Ether(got)
    assert len(got) == JUMBO and p[IP].len == JUMBO - 14 and p[IP].ttl == 63
    assert bytes(p[UDP].payload) == b"j" * (JUMBO - 42)
