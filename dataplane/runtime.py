"""Start the forwarder: EAL arguments, mempool, ports, worker; run or replay; stats.

EAL initializes once per process, so each `run`/`replay` owns its process (the CLI) and
tests drive them as subprocesses.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import fcntl
import json
import mmap
import os
import re
import shutil
import signal
import stat
import struct
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from . import _pcapscan, spread
from .config.lcores import eal_flag, parse_lcores
from .config.compile import compile_config
from .config.model import Config
from .control import Control
from .drops import DROP_REASONS
from .errors import DataplaneError
from .limits import MIRROR_COUNTERS, VNET_COUNTERS

PCI_RE = re.compile(r"^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")


class InputError(ValueError):
    """A configuration, pcap file or argument the runtime cannot use (not a DPDK failure):
    the CLI reports it in one line and exits 2."""


class Interrupted(InputError):
    """SIGINT/SIGTERM before forwarding started: nothing was forwarded (one line, exit 2)."""


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


def eal_runtime_dir(prefix: str) -> Path:
    """EAL's runtime directory for a --file-prefix (EAL's and dpdk-telemetry.py's rule)."""
    base = os.environ.get("RUNTIME_DIRECTORY") or (
        "/var/run" if os.getuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    return Path(base) / "dpdk" / prefix


def remove_runtime_dir_at_exit(args: list[str]) -> None:
    """EAL leaves its runtime directory (`/var/run/dpdk/<prefix>`, with the telemetry
    sockets) behind when the process ends, and this process cannot call
    rte_eal_cleanup: remove it at exit, on error paths too, when the prefix in effect
    (EAL takes the last --file-prefix) is this process's own dp<pid>. A prefix the user
    chose is left alone."""
    prefix = None
    for i, arg in enumerate(args):
        if arg == "--file-prefix" and i + 1 < len(args):
            prefix = args[i + 1]
        elif arg.startswith("--file-prefix="):
            prefix = arg.partition("=")[2]
    if prefix == f"dp{os.getpid()}":
        atexit.register(shutil.rmtree, eal_runtime_dir(prefix), True)


def counter_names() -> list[str]:
    """Names of the C counter slots, in slot order."""
    from . import _core
    rx, tx, first_drop, n = _core.counter_slots()
    names = [""] * n
    names[rx], names[tx] = "rx", "tx"
    for i, reason in enumerate(DROP_REASONS):
        names[first_drop + i] = reason
    for slot, name in zip(_core.mirror_slots(), MIRROR_COUNTERS):
        names[slot] = name
    for slot, name in zip(_core.vnet_slots(), VNET_COUNTERS):
        names[slot] = name
    return names


def mirror_stats(cfg: Config, ports: dict) -> None:
    """Each port's mirror_tx: the mirror copies of other ports' packets it transmitted
    (docs/mirroring.md §4), from the mirrored ports' `mirrored`."""
    for p in cfg.ports:
        ports[p.name]["mirror_tx"] = 0
    for p in cfg.ports:
        if p.mirror is not None:
            ports[cfg.ports[p.mirror.egress_index].name]["mirror_tx"] += \
                ports[p.name]["mirrored"]


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
        args = eal_args(cfg, extra_eal, devices=not loop) + ["--log-level",
                                                              "lib.telemetry:error"]
        remove_runtime_dir_at_exit(args)     # before EAL makes it: error paths included
        _core.eal_init(args)
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

    def housekeeping(self) -> None:
        """Once a second while running (docs/virtual-networks.md): age learned MACs, and
        move active-standby AAP groups to the first port that is up."""
        from .config import vnet
        cfg = self.cfg
        if any(v.mac_learning for v in cfg.vrfs):
            self.core.bridge_age()
        groups = getattr(self, "_aap", None)
        if groups is None:
            groups = self._aap = vnet.aap_groups(cfg)
            self._up = {p.index for p in cfg.ports}
        if not groups:
            return
        up = {p.index for p in cfg.ports if self.core.port_up(p.index)}
        if up != self._up:
            self._up = up
            for gi, _, _ in groups:
                self.control.update_group(gi, vnet.aap_members(cfg, gi, up))

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
                             **{m: c[m] for m in MIRROR_COUNTERS},
                             **{v: c[v] for v in VNET_COUNTERS},
                             "dpdk": self.core.port_stats(p.index)}
        mirror_stats(self.cfg, ports)
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
                            **{m: sum(c[m] for c in named) for m in MIRROR_COUNTERS},
                            **{v: sum(c[v] for c in named) for v in VNET_COUNTERS},
                            "flows": fl})
        return {"node": self.cfg.node.name, "ports": ports, "drops": drops,
                "workers": workers,
                "group_members_per_worker": {
                    g.name: self.core.group_counters(g.index, per_worker=True)
                    for g in self.cfg.groups},
                "groups": groups, "fragments": self.core.frag_counters(),
                "flows": self.core.flow_counters(), "mpls": self.core.mpls_counters(),
                "rx": rx, "tx": sum(v["tx"] for v in ports.values()),
                **{m: sum(v[m] for v in ports.values()) for m in MIRROR_COUNTERS},
                **{n: sum(v[n] for v in ports.values()) for n in VNET_COUNTERS},
                "bridge": [{"vrf": self.cfg.vrfs[vrf].name, "mac": mac.hex(":"),
                            "port": self.cfg.ports[port].name, "flags": kind, "hits": hits}
                           for vrf, mac, port, kind, hits in self.core.bridge_table()],
                "neighbors": [{"port": self.cfg.ports[port].name, "ip": ip,
                               "mac": mac.hex(":") if mac else None, "state": state}
                              for port, ip, mac, state in self.core.neighbors()],
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


# ---------------------------------------------------------------- replay inputs

#: net_pcap's TX copies a frame of several mbufs into a buffer of
#: RTE_ETHER_MAX_JUMBO_FRAME_LEN (0x3F00) bytes and writes a longer one cut (caplen <
#: len); its RX chains as many mbufs as a frame needs, whatever the port's RX offloads.
PCAP_TX_SEGMENTED_MAX = 16128
#: net_pcap's TX dumper's snapshot length; mbuf data lengths are 16-bit.
PCAP_MAX_FRAME = 65535
LIBPCAP_MAX_SNAPLEN = 262144          # libpcap's largest snapshot length for Ethernet
PCAPNG_MAX_BLOCK = 16 * 1024 * 1024   # libpcap refuses a longer pcapng block
MBUF_HEADROOM = 128                   # RTE_PKTMBUF_HEADROOM
LINK_NAMES = {0: "BSD loopback", 101: "raw IP", 105: "802.11", 113: "Linux cooked",
              127: "802.11 radiotap", 228: "raw IPv4", 229: "raw IPv6",
              276: "Linux cooked v2"}
_CLASSIC = {b"\xd4\xc3\xb2\xa1": "<", b"\x4d\x3c\xb2\xa1": "<",     # µs, ns
            b"\xa1\xb2\xc3\xd4": ">", b"\xa1\xb2\x3c\x4d": ">"}
_PCAPNG = b"\x0a\x0d\x0d\x0a"


def max_frame(cfg: Config) -> int:
    """The longest frame a replay accepts: the longest net_pcap receives into mbufs and
    writes back whole. A frame within one mbuf's data room (eal.mbuf_size less the
    128-byte headroom) is received and written in one piece; a longer one is received
    as a chain of mbufs (multi-segment RX: net_pcap chains segments itself) and written
    whole only up to 16,128 bytes. Never more than 65,535 (16-bit mbuf lengths; longer
    records used to crash net_pcap's TX)."""
    return min(PCAP_MAX_FRAME, max(cfg.eal.mbuf_size - MBUF_HEADROOM, PCAP_TX_SEGMENTED_MAX))


def max_frame_reason(cfg: Config) -> str:
    room = cfg.eal.mbuf_size - MBUF_HEADROOM
    return (f"a replay supports (eal.mbuf_size {cfg.eal.mbuf_size}: {room:,} bytes of data "
            f"room per mbuf; net_pcap writes a frame of several mbufs whole up to "
            f"{PCAP_TX_SEGMENTED_MAX:,} bytes)")


def _link(lt: int) -> str:
    name = LINK_NAMES.get(lt)
    return f"link type {lt}" + (f" ({name})" if name else "")


def check_pcap(path: str, max_len: int = PCAP_MAX_FRAME, reason: str = "") -> int:
    """The packets of a classic pcap or pcapng file, after checking every record as
    net_pcap (libpcap) will read it: link type Ethernet, captured length within the
    original length, the file's snapshot length (libpcap cuts a longer record silently)
    and max_len, no record or block running past the end of the file; pcapng block
    lengths sane (at least 12, a multiple of 4, equal in header and trailer). A bad file
    raises InputError naming the file and the record (pcapng: the block and packet)."""
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory"
                if stat.S_ISDIR(st.st_mode) else "a device or socket")
        raise InputError(f"{path}: not a regular file ({kind}): a replay reads its "
                         "inputs twice, once to check and count them")
    with open(path, "rb") as f:
        if st.st_size < 4:
            raise InputError(f"{path}: not a pcap or pcapng file")
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            magic = buf[:4]
            if magic in _CLASSIC:
                return _check_classic(buf, path, _CLASSIC[magic], max_len, reason)
            if magic == _PCAPNG:
                return _check_pcapng(buf, path, max_len, reason)
    raise InputError(f"{path}: not a pcap or pcapng file")


