"""Virtual networks (SPEC §13, docs/virtual-networks.md): the seed's cases (Contrail L2 VN,
L3 VN with a VRRP VIP, active-active AAP) on both backends and end to end on net_pcap
vdevs (`dataplane replay`), checked with scapy against what the contract says must come
out: bridged frames unchanged on the owner's port, floods everywhere but the ingress,
ARP / NA answers field by field, spoofed sources dropped, AAP groups spreading flows.
"""
from __future__ import annotations

import json
from collections import Counter

import pytest
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import (ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6NDOptDstLLAddr,
                                ICMPv6NDOptSrcLLAddr, IPv6)
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from backends import BACKENDS  # noqa: F401
from dataplane.config import load_text, vnet
from dataplane.drops import DROP_REASONS
from dpdk_util import dataplane, no_traceback, read_pcap, wait_for, write_pcap
from test_control import Running, sockdir  # noqa: F401  (the fixture)

BCAST = "ff:ff:ff:ff:ff:ff"


def frames(*pkts) -> list[bytes]:
    return [bytes(p) for p in pkts]


def drops(fwd, port: str) -> dict:
    return {r: n for r, n in fwd.counters()[port].items() if r in DROP_REASONS and n}


# ------------------------------------------------------------------ L2 VN (seed: "Contrail
# layer 2 virtual network"): any IP, MACs enforced, broadcast flooded

L2 = """
node: {name: l2vn}
eal: {memory_mb: 256}
ports:
  - {name: vm1, devargs: net_null0, mac: "02:00:00:00:00:01", vrf: red,
     bind: {mac: "02:00:00:00:10:03"}}
  - {name: vm2, devargs: net_null1, mac: "02:00:00:00:00:02", vrf: red,
     bind: {mac: "02:00:00:00:10:04"}}
  - {name: vm3, devargs: net_null2, mac: "02:00:00:00:00:03", vrf: red}
vrfs:
  red: {forwarding: l2}
nexthops: {}
"""
VM1, VM2 = "02:00:00:00:10:03", "02:00:00:00:10:04"


def test_l2_vn_ips_change_macs_do_not(backend):
    fwd = backend(load_text(L2))
    before = Ether(src=VM1, dst=VM2) / IP(src="1.1.1.3", dst="1.1.1.4") / ICMP()
    after = Ether(src=VM1, dst=VM2) / IP(src="1.1.1.100", dst="1.1.1.4") / ICMP()
    out = fwd.process(0, frames(before, after))
    assert out == [(1, bytes(before)), (1, bytes(after))]      # bridged, untouched
    # a changed MAC is not the binding: dropped at the port, counted spoofed
    moved = Ether(src="04:03:02:01:02:03", dst=VM2) / IP(src="1.1.1.3", dst="1.1.1.4")
    assert fwd.process(0, frames(moved)) == []
    assert drops(fwd, "vm1") == {"spoofed": 1}
    # broadcast (the VM's ARP for its peer) to every other port, never back; no proxy
    who = Ether(src=VM1, dst=BCAST) / ARP(hwsrc=VM1, psrc="1.1.1.100", pdst="1.1.1.4")
    out = fwd.process(0, frames(who))
    assert sorted(p for p, _ in out) == [1, 2] and all(f == bytes(who) for _, f in out)
    assert fwd.vnet_counters()["vm3"]["flooded"] + fwd.vnet_counters()["vm2"]["flooded"] == 1
    # unknown unicast: dropped (flood_unknown_unicast off); hairpin to the own MAC
    assert fwd.process(1, frames(Ether(src=VM2, dst="02:99:00:00:00:01") / IP())) == []
    assert fwd.process(1, frames(Ether(src=VM2, dst=VM2) / IP())) == []
    assert drops(fwd, "vm2") == {"unknown_unicast": 1, "hairpin": 1}


