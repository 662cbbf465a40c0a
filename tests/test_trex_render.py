"""dataplane.trex.vm / render against TRex's stock profiles (scripts/stl of TRex v3.08).

Every profile is compiled by TRex's own client library (load_streams, no mock); the frames
rendered from its streams are decoded with the venv's scapy (an oracle independent of the
renderer) and checked against values derived here from the profile's own parameters:
fields step as declared, checksums that the program fixes verify when scapy recomputes
them, a checksum the program leaves alone stays as in the base packet, sizes are as
declared, random values stay in [min, max] and repeat with the same seed, and the
stream timing follows the declared modes, rates, isg and ibg (microseconds in TRex).
"""
from __future__ import annotations

import base64
import copy
import ctypes
import ctypes.util
import functools

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapReader

from dataplane.trex.library import find_library, load_streams
from dataplane.trex.render import render, stream_pps, write_pcap
from dataplane.trex.vm import FieldEngine, glibc_rand_r

STL = find_library().parents[2] / "stl"          # .../scripts/stl beside the library


@functools.cache
def _streams(profile, port=0):
    return load_streams(STL / profile, port=port)


def streams(profile, port=0):
    """The profile's compiled streams (a private copy: tests may edit it)."""
    return copy.deepcopy(_streams(profile, port))


def base_of(stream):
    raw = base64.b64decode(stream["packet"]["binary"])
    return raw + bytes(max(0, 60 - len(raw)))     # TRex pads to 60 bytes (no FCS)


def frames(stream_list, n, **kw):
    return [f for _, f in render(stream_list, n, **kw)]


def insts(stream, kind):
    return [i for i in stream["vm"]["instructions"] if i["type"] == kind]


def ip_csum_ok(frame):
    p = Ether(frame)
    want = p[IP].chksum
    del p[IP].chksum
    return Ether(bytes(p))[IP].chksum == want


def l4_csum_ok(frame, layer):
    p = Ether(frame)
    want = p[layer].chksum
    del p[layer].chksum
    return Ether(bytes(p))[layer].chksum == want


def offset_of(frame, layer):
    p = Ether(frame)
    return len(p) - len(p[layer])


def ipv4(value):
    return ".".join(str(b) for b in value.to_bytes(4, "big"))


# ------------------------------------------------------------------ inc / dec / step


def test_inc_step_2_wraps_to_min():
    """udp_1pkt_mac_step: mac_src 1..100, size 1, step 2, written at offset 10."""
    [s] = streams("udp_1pkt_mac_step.py")
    [var] = insts(s, "flow_var")
    [wr] = insts(s, "write_flow_var")
    assert (var["min_value"], var["max_value"], var["step"], var["size"]) == (1, 100, 2, 1)
    lo, hi, step, init = var["min_value"], var["max_value"], var["step"], var["init_value"]
    assert (hi - lo + 1) % step == 0                # a whole cycle: no range padding
    base = base_of(s)
    out = frames([s], 130)
    ip0, udp0 = Ether(base)[IP].chksum, Ether(base)[UDP].chksum
    for k, f in enumerate(out):
        want = lo + (init - lo + k * step) % (hi - lo + 1)      # first packet = init_value
        assert len(f) == 60                                   # fsize 64 - 4 bytes FCS
        assert f[wr["pkt_offset"]] == want, k
        assert f[:10] + f[11:] == base[:10] + base[11:]
        p = Ether(f)
        mac = bytearray(base[6:12])
        mac[10 - 6] = want                              # the 5th byte of the source MAC
        assert p[Ether].src == mac.hex(":")
        assert (p[IP].chksum, p[UDP].chksum) == (ip0, udp0)   # untouched, still as base


