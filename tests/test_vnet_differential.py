"""Virtual networks (docs/virtual-networks.md) in both backends: the Cython core against the
reference model, frame for frame and counter for counter.

One configuration holds every kind of VRF: `blue` (l2_l3, learning, gateway v4 + v6,
bound ports with AAPs active-active / active-standby / with and without mac, a MAC-only
binding, an unbound port, an uplink with next hops resolved by ARP and ND, ECMP groups
for proxy answers), `green` (l2, flood_unknown_unicast, learning, a static MAC, a
gateway with its own MAC, a bound port), `red` (l3, bound and unbound proxy ports,
gateway MAC), `plain` (l3, no gateway: requests from 0.0.0.0 and the link-local
address), `lonely` (l2, one port) and `teal` (l2_l3 with gateway.mac, flooding unknown
unicast, no learning). Flow-mode and packet-mode ports both. A second configuration
(BIG) tries the limits of one burst.

Each scenario drives a pair of backends (`Duo`) and compares, after every step: the
outputs of process() and neigh_tick() in order and byte for byte, the per-port counters()
and vnet_counters(), bridge_table() (hits included), neighbors(), the held packets, the
flows of the flow-mode ports, bridge_age()'s count; and checks §7's rx = tx + drops +
consumed (+ held) in each. A failing burst is replayed frame by frame on a fresh pair
(Duo.localise). A final check on the reference's counters proves each scenario exercised
what it is about, so none passes by doing nothing in both.

The tests named MISMATCH n pin differences found between the backends (docstrings: which
is right by the page, and why); DOC vs BOTH ones, places where both agree and the page
says otherwise.
"""
from __future__ import annotations

import random
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import (ICMPv6EchoRequest, ICMPv6ND_NA, ICMPv6ND_NS,
                                ICMPv6NDOptDstLLAddr, ICMPv6NDOptSrcLLAddr, IPv6,
                                IPv6ExtHdrHopByHop)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from backends import make_backend
from dataplane.config import load_text, vnet
from dataplane.reference.bridge import l2_header, routable

SEED = 0x5EED_0013

YAML = """
node: {name: vnd}
neighbors: {reachable_time: 30, retry: 1, queue: 4}
ports:
  - {name: vm1, devargs: net_null0, mac: "02:00:00:00:00:01", vrf: blue, proxy_arp: true,
     bind: {mac: "02:00:00:00:10:01", ip: [10.9.0.5/32, "2001:db8:9::5/128"],
            allowed_address_pairs: [
              {ip: 10.9.0.100/32, mac: "00:00:5e:00:01:01", mode: active-standby},
              {ip: 10.9.0.200/32, mode: active-active},
              {ip: 10.9.0.150, mac: "02:00:00:00:10:50"},
              {ip: "2001:db8:9::100/128", mac: "00:00:5e:00:01:01"}]}}
  - {name: vm2, devargs: net_null1, mac: "02:00:00:00:00:02", vrf: blue, proxy_arp: true,
     mode: packet,
     bind: {mac: "02:00:00:00:10:02", ip: [10.9.0.6/32, 10.9.1.0/28],
            allowed_address_pairs: [
              {ip: 10.9.0.200/32, mac: "02:00:00:00:10:22", mode: active-active},
              {ip: 10.9.0.100/32, mode: active-standby},
              {ip: 10.9.2.0/29, mode: active-standby}]}}
  - {name: vm3, devargs: net_null2, mac: "02:00:00:00:00:03", vrf: blue,
     bind: {mac: "02:00:00:00:10:03"}}
  - {name: sw, devargs: net_null3, mac: "02:00:00:00:00:04", vrf: blue}
  - {name: up, devargs: net_null4, mac: "02:00:00:00:00:05", vrf: blue, mode: packet}
  - {name: g1, devargs: net_null5, mac: "02:00:00:00:00:06", vrf: green, proxy_arp: true,
     bind: {mac: "02:00:00:00:20:01", ip: [10.20.0.5/32]}}
  - {name: g2, devargs: net_null6, mac: "02:00:00:00:00:07", vrf: green, proxy_arp: true}
  - {name: g3, devargs: net_null7, mac: "02:00:00:00:00:08", vrf: green}
  - {name: r1, devargs: net_null8, mac: "02:00:00:00:00:09", vrf: red, proxy_arp: true,
     bind: {mac: "02:00:00:00:30:01", ip: [10.30.0.5/32, "2001:db8:30::5/128"]}}
  - {name: r2, devargs: net_null9, mac: "02:00:00:00:00:0a", vrf: red, proxy_arp: true}
  - {name: rup, devargs: net_null10, mac: "02:00:00:00:00:0b", vrf: red}
  - {name: p0, devargs: net_null11, mac: "02:00:00:00:00:0c", vrf: plain, mode: packet}
  - {name: pup, devargs: net_null12, mac: "02:00:00:00:00:0d", vrf: plain}
  - {name: solo, devargs: net_null13, mac: "02:00:00:00:00:0e", vrf: lonely}
  - {name: t1, devargs: net_null14, mac: "02:00:00:00:00:0f", vrf: teal, proxy_arp: true,
     bind: {mac: "02:00:00:00:50:11", ip: [10.50.1.5/32, "2001:db8:50::5/128"]}}
  - {name: t2, devargs: net_null15, mac: "02:00:00:00:00:10", vrf: teal, mode: packet,
     proxy_arp: true}
  - {name: t3, devargs: net_null16, mac: "02:00:00:00:00:11", vrf: teal}
vrfs:
  blue:
    forwarding: l2_l3
    mac_learning: true
    mac_aging: 40
    gateway: {ip: [10.9.0.1/24, "2001:db8:9::1/64"]}
    macs: [{mac: "02:00:00:00:40:01", port: sw}]
    routes:
      - {prefix: 0.0.0.0/0, via: gw}
      - {prefix: "::/0", via: gw6}
      - {prefix: 192.0.2.0/24, via: stat}
      - {prefix: 203.0.113.0/24, via: gwb}
      - {prefix: 198.51.100.0/24, via: host}
      - {prefix: 172.16.0.0/16, via: mix}
      - {prefix: 172.17.0.0/16, via: local1}
      - {prefix: 172.18.0.0/16, via: mixd}
  green:
    forwarding: l2
    flood_unknown_unicast: true
    mac_learning: true
    mac_aging: 50
    gateway: {ip: [10.20.0.1/24], mac: "00:00:5e:00:01:20"}
    macs: [{mac: "02:00:00:00:20:09", port: g3}]
  red:
    forwarding: l3
    gateway: {ip: [10.30.0.1/24, 10.31.0.1/24, "2001:db8:30::1/64"],
              mac: "00:00:5e:00:01:30"}
    routes:
      - {prefix: 0.0.0.0/0, via: rgw}
      - {prefix: "2001:db8:31::/48", via: rgw6}
      - {prefix: 10.30.7.0/24, via: rs}
  plain:
    routes:
      - {prefix: 0.0.0.0/0, via: pnh}
      - {prefix: "::/0", via: pnh6}
  lonely: {forwarding: l2}
  teal:
    forwarding: l2_l3
    flood_unknown_unicast: true
    gateway: {ip: [10.50.1.1/24, "2001:db8:50::1/64"], mac: "00:00:5e:00:01:50"}
    macs: [{mac: "02:00:00:00:50:13", port: t3}]
    routes:
      - {prefix: 0.0.0.0/0, via: tnh}
      - {prefix: "::/0", via: tnh6}
groups:
  mix: {members: [{nexthop: stat}, {nexthop: vmx}]}
  local1: {members: [{nexthop: vmx}, {nexthop: vmy}]}
  mixd: {members: [{nexthop: stat, weight: 0}, {nexthop: vmx}]}
nexthops:
  gw: {port: up, ip: 10.9.0.254}
  gwb: {port: up, ip: 10.9.0.254}
  gw6: {port: up, ip: "2001:db8:9::fe"}
  stat: {port: up, mac: "02:00:00:00:fe:01"}
  host: {port: sw, ip: 10.9.0.77}
  rgw: {port: rup, ip: 10.31.0.9}
  rgw6: {port: rup, ip: "2001:db8:31::9"}
  rs: {port: r2, mac: "02:00:00:00:fe:02"}
  pnh: {port: pup, ip: 10.40.0.9}
  pnh6: {port: pup, ip: "2001:db8:40::9"}
  vmx: {port: vm1, mac: "02:00:00:00:10:01"}
  vmy: {port: vm1, mac: "00:00:5e:00:01:01"}
  tnh: {port: t3, mac: "02:00:00:00:50:13"}
  tnh6: {port: t3, ip: "2001:db8:50::13"}
"""
CFG = load_text(YAML)
P = {p.name: p.index for p in CFG.ports}
N_NEIGH = len(vnet.neighbours(CFG))
PORT_MAC = {p.name: ":".join(f"{b:02x}" for b in p.mac) for p in CFG.ports}
VM1, VM2, VM3, SW, UP, G1, G2, G3, R1, R2, RUP, P0, PUP, SOLO, T1, T2, T3 = range(len(CFG.ports))

BCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"
VM1_MAC, VM2_MAC, VM3_MAC = "02:00:00:00:10:01", "02:00:00:00:10:02", "02:00:00:00:10:03"
VM1_AAP_MAC, VM1_AAP150_MAC, VM2_AAP_MAC = ("00:00:5e:00:01:01", "02:00:00:00:10:50",
                                            "02:00:00:00:10:22")
SW_STATIC = "02:00:00:00:40:01"
G1_MAC, G_STATIC, GREEN_GW_MAC = "02:00:00:00:20:01", "02:00:00:00:20:09", "00:00:5e:00:01:20"
R1_MAC, RED_GW_MAC = "02:00:00:00:30:01", "00:00:5e:00:01:30"
T1_MAC, T3_STATIC, TEAL_GW_MAC = "02:00:00:00:50:11", "02:00:00:00:50:13", "00:00:5e:00:01:50"
GW_MAC, GW6_MAC, HOST_MAC = "02:00:00:00:fe:fe", "02:00:00:00:fe:f6", "02:00:00:00:fe:77"
RGW_MAC, RGW6_MAC = "02:00:00:00:fe:31", "02:00:00:00:fe:36"


# --- frames ------------------------------------------------------------------------------

def frame(dst: str, src: str, *layers, tags=()) -> bytes:
    pkt = Ether(dst=dst, src=src)
    for t in tags:
        pkt = pkt / t
    for layer in layers:
        pkt = pkt / layer
    return bytes(pkt)


def udp4(dst_mac, src_mac, src, dst, sport=1000, dport=2000, tags=(), **ip) -> bytes:
    return frame(dst_mac, src_mac, IP(src=src, dst=dst, **ip), UDP(sport=sport, dport=dport),
                 Raw(b"v4-payload"), tags=tags)


