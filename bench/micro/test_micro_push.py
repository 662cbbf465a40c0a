"""Label push with ELI/EL (pyx/push.pxd push_ip and write_push) for next hops compiled
by dataplane/config/compile.py, decoded by scapy's MPLS layer and compared with the
reference push (dataplane/reference/push.py); IPv4 TTL decrement (pyx/rewrite.pxd
ttl_dec4) with the checksum verified by scapy."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import IP
from scapy.layers.l2 import Ether
from scapy.utils import checksum

from dataplane import _micro as micro
from dataplane import hashing
from dataplane.config.compile import nexthop_table
from dataplane.reference.push import build_stack, push_ip
from oracles import OPS, cycled_sum, frame, unicast4, words_sum

ELI = 7
N_FRAMES = 256
NH_MAC, PORT_MAC = bytes.fromhex("020000000aa1"), bytes.fromhex("020000000bb2")
# transport labels and ERLD: the ELI/EL pair below all of them (within the ERLD), or as
# deep as the ERLD lets it be read, above the last one
STACKS = {"el-bottom": ([16001, 24005], 8), "el-within-erld": ([16001, 24005, 30001], 4)}

pytestmark = pytest.mark.benchmark(group="push")


def compiled_nexthop(labels, erld):
    """compile.nexthop_table() of a labelled next hop with entropy (the ELI/EL placed
    where the forwarder's configuration places it)."""
    cfg = SimpleNamespace(ports=[SimpleNamespace(mac=PORT_MAC)], node=None)
    n = SimpleNamespace(name="nh", mac=NH_MAC, port_index=0, labels=labels, entropy=True,
                        erld=erld, tunnel=None)
    return nexthop_table(cfg, n)


def expected_stack(labels, erld, h):
    k = min(len(labels), erld - 2)
    return labels[:k] + [ELI, hashing.entropy_label(h)] + labels[k:]


def expected_ttls(stack, ttl):
    """ELI and EL carry TTL 0, the other entries `ttl`."""
    eli = stack.index(ELI)
    return [0 if j in (eli, eli + 1) else ttl for j in range(len(stack))]


def decoded(layer) -> tuple[list[MPLS], object]:
    """scapy's MPLS layers from `layer` on, and what follows the bottom of stack."""
    lses = []
    while isinstance(layer, MPLS):
        lses.append(layer)
        layer = layer.payload
    return lses, layer


@pytest.fixture(scope="module")
def inputs():
    rng = random.Random(6790)
    raw = [frame(rng, 4, 17 if i % 2 else 6, ttl=rng.randrange(2, 256),
                 tos=rng.randrange(256)) for i in range(N_FRAMES)]
    return raw, [rng.getrandbits(32) for _ in raw]


@pytest.mark.parametrize("stack", list(STACKS))
def test_push_ip(timed, inputs, stack):
    raw, hashes = inputs
    labels, erld = STACKS[stack]
    pu = micro.Pusher(micro.Packets(raw), compiled_nexthop(labels, erld), hashes)
    tops = []
    for i, (f, h) in enumerate(zip(raw, hashes)):
        out = pu.frame(i)
        assert out[14:] == push_ip(f[14:], labels, h=h, entropy=True, erld=erld).data
        pkt, ip_in = Ether(out), Ether(f)[IP]
        assert (pkt.dst, pkt.src, pkt.type) == ("02:00:00:00:0a:a1", "02:00:00:00:0b:b2",
                                                0x8847)
        want = expected_stack(labels, erld, h)
        lses, ip = decoded(pkt.payload)
        assert [m.label for m in lses] == want
        assert [m.s for m in lses] == [0] * (len(want) - 1) + [1]
        assert [m.cos for m in lses] == [ip_in.tos >> 5] * len(want)
        assert [m.ttl for m in lses] == expected_ttls(want, ip_in.ttl - 1)
        assert isinstance(ip, IP) and ip.ttl == ip_in.ttl - 1
        header = out[14 + 4 * len(want):][:20]
        assert checksum(header) == 0                         # the header still verifies
        tops.append(int.from_bytes(out[14:18], "little") + (ip.chksum << 32))
    assert pu.drops == 0 and pu.el_not_readable == 0
    assert timed(micro.push_ip_loop, pu, OPS) == cycled_sum(tops)


@pytest.mark.parametrize("stack", list(STACKS))
def test_write_push(timed, inputs, stack):
    """The label stack alone, painted from the next hop's precomputed entries."""
    raw, hashes = inputs
    labels, erld = STACKS[stack]
    pu = micro.Pusher(micro.Packets(raw), compiled_nexthop(labels, erld), hashes)
    tc, ttl = 5, 63
    sums = []
    for h in hashes:
        got = pu.labels(tc, ttl, h)
        ref = build_stack(labels, tc=tc, ttl=ttl, entropy=True, erld=erld,
                          el=hashing.entropy_label(h))
        assert got == ref.pack()
        lses, _ = decoded(MPLS(got + bytes(IP())))
        assert [m.label for m in lses] == expected_stack(labels, erld, h)
        assert [m.ttl for m in lses] == expected_ttls(expected_stack(labels, erld, h), ttl)
        sums.append(words_sum(got, 4))
    assert timed(micro.write_push_loop, pu, tc, ttl, OPS) == cycled_sum(sums)


def test_ttl_dec4(timed):
    """TTL - 1 with the incremental checksum update: every header's checksum still
    verifies (scapy), after one decrement and after OPS / N decrements."""
    rng = random.Random(1624)
    headers = [bytes(IP(src=unicast4(rng), dst=unicast4(rng), ttl=255, tos=rng.randrange(256),
                        id=rng.randrange(65536), proto=rng.choice((6, 17, 1)),
                        len=rng.randrange(20, 1501)))[:20] for _ in range(N_FRAMES)]
    pristine, work = micro.Blob.of(headers, 20), micro.Blob(N_FRAMES, 20)

    def check(rounds):
        sums = []
        for i in range(N_FRAMES):
            ip = IP(work.record(i))
            assert ip.ttl == 255 - rounds and checksum(work.record(i)) == 0
            # the checksum after each decrement, computed afresh
            for r in range(1, rounds + 1):
                h = bytearray(headers[i])
                h[8] -= r
                h[10:12] = b"\0\0"
                sums.append(checksum(bytes(h)))
        return sums

    one = micro.ttl_dec4_loop(pristine, work, N_FRAMES)
    assert one == sum(check(1))
    many = timed(micro.ttl_dec4_loop, pristine, work, OPS)
    assert many == sum(check(OPS // N_FRAMES))
