"""The operator commands `explain`, `nh`, `check` and the replay group summary, each
against an independent oracle:

- the hash key is built here with `struct` from the layout of docs/hashing.md §2, the
  finalizer is a MurmurHash3 fmix32 written here, the node's default seed a bitwise
  CRC32-C written here (checked against the published check value);
- next hops, ports and MACs come from the YAML documents written here, not from the
  loaded configuration;
- the end-to-end oracle is the forwarder itself: `dataplane replay` (a child process:
  EAL initializes once per process) of frames carrying the explained flows, decoded with
  scapy; every frame must leave on the port and with the destination MAC explain
  predicted.

`explain` does not start EAL, so the many-flow checks call `dataplane.cli.main` in this
process; a few calls also go through a child process to check the real command line
(exit status, text output off a terminal).
"""
from __future__ import annotations

import ipaddress
import json
import math
import random
import re
import struct
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from dataplane import cli, ecmp
from dataplane.crc32c import crc32c_raw
from dpdk_util import dataplane, no_traceback, port, port_mac, read_pcap, write_config, \
    write_pcap

M32 = 0xFFFFFFFF
SRC_MAC = "02:aa:00:00:00:01"
FIVE = ["src_ip", "dst_ip", "proto", "src_port", "dst_port"]
ALL_FIELDS = FIVE + ["flow_label", "ingress_port"]
PROTO_NUM = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}


# ------------------------------------------------------------------ independent oracles

def crc32c_bitwise(data: bytes) -> int:
    """The standard CRC32-C (Castagnoli, reflected 0x82F63B78, init and final XOR ~0),
    one bit at a time."""
    crc = M32
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ M32