def udp6(dst_mac, src_mac, src, dst, sport=1000, dport=2000, tags=(), **ip) -> bytes:
    return frame(dst_mac, src_mac, IPv6(src=src, dst=dst, **ip),
                 UDP(sport=sport, dport=dport), Raw(b"v6-payload"), tags=tags)


def arp(src_mac, spa, tpa, op=1, sha=None, tha=ZERO_MAC, dst=BCAST, tags=(), **kw) -> bytes:
    return frame(dst, src_mac, ARP(op=op, hwsrc=sha or src_mac, psrc=spa, hwdst=tha,
                                   pdst=tpa, **kw), tags=tags)


def solicited(ip6: str) -> tuple[str, str]:
    """(solicited-node group, its MAC) of an IPv6 address."""
    import ipaddress
    b = ipaddress.IPv6Address(ip6).packed
    group = ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + b[13:])
    return str(group), "33:33:ff:" + b[13:].hex(":")


def ns(src_mac, src, tgt, dst=None, dst_mac=None, sll=True, tags=(), hlim=255,
       options=None) -> bytes:
    if dst is None:
        dst, group_mac = solicited(tgt)
        dst_mac = dst_mac or group_mac
    layers = [IPv6(src=src, dst=dst, hlim=hlim), ICMPv6ND_NS(tgt=tgt)]
    if options is not None:
        layers.append(Raw(options))
    elif sll:
        layers.append(ICMPv6NDOptSrcLLAddr(lladdr=src_mac))
    return frame(dst_mac, src_mac, *layers, tags=tags)


def na(src_mac, src, tgt, dst="ff02::1", dst_mac="33:33:00:00:00:01", tll=None, tags=(),
       R=0, S=0, O=1) -> bytes:
    layers = [IPv6(src=src, dst=dst, hlim=255), ICMPv6ND_NA(tgt=tgt, R=R, S=S, O=O)]
    if tll is not None:
        layers.append(ICMPv6NDOptDstLLAddr(lladdr=tll))
    return frame(dst_mac, src_mac, *layers, tags=tags)


def describe(data: bytes) -> str:
    try:
        text = Ether(data).summary()
    except Exception as e:                      # noqa: BLE001 - only a description
        text = f"<undecodable: {e}>"
    return f"{text} [{len(data)}B] {data.hex()}"


# --- the pair of backends ------------------------------------------------------------------

def held(b) -> int:
    return b.core.held_count() if hasattr(b, "core") else b.held_count()


def flow_rows(b) -> list:
    return sorted((f["vrf"], f["family"], f["src"], f["dst"], f["proto"], f["sport"],
                   f["dport"], f["in_port"], f["nh_id"], f["member"], f["packets"],
                   f["bytes"]) for f in b.flows())


class Duo:
    """The reference model and the Cython core on one configuration, driven in step; every
    call compares what both return and then their whole state."""

    def __init__(self, cfg=CFG):
        self.cfg = cfg
        self.ref = make_backend("reference", cfg)
        self.cy = make_backend("cython", cfg)
        self.steps = 0
        self.history: list[str] = []
        self.log: list[tuple] = []          # what was done, to replay (localise())
        self.port, self.inputs = None, None

    def close(self) -> None:
        self.ref.close()
        self.cy.close()

    def fail(self, what: str, port=None, frames=None) -> None:
        recent = "\n".join(self.history[-6:])
        where = self.localise(port, frames) if frames else ""
        pytest.fail(f"step {self.steps}: {what}\n  recent steps:\n{recent}{where}",
                    pytrace=False)

    def localise(self, port: int, frames: list[bytes]) -> str:
        """Replay everything before the differing burst on a fresh pair, then run its
        frames one at a time: the first frame whose output or state differs on its own."""
        fresh = Duo.__new__(Duo)
        fresh.cfg, fresh.steps, fresh.history, fresh.log = self.cfg, 0, [], []
        fresh.ref, fresh.cy = make_backend("reference", self.cfg), make_backend("cython", self.cfg)
        try:
            for op, *args in self.log:
                for b in (fresh.ref, fresh.cy):
                    if op == "run":
                        b.process(*args)
                    elif op == "clock":
                        b.set_clock(*args)
                    elif op == "tick":
                        b.neigh_tick()
                    elif op == "age":
                        b.bridge_age()
                    elif op == "drop":
                        b.drop_held()
            for k, f in enumerate(frames):
                r, c = fresh.ref.process(port, [f]), fresh.cy.process(port, [f])
                states = [[b.counters(), b.vnet_counters(), b.bridge_table(), b.neighbors(),
                           held(b)] for b in (fresh.ref, fresh.cy)]
                if r != c or states[0] != states[1]:
                    macs = {f[:6], f[6:12]}
                    table = [[e for e in b.bridge_table() if e[1] in macs]
                             for b in (fresh.ref, fresh.cy)]
                    def brief(out):
                        return [(p, describe(x)[:100]) for p, x in out[:6]] + (
                            [f"... {len(out)} in all"] if len(out) > 6 else [])
                    return (f"\n  localised: frame {k} of the burst differs on its own:"
                            f"\n    frame     {describe(f)}"
                            f"\n    reference {brief(r)}"
                            f"\n    cython    {brief(c)}"
                            f"\n    bridge entries of its MACs after: reference {table[0]},"
                            f" cython {table[1]}")
            return "\n  localised: no single frame of the burst differs on its own"
        finally:
            for b in (fresh.ref, fresh.cy):
                b.drop_held()
                b.close()

    def same_outputs(self, what: str, r: list, c: list, inputs=()) -> None:
        if r == c:
            return
        k = next((i for i, (a, b) in enumerate(zip(r, c)) if a != b), min(len(r), len(c)))
        lines = [f"{what}: outputs differ at {k} (reference {len(r)}, cython {len(c)})"]
        for name, out in (("reference", r), ("cython", c)):
            for i in range(max(0, k - 1), min(len(out), k + 2)):
                lines.append(f"  {name}[{i}] port {out[i][0]}: {describe(out[i][1])}")
        for i, f in enumerate(inputs[:40]):
            lines.append(f"  input[{i}]: {describe(f)}")
        self.fail("\n".join(lines), self.port, inputs)

    def check(self, what: str) -> None:
        for name, get in (("counters", lambda b: b.counters()),
                          ("vnet_counters", lambda b: b.vnet_counters()),
                          ("bridge_table", lambda b: b.bridge_table()),
                          ("neighbors", lambda b: b.neighbors()),
                          ("held packets", held),
                          ("flows", flow_rows)):
            r, c = get(self.ref), get(self.cy)
            if r != c:
                if isinstance(r, dict):
                    diff = {p: {k: (r[p][k], c[p][k]) for k in r[p] if r[p][k] != c[p][k]}
                            for p in r}
                    r = c = None
                    detail = f"(reference, cython) {({p: d for p, d in diff.items() if d})}"
                elif isinstance(r, list):
                    detail = (f"only reference {[x for x in r if x not in c]}\n"
                              f"  only cython    {[x for x in c if x not in r]}")
                else:
                    detail = f"reference {r}, cython {c}"
                self.fail(f"{what}: {name} differ: {detail}", self.port, self.inputs)
        for name, b in (("reference", self.ref), ("cython", self.cy)):
            # §7: per node, rx = tx + drops + consumed (+ what is held for a neighbour)
            ports, vn = b.counters(), b.vnet_counters()
            rx = sum(c["rx"] for c in ports.values())
            rest = sum(v for c in ports.values() for k, v in c.items() if k != "rx")
            rest += sum(c["consumed"] for c in vn.values()) + held(b)
            if rx != rest:
                self.fail(f"{what}: {name}: rx {rx} != tx + drops + consumed + held {rest}")

    def run(self, port, frames, what: str = "") -> list[tuple[int, bytes]]:
        port = P[port] if isinstance(port, str) else port
        frames = [bytes(f) for f in frames]
        self.steps += 1
        label = f"process({self.cfg.ports[port].name}, {len(frames)} frames) {what}"
        self.history.append("    " + label)
        r, c = self.ref.process(port, frames), self.cy.process(port, frames)
        self.port, self.inputs = port, frames
        self.same_outputs(label, r, c, frames)
        self.check(label)
        self.log.append(("run", port, frames))
        self.port, self.inputs = None, None
        return r

    def tick(self, what: str = "") -> list[tuple[int, bytes]]:
        self.steps += 1
        label = f"neigh_tick() {what}"
        self.history.append("    " + label)
        r, c = self.ref.neigh_tick(), self.cy.neigh_tick()
        self.same_outputs(label, r, c)
        self.check(label)
        self.log.append(("tick",))
        return r

    def clock(self, t: float) -> None:
        self.history.append(f"    set_clock({t})")
        self.ref.set_clock(t)
        self.cy.set_clock(t)
        self.log.append(("clock", t))

    def age(self) -> int:
        self.steps += 1
        self.history.append("    bridge_age()")
        # the backends.py wrapper drops the core's return value: ask the core
        r, c = self.ref.bridge_age(), self.cy.core.bridge_age()
        if r != c:
            self.fail(f"bridge_age() removed {r} (reference), {c} (cython)")
        self.check("bridge_age()")
        self.log.append(("age",))
        return r

    def drop_held(self) -> None:
        self.steps += 1
        self.history.append("    drop_held()")
        self.ref.drop_held()
        self.cy.drop_held()
        self.check("drop_held()")
        self.log.append(("drop",))

    def finish(self) -> None:
        """Drop what is still held (the mbuf leak check runs before fixtures close)."""
        self.drop_held()

    def totals(self) -> dict:
        """The reference's counters, all kinds, summed over the ports."""
        out = {}
        for table in (self.ref.counters(), self.ref.vnet_counters()):
            for row in table.values():
                for k, v in row.items():
                    out[k] = out.get(k, 0) + v
        return out


@pytest.fixture
def duo(mbuf_leak_check):
    pair = Duo()
    yield pair
    pair.close()


def ports_of(out) -> list[int]:
    return [p for p, _ in out]


def tampered(kind: str):
    """A wrapper for one reference method that changes what it returns a little."""
    def bump_counter(table):
        table = {p: dict(c) for p, c in table.items()}
        first = next(iter(table))
        key = next(iter(table[first]))
        table[first][key] += 1
        return table

    def flip(out):
        return [(p, bytes([f[0] ^ 1]) + f[1:]) for p, f in out[:1]] + out[1:]

    return {"process": flip, "neigh_tick": flip,
            "counters": bump_counter, "vnet_counters": bump_counter,
            "bridge_table": lambda t: [e[:4] + (e[4] + 1,) for e in t],
            "neighbors": lambda n: [e[:3] + ("reachable",) for e in n],
            "held_count": lambda n: n + 1,
            "flows": lambda f: f[:-1],
            "bridge_age": lambda n: n + 1}[kind]


@pytest.mark.parametrize("kind", ["process", "neigh_tick", "counters", "vnet_counters",
                                  "bridge_table", "neighbors", "held_count", "flows",
                                  "bridge_age"])