def test_l2_vn_flooding_unknown_unicast_and_learning(backend):
    text = L2.replace("red: {forwarding: l2}",
                      "red: {forwarding: l2, flood_unknown_unicast: true, mac_learning: true,"
                      " mac_aging: 5}").replace(
        ', vrf: red,\n     bind: {mac: "02:00:00:00:10:04"}}', ", vrf: red}")   # vm2 unbound
    fwd = backend(load_text(text))
    fwd.set_clock(10.0)
    host = "02:77:00:00:00:09"               # behind vm3, not in any table yet
    to_host = Ether(src=VM1, dst=host) / IP(src="1.1.1.3", dst="1.1.1.9") / UDP()
    assert sorted(p for p, _ in fwd.process(0, frames(to_host))) == [1, 2]
    reply = Ether(src=host, dst=VM1) / IP(src="1.1.1.9", dst="1.1.1.3") / UDP()
    assert fwd.process(2, frames(reply)) == [(0, bytes(reply))]
    assert fwd.process(0, frames(to_host)) == [(2, bytes(to_host))]   # learned: unicast
    table = {(mac.hex(":"), port, kind) for _, mac, port, kind, _ in fwd.bridge_table()}
    assert (host, 2, "learned") in table and (VM1, 0, "static") in table
    # the host moves behind vm2 (not bound): followed, counted mac_moved there
    fwd.process(1, frames(Ether(src=host, dst=VM1) / IP()))
    assert fwd.process(0, frames(to_host)) == [(1, bytes(to_host))]
    assert fwd.vnet_counters()["vm2"]["mac_moved"] == 1
    # unused for mac_aging: aged out, flooded again
    fwd.set_clock(20.0)
    fwd.bridge_age()
    assert host not in {mac.hex(":") for _, mac, _, _, _ in fwd.bridge_table()}
    assert sorted(p for p, _ in fwd.process(0, frames(to_host))) == [1, 2]


# ------------------------------------------------------------------ L3 VN + VRRP (seed:
# "VRRP in Contrail" and "Contrail layer 3 virtual network")

L3 = """
node: {name: l3vn}
eal: {memory_mb: 256}
ports:
  - {name: cirros, devargs: net_null0, mac: "02:00:00:00:00:01", vrf: blue, proxy_arp: true,
     bind: {mac: "02:aa:f0:88:f0:65", ip: [192.168.20.3/32]}}
  - {name: vsrx1, devargs: net_null1, mac: "02:00:00:00:00:02", vrf: blue,
     bind: {mac: "02:c4:1d:93:69:ee", ip: [192.168.20.4/32]AAP1}}
  - {name: vsrx2, devargs: net_null2, mac: "02:00:00:00:00:03", vrf: blue,
     bind: {mac: "02:17:f1:90:86:01", ip: [192.168.20.5/32]AAP2}}
vrfs:
  blue:
    gateway: {ip: [192.168.20.1/24], mac: "00:00:5e:00:01:00"}
nexthops: {}
"""
AAP = (', allowed_address_pairs: [{ip: 192.168.20.254/32, mac: "00:00:5e:00:01:01", '
       'mode: MODE}]')
CIRROS, VSRX1, VIP_MAC, GW_MAC = ("02:aa:f0:88:f0:65", "02:c4:1d:93:69:ee",
                                  "00:00:5e:00:01:01", "00:00:5e:00:01:00")


def l3vn(aap: str | None):
    extra = AAP.replace("MODE", aap) if aap else ""
    return load_text(L3.replace("AAP1", extra).replace("AAP2", extra))


def ping(dst: str, seq: int = 1) -> bytes:
    return bytes(Ether(src=CIRROS, dst=GW_MAC) / IP(src="192.168.20.3", dst=dst) /
                 ICMP(seq=seq))


def arp_reply_ok(frame: bytes, asker_mac: str, asker_ip: str, ip: str, mac: str) -> None:
    e = Ether(frame)
    assert e.dst == asker_mac and e.src == mac and len(frame) == 60
    a = e[ARP]
    assert (a.op, a.hwsrc, a.psrc, a.hwdst, a.pdst) == (2, mac, ip, asker_mac, asker_ip)