@pytest.mark.parametrize("profile, expect", [
    # mask=0xff, cast 1 at offset 11: the var's low byte replaces the byte
    ("udp_1pkt_mac_mask1.py", lambda v, b: {11: v & 0xFF}),
    # shift 8, mask 0xff00, cast 2 at offset 10: byte 10 = var, byte 11 kept
    ("udp_1pkt_mac_mask2.py", lambda v, b: {10: v & 0xFF, 11: b[11]}),
    # shift -1, mask 1, cast 1 at offset 10: bit 0 of byte 10 = bit 1 of the var
    ("udp_1pkt_mac_mask3.py", lambda v, b: {10: (b[10] & 0xFE) | ((v >> 1) & 1)}),
    # add_value 5, mask 0xff, cast 1 at offset 10: 5..15
    ("udp_1pkt_mac_mask5.py", lambda v, b: {10: (v + 5) & 0xFF}),
])
def test_write_mask(profile, expect):
    [s] = streams(profile)
    [var] = insts(s, "flow_var")
    lo, hi, init, op = var["min_value"], var["max_value"], var["init_value"], var["op"]
    assert var["step"] == 1 and op in ("inc", "dec")
    assert init == (hi if op == "dec" else lo)
    base = base_of(s)
    n = hi - lo + 1
    for k, f in enumerate(frames([s], 2 * n + 3)):
        v = init + k % n if op == "inc" else init - k % n
        want = expect(v, base)
        for off in range(len(base)):
            assert f[off] == want.get(off, base[off]), (k, off)


def test_dec_first_packet_is_max():
    """mac_mask1 counts down from its max (STLVmFlowVar's init_value for dec)."""
    [s] = streams("udp_1pkt_mac_mask1.py")
    out = frames([s], 32)
    assert [f[11] for f in out] == list(range(30, 0, -1)) + [30, 29]


# ------------------------------------------------------------------ random, fix_checksum_hw


def test_random_and_fix_checksum_hw():
    """syn_attack_fix_cs_hw: random ip_src / src_port, TCP + IPv4 checksums by 'HW'."""
    [s] = streams("syn_attack_fix_cs_hw.py")
    ip_var, port_var = insts(s, "flow_var")
    [hw] = insts(s, "fix_checksum_hw")
    assert (ip_var["op"], port_var["op"]) == ("random", "random")
    assert (hw["l2_len"], hw["l3_len"], hw["l4_type"]) == (14, 20, 13)
    assert s["random_seed"] == 0x1234
    base = base_of(s)
    b = Ether(base)
    out = frames([s], 300)
    assert out == frames([s], 300)                    # same seed: same packets
    srcs, sports = set(), set()
    for f in out:
        assert len(f) == 60                           # 54-byte SYN padded to 60
        p = Ether(f)
        src = int.from_bytes(f[26:30], "big")
        assert ip_var["min_value"] <= src <= ip_var["max_value"]
        assert port_var["min_value"] <= p[TCP].sport <= port_var["max_value"]
        assert p[IP].src == ipv4(src)
        assert (p[TCP].dport, p[TCP].flags, p[IP].dst) == (80, "S", b[IP].dst)
        assert ip_csum_ok(f) and l4_csum_ok(f, TCP)
        srcs.add(src)
        sports.add(p[TCP].sport)
    assert len(srcs) > 250 and len(sports) > 250
    # TRex draws 15 bits for a 2-byte variable: the port stays below min + 32768
    assert max(sports) < port_var["min_value"] + 32768
    other = copy.deepcopy(s)
    other["random_seed"] = 0x1235
    assert frames([other], 50) != out[:50]


def test_unseeded_random_is_deterministic_per_time():
    """Without random_seed TRex seeds from time(NULL): unix_time stands for it."""
    [s] = streams("syn_attack_fix_cs_hw.py")
    del s["random_seed"]
    a = frames([s], 20, unix_time=1_700_000_000)
    assert a == frames([s], 20, unix_time=1_700_000_000)
    assert a != frames([s], 20, unix_time=1_700_000_001)
    assert frames([s], 20) == frames([s], 20)


def test_random_generator_is_trex_fastrand():
    """The first draw: state = seed * 514229, then 214013 * state + 2531011, 15 bits."""
    vm = {"instructions": [
        {"type": "flow_var", "name": "r", "size": 2, "op": "random", "init_value": 0,
         "min_value": 0, "max_value": 0x7FFF, "step": 1},
        {"type": "write_flow_var", "name": "r", "pkt_offset": 20, "add_value": 0,
         "is_big_endian": True}]}
    state = (0x1234 * 514229) & 0xFFFFFFFF
    eng = FieldEngine(vm, seed=0x1234, base=bytes(60))
    for _ in range(5):
        state = (214013 * state + 2531011) & 0xFFFFFFFF
        assert int.from_bytes(eng.packet()[20:22], "big") == (state >> 16) & 0x7FFF


