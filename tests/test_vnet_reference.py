"""Virtual networks (docs/virtual-networks.md) in the reference model
(dataplane/reference/bridge.py, neigh.py, wired in pipeline.py).

Configurations are YAML through the real loader. Frames are built with scapy and what
comes out is decoded with scapy: ARP fields, NA fields and flags, the ICMPv6 checksum of
every NA / NS recomputed by scapy, Ethernet and IP fields of routed packets. Expected
values (MACs, addresses, EUI-64 link-local addresses, counters) are written out by hand.
Every test that sends traffic ends with the per-node balance of docs §7:
rx = tx + drops + consumed (+ packets still held for a neighbour)."""
from __future__ import annotations

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw

from dataplane.config import load_text
from dataplane.drops import DROP_REASONS
from dataplane.reference import ReferenceForwarder

BCAST = "ff:ff:ff:ff:ff:ff"
GW = "00:00:5e:00:01:00"                    # blue's gateway.mac
M1, M2, M3 = "02:00:00:00:10:01", "02:00:00:00:10:02", "02:00:00:00:10:03"
AAP_MAC = "00:00:5e:00:01:01"
UP1, VM1, VM2, VM3 = 0, 1, 2, 3             # port indexes of BLUE
P_UP1, P_VM1, P_VM2, P_VM3 = ("02:00:00:00:00:01", "02:00:00:00:00:02",
                              "02:00:00:00:00:03", "02:00:00:00:00:04")
NH1 = "02:00:00:00:01:01"

BLUE = """
node: {name: leaf1}
ports:
  - {name: up1, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - name: vm1
    devargs: net_null1
    mac: "02:00:00:00:00:02"
    vrf: blue
    proxy_arp: true
    bind:
      mac: "02:00:00:00:10:01"
      ip: [10.9.0.5/32, "2001:db8:9::5/128"]
  - name: vm2
    devargs: net_null2
    mac: "02:00:00:00:00:03"
    vrf: blue
    bind:
      mac: "02:00:00:00:10:02"
      ip: [10.9.0.6/32, "2001:db8:9::6/128"]
      allowed_address_pairs:
        - {ip: 10.9.0.100/32, mac: "00:00:5e:00:01:01"}
        - {ip: 10.9.0.101/32}
  - {name: vm3, devargs: net_null3, mac: "02:00:00:00:00:04", vrf: blue, proxy_arp: true}
vrfs:
  default: {routes: [{prefix: 0.0.0.0/0, via: nh1}]}
  blue:
    forwarding: l2_l3
    GATEWAY
    macs: [{mac: "02:00:00:00:10:03", port: vm3}]
    routes:
      - {prefix: 0.0.0.0/0, via: nh1}
      - {prefix: "::/0", via: nh1}
      - {prefix: 10.9.1.0/24, via: nh3}
nexthops:
  nh1: {port: up1, mac: "02:00:00:00:01:01"}
  nh3: {port: vm3, mac: "02:00:00:00:10:03"}
"""
GATEWAY = 'gateway: {ip: [10.9.0.1/24, "2001:db8:9::1/64"], mac: "00:00:5e:00:01:00"}'


def blue(gateway: str = GATEWAY) -> ReferenceForwarder:
    return ReferenceForwarder(load_text(BLUE.replace("GATEWAY", gateway)))


def l2(ports: int = 4, learning: bool = False, flood_uu: bool = False, bind: str = "",
       aging: int = 300, macs: str = "[]") -> ReferenceForwarder:
    """VRF green (l2) of `ports` ports sw0.. (port MAC 02:00:00:00:00:0N+1); `bind` is
    sw0's bind; plus an l3 port up1 last."""
    lines = ["node: {name: leaf1}", "ports:"]
    for i in range(ports):
        lines.append(f'  - {{name: sw{i}, devargs: net_null{i}, mac: "02:00:00:00:00:0{i + 1}",'
                     f' vrf: green{", bind: " + bind if bind and i == 0 else ""}}}')
    lines.append('  - {name: up1, devargs: net_null9, mac: "02:00:00:00:00:09"}')
    lines += ["vrfs:", "  default: {}",
              f"  green: {{forwarding: l2, mac_learning: {str(learning).lower()}, "
              f"flood_unknown_unicast: {str(flood_uu).lower()}, mac_aging: {aging}, "
              f"macs: {macs}}}"]
    return ReferenceForwarder(load_text("\n".join(lines) + "\n"))


def balanced(fwd: ReferenceForwarder) -> None:
    """docs §7 over the node: rx = tx + drops + consumed, packets held aside."""
    c, v = fwd.counters(), fwd.vnet_counters()
    rx = sum(x["rx"] for x in c.values())
    tx = sum(x["tx"] for x in c.values())
    drops = sum(x[r] for x in c.values() for r in DROP_REASONS)
    consumed = sum(x["consumed"] for x in v.values())
    assert rx == tx + drops + consumed + fwd.held_count()


def drops(fwd: ReferenceForwarder) -> dict:
    """{port: {reason: n}} of the non-zero drops."""
    return {name: {r: x[r] for r in DROP_REASONS if x[r]}
            for name, x in fwd.counters().items() if any(x[r] for r in DROP_REASONS)}


def vcount(fwd: ReferenceForwarder, port: str, name: str) -> int:
    return fwd.vnet_counters()[port][name]


def udp4(src_mac, dst_mac, src, dst, ttl=64, payload=b"data") -> bytes:
    return bytes(Ether(src=src_mac, dst=dst_mac) / IP(src=src, dst=dst, ttl=ttl)
                 / UDP(sport=1000, dport=2000) / Raw(payload))


def udp6(src_mac, dst_mac, src, dst, hlim=64) -> bytes:
    return bytes(Ether(src=src_mac, dst=dst_mac) / IPv6(src=src, dst=dst, hlim=hlim)
                 / UDP(sport=1000, dport=2000) / Raw(b"data"))


def arp(src_mac, psrc, pdst, op=1, dst_mac=BCAST, hwsrc=None, hwdst="00:00:00:00:00:00",
        tags=()) -> bytes:
    eth = Ether(src=src_mac, dst=dst_mac)
    for vlan in tags:
        eth = eth / Dot1Q(vlan=vlan)
    return bytes(eth / ARP(op=op, hwsrc=hwsrc or src_mac, psrc=psrc, hwdst=hwdst, pdst=pdst))


