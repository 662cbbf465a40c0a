"""Port mirroring's analyzer format (SPEC §9, docs/mirroring.md §3) and `dataplane
mirror-decode FILE.pcap`: the metadata header a copy sent to an analyzer carries after
its Ethernet/IP/UDP headers, how to read it back, and the command that prints a
capture's copies (metadata, then a summary of the packet copied). tools/dataplane_mirror.lua
decodes the same header in tshark/Wireshark."""
from __future__ import annotations

import argparse
import datetime
import struct
from dataclasses import asdict, dataclass
from typing import Optional

from .limits import MIRROR_META_LEN, MIRROR_NONE, MIRROR_RX, MIRROR_TX

MAGIC = 0x444D                  # "DM"
VERSION = 1
# magic, version, direction, ingress port, egress port, VRF, worker, sample (1 in N),
# original length, sequence, timestamp (ns since the Unix epoch); network byte order
META = struct.Struct("!HBBHHHHIIIQ")
assert META.size == MIRROR_META_LEN
DIRECTIONS = {MIRROR_RX: "rx", MIRROR_TX: "tx"}


def meta_template(sample: int) -> bytes:
    """The metadata header with what is fixed per mirror (the C core fills the rest)."""
    return META.pack(MAGIC, VERSION, 0, 0, 0, 0, 0, sample, 0, 0, 0)


@dataclass
class Metadata:
    direction: str              # rx | tx (or the number, if unknown)
    ingress_port: int           # port indexes in configuration order
    egress_port: Optional[int]  # None: an rx copy (the packet had no egress yet)
    vrf: Optional[int]          # the ingress port's VRF index; None: not an L3 port
    worker: int
    sample: int                 # 1 in N
    original_length: int        # bytes of the frame copied
    sequence: int               # the sampled packet's number (direction, port, worker)
    timestamp_ns: int


def parse_metadata(data: bytes) -> Optional[Metadata]:
    """The metadata header at the start of `data` (a UDP payload); None if it is not
    one (too short, wrong magic or version)."""
    if len(data) < META.size:
        return None
    (magic, version, direction, ingress, egress, vrf, worker, sample, length, seq,
     ts) = META.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        return None
    return Metadata(DIRECTIONS.get(direction, str(direction)), ingress,
                    None if egress == MIRROR_NONE else egress,
                    None if vrf == MIRROR_NONE else vrf, worker, sample, length, seq, ts)


def udp_payload(frame: bytes) -> Optional[tuple[int, bytes]]:
    """(UDP destination port, payload) of an Ethernet frame (up to two VLAN tags) holding
    IPv4 or IPv6 (no extension headers) and UDP; None otherwise."""
    off, etype = 12, None
    for _ in range(3):
        if len(frame) < off + 2:
            return None
        etype = int.from_bytes(frame[off:off + 2], "big")
        if etype not in (0x8100, 0x88A8):
            break
        off += 4
    off += 2
    if etype == 0x0800 and len(frame) >= off + 20 and frame[off] >> 4 == 4:
        ihl = (frame[off] & 15) * 4
        if frame[off + 9] != 17 or int.from_bytes(frame[off + 6:off + 8], "big") & 0x3FFF:
            return None                 # not UDP, or a fragment
        end = off + int.from_bytes(frame[off + 2:off + 4], "big")
        off += ihl
    elif etype == 0x86DD and len(frame) >= off + 40 and frame[off] >> 4 == 6:
        if frame[off + 6] != 17:
            return None
        end = off + 40 + int.from_bytes(frame[off + 4:off + 6], "big")
        off += 40
    else:
        return None
    if len(frame) < off + 8:
        return None
    dport = int.from_bytes(frame[off + 2:off + 4], "big")
    length = int.from_bytes(frame[off + 4:off + 6], "big")
    return dport, frame[off + 8:min(off + length, end, len(frame))]


