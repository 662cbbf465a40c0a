"""`dataplane run --loop PCAP`: every port is a net_ring loopback (one rte_ring as RX and
TX queue) preloaded with the pcap's frames, the no-copy source bench/throughput.py uses
for flow setup. The pcap walker is checked against files scapy writes (both byte orders,
µs and ns stamps); a run against counts worked out by hand from each frame's TTL (a frame
sent with TTL t is received t times: t - 1 forwards, then ttl_expired); bad files are one
clear error line.
"""
from __future__ import annotations

import json

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw
from scapy.utils import PcapNgWriter, RawPcapWriter

from dataplane import _core
from dataplane.drops import DROP_REASONS
from dpdk_util import dataplane, no_traceback, port, port_mac, write_config, write_pcap

SRC = "02:aa:00:00:00:01"


def loop_config(tmp_path, mbuf_size: int = 2176, lcores: str = "0-1"):
    doc = {"node": {"name": "loop"},
           "eal": {"lcores": lcores, "memory_mb": 256, "mbufs": 4096, "mbuf_size": mbuf_size},
           # devargs are not used under --loop: the ports are rings made after EAL starts
           "ports": [port("p0", "net_null0", 0)],
           "nexthops": {"nh1": {"port": "p0", "mac": "02:00:00:00:01:01"}},
           "vrfs": {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "nh1"},
                                           {"prefix": "2001:db8::/32", "via": "nh1"}]}}}
    return write_config(tmp_path / "loop.yaml", doc)


def frame(*layers) -> bytes:
    pkt = Ether(src=SRC, dst=port_mac(0))
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


def scapy_pcap(path, frames, **kw):
    w = RawPcapWriter(str(path), linktype=kw.pop("linktype", 1), **kw)
    for f in frames:
        w.write(f)
    w.close()
    return path


# ---------------------------------------------------------------- the pcap walker

@pytest.mark.parametrize("kw", [{}, {"endianness": ">"}, {"nano": True},
                                {"endianness": ">", "nano": True}])
def test_pcap_frames_matches_scapy_writer(tmp_path, kw):
    frames = [frame(IP(dst=f"10.0.0.{i}"), UDP(), Raw(b"x" * i)) for i in range(1, 40)]
    data = scapy_pcap(tmp_path / "f.pcap", frames, **kw).read_bytes()
    assert _core.pcap_frames(data) == (len(frames), max(map(len, frames)), 1)


def test_pcap_frames_rejects_bad_files(tmp_path):
    data = write_pcap(tmp_path / "f.pcap", [frame(IP(), UDP())] * 3).read_bytes()
    assert _core.pcap_frames(data[:24]) == (0, 0, 1)          # header only: no frames
    with pytest.raises(ValueError, match=r"truncated.*after 2 frames"):
        _core.pcap_frames(data[:-1])
    with pytest.raises(ValueError, match=r"truncated.*after 3 frames"):
        _core.pcap_frames(data + b"\0" * 10)                   # half a record header
    for bad in (b"", data[:23], b"\0" * 64):
        with pytest.raises(ValueError, match="not a classic pcap"):
            _core.pcap_frames(bad)


# ---------------------------------------------------------------- a run

@pytest.mark.parametrize("lcores", ["0-1", "0@0,1@1,2@0", "0@0,1@1,2@0,3@1"])
def test_loop_run_counts_by_ttl(tmp_path, lcores):
    """With N workers each worker has its own ring per port (filled by RSS); what a
    worker sends comes back to it, so the TTL arithmetic holds worker by worker."""
    ttl_frames = [(frame(IP(src="100.64.0.1", dst="10.1.0.1", ttl=5), UDP(sport=1000)), 5),
                  (frame(IP(src="100.64.0.1", dst="10.2.0.1", ttl=3), TCP(sport=7)), 3),
                  (frame(IPv6(src="2001:db8:aa::1", dst="2001:db8:1::1", hlim=4), UDP()), 4)]
    ttl_frames += [(frame(IP(src=f"100.64.1.{i}", dst=f"10.3.0.{i}", ttl=2 + i % 5),
                          UDP(sport=2000 + i, dport=53)), 2 + i % 5) for i in range(40)]
    no_route = frame(IP(src="100.64.0.1", dst="198.51.100.1"), UDP())
    arp = frame(ARP())
    frames = [f for f, _ in ttl_frames] + [no_route, arp]
    pcap = write_pcap(tmp_path / "in.pcap", frames)
    js = tmp_path / "s.json"
    r = dataplane("run", loop_config(tmp_path, lcores=lcores), "--loop", pcap,
                  "--duration", 1, "--json", js, "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    s = json.loads(js.read_text())
    p0 = s["ports"]["p0"]
    forwards = sum(t - 1 for _, t in ttl_frames)
    assert s["loop_frames"] == len(frames)
    assert p0["rx"] == forwards + len(ttl_frames) + 2
    assert p0["tx"] == forwards
    want = {"ttl_expired": len(ttl_frames), "no_route": 1}
    assert p0["drops"] == {k: want.get(k, 0) for k in DROP_REASONS}
    assert p0["consumed"] == 1             # the ARP: the forwarder's own, taken
    assert p0["dpdk"]["ipackets"] == p0["rx"] and p0["dpdk"]["opackets"] == p0["tx"]
    # flow mode: one entry per flow on the first pass, hits on every later pass
    assert s["flows"]["flow_created"] == s["flows"]["flows_active"] == len(ttl_frames)
    assert s["mbufs_in_use_after"] == 0
    workers = s["workers"]
    assert len(workers) == len(lcores.split(",")) - 1 if "@" in lcores else len(workers) == 1
    assert sum(w["rx"] for w in workers) == p0["rx"]
    assert sum(w["flows"]["flow_created"] for w in workers) == len(ttl_frames)
    if len(workers) > 1:        # 43 flows spread by RSS: every worker has some
        assert all(w["rx"] > 0 for w in workers), workers


# ---------------------------------------------------------------- bad input

def one_error(r, *parts):
    no_traceback(r.stderr)
    assert r.returncode == 2, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, r.stderr
    for p in parts:
        assert p in lines[0], lines[0]


def test_loop_bad_files_are_one_error(tmp_path):
    cfg = loop_config(tmp_path, mbuf_size=256)          # 128 data bytes per mbuf
    ok = [frame(IP(dst="10.0.0.1"), UDP())]

    def run(path):
        return dataplane("run", cfg, "--loop", path, "--duration", 0.5)

    one_error(run(tmp_path / "missing.pcap"), "--loop", "No such file or directory")
    ng = tmp_path / "f.pcapng"
    w = PcapNgWriter(str(ng))
    w.write(Ether(ok[0]))
    w.close()
    one_error(run(ng), "not a classic pcap file")
    raw = scapy_pcap(tmp_path / "raw.pcap", [bytes(IP(dst="10.0.0.1") / UDP())],
                     linktype=101)
    one_error(run(raw), "link type 101, not Ethernet (1)")
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(write_pcap(tmp_path / "x.pcap", ok * 2).read_bytes()[:-5])
    one_error(run(cut), "truncated", "after 1 frames")
    big = write_pcap(tmp_path / "big.pcap", ok + [frame(IP(dst="10.0.0.1"), UDP(),
                                                        Raw(b"x" * 200))])
    one_error(run(big), "a 242-byte frame does not fit an mbuf of 128 data bytes")
    one_error(run(write_pcap(tmp_path / "empty.pcap", [])), "no packets")
