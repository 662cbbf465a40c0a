"""Port mirroring (SPEC §9, docs/mirroring.md) end to end on DPDK vdevs, checked with
scapy, struct and tshark against the input and the forwarded output:

- configuration: every key checked, exactly one of to / analyzer, `via` a plain next hop;
- replay (net_pcap): raw copies on the mirror port are the frames as received and as
  sent; 1-in-N gives exactly the expected copies, with one worker and with two (each
  worker samples what RSS gave it); analyzer copies decode (scapy, and the Lua
  dissector under tshark), and `dataplane mirror-decode` prints what they hold;
- a mirror port whose ring is full (`run --loop`: a net_ring the worker cannot drain as
  fast as copies arrive): copies are counted mirror_dropped, every original still goes
  out, rx = tx + drops, no mbuf left;
- a running forwarder shows the counters in `dataplane vif`, and refuses to change a
  mirror live.
"""
from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
import time

import pytest
import yaml
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from dataplane import rss
from dataplane.config import ConfigError, load_text
from dataplane.drops import DROP_REASONS
from dpdk_util import (ROOT, dataplane, no_traceback, port, port_mac, read_pcap,
                       wait_for, write_config, write_pcap)
from test_control import Running, sockdir  # noqa: F401  (the fixture)

NH_MON_MAC = "02:00:00:00:0e:01"
LUA = ROOT / "tools" / "dataplane_mirror.lua"


# ------------------------------------------------------------------ configuration

BASE = """
node: {name: m1}
ports:
  - {name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {name: mon, devargs: net_null1, mac: "02:00:00:00:00:02"}
nexthops:
  nhmon: {port: mon, mac: "02:00:00:00:0e:01"}
  lab: {port: mon, mac: "02:00:00:00:0e:02", labels: [100]}
  tun: {port: mon, mac: "02:00:00:00:0e:03", labels: [100],
        tunnel: {type: mpls-udp, remote: 203.0.113.9}}
groups:
  g: {members: [{nexthop: nhmon}]}
"""


def load_with(mirror, node=None):
    doc = yaml.safe_load(BASE)
    doc["ports"][0]["mirror"] = mirror
    if node:
        doc["node"].update(node)
    if any("tunnel" in nh for nh in doc["nexthops"].values()):
        doc["node"].setdefault("tunnel_address", "192.0.2.1")
    return load_text(yaml.safe_dump(doc), "m.yaml")


AN = {"address": "198.51.100.7", "udp_port": 8099, "via": "nhmon"}


def test_mirror_config_is_compiled():
    m = load_with({"to": "mon", "direction": "rx", "sample": 10}).ports[0].mirror
    assert (m.to, m.to_index, m.egress_index, m.direction, m.sample, m.analyzer) == \
        ("mon", 1, 1, "rx", 10, None)
    m = load_with({"analyzer": AN}).ports[0].mirror      # source: node.tunnel_address
    a = m.analyzer
    assert (str(a.address), a.udp_port, a.via, str(a.source), m.direction, m.sample,
            m.egress_index) == ("198.51.100.7", 8099, "nhmon", "192.0.2.1", "both", 1, 1)
    m = load_with({"analyzer": dict(AN, address="2001:db8::7", source="2001:db8::1")})
    assert str(m.ports[0].mirror.analyzer.source) == "2001:db8::1"


