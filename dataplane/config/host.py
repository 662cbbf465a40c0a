"""Checks of a valid configuration against the host it is about to run on (issue 18):
the CPUs its lcores name, and the memory it maps.

The CPUs an lcore may run on are the online CPUs within this process's cpuset cgroup:
EAL sets each lcore thread's affinity itself, so a narrower affinity inherited from the
parent (taskset, or a test process whose own EAL pinned it to CPU 0) is no limit, and
os.sched_getaffinity() is only the answer when neither can be read.

`dataplane check`, `run` and `replay` apply these checks (config.load(..., host=True));
`load_text` and the offline views (explain, nh) do not, so a configuration can be
written and examined on another machine.

Errors are in the configuration's format, ``<file>: <path>: must be <rule>, got <value>``.

Memory available is the smaller of the host's MemAvailable and the room left under
every memory cgroup limit above this process (v2 ``memory.max``, v1
``memory.limit_in_bytes``; the room is the limit less the cgroup's usage, page cache that
can be reclaimed — ``inactive_file`` — not counted as used).
"""
from __future__ import annotations

import os
from typing import Optional

from .lcores import parse_map
from .memory import MiB, need

PROC = "/proc"                    # tests point these at a fake tree
SYS = "/sys"
UNLIMITED = 1 << 60               # a cgroup limit at least this large is none


def parse_cpu_list(text: Optional[str]) -> Optional[set[int]]:
    """"0-2,5" -> {0, 1, 2, 5}; None if text is None or not a CPU list."""
    if text is None or not text.strip():
        return None
    out = set()
    try:
        for part in text.strip().split(","):
            a, _, b = part.partition("-")
            out.update(range(int(a), int(b or a) + 1))
    except ValueError:
        return None
    return out


def cpus() -> set[int]:
    """The CPUs this process's threads may be placed on: online, and in its cpuset
    cgroup (v2 cpuset.cpus.effective, v1 cpuset.effective_cpus)."""
    online = parse_cpu_list(_read(f"{SYS}/devices/system/cpu/online"))
    allowed = None
    for version, d in _cgroup_dirs("cpuset"):
        name = "cpuset.cpus.effective" if version == "v2" else "cpuset.effective_cpus"
        allowed = parse_cpu_list(_read(f"{d}/{name}"))
        if allowed is not None:
            break
    if online is None:
        return set(os.sched_getaffinity(0)) if allowed is None else allowed
    return online if allowed is None else online & allowed


