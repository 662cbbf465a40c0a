"""The flow table and fat flows (docs/flow-table.md, SPEC §4 and §5), run against both
backends (the Cython core and the reference model) through the `backend` fixture.

Oracles: counting what was sent, the bucket tables of dataplane.ecmp, the published hash
(docs/hashing.md) computed from keys worked out by hand from the fat-flow rules, and the
Contrail fat-flow walkthrough (seeds/001, "Contrail Fat flows").
"""
from __future__ import annotations

import ipaddress
import random
import socket
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, fragment
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw
from scapy.utils import checksum

from dataplane import ecmp, hashing
from dataplane.config.model import FlowTable, HashSpec
from helpers import make_config, mac, port_mac

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10
CLIENT_MAC = mac("02:aa:00:00:00:01")
PORTS = (("p0", "default"), ("up1", "default"), ("up2", "default"), ("up3", "default"),
         ("up4", "default"), ("r0", "red"))
P0, UP1, UP2, UP3, UP4, R0 = range(len(PORTS))
NEXTHOPS = {"nh1": ("up1", "02:00:00:00:01:01"), "nh2": ("up2", "02:00:00:00:02:02"),
            "nh3": ("up3", "02:00:00:00:03:03"), "nh4": ("up4", "02:00:00:00:04:04"),
            "back": ("p0", "02:00:00:00:00:99")}
NH = {name: i for i, name in enumerate(NEXTHOPS)}
GROUPS = {"spines": [("nh1", 1), ("nh2", 1), ("nh3", 1)]}
SPINES = 0
VRFS = {
    "default": [("10.2.0.0/16", "spines"), ("8.8.0.0/16", "spines"),
                ("2001:db8:8::/48", "spines"), ("10.1.0.0/16", "nh4"),
                ("100.64.0.0/10", "back"), ("10.10.0.0/16", "back"),
                ("2001:db8:a::/48", "back")],
    "red": [("10.0.0.0/8", "nh1")],
}
SEED = 0x5EED0001
BUCKETS = 4096


def config(**kw):
    return make_config(ports=PORTS, nexthops=NEXTHOPS, groups=kw.pop("groups", GROUPS),
                       vrfs=VRFS, seed=SEED, **kw)


CFG = config()


# --- frames ---------------------------------------------------------------------------

def tcp4(src: str, dst: str, sport: int, dport: int, flags: int = ACK, payload: bytes = b"",
         port: int = P0, vlan: int | None = None) -> bytes:
    """Ethernet / IPv4 / TCP, built with struct (fast enough for floods of new flows)."""
    l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan)
    return mac(port_mac(port)) + CLIENT_MAC + tag + b"\x08\x00" + ip + l4


def eth(*layers, port=P0) -> bytes:
    pkt = Ether(src="02:aa:00:00:00:01", dst=port_mac(port))
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


def random_flows(n: int, seed: int, net: str = "10.2", client: str = "100.64"):
    """n distinct (src, dst, sport, dport) TCP 4-tuples toward net/16."""
    rng = random.Random(seed)
    seen = set()
    while len(seen) < n:
        seen.add((f"{client}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                  f"{net}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                  rng.randrange(1024, 65536), rng.choice((80, 443, 8080))))
    return sorted(seen)


def nexthop_of(cfg, egress: int, out: bytes) -> str:
    hits = [nh.name for nh in cfg.nexthops if nh.port_index == egress and nh.mac == out[:6]]
    assert len(hits) == 1, (egress, out[:6].hex(), hits)
    return hits[0]


def send(fwd, frames, port=P0) -> list[str]:
    """Frames through the backend in bursts of 32; the next hop each one took (all must
    be forwarded)."""
    taken = []
    for i in range(0, len(frames), 32):
        out = fwd.process(port, frames[i:i + 32])
        taken += [nexthop_of(fwd.cfg, e, d) for e, d in out]
    assert len(taken) == len(frames)
    return taken


def by_key(fwd) -> dict[tuple, dict]:
    """flows() indexed by (vrf, src, dst, proto, sport, dport); keys must be unique."""
    flows = fwd.flows()
    out = {(f["vrf"], f["src"], f["dst"], f["proto"], f["sport"], f["dport"]): f
           for f in flows}
    assert len(out) == len(flows)
    return out


def members_arg(spec) -> list[tuple[int, int, bool]]:
    """[("nh1", weight) or ("nh1", weight, present)] → update_group's member list."""
    return [(NH[m[0]], m[1], m[2] if len(m) > 2 else True) for m in spec]


def addr(text: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in text else socket.AF_INET, text)


def test_bursts_of_new_flows_mixed_with_drops_and_hits(backend):
    """After a burst of only new flows the core inserts-or-finds each key with one
    rte_hash add instead of a bulk lookup (docs/flow-table.md §4). Such a burst that also
    holds established flows, a flow twice, packets with no route and packets whose group
    has no live member must give exactly what the reference gives, and leave no key in
    the table without an entry (flows_active counts rte_hash's keys)."""
    fwd = backend(config(groups={"spines": [("nh1", 1), ("nh2", 1)]}))
    fwd.set_clock(1.0)
    old = [tcp4(*f) for f in random_flows(32, seed=21)]
    first = send(fwd, old)                                     # all new: direct next
    new = [tcp4(*f) for f in random_flows(40, seed=22)[32:]]
    lost = [tcp4("100.64.1.1", f"192.0.2.{i}", 4000 + i, 80) for i in range(8)]
    burst = new[:4] + lost[:4] + old[:8] + new[4:] + new[:4] + lost[4:] + old[8:12]
    out = fwd.process(P0, burst)
    assert len(out) == 4 + 8 + 4 + 4 + 4 and fwd.counters()["p0"]["no_route"] == 8
    assert [nexthop_of(fwd.cfg, e, d) for e, d in out][4:12] == first[:8]   # pinned
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flows_active"]) == (40, 40)
    more = [tcp4(*f) for f in random_flows(72, seed=23)[40:]]
    send(fwd, more)                                            # all new: direct next
    fwd.update_group(SPINES, members_arg([("nh1", 0), ("nh2", 0)]))   # drain both
    drained = [tcp4(*f) for f in random_flows(88, seed=24)[72:]]
    out = fwd.process(P0, drained + old[:16])
    assert [nexthop_of(fwd.cfg, e, d) for e, d in out] == first[:16]
    assert fwd.counters()["p0"]["no_route"] == 8 + 16
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flows_active"], len(fwd.flows())) == (72, 72, 72)


def expected_member(table, src, dst, proto, sport, dport, in_port=P0, mask=0x1f) -> int:
    """The member the bucket table gives the hash of these (key) fields."""
    family = 6 if ":" in src else 4
    h = hashing.flow_hash(family, addr(src), addr(dst), proto, sport, dport, in_port, 0,
                          mask, SEED)
    return int(table[hashing.bucket_of(h, len(table))])


def zero_counters(fwd):
    assert {k: v for k, v in fwd.flow_counters().items() if k != "flows_active"} == {
        "flow_created": 0, "flow_deleted": 0, "flow_aged": 0, "flow_rehashed": 0,
        "flow_table_full": 0}


# --- 1. pinning: add, remove, drain; packet mode ----------------------------------------