def _frame_problem(cap: int, wire: int, snap: int, max_len: int, reason: str):
    """What is wrong with a record of cap captured / wire original bytes, or None."""
    if cap > wire:
        return f"captured length {cap:,} is more than the original length {wire:,}"
    if cap > max_len:
        return f"a {cap:,}-byte frame, longer than the {max_len:,} bytes {reason}".rstrip()
    if cap > snap:
        return (f"captured length {cap:,} is more than the file's snapshot length "
                f"{snap:,} (libpcap would cut the frame)")
    return None


def _check_classic(buf, path: str, endian: str, max_len: int, reason: str) -> int:
    size = len(buf)
    if size < 24:
        raise InputError(f"{path}: truncated: the file ends inside its 24-byte header")
    major, minor, _, _, snaplen, link = struct.unpack_from(endian + "HHiIII", buf, 4)
    if not ((major == 2 and minor <= 4) or (major, minor) == (543, 0)):
        raise InputError(f"{path}: pcap version {major}.{minor} is not supported "
                         "(2.0 to 2.4)")
    if link != 1:
        raise InputError(f"{path}: {_link(link)}, not Ethernet (1): the forwarder would "
                         "read every frame as Ethernet")
    snap = snaplen if 0 < snaplen <= LIBPCAP_MAX_SNAPLEN else LIBPCAP_MAX_SNAPLEN
    limit = min(snap, max_len)
    # libpcap's rule: before 2.3 (and in 543.0) caplen and len are swapped; 2.3: maybe
    swap = 2 if (major == 543 or minor < 3) else 1 if minor == 3 else 0
    # the record walk in C (a Python loop took a second per 3 M records); libpcap
    # reads caplen bytes (after any swap)
    status, whole, off, cap, wire, _, _ = _pcapscan.walk_classic(buf, endian == ">", swap,
                                                                 limit, True)
    n = whole + 1                       # the record a problem is in
    if status == _pcapscan.STATUS["header_cut"]:
        raise InputError(f"{path}: record {n:,}: truncated: the file ends "
                         f"{size - off} bytes into its 16-byte header")
    if status == _pcapscan.STATUS["bad_lengths"]:
        raise InputError(f"{path}: record {n:,}: "
                         f"{_frame_problem(cap, wire, snap, max_len, reason)}")
    if status == _pcapscan.STATUS["data_cut"]:
        raise InputError(f"{path}: record {n:,}: truncated: the file ends "
                         f"{off + 16 + cap - size:,} bytes before the end of its "
                         f"{cap:,}-byte frame")
    return whole


