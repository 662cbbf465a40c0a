"""End to end through real Linux hosts: two network namespaces, each behind a veth pair
whose root-namespace end is a `net_af_packet` port of `dataplane run` (one l3 VRF).

    ns1 10.1.0.2/24 ── veth ── [a] dataplane [b] ── veth ── ns2 10.2.0.2/24
        default via 10.1.0.1                             default via 10.2.0.1

The kernels' own stacks are the oracle: ping both ways (ICMP echo over a raw socket, TTL
decremented once), then one TCP connection from ns1
to ns2 that uploads 2 MiB of random bytes (the server keeps them and answers their
SHA-256) and downloads 1 MiB (kept by the client); both files must equal what was sent,
byte for byte. Afterwards the forwarder's final counters (`run --json`) must account for
every frame the namespaces' veths sent and received, with no drop.

Two variants:
- static: the namespaces have permanent neighbour entries for their gateway (the
  forwarder's port MAC) and the next hops have `mac:`, what the forwarder always did;
- resolved (docs/virtual-networks.md §5, §6): no static entry anywhere: the next hops have
  only `ip`, the VRF has `gateway: {ip: [10.1.0.1/24, 10.2.0.1/24]}`. The forwarder ARPs
  for its next hops at start and the kernels answer (seen as the gateway appearing in the
  namespaces' neighbour tables); those entries are then flushed, so the kernels must ARP
  for their gateway themselves and the forwarder answer. The namespaces' neighbour tables
  must end with the forwarder's port MAC for the gateway, learned (not permanent), and
  each port must count ARP requests sent, requests answered and replies consumed.

Traps this runs into unless handled (netns_util.py): the namespace veths must have TX
checksum offload off, else TCP leaves them with a partial checksum, the forwarder forwards
it as it is and the receiving kernel drops it (the SYN is forwarded, connect() times
out); IPv6 is disabled on all four veth ends so that no ND/MLD frame disturbs the counts.

Runs as root (namespaces, veths); about 5 s per variant.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dpdk_util import ROOT, child_env, cli_argv, write_config
from netns_util import CLIENT, PING, SERVER, Topology, in_ns, python_in_ns, sh

PORT_MACS = ("02:d0:00:00:00:01", "02:d0:00:00:00:02")   # the forwarder's ports a, b
PORTS = ("a", "b")
UPLOAD = 2 << 20              # bytes ns1 → ns2
DOWNLOAD = 1 << 20            # bytes ns2 → ns1
TCP_PORT = 5201
START_TIMEOUT = 30            # forwarder start (EAL with --no-huge, mlock) on shared cores
STOP_TIMEOUT = 20
TRAFFIC_TIMEOUT = 20


# ---------------------------------------------------------------- the topology

@pytest.fixture
def topology(request):
    """Names for two namespaces and veth pairs, unique to this process and test; the test
    builds it (create) and it is deleted afterwards, whatever happened."""
    tag = f"{os.getpid() % 100000:05d}{request.node.callspec.params['variant'][0]}"
    topo = Topology.plan(tag)
    try:
        yield topo
    finally:
        errors = topo.destroy()
        assert not errors, errors


def config_doc(topo: Topology, variant: str, tag: str) -> dict:
    ports = [{"name": name, "devargs": f"net_af_packet{i},iface={s.root_dev},qpairs=1",
              "mac": mac, "vrf": "lan"}
             for i, (name, mac, s) in enumerate(zip(PORTS, PORT_MACS, topo.sides))]
    if variant == "static":
        nexthops = {f"h{i + 1}": {"port": p, "mac": s.mac}
                    for i, (p, s) in enumerate(zip(PORTS, topo.sides))}
        vrf = {}
    else:
        nexthops = {f"h{i + 1}": {"port": p, "ip": s.ip}
                    for i, (p, s) in enumerate(zip(PORTS, topo.sides))}
        vrf = {"gateway": {"ip": [f"{s.gateway}/24" for s in topo.sides]}}
    vrf["routes"] = [{"prefix": "10.1.0.0/24", "via": "h1"},
                     {"prefix": "10.2.0.0/24", "via": "h2"}]
    return {"node": {"name": f"netns{tag}"},
            "eal": {"lcores": "0-1", "memory_mb": 256, "mbufs": 8192},
            "ports": ports,
            "vrfs": {"lan": vrf},
            "nexthops": nexthops}


# ---------------------------------------------------------------- the forwarder

class Forwarder:
    """`dataplane run CONFIG --json FILE` in a child process, stopped by SIGINT."""

    def __init__(self, tmp_path: Path, doc: dict):
        self.cfg = write_config(tmp_path / "netns.yaml", doc)
        self.json = tmp_path / "final.json"
        self.stderr_path = tmp_path / "stderr"
        self.proc = None
        r = subprocess.run(cli_argv("check", self.cfg), cwd=ROOT, env=child_env(),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (f"dataplane check refused the config (status "
                                   f"{r.returncode}):\n{r.stdout}{r.stderr}\nconfig:\n"
                                   f"{self.cfg.read_text()}")
        with open(self.stderr_path, "w") as err:
            # --duration bounds it should nothing stop it; normally SIGINT does
            self.proc = subprocess.Popen(
                cli_argv("run", self.cfg, "--json", self.json, "--socket",
                         tmp_path / "ctl.sock", "--duration", 120),
                cwd=ROOT, env=child_env(), stdout=subprocess.PIPE, stderr=err, text=True)
        end = time.monotonic() + START_TIMEOUT
        while "control socket:" not in self.stderr():    # printed once forwarding
            if self.proc.poll() is not None:
                raise AssertionError(f"dataplane run exited with status "
                                     f"{self.proc.returncode} before forwarding\n"
                                     f"{self.output()}")
            if time.monotonic() > end:
                raise AssertionError(f"dataplane run not forwarding after {START_TIMEOUT} "
                                     f"s\n{self.output()}")
            time.sleep(0.05)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        return f"--- forwarder stderr ---\n{self.stderr()}"

    def stop(self) -> dict:
        """SIGINT, wait, return the final stats."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"dataplane run did not stop within {STOP_TIMEOUT} s of "
                                 f"SIGINT\n{self.output()}") from None
        assert self.proc.returncode == 0, (f"dataplane run exited with status "
                                           f"{self.proc.returncode}\nstdout:\n{out}\n"
                                           f"{self.output()}")
        return json.loads(self.json.read_text())

    def kill(self) -> None:
        """Cleanup after a failure: SIGTERM, then SIGKILL, by pid, never raising."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


# ---------------------------------------------------------------- traffic

def ping(topo: Topology, src: int, dst: int, fwd: Forwarder, count: int = 5) -> None:
    s, d = topo.sides[src], topo.sides[dst]
    r = sh(*python_in_ns(s.ns, PING, d.ip, count, 2), timeout=count * 2.5 + 5, check=False)
    assert r.returncode == 0 and f" {count} received" in r.stdout, (
        f"ping {s.ns} → {d.ip}: status {r.returncode}\n{r.stdout}{r.stderr}\n"
        f"{neighbour_text(topo)}{fwd.output()}")
    # routed by the forwarder, one hop: the replies' TTL (64 from Linux) decremented once
    ttls = {w for w in r.stdout.split() if w.startswith("ttl=")}
    assert ttls == {"ttl=63"}, f"ping {s.ns} → {d.ip}: reply TTLs {ttls}\n{r.stdout}"


def tcp_transfer(topo: Topology, tmp_path: Path, fwd: Forwarder) -> None:
    """ns1 uploads UPLOAD random bytes to a server in ns2 and downloads DOWNLOAD; both
    must arrive byte for byte."""
    up, down = os.urandom(UPLOAD), os.urandom(DOWNLOAD)
    files = {n: tmp_path / n for n in ("up.bin", "down.bin", "got_up.bin", "got_down.bin",
                                       "digest.bin")}
    files["up.bin"].write_bytes(up)
    files["down.bin"].write_bytes(down)
    s1, s2 = topo.sides
    server = subprocess.Popen(
        python_in_ns(s2.ns, SERVER, s2.ip, TCP_PORT, files["got_up.bin"], files["down.bin"],
                     TRAFFIC_TIMEOUT),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline()       # "listening" (or EOF if it failed)
        assert line.strip() == "listening", (f"server in {s2.ns} did not start: {line}"
                                             f"{server.stderr.read()}")
        client = sh(*python_in_ns(s1.ns, CLIENT, s2.ip, TCP_PORT, files["up.bin"],
                                  files["got_down.bin"], files["digest.bin"],
                                  TRAFFIC_TIMEOUT),
                    timeout=TRAFFIC_TIMEOUT + 5, check=False)
        try:
            s_out, s_err = server.communicate(timeout=TRAFFIC_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            s_out, s_err = "(still running)", ""
        assert client.returncode == 0 and server.returncode == 0, (
            f"TCP transfer {s1.ns} → {s2.ip}:{TCP_PORT} failed\nclient status "
            f"{client.returncode}: {client.stdout}{client.stderr}\nserver status "
            f"{server.returncode}: {s_out}{s_err}\n{neighbour_text(topo)}{fwd.output()}")
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    got_up = files["got_up.bin"].read_bytes()
    got_down = files["got_down.bin"].read_bytes()
    assert len(got_up) == UPLOAD and got_up == up, \
        f"upload corrupted: {len(got_up)} bytes received, first difference at " \
        f"{first_difference(up, got_up)}"
    assert files["digest.bin"].read_bytes() == hashlib.sha256(up).digest()
    assert len(got_down) == DOWNLOAD and got_down == down, \
        f"download corrupted: {len(got_down)} bytes received, first difference at " \
        f"{first_difference(down, got_down)}"


def first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def link_counters(topo: Topology) -> list[dict]:
    """Each namespace veth end's kernel counters (`ip -s -j link`)."""
    out = []
    for s in topo.sides:
        info = json.loads(in_ns(s.ns, "ip", "-s", "-j", "link", "show", "dev", s.dev).stdout)
        out.append({"rx": info[0]["stats64"]["rx"]["packets"],
                    "tx": info[0]["stats64"]["tx"]["packets"]})
    return out


