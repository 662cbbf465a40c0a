"""The DPDK poll-mode drivers installed on this machine, read from the PMD plugins.

A shared DPDK build loads its PMDs as plugins from one directory (Debian:
/usr/lib/<triplet>/dpdk/pmds-<abi>/). Every plugin carries, for each driver it registers,
a string ``PMD_INFO_STRING= {"name": ..., "params": ..., "kmod": ..., "pci_ids": ...}`` in
its ``.rodata`` (written by DPDK's buildtools/pmdinfogen.py, the same data
dpdk-pmdinfo.py prints). Reading it with pyelftools tells, before EAL starts, which
drivers exist, which devargs keys each takes and which PCI devices it binds; the config
checker (config/rules.py ``devargs``) validates vdev devargs against it.

The plugin directory is, in this order: ``$DP_PMD_DIR`` (an override: when set, nothing
else is searched), ``pkg-config --variable=pmdsdir libdpdk`` if it names a directory,
the ``DPDK_PLUGIN_PATH=`` EAL was built with (read from librte_eal.so), and the
``dpdk/pmds-*`` directory next to librte_eal.so.

Everything is read once per process (``clear_cache`` forgets it).
"""
from __future__ import annotations

import functools
import glob
import json
import os
import re
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path

ENV_DIR = "DP_PMD_DIR"
INFO_PREFIX = b"PMD_INFO_STRING="
PLUGIN_PATH_PREFIX = b"DPDK_PLUGIN_PATH="
PCI_ANY = 0xFFFF                     # a wildcard field of a PCI id

# Keys a PMD parses (they are in its kvargs list) but leaves out of its PMD_INFO_STRING:
# DPDK 22.11's net_tap accepts `persist` (rte_eth_tap.c valid_arguments) while its
# RTE_PMD_REGISTER_PARAM_STRING names only iface, mac and remote. Each is added only when
# the plugin holds the key as a string, so a build without it does not get it.
UNADVERTISED = {"net_tap": (("persist", "(flag; not in PMD_INFO_STRING)"),)}

# The bus registration functions a plugin imports, in the order that decides the bus of
# a driver with neither PCI ids nor a kernel module dependency.
_BUS_SYMBOLS = (("vmbus", "rte_vmbus_register"), ("fslmc", "rte_fslmc_driver_register"),
                ("dpaa", "rte_dpaa_driver_register"),
                ("ifpga", "rte_ifpga_driver_register"),
                ("auxiliary", "rte_auxiliary_register"), ("pci", "rte_pci_register"))
_FILE_RE = re.compile(r"librte_([a-z0-9]+)_(.+?)\.so(\.[0-9.]+)?$")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(?==)")


class Unavailable(Exception):
    """The PMD plugins cannot be read. `short` fits in a validation message; str(e) also
    says where they were looked for."""

    def __init__(self, short: str, detail: str = ""):
        self.short = short
        super().__init__(f"{short}{': ' + detail if detail else ''}")


@dataclass(frozen=True)
class Driver:
    """One driver of one PMD plugin."""
    name: str
    kind: str                                   # net, crypto, event, ... (plugin name)
    bus: str                                    # pci, vdev, vmbus, ... ("" if unknown)
    params: tuple[tuple[str, str], ...]         # (devargs key, value hint), PMD's order
    pci_ids: tuple[tuple[int, ...], ...]        # (vendor, device, subvendor, subdevice)
    kmod: str | None                            # kernel modules it needs (PCI drivers)
    file: str                                   # the plugin it was read from
    params_text: str | None = None              # "params" exactly as the PMD wrote it

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.params)

    @property
    def is_vdev(self) -> bool:
        return self.bus == "vdev"

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "bus": self.bus,
                "params": [{"key": k, "hint": h} for k, h in self.params],
                "params_text": self.params_text, "pci_ids": [list(p) for p in self.pci_ids],
                "kmod": self.kmod, "file": self.file}


# ---------------------------------------------------------------- the plugin directory

def _elffile():
    try:
        from elftools.elf.elffile import ELFFile
    except ImportError:
        raise Unavailable("DPDK PMD plugins not read: pyelftools is not installed",
                          "pip install pyelftools") from None
    return ELFFile