def cpu_list(ids) -> str:
    """{0, 1, 2, 5} -> "0-2,5"."""
    out, ids = [], sorted(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        out.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(out)


# ------------------------------------------------------------------------------ memory

def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return None


def _int(text: Optional[str]) -> Optional[int]:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None             # "max" (v2: no limit) and anything unreadable


def meminfo() -> dict[str, int]:
    """/proc/meminfo in bytes (the HugePages_ counts as they are)."""
    out = {}
    for line in (_read(f"{PROC}/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key] = int(parts[0]) << (10 if parts[1:] == ["kB"] else 0)
    return out


def _stat(path: str, key: str) -> int:
    for line in (_read(path) or "").splitlines():
        k, _, v = line.partition(" ")
        if k == key and v.strip().isdigit():
            return int(v)
    return 0


def _mounts() -> list[tuple[str, str, str, str]]:
    """(root, mount point, fs type, super options) of each cgroup mount of this
    process's namespace, from mountinfo."""
    out = []
    for line in (_read(f"{PROC}/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, rfields = left.split(), right.split()
        if sep and len(fields) >= 5 and len(rfields) >= 3 and \
                rfields[0] in ("cgroup", "cgroup2"):
            out.append((fields[3], fields[4], rfields[0], rfields[2]))
    return out


def _cgroup_dirs(controller: str = "memory") -> list[tuple[str, str]]:
    """(version, directory) of this process's cgroup of `controller` and each of its
    ancestors up to the mount's root, innermost first, for v2 and v1 hierarchies."""
    v2_path = v1_path = None
    for line in (_read(f"{PROC}/self/cgroup") or "").splitlines():
        num, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if num == "0" and controllers == "":
            v2_path = path
        elif controller in controllers.split(","):
            v1_path = path
    out = []
    for root, mount, fstype, options in _mounts():
        if fstype == "cgroup2" and v2_path is not None:
            version, path = "v2", v2_path
        elif fstype == "cgroup" and v1_path is not None and \
                controller in options.split(","):
            version, path = "v1", v1_path
        else:
            continue
        rel = os.path.relpath(path, root) if path.startswith(root) else "."
        parts = [] if rel in (".", "") else rel.split("/")
        for i in range(len(parts), -1, -1):
            out.append((version, os.path.join(mount, *parts[:i])))
    return out


def cgroup_room() -> Optional[tuple[int, int, int, str]]:
    """(room, limit, in use, directory) of the tightest memory cgroup limit above this
    process; None when no limit applies."""
    best = None
    for version, d in _cgroup_dirs():
        if version == "v2":
            limit = _int(_read(f"{d}/memory.max"))
            usage = _int(_read(f"{d}/memory.current"))
            cache = _stat(f"{d}/memory.stat", "inactive_file")
        else:
            limit = _int(_read(f"{d}/memory.limit_in_bytes"))
            usage = _int(_read(f"{d}/memory.usage_in_bytes"))
            cache = _stat(f"{d}/memory.stat", "total_inactive_file")
        if limit is None or limit >= UNLIMITED:
            continue
        used = max(0, (usage or 0) - cache)
        room = max(0, limit - used)
        if best is None or room < best[0]:
            best = (room, limit, used, d)
    return best


def available_memory() -> tuple[int, str]:
    """(bytes this process can still use, what limits it)."""
    info = meminfo()
    avail = info.get("MemAvailable")
    what = f"{avail // MiB} MiB available (MemAvailable)" if avail is not None else ""
    cg = cgroup_room()
    if cg is not None and (avail is None or cg[0] < avail):
        room, limit, used, d = cg
        avail, what = room, (f"{room // MiB} MiB available under the memory cgroup limit "
                             f"({d}: {limit // MiB} MiB, {used // MiB} MiB in use)")
    return (avail if avail is not None else UNLIMITED), what


# -------------------------------------------------------------------------------- check

def host_errors(cfg, file: str) -> list[str]:
    """What in cfg (a valid Config) this host cannot provide, one line each."""
    errors = []
    e = cfg.eal
    ids, places = parse_map(e.lcores)
    allowed = cpus()
    missing = sorted({c for cpus_of in places for c in cpus_of} - allowed)
    if missing:
        errors.append(
            f"{file}: eal.lcores: must name CPUs this process may run on "
            f"({cpu_list(allowed)}; {'CPU' if len(missing) == 1 else 'CPUs'} "
            f"{cpu_list(missing)} {'is' if len(missing) == 1 else 'are'} not), "
            f"got {e.lcores!r}")
    workers = max(1, len(ids) - 1)
    n = need(cfg, workers)
    if not e.no_huge:
        info = meminfo()
        free = info.get("HugePages_Free", 0) * info.get("Hugepagesize", 0)
        want = max(n.eal_bytes, e.memory_mb * MiB)
        if want > free:
            errors.append(
                f"{file}: eal.no_huge: must be true on this host (huge pages: this "
                f"configuration needs {-(-want // MiB)} MiB, {free // MiB} MiB free), got False")
    outside = n.outside_bytes
    parts = list(n.outside)
    if e.no_huge:      # EAL's memory is ordinary memory too; mlock makes all of it resident
        eal = e.memory_mb * MiB if e.mlock else n.eal_bytes
        parts.append((f"EAL memory of {e.memory_mb} MiB" if e.mlock else "EAL memory", eal,
                      "eal.memory_mb"))
        outside += eal
    avail, what = available_memory()
    if outside > avail:
        by_key: dict[str, int] = {}
        for _, b, key in parts:
            by_key[key] = by_key.get(key, 0) + b
        keys = sorted(by_key, key=by_key.get, reverse=True)     # the largest is blamed
        label = {"eal.mbufs": "mbuf pool", "flow_table.entries": "flow tables",
                 "eal.memory_mb": "EAL memory"}
        value = {"eal.mbufs": e.mbufs, "flow_table.entries": cfg.flow_table.entries,
                 "eal.memory_mb": e.memory_mb}
        detail = ", ".join(f"{label[k]} {-(-by_key[k] // MiB)} MiB" for k in keys)
        errors.append(
            f"{file}: {keys[0]}: must fit this host's memory: the forwarder needs "
            f"{-(-outside // MiB)} MiB ({detail}), {what}: lower {', '.join(keys[:-1])}"
            f"{' or ' if len(keys) > 1 else ''}{keys[-1]}, got {value[keys[0]]}")
    return errors