def neighbour_text(topo: Topology) -> str:
    text = ""
    for s in topo.sides:
        r = in_ns(s.ns, "ip", "neigh", "show", "dev", s.dev, check=False)
        text += f"--- ip neigh in {s.ns} ---\n{r.stdout}{r.stderr}"
    return text


def resolve_by_kernel(topo: Topology, fwd: Forwarder, timeout: float = 5) -> None:
    """The forwarder's ARP requests for its next hops (sent at start, docs/virtual-networks.md
    §6) reach the namespaces, whose kernels answer and note the requester (10.x.0.1, the
    forwarder's port MAC) as a STALE neighbour. Wait for that, then flush the entries, so
    the kernels must resolve their gateway by their own ARP requests, which the forwarder
    answers (§5)."""
    end = time.monotonic() + timeout
    for i, s in enumerate(topo.sides):
        while not any(n.get("dst") == s.gateway for n in topo.neighbours(i)):
            assert time.monotonic() < end, (
                f"{s.ns}: no ARP request from the forwarder for {s.ip} (its next hop) within "
                f"{timeout} s of start\n{neighbour_text(topo)}{fwd.output()}")
            time.sleep(0.05)
    for s in topo.sides:
        in_ns(s.ns, "ip", "neigh", "flush", "dev", s.dev)


