"""Hostile input and output around a replay (issue 18, "wrong output today" 2 and 3, and
stale EAL runtime directories): every case ends in bounded time with no traceback, and
either works or says what is wrong in one line with exit status 2.

- Inputs are validated record by record before DPDK sees them: frame length within what
  a replay supports (the mbuf data room, or 16,128 bytes: net_pcap chains segments on RX
  but writes a multi-segment frame longer than that cut; never over 65,535), captured
  length within the original length and the file's snapshot length, link type Ethernet,
  no truncated record; pcapng blocks with a bad length are refused with their number.
- Output is checked against the ports' TX counters (record count and bytes) before a
  replay claims success; an input the run would overwrite, an out-dir in use by another
  replay, an out-dir that cannot be written, and a `run --json` path that cannot be
  written are refused before anything is forwarded.
- SIGINT during start-up or the post-run scan ends in one line or the summary.
- EAL's runtime directory of our --file-prefix (dp<pid>) is gone after every run.

Each test drives `python -m dataplane.cli` in a child process (EAL once per process)."""
from __future__ import annotations

import importlib.util
import json
import os
import resource
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from dpdk_util import (ROOT, cli_argv, child_env, error_lines, finish, no_traceback, port,
                       port_mac, read_pcap, spawn, wait_for, write_config, write_pcap)

SAMPLE_CFG = ROOT / "samples" / "sample.yaml"
SAMPLE_PCAP = ROOT / "samples" / "sample.pcap"
BOUND = 60            # seconds: every case must end well within this

BASE = {
    "node": {"name": "leaf1"},
    "ports": [port("p0", "net_null0", 0), port("up1", "net_null1", 1)],
    "vrfs": {"default": {"routes": [{"prefix": "10.1.0.0/16", "via": "nh1"}]}},
    "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"}},
}


def cli(*args, cwd=ROOT, timeout=BOUND, preexec_fn=None) -> subprocess.CompletedProcess:
    """`dataplane ARGS` to completion (killed and failed past `timeout`)."""
    return subprocess.run(cli_argv(*args), cwd=cwd, env=child_env(), capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


def one_error(r, code: int = 2, *parts: str) -> str:
    """Exactly one `error:` line, containing every part; no traceback; exit `code`."""
    no_traceback(r.stderr)
    assert r.returncode == code, (r.returncode, r.stderr[-3000:])
    lines = error_lines(r.stderr)
    assert len(lines) == 1, r.stderr[-3000:]
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def frame(size: int = 0, dst: str = "10.1.0.5") -> bytes:
    """A UDP frame to p0 routed out of up1, zero-padded to `size` bytes."""
    f = bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
              IP(src="100.64.0.1", dst=dst) / UDP(sport=1000, dport=53) / (b"x" * 18))
    return f + bytes(max(0, size - len(f)))


def pcap_bytes(records, linktype: int = 1, snaplen: int = 262144, version=(2, 4),
               endian: str = "<") -> bytes:
    """A classic pcap; records are frames or (frame, caplen, wirelen) with the header
    fields written as given (the data is the frame, whatever caplen says)."""
    out = [struct.pack(endian + "IHHiIII", 0xA1B2C3D4, *version, 0, 0, snaplen, linktype)]
    for i, r in enumerate(records):
        data, cap, wire = (r, len(r), len(r)) if isinstance(r, bytes) else r
        out.append(struct.pack(endian + "IIII", 1700000000, i, cap, wire) + data)
    return b"".join(out)


def config(tmp_path: Path, eal: dict | None = None, name: str = "cfg.yaml") -> Path:
    doc = json.loads(json.dumps(BASE))
    if eal:
        doc["eal"] = eal
    return write_config(tmp_path / name, doc)


# ---------------------------------------------------------------- pcapng

def block(btype: int, body: bytes, length: int | None = None,
          trailer: int | None = None) -> bytes:
    body += bytes(-len(body) % 4)
    n = 12 + len(body)
    return (struct.pack("<II", btype, n if length is None else length) + body +
            struct.pack("<I", n if trailer is None else trailer))


def shb() -> bytes:
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype: int = 1, snaplen: int = 0) -> bytes:
    return block(1, struct.pack("<HHI", linktype, 0, snaplen))


def epb(data: bytes, caplen: int | None = None, wirelen: int | None = None,
        iface: int = 0) -> bytes:
    return block(6, struct.pack("<IIIII", iface, 0, 0,
                                len(data) if caplen is None else caplen,
                                len(data) if wirelen is None else wirelen) + data)


def spb(data: bytes) -> bytes:
    return block(3, struct.pack("<I", len(data)) + data)


