"""The 5-tuple flow key (pyx/parse.pxd parse + build_key) of Ethernet frames, against the
key the reference model builds (dataplane/reference) and one laid out from scapy's fields
(docs/flow-table.md §1)."""
from __future__ import annotations

import socket

import pytest
from scapy.layers.inet import IP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether

from dataplane import _micro as micro
from dataplane.reference.fatflow import flow_key
from dataplane.reference.parse import parse
from oracles import OPS, cycled_sum, frames, words_sum

VRF = 5

pytestmark = pytest.mark.benchmark(group="parse")


def scapy_key(frame: bytes, vrf: int) -> bytes:
    pkt = Ether(frame)
    if IP in pkt:
        ip, family = pkt[IP], 4
        src, dst = socket.inet_aton(ip.src), socket.inet_aton(ip.dst)
    else:
        ip, family = pkt[IPv6], 6
        src = socket.inet_pton(socket.AF_INET6, ip.src)
        dst = socket.inet_pton(socket.AF_INET6, ip.dst)
    l4 = ip.payload
    return (src.ljust(16, b"\0") + dst.ljust(16, b"\0") + l4.sport.to_bytes(2, "big") +
            l4.dport.to_bytes(2, "big") + vrf.to_bytes(2, "big") +
            bytes([ip.proto if family == 4 else ip.nh, family]) + bytes(8))


@pytest.mark.parametrize("family", [4, 6], ids=["v4", "v6"])
def test_parse_build_key(timed, family):
    """TCP and UDP frames: parse() succeeds and build_key() gives the reference's key."""
    raw = frames(family, 256, family)
    pk = micro.Packets(raw)
    keys = micro.parse_keys(pk, VRF)
    for f, (rc, key) in zip(raw, keys):
        assert rc == 0
        assert key == flow_key(parse(f), VRF).packed()
        assert key == scapy_key(f, VRF)
    assert timed(micro.parse_key_loop, pk, VRF, OPS) == \
        cycled_sum([words_sum(key) for _, key in keys])
