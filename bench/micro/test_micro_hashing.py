"""CRC32-C and the flow hash (pyx/hashing.pxd: crc_key + finalize, flow_key_hash,
pkt_hash4) against the pure-Python reference (dataplane/crc32c.py, dataplane/hashing.py)."""
from __future__ import annotations

import random
import socket

import pytest
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether

from dataplane import _micro as micro
from dataplane import hashing
from dataplane.crc32c import crc32c
from dataplane.reference.fatflow import FlowKey, flow_key_hash
from oracles import OPS, cycled_sum, frames

FIVE_TUPLE = hashing.field_mask(["src_ip", "dst_ip", "proto", "src_port", "dst_port"])
SEED = 0x5EED1234
INGRESS = 3
N_KEYS = 1024

pytestmark = pytest.mark.benchmark(group="hash")


def test_crc32c_check_value():
    assert micro.crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"123456789") == 0xE3069283          # the reference agrees


@pytest.mark.parametrize("key_len", [16, 44], ids=["16B-v4-key", "44B-v6-key"])
def test_crc_finalize(timed, key_len):
    """rte_hash_crc over a hash key + the fmix32 finalizer with the node seed."""
    rng = random.Random(key_len)
    keys = [rng.randbytes(key_len) for _ in range(N_KEYS)]
    for k in keys[:64]:
        assert micro.crc32c(k) == crc32c(k)
    expect = [hashing.finalize(hashing.crc(k), SEED) for k in keys]
    blob = micro.Blob.of(keys, 48)
    assert timed(micro.crc_finalize_loop, blob, key_len, SEED, OPS) == \
        cycled_sum(expect)


def flow_keys(family: int, seed: int) -> list[FlowKey]:
    rng = random.Random(seed)
    alen = 4 if family == 4 else 16
    icmp = 1 if family == 4 else 58
    out = []
    for i in range(N_KEYS):
        proto = (6, 17, icmp)[i % 3]
        out.append(FlowKey(0, family, rng.randbytes(alen), rng.randbytes(alen), proto,
                           rng.randrange(65536), rng.randrange(256 if proto == icmp else 65536)))
    return out


@pytest.mark.parametrize("family", [4, 6], ids=["v4", "v6"])
def test_flow_key_hash(timed, family):
    """flow_key_hash() of 48-byte flow keys (TCP, UDP, ICMP) = reference flow_key_hash()."""
    keys = flow_keys(family, family)
    blob = micro.Blob.of([k.packed() for k in keys], 48)
    expect = [flow_key_hash(k, INGRESS, 0, FIVE_TUPLE, SEED) for k in keys]
    assert micro.flow_key_hashes(blob, INGRESS, 0, FIVE_TUPLE, SEED) == expect
    assert timed(micro.flow_key_hash_loop, blob, INGRESS, 0, FIVE_TUPLE, SEED,
                 OPS) == cycled_sum(expect)


def test_pkt_hash4(timed):
    """pkt_hash4() of parsed IPv4 frames = hashing.flow_hash() of scapy's fields."""
    raw = frames(44, 256, 4)
    pk = micro.Packets(raw)
    assert pk.rcs == [0] * len(raw)
    expect = []
    for f in raw:
        ip = Ether(f)[IP]
        expect.append(hashing.flow_hash(4, socket.inet_aton(ip.src),
                                        socket.inet_aton(ip.dst), ip.proto,
                                        ip.payload.sport, ip.payload.dport, INGRESS, 0,
                                        FIVE_TUPLE, SEED))
    assert micro.pkt_hashes4(pk, INGRESS, FIVE_TUPLE, SEED) == expect
    assert timed(micro.pkt_hash4_loop, pk, INGRESS, FIVE_TUPLE, SEED, OPS) == \
        cycled_sum(expect)
