"""Reference of pyx/neigh.pxd (its first half): next hops resolved by ARP / ND.

docs/virtual-networks.md §6. A neighbour is a distinct (port, ip) of the next hops without
a `mac` (config/vnet.py neighbours(), in next-hop order); next hops sharing one share its
state. The model has one worker, so one held-packet queue per neighbour.

- States: incomplete (no MAC) and reachable (MAC, confirmed at `confirmed`).
- learn(): an ARP / ND frame naming (ingress port, ip) with a unicast, non-zero
  link-layer address confirms the neighbour: reachable, that MAC, confirmed now. It does
  not touch `next_req`.
- tick(now), per neighbour in order (docs §6, the inequalities exactly):
    reachable and now >= confirmed + reachable_time      -> incomplete, next_req = now
    reachable and now >= confirmed + reachable_time * 2 / 3 and now >= next_req
                                                         -> unicast request,
                                                            next_req = now + retry
    incomplete and now >= next_req (0 at start)          -> broadcast request,
                                                            next_req = now + retry
  Requests count `arp_sent` on their port.
- out(): a packet toward a neighbour (the rewrite left its destination MAC zero) is sent
  with the MAC written when the neighbour is reachable and holds nothing; otherwise it
  joins the queue (so it never overtakes packets held before it), or, the queue being
  `neighbors.queue` long, is dropped `arp_unresolved` on its ingress port.
- release(): the queues of reachable neighbours, neighbour order, oldest first, MAC
  written: what the next process() / neigh_tick() sends first (counted tx then).
"""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from typing import Optional

from ..config import vnet
from ..config.model import Config
from .mirror import ones_sum

ETH_ARP = 0x0806
BROADCAST = b"\xff" * 6
HELD = "held"                           # out(): the packet waits in a neighbour's queue
INCOMPLETE, REACHABLE = "incomplete", "reachable"
ARP_LEN, NS_LEN = 60, 86


def icmp6_checksum(src: bytes, dst: bytes, message: bytes) -> int:
    """RFC 4443 §2.3: over the pseudo header (RFC 8200 §8.1) and the ICMPv6 message."""
    pseudo = src + dst + struct.pack("!IxxxB", len(message), 58)
    return ~ones_sum(pseudo + message) & 0xFFFF


def nd_message(icmp_type: int, flags: int, src: bytes, dst: bytes, target: bytes,
               option: int, ll_mac: bytes) -> bytes:
    """An NS (135) or NA (136) with one link-layer option: IPv6 header (traffic class and
    flow label 0, payload 32, next header 58, hop limit 255) and 32 bytes of ICMPv6."""
    body = struct.pack("!BBHI16sBB6s", icmp_type, 0, 0, flags << 24, target, option, 1,
                       ll_mac)
    csum = icmp6_checksum(src, dst, body)
    body = body[:2] + struct.pack("!H", csum) + body[4:]
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), 58, 255, src, dst) + body


def arp_request(port_mac: bytes, source: bytes, target: bytes,
                known: Optional[bytes] = None) -> bytes:
    """§6: ARP request for `target` from the port, broadcast or unicast to `known`;
    padded with zeros to 60 bytes."""
    frame = ((known or BROADCAST) + port_mac + struct.pack("!HHHBBH", ETH_ARP, 1, 0x0800,
                                                           6, 4, 1)
             + port_mac + source + bytes(6) + target)
    return frame.ljust(ARP_LEN, b"\0")


def solicited_node(target: bytes) -> bytes:
    """ff02::1:ffxx:xxxx, the last three bytes of `target` (RFC 4291 §2.7.1)."""
    return bytes.fromhex("ff0200000000000000000001ff") + target[13:]


def ns_request(port_mac: bytes, source: bytes, target: bytes,
               known: Optional[bytes] = None) -> bytes:
    """§6: NS for `target` to its solicited-node group (Ethernet 33:33:ff:xx:xx:xx), or
    unicast to `known` and the address; source link-layer option = the port MAC."""
    if known is None:
        dst_mac, dst = b"\x33\x33\xff" + target[13:], solicited_node(target)
    else:
        dst_mac, dst = known, target
    return (dst_mac + port_mac + b"\x86\xdd"
            + nd_message(135, 0, source, dst, target, 1, port_mac))


