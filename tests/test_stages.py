"""Stage by stage: the Cython core's stages against their twins in dataplane/reference/
(one module per pyx/ stage), so that a disagreement names the stage.

Where the core has a test hook for a stage, it is fed the stage's input directly;
otherwise the whole packet runs through `Core.process` (tests/backends.py) under a
configuration in which only the stage under test varies, and the stage's result is read
back from the output (egress port and MAC, flow listing, outer header fields). The
reference side always calls the stage function itself, never ReferenceForwarder.

Already compared elsewhere, not repeated here:

- hashing (pyx/hashing.pxd vs dataplane/hashing.py): tests/test_hashing.py, key bytes,
  CRC and finalized hash for every field mask (`_hashing.explain`, `hash_v4_many`,
  `buckets_many`), and parse + flow key + hash of whole well-formed frames against
  reference parse + ecmp.packet_hash (`_hashing.frame_hash`,
  test_packet_path_hash_matches_reference_on_frames).
- ecmp bucket tables: both backends build them with dataplane.ecmp (one implementation,
  tested on its own in tests/test_ecmp.py); the fragment table's slot collisions:
  tests/test_differential.py::test_fragment_table_slot_collision.
- flow table, TCP state, aging (pyx/flow.pxd vs reference/flow.py): tests/test_flows.py
  runs every case on both backends against the same oracle.
- mpls_input, push, mpls_output: whole packets only, tests/test_mpls_differential.py
  (byte for byte) and tests/test_mpls_forwarder.py (both backends, scapy oracle); the
  reference operations themselves against scapy/tshark: tests/test_mpls_reference.py.
- every stage together, byte for byte and counter for counter:
  tests/test_differential.py and tests/test_mpls_differential.py.

Compared here:

- parse: on the differential corpus (crafted, malformed, random and mutated frames,
  not only well-formed ones), accept/drop and each parsed field on its own, through
  `_hashing.frame_hash` with one-field hash masks (a field that differs changes the
  hash of that field alone).
- route: random nested IPv4/IPv6 prefix tables, destinations at and around every prefix
  edge; rte_lpm / rte_lpm6 against reference/route.py (the next hop identifies the route).
- ecmp member choice: groups of every bucket-count kind (small, prime, 65536), weights
  with drained members, several hash specs, before and after live member changes;
  packet mode (no flow table) against reference/ecmp.py select_member.
- fatflow masking: random rule sets and exclude lists; the flow listing shows the key
  the core masked, against reference/fatflow.py FatFlows.mask.
- mpls_hash: the transit hash of random label stacks (ELI/EL at any depth, several
  ERLDs, payload guessing on and off, three hash masks) and the pseudowire frame hash,
  read from an IPv6 MPLS-over-UDP outer header (flow label: 20 bits of the hash, UDP
  source port: 14 more), against reference/mpls_hash.py.
- rewrite: random IPv4 headers (options, TOS, TTLs, right and wrong checksums),
  IPv6 hop limits, VLAN tags and Ethernet padding; output bytes against
  reference/rewrite.py rewrite().
"""
from __future__ import annotations

import ipaddress
import random
import struct
from dataclasses import replace

import pytest

from dataplane import _hashing, hashing
from dataplane.config import load_text
from dataplane.config.model import DEFAULT_HASH_FIELDS, FatFlowRule, HashSpec
from dataplane.reference.ecmp import FragmentTable, GroupState, packet_hash, select_member
from dataplane.reference.fatflow import FatFlows, flow_key
from dataplane.reference.mpls_hash import pw_flow_hash, transit_hash
from dataplane.reference.mpls_input import ELI, l2_payload
from dataplane.reference.parse import parse
from dataplane.reference.rewrite import rewrite
from dataplane.reference.route import route_lookup, vrf_tables
from helpers import make_config, mac, port_mac
import test_differential

TCP, UDP, SCTP, ICMP, ICMPV6 = 6, 17, 132, 1, 58
ONE_FIELD_MASKS = sorted(hashing.FIELD_BITS.values())


# ---- frames, built with struct ------------------------------------------------------