def ns(src_mac, src, target, dst=None, dst_mac=None, sll=True, hlim=255) -> bytes:
    t = bytes(IPv6(dst=target))[24:40]          # the target's 16 bytes, for its group
    group = "ff02::1:ff" + t[13:14].hex() + ":" + t[14:16].hex()
    pkt = (Ether(src=src_mac, dst=dst_mac or "33:33:ff:" + t[13:16].hex(":"))
           / IPv6(src=src, dst=dst or group, hlim=hlim) / ICMPv6ND_NS(tgt=target))
    if sll:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=src_mac)
    return bytes(pkt)


def checksum_ok(frame: bytes, layer) -> bool:
    """The ICMPv6 checksum as received equals scapy's own computation."""
    pkt = Ether(frame)
    got = pkt[layer].cksum
    del pkt[layer].cksum
    return Ether(bytes(pkt))[layer].cksum == got


def arp_fields(frame: bytes) -> tuple:
    a = Ether(frame)[ARP]
    return (a.hwtype, a.ptype, a.hwlen, a.plen, a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst)


# ---- §2 / §3: l2 bridging, MAC-only binding ------------------------------------------

def test_l2_mac_only_binding_vm_changes_its_ip():
    fwd = l2(ports=3, bind='{mac: "02:00:00:00:10:01"}',
             macs='[{mac: "02:00:00:00:10:02", port: sw1}]')
    frames = [udp4(M1, M2, "10.0.0.5", "10.0.0.6"),
              udp4(M1, M2, "192.168.7.77", "10.0.0.6"),     # a new address: still talks
              udp6(M1, M2, "2001:db8::77", "2001:db8::6"),
              bytes(Ether(src=M1, dst=M2, type=0x88B5) / Raw(b"x" * 50))]
    out = fwd.process(0, frames)
    assert out == [(1, f) for f in frames]                 # unmodified, TTL kept
    # ARP with any address: a broadcast, flooded (never back to sw0)
    req = arp(M1, "172.16.1.1", "172.16.1.2")
    assert fwd.process(0, [req]) == [(1, req), (2, req)]
    # only the MAC is checked: another MAC is spoofed whatever its IP
    assert fwd.process(0, [udp4(M3, M2, "10.0.0.5", "10.0.0.6")]) == []
    assert drops(fwd) == {"sw0": {"spoofed": 1}}
    assert fwd.counters()["sw1"]["tx"] == 5 and fwd.counters()["sw2"]["tx"] == 0
    assert vcount(fwd, "sw2", "flooded") == 1
    # static entry of M2 counted each frame bridged to it (the flood is no hit)
    assert fwd.bridge_table() == [(1, bytes.fromhex("020000001001"), 0, "static", 0),
                                  (1, bytes.fromhex("020000001002"), 1, "static", 4)]
    balanced(fwd)


def test_l2_bridges_ip_that_l3_would_drop():
    fwd = l2(ports=2, macs='[{mac: "02:00:00:00:10:02", port: sw1}]')
    frames = [udp4(M1, M2, "10.0.0.5", "10.0.0.6", ttl=1),          # ttl_expired in l3
              udp4(M1, M2, "127.0.0.1", "224.0.0.5"),                 # martian in l3
              bytes(Ether(src=M1, dst=M2) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / Dot1Q(vlan=7)
                    / IP(src="1.1.1.1", dst="2.2.2.2"))]               # 3 tags
    assert fwd.process(0, frames) == [(1, f) for f in frames]
    balanced(fwd)


def test_flooding_to_every_other_port_in_port_order():
    fwd = l2(ports=4)
    b = bytes(Ether(src=M1, dst=BCAST) / IP(src="10.0.0.1", dst="10.0.0.255") / UDP())
    mc = bytes(Ether(src=M1, dst="01:00:5e:00:00:05") / IP(src="10.0.0.1", dst="224.0.0.5"))
    # from sw2: the original to sw0, copies to sw1 and sw3, after the burst's packets
    out = fwd.process(2, [b, mc])
    assert out == [(0, b), (0, mc), (1, b), (3, b), (1, mc), (3, mc)]
    c, v = fwd.counters(), fwd.vnet_counters()
    assert [c[f"sw{i}"]["tx"] for i in range(4)] == [2, 0, 0, 0]
    assert [v[f"sw{i}"]["flooded"] for i in range(4)] == [0, 2, 0, 2]
    assert c["sw2"]["rx"] == 2 and c["up1"]["tx"] == 0          # never out of another VRF
    out = fwd.process(0, [b])
    assert out == [(1, b), (2, b), (3, b)]
    balanced(fwd)


def test_flood_copies_follow_each_burst_of_32():
    fwd = l2(ports=3)
    frames = [bytes(Ether(src=M1, dst=BCAST) / Raw(bytes([i]) * 60)) for i in range(33)]
    out = fwd.process(0, frames)
    expect = ([(1, f) for f in frames[:32]] + [(2, f) for f in frames[:32]]
              + [(1, frames[32]), (2, frames[32])])
    assert out == expect


def test_flood_in_a_vrf_of_one_port_is_unknown_unicast():
    fwd = l2(ports=1)
    assert fwd.process(0, [bytes(Ether(src=M1, dst=BCAST) / Raw(b"x" * 50))]) == []
    assert drops(fwd) == {"sw0": {"unknown_unicast": 1}}
    balanced(fwd)


@pytest.mark.parametrize("flood_uu", [False, True])
def test_unknown_unicast_dropped_or_flooded(flood_uu):
    fwd = l2(ports=3, flood_uu=flood_uu)
    f = udp4(M1, M3, "10.0.0.1", "10.0.0.3")
    out = fwd.process(1, [f])
    if flood_uu:
        assert out == [(0, f), (2, f)]
        assert drops(fwd) == {} and vcount(fwd, "sw2", "flooded") == 1
    else:
        assert out == [] and drops(fwd) == {"sw1": {"unknown_unicast": 1}}
    balanced(fwd)


