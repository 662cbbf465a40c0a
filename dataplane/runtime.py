"""Start the forwarder: EAL arguments, mempool, ports, worker; run or replay; stats.

EAL initializes once per process, so each `run`/`replay` owns its process (the CLI) and
tests drive them as subprocesses.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import signal
import struct
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from . import spread
from .config.lcores import eal_flag, parse_lcores
from .config.compile import compile_config
from .config.model import Config
from .control import Control
from .drops import DROP_REASONS
from .errors import DataplaneError

PCI_RE = re.compile(r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


class InputError(ValueError):
    """A configuration, pcap file or argument the runtime cannot use (not a DPDK failure):
    the CLI reports it in one line and exits 2."""


def eal_args(cfg: Config, extra: list[str] = (), prefix: Optional[str] = None,
             devices: bool = True) -> list[str]:
    """The EAL argv for cfg: lcores, memory, one --vdev / -a per port (unless the ports
    are made after EAL starts: `devices=False`), then extra args."""
    e = cfg.eal
    args = ["dataplane", *eal_flag(e.lcores), "--file-prefix", prefix or f"dp{os.getpid()}",
            "--no-shconf", "--log-level", "lib.eal:warning"]
    args += ["-m", str(e.memory_mb)]
    if e.no_huge:
        args.append("--no-huge")
    pci = [p for p in cfg.ports if PCI_RE.match(p.dev_name)] if devices else []
    if not pci:
        args.append("--no-pci")
    for p in cfg.ports if devices else ():
        args += ["-a", p.devargs] if p in pci else ["--vdev", p.devargs]
    return args + list(e.extra) + list(extra)


def counter_names() -> list[str]:
    """Names of the C counter slots, in slot order."""
    from . import _core
    rx, tx, first_drop, n = _core.counter_slots()
    names = [""] * n
    names[rx], names[tx] = "rx", "tx"
    for i, reason in enumerate(DROP_REASONS):
        names[first_drop + i] = reason
    return names


class Forwarder:
    """The Cython core plus its DPDK ports, in this process (EAL initialized here)."""

    def __init__(self, cfg: Config, extra_eal: list[str] = (), loop: Optional[str] = None):
        """loop: a pcap; every port becomes a loopback ring preloaded with its frames
        (loop_frames) instead of the device its devargs name."""
        from . import _core
        self.cfg, self._core_mod = cfg, _core
        self.lcores = self.worker_lcores()   # a bad lcore list fails before EAL starts
        data, frames = loop_pcap(loop, cfg.eal.mbuf_size) if loop else (None, 0)
        # lib.telemetry at error: hides its start-up WARNING "No legacy callbacks, legacy
        # socket not created" (its errors still print). Last in argv: for a log type EAL
        # registers during init the first matching --log-level wins, so the user's do.
        _core.eal_init(eal_args(cfg, extra_eal, devices=not loop) +
                       ["--log-level", "lib.telemetry:error"])
        if cfg.eal.mlock:              # pre-fault memory so the worker never page-faults
            err = _core.lock_memory()
            if err:
                print(f"warning: mlockall: {os.strerror(err)}; memory stays unlocked "
                      "(flow setup will page-fault)", file=sys.stderr)
        # a loopback ring holds its frames' mbufs for good: on top of the configured pool
        _core.pool_create(cfg.eal.mbufs + frames * len(cfg.ports), cfg.eal.mbuf_size)
        self.pool_start = _core.pool_in_use()
        compiled = compile_config(cfg)
        self.core = _core.Core(compiled, workers=len(self.lcores))
        _core.telemetry_attach(self.core, [p.name for p in cfg.ports],   # dpdk-telemetry.py
                               [g.name for g in cfg.groups], counter_names(), cfg.node.name)
        self.control = Control(self.core, cfg, compiled)   # live changes (docs/workers.md)
        self.loop_frames = frames
        for p in cfg.ports:
            try:
                dev = (_core.loop_port(f"loop{p.index}", data, len(self.lcores)) if loop
                       else p.dev_name)
                self.core.bind_port(p.index, dev)
            except DataplaneError as e:
                if e.errno != errno.ENODEV:
                    raise
                # EAL logs a failed vdev probe but still succeeds; the port is just absent
                raise DataplaneError(f"port {p.name}: DPDK could not create device "
                                     f"{p.dev_name} from devargs {p.devargs!r} (the "
                                     "driver's reason is in the EAL log above)",
                                     e.errno, e.strerror) from None
        self.started = self.stopped = None
        self.live = None               # dataplane.live.Live once a control socket serves

    def start(self) -> None:
        self.core.launch(self.lcores)
        self.started = time.monotonic()

    def worker_lcores(self) -> list[int]:
        """The workers' lcores: every lcore of eal.lcores but the first (the main)."""
        lcores = parse_lcores(self.cfg.eal.lcores)
        if len(lcores) < 2:
            raise InputError(f"{self.cfg.path}: eal.lcores: need a main and a worker lcore, "
                             f"got {self.cfg.eal.lcores!r}")
        return lcores[1:]

    def stop(self) -> None:
        self.core.stop()
        self.stopped = time.monotonic()

    def close(self) -> None:
        self.core.close_ports()
        self._core_mod.loop_ports_free()

    def mbufs_in_use(self) -> int:
        """mbufs out of the pool beyond its start value. Only meaningful after close():
        PMDs such as net_tap and net_pcap (infinite_rx) hold mbufs in their RX queues
        until the port is closed."""
        return self._core_mod.pool_in_use() - self.pool_start

    def stats(self) -> dict:
        """Per-port counters by name, DPDK port stats, and totals."""
        names = counter_names()
        ports = {}
        for p, row in zip(self.cfg.ports, self.core.counters()):
            c = {n: v for n, v in zip(names, row) if n}
            ports[p.name] = {"rx": c["rx"], "tx": c["tx"],
                             "drops": {r: c[r] for r in DROP_REASONS},
                             "dpdk": self.core.port_stats(p.index)}
        drops = {r: sum(v["drops"][r] for v in ports.values()) for r in DROP_REASONS}
        secs = ((self.stopped or time.monotonic()) - self.started) if self.started else 0.0
        rx = sum(v["rx"] for v in ports.values())
        groups = spread.group_stats(self.cfg, [self.core.group_counters(g.index)
                                               for g in self.cfg.groups],
                                    self.live.members() if self.live else None)
        workers = []
        for w, (rows, fl) in enumerate(zip(self.core.counters(per_worker=True),
                                           self.core.flow_counters(per_worker=True))):
            named = [{n: v for n, v in zip(names, row) if n} for row in rows]
            workers.append({"worker": w, "lcore": self.lcores[w],
                            "rx": sum(c["rx"] for c in named),
                            "tx": sum(c["tx"] for c in named),
                            "drops": {r: sum(c[r] for c in named) for r in DROP_REASONS},
                            "flows": fl})
        return {"node": self.cfg.node.name, "ports": ports, "drops": drops,
                "workers": workers,
                "group_members_per_worker": {
                    g.name: self.core.group_counters(g.index, per_worker=True)
                    for g in self.cfg.groups},
                "groups": groups, "fragments": self.core.frag_counters(),
                "flows": self.core.flow_counters(), "mpls": self.core.mpls_counters(),
                "rx": rx, "tx": sum(v["tx"] for v in ports.values()),
                "seconds": round(secs, 6), "pps": rx / secs if secs else 0.0,
                "mbufs_in_use_after": self._core_mod.pool_in_use() - self.pool_start}