@pytest.mark.parametrize("mirror, node, message", [
    ({"to": "mon", "foo": 1}, None,
     "ports[0].mirror: unknown key 'foo', allowed: to, analyzer, direction, sample"),
    ({"direction": "rx"}, None,
     "ports[0].mirror.to: is required unless analyzer is given"),
    ({"to": "mon", "analyzer": AN}, None,
     "ports[0].mirror: must have exactly one of to and analyzer, got both"),
    ({"to": "p0"}, None, "ports[0].mirror.to: must be a port other than the mirrored one"),
    ({"to": "mon", "sample": 0}, None,
     "ports[0].mirror.sample: must be an integer from 1 to 4294967295, got 0"),
    ({"to": "mon", "sample": 1 << 32}, None, "ports[0].mirror.sample: must be an integer"),
    ({"to": "mon", "direction": "in"}, None,
     "ports[0].mirror.direction: must be one of rx, tx, both, got 'in'"),
    ({"analyzer": dict(AN, via="g")}, None,
     "ports[0].mirror.analyzer.via: must be a next hop defined under nexthops"),
    ({"analyzer": dict(AN, via="lab")}, None,
     "ports[0].mirror.analyzer.via: must be a next hop without labels"),
    ({"analyzer": dict(AN, via="tun")}, None,
     "ports[0].mirror.analyzer.via: must be a next hop without labels"),
    ({"analyzer": dict(AN, udp_port=0)}, None,
     "ports[0].mirror.analyzer.udp_port: must be an integer from 1 to 65535, got 0"),
    ({"analyzer": {"address": "198.51.100.7", "via": "nhmon"}}, None,
     "ports[0].mirror.analyzer.udp_port: is required"),
    ({"analyzer": dict(AN, address="224.0.0.5")}, None,
     "ports[0].mirror.analyzer.address: must be a unicast address, got '224.0.0.5'"),
    ({"analyzer": dict(AN, address="nope")}, None,
     "ports[0].mirror.analyzer.address: must be an IPv4 or IPv6 address, got 'nope'"),
    ({"analyzer": dict(AN, source="2001:db8::1")}, None,
     "ports[0].mirror.analyzer.source: must be an IPv4 address like address, "
     "got '2001:db8::1'"),
    ({"analyzer": dict(AN, address="2001:db8::7")}, None,
     "ports[0].mirror.analyzer.source: is required: node.tunnel_address 192.0.2.1 is "
     "IPv4, the analyzer address IPv6"),
    ({"analyzer": dict(AN, extra=1)}, None,
     "ports[0].mirror.analyzer: unknown key 'extra', allowed: address, udp_port, via, "
     "source"),
])
def test_bad_mirrors_are_refused(mirror, node, message):
    with pytest.raises(ConfigError) as e:
        load_with(mirror, node)
    assert any(message in line for line in e.value.errors), e.value.errors


def test_analyzer_source_is_required_without_a_tunnel_address():
    doc = yaml.safe_load(BASE)
    del doc["nexthops"]["tun"]
    doc["ports"][0]["mirror"] = {"analyzer": AN}
    with pytest.raises(ConfigError) as e:
        load_text(yaml.safe_dump(doc), "m.yaml")
    assert any("ports[0].mirror.analyzer.source: is required when node.tunnel_address "
               "is not set" in line for line in e.value.errors), e.value.errors
    doc["ports"][0]["mirror"]["analyzer"]["source"] = "192.0.2.5"
    assert str(load_text(yaml.safe_dump(doc)).ports[0].mirror.analyzer.source) == \
        "192.0.2.5"


# ------------------------------------------------------------------ replays

def replay_config(tmp_path, mirror: dict, lcores: str = "0-1", name: str = "mir"):
    """p0 (default VRF) ↔ up1; mon: where copies go (its own traffic: none)."""
    doc = {"node": {"name": name, "tunnel_address": "192.0.2.1"},
           "eal": {"lcores": lcores, "memory_mb": 512},
           "ports": [dict(port("p0", "net_null0", 0), mirror=mirror),
                     port("up1", "net_null1", 1), port("mon", "net_null2", 2)],
           "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"},
                        "back": {"port": "p0", "mac": "02:00:00:00:0a:01"},
                        "nhmon": {"port": "mon", "mac": NH_MON_MAC}},
           "vrfs": {"default": {"routes": [{"prefix": "10.1.0.0/16", "via": "nh1"},
                                           {"prefix": "100.64.0.0/10", "via": "back"}]}}}
    return write_config(tmp_path / f"{name}.yaml", doc)


def inbound(n: int) -> list[bytes]:
    """Into p0: mostly routed to up1, every 10th without a route, every 13th TTL 1."""
    out = []
    for i in range(n):
        dst = "11.0.0.1" if i % 10 == 9 else f"10.1.{i // 250}.{i % 250 + 1}"
        out.append(bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                         IP(src=f"100.64.{i // 250}.{i % 250 + 1}", dst=dst,
                            ttl=1 if i % 13 == 12 else 64) /
                         UDP(sport=1024 + i, dport=53) / struct.pack("!I", i)))
    return out