# ---------------------------------------------------------------- the test

@pytest.mark.parametrize("variant", ["static", "resolved"])
def test_tcp_between_namespaces(variant, topology, tmp_path):
    static = variant == "static"
    topology.create(static_neigh=dict(enumerate(PORT_MACS)) if static else None)
    before = link_counters(topology)
    fwd = Forwarder(tmp_path, config_doc(topology, variant,
                                         f"{os.getpid() % 100000}{variant[0]}"))
    try:
        if not static:
            resolve_by_kernel(topology, fwd)
        ping(topology, 0, 1, fwd)
        ping(topology, 1, 0, fwd, count=3)
        tcp_transfer(topology, tmp_path, fwd)

        # every namespace knows its gateway by the forwarder's port MAC
        for i, (s, mac) in enumerate(zip(topology.sides, PORT_MACS)):
            entry = [n for n in topology.neighbours(i) if n.get("dst") == s.gateway]
            assert entry and entry[0].get("lladdr") == mac, (
                f"{s.ns}: neighbour entry for its gateway {s.gateway} should be {mac}, "
                f"got {entry}\n{neighbour_text(topology)}{fwd.output()}")
            states = entry[0].get("state", [])
            if static:
                assert "PERMANENT" in states, entry
            else:
                assert not {"PERMANENT", "NOARP"} & set(states), \
                    f"{s.ns}: the gateway entry was not learned by ARP: {entry}"
                assert {"REACHABLE", "STALE", "DELAY", "PROBE"} & set(states), entry
        time.sleep(0.3)                  # the last ACKs of the connection's close
    except BaseException:
        fwd.kill()                       # the failure's message has its stderr already
        raise
    try:
        stats = fwd.stop()
    finally:
        fwd.kill()
    after = link_counters(topology)
    check_counters(stats, before, after, static, fwd)