def test_glibc_rand_r():
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    for seed in (0, 1, 12345, 1_700_000_000, 0xFFFFFFFF):
        s = ctypes.c_uint(seed)
        assert glibc_rand_r(seed) == libc.rand_r(ctypes.byref(s))


# ------------------------------------------------------------------ trim_pkt_size


def test_trim_inc_len_9k():
    """udp_inc_len_9k: size 64, 65, ... up to the 9230-byte packet, then 64 again;
    IP.len and UDP.len follow, the IPv4 checksum is fixed, the UDP one is not."""
    [s] = streams("udp_inc_len_9k.py")
    [var] = insts(s, "flow_var")
    base = base_of(s)
    lo, hi = var["min_value"], min(var["max_value"], len(base))
    assert (lo, hi, var["init_value"], var["step"]) == (64, 9230, 64, 1) and len(base) == 9230
    n = hi - lo + 1
    out = frames([s], n + 3)
    assert [len(f) for f in out] == [lo + k % n for k in range(n + 3)]
    udp0 = Ether(base)[UDP].chksum
    for k in list(range(40)) + list(range(n - 5, n + 3)):
        f = out[k]
        p = Ether(f)
        assert p[IP].len == len(f) - 14 and p[UDP].len == len(f) - 34
        assert ip_csum_ok(f)
        assert p[UDP].chksum == udp0
        assert f[42:] == base[42:len(f)]              # payload: the base's, cut


def test_trim_random_len_9k():
    [s] = streams("udp_rand_len_9k.py")
    [var] = insts(s, "flow_var")
    assert var["op"] == "random"
    out = frames([s], 300)
    assert out == frames([s], 300)
    sizes = [len(f) for f in out]
    assert min(sizes) >= var["min_value"] and max(sizes) <= var["max_value"]
    assert len(set(sizes)) > 250
    for f in out[:60]:
        p = Ether(f)
        assert p[IP].len == len(f) - 14 and p[UDP].len == len(f) - 34 and ip_csum_ok(f)


# ------------------------------------------------------------------ tuple generator


