"""A SYN flood at 100x the flow table beside established TCP sessions (issue 18 "Floods",
docs/flow-table.md §10), through the real forwarder: `dataplane replay` on net_pcap
vdevs, one worker, a 1,024-flow table, for `on_full: hash` and `on_full: drop`.

The input (bench/flood.py make_traffic, numpy; every frame 66 bytes, checksums valid):
64 sessions from 100.64.0.0/16 to 10.3.0.0/16:443 (group spines, three members on
up1..up3), each a SYN and 40 data packets (payload b"ES", session number, packet
number), and 102,400 SYNs of distinct flows from random sources and source ports.

- "before": every session's SYN and first data packet, then the flood with the
  sessions' 39 other data packets spread evenly through it (one every ~40 SYNs). The
  first 960 flood SYNs fill the table; 101,440 find it full.
- "after": 1,024 flood SYNs fill the table, then the rest of the flood with the sessions
  (their SYN, then their data) spread through it: the sessions find the table full.

Oracles: the replay's summary.json (counters) and flows.json (the table it left), the
output pcaps parsed (fixed-size records) and the sessions' output frames decoded with
scapy (which packets left, on which member, rewritten how), and the member the group's
bucket table gives a flow (dataplane.hashing / dataplane.ecmp, docs/flow-table.md §3).
"""
from __future__ import annotations

import importlib.util
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import yaml
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from dpdk_util import dataplane, no_traceback, port_mac

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("bench_flood", ROOT / "bench" / "flood.py")
flood = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(flood)

ENTRIES = 1024
FLOOD = 100 * ENTRIES           # 102,400 SYNs
SESSIONS = 64
DATA = 40                       # data packets per session (after its SYN)
PER_SESSION = 1 + DATA
PORTS = ["p0", "up1", "up2", "up3"]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory):
    """{layout: (pcap path, frames, meta)}, generated once."""
    d = tmp_path_factory.mktemp("flood-in")
    out = {}
    for layout in ("before", "after"):
        f, meta = flood.make_traffic(ENTRIES, FLOOD, SESSIONS, DATA, layout)
        out[layout] = (d / f"{layout}.pcap", f, meta)
        flood.write_pcap(out[layout][0], f)
    return out


def replay(tmp_path, traffic, on_full: str, layout: str):
    pcap, frames, meta = traffic[layout]
    cfg = tmp_path / "flood.yaml"
    cfg.write_text(yaml.safe_dump(flood.config_doc(ENTRIES, on_full), sort_keys=False))
    out = tmp_path / "out"
    r = dataplane("replay", cfg, "--in", f"p0={pcap}", "--out-dir", out)
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    flows = json.loads((out / "flows.json").read_text())
    assert summary["input_packets"] == summary["rx"] == len(frames)
    assert summary["not_received"] == 0 and summary["mbufs_in_use_after"] == 0
    assert summary["output_errors"] == []
    outputs = {p: flood.read_frames(out / f"{p}.pcap") for p in PORTS}
    return summary, flows, outputs, meta


def session_key(meta, i: int) -> tuple:
    es, ep, ed = meta["sessions"]
    return flood.ip_text(es[i]), flood.ip_text(ed[i]), int(ep[i]), 443


def flow_key(f: dict) -> tuple:
    return f["src"], f["dst"], f["sport"], f["dport"]


