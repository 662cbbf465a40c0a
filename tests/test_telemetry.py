"""DPDK telemetry (pyx/telemetry.pxi): a running `dataplane run` serves its counters as
/dataplane/stats, /dataplane/ports and /dataplane/groups on EAL's telemetry socket, and
Debian's own `dpdk-telemetry.py -f dp<pid>` (package dpdk) reads them. The traffic is a
--loop pcap whose frames die by TTL (a frame sent with TTL t is received t times), so it
ends within milliseconds and the counters then stand still (how far each frame gets
depends on the loopback rings' room, so the totals are read, not predicted): telemetry must reach exactly
the forwarder's final --json numbers and never exceed them on the way. The start-up line
"TELEMETRY: No legacy callbacks, legacy socket not created" is gone from the output.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from dataplane import _core
from dataplane.drops import DROP_REASONS
from dpdk_util import finish, no_traceback, port, port_mac, spawn, write_config, write_pcap
from helpers import make_config

NOISE = "No legacy callbacks"
PORTS = ["p0", "up-1"]             # '-' is no telemetry key character: the key is up_1
FLOWS = 24
TTL = 8
WORKERS_LCORES = "0@0,1@1,2@0"     # two workers: counters are summed over both


def telemetry_script() -> str:
    """dpdk-telemetry.py: on PATH, else wherever the dpdk package put it."""
    found = shutil.which("dpdk-telemetry.py")
    if found:
        return found
    try:
        files = subprocess.run(["dpkg", "-L", "dpdk"], capture_output=True, text=True,
                               timeout=30).stdout.split()
    except OSError:
        files = []
    for f in files:
        if f.endswith("/dpdk-telemetry.py") and os.access(f, os.X_OK):
            return f
    raise AssertionError("dpdk-telemetry.py not found (not on PATH, not in `dpkg -L dpdk`): "
                         "install Debian's dpdk package (make setup does)")


def telemetry(script: str, prefix: str, *cmds: str) -> dict:
    """Run the script against --file-prefix `prefix` with cmds on stdin: {cmd: reply}
    (a command with a parameter keys as 'cmd,param'); {} if it could not connect."""
    r = subprocess.run([script, "-f", prefix], input="\n".join(cmds) + "\n",
                       capture_output=True, text=True, timeout=30)
    lines = [x for x in r.stdout.splitlines() if x.startswith("{")]
    if r.returncode != 0 or len(lines) != len(cmds):
        return {}
    out = {}
    for cmd, line in zip(cmds, lines):
        reply = json.loads(line)
        assert list(reply) == [cmd.split(",")[0]], (cmd, reply)
        out[cmd] = reply[cmd.split(",")[0]]
    return out


def config(tmp_path: Path) -> Path:
    doc = {"node": {"name": "telemetry"},
           "eal": {"lcores": WORKERS_LCORES, "memory_mb": 256, "mbufs": 4096},
           "flow_table": {"entries": 4096},
           "ports": [port(name, f"net_null{i}", i) for i, name in enumerate(PORTS)],
           "nexthops": {"nh1": {"port": "p0", "mac": "02:00:00:00:01:01"},
                        "nh2": {"port": "up-1", "mac": "02:00:00:00:01:02"},
                        "nh3": {"port": "up-1", "mac": "02:00:00:00:01:03"}},
           "groups": {"spine-g": {"members": [{"nexthop": n} for n in ("nh1", "nh2", "nh3")]}},
           "vrfs": {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "spine-g"}]}}}
    return write_config(tmp_path / "tel.yaml", doc)


def frames() -> list[bytes]:
    out = []
    for i in range(FLOWS):
        l4 = TCP(sport=3000 + i, dport=80, flags="A") if i % 2 else UDP(sport=3000 + i)
        out.append(bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                         IP(src=f"100.64.0.{i + 1}", dst=f"10.1.{i}.1", ttl=TTL) / l4))
    out.append(bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                     IP(src="100.64.0.1", dst="198.51.100.1") / UDP()))    # no route
    return out


def test_keys_are_telemetry_names():
    assert _core.telemetry_keys(["p0", "up-1", "up_1", "x.y", "a" * 90]) == \
        ["p0", "up_1", "up_1_2", "x_y", "a" * 56]


def test_dpdk_telemetry_reads_a_running_forwarder(tmp_path):
    script = telemetry_script()
    js = tmp_path / "final.json"
    pcap = write_pcap(tmp_path / "in.pcap", frames())
    proc = spawn("run", config(tmp_path), "--loop", pcap, "--duration", 8, "--json", js,
                 "--socket", tmp_path / "ctl.sock", stderr_file=tmp_path / "stderr.txt")
    prefix = f"dp{proc.pid}"       # runtime.eal_args: --file-prefix dp<pid>
    cmds = ("/dataplane/stats", "/dataplane/ports", "/dataplane/ports,p0",
            "/dataplane/ports,up-1", "/dataplane/groups", "/dataplane/groups,spine-g",
            "/dataplane/ports,nope")
    got, seen = {}, []
    try:
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline and proc.poll() is None:
            got = telemetry(script, prefix, *cmds)
            if got.get("/dataplane/stats"):          # null until the core is attached
                seen.append(got["/dataplane/stats"]["rx"])
                # the traffic has died out (how far a frame gets before its TTL runs out
                # depends on the rings' room, so the total is not fixed): counters still
                if len(seen) >= 3 and seen[-1] == seen[-3] > 0:
                    break
            time.sleep(0.1)
    finally:
        code, out, _ = finish(proc)
    err = (tmp_path / "stderr.txt").read_text()
    no_traceback(err)
    assert code == 0, err
    assert NOISE not in out and NOISE not in err, out + err
    assert got.get("/dataplane/stats"), \
        f"no telemetry reply from {script} -f {prefix} (rx seen: {seen})\nstderr:\n{err}"
    final = json.loads(js.read_text())

    # monotonic, never beyond the final count, and still at it once the traffic is over
    assert seen == sorted(seen) and seen[-1] == seen[-3] == final["rx"] > 0, \
        (seen, final["rx"])

    st = got["/dataplane/stats"]
    assert st["node"] == "telemetry" and st["workers"] == 2 and st["ports"] == 2
    assert st["groups"] == 1
    assert st["rx"] == final["rx"] and st["tx"] == final["tx"] > 0
    assert st["drops"] == final["drops"]           # every reason, by name
    assert list(st["drops"]) == list(DROP_REASONS)
    assert st["drops"]["ttl_expired"] > 0 and st["drops"]["no_route"] == len(PORTS)
    assert st["dropped"] == sum(final["drops"].values())
    assert st["flows"] == final["flows"]           # created, active, aged, deleted, ...
    assert st["flows"]["flow_created"] == FLOWS   # one entry for a flow on both ports

    ports = got["/dataplane/ports"]
    assert list(ports) == ["p0", "up_1"]
    for key, name in zip(ports, PORTS):
        p, f = ports[key], final["ports"][name]
        assert p["name"] == name
        assert (p["rx"], p["tx"], p["drops"]) == (f["rx"], f["tx"], f["drops"])
        assert p["dropped"] == sum(f["drops"].values())
        # the virtual-network counters, apart from the drops (docs/virtual-networks.md §7)
        from dataplane.limits import VNET_COUNTERS
        assert {k: p[k] for k in VNET_COUNTERS} == {k: f[k] for k in VNET_COUNTERS}
        assert p["rx"] > 0 and p["tx"] > 0
    assert sum(p["rx"] for p in ports.values()) == st["rx"]
    assert got["/dataplane/ports,p0"] == {"p0": ports["p0"]}
    assert got["/dataplane/ports,up-1"] == {"up_1": ports["up_1"]}
    assert got["/dataplane/ports,nope"] is None

    groups = got["/dataplane/groups"]
    g, f = groups["spine_g"], final["groups"]["spine-g"]
    assert g["name"] == "spine-g"
    assert g["members"] == [m["packets"] for m in f["members"]]
    # every forward goes via the group; a member counts it before TX may refuse it
    assert g["packets"] == f["packets"] == st["tx"] + st["drops"]["tx_full"]
    assert all(n > 0 for n in g["members"]), g
    assert got["/dataplane/groups,spine-g"] == groups


# ---------------------------------------------------------------- in this process

def runtime_dir(prefix: str) -> Path:
    """EAL's runtime directory for a file prefix (dpdk-telemetry.py's own rule)."""
    base = os.environ.get("RUNTIME_DIRECTORY") or (
        "/var/run" if os.getuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    return Path(base) / "dpdk" / prefix


class Client:
    """A telemetry v2 socket client (what dpdk-telemetry.py does, without a process)."""

    def __init__(self, path: Path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.s.connect(str(path))
        self.max_len = json.loads(self.s.recv(1024))["max_output_len"]

    def __call__(self, cmd: str):
        self.s.send(cmd.encode())
        return json.loads(self.s.recv(self.max_len))[cmd.split(",")[0]]

    def close(self):
        self.s.close()


def test_attach_detach_in_process(eal):
    """Counters the core counts are what telemetry answers; detached, every command
    answers null, also while clients hammer it across attach/detach cycles (the mutex:
    no callback reads a core after telemetry_detach() returned), and the core can be
    freed right after."""
    from dataplane.control import Control
    cfg = make_config()
    core = Control.open(cfg).core
    sock = runtime_dir(f"dpt{os.getpid()}") / "dpdk_telemetry.v2"
    assert sock.exists(), f"no telemetry socket {sock}: EAL started without telemetry?"
    names, groups = [p.name for p in cfg.ports], [g.name for g in cfg.groups]
    refs = sys.getrefcount(core)
    c = Client(sock)
    try:
        _core.telemetry_attach(core, names, groups, node=cfg.node.name)
        assert sys.getrefcount(core) == refs + 1        # attached: kept alive
        assert _core.telemetry_attached()
        frame = bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                      IP(src="100.64.0.1", dst="10.2.0.9", ttl=9) / UDP(sport=7, dport=9))
        out = core.process(0, [frame] * 5 + [frame[:20]])
        assert len(out) == 5
        st = c("/dataplane/stats")
        assert (st["rx"], st["tx"], st["node"]) == (6, 5, cfg.node.name)
        assert st["drops"]["truncated"] == 1 and st["dropped"] == 1
        assert st["flows"] == core.flow_counters()
        ports = c("/dataplane/ports")
        assert list(ports) == names
        for name, row in zip(names, core.counters()):
            assert [ports[name]["rx"], ports[name]["tx"]] == row[:2]
        g = c(f"/dataplane/groups,{groups[0]}")[groups[0]]
        assert g["members"] == core.group_counters(0) and g["packets"] == 5

        stop, replies, errors = threading.Event(), [], []

        def hammer():
            try:
                h = Client(sock)
                while not stop.is_set():
                    for cmd in ("/dataplane/stats", "/dataplane/ports", "/dataplane/groups"):
                        replies.append(h(cmd) is None)
                h.close()
            except Exception as e:      # noqa: BLE001  (reported below)
                errors.append(e)

        threads = [threading.Thread(target=hammer) for _ in range(3)]
        for t in threads:
            t.start()
        end, cycles = time.monotonic() + 0.5, 0
        while time.monotonic() < end or not (any(replies) and not all(replies)):
            _core.telemetry_detach()
            time.sleep(0.0002)          # the GIL: let the clients ask in both states
            _core.telemetry_attach(core, names, groups)
            time.sleep(0.0002)
            cycles += 1
            assert time.monotonic() < end + 10, "clients never saw both states"
        _core.telemetry_detach()
        time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(10)
        assert not errors, errors
        assert cycles > 100 and len(replies) > 100, (cycles, len(replies))
        assert not _core.telemetry_attached()
        assert c("/dataplane/stats") is None and c("/dataplane/ports,p0") is None
    finally:
        _core.telemetry_detach()
        c.close()
    assert sys.getrefcount(core) == refs                # detached: let go
    core.close()                       # nothing reads it any more
