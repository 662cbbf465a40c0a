"""Each TRex profile, rendered by `dataplane replay --trex` (TRex's own library compiles
the streams, dataplane/trex/vm.py runs their field-engine programs) and replayed through
the real forwarder on net_pcap vdevs with its pairing config: the outcome its docstring
claims, checked on the output frames with scapy and on the replay's counters.

A member of a group is known by the destination MAC its next hop paints (the pairing
configs give the four members 02:00:00:00:01:01, :01:02, :02:01, :02:02).
"""
from __future__ import annotations

import collections
import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ROOT / "trex_profiles"
CONFIGS = PROFILES / "configs"
MEMBERS = ("02:00:00:00:01:01", "02:00:00:00:01:02", "02:00:00:00:02:01",
           "02:00:00:00:02:02")
TOLERANCE = 0.03                # SPEC §11: within ±3 % of the configured shares
TIMEOUT = 600


class Replay:
    def __init__(self, out: Path):
        self.out = out
        self.summary = json.loads((out / "summary.json").read_text())
        self.frames = {}
        for port in self.summary["ports"]:
            f = out / f"{port}.pcap"
            self.frames[port] = ([bytes(d) for d, _ in RawPcapReader(str(f))]
                                 if f.exists() and f.stat().st_size > 24 else [])
        self.sent = [bytes(d) for d, _ in RawPcapReader(str(out / "trex-p0.pcap"))]

    def drops(self) -> dict:
        return {k: v for k, v in self.summary["drops"].items() if v}

    def out_frames(self) -> list[bytes]:
        return [f for port in ("p1", "p2") for f in self.frames.get(port, [])]

    def member_packets(self) -> collections.Counter:
        return collections.Counter(Ether(f).dst for f in self.out_frames())


@functools.cache
def replay(config: str, profile: str, packets: int, tunables: tuple = ()) -> Replay:
    out = Path(TMP) / f"{profile}-{config}-{packets}-{'_'.join(tunables) or 'defaults'}"
    cmd = [sys.executable, "-m", "dataplane", "replay", str(CONFIGS / f"{config}.yaml"),
           "--trex", f"p0={PROFILES / (profile + '.py')}", "-n", str(packets),
           "--out-dir", str(out), "-q"]
    if tunables:
        cmd += ["-t", *tunables]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stdout}\n{r.stderr}"
    return Replay(out)


TMP = None


@pytest.fixture(scope="module", autouse=True)
def _tmp(tmp_path_factory):
    global TMP
    TMP = tmp_path_factory.mktemp("trex")
    yield
    replay.cache_clear()


def five_tuple(pkt) -> tuple:
    ip = pkt[IP] if IP in pkt else pkt[IPv6]
    l4 = pkt[UDP] if UDP in pkt else pkt[TCP]
    return (ip.src, ip.dst, l4.sport, l4.dport)


def shares(counts: collections.Counter) -> list[float]:
    total = sum(counts[m] for m in MEMBERS)
    return [counts[m] / total for m in MEMBERS]


def assert_spread(counts: collections.Counter, what: str) -> None:
    s = shares(counts)
    assert all(abs(x - 0.25) <= TOLERANCE for x in s), f"{what} shares {s}"


def one_member_per(frames: list[bytes], key) -> dict:
    """key(frame) -> the set of members it left by; asserted to be one each."""
    seen = collections.defaultdict(set)
    for f in frames:
        p = Ether(f)
        seen[key(p)].add(p.dst)
    split = {k: v for k, v in seen.items() if len(v) > 1}
    assert not split, f"{len(split)} of {len(seen)} keys on several members: " \
                      f"{list(split.items())[:3]}"
    return seen


# --- L3 load sharing -------------------------------------------------------------------------

def test_udp_flows_spread_within_tolerance_and_pinned():
    n = 20000
    r = replay("l3_ecmp", "udp_flows", n, ("--flows", str(n)))
    assert r.summary["rx"] == len(r.sent) == n and not r.drops()
    assert r.summary["flows"]["flows_distinct"] == n
    out = r.out_frames()
    assert len(out) == n
    seen = one_member_per(out, five_tuple)
    assert len(seen) == n
    assert_spread(collections.Counter(next(iter(v)) for v in seen.values()), "flow")
    assert_spread(r.member_packets(), "packet")
    for f in out[:200]:                         # routed: TTL 63, checksums right
        p = Ether(f)
        assert p[IP].ttl == 63
        q = IP(bytes(p[IP]))
        del q.chksum, q[UDP].chksum
        assert IP(bytes(q)).chksum == p[IP].chksum and IP(bytes(q))[UDP].chksum == p[UDP].chksum