def test_add_member_moves_no_flow(backend):
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    old = random_flows(600, seed=1)
    frames = [tcp4(*f, flags=SYN) for f in old]
    first = send(fwd, frames)
    assert set(first) == {"nh1", "nh2", "nh3"}
    assert fwd.flow_counters()["flow_created"] == 600
    before = {k: (f["member"], f["nh_id"]) for k, f in by_key(fwd).items()}

    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1), ("nh3", 1), ("nh4", 1)]))
    assert send(fwd, frames) == first                       # not one existing flow moved
    assert {k: (f["member"], f["nh_id"]) for k, f in by_key(fwd).items()} == before
    assert fwd.flow_counters()["flow_rehashed"] == 0

    # new flows follow the rebalanced bucket table, the new member included
    table = ecmp.rebalance(ecmp.build([1, 1, 1], BUCKETS), [1, 1, 1, 1])
    new = random_flows(600, seed=2)
    taken = send(fwd, [tcp4(*f, flags=SYN) for f in new])
    want = [GROUPS["spines"][m][0] if m < 3 else "nh4"
            for m in (expected_member(table, s, d, 6, sp, dp) for s, d, sp, dp in new)]
    assert taken == want
    assert 100 < taken.count("nh4") < 200                   # about a quarter
    assert fwd.group_counters(SPINES)[3] == taken.count("nh4")


def test_remove_member_moves_exactly_its_flows(backend):
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1), ("nh3", 1), ("nh4", 1)]))
    flows = random_flows(800, seed=3)
    frames = [tcp4(*f) for f in flows]
    first = send(fwd, frames)
    pinned = by_key(fwd)
    on_nh2 = [k for k, f in pinned.items() if f["member"] == 1]
    assert len(on_nh2) == first.count("nh2") and 150 < len(on_nh2) < 250

    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1, False), ("nh3", 1),
                                          ("nh4", 1)]))
    second = send(fwd, frames)
    assert fwd.flow_counters()["flow_rehashed"] == len(on_nh2)
    assert fwd.flow_counters()["flow_created"] == 800       # re-hashed, not re-created
    for a, b in zip(first, second):
        assert b == a if a != "nh2" else b in ("nh1", "nh3", "nh4")
    # the re-hashed flows went where the new table puts them, from the stored hash
    table = ecmp.rebalance(ecmp.rebalance(ecmp.build([1, 1, 1], BUCKETS), [1, 1, 1, 1]),
                           [1, 0, 1, 1])
    after = by_key(fwd)
    for k in on_nh2:
        f = after[k]
        assert f["member"] == int(table[hashing.bucket_of(f["hash"], BUCKETS)]) != 1
        assert f["nh_id"] == NH[("nh1", "nh2", "nh3", "nh4")[f["member"]]]
    # counted once: the next packets of those flows are plain hits
    assert send(fwd, frames) == second
    assert fwd.flow_counters()["flow_rehashed"] == len(on_nh2)


def test_drained_member_keeps_its_flows_takes_no_new_one(backend):
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    old = random_flows(600, seed=4)
    frames = [tcp4(*f) for f in old]
    first = send(fwd, frames)
    assert 150 < first.count("nh3") < 250
    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1), ("nh3", 0)]))
    assert send(fwd, frames) == first                       # nh3's flows stay on nh3
    assert fwd.flow_counters()["flow_rehashed"] == 0
    new = send(fwd, [tcp4(*f) for f in random_flows(600, seed=5)])
    assert "nh3" not in new and set(new) == {"nh1", "nh2"}
    # undrained: its old flows are still there, and it takes new flows again
    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1), ("nh3", 1)]))
    assert send(fwd, frames) == first
    assert "nh3" in send(fwd, [tcp4(*f) for f in random_flows(300, seed=6)])


def test_removed_member_with_no_live_member_left(backend):
    """The pinned member is removed and every other member is drained: no bucket table
    to re-hash onto. The packet drops as no_route and the entry is left as it is (not
    counted as re-hashed); once a live member exists again the flow is re-hashed."""
    cfg = config(groups={"spines": [("nh1", 1), ("nh2", 1)]})
    fwd = backend(cfg)
    fwd.set_clock(1.0)
    flows = random_flows(100, seed=7)
    frames = [tcp4(*f) for f in flows]
    first = send(fwd, frames)
    on_nh1 = first.count("nh1")
    assert 20 < on_nh1 < 80
    fwd.update_group(SPINES, members_arg([("nh1", 1, False), ("nh2", 0)]))
    out = fwd.process(P0, frames)
    assert [nexthop_of(cfg, e, d) for e, d in out] == ["nh2"] * (100 - on_nh1)
    assert fwd.counters()["p0"]["no_route"] == on_nh1
    assert fwd.flow_counters()["flow_rehashed"] == 0
    assert sorted(f["member"] for f in fwd.flows()) == sorted(
        0 if t == "nh1" else 1 for t in first)
    # a miss on a group with no live member creates nothing
    out = fwd.process(P0, [tcp4("100.64.9.9", "10.2.9.9", 1000, 80)])
    assert out == [] and fwd.counters()["p0"]["no_route"] == on_nh1 + 1
    assert len(fwd.flows()) == 100
    fwd.update_group(SPINES, members_arg([("nh1", 1, False), ("nh2", 0), ("nh3", 1)]))
    again = send(fwd, frames)
    assert again == ["nh3" if t == "nh1" else "nh2" for t in first]
    assert fwd.flow_counters()["flow_rehashed"] == on_nh1


def test_packet_mode_is_stateless_and_follows_the_table(backend):
    fwd = backend(config(modes={"p0": "packet"}))
    flows = random_flows(2000, seed=8)
    frames = [tcp4(*f) for f in flows]
    first = send(fwd, frames)
    assert fwd.flows() == []
    zero_counters(fwd)
    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1), ("nh3", 1), ("nh4", 1)]))
    second = send(fwd, frames)
    moved = [(a, b) for a, b in zip(first, second) if a != b]
    assert 400 < len(moved) < 600                            # about a quarter: to nh4
    assert all(b == "nh4" for _, b in moved)
    assert fwd.flows() == []
    zero_counters(fwd)


def test_flow_and_packet_mode_ports_side_by_side(backend):
    """Mode is per ingress port: up1 in packet mode keeps no state, p0 does."""
    fwd = backend(config(modes={"up1": "packet"}))
    fwd.set_clock(1.0)
    send(fwd, [tcp4("100.64.0.1", "10.2.0.1", 1000, 80)], port=P0)
    send(fwd, [tcp4("100.64.0.2", "10.2.0.1", 1000, 80, port=UP1)], port=UP1)
    assert [(f["src"], f["in_port"]) for f in fwd.flows()] == [("100.64.0.1", P0)]


# --- 2. TCP state and aging ------------------------------------------------------------

SHORT = FlowTable(entries=1024, idle_timeout=30, tcp_close_timeout=5)
CLIENT, SERVER = ("100.64.1.1", 40000), ("10.2.1.1", 443)


def c2s(flags, payload=b""):
    return tcp4(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1], flags, payload)


def s2c(flags, payload=b""):
    return tcp4(SERVER[0], CLIENT[0], SERVER[1], CLIENT[1], flags, payload, port=UP1)


C2S = (0, CLIENT[0], SERVER[0], 6, CLIENT[1], SERVER[1])
S2C = (0, SERVER[0], CLIENT[0], 6, SERVER[1], CLIENT[1])


