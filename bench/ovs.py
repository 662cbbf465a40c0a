#!/usr/bin/env python3
"""Open vSwitch with the DPDK datapath as a peer in the throughput bench (issue #16).

A private OVS-DPDK (its own ovsdb-server, ovs-vswitchd, database, sockets and logs in a
temporary directory; nothing under /var/run/openvswitch or /etc/openvswitch is used)
forwards the bench's source: a net_pcap vdev replaying a 64-byte UDP pcap from memory
(`net_pcap0,rx_pcap=FILE,infinite_rx=1`, no tx file), as bench/throughput.py gives
testpmd and our forwarder. One PMD thread on one CPU (pmd-cpu-mask), the rate is read
from OVS's own port counters (`ovs-ofctl dump-ports`, live; `ovs-vsctl get Interface
... statistics` is refreshed only every 5 s) over a window after a warm-up.

Output (`output=`):
- "pcap" (default, as bench/throughput.py): the frames leave by the port they came in
  on; net_pcap without tx_pcap/tx_iface counts and drops them. OpenFlow never sends a
  frame back to its ingress port with output:N, so the action is `in_port`.
- "null": a second port `net_null1,no-rx=1` (a pure sink; without no-rx=1 net_null's
  RX returns zeroed frames that the PMD would poll and process).

Scenarios (OpenFlow rules, flows_for()); every one does what our l3 path does to a
routed packet: Ethernet source := the port's MAC, destination := the next hop's MAC,
IPv4 TTL - 1 with the checksum updated (dec_ttl), and matches the destination prefix
10.0.0.0/8 (our routes are an LPM; OVS matches a masked field). Neither OVS rule
checks what our l3 path checks before forwarding (docs/packet-path.md: truncated,
parse_error, martian, unsupported, ttl_expired; OVS drops a TTL <= 1 at dec_ttl, or
sends it to a controller if one is connected):
- single: one rule, `ip,in_port=IN,nw_dst=10.0.0.0/8 actions=mod_dl_src,mod_dl_dst,
  dec_ttl,output` (our `l3`).
- select: a select group, selection_method=hash over fields(ip_src,ip_dst,nw_proto,
  udp_src,udp_dst), 4 equal buckets, each setting its own eth_dst then output (our
  `flows-64` group of 4; `ecmp` weights 1,1,2,0 instead). Differences: OVS's `hash`
  method picks the bucket once per flow, in the slow path, and the hashed fields become
  exact-match in the datapath flow (one megaflow per 5-tuple, then EMC hits), whereas
  we hash every packet (packet mode) or look the flow up in our flow table (flow mode).
  `tp_src`/`tp_dst` in fields() are TCP ports: for UDP they hash nothing, hence
  udp_src/udp_dst. With many flows this is upcall-bound until the datapath holds one
  megaflow per flow (settle(); 100 k flows: ~50 s). The extra scenario
  `select_dp_hash` is the same group with OVS's default dp_hash method (a per-packet
  datapath hash and a recirculation, ~18 datapath flows whatever the flow count).
- push_mpls: dec_ttl, then push_mpls:0x8847, set_field:16001->mpls_label, output (our
  `push-eli` without the ELI/EL pair: OVS cannot compute an entropy label, and pushes
  at most 3 labels). push_mpls copies the (decremented) IP TTL into the label, as our
  uniform model does; its TC is the low 3 bits of the DSCP, ours the IP precedence
  (both 0 for the bench's frames).

Memory (`memory=`), to compare on the same kind of memory as the other sides:
- "no-huge": dpdk-extra `--no-huge --legacy-mem -m MB --no-pci --file-prefix ovs<pid>
  --no-shconf`. --legacy-mem is required: OVS 3.1 appends --in-memory unless it sees
  --in-memory or --legacy-mem, and EAL refuses --in-memory with --no-huge ("Option
  --legacy-mem is not compatible with --in-memory").
- "hugepages": dpdk-extra `--no-pci --file-prefix ovs<pid> --no-shconf`,
  dpdk-socket-mem=MB and dpdk-socket-limit=MB; OVS adds --in-memory itself. Needs
  hugetlbfs mounted and MB of free hugepages; ensure_hugepages() reserves them as root.
Threads: OVS adds `-l 0` (its main lcore on the first CPU of its affinity); the PMD
thread runs on CPU `pmd_cpu` (pmd-cpu-mask, default CPU 1, as the other sides' "-l 0-1");
n-handler-threads and n-revalidator-threads are 1. The bridge (datapath_type=netdev,
fail_mode=secure so no NORMAL rule floods the replay to its LOCAL port, a kernel tap
named dpb<pid>) is driven with ovs-ofctl -O OpenFlow15 on unix:<dir>/dpb<pid>.mgmt.
Mempools (pool_mode()): net_pcap infinite_rx holds the whole pcap in mbufs of the RX
queue's pool, and OVS sizes its pools itself. Up to 18464 packets (22560 - a margin):
other_config:per-port-memory=true, 22560 mbufs per port (the default shared pool asks
for 262144 mbufs, ~760 MB, and does not fit -m 512: "Failed to create mempool ... with a
request of 262144 mbufs", the port is not added). Up to 258048 packets: the shared pool,
which needs memory_mb >= 1024. More (flows-1m): OvsError, OVS cannot hold the pcap.

Installation (ensure_installed(); nothing is installed at import):
    apt-get install openvswitch-switch-dpdk
    update-alternatives --set ovs-vswitchd /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk
The non-DPDK ovs-vswitchd has the higher alternatives priority, so the package alone
leaves /usr/sbin/ovs-vswitchd without DPDK; this module runs VSWITCHD_DPDK by its path
anyway. On a host with systemd, installing openvswitch-switch also starts the system OVS
service (idle, dpdk-init unset); in a container policy-rc.d usually prevents it.

Don't keep an instance running while another side is measured: its PMD thread polls a
CPU at 100 % all the time. run() starts OVS, measures, and stops it. stop() (also on any
error, Ctrl-C, and SIGTERM under __main__) kills both daemons and removes the directory;
the daemons are started under `setpriv --pdeathsig KILL`, so they also die when the
bench is SIGKILLed, and sweep_stale() removes such a bench's directories next time.

API (for bench/peers.py):
    ensure_installed(install: bool = True) -> str          # path of ovs-vswitchd-dpdk
    ensure_hugepages(mb: int = 512, pages: int = 512) -> None
    run(pcap=None, scenarios=("single", "select", "push_mpls"), seconds=5.0,
        warmup=1.0, memory="no-huge", memory_mb=512, output="pcap", pmd_cpu=1,
        interval=0.5, install=True, settle_max=120.0) -> dict[str, dict]
                                                            # {scenario: result}
    mpps(pcap, scenario, seconds=5.0, memory="no-huge", **kw) -> float
    class OvsDpdk(pcap, memory, memory_mb, output, pmd_cpu)  # context manager:
        .start(timeout=60), .set_scenario(name),
        .measure(seconds, warmup, interval, settle_max), .settle(settle_max),
        .port_stats(), .pmd_stats(), .stop()
    pcap_packets(path) -> int; pool_mode(packets, memory_mb) -> bool (per-port)
    OvsError: every failure; str(e) is one line ("why"), for "OVS: skipped (why)".

A result (measure()): settle_s and settled (the warm-up beyond `warmup`: see settle()),
pcap_packets, mempool ("per-port" or "shared"), mpps (the output port's TX rate, median of the `interval`
samples), tx_mpps_mean, rx_mpps (the input port's RX) and rx_mpps_mean, drop counters
over the window, pmd (dpif-netdev/pmd-stats-show over the window: TSC cycles per packet,
which count time the thread was preempted; EMC / SMC / megaflow hits, upcalls),
datapath_flows, buckets (select: packets per bucket), and for a shared machine: pmd_cpu
(CPUs the PMD thread got over the window, 1.0 = a CPU to itself), mpps_per_pmd_cpu
(forwarded packets per PMD CPU-second) and foreign_cpu (CPUs the rest of the machine
used: busy time minus our daemons', as bench/throughput.py's foreign_cpu).

    python bench/ovs.py [--seconds 3] [--memory hugepages|no-huge|both]
                        [--scenario single,select,push_mpls[,select_dp_hash]]
                        [--output pcap|null] [--memory-mb 512] [--pcap FILE] [--json FILE]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

APT_PACKAGES = ("openvswitch-switch-dpdk",)   # pulls openvswitch-switch, -common, dpdk
VSWITCHD_DPDK = "/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk"
ALTERNATIVES_CMD = ("update-alternatives", "--set", "ovs-vswitchd", VSWITCHD_DPDK)
TOOLS = ("ovsdb-tool", "ovsdb-server", "ovs-vsctl", "ovs-ofctl", "ovs-appctl")
PKGDATADIR = "/usr/share/openvswitch"
SCHEMA = f"{PKGDATADIR}/vswitch.ovsschema"

SCENARIOS = ("single", "select", "push_mpls")
EXTRA_SCENARIOS = ("select_dp_hash",)
MEMORY_MODES = ("hugepages", "no-huge")
OUTPUTS = ("pcap", "null")
OF = "OpenFlow15"                 # select groups' selection_method needs OpenFlow 1.5

# the bench's addresses (bench/throughput.py scenario_config): port p0's MAC, next hops
PORT_MAC = "02:00:00:00:00:01"
NEXTHOP_MACS = tuple(f"02:00:00:00:00:{0x10 + i:02x}" for i in range(4))
PREFIX = "10.0.0.0/8"
MPLS_LABEL = 16001                # push-eli's transport label
SELECT_FIELDS = "ip_src,ip_dst,nw_proto,udp_src,udp_dst"

# net_pcap infinite_rx keeps every packet of the pcap in an mbuf of the RX queue's pool.
# OVS 3.1 sizes its pools itself: per port, n_rxq * rxq_size + n_txq * txq_size + 32 +
# 16384 = 22560 mbufs here (1 RX queue, 2 TX queues, 2048 descriptors); shared (one pool
# per MTU), 262144 (MAX_NB_MBUF) for MTU 1500, about 2.9 kB each. What else holds mbufs
# (per-lcore caches, bursts in flight) is kept out of both by MBUF_MARGIN.
PER_PORT_MBUFS, SHARED_MBUFS, MBUF_MARGIN = 22560, 262144, 4096
SHARED_POOL_MB = 1024             # memory_mb the shared pool needs (measured: 512 fails)


class OvsError(RuntimeError):
    """OVS could not be installed, started or measured; str() is a one-line reason."""

    def __init__(self, reason: str):
        super().__init__(" ".join(str(reason).split()))


# ---------------------------------------------------------------- installation, memory

def ensure_installed(install: bool = True) -> str:
    """The path of the DPDK ovs-vswitchd. When the package is missing and we are root
    (and `install`), apt-get installs APT_PACKAGES; when /usr/sbin/ovs-vswitchd is not
    the DPDK build, update-alternatives selects it (as root). Raises OvsError."""
    def missing() -> list[str]:
        return ([t for t in TOOLS if not shutil.which(t)]
                + ([] if os.access(VSWITCHD_DPDK, os.X_OK) else [VSWITCHD_DPDK])
                + ([] if os.path.exists(SCHEMA) else [SCHEMA]))

    root = os.geteuid() == 0
    if missing():
        if not (install and root):
            raise OvsError(f"OVS-DPDK not installed ({', '.join(missing())} missing)"
                           + ("" if root else " and not root")
                           + f": apt-get install {' '.join(APT_PACKAGES)}")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-q", *APT_PACKAGES]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode:                          # stale package lists: update once
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if r.returncode or missing():
            tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["?"]
            raise OvsError(f"apt-get install {' '.join(APT_PACKAGES)} failed: {tail[0]}")
    if root and os.path.realpath("/usr/sbin/ovs-vswitchd") != VSWITCHD_DPDK:
        subprocess.run(list(ALTERNATIVES_CMD), capture_output=True)
    return VSWITCHD_DPDK


def _meminfo() -> dict[str, int]:
    out = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = int(v.split()[0])
    return out


def hugetlbfs_mounted() -> bool:
    return any(line.split()[2] == "hugetlbfs"
               for line in Path("/proc/mounts").read_text().splitlines())


def ensure_hugepages(mb: int = 512, pages: int = 512) -> None:
    """At least `mb` MB of free default-size hugepages and a hugetlbfs mount. As root,
    raises vm.nr_hugepages (to at least `pages`, never lowers it) and mounts hugetlbfs
    on /dev/hugepages. Raises OvsError when that is not possible."""
    root = os.geteuid() == 0
    if not hugetlbfs_mounted():
        if not root:
            raise OvsError("hugetlbfs not mounted and not root "
                           "(mount -t hugetlbfs nodev /dev/hugepages)")
        os.makedirs("/dev/hugepages", exist_ok=True)
        r = subprocess.run(["mount", "-t", "hugetlbfs", "nodev", "/dev/hugepages"],
                           capture_output=True, text=True)
        if r.returncode:
            raise OvsError(f"mount hugetlbfs failed: {r.stderr.strip()}")
    m = _meminfo()
    size_kb = m.get("Hugepagesize", 2048)
    need = -(-mb * 1024 // size_kb)
    free, total = m.get("HugePages_Free", 0), m.get("HugePages_Total", 0)
    if free >= need:
        return
    if not root:
        raise OvsError(f"{free} free hugepages, {need} needed, and not root "
                       f"(echo {max(pages, total + need - free)} > /proc/sys/vm/nr_hugepages)")
    want = max(pages, total + need - free)
    Path("/proc/sys/vm/nr_hugepages").write_text(f"{want}\n")
    free = _meminfo().get("HugePages_Free", 0)
    if free < need:
        raise OvsError(f"only {free} free hugepages of {size_kb} kB after asking for "
                       f"{want} ({need} needed)")


# ---------------------------------------------------------------- the frames and the rules

def write_pcap(path: str, flows: int = 64) -> None:
    """bench/throughput.py make_pcap's frames (64-byte UDP, `flows` flows), written
    with struct when scapy is not importable (byte-identical)."""
    try:
        sys.path.insert(0, str(HERE))
        from throughput import make_pcap      # noqa: PLC0415 (scapy)
        make_pcap(path, flows)
        return
    except ImportError:
        pass
    finally:
        sys.path.remove(str(HERE))

    def csum(b: bytes) -> int:
        s = sum(struct.unpack(f"!{len(b) // 2}H", b))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        return ~s & 0xFFFF

    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(flows):
        src = bytes([192, 168, i // 256, i % 256])
        dst = bytes([10, i % 7, i % 13, i % 256])
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 46, 1, 0, 64, 17, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        ph = src + dst + struct.pack("!BBH", 0, 17, 26)
        udp = struct.pack("!HHHH", 1024 + i, 5000 + i % 17, 26, 0) + b"\0" * 18
        c = csum(ph + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        frame = (bytes.fromhex("020000000001020000000010") + b"\x08\x00" + ip + udp)
        out.append(struct.pack("<IIII", 0, 0, len(frame), len(frame)) + frame)
    Path(path).write_bytes(b"".join(out))


def pcap_packets(path: str) -> int:
    """Records in a classic pcap file (either byte order)."""
    data = Path(path).read_bytes()
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    n, off = 0, 24
    while off + 16 <= len(data):
        off += 16 + struct.unpack_from(order + "I", data, off + 8)[0]
        n += 1
    return n


def pool_mode(packets: int, memory_mb: int) -> bool:
    """True for per-port mempools (other_config:per-port-memory=true), False for the
    shared pool, for a pcap of `packets`; OvsError when neither holds it."""
    if packets + MBUF_MARGIN <= PER_PORT_MBUFS:
        return True
    if packets + MBUF_MARGIN > SHARED_MBUFS:
        raise OvsError(f"the pcap has {packets} packets: net_pcap infinite_rx keeps one "
                       f"mbuf per packet and OVS-DPDK's mempools hold at most "
                       f"{SHARED_MBUFS} mbufs")
    if memory_mb < SHARED_POOL_MB:
        raise OvsError(f"the pcap has {packets} packets, more than a per-port mempool "
                       f"({PER_PORT_MBUFS} mbufs) holds; OVS's shared pool of "
                       f"{SHARED_MBUFS} mbufs needs memory_mb >= {SHARED_POOL_MB}")
    return False


def flows_for(scenario: str, in_port: int = 1, out_port: int | None = None
              ) -> tuple[list[str], list[str]]:
    """(groups, flows) in ovs-ofctl syntax for a scenario. out_port None: back out of
    the ingress port (`in_port` action)."""
    out = "in_port" if out_port is None else f"output:{out_port}"
    l3 = f"mod_dl_src:{PORT_MAC},dec_ttl"
    match = f"ip,in_port={in_port},nw_dst={PREFIX}"
    if scenario == "single":
        return [], [f"priority=10,{match},actions={l3},mod_dl_dst:{NEXTHOP_MACS[0]},{out}"]
    if scenario == "push_mpls":
        return [], [f"priority=10,{match},actions={l3},mod_dl_dst:{NEXTHOP_MACS[0]},"
                    f"push_mpls:0x8847,set_field:{MPLS_LABEL}->mpls_label,{out}"]
    if scenario in ("select", "select_dp_hash"):
        method = ("selection_method=hash,fields(" + SELECT_FIELDS + ")"
                  if scenario == "select" else "selection_method=dp_hash")
        buckets = ",".join(f"bucket=bucket_id:{i},weight:1,"
                           f"actions=set_field:{mac}->eth_dst,{out}"
                           for i, mac in enumerate(NEXTHOP_MACS))
        return ([f"group_id=1,type=select,{method},{buckets}"],
                [f"priority=10,{match},actions={l3},group:1"])
    raise OvsError(f"unknown OVS scenario {scenario!r} "
                   f"(one of {', '.join(SCENARIOS + EXTRA_SCENARIOS)})")


# ---------------------------------------------------------------- the private OVS

def _die_with_parent() -> None:
    """Child side of Popen when setpriv is missing: PR_SET_PDEATHSIG SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


