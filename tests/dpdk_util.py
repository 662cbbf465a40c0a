"""Helpers for tests/test_dpdk.py: run the `dataplane` CLI in a child process (EAL
initializes once per process, and each child gets its own --file-prefix dp<pid>), write
configurations and pcaps, and read pcaps back."""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import yaml
from scapy.utils import RawPcapReader

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60          # generous: other DPDK processes may share the two cores


def cli_argv(*args) -> list[str]:
    return [sys.executable, "-m", "dataplane.cli", *map(str, args)]


def child_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("COLUMNS", None)      # rich must not wrap lines whatever the width
    return env


def dataplane(*args, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    """Run `dataplane ARGS` to completion; stdout/stderr captured as text."""
    return subprocess.run(cli_argv(*args), cwd=ROOT, env=child_env(), capture_output=True,
                          text=True, timeout=timeout)


def spawn(*args, stderr_file: Path | None = None) -> subprocess.Popen:
    """Start `dataplane ARGS`; stderr goes to stderr_file if given (so a test can watch
    it without blocking reads), else to a pipe."""
    err = open(stderr_file, "w") if stderr_file else subprocess.PIPE
    try:
        return subprocess.Popen(cli_argv(*args), cwd=ROOT, env=child_env(),
                                stdout=subprocess.PIPE, stderr=err, text=True)
    finally:
        if stderr_file:
            err.close()


def finish(proc: subprocess.Popen, timeout: float = TIMEOUT) -> tuple[int, str, str]:
    """Wait for proc; on timeout kill it (by its own pid) and fail."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"dataplane did not exit within {timeout} s\n"
                             f"stdout:\n{out}\nstderr:\n{err}")
    return proc.returncode, out, err


def interrupt(proc: subprocess.Popen, sig: int = signal.SIGINT) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text, text


def error_lines(stderr: str) -> list[str]:
    """Our own error lines (DPDK's log lines on stderr are left aside)."""
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ---------------------------------------------------------------- configurations

def port(name: str, devargs: str, index: int, vrf: str | None = "default",
         xconnect: str | None = None) -> dict:
    p = {"name": name, "devargs": devargs, "mac": port_mac(index)}
    if vrf:
        p["vrf"] = vrf
    if xconnect:
        p["xconnect"] = xconnect
    return p


def port_mac(index: int) -> str:
    return f"02:00:00:00:00:{index + 1:02x}"


def write_config(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# ---------------------------------------------------------------- pcaps

def write_pcap(path: Path, frames) -> Path:
    """A classic little-endian microsecond pcap, Ethernet link type."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            b = bytes(frame)
            f.write(struct.pack("<IIII", 1700000000 + i // 1000, (i % 1000) * 1000,
                                len(b), len(b)))
            f.write(b)
    return path


def read_pcap(path: Path) -> list[bytes]:
    return [bytes(data) for data, _meta in RawPcapReader(str(path))]


def wait_for(predicate, timeout: float, what: str, step: float = 0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = predicate()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