def handshake(fwd, t):
    fwd.set_clock(t)
    send(fwd, [c2s(SYN)])
    send(fwd, [s2c(SYN | ACK)], port=UP1)
    send(fwd, [c2s(ACK)])


def state(fwd, key):
    f = by_key(fwd).get(key)
    return None if f is None else (f["fin"], f["rst"], f["closing"])


def test_idle_timeout_default_300s(backend):
    fwd = backend(CFG)
    assert fwd.cfg.flow_table.idle_timeout == 300
    fwd.set_clock(1000.0)
    send(fwd, [tcp4("100.64.0.1", "10.2.0.1", 1000, 80)])
    fwd.set_clock(1300.0)                    # idle exactly the timeout: kept (>, not >=)
    fwd.age_all()
    assert len(fwd.flows()) == 1
    fwd.set_clock(1300.5)
    fwd.age_all()
    assert fwd.flows() == []
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_aged"], c["flow_deleted"]) == (1, 1, 1)


def test_idle_timeout_short_and_traffic_keeps_a_flow(backend):
    fwd = backend(config(flow_table=SHORT))
    fwd.set_clock(100.0)
    busy, idle = tcp4("100.64.0.1", "10.2.0.1", 1000, 80), tcp4("100.64.0.2", "10.2.0.1",
                                                               1000, 80)
    send(fwd, [busy, idle])
    for t in range(120, 400, 20):            # a packet every 20 s, sweeps in between
        fwd.set_clock(float(t))
        send(fwd, [busy])
        fwd.set_clock(t + 15.0)
        fwd.age_all()
    flows = fwd.flows()
    assert [(f["src"], f["packets"]) for f in flows] == [("100.64.0.1", 1 + 14)]
    assert flows[0]["first_seen"] == pytest.approx(100.0)
    assert flows[0]["last_seen"] == pytest.approx(380.0)
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_aged"], c["flow_deleted"]) == (2, 1, 1)
    fwd.set_clock(410.5)                     # 30.5 s after the last packet
    fwd.age_all()
    assert fwd.flows() == [] and fwd.flow_counters()["flow_aged"] == 2


def test_a_late_packet_revives_an_entry_not_yet_swept(backend):
    """Only the sweep deletes: a hit on an entry past its idle timeout refreshes it."""
    fwd = backend(config(flow_table=SHORT))
    fwd.set_clock(10.0)
    frame = tcp4("100.64.0.1", "10.2.0.1", 1000, 80)
    send(fwd, [frame])
    fwd.set_clock(100.0)
    send(fwd, [frame])
    fwd.age_all()
    assert [f["packets"] for f in fwd.flows()] == [2]
    assert fwd.flow_counters()["flow_created"] == 1


def test_fin_both_ways_then_close_timeout(backend):
    fwd = backend(config(flow_table=SHORT))
    handshake(fwd, 10.0)
    assert state(fwd, C2S) == state(fwd, S2C) == (False, False, False)
    fwd.set_clock(11.0)
    send(fwd, [c2s(FIN | ACK)])
    assert state(fwd, C2S) == (True, False, False)            # one way: not closing yet
    assert state(fwd, S2C) == (False, False, False)
    fwd.set_clock(12.0)
    send(fwd, [s2c(FIN | ACK)], port=UP1)
    assert state(fwd, C2S) == (True, False, True)
    assert state(fwd, S2C) == (True, False, True)
    fwd.set_clock(14.0)
    send(fwd, [c2s(ACK), c2s(FIN | ACK)])         # a retransmitted FIN: still closing since 12
    send(fwd, [s2c(ACK)], port=UP1)
    fwd.set_clock(17.0)                                       # 5 s since closing: kept
    fwd.age_all()
    assert len(fwd.flows()) == 2
    fwd.set_clock(17.5)
    fwd.age_all()
    assert fwd.flows() == []
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_aged"], c["flow_deleted"]) == (2, 2, 2)


def test_rst_closes_both_directions(backend):
    fwd = backend(config(flow_table=SHORT))
    handshake(fwd, 50.0)
    fwd.set_clock(51.0)
    send(fwd, [s2c(RST)], port=UP1)
    assert state(fwd, S2C) == (False, True, True)
    assert state(fwd, C2S) == (False, False, True)            # marked, saw no RST itself
    fwd.set_clock(56.5)
    fwd.age_all()
    assert fwd.flows() == []


def test_rst_without_reverse_entry(backend):
    fwd = backend(config(flow_table=SHORT))
    fwd.set_clock(5.0)
    send(fwd, [c2s(SYN)])
    send(fwd, [tcp4("100.64.1.2", "10.2.1.1", 40001, 443)])   # unrelated flow
    fwd.set_clock(6.0)
    send(fwd, [c2s(RST | ACK)])
    assert state(fwd, C2S) == (False, True, True)
    assert len(fwd.flows()) == 2
    fwd.set_clock(11.5)
    fwd.age_all()
    assert [f["src"] for f in fwd.flows()] == ["100.64.1.2"]   # idle only 6.5 s
    fwd.set_clock(36.5)
    fwd.age_all()
    assert fwd.flows() == []


def test_fin_and_rst_in_the_creating_packet(backend):
    fwd = backend(config(flow_table=SHORT))
    fwd.set_clock(3.0)
    send(fwd, [c2s(FIN | ACK)])                                # created with fin set
    assert state(fwd, C2S) == (True, False, False)
    send(fwd, [s2c(FIN | ACK)], port=UP1)                      # the reverse closes both
    assert state(fwd, C2S) == state(fwd, S2C) == (True, False, True)


def test_fin_on_udp_is_not_tcp_state(backend):
    """Flags are read from TCP only: a UDP payload byte at TCP's flag offset means
    nothing."""
    fwd = backend(config(flow_table=SHORT))
    fwd.set_clock(1.0)
    send(fwd, [eth(IP(src=CLIENT[0], dst=SERVER[0]) / UDP(sport=1, dport=2)
                   / Raw(bytes([0xff] * 20)))])
    f = fwd.flows()[0]
    assert (f["proto"], f["fin"], f["rst"], f["closing"]) == (17, False, False, False)


# --- 3. capacity -----------------------------------------------------------------------

@pytest.mark.parametrize("on_full", ["hash", "drop"])
def test_flood_of_new_flows(backend, on_full):
    fwd = backend(config(flow_table=FlowTable(entries=1024, on_full=on_full)))
    fwd.set_clock(1.0)
    established = [tcp4(*f) for f in random_flows(100, seed=9)]
    before = send(fwd, established)
    flood = [tcp4(*f, flags=SYN) for f in random_flows(5000, seed=10, client="100.80")]
    out = []
    for i in range(0, len(flood), 32):
        out += fwd.process(P0, flood[i:i + 32])
    full = 5000 - (1024 - 100)
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_table_full"]) == (1024, full)
    assert len(fwd.flows()) == 1024
    p0 = fwd.counters()["p0"]
    if on_full == "hash":                     # forwarded statelessly, by the same hash
        assert len(out) == 5000 and p0["flow_table_full"] == 0
        table = ecmp.build([1, 1, 1], BUCKETS)
        flows = random_flows(5000, seed=10, client="100.80")
        assert [nexthop_of(fwd.cfg, e, d) for e, d in out] == [
            GROUPS["spines"][expected_member(table, s, d, 6, sp, dp)][0]
            for s, d, sp, dp in flows]
    else:
        assert len(out) == 5000 - full and p0["flow_table_full"] == full
        assert sum(p0[r] for r in p0 if r not in ("rx", "tx")) == full
    assert p0["rx"] == 100 + 5000
    # the established flows are still forwarded, through their entries
    fwd.set_clock(2.0)
    assert send(fwd, established) == before
    flows = by_key(fwd)
    for s, d, sp, dp in random_flows(100, seed=9):
        f = flows[(0, s, d, 6, sp, dp)]
        assert (f["packets"], f["bytes"], f["last_seen"]) == (2, 2 * 54, pytest.approx(2.0))
    assert len(flows) == 1024
    assert fwd.flow_counters()["flow_table_full"] == full       # no new miss