def test_every_comparison_can_fail(duo, kind):
    """The comparisons themselves: a reference whose one answer is a little off must make
    the pair fail at the step that reads it."""
    d = duo
    d.clock(1.0)
    steps = [lambda: d.run(SW, [udp4(PORT_MAC["sw"], "02:00:00:00:41:41", "10.9.0.41",
                                     "8.8.8.8")], "held for gw"),
             lambda: d.run(SW, [udp4(BCAST, "02:00:00:00:41:42", "10.9.0.42", "10.9.0.255"),
                                udp4(PORT_MAC["sw"], "02:00:00:00:41:42", "10.9.0.42",
                                     "192.0.2.1"),
                                udp4("02:00:00:00:41:42", "02:00:00:00:41:43", "10.9.0.43",
                                     "10.9.0.42")], "learn, route, bridge"),
             lambda: d.tick("requests"),
             lambda: d.clock(100.0),
             lambda: d.age()]
    for step in steps:                          # untampered, all pass
        step()
    original = getattr(d.ref, kind)
    change = tampered(kind)
    setattr(d.ref, kind, lambda *a, **k: change(original(*a, **k)))
    with pytest.raises(pytest.fail.Exception):
        for step in steps:
            step()
    setattr(d.ref, kind, original)
    d.ref.drop_held()
    d.cy.drop_held()


# --- l2 / l2_l3 bridging -------------------------------------------------------------------

def test_bridging_flooding_learning(duo):
    """Flooding of broadcast / multicast / unknown unicast (with and without
    flood_unknown_unicast), a VRF of one port, hairpin, static MACs that do not move,
    learned MACs that do (mac_moved), entry hits, VLAN-tagged frames bridged unmodified,
    l2_l3 frames to a MAC that is not the gateway's."""
    d = duo
    d.clock(1.0)
    h21, h22, h23 = "02:00:00:00:21:02", "02:00:00:00:21:03", "02:00:00:00:21:04"
    # green (l2, flood_unknown_unicast): learning from every kind of frame
    out = d.run(G2, [udp4(BCAST, h21, "10.20.0.21", "10.20.0.255"),
                     udp4("01:00:5e:00:00:fb", h21, "10.20.0.21", "224.0.0.251"),
                     udp6("33:33:00:00:00:fb", h21, "fe80::21", "ff02::fb"),
                     udp4("02:00:00:00:99:99", h21, "10.20.0.21", "10.20.0.99")],
                "broadcast, multicast, unknown unicast")
    assert sorted(ports_of(out)) == sorted([G1, G3] * 4)
    d.run(G3, [udp4(h21, h22, "10.20.0.22", "10.20.0.21"),          # learned → g2
               udp4(h22, h22, "10.20.0.22", "10.20.0.22"),          # hairpin
               udp4(G_STATIC, h22, "10.20.0.22", "10.20.0.9"),      # static on g3: hairpin
               udp4(G1_MAC, h22, "10.20.0.22", "10.20.0.5"),        # static (bind) → g1
               udp4(GREEN_GW_MAC, h22, "10.20.0.22", "10.20.0.1")],  # l2: no routing
          "known, hairpin, static")
    for tags in [(Dot1Q(vlan=7),), (Dot1AD(vlan=8), Dot1Q(vlan=9)),
                 (Dot1Q(vlan=1), Dot1Q(vlan=2), Dot1Q(vlan=3))]:
        d.run(G2, [udp4(h22, h23, "10.20.0.23", "10.20.0.22", tags=tags),
                   udp4(BCAST, h23, "10.20.0.23", "10.20.0.255", tags=tags),
                   frame(h21, h23, Raw(b"\x88\xcc" + bytes(50)), tags=tags)],
              f"{len(tags)} tags")
    d.clock(2.0)
    d.run(G1, [udp4(h21, G1_MAC, "10.20.0.5", "10.20.0.21")], "bound port to a learned MAC")
    # moves: a learned MAC seen elsewhere moves (counted on the new port), a static does not
    d.run(G1, [udp4(h21, h23, "10.20.0.23", "10.20.0.21")], "h23 behind g1: spoofed")
    d.run(G3, [udp4(BCAST, h21, "10.20.0.21", "10.20.0.255"),       # h21 g2 → g3
               udp4(BCAST, h21, "10.20.0.21", "10.20.0.255"),       # no second move
               udp4(BCAST, G1_MAC, "10.20.0.5", "10.20.0.255")],     # static: stays on g1
          "moves")
    d.run(G2, [udp4(h21, h22, "10.20.0.22", "10.20.0.21"),          # h22 g3 → g2, to g3
               udp4(G_STATIC, G_STATIC, "10.20.0.9", "10.20.0.9")],  # static source on g2
          "moved back, static source elsewhere")
    d.run(G3, [udp4(G_STATIC, h21, "10.20.0.21", "10.20.0.9")], "to a static MAC: hairpin")
    # blue (l2_l3, no flood_unknown_unicast)
    d.run(SW, [udp4(BCAST, "02:00:00:00:41:01", "10.9.0.41", "10.9.0.255"),
               udp4("02:00:00:00:99:98", "02:00:00:00:41:01", "10.9.0.41", "10.9.0.99"),
               udp4(PORT_MAC["vm1"], "02:00:00:00:41:01", "10.9.0.41", "10.9.0.5"),
               udp4(VM1_MAC, "02:00:00:00:41:01", "10.9.0.41", "10.9.0.5"),
               udp4(VM2_AAP_MAC, "02:00:00:00:41:01", "10.9.0.41", "10.9.0.200"),
               udp4(SW_STATIC, "02:00:00:00:41:01", "10.9.0.41", "10.9.0.42"),
               frame(VM3_MAC, "02:00:00:00:41:01", Raw(b"\x88\xb5" + bytes(46))),
               frame(PORT_MAC["sw"], "02:00:00:00:41:01", Raw(b"\x88\xb5" + bytes(46))),
               udp6("33:33:00:00:00:01", "02:00:00:00:41:01", "fe80::41", "ff02::1")],
          "blue from an unbound port")
    d.run(UP, [udp4("02:00:00:00:41:01", "02:00:00:00:42:01", "10.9.0.42", "10.9.0.41"),
               udp4("02:00:00:00:42:01", "02:00:00:00:41:01", "10.9.0.41", "10.9.0.42")],
          "learned on sw, then h41 moves to up: hairpin")
    # teal (l2_l3, gateway.mac, flood_unknown_unicast, no learning): IP to the gateway
    # MAC is routed, to the port's own MAC bridged (flooded: unknown)
    for port, mac, ip in ((T1, T1_MAC, "10.50.1.5"), (T2, "02:00:00:00:50:12", "10.50.1.12")):
        d.run(port, [udp4(TEAL_GW_MAC, mac, ip, "8.8.8.8"),
                     udp4(PORT_MAC[CFG.ports[port].name], mac, ip, "8.8.8.8"),
                     udp4(TEAL_GW_MAC, mac, ip, "10.50.1.13"),
                     udp4(T3_STATIC, mac, ip, "10.50.1.13"),
                     udp4("02:00:00:00:50:99", mac, ip, "10.50.1.99"),
                     frame(TEAL_GW_MAC, mac, Raw(b"\x88\xcc" + bytes(46))),
                     udp6(TEAL_GW_MAC, mac, "fe80::5", "2001:db8:77::1"),
                     udp6(TEAL_GW_MAC, mac, "2001:db8:50::5", "2001:db8:77::1")], "teal")
    # a VRF of one port: nowhere to flood
    d.run(SOLO, [udp4(BCAST, "02:00:00:00:50:01", "10.50.0.1", "10.50.0.255"),
                 udp4("02:00:00:00:50:02", "02:00:00:00:50:01", "10.50.0.1", "10.50.0.2"),
                 udp4("02:00:00:00:50:01", "02:00:00:00:50:01", "10.50.0.1", "10.50.0.1")],
          "lonely")
    t = d.totals()
    for k in ("flooded", "hairpin", "unknown_unicast", "mac_moved", "spoofed", "tx"):
        assert t[k] > 0, (k, t)
    assert any(e[4] for e in d.ref.bridge_table())
    d.finish()


def test_learning_and_aging(duo):
    """Learned entries age after mac_aging unused (neither source nor destination), per
    VRF (blue 40 s, green 50 s); statics never; bridge_age() at several clocks."""
    d = duo
    macs = [f"02:00:00:00:5{i}:0{j}" for i in range(2) for j in range(1, 6)]
    d.clock(1.0)
    d.run(SW, [udp4(BCAST, m, "10.9.0.60", "10.9.0.255") for m in macs[:5]], "learn on sw")
    d.run(G2, [udp4(BCAST, m, "10.20.0.60", "10.20.0.255") for m in macs[5:]], "learn on g2")
    assert d.age() == 0
    d.clock(20.0)
    d.run(UP, [udp4(macs[0], "02:00:00:00:5f:01", "10.9.0.61", "10.9.0.60")], "use as dst")
    d.run(G3, [udp4(BCAST, macs[5], "10.20.0.60", "10.20.0.255")], "h seen again (moves)")
    d.clock(40.999)
    assert d.age() == 0
    d.clock(41.0)                               # blue: 1 + 40
    assert d.age() == 4                         # macs[1:5]
    d.clock(50.999)
    assert d.age() == 0
    d.clock(51.0)                               # green: 1 + 50
    assert d.age() == 4                         # macs[6:]
    d.run(UP, [udp4(macs[1], "02:00:00:00:5f:01", "10.9.0.61", "10.9.0.60")],
          "aged out: unknown unicast")
    d.clock(59.999)
    assert d.age() == 0
    d.clock(60.0)
    assert d.age() == 1                         # macs[0], last a destination at 20
    d.clock(70.0)
    assert d.age() == 1                         # macs[5], seen on g3 at 20
    d.clock(90.0)
    assert d.age() == 0
    d.clock(91.0)
    assert d.age() == 1                         # the up host, a source again at 51
    d.clock(500.0)
    assert d.age() == 0
    assert all(kind == "static" for _, _, _, kind, _ in d.ref.bridge_table())
    assert d.totals()["mac_moved"] == 1
    d.finish()


# --- binding ---------------------------------------------------------------------------------