def _check_pcapng(buf, path: str, max_len: int, reason: str) -> int:
    size = len(buf)
    off = b = n = 0
    endian = "<"
    snaps: list[int] = []         # the current section's interfaces' snapshot lengths
    while off < size:
        b += 1
        where = f"{path}: block {b:,}"
        if size - off < 12:
            raise InputError(f"{where}: truncated: the file ends {size - off} bytes into "
                             "the block")
        if buf[off:off + 4] == _PCAPNG:                   # section header: byte order
            bom = buf[off + 8:off + 12]
            if bom not in (b"\x4d\x3c\x2b\x1a", b"\x1a\x2b\x3c\x4d"):
                raise InputError(f"{where}: section header with an unknown byte-order "
                                 "magic")
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            snaps = []
        btype, blen = struct.unpack_from(endian + "II", buf, off)
        if blen < 12:
            raise InputError(f"{where}: total length {blen:,}, less than the 12 bytes of "
                             "a block's header and trailer")
        if blen % 4:
            raise InputError(f"{where}: total length {blen:,}, not a multiple of 4")
        if blen > PCAPNG_MAX_BLOCK:
            raise InputError(f"{where}: total length {blen:,}, more than libpcap's "
                             f"{PCAPNG_MAX_BLOCK:,}")
        if blen > size - off:
            raise InputError(f"{where}: total length {blen:,} runs past the end of the "
                             f"file ({size - off:,} bytes left)")
        trailer = struct.unpack_from(endian + "I", buf, off + blen - 4)[0]
        if trailer != blen:
            raise InputError(f"{where}: total length {blen:,} in its header but "
                             f"{trailer:,} in its trailer")
        body = blen - 12
        if btype == 0x0A0D0D0A:
            if body < 16:
                raise InputError(f"{where}: section header of {blen} bytes, too short")
            major, minor = struct.unpack_from(endian + "HH", buf, off + 12)
            if major != 1:
                raise InputError(f"{where}: pcapng version {major}.{minor} is not "
                                 "supported (1.x)")
        elif b == 1:
            raise InputError(f"{path}: not a pcap or pcapng file")
        elif btype == 1:                                  # interface description
            if body < 8:
                raise InputError(f"{where}: interface description of {blen} bytes, too "
                                 "short")
            link, _, snaplen = struct.unpack_from(endian + "HHI", buf, off + 8)
            if link != 1:
                raise InputError(f"{where}: interface {len(snaps)}: {_link(link)}, not "
                                 "Ethernet (1): the forwarder would read every frame "
                                 "as Ethernet")
            snaps.append(snaplen if 0 < snaplen <= LIBPCAP_MAX_SNAPLEN
                         else LIBPCAP_MAX_SNAPLEN)
        elif btype in (2, 3, 6):                          # packet, simple, enhanced
            n += 1
            where = f"{path}: block {b:,} (packet {n:,})"
            if not snaps:
                raise InputError(f"{where}: comes before any interface description "
                                 "block")
            fixed = 4 if btype == 3 else 20
            if body < fixed:
                raise InputError(f"{where}: a packet block of {blen} bytes, too short")
            if btype == 3:
                iface, cap = 0, None
                wire = struct.unpack_from(endian + "I", buf, off + 8)[0]
                cap = min(wire, snaps[0], body - fixed)
            elif btype == 6:
                iface, _, _, cap, wire = struct.unpack_from(endian + "IIIII", buf, off + 8)
            else:
                iface, _, _, _, cap, wire = struct.unpack_from(endian + "HHIIII", buf,
                                                               off + 8)
            if iface >= len(snaps):
                raise InputError(f"{where}: interface {iface} is not described (the "
                                 f"section has {len(snaps)})")
            if cap > body - fixed:
                raise InputError(f"{where}: captured length {cap:,} runs past the end of "
                                 f"its block ({body - fixed:,} bytes of data)")
            problem = _frame_problem(cap, wire, snaps[iface], max_len, reason)
            if problem:
                raise InputError(f"{where}: {problem}")
        off += blen
    return n


