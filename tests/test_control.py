"""The control socket of a running forwarder (SPEC §10, docs/control.md), on real DPDK
vdevs: a `net_pcap` port replaying flows forever (`infinite_rx`) into ECMP groups whose
members leave on `net_null` sinks. Checked against the forwarder's own counters and flow
table: permissions (file mode and SO_PEERCRED), protocol errors that never stop
forwarding, several clients at once, the inspection verbs, and live changes: adding a
member moves no flow, a drained member keeps its flows, removing a member re-hashes only
its flows, 1,000 changes lose no packet; refusals carry the validator's message.
"""
from __future__ import annotations

import json
import os
import socket
import stat
import tempfile
import threading
import time
from collections import Counter

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dataplane.drops import DROP_REASONS
from dpdk_util import (dataplane, finish, interrupt, no_traceback, port_mac, spawn,
                       wait_for, write_config, write_pcap)

FLOWS = 240
HOPS = {"s1": ("up1", "02:00:00:00:01:01"), "s2": ("up2", "02:00:00:00:02:01"),
        "s3": ("up3", "02:00:00:00:03:01"), "spare": ("up3", "02:00:00:00:03:02")}


def config_doc(pcap) -> dict:
    ports = [{"name": "p0", "devargs": f"net_pcap0,rx_pcap={pcap},infinite_rx=1",
              "mac": port_mac(0), "vrf": "default"}]
    for i, name in enumerate(("up1", "up2", "up3", "trap"), 1):
        ports.append({"name": name, "devargs": f"net_null{i},no-rx=1", "mac": port_mac(i),
                      "vrf": "default"})
    return {"node": {"name": "ctl"},
            "eal": {"lcores": "0-1", "memory_mb": 1024, "mbufs": 16384},
            "flow_table": {"entries": 65536},
            "ports": ports,
            "vrfs": {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "spines"}]}},
            "nexthops": {n: {"port": p, "mac": m} for n, (p, m) in HOPS.items()},
            "groups": {"spines": {"members": [{"nexthop": "s1", "weight": 1},
                                              {"nexthop": "s2", "weight": 1}]}}}


@pytest.fixture
def sockdir():
    # a directory another uid can traverse, so the second-uid test reaches the socket
    d = tempfile.mkdtemp(prefix="dpctl", dir="/tmp")
    os.chmod(d, 0o755)
    yield d
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)


class Running:
    """`dataplane run` in a child process with its control socket."""

    def __init__(self, tmp_path, sockdir, doc=None):
        frames = [Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                  IP(src=f"100.64.{i // 200}.{i % 200 + 1}", dst=f"10.{i % 97}.{i % 5}.1") /
                  UDP(sport=1024 + i, dport=53) for i in range(FLOWS)]
        pcap = write_pcap(tmp_path / "in.pcap", frames)
        self.doc = doc or config_doc(pcap)
        self.cfg = write_config(tmp_path / "ctl.yaml", self.doc)
        self.sock = os.path.join(sockdir, "ctl.sock")
        self.json = tmp_path / "final.json"
        self.proc = spawn("run", self.cfg, "--socket", self.sock, "--json", self.json, "-q",
                          "--duration", 120, stderr_file=tmp_path / "stderr")
        self.stderr = tmp_path / "stderr"
        wait_for(lambda: os.path.exists(self.sock) or self.proc.poll() is not None, 60,
                 "the control socket")
        assert self.proc.poll() is None, self.stderr.read_text()

    def ask(self, req: dict, raw: bool = False):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(60)
        s.connect(self.sock)
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        s.close()
        reply = json.loads(buf.split(b"\n")[0])
        if raw:
            return reply
        assert reply["ok"], reply
        return reply["result"]

    def cli(self, *args):
        r = dataplane(*args, "--socket", self.sock)
        no_traceback(r.stderr)
        return r

    def stop(self) -> dict:
        interrupt(self.proc)
        code, out, err = finish(self.proc, timeout=60)
        assert code == 0, self.stderr.read_text()
        return json.loads(self.json.read_text())

    def flows(self) -> dict:
        got = self.ask({"cmd": "flow", "limit": 1 << 20})["flows"]
        return {(f["src"], f["dst"], f["sport"]): f for f in got}

    def members(self) -> list[int]:
        return [m["packets"] for m in self.ask({"cmd": "nh"})["groups"]["spines"]["members"]]