def left_by_session(outputs) -> dict[int, list[tuple[int, int]]]:
    """{session: [(member, packet number: -1 for the SYN)]} in output order, from every
    output port: session, packet number and member (egress port + destination MAC) read
    from the raw frames of all of them; one in four (and every SYN) also decoded with
    scapy, which must read the same and see a rewritten copy of what was sent: to the
    member's next hop from its port's MAC, TTL 63, addresses, ports and payload as sent.
    (scapy takes ~0.4 ms a frame, more on a busy machine: not all 2,600.)"""
    left = defaultdict(list)
    for port in PORTS:
        f = outputs[port]
        sess, session, number = flood.session_packets(f)
        for k, row in enumerate(np.nonzero(sess)[0]):
            n, pn = int(session[row]), int(number[row])
            member = flood.member_of(port, bytes(f[row, 0:6]))
            assert member is not None, (port, bytes(f[row, 0:6]).hex())
            left[n].append((member, pn))
            if pn >= 0 and k % 4:
                continue
            pkt = Ether(bytes(f[row]))
            assert flood.member_of(port, bytes.fromhex(pkt.dst.replace(":", ""))) == member
            assert pkt.src == port_mac(PORTS.index(port))
            ip, tcp = pkt[IP], pkt[TCP]
            assert ip.ttl == 63 and ip.proto == 6 and tcp.dport == 443
            assert ip.src.startswith("100.64.") and ip.dst.startswith("10.3.")
            assert int(ip.src.split(".")[2]) * 250 + int(ip.src.split(".")[3]) - 1 == n
            assert tcp.sport == 20000 + n
            if pn < 0:
                assert tcp.flags == "S" and not tcp.payload
            else:
                payload = bytes(tcp.payload)
                assert tcp.flags == "PA" and payload[:2] == b"ES"
                assert int.from_bytes(payload[2:6], "big") == n
                assert int.from_bytes(payload[6:10], "big") == pn
    return left


def flood_rows(outputs) -> dict[str, np.ndarray]:
    """Per port, the rows of flood SYNs (not session packets)."""
    return {p: np.nonzero(~flood.session_packets(outputs[p])[0])[0] for p in PORTS}


def expected_members(meta) -> list[int]:
    es, ep, ed = meta["sessions"]
    return [flood.expected_member(es[i], ed[i], ep[i], 443) for i in range(SESSIONS)]


@pytest.mark.parametrize("on_full", ["hash", "drop"])
def test_syn_flood_beside_established_sessions(tmp_path, traffic, on_full):
    """Sessions whose entries exist before a 100x SYN flood keep every packet forwarded
    (the issue asks ≥ 90 %; a replay loses none), on the member pinned in their entry,
    and keep their entries (present, same member, every packet counted). The flood
    fills the rest of the table; its other SYNs are dropped as flow_table_full (drop)
    or forwarded statelessly on the bucket table's member (hash)."""
    summary, flows, outputs, meta = replay(tmp_path, traffic, on_full, "before")
    admitted = ENTRIES - SESSIONS                    # flood SYNs that got an entry
    refused = FLOOD - admitted
    c = summary["flows"]
    assert (c["flow_created"], c["flows_active"], c["flow_table_full"]) == \
        (ENTRIES, ENTRIES, refused)
    assert (c["flow_deleted"], c["flow_aged"], c["flow_rehashed"]) == (0, 0, 0)
    drops = {k: v for k, v in summary["drops"].items() if v}
    total = FLOOD + SESSIONS * PER_SESSION
    if on_full == "drop":
        assert drops == {"flow_table_full": refused}
        assert summary["ports"]["p0"]["drops"]["flow_table_full"] == refused
        assert summary["tx"] == total - refused
    else:
        assert drops == {} and summary["tx"] == total
    assert summary["groups"]["spines"]["packets"] == summary["tx"]

    # the sessions: every packet left, in order, all on one member, the one the bucket
    # table gave them when their entry was made
    left = left_by_session(outputs)
    want = expected_members(meta)
    forwarded = sum(len(v) for v in left.values())
    assert forwarded / (SESSIONS * PER_SESSION) >= 0.9
    for i in range(SESSIONS):
        assert [p for _, p in left[i]] == list(range(-1, DATA)), i
        assert {m for m, _ in left[i]} == {want[i]}, i
    assert forwarded == SESSIONS * PER_SESSION

    # ... and their entries: present, same member, every packet and byte counted on them
    table = {flow_key(f): f for f in flows}
    assert len(table) == len(flows) == ENTRIES
    for i in range(SESSIONS):
        e = table[session_key(meta, i)]
        assert (e["group"], e["member"], e["in_port"]) == (0, want[i], 0), i
        assert (e["packets"], e["bytes"]) == (PER_SESSION, PER_SESSION * flood.FRAME), i
        assert not (e["fin"] or e["rst"] or e["closing"])

    # the flood: its first 960 SYNs have the rest of the table, one packet each
    fs, fp, fd = meta["flood"]
    admitted_keys = {(flood.ip_text(fs[j]), flood.ip_text(fd[j]), int(fp[j]), 80)
                     for j in range(admitted)}
    flood_entries = {k: f for k, f in table.items() if k[3] == 80}
    assert set(flood_entries) == admitted_keys
    assert all(f["packets"] == 1 for f in flood_entries.values())
    rows = flood_rows(outputs)
    n_flood_out = sum(len(r) for r in rows.values())
    if on_full == "drop":
        assert n_flood_out == admitted
        sent = {(int(flood.u32(outputs[p][r:r + 1, 26:30])[0]),
                 int(flood.u32(outputs[p][r:r + 1, 30:34])[0])) for p in PORTS
                for r in rows[p]}
        assert sent == {(int(fs[j]), int(fd[j])) for j in range(admitted)}
    else:
        # every flood SYN left, entry or not, on the member the bucket table gives it
        # (checked for a sample of 600: the hash is computed in Python)
        assert n_flood_out == FLOOD
        rng = np.random.default_rng(5)
        for p in PORTS[1:]:
            f = outputs[p]
            for r in rng.choice(rows[p], 200, replace=False):
                src, dst = (int(flood.u32(f[r:r + 1, a:a + 4])[0]) for a in (26, 30))
                sport = int(f[r, 34]) << 8 | int(f[r, 35])
                m = flood.member_of(p, bytes(f[r, 0:6]))
                assert m == flood.expected_member(src, dst, sport, 80)