def test_hairpin():
    fwd = l2(ports=2, macs='[{mac: "02:00:00:00:10:03", port: sw0}]')
    assert fwd.process(0, [udp4(M1, M3, "10.0.0.1", "10.0.0.3")]) == []
    assert drops(fwd) == {"sw0": {"hairpin": 1}}
    assert fwd.bridge_table()[0][4] == 0                        # no hit: nothing bridged
    balanced(fwd)


def test_learning_moves_and_aging_with_the_clock():
    fwd = l2(ports=3, learning=True, aging=100,
             macs='[{mac: "02:00:00:00:10:03", port: sw2}]')
    x, y = bytes.fromhex("020000001001"), bytes.fromhex("020000001002")
    fwd.set_clock(0)
    # X on sw0 (broadcast: flooded, learned); multicast sources are never learned
    fwd.process(0, [bytes(Ether(src=M1, dst=BCAST) / Raw(b"a" * 50)),
                    bytes(Ether(src="03:00:00:00:00:01", dst=BCAST) / Raw(b"b" * 50))])
    assert fwd.bridge_table() == [(1, x, 0, "learned", 0),
                                  (1, bytes.fromhex("020000001003"), 2, "static", 0)]
    to_x = udp4(M2, M1, "10.0.0.2", "10.0.0.1")
    assert fwd.process(1, [to_x]) == [(0, to_x)]             # and Y learned on sw1
    assert fwd.bridge_table()[:2] == [(1, x, 0, "learned", 1), (1, y, 1, "learned", 0)]
    # X moves to sw2: counted there; the static MAC seen on sw0 stays where it is
    fwd.set_clock(10)
    fwd.process(2, [udp4(M1, M2, "10.0.0.1", "10.0.0.2")])
    fwd.process(0, [udp4(M3, M2, "10.0.0.3", "10.0.0.2")])
    assert [vcount(fwd, f"sw{i}", "mac_moved") for i in range(3)] == [0, 0, 1]
    table = fwd.bridge_table()
    assert table[0] == (1, x, 2, "learned", 1) and table[2][2:4] == (2, "static")
    assert fwd.process(1, [to_x]) == [(2, to_x)]
    # aging: X last used at 50 (the destination), Y at 60 (the source of a broadcast)
    fwd.set_clock(50)
    fwd.process(1, [to_x])
    fwd.set_clock(60)
    fwd.process(1, [bytes(Ether(src=M2, dst=BCAST) / Raw(b"c" * 50))])
    fwd.set_clock(149.9)
    assert fwd.bridge_age() == 0
    fwd.set_clock(150)                                        # X idle for 100 s
    assert fwd.bridge_age() == 1
    assert [(e[1], e[3]) for e in fwd.bridge_table()] == [
        (y, "learned"), (bytes.fromhex("020000001003"), "static")]
    fwd.set_clock(160)
    assert fwd.bridge_age() == 1
    assert [e[3] for e in fwd.bridge_table()] == ["static"]
    assert fwd.process(2, [to_x]) == []                       # unknown again
    assert drops(fwd) == {"sw2": {"unknown_unicast": 1}}
    balanced(fwd)


# ---- §4 binding ----------------------------------------------------------------------

SPOOF_CASES = [
    # (frame from vm1, what happens): vm1 is bound to M1 / 10.9.0.5 / 2001:db8:9::5
    (udp4(M1, M3, "10.9.0.5", "10.9.0.7"), "ok"),
    (udp4(M1, M3, "10.9.0.55", "10.9.0.7"), "spoofed"),
    (udp4(M2, M3, "10.9.0.5", "10.9.0.7"), "spoofed"),           # vm2's MAC
    (udp4(M1, BCAST, "0.0.0.0", "255.255.255.255"), "ok"),       # DHCP
    (udp6(M1, M3, "2001:db8:9::5", "2001:db8:9::7"), "ok"),
    (udp6(M1, M3, "2001:db8:9::55", "2001:db8:9::7"), "spoofed"),
    (udp6(M1, M3, "fe80::1", "fe80::2"), "ok"),                   # link-local
    (udp6(M1, M3, "::", "ff02::2"), "ok"),
    (arp(M1, "10.9.0.5", "10.9.0.77"), "ok"),
    (arp(M1, "10.9.0.55", "10.9.0.77"), "spoofed"),
    (arp(M1, "10.9.0.5", "10.9.0.77", hwsrc=M2), "spoofed"),      # sha is not the source
    (arp(M1, "0.0.0.0", "10.9.0.77"), "ok"),                      # probe
    (bytes(Ether(src=M1, dst=M3, type=0x88B5) / Raw(b"x" * 50)), "ok"),
    (bytes(Ether(src=M2, dst=M3, type=0x88B5) / Raw(b"x" * 50)), "spoofed"),
    (bytes(Ether(src=M2, dst=M3) / MPLS(label=100, s=1, ttl=64) / Raw(b"x" * 40)), "spoofed"),
    (bytes(Ether(src=M1, dst=M3) / Dot1Q(vlan=9) / IP(src="10.9.0.66", dst="10.9.0.7")),
     "spoofed"),                                                  # after a tag too
    (bytes(Ether(src=M1, dst=M3, type=0x0800) / Raw(b"\x45" + bytes(14))), "truncated"),
]


@pytest.mark.parametrize("frame,fate", SPOOF_CASES)
def test_binding(frame, fate):
    fwd = blue()
    out = fwd.process(VM1, [frame])
    if fate == "ok":
        assert out and drops(fwd) == {}
        if ARP not in Ether(frame):                         # (ARP: answered by proxy)
            assert all(f == frame for _, f in out)          # bridged as received
    else:
        assert out == [] and drops(fwd) == {"vm1": {fate: 1}}
    balanced(fwd)