def accounted(s: dict) -> None:
    """rx == tx + named drops, per port and in all; the DPDK counters agree."""
    assert s["rx"] == s["tx"] + sum(s["drops"].values())
    for name, p in s["ports"].items():
        assert p["dpdk"]["opackets"] == p["tx"], name
    assert s["mbufs_in_use_after"] == 0


def test_socket_permissions_and_bad_requests(tmp_path, sockdir):
    fw = Running(tmp_path, sockdir)
    try:
        assert stat.S_IMODE(os.stat(fw.sock).st_mode) == 0o600
        wait_for(lambda: fw.ask({"cmd": "stats"})["rx"] > 0, 30, "traffic")
        rx0 = fw.ask({"cmd": "stats"})["rx"]

        # another uid: the file mode stops it, and with the mode opened up the server's
        # SO_PEERCRED check still does
        def as_nobody():
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                try:
                    os.setgid(65534)
                    os.setuid(65534)
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    try:
                        s.connect(fw.sock)
                        # the server speaks first to a refused peer, then hangs up
                        os.write(w, s.recv(4096) or b"closed")
                    except PermissionError:
                        os.write(w, b"EACCES")
                    except OSError as e:
                        os.write(w, repr(e).encode())
                finally:
                    os._exit(0)
            os.close(w)
            got = b""
            while chunk := os.read(r, 4096):
                got += chunk
            os.waitpid(pid, 0)
            return got
        assert as_nobody() == b"EACCES"
        os.chmod(fw.sock, 0o666)
        reply = json.loads(as_nobody().split(b"\n")[0])
        assert reply["ok"] is False and "permission denied: uid 65534" in reply["error"]
        os.chmod(fw.sock, 0o600)

        # malformed, unknown, wrong shape: an error reply each, the connection stays usable
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(fw.sock)
        f = s.makefile("rwb")
        for line in (b"{not json\n", b'{"cmd": "nope"}\n', b"[1, 2]\n", b'{"cmd": 5}\n',
                     b'{"cmd": "group", "group": "spines"}\n'):
            f.write(line)
            f.flush()
            reply = json.loads(f.readline())
            assert reply["ok"] is False and reply["error"], line
        f.write(b'{"cmd": "vif"}\n')
        f.flush()
        assert json.loads(f.readline())["ok"] is True
        # a huge request: one error reply, the rest of it is dropped, the connection stays
        s.sendall(b"x" * (3 << 20) + b"\n")
        reply = json.loads(f.readline())
        assert reply["ok"] is False and "longer than" in reply["error"]
        f.write(b'{"cmd": "vif"}\n')
        f.flush()
        assert json.loads(f.readline())["ok"] is True
        s.close()

        # several clients at once
        results, errors = [], []

        def client():
            try:
                for _ in range(15):
                    results.append(len(fw.ask({"cmd": "vif"})))
            except Exception as e:          # noqa: BLE001 (reported below)
                errors.append(e)
        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and results == [5] * 120
        time.sleep(0.3)
        assert fw.ask({"cmd": "stats"})["rx"] > rx0           # forwarding went on
        server = fw.ask({"cmd": "server"})
        assert server["refused"] == 1 and server["errors"] >= 6
    finally:
        s = fw.stop()
    accounted(s)
    assert s["control"]["refused"] == 1