# ================================================================ 1. input validation

def test_good_inputs_replay_and_outputs_are_verified(tmp_path):
    """Classic pcap in both byte orders and pcapng (enhanced and simple packet blocks)
    still replay; the summary records each output file's checked count and bytes."""
    cfg = config(tmp_path)
    frames = [frame(), frame(200), frame(1514)]
    big = tmp_path / "be.pcap"
    big.write_bytes(pcap_bytes(frames, endian=">"))
    ng = tmp_path / "in.pcapng"
    ng.write_bytes(shb() + idb() + epb(frames[0]) + spb(frames[1]) + epb(frames[2]))
    for src in (big, ng):
        out = tmp_path / f"out-{src.suffix[1:]}"
        r = cli("replay", cfg, "--in", src, "--out-dir", out, "-q")
        no_traceback(r.stderr)
        assert r.returncode == 0, r.stderr
        s = json.loads((out / "summary.json").read_text())
        assert s["input_packets"] == s["rx"] == s["tx"] == 3
        assert len(read_pcap(out / "up1.pcap")) == 3
        up1 = s["outputs"]["up1"]
        assert up1["records"] == 3 and up1["bytes"] == sum(map(len, frames))
        assert s["output_errors"] == []


@pytest.mark.parametrize("size", [16129, 65535, 65536, 70000, 262144, 262145])
def test_frame_longer_than_supported_is_refused(tmp_path, size):
    """Over 65,535 bytes used to SIGSEGV the process under net_pcap TX; 262,144/262,145
    gave malformed output or phantom packets. With the default mbuf (2,048 bytes of data
    room) a replay supports 16,128-byte frames. Nothing is written."""
    pcap = tmp_path / "long.pcap"
    pcap.write_bytes(pcap_bytes([frame(), frame(size), frame()]))
    out = tmp_path / "out"
    r = cli("replay", config(tmp_path), "--in", pcap, "--out-dir", out)
    line = one_error(r, 2, "long.pcap", "record 2", f"{size:,}", "16,128")
    assert "eal.mbuf_size" in line
    assert not (out / "up1.pcap").exists()