def outbound(n: int) -> list[bytes]:
    """Into up1, routed back out of p0."""
    return [bytes(Ether(src="02:aa:00:00:00:02", dst=port_mac(1)) /
                  IP(src=f"10.1.9.{i % 250 + 1}", dst=f"100.64.7.{i % 250 + 1}") /
                  UDP(sport=53, dport=2000 + i) / (b"r" * (i % 90)))
            for i in range(n)]


def replay(tmp_path, cfg, inputs: dict, *extra) -> tuple[dict, dict]:
    """Run the replay; (summary, {port: frames of its output pcap})."""
    out = tmp_path / "out"
    args = []
    for name, frames in inputs.items():
        args += ["--in", f"{name}={write_pcap(tmp_path / f'{name}.in.pcap', frames)}"]
    r = dataplane("replay", cfg, *args, "--out-dir", out, "-q", *extra)
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    accounted(s)
    return s, {name: read_pcap(out / f"{name}.pcap") for name in ("p0", "up1", "mon")}


def accounted(s: dict) -> None:
    """Originals: rx = tx + named drops, per port and in all; mirror copies apart: the
    devices sent each port's packets and the copies it carried; no mbuf left; every
    output pcap matches its counters."""
    assert s["rx"] == s["tx"] + sum(s["drops"].values()), s
    for name, p in s["ports"].items():
        assert p["dpdk"]["opackets"] == p["tx"] + p["mirror_tx"], (name, p)
    assert sum(p["mirror_tx"] for p in s["ports"].values()) == s["mirrored"]
    assert s["mbufs_in_use_after"] == 0
    assert s.get("output_errors", []) == []


def test_raw_copies_equal_the_frames_received_and_sent(tmp_path):
    cfg = replay_config(tmp_path, {"to": "mon", "direction": "both"})
    into_p0, into_up1 = inbound(500), outbound(300)
    s, got = replay(tmp_path, cfg, {"p0": into_p0, "up1": into_up1})
    mon = got["mon"]
    p0_mac = bytes.fromhex(port_mac(0).replace(":", ""))
    rx_copies = [f for f in mon if f[:6] == p0_mac]          # addressed to p0: as received
    tx_copies = [f for f in mon if f[6:12] == p0_mac]        # from p0: as it sent them
    assert len(rx_copies) + len(tx_copies) == len(mon)
    assert rx_copies == into_p0                              # dropped packets included
    assert tx_copies == got["p0"] and len(got["p0"]) == 300
    assert len(got["up1"]) == 500 - 50 - sum(1 for i in range(500)
                                             if i % 13 == 12 and i % 10 != 9)
    p0 = s["ports"]["p0"]
    assert (p0["mirrored"], p0["mirror_dropped"]) == (800, 0)
    assert s["ports"]["mon"]["mirror_tx"] == 800 and s["ports"]["mon"]["tx"] == 0
    # TTL is checked before the route (docs/packet-path.md)
    assert p0["drops"]["no_route"] == sum(1 for i in range(500)
                                          if i % 10 == 9 and i % 13 != 12)


def test_one_in_n_gives_exactly_the_expected_copies(tmp_path):
    cfg = replay_config(tmp_path, {"to": "mon", "direction": "rx", "sample": 7})
    frames = inbound(1000)
    s, got = replay(tmp_path, cfg, {"p0": frames})
    assert got["mon"] == frames[::7] and len(got["mon"]) == math.ceil(1000 / 7)
    assert s["ports"]["p0"]["mirrored"] == 143 and s["mirror_dropped"] == 0


