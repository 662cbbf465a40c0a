"""Workers (SPEC §10a, docs/workers.md): a replay of the same input with 1, 2 and 3
workers gives the same packets on every output port, the same flows and the same
per-member counts, because the member is the §3 flow hash, never the RSS hash that picks
the worker. The input mixes what could tell them apart: IPv4/IPv6 TCP/UDP flows in both
directions, fat-flow aggregates, fragmented datagrams of flows that also send whole
packets (RSS hashes fragments on addresses only, so they may reach another worker than
their flow), labelled packets swapped by the LFIB, and a packet-mode port. The oracle is
the 1-worker run, itself checked against scapy's decode of every output."""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, TCP, UDP, fragment
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from dataplane import rss
from dataplane.runtime import flow_identity
from dpdk_util import dataplane, no_traceback, port, port_mac, read_pcap, write_config, \
    write_pcap

PORTS = ["p0", "p1", "up1", "up2", "up3"]
LCORES = {1: "0-1", 2: "0@0,1@1,2@0", 3: "0@0,1@1,2@0,3@1"}
HOPS = {"s1": ("up1", "02:00:00:00:01:01"), "s2": ("up2", "02:00:00:00:02:01"),
        "s3": ("up3", "02:00:00:00:03:01"), "back": ("p0", "02:00:00:00:0a:01")}


def config(tmp_path, workers: int):
    doc = {"node": {"name": "workers"},
           "eal": {"lcores": LCORES[workers], "memory_mb": 1024},
           "flow_table": {"entries": 65536},
           "ports": [dict(port("p0", "net_null0", 0),
                          fat_flows=[{"proto": "tcp", "port": 22}]),
                     dict(port("p1", "net_null1", 1), mode="packet"),
                     port("up1", "net_null2", 2), port("up2", "net_null3", 3),
                     port("up3", "net_null4", 4)],
           "vrfs": {"default": {"routes": [
               {"prefix": "10.0.0.0/8", "via": "spines"},
               {"prefix": "100.64.0.0/10", "via": "back"},
               {"prefix": "2001:db8:10::/48", "via": "spines"},
               {"prefix": "2001:db8:64::/48", "via": "back"}]}},
           "nexthops": {n: {"port": p, "mac": m} for n, (p, m) in HOPS.items()},
           "groups": {"spines": {"members": [{"nexthop": "s1", "weight": 1},
                                             {"nexthop": "s2", "weight": 2},
                                             {"nexthop": "s3", "weight": 1}],
                                 "hash": {"fragments": "follow"}}},
           "mpls": {"lfib": [{"label": 100, "action": "swap", "labels": [200],
                              "via": "spines"}]}}
    return write_config(tmp_path / f"w{workers}.yaml", doc)


def eth(pkt, to: int = 0, src: str = "02:aa:00:00:00:01"):
    return bytes(Ether(src=src, dst=port_mac(to)) / pkt)


def traffic() -> dict[str, list[bytes]]:
    rng = random.Random(14)
    p0, p1, up1 = [], [], []
    for i in range(150):                       # IPv4 flows, both directions
        c, s = f"100.64.{i // 200}.{i % 200 + 1}", f"10.{rng.randrange(256)}.0.{i % 250 + 1}"
        sp, dp = rng.randrange(1024, 65535), rng.choice([80, 443, 53])
        l4 = (lambda a, b: TCP(sport=a, dport=b, flags="A")) if i % 2 else \
            (lambda a, b: UDP(sport=a, dport=b))
        p0 += [eth(IP(src=c, dst=s, ttl=64) / l4(sp, dp) / Raw(b"q" * 20))] * 3
        up1 += [eth(IP(src=s, dst=c, ttl=64) / l4(dp, sp) / Raw(b"r" * 30), 2)] * 2
    for i in range(60):                        # IPv6
        c, s = f"2001:db8:64::{i + 1:x}", f"2001:db8:10::{rng.randrange(1, 1 << 16):x}"
        p0 += [eth(IPv6(src=c, dst=s, hlim=64) / UDP(sport=5000 + i, dport=4789))] * 2
    for i in range(40):                        # SSH: aggregated per client by the fat flow
        p0.append(eth(IP(src=f"100.64.9.{i % 4 + 1}", dst="10.9.9.9") /
                      TCP(sport=30000 + i, dport=22, flags="S")))
    for i in range(30):                        # fragmented datagrams of flows with whole ones
        c, s, sp = f"100.64.5.{i + 1}", f"10.5.{i}.1", 7000 + i
        p0.append(eth(IP(src=c, dst=s) / UDP(sport=sp, dport=9999) / Raw(b"w")))
        data = IP(src=c, dst=s, id=0x4000 + i) / UDP(sport=sp, dport=9999) / Raw(bytes(2800))
        p0 += [eth(f) for f in fragment(data, fragsize=1000)]
        p0.append(eth(IP(src=c, dst=s) / UDP(sport=sp, dport=9999) / Raw(b"z")))
    for i in range(50):                        # transit LSR: label 100 swapped to 200
        p0.append(eth(MPLS(label=100, s=1, ttl=60) /
                      IP(src=f"100.64.7.{i + 1}", dst=f"10.7.{i}.1") / UDP(sport=i + 1,
                                                                            dport=80)))
    for i in range(80):                        # packet mode
        p1.append(eth(IP(src=f"100.64.8.{i + 1}", dst=f"10.8.0.{i % 7 + 1}") /
                      TCP(sport=1000 + i, dport=80), 1))
    return {"p0": p0, "p1": p1, "up1": up1}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workers")
    frames = traffic()
    ins = []
    for name, fr in frames.items():
        ins += ["--in", f"{name}={write_pcap(tmp / f'in-{name}.pcap', fr)}"]
    out = {}
    for n in LCORES:
        d = tmp / f"out{n}"
        r = dataplane("replay", config(tmp, n), *ins, "--out-dir", d, "-q", timeout=120)
        no_traceback(r.stderr)
        assert r.returncode == 0, r.stderr
        out[n] = (json.loads((d / "summary.json").read_text()) | {"dir": str(d)},
                  {p: read_pcap(d / f"{p}.pcap") for p in PORTS})
    return frames, out