def test_allowed_address_pairs_accepted():
    fwd = blue()
    ok = [udp4(AAP_MAC, M3, "10.9.0.100", "10.9.0.7"),     # the pair's own MAC
          udp4(M2, M3, "10.9.0.101", "10.9.0.7"),          # no mac: bind.mac
          udp4(M2, M3, "10.9.0.6", "10.9.0.7"),
          arp(AAP_MAC, "10.9.0.100", "10.9.0.7"),
          bytes(Ether(src=AAP_MAC, dst=M3, type=0x88B5) / Raw(b"x" * 50))]
    bad = [udp4(M2, M3, "10.9.0.100", "10.9.0.7"),          # the pair is (AAP_MAC, .100)
           udp4(AAP_MAC, M3, "10.9.0.6", "10.9.0.7"),
           udp4(AAP_MAC, M3, "10.9.0.101", "10.9.0.7")]
    for f in ok:
        assert fwd.process(VM2, [f]) != []
    for f in bad:
        assert fwd.process(VM2, [f]) == []
    assert drops(fwd) == {"vm2": {"spoofed": 3}}
    balanced(fwd)


# ---- §2 step 5: l2_l3 ---------------------------------------------------------------

def test_l2_l3_routes_ip_to_the_gateway_mac_and_bridges_the_rest():
    fwd = blue()
    routed = udp4(M1, GW, "10.9.0.5", "8.8.8.8", ttl=64)
    bridged = udp4(M1, M3, "10.9.0.5", "8.8.8.8", ttl=64)
    to_port_mac = udp4(M1, P_VM1, "10.9.0.5", "8.8.8.8")    # gateway.mac is set
    not_ip = bytes(Ether(src=M1, dst=GW, type=0x88B5) / Raw(b"x" * 50))
    out = fwd.process(VM1, [routed, bridged, to_port_mac, not_ip])
    assert [p for p, _ in out] == [UP1, VM3]
    r = Ether(out[0][1])
    assert (r.dst, r.src, r[IP].ttl, r[IP].src, r[IP].dst) == (NH1, P_UP1, 63, "10.9.0.5",
                                                              "8.8.8.8")
    assert out[1][1] == bridged
    assert drops(fwd) == {"vm1": {"unknown_unicast": 2}}
    # to a bound address: the implicit route to vm2~bind (vm2's bind MAC)
    out = fwd.process(VM3, [udp4(M3, GW, "10.9.0.7", "10.9.0.6")])
    r = Ether(out[0][1])
    assert out[0][0] == VM2 and (r.dst, r.src, r[IP].ttl) == (M2, P_VM2, 63)
    # to the AAP address: the AAP MAC
    out = fwd.process(VM3, [udp6(M3, GW, "2001:db8:9::7", "2001:db8:9::6"),
                            udp4(M3, GW, "10.9.0.7", "10.9.0.100")])
    assert [(p, Ether(f).dst) for p, f in out] == [(VM2, M2), (VM2, AAP_MAC)]
    balanced(fwd)


def test_l2_l3_gateway_mac_defaults_to_the_ingress_port_mac():
    fwd = blue('gateway: {ip: [10.9.0.1/24]}')
    out = fwd.process(VM1, [udp4(M1, P_VM1, "10.9.0.5", "8.8.8.8"),
                            udp4(M1, P_VM2, "10.9.0.5", "8.8.8.8")])   # vm2's MAC: bridged
    assert [p for p, _ in out] == [UP1]
    assert drops(fwd) == {"vm1": {"unknown_unicast": 1}}
    balanced(fwd)


# ---- §5 ARP / ND answered -----------------------------------------------------------

@pytest.mark.parametrize("target,mac", [
    ("10.9.0.6", M2),               # vm2's bind
    ("10.9.0.100", AAP_MAC),        # vm2's AAP with its own MAC
    ("10.9.0.101", M2),             # vm2's AAP without mac
    ("8.8.8.8", GW),                # routed out of up1
    ("10.9.1.7", GW),               # routed out of vm3
    ("10.9.0.1", GW),               # the gateway
])
def test_proxy_arp_answers(target, mac):
    fwd = blue()
    req = arp(M1, "10.9.0.5", target)
    out = fwd.process(VM1, [req])
    assert len(out) == 1 and out[0][0] == VM1
    reply = out[0][1]
    assert len(reply) == 60 and reply[42:] == bytes(18)
    e = Ether(reply)
    assert (e.dst, e.src, e.type) == (M1, mac, 0x0806)
    assert arp_fields(reply) == (1, 0x0800, 6, 4, 2, mac, target, M1, "10.9.0.5")
    assert vcount(fwd, "vm1", "arp_replied") == 1 and fwd.counters()["vm1"]["tx"] == 1
    balanced(fwd)


def test_arp_reply_keeps_the_vlan_tags():
    fwd = blue()
    out = fwd.process(VM1, [arp(M1, "10.9.0.5", "10.9.0.6", tags=(10, 20))])
    reply = out[0][1]
    e = Ether(reply)
    assert [d.vlan for d in (e[Dot1Q], e[Dot1Q].payload)] == [10, 20]
    assert len(reply) == 60 and reply[22 + 28:] == bytes(10)
    assert arp_fields(reply)[4:] == (2, M2, "10.9.0.6", M1, "10.9.0.5")


def test_gateway_answered_on_every_port_proxy_only_where_enabled():
    fwd = blue()
    # vm2 has no proxy_arp: its gateway is answered, vm1's address is not (bridged)
    gw = fwd.process(VM2, [arp(M2, "10.9.0.6", "10.9.0.1")])
    assert arp_fields(gw[0][1])[4:] == (2, GW, "10.9.0.1", M2, "10.9.0.6")
    req = arp(M2, "10.9.0.6", "10.9.0.5")
    assert fwd.process(VM2, [req]) == [(VM1, req), (VM3, req)]
    balanced(fwd)


@pytest.mark.parametrize("req,why", [
    (arp(M1, "10.9.0.5", "10.9.0.5"), "gratuitous"),
    (arp(M1, "0.0.0.0", "10.9.0.5"), "the asker's own bind address (probe)"),
    (arp(M3, "10.9.1.5", "10.9.1.7"), "routed back out of the asker's port"),
    (arp(M1, "10.9.0.5", "224.0.0.5"), "not routable"),
])
def test_proxy_arp_not_answered(req, why):
    fwd = blue()
    port = VM3 if Ether(req).src == M3 else VM1
    out = fwd.process(port, [req])
    assert out == [(p, req) for p in (VM1, VM2, VM3) if p != port]     # flooded
    assert vcount(fwd, "vm1", "arp_replied") == vcount(fwd, "vm3", "arp_replied") == 0
    balanced(fwd)