def pcap_count(path: str) -> int:
    """Packets in a classic pcap (either byte order, µs or ns) or pcapng file, every
    record checked (check_pcap)."""
    return check_pcap(path)


def check_inputs(cfg: Config, inputs: dict[str, str]) -> dict[str, int]:
    """{port: packets} of the replay's inputs, each checked record by record before
    DPDK sees it (check_pcap with the frame limit of max_frame)."""
    limit, reason = max_frame(cfg), max_frame_reason(cfg)
    counts = {}
    for port, path in inputs.items():
        try:
            counts[port] = check_pcap(path, limit, reason)
        except OSError as e:
            raise InputError(f"--in {e.filename or path}: {e.strerror}") from None
    return counts


# ---------------------------------------------------------------- replay output directory

LOCK_NAME = ".replay.lock"
_held_locks: list[int] = []             # the out-dir locks this process holds, till exit


def replay_writes(cfg: Config, out_dir: str, trex: bool = False) -> list[Path]:
    """Every file a replay into out_dir writes (resolved): one pcap per port, the
    summary, the flows, the empty input, the lock, with --trex the rendered inputs;
    DIR/.queues/ holds the per-queue files of several workers."""
    out = Path(os.path.realpath(out_dir))
    names = [f"{p.name}.pcap" for p in cfg.ports] + [
        ".empty.pcap", "flows.json", "summary.json", LOCK_NAME]
    if trex:
        names += [f"trex-{p.name}.pcap" for p in cfg.ports]
    return [out / n for n in names]