def test_inspection_verbs_agree_with_the_final_stats(tmp_path, sockdir):
    fw = Running(tmp_path, sockdir)
    try:
        wait_for(lambda: len(fw.flows()) == FLOWS, 30, "every flow in the table")
        vif = {p["name"]: p for p in fw.ask({"cmd": "vif"})}
        assert set(vif) == {"p0", "up1", "up2", "up3", "trap"} and vif["p0"]["rx"] > 0
        rt = fw.ask({"cmd": "rt"})
        assert rt == {"default": [{"prefix": "10.0.0.0/8", "via": "spines", "group": True}]}
        nh = fw.ask({"cmd": "nh"})
        assert [n["name"] for n in nh["nexthops"]] == list(HOPS)
        g = nh["groups"]["spines"]["members"]
        assert [m["buckets"] for m in g] == [2048, 2048]
        assert [m["state"] for m in g] == ["active", "active"]
        flows = fw.flows()
        assert Counter(f["member"] for f in flows.values()) == Counter(
            {0: sum(f["member"] == 0 for f in flows.values()),
             1: sum(f["member"] == 1 for f in flows.values())})
        one = fw.ask({"cmd": "flow", "get": 0})
        assert one["index"] == 0 and one["group"] == 0
        matched = fw.ask({"cmd": "flow", "match": "100.64.0.0/24"})
        assert matched["matched"] == 200 and matched["total"] == FLOWS
        assert fw.ask({"cmd": "dropstats"})["total"] == {r: 0 for r in DROP_REASONS}
        assert fw.ask({"cmd": "mpls"}) == []
        # the CLI's tables show the same
        r = fw.cli("vif")
        assert r.returncode == 0 and "trap" in r.stdout
        r = fw.cli("rt", "default", "--json")
        assert json.loads(r.stdout) == rt
        r = fw.cli("flow", "--json", "--match", "100.64.1.0/24")
        assert r.returncode == 0 and len(json.loads(r.stdout)) == FLOWS - 200
        # explain --live predicts the member the forwarder pinned, flow by flow
        for i in (0, 7, 123):
            src, dst = f"100.64.{i // 200}.{i % 200 + 1}", f"10.{i % 97}.{i % 5}.1"
            r = fw.cli("explain", "--live", src, dst, "udp", 1024 + i, 53, "--json")
            assert r.returncode == 0, r.stderr
            e = json.loads(r.stdout)
            assert e["group"] == "spines" and e["member"] == flows[(src, dst, 1024 + i)]["member"]
    finally:
        s = fw.stop()
    accounted(s)
    assert s["ports"]["trap"]["tx"] == 0
    assert s["flows"]["flow_created"] == FLOWS