def test_arp_probe_for_another_address_is_answered():
    fwd = blue()
    out = fwd.process(VM1, [arp(M1, "0.0.0.0", "10.9.0.6")])
    assert arp_fields(out[0][1])[4:] == (2, M2, "10.9.0.6", M1, "0.0.0.0")


@pytest.mark.parametrize("target,mac,router", [
    ("2001:db8:9::6", M2, 0),       # vm2's bind
    ("2001:db8:9::1", GW, 1),       # the gateway
    ("2001:db8:77::1", GW, 1),      # routed out of up1
])
def test_proxy_nd_answers(target, mac, router):
    fwd = blue()
    req = ns(M1, "2001:db8:9::5", target)
    out = fwd.process(VM1, [req])
    assert len(out) == 1 and out[0][0] == VM1
    na = out[0][1]
    assert len(na) == 14 + 72
    e = Ether(na)
    assert (e.dst, e.src) == (M1, mac)
    ip = e[IPv6]
    assert (ip.version, ip.tc, ip.fl, ip.plen, ip.nh, ip.hlim, ip.src, ip.dst) == \
        (6, 0, 0, 32, 58, 255, target, "2001:db8:9::5")
    a = e[ICMPv6ND_NA]
    assert (a.type, a.code, a.R, a.S, a.O, a.tgt) == (136, 0, router, 1, 1, target)
    assert e[ICMPv6NDOptDstLLAddr].len == 1 and e[ICMPv6NDOptDstLLAddr].lladdr == mac
    assert checksum_ok(na, ICMPv6ND_NA)
    assert vcount(fwd, "vm1", "arp_replied") == 1
    balanced(fwd)


def test_na_keeps_the_vlan_tag():
    fwd = blue()
    pkt = Ether(ns(M1, "2001:db8:9::5", "2001:db8:9::1"))
    tagged = bytes(Ether(src=M1, dst=pkt.dst) / Dot1Q(vlan=7) / pkt[IPv6])
    na = fwd.process(VM1, [tagged])[0][1]
    assert len(na) == 18 + 72 and Ether(na)[Dot1Q].vlan == 7
    assert checksum_ok(na, ICMPv6ND_NA) and Ether(na)[ICMPv6ND_NA].R == 1


def test_nd_dad_and_own_address_not_answered():
    fwd = blue()
    dad = ns(M1, "::", "2001:db8:9::6", sll=False)
    own = ns(M1, "2001:db8:9::5", "2001:db8:9::5")
    for f in (dad, own):
        assert fwd.process(VM1, [f]) == [(VM2, f), (VM3, f)]    # multicast: flooded
    assert vcount(fwd, "vm1", "arp_replied") == 0
    balanced(fwd)


# ---- §5.3 consumed ------------------------------------------------------------------

def test_consumed_in_l2_l3_only_replies_to_us():
    fwd = blue()
    frames = [arp(M1, "10.9.0.5", "10.9.0.1", op=2, dst_mac=GW, hwdst=GW),
              arp(M1, "10.9.0.5", "10.9.0.9", op=2, dst_mac=P_VM1, hwdst=P_VM1),
              bytes(Ether(src=M1, dst=GW) / IPv6(src="2001:db8:9::5", dst="2001:db8:9::1",
                                                  hlim=255)
                    / ICMPv6ND_NA(tgt="2001:db8:9::5") / ICMPv6NDOptDstLLAddr(lladdr=M1))]
    assert fwd.process(VM1, frames) == []
    assert vcount(fwd, "vm1", "consumed") == 3
    # a reply to a VM is bridged to it
    r = arp(M1, "10.9.0.5", "10.9.0.7", op=2, dst_mac=M3, hwdst=M3)
    assert fwd.process(VM1, [r]) == [(VM3, r)]
    balanced(fwd)


def l3(extra_port: str = "", gateway: str = "") -> ReferenceForwarder:
    return ReferenceForwarder(load_text(f"""
node: {{name: leaf1}}
ports:
  - {{name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"{extra_port}}}
  - {{name: up1, devargs: net_null1, mac: "02:00:00:00:00:02"}}
vrfs:
  default:
    {gateway}
    routes: [{{prefix: 0.0.0.0/0, via: nh1}}, {{prefix: "::/0", via: nh1}}]
nexthops:
  nh1: {{port: up1, mac: "02:00:00:00:01:01"}}
"""))


def test_l3_consumes_every_other_arp_and_nd():
    fwd = l3()
    frames = [arp(M1, "10.0.0.5", "10.0.0.1"),
              arp(M1, "10.0.0.5", "10.0.0.5"),
              arp(M1, "10.0.0.5", "10.0.0.1", op=2, dst_mac=M2),
              ns(M1, "2001:db8::5", "2001:db8::1"),
              ns(M1, "2001:db8::5", "2001:db8::1", dst="2001:db8::1", dst_mac=M2),
              bytes(Ether(src=M1, dst=M2) / IPv6(src="2001:db8::5", dst="2001:db8::9",
                                                  hlim=255)
                    / ICMPv6ND_NA(tgt="2001:db8::5"))]
    assert fwd.process(0, frames) == []
    assert vcount(fwd, "p0", "consumed") == 6 and drops(fwd) == {}
    # an NS with hop limit 64 is no ND message: routed as before
    out = fwd.process(0, [ns(M1, "2001:db8::5", "2001:db8:5::1", dst="2001:db8:5::1",
                             dst_mac="02:00:00:00:00:01", hlim=64)])
    assert [p for p, _ in out] == [1]
    balanced(fwd)


def test_l3_proxy_and_gateway():
    fwd = l3(', proxy_arp: true', 'gateway: {ip: [10.0.0.1/24]}')
    out = fwd.process(0, [arp(M1, "10.0.0.5", "10.0.0.1"), arp(M1, "10.0.0.5", "10.7.7.7")])
    assert [arp_fields(f)[4:7] for _, f in out] == [(2, "02:00:00:00:00:01", "10.0.0.1"),
                                                    (2, "02:00:00:00:00:01", "10.7.7.7")]
    balanced(fwd)