def test_full_table_frees_on_aging(backend):
    fwd = backend(config(flow_table=FlowTable(entries=1024, idle_timeout=10,
                                              on_full="drop")))
    fwd.set_clock(1.0)
    send(fwd, [tcp4(*f) for f in random_flows(1024, seed=11)])
    late = tcp4("100.64.200.1", "10.2.0.1", 999, 80)
    assert fwd.process(P0, [late]) == []
    fwd.set_clock(11.5)
    fwd.age_all()
    assert fwd.flows() == []
    assert send(fwd, [late]) and len(fwd.flows()) == 1
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_table_full"], c["flow_aged"]) == (1025, 1, 1024)


# --- 4. fat flows (seed 001, Contrail) ---------------------------------------------------

# sessions a subscriber opens: (src, dst, sport, dport): ssh and telnet, two sources,
# two destinations, two sessions each
SESSIONS = [(src, dst, sport, dport)
            for src in ("10.10.0.1", "10.10.0.2")
            for dst in ("8.8.8.8", "8.8.4.4")
            for dport, sports in ((22, (64165, 51000)), (23, (52986, 61000)))
            for sport in sports]


def own(sessions):
    """The keys of sessions no rule aggregates: their own 5-tuples."""
    return {(s, d, sp, dp) for s, d, sp, dp in sessions}


def fat_keys(fwd) -> dict[tuple, int]:
    """{(src, dst, sport, dport): packets} of the TCP entries in flows()."""
    return {(f["src"], f["dst"], f["sport"], f["dport"]): f["packets"]
            for f in fwd.flows() if f["proto"] == 6}


def run_sessions(fwd, sessions, packets=2):
    """Each session sends `packets` packets; the member each session took."""
    frames = [tcp4(*s) for s in sessions for _ in range(packets)]
    taken = send(fwd, frames)
    return {s: taken[i * packets] for i, s in enumerate(sessions)}


SSH = [s for s in SESSIONS if s[3] == 22]
TELNET = [s for s in SESSIONS if s[3] == 23]
SRC1 = [s for s in SESSIONS if s[0] == "10.10.0.1"]

# Contrail's six cases, the keys worked out by hand from the rule
CONTRAIL = {
    # "6:*": all sessions between a source and a destination, any service
    "tcp-0-none": ({"proto": "tcp", "port": 0}, {
        ("10.10.0.1", "8.8.8.8", 0, 0): 8, ("10.10.0.1", "8.8.4.4", 0, 0): 8,
        ("10.10.0.2", "8.8.8.8", 0, 0): 8, ("10.10.0.2", "8.8.4.4", 0, 0): 8}, set()),
    # "6:22": ssh sessions between a source and a destination; telnet stays per session
    "tcp-22-none": ({"proto": "tcp", "port": 22}, {
        ("10.10.0.1", "8.8.8.8", 0, 22): 4, ("10.10.0.1", "8.8.4.4", 0, 22): 4,
        ("10.10.0.2", "8.8.8.8", 0, 22): 4, ("10.10.0.2", "8.8.4.4", 0, 22): 4}, TELNET),
    # "6:* - Sip": everything toward one destination, whatever the source
    "tcp-0-src": ({"proto": "tcp", "port": 0, "ignore": "src"}, {
        ("0.0.0.0", "8.8.8.8", 0, 0): 16, ("0.0.0.0", "8.8.4.4", 0, 0): 16}, set()),
    # "6:22 - Sip": ssh toward one destination from any source
    "tcp-22-src": ({"proto": "tcp", "port": 22, "ignore": "src"}, {
        ("0.0.0.0", "8.8.8.8", 0, 22): 8, ("0.0.0.0", "8.8.4.4", 0, 22): 8}, TELNET),
    # "6:* - Dip": one fat flow per subscriber (the mobile case)
    "tcp-0-dst": ({"proto": "tcp", "port": 0, "ignore": "dst"}, {
        ("10.10.0.1", "0.0.0.0", 0, 0): 16, ("10.10.0.2", "0.0.0.0", 0, 0): 16}, set()),
    # "6:22 - Dip": a subscriber's ssh sessions, whatever the destination
    "tcp-22-dst": ({"proto": "tcp", "port": 22, "ignore": "dst"}, {
        ("10.10.0.1", "0.0.0.0", 0, 22): 8, ("10.10.0.2", "0.0.0.0", 0, 22): 8}, TELNET),
}


def check_one_member_per_aggregate(fwd, taken, rule_key):
    """All sessions of an aggregate took one member: the bucket table's choice for the
    hash of the aggregate's key (docs/flow-table.md §3), which flows() also reports."""
    table = ecmp.build([1, 1, 1], BUCKETS)
    flows = {(f["src"], f["dst"], f["sport"], f["dport"]): f for f in fwd.flows()}
    for session, nh in taken.items():
        key = rule_key(session)
        f = flows[key]
        member = expected_member(table, key[0], key[1], 6, key[2], key[3])
        assert f["member"] == member and nh == GROUPS["spines"][member][0], (session, key)
        assert f["hash"] == hashing.flow_hash(4, addr(key[0]), addr(key[1]), 6, key[2],
                                              key[3], P0, 0, 0x1f, SEED)


@pytest.mark.parametrize("case", CONTRAIL, ids=list(CONTRAIL))
def test_contrail_fat_flow_cases(backend, case):
    rule, aggregates, alone = CONTRAIL[case]
    fwd = backend(config(fat_flows={"p0": [rule]}))
    fwd.set_clock(1.0)
    taken = run_sessions(fwd, SESSIONS)
    want = dict(aggregates)
    want.update({k: 2 for k in own(alone)})
    assert fat_keys(fwd) == want
    assert fwd.flow_counters()["flow_created"] == len(want)

    def rule_key(s):
        if s in alone:
            return s
        return next(k for k in aggregates
                    if k[0] in (s[0], "0.0.0.0") and k[1] in (s[1], "0.0.0.0")
                    and k[2] in (s[2], 0) and k[3] in (s[3], 0))
    check_one_member_per_aggregate(fwd, taken, rule_key)


def test_fat_flow_aggregates_span_the_members(backend):
    """Aggregates are spread like flows: 200 subscribers, one fat flow each (ignore dst),
    land on every member, and every session of a subscriber on its one member."""
    fwd = backend(config(fat_flows={"p0": [{"proto": "tcp", "port": 0, "ignore": "dst"}]}))
    fwd.set_clock(1.0)
    rng = random.Random(12)
    sessions = [(f"10.10.{i // 200}.{i % 200 + 1}", f"8.8.{rng.randrange(256)}.{j + 1}",
                 rng.randrange(1024, 65536), rng.choice((22, 23, 80, 443)))
                for i in range(200) for j in range(5)]
    taken = run_sessions(fwd, sessions, packets=1)
    per_sub: dict[str, set] = {}
    for s, nh in taken.items():
        per_sub.setdefault(s[0], set()).add(nh)
    assert all(len(v) == 1 for v in per_sub.values())
    assert {next(iter(v)) for v in per_sub.values()} == {"nh1", "nh2", "nh3"}
    assert len(fwd.flows()) == 200