def _pdeathsig_cmd(cmd: tuple[str, ...]) -> tuple[list[str], object]:
    """(argv, preexec_fn) so that the daemon gets SIGKILL when the thread that started
    it dies: a killed bench leaves no PMD thread spinning. util-linux's setpriv sets it
    before exec; without setpriv a preexec_fn does (not fork-safe next to threads)."""
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--pdeathsig", "KILL", *cmd], None
    return list(cmd), _die_with_parent


HZ = os.sysconf("SC_CLK_TCK")


def sweep_stale() -> None:
    """Remove what a bench killed by SIGKILL left behind (its daemons died with it): the
    directories this module names after its pid, /tmp/ovsbench<pid>_*,
    /tmp/ovspcap<pid>_* and EAL's /var/run/dpdk/ovs<pid>, when that pid is gone."""
    tmp = Path(tempfile.gettempdir())
    for d in [*tmp.glob("ovsbench*_*"), *tmp.glob("ovspcap*_*"),
              *Path("/var/run/dpdk").glob("ovs*")]:
        m = re.fullmatch(r"(?:ovsbench|ovspcap)(\d+)_\w+|ovs(\d+)", d.name)
        if m and d.is_dir() and not Path("/proc", m.group(1) or m.group(2)).exists():
            shutil.rmtree(d, ignore_errors=True)