@pytest.mark.parametrize("profile", ["udp_1pkt_tuple_gen.py", "udp_1pkt_tuple_gen_split.py"])
def test_tuple_generator(profile):
    """ip cycles fastest, the port steps when the ip wraps, all restart after
    limit_flows flows; the IPv4 checksum is fixed, the UDP checksum left as is."""
    [s] = streams(profile)
    [t] = insts(s, "tuple_flow_var")
    nip = t["ip_max"] - t["ip_min"] + 1
    nport = t["port_max"] - t["port_min"] + 1
    limit = t["limit_flows"]
    count = min(limit + 5, 3000)
    out = frames([s], count)
    base = base_of(s)
    src_off = offset_of(base, IP) + 12
    sport_off = offset_of(base, UDP)
    udp0 = Ether(base)[UDP].chksum
    for k, f in enumerate(out):
        flow = k % limit
        ip = t["ip_min"] + flow % nip
        port = t["port_min"] + (flow // nip) % nport
        assert int.from_bytes(f[src_off:src_off + 4], "big") == ip, k
        assert int.from_bytes(f[sport_off:sport_off + 2], "big") == port, k
    for f in out[:30] + out[-10:]:
        p = Ether(f)
        assert ip_csum_ok(f) and p[UDP].chksum == udp0


# ------------------------------------------------------------------ dependent variables


def test_next_var_odometer():
    """dependent_field_engine_vars: IP_src (value list, dec) -> var1 ('a'..'c') ->
    var2 (repeatable random, limit 4) -> var3 ('a'..'b'): each advances only when the
    one before it wraps."""
    [s] = streams("dependent_field_engine_vars.py")
    ins = s["vm"]["instructions"]
    ipv, v1, v2, v3 = ins[:4]
    assert ipv["next_var"] == v1["name"] and v1["next_var"] == v2["name"]
    assert v2["type"] == "flow_var_rand_limit" and v2["next_var"] == v3["name"]
    off = {w["name"]: w["pkt_offset"] for w in insts(s, "write_flow_var")}
    lst = ipv["value_list"][::-1]                      # dec starts at the last entry
    n1 = v1["max_value"] - v1["min_value"] + 1
    n3 = v3["max_value"] - v3["min_value"] + 1
    block = len(lst) * n1                             # packets per var2 draw
    out = frames([s], block * v2["limit"] * n3 * 2)
    for k, f in enumerate(out):
        assert int.from_bytes(f[off["IP_src"]:off["IP_src"] + 4], "big") == lst[k % len(lst)]
        assert f[off["var1"]] == v1["min_value"] + (k // len(lst)) % n1
        assert f[off["var3"]] == v3["min_value"] + (k // (block * v2["limit"])) % n3
        r = f[off["var2"]]
        assert v2["min_value"] <= r <= v2["max_value"]
        assert r == out[k - k % block][off["var2"]]    # one draw per block
        if k >= block * v2["limit"]:                  # the same 4 draws again
            assert r == out[k - block * v2["limit"]][off["var2"]]
        assert ip_csum_ok(f)


# ------------------------------------------------------------------ streams and timing


def _chain(stream_list):
    """The streams in trigger order from the self-starting one, with repeats."""
    by_name = {s["name"]: s for s in stream_list}
    s = next(x for x in stream_list if x["self_start"])
    seen = []
    while s is not None and s["name"] not in seen:
        seen.append(s["name"])
        s = by_name.get(s["next"])
    return [by_name[n] for n in seen]


def test_burst_chain():
    """burst_3st_600pkt: S0 (10 pkts) -> S1 (20) -> S2 (30), 10 pps, S0 after 10 us."""
    ss = streams("burst_3st_600pkt.py")
    out = render(ss, 1000)
    chain = _chain(ss)
    assert [c["name"] for c in chain] == ["S0", "S1", "S2"]
    assert len(out) == sum(c["mode"]["total_pkts"] for c in chain)   # then the port stops
    t, k = 0.0, 0
    for c in chain:
        t += c["isg"] / 1e6                          # isg in microseconds
        src = Ether(base_of(c))[IP].src
        for j in range(c["mode"]["total_pkts"]):
            ts, f = out[k]
            assert ts == pytest.approx(t + j / c["mode"]["rate"]["value"], abs=1e-9)
            assert Ether(f)[IP].src == src and len(f) == 60 and f == base_of(c)
            k += 1
        t += (c["mode"]["total_pkts"] - 1) / c["mode"]["rate"]["value"]   # last packet


def test_burst_loop_action_count():
    """burst_3st_loop_x_times: S0 (1) -> S1 (2) -> S2 (3, action_count 2) -> S0: twice."""
    ss = streams("burst_3st_loop_x_times.py")
    chain = _chain(ss)
    assert chain[-1]["action_count"] == 2 and chain[-1]["next"] == chain[0]["name"]
    out = render(ss, 1000)
    one = [Ether(base_of(c))[IP].src for c in chain for _ in range(c["mode"]["total_pkts"])]
    assert [Ether(f)[IP].src for _, f in out] == one * 2
    n0 = len(one)
    # the second S0 starts one isg after the last packet of S2
    assert out[n0][0] == pytest.approx(out[n0 - 1][0] + chain[0]["isg"] / 1e6, abs=1e-9)


def test_multi_burst():
    """multi_burst_2st_1000pkt: S0 single burst of 2, then S1: 5 bursts of 4 at 1000 pps,
    ibg 1 s after each burst's last packet."""
    ss = streams("multi_burst_2st_1000pkt.py")
    s0, s1 = ss
    m = s1["mode"]
    assert (m["type"], m["pkts_per_burst"], m["count"], m["ibg"]) == ("multi_burst", 4, 5,
                                                                         1000000.0)
    out = render(ss, 1000)
    assert len(out) == s0["mode"]["total_pkts"] + m["pkts_per_burst"] * m["count"]
    t = s0["isg"] / 1e6 + (s0["mode"]["total_pkts"] - 1) / s0["mode"]["rate"]["value"]
    t += s1["isg"] / 1e6
    src1 = Ether(base_of(s1))[IP].src
    k = s0["mode"]["total_pkts"]
    for b in range(m["count"]):
        for j in range(m["pkts_per_burst"]):
            ts, f = out[k]
            assert ts == pytest.approx(t + j / m["rate"]["value"], abs=1e-9)
            assert Ether(f)[IP].src == src1
            k += 1
        t += (m["pkts_per_burst"] - 1) / m["rate"]["value"] + m["ibg"] / 1e6


@pytest.mark.parametrize("port", [0, 1])
def test_imix(port):
    """imix: 60/590/1514-byte continuous streams at 28/16/4 pps (isg 0, 0.1, 0.2 us),
    each with its own src/dst counters; merged in time order."""
    ss = streams("imix.py", port)
    assert [len(base_of(s)) for s in ss] == [60, 590, 1514]
    out = render(ss, 300)
    times = [t for t, _ in out]
    assert times == sorted(times)
    per = {60: [], 590: [], 1514: []}
    for t, f in out:
        per[len(f)].append((t, f))
    for s in ss:
        base = base_of(s)
        src_var, dst_var = insts(s, "flow_var")
        pps = s["mode"]["rate"]["value"]
        udp0 = Ether(base)[UDP].chksum
        got = per[len(base)]
        assert len(got) >= 10
        for k, (t, f) in enumerate(got):
            assert t == pytest.approx(s["isg"] / 1e6 + k / pps, abs=1e-9)
            p = Ether(f)
            assert p[IP].src == ipv4(src_var["min_value"] + k % (src_var["max_value"] - src_var["min_value"] + 1))
            assert p[IP].dst == ipv4(dst_var["min_value"] + k % (dst_var["max_value"] - dst_var["min_value"] + 1))
            assert ip_csum_ok(f) and p[UDP].chksum == udp0
    first = ipv4(insts(ss[0], "flow_var")[0]["min_value"])
    assert first == ("16.0.0.1" if port == 0 else "48.0.0.1")


@pytest.mark.parametrize("kind, value, pps", [
    ("pps", 1000.0, 1000.0),
    ("bps_L2", 1e6, 1e6 / ((60 + 4) * 8)),                   # + 4 bytes FCS
    ("bps_L1", 1e6, 1e6 / ((60 + 4 + 20) * 8)),              # + preamble and IFG
    ("percentage", 10.0, 0.10 * 1e9 / ((60 + 4 + 20) * 8)),  # of the 1 Gb/s line
])
def test_rate_conversion(kind, value, pps):
    s = streams("imix.py")[0]
    s["mode"]["rate"] = {"type": kind, "value": value}
    assert stream_pps(s, 1e9) == pytest.approx(pps)
    out = render([s], 3, line_rate_bps=1e9)
    assert out[1][0] - out[0][0] == pytest.approx(1 / pps)


def test_rate_uses_average_trimmed_size():
    [s] = streams("udp_inc_len_9k.py")
    s["mode"]["rate"] = {"type": "bps_L2", "value": 1e9}
    assert stream_pps(s) == pytest.approx(1e9 / (((64 + 9230) / 2 + 4) * 8))


# ------------------------------------------------------------------ engine details, pcap


def _vm(var, writes=1):
    ins = [dict({"type": "flow_var", "name": "v", "size": 1, "op": "inc"}, **var)]
    ins += [{"type": "write_flow_var", "name": "v", "pkt_offset": 20, "add_value": 0,
             "is_big_endian": True}] * writes
    return {"instructions": ins}


def test_first_packet_init_value_and_wrap():
    eng = FieldEngine(_vm({"init_value": 5, "min_value": 1, "max_value": 10, "step": 2}),
                      base=bytes(60))
    assert [eng.packet()[20] for _ in range(6)] == [5, 7, 9, 1, 3, 5]
    # (max - min + 1) % step != 0: TRex pads max to 12 to keep a whole cycle
    eng = FieldEngine(_vm({"init_value": 1, "min_value": 1, "max_value": 10, "step": 3}),
                      base=bytes(60))
    assert [eng.packet()[20] for _ in range(6)] == [1, 4, 7, 10, 1, 4]
    eng = FieldEngine(_vm({"op": "dec", "init_value": 2, "min_value": 1, "max_value": 4,
                           "step": 1}), base=bytes(60))
    assert [eng.packet()[20] for _ in range(5)] == [2, 1, 4, 3, 2]


def test_unknown_instruction_raises():
    with pytest.raises(ValueError, match="not implemented"):
        FieldEngine({"instructions": [{"type": "fix_checksum_sctp", "pkt_offset": 14}]})
    beyond = _vm({"init_value": 1, "min_value": 1, "max_value": 2, "step": 1})
    beyond["instructions"][1]["pkt_offset"] = 60             # past a 60-byte packet
    with pytest.raises(ValueError, match="beyond"):
        FieldEngine(beyond, base=bytes(60))


def test_fix_checksum_hw_ipv6_udp():
    """The IPv6/UDP form of syn_attack_fix_cs_hw's streams (create_stream_ipv6_udp)."""
    base = bytes(Ether() / IPv6(dst="2001:0:4137:9350:8000:f12a:b9c8:2815",
                                src="2001:4860:0:2001::68") / UDP(dport=80) / (30 * b"x"))
    vm = {"instructions": [
        {"type": "flow_var", "name": "src_port", "size": 2, "op": "inc", "init_value": 1025,
         "min_value": 1025, "max_value": 65000, "step": 1},
        {"type": "write_flow_var", "name": "src_port", "pkt_offset": 54, "add_value": 0,
         "is_big_endian": True},
        {"type": "fix_checksum_hw", "l2_len": 14, "l3_len": 40, "l4_type": 11}]}
    s = {"enabled": True, "self_start": True, "isg": 0.0, "flags": 0,
         "mode": {"type": "continuous", "rate": {"type": "pps", "value": 1}},
         "packet": {"binary": base64.b64encode(base).decode()}, "vm": vm}
    for k, f in enumerate(frames([s], 5)):
        assert Ether(f)[UDP].sport == 1025 + k and l4_csum_ok(f, UDP)


def test_write_pcap(tmp_path):
    ss = streams("imix.py")
    out = render(ss, 20)
    path = tmp_path / "imix.pcap"
    write_pcap(path, out)
    with PcapReader(str(path)) as r:
        assert r.linktype == 1
        got = list(r)
    assert [bytes(p) for p in got] == [f for _, f in out]
    assert all(abs(float(p.time) - t) <= 1e-6 for p, (t, _) in zip(got, out))


def test_fix_checksum_icmpv6():
    """icmpv6_fix_cs: a random IPv6 destination (and NS target) low word, ICMPv6
    checksum fixed over the IPv6 pseudo-header."""
    [s] = streams("icmpv6_fix_cs.py")
    [var] = insts(s, "flow_var")
    offs = [w["pkt_offset"] for w in insts(s, "write_flow_var")]
    out = frames([s], 100)
    assert out == frames([s], 100)
    for f in out:
        v = int.from_bytes(f[offs[0]:offs[0] + 4], "big")
        assert var["min_value"] <= v <= var["max_value"]
        assert all(f[o:o + 4] == f[offs[0]:offs[0] + 4] for o in offs)
        p = Ether(f)
        icmp = p[IPv6].payload
        want = icmp.cksum
        del icmp.cksum
        assert Ether(bytes(p))[IPv6].payload.cksum == want
    assert len({f[offs[0]:offs[0] + 4] for f in out}) > 90


def test_value_list_trim():
    """udp_inc_len_list: the frame sizes follow the declared value_list, in order."""
    [s] = streams("udp_inc_len_list.py")
    [var] = insts(s, "flow_var")
    sizes = var["value_list"]
    out = frames([s], 2 * len(sizes) + 1)
    assert [len(f) for f in out] == [sizes[k % len(sizes)] for k in range(len(out))]
    for f in out:
        assert Ether(f)[IP].len == len(f) - 14 and ip_csum_ok(f)


def test_cache_and_repeatable_random():
    """udp_1pkt_repeat_random: cache 255 (the first 255 packets loop), ip_src inc,
    ip_dst a repeatable random restarting every `limit` packets."""
    [s] = streams("udp_1pkt_repeat_random.py")
    cache = s["vm"]["cache"]
    src_var = insts(s, "flow_var")[0]
    [dst_var] = insts(s, "flow_var_rand_limit")
    out = frames([s], 2 * cache + 10)
    assert all(out[k] == out[k + cache] for k in range(cache + 10))
    for k, f in enumerate(out[:cache]):
        p = Ether(f)
        assert p[IP].src == ipv4(src_var["min_value"] + k)
        dst = int.from_bytes(f[30:34], "big")
        assert dst_var["min_value"] <= dst <= dst_var["max_value"]
        assert f[30:34] == out[k % dst_var["limit"]][30:34]
        assert ip_csum_ok(f)
