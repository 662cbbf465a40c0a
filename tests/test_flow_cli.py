"""`dataplane flow` on a replay's flow table (flows.json), against flows counted by hand
from the input pcap with scapy, and replay's flow counters."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from dpdk_util import ROOT, dataplane

SAMPLE = ROOT / "samples"


def forwarded_flows(pcap: Path, outputs: Path) -> tuple[Counter, Counter]:
    """Per 5-tuple (ICMP: id, type), packets and bytes of the input frames that left
    the forwarder: an input frame is matched to an output by its L3 payload after the
    TTL byte (TTL and checksum change, nothing else)."""
    out_bodies = Counter()
    for name in ("up1", "up2"):
        for data, _ in RawPcapReader(str(outputs / f"{name}.pcap")):
            ip = Ether(data).payload
            out_bodies[(bytes(ip.src.encode()), bytes(ip)[20 if ip.version == 4 else 8:])] += 1
    packets, sizes = Counter(), Counter()
    for data, _ in RawPcapReader(str(pcap)):
        e = Ether(data)
        ip = e[IP] if IP in e else e[IPv6] if IPv6 in e else None
        if ip is None:
            continue
        body = (bytes(ip.src.encode()), bytes(ip)[20 if ip.version == 4 else 8:])
        if out_bodies[body] == 0:
            continue
        out_bodies[body] -= 1
        proto = ip.proto if ip.version == 4 else ip.nh
        if (proto, ip.version) in ((1, 4), (58, 6)):
            l4 = bytes(ip.payload)                 # type, code, checksum, id (echo)
            echo = l4[0] in ((0, 8) if ip.version == 4 else (128, 129))
            sport, dport = (int.from_bytes(l4[4:6], "big") if echo else 0), l4[0]
        elif TCP in e or UDP in e:
            l4 = e[TCP] if TCP in e else e[UDP]
            sport, dport = l4.sport, l4.dport
        else:
            sport = dport = 0
        key = (ip.src, ip.dst, proto, sport, dport)
        packets[key] += 1
        sizes[key] += len(data)
    return packets, sizes


def test_replay_flow_table_listing(tmp_path):
    out = tmp_path / "out"
    r = dataplane("replay", SAMPLE / "sample.yaml", "--in", SAMPLE / "sample.pcap",
                  "--out-dir", out, "-q")
    assert r.returncode == 0, r.stderr
    packets, sizes = forwarded_flows(SAMPLE / "sample.pcap", out)
    r = dataplane("flow", out, "--json")
    assert r.returncode == 0, r.stderr
    flows = json.loads(r.stdout)
    got = {(f["src"], f["dst"], f["proto"], f["sport"], f["dport"]): f for f in flows}
    assert len(got) == len(flows) == len(packets)
    for key, n in packets.items():
        assert got[key]["packets"] == n, key
        assert got[key]["bytes"] == sizes[key], key
    summary = json.loads((out / "summary.json").read_text())
    assert summary["flows"]["flow_created"] == len(packets)
    assert summary["flows"]["flows_active"] == len(packets)
    assert summary["flows"]["flow_table_full"] == 0
    # group flows are pinned to members, plain routes have none
    assert {f["member"] is None for f in flows if f["group"] is None} == {True}
    assert all(f["member"] is not None for f in flows if f["group"] is not None)

    # --match / --port / --get select what a by-hand filter selects
    r = dataplane("flow", out, "--match", "10.3.0.0/16", "--json")
    sel = json.loads(r.stdout)
    assert sorted(map(json.dumps, sel)) == sorted(
        json.dumps(f) for f in flows if f["dst"].startswith("10.3.") or
        f["src"].startswith("10.3."))
    r = dataplane("flow", out, "--port", "443", "--json")
    assert all(443 in (f["sport"], f["dport"]) for f in json.loads(r.stdout))
    assert len(json.loads(r.stdout)) == sum(443 in (k[3], k[4]) for k in packets)
    r = dataplane("flow", out, "--get", "0")
    assert json.loads(r.stdout) in flows
    r = dataplane("flow", out, "--get", str(len(flows)))
    assert r.returncode == 2 and "no flow" in r.stderr