def test_binding(duo):
    """§4 on every kind of frame: pairs (bind and AAP, with and without mac, prefixes),
    DHCP 0.0.0.0, IPv6 :: and link-local, ARP sha / probes, non-IP, MAC-only binding, VLAN
    tags, spoofed sources, and frames cut inside the source address."""
    d = duo
    d.clock(1.0)
    gw1 = PORT_MAC["vm1"]
    vm1 = [udp4(gw1, VM1_MAC, "10.9.0.5", "192.0.2.9"),                  # bind pair
           udp4(gw1, VM1_AAP_MAC, "10.9.0.100", "192.0.2.9"),            # AAP with mac
           udp4(gw1, VM1_MAC, "10.9.0.200", "192.0.2.9"),                # AAP without mac
           udp4(gw1, VM1_AAP150_MAC, "10.9.0.150", "192.0.2.9"),
           udp4(gw1, VM1_MAC, "10.9.0.100", "192.0.2.9"),                # wrong MAC: spoofed
           udp4(gw1, VM1_AAP_MAC, "10.9.0.5", "192.0.2.9"),              # spoofed
           udp4(gw1, VM1_MAC, "10.9.0.6", "192.0.2.9"),                  # vm2's: spoofed
           udp4(gw1, VM2_MAC, "10.9.0.6", "192.0.2.9"),                  # vm2's MAC: spoofed
           udp4(BCAST, VM1_MAC, "0.0.0.0", "255.255.255.255", sport=68, dport=67),
           udp4(BCAST, VM1_AAP_MAC, "0.0.0.0", "255.255.255.255", sport=68, dport=67),
           udp6(gw1, VM1_MAC, "2001:db8:9::5", "2001:db8:77::1"),
           udp6(gw1, VM1_AAP_MAC, "2001:db8:9::100", "2001:db8:77::1"),
           udp6(gw1, VM1_MAC, "2001:db8:9::100", "2001:db8:77::1"),      # spoofed
           udp6(gw1, VM1_MAC, "2001:db8:9::6", "2001:db8:77::1"),        # spoofed
           udp6("33:33:00:00:00:02", VM1_MAC, "fe80::1", "ff02::2"),
           udp6("33:33:00:00:00:02", VM1_AAP150_MAC, "febf::1", "ff02::2"),
           udp6("33:33:00:00:00:02", VM1_MAC, "::", "ff02::2"),
           udp6("33:33:00:00:00:02", "02:00:00:00:66:66", "fe80::1", "ff02::2"),  # spoofed
           arp(VM1_MAC, "10.9.0.5", "10.9.0.77"),
           arp(VM1_MAC, "0.0.0.0", "10.9.0.77"),                          # probe
           arp(VM1_AAP_MAC, "10.9.0.100", "10.9.0.77"),
           arp(VM1_MAC, "10.9.0.100", "10.9.0.77"),                       # spoofed pair
           arp(VM1_MAC, "10.9.0.5", "10.9.0.77", sha=VM1_AAP_MAC),        # sha ≠ src
           arp("02:00:00:00:66:66", "0.0.0.0", "10.9.0.77"),              # spoofed MAC
           frame(BCAST, VM1_MAC, Raw(b"\x88\xcc" + bytes(46))),           # non-IP
           frame(BCAST, VM1_AAP_MAC, Raw(b"\x88\x47" + bytes(46))),       # MPLS
           frame(BCAST, "02:00:00:00:66:66", Raw(b"\x88\xcc" + bytes(46))),
           frame(BCAST, VM1_MAC, Raw(b"\x08\x00" + bytes(19))),           # IPv4 cut
           frame(BCAST, VM1_MAC, Raw(b"\x86\xdd" + bytes(39))),           # IPv6 cut
           frame(BCAST, VM1_MAC, Raw(b"\x08\x06" + bytes(27))),           # ARP cut
           frame(BCAST, "02:00:00:00:66:66", Raw(b"\x08\x00" + bytes(10))),
           bytes.fromhex("ffffffffffff020000001001810000"),               # inside a tag
           bytes.fromhex("ffffffffffff02000000100108"),                   # 13 bytes
           b""]
    for tags in [(), (Dot1Q(vlan=10),), (Dot1AD(vlan=20), Dot1Q(vlan=10))]:
        tagged = [f if len(f) < 14 else f[:12] + tag_bytes(tags) + f[12:] for f in vm1]
        d.run(VM1, tagged, f"vm1 bound, {len(tags)} tags")
    d.run(VM2, [udp4(PORT_MAC["vm2"], VM2_MAC, "10.9.1.9", "192.0.2.9"),       # inside /28
                udp4(PORT_MAC["vm2"], VM2_MAC, "10.9.1.16", "192.0.2.9"),      # outside
                udp4(PORT_MAC["vm2"], VM2_MAC, "10.9.2.7", "192.0.2.9"),       # AAP /29
                udp4(PORT_MAC["vm2"], VM2_AAP_MAC, "10.9.0.200", "192.0.2.9"),
                udp4(PORT_MAC["vm2"], VM2_AAP_MAC, "10.9.0.6", "192.0.2.9"),   # spoofed
                arp(VM2_MAC, "10.9.2.1", "10.9.0.1"),
                arp(VM2_MAC, "10.9.2.8", "10.9.0.1")],                        # spoofed
          "vm2 prefixes")
    d.run(VM3, [udp4(PORT_MAC["vm3"], VM3_MAC, "1.2.3.4", "192.0.2.9"),        # MAC-only
                udp6(PORT_MAC["vm3"], VM3_MAC, "2001:db8:dead::1", "2001:db8:77::1"),
                arp(VM3_MAC, "10.9.0.33", "10.9.0.1"),
                arp(VM3_MAC, "10.9.0.33", "10.9.0.1", sha=VM1_MAC),           # sha ≠ src
                frame(BCAST, VM3_MAC, Raw(b"\x08\x00" + bytes(5))),           # cut, MAC ok
                udp4(PORT_MAC["vm3"], VM1_MAC, "10.9.0.5", "192.0.2.9")],     # spoofed
          "vm3 MAC-only binding")
    d.run(R1, [udp4(PORT_MAC["r1"], R1_MAC, "10.30.0.5", "10.30.7.1"),
               udp4(RED_GW_MAC, R1_MAC, "10.30.0.5", "8.8.8.8"),
               udp4(PORT_MAC["r1"], R1_MAC, "10.30.0.6", "10.30.7.1"),        # spoofed
               udp6(PORT_MAC["r1"], R1_MAC, "2001:db8:30::5", "2001:db8:31::1"),
               frame(PORT_MAC["r1"], R1_MAC, Raw(b"\x88\xcc" + bytes(46))),  # l3: unsupported
               frame(PORT_MAC["r1"], "02:00:00:00:66:66", Raw(b"\x88\xcc" + bytes(46)))],
          "r1 bound in an l3 VRF")
    d.run(G1, [udp4(BCAST, G1_MAC, "10.20.0.5", "10.20.0.255"),
               udp4(BCAST, G1_MAC, "10.20.0.6", "10.20.0.255"),               # spoofed
               udp6("33:33:00:00:00:01", G1_MAC, "2001:db8:20::5", "ff02::1")],  # spoofed
          "g1 bound in an l2 VRF")
    d.finish()
    t = d.totals()
    assert t["spoofed"] >= 30 and t["truncated"] > 0 and t["tx"] > 0, t


def tag_bytes(tags) -> bytes:
    out = b""
    for t in tags:
        tpid = 0x88A8 if isinstance(t, Dot1AD) else 0x8100
        out += struct.pack("!HH", tpid, t.vlan)
    return out


# --- ARP and ND answered, consumed, bridged -------------------------------------------------

def test_arp_answers(duo):
    """§5 for ARP: gateway addresses on every port, proxy for bind / AAP / routed targets,
    the asker's own address, gratuitous, probes, replies to us, non-Ethernet/IPv4 ARP,
    truncated ARP, tags kept in the reply; in l2_l3, l2 and l3 VRFs."""
    d = duo
    d.clock(1.0)
    blue_from = {
        VM1: (VM1_MAC, "10.9.0.5"), VM2: (VM2_MAC, "10.9.0.6"),
        VM3: (VM3_MAC, "10.9.0.33"), SW: ("02:00:00:00:41:41", "10.9.0.41"),
        UP: ("02:00:00:00:42:42", "10.9.0.42")}
    targets = ["10.9.0.1", "10.9.0.5", "10.9.0.6", "10.9.1.0", "10.9.1.15", "10.9.1.16",
               "10.9.2.3", "10.9.0.100", "10.9.0.200", "10.9.0.150", "10.9.0.254",
               "10.9.0.77", "8.8.8.8", "192.0.2.1", "203.0.113.5", "198.51.100.5",
               "10.20.0.1", "10.30.0.1", "172.16.1.1", "172.17.1.1", "172.18.1.1"]
    for port, (mac, ip) in blue_from.items():
        for tags in [(), (Dot1Q(vlan=5),), (Dot1AD(vlan=6), Dot1Q(vlan=7))]:
            d.run(port, [arp(mac, ip, t, tags=tags) for t in targets], f"requests, tags {len(tags)}")
        d.run(port, [arp(mac, ip, ip),                                   # gratuitous
                     arp(mac, ip, ip, op=2),                             # gratuitous reply
                     arp(mac, "0.0.0.0", "10.9.0.1"),                    # probe, gateway
                     arp(mac, "0.0.0.0", "10.9.0.6"),                    # probe, proxy
                     arp(mac, "0.0.0.0", "0.0.0.0"),
                     arp(mac, ip, "10.9.0.1", dst=PORT_MAC["vm1"]),       # unicast request
                     arp(mac, ip, "10.9.0.1", op=3),                      # other ops
                     arp(mac, ip, "10.9.0.1", op=2, dst=PORT_MAC[CFG.ports[port].name]),
                     arp(mac, ip, "10.9.0.1", op=2, dst=VM2_MAC),
                     arp(mac, ip, "10.9.0.1", op=2),                      # broadcast reply
                     arp(mac, ip, "10.9.0.1", op=2, dst=PORT_MAC["up"]),
                     arp(mac, ip, "10.9.0.1", hwtype=6),                  # not Ethernet/IPv4
                     arp(mac, ip, "10.9.0.1", ptype=0x86DD),
                     arp(mac, ip, "10.9.0.1", hwlen=8),
                     arp(mac, ip, "10.9.0.1")[:41],                       # 27 bytes of ARP
                     arp(mac, ip, "10.9.0.1")[:42],                       # exactly 28
                     arp(mac, ip, "10.9.0.1") + b"\xab" * 30],            # trailer zeroed
              "ARP corners")
    green_from = {G1: (G1_MAC, "10.20.0.5"), G2: ("02:00:00:00:21:21", "10.20.0.21"),
                  G3: ("02:00:00:00:21:31", "10.20.0.31")}
    for port, (mac, ip) in green_from.items():
        d.run(port, [arp(mac, ip, t) for t in ("10.20.0.1", "10.20.0.5", "10.20.0.21",
                                               "8.8.8.8", "10.9.0.1", ip)]
              + [arp(mac, ip, "10.20.0.1", op=2, dst=GREEN_GW_MAC),
                 arp(mac, ip, "10.20.0.1", op=2, dst=PORT_MAC[CFG.ports[port].name]),
                 arp(mac, ip, "10.20.0.1", ptype=0x86DD),
                 arp(mac, ip, "10.20.0.1")[:40]], "green")
    teal_from = {T1: (T1_MAC, "10.50.1.5"), T2: ("02:00:00:00:50:12", "10.50.1.12"),
                 T3: (T3_STATIC, "10.50.1.13")}
    for port, (mac, ip) in teal_from.items():
        d.run(port, [arp(mac, ip, t) for t in ("10.50.1.1", "10.50.1.5", "10.50.1.13",
                                               "8.8.8.8", ip)]
              + [arp(mac, ip, "10.50.1.1", op=2, dst=TEAL_GW_MAC),
                 arp(mac, ip, "10.50.1.1", op=2, dst=PORT_MAC[CFG.ports[port].name]),
                 arp(mac, ip, "10.50.1.1", op=2, dst=PORT_MAC["t1"]),
                 arp(mac, ip, "10.50.1.1", ptype=0x86DD)], "teal")
    red_from = {R1: (R1_MAC, "10.30.0.5"), R2: ("02:00:00:00:31:02", "10.30.0.9"),
                RUP: ("02:00:00:00:31:0b", "10.31.0.77")}
    for port, (mac, ip) in red_from.items():
        d.run(port, [arp(mac, ip, t) for t in ("10.30.0.1", "10.31.0.1", "10.30.0.5",
                                               "10.30.7.5", "8.8.8.8", "10.31.0.9", ip)]
              + [arp(mac, ip, "10.30.0.1", op=2, dst=RED_GW_MAC),
                 arp(mac, ip, "10.30.0.1", op=2, dst=BCAST),
                 arp(mac, ip, "10.30.0.1", hwtype=6),
                 arp(mac, ip, "10.30.0.1")[:41],
                 arp(mac, ip, "10.30.0.1", tags=(Dot1Q(vlan=3),))], "red")
    d.run(P0, [arp("02:00:00:00:60:01", "10.40.0.5", "10.40.0.1"),
               arp("02:00:00:00:60:01", "10.40.0.5", "8.8.8.8"),
               arp("02:00:00:00:60:01", "10.40.0.5", "10.40.0.1", op=2, dst=PORT_MAC["p0"]),
               arp("02:00:00:00:60:01", "10.40.0.5", "10.40.0.1", hwtype=6),
               arp("02:00:00:00:60:01", "10.40.0.5", "10.40.0.1")[:30]], "plain l3")
    t = d.totals()
    for k in ("arp_replied", "consumed", "flooded", "truncated", "unsupported", "spoofed"):
        assert t[k] > 0, (k, t)
    d.finish()