def fmix32(h: int) -> int:
    """MurmurHash3's 32-bit finalizer."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def test_oracles_published_values():
    assert crc32c_bitwise(b"123456789") == 0xE3069283
    assert crc32c_bitwise(b"") == 0
    assert crc32c_bitwise(bytes(32)) == 0x8A9136AA           # RFC 3720 B.4
    assert crc32c_bitwise(b"\xff" * 32) == 0x62A8AB43
    assert crc32c_bitwise(b"leaf1") == 0x3EF69BFF             # docs/hashing.md §4
    assert (fmix32(0), fmix32(1), fmix32(M32)) == (0, 0x514E28B7, 0x81F16F39)
    # the raw register (no final XOR) the packet path uses is the standard CRC, inverted
    assert crc32c_raw(b"123456789", M32) ^ M32 == 0xE3069283


def key_of(src: str, dst: str, proto: int, sport: int, dport: int, ingress: int = 0,
           flow_label: int = 0, fields=FIVE, symmetric: bool = False) -> bytes:
    """The hash key of docs/hashing.md §2, with struct: network order, fixed offsets, one
    zero byte after the protocol, unselected fields zero, symmetric ordering first."""
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if symmetric and (s > d or (s == d and sport > dport)):
        s, d, sport, dport = d, s, dport, sport
    f = set(fields)
    z = bytes(len(s))
    args = (s if "src_ip" in f else z, d if "dst_ip" in f else z,
            proto if "proto" in f else 0, sport if "src_port" in f else 0,
            dport if "dst_port" in f else 0, ingress if "ingress_port" in f else 0)
    if len(s) == 4:
        key = struct.pack("!4s4sBxHHH", *args)
        assert len(key) == 16
    else:
        key = struct.pack("!16s16sBxHHHI", *args,
                          (flow_label & 0xFFFFF) if "flow_label" in f else 0)
        assert len(key) == 44
    return key


# ------------------------------------------------------------------ the configuration

NEXTHOPS = {"nh1": ("up1", "02:00:00:00:01:01"),       # plain routes
            "s1": ("up1", "02:00:00:00:01:02"),
            "s2": ("up2", "02:00:00:00:02:02"),
            "s3": ("up3", "02:00:00:00:03:02")}
GROUPS = {
    # weighted, with a drained member; the default hash (5-tuple) and table (4096)
    "spines": {"members": [("s1", 1), ("s2", 2), ("s3", 0)], "buckets": 4096,
               "fields": FIVE, "symmetric": False},
    # equal weights over a prime table, every field, symmetric
    "wide": {"members": [("s3", 1), ("s1", 1), ("s2", 1)], "buckets": 4099,
             "fields": ALL_FIELDS, "symmetric": True},
}
ROUTES = [("10.1.0.0/16", "nh1"), ("10.3.0.0/16", "spines"), ("10.4.0.0/16", "wide"),
          ("10.4.128.0/17", "nh1"),
          ("2001:db8:1::/48", "nh1"), ("2001:db8:3::/48", "spines"),
          ("2001:db8:4::/48", "wide")]
PORTS = ["p0", "up1", "up2", "up3"]
NODE = "leaf-cli.7"
# destinations: (prefix to draw from, what it routes to: a next hop, a group or None)
DESTS = [("10.1.0.0/16", "nh1"), ("10.3.0.0/16", "spines"), ("10.4.0.0/17", "wide"),
         ("10.4.128.0/17", "nh1"), ("10.9.0.0/16", None),
         ("2001:db8:1::/48", "nh1"), ("2001:db8:3::/48", "spines"),
         ("2001:db8:4::/48", "wide"), ("2001:db8:9::/48", None)]


def config_doc(node: dict | None = None) -> dict:
    return {
        "node": node or {"name": NODE},
        "ports": [port(name, f"net_null{i}", i) for i, name in enumerate(PORTS)],
        "vrfs": {"default": {"routes": [{"prefix": p, "via": v} for p, v in ROUTES]}},
        "nexthops": {n: {"port": p, "mac": m} for n, (p, m) in NEXTHOPS.items()},
        "groups": {g: {"members": [{"nexthop": n, "weight": w} for n, w in s["members"]],
                       "buckets": s["buckets"],
                       "hash": {"fields": s["fields"], "symmetric": s["symmetric"]}}
                   for g, s in GROUPS.items()},
    }


@pytest.fixture(scope="module")
def cfg_path(tmp_path_factory) -> Path:
    return write_config(tmp_path_factory.mktemp("cli") / "cli.yaml", config_doc())


SEED = crc32c_bitwise(NODE.encode())


def tables() -> dict:
    return {g: ecmp.build([w for _, w in s["members"]], s["buckets"])
            for g, s in GROUPS.items()}


TABLES = tables()


ROUTE_NETS = [(ipaddress.ip_network(p), p, v) for p, v in ROUTES]


def predict(flow: dict) -> dict:
    """Everything explain must say about `flow`, from the oracles above."""
    dst = ipaddress.ip_address(flow["dst"])
    via = None
    best = -1
    for net, prefix, v in ROUTE_NETS:     # longest prefix match, by hand
        if net.version == dst.version and dst in net and net.prefixlen > best:
            via, best, route = v, net.prefixlen, prefix
    if via is None:
        return {"route": None}
    p = {"route": route, "via": via}
    hop = via
    if via in GROUPS:
        g = GROUPS[via]
        key = key_of(flow["src"], flow["dst"], flow["proto"], flow["sport"], flow["dport"],
                     PORTS.index(flow["in_port"]), flow["flow_label"], g["fields"],
                     g["symmetric"])
        crc = crc32c_raw(key, M32)
        h = fmix32(crc ^ SEED)
        bucket = (h * g["buckets"]) >> 32
        member = int(TABLES[via][bucket])
        hop = g["members"][member][0]
        p.update(group=via, key=key.hex(), crc=crc, hash=h, bucket=bucket, member=member,
                 buckets=g["buckets"], seed=SEED, fields=g["fields"],
                 symmetric=g["symmetric"],
                 entropy_label=16 + h % ((1 << 20) - 16),
                 udp_source_port=49152 + h % 16384)
    p.update(nexthop=hop, port=NEXTHOPS[hop][0], mac=NEXTHOPS[hop][1])
    return p


def explain_args(flow: dict) -> list[str]:
    args = [flow["src"], flow["dst"], flow["proto_name"], str(flow["sport"])]
    if not flow.get("icmp"):
        args.append(str(flow["dport"]))       # ICMP echo: only the id is given
    if flow["in_port"] != PORTS[0]:
        args += ["--in-port", flow["in_port"]]
    if flow["flow_label"]:
        args += ["--flow-label", str(flow["flow_label"])]
    return args


def explain_json(capsys, cfg: Path, args: list[str]) -> dict:
    """`dataplane explain CONFIG ARGS --json`, in this process (explain starts no EAL)."""
    capsys.readouterr()
    rc = cli.main(["explain", str(cfg), *args, "--json"])
    assert rc == 0
    return json.loads(capsys.readouterr().out)


def check_explained(e: dict, p: dict) -> None:
    if p["route"] is None:
        assert e["route"] is None and e["nexthop"] is None and e["port"] is None, e
        return
    assert e["vrf"] == "default"
    assert (e["route"], e["via"]) == (p["route"], p["via"])
    if "group" in p:
        assert bytes.fromhex(e["key"]).hex() == p["key"], e
        for k in ("group", "crc", "hash", "bucket", "member", "buckets", "seed", "fields",
                  "symmetric", "entropy_label", "udp_source_port"):
            assert e[k] == p[k], (k, e, p)
        assert e["reference_agrees"] is True
    else:
        assert e["group"] is None and e["key"] == "" and e["member"] is None
    assert (e["nexthop"], e["port"], e["mac"]) == (p["nexthop"], p["port"], p["mac"]), e


# ------------------------------------------------------------------ flows and frames

def random_addr(rng: random.Random, prefix: str) -> str:
    net = ipaddress.ip_network(prefix)
    return str(net[rng.randrange(1, net.num_addresses - 1)])


def random_flow(rng: random.Random, dest: str, proto: str | None = None,
                in_port: str | None = None) -> dict:
    v6 = ":" in dest
    proto = proto or rng.choice(["tcp", "udp"])
    icmp = proto in ("icmp", "icmpv6")
    sport = rng.randrange(1, 65536)
    return {"src": random_addr(rng, "2001:db8:77::/48" if v6 else "10.200.0.0/16"),
            "dst": random_addr(rng, dest), "proto_name": proto, "proto": PROTO_NUM[proto],
            "sport": sport, "dport": sport if icmp else rng.randrange(1, 65536),
            "icmp": icmp, "in_port": in_port or rng.choice(["p0", "up3"]),
            "flow_label": rng.randrange(1 << 20) if v6 and rng.random() < 0.5 else 0}


def frame(flow: dict, tag: int) -> bytes:
    """A packet of `flow` addressed to its ingress port, carrying `tag` (the flow's
    index: every packet of a flow is the same frame)."""
    v6 = ":" in flow["dst"]
    l3 = (IPv6(src=flow["src"], dst=flow["dst"], hlim=64, fl=flow["flow_label"]) if v6
          else IP(src=flow["src"], dst=flow["dst"], ttl=64))
    if flow["icmp"]:
        l4 = (ICMPv6EchoRequest(id=flow["sport"], seq=7) if v6
              else ICMP(type=8, id=flow["sport"], seq=7))
    elif flow["proto_name"] == "tcp":
        l4 = TCP(sport=flow["sport"], dport=flow["dport"], flags="A")
    else:
        l4 = UDP(sport=flow["sport"], dport=flow["dport"])
    mac = port_mac(PORTS.index(flow["in_port"]))
    return bytes(Ether(src=SRC_MAC, dst=mac) / l3 / l4 / Raw(b"tag:%08d;" % tag))


TAG_RE = re.compile(rb"tag:(\d{8});")


def replay(tmp_path: Path, cfg: Path, frames_by_port: dict[str, list[bytes]]):
    """Replay through the forwarder (child process); (summary, {port: [frames]})."""
    args = []
    for name, frames in frames_by_port.items():
        args += ["--in", f"{name}={write_pcap(tmp_path / f'in-{name}.pcap', frames)}"]
    out = tmp_path / "out"
    r = dataplane("replay", cfg, *args, "--out-dir", out, "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["not_received"] == 0 and summary["mbufs_in_use_after"] == 0
    return summary, {p: read_pcap(out / f"{p}.pcap") for p in PORTS}


def egress_by_tag(outputs: dict[str, list[bytes]]) -> dict[int, list[tuple[str, str]]]:
    """{tag: [(egress port, dst MAC)]} for every output frame (scapy decodes the MAC)."""
    seen = defaultdict(list)
    for name, frames in outputs.items():
        for f in frames:
            tag = int(TAG_RE.search(f).group(1))
            seen[tag].append((name, Ether(f).dst))
    return seen


# ------------------------------------------------------------------ 1. explain

FIXED = [  # (flow, what it exercises)
    dict(src="10.200.0.1", dst="10.3.1.2", proto_name="tcp", sport=1234, dport=80,
         in_port="p0", flow_label=0),                                     # v4 group
    dict(src="10.200.0.1", dst="10.1.9.9", proto_name="udp", sport=53, dport=5353,
         in_port="p0", flow_label=0),                                     # v4 next hop
    dict(src="10.200.0.1", dst="10.9.0.1", proto_name="tcp", sport=1, dport=2,
         in_port="p0", flow_label=0),                                     # v4 no route
    dict(src="10.200.7.7", dst="10.4.5.6", proto_name="udp", sport=40000, dport=443,
         in_port="up3", flow_label=0),                          # v4, every field, sym
    dict(src="2001:db8:77::1", dst="2001:db8:3::2", proto_name="tcp", sport=40000,
         dport=443, in_port="p0", flow_label=0x12345),                    # v6 group
    dict(src="2001:db8:77::1", dst="2001:db8:4::2", proto_name="udp", sport=40000,
         dport=443, in_port="up3", flow_label=0xFFFFF),         # v6, every field, sym
    dict(src="2001:db8:4::9", dst="2001:db8:4::2", proto_name="tcp", sport=80,
         dport=40000, in_port="p0", flow_label=7),              # v6 sym: pairs swapped
    dict(src="2001:db8:77::1", dst="2001:db8:1::2", proto_name="udp", sport=1, dport=2,
         in_port="p0", flow_label=0),                                     # v6 next hop
    dict(src="2001:db8:77::1", dst="2001:db8:9::2", proto_name="udp", sport=1, dport=2,
         in_port="p0", flow_label=0),                                     # v6 no route
]
for _f in FIXED:
    _f.update(proto=PROTO_NUM[_f["proto_name"]], icmp=False)


@pytest.mark.parametrize("flow", FIXED, ids=lambda f: f"{f['dst']}-{f['in_port']}")
def test_explain_json_matches_oracle(capsys, cfg_path, flow):
    p = predict(flow)
    e = explain_json(capsys, cfg_path, explain_args(flow))
    check_explained(e, p)
    assert e["seed"] == SEED


def test_explain_fixed_flows_cover_every_case():
    kinds = Counter((":" in f["dst"], predict(f).get("group") or
                     ("hop" if predict(f)["route"] else "none")) for f in FIXED)
    for v6 in (False, True):
        for kind in ("spines", "wide", "hop", "none"):
            assert kinds[(v6, kind)] >= 1, (v6, kind)
    # the symmetric case really swaps: the explained key starts with the dst address
    sym = FIXED[6]
    assert predict(sym)["key"].startswith(ipaddress.ip_address(sym["dst"]).packed.hex())


def test_explain_port_defaults(capsys, cfg_path):
    """An omitted destination port is 0, except for ICMP / ICMPv6 echo, where the id
    (given as the source port) stands in for both ports, as in the packet path."""
    for src, dst, proto, dport in (("10.200.0.1", "10.3.1.2", "udp", 0),
                                   ("10.200.0.1", "10.3.1.2", "icmp", 4660),
                                   ("2001:db8:77::1", "2001:db8:3::2", "icmpv6", 4660),
                                   ("2001:db8:77::1", "2001:db8:3::2", "tcp", 0)):
        e = explain_json(capsys, cfg_path, [src, dst, proto, "4660"])
        flow = dict(src=src, dst=dst, proto=PROTO_NUM[proto], sport=4660, dport=dport,
                    in_port="p0", flow_label=0)
        check_explained(e, predict(flow))


def table_rows(text: str) -> dict[str, str]:
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) == 4:
            rows[cells[1]] = cells[2]
    return rows


@pytest.mark.parametrize("i", [0, 5], ids=["v4", "v6"])
def test_explain_text_command_line(cfg_path, i):
    """The real command, output piped (not a terminal): every row complete on one line,
    the whole key included (44 bytes for IPv6)."""
    flow = FIXED[i]
    p = predict(flow)
    r = dataplane("explain", cfg_path, *explain_args(flow))
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert rows["route"] == p["route"] and rows["via"] == p["via"]
    assert rows["group"] == p["group"]
    assert rows["key"] == p["key"], r.stdout
    assert rows["seed"] == f"0x{SEED:08x}"
    assert rows["crc32c"] == f"0x{p['crc']:08x}"
    assert rows["hash"] == f"0x{p['hash']:08x}"
    assert rows["bucket"] == f"{p['bucket']} of {p['buckets']}"
    assert rows["member"] == str(p["member"])
    assert rows["entropy label"] == str(p["entropy_label"])
    assert rows["mpls-udp source port"] == str(p["udp_source_port"])
    assert rows["reference model"] == "agrees"
    assert (rows["next hop"], rows["egress port"], rows["dst mac"]) == \
        (p["nexthop"], p["port"], p["mac"])


def test_explain_text_plain_hop_and_no_route(cfg_path):
    r = dataplane("explain", cfg_path, *explain_args(FIXED[7]), "--json")
    assert r.returncode == 0, r.stderr
    check_explained(json.loads(r.stdout), predict(FIXED[7]))
    r = dataplane("explain", cfg_path, *explain_args(FIXED[1]))
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert (rows["route"], rows["next hop"], rows["egress port"], rows["dst mac"]) == \
        ("10.1.0.0/16", "nh1", "up1", NEXTHOPS["nh1"][1])
    assert "key" not in rows and "member" not in rows
    r = dataplane("explain", cfg_path, *explain_args(FIXED[8]))
    assert r.returncode == 0, r.stderr
    rows = table_rows(r.stdout)
    assert rows == {"vrf": "default", "route": "no route"}


def e2e_flows() -> list[dict]:
    """50 random flows, most of them to a group, over both ingress ports, TCP/UDP, plus
    ICMP echo (explained with the id only)."""
    rng = random.Random(20240611)
    dests = [d for d, _ in DESTS] + [d for d, via in DESTS if via in GROUPS] * 2
    flows = [random_flow(rng, rng.choice(dests)) for _ in range(44)]
    for dest in ("10.3.0.0/16", "10.4.0.0/17", "10.1.0.0/16"):
        flows.append(random_flow(rng, dest, proto="icmp"))
    for dest in ("2001:db8:3::/48", "2001:db8:4::/48", "2001:db8:9::/48"):
        flows.append(random_flow(rng, dest, proto="icmpv6"))
    return flows


def test_explain_predicts_the_forwarder(tmp_path, capsys, cfg_path):
    """End to end: explain each flow, replay it (3 packets each), and every frame leaves
    on the port and with the destination MAC explain predicted."""
    flows = e2e_flows()
    explained = []
    for f in flows:
        e = explain_json(capsys, cfg_path, explain_args(f))
        check_explained(e, predict(f))
        explained.append(e)
    assert sum(e["group"] is not None for e in explained) >= 25
    assert {e["member"] for e in explained if e["group"] == "wide"} == {0, 1, 2}
    assert {e["member"] for e in explained if e["group"] == "spines"} == {0, 1}
    assert {(":" in f["dst"], f["icmp"], e["group"] is not None)
            for f, e in zip(flows, explained)} >= {(False, False, True), (True, False, True),
                                                   (False, True, True), (True, True, True)}

    by_port = defaultdict(list)
    for i, f in enumerate(flows):
        by_port[f["in_port"]] += [frame(f, i)] * 3
    summary, outputs = replay(tmp_path, cfg_path, by_port)
    seen = egress_by_tag(outputs)
    wrong = []
    for i, (f, e) in enumerate(zip(flows, explained)):
        want = [] if e["route"] is None else [(e["port"], e["mac"])] * 3
        if seen.get(i, []) != want:
            wrong.append((f, e.get("member"), want, seen.get(i)))
    assert not wrong, wrong
    no_route = 3 * sum(e["route"] is None for e in explained)
    assert no_route and summary["drops"]["no_route"] == no_route
    assert summary["tx"] == 3 * len(flows) - no_route


# ------------------------------------------------------------------ 2. nh

NH_GROUPS = {"w120": ([1, 2, 0], 4096), "w111": ([1, 1, 1], 4096),
             "w111p": ([1, 1, 1], 4099), "mix": ([5, 3, 0, 7, 1], 4099),
             "tiny": ([1, 1, 1], 67)}


def test_nh_json_shares(tmp_path):
    hops = {f"h{i}": {"port": "up1", "mac": f"02:00:00:00:0a:{i + 1:02x}"}
            for i in range(5)}
    doc = config_doc()
    doc["nexthops"] = hops
    doc["vrfs"] = {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "w120"}]}}
    doc["groups"] = {g: {"members": [{"nexthop": f"h{i}", "weight": w}
                                     for i, w in enumerate(ws)], "buckets": n}
                     for g, (ws, n) in NH_GROUPS.items()}
    cfg = write_config(tmp_path / "nh.yaml", doc)
    out = tmp_path / "nh.json"
    r = dataplane("nh", cfg, "--json", out)
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    report = json.loads(out.read_text())
    assert set(report) == set(NH_GROUPS)
    for g, (weights, n) in NH_GROUPS.items():
        rows = report[g]
        total = sum(weights)
        assert [m["member"] for m in rows] == list(range(len(weights)))
        assert [m["nexthop"] for m in rows] == [f"h{i}" for i in range(len(weights))]
        assert [m["weight"] for m in rows] == weights
        assert sum(m["buckets"] for m in rows) == n, g
        for m, w in zip(rows, weights):
            want = w / total
            assert m["configured"] == pytest.approx(want, abs=1e-12), (g, m)
            assert m["realised"] == pytest.approx(m["buckets"] / n, abs=1e-12), (g, m)
            # within one bucket of the exact share n·w/W (docs/hashing.md §5) ...
            assert m["buckets"] in (n * w // total, -(-n * w // total)), (g, m)
            # ... and so within 1 % of the configured share (n >= 100)
            if n >= 100:
                assert abs(m["realised"] - want) <= 0.01, (g, m)
            if w == 0:
                assert m["buckets"] == 0 and m["realised"] == 0.0, (g, m)
        # and the table the packet path indexes holds exactly those counts
        counts = Counter(int(x) for x in ecmp.build(weights, n))
        assert [counts.get(i, 0) for i in range(len(weights))] == \
            [m["buckets"] for m in rows], g
    # the text tables name every group and mark the drained members
    assert re.search(r"group w111p: 4099 buckets", r.stdout)
    assert len(re.findall(r"\bdrain\b", r.stdout)) == 2


# ------------------------------------------------------------------ 3. replay summary

def test_replay_group_summary(tmp_path, cfg_path):
    """2000 random flows of 1-5 packets over the weighted group `spines` (plus traffic for
    `wide`, which shares next hops s1 and s2, and for plain routes): summary.json's
    per-member packets, flows and imbalance equal what is counted here from the output
    pcaps with scapy, and the shares are within binomial noise of the weights."""
    rng = random.Random(77)
    flows, keys = [], set()
    plan = ([("10.3.0.0/16", "2001:db8:3::/48")] * 2000 + [("10.4.0.0/17",
            "2001:db8:4::/48")] * 400 + [("10.1.0.0/16", "2001:db8:1::/48")] * 50)
    for v4, v6 in plan:
        while True:
            f = random_flow(rng, v6 if rng.random() < 0.3 else v4)
            k = (f["src"], f["dst"], f["proto"], f["sport"], f["dport"])
            if k not in keys:
                keys.add(k)
                break
        f["packets"] = rng.randint(1, 5)
        f["predicted"] = predict(f)
        flows.append(f)
    order = [i for i, f in enumerate(flows) for _ in range(f["packets"])]
    rng.shuffle(order)                        # flows interleaved
    frames = [frame(f, i) for i, f in enumerate(flows)]
    by_port = defaultdict(list)
    for i in order:
        by_port[flows[i]["in_port"]].append(frames[i])
    summary, outputs = replay(tmp_path, cfg_path, by_port)

    # count from the output pcaps: (port, dst MAC) of every frame, its 5-tuple by scapy
    member_of_hop = {g: {NEXTHOPS[n]: m for m, (n, _) in enumerate(s["members"])}
                     for g, s in GROUPS.items()}
    pkt_count = {g: Counter() for g in GROUPS}
    flow_sets = {g: defaultdict(set) for g in GROUPS}
    flow_member = {}
    decoded = {}                              # frames of one flow are identical
    total_out = 0
    for name, out_frames in outputs.items():
        for raw in out_frames:
            total_out += 1
            if raw not in decoded:
                pkt = Ether(raw)
                l3 = pkt[IPv6] if pkt.haslayer(IPv6) else pkt[IP]
                l4 = pkt[TCP] if pkt.haslayer(TCP) else pkt[UDP]
                decoded[raw] = (pkt.dst, (str(ipaddress.ip_address(l3.src)),
                                          str(ipaddress.ip_address(l3.dst)),
                                          6 if pkt.haslayer(TCP) else 17, l4.sport,
                                          l4.dport))
            mac, five = decoded[raw]
            flow = flows[int(TAG_RE.search(raw).group(1))]
            assert five == (flow["src"], flow["dst"], flow["proto"], flow["sport"],
                            flow["dport"])                      # the flow that was sent
            via = flow["predicted"]["via"]
            if via not in GROUPS:
                assert (name, mac) == NEXTHOPS[via]
                continue
            m = member_of_hop[via][(name, mac)]
            pkt_count[via][m] += 1
            flow_sets[via][m].add(five)
            assert flow_member.setdefault(five, (via, m)) == (via, m), five   # not split
    assert total_out == summary["tx"] == len(order)

    for g, spec in GROUPS.items():
        s = summary["groups"][g]
        weights = [w for _, w in spec["members"]]
        k = len(weights)
        mine = [f for f in flows if f["predicted"]["via"] == g]
        routed = sum(f["packets"] for f in mine)
        got_pkts = [m["packets"] for m in s["members"]]
        got_flows = [m["flows"] for m in s["members"]]
        assert [m["nexthop"] for m in s["members"]] == [n for n, _ in spec["members"]]
        assert [m["weight"] for m in s["members"]] == weights
        assert s["packets"] == sum(got_pkts) == routed, g
        assert got_pkts == [pkt_count[g][m] for m in range(k)], g
        assert got_flows == [len(flow_sets[g][m]) for m in range(k)], g
        assert s["flows"] == sum(got_flows) == len(mine), g
        # the hash oracle agrees member by member
        want_pkts, want_flows = Counter(), Counter()
        for f in mine:
            want_pkts[f["predicted"]["member"]] += f["packets"]
            want_flows[f["predicted"]["member"]] += 1
        assert got_pkts == [want_pkts[m] for m in range(k)], g
        assert got_flows == [want_flows[m] for m in range(k)], g

        total_w = sum(weights)
        conf = [w / total_w for w in weights]
        for counts, field in ((got_pkts, "imbalance_packets"), (got_flows, "imbalance_flows")):
            total = sum(counts)
            want = max((c / total) / cf for c, cf in zip(counts, conf) if cf)
            assert s[field] == pytest.approx(want, abs=6e-5), (g, field)
            for c, cf in zip(counts, conf):
                if cf == 0:
                    assert c == 0, g                              # drained: nothing
                    continue
                # binomial noise of a share over len(mine) flows; for packets the 1-5
                # packets per flow widen it by E[k^2]/E[k]^2 = 11/9
                widen = 11 / 9 if field == "imbalance_packets" else 1.0
                sigma = math.sqrt(cf * (1 - cf) * widen / len(mine))
                assert abs(c / total - cf) <= 4 * sigma, (g, field, c / total, cf, sigma)


# ------------------------------------------------------------------ 4. check and seed

@pytest.mark.parametrize("node, seed", [
    ({"name": NODE}, crc32c_bitwise(NODE.encode())),
    ({"name": "leaf1"}, 0x3EF69BFF),
    ({"name": "spine-42"}, crc32c_bitwise(b"spine-42")),
    ({"name": "leaf1", "seed": 0x5EED0001}, 0x5EED0001),
    ({"name": "leaf1", "seed": 0}, 0),
], ids=["default", "leaf1", "spine-42", "explicit", "zero"])
def test_check_prints_node_seed(tmp_path, capsys, node, seed):
    cfg = write_config(tmp_path / "seed.yaml", config_doc(node))
    r = dataplane("check", cfg)
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    assert f"node {node['name']} (seed 0x{seed:08x})" in r.stdout, r.stdout
    assert "4 ports, 1 VRFs, 7 routes, 4 next hops, 2 groups" in r.stdout, r.stdout
    # explain hashes with that seed
    e = explain_json(capsys, cfg, explain_args(FIXED[0]))
    assert e["seed"] == seed
    crc = crc32c_raw(bytes.fromhex(e["key"]), M32)
    assert e["hash"] == fmix32(crc ^ seed)