def flows_of(summary) -> list[dict]:
    with open(f"{summary['dir']}/flows.json") as f:
        return json.load(f)


def test_one_worker_output_is_right(runs):
    """The oracle run: every input forwarded (scapy decode) to the port its route names,
    the swap's label on the labelled packets, TTL one less."""
    frames, out = runs
    s, outputs = out[1]
    total = sum(map(len, frames.values()))
    assert s["rx"] == total and s["tx"] == total and s["mbufs_in_use_after"] == 0
    for name, fr in outputs.items():
        for f in fr:
            e = Ether(f)
            if name == "p0":                           # return traffic, via `back`
                assert e.dst == HOPS["back"][1] and (e.haslayer(IP) or e.haslayer(IPv6))
            elif name in ("up1", "up2", "up3"):
                assert e.dst == HOPS["s" + name[-1]][1]
                if e.haslayer(MPLS):
                    assert e[MPLS].label == 200 and e[MPLS].ttl == 59
            else:
                raise AssertionError(f"nothing should leave on {name}")
    assert s["fragments"]["frag_fallback"] == 0
    assert s["fragments"]["frag_followed"] == 30 * 2       # 3 fragments per datagram


@pytest.mark.parametrize("n", [2, 3])
def test_same_answer_for_any_worker_count(runs, n):
    frames, out = runs
    s1, o1 = out[1]
    sn, on = out[n]
    for p in PORTS:                                    # the same multiset of packets
        assert Counter(on[p]) == Counter(o1[p]), p
    # the same flows; a fat-flow aggregate whose sessions RSS spread has an entry on each
    # worker it reached (docs/workers.md §3), all on one member
    assert sn["flows"]["flows_distinct"] == s1["flows"]["flows_distinct"] == \
        s1["flows"]["flow_created"]
    members = defaultdict(set)
    for f in flows_of(sn):
        members[flow_identity(f)].add((f["group"], f["member"], f["nh_id"]))
    assert all(len(m) == 1 for m in members.values())
    extra = sn["flows"]["flow_created"] - s1["flows"]["flow_created"]
    assert extra == sum(len({f["worker"] for f in flows_of(sn) if flow_identity(f) == k}) - 1
                        for k in members)
    aggregates = {k for k in members if k[5] == 0}         # source port zeroed: SSH
    assert all(k[6] == 22 for k in aggregates) and len(aggregates) == 4
    assert sn["groups"] == s1["groups"]                # per-member packets and flows
    assert sn["fragments"] == s1["fragments"]
    assert sn["drops"] == s1["drops"]
    # and the work really was shared: every worker forwarded part of it, by RSS
    assert len(sn["workers"]) == n
    assert sum(w["rx"] for w in sn["workers"]) == sn["rx"]
    assert all(w["rx"] > 0 for w in sn["workers"])
    per_worker = sn["group_members_per_worker"]["spines"]
    assert [sum(col) for col in zip(*per_worker)] == [m["packets"] for m in
                                                      sn["groups"]["spines"]["members"]]


def test_workers_got_their_rss_share(runs):
    """Each worker received exactly the packets the software Toeplitz gives its queue."""
    frames, out = runs
    for n in (2, 3):
        want = Counter(rss.queue_of(rss.rss_hash(f), n) for fr in frames.values()
                       for f in fr)
        assert [w["rx"] for w in out[n][0]["workers"]] == [want[q] for q in range(n)]


def test_symmetric_rss_keeps_both_directions_on_one_worker(tmp_path):
    """With 2 workers, each TCP connection's two directions reach one worker (the
    symmetric key), so FINs seen both ways close both entries there (flow_tcp looks the
    reverse entry up in its own worker's table)."""
    conns = [(f"100.64.3.{i + 1}", f"10.33.{i}.1", 20000 + i, 443) for i in range(24)]
    p0 = [eth(IP(src=c, dst=s) / TCP(sport=cp, dport=sp, flags=fl))
          for c, s, cp, sp in conns for fl in ("S", "FA")]
    up1 = [eth(IP(src=s, dst=c) / TCP(sport=sp, dport=cp, flags=fl), 2)
           for c, s, cp, sp in conns for fl in ("SA", "FA")]
    workers = {rss.queue_of(rss.rss_hash(f), 2) for f in p0}
    assert workers == {0, 1}                          # the connections do use both
    out = tmp_path / "out"
    r = dataplane("replay", config(tmp_path, 2),
                  "--in", f"p0={write_pcap(tmp_path / 'p0.pcap', p0)}",
                  "--in", f"up1={write_pcap(tmp_path / 'up1.pcap', up1)}",
                  "--out-dir", out, "-q", timeout=120)
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    flows = json.loads((out / "flows.json").read_text())
    assert len(flows) == 2 * len(conns)
    by_conn = defaultdict(set)
    for f in flows:
        a, b = sorted([(f["src"], f["sport"]), (f["dst"], f["dport"])])
        by_conn[(a, b)].add(f["worker"])
        assert f["fin"] and f["closing"], f
    assert all(len(w) == 1 for w in by_conn.values())     # one worker per connection
