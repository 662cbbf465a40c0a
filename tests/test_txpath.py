"""The TX stage's two paths that only a refusing device or a particular burst pattern
reaches (pyx/tx.pxd):

- a device that refuses packets: every refused packet is freed and counted `tx_full`
  on its egress port, our tx counter equals what the PMD says it accepted, rx = tx +
  drops, and no mbuf is left (`run --loop`: the egress port is a net_ring whose ring
  starts full);
- order: a short burst buffered for a port, then a full burst to the same port before
  the drain timer: the full burst must not overtake the buffered packets (the direct
  send is only taken when nothing is buffered), checked on the output pcap by sequence
  numbers.
"""
from __future__ import annotations

import json
import struct

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from dataplane.drops import DROP_REASONS
from dpdk_util import dataplane, no_traceback, port, port_mac, write_config, write_pcap

SRC = "02:aa:00:00:00:01"


def config(tmp_path, name: str, mode: str = "flow"):
    doc = {"node": {"name": name},
           "eal": {"lcores": "0-1", "memory_mb": 256, "mbufs": 4096},
           "ports": [dict(port("p0", "net_null0", 0), mode=mode),
                     dict(port("up1", "net_null1", 1), mode=mode),
                     dict(port("up2", "net_null2", 2), mode=mode)],
           "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"},
                        "nh2": {"port": "up2", "mac": "02:00:00:00:02:01"}},
           "vrfs": {"default": {"routes": [{"prefix": "10.1.0.0/16", "via": "nh1"},
                                           {"prefix": "10.2.0.0/16", "via": "nh2"}]}}}
    return write_config(tmp_path / f"{name}.yaml", doc)


def udp(dst: str, seq: int, ttl: int = 64, dport: int = 9) -> bytes:
    return bytes(Ether(src=SRC, dst=port_mac(0)) /
                 IP(src=f"100.64.{seq // 250}.{seq % 250 + 1}", dst=dst, ttl=ttl) /
                 UDP(sport=1000 + seq % 30000, dport=dport) / struct.pack("!I", seq))


def test_refused_packets_are_freed_and_counted(tmp_path):
    """Every port is a loop ring holding the pcap's 100 frames (ring capacity 127), all
    routed to up1: up1's ring is nearly full from the start and refills itself, so most
    of what p0 sends it is refused. Packets to up1 and up2 alternate, so both TX paths
    meet refusals: the direct burst (a whole burst to one port) and the buffer."""
    frames = [udp(f"10.{1 + i % 2 if i >= 50 else 1}.0.{i % 200 + 1}", i, ttl=255)
              for i in range(100)]
    js = tmp_path / "s.json"
    r = dataplane("run", config(tmp_path, "refuse"), "--loop",
                  write_pcap(tmp_path / "in.pcap", frames), "--duration", 1, "--json", js,
                  "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    s = json.loads(js.read_text())
    ports = s["ports"]
    assert ports["up1"]["drops"]["tx_full"] > 0, ports
    for name, p in ports.items():
        # what we count as sent is what the PMD accepted: refusals were taken back out
        assert p["dpdk"]["opackets"] == p["tx"], (name, p)
        assert p["dpdk"]["ipackets"] == p["rx"], (name, p)
    # every frame a worker handled was sent, or dropped under a name: those it received
    # are what the PMDs delivered, and nothing is left out of the pool once the rings
    # are drained (a refused packet not freed would show here)
    handled = sum(p["tx"] + sum(p["drops"][k] for k in DROP_REASONS)
                  for p in ports.values())
    assert handled == sum(p["rx"] for p in ports.values()), s
    assert s["mbufs_in_use_after"] == 0


def test_a_full_burst_never_overtakes_buffered_packets(tmp_path):
    """Bursts of 32 as net_pcap delivers them: a mixed burst (3 to up1, 29 to up2:
    buffered), then a whole burst to up1. up1's output must be in input order."""
    frames, seq = [], 0
    for _ in range(150):
        for k in range(32):
            frames.append(udp("10.1.0.1" if k < 3 else "10.2.0.1", seq))
            seq += 1
        for _ in range(32):
            frames.append(udp("10.1.0.1", seq))
            seq += 1
    out = tmp_path / "out"
    r = dataplane("replay", config(tmp_path, "order", mode="packet"), "--in",
                  f"p0={write_pcap(tmp_path / 'in.pcap', frames)}", "--out-dir", out, "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    for name in ("up1", "up2"):
        seqs = [struct.unpack("!I", bytes(Ether(d)[UDP].payload)[:4])[0]
                for d, _ in RawPcapReader(str(out / f"{name}.pcap"))]
        assert seqs == sorted(seqs), f"{name}: out of order at " \
            f"{next(i for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1])}"
    s = json.loads((out / "summary.json").read_text())
    assert s["ports"]["up1"]["tx"] == 150 * 35 and s["ports"]["up2"]["tx"] == 150 * 29
