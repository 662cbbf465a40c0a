"""Mirroring (SPEC §9, docs/mirroring.md) in both backends: the Cython core against the
reference model on the differential corpus, copy for copy and counter for counter; and
each backend against scapy and the input itself: raw copies are the frames as received
and as sent, 1-in-N picks packets 0, N, 2N..., analyzer copies decode (Ethernet, IPv4
or IPv6 with valid checksums, UDP, the metadata header read with struct here, the frame
copied whole), copies of chained mbufs equal those of whole frames.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import random
import struct

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import RawPcapReader

from backends import make_backend
from helpers import make_config, port_mac
import test_differential as td
import test_forwarding as tf
from dataplane.config.model import Analyzer, Mirror

RX, TX = 1, 2
FIXED_NS = 1_700_000_000_123_456_789      # both backends stamp every copy with this
MON_MAC = "02:00:00:00:09:09"
SRC4, DST4 = "192.0.2.1", "198.51.100.7"
SRC6, DST6 = "2001:db8:ee::1", "2001:db8:ee::7"


def port_index(cfg, name: str) -> int:
    return next(p.index for p in cfg.ports if p.name == name)


def with_mirrors(cfg, mirrors: dict):
    """cfg with ports[name].mirror set: {name: (direction, sample, "to:PORT" or
    (address, source, udp_port, via))}."""
    ports = []
    for p in cfg.ports:
        spec = mirrors.get(p.name)
        if spec is None:
            ports.append(p)
            continue
        direction, sample, target = spec
        m = Mirror(direction, sample)
        if isinstance(target, str):
            m.to = target
            m.to_index = m.egress_index = port_index(cfg, target)
        else:
            address, source, udp_port, via = target
            nh = next(n for n in cfg.nexthops if n.name == via)
            m.analyzer = Analyzer(ipaddress.ip_address(address), udp_port, via, nh.index,
                                  ipaddress.ip_address(source))
            m.egress_index = nh.port_index
        ports.append(dataclasses.replace(p, mirror=m))
    return dataclasses.replace(cfg, ports=ports)


# the differential configuration plus a monitor port, with a mirror of every kind
# (and a next hop back out of p0: 100.64.0.0/10, so that p0 sends too)
BASE = make_config(ports=td.PORTS + (("mon", "default"),),
                   nexthops={**td.NEXTHOPS, "nhmon": ("mon", MON_MAC),
                             "back": ("p0", "02:00:00:00:0a:01")},
                   groups=td.GROUPS, hashes=td.HASHES,
                   vrfs={**td.VRFS, "default": td.VRFS["default"] + [("100.64.0.0/10",
                                                                       "back")]},
                   modes={"up1": "packet", "r1": "packet"},
                   fat_flows={"r1": [{"proto": "udp", "port": 0, "src_prefix_len": 24},
                                     {"proto": "tcp", "port": 80, "ignore": "src"}]})
CFG = with_mirrors(BASE, {
    "p0": ("both", 1, "mon"),                                  # raw, every packet
    "up1": ("tx", 3, (DST4, SRC4, 8099, "nhmon")),             # analyzer over IPv4
    "up2": ("both", 2, (DST6, SRC6, 9000, "nhmon")),           # analyzer over IPv6
    "r0": ("rx", 5, "up2"),                                    # raw, 1 in 5, VRF red
    "ce1": ("rx", 1, (DST4, SRC4, 8099, "nhmon")),             # no VRF: 0xFFFF
    "r1": ("tx", 7, "mon"),
})
MON = port_index(CFG, "mon")


def by_direction(copies) -> dict:
    return {d: [(port, frame) for port, dd, frame in copies if dd == d] for d in (RX, TX)}


def state(b) -> dict:
    return {"ports": b.counters(), "mirror": b.mirror_counters(),
            "groups": [b.group_counters(g.index) for g in CFG.groups],
            "frag": b.frag_counters()}


def test_mirror_differential(mbuf_leak_check):
    """The corpus of test_differential (crafted frames, fragments, random and mutated
    frames, part of samples/sample.pcap) in bursts on every ingress port: after each burst, the outputs, every
    counter (mirrored included) and the copies of each direction are identical."""
    rng = random.Random(0x318)
    frames = td.crafted() + td.fragmented(rng)
    frames += [td.random_frame(rng) for _ in range(1000)]
    frames += td.mutated(rng, list(frames), 1000)
    frames += [data for data, _ in RawPcapReader(str(tf.ROOT / "samples" / "sample.pcap"))
               ][:4000]
    totals = {"copies": 0, "rx": 0, "tx": 0}
    for start in range(0, len(frames), td.SEGMENT):
        ref, cy = make_backend("reference", CFG), make_backend("cython", CFG)
        try:
            for b in (ref, cy):
                b.set_mirror_time(FIXED_NS)
            for port, burst in td.bursts(frames[start:start + td.SEGMENT], rng):
                ref_out, cy_out = ref.process(port, burst), cy.process(port, burst)
                ref_m, cy_m = by_direction(ref.take_mirrored()), by_direction(cy.take_mirrored())
                ref_s, cy_s = state(ref), state(cy)
                if (ref_out, ref_s) != (cy_out, cy_s):
                    pytest.fail(f"burst on port {port}: outputs or counters differ\n"
                                f"  reference {ref_s}\n  cython    {cy_s}", pytrace=False)
                for d in (RX, TX):
                    if ref_m[d] != cy_m[d]:
                        k = next((i for i, (a, c) in enumerate(zip(ref_m[d], cy_m[d]))
                                  if a != c), min(len(ref_m[d]), len(cy_m[d])))
                        pytest.fail(
                            f"burst on port {port}: {'rx' if d == RX else 'tx'} copy {k} "
                            f"differs ({len(ref_m[d])} vs {len(cy_m[d])} copies)\n"
                            f"  reference {[(p, f.hex()) for p, f in ref_m[d][k:k + 1]]}\n"
                            f"  cython    {[(p, f.hex()) for p, f in cy_m[d][k:k + 1]]}",
                            pytrace=False)
                    totals["copies"] += len(ref_m[d])
            counters = ref.counters()
            totals["rx"] += sum(c["rx"] for c in counters.values())
            totals["tx"] += sum(c["tx"] for c in counters.values())
            for name, c in ref.mirror_counters().items():    # the model never fails a copy
                assert c["mirror_dropped"] == 0, name
        finally:
            ref.close()
            cy.close()
    assert totals["copies"] > 3000, totals
    # every mirror in CFG made copies
    ref = make_backend("reference", CFG)
    for port, burst in td.bursts(frames[:3000], random.Random(1)):
        ref.process(port, burst)
    made = {name: c["mirrored"] for name, c in ref.mirror_counters().items()}
    assert all(made[p.name] > 0 for p in CFG.ports if p.mirror is not None), made


# ------------------------------------------------------------------ against scapy

def flows(n: int, dst: str = "10.9.0.1", ttl: int = 64) -> list[bytes]:
    """n UDP packets into p0, each its own flow; 10.9.0.1: via nh1 out of up1."""
    return [bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                  IP(src=f"100.64.{i // 250}.{i % 250 + 1}", dst=dst, ttl=ttl) /
                  UDP(sport=1000 + i, dport=53) / struct.pack("!I", i)) for i in range(n)]


def test_raw_copies_are_the_frames_as_received_and_as_sent(backend):
    """p0 mirrors both ways to mon, every packet: its rx copies are the input, byte for
    byte (dropped packets included), its tx copies the frames it sent."""
    cfg = with_mirrors(BASE, {"p0": ("both", 1, "mon")})
    fwd = backend(cfg)
    inbound = flows(40) + flows(5, dst="11.0.0.1") + flows(5, ttl=1)   # + no_route, TTL
    out = fwd.process(0, inbound)
    back = [bytes(Ether(src="02:aa:00:00:00:02", dst=port_mac(1)) /
                  IP(src="10.1.0.9", dst=f"100.64.0.{i + 1}") / UDP(sport=7, dport=9))
            for i in range(10)]                         # up1 → 100.64/10 → back on p0
    back += [bytes(Ether(src="02:aa:00:00:00:02", dst=port_mac(1)) /
                   IP(src="10.1.0.9", dst="10.2.0.1") / UDP(sport=i, dport=9))
             for i in range(10)]                        # → spines, not p0
    assert len(back) == 20
    out_back = fwd.process(1, back)
    copies = by_direction(fwd.take_mirrored())
    assert copies[RX] == [(MON, f) for f in inbound]
    sent_by_p0 = [f for port, f in out + out_back if port == 0]
    assert len(sent_by_p0) == 10 and len(out) == 40
    assert copies[TX] == [(MON, f) for f in sent_by_p0]
    c = fwd.counters()
    assert fwd.mirror_counters()["p0"] == {"mirrored": len(inbound) + len(sent_by_p0),
                                           "mirror_dropped": 0}
    assert c["p0"]["rx"] == len(inbound)
    assert c["mon"]["tx"] == 0 and c["mon"]["rx"] == 0      # copies are no traffic of it


def test_one_in_n_is_packets_0_n_2n(backend):
    cfg = with_mirrors(BASE, {"p0": ("rx", 7, "mon")})
    fwd = backend(cfg)
    frames = flows(200)
    for i in range(0, 200, 23):                        # bursts of varied size
        fwd.process(0, frames[i:i + 23])
    got = [f for _, _, f in fwd.take_mirrored()]
    assert got == frames[::7] and len(got) == 29       # ceil(200 / 7)
    assert fwd.mirror_counters()["p0"]["mirrored"] == 29


def decode(frame: bytes) -> dict:
    """An analyzer copy read with scapy (headers) and struct (the metadata): the test's
    own reading of docs/mirroring.md §3."""
    e = Ether(frame)
    ip = e.payload
    udp = ip[UDP]
    if isinstance(ip, IP):
        check = IP(bytes(ip))
        del check.chksum
        assert IP(bytes(check)).chksum == ip.chksum, "IPv4 header checksum"
        assert ip.ttl == 64 and ip.flags == "DF" and ip.id == 0 and ip.len == len(ip)
        assert udp.chksum == 0
    else:
        assert isinstance(ip, IPv6) and ip.hlim == 64 and ip.plen == len(ip) - 40
        check = IPv6(bytes(ip))
        del check[UDP].chksum
        assert IPv6(bytes(check))[UDP].chksum == udp.chksum, "UDP checksum over IPv6"
    payload = bytes(udp.payload)
    assert udp.len == 8 + len(payload)
    (magic, version, direction, in_port, out_port, vrf, worker, sample, length, seq,
     ts) = struct.unpack("!HBBHHHHIIIQ", payload[:32])
    assert (magic, version) == (0x444D, 1)
    return {"dst_mac": e.dst, "src_mac": e.src, "src": ip.src, "dst": ip.dst,
            "sport": udp.sport, "dport": udp.dport, "direction": direction,
            "in_port": in_port, "out_port": out_port, "vrf": vrf, "worker": worker,
            "sample": sample, "length": length, "seq": seq, "ts": ts,
            "frame": payload[32:]}


@pytest.mark.parametrize("family", [4, 6])
def test_analyzer_copies_decode(backend, family):
    dst, src = (DST4, SRC4) if family == 4 else (DST6, SRC6)
    cfg = with_mirrors(BASE, {"p0": ("both", 2, (dst, src, 8099, "nhmon")),
                              "r0": ("rx", 1, (dst, src, 8099, "nhmon"))})
    fwd = backend(cfg)
    fwd.set_mirror_time(FIXED_NS)
    inbound = flows(30)
    out = fwd.process(0, inbound)
    red = flows(3, dst="10.5.0.1")                      # r0 in VRF red
    fwd.process(port_index(cfg, "r0"), red)
    back = [bytes(Ether(src="02:aa:00:00:00:02", dst=port_mac(1)) /
                  IP(src="10.1.0.9", dst="10.1.2.200") / UDP(sport=i, dport=9) /
                  (b"z" * (i * 37))) for i in range(8)]          # to nh3 on up1: no p0 tx
    fwd.process(1, back)
    copies = fwd.take_mirrored()
    assert {port for port, _, _ in copies} == {MON}
    got = [decode(f) for _, _, f in copies]
    for g in got:
        assert (g["dst_mac"], g["src_mac"]) == (MON_MAC, port_mac(MON))
        assert (g["src"], g["dst"], g["sport"], g["dport"]) == (src, dst, 8099, 8099)
        assert g["worker"] == 0 and g["ts"] == FIXED_NS and g["length"] == len(g["frame"])
    p0_rx = [g for g in got if g["direction"] == RX and g["in_port"] == 0]
    assert [g["frame"] for g in p0_rx] == inbound[::2]
    assert [g["seq"] for g in p0_rx] == list(range(15))
    assert all(g["out_port"] == 0xFFFF and g["vrf"] == 0 and g["sample"] == 2 for g in p0_rx)
    red_rx = [g for g in got if g["in_port"] == port_index(cfg, "r0")]
    assert [g["frame"] for g in red_rx] == red
    assert all(g["vrf"] == 1 and g["sample"] == 1 for g in red_rx)      # red: VRF 1
    p0_tx = [g for g in got if g["direction"] == TX]
    assert p0_tx == []                                   # p0 sent nothing
    # sent by p0: traffic of up1 routed back out of p0
    cfg2 = with_mirrors(BASE, {"up1": ("tx", 1, (dst, src, 8099, "nhmon"))})
    fwd2 = backend(cfg2)
    out = fwd2.process(0, inbound)
    tx = [decode(f) for _, _, f in fwd2.take_mirrored()]
    assert len(out) == len(tx) == 30 and {port for port, _ in out} == {1}
    assert [g["frame"] for g in tx] == [f for _, f in out]
    assert all(g["direction"] == TX and g["in_port"] == 0 and g["out_port"] == 1
               for g in tx)


def test_copies_of_chained_mbufs(mbuf_leak_check):
    """Frames received in 64-byte segments give the copies whole frames give (the IPv6
    UDP checksum summed over the chain; a 9000-byte frame)."""
    cfg = with_mirrors(BASE, {"p0": ("both", 1, (DST6, SRC6, 8099, "nhmon")),
                              "up1": ("rx", 1, "mon")})
    frames = flows(10) + [bytes(Ether(src="02:aa:00:00:00:01", dst=port_mac(0)) /
                                IP(src="100.64.0.1", dst="10.1.0.1") / UDP() /
                                (bytes(range(256)) * 35))]
    ref, cy = make_backend("reference", cfg), make_backend("cython", cfg)
    try:
        for b in (ref, cy):
            b.set_mirror_time(FIXED_NS)
        want = ref.process(0, frames), ref.take_mirrored()
        assert cy.core.process(0, frames, seg=64) == want[0]
        assert cy.take_mirrored() == want[1]
        want = ref.process(1, frames), ref.take_mirrored()
        assert cy.core.process(1, frames, seg=150) == want[0]
        assert cy.take_mirrored() == want[1]
        assert len(want[1]) == len(frames)
    finally:
        ref.close()
        cy.close()