def test_imix_a_flow_is_one_entry_whatever_its_sizes():
    r = replay("l3_ecmp", "imix", 12000, ("--flows", "1000"))
    assert not r.drops()
    assert r.summary["flows"]["flows_distinct"] == 1000
    out = r.out_frames()
    assert {len(f) for f in out} == {60, 590, 1514}
    sizes = collections.defaultdict(set)
    for f in out:
        sizes[five_tuple(Ether(f))].add(len(f))
    assert sum(len(s) == 3 for s in sizes.values()) > 500     # most flows sent all three
    one_member_per(out, five_tuple)


def test_ipv6_flows_spread_and_hop_limit():
    n = 20000
    r = replay("l3_ecmp", "ipv6_flows", n, ("--flows", str(n)))
    assert not r.drops() and r.summary["flows"]["flows_distinct"] == n
    out = r.out_frames()
    assert len(out) == n and all(Ether(f)[IPv6].hlim == 63 for f in out[:500])
    seen = one_member_per(out, five_tuple)
    assert_spread(collections.Counter(next(iter(v)) for v in seen.values()), "flow")


# --- a SYN flood beside established sessions --------------------------------------------------

def test_syn_flood_does_not_starve_established_sessions():
    r = replay("syn_flood", "syn_flood", 20000)
    est_sent = [f for f in r.sent if Ether(f)[IP].src.startswith("16.255.")]
    syn_sent = len(r.sent) - len(est_sent)
    assert est_sent and syn_sent > 10 * 1024        # a flood 10x the table, beside them
    out = r.out_frames()
    est_out = [f for f in out if Ether(f)[IP].src.startswith("16.255.")]
    # every established packet forwarded, each session on one member
    assert len(est_out) == len(est_sent)
    one_member_per(est_out, five_tuple)
    drops = r.drops()
    assert drops.get("flow_table_full", 0) > 0 and set(drops) == {"flow_table_full"}
    assert r.summary["flows"]["flow_created"] == 1024
    assert r.summary["rx"] == len(out) + drops["flow_table_full"]


# --- fragments --------------------------------------------------------------------------------

def fragment_key(p):
    return (p[IP].src, p[IP].dst, p[IP].id)


def test_fragments_follow_their_first_fragment():
    r = replay("ip_fragments", "ip_fragments", 3000)
    assert not r.drops()
    out = r.out_frames()
    assert len(out) == 3000
    frags = [Ether(f) for f in out]
    assert all(p[IP].flags.MF or p[IP].frag for p in frags)
    firsts = sum(1 for p in frags if p[IP].frag == 0)
    fr = r.summary["fragments"]
    assert fr["frag_followed"] == len(out) - firsts and fr["frag_fallback"] == 0
    one_member_per(out, fragment_key)                 # each datagram on one member
    one_member_per(out, lambda p: (p[IP].src, p[IP].dst))   # each flow on one member
    assert len({Ether(f).dst for f in out}) > 1       # and the flows spread


def test_fragments_out_of_order_fall_back_and_say_so():
    r = replay("ip_fragments", "ip_fragments", 3000, ("--reverse",))
    fr = r.summary["fragments"]
    assert fr["frag_fallback"] > 0 and not r.drops()


# --- MPLS transit: the entropy label ----------------------------------------------------------

def labels(p) -> list:
    out, m = [], p[MPLS] if MPLS in p else None
    while m is not None and isinstance(m, MPLS):
        out.append((m.label, m.ttl, m.s))
        m = m.payload if m.s == 0 else None
    return out


def test_lsr_hashes_on_the_entropy_label():
    r = replay("lsr_entropy", "lsr_entropy", 20000, ("--flows", "20000"))
    assert not r.drops()
    out = r.out_frames()
    assert len(out) == 20000
    for f in out[:300]:
        st = labels(Ether(f))
        assert st[0][:2] == (16002, 63) and st[1][:2] == (7, 0) and st[2][1] == 0
    by_el = one_member_per(out, lambda p: labels(p)[2][0])
    assert_spread(collections.Counter(next(iter(v)) for v in by_el.values()), "EL")
    # the EL alone decides: a fixed inner packet gives the same members per EL
    fixed = replay("lsr_entropy", "lsr_entropy", 20000, ("--flows", "20000", "--fixed-inner"))
    by_el_fixed = one_member_per(fixed.out_frames(), lambda p: labels(p)[2][0])
    assert by_el_fixed == by_el


# --- pseudowires and the MAC 4/6 problem -------------------------------------------------------