def test_arp_and_nd_truncated_or_unsupported():
    fwd = l3()
    short_arp = bytes(Ether(src=M1, dst=BCAST, type=0x0806) / Raw(bytes(27)))
    short_nd = bytes(Ether(src=M1, dst=BCAST) / IPv6(src="2001:db8::5", dst="ff02::1",
                                                     hlim=255, nh=58, plen=23)
                     / Raw(b"\x87" + bytes(22)))
    arp6 = bytes(Ether(src=M1, dst=BCAST) / ARP(ptype=0x86DD, plen=16, hwsrc=M1))
    assert fwd.process(0, [short_arp, short_nd, arp6]) == []
    assert drops(fwd) == {"p0": {"truncated": 2, "unsupported": 1}}
    sw = l2(ports=2)
    arp6 = bytes(Ether(src=M1, dst=BCAST) / ARP(ptype=0x86DD, plen=16, hwsrc=M1))
    assert sw.process(0, [arp6]) == [(1, arp6)]                 # l2: bridged
    balanced(fwd)
    balanced(sw)


# ---- §6 next hops resolved by ARP / ND ----------------------------------------------

RESOLVE = """
node: {name: leaf1}
neighbors: {reachable_time: 30, retry: 1, queue: 3}
ports:
  - {name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {name: up1, devargs: net_null1, mac: "02:00:00:00:00:02"}
  - {name: up2, devargs: net_null2, mac: "02:00:00:00:00:03"}
vrfs:
  default:
    GATEWAY
    routes:
      - {prefix: 10.1.0.0/16, via: host1}
      - {prefix: 10.3.0.0/16, via: host1l}
      - {prefix: 10.2.0.0/16, via: host2}
      - {prefix: "2001:db8:1::/48", via: host6}
nexthops:
  host1: {port: up1, ip: 10.0.0.2}
  host1l: {port: up1, ip: 10.0.0.2, labels: [100]}
  host2: {port: up2, ip: 172.16.0.2}
  host6: {port: up2, ip: "2001:db8:e::2"}
"""
H1, H2, H6 = "02:00:00:00:20:01", "02:00:00:00:20:02", "02:00:00:00:20:06"
R_GATEWAY = 'gateway: {ip: [192.0.2.1/24, 10.0.0.1/24, "2001:db8:f::1/64"]}'


def resolver(gateway: str = R_GATEWAY) -> ReferenceForwarder:
    fwd = ReferenceForwarder(load_text(RESOLVE.replace("GATEWAY", gateway)))
    fwd.set_clock(0)
    return fwd


def to(dst: str, i: int = 0) -> bytes:
    if ":" in dst:
        return udp6(M1, "02:00:00:00:00:01", "2001:db8:5::1", dst)
    return udp4(M1, "02:00:00:00:00:01", "10.5.0.1", dst, payload=bytes([i]) * 4)


def test_first_requests_and_their_sources():
    fwd = resolver()
    assert fwd.neighbors() == [(1, "10.0.0.2", None, "incomplete"),
                               (2, "172.16.0.2", None, "incomplete"),
                               (2, "2001:db8:e::2", None, "incomplete")]
    out = fwd.neigh_tick()
    assert [p for p, _ in out] == [1, 2, 2]
    a1, a2, n6 = (f for _, f in out)
    assert len(a1) == len(a2) == 60 and a1[42:] == bytes(18)
    e = Ether(a1)
    assert (e.dst, e.src, e.type) == (BCAST, "02:00:00:00:00:02", 0x0806)
    assert arp_fields(a1) == (1, 0x0800, 6, 4, 1, "02:00:00:00:00:02", "10.0.0.1",
                              "00:00:00:00:00:00", "10.0.0.2")      # gateway prefix holds it
    assert arp_fields(a2)[5:] == ("02:00:00:00:00:03", "192.0.2.1",  # first v4 gateway
                                  "00:00:00:00:00:00", "172.16.0.2")
    assert len(n6) == 86
    e = Ether(n6)
    assert (e.dst, e.src) == ("33:33:ff:00:00:02", "02:00:00:00:00:03")
    assert (e[IPv6].src, e[IPv6].dst, e[IPv6].hlim, e[IPv6].plen, e[IPv6].tc, e[IPv6].fl) == \
        ("2001:db8:f::1", "ff02::1:ff00:2", 255, 32, 0, 0)
    assert (e[ICMPv6ND_NS].type, e[ICMPv6ND_NS].code, e[ICMPv6ND_NS].tgt) == \
        (135, 0, "2001:db8:e::2")
    assert (e[ICMPv6NDOptSrcLLAddr].len, e[ICMPv6NDOptSrcLLAddr].lladdr) == \
        (1, "02:00:00:00:00:03")
    assert checksum_ok(n6, ICMPv6ND_NS)
    v = fwd.vnet_counters()
    assert (v["up1"]["arp_sent"], v["up2"]["arp_sent"]) == (1, 2)
    assert fwd.counters()["up1"]["tx"] == 0            # requests are not tx


def test_requests_without_gateway_probe_and_link_local():
    fwd = resolver("")
    out = fwd.neigh_tick()
    assert arp_fields(out[0][1])[6] == "0.0.0.0"
    e = Ether(out[2][1])
    # 02:00:00:00:00:03 → modified EUI-64 00:00:00:ff:fe:00:00:03
    assert e[IPv6].src == "fe80::ff:fe00:3" and checksum_ok(out[2][1], ICMPv6ND_NS)


def test_retry_while_incomplete():
    fwd = resolver()
    assert len(fwd.neigh_tick()) == 3
    fwd.set_clock(0.5)
    assert fwd.neigh_tick() == []
    fwd.set_clock(1.0)
    assert len(fwd.neigh_tick()) == 3
    fwd.set_clock(1.9)
    assert fwd.neigh_tick() == []
    assert fwd.vnet_counters()["up2"]["arp_sent"] == 4