def test_fat_flow_source_prefix_aggregation(backend):
    """The /16 subscriber pool aggregated into /24s (seed 001's 'future' case)."""
    fwd = backend(config(fat_flows={"p0": [{"proto": "tcp", "port": 0,
                                             "src_prefix_len": 24}]}))
    fwd.set_clock(1.0)
    sources = ["10.10.0.1", "10.10.0.77", "10.10.0.254", "10.10.1.5", "10.10.1.200",
               "10.10.2.9"]
    sessions = [(s, "8.8.8.8", 40000 + i, dp) for i, s in enumerate(sources)
                for dp in (22, 443)]
    taken = run_sessions(fwd, sessions, packets=1)
    assert fat_keys(fwd) == {("10.10.0.0", "8.8.8.8", 0, 0): 6,
                             ("10.10.1.0", "8.8.8.8", 0, 0): 4,
                             ("10.10.2.0", "8.8.8.8", 0, 0): 2}

    def rule_key(s):
        return (s[0].rsplit(".", 1)[0] + ".0", s[1], 0, 0)
    check_one_member_per_aggregate(fwd, taken, rule_key)


def test_fat_flow_per_subscriber_24_any_destination(backend):
    fwd = backend(config(fat_flows={"p0": [{"proto": "tcp", "port": 0, "ignore": "dst",
                                             "src_prefix_len": 24}]}))
    fwd.set_clock(1.0)
    run_sessions(fwd, [("10.10.3.1", "8.8.8.8", 1000, 80), ("10.10.3.2", "8.8.4.4", 1001, 22),
                       ("10.10.4.1", "8.8.8.8", 1002, 443)], packets=1)
    assert fat_keys(fwd) == {("10.10.3.0", "0.0.0.0", 0, 0): 2,
                             ("10.10.4.0", "0.0.0.0", 0, 0): 1}


def test_fat_flow_exclude_list(backend):
    fwd = backend(config(fat_flows={"p0": [{"proto": "tcp", "port": 0, "ignore": "src"}]},
                         fat_flow_exclude={"p0": ["10.10.0.2/32", "8.8.4.0/24",
                                                  "2001:db8:a::/48"]}))
    fwd.set_clock(1.0)
    run_sessions(fwd, SESSIONS, packets=1)
    # excluded source (10.10.0.2) or destination (8.8.4.0/24): per session
    alone = [s for s in SESSIONS if s[0] == "10.10.0.2" or s[1] == "8.8.4.4"]
    want = {("0.0.0.0", "8.8.8.8", 0, 0): 4}
    want.update({k: 1 for k in own(alone)})
    assert fat_keys(fwd) == want


def test_fat_flow_rule_precedence(backend):
    """A specific port beats port 0; both ports matching specific rules: the lower port
    wins; a port-N rule keeps N (both sides when both ports are N)."""
    rules = [{"proto": "tcp", "port": 0, "ignore": "src"},
             {"proto": "tcp", "port": 80},
             {"proto": "tcp", "port": 22, "ignore": "dst"}]
    fwd = backend(config(fat_flows={"p0": rules}))
    fwd.set_clock(1.0)
    run_sessions(fwd, [("10.10.0.1", "8.8.8.8", 22, 80),       # 22 and 80: 22 wins
                       ("10.10.0.1", "8.8.8.8", 1234, 80),     # the port-80 rule
                       ("10.10.0.1", "8.8.8.8", 80, 1234),     # 80 on the source side
                       ("10.10.0.1", "8.8.8.8", 22, 22),       # both 22, kept
                       ("10.10.0.1", "8.8.8.8", 1234, 443),    # only port 0 matches
                       ("10.10.0.5", "8.8.8.8", 4321, 443)], packets=1)
    assert fat_keys(fwd) == {("10.10.0.1", "0.0.0.0", 22, 0): 1,
                             ("10.10.0.1", "8.8.8.8", 0, 80): 1,
                             ("10.10.0.1", "8.8.8.8", 80, 0): 1,
                             ("10.10.0.1", "0.0.0.0", 22, 22): 1,
                             ("0.0.0.0", "8.8.8.8", 0, 0): 2}


def test_fat_flow_protocols(backend):
    """A rule applies to its protocol only; ICMP: only port 0 rules, echo id and type
    zeroed (ICMPv6 on IPv6, never ICMP inside IPv6); IPv6 prefixes; an IPv4 prefix length
    above 32 is 32."""
    rules = [{"proto": "udp", "port": 53, "ignore": "src"},
             {"proto": "icmp", "port": 0, "ignore": "dst"},
             {"proto": "sctp", "port": 0, "src_prefix_len": 48, "dst_prefix_len": 64}]
    fwd = backend(config(fat_flows={"p0": rules}))
    fwd.set_clock(1.0)
    frames = [
        eth(IP(src="10.10.0.1", dst="8.8.8.8") / UDP(sport=5000, dport=53)),
        eth(IP(src="10.10.0.2", dst="8.8.8.8") / UDP(sport=5001, dport=53)),
        eth(IP(src="10.10.0.2", dst="8.8.8.8") / UDP(sport=5001, dport=54)),   # no rule
        tcp4("10.10.0.2", "8.8.8.8", 5001, 53),                                # TCP: none
        eth(IP(src="10.10.0.1", dst="8.8.8.8") / ICMP(type=8, id=1)),
        eth(IP(src="10.10.0.1", dst="8.8.8.8") / ICMP(type=8, id=2)),
        eth(IP(src="10.10.0.1", dst="8.8.8.8") / ICMP(type=13)),              # timestamp
        eth(IPv6(src="2001:db8:a::1", dst="2001:db8:8::1") / ICMPv6EchoRequest(id=7)),
        eth(IPv6(src="2001:db8:a::1", dst="2001:db8:8::1") / ICMPv6EchoRequest(id=8)),
        eth(IP(src="10.10.0.1", dst="8.8.8.8", proto=132) / Raw(bytes(12))),  # SCTP v4
        eth(IPv6(src="2001:db8:a::1:2", dst="2001:db8:8:0:1::9", nh=132) / Raw(bytes(12))),
        eth(IPv6(src="2001:db8:a::1", dst="2001:db8:8::1", nh=1) / Raw(bytes(8))),  # not ICMP
    ]
    send(fwd, frames)
    got = {(f["src"], f["dst"], f["proto"], f["sport"], f["dport"]): f["packets"]
           for f in fwd.flows()}
    assert got == {
        ("0.0.0.0", "8.8.8.8", 17, 0, 53): 2,
        ("10.10.0.2", "8.8.8.8", 17, 5001, 54): 1,
        ("10.10.0.2", "8.8.8.8", 6, 5001, 53): 1,
        ("10.10.0.1", "0.0.0.0", 1, 0, 0): 3,
        ("2001:db8:a::1", "::", 58, 0, 0): 2,
        ("10.10.0.1", "8.8.8.8", 132, 0, 0): 1,            # /48 on IPv4: /32
        ("2001:db8:a::", "2001:db8:8::", 132, 0, 0): 1,     # /48 and /64
        ("2001:db8:a::1", "2001:db8:8::1", 1, 0, 0): 1,    # ICMP in IPv6: no rule applies
    }


