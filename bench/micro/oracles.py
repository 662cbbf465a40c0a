"""Inputs and independent expectations for the micro benchmarks: scapy-built frames, a
Python longest-prefix match over ipaddress networks, and the sum the C loops return."""
from __future__ import annotations

import ipaddress
import random

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Raw

OPS = 8192                  # operations per timed call (a multiple of every input count)
M64 = (1 << 64) - 1


def cycled_sum(values, ops: int = OPS, start: int = 0) -> int:
    """What a loop returns after `ops` operations from record `start`: the sum of
    values[(start + i) % len(values)], mod 2^64."""
    n = len(values)
    full, rest = divmod(ops, n)
    total = full * sum(values)
    for i in range(rest):
        total += values[(start + i) % n]
    return total & M64


def words_sum(data: bytes, size: int = 8) -> int:
    """The sum of data's little-endian (native) words of `size` bytes."""
    return sum(int.from_bytes(data[i:i + size], "little") for i in range(0, len(data), size))


def unicast4(rng: random.Random) -> str:
    """An address parse.pxd routes: first octet neither 0, 127 nor >= 224."""
    first = rng.choice([o for o in range(1, 224) if o != 127])
    return f"{first}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def unicast6(rng: random.Random) -> str:
    """A global unicast address (2000::/3)."""
    return str(ipaddress.IPv6Address((0x2 << 125) | rng.getrandbits(125)))


def frame(rng: random.Random, family: int, proto: int, dst: str | None = None,
          ttl: int = 64, tos: int = 0) -> bytes:
    """A UDP or TCP frame with random unicast addresses and ports, at least 60 bytes."""
    if family == 4:
        ip = IP(src=unicast4(rng), dst=dst or unicast4(rng), ttl=ttl, tos=tos,
                id=rng.randrange(65536))
    else:
        ip = IPv6(src=unicast6(rng), dst=dst or unicast6(rng), hlim=ttl, tc=tos,
                  fl=rng.randrange(1 << 20))
    l4 = (UDP if proto == 17 else TCP)(sport=rng.randrange(1, 65536),
                                       dport=rng.randrange(1, 65536))
    pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / ip / l4
    return bytes(pkt / Raw(bytes(max(0, 60 - len(pkt)))))


def frames(seed: int, n: int, family: int) -> list[bytes]:
    rng = random.Random(seed)
    return [frame(rng, family, 17 if i % 2 else 6) for i in range(n)]


def longest_match(routes: dict, addr: str, default=None):
    """The next hop of the longest prefix in `routes` ({ip_network: nh}) holding addr,
    probed from the host route down (ipaddress only); `default` when none does."""
    a = ipaddress.ip_address(addr)
    for plen in range(a.max_prefixlen, -1, -1):
        nh = routes.get(ipaddress.ip_network(f"{a}/{plen}", strict=False))
        if nh is not None:
            return nh
    return default