def ipv4_checksum(header: bytes) -> int:
    s = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def l4_header(proto: int, sport: int, dport: int, icmp_type: int = 8) -> bytes:
    if proto == TCP:
        return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x10, 8192, 0, 0)
    if proto == UDP:
        return struct.pack("!HHHH", sport, dport, 8, 0)
    if proto == SCTP:
        return struct.pack("!HHII", sport, dport, 0, 0)
    if proto in (ICMP, ICMPV6):
        return struct.pack("!BBHHH", icmp_type, 0, 0, sport, 1)
    return b""


def ethernet(dst_mac: bytes, etype: int, tags=()) -> bytes:
    eth = dst_mac + mac("02:00:00:00:99:99")
    for tpid, vid in tags:
        eth += struct.pack("!HH", tpid, vid)
    return eth + struct.pack("!H", etype)


def ipv4_packet(src: bytes, dst: bytes, proto: int, payload: bytes, *, ttl: int = 64,
                tos: int = 0, ident: int = 0, frag: int = 0, options: bytes = b"",
                checksum=None) -> bytes:
    ihl = 5 + len(options) // 4
    header = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, tos, 4 * ihl + len(payload), ident,
                         frag, ttl, proto, 0, src, dst) + options
    if checksum is None:
        checksum = ipv4_checksum(header)
    return header[:10] + struct.pack("!H", checksum) + header[12:] + payload


def ipv6_packet(src: bytes, dst: bytes, nh: int, payload: bytes, *, hlim: int = 64,
                tc: int = 0, flow_label: int = 0) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28 | tc << 20 | flow_label, len(payload), nh,
                       hlim, src, dst) + payload


def ip_frame(dst_mac: bytes, ip: bytes, tags=(), pad: bytes = b"") -> bytes:
    etype = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    return ethernet(dst_mac, etype, tags) + ip + pad


def one(backend, port: int, frame: bytes):
    """(egress port, frame) the Cython core sends for one frame, or None (dropped)."""
    out = backend.process(port, [frame])
    assert len(out) <= 1
    return out[0] if out else None


# ---- parse ----------------------------------------------------------------------------

def test_parse_fields_one_by_one_on_the_differential_corpus():
    """Every frame of tests/test_differential.py's corpus: the core's parser accepts it
    exactly when reference/parse.py does, and then agrees on each hashed field alone
    (addresses, protocol, ports or ICMP echo id, flow label; ingress port as a
    control), which a field mask of one bit isolates."""
    rng = random.Random(0x5A6E)
    frames = test_differential.corpus()
    assert len(frames) > 4000
    mismatches = []
    for frame in frames:
        ingress, seed = rng.getrandbits(16), rng.getrandbits(32)
        ref = parse(frame, ingress)
        accepted = _hashing.frame_hash(frame, ingress, 0x7F, seed) is not None
        if accepted != (ref.drop is None):
            mismatches.append((frame.hex(), "accepted" if accepted else "dropped", ref.drop))
            continue
        if not accepted:
            continue
        for mask in ONE_FIELD_MASKS + [0x7F, 0x7F | hashing.SYMMETRIC]:
            got = _hashing.frame_hash(frame, ingress, mask, seed)
            if got != packet_hash(ref, mask, seed):
                mismatches.append((frame.hex(), f"mask {mask:#x}", ref))
    assert not mismatches, f"{len(mismatches)} disagreements, first {mismatches[:3]}"


# ---- route ----------------------------------------------------------------------------

def random_prefixes(rng: random.Random, family: int, n: int) -> list:
    """n distinct prefixes, many nested in one another (as real tables are), in
    unicast space that parse() never drops."""
    bits = 32 if family == 4 else 128
    out: dict = {}
    while len(out) < n:
        if out and rng.random() < 0.6:                  # inside an earlier prefix
            outer = rng.choice(list(out))
            plen = rng.randint(outer.prefixlen, min(bits, outer.prefixlen + 12))
            addr = int(outer.network_address) | rng.getrandbits(bits - outer.prefixlen)
        else:
            plen = rng.choice([8, 12, 16, 20, 22, 24, 25, 28, 30, 31, 32] if family == 4
                              else [16, 24, 32, 40, 48, 56, 60, 64, 96, 112, 127, 128])
            if family == 4:
                addr = rng.randint(1, 126) << 24 | rng.getrandbits(24)
            else:
                addr = 0x2001 << 112 | rng.getrandbits(112)
        net = ipaddress.ip_network((addr >> (bits - plen) << (bits - plen), plen))
        out[net] = None
    return list(out)