def check_inputs_not_written(cfg: Config, inputs: dict[str, str], out_dir: str,
                             trex: bool = False) -> None:
    """Refuse an --in the replay would overwrite (as a path, through symlinks or `..`,
    or as a hard link of one), before anything is written."""
    written = replay_writes(cfg, out_dir, trex)
    queues = Path(os.path.realpath(out_dir)) / ".queues"
    ids = {}
    for w in written:
        with contextlib.suppress(OSError):
            st = w.stat()
            ids[(st.st_dev, st.st_ino)] = w
    for path in inputs.values():
        real = Path(os.path.realpath(path))
        hit = real if real in written or real.parent == queues else None
        if hit is None:
            with contextlib.suppress(OSError):
                st = real.stat()
                hit = ids.get((st.st_dev, st.st_ino))
        if hit is not None:
            raise InputError(f"--in {path}: it is {hit.name} of --out-dir {out_dir}, which "
                             "the replay would overwrite; copy it elsewhere or choose "
                             "another --out-dir")


def lock_out_dir(out_dir: str) -> None:
    """Create out_dir if needed and lock it for this process (fcntl.flock on
    DIR/.replay.lock, held until the process ends), so two replays never write into one
    directory at once. An out-dir that is not a directory, cannot be written or is
    locked by another replay raises InputError."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"--out-dir {out_dir}: exists and is not a directory") from None
    except NotADirectoryError:
        parent = next((p for p in reversed(out.parents) if p.exists() and not p.is_dir()),
                      None)
        raise InputError(f"--out-dir {out_dir}: not a directory"
                         + (f" ({parent} is a file)" if parent else "")) from None
    except OSError as e:
        raise InputError(f"--out-dir {out_dir}: cannot create it: {e.strerror}") from None
    try:
        fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise InputError(f"--out-dir {out_dir}: cannot write there: {e.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
        os.close(fd)
        if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise InputError(f"--out-dir {out_dir}: cannot lock it: {e.strerror}") from None
        who = f" (pid {holder})" if holder.isdigit() else ""
        raise InputError(f"--out-dir {out_dir}: another replay{who} is writing there; "
                         "wait for it to end or choose another directory") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError as e:
        os.close(fd)
        raise InputError(f"--out-dir {out_dir}: cannot write there: {e.strerror}") from None
    _held_locks.append(fd)


def check_writable(path: str, what: str) -> None:
    """Raise InputError unless the regular file `path` can be written (created if
    missing), without changing it: checked before forwarding, not after."""
    p = Path(path)
    try:
        if p.is_dir():
            raise InputError(f"{what} {path}: Is a directory")
        if p.exists():
            if p.is_file():
                os.close(os.open(p, os.O_WRONLY | os.O_APPEND))
        else:
            os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            p.unlink()
    except OSError as e:
        raise InputError(f"{what} {path}: {e.strerror}") from None


def output_records(path: Path) -> tuple[int, int, int, Optional[str]]:
    """(whole records, their captured bytes, records with caplen < len, what is wrong
    with the file or None) of a classic pcap a replay wrote."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 24:
            return 0, 0, 0, f"the file ends inside its 24-byte header ({size} bytes)"
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            endian = _CLASSIC.get(buf[:4])
            if endian is None:
                return 0, 0, 0, "not a classic pcap file"
            # record headers only, walked in C
            status, n, _, _, _, total, cut = _pcapscan.walk_classic(
                buf, endian == ">", 0, 0xFFFFFFFF, False)
    if status:
        return n, total, cut, f"the file ends inside record {n + 1:,} ({n:,} whole records)"
    return n, total, cut, None


