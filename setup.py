"""Build the Cython packet path against DPDK 22.11, found only through pkg-config."""
import os
import shlex
import subprocess
import sys

from Cython.Build import cythonize
from setuptools import Extension, setup


def pkg_config(*args):
    try:
        out = subprocess.check_output(["pkg-config", *args, "libdpdk"], text=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"pkg-config libdpdk failed ({e}): install dpdk-dev libdpdk-dev "
                         "(make setup does it)")
    return shlex.split(out)


cflags = pkg_config("--cflags")
# net_ring for the loopback port (rte_eth_from_ring); EAL loads the other PMDs itself
libs = pkg_config("--libs") + ["-lrte_net_ring"]
debug = os.environ.get("DP_DEBUG") == "1"
extra = ["-O3", "--param", "max-inline-insns-single=2000", "--param", "max-inline-insns-auto=400", "--param", "early-inlining-insns=200", "-Wall", "-Wno-unused-function", "-Wno-unused-variable",
         "-Wno-unreachable-code", "-DDP_DEBUG=%d" % debug]


def ext(name, src):
    import numpy
    return Extension(name, [src], include_dirs=["pyx", "pyx/includes", numpy.get_include()],
                     extra_compile_args=cflags + extra, extra_link_args=libs)


extensions = [ext("dataplane._core", "pyx/loop.pyx"),
              ext("dataplane._hashing", "pyx/hashing.pyx"),
              ext("dataplane._rss", "pyx/rss.pyx"),
              ext("dataplane._pcapscan", "pyx/pcapscan.pyx"),   # replay's pcap walks
              ext("dataplane._micro", "pyx/micro.pyx")]    # bench/micro only
# DP_EXT=dataplane._rss,... builds only those modules (others may be mid-edit)
only = {name.strip() for name in os.environ.get("DP_EXT", "").split(",") if name.strip()}
if only:
    unknown = only - {e.name for e in extensions}
    if unknown:
        raise SystemExit(f"DP_EXT: unknown extension(s) {', '.join(sorted(unknown))}; "
                         f"known: {', '.join(e.name for e in extensions)}")
    extensions = [e for e in extensions if e.name in only]

# pyx/consts.pxd (limits and counter slots) from dataplane/limits.py: one source
subprocess.check_call([sys.executable, "tools/gen_consts.py"],
                      cwd=os.path.dirname(os.path.abspath(__file__)))

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["pyx"],
        compiler_directives={"language_level": 3, "boundscheck": False,
                             "wraparound": False, "cdivision": True},
        quiet=True,
    ),
)