def probes(rng: random.Random, net) -> list[bytes]:
    """The first and last address of a prefix, one inside, and the two just outside."""
    first, last = int(net.network_address), int(net.broadcast_address)
    addrs = [first, last, rng.randint(first, last), first - 1, last + 1]
    size = net.max_prefixlen // 8
    return [a.to_bytes(size, "big") for a in addrs if 0 <= a < 1 << net.max_prefixlen]


@pytest.mark.parametrize("seed,defaults", [(1, False), (2, True)],
                         ids=["no-default-route", "default-routes"])
def test_route_lpm_random_tables(open_backend, seed, defaults):
    rng = random.Random(seed)
    nets = random_prefixes(rng, 4, 150) + random_prefixes(rng, 6, 150)
    if defaults:
        nets += [ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")]
    # one next hop per route: the next hop a packet leaves by names the route
    nexthops = {f"n{i}": ("up1" if i % 2 else "up2", f"02:00:00:01:{i >> 8:02x}:{i & 255:02x}")
                for i in range(len(nets))}
    cfg = make_config(ports=(("p0", "default"), ("up1", "default"), ("up2", "default")),
                      nexthops=nexthops, groups={},
                      vrfs={"default": [(str(n), f"n{i}") for i, n in enumerate(nets)]},
                      modes={"p0": "packet"})
    core = open_backend("cython", cfg)
    tables = vrf_tables(cfg.vrfs)
    by_hop = {(nh.port_index, nh.mac): nh.index for nh in cfg.nexthops}
    src4, src6 = bytes([192, 0, 2, 1]), ipaddress.ip_address("2001:db8:5::1").packed
    checked, wrong = 0, []
    for net in nets:
        for dst in probes(rng, net):
            if len(dst) == 4:
                ip = ipv4_packet(src4, dst, UDP, l4_header(UDP, 1, 2))
            else:
                ip = ipv6_packet(src6, dst, UDP, l4_header(UDP, 1, 2))
            frame = ip_frame(mac(port_mac(0)), ip)
            p = parse(frame)
            if p.drop is not None:                  # a martian just outside a prefix
                continue
            route = route_lookup(tables, 0, p)
            want = None if route is None else route.via_index
            out = one(core, 0, frame)
            got = None if out is None else by_hop[(out[0], out[1][:6])]
            checked += 1
            if got != want:
                wrong.append((ipaddress.ip_address(dst),
                              None if route is None else str(route.prefix),
                              None if got is None else str(nets[got])))
    assert checked > 1200
    assert not wrong, f"{len(wrong)} of {checked} differ, first (dst, ref, core) {wrong[:5]}"


# ---- ecmp member choice ---------------------------------------------------------------

ECMP_GROUPS = {      # name: (buckets, weights, hash)
    "g64": (64, [1, 1, 1], HashSpec()),
    "g97": (97, [1, 2, 3, 0], HashSpec(symmetric=True)),
    "g4093": (4093, [5, 3, 1, 1, 1], HashSpec(fields=("src_ip", "dst_ip"))),
    "g65536": (65536, [1] * 8, HashSpec(fields=DEFAULT_HASH_FIELDS + ("flow_label",
                                                                      "ingress_port"))),
    "g65521": (65521, [2, 0, 1, 7], HashSpec(fields=("dst_ip", "dst_port"),
                                             symmetric=True)),
}


def ecmp_config():
    names = list(ECMP_GROUPS)
    nexthops, groups, routes = {}, {}, []
    for g, name in enumerate(names):
        _, weights, _ = ECMP_GROUPS[name]
        members = []
        for m, w in enumerate(weights):
            nh = f"{name}m{m}"
            nexthops[nh] = ("up1" if m % 2 else "up2", f"02:00:00:02:{g:02x}:{m:02x}")
            members.append((nh, w))
        groups[name] = members
        routes += [(f"10.{g + 1}.0.0/16", name), (f"2001:db8:{g + 1}::/48", name)]
    nexthops["spare"] = ("up1", "02:00:00:02:ff:ff")
    cfg = make_config(ports=(("p0", "default"), ("up1", "default"), ("up2", "default"),
                             ("p3", "default")),
                      nexthops=nexthops, groups=groups, vrfs={"default": routes},
                      hashes={n: ECMP_GROUPS[n][2] for n in names},
                      modes={"p0": "packet", "p3": "packet"})
    cfg.groups = [replace(g, buckets=ECMP_GROUPS[g.name][0]) for g in cfg.groups]
    return cfg


def random_flow_frame(rng: random.Random, group: int, dst_mac: bytes) -> bytes:
    proto = rng.choice([TCP, UDP, SCTP, ICMP, 47])
    sport, dport = rng.getrandbits(16), rng.getrandbits(16)
    if rng.random() < 0.5:
        src = bytes([10, 200, rng.getrandbits(8), rng.randint(1, 254)])
        dst = bytes([10, group + 1, rng.getrandbits(8), rng.randint(1, 254)])
        ip = ipv4_packet(src, dst, proto, l4_header(proto, sport, dport))
    else:
        proto = ICMPV6 if proto == ICMP else proto
        src = ipaddress.ip_address("2001:db8:c8::").packed[:14] + rng.randbytes(2)
        dst = ipaddress.ip_address(f"2001:db8:{group + 1}::").packed[:6] + rng.randbytes(10)
        ip = ipv6_packet(src, dst, proto, l4_header(proto, sport, dport),
                         flow_label=rng.getrandbits(20))
    return ip_frame(dst_mac, ip)


def test_ecmp_member_choice_and_live_changes(open_backend):
    """Packet mode, so no flow entry pins a member: the member is the bucket table's
    for the group's hash of the packet. Then one live change per group (a member
    removed, a drained one restored, a new slot, a weight changed) and again."""
    cfg = ecmp_config()
    core = open_backend("cython", cfg)
    groups = [GroupState(g) for g in cfg.groups]
    seed = cfg.node.seed
    rng = random.Random(0xEC)
    frames = []
    for g in range(len(groups)):
        for _ in range(300):
            port = rng.choice([0, 3])
            frames.append((port, g, random_flow_frame(rng, g, mac(port_mac(port)))))

    def compare(when: str):
        wrong = []
        for port, g, frame in frames:
            gs = groups[g]
            m = select_member(gs, parse(frame, port), seed, FragmentTable())
            want = None if m is None else cfg.nexthops[gs.member_nh[m]]
            out = one(core, port, frame)
            got = None if out is None else (out[0], out[1][:6])
            if got != (None if want is None else (want.port_index, want.mac)):
                wrong.append((cfg.groups[g].name, frame.hex(), want and want.name, got))
        assert not wrong, f"{when}: {len(wrong)} differ, first {wrong[:3]}"

    compare("as configured")
    spare = len(cfg.nexthops) - 1
    for gs in groups:
        members = [(nh, w, True) for nh, w in
                   zip(gs.member_nh, [m.weight for m in gs.group.members])]
        members[0] = (members[0][0], members[0][1], False)       # removed
        members = [(nh, w or 2, present) for nh, w, present in members]  # drained back
        members[-1] = (members[-1][0], members[-1][1] + 3, True)  # weight changed
        members.append((spare, 1, True))                          # a new slot
        gs.update(members)
        core.update_group(gs.group.index, members)
    compare("after live changes")


# ---- fatflow masking ------------------------------------------------------------------

FAT_V4 = [bytes([10, 1, a, b]) for a in (0, 1, 200) for b in (1, 77, 254)]
FAT_V6 = [ipaddress.ip_address(f"2001:db8:{a:x}::{b:x}").packed
          for a in (1, 0x100) for b in (1, 0xBEEF)]
FAT_PORTS = [22, 53, 80, 443, 1024, 40000]


def random_rules(rng: random.Random) -> tuple[list, list]:
    def plen():
        return None if rng.random() < 0.5 else rng.choice([0, 8, 16, 24, 31, 32, 48, 64,
                                                           120, 128])

    rules, seen = [], set()
    for _ in range(rng.randint(1, 6)):
        proto = rng.choice([TCP, UDP, SCTP, ICMP])
        port = 0 if proto == ICMP or rng.random() < 0.4 else rng.choice(FAT_PORTS)
        if (proto, port) in seen:
            continue
        seen.add((proto, port))
        rules.append(FatFlowRule(proto, port, rng.choice(["none", "src", "dst"]),
                                 plen(), plen()))
    exclude = rng.sample(["10.1.1.0/24", "10.1.0.77/32", "2001:db8:100::/48",
                          "2001:db8:1::1/128", "10.1.200.0/22"], rng.randint(0, 2))
    return rules, exclude


def fat_frame(rng: random.Random, dst_mac: bytes) -> bytes:
    proto = rng.choice([TCP, UDP, SCTP, ICMP])
    sport, dport = rng.choice(FAT_PORTS + [rng.getrandbits(16)]), rng.choice(FAT_PORTS)
    icmp_type = rng.choice([8, 0, 3, 11])
    if rng.random() < 0.6:
        src, dst = rng.choice(FAT_V4), rng.choice(FAT_V4)
        ip = ipv4_packet(src, dst, proto, l4_header(proto, sport, dport, icmp_type))
    else:
        src, dst = rng.choice(FAT_V6), rng.choice(FAT_V6)
        if proto == ICMP and rng.random() < 0.8:
            proto, icmp_type = ICMPV6, rng.choice([128, 129, 1, 135])
        ip = ipv6_packet(src, dst, proto, l4_header(proto, sport, dport, icmp_type))
    return ip_frame(dst_mac, ip)


@pytest.mark.parametrize("seed", range(4))
def test_fatflow_masking_random_rules(open_backend, seed):
    """One frame at a time into an empty flow table: the one entry it creates is keyed
    by the core's masked key, compared with FatFlows.mask of the reference flow key."""
    rng = random.Random(0xFA7 + seed)
    rules, exclude = random_rules(rng)
    cfg = make_config(ports=(("p0", "default"), ("up1", "default")),
                      nexthops={"nh1": ("up1", "02:00:00:00:01:01")}, groups={},
                      vrfs={"default": [("0.0.0.0/0", "nh1"), ("::/0", "nh1")]},
                      fat_flows={"p0": rules}, fat_flow_exclude={"p0": exclude})
    core = open_backend("cython", cfg)
    fat = FatFlows.of_port(cfg.ports[0])
    wrong = []
    for _ in range(250):
        frame = fat_frame(rng, mac(port_mac(0)))
        key, _ = fat.mask(flow_key(parse(frame), 0))
        want = (key.vrf, key.family, str(ipaddress.ip_address(key.src)),
                str(ipaddress.ip_address(key.dst)), key.proto, key.sport, key.dport)
        assert one(core, 0, frame) is not None
        [entry] = core.flows()
        got = tuple(entry[f] for f in ("vrf", "family", "src", "dst", "proto", "sport",
                                       "dport"))
        core.flow_flush()
        if got != want:
            wrong.append((frame.hex(), want, got))
    assert not wrong, f"rules {rules}, exclude {exclude}: {len(wrong)} differ: {wrong[:3]}"


# ---- mpls_hash: transit hash and pseudowire frame hash -------------------------------

NODE6, REMOTE6 = "2001:db8:ffff::1", "2001:db8:eeee::"
TRANSIT_HASHES = {   # LFIB label: (via, hash fields, symmetric)
    100: ("t1", DEFAULT_HASH_FIELDS, False),
    101: ("tg", DEFAULT_HASH_FIELDS + ("flow_label", "ingress_port"), True),
    102: ("tl3", ("src_ip", "dst_ip"), False),
}


def mpls_config(erld: int, guess: bool):
    macs = [port_mac(i) for i in range(3)]
    text = f"""
node: {{name: stages, seed: 0x5eed0001, tunnel_address: "{NODE6}"}}
ports:
  - {{name: p0, devargs: net_null0, mac: "{macs[0]}"}}
  - {{name: up1, devargs: net_null1, mac: "{macs[1]}"}}
  - {{name: ce1, devargs: net_null2, mac: "{macs[2]}", xconnect: pw1}}
vrfs:
  default:
    routes:
      - {{prefix: "::/0", via: t1}}
nexthops:
""" + "".join(f"""  t{i}: {{port: up1, mac: "02:00:00:03:00:{i:02x}", labels: [{20 + i}],
        tunnel: {{type: mpls-udp, remote: "{REMOTE6}{i}"}}}}
""" for i in (1, 2, 3)) + f"""
groups:
  tg:
    members: [{{nexthop: t1, weight: 1}}, {{nexthop: t2, weight: 1}}, {{nexthop: t3, weight: 2}}]
    hash: {{fields: [{", ".join(TRANSIT_HASHES[101][1])}], symmetric: true}}
  tl3:
    members: [{{nexthop: t2, weight: 1}}, {{nexthop: t3, weight: 1}}]
    hash: {{fields: [src_ip, dst_ip]}}
mpls:
  erld: {erld}
  payload_guess: {"true" if guess else "false"}
  lfib:
    - {{label: 100, action: swap, labels: [200], via: t1}}
    - {{label: 101, action: swap, labels: [201], via: tg}}
    - {{label: 102, action: swap, labels: [202], via: tl3}}
pseudowires:
  pw1: {{ac_port: ce1, label: 600, via: tg, fat: true}}
"""
    return load_text(text, f"stages-mpls-{erld}-{guess}.yaml")


def lse(label: int, s: int = 0, ttl: int = 64, tc: int = 0) -> bytes:
    return struct.pack("!I", label << 12 | tc << 9 | s << 8 | ttl)


def random_payload(rng: random.Random) -> bytes:
    """What may follow the bottom of stack: IPv4 (fragments too), IPv6, a control word,
    an Ethernet frame whose MAC starts with 4 or 6, junk, nothing."""
    kind = rng.choice(["v4", "v4", "v6", "v6", "cw", "mac4", "junk", "short"])
    proto = rng.choice([TCP, UDP, SCTP, ICMP, 47])
    l4 = l4_header(proto, rng.getrandbits(16), rng.getrandbits(16), rng.choice([8, 3]))
    if kind == "v4":
        return ipv4_packet(rng.randbytes(4), rng.randbytes(4), proto, l4,
                           frag=rng.choice([0, 0, 0x2000, 0x00B9]))
    if kind == "v6":
        return ipv6_packet(rng.randbytes(16), rng.randbytes(16),
                           ICMPV6 if proto == ICMP else proto, l4,
                           flow_label=rng.getrandbits(20))
    if kind == "cw":
        return bytes(4) + rng.randbytes(rng.randrange(14, 60))
    if kind == "mac4":
        return bytes([0x40 | rng.getrandbits(4)]) + rng.randbytes(rng.randrange(13, 60))
    if kind == "junk":
        return rng.randbytes(rng.randrange(1, 60))
    return rng.randbytes(rng.randrange(0, 3))


def random_stack(rng: random.Random, top: int) -> bytes:
    """The top label (swapped), then up to 15 more entries (16 is MAX_STACK), ELI/EL
    pairs among them at any depth, the last with S=1."""
    below: list[int] = []
    for _ in range(rng.randrange(0, 16)):
        if rng.random() < 0.2 and len(below) <= 13:
            below += [ELI, rng.randrange(16, 1 << 20)]
        elif len(below) <= 14:
            below.append(rng.choice([rng.randrange(16, 1 << 20), 0, 2, 300]))
    labels = [top] + below
    return b"".join(lse(x, s=int(i == len(labels) - 1), ttl=rng.randint(2, 255),
                        tc=rng.getrandbits(3))
                    for i, x in enumerate(labels))


def outer_hash_bits(frame: bytes) -> tuple[int, int]:
    """(IPv6 flow label, UDP source port - 49152) of an MPLS-over-UDP frame over IPv6."""
    assert frame[12:14] == b"\x86\xdd" and frame[20] == UDP, frame.hex()
    return (struct.unpack_from("!I", frame, 14)[0] & 0xFFFFF,
            struct.unpack_from("!H", frame, 54)[0] - 49152)


@pytest.mark.parametrize("erld,guess", [(8, True), (3, True), (16, True), (4, False)])
def test_mpls_transit_and_pseudowire_hash(open_backend, erld, guess):
    """A swap (via a tunnel next hop or a group of them) and a frame entering a
    pseudowire: the core's hash, read back from the outer header as 20 + 14 bits, is
    reference mpls_hash.transit_hash of the region as received / pw_flow_hash of the
    frame, with the next hop's (entropy) or the group's field mask."""
    cfg = mpls_config(erld, guess)
    core = open_backend("cython", cfg)
    seed = cfg.node.seed
    masks = {label: hashing.field_mask(fields, sym)
             for label, (_, fields, sym) in TRANSIT_HASHES.items()}
    rng = random.Random(0x3A5 + erld)
    wrong, seen = [], set()
    for i in range(600):
        if i % 4 == 3:                                    # a frame into pseudowire pw1
            port = 2
            tags = [(0x8100, rng.getrandbits(12))] * rng.choice([0, 0, 1, 2])
            payload = random_payload(rng)
            etype = {4: 0x0800, 6: 0x86DD}.get(payload[0] >> 4 if payload else 0, 0x88B5)
            frame = ethernet(rng.randbytes(6), etype, tags) + payload
            h = pw_flow_hash(frame, masks[101], seed, ingress_port=port)
            what = "pw"
        else:
            port, top = 0, rng.choice(list(TRANSIT_HASHES))
            frame = ethernet(mac(port_mac(0)), 0x8847) + random_stack(rng, top) \
                + random_payload(rng)
            region = frame[l2_payload(frame)[1]:]
            h = transit_hash(region, erld=erld, payload_guess=guess, mask=masks[top],
                             seed=seed, ingress_port=port)
            what = f"swap {top}"
        out = one(core, port, frame)
        if out is None:
            wrong.append((what, frame.hex(), "dropped"))
            continue
        want = (h & 0xFFFFF, h % 16384)
        seen.add(want)
        if outer_hash_bits(out[1]) != want:
            wrong.append((what, frame.hex(), want, outer_hash_bits(out[1])))
    assert len(seen) > 300                          # the hash did vary
    assert not wrong, f"{len(wrong)} differ, first {wrong[:3]}"


# ---- rewrite --------------------------------------------------------------------------

def test_rewrite_random_headers(open_backend):
    """Every packet to one next hop: the frame that leaves is reference rewrite() of
    the frame received (tags stripped, MACs, TTL - 1 with the RFC 1624 update of
    whatever checksum was there, options and padding untouched)."""
    cfg = make_config(ports=(("p0", "default"), ("up1", "default")),
                      nexthops={"nh1": ("up1", "02:00:00:00:01:01")}, groups={},
                      vrfs={"default": [("0.0.0.0/0", "nh1"), ("::/0", "nh1")]},
                      modes={"p0": "packet"})
    core = open_backend("cython", cfg)
    nh = cfg.nexthops[0]
    src_mac = cfg.ports[nh.port_index].mac
    rng = random.Random(0x4E3)
    wrong = []
    for _ in range(1500):
        tags = [(rng.choice([0x8100, 0x88A8]), rng.getrandbits(12))
                for _ in range(rng.choice([0, 0, 1, 2]))]
        proto = rng.choice([TCP, UDP, ICMP, 47])
        l4 = l4_header(proto, rng.getrandbits(16), rng.getrandbits(16)) \
            + rng.randbytes(rng.randrange(0, 30))
        if rng.random() < 0.65:
            src = bytes([rng.randint(1, 126)]) + rng.randbytes(3)
            dst = bytes([rng.randint(1, 126)]) + rng.randbytes(3)
            options = rng.choice([b"", b"\x01" * 4, b"\x94\x04\x00\x00",
                                  rng.randbytes(4 * rng.randint(1, 10))])
            good = rng.random() < 0.7
            ip = ipv4_packet(src, dst, proto, l4, ttl=rng.randint(2, 255),
                             tos=rng.getrandbits(8), ident=rng.getrandbits(16),
                             frag=rng.choice([0, 0x4000]), options=options,
                             checksum=None if good else rng.choice(
                                 [0, 0xFFFF, rng.getrandbits(16)]))
        else:
            src = b"\x20\x01" + rng.randbytes(14)
            dst = b"\x20\x01" + rng.randbytes(14)
            ip = ipv6_packet(src, dst, proto, l4, hlim=rng.randint(2, 255),
                             tc=rng.getrandbits(8), flow_label=rng.getrandbits(20))
        frame = ip_frame(mac(port_mac(0)), ip, tags,
                         pad=bytes(rng.choice([0, 0, 0, 4, 18])))
        p = parse(frame, 0)
        assert p.drop is None, (frame.hex(), p.drop)
        want = (nh.port_index, rewrite(frame, p, nh, src_mac))
        got = one(core, 0, frame)
        if got != want:
            wrong.append((frame.hex(), want[1].hex(), got and got[1].hex()))
    assert not wrong, f"{len(wrong)} differ, first (in, ref, core) {wrong[:3]}"
