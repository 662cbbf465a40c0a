"""Reference of pyx/bridge.pxd and the answering half of pyx/neigh.pxd: virtual networks.

docs/virtual-networks.md §2-§5, on raw bytes (scapy is the oracle in the tests). What a
frame received on a port of a VRF meets, in order (VirtualNetworks.receive):

  Ethernet + at most two VLAN tags   shorter than its tags: truncated (VN ports)
  1 binding      (port with bind)    §4, Binding.check: spoofed / truncated
  2 learning     (mac_learning)      §3, BridgeTable.learn
  3 ARP / 4 ND                       §5: neighbour learning, answered, consumed, bridged
  5 l3: the L3 path; l2: bridged; l2_l3: IPv4/IPv6 to the gateway MAC routed, else bridged

A port of an `l3` VRF without `bind` meets only 3 and 4, for frames that are not IPv4.
The bridge table is one dict keyed by (VRF index, MAC); `seen` is the clock of an entry's
last use (source of a frame, or destination of a frame bridged to it), `hits` the frames
bridged to it.
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional, Union

from ..config import vnet
from ..config.model import Config
from .ecmp import REMOVED, GroupState
from .neigh import ETH_ARP, Neighbours, nd_message
from .parse import ETH_IPV4, ETH_IPV6, ICMPV6, VLAN_TPIDS

MAX_TAGS = 2
ARP_LEN = 28                            # the Ethernet/IPv4 ARP body
ND_FIXED = 24                           # NS / NA before their options
NS, NA = 135, 136
ND_R, ND_S, ND_O = 0x80, 0x40, 0x20
NO_MAC = bytes(6)


@dataclass
class Flood:
    """A frame to flood: the original to ports[0], a copy to each further port."""
    frame: bytes
    ports: list[int]


Result = Union[str, tuple[int, bytes], Flood, None]     # None: take the L3 path


def l2_header(frame: bytes) -> Optional[tuple[int, int]]:
    """(EtherType, offset past Ethernet and at most two VLAN tags); None when the frame
    ends inside them. A third tag stays the EtherType (a frame that is neither IP nor
    ARP here)."""
    if len(frame) < 14:
        return None
    etype, off = struct.unpack_from("!H", frame, 12)[0], 14
    for _ in range(MAX_TAGS):
        if etype not in VLAN_TPIDS:
            break
        if len(frame) < off + 4:
            return None
        etype, off = struct.unpack_from("!H", frame, off + 2)[0], off + 4
    return etype, off


def routable(t: bytes) -> bool:
    """A destination the L3 path could route (parse.py's destination checks): not 0/8,
    127/8, 224/4, 255.255.255.255; not ::, ::1, fe80::/10, ff00::/8."""
    if len(t) == 4:
        d = int.from_bytes(t, "big")
        return not (d >> 24 in (0, 127) or d >> 28 == 0xE or d == 0xFFFFFFFF)
    return not (t in (bytes(16), bytes(15) + b"\x01") or t[0] == 0xFF
                or (t[0] == 0xFE and t[1] & 0xC0 == 0x80))


# ---- §4 binding ---------------------------------------------------------------------

class Binding:
    """A bound port's allowed pairs and MACs (config/vnet.py allowed()). check(): None
    when accepted, else the drop reason. The source MAC is checked first (every frame);
    with pairs, IPv4 / IPv6 / ARP then need their source address (20, 40, 28 bytes past
    the tags, else truncated): ARP's sender hardware address must be the Ethernet source
    (ARP is read as Ethernet/IPv4 whatever its htype/ptype), the address 0.0.0.0 (IPv4,
    ARP), :: or fe80::/10 (IPv6) passes, any other must lie in a pair of that MAC."""

    def __init__(self, pairs: list, macs: set[bytes]):
        self.macs = macs
        self.pairs = pairs                  # [(mac, IPNetwork)]

    def pair(self, mac: bytes, addr: bytes) -> bool:
        ip = ipaddress.ip_address(addr)
        return any(m == mac and net.version == ip.version and ip in net
                   for m, net in self.pairs)

    def check(self, frame: bytes, etype: int, off: int) -> Optional[str]:
        src = frame[6:12]
        if src not in self.macs:
            return "spoofed"
        if not self.pairs:                  # MAC-only binding
            return None
        if etype == ETH_IPV4:
            if len(frame) < off + 20:
                return "truncated"
            ip = frame[off + 12:off + 16]
            return None if ip == bytes(4) or self.pair(src, ip) else "spoofed"
        if etype == ETH_IPV6:
            if len(frame) < off + 40:
                return "truncated"
            ip = frame[off + 8:off + 24]
            link_local = ip[0] == 0xFE and ip[1] & 0xC0 == 0x80
            return None if ip == bytes(16) or link_local or self.pair(src, ip) else "spoofed"
        if etype == ETH_ARP:
            if len(frame) < off + ARP_LEN:
                return "truncated"
            if frame[off + 8:off + 14] != src:
                return "spoofed"
            ip = frame[off + 14:off + 18]
            return None if ip == bytes(4) or self.pair(src, ip) else "spoofed"
        return None


# ---- §3 bridge table ----------------------------------------------------------------

@dataclass
class BridgeEntry:
    port: int
    static: bool
    seen: float = 0.0
    hits: int = 0


class BridgeTable:
    def __init__(self, statics: list[tuple[int, bytes, int]]):
        self.entries: dict[tuple[int, bytes], BridgeEntry] = {}
        for vrf, mac, port in statics:
            self.entries.setdefault((vrf, bytes(mac)), BridgeEntry(port, True))

    def learn(self, vrf: int, mac: bytes, port: int, now: float) -> bool:
        """A unicast source MAC seen on `port`; True when a learned entry moved there."""
        if mac[0] & 1:
            return False
        e = self.entries.get((vrf, mac))
        if e is None:
            self.entries[(vrf, mac)] = BridgeEntry(port, False, now)
            return False
        e.seen = now
        if e.port != port and not e.static:
            e.port = port
            return True
        return False

    def age(self, now: float, aging: list[float]) -> int:
        """Remove learned entries unused for their VRF's mac_aging (now >= seen + aging):
        how many."""
        gone = [k for k, e in self.entries.items()
                if not e.static and now >= e.seen + aging[k[0]]]
        for k in gone:
            del self.entries[k]
        return len(gone)

    def listing(self) -> list[tuple[int, bytes, int, str, int]]:
        return sorted((vrf, mac, e.port, "static" if e.static else "learned", e.hits)
                      for (vrf, mac), e in self.entries.items())


# ---- the stage ----------------------------------------------------------------------

class VirtualNetworks:
    """Steps 1-5 of docs §2 for one forwarder. `lpm`, `groups` and `nexthops` are the
    forwarder's (the proxy answer for routed addresses reads them live); `counters` its
    per-port dicts (mac_moved, arp_replied are counted here)."""

    def __init__(self, cfg: Config, lpm, groups: list[GroupState], nexthops: list,
                 neigh: Neighbours, counters: list[dict]):
        self.cfg, self.lpm, self.groups, self.nexthops = cfg, lpm, groups, nexthops
        self.neigh, self.counters = neigh, counters
        self.table = BridgeTable(vnet.static_macs(cfg))
        self.bindings = [Binding(*vnet.allowed(p)) if p.bind is not None else None
                         for p in cfg.ports]
        self.flood_ports = [vnet.vrf_ports(cfg, v.index) for v in cfg.vrfs]
        self.hosts = [vnet.proxy_hosts(cfg, v.index) for v in cfg.vrfs]
        self.gateways = [{a.packed for f in (4, 6) for a in vnet.gateway_addresses(cfg, v.index, f)}
                         for v in cfg.vrfs]
        self.gateway_mac = [vnet.gateway_mac(cfg, p.vrf_index, p.index)
                            if p.vrf is not None else bytes(p.mac) for p in cfg.ports]
        self.aging = [v.mac_aging for v in cfg.vrfs]

    def receive(self, in_port: int, frame: bytes, now: float) -> Result:
        """A frame received on L3 port `in_port`: (port, frame) to send, a Flood, a drop
        reason or "consumed", HELD never; None: the L3 path takes it."""
        port = self.cfg.ports[in_port]
        vrf = self.cfg.vrfs[port.vrf_index]
        hdr = l2_header(frame)
        if port.bind is None and vrf.forwarding == "l3":
            if hdr is None or hdr[0] == ETH_IPV4:
                return None                 # parse says what is wrong with it
            return self.arp_nd(in_port, frame, *hdr, now)
        if hdr is None:
            return "truncated"
        etype, off = hdr
        binding = self.bindings[in_port]
        if binding is not None:
            reason = binding.check(frame, etype, off)
            if reason is not None:
                return reason
        if vrf.mac_learning and vrf.forwarding != "l3":
            if self.table.learn(vrf.index, frame[6:12], in_port, now):
                self.counters[in_port]["mac_moved"] += 1
        result = self.arp_nd(in_port, frame, etype, off, now)
        if result is not None:
            return result
        if vrf.forwarding == "l3" or (vrf.forwarding == "l2_l3"
                                      and etype in (ETH_IPV4, ETH_IPV6)
                                      and frame[:6] == self.gateway_mac[in_port]):
            return None
        return self.bridge(in_port, frame, now)

    # -- §3 ------------------------------------------------------------------------------

    def bridge(self, in_port: int, frame: bytes, now: float) -> Result:
        """By the destination MAC, the frame as received."""
        vrf = self.cfg.ports[in_port].vrf_index
        dst = frame[:6]
        if dst[0] & 1:
            return self.flood(in_port, vrf, frame)
        e = self.table.entries.get((vrf, dst))
        if e is None:
            if self.cfg.vrfs[vrf].flood_unknown_unicast:
                return self.flood(in_port, vrf, frame)
            return "unknown_unicast"
        if e.port == in_port:
            return "hairpin"
        e.hits += 1
        e.seen = now
        return e.port, frame

    def flood(self, in_port: int, vrf: int, frame: bytes) -> Result:
        ports = [p for p in self.flood_ports[vrf] if p != in_port]
        return Flood(frame, ports) if ports else "unknown_unicast"

    # -- §5 ------------------------------------------------------------------------------

    def arp_nd(self, in_port: int, frame: bytes, etype: int, off: int, now: float
               ) -> Result:
        """An ARP frame or an NS / NA: what becomes of it; None when it is neither."""
        if etype == ETH_ARP:
            if len(frame) < off + ARP_LEN:
                return "truncated"
            return self.arp(in_port, frame, off, now)
        if (etype == ETH_IPV6 and len(frame) > off + 40 and frame[off] >> 4 == 6
                and frame[off + 6] == ICMPV6 and frame[off + 7] == 255
                and frame[off + 40] in (NS, NA)):
            if len(frame) < off + 40 + ND_FIXED:
                return "truncated"
            return self.nd(in_port, frame, off, now)
        return None

    def arp(self, in_port: int, frame: bytes, off: int, now: float) -> Result:
        fwd = self.cfg.vrfs[self.cfg.ports[in_port].vrf_index].forwarding
        htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, off)
        if (htype, ptype, hlen, plen) != (1, ETH_IPV4, 6, 4):
            return "unsupported" if fwd == "l3" else self.bridge(in_port, frame, now)
        sha, spa = frame[off + 8:off + 14], frame[off + 14:off + 18]
        tpa = frame[off + 24:off + 28]
        self.neigh.learn(in_port, spa, sha, now)
        if op == 1 and spa != tpa:
            answer = self.answer(in_port, tpa)
            if answer is not None:
                mac, _ = answer
                body = struct.pack("!HHBBH", 1, ETH_IPV4, 6, 4, 2) + mac + tpa + sha + spa
                reply = (sha + mac + frame[12:off] + body).ljust(max(60, off + ARP_LEN), b"\0")
                self.counters[in_port]["arp_replied"] += 1
                return in_port, reply
        if fwd == "l3" or (op == 2 and self.to_us(in_port, frame)):
            return "consumed"
        return self.bridge(in_port, frame, now)

    def nd(self, in_port: int, frame: bytes, off: int, now: float) -> Result:
        fwd = self.cfg.vrfs[self.cfg.ports[in_port].vrf_index].forwarding
        ic = off + 40
        end = min(ic + struct.unpack_from("!H", frame, off + 4)[0], len(frame))
        kind, target = frame[ic], frame[ic + 8:ic + 24]
        if kind == NS:
            src = frame[off + 8:off + 24]
            if src != bytes(16):                # DAD (source ::) is never answered
                ll = nd_option(frame, ic + ND_FIXED, end, 1)
                if ll is not None:
                    self.neigh.learn(in_port, src, ll, now)
                answer = self.answer(in_port, target) if target != src else None
                if answer is not None:
                    mac, router = answer
                    flags = (ND_R if router else 0) | ND_S | ND_O
                    na = nd_message(NA, flags, target, src, target, 2, mac)
                    self.counters[in_port]["arp_replied"] += 1
                    return in_port, frame[6:12] + mac + frame[12:off] + na
        else:
            ll = nd_option(frame, ic + ND_FIXED, end, 2)
            self.neigh.learn(in_port, target, frame[6:12] if ll is None else ll, now)
        if fwd == "l3" or (kind == NA and self.to_us(in_port, frame)):
            return "consumed"
        return self.bridge(in_port, frame, now)

    def to_us(self, in_port: int, frame: bytes) -> bool:
        return frame[:6] in (bytes(self.cfg.ports[in_port].mac), self.gateway_mac[in_port])

    def answer(self, in_port: int, t: bytes) -> Optional[tuple[bytes, bool]]:
        """§5.2: (the MAC to answer an ARP request / NS for target t with, whether as the
        router) or None. Gateway address → gateway MAC; with proxy_arp: a bind / AAP host
        of another port (proxy_hosts order) → its MAC; else, l3 / l2_l3, a routable t
        whose route leaves by another port → gateway MAC."""
        port = self.cfg.ports[in_port]
        vrf = self.cfg.vrfs[port.vrf_index]
        if t in self.gateways[vrf.index]:
            return self.gateway_mac[in_port], True
        if not port.proxy_arp:
            return None
        ip = ipaddress.ip_address(t)
        for net, mac, owner in self.hosts[vrf.index]:
            if owner != in_port and net.version == ip.version and ip in net:
                return bytes(mac), False
        if vrf.forwarding != "l2" and routable(t) and self.routed_elsewhere(in_port, vrf.index, t):
            return self.gateway_mac[in_port], True
        return None

    def routed_elsewhere(self, in_port: int, vrf: int, t: bytes) -> bool:
        """t's route leaves by a port other than in_port: its next hop's, or any group
        member's that is not removed (the group's live state)."""
        route = self.lpm[vrf][4 if len(t) == 4 else 6].lookup(t)
        if route is None:
            return False
        if not route.via_group:
            return self.nexthops[route.via_index].port_index != in_port
        gs = self.groups[route.via_index]
        return any(state != REMOVED and self.nexthops[nh].port_index != in_port
                   for nh, state in zip(gs.member_nh, gs.state))


def nd_option(frame: bytes, off: int, end: int, kind: int) -> Optional[bytes]:
    """The link-layer address of the first ND option of type `kind` and length 1 (8
    bytes) in frame[off:end]; None when there is none. An option of length 0 ends the
    search (malformed); fewer than 8 bytes left end it too."""
    while off + 8 <= end:
        length = frame[off + 1]
        if length == 0:
            return None
        if frame[off] == kind and length == 1:
            return frame[off + 2:off + 8]
        off += 8 * length
    return None