def test_fat_flow_return_traffic_mirrored_rule_and_no_tcp_state(backend):
    """Return traffic is aggregated by the mirrored rule on the port it enters; an
    aggregate keeps no TCP state: sessions closing (FIN both ways, RST) leave it open."""
    fwd = backend(config(flow_table=SHORT,
                         fat_flows={"p0": [{"proto": "tcp", "port": 22, "ignore": "src"}],
                                    "up1": [{"proto": "tcp", "port": 22,
                                             "ignore": "dst"}]}))
    fwd.set_clock(1.0)
    for sport in (50000, 50001):
        send(fwd, [tcp4("10.10.0.1", "8.8.8.8", sport, 22, SYN)])
        send(fwd, [tcp4("8.8.8.8", "10.10.0.1", 22, sport, SYN | ACK, port=UP1)], port=UP1)
    assert fat_keys(fwd) == {("0.0.0.0", "8.8.8.8", 0, 22): 2,
                             ("8.8.8.8", "0.0.0.0", 22, 0): 2}
    fwd.set_clock(2.0)
    send(fwd, [tcp4("10.10.0.1", "8.8.8.8", 50000, 22, FIN | ACK)])
    send(fwd, [tcp4("8.8.8.8", "10.10.0.1", 22, 50000, FIN | ACK, port=UP1)], port=UP1)
    send(fwd, [tcp4("10.10.0.1", "8.8.8.8", 50001, 22, RST)])
    assert {(f["fin"], f["rst"], f["closing"]) for f in fwd.flows()} == {(False, False,
                                                                         False)}
    fwd.set_clock(20.0)
    fwd.age_all()
    assert len(fwd.flows()) == 2                         # idle 18 s < 30 s: still there
    fwd.set_clock(32.5)
    fwd.age_all()
    assert fwd.flows() == []


def test_aggregate_is_never_marked_by_its_reverse(backend):
    """A session's RST marks its reverse entry closing, unless that entry is an aggregate
    (here one whose masked key happens to equal the session's reverse 5-tuple)."""
    fwd = backend(config(flow_table=SHORT, fat_flows={"up1": [{"proto": "tcp",
                                                                "port": 22}]}))
    fwd.set_clock(1.0)
    send(fwd, [tcp4("8.8.8.8", "10.10.0.1", 22, 22, ACK, port=UP1)], port=UP1)
    send(fwd, [tcp4("10.10.0.1", "8.8.8.8", 22, 22, RST)])
    flows = by_key(fwd)
    assert (flows[(0, "10.10.0.1", "8.8.8.8", 6, 22, 22)]["closing"],
            flows[(0, "8.8.8.8", "10.10.0.1", 6, 22, 22)]["closing"]) == (True, False)


def test_fat_flow_rules_are_per_ingress_port(backend):
    """A rule on p0 does not touch traffic entering r0, and the key's VRF is the
    ingress port's."""
    fwd = backend(config(fat_flows={"p0": [{"proto": "tcp", "port": 0}]}))
    fwd.set_clock(1.0)
    send(fwd, [tcp4("10.10.0.1", "10.2.0.1", 1000, 80)])
    send(fwd, [tcp4("10.10.0.1", "10.2.0.1", 1000, 80, port=R0)], port=R0)
    assert sorted((f["vrf"], f["sport"], f["dport"], f["in_port"]) for f in fwd.flows()) \
        == [(0, 0, 0, P0), (1, 1000, 80, R0)]


def test_packet_mode_port_hashes_the_masked_key(backend):
    """Fat-flow masking applies on packet-mode ports too: no state, but every session of
    an aggregate takes one member."""
    fwd = backend(config(modes={"p0": "packet"},
                         fat_flows={"p0": [{"proto": "tcp", "port": 0, "ignore": "dst"}]}))
    rng = random.Random(13)
    for i in range(30):
        taken = send(fwd, [tcp4(f"10.10.0.{i + 1}", f"8.8.{rng.randrange(256)}.1",
                                rng.randrange(1024, 65536), 443) for _ in range(10)])
        assert len(set(taken)) == 1
    assert fwd.flows() == []


# --- 5. listing, flush, counters ---------------------------------------------------------

def test_listing_fields_and_byte_counts(backend):
    fwd = backend(CFG)
    fwd.set_clock(7.0)
    group_flow = [tcp4("100.64.0.1", "10.2.3.4", 1111, 443, SYN),
                  tcp4("100.64.0.1", "10.2.3.4", 1111, 443, ACK, b"x" * 100),
                  tcp4("100.64.0.1", "10.2.3.4", 1111, 443, ACK, b"y" * 1000, vlan=5)]
    nh_flow = [tcp4("100.64.0.2", "10.1.0.9", 2222, 80, SYN)]
    send(fwd, group_flow[:1] + nh_flow)
    fwd.set_clock(8.5)
    send(fwd, group_flow[1:])
    echo = eth(IP(src="100.64.0.3", dst="10.2.0.7") / ICMP(type=8, id=0x4242) / Raw(b"ping"))
    v6 = eth(IPv6(src="2001:db8:a::5", dst="2001:db8:8::6", fl=0x12345)
             / UDP(sport=5353, dport=53))
    send(fwd, [echo, v6])
    flows = by_key(fwd)
    assert set(flows) == {(0, "100.64.0.1", "10.2.3.4", 6, 1111, 443),
                          (0, "100.64.0.2", "10.1.0.9", 6, 2222, 80),
                          (0, "100.64.0.3", "10.2.0.7", 1, 0x4242, 8),
                          (0, "2001:db8:a::5", "2001:db8:8::6", 17, 5353, 53)}
    table = ecmp.build([1, 1, 1], BUCKETS)

    g = flows[(0, "100.64.0.1", "10.2.3.4", 6, 1111, 443)]
    member = expected_member(table, "100.64.0.1", "10.2.3.4", 6, 1111, 443)
    assert g == {"vrf": 0, "family": 4, "src": "100.64.0.1", "dst": "10.2.3.4", "proto": 6,
                 "sport": 1111, "dport": 443, "in_port": P0,
                 "nh_id": NH[GROUPS["spines"][member][0]], "group": SPINES,
                 "member": member,
                 "hash": hashing.flow_hash(4, addr("100.64.0.1"), addr("10.2.3.4"), 6,
                                           1111, 443, P0, 0, 0x1f, SEED),
                 "packets": 3, "bytes": sum(len(f) for f in group_flow),
                 "first_seen": pytest.approx(7.0), "last_seen": pytest.approx(8.5),
                 "fin": False, "rst": False, "closing": False}
    assert g["bytes"] == 54 + 154 + 1058                 # frame length as received

    n = flows[(0, "100.64.0.2", "10.1.0.9", 6, 2222, 80)]
    # a route via a next hop: no group; the entropy hash on the 5-tuple (docs §4)
    assert (n["nh_id"], n["group"], n["member"], n["packets"], n["bytes"]) == \
        (NH["nh4"], None, None, 1, 54)
    assert n["hash"] == hashing.flow_hash(4, addr("100.64.0.2"), addr("10.1.0.9"), 6,
                                          2222, 80, P0, 0, 0x1f, SEED)

    i = flows[(0, "100.64.0.3", "10.2.0.7", 1, 0x4242, 8)]   # ICMP: (id, type)
    assert i["hash"] == hashing.flow_hash(4, addr("100.64.0.3"), addr("10.2.0.7"), 1,
                                          0x4242, 0x4242, P0, 0, 0x1f, SEED)
    assert (i["bytes"], i["first_seen"]) == (len(echo), pytest.approx(8.5))

    u = flows[(0, "2001:db8:a::5", "2001:db8:8::6", 17, 5353, 53)]
    assert u["family"] == 6 and u["bytes"] == len(v6)
    assert u["member"] == expected_member(table, "2001:db8:a::5", "2001:db8:8::6", 17,
                                          5353, 53)