@pytest.mark.parametrize("on_full", ["hash", "drop"])
def test_sessions_arriving_after_the_flood_filled_the_table(tmp_path, traffic, on_full):
    """Sessions that start once the flood has filled the table get no entry. That is the
    design (docs/flow-table.md §4 "table full", §10): with `on_full: drop` every packet
    of theirs is refused as flow_table_full, SYN and data alike, until aging frees room
    (the flood's entries idle out after idle_timeout); with `on_full: hash` every
    packet is forwarded statelessly, each session on the one member the bucket table
    gives its hash, the member an entry would have pinned."""
    summary, flows, outputs, meta = replay(tmp_path, traffic, on_full, "after")
    session_pkts = SESSIONS * PER_SESSION
    refused = FLOOD - ENTRIES + session_pkts         # every session packet misses too
    c = summary["flows"]
    assert (c["flow_created"], c["flows_active"], c["flow_table_full"]) == \
        (ENTRIES, ENTRIES, refused)
    table = {flow_key(f): f for f in flows}
    assert len(table) == ENTRIES
    assert not any(session_key(meta, i) in table for i in range(SESSIONS))
    fs, fp, fd = meta["flood"]
    assert set(table) == {(flood.ip_text(fs[j]), flood.ip_text(fd[j]), int(fp[j]), 80)
                          for j in range(ENTRIES)}
    left = left_by_session(outputs)
    drops = {k: v for k, v in summary["drops"].items() if v}
    if on_full == "drop":
        assert drops == {"flow_table_full": refused}
        assert summary["tx"] == ENTRIES and left == {}        # refused: by design
    else:
        assert drops == {} and summary["tx"] == FLOOD + session_pkts
        want = expected_members(meta)
        for i in range(SESSIONS):
            assert [p for _, p in left[i]] == list(range(-1, DATA)), i
            assert {m for m, _ in left[i]} == {want[i]}, i