@dataclass
class Neighbour:
    port: int
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    source: bytes                       # its requests' source address (config/vnet.py)
    mac: Optional[bytes] = None         # None: incomplete
    confirmed: float = 0.0
    next_req: float = 0.0               # clock of the next request (0: the first tick)
    held: list[tuple[int, bytes]] = field(default_factory=list)   # (ingress port, frame)

    @property
    def state(self) -> str:
        return INCOMPLETE if self.mac is None else REACHABLE


class Neighbours:
    """Every neighbour of the configuration and the one worker's held packets."""

    def __init__(self, cfg: Config, counters: list[dict]):
        self.cfg = cfg
        self.counters = counters            # the forwarder's, per port
        self.spec = cfg.neighbors
        self.table = [Neighbour(port, ip, vnet.request_source(cfg, port, ip).packed)
                      for port, ip in vnet.neighbours(cfg)]
        self.by_address = {(n.port, n.ip.packed): i for i, n in enumerate(self.table)}
        self.of_nexthop = vnet.neighbour_of(cfg)

    def learn(self, in_port: int, ip: bytes, mac: bytes, now: float) -> None:
        """A frame on `in_port` says `ip` is at `mac`: confirms that neighbour."""
        if mac[0] & 1 or mac == bytes(6):
            return
        i = self.by_address.get((in_port, bytes(ip)))
        if i is not None:
            n = self.table[i]
            n.mac, n.confirmed = bytes(mac), now

    def out(self, nexthop: int, in_port: int, frame: bytes) -> bytes | str:
        """The frame toward next hop `nexthop` (destination MAC zero): the frame with its
        MAC, HELD or "arp_unresolved"."""
        i = self.of_nexthop.get(nexthop)
        if i is None:
            return frame
        n = self.table[i]
        if n.mac is not None and not n.held:
            return n.mac + frame[6:]
        if len(n.held) >= self.spec.queue:
            return "arp_unresolved"
        n.held.append((in_port, frame))
        return HELD

    def release(self) -> list[tuple[int, int, bytes]]:
        """The held packets of reachable neighbours, MAC written: (ingress port, egress
        port, frame), neighbour order, oldest first."""
        out = []
        for n in self.table:
            if n.mac is not None and n.held:
                out += [(in_port, n.port, n.mac + frame[6:]) for in_port, frame in n.held]
                n.held = []
        return out

    def tick(self, now: float) -> list[tuple[int, bytes]]:
        """Expire, refresh and resolve at `now` (module docstring): the requests made."""
        rt, retry = self.spec.reachable_time, self.spec.retry
        out = []
        for n in self.table:
            if n.mac is not None:
                if now >= n.confirmed + rt:
                    n.mac, n.next_req = None, now       # incomplete: asked again at once
                else:
                    if now >= n.confirmed + rt * 2 / 3 and now >= n.next_req:
                        out.append((n.port, self.request(n, n.mac)))
                        n.next_req = now + retry
                    continue
            if now >= n.next_req:
                out.append((n.port, self.request(n, None)))
                n.next_req = now + retry
        for port, _ in out:
            self.counters[port]["arp_sent"] += 1
        return out

    def request(self, n: Neighbour, known: Optional[bytes]) -> bytes:
        port_mac = bytes(self.cfg.ports[n.port].mac)
        build = arp_request if n.ip.version == 4 else ns_request
        return build(port_mac, n.source, n.ip.packed, known)

    def drop_held(self) -> None:
        """At stop: every held packet dropped `arp_unresolved` on its ingress port."""
        for n in self.table:
            for in_port, _ in n.held:
                self.counters[in_port]["arp_unresolved"] += 1
            n.held = []

    def held_count(self) -> int:
        return sum(len(n.held) for n in self.table)

    def listing(self) -> list[tuple[int, str, Optional[bytes], str]]:
        return [(n.port, str(n.ip), n.mac, n.state) for n in self.table]