def test_one_in_n_with_two_workers(tmp_path):
    """Each worker samples its own packets: worker w, given n_w packets of p0 by RSS,
    copies packets 0, N, 2N... of them."""
    n, sample = 1000, 5
    cfg = replay_config(tmp_path, {"to": "mon", "direction": "rx", "sample": sample},
                        lcores="0@0,1@1,2@0")
    frames = inbound(n)
    s, got = replay(tmp_path, cfg, {"p0": frames})
    queues = [read_pcap_bytes(part) for part in
              rss.split_pcap((tmp_path / "p0.in.pcap").read_bytes(), 2)]
    assert sorted(map(len, queues)) != [0, n]               # both workers had packets
    per_worker = [s["workers"][w] for w in range(2)]
    assert [w["rx"] for w in per_worker] == [len(q) for q in queues]
    assert [w["mirrored"] for w in per_worker] == [math.ceil(len(q) / sample) for q in queues]
    want = [f for q in queues for f in q[::sample]]
    assert sorted(got["mon"]) == sorted(want)
    assert s["ports"]["p0"]["mirrored"] == len(want) == len(got["mon"])


def read_pcap_bytes(data: bytes) -> list[bytes]:
    out, off = [], 24
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    while off < len(data):
        cap = struct.unpack_from(endian + "I", data, off + 8)[0]
        out.append(data[off + 16:off + 16 + cap])
        off += 16 + cap
    return out


def meta_of(frame: bytes) -> dict:
    """A copy to the analyzer read with scapy (headers, checksums) and struct (the
    metadata, docs/mirroring.md §3)."""
    e = Ether(frame)
    ip = e.payload
    if isinstance(ip, IP):
        fresh = IP(bytes(ip))
        del fresh.chksum
        assert IP(bytes(fresh)).chksum == ip.chksum
        assert ip.ttl == 64 and ip.flags == "DF" and ip.len == len(ip) and ip[UDP].chksum == 0
    else:
        assert isinstance(ip, IPv6) and ip.hlim == 64 and ip.plen == len(ip) - 40
        fresh = IPv6(bytes(ip))
        del fresh[UDP].chksum
        assert IPv6(bytes(fresh))[UDP].chksum == ip[UDP].chksum
    udp = ip[UDP]
    data = bytes(udp.payload)
    assert udp.len == 8 + len(data)
    fields = struct.unpack("!HBBHHHHIIIQ", data[:32])
    keys = ("magic", "version", "direction", "in_port", "out_port", "vrf", "worker",
            "sample", "orig_len", "seq", "timestamp")
    return dict(zip(keys, fields), eth_dst=e.dst, eth_src=e.src, src=ip.src, dst=ip.dst,
                sport=udp.sport, dport=udp.dport, frame=data[32:])