def test_pseudowire_without_cw_is_sprayed_with_cw_stays_on_one_member():
    n = 8000
    nocw = replay("pw_ethernet", "pw_ethernet", n, ("--no-cw",))
    cw = replay("pw_ethernet", "pw_ethernet", n, ("--cw",))
    for r in (nocw, cw):
        assert not r.drops() and len(r.out_frames()) == n
    # without a control word the LSR reads MAC 4x/6x as IPv4/IPv6: the PW is sprayed
    assert len(nocw.member_packets()) == 4
    assert max(shares(nocw.member_packets())) < 0.4
    # with it, labels only: the whole pseudowire on one member
    assert len(cw.member_packets()) == 1
    # the control word (first nibble 0) really is under the labels, and absent without
    for f in cw.out_frames()[:50]:
        m = Ether(f)[MPLS]
        while m.s == 0:
            m = m.payload
        assert bytes(m.payload)[:4] == b"\0\0\0\0"
    for f in nocw.out_frames()[:50]:
        m = Ether(f)[MPLS]
        while m.s == 0:
            m = m.payload
        assert bytes(m.payload)[0] >> 4 in (4, 6)


# --- MPLS over UDP toward node.tunnel_address ------------------------------------------------------

def test_mpls_over_udp_is_decapsulated_into_its_vrf():
    r = replay("mpls_udp", "mpls_udp", 8000, ("--flows", "1000"))
    assert not r.drops()
    out = r.out_frames()
    assert len(out) == 8000
    for f in out[:300]:
        p = Ether(f)
        assert IP in p and UDP in p and p[UDP].dport != 6635 and p[IP].ttl == 63
        assert p[IP].dst.startswith("48.")
    one_member_per(out, five_tuple)
    wrong = replay("mpls_udp", "mpls_udp", 500, ("--tunnel-address", "192.0.2.99"))
    assert wrong.drops() == {"no_route": 500} and not wrong.out_frames()


# --- fat flows: every SSH session of a client on one entry and one member -----------------------

def test_fat_flow_ssh_sessions_share_one_entry():
    r = replay("fat_flow_ssh", "fat_flow_ssh", 5000, ("--sessions", "1000"))
    assert not r.drops()
    out = r.out_frames()
    assert len(out) == 5000
    assert len({five_tuple(Ether(f)) for f in out}) == 1000    # 1000 sessions sent
    assert r.summary["flows"]["flow_created"] == 1
    assert len(r.member_packets()) == 1
    eight = replay("fat_flow_ssh", "fat_flow_ssh", 5000, ("--sessions", "1000",
                                                          "--clients", "8"))
    assert eight.summary["flows"]["flow_created"] == 8


# --- the command's errors: one line, exit status 2 --------------------------------------------

def dataplane(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dataplane", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=TIMEOUT)


def test_render_errors_are_one_line(tmp_path):
    out = str(tmp_path / "x.pcap")
    bad = dataplane("trex", "render", str(PROFILES / "udp_flows.py"), "--out", out,
                    "-t", "--bogus")
    assert bad.returncode == 2 and "--bogus" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    missing = dataplane("trex", "render", "nope.py", "--out", out)
    assert missing.returncode == 2 and "no such profile" in missing.stderr
    zero = dataplane("trex", "render", str(PROFILES / "udp_flows.py"), "--out", out, "-n", "0")
    assert zero.returncode == 2 and "-n 0" in zero.stderr
    cfg = str(CONFIGS / "l3_ecmp.yaml")
    none = dataplane("replay", cfg, "--out-dir", str(tmp_path / "o"))
    assert none.returncode == 2 and "--trex" in none.stderr
    both = dataplane("replay", cfg, "--in", f"p0={out}", "--trex",
                     f"p0={PROFILES / 'udp_flows.py'}", "--out-dir", str(tmp_path / "o"))
    assert both.returncode == 2 and "both feed port p0" in both.stderr


def test_render_writes_what_the_streams_say(tmp_path):
    """The command's pcap: -n frames, the profile's tunables applied (scapy decode)."""
    out = tmp_path / "u.pcap"
    r = dataplane("trex", "render", str(PROFILES / "udp_flows.py"), "--out", str(out),
                  "-n", "300", "-t", "--flows", "100", "--size", "128")
    assert r.returncode == 0, r.stderr
    frames = [Ether(bytes(d)) for d, _ in RawPcapReader(str(out))]
    assert len(frames) == 300 and {len(bytes(f)) for f in frames} == {128}
    assert len({five_tuple(f) for f in frames}) == 100
    assert five_tuple(frames[0]) == five_tuple(frames[100])