def test_live_group_changes_move_only_what_they_must(tmp_path, sockdir):
    """(a) adding a member moves no existing flow, new flows spread to it; (b) a drained
    member keeps its flows (they keep flowing) and takes no new ones, and once it has none
    (here after a flush; aging: the next test) removing it moves nothing; (c) removing a
    member re-hashes only its flows."""
    fw = Running(tmp_path, sockdir)
    try:
        wait_for(lambda: len(fw.flows()) == FLOWS, 30, "every flow in the table")
        before = {k: f["member"] for k, f in fw.flows().items()}
        # (a)
        r = fw.cli("group", "spines", "add", "s3", "--weight", "1")
        assert r.returncode == 0 and "group spines" in r.stdout, r.stderr
        p = fw.members()
        time.sleep(0.5)
        after = {k: f["member"] for k, f in fw.flows().items()}
        assert after == before                          # 0 flows moved
        assert fw.members()[2] == p[2] == 0             # nothing reached the new member
        assert fw.ask({"cmd": "stats"})["flows"]["flow_rehashed"] == 0
        assert fw.cli("flow", "--flush").returncode == 0
        wait_for(lambda: len(fw.flows()) == FLOWS, 30, "the flows again")
        spread = Counter(f["member"] for f in fw.flows().values())
        assert spread[2] > FLOWS // 6                   # new flows take the new member
        # (b) drain s2: its flows stay, new flows avoid it
        pinned = {k for k, f in fw.flows().items() if f["member"] == 1}
        assert fw.cli("group", "spines", "weight", "s2", "0").returncode == 0
        p = fw.members()
        time.sleep(0.5)
        assert {k for k, f in fw.flows().items() if f["member"] == 1} == pinned
        assert fw.members()[1] > p[1]                   # and keep flowing
        nh = fw.ask({"cmd": "nh"})["groups"]["spines"]["members"]
        assert nh[1]["state"] == "drain" and nh[1]["buckets"] == 0
        assert fw.cli("flow", "--flush").returncode == 0
        wait_for(lambda: len(fw.flows()) == FLOWS, 30, "the flows again")
        assert all(f["member"] != 1 for f in fw.flows().values())
        r = fw.cli("group", "spines", "remove", "s2")
        assert r.returncode == 0, r.stderr
        assert fw.ask({"cmd": "stats"})["flows"]["flow_rehashed"] == 0   # moved nothing
        # (c) remove s3: only its flows are re-hashed
        flows = fw.flows()
        on_s3 = {k for k, f in flows.items() if f["member"] == 2}
        others = {k: f["member"] for k, f in flows.items() if f["member"] != 2}
        assert on_s3
        assert fw.cli("group", "spines", "remove", "s3").returncode == 0
        wait_for(lambda: fw.ask({"cmd": "stats"})["flows"]["flow_rehashed"] == len(on_s3),
                 30, "the re-hash of s3's flows")
        now = fw.flows()
        assert {k: now[k]["member"] for k in others} == others
        assert all(now[k]["member"] == 0 for k in on_s3)      # s1 is the one left
    finally:
        s = fw.stop()
    accounted(s)
    assert s["drops"]["no_route"] == 0 and s["ports"]["trap"]["tx"] == 0
    assert [m["nexthop"] for m in s["groups"]["spines"]["members"]] == ["s1", "s2", "s3"]


def test_a_thousand_changes_lose_nothing(tmp_path, sockdir):
    fw = Running(tmp_path, sockdir)
    try:
        wait_for(lambda: len(fw.flows()) == FLOWS, 30, "every flow in the table")
        rx = [fw.ask({"cmd": "stats"})["rx"]]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(fw.sock)
        f = s.makefile("rwb")
        t0 = time.monotonic()
        published = 0
        for i in range(1000):
            if i % 4 == 0:
                req = {"cmd": "route", "action": "add", "vrf": "default",
                       "prefix": f"192.0.2.{i % 250}/32", "via": "s1"}
            elif i % 4 == 1:
                req = {"cmd": "route", "action": "del", "vrf": "default",
                       "prefix": f"192.0.2.{(i - 1) % 250}/32"}
            else:
                req = {"cmd": "group", "group": "spines", "action": "weight",
                       "nexthop": "s2", "weight": 1 + i % 3}
            f.write(json.dumps(req).encode() + b"\n")
            f.flush()
            reply = json.loads(f.readline())
            assert reply["ok"], (i, reply)
            published += bool(reply["result"]["applied"])   # a same-weight change: none
            if i % 100 == 99:
                rx.append(fw.ask({"cmd": "stats"})["rx"])
        seconds = time.monotonic() - t0
        s.close()
        assert all(b > a for a, b in zip(rx, rx[1:]))      # traffic throughout
        assert fw.ask({"cmd": "server"})["changes"] == 1000
        assert fw.ask({"cmd": "rt"})["default"] == [
            {"prefix": "10.0.0.0/8", "via": "spines", "group": True}]
    finally:
        final = fw.stop()
    accounted(final)
    assert {k: v for k, v in final["drops"].items() if v} == {}   # no no_route, nothing
    assert final["ports"]["trap"]["tx"] == 0
    assert final["control"]["version"] == published > 700
    print(f"1000 changes in {seconds:.1f} s, {final['rx']:,} packets, 0 lost")