def test_l3_vn_vrrp_vip_needs_its_aap(backend):
    fwd = backend(l3vn(None))
    advert = Ether(src=VIP_MAC, dst="01:00:5e:00:00:12") / IP(src="192.168.20.4",
                                                             dst="224.0.0.18", proto=112)
    assert fwd.process(1, frames(advert)) == []
    assert drops(fwd, "vsrx1") == {"spoofed": 1}          # the VIP MAC is not vsrx1's
    who = Ether(src=CIRROS, dst=BCAST) / ARP(hwsrc=CIRROS, psrc="192.168.20.3",
                                            pdst="192.168.20.254")
    assert fwd.process(0, frames(who)) == []               # unknown: not answered
    assert fwd.vnet_counters()["cirros"]["consumed"] == 1
    assert fwd.process(0, [ping("192.168.20.254")]) == []
    assert drops(fwd, "cirros") == {"no_route": 1}
    # the peer (vsrx1's own address) is known: answered with its MAC, pinged through
    peer = Ether(src=CIRROS, dst=BCAST) / ARP(hwsrc=CIRROS, psrc="192.168.20.3",
                                             pdst="192.168.20.4")
    [(port, reply)] = fwd.process(0, frames(peer))
    assert port == 0
    arp_reply_ok(reply, CIRROS, "192.168.20.3", "192.168.20.4", VSRX1)
    [(port, out)] = fwd.process(0, [ping("192.168.20.4")])
    assert port == 1 and Ether(out).dst == VSRX1 and Ether(out)[IP].ttl == 63


def test_l3_vn_vrrp_vip_works_with_active_standby_aap(backend):
    cfg = l3vn("active-standby")
    fwd = backend(cfg)
    advert = Ether(src=VIP_MAC, dst="01:00:5e:00:00:12") / IP(src="192.168.20.254",
                                                             dst="224.0.0.18", proto=112)
    fwd.process(1, frames(advert))
    # the AAP pair is accepted (multicast IP is then not routed in an l3 VN)
    assert drops(fwd, "vsrx1") == {"unsupported": 1}
    who = Ether(src=CIRROS, dst=BCAST) / ARP(hwsrc=CIRROS, psrc="192.168.20.3",
                                            pdst="192.168.20.254")
    [(port, reply)] = fwd.process(0, frames(who))
    arp_reply_ok(reply, CIRROS, "192.168.20.3", "192.168.20.254", VIP_MAC)
    [(port, out)] = fwd.process(0, [ping("192.168.20.254")])
    assert port == 1 and Ether(out).dst == VIP_MAC         # the master: the first port up
    # vsrx1 goes down: the standby takes the VIP (as runtime housekeeping does)
    [(gi, mode, ports)] = vnet.aap_groups(cfg)
    assert mode == "active-standby" and ports == [1, 2]
    fwd.update_group(gi, vnet.aap_members(cfg, gi, {0, 2}))
    [(port, out)] = fwd.process(0, [ping("192.168.20.254", 2)])
    assert port == 2 and Ether(out).dst == VIP_MAC
    # the gateway address answers on every port, with the gateway MAC
    gw = Ether(src=VSRX1, dst=BCAST) / ARP(hwsrc=VSRX1, psrc="192.168.20.4",
                                          pdst="192.168.20.1")
    [(port, reply)] = fwd.process(1, frames(gw))
    assert port == 1
    arp_reply_ok(reply, VSRX1, "192.168.20.4", "192.168.20.1", GW_MAC)


def test_active_active_aap_spreads_flows_over_both_ports(backend):
    cfg = l3vn("active-active")
    fwd = backend(cfg)
    pkts = [bytes(Ether(src=CIRROS, dst=GW_MAC) / IP(src="192.168.20.3", dst="192.168.20.254")
                  / UDP(sport=1024 + i, dport=53)) for i in range(2000)]
    first = fwd.process(0, pkts)
    ports = Counter(p for p, _ in first)
    assert set(ports) == {1, 2} and all(900 <= n <= 1100 for n in ports.values()), ports
    assert all(Ether(f).dst == VIP_MAC for _, f in first)
    again = fwd.process(0, pkts)                          # flow-pinned: the same member
    assert [p for p, _ in again] == [p for p, _ in first]


# ------------------------------------------------------------------ next hops by ARP / ND