def test_icmp_reply_is_its_own_flow_with_the_same_member(backend):
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    send(fwd, [eth(IP(src="100.64.0.3", dst="10.2.0.7") / ICMP(type=8, id=77)),
               eth(IP(src="100.64.0.3", dst="10.2.0.7") / ICMP(type=0, id=77)),
               eth(IP(src="100.64.0.3", dst="10.2.0.7") / ICMP(type=3, code=1))])
    flows = by_key(fwd)
    assert set(flows) == {(0, "100.64.0.3", "10.2.0.7", 1, 77, 8),
                          (0, "100.64.0.3", "10.2.0.7", 1, 77, 0),
                          (0, "100.64.0.3", "10.2.0.7", 1, 0, 3)}
    a, b = (flows[(0, "100.64.0.3", "10.2.0.7", 1, 77, t)] for t in (8, 0))
    assert a["hash"] == b["hash"] and a["member"] == b["member"]


def test_same_burst_hit_and_counters(backend):
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    frame = tcp4("100.64.0.1", "10.2.0.1", 1000, 80)
    taken = send(fwd, [frame] * 5 + [tcp4("100.64.0.1", "10.2.0.1", 1000, 81)])
    assert len(set(taken[:5])) == 1
    assert fwd.flow_counters() == {"flow_created": 2, "flow_deleted": 0, "flow_aged": 0,
                                   "flow_rehashed": 0, "flow_table_full": 0,
                                   "flows_active": 2}
    assert sorted(f["packets"] for f in fwd.flows()) == [1, 5]


def test_flush(backend):
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    frames = [tcp4(*f) for f in random_flows(50, seed=14)]
    first = send(fwd, frames)
    fwd.flow_flush()
    assert fwd.flows() == []
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_deleted"], c["flow_aged"], c["flows_active"]) == \
        (50, 50, 0, 0)
    assert send(fwd, frames) == first                    # same table: same members
    assert fwd.flow_counters()["flow_created"] == 100
    assert all(f["packets"] == 1 for f in fwd.flows())


def test_what_never_makes_an_entry(backend):
    """No route, drops before the table, and fragments: later ones follow the fragment
    rules; a first fragment uses its flow's entry when there is one but makes none (on a
    NIC, RSS may give fragments another worker than their flow's: docs/workers.md)."""
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    assert fwd.process(P0, [tcp4("100.64.0.1", "11.0.0.1", 1, 2),           # no route
                            eth(IP(src="100.64.0.1", dst="10.2.0.1", ttl=1) / TCP())]) == []
    assert fwd.flows() == []
    data = IP(src="100.64.0.1", dst="10.2.0.1", id=0x777) / UDP(sport=7, dport=9) \
        / Raw(bytes(3000))
    frags = [eth(f) for f in fragment(data, fragsize=1000)]
    taken = send(fwd, frags)
    assert len(set(taken)) == 1                           # the rest follow the first
    assert fwd.flows() == []
    assert fwd.frag_counters() == {"frag_followed": len(frags) - 1, "frag_fallback": 0}
    # the flow's unfragmented packets make the entry, on the member the fragments took
    assert send(fwd, [eth(IP(src="100.64.0.1", dst="10.2.0.1") / UDP(sport=7, dport=9))]) \
        == taken[:1]
    assert set(by_key(fwd)) == {(0, "100.64.0.1", "10.2.0.1", 17, 7, 9)}
    assert [f["packets"] for f in fwd.flows()] == [1]
    # and a later fragmented datagram of the flow uses that entry
    data.id = 0x778
    assert set(send(fwd, [eth(f) for f in fragment(data, fragsize=1000)])) == set(taken[:1])
    assert [f["packets"] for f in fwd.flows()] == [2]


def test_first_fragment_of_a_pinned_flow_records_the_pinned_member(backend):
    """After a member is added, new flows of some 5-tuples would hash to it; a fragmented
    datagram of an existing flow still follows the flow's pinned member, fragments and
    all."""
    fwd = backend(CFG)
    fwd.set_clock(1.0)
    flows = random_flows(200, seed=15)
    first = send(fwd, [eth(IP(src=s, dst=d) / UDP(sport=sp, dport=dp))
                       for s, d, sp, dp in flows])
    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1), ("nh3", 1), ("nh4", 3)]))
    for i, (s, d, sp, dp) in enumerate(flows[:40]):
        data = IP(src=s, dst=d, id=0x100 + i) / UDP(sport=sp, dport=dp) / Raw(bytes(2500))
        assert set(send(fwd, [eth(f) for f in fragment(data, fragsize=1000)])) == {first[i]}
    assert fwd.frag_counters()["frag_fallback"] == 0
    assert fwd.flow_counters()["flow_created"] == 200


def test_entry_hash_is_the_groups_selection(backend):
    """The entry's hash (and member) come from the group's field selection of the key:
    with src_ip + dst_ip only, every port pair between two hosts takes one member."""
    mask = hashing.field_mask(("src_ip", "dst_ip"))
    fwd = backend(config(hashes={"spines": HashSpec(fields=("src_ip", "dst_ip"))}))
    fwd.set_clock(1.0)
    hosts = [(f"100.64.0.{i}", f"10.2.0.{i}") for i in range(1, 31)]
    table = ecmp.build([1, 1, 1], BUCKETS)
    for src, dst in hosts:
        taken = send(fwd, [tcp4(src, dst, 1000 + j, 80 + j) for j in range(4)])
        assert set(taken) == {GROUPS["spines"][expected_member(table, src, dst, 6, 0, 0,
                                                               mask=mask)][0]}
    h = {(f["src"], f["dst"]): f["hash"] for f in fwd.flows()}
    for src, dst in hosts:
        assert h[(src, dst)] == hashing.flow_hash(4, addr(src), addr(dst), 0, 0, 0, 0, 0,
                                                  mask, SEED)



def test_entry_hash_of_a_fragments_l3_group(backend):
    """`fragments: l3`: members are chosen on the L3 selection, so the entry stores that
    hash, and a re-hash after a removal uses it: the flow lands where its fragments
    (which bypass the table) go."""
    fwd = backend(config(hashes={"spines": HashSpec(fragments="l3")}))
    fwd.set_clock(1.0)
    flows = random_flows(300, seed=16)
    send(fwd, [tcp4(*f) for f in flows])
    l3 = hashing.L3_FIELDS
    for f in fwd.flows():
        assert f["hash"] == hashing.flow_hash(4, addr(f["src"]), addr(f["dst"]), 6, 0, 0,
                                              0, 0, l3, SEED)
    fwd.update_group(SPINES, members_arg([("nh1", 1), ("nh2", 1, False), ("nh3", 1)]))
    table = ecmp.rebalance(ecmp.build([1, 1, 1], BUCKETS), [1, 0, 1])
    taken = send(fwd, [tcp4(*f) for f in flows])
    assert taken == [GROUPS["spines"][expected_member(table, s, d, 6, 0, 0, mask=l3)][0]
                     for s, d, _, _ in flows]