def test_refusals_name_the_reason(tmp_path, sockdir):
    fw = Running(tmp_path, sockdir)
    try:
        # a change the validator rejects: the message `dataplane check` gives
        r = fw.cli("group", "spines", "add", "nowhere")
        assert r.returncode == 2
        doc = json.loads(json.dumps(fw.doc))
        doc["groups"]["spines"]["members"].append({"nexthop": "nowhere", "weight": 1})
        bad = write_config(tmp_path / "bad.yaml", doc)
        check = dataplane("check", bad)
        want = [ln for ln in check.stderr.splitlines() if "nowhere" in ln][0].strip()
        assert want.split(": ", 1)[1] in r.stderr
        # what cannot change live is refused with its reason, and nothing is applied
        doc = json.loads(json.dumps(fw.doc))
        doc["ports"][1]["mac"] = "02:00:00:00:99:99"
        doc["groups"]["spines"]["members"].append({"nexthop": "s3", "weight": 1})
        r = fw.cli("reload", write_config(tmp_path / "new.yaml", doc))
        assert r.returncode == 2 and "ports: cannot change live" in r.stderr
        assert len(fw.ask({"cmd": "nh"})["groups"]["spines"]["members"]) == 2
        # a reload with only live changes applies them
        doc["ports"][1]["mac"] = fw.doc["ports"][1]["mac"]
        doc["vrfs"]["default"]["routes"].append({"prefix": "172.16.0.0/12", "via": "s2"})
        r = fw.cli("reload", write_config(tmp_path / "ok.yaml", doc))
        assert r.returncode == 0, r.stderr
        assert "group spines" in r.stdout and "routes of vrf default" in r.stdout
        assert len(fw.ask({"cmd": "rt"})["default"]) == 2
        r = fw.cli("route", "del", "default", "198.51.100.0/24")
        assert r.returncode == 2 and "no route 198.51.100.0/24" in r.stderr
    finally:
        s = fw.stop()
    accounted(s)


def test_drained_member_keeps_its_flows_until_they_age_out(tmp_path, sockdir):
    """(b) with real aging: flows that stop sending (a pcap read once) stay pinned to the
    drained member until the idle timeout removes them; then `remove` re-hashes nothing."""
    frames = [Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
              IP(src=f"100.64.9.{i + 1}", dst=f"10.{i}.0.1") / UDP(sport=4000 + i, dport=53)
              for i in range(120)]
    pcap = write_pcap(tmp_path / "once.pcap", frames)
    doc = config_doc(pcap)
    doc["ports"][0]["devargs"] = f"net_pcap0,rx_pcap={pcap}"        # read once
    doc["flow_table"] = {"entries": 65536, "idle_timeout": 1.5}
    fw = Running(tmp_path, sockdir, doc)
    try:
        wait_for(lambda: len(fw.flows()) == 120, 30, "every flow in the table")
        pinned = {k for k, f in fw.flows().items() if f["member"] == 1}
        assert pinned
        assert fw.cli("group", "spines", "weight", "s2", "0").returncode == 0
        assert {k for k, f in fw.flows().items() if f["member"] == 1} == pinned
        wait_for(lambda: fw.ask({"cmd": "stats"})["flows"]["flow_aged"] == 120, 30,
                 "the idle flows to age out")
        assert fw.flows() == {}
        assert fw.cli("group", "spines", "remove", "s2").returncode == 0
        stats = fw.ask({"cmd": "stats"})
        assert stats["flows"]["flow_rehashed"] == 0
        assert stats["groups"]["spines"]["members"][1]["packets"] == len(pinned)
    finally:
        s = fw.stop()
    accounted(s)
    assert s["rx"] == 120 and s["flows"]["flow_aged"] == 120