@pytest.mark.parametrize("family", [4, 6])
def test_analyzer_copies_decode(tmp_path, family):
    address, source = ("198.51.100.7", "192.0.2.1") if family == 4 else \
        ("2001:db8:ee::7", "2001:db8:ee::1")
    cfg = replay_config(tmp_path, {"analyzer": {"address": address, "udp_port": 8099,
                                                "via": "nhmon", "source": source},
                                   "direction": "both", "sample": 3})
    into_p0, into_up1 = inbound(300), outbound(150)
    t0 = time.time_ns()
    s, got = replay(tmp_path, cfg, {"p0": into_p0, "up1": into_up1})
    t1 = time.time_ns()
    copies = [meta_of(f) for f in got["mon"]]
    assert len(copies) == 100 + 50 == s["ports"]["p0"]["mirrored"]
    for c in copies:
        assert (c["magic"], c["version"], c["worker"], c["sample"], c["vrf"]) == \
            (0x444D, 1, 0, 3, 0)
        assert (c["eth_dst"], c["eth_src"]) == (NH_MON_MAC, port_mac(2))
        assert (c["src"], c["dst"], c["sport"], c["dport"]) == (source, address, 8099, 8099)
        assert c["orig_len"] == len(c["frame"]) and t0 <= c["timestamp"] <= t1
    rx = [c for c in copies if c["direction"] == 1]
    tx = [c for c in copies if c["direction"] == 2]
    assert [c["frame"] for c in rx] == into_p0[::3]
    assert all((c["in_port"], c["out_port"]) == (0, 0xFFFF) for c in rx)
    assert [c["frame"] for c in tx] == got["p0"][::3]
    assert all((c["in_port"], c["out_port"]) == (1, 0) for c in tx)
    assert [c["seq"] for c in rx] == list(range(100))
    assert [c["seq"] for c in tx] == list(range(50))
    stamps = [c["timestamp"] for c in rx]
    assert stamps == sorted(stamps)

    # dataplane mirror-decode prints the same, frame by frame
    pcap = tmp_path / "out" / "mon.pcap"
    r = dataplane("mirror-decode", pcap, "--json")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    decoded = json_objects(r.stdout)
    assert len(decoded) == len(copies)
    for d, c in zip(decoded, copies):
        assert d["direction"] == ("rx" if c["direction"] == 1 else "tx")
        assert (d["ingress_port"], d["sequence"], d["original_length"], d["timestamp_ns"],
                d["sample"], d["vrf"]) == (c["in_port"], c["seq"], c["orig_len"],
                                           c["timestamp"], 3, 0)
        assert d["egress_port"] == (None if c["out_port"] == 0xFFFF else c["out_port"])
        assert bytes.fromhex(d["packet_hex"]) == c["frame"]
    r = dataplane("mirror-decode", pcap, "--config", cfg)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[-1] == f"{len(copies)} mirror copies, 0 other frames"
    first = lines[0].split()
    assert first[0] == "1" and first[2:10] == ["rx", "in", "p0", "out", "-", "vrf",
                                                "default", "len"]
    assert "IP / UDP" in lines[0] and "seq 0 sample 1/3 worker 0" in lines[0]
    r = dataplane("mirror-decode", tmp_path / "out" / "up1.pcap")
    assert r.returncode == 0 and r.stdout.splitlines()[-1].startswith("0 mirror copies")

    # the Lua dissector under tshark reads the same fields
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed (make setup installs it)")
    fields = ["dpmirror.magic", "dpmirror.version", "dpmirror.direction",
              "dpmirror.in_port", "dpmirror.out_port", "dpmirror.vrf", "dpmirror.worker",
              "dpmirror.sample", "dpmirror.orig_len", "dpmirror.seq", "dpmirror.timestamp",
              "eth.src"]
    r = subprocess.run(["tshark", "-X", f"lua_script:{LUA}", "-r", str(pcap), "-T", "fields",
                        "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,",
                        *sum((["-e", f] for f in fields), [])],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert len(rows) == len(copies)
    for row, c in zip(rows, copies):
        inner_src = Ether(c["frame"]).src
        assert row == ["0x444d", "1", str(c["direction"]), str(c["in_port"]),
                       str(c["out_port"]), str(c["vrf"]), "0", "3", str(c["orig_len"]),
                       str(c["seq"]), str(c["timestamp"]),
                       f"{port_mac(2)},{inner_src}"], row


def json_objects(text: str) -> list[dict]:
    """The JSON objects printed one after another (rich pretty-prints each)."""
    dec, out, i = json.JSONDecoder(), [], 0
    text = text.strip()
    while i < len(text):
        obj, i = dec.raw_decode(text, i)
        out.append(obj)
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def test_mirror_decode_errors(tmp_path):
    r = dataplane("mirror-decode", tmp_path / "missing.pcap")
    assert r.returncode == 2 and "missing.pcap" in r.stderr
    no_traceback(r.stderr)
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a pcap at all")
    r = dataplane("mirror-decode", bad)
    assert r.returncode == 2 and "bad.pcap" in r.stderr
    no_traceback(r.stderr)


# ------------------------------------------------------------------ a full mirror port

def test_copies_a_full_ring_refuses_are_mirror_dropped(tmp_path):
    """`run --loop`: every port is a net_ring holding the pcap's 100 frames (capacity
    127). p0's frames go to up1; up1 and mon drop what they receive (a VRF without
    routes), so up1's ring never overflows: up1 is polled first and drains 32 a burst
    while p0 sends it 32. mon gets the copies of everything p0 and up1 receive, up to
    64 a burst, and drains 32: its ring fills, and the copies it refuses are
    mirror_dropped on the mirrored ports, while every original goes out."""
    frames = [bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(1)) /
                    IP(src=f"100.64.0.{i + 1}", dst=f"10.1.0.{i + 1}") /
                    UDP(sport=1000 + i, dport=9)) for i in range(100)]
    doc = {"node": {"name": "mfull"},
           "eal": {"lcores": "0-1", "memory_mb": 256, "mbufs": 4096},
           "ports": [dict(port("up1", "net_null0", 0, vrf="sink"),
                          mirror={"to": "mon", "direction": "rx"}),
                     dict(port("p0", "net_null1", 1),
                          mirror={"to": "mon", "direction": "both"}),
                     port("mon", "net_null2", 2, vrf="sink")],
           "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"}},
           "vrfs": {"default": {"routes": [{"prefix": "10.1.0.0/16", "via": "nh1"}]},
                    "sink": {"routes": []}}}
    cfg = write_config(tmp_path / "full.yaml", doc)
    js = tmp_path / "s.json"
    r = dataplane("run", cfg, "--loop", write_pcap(tmp_path / "in.pcap", frames),
                  "--duration", 1, "--json", js, "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    s = json.loads(js.read_text())
    up1, p0, mon = (s["ports"][n] for n in ("up1", "p0", "mon"))
    # the originals: p0's 100 frames all went out of up1, none refused
    assert p0["rx"] == 100 and up1["tx"] == 100 and up1["drops"]["tx_full"] == 0
    assert up1["dpdk"]["opackets"] == 100
    assert up1["rx"] == 200 and up1["drops"]["no_route"] == 200
    # every sampled packet's copy was sent or counted
    assert p0["mirrored"] + p0["mirror_dropped"] == 100          # p0 sent nothing itself
    assert up1["mirrored"] + up1["mirror_dropped"] == 200
    assert s["mirror_dropped"] > 0, s
    assert mon["dpdk"]["opackets"] == mon["mirror_tx"] == p0["mirrored"] + up1["mirrored"]
    assert mon["tx"] == 0 and mon["rx"] == 100 + mon["mirror_tx"]
    accounted(s)


# ------------------------------------------------------------------ a running forwarder

def test_vif_shows_mirror_counters_and_mirrors_do_not_change_live(tmp_path, sockdir):
    pcap = tmp_path / "in.pcap"
    from test_control import config_doc
    doc = config_doc(pcap)
    doc["ports"][0]["mirror"] = {"to": "trap", "direction": "rx", "sample": 10}
    fw = Running(tmp_path, sockdir, doc)
    try:
        wait_for(lambda: fw.ask({"cmd": "vif"})[0]["mirrored"] > 0, 30, "mirror copies")
        vif = {p["name"]: p for p in fw.ask({"cmd": "vif"})}
        assert vif["p0"]["mirrored"] > 0 and vif["p0"]["mirror_dropped"] == 0
        assert vif["trap"]["mirror_tx"] == vif["p0"]["mirrored"]
        r = fw.cli("vif", "--json")
        assert r.returncode == 0, r.stderr
        shown = {p["name"]: p for p in json.loads(r.stdout)}
        assert shown["p0"]["mirrored"] >= vif["p0"]["mirrored"]
        assert shown["p0"]["mirror_dropped"] == 0 and "mirror_tx" in shown["trap"]
        assert fw.cli("vif").returncode == 0             # the table: mirror columns
        changed = json.loads(json.dumps(doc))
        changed["ports"][0]["mirror"]["sample"] = 2
        r = fw.cli("reload", write_config(tmp_path / "new.yaml", changed))
        assert r.returncode == 2 and "ports: cannot change live" in r.stderr
    finally:
        s = fw.stop()
    assert s["rx"] == s["tx"] + sum(s["drops"].values())
    assert s["ports"]["p0"]["mirrored"] == s["ports"]["trap"]["mirror_tx"] > 0
    # every 10th packet p0 received (one worker)
    assert s["ports"]["p0"]["mirrored"] == math.ceil(s["ports"]["p0"]["rx"] / 10)
    assert s["ports"]["trap"]["dpdk"]["opackets"] == s["ports"]["trap"]["mirror_tx"]
    assert s["mbufs_in_use_after"] == 0
    assert {r: 0 for r in DROP_REASONS} == {r: s["drops"][r] for r in DROP_REASONS}