def test_nd_answers(duo):
    """§5 for ND: NS for gateway / bind / AAP / routed targets, with and without the
    source link-layer option, DAD (source ::), a zero-length option, truncated NS / NA,
    NS to the asker's own address, hop limit other than 255, an extension header, NAs to
    us and not, tags."""
    d = duo
    d.clock(1.0)
    blue_from = {VM1: (VM1_MAC, "2001:db8:9::5"), VM2: (VM2_MAC, "fe80::10:2"),
                 VM3: (VM3_MAC, "2001:db8:9::33"), SW: ("02:00:00:00:41:41", "2001:db8:9::41"),
                 UP: ("02:00:00:00:42:42", "2001:db8:9::42")}
    targets = ["2001:db8:9::1", "2001:db8:9::5", "2001:db8:9::100", "2001:db8:9::fe",
               "2001:db8:77::1", "2001:db8:30::1"]     # unroutable ones: test_proxy_unroutable
    bad_option = bytes([1, 0]) + bytes(6)
    for port, (mac, ip) in blue_from.items():
        for tags in [(), (Dot1Q(vlan=5),), (Dot1AD(vlan=6), Dot1Q(vlan=7))]:
            d.run(port, [ns(mac, ip, t, tags=tags) for t in targets]
                  + [ns(mac, ip, t, sll=False, tags=tags) for t in targets[:3]],
                  f"NS, tags {len(tags)}")
        nd_corners = [
            ns(mac, "::", "2001:db8:9::1"),                                  # DAD
            ns(mac, "::", "2001:db8:9::1", sll=False),
            ns(mac, ip, ip),                                                 # own address
            ns(mac, ip, "2001:db8:9::1", options=bad_option),                # zero length
            ns(mac, ip, "2001:db8:9::1", options=bytes([2, 1]) + bytes(6)),  # wrong type
            ns(mac, ip, "2001:db8:9::1", options=bytes([14, 1]) + bytes(6)
               + bytes([1, 1]) + bytes.fromhex("020000000077")),             # second option
            ns(mac, ip, "2001:db8:9::1", options=bytes([1, 1]) + bytes(3)),  # option cut
            ns(mac, ip, "2001:db8:9::1", hlim=64),                           # not ND
            ns(mac, ip, "2001:db8:9::1", dst="2001:db8:9::1", dst_mac=PORT_MAC["vm1"]),
            ns(mac, ip, "2001:db8:9::1")[:14 + 40 + 23],                     # NS cut
            ns(mac, ip, "2001:db8:9::1")[:14 + 40 + 24],
            ns(mac, ip, "2001:db8:9::1")[:14 + 41],
            ns(mac, ip, "2001:db8:9::1")[:14 + 40],
            frame("33:33:ff:00:00:01", mac, IPv6(src=ip, dst="ff02::1:ff00:1", hlim=255),
                  IPv6ExtHdrHopByHop(), ICMPv6ND_NS(tgt="2001:db8:9::1")),   # extension hdr
            na(mac, ip, ip, tll=mac),                                        # unsolicited NA
            na(mac, ip, ip, dst="2001:db8:9::1", dst_mac=PORT_MAC[CFG.ports[port].name]),
            na(mac, ip, ip, dst="2001:db8:9::1", dst_mac=PORT_MAC["vm3"], tll=mac),
            na(mac, ip, ip, dst="2001:db8:9::7", dst_mac=VM2_MAC, tll=mac),
            na(mac, ip, ip)[:14 + 40 + 20],
            frame(PORT_MAC["vm1"], mac, IPv6(src=ip, dst="2001:db8:9::1", hlim=255),
                  ICMPv6EchoRequest()),
        ]
        d.run(port, nd_corners, "ND corners")
    for port, (mac, ip) in {G1: (G1_MAC, "fe80::20:1"), G2: ("02:00:00:00:21:21", "fe80::21"),
                            G3: ("02:00:00:00:21:31", "2001:db8:20::31")}.items():
        d.run(port, [ns(mac, ip, t) for t in ("2001:db8:20::1", "fe80::21", ip)]
              + [na(mac, ip, ip, dst_mac=GREEN_GW_MAC, dst="fe80::1"), ns(mac, "::", ip)],
              "green")
    for port, (mac, ip) in {T1: (T1_MAC, "2001:db8:50::5"), T2: ("02:00:00:00:50:12", "fe80::12"),
                            T3: (T3_STATIC, "2001:db8:50::13")}.items():
        d.run(port, [ns(mac, ip, t) for t in ("2001:db8:50::1", "2001:db8:50::5",
                                              "2001:db8:77::1", ip)]
              + [na(mac, ip, ip, dst_mac=TEAL_GW_MAC, dst="2001:db8:50::1"),
                 na(mac, ip, ip, dst_mac=PORT_MAC[CFG.ports[port].name], dst="2001:db8:50::1"),
                 na(mac, ip, ip, tll=mac)], "teal")
    for port, (mac, ip) in {R1: (R1_MAC, "2001:db8:30::5"), R2: ("02:00:00:00:31:02", "fe80::31"),
                            RUP: ("02:00:00:00:31:0b", "2001:db8:31::77")}.items():
        d.run(port, [ns(mac, ip, t) for t in ("2001:db8:30::1", "2001:db8:30::5",
                                              "2001:db8:31::5", "2001:db8:99::1", ip)]
              + [na(mac, ip, ip, tll=mac), ns(mac, "::", "2001:db8:30::1"),
                 ns(mac, ip, "2001:db8:30::1")[:14 + 40 + 10],
                 ns(mac, ip, "2001:db8:30::1", options=bad_option)], "red")
    d.run(P0, [ns("02:00:00:00:60:01", "fe80::60:1", "2001:db8:40::1"),
               na("02:00:00:00:60:01", "fe80::60:1", "fe80::60:1", tll="02:00:00:00:60:01")],
          "plain")
    t = d.totals()
    for k in ("arp_replied", "consumed", "flooded", "truncated"):
        assert t[k] > 0, (k, t)
    d.finish()


# --- next hops resolved by ARP / ND -----------------------------------------------------------

