"""Where TRex's client library is, and the streams a profile compiles to in it.

The library is TRex's own (`trex.stl.api`): from `TREX_STL_LIB`, else the copy that
ships beside this project (`../shared/trex/...`), else a TRex install under /opt/trex.
It runs in a subprocess of a plain python3 (`TREX_PYTHON`, else /usr/bin/python3)
because it puts its bundled scapy 2.4.3 first on sys.path.
"""
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

SUBDIR = "scripts/automation/trex_control_plane/interactive"
ROOT = Path(__file__).resolve().parents[2]          # the project's root
DUMP = Path(__file__).with_name("_dump.py")


class TrexError(Exception):
    """The library is missing or a profile does not load in it (one-line message)."""


def _candidates():
    env = os.environ.get("TREX_STL_LIB")
    if env:
        yield Path(env)
        return
    for parent in [ROOT, *ROOT.parents]:            # ../shared/trex of this clone, or above it
        yield parent / "shared" / "trex" / SUBDIR
    yield Path("/work/shared/trex") / SUBDIR
    for d in sorted(glob.glob("/opt/trex/*/automation/trex_control_plane/interactive"),
                    reverse=True):
        yield Path(d)


def find_library():
    """The directory holding TRex's `trex/stl/api.py`, or TrexError saying where it looked."""
    looked = []
    for d in _candidates():
        if (d / "trex" / "stl" / "api.py").is_file():
            return d
        looked.append(str(d))
    if os.environ.get("TREX_STL_LIB"):
        raise TrexError(f"TREX_STL_LIB={os.environ['TREX_STL_LIB']} holds no trex/stl/api.py")
    raise TrexError("TRex's client library not found (set TREX_STL_LIB to .../"
                    "automation/trex_control_plane/interactive); looked in " + looked[0] +
                    " and above, and /opt/trex")


def find_python():
    """A python3 outside dataplane's venv, which TRex's library runs in."""
    env = os.environ.get("TREX_PYTHON")
    if env:
        return env
    for p in ("/usr/bin/python3", shutil.which("python3")):
        if p and os.access(p, os.X_OK):
            return p
    raise TrexError("no python3 for TRex's library (set TREX_PYTHON)")


def load_streams(profile, tunables=(), port=0, direction=None, timeout=120):
    """The profile's streams as TRex's client compiles them (`STLStream.to_json()` plus
    `name` and `next`), loaded for `port` (direction defaults to port % 2, as TRex does)."""
    profile = Path(profile)
    if not profile.is_file():
        raise TrexError(f"{profile}: no such profile")
    if direction is None:
        direction = port % 2
    cmd = [find_python(), str(DUMP), str(find_library()), str(profile.resolve()),
           str(port), str(direction), *map(str, tunables)]
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=profile.resolve().parent)
    except subprocess.TimeoutExpired:
        raise TrexError(f"{profile}: TRex's library took over {timeout} s to load it") from None
    if r.returncode == 3:
        # TRex's loader takes any SystemExit of the profile's argparse for "-t --help":
        # usage on stdout for --help, the error on stderr for a bad tunable
        if r.stderr.strip():
            raise TrexError(f"{profile}: bad tunables {' '.join(map(str, tunables))}: "
                            f"{r.stderr.strip().splitlines()[-1]}")
        raise TrexError(f"{profile}: -t --help:\n{r.stdout.strip()}")
    if r.returncode != 0:
        err = (r.stderr.strip() or r.stdout.strip()).splitlines() or ["(no message)"]
        # TRex's loader wraps the profile's exception in a traceback: its last line says it
        raise TrexError(f"{profile}: does not load in TRex's library: {err[-1].strip()}")
    return json.loads(r.stdout)["streams"]