# ---------------------------------------------------------------- pcap helpers

def loop_pcap(path: str, mbuf_size: int) -> tuple[bytes, int]:
    """The bytes and frame count of a pcap a loopback port can hold: classic pcap,
    Ethernet, every frame within an mbuf's data room (mbuf_size less the 128-byte
    headroom)."""
    from . import _core
    try:
        data = Path(path).read_bytes()
        frames, longest, link = _core.pcap_frames(data)
    except OSError as e:
        raise InputError(f"--loop {path}: {e.strerror}") from None
    except ValueError as e:
        raise InputError(f"--loop {path}: {e}") from None
    if link != 1:
        raise InputError(f"--loop {path}: link type {link}, not Ethernet (1)")
    if not frames:
        raise InputError(f"--loop {path}: no packets")
    if longest > mbuf_size - 128:
        raise InputError(f"--loop {path}: a {longest}-byte frame does not fit an mbuf of "
                         f"{mbuf_size - 128} data bytes (eal.mbuf_size {mbuf_size})")
    return data, frames


def pcap_count(path: str) -> int:
    """Packets in a classic pcap (either byte order, µs or ns) or pcapng file."""
    with open(path, "rb") as f:
        magic = f.read(4)
        if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            endian = "<"
        elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
            endian = ">"
        elif magic == b"\x0a\x0d\x0d\x0a":
            return _pcapng_count(path)
        else:
            raise InputError(f"{path}: not a pcap or pcapng file")
        f.seek(24)
        n = 0
        while True:
            hdr = f.read(16)
            if len(hdr) < 16:
                return n
            caplen = struct.unpack(endian + "IIII", hdr)[2]
            f.seek(caplen, 1)
            n += 1