def _task_cpu(stat: str) -> float:
    """utime + stime of a /proc/.../stat, in seconds (0 when gone)."""
    try:
        f = Path(stat).read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(f[11]) + int(f[12])) / HZ


PORT_RE = re.compile(
    r"port\s+(\S+):\s+rx pkts=(\d+|\?), bytes=\S+ drop=(\d+|\?), errs=(\d+|\?)"
    r".*?\n\s+tx pkts=(\d+|\?), bytes=\S+ drop=(\d+|\?), errs=(\d+|\?)")


class OvsDpdk:
    """One private OVS-DPDK: ovsdb-server and ovs-vswitchd with everything under a
    temporary directory, a netdev bridge with the net_pcap input port (and a net_null
    output port with output="null"). Use as a context manager; stop() kills both
    daemons and removes the directory whatever happened."""

    IN, OUT = 1, 2                # OpenFlow port numbers (ofport_request)

    def __init__(self, pcap: str, memory: str = "no-huge", memory_mb: int = 512,
                 output: str = "pcap", pmd_cpu: int = 1):
        if memory not in MEMORY_MODES:
            raise OvsError(f"memory must be one of {MEMORY_MODES}, got {memory!r}")
        if output not in OUTPUTS:
            raise OvsError(f"output must be one of {OUTPUTS}, got {output!r}")
        self.pcap, self.memory, self.memory_mb = os.path.abspath(pcap), memory, memory_mb
        self.output, self.pmd_cpu = output, pmd_cpu
        self.prefix = f"ovs{os.getpid()}"
        self.bridge = f"dpb{os.getpid()}"[:15]      # also a kernel tap (LOCAL port) name
        self.dir: str | None = None
        self.procs: list[subprocess.Popen] = []
        self.scenario: str | None = None
        self.vswitchd = VSWITCHD_DPDK
        self.vswitchd_proc: subprocess.Popen | None = None
        self.packets, self.per_port = 0, True

    # -- plumbing
    @property
    def env(self) -> dict:
        return dict(os.environ, OVS_RUNDIR=self.dir, OVS_DBDIR=self.dir,
                    OVS_LOGDIR=self.dir, OVS_SYSCONFDIR=self.dir,
                    OVS_PKGDATADIR=PKGDATADIR)

    def _run(self, *cmd: str, timeout: float = 30, input: str | None = None) -> str:
        try:
            r = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                               timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            raise OvsError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} timed out "
                           f"after {timeout:g} s{self._log_reason()}") from None
        if r.returncode:
            msg = (r.stderr.strip() or r.stdout.strip()).splitlines()
            verb = next((x for x in cmd[1:] if not x.startswith("-") and "/" not in x
                         and x != OF), "")
            raise OvsError(f"{cmd[0]} {verb}: {msg[0] if msg else r.returncode}"
                           f"{self._log_reason()}")
        return r.stdout

    def vsctl(self, *args: str, timeout: float = 30) -> str:
        return self._run("ovs-vsctl", f"--db=unix:{self.dir}/db.sock",
                         f"--timeout={int(timeout)}", *args, timeout=timeout + 5)

    def ofctl(self, *args: str, input: str | None = None) -> str:
        return self._run("ovs-ofctl", "-O", OF, args[0],
                         f"unix:{self.dir}/{self.bridge}.mgmt", *args[1:], input=input)

    def appctl(self, *args: str) -> str:
        return self._run("ovs-appctl", "-t", f"{self.dir}/ovs-vswitchd.ctl", *args)

    def log(self, name: str = "ovs-vswitchd") -> str:
        try:
            return Path(self.dir, f"{name}.log").read_text(errors="replace")
        except (OSError, TypeError):
            return ""

    def _log_reason(self) -> str:
        """'; ovs-vswitchd: <first ERR/EMER message of its log> ... <last>' (the
        first is usually the cause, e.g. a mempool or EAL error; the last what failed),
        plus getopt's complaint from its stderr (EAL prints "unrecognized option"
        there, not in the log); '' when there is none."""
        errs: list[str] = []
        for line in self.log().splitlines():
            if "|EMER|" in line or "|ERR|" in line:
                msg = line.split("|", 4)[-1].strip()
                if msg not in errs:
                    errs.append(msg)
        try:
            out = Path(self.dir, "ovs-vswitchd.out").read_text(errors="replace")
        except (OSError, TypeError):
            out = ""
        errs += [x.strip() for x in out.splitlines()
                 if re.search(r"unrecognized option|invalid option|requires an argument", x)]
        if not errs:
            return ""
        return "; ovs-vswitchd: " + (errs[0] if len(errs) == 1 else
                                     f"{errs[0]} ... {errs[-1]}")

    def _spawn(self, name: str, *cmd: str) -> subprocess.Popen:
        out = open(Path(self.dir, f"{name}.out"), "wb")
        try:
            argv, pre = _pdeathsig_cmd(cmd)
            p = subprocess.Popen(argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, preexec_fn=pre)
        finally:
            out.close()
        self.procs.append(p)
        return p

    def _wait(self, what: str, proc: subprocess.Popen, ready, timeout: float) -> None:
        end = time.monotonic() + timeout
        while not ready():
            if proc.poll() is not None:
                raise OvsError(f"{what} exited with status {proc.returncode}"
                               f"{self._log_reason() or self._out_reason(what)}")
            if time.monotonic() > end:
                raise OvsError(f"{what} not ready after {timeout:g} s{self._log_reason()}")
            time.sleep(0.05)

    def _out_reason(self, what: str) -> str:
        try:
            lines = Path(self.dir, f"{what}.out").read_text(errors="replace").split("\n")
        except OSError:
            return ""
        lines = [x for x in lines if x.strip()]
        return f"; {lines[-1].strip()}" if lines else ""

    # -- configuration
    def dpdk_config(self) -> dict[str, str]:
        """Open_vSwitch other_config for DPDK (see the module docstring)."""
        eal = ["--no-pci", "--file-prefix", self.prefix, "--no-shconf"]
        cfg = {"dpdk-init": "true", "pmd-cpu-mask": hex(1 << self.pmd_cpu),
               "per-port-memory": str(self.per_port).lower(), "n-handler-threads": "1",
               "n-revalidator-threads": "1"}
        if self.memory == "no-huge":
            eal = ["--no-huge", "--legacy-mem", "-m", str(self.memory_mb), *eal]
        else:
            cfg["dpdk-socket-mem"] = cfg["dpdk-socket-limit"] = str(self.memory_mb)
        cfg["dpdk-extra"] = " ".join(eal)
        return cfg

    def devargs(self) -> dict[str, str]:
        d = {"in0": f"net_pcap0,rx_pcap={self.pcap},infinite_rx=1"}
        if self.output == "null":
            d["out0"] = "net_null1,no-rx=1"
        return d

    @property
    def out_port(self) -> int:
        return self.OUT if self.output == "null" else self.IN

    # -- lifecycle
    def start(self, timeout: float = 60) -> "OvsDpdk":
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, timeout: float) -> None:
        self.vswitchd = ensure_installed(install=False)
        if not os.path.isfile(self.pcap):
            raise OvsError(f"no pcap {self.pcap}")
        self.packets = pcap_packets(self.pcap)
        self.per_port = pool_mode(self.packets, self.memory_mb)
        if self.memory == "hugepages":
            if not hugetlbfs_mounted():
                raise OvsError("hugetlbfs not mounted (ensure_hugepages())")
            m = _meminfo()
            free_mb = m.get("HugePages_Free", 0) * m.get("Hugepagesize", 2048) // 1024
            if free_mb < self.memory_mb:
                raise OvsError(f"{free_mb} MB of free hugepages, {self.memory_mb} needed "
                               "(ensure_hugepages())")
        sweep_stale()
        self.dir = tempfile.mkdtemp(prefix=f"ovsbench{os.getpid()}_")
        d = self.dir
        self._run("ovsdb-tool", "create", f"{d}/conf.db", SCHEMA)
        db = self._spawn("ovsdb-server", "ovsdb-server", f"{d}/conf.db",
                         f"--remote=punix:{d}/db.sock", f"--unixctl={d}/ovsdb-server.ctl",
                         f"--pidfile={d}/ovsdb-server.pid",
                         f"--log-file={d}/ovsdb-server.log", "-vconsole:off")
        self._wait("ovsdb-server", db, lambda: os.path.exists(f"{d}/db.sock"), 15)
        cfg = self.dpdk_config()
        self.vsctl("--no-wait", "init", "--", "set", "Open_vSwitch", ".",
                   *(f'other_config:{k}="{v}"' for k, v in cfg.items()))
        vs = self._spawn("ovs-vswitchd", self.vswitchd, f"unix:{d}/db.sock",
                         f"--unixctl={d}/ovs-vswitchd.ctl",
                         f"--pidfile={d}/ovs-vswitchd.pid",
                         f"--log-file={d}/ovs-vswitchd.log", "-vconsole:off")

        self.vswitchd_proc = vs
        self._wait("ovs-vswitchd", vs, lambda: "DPDK Enabled - initialized" in self.log(),
                   timeout)
        # fail_mode=secure: no NORMAL flow floods the replay to the bridge's tap port
        # before our rules are in
        args = ["--", "add-br", self.bridge, "--", "set", "Bridge", self.bridge,
                "datapath_type=netdev", "fail_mode=secure",
                "protocols=OpenFlow10,OpenFlow13,OpenFlow15",
                "other_config:disable-in-band=true"]
        for i, (name, dev) in enumerate(self.devargs().items()):
            args += ["--", "add-port", self.bridge, name, "--", "set", "Interface", name,
                     "type=dpdk", f'options:dpdk-devargs="{dev}"',
                     f"ofport_request={i + 1}"]
        try:
            self.vsctl(*args, timeout=timeout)
        except OvsError as e:
            raise OvsError(f"adding the bridge and ports failed: {e}") from None
        for name in self.devargs():
            err = self.vsctl("get", "Interface", name, "error").strip()
            if err not in ("[]", '""'):
                raise OvsError(f"port {name}: {err.strip(chr(34))}{self._log_reason()}")
        self._wait("ovs-vswitchd", vs, lambda: os.path.exists(
            f"{d}/{self.bridge}.mgmt"), 15)
        self.ofctl("del-flows")             # secure mode: no rule, every frame dropped

    def set_scenario(self, scenario: str) -> None:
        """Replace the rules (and groups) with the scenario's, and drop the datapath
        flows the previous rules made (revalidator/purge)."""
        groups, flows = flows_for(scenario, self.IN,
                                  self.OUT if self.output == "null" else None)
        self.ofctl("del-flows")
        self.ofctl("del-groups")
        for g in groups:
            self.ofctl("add-group", g)
        for f in flows:
            self.ofctl("add-flow", f)
        self.appctl("revalidator/purge")
        self.scenario = scenario

    def port_stats(self) -> dict[str, dict[str, int]]:
        """Live counters by OpenFlow port ("1", "2", "LOCAL"): rx, rx_drop, rx_errs, tx,
        tx_drop, tx_errs ('?' read as 0)."""
        out = self.ofctl("dump-ports")
        keys = ("rx", "rx_drop", "rx_errs", "tx", "tx_drop", "tx_errs")
        return {m.group(1): {k: int(v) if v.isdigit() else 0
                             for k, v in zip(keys, m.groups()[1:])}
                for m in PORT_RE.finditer(out)}

    def _sample(self) -> tuple[float, dict]:
        t0 = time.monotonic()
        s = self.port_stats()
        return (t0 + time.monotonic()) / 2, s

    def _cpu(self) -> tuple[float, float, float]:
        """(machine busy CPU-seconds, our daemons' CPU-seconds, the PMD thread's)."""
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:9]]
        busy = (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / HZ
        ours = sum(_task_cpu(f"/proc/{p.pid}/stat") for p in self.procs)
        pmd = 0.0
        vs = self.vswitchd_proc.pid
        for task in Path(f"/proc/{vs}/task").glob("*"):
            try:
                if (task / "comm").read_text().startswith("pmd"):
                    pmd += _task_cpu(str(task / "stat"))
            except OSError:
                pass
        return busy, ours, pmd

    def pmd_stats(self) -> dict[str, float]:
        """The PMD thread's section of dpif-netdev/pmd-stats-show (not the main
        thread's), keys with '_' for spaces: packets_received, emc_hits, ...,
        avg_processing_cycles_per_packet."""
        out = self.appctl("dpif-netdev/pmd-stats-show")
        res = {}
        for line in out.split("main thread:")[0].splitlines():
            k, sep, v = line.strip().partition(":")
            m = re.match(r"\s*([\d.]+)", v)
            if sep and m and not k.startswith("pmd thread"):
                res[k.strip().rstrip(".").replace(". ", "_").replace(" ", "_")] = \
                    float(m.group(1))
        return res

    def settle(self, settle_max: float = 120.0, step: float = 1.0,
               upcall_share: float = 0.001) -> tuple[float, bool]:
        """Wait until the datapath has its flows: a `step` s window in which at most
        `upcall_share` of the received packets missed the datapath (upcalls), at most
        `settle_max` s. With many flows and the select group's hash method (one exact
        megaflow per 5-tuple) this takes long: the revalidator starts the datapath's
        flow limit at 10000 and raises it by 1000 a round (2 rounds/s), evicting flows
        meanwhile (100 k flows: ~50 s, and 0.27 Mpps before, 0.75 after). Returns
        (seconds waited, settled)."""
        t0 = time.monotonic()
        while True:
            self.appctl("dpif-netdev/pmd-stats-clear")
            time.sleep(step)
            st = self.pmd_stats()
            misses = (st.get("miss_with_success_upcall", 0)
                      + st.get("miss_with_failed_upcall", 0))
            waited = time.monotonic() - t0
            if misses <= upcall_share * max(st.get("packets_received", 0), 1):
                return waited, True
            if waited >= settle_max:
                return waited, False

    def measure(self, seconds: float = 5.0, warmup: float = 1.0,
                interval: float = 0.5, settle_max: float = 120.0) -> dict:
        """The current scenario's rate: `warmup` s, then settle() (at most settle_max
        s), then the port counters every `interval` s for `seconds` s. mpps is the
        median of the output port's TX rates between samples (the other sides' figure
        is a median of interval rates too)."""
        if self.scenario is None:
            raise OvsError("measure() before set_scenario()")
        time.sleep(warmup)
        settle_s, settled = self.settle(settle_max)
        self.appctl("dpif-netdev/pmd-stats-clear")
        cpu0 = self._cpu()
        samples = [self._sample()]
        end = samples[0][0] + seconds
        while samples[-1][0] < end:
            time.sleep(max(0.0, min(interval, end - time.monotonic())))
            samples.append(self._sample())
        cpu1 = self._cpu()
        pmd = self.pmd_stats()
        inp, outp = str(self.IN), str(self.out_port)

        def rates(port: str, key: str) -> list[float]:
            return [(b[port][key] - a[port][key]) / (tb - ta)
                    for (ta, a), (tb, b) in zip(samples, samples[1:])]

        (t0, first), (t1, last) = samples[0], samples[-1]
        span = t1 - t0

        def delta(port: str, key: str) -> int:
            return last[port][key] - first[port][key]
        tx, rx = rates(outp, "tx"), rates(inp, "rx")
        res = {
            "scenario": self.scenario, "memory": self.memory, "memory_mb": self.memory_mb,
            "output": self.output, "seconds": round(span, 3), "samples": len(samples),
            "pcap_packets": self.packets,
            "settle_s": round(settle_s, 1), "settled": settled,
            "mempool": "per-port" if self.per_port else "shared",
            "mpps": round(statistics.median(tx) / 1e6, 3),
            "tx_mpps_mean": round(delta(outp, "tx") / span / 1e6, 3),
            "rx_mpps": round(statistics.median(rx) / 1e6, 3),
            "rx_mpps_mean": round(delta(inp, "rx") / span / 1e6, 3),
            "tx_mpps_intervals": [round(x / 1e6, 3) for x in tx],
            # CPUs over the window: the PMD thread's (1.0 when it had its CPU to
            # itself) and the rest of the machine's (busy minus our two daemons)
            "pmd_cpu": round((cpu1[2] - cpu0[2]) / span, 3),
            "foreign_cpu": round(max(0.0, (cpu1[0] - cpu0[0]) - (cpu1[1] - cpu0[1]))
                                 / span, 3),
            "mpps_per_pmd_cpu": round(delta(outp, "tx") / max(cpu1[2] - cpu0[2], 1e-9)
                                      / 1e6, 3),
            "rx_drop": delta(inp, "rx_drop"), "tx_drop": delta(outp, "tx_drop"),
            "rx_minus_tx": delta(inp, "rx") - delta(outp, "tx"),   # ± a batch: not atomic
            "pmd": pmd,
        }
        try:
            dp = [x for x in self.appctl("dpctl/dump-flows").splitlines()
                  if x.startswith("recirc_id")]
            res["datapath_flows"] = len(dp)
            res["datapath_example"] = dp[0] if dp else None
            if self.scenario.startswith("select"):
                gs = self.ofctl("dump-group-stats")
                res["buckets"] = [int(x) for x in
                                  re.findall(r"bucket\d+:packet_count=(\d+)", gs)]
        except OvsError:
            pass
        return res

    def stop(self) -> None:
        """Kill ovs-vswitchd then ovsdb-server (SIGTERM, SIGKILL after 5 s) and remove
        the directory (and EAL's runtime directory of our --file-prefix). Idempotent."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        for base in ("/var/run/dpdk", os.environ.get("XDG_RUNTIME_DIR", "") + "/dpdk"):
            rt = Path(base, self.prefix)
            if rt.is_dir():
                shutil.rmtree(rt, ignore_errors=True)

    def __enter__(self) -> "OvsDpdk":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------- entry points

def run(pcap: str | None = None, scenarios=SCENARIOS, seconds: float = 5.0,
        warmup: float = 1.0, memory: str = "no-huge", memory_mb: int = 512,
        output: str = "pcap", pmd_cpu: int = 1, interval: float = 0.5,
        install: bool = True, settle_max: float = 120.0) -> dict[str, dict]:
    """Start one OVS, measure each scenario in turn (rules swapped, datapath purged,
    warm-up), stop it. pcap None: bench/throughput.py's 64-flow 64-byte UDP pcap.
    With memory="hugepages", ensure_hugepages(memory_mb) first. Returns {scenario:
    measure() result}. Raises OvsError (one line) when OVS cannot run."""
    for sc in scenarios:
        flows_for(sc)                     # an unknown name fails before OVS starts
    ensure_installed(install)
    if memory == "hugepages":
        ensure_hugepages(memory_mb)
    with tempfile.TemporaryDirectory(prefix=f"ovspcap{os.getpid()}_") as tmp:
        if pcap is None:
            pcap = os.path.join(tmp, "udp64.pcap")
            write_pcap(pcap)
        with OvsDpdk(pcap, memory, memory_mb, output, pmd_cpu) as ovs:
            results = {}
            for sc in scenarios:
                ovs.set_scenario(sc)
                results[sc] = ovs.measure(seconds, warmup, interval, settle_max)
            return results


def mpps(pcap: str | None, scenario: str, seconds: float = 5.0,
         memory: str = "no-huge", **kw) -> float:
    """One scenario's forwarded rate (the output port's TX) in Mpps."""
    return run(pcap, [scenario], seconds, memory=memory, **kw)[scenario]["mpps"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=3)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--settle-max", type=float, default=120,
                    help="after --warmup, wait at most this long for the datapath to stop "
                         "upcalling (many flows)")
    ap.add_argument("--memory", choices=[*MEMORY_MODES, "both"], default="no-huge")
    ap.add_argument("--memory-mb", type=int, default=512)
    ap.add_argument("--scenario", default=",".join(SCENARIOS),
                    help="comma-separated: " + ", ".join(SCENARIOS + EXTRA_SCENARIOS))
    ap.add_argument("--output", choices=OUTPUTS, default="pcap")
    ap.add_argument("--pmd-cpu", type=int, default=1)
    ap.add_argument("--pcap", help="default: bench/throughput.py's 64-byte UDP pcap")
    ap.add_argument("--no-install", action="store_true",
                    help="don't apt-get install / update-alternatives when missing")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so the daemons are stopped and the directory removed
    # (SIGKILL: PR_SET_PDEATHSIG still kills the daemons; the directory stays)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    scenarios = [s for s in a.scenario.split(",") if s]
    for s in scenarios:
        if s not in SCENARIOS + EXTRA_SCENARIOS:
            ap.error(f"unknown scenario {s!r}")
    modes = list(MEMORY_MODES) if a.memory == "both" else [a.memory]
    out, rc = {}, 0
    for mode in modes:
        try:
            res = run(a.pcap, scenarios, a.seconds, a.warmup, mode, a.memory_mb,
                      a.output, a.pmd_cpu, install=not a.no_install,
                      settle_max=a.settle_max)
        except OvsError as e:
            print(f"OVS-DPDK ({mode}): not measured: {e}")
            out[mode], rc = {"error": str(e)}, 1
            continue
        out[mode] = res
        for sc, r in res.items():
            pmd = r["pmd"]
            print(f"OVS-DPDK {mode:9} {sc:15} {r['mpps']:6.2f} Mpps forwarded "
                  f"(rx {r['rx_mpps']:.2f}, rx-tx {r['rx_minus_tx']}); "
                  f"PMD had {r['pmd_cpu']:.2f} CPU, {r['mpps_per_pmd_cpu']:.2f} Mpps per "
                  f"PMD CPU, others used {r['foreign_cpu']:.2f} CPUs; "
                  f"{pmd.get('avg_processing_cycles_per_packet', float('nan')):.0f} "
                  f"TSC cycles/pkt, {r.get('datapath_flows', '?')} dp flows"
                  + ("" if r["settled"] else
                     f", datapath still upcalling after {r['settle_s']:.0f} s")
                  + (f", buckets {r['buckets']}" if r.get("buckets") else ""))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2))
        print(f"wrote {a.json}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