def verify_outputs(cfg: Config, out_dir: str, summary: dict,
                   skip: set = frozenset()) -> list[str]:
    """Each port's DIR/<port>.pcap against the port's TX counters: as many whole records
    as the core transmitted, as many bytes as DPDK counted (net_pcap's TX has no error
    path: a write that fails, e.g. past `ulimit -f` or on a full disk, is lost
    silently), no frame written cut. Records what was found in summary["outputs"];
    returns one line per port whose output was lost."""
    errors, found = [], {}
    for p in cfg.ports:
        if p.name in skip:
            continue
        st = summary["ports"][p.name]
        path = Path(out_dir) / f"{p.name}.pcap"
        try:
            n, nbytes, cut, problem = output_records(path)
        except (OSError, ValueError) as e:
            errors.append(f"{path}: cannot read it back: {getattr(e, 'strerror', e)}")
            continue
        found[p.name] = {"file": str(path), "records": n, "bytes": nbytes, "cut": cut}
        # what it sent: its packets, the mirror and flood copies and ARP/ND requests
        sent = st["tx"] + st.get("mirror_tx", 0) + st.get("flooded", 0) + st.get("arp_sent", 0)
        sent_bytes = (st.get("dpdk") or {}).get("obytes")
        if problem or n != sent:
            errors.append(f"{path}: {problem or f'{n:,} records'}, but port {p.name} "
                          f"transmitted {sent:,}")
        elif sent_bytes is not None and nbytes != sent_bytes:
            errors.append(f"{path}: {nbytes:,} bytes of frames, but port {p.name} "
                          f"transmitted {sent_bytes:,}")
        elif cut:
            errors.append(f"{path}: {cut:,} frames written cut (net_pcap writes at most "
                          f"{PCAP_TX_SEGMENTED_MAX:,} bytes of a frame of several mbufs)")
    summary["outputs"] = found
    return errors


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
            # written by merge_outputs only: no earlier run's file may pass for it
            with contextlib.suppress(FileNotFoundError):
                (out / f"{p.name}.pcap").unlink()
        for f in rx + tx:
            if "," in str(f) or "=" in str(f):
                raise InputError(f"pcap path may not contain ',' or '=' (DPDK devargs "
                                 f"syntax): {f}")
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


def merge_outputs(cfg: Config, out_dir: str) -> dict[str, str]:
    """Each port's per-queue TX pcaps into DIR/<port>.pcap, in timestamp order.
    {port: why} for the ports whose merge failed (a per-queue file cut short, a failed
    write); DIR/.queues is then kept."""
    from . import rss
    qdir = Path(out_dir) / ".queues"
    n = workers_of(cfg)
    if n == 1:
        return {}
    failed = {}
    for p in cfg.ports:
        parts = [qdir / f"{p.name}.tx{q}.pcap" for q in range(n)]
        try:
            merged = rss.merge_pcaps([f.read_bytes() for f in parts])
        except (OSError, ValueError) as e:
            failed[p.name] = f"{qdir}/{p.name}.tx*.pcap: {getattr(e, 'strerror', None) or e}"
            continue
        try:
            (Path(out_dir) / f"{p.name}.pcap").write_bytes(merged)
        except OSError as e:
            failed[p.name] = f"{out_dir}/{p.name}.pcap: {e.strerror}"
    if not failed:
        for f in qdir.iterdir():
            f.unlink()
        qdir.rmdir()
    return failed