def _pcapng_count(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        endian = "<"
        while True:
            head = f.read(8)
            if len(head) < 8:
                return n
            btype = struct.unpack("<I", head[:4])[0]
            if btype == 0x0A0D0D0A:   # section header: learn its byte order
                bom = f.read(4)
                endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
                f.seek(-4, 1)
            blen = struct.unpack(endian + "I", head[4:])[0]
            if btype in (3, 6):        # simple / enhanced packet block
                n += 1
            f.seek(blen - 8, 1)


def write_empty_pcap(path: str) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))


# ---------------------------------------------------------------- replay

def workers_of(cfg: Config) -> int:
    return max(1, len(parse_lcores(cfg.eal.lcores)) - 1)


def replay_config(cfg: Config, inputs: dict[str, str], out_dir: str) -> Config:
    """cfg with every port's devargs replaced by a net_pcap vdev: rx from its --in file
    (or an empty pcap), tx to DIR/<port>.pcap. With N workers each port has N queues:
    its input is split by RSS into DIR/.queues/<port>.rx<q>.pcap (one rx_pcap per
    queue, as a NIC's RSS would fill them) and queue q transmits to
    DIR/.queues/<port>.tx<q>.pcap, merged into DIR/<port>.pcap afterwards
    (merge_outputs)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    empty = out / ".empty.pcap"
    write_empty_pcap(str(empty))
    n = workers_of(cfg)
    qdir = out / ".queues"
    if n > 1:
        qdir.mkdir(exist_ok=True)
    ports = []
    for p in cfg.ports:
        rx = [Path(inputs.get(p.name, empty)).resolve()]
        tx = [(out / f"{p.name}.pcap").resolve()]
        if n > 1:
            rx = split_input(rx[0], n, qdir, p.name) if p.name in inputs else rx * n
            tx = [(qdir / f"{p.name}.tx{q}.pcap").resolve() for q in range(n)]
        for f in rx + tx:
            if "," in str(f):
                raise InputError(f"pcap path may not contain ',': {f}")
        dev = ",".join([f"net_pcap_{p.index}"] + [f"rx_pcap={f}" for f in rx] +
                       [f"tx_pcap={f}" for f in tx])
        ports.append(dataclasses.replace(p, devargs=dev))
    return dataclasses.replace(cfg, ports=ports)


def split_input(path: Path, n: int, qdir: Path, port: str) -> list[Path]:
    """The input pcap split into one file per RX queue by the NIC's RSS (dataplane/rss.py:
    symmetric Toeplitz key, default redirection table)."""
    from . import rss
    data = path.read_bytes()
    if data[:4] == b"\x0a\x0d\x0d\x0a":
        raise InputError(f"{path}: with several workers replay splits its inputs by RSS "
                         "and reads classic pcap only (convert: editcap -F pcap IN OUT)")
    try:
        parts = rss.split_pcap(data, n)
    except ValueError as e:
        raise InputError(f"{path}: {e}") from None
    files = []
    for q, part in enumerate(parts):
        f = (qdir / f"{port}.rx{q}.pcap").resolve()
        f.write_bytes(part)
        files.append(f)
    return files


def merge_outputs(cfg: Config, out_dir: str) -> None:
    """Each port's per-queue TX pcaps into DIR/<port>.pcap, in timestamp order."""
    from . import rss
    qdir = Path(out_dir) / ".queues"
    n = workers_of(cfg)
    if n == 1:
        return
    for p in cfg.ports:
        parts = [qdir / f"{p.name}.tx{q}.pcap" for q in range(n)]
        (Path(out_dir) / f"{p.name}.pcap").write_bytes(
            rss.merge_pcaps([f.read_bytes() for f in parts]))
    for f in qdir.iterdir():
        f.unlink()
    qdir.rmdir()


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set the yielded flag (checked by the caller's poll loop) instead of
    raising, so the worker is stopped, TX drained and final stats written."""
    flag = {"stop": False}

    def handler(signum, frame):
        flag["stop"] = True

    old = [signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)]
    try:
        yield flag
    finally:
        for s, h in zip((signal.SIGINT, signal.SIGTERM), old):
            signal.signal(s, h)


def replay_wait(fw, total, progress, stall_seconds, sig) -> None:
    """Until every input packet was received, the PMD stalls, or a signal."""
    last, last_change = -1, time.monotonic()
    while not sig["stop"]:
        got = fw.core.rx_total()
        if progress:
            progress(got, total)
        if got >= total:
            return
        now = time.monotonic()
        if got != last:
            last, last_change = got, now
        elif now - last_change > stall_seconds:
            return
        time.sleep(0.02)


def replay(cfg: Config, inputs: dict[str, str], out_dir: str, extra_eal: list[str] = (),
           progress: Optional[Callable[[int, int], None]] = None,
           stall_seconds: float = 3.0) -> dict:
    """Forward every packet of the input pcaps; stop when all are received and the TX
    buffers are drained (or when the PMD delivers nothing for stall_seconds)."""
    total = sum(pcap_count(f) for f in inputs.values())
    fw = Forwarder(replay_config(cfg, inputs, out_dir), extra_eal)
    with stop_on_signals() as sig:
        fw.start()
        try:
            replay_wait(fw, total, progress, stall_seconds, sig)
        finally:
            fw.stop()
            summary = fw.stats()
            flows = fw.core.flows()
            fw.close()
            summary["mbufs_in_use_after"] = fw.mbufs_in_use()
            merge_outputs(cfg, out_dir)
    # a fat-flow aggregate whose sessions RSS spread over workers has an entry in each
    # (docs/workers.md §3): counted once here
    summary["flows"]["flows_distinct"] = len({flow_identity(f) for f in flows})
    summary["interrupted"] = sig["stop"]
    (Path(out_dir) / "flows.json").write_text(json.dumps(flows))
    spread.add_flow_counts(cfg, summary["groups"], out_dir)
    summary["input_packets"] = total
    summary["not_received"] = total - summary["rx"]
    summary["inputs"] = dict(inputs)
    summary["out_dir"] = str(out_dir)
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def flow_identity(f: dict) -> tuple:
    """What makes a flow one flow whatever worker holds its entry."""
    return f["vrf"], f["family"], f["src"], f["dst"], f["proto"], f["sport"], f["dport"], \
        f["in_port"]


def run(cfg: Config, extra_eal: list[str] = (), duration: Optional[float] = None,
        on_stats: Optional[Callable[[dict], None]] = None, interval: float = 1.0,
        loop: Optional[str] = None, socket_path: Optional[str] = None,
        on_ready: Optional[Callable[[str], None]] = None) -> dict:
    """Forward until SIGINT/SIGTERM (or `duration` seconds); final stats. loop: a pcap
    that every port receives again and again, as loopback rings (Forwarder). The control
    socket (dataplane/server.py) listens at socket_path (default: server.default_socket);
    on_ready(path) is called once it does."""
    from .server import ControlServer, default_socket
    with stop_on_signals() as sig:
        fw = Forwarder(cfg, extra_eal, loop)
        server = ControlServer(fw, socket_path or default_socket(cfg.node.name))
        try:
            server.start()
        except OSError as e:
            fw.close()
            raise InputError(f"control socket: {e.strerror or e}") from None
        fw.start()
        if on_ready:
            on_ready(server.path)
        samples = []               # (seconds since start, packets received, flows created)
        try:
            next_report = time.monotonic() + interval
            while not sig["stop"]:
                now = time.monotonic()
                if duration is not None and now - fw.started >= duration:
                    break
                if now >= next_report:
                    samples.append((now - fw.started, fw.core.rx_total(),
                                    fw.core.flow_counters()["flow_created"]))
                    if on_stats:
                        on_stats(fw.stats())
                    next_report = now + interval
                time.sleep(0.01)
        finally:
            server.stop()
            fw.stop()
            summary = fw.stats()
            summary["control"] = server.cmd_server({})
            summary["samples"] = samples
            summary["loop_frames"] = fw.loop_frames
            fw.close()
            summary["mbufs_in_use_after"] = fw.mbufs_in_use()
    return summary