def test_held_packets_released_on_resolution_queue_overflow():
    fwd = resolver()
    fwd.neigh_tick()
    # 4 packets toward host1 (3 held, the 4th dropped), 1 labelled toward host1l: the
    # same neighbour, its queue full too
    sent = [to("10.1.0.9", i) for i in range(4)] + [to("10.3.0.9", 9)]
    assert fwd.process(0, sent) == []
    assert fwd.held_count() == 3
    assert drops(fwd) == {"p0": {"arp_unresolved": 2}}
    balanced(fwd)
    # the reply (to the port MAC) resolves host1: consumed, released at the next call
    reply = arp(H1, "10.0.0.2", "10.0.0.1", op=2, dst_mac="02:00:00:00:00:02",
                hwdst="02:00:00:00:00:02")
    assert fwd.process(1, [reply]) == []
    assert vcount(fwd, "up1", "consumed") == 1
    assert fwd.neighbors()[0] == (1, "10.0.0.2", bytes.fromhex("020000002001"), "reachable")
    out = fwd.process(0, [to("10.1.0.9", 7), to("10.3.0.9", 8)])
    assert [p for p, _ in out] == [1] * 5
    for (_, f), i in zip(out[:3], range(3)):
        e = Ether(f)
        assert (e.dst, e.src, e[IP].ttl, e[Raw].load) == (H1, "02:00:00:00:00:02", 63,
                                                          bytes([i]) * 4)
    e = Ether(out[4][1])
    assert e.dst == H1 and e[MPLS].label == 100 and e[MPLS].s == 1
    assert fwd.counters()["up1"]["tx"] == 5 and fwd.held_count() == 0
    balanced(fwd)


def test_released_by_neigh_tick_before_the_requests():
    fwd = resolver()
    fwd.neigh_tick()
    fwd.process(0, [to("10.2.0.9", 1), to("2001:db8:1::9")])
    # host2 answers a request of its own (an ARP request: it confirms as well)
    req = arp(H2, "172.16.0.2", "192.0.2.1", dst_mac=BCAST)
    (reply,) = fwd.process(2, [req])                        # for the gateway: answered
    assert reply[0] == 2 and arp_fields(reply[1])[4:] == (2, "02:00:00:00:00:03",
                                                          "192.0.2.1", H2, "172.16.0.2")
    fwd.set_clock(1.0)
    out = fwd.neigh_tick()
    assert [p for p, _ in out] == [2, 1, 2]                  # held, then host1 and host6
    assert Ether(out[0][1]).dst == H2
    assert Ether(out[1][1]).dst == BCAST and Ether(out[2][1]).dst == "33:33:ff:00:00:02"


def test_resolution_by_nd_and_packets_after_it_do_not_overtake():
    fwd = resolver()
    fwd.neigh_tick()
    first = to("2001:db8:1::9")
    assert fwd.process(0, [first]) == []
    # NA with the target option, then (same burst on another port) a packet for host6
    na = bytes(Ether(src="02:00:00:00:99:99", dst="02:00:00:00:00:03")
               / IPv6(src="2001:db8:e::2", dst="2001:db8:f::1", hlim=255)
               / ICMPv6ND_NA(tgt="2001:db8:e::2", S=1) / ICMPv6NDOptDstLLAddr(lladdr=H6))
    assert fwd.process(2, [na]) == []
    second = udp6(M1, "02:00:00:00:00:01", "2001:db8:5::2", "2001:db8:1::8")
    out = fwd.process(0, [second])
    assert [(p, Ether(f).dst, Ether(f)[IPv6].src) for p, f in out] == \
        [(2, H6, "2001:db8:5::1"), (2, H6, "2001:db8:5::2")]
    # one burst: the NA, then a packet for host6 (from up2 itself): resolved, but it
    # joins the queue behind the held one rather than overtake it
    fwd2 = resolver()
    fwd2.neigh_tick()
    fwd2.process(0, [first])
    na2 = bytes(Ether(src=H6, dst="02:00:00:00:00:03")
                / IPv6(src="2001:db8:e::2", dst="2001:db8:f::1", hlim=255)
                / ICMPv6ND_NA(tgt="2001:db8:e::2"))             # no option: Ether source
    third = udp6(H6, "02:00:00:00:00:03", "2001:db8:5::3", "2001:db8:1::7")
    assert fwd2.process(2, [na2, third]) == []
    assert fwd2.neighbors()[2][2] == bytes.fromhex("020000002006")
    assert fwd2.held_count() == 2
    out2 = fwd2.process(0, [second])
    assert [(p, Ether(f).dst, Ether(f)[IPv6].src) for p, f in out2] == \
        [(2, H6, "2001:db8:5::1"), (2, H6, "2001:db8:5::3"), (2, H6, "2001:db8:5::2")]
    assert out2[0] == out[0] and out2[2] == out[1]
    balanced(fwd)
    balanced(fwd2)


def test_ns_from_the_neighbour_confirms_it():
    fwd = resolver()
    fwd.process(2, [ns(H6, "2001:db8:e::2", "2001:db8:f::1")])    # answered: gateway
    assert fwd.neighbors()[2][2:] == (bytes.fromhex("020000002006"), "reachable")
    assert vcount(fwd, "up2", "arp_replied") == 1
    # ARP from the right address on the wrong port confirms nothing
    fwd.process(1, [arp(H2, "172.16.0.2", "172.16.0.9")])
    assert fwd.neighbors()[1][3] == "incomplete"


def test_refresh_unicast_then_expiry():
    fwd = resolver()
    fwd.neigh_tick()                                          # next request at 1.0
    fwd.set_clock(5)
    fwd.process(1, [arp(H1, "10.0.0.2", "10.0.0.1", op=2, dst_mac="02:00:00:00:00:02")])
    only_host1 = lambda out: [f for p, f in out if p == 1]     # noqa: E731
    fwd.set_clock(24.9)
    assert only_host1(fwd.neigh_tick()) == []                 # before 5 + 20
    fwd.set_clock(25)
    (u,) = only_host1(fwd.neigh_tick())
    assert Ether(u).dst == H1
    assert arp_fields(u) == (1, 0x0800, 6, 4, 1, "02:00:00:00:00:02", "10.0.0.1",
                             "00:00:00:00:00:00", "10.0.0.2")
    fwd.set_clock(25.5)
    assert only_host1(fwd.neigh_tick()) == []
    fwd.set_clock(26)
    assert Ether(only_host1(fwd.neigh_tick())[0]).dst == H1
    assert fwd.neighbors()[0][3] == "reachable"
    # packets go straight out while reachable
    assert [p for p, _ in fwd.process(0, [to("10.1.0.1")])] == [1]
    fwd.set_clock(35)                                         # 5 + 30: expired
    (b,) = only_host1(fwd.neigh_tick())
    assert Ether(b).dst == BCAST
    assert fwd.neighbors()[0] == (1, "10.0.0.2", None, "incomplete")
    assert fwd.process(0, [to("10.1.0.1")]) == [] and fwd.held_count() == 1
    fwd.drop_held()
    assert drops(fwd) == {"p0": {"arp_unresolved": 1}}
    balanced(fwd)