V6 = """
node: {name: nd}
eal: {memory_mb: 256}
neighbors: {reachable_time: 30, retry: 1, queue: 2}
ports:
  - {name: a, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {name: b, devargs: net_null1, mac: "02:00:00:00:00:02"}
vrfs:
  default:
    gateway: {ip: ["2001:db8:2::1/64"]}
    routes: [{prefix: "2001:db8:99::/48", via: r6}]
nexthops:
  r6: {port: b, ip: "2001:db8:2::2"}
"""
R6_MAC = "02:66:00:00:00:02"


def test_ipv6_next_hop_resolved_by_nd(backend):
    fwd = backend(load_text(V6))
    fwd.set_clock(1.0)
    [(port, ns)] = fwd.neigh_tick()
    e = Ether(ns)
    assert port == 1 and e.dst == "33:33:ff:00:00:02" and e.src == "02:00:00:00:00:02"
    assert e[IPv6].src == "2001:db8:2::1" and e[IPv6].dst == "ff02::1:ff00:2"
    assert e[IPv6].hlim == 255 and e[ICMPv6ND_NS].tgt == "2001:db8:2::2"
    assert e[ICMPv6NDOptSrcLLAddr].lladdr == "02:00:00:00:00:02"
    chk = e[ICMPv6ND_NS].cksum
    del e[ICMPv6ND_NS].cksum
    assert Ether(bytes(e))[ICMPv6ND_NS].cksum == chk      # scapy recomputes the same
    data = [bytes(Ether(dst="02:00:00:00:00:01") / IPv6(src="2001:db8:1::5",
                                                      dst="2001:db8:99::7") /
                  UDP(sport=5000 + i) / Raw(b"x" * (i + 1))) for i in range(3)]
    assert fwd.process(0, data) == []                      # two held, one over the queue
    assert drops(fwd, "a") == {"arp_unresolved": 1}
    na = (Ether(src=R6_MAC, dst="02:00:00:00:00:02") /
          IPv6(src="2001:db8:2::2", dst="2001:db8:2::1", hlim=255) /
          ICMPv6ND_NA(tgt="2001:db8:2::2", S=1, O=1) / ICMPv6NDOptDstLLAddr(lladdr=R6_MAC))
    assert fwd.process(1, frames(na)) == []
    assert fwd.vnet_counters()["b"]["consumed"] == 1
    released = fwd.neigh_tick()
    assert [p for p, _ in released] == [1, 1]
    for (_, f), sent in zip(released, data[:2]):
        assert Ether(f).dst == R6_MAC and Ether(f)[IPv6].hlim == Ether(sent)[IPv6].hlim - 1
        assert Ether(f)[Raw].load == Ether(sent)[Raw].load
    assert fwd.neighbors() == [(1, "2001:db8:2::2", bytes.fromhex("026600000002"),
                                "reachable")]
    # the NS the kernel sends for the gateway address: answered R|S|O, checksum right
    ns = (Ether(src=R6_MAC, dst="33:33:ff:00:00:01") /
          IPv6(src="2001:db8:2::2", dst="ff02::1:ff00:1", hlim=255) /
          ICMPv6ND_NS(tgt="2001:db8:2::1") / ICMPv6NDOptSrcLLAddr(lladdr=R6_MAC))
    [(port, f)] = fwd.process(1, frames(ns))
    e = Ether(f)
    assert port == 1 and e.dst == R6_MAC and e.src == "02:00:00:00:00:02" and len(f) == 86
    na = e[ICMPv6ND_NA]
    assert (na.R, na.S, na.O, na.tgt) == (1, 1, 1, "2001:db8:2::1")
    assert e[IPv6].src == "2001:db8:2::1" and e[IPv6].dst == "2001:db8:2::2"
    assert e[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:02"
    chk = na.cksum
    del na.cksum
    assert Ether(bytes(e))[ICMPv6ND_NA].cksum == chk


# ------------------------------------------------------------------ end to end on net_pcap

def replay(tmp_path, cfg_text: str, inputs: dict) -> tuple[dict, dict]:
    cfg = tmp_path / "vn.yaml"
    cfg.write_text(cfg_text)
    out = tmp_path / "out"
    args = []
    for name, pkts in inputs.items():
        args += ["--in", f"{name}={write_pcap(tmp_path / f'{name}.in.pcap', pkts)}"]
    r = dataplane("replay", cfg, *args, "--out-dir", out, "-q")
    no_traceback(r.stderr)
    assert r.returncode == 0, r.stderr
    s = json.loads((out / "summary.json").read_text())
    # every frame accounted: forwarded, dropped by name, or taken by the forwarder; each
    # device sent the port's packets, flood copies and requests; no mbuf left
    assert s["rx"] == s["tx"] + sum(s["drops"].values()) + s["consumed"], s
    for name, p in s["ports"].items():
        assert p["dpdk"]["opackets"] == (p["tx"] + p["flooded"] + p["arp_sent"] +
                                         p.get("mirror_tx", 0)), (name, p)
    assert s["mbufs_in_use_after"] == 0
    names = [p["name"] for p in __import__("yaml").safe_load(cfg_text)["ports"]]
    return s, {n: read_pcap(out / f"{n}.pcap") for n in names}


@pytest.mark.parametrize("lcores", ["0-1", "0@0,1@1,2@0"])
def test_replay_l3_vn_with_aap_on_net_pcap(tmp_path, lcores):
    """The VRRP case end to end: proxy ARP for the VIP, pings to the master, its adverts
    accepted, a spoofed frame dropped, a broadcast ARP for an unknown address consumed;
    with one worker and with two (RSS spreads the pings by address)."""
    text = L3.replace("eal: {memory_mb: 256}", f'eal: {{memory_mb: 256, lcores: "{lcores}"}}')
    text = text.replace("AAP1", AAP.replace("MODE", "active-standby")).replace(
        "AAP2", AAP.replace("MODE", "active-standby"))
    who = bytes(Ether(src=CIRROS, dst=BCAST) / ARP(hwsrc=CIRROS, psrc="192.168.20.3",
                                                   pdst="192.168.20.254"))
    unknown = bytes(Ether(src=CIRROS, dst=BCAST) / ARP(hwsrc=CIRROS, psrc="192.168.20.3",
                                                       pdst="192.168.20.77"))
    pings = [bytes(Ether(src=CIRROS, dst=GW_MAC) / IP(src="192.168.20.3",
                  dst="192.168.20.5" if i % 2 else "192.168.20.254") / ICMP(seq=i))
             for i in range(50)]
    spoof = bytes(Ether(src="04:03:02:01:02:03", dst=GW_MAC) / IP(src="192.168.20.3",
                                                                  dst="192.168.20.4"))
    advert = bytes(Ether(src=VIP_MAC, dst="01:00:5e:00:00:12") /
                   IP(src="192.168.20.254", dst="224.0.0.18", proto=112))
    s, got = replay(tmp_path, text, {"cirros": [who, unknown] + pings + [spoof],
                                     "vsrx1": [advert]})
    [reply] = got["cirros"]
    arp_reply_ok(reply, CIRROS, "192.168.20.3", "192.168.20.254", VIP_MAC)
    assert [Ether(f)[ICMP].seq for f in got["vsrx1"]] == list(range(0, 50, 2))
    assert [Ether(f)[ICMP].seq for f in got["vsrx2"]] == list(range(1, 50, 2))
    assert all(Ether(f).dst == VIP_MAC and Ether(f).src == "02:00:00:00:00:02"
               for f in got["vsrx1"])
    assert all(Ether(f).dst == "02:17:f1:90:86:01" for f in got["vsrx2"])
    c = s["ports"]["cirros"]
    assert c["drops"]["spoofed"] == 1 and c["consumed"] == 1 and c["arp_replied"] == 1
    # the advert is multicast IP in an l3 VN: not forwarded (unsupported), not spoofed
    assert s["ports"]["vsrx1"]["drops"]["spoofed"] == 0


@pytest.mark.parametrize("lcores", ["0-1", "0@0,1@1,2@0"])
def test_replay_l2_vn_floods_on_net_pcap(tmp_path, lcores):
    """Broadcast flooded to every other port, unicast bridged, learning on: with one
    worker, and with two learning into the one table (RSS spreads the unicast)."""
    text = L2.replace("red: {forwarding: l2}", "red: {forwarding: l2, mac_learning: true}")
    text = text.replace("eal: {memory_mb: 256}", f'eal: {{memory_mb: 256, lcores: "{lcores}"}}')
    bc = [bytes(Ether(src=VM1, dst=BCAST) / ARP(hwsrc=VM1, psrc="1.1.1.3", pdst=f"1.1.1.{i}"))
          for i in range(10)]
    uni = [bytes(Ether(src=VM1, dst=VM2) / IP(src="1.1.1.3", dst=f"1.1.1.{4 + i}") /
                 UDP(sport=i)) for i in range(20)]
    unknown = bytes(Ether(src=VM1, dst="02:99:00:00:00:01") / IP())
    hairpin = bytes(Ether(src=VM1, dst=VM1) / IP())
    hosts = [bytes(Ether(src=f"02:77:00:00:00:{i:02x}", dst=VM1) /
                   IP(src=f"1.1.2.{i + 1}", dst="1.1.1.3") / UDP(sport=i)) for i in range(20)]
    s, got = replay(tmp_path, text, {"vm1": bc + uni + [unknown, hairpin], "vm3": hosts})
    assert sorted(got["vm1"]) == sorted(hosts)
    if lcores == "0-1":
        assert got["vm2"] == bc + uni and got["vm3"] == bc
    else:                                  # two workers: merged by time, not in file order
        assert sorted(got["vm2"]) == sorted(bc + uni) and sorted(got["vm3"]) == sorted(bc)
    learned = {r["mac"]: r for r in s["bridge"] if r["flags"] == "learned"}
    assert set(learned) == {f"02:77:00:00:00:{i:02x}" for i in range(20)}
    assert all(r["port"] == "vm3" for r in learned.values())
    assert s["flooded"] == 10 and s["ports"]["vm1"]["rx"] == 32
    assert {r: n for r, n in s["ports"]["vm1"]["drops"].items() if n} == \
        {"unknown_unicast": 1, "hairpin": 1}


def test_replay_next_hop_that_never_answers(tmp_path):
    """A next hop without mac whose neighbour never answers: its ARP requests leave by
    its port (broadcast, from the gateway address), the packets toward it are held (8
    per worker) and dropped arp_unresolved beyond and at stop; none is lost."""
    text = """
node: {name: silent}
eal: {memory_mb: 256}
neighbors: {queue: 8}
ports:
  - {name: a, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {name: b, devargs: net_null1, mac: "02:00:00:00:00:02"}
vrfs:
  default:
    gateway: {ip: [10.2.0.1/24]}
    routes: [{prefix: 10.99.0.0/16, via: far}]
nexthops:
  far: {port: b, ip: 10.2.0.2}
"""
    pkts = [bytes(Ether(dst="02:00:00:00:00:01") / IP(src="10.1.0.5", dst="10.99.0.7") /
                  UDP(sport=1000 + i)) for i in range(40)]
    s, got = replay(tmp_path, text, {"a": pkts})
    assert s["ports"]["a"]["drops"]["arp_unresolved"] == 40 and s["tx"] == 0
    assert got["b"] and all(Ether(f)[ARP].pdst == "10.2.0.2" and
                            Ether(f)[ARP].psrc == "10.2.0.1" and Ether(f).dst == BCAST
                            for f in got["b"])
    assert s["ports"]["b"]["arp_sent"] == len(got["b"])
    assert s["neighbors"] == [{"port": "b", "ip": "10.2.0.2", "mac": None,
                               "state": "incomplete"}]


# ------------------------------------------------------------------ a running forwarder

def test_running_forwarder_shows_bridge_table_and_resolution(tmp_path, sockdir):
    """`dataplane rt VRF --family bridge` (vRouter's columns) and `dataplane nh` with the
    resolution state, from `dataplane run` on net_pcap (infinite_rx) and net_null ports;
    the learned MAC, the static ones, the ARP request sent for the next hop without mac."""
    host = "02:77:00:00:00:09"
    pcap = write_pcap(tmp_path / "vn.pcap", [
        bytes(Ether(src=host, dst=BCAST) / ARP(hwsrc=host, psrc="10.9.0.9", pdst="10.9.0.8"))])
    doc = {"node": {"name": "vnrun"}, "eal": {"lcores": "0-1", "memory_mb": 512},
           "ports": [{"name": "vm1", "devargs": f"net_pcap0,rx_pcap={pcap},infinite_rx=1",
                      "mac": "02:00:00:00:00:01", "vrf": "blue"},
                     {"name": "vm2", "devargs": "net_null1,no-rx=1",
                      "mac": "02:00:00:00:00:02", "vrf": "blue"},
                     {"name": "up", "devargs": "net_null2,no-rx=1",
                      "mac": "02:00:00:00:00:03", "vrf": "blue"}],
           "vrfs": {"blue": {"forwarding": "l2_l3", "mac_learning": True,
                             "macs": [{"mac": "02:00:00:00:10:02", "port": "vm2"}],
                             "gateway": {"ip": ["10.9.0.1/24"]},
                             "routes": [{"prefix": "0.0.0.0/0", "via": "gw"}]}},
           "nexthops": {"gw": {"port": "up", "ip": "10.9.0.254"}}}
    run = Running(tmp_path, sockdir, doc)
    try:
        wait_for(lambda: any(r["mac"] == host for r in run.ask(
            {"cmd": "rt", "vrf": "blue", "family": "bridge"})["blue"]), 30, "a learned MAC")
        rows = {r["mac"]: r for r in run.ask({"cmd": "rt", "vrf": "blue",
                                              "family": "bridge"})["blue"]}
        assert rows[host]["flags"] == "L" and rows[host]["port"] == "vm1"
        assert rows["02:00:00:00:10:02"]["flags"] == "S" and rows["02:00:00:00:10:02"]["port"] == "vm2"
        r = run.cli("rt", "blue", "--family", "bridge")
        assert r.returncode == 0 and host in r.stdout and "learned" in r.stdout
        nh = {n["name"]: n for n in run.ask({"cmd": "nh"})["nexthops"]}
        assert nh["gw"]["state"] == "incomplete" and nh["gw"]["ip"] == "10.9.0.254"
        r = run.cli("nh")
        assert r.returncode == 0 and "incomplete (10.9.0.254)" in r.stdout
        vif = {p["name"]: p for p in run.ask({"cmd": "vif"})}
        assert vif["vm2"]["flooded"] + vif["up"]["flooded"] > 0 and vif["up"]["arp_sent"] >= 1
        r = run.cli("vif", "--json")
        rows = {p["name"]: p for p in json.loads(r.stdout)}
        assert r.returncode == 0 and rows["up"]["arp_sent"] >= 1
    finally:
        final = run.stop()
    # the ARP request for the next hop went out of `up` (at least one per second)
    assert final["ports"]["up"]["arp_sent"] >= 1
    assert final["ports"]["up"]["dpdk"]["opackets"] == final["ports"]["up"]["arp_sent"] + \
        final["ports"]["up"]["tx"] + final["ports"]["up"]["flooded"]
    assert final["ports"]["vm2"]["flooded"] + final["ports"]["up"]["flooded"] > 0
    assert final["rx"] == final["tx"] + sum(final["drops"].values()) + final["consumed"]


def test_readme_worked_example_is_a_valid_configuration():
    """The README's virtual-network example loads, and derives what the text says."""
    from dpdk_util import ROOT
    text = (ROOT / "README.md").read_text()
    start = text.index("```yaml", text.index("## Virtual networks")) + len("```yaml")
    cfg = load_text(text[start:text.index("```", start)])
    routes = {str(r.prefix): r.via for r in cfg.vrf("blue").routes}
    assert routes["192.168.20.254/32"] == "aap~192.168.20.254/32"
    assert routes["192.168.20.3/32"] == "cirros~bind"
    [(gi, mode, ports)] = vnet.aap_groups(cfg)
    assert mode == "active-standby" and [cfg.ports[p].name for p in ports] == ["vsrx1", "vsrx2"]
    assert [m[2] for m in vnet.aap_members(cfg, gi, {0, 1, 2, 3})] == [True, False]
    assert vnet.neighbours(cfg) == [(3, __import__("ipaddress").ip_address("198.51.100.2"))]


# ------------------------------------------------------------------ link state (net_tap)

def test_active_standby_aap_follows_link_state(tmp_path):
    """SPEC §13: an active-standby AAP goes to the first port that is up. Three net_tap
    ports; pings to the VIP written into cirros's tap leave by vsrx1's; once vsrx1's
    interface is set down in the kernel (the tap PMD reports its link down), the
    forwarder's once-a-second housekeeping moves the VIP to vsrx2, and back when it is
    up again."""
    import os
    import socket
    import subprocess
    import time

    from dpdk_util import finish, interrupt, spawn
    tag = f"{os.getpid() % 100000:05d}"
    taps = {n: f"dv{tag}{n[-1]}" for n in ("cirros", "vsrx1", "vsrx2")}
    text = L3.replace("AAP1", AAP.replace("MODE", "active-standby")).replace(
        "AAP2", AAP.replace("MODE", "active-standby"))
    for i, (name, iface) in enumerate(taps.items()):
        text = text.replace(f"{name}, devargs: net_null{i},",
                            f"{name}, devargs: \"net_tap{i},iface={iface}\",")
    cfg = tmp_path / "tap.yaml"
    cfg.write_text(text)
    js = tmp_path / "final.json"
    proc = spawn("run", cfg, "--duration", 60, "--json", js, "-q",
                 "--socket", tmp_path / "ctl.sock", stderr_file=tmp_path / "stderr")

    def up(iface):
        p = f"/sys/class/net/{iface}/flags"
        return os.path.exists(p) and int(open(p).read(), 16) & 1

    def ping_lands(seq: int) -> str | None:
        """Write a ping to the VIP into cirros's tap; the tap it comes out of."""
        socks = {}
        try:
            for n in ("vsrx1", "vsrx2"):
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
                s.bind((taps[n], 0))
                s.setblocking(False)
                socks[n] = s
            with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as tx:
                tx.bind((taps["cirros"], 0))
                tx.send(ping("192.168.20.254", seq))
            end = time.monotonic() + 3
            while time.monotonic() < end:
                for n, s in socks.items():
                    try:
                        f = s.recv(2048)
                    except OSError:            # nothing yet, or its link is down
                        continue
                    e = Ether(f)
                    if ICMP in e and e[IP].dst == "192.168.20.254" and e[ICMP].seq == seq:
                        assert e.dst == VIP_MAC
                        return n
                time.sleep(0.01)
            return None
        finally:
            for s in socks.values():
                s.close()

    try:
        wait_for(lambda: all(up(t) for t in taps.values()) or proc.poll() is not None, 30,
                 "the taps up")
        assert proc.poll() is None, (tmp_path / "stderr").read_text()
        for t in taps.values():                # no IPv6 chatter from the kernel
            subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{t}.disable_ipv6=1"],
                           check=False)
        assert wait_for(lambda: ping_lands(1), 20, "a ping through") == "vsrx1"
        subprocess.run(["ip", "link", "set", taps["vsrx1"], "down"], check=True)
        seq = iter(range(2, 1000))
        assert wait_for(lambda: ping_lands(next(seq)) == "vsrx2", 20, "the VIP on vsrx2")
        subprocess.run(["ip", "link", "set", taps["vsrx1"], "up"], check=True)
        assert wait_for(lambda: ping_lands(next(seq)) == "vsrx1", 20, "the VIP back")
    finally:
        interrupt(proc)
        code, _, err = finish(proc)
    assert code == 0, (tmp_path / "stderr").read_text()
    s = json.loads(js.read_text())
    # the kernel's own frames on the taps (from the taps' MACs) may count spoofed there
    assert s["rx"] == s["tx"] + sum(s["drops"].values()) + s["consumed"]
    assert s["mbufs_in_use_after"] == 0