def test_neighbour_resolution(duo):
    """§6: requests at start and every retry while incomplete (broadcast ARP, NS to the
    solicited-node group; sources: the gateway in the prefix, the VRF's first, 0.0.0.0,
    link-local), packets held (queue 4, then arp_unresolved; two next hops sharing one
    neighbour share its queue), resolution by ARP reply, gratuitous ARP, ARP request, NA
    with and without the target option (a zero-length option first: the Ethernet source),
    NS with the source option (without it: nothing learned), frames that teach nothing
    (another port, multicast or zero MAC, another address), a new MAC, held packets
    released oldest first by the next process() / neigh_tick(), unicast refresh from 2/3
    of reachable_time, expiry at reachable_time exactly, drop_held."""
    d = duo
    gw1 = PORT_MAC["vm1"]
    to_gw = [udp4(gw1, VM1_MAC, "10.9.0.5", "8.8.8.%d" % i, sport=3000 + i) for i in range(6)]
    to_gwb = [udp4(gw1, VM1_MAC, "10.9.0.5", "203.0.113.%d" % i) for i in range(2)]
    to_gw6 = [udp6(gw1, VM1_MAC, "2001:db8:9::5", "2001:db8:77::%d" % i) for i in range(3)]
    to_host = [udp4(gw1, VM1_MAC, "10.9.0.5", "198.51.100.%d" % i) for i in range(5)]
    to_rgw = [udp4(PORT_MAC["r1"], R1_MAC, "10.30.0.5", "8.8.4.%d" % i) for i in range(3)]
    to_rgw6 = [udp6(RED_GW_MAC, R1_MAC, "2001:db8:30::5", "2001:db8:31::%d" % i)
               for i in range(3)]
    to_pnh = [udp4(PORT_MAC["p0"], "02:00:00:00:60:01", "10.40.0.5", "1.1.1.%d" % i)
              for i in range(6)]
    to_pnh6 = [udp6(PORT_MAC["p0"], "02:00:00:00:60:01", "2001:db8:40::5",
                    "2001:db8:99::%d" % i) for i in range(2)]
    to_tnh6 = [udp6(TEAL_GW_MAC, T1_MAC, "2001:db8:50::5", "2001:db8:77::%d" % i)
               for i in range(2)]
    d.clock(10.0)
    assert len(d.tick("start")) == N_NEIGH
    d.run(VM1, to_gw + to_gwb + to_gw6 + to_host, "held: queues of 4, the rest dropped")
    d.run(R1, to_rgw + to_rgw6, "held in red")
    d.run(P0, to_pnh + to_pnh6, "held in plain")
    d.run(T1, to_tnh6, "held in teal")
    d.clock(10.5)
    assert d.tick("within retry") == []
    d.clock(11.0)
    assert len(d.tick("retry")) == N_NEIGH
    # resolved by an ARP reply to the port (consumed), released by the next process()
    d.run(UP, [arp(GW_MAC, "10.9.0.254", "10.9.0.1", op=2, tha=PORT_MAC["up"],
                   dst=PORT_MAC["up"])], "gw answers")
    out = d.run(VM1, to_gw[:1], "released first, then the new packet")
    assert len(out) == 5 and all(f[:6] == mac_bytes(GW_MAC) for _, f in out)
    # resolved by a gratuitous ARP on sw (bridged), released by neigh_tick()
    d.clock(11.5)
    d.run(SW, [arp(HOST_MAC, "10.9.0.77", "10.9.0.77")], "host: gratuitous ARP")
    assert len(d.tick("host's held packets")) == 4
    # resolved by an unsolicited NA with the target option (multicast: bridged)
    d.run(UP, [na(GW6_MAC, "2001:db8:9::fe", "2001:db8:9::fe", tll=GW6_MAC)], "gw6 NA")
    # red: by an ARP request from the neighbour (answered: the gateway), NS with SLLA
    d.run(RUP, [arp(RGW_MAC, "10.31.0.9", "10.31.0.1"),
                ns(RGW6_MAC, "2001:db8:31::9", "2001:db8:30::1")], "red neighbours ask")
    # not learned: another port, multicast or zero MAC, another address, NS without SLLA
    d.run(UP, [arp("02:00:00:00:fe:aa", "10.31.0.9", "10.9.0.1", op=2, dst=PORT_MAC["up"])],
          "another port's neighbour")
    d.run(PUP, [arp("01:00:5e:00:00:01", "10.40.0.9", "10.40.0.1", op=2, dst=PORT_MAC["pup"]),
                arp("02:00:00:00:fe:41", "10.40.0.9", "10.40.0.1", op=2, sha=ZERO_MAC,
                    dst=PORT_MAC["pup"]),
                arp("02:00:00:00:fe:41", "10.40.0.9", "10.40.0.1", op=2,
                    sha="33:33:00:00:00:01", dst=PORT_MAC["pup"]),
                na("02:00:00:00:fe:42", "2001:db8:40::9", "2001:db8:40::8",
                   tll="02:00:00:00:fe:42")], "not learned")
    d.run(T3, [ns(T3_STATIC, "2001:db8:50::13", "2001:db8:50::1", sll=False)], "no SLLA")
    d.clock(12.0)
    d.tick("plain and teal still asking")
    # plain's IPv6 neighbour by an NA without option (the Ethernet source); teal's by an
    # NA whose option has length 0 (the search stops: the Ethernet source too)
    d.run(PUP, [na("02:00:00:00:fe:46", "2001:db8:40::9", "2001:db8:40::9",
                   dst="fe80::ff:fe00:d", dst_mac=PORT_MAC["pup"], S=1)], "pnh6 NA")
    d.run(T3, [frame(TEAL_GW_MAC, T3_STATIC, IPv6(src="2001:db8:50::13", dst="2001:db8:50::1",
                                                  hlim=255),
                     ICMPv6ND_NA(tgt="2001:db8:50::13", S=1),
                     Raw(bytes([2, 0]) + bytes(6) + bytes([2, 1]) + mac_bytes(GW_MAC)))],
          "tnh6 NA, zero-length option")
    d.run(P0, to_pnh6, "after pnh6 resolved: released, then sent")
    d.tick("tnh6's held packets")
    # a new MAC for gw
    d.run(UP, [arp("02:00:00:00:fe:fd", "10.9.0.254", "10.9.0.254")], "gw moves (gratuitous)")
    out = d.run(VM1, to_gw[:2], "to the new MAC")
    assert all(f[:6] == mac_bytes("02:00:00:00:fe:fd") for _, f in out)
    # refresh: unicast from confirmation + 20 s, every retry; expiry at + 30 s
    d.clock(31.0)                               # gw confirmed at 12: not yet
    d.tick("no refresh yet")
    d.clock(32.0)                               # gw: 12 + 20
    refresh = d.tick("refresh")
    assert any(f[:6] == mac_bytes("02:00:00:00:fe:fd") for _, f in refresh)
    d.clock(32.5)
    d.tick("no second refresh within retry")
    d.clock(33.0)
    d.tick("refresh again")
    d.run(UP, [arp(GW_MAC, "10.9.0.254", "10.9.0.1", op=2, tha=PORT_MAC["up"],
                   dst=PORT_MAC["up"])], "gw confirms at 33")
    assert [n[3] for n in d.ref.neighbors()].count("reachable") == N_NEIGH - 1   # not pnh
    d.clock(41.5)
    d.tick("expiries at 41.5 (host, gw6, rgw, rgw6: confirmed at 11.5)")
    d.run(VM1, to_host[:2] + to_gw6[:1] + to_gw[:1], "host expired: held again")
    d.clock(53.0)
    d.tick("gw: 33 + 20")
    d.clock(63.0)
    d.tick("gw expires")
    d.run(VM1, to_gw[:5], "held again, one dropped")
    d.run(R1, to_rgw, "")
    assert held(d.ref) > 0
    d.drop_held()
    assert held(d.ref) == 0
    d.clock(63.5)
    d.tick("")
    t = d.totals()
    for k in ("arp_sent", "arp_unresolved", "consumed", "arp_replied", "tx"):
        assert t[k] > 0, (k, t)


