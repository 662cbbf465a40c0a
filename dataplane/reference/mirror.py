"""Reference of pyx/mirror.pxd: port mirroring (SPEC §9, docs/mirroring.md).

A mirrored port copies 1 in N of the packets it receives (as received) and of those it
sends (as sent), counting per direction: the first packet, then every Nth. A copy goes
out of `to` as it is, or to an analyzer behind Ethernet, IPv4/IPv6, UDP and the metadata
header of docs/mirroring.md §3. The model has one worker, and its copies are never
refused: `mirror_dropped` stays 0 here.
"""
from __future__ import annotations

import struct
import time
from typing import Optional

from ..config.model import Config, Port

RX, TX = 1, 2                   # the metadata's direction codes
NONE = 0xFFFF                   # no egress port (an rx copy), no VRF
MAGIC, VERSION = 0x444D, 1


def ones_sum(data: bytes) -> int:
    """The one's-complement sum of 16-bit big-endian words, folded."""
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return s


class PortMirror:
    """One port's mirror and its state: per direction, packets seen and copies made."""

    def __init__(self, cfg: Config, port: Port):
        m = port.mirror
        self.rx = m.direction in ("rx", "both")
        self.tx = m.direction in ("tx", "both")
        self.sample = m.sample
        self.seen = {RX: 0, TX: 0}
        self.seq = {RX: 0, TX: 0}
        self.analyzer = m.analyzer
        if m.analyzer is None:
            self.egress = m.to_index
        else:
            nh = cfg.nexthops[m.analyzer.via_index]
            self.egress = nh.port_index
            self.eth = bytes(nh.mac) + bytes(cfg.ports[nh.port_index].mac)

    def sampled(self, direction: int) -> Optional[int]:
        """The packet's sequence number if it is one to copy, else None."""
        n = self.seen[direction]
        self.seen[direction] = n + 1
        if n % self.sample:
            return None
        seq = self.seq[direction]
        self.seq[direction] = seq + 1
        return seq

    def encapsulate(self, frame: bytes, direction: int, in_port: int, out_port: int,
                    vrf: int, seq: int, now_ns: int) -> bytes:
        a = self.analyzer
        meta = struct.pack("!HBBHHHHIIIQ", MAGIC, VERSION, direction, in_port, out_port,
                           vrf, 0, self.sample, len(frame), seq, now_ns)
        payload = meta + frame
        src, dst = a.source.packed, a.address.packed
        length = 8 + len(payload)
        checksum = 0
        if a.address.version == 6:          # mandatory over IPv6 (RFC 8200 §8.1)
            pseudo = src + dst + struct.pack("!IxxxB", length, 17)
            udp = struct.pack("!HHHH", a.udp_port, a.udp_port, length, 0) + payload
            checksum = (~ones_sum(pseudo + udp) & 0xFFFF) or 0xFFFF
        udp = struct.pack("!HHHH", a.udp_port, a.udp_port, length, checksum) + payload
        if a.address.version == 4:
            header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + length, 0, 0x4000, 64, 17, 0,
                                 src, dst)
            header = header[:10] + struct.pack("!H", ~ones_sum(header) & 0xFFFF) + header[12:]
            return self.eth + b"\x08\x00" + header + udp
        header = struct.pack("!IHBB16s16s", 6 << 28, length, 17, 64, src, dst)
        return self.eth + b"\x86\xdd" + header + udp


class Mirrors:
    """The mirrors of every port; copies are collected until take() (the Core API's
    take_mirrored): (port they leave by, RX or TX, bytes)."""

    def __init__(self, cfg: Config, counters: list[dict]):
        self.cfg = cfg
        self.counters = counters            # the forwarder's, per port: `mirrored` here
        self.ports = [PortMirror(cfg, p) if p.mirror is not None else None
                      for p in cfg.ports]
        self.copies: list[tuple[int, int, bytes]] = []
        self.fixed_ns: Optional[int] = None

    def now_ns(self) -> int:
        return self.fixed_ns if self.fixed_ns is not None else time.time_ns()

    def vrf_of(self, port: int) -> int:
        p = self.cfg.ports[port]
        return NONE if p.vrf is None else p.vrf_index

    def copy(self, port: int, direction: int, frame: bytes, in_port: int,
             out_port: int) -> None:
        pm = self.ports[port]
        seq = pm.sampled(direction)
        if seq is None:
            return
        if pm.analyzer is not None:
            frame = pm.encapsulate(frame, direction, in_port, out_port, self.vrf_of(in_port),
                                   seq, self.now_ns())
        self.copies.append((pm.egress, direction, frame))
        self.counters[port]["mirrored"] += 1

    def received(self, in_port: int, frame: bytes) -> None:
        pm = self.ports[in_port]
        if pm is not None and pm.rx:
            self.copy(in_port, RX, bytes(frame), in_port, NONE)

    def sent(self, in_port: int, out_port: int, frame: bytes) -> None:
        pm = self.ports[out_port]
        if pm is not None and pm.tx:
            self.copy(out_port, TX, frame, in_port, out_port)

    def take(self) -> list[tuple[int, int, bytes]]:
        out, self.copies = self.copies, []
        return out