def _pkg_config(variable: str) -> str:
    try:
        r = subprocess.run(["pkg-config", f"--variable={variable}", "libdpdk"],
                           capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def _has_plugins(d: str | Path) -> bool:
    return os.path.isdir(d) and any(os.path.isfile(p)
                                    for p in glob.glob(os.path.join(d, "librte_*.so*")))


def _find_eal() -> Path | None:
    triplet = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [_pkg_config("libdir")]
    for base in ("/usr/lib", "/usr/local/lib"):
        dirs += [f"{base}/{triplet}" if triplet else "", f"{base}64", base]
    for d in filter(None, dirs):
        for p in sorted(glob.glob(os.path.join(d, "librte_eal.so*"))):
            if os.path.isfile(p):
                return Path(p)
    return None


def _elf_strings(path: Path, prefix: bytes) -> list[str]:
    """The NUL-terminated strings starting with prefix in path's .rodata* sections,
    without the prefix."""
    ELFFile = _elffile()
    found = []
    with open(path, "rb") as f:
        for sec in ELFFile(f).iter_sections():
            if sec.name.startswith(".rodata"):
                found += _strings(sec.data(), prefix)
    return found


def _strings(data: bytes, prefix: bytes) -> list[str]:
    out, i = [], data.find(prefix)
    while i >= 0:
        end = data.find(b"\0", i)
        end = len(data) if end < 0 else end
        out.append(data[i + len(prefix):end].decode("utf-8", "replace"))
        i = data.find(prefix, end)
    return out


@functools.lru_cache(maxsize=None)
def _locate() -> tuple[Path | None, str, tuple[str, ...]]:
    """(directory or None, how it was found, the places looked at)."""
    checked = []
    env = os.environ.get(ENV_DIR)
    if env:
        if _has_plugins(env):
            return Path(env), f"${ENV_DIR}", ()
        return None, "", (f"{ENV_DIR}={env} (no librte_*.so in it)",)
    d = _pkg_config("pmdsdir")
    if d and _has_plugins(d):
        return Path(d), "pkg-config --variable=pmdsdir libdpdk", ()
    checked.append("pkg-config --variable=pmdsdir libdpdk"
                   + (f" ({d}: no plugins)" if d else " (no answer)"))
    eal = _find_eal()
    if eal is None:
        checked.append("librte_eal.so (not found)")
        return None, "", tuple(checked)
    try:
        paths = _elf_strings(eal, PLUGIN_PATH_PREFIX)
    except Exception:               # not an ELF file we can read: fall through
        paths = []
    for p in paths:
        if _has_plugins(p.strip()):
            return Path(p.strip()), f"DPDK_PLUGIN_PATH of {eal}", ()
    checked.append(f"DPDK_PLUGIN_PATH of {eal}" + (f" ({paths[0]})" if paths else ""))
    for d in sorted(glob.glob(str(eal.parent / "dpdk" / "pmds-*")), reverse=True):
        if _has_plugins(d):
            return Path(d), f"next to {eal}", ()
    checked.append(f"{eal.parent}/dpdk/pmds-*")
    return None, "", tuple(checked)


def pmd_dir() -> Path:
    """The PMD plugin directory; Unavailable if there is none."""
    d, _, checked = _locate()
    if d is None:
        raise Unavailable("DPDK PMD plugins not found", "checked " + "; ".join(checked))
    return d


def pmd_dir_source() -> str:
    """How pmd_dir() was found (for display)."""
    return _locate()[1]


# -------------------------------------------------------------------- reading a plugin

def parse_params(text: str | None, known=None) -> tuple[tuple[str, str], ...]:
    """`params` of a PMD_INFO_STRING -> ((key, value hint), ...) in order.

    The string is the C concatenation of each key's "key=<hint>" and some PMDs leave out
    the separating space: "phy_mac=<int>infinite_rx=<0|1>" (net_pcap) splits after the
    '>', but "role=server|clientbsize=<int>" (net_memif) cannot be split by syntax. For
    such a glued key, known(key) (is it a string of the plugin?) picks the longest tail
    that is one: "clientbsize" -> "bsize". `key=` inside <...>, [...] or (...) is part
    of a hint."""
    if not text:
        return ()
    depth, depths = 0, []
    for ch in text:
        depths.append(depth)
        depth = max(0, depth + (ch in "<[(") - (ch in ">])"))
    starts = []
    for m in _KEY_RE.finditer(text):
        s, key = m.start(), m.group()
        if depths[s]:
            continue
        glued = s > 0 and text[s - 1] not in " \t,;>])"
        if glued and known is not None and not known(key):
            for j in range(1, len(key) - 1):
                if known(key[j:]):
                    s, key = s + j, key[j:]
                    break
        starts.append((s, key))
    out = []
    for i, (s, key) in enumerate(starts):
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        hint = text[s + len(key) + 1:end].strip().rstrip(",").strip()
        if key not in (k for k, _ in out):
            out.append((key, hint))
    return tuple(out)


def _bus(info: dict, imports: set[str]) -> str:
    """The bus of a driver, inferred (PMD_INFO_STRING does not say): pci if it has PCI
    ids, vdev if not and it needs no kernel module and its plugin registers vdev drivers
    (exact for the net vdevs; the few PCI drivers that publish no id table, like
    octeontx_ssovf, look like vdevs too), else the other bus its plugin registers."""
    if info.get("pci_ids"):
        return "pci"
    if "rte_vdev_register" in imports and not info.get("kmod"):
        return "vdev"
    if info.get("kmod") and "rte_pci_register" in imports:
        return "pci"
    return next((bus for bus, sym in _BUS_SYMBOLS if sym in imports), "")


@functools.lru_cache(maxsize=None)
def read_plugin(path: str) -> tuple[Driver, ...]:
    """The drivers of one plugin file (a real path); () if it is not a readable ELF."""
    ELFFile = _elffile()
    from elftools.common.exceptions import ELFError
    m = _FILE_RE.search(os.path.basename(path))
    kind = m.group(1) if m else ""
    rodata, dynstr = b"", b""
    try:
        with open(path, "rb") as f:
            for sec in ELFFile(f).iter_sections():
                if sec.name.startswith(".rodata"):
                    rodata += sec.data() + b"\0"
                elif sec.name == ".dynstr":
                    dynstr = sec.data()
    except (ELFError, OSError, ValueError):
        return ()
    imports = {sym for _, sym in _BUS_SYMBOLS + (("vdev", "rte_vdev_register"),)
               if b"\0" + sym.encode() + b"\0" in dynstr}

    def known(key: str) -> bool:        # "key\0" ends a string of the plugin (the linker
        return key.encode() + b"\0" in rodata    # may share "iface" with "rx_iface")

    drivers = []
    for text in _strings(rodata, INFO_PREFIX):
        try:
            info = json.loads(text)
            name = info["name"]
        except (ValueError, KeyError, TypeError):
            continue
        params = parse_params(info.get("params"), known)
        for key, hint in UNADVERTISED.get(name, ()):
            if key not in dict(params) and known(key):
                params += ((key, hint),)
        drivers.append(Driver(
            name=name, kind=kind, bus=_bus(info, imports), params=params,
            pci_ids=tuple(tuple(int(x) for x in p) for p in info.get("pci_ids") or ()),
            kmod=info.get("kmod"), file=path, params_text=info.get("params")))
    return tuple(drivers)


@functools.lru_cache(maxsize=None)
def _plugins() -> dict[str, str]:
    """The plugin files of pmd_dir(), each once: {"librte_net_pcap": real path} (the
    directory holds libX.so -> libX.so.23 -> libX.so.23.0)."""
    found = {}
    for p in sorted(glob.glob(str(pmd_dir() / "librte_*.so*"))):
        real = os.path.realpath(p)
        if os.path.isfile(real):
            found.setdefault(os.path.basename(p).split(".so")[0], real)
    return found


# ------------------------------------------------------------------------------ queries

@functools.lru_cache(maxsize=None)
def _all() -> tuple[Driver, ...]:
    paths = dict.fromkeys(_plugins().values())
    found = [drv for path in paths for drv in read_plugin(path)]
    return tuple(sorted(found, key=lambda drv: drv.name))


def discover() -> list[Driver]:
    """Every driver of every plugin, by name. Unavailable if the plugins cannot be read."""
    return list(_all())


@functools.lru_cache(maxsize=None)
def find(name: str) -> Driver | None:
    """The driver called name, or None. Reads the plugin its name points at first
    (net_pcap: librte_net_pcap.so, net_virtio_user: librte_net_virtio.so), and all of
    them only if it is not there."""
    plugins, parts = _plugins(), name.split("_")
    for i in range(len(parts), 1, -1):
        path = plugins.get("librte_" + "_".join(parts[:i]))
        for drv in read_plugin(path) if path else ():
            if drv.name == name:
                return drv
    return next((drv for drv in _all() if drv.name == name), None)


def driver_args(name: str) -> set[str] | None:
    """The devargs keys of driver `name`; None if no plugin has that driver."""
    drv = find(name)
    return None if drv is None else set(drv.keys)


def vdev_names(kind: str = "net") -> list[str]:
    """The virtual-device drivers of `kind` (what --vdev accepts for a port)."""
    return [drv.name for drv in _all() if drv.is_vdev and drv.kind == kind]


def clear_cache() -> None:
    for f in (_locate, read_plugin, _plugins, _all, find):
        f.cache_clear()


def pci_id_text(pci: tuple[int, ...]) -> str:
    """(0x8086, 0x10fb, 0xffff, 0xffff) -> "8086:10fb" (subsystem shown unless any)."""
    fields = [("*" if x == PCI_ANY else f"{x:04x}") for x in pci]
    head = ":".join(fields[:2])
    return head if all(f == "*" for f in fields[2:]) else f"{head} ({':'.join(fields[2:])})"