def decode(frame: bytes, udp_port: Optional[int] = None
           ) -> Optional[tuple[Metadata, bytes]]:
    """(metadata, the frame copied) of a mirror copy sent to an analyzer (to udp_port,
    if given); None if the frame is not one."""
    found = udp_payload(frame)
    if found is None or (udp_port is not None and found[0] != udp_port):
        return None
    meta = parse_metadata(found[1])
    return None if meta is None else (meta, found[1][META.size:])


# ---------------------------------------------------------------- the command

def add_parsers(sub) -> None:
    d = sub.add_parser("mirror-decode",
                       help="print the mirror copies sent to an analyzer in a capture: "
                            "metadata header and the packet copied",
                       usage="dataplane mirror-decode FILE.pcap [--config CONFIG] "
                             "[--udp-port P] [--json]")
    d.add_argument("pcap", metavar="FILE.pcap")
    d.add_argument("--config", help="the forwarder's configuration: port and VRF names "
                                    "instead of indexes")
    d.add_argument("--udp-port", type=int, metavar="P",
                   help="only UDP datagrams to this port (default: any with the header)")
    d.add_argument("--json", action="store_true", help="one JSON object per copy")


def _names(config: Optional[str]) -> tuple[list, list]:
    if config is None:
        return [], []
    from .config import load
    cfg = load(config)
    return [p.name for p in cfg.ports], [v.name for v in cfg.vrfs]


def _summary(inner: bytes) -> str:
    try:
        import scapy.contrib.mpls  # noqa: F401  (binds the layers below Ether)
        import scapy.layers.inet  # noqa: F401
        import scapy.layers.inet6  # noqa: F401
        from scapy.layers.l2 import Ether
        return Ether(inner).summary()
    except Exception as e:          # a copy of a malformed packet is still shown
        return f"({len(inner)} bytes: {e})"


def cmd_mirror_decode(a: argparse.Namespace) -> int:
    from .config import ConfigError
    from .console import err, out
    try:
        ports, vrfs = _names(a.config)
    except ConfigError as e:
        for line in e.errors:
            err.print(f"[red]error:[/red] {line}", highlight=False, markup=True)
        return 2
    try:
        from scapy.utils import RawPcapReader
        reader = RawPcapReader(a.pcap)
    except (OSError, EOFError) as e:
        err.print(f"[red]error:[/red] {a.pcap}: {getattr(e, 'strerror', None) or e}",
                  highlight=False)
        return 2
    except Exception as e:           # scapy: not a pcap
        err.print(f"[red]error:[/red] {a.pcap}: not a pcap or pcapng file ({e})",
                  highlight=False)
        return 2

    def name(names, i):
        return "-" if i is None else (names[i] if i < len(names) else str(i))

    copies = other = 0
    with reader:
        for number, (data, _meta) in enumerate(reader, 1):
            found = decode(bytes(data), a.udp_port)
            if found is None:
                other += 1
                continue
            copies += 1
            meta, inner = found
            if a.json:
                out.print_json(data=dict(asdict(meta), frame=number,
                                         ingress=name(ports, meta.ingress_port),
                                         egress=name(ports, meta.egress_port),
                                         vrf_name=name(vrfs, meta.vrf),
                                         packet=_summary(inner), packet_hex=inner.hex()))
                continue
            when = datetime.datetime.fromtimestamp(meta.timestamp_ns / 1e9,
                                                   datetime.timezone.utc)
            out.print(f"{number} {when.isoformat(timespec='microseconds')} "
                      f"{meta.direction} in {name(ports, meta.ingress_port)} "
                      f"out {name(ports, meta.egress_port)} vrf {name(vrfs, meta.vrf)} "
                      f"len {meta.original_length} seq {meta.sequence} "
                      f"sample 1/{meta.sample} worker {meta.worker} | {_summary(inner)}",
                      highlight=False, markup=False, soft_wrap=True)
    if not a.json:
        out.print(f"{copies} mirror copies, {other} other frames", highlight=False)
    return 0


__all__ = ["META", "MAGIC", "VERSION", "Metadata", "decode", "meta_template",
           "parse_metadata"]