def test_same_burst_hit_reuses_the_route_result(backend):
    """A packet of an entry created earlier in the same burst is a hit like any other: no
    LPM lookup, even when (with ignore: dst) its own destination has no route."""
    fwd = backend(config(fat_flows={"p0": [{"proto": "tcp", "port": 0, "ignore": "dst"}]}))
    fwd.set_clock(1.0)
    burst = [tcp4("10.10.0.1", "8.8.8.8", 1000, 80), tcp4("10.10.0.1", "9.9.9.9", 1001, 80),
             tcp4("10.10.0.2", "9.9.9.9", 1002, 80)]              # a miss: no route
    out = fwd.process(P0, burst)
    assert len(out) == 2 and fwd.counters()["p0"]["no_route"] == 1
    assert [(f["src"], f["packets"]) for f in fwd.flows()] == [("10.10.0.1", 2)]

# --- configuration: ports[].fat_flows compiled (reference-free) ---------------------------

PORT_YAML = """\
node: {name: leaf1}
ports:
  - name: p0
    devargs: net_ring0
    mac: "02:00:00:00:00:01"
%s
"""


def load_port(lines: str):
    from dataplane.config import load_text
    return load_text(PORT_YAML % lines, "lab.yaml").ports[0]


def port_errors(lines: str) -> list[str]:
    from dataplane.config import ConfigError, load_text
    with pytest.raises(ConfigError) as e:
        load_text(PORT_YAML % lines, "lab.yaml")
    return e.value.errors


def test_config_compiles_fat_flow_rules():
    from dataplane.config.model import FatFlowRule
    port = load_port("""\
    fat_flows:
      - {proto: tcp, port: 22, ignore: dst}
      - {proto: udp, port: 0, src_prefix_len: 24}
      - {proto: icmp}
      - {proto: sctp, port: 3868, ignore: src, dst_prefix_len: 64}
    fat_flow_exclude: ["10.0.0.1/32", "fe80::/10"]""")
    assert port.fat_flows == [FatFlowRule(6, 22, "dst", None, None),
                              FatFlowRule(17, 0, "none", 24, None),
                              FatFlowRule(1, 0, "none", None, None),
                              FatFlowRule(132, 3868, "src", None, 64)]
    assert port.fat_flow_exclude == [ipaddress.ip_network("10.0.0.1/32"),
                                     ipaddress.ip_network("fe80::/10")]
    bare = load_port("")
    assert (bare.fat_flows, bare.fat_flow_exclude) == ([], [])


def test_config_fat_flow_errors():
    assert port_errors("    fat_flows: [{proto: icmp, port: 8}]") == [
        "lab.yaml: ports[0].fat_flows[0].port: must be 0 for icmp (ICMP has no ports), "
        "got 8"]
    rules = ", ".join(f"{{proto: tcp, port: {n}}}" for n in range(1, 18))
    assert port_errors(f"    fat_flows: [{rules}]") == [
        "lab.yaml: ports[0].fat_flows: must be a list of 0 to 16 rules, got 17 rules"]
    prefixes = ", ".join(f'"10.0.{n}.0/24"' for n in range(17))
    assert port_errors(f"    fat_flow_exclude: [{prefixes}]") == [
        "lab.yaml: ports[0].fat_flow_exclude: must be a list of 0 to 16 prefixes, "
        "got 17 prefixes"]


def test_cached_flow_deleted_then_its_slot_reused(backend):
    """The core caches hot flows in an exact-match cache in front of rte_hash. A flow hit
    often enough to be cached, then aged out, then its table position taken by another
    flow (the table is filled to capacity) must not hit the other flow's entry: the
    packet is a new flow again, here refused by the full table (on_full: hash)."""
    fwd = backend(config(flow_table=FlowTable(entries=1024)))
    fwd.set_clock(10.0)
    hot = tcp4("100.64.0.1", "10.2.0.1", 1000, 80)
    for _ in range(48):                      # separate bursts: each one a table lookup
        send(fwd, [hot])
    assert [f["packets"] for f in fwd.flows()] == [48]
    fwd.set_clock(1000.0)
    fwd.age_all()
    assert fwd.flows() == []
    others = [tcp4(f"100.65.{i // 256}.{i % 256}", "10.2.0.1", 2000, 80) for i in range(1024)]
    for k in range(0, 1024, 32):
        send(fwd, others[k:k + 32])
    assert fwd.flow_counters()["flows_active"] == 1024
    send(fwd, [hot])
    flows = fwd.flows()
    assert len(flows) == 1024 and all(f["packets"] == 1 for f in flows)
    assert "100.64.0.1" not in {f["src"] for f in flows}
    c = fwd.flow_counters()
    assert (c["flow_created"], c["flow_table_full"]) == (1 + 1024, 1)


# ------------------------------------------------------------------- huge pages (THP)

def smaps_of(addr: int) -> dict:
    """The /proc/self/smaps fields of the mapping that contains addr."""
    fields, hit = {}, False
    for line in open("/proc/self/smaps"):
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            if hit:
                break
            hit = lo <= addr < hi
        elif hit and line.split()[1].isdigit():           # skip VmFlags
            fields[head.rstrip(":")] = int(line.split()[1])
    return fields


def test_no_huge_pool_and_flow_table_on_transparent_huge_pages(eal):
    """With --no-huge, the mbuf pool, the flow table's rte_hash and its entry records are
    mapped outside EAL memory, asked for on 2 MiB pages and faulted in at creation (the
    worker never page-faults). Where the kernel grants THP (madvise mode, as here), they
    are backed by huge pages; the kernel's own accounting in /proc says so."""
    from dataplane import _core
    from dataplane.control import Control
    core = Control.open(config(flow_table=FlowTable(entries=65536))).core
    try:
        regions = {what: (addr, size) for what, addr, size in core.memory_regions()}
        assert set(regions) == {"mbuf pool", "flow table rte_hash", "flow entries"}
        thp = open("/sys/kernel/mm/transparent_hugepage/enabled").read()
        for what, (addr, size) in regions.items():
            assert addr % (2 << 20) == 0 and size % (2 << 20) == 0, what
            sm = smaps_of(addr)
            assert sm["Rss"] * 1024 >= size, what            # faulted in already
            assert sm["THPeligible"] == 1, what
            if "[never]" not in thp:
                assert sm["AnonHugePages"] * 1024 >= size // 2, (what, sm)
        # the bucket array that bucket_prefetch() uses was found inside the rte_hash's
        # heap: 65536 flows → 131072 slots → 16384 buckets of 8
        addr, mask = core.bucket_array()
        lo, size = regions["flow table rte_hash"]
        assert mask == 16383 and lo <= addr and addr + (mask + 1) * 64 <= lo + size
        assert len(core.process(P0, [tcp4("100.64.1.2", "10.2.3.4", 1000, 80)])) == 1
        assert core.flow_counters()["flows_active"] == 1
    finally:
        core.close()
    assert not any(w == "flow table rte_hash" for w, _, _ in core.memory_regions())