def test_frame_limit_follows_the_mbuf_data_room(tmp_path):
    """16,128 bytes fit the default pool (segments); with eal.mbuf_size 16,512 (16,384
    bytes of data room) a 16,384-byte frame fits one mbuf, one more byte does not."""
    cfg = config(tmp_path)
    pcap = tmp_path / "jumbo.pcap"
    pcap.write_bytes(pcap_bytes([frame(9000), frame(16128)]))
    r = cli("replay", cfg, "--in", pcap, "--out-dir", tmp_path / "o1", "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    assert error_lines(r.stderr) == []

    cfg = config(tmp_path, eal={"mbuf_size": 16512}, name="big-mbufs.yaml")
    pcap.write_bytes(pcap_bytes([frame(16384)]))
    r = cli("replay", cfg, "--in", pcap, "--out-dir", tmp_path / "o2", "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert s["tx"] == 1
    assert [len(f) for f in read_pcap(tmp_path / "o2" / "up1.pcap")] == [16384]
    pcap.write_bytes(pcap_bytes([frame(), frame(16385)]))
    r = cli("replay", cfg, "--in", pcap, "--out-dir", tmp_path / "o3")
    one_error(r, 2, "jumbo.pcap", "record 2", "16,385", "16,384", "eal.mbuf_size 16512")


@pytest.mark.parametrize("case, records, header, parts", [
    ("caplen over len", [frame(), (frame(100), 100, 60)], {}, ["record 2", "100", "60"]),
    ("caplen over snaplen", [frame(), frame(9000)], {"snaplen": 1500},
     ["record 2", "9,000", "1,500", "snapshot"]),
    ("raw IP", [frame()[14:]], {"linktype": 101}, ["link type 101", "Ethernet (1)"]),
    ("other link type", [frame()], {"linktype": 113}, ["link type 113", "Ethernet (1)"]),
    ("header cut", None, {}, ["record 3", "truncated"]),
    ("data cut", None, {}, ["record 3", "truncated"]),
    ("version", [frame()], {"version": (3, 0)}, ["version 3.0"]),
])
def test_bad_classic_pcap_is_refused(tmp_path, case, records, header, parts):
    data = pcap_bytes(records or [frame()] * 3, **header)
    if case == "header cut":
        data = data[:-(len(frame()) + 6)]          # 10 of the record header's 16 bytes
    elif case == "data cut":
        data = data[:-5]
    pcap = tmp_path / "bad.pcap"
    pcap.write_bytes(data)
    out = tmp_path / "out"
    r = cli("replay", config(tmp_path), "--in", pcap, "--out-dir", out)
    one_error(r, 2, "bad.pcap", *parts)
    assert not (out / "up1.pcap").exists()


@pytest.mark.parametrize("case, data, parts", [
    # the counting loop used to seek back by 8 (length 0) or 4 (length 4) for ever
    ("length 0", shb() + idb() + epb(frame()) + block(6, b"\0" * 20, length=0),
     ["block 4", "length 0"]),
    ("length 4", shb() + idb() + block(6, b"\0" * 20, length=4) + epb(frame()),
     ["block 3", "length 4"]),
    ("not a multiple of 4", shb() + idb() + epb(frame()) + block(6, b"\0" * 20, length=30),
     ["block 4", "length 30", "multiple of 4"]),
    ("past the end", shb() + idb() + epb(frame()) + block(6, b"\0" * 20, length=4000),
     ["block 4", "length 4,000", "end of the file"]),
    ("trailer", shb() + idb() + block(6, epb(frame())[8:-4], trailer=8) + epb(frame()),
     ["block 3", "trailer"]),
    ("raw IP interface", shb() + idb(101) + epb(frame()[14:]), ["block 2", "link type 101"]),
    ("long frame", shb() + idb() + epb(frame()) + epb(frame(70000)),
     ["block 4", "packet 2", "70,000"]),
    ("caplen over len", shb() + idb() + epb(frame(100), wirelen=60),
     ["block 3", "packet 1", "100", "60"]),
    ("caplen past block", shb() + idb() + epb(frame(), caplen=500), ["block 3", "packet 1"]),
    ("no interface", shb() + epb(frame()), ["block 2", "interface"]),
])
def test_bad_pcapng_is_refused_in_bounded_time(tmp_path, case, data, parts):
    pcap = tmp_path / "bad.pcapng"
    pcap.write_bytes(data)
    out = tmp_path / "out"
    r = cli("replay", config(tmp_path), "--in", pcap, "--out-dir", out, timeout=30)
    one_error(r, 2, "bad.pcapng", *parts)
    assert not (out / "up1.pcap").exists()


def test_fifo_as_input_is_refused_in_bounded_time(tmp_path):
    fifo = tmp_path / "in.pcap"
    os.mkfifo(fifo)
    r = cli("replay", config(tmp_path), "--in", fifo, "--out-dir", tmp_path / "out",
            timeout=30)
    one_error(r, 2, "in.pcap", "not a regular file")


# ================================================================ 2. output

def test_input_the_run_would_write_is_refused(tmp_path):
    """--in naming a file the replay writes (directly, through a symlink, a relative
    path with .., or a hard link) is refused before anything is written."""
    cfg = config(tmp_path)
    x = tmp_path / "x"
    x.mkdir()
    data = pcap_bytes([frame()] * 5)
    (x / "p0.pcap").write_bytes(data)
    (x / "up1.pcap").write_bytes(data)
    (tmp_path / "link.pcap").symlink_to(x / "up1.pcap")
    os.link(x / "p0.pcap", tmp_path / "hard.pcap")
    cases = [(["--in", x / "p0.pcap", "--out-dir", x], ROOT),
             (["--in", "p0=" + str(tmp_path / "link.pcap"), "--out-dir", x], ROOT),
             (["--in", "x/../x/up1.pcap", "--out-dir", "./x"], tmp_path),
             (["--in", tmp_path / "hard.pcap", "--out-dir", x], ROOT)]
    for args, cwd in cases:
        before = {p.name: p.stat().st_mtime_ns for p in x.iterdir()}
        r = cli("replay", cfg, *args, cwd=cwd)
        one_error(r, 2, "--out-dir", "would overwrite")
        assert (x / "p0.pcap").read_bytes() == data
        assert (x / "up1.pcap").read_bytes() == data
        assert {p.name: p.stat().st_mtime_ns for p in x.iterdir()} == before, args


@pytest.mark.parametrize("case", ["file", "under a file"])
def test_out_dir_that_is_not_a_directory(tmp_path, case):
    f = tmp_path / "f"
    f.write_text("x")
    pcap = tmp_path / "in.pcap"
    pcap.write_bytes(pcap_bytes([frame()]))
    out = f if case == "file" else f / "sub"
    r = cli("replay", config(tmp_path), "--in", pcap, "--out-dir", out)
    one_error(r, 2, "--out-dir", str(out), "not a directory")
    assert f.read_text() == "x"


@pytest.fixture
def tmpfs(tmp_path):
    """Mount a small tmpfs (root only): yields a function mount(options) -> path."""
    mounted = []

    def mount(options: str) -> Path:
        where = tmp_path / f"mnt{len(mounted)}"
        where.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
        mounted.append(where)
        return where
    yield mount
    for where in mounted:
        subprocess.run(["umount", str(where)], capture_output=True)


def test_out_dir_read_only(tmp_path, tmpfs):
    ro = tmpfs("ro,size=64k")
    r = cli("replay", SAMPLE_CFG, "--in", SAMPLE_PCAP, "--out-dir", ro)
    one_error(r, 2, "--out-dir", str(ro), "Read-only file system")
    r = cli("replay", SAMPLE_CFG, "--in", SAMPLE_PCAP, "--out-dir", ro / "sub")
    one_error(r, 2, "--out-dir", "Read-only file system")


def test_full_filesystem_is_output_loss(tmp_path, tmpfs):
    """Outputs of ~1.7 MB into a 64 KiB tmpfs: not a success, not a traceback."""
    small = tmpfs("size=64k")
    r = cli("replay", SAMPLE_CFG, "--in", SAMPLE_PCAP, "--out-dir", small / "out")
    line = one_error(r, 2, "output lost")
    assert "up1.pcap" in line or "No space left on device" in line
    assert "packets in" in r.stdout                       # the summary is still shown


def limit_file_size(limit: int):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return set_limit


def test_file_size_limit_is_output_loss(tmp_path):
    """`ulimit -f`: net_pcap's writes fail silently past the limit; the replay used to
    exit 0 claiming every packet forwarded while the pcap held a fraction and a cut
    record."""
    out = tmp_path / "out"
    r = cli("replay", SAMPLE_CFG, "--in", SAMPLE_PCAP, "--out-dir", out,
            preexec_fn=limit_file_size(300_000))
    line = one_error(r, 2, "output lost", "up1.pcap")
    s = json.loads((out / "summary.json").read_text())
    assert s["output_errors"] and "up1.pcap" in s["output_errors"][0]
    assert s["ports"]["up1"]["tx"] > 0
    assert str(s["ports"]["up1"]["tx"]) in line.replace(",", "")


@pytest.fixture(scope="module")
def long_pcap(tmp_path_factory) -> Path:
    """1.2 M frames of the sample (long enough to be caught running)."""
    frames = read_pcap(SAMPLE_PCAP)
    path = tmp_path_factory.mktemp("long") / "long.pcap"
    write_pcap(path, (frames[i % len(frames)] for i in range(1_200_000)))
    return path


def test_second_replay_into_a_busy_out_dir_is_refused(tmp_path, long_pcap):
    """Replay A runs (held still with SIGSTOP while B tries); B into the same out-dir is
    refused in one line and A's results are its own."""
    cfg = config(tmp_path)
    out = tmp_path / "out"
    a = spawn("replay", cfg, "--in", long_pcap, "--out-dir", out, "-q",
              stderr_file=tmp_path / "a.err")
    try:
        wait_for(lambda: (out / "up1.pcap").exists() or a.poll() is not None, BOUND,
                 "replay A's output")
        assert a.poll() is None, (tmp_path / "a.err").read_text()
        os.kill(a.pid, signal.SIGSTOP)
        try:
            small = tmp_path / "small.pcap"
            small.write_bytes(pcap_bytes([frame()] * 3))
            r = cli("replay", cfg, "--in", small, "--out-dir", out, timeout=30)
        finally:
            os.kill(a.pid, signal.SIGCONT)
        one_error(r, 2, "--out-dir", str(out), "another replay")
        rc, _, _ = finish(a, timeout=120)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    no_traceback((tmp_path / "a.err").read_text())
    assert rc == 0, (tmp_path / "a.err").read_text()
    s = json.loads((out / "summary.json").read_text())
    assert s["inputs"] == {"p0": str(long_pcap)} and s["rx"] == 1_200_000
    assert s["outputs"]["up1"]["records"] == s["ports"]["up1"]["tx"]


def test_run_json_unwritable_is_refused_before_forwarding(tmp_path):
    cfg = config(tmp_path)
    for target, why in ((tmp_path / "no-such-dir" / "s.json", "No such file or directory"),
                        (tmp_path, "Is a directory")):
        t0 = time.monotonic()
        r = cli("run", cfg, "--duration", 20, "--json", target, "-q",
                "--socket", tmp_path / "ctl.sock")
        one_error(r, 2, "--json", str(target), why)
        assert time.monotonic() - t0 < 15          # it did not forward for 20 s first
        assert "packets in" not in r.stdout


# ================================================================ SIGINT

def test_sigint_during_start_up(tmp_path, long_pcap):
    """Ctrl-C while the replay validates its input / starts EAL: one line, no traceback."""
    out = tmp_path / "out"
    errf = tmp_path / "err.txt"
    proc = spawn("replay", config(tmp_path), "--in", long_pcap, "--out-dir", out, "-q",
                 stderr_file=errf)
    try:
        wait_for(lambda: out.exists() or proc.poll() is not None, BOUND, "the out-dir")
        os.kill(proc.pid, signal.SIGINT)
        rc, stdout, _ = finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = errf.read_text()
    no_traceback(err)
    assert rc in (1, 2), err
    if rc == 2:
        assert len(error_lines(err)) == 1 and "interrupted" in error_lines(err)[0], err
    else:                                        # it got as far as forwarding: a summary
        assert json.loads((out / "summary.json").read_text())["interrupted"] is True


def test_sigint_during_post_run_scan(tmp_path):
    """Ctrl-C while flows per group member are counted from the outputs: the summary is
    still printed and written, marked interrupted, no traceback. Flow mode takes those
    counts from the flow tables at once (spread.table_flow_counts), so p0 is in packet
    mode here, which makes the replay scan its outputs: 2 M frames of 1 M flows
    (bench/replay_scale.py's traffic), half of them over the group."""
    spec = importlib.util.spec_from_file_location("bench_replay_scale",
                                                  ROOT / "bench" / "replay_scale.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cfg = tmp_path / "packet-mode.yaml"
    cfg.write_text(bench.CONFIG.replace('mac: "02:00:00:00:00:01"}',
                                        'mac: "02:00:00:00:00:01", mode: packet}', 1))
    pcap = tmp_path / "flows.pcap"
    bench.make_pcap(str(pcap), 2_000_000, 1_000_000)
    out = tmp_path / "out"
    errf = tmp_path / "err.txt"
    proc = spawn("replay", cfg, "--in", pcap, "--out-dir", out, stderr_file=errf)
    try:
        # flows.json is written just before the scan of the outputs starts
        wait_for(lambda: (out / "flows.json").exists() or proc.poll() is not None, 120,
                 "flows.json", step=0.002)
        assert proc.poll() is None, errf.read_text()
        os.kill(proc.pid, signal.SIGINT)
        rc, stdout, _ = finish(proc, timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = errf.read_text()
    no_traceback(err)
    assert "packets in" in stdout and "interrupted" in stdout, stdout
    assert rc == 1, err
    s = json.loads((out / "summary.json").read_text())
    assert s["interrupted"] is True and s["not_received"] == 0
    assert "flows" not in s["groups"]["spines"]          # the scan did not finish
    assert s["flow_counts_from"] is None


# ================================================================ 3. EAL runtime dirs

def runtime_dir(pid: int) -> Path:
    """EAL's runtime directory for --file-prefix dp<pid> (EAL's own rule)."""
    base = os.environ.get("RUNTIME_DIRECTORY") or (
        "/var/run" if os.getuid() == 0 else os.environ.get("XDG_RUNTIME_DIR", "/tmp"))
    return Path(base) / "dpdk" / f"dp{pid}"


@pytest.mark.parametrize("case", ["replay", "run", "run error", "replay output lost"])
def test_no_stale_runtime_dir(tmp_path, case):
    small = tmp_path / "in.pcap"
    small.write_bytes(pcap_bytes([frame()] * 10))
    sock = ("--socket", tmp_path / "ctl.sock")
    if case == "replay":
        args = ("replay", config(tmp_path), "--in", small, "--out-dir", tmp_path / "o", "-q")
    elif case == "run":
        args = ("run", config(tmp_path), "--duration", 0.5, "-q", *sock)
    elif case == "run error":        # after EAL started: the vdev cannot be created
        doc = json.loads(json.dumps(BASE))
        doc["ports"][0]["devargs"] = f"net_pcap0,rx_pcap={tmp_path / 'missing.pcap'}"
        args = ("run", write_config(tmp_path / "err.yaml", doc), "--duration", 1, *sock)
    else:
        args = ("replay", SAMPLE_CFG, "--in", SAMPLE_PCAP, "--out-dir", tmp_path / "o", "-q")
    proc = subprocess.Popen(cli_argv(*args), cwd=ROOT, env=child_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit_file_size(300_000)
                            if case == "replay output lost" else None)
    try:
        rc, _, err = finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    no_traceback(err)
    assert rc == {"replay": 0, "run": 0, "run error": 3, "replay output lost": 2}[case], err
    assert not runtime_dir(proc.pid).exists()