def test_unicast_ns_refresh():
    fwd = resolver()
    fwd.neigh_tick()
    fwd.process(2, [bytes(Ether(src=H6, dst="02:00:00:00:00:03")
                          / IPv6(src="2001:db8:e::2", dst="2001:db8:f::1", hlim=255)
                          / ICMPv6ND_NA(tgt="2001:db8:e::2") / ICMPv6NDOptDstLLAddr(lladdr=H6))])
    fwd.set_clock(20)
    out = [f for p, f in fwd.neigh_tick() if Ether(f).type == 0x86DD]
    (n,) = out
    e = Ether(n)
    assert (e.dst, e[IPv6].dst, e[ICMPv6ND_NS].tgt) == (H6, "2001:db8:e::2", "2001:db8:e::2")
    assert len(n) == 86 and checksum_ok(n, ICMPv6ND_NS)


def test_spoofed_arp_confirms_nothing():
    # a bound port drops the ARP before it can confirm a neighbour
    fwd = ReferenceForwarder(load_text("""
node: {name: leaf1}
ports:
  - {name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - name: vm1
    devargs: net_null1
    mac: "02:00:00:00:00:02"
    bind: {mac: "02:00:00:00:10:01", ip: [10.0.0.5/32]}
vrfs:
  default: {routes: [{prefix: 10.1.0.0/16, via: vmhost}]}
nexthops:
  vmhost: {port: vm1, ip: 10.0.0.9}
"""))
    fwd.process(1, [arp(M1, "10.0.0.9", "10.0.0.1", op=2)])
    assert drops(fwd) == {"vm1": {"spoofed": 1}}
    assert fwd.neighbors()[0][3] == "incomplete"
    balanced(fwd)


# ---- AAP shared by ports ------------------------------------------------------------

def aap_shared(mode: str) -> ReferenceForwarder:
    return ReferenceForwarder(load_text(f"""
node: {{name: leaf1}}
ports:
  - {{name: up1, devargs: net_null0, mac: "02:00:00:00:00:01", vrf: blue}}
  - name: vm1
    devargs: net_null1
    mac: "02:00:00:00:00:02"
    vrf: blue
    bind:
      mac: "02:00:00:00:10:01"
      allowed_address_pairs: [{{ip: 10.9.0.100, mode: {mode}}}]
  - name: vm2
    devargs: net_null2
    mac: "02:00:00:00:00:03"
    vrf: blue
    bind:
      mac: "02:00:00:00:10:02"
      allowed_address_pairs: [{{ip: 10.9.0.100, mode: {mode}}}]
vrfs:
  blue: {{forwarding: l3, routes: [{{prefix: 10.7.0.0/16, via: far}}]}}
nexthops:
  far: {{port: up1, mac: "02:00:00:00:01:01"}}
"""))


@pytest.mark.parametrize("mode", ["active-standby", "active-active"])
def test_aap_of_two_ports(mode):
    fwd = aap_shared(mode)
    frames = [udp4("02:00:00:00:99:01", "02:00:00:00:00:01", f"10.7.0.{i}", "10.9.0.100")
              for i in range(1, 41)]
    out = fwd.process(0, frames)
    ports = {p for p, _ in out}
    macs = {Ether(f).dst for _, f in out}
    if mode == "active-standby":              # only the first port (all up) is present
        assert ports == {1} and macs == {M1}
    else:                                     # an ECMP group of both
        assert ports == {1, 2} and macs == {M1, M2}
    # both ports may send from the address (each lists it with its bind.mac)
    assert fwd.process(1, [udp4(M1, "02:00:00:00:00:02", "10.9.0.100", "10.7.0.1")]) != []
    assert fwd.process(2, [udp4(M2, "02:00:00:00:00:03", "10.9.0.100", "10.7.0.1")]) != []
    assert fwd.process(2, [udp4(M2, "02:00:00:00:00:03", "10.9.0.101", "10.7.0.1")]) == []
    assert drops(fwd) == {"vm2": {"spoofed": 1}}
    balanced(fwd)


# ---- mirrors see every frame a port sends (docs/mirroring.md §2) ---------------------

def test_tx_mirror_copies_flood_copies_replies_and_requests():
    fwd = ReferenceForwarder(load_text("""
node: {name: leaf1}
ports:
  - {name: sw0, devargs: net_null0, mac: "02:00:00:00:00:01", vrf: green, proxy_arp: true}
  - {name: sw1, devargs: net_null1, mac: "02:00:00:00:00:02", vrf: green,
     mirror: {to: mon, direction: tx}}
  - {name: sw2, devargs: net_null2, mac: "02:00:00:00:00:03", vrf: green,
     mirror: {to: mon, direction: tx}}
  - {name: mon, devargs: net_null3, mac: "02:00:00:00:00:04"}
vrfs:
  default: {}
  green:
    forwarding: l2
    gateway: {ip: [10.0.0.1/24]}
nexthops:
  far: {port: sw2, ip: 10.0.0.9}
"""))
    fwd.set_clock(0)
    b = bytes(Ether(src=M1, dst=BCAST) / Raw(b"x" * 50))
    assert fwd.process(0, [b]) == [(1, b), (2, b)]            # mon is in default
    req = arp(M2, "10.0.0.2", "10.0.0.1")
    (reply,) = fwd.process(1, [req])
    (request,) = fwd.neigh_tick()
    assert request[0] == 2
    assert fwd.take_mirrored() == [(3, 2, b), (3, 2, b), (3, 2, reply[1]),
                                   (3, 2, request[1])]