def check_counters(s: dict, before: list[dict], after: list[dict], static: bool,
                   fwd: Forwarder) -> None:
    """The forwarder's final counters: no named drop, every frame accounted for, and the
    frames each namespace sent / received are exactly what its port received / sent."""
    ports = [s["ports"][name] for name in PORTS]
    drops = {r: n for r, n in s["drops"].items() if n}
    context = f"final stats:\n{json.dumps({n: s['ports'][n] for n in PORTS}, indent=1)}\n" \
              f"{fwd.output()}"
    assert not drops, f"drops: {drops}\n{context}"
    vn = {k: sum(p.get(k, 0) for p in ports)
          for k in ("consumed", "arp_replied", "arp_sent", "flooded")}
    # docs/virtual-networks.md §7: rx = tx + drops + consumed (replies are in tx)
    assert s["rx"] == s["tx"] + sum(s["drops"].values()) + vn["consumed"], context
    assert s["mbufs_in_use_after"] == 0, context
    # at least the two transfers' segments went each way, and the pings
    assert ports[0]["rx"] >= UPLOAD // 1500 + 8 and ports[1]["tx"] >= UPLOAD // 1500 + 8, \
        context
    assert ports[1]["rx"] >= DOWNLOAD // 1500 + 8 and ports[0]["tx"] >= DOWNLOAD // 1500 + 8, \
        context
    for i, (p, b, a) in enumerate(zip(ports, before, after)):
        sent, received = a["tx"] - b["tx"], a["rx"] - b["rx"]
        d = p["dpdk"]
        assert d["opackets"] == p["tx"] + p.get("flooded", 0) + p.get("arp_sent", 0) + \
            p.get("mirror_tx", 0), f"port {PORTS[i]}: PMD opackets\n{context}"
        assert d["ierrors"] == 0 and d["oerrors"] == 0 and d["rx_nombuf"] == 0, context
        # what ns(i+1) sent reached port i (or the PMD counted it missed: af_packet ring
        # full), and what port i sent reached ns(i+1)
        assert sent == p["rx"] + d["imissed"], (
            f"ns{i + 1} sent {sent} frames, port {PORTS[i]} received {p['rx']} and "
            f"missed {d['imissed']}\n{context}")
        assert received == d["opackets"], (
            f"port {PORTS[i]} sent {d['opackets']} frames, ns{i + 1} received "
            f"{received}\n{context}")
    if static:
        assert vn == {"consumed": 0, "arp_replied": 0, "arp_sent": 0, "flooded": 0}, context
    else:
        for i, p in enumerate(ports):
            # the kernel asked for its gateway, the forwarder for its next hop
            assert p.get("arp_replied", 0) >= 1, f"port {PORTS[i]}: no ARP answered\n{context}"
            assert p.get("arp_sent", 0) >= 1, f"port {PORTS[i]}: no ARP request\n{context}"
            assert p.get("consumed", 0) >= 1, f"port {PORTS[i]}: no ARP reply taken\n{context}"