def mac_bytes(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


# --- mismatches found (each minimised; they fail until the backends agree) -----------------

UNROUTABLE_V4 = ["127.0.0.1", "224.0.0.5", "255.255.255.255", "0.0.0.1"]
UNROUTABLE_V6 = ["fe80::1", "ff02::1", "::1"]


def test_proxy_unroutable(duo):
    """MISMATCH 1 (found, then fixed in the core while this file was written). An ARP
    request / NS on a proxy_arp port for a target that only a default route covers but
    that the L3 path never routes (loopback, multicast, broadcast, 0/8, link-local): the
    reference does not answer (bridge.py answer() requires routable(t)) and bridges
    (blue) or consumes (red) it; the core answered with the gateway MAC until neigh.pxd
    answer() got the same routable() condition. docs §5.2 says only "T has a route
    whose next hop (or any group member) leaves by another port", which blue's
    0.0.0.0/0, ::/0 and red's 0.0.0.0/0 satisfy: the page should name the condition."""
    d = duo
    d.clock(1.0)
    cases = ([(VM1, arp(VM1_MAC, "10.9.0.5", t)) for t in UNROUTABLE_V4]
             + [(R2, arp("02:00:00:00:31:02", "10.30.0.9", t)) for t in UNROUTABLE_V4]
             + [(VM1, ns(VM1_MAC, "2001:db8:9::5", t)) for t in UNROUTABLE_V6])
    differ = []
    for port, f in cases:
        r, c = d.ref.process(port, [f]), d.cy.process(port, [f])
        if r != c:
            differ.append(f"  on {CFG.ports[port].name}: {describe(f)[:60]}\n"
                          f"    reference {[(p, describe(x)[:60]) for p, x in r]}\n"
                          f"    cython    {[(p, describe(x)[:60]) for p, x in c]}")
    d.ref.drop_held()
    d.cy.drop_held()
    assert not differ, f"{len(differ)} of {len(cases)} differ:\n" + "\n".join(differ)


@pytest.mark.parametrize("moved", [False, True], ids=["new-mac", "moved-mac"])
@pytest.mark.parametrize("port", [SW, UP], ids=["sw-flow-mode", "up-packet-mode"])
def test_burst_learns_in_frame_order(mbuf_leak_check, port, moved):
    """MISMATCH 2 (the flow-mode cases fail). A burst of two frames on a blue port: the
    first to MAC X, the second from X. new-mac: X unknown before the burst; moved-mac: X
    learned on another port before it. Each frame meets §2's steps in turn, so the first
    is dropped unknown_unicast (new) or bridged to X's old port (moved) before the second
    teaches or moves X (the reference, and the core in packet mode). In flow mode the
    core's phase 1 (pipeline.pxd flow_keys() → classify() → bridge_learn()) learns from
    the whole burst before phase 3 bridges any of it: the first frame finds X on its own
    ingress port and is dropped hairpin. The reference is right: §2 orders the steps per
    frame, and a port's mode must not change what bridging does."""
    d = Duo()
    try:
        d.clock(1.0)
        me, x, a = PORT_MAC[CFG.ports[port].name], "02:00:00:00:77:01", "02:00:00:00:77:02"
        if moved:
            d.run(UP if port == SW else SW, [udp4(BCAST, x, "10.9.0.72", "10.9.0.255")],
                  "X learned on another port")
        d.run(port, [udp4(x, a, "10.9.0.71", "10.9.0.72"),
                     udp4(me, x, "10.9.0.72", "10.9.0.71")], "to X, then from X")
        d.finish()
    finally:
        d.close()


def test_resolved_inside_a_burst(duo):
    """MISMATCH 3 (found, then fixed in the core while this file was written). Two
    packets held for red's rgw (10.31.0.9 on rup, unresolved), then a burst on rup:
    rgw's ARP reply, then two more packets routed to rgw. §6: once the neighbour
    resolves, the held packets are sent "oldest first, before anything it receives
    afterwards". The reference keeps the two new packets behind the held ones (neigh.py
    out(): a neighbour with packets held queues, nothing overtakes) and sends all four,
    oldest first, at the next process(). The core sent the two new ones at once and the
    two older ones only at the next call (neigh_out() wrote a valid MAC whatever the
    worker still held) until neigh_out() got `and h.n[j] == 0`."""
    d = duo
    d.clock(1.0)
    d.tick("")
    pkt = [udp4(RED_GW_MAC, "02:00:00:00:31:0b", "10.31.0.77", "8.8.8.%d" % i)
           for i in range(4)]
    d.run(RUP, pkt[:2], "held")
    d.run(RUP, [arp(RGW_MAC, "10.31.0.9", "10.31.0.1", op=2, dst=RED_GW_MAC)] + pkt[2:],
          "the reply, then two packets for the same neighbour")
    d.run(RUP, [], "released")
    d.finish()


# A second configuration for the limits of one burst: an l2 VRF of 11 ports (a broadcast
# burst of 32 frames makes 32 x 9 = 288 flood copies) and five next hops on one port with
# queues of 64 (320 packets held, released together).
WIDE = 11
BIG_YAML = ("""
node: {name: big}
neighbors: {reachable_time: 30, retry: 1, queue: 64}
ports:
""" + "".join(f'  - {{name: w{i}, devargs: net_null{i}, mac: "02:00:00:00:01:{i:02x}", '
              f'vrf: wide}}\n' for i in range(WIDE)) + """
  - {name: vm, devargs: net_null20, mac: "02:00:00:00:02:01", vrf: r}
  - {name: up, devargs: net_null21, mac: "02:00:00:00:02:02", vrf: r}
vrfs:
  wide: {forwarding: l2}
  r:
    forwarding: l2_l3
    gateway: {ip: [10.1.0.1/24]}
    routes:
""" + "".join(f"      - {{prefix: 10.{10 + j}.0.0/16, via: n{j}}}\n" for j in range(5))
            + "nexthops:\n"
            + "".join(f"  n{j}: {{port: up, ip: 10.1.0.{100 + j}}}\n" for j in range(5)))
BIG = load_text(BIG_YAML)
BIG_VM, BIG_UP = WIDE, WIDE + 1


def test_flood_beyond_256_copies(mbuf_leak_check):
    """MISMATCH 4. 32 broadcasts in one burst on w0, an l2 VRF of 11 ports: §3 floods each
    to the 10 other ports (the original to the first, a copy to each of the 9 others):
    288 copies. The reference sends them all. The core stages at most XSTAGE = 256 extra
    frames per burst (vnet.pxd; bridge.pxd stage_x()): it frees the last 32 copies and
    counts them flood_dropped on the ports they were for, where §3 and §7 count
    flood_dropped "on the ingress port". The reference is right (the page has no such
    limit; the copies could be made), and the core counts on the wrong port besides."""
    d = Duo(BIG)
    try:
        d.clock(1.0)
        burst = [udp4(BCAST, "02:00:00:00:0a:%02x" % i, "10.0.0.%d" % i, "10.0.0.255")
                 for i in range(32)]
        r, c = d.ref.process(0, burst), d.cy.process(0, burst)
        problems = []
        if r != c:
            problems.append(f"outputs: reference {len(r)} frames, cython {len(c)}")
        for name, b in (("reference", d.ref), ("cython", d.cy)):
            vn = b.vnet_counters()
            elsewhere = {p: v["flood_dropped"] for p, v in vn.items()
                         if v["flood_dropped"] and p != "w0"}
            if elsewhere:
                problems.append(f"{name}: flood_dropped counted on {elsewhere}, not on w0")
            copies = sum(v["flooded"] + v["flood_dropped"] for v in vn.values())
            if copies != 32 * (WIDE - 2):
                problems.append(f"{name}: {copies} copies flooded or dropped, not "
                                f"{32 * (WIDE - 2)}")
        if d.ref.vnet_counters() != d.cy.vnet_counters():
            problems.append("vnet_counters differ")
        assert not problems, "\n".join(problems)
    finally:
        d.ref.drop_held()
        d.cy.drop_held()
        d.close()


def test_release_beyond_256_held(mbuf_leak_check):
    """MISMATCH 5. 64 packets held for each of five neighbours (queue 64), all five
    resolved by one burst of ARP replies; then one more packet for the fifth. §6: the
    worker sends the held packets oldest first "before anything it receives afterwards",
    §8: released first by the next process(). The reference sends all 320, then the new
    packet. The core releases 256 (its XSTAGE staging limit, neigh.pxd neigh_release()),
    keeps the fifth neighbour's 64 held, and sends the new packet at once (neigh_out():
    the neighbour is valid), ahead of 64 packets it received earlier. The reference is
    right."""
    d = Duo(BIG)
    try:
        d.clock(1.0)
        d.tick("requests")
        me = PORT_MAC_OF(BIG, BIG_VM)
        d.run(BIG_VM, [udp4(me, "02:00:00:00:0b:01", "10.1.0.5", f"10.{10 + j}.0.{i}")
                       for j in range(5) for i in range(64)], "320 held")
        d.run(BIG_UP, [arp("02:00:00:00:fe:%02x" % j, f"10.1.0.{100 + j}", "10.1.0.1", op=2,
                           dst=PORT_MAC_OF(BIG, BIG_UP)) for j in range(5)], "all resolved")
        d.run(BIG_VM, [udp4(me, "02:00:00:00:0b:01", "10.1.0.5", "10.14.9.9")],
              "released, then one more for n4")
        d.finish()
    finally:
        d.close()


def test_learns_from_arp_of_any_op(duo):
    """§5.1: an ARP of any op (RFC 826: the sender's pair is merged whatever the op) from
    a dynamic next hop's address on its port confirms it: opcodes 3, 4, 0, 8 from rgw's
    address on rup make rgw reachable with the sender's MAC, in both backends."""
    d = duo
    d.clock(1.0)
    d.run(RUP, [arp(RGW_MAC, "10.31.0.9", "10.31.0.1", op=op) for op in (3, 4, 0, 8)],
          "ARP opcodes other than request and reply")
    d.finish()
    state = [n for n in d.ref.neighbors() if n[1] == "10.31.0.9"]
    assert state == [(RUP, "10.31.0.9", bytes.fromhex(RGW_MAC.replace(":", "")),
                      "reachable")], state


def PORT_MAC_OF(cfg, index: int) -> str:
    return cfg.ports[index].mac.hex(":")


def test_arp_reply_to_the_sender_hardware_address(duo):
    """§5: the reply goes to the request's sender hardware address (as Linux answers),
    which on a port without binding may differ from the frame's Ethernet source."""
    d = duo
    d.clock(1.0)
    src, sha = "02:00:00:00:41:41", "02:00:00:00:41:99"
    out = d.run(SW, [arp(src, "10.9.0.41", "10.9.0.1", sha=sha)], "sha ≠ Ethernet source")
    d.finish()
    assert len(out) == 1 and out[0][0] == SW
    reply = Ether(out[0][1])
    assert reply[ARP].op == 2 and reply[ARP].hwdst == sha      # tha = request's sha
    assert reply.dst == sha, f"reply sent to {reply.dst}, the request's sha is {sha}"


# --- AAP spreading, routing from bound ports --------------------------------------------------

def test_aap_groups_and_routing(duo):
    """Routed traffic into AAP addresses: active-active spreads flows over vm1 and vm2
    (flow mode from sw, packet mode from up), active-standby goes to the first member;
    bind prefixes and AAP /29; l2_l3 routed only to the gateway MAC (the ingress port's);
    routed replies from bound ports with AAP sources; IPv6 to the AAP /128."""
    d = duo
    d.clock(1.0)
    d.run(UP, [arp(GW_MAC, "10.9.0.254", "10.9.0.1", op=2, dst=PORT_MAC["up"])], "gw known")
    d.run(UP, [na(GW6_MAC, "2001:db8:9::fe", "2001:db8:9::fe", tll=GW6_MAC,
                  dst_mac=PORT_MAC["up"], dst="2001:db8:9::1")], "gw6 known")
    rng = random.Random(SEED)
    for port in (SW, UP):
        gwmac = PORT_MAC[CFG.ports[port].name]
        src_mac = "02:00:00:00:41:41" if port == SW else GW_MAC
        flows = []
        for i in range(120):
            dst = rng.choice(["10.9.0.200", "10.9.0.100", "10.9.0.5", "10.9.0.6",
                              "10.9.1.3", "10.9.2.5", "10.9.0.150", "192.0.2.4", "10.9.0.9"])
            sport = rng.randrange(1024, 65536)
            l4 = rng.choice([UDP(sport=sport, dport=53), TCP(sport=sport, dport=80),
                             ICMP(type=8, id=sport)])
            flows.append(frame(gwmac, src_mac, IP(src=f"100.64.{i}.{rng.randrange(256)}",
                                                  dst=dst, ttl=rng.choice([64, 2, 1])), l4))
        flows += [udp6(gwmac, src_mac, "2001:db8:77::%x" % i, "2001:db8:9::100", sport=i)
                  for i in range(10)]
        flows += [udp6(gwmac, src_mac, "2001:db8:77::%x" % i, "2001:db8:9::5", sport=i)
                  for i in range(10)]
        for start in range(0, len(flows), 37):
            d.run(port, flows[start:start + 37], "into the VMs")
        d.run(port, flows[:60], "same flows again")
    out = d.run(SW, [udp4(PORT_MAC["sw"], "02:00:00:00:41:41", f"100.64.9.{i}", "10.9.0.200",
                          sport=i) for i in range(64)], "active-active")
    assert {p for p, _ in out} == {VM1, VM2}
    d.run(VM1, [udp4(PORT_MAC["vm1"], VM1_AAP_MAC, "10.9.0.100", f"100.64.0.{i}", sport=i)
                for i in range(20)]
          + [udp4(PORT_MAC["vm2"], VM1_MAC, "10.9.0.200", "100.64.0.1")],    # bridged: vm2's
          "AAP sources out")
    d.run(VM2, [udp4(PORT_MAC["vm2"], VM2_AAP_MAC, "10.9.0.200", "10.9.0.5", sport=i)
                for i in range(10)], "vm2 to vm1 routed")
    d.run(VM2, [udp6(PORT_MAC["vm2"], VM2_MAC, "fe80::2", "2001:db8:9::5")], "link-local src")
    d.finish()
    t = d.totals()
    assert t["tx"] > 300 and t["ttl_expired"] > 0, t


# --- seeded random traffic -------------------------------------------------------------------

HOSTS = {   # per port: (MAC, IPv4, IPv6) of hosts that may legitimately be behind it
    VM1: [(VM1_MAC, "10.9.0.5", "2001:db8:9::5"), (VM1_AAP_MAC, "10.9.0.100", "2001:db8:9::100"),
          (VM1_MAC, "10.9.0.200", "fe80::1"), (VM1_AAP150_MAC, "10.9.0.150", "fe80::150")],
    VM2: [(VM2_MAC, "10.9.0.6", "fe80::2"), (VM2_MAC, "10.9.1.7", "fe80::2"),
          (VM2_AAP_MAC, "10.9.0.200", "fe80::22"), (VM2_MAC, "10.9.2.3", "fe80::2")],
    VM3: [(VM3_MAC, "10.9.0.33", "2001:db8:9::33")],
    SW: [(HOST_MAC, "10.9.0.77", "2001:db8:9::77"), (SW_STATIC, "10.9.0.41", "2001:db8:9::41"),
         ("02:00:00:00:41:42", "10.9.0.42", "2001:db8:9::42")],
    UP: [(GW_MAC, "10.9.0.254", "2001:db8:9::fe"), (GW6_MAC, "10.9.0.253", "2001:db8:9::fe"),
         ("02:00:00:00:42:43", "100.64.1.1", "2001:db8:77::1")],
    G1: [(G1_MAC, "10.20.0.5", "fe80::20:1")],
    G2: [("02:00:00:00:21:02", "10.20.0.21", "fe80::21"), (G_STATIC, "10.20.0.9", "fe80::9")],
    G3: [("02:00:00:00:21:03", "10.20.0.22", "fe80::22"), ("02:00:00:00:21:02", "10.20.0.21",
                                                          "fe80::21")],
    R1: [(R1_MAC, "10.30.0.5", "2001:db8:30::5")],
    R2: [("02:00:00:00:31:02", "10.30.0.9", "2001:db8:30::9")],
    RUP: [(RGW_MAC, "10.31.0.9", "2001:db8:31::9"), (RGW6_MAC, "10.31.0.8", "2001:db8:31::9")],
    P0: [("02:00:00:00:60:01", "10.40.0.5", "2001:db8:40::5")],
    PUP: [("02:00:00:00:fe:40", "10.40.0.9", "2001:db8:40::9")],
    SOLO: [("02:00:00:00:50:01", "10.50.0.1", "fe80::50")],
    T1: [(T1_MAC, "10.50.1.5", "2001:db8:50::5")],
    T2: [("02:00:00:00:50:12", "10.50.1.12", "2001:db8:50::12"),
         ("02:00:00:00:50:22", "10.50.1.22", "fe80::22")],
    T3: [(T3_STATIC, "10.50.1.13", "2001:db8:50::13")],
}
ALL_MACS = sorted({m for hosts in HOSTS.values() for m, _, _ in hosts}
                  | {PORT_MAC[p.name] for p in CFG.ports}
                  | {GREEN_GW_MAC, RED_GW_MAC, TEAL_GW_MAC, "02:00:00:00:99:99"})
V4_TARGETS = sorted({ip for hosts in HOSTS.values() for _, ip, _ in hosts}
                    | {"10.9.0.1", "10.20.0.1", "10.30.0.1", "10.31.0.1", "8.8.8.8",
                       "192.0.2.7", "203.0.113.9", "198.51.100.3", "10.30.7.7", "10.9.1.20",
                       "1.1.1.1", "255.255.255.255", "224.0.0.5", "0.0.0.0", "10.50.1.1",
                       "172.16.1.1", "172.17.1.1", "172.18.1.1"})
V6_TARGETS = sorted({ip for hosts in HOSTS.values() for _, _, ip in hosts}
                    | {"2001:db8:9::1", "2001:db8:30::1", "2001:db8:77::5", "2001:db8:31::7",
                       "ff02::1", "2001:db8:40::1", "2001:db8:50::1"})
RANDOM_STEPS = 450
INGRESS = [VM1, VM1, VM2, VM2, VM3, SW, SW, UP, UP, G1, G2, G3, R1, R2, RUP, P0, PUP, SOLO,
           T1, T2, T3]


def random_frame(rng: random.Random, port: int) -> bytes:
    mac, ip4, ip6 = rng.choice(HOSTS[port])
    if rng.random() < 0.1:                                    # someone else's identity
        mac, ip4, ip6 = rng.choice(rng.choice(list(HOSTS.values())))
    if rng.random() < 0.05:
        ip4, ip6 = rng.choice(V4_TARGETS), rng.choice(V6_TARGETS)
    me = PORT_MAC[CFG.ports[port].name]
    dst = rng.choice([me, me, me, BCAST, "01:00:5e:00:00:05", "33:33:00:00:00:01",
                      rng.choice(ALL_MACS), rng.choice(ALL_MACS)])
    tags = rng.choice([(), (), (), (Dot1Q(vlan=rng.randrange(4096)),),
                       (Dot1AD(vlan=5), Dot1Q(vlan=6))])
    kind = rng.random()
    t4, t6 = rng.choice(V4_TARGETS), rng.choice(V6_TARGETS)
    if kind < 0.3:
        l4 = rng.choice([UDP(sport=rng.randrange(65536), dport=53),
                         TCP(sport=rng.randrange(65536), dport=443, flags=rng.choice("SAFR")),
                         ICMP(type=8, id=rng.randrange(65536))])
        return frame(dst, mac, IP(src=ip4, dst=t4, ttl=rng.choice([64, 64, 2, 1])), l4,
                     Raw(rng.randbytes(rng.randrange(20))), tags=tags)
    if kind < 0.45:
        return frame(dst, mac, IPv6(src=ip6, dst=t6, hlim=rng.choice([64, 2, 1, 255])),
                     UDP(sport=rng.randrange(65536), dport=53), tags=tags)
    if kind < 0.7:
        op = rng.choice([1, 1, 1, 2, 2, 3])
        spa = rng.choice([ip4, ip4, ip4, "0.0.0.0", t4])
        tpa = rng.choice([t4, t4, spa])
        sha = mac if rng.random() < 0.9 else rng.choice(ALL_MACS)
        return arp(mac, spa, tpa, op=op, sha=sha, dst=rng.choice([BCAST, dst]), tags=tags,
                   tha=rng.choice([ZERO_MAC, me]))
    if kind < 0.9:
        src = rng.choice([ip6, ip6, "::"])
        if rng.random() < 0.5:
            return ns(mac, src, rng.choice([t6, t6, ip6]), sll=rng.random() < 0.7, tags=tags,
                      dst_mac=rng.choice([None, me]))
        return na(mac, ip6, rng.choice([ip6, t6]), tll=rng.choice([None, mac, me]),
                  dst_mac=rng.choice([dst, "33:33:00:00:00:01", me]), tags=tags,
                  S=rng.randrange(2), R=rng.randrange(2))
    return frame(dst, mac, Raw(rng.choice([b"\x88\xcc", b"\x88\x47", b"\x90\x00", b"\x08\x00",
                                           b"\x86\xdd", b"\x08\x06"])
                               + rng.randbytes(rng.randrange(0, 60))), tags=tags)


# The random and mutated tests can steer clear of mismatches pinned by their own tests
# (see "mismatches found"), so that they keep finding others. Each switch names one:
# True leaves out / cuts around its trigger; False (the default once it is fixed) lets
# the random tests meet it too.
STEER_UNROUTABLE = False        # 1: ARP / NS on a proxy port for an unroutable target
STEER_BURST_LEARNING = False    # 2: a flow-mode frame teaching the table mid-burst
STEER_RESOLVED_IN_BURST = False  # 3: a frame after an ARP / ND frame, neighbour ports
NEIGH_PORTS = {nh.port_index for nh in CFG.nexthops if nh.mac is None}


def unroutable_question(port: int, f: bytes) -> bool:
    """An ARP request or NS on a proxy port of a routed VRF for an unroutable target."""
    pt = CFG.ports[port]
    if not pt.proxy_arp or CFG.vrfs[pt.vrf_index].forwarding == "l2":
        return False
    hdr = l2_header(f)
    if hdr is None:
        return False
    et, off = hdr
    if et == 0x0806 and len(f) >= off + 28:
        return not routable(f[off + 24:off + 28])
    if et == 0x86DD and len(f) >= off + 64 and f[off + 40] == 135:
        return not routable(f[off + 48:off + 64])
    return False


def learns(ref, port: int, f: bytes, table: dict) -> bool:
    """Whether the frame changes the bridge table `table` ({mac: (port, static)} of its
    VRF): passes the binding, unicast source MAC new or learned on another port."""
    hdr = l2_header(f)
    if hdr is None or len(f) < 12 or f[6] & 1:
        return False
    binding = ref.vnet.bindings[port]
    if binding is not None and binding.check(f, *hdr) is not None:
        return False
    e = table.get(f[6:12])
    return e is None or (not e[1] and e[0] != port)


def steer(ref, port: int, frames: list[bytes]) -> list[list[bytes]]:
    """frames as bursts clear of the known mismatches (above)."""
    pt = CFG.ports[port]
    vrf = CFG.vrfs[pt.vrf_index]
    flow_learning = (STEER_BURST_LEARNING and pt.mode == "flow" and vrf.mac_learning
                     and vrf.forwarding != "l3")
    table = {mac: (e.port, e.static) for (v, mac), e in ref.vnet.table.entries.items()
             if v == vrf.index}
    pieces, cur = [], []
    for f in frames:
        if STEER_UNROUTABLE and unroutable_question(port, f):
            continue
        if flow_learning and learns(ref, port, f, table):
            if cur:
                pieces.append(cur)
                cur = []
            table[f[6:12]] = (port, False)
        cur.append(f)
        hdr = l2_header(f)
        if (STEER_RESOLVED_IN_BURST and port in NEIGH_PORTS and hdr is not None
                and hdr[0] in (0x0806, 0x86DD)):
            pieces.append(cur)
            cur = []
    return pieces + [cur] if cur else pieces


def test_random_traffic(duo):
    """Seeded generated traffic on every port, bursts of 1..70, with the clock advancing
    (learning, aging, neighbour requests, refreshes and expiries on the way)."""
    d = duo
    rng = random.Random(SEED)
    now = 1.0
    d.clock(now)
    d.tick("start")
    for step in range(RANDOM_STEPS):
        port = rng.choice(INGRESS)
        n = rng.choice([1, 2, 5, 31, 32, 33, 70, rng.randrange(1, 40)])
        for burst in steer(d.ref, port, [random_frame(rng, port) for _ in range(n)]):
            d.run(port, burst, f"random burst {step}")
        r = rng.random()
        if r < 0.3:
            now += rng.choice([0.25, 0.5, 1.0, 3.0, 7.0, 13.0])
            d.clock(now)
            d.tick(f"at {now}")
        elif r < 0.4:
            d.age()
    d.drop_held()
    t = d.totals()
    for k in ("tx", "flooded", "arp_replied", "consumed", "spoofed", "hairpin", "arp_sent",
              "unknown_unicast", "mac_moved"):
        assert t[k] > 0, (k, t)


# --- robustness: mutated frames ---------------------------------------------------------------

MUTATED = 6000


def mutate(rng: random.Random, base: bytes) -> bytes:
    f = bytearray(base)
    for _ in range(rng.randrange(1, 4)):
        if not f:
            break
        i = rng.randrange(min(len(f), 100))
        if rng.random() < 0.5:
            f[i] ^= 1 << rng.randrange(8)
        else:
            f[i] = rng.randrange(256)
    r = rng.random()
    if r < 0.15:
        f = f[:rng.randrange(len(f) + 1)]
    elif r < 0.2:
        f += rng.randbytes(rng.randrange(1, 30))
    return bytes(f)


def test_mutated_frames(duo):
    """A few thousand scapy-built VN frames (ARP, NS / NA, IP, tags) with bytes flipped,
    replaced, cut and extended, on every port: no crash, same result."""
    d = duo
    rng = random.Random(SEED + 1)
    d.clock(1.0)
    d.tick("")
    base = {port: [random_frame(rng, port) for _ in range(60)] for port in HOSTS}
    done = sent = 0
    while done < MUTATED:
        port = rng.choice(INGRESS)
        n = rng.choice([1, 16, 32, 50])
        for burst in steer(d.ref, port, [mutate(rng, rng.choice(base[port])) for _ in range(n)]):
            d.run(port, burst, "mutated")
            sent += len(burst)
        done += n
        if rng.random() < 0.1:
            d.clock(1.0 + done / 100)
            d.tick("")
    d.drop_held()
    t = d.totals()
    assert t["rx"] == sent >= MUTATED * 0.95 and t["truncated"] > 0 and t["spoofed"] > 0, t