@contextlib.contextmanager
def stop_on_signals():
    """SIGINT/SIGTERM set the yielded flag (checked by the caller's poll loop) instead of
    raising, so the worker is stopped, TX drained and final stats written."""
    flag = {"stop": False, "raise": False}

    def handler(signum, frame):
        flag["stop"] = True
        if flag["raise"]:        # set around work that may be cut short (replay's scan)
            raise KeyboardInterrupt

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
           stall_seconds: float = 3.0, counts: Optional[dict[str, int]] = None,
           prepared: bool = False) -> dict:
    """Forward every packet of the input pcaps; stop when all are received and the TX
    buffers are drained (or when the PMD delivers nothing for stall_seconds).

    Before anything is forwarded: no input may be a file the replay writes, out_dir is
    locked for this process, every input record is checked (prepared=True: the caller
    did the first two; counts: check_inputs' result). After: each output pcap is checked
    against its port's TX counters; summary["output_errors"] lists what was lost (empty:
    every transmitted frame is in the outputs). SIGINT/SIGTERM before forwarding raise
    Interrupted; during it, stop it like the end of the input; during the scan of the
    outputs for flows per member (made only when the flow tables cannot give them:
    spread.table_flow_counts), cut the scan short (summary["interrupted_during"])."""
    if not prepared:
        check_inputs_not_written(cfg, inputs, out_dir)
        lock_out_dir(out_dir)
    if counts is None:
        counts = check_inputs(cfg, inputs)
    total = sum(counts.values())
    with stop_on_signals() as sig:
        try:
            rcfg = replay_config(cfg, inputs, out_dir)
        except OSError as e:
            raise InputError(f"--out-dir {out_dir}: cannot write "
                             f"{e.filename or 'there'}: {e.strerror}") from None
        fw = Forwarder(rcfg, extra_eal)
        if sig["stop"]:
            fw.close()
            raise Interrupted("interrupted during start-up: nothing was forwarded")
        fw.start()
        try:
            replay_wait(fw, total, progress, stall_seconds, sig)
        finally:
            fw.stop()
            summary = fw.stats()
            flows = fw.core.flows()
            fw.close()
            summary["mbufs_in_use_after"] = fw.mbufs_in_use()
            merge_failed = merge_outputs(cfg, out_dir)
        during = "forwarding" if sig["stop"] else None
        summary["input_packets"] = total
        summary["not_received"] = total - summary["rx"]
        summary["inputs"] = dict(inputs)
        summary["out_dir"] = str(out_dir)
        errors = list(merge_failed.values()) + verify_outputs(cfg, out_dir, summary,
                                                              set(merge_failed))
        # a fat-flow aggregate whose sessions RSS spread over workers has an entry in
        # each (docs/workers.md §3): counted once here
        summary["flows"]["flows_distinct"] = len({flow_identity(f) for f in flows})
        try:
            (Path(out_dir) / "flows.json").write_text(json.dumps(flows))
        except OSError as e:
            errors.append(f"{out_dir}/flows.json: {e.strerror}")
        # flows per member: from the flow tables when they account for every packet the
        # members carried (spread.table_flow_counts), else from the intact outputs; a
        # signal since forwarding ended (during the checks above) or during the scan
        # cuts the scan short
        counts = spread.table_flow_counts(cfg, summary["groups"], flows, summary["flows"])
        summary["flow_counts_from"] = None
        if counts is not None:
            spread.set_flow_counts(cfg, summary["groups"], counts)
            summary["flow_counts_from"] = "flow tables"
        elif not errors and not (sig["stop"] and not during):
            sig["raise"] = True
            try:
                spread.add_flow_counts(cfg, summary["groups"], out_dir)
                summary["flow_counts_from"] = "outputs"
            except KeyboardInterrupt:
                pass
            finally:
                sig["raise"] = False
        if sig["stop"] and not during and counts is None:
            during = "post-run scan"      # (with the tables' counts nothing was cut)
        summary["interrupted"] = bool(during)
        summary["interrupted_during"] = during
        summary["output_errors"] = errors
        try:
            (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2))
            summary["summary_file"] = str(Path(out_dir) / "summary.json")
        except OSError as e:
            errors.append(f"{out_dir}/summary.json: {e.strerror}")
            summary["summary_file"] = None
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
            next_report = next_chore = time.monotonic() + interval
            while not sig["stop"]:
                now = time.monotonic()
                if duration is not None and now - fw.started >= duration:
                    break
                if now >= next_chore:
                    fw.housekeeping()
                    next_chore = now + 1.0
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
