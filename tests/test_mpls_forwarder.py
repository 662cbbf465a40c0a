"""MPLS in the forwarder (docs/mpls.md): push, swap, pop, pseudowires and overlays as
ports and counters see them, run against both backends through the `backend` fixture.

Oracles: scapy decodes every output (each label stack entry decoded on its own, label,
TC, S and TTL checked explicitly; the bytes after the bottom of stack are compared with
what scapy builds, never with scapy's guess of the payload), hashes are recomputed from
docs/hashing.md with the CRC32-C of dataplane.crc32c (never through the forwarder), and
the docs' own vectors (docs/hashing.md `v4-tcp-seed`, docs/mpls.md §12) pin the values.
"""
from __future__ import annotations

import shutil
import socket
import struct
import subprocess

import pytest
from scapy.contrib.mpls import MPLS
from scapy.layers.inet import GRE, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether
from scapy.packet import Raw
from scapy.utils import wrpcap

from dataplane import ecmp, hashing
from dataplane.config import load_text
from dataplane.crc32c import crc32c_raw
from dataplane.drops import DROP_REASONS
import test_forwarding as tf

SEED = 0x5EED0001
CONFIG = """\
node: {name: lsr1, seed: 0x5eed0001, tunnel_address: 192.0.2.1}
ports:
  - {name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {name: core, devargs: net_null1, mac: "02:00:00:00:00:02"}
  - {name: up1, devargs: net_null2, mac: "02:00:00:00:00:03"}
  - {name: up2, devargs: net_null3, mac: "02:00:00:00:00:04"}
  - {name: up3, devargs: net_null4, mac: "02:00:00:00:00:05"}
  - {name: up4, devargs: net_null5, mac: "02:00:00:00:00:06"}
  - {name: r0, devargs: net_null6, mac: "02:00:00:00:00:07", vrf: red}
  - {name: pk, devargs: net_null7, mac: "02:00:00:00:00:08", mode: packet}
  - {name: ce1, devargs: net_null8, mac: "02:00:00:00:00:09", xconnect: pw-fat}
  - {name: ce2, devargs: net_null9, mac: "02:00:00:00:00:0a", xconnect: pw-nocw}
  - {name: ce3, devargs: net_null10, mac: "02:00:00:00:00:0b", xconnect: pw-cw}
  - {name: ce4, devargs: net_null11, mac: "02:00:00:00:00:0c", xconnect: pw-ecmp}
  - {name: ce5, devargs: net_null12, mac: "02:00:00:00:00:0d", xconnect: pw-udp}
vrfs:
  default:
    routes:
      - {prefix: 10.0.0.0/24, via: lsp}
      - {prefix: 10.1.0.0/16, via: lsp}
      - {prefix: "2001:db8:1::/48", via: lsp}
      - {prefix: 10.2.0.0/16, via: plain}
      - {prefix: "2001:db8:2::/48", via: plain}
      - {prefix: 10.3.0.0/16, via: deep2}
      - {prefix: 10.4.0.0/16, via: deep4}
      - {prefix: 10.5.0.0/16, via: udp-gw}
      - {prefix: 10.6.0.0/16, via: gre-gw}
      - {prefix: 10.7.0.0/16, via: transit}
      - {prefix: 192.0.2.0/24, via: plain}
      - {prefix: "2001:db8:9::/48", via: fl-grp}
  red:
    routes:
      - {prefix: 172.16.0.0/12, via: red-nh}
  blue:
    routes:
      - {prefix: 10.0.0.0/24, via: udp-gw}
  green:
    routes:
      - {prefix: 10.0.0.0/24, via: gre-gw}
nexthops:
  lsp: {port: up1, mac: "02:00:00:00:01:01", labels: [16001], entropy: true}
  lsp-noel: {port: up1, mac: "02:00:00:00:01:02", labels: [16001]}
  plain: {port: up1, mac: "02:00:00:00:01:03"}
  deep2: {port: up2, mac: "02:00:00:00:02:01", labels: [16001, 16002, 16003], entropy: true,
          erld: 2}
  deep4: {port: up2, mac: "02:00:00:00:02:02", labels: [16001, 16002, 16003], entropy: true,
          erld: 4}
  m1: {port: up1, mac: "02:00:00:00:0a:01"}
  m2: {port: up2, mac: "02:00:00:00:0a:02"}
  m3: {port: up3, mac: "02:00:00:00:0a:03"}
  m4: {port: up4, mac: "02:00:00:00:0a:04"}
  udp-gw:
    port: up3
    mac: "02:00:00:00:03:01"
    labels: [20]
    tunnel: {type: mpls-udp, remote: 203.0.113.9}
  gre-gw:
    port: up3
    mac: "02:00:00:00:03:02"
    labels: [21]
    tunnel: {type: mpls-gre, remote: 203.0.113.10}
  red-nh: {port: r0, mac: "02:00:00:00:04:01"}
  e1: {port: up1, mac: "02:00:00:00:05:01", labels: [17001], entropy: true}
  e2: {port: up2, mac: "02:00:00:00:05:02", labels: [17002], entropy: true}
groups:
  transit:
    members: [{nexthop: m1}, {nexthop: m2}, {nexthop: m3}, {nexthop: m4}]
  fl-grp:
    members: [{nexthop: e1}, {nexthop: e2}]
    hash: {fields: [src_ip, dst_ip, proto, src_port, dst_port, flow_label]}
mpls:
  ttl_model: uniform
  lfib:
    - {label: 16001, action: swap, labels: [16101], via: transit}
    - {label: 16002, action: swap, labels: [16201, 16202], via: m1}
    - {label: 102, action: pop}
    - {label: 300, action: pop-lookup, vrf: red}
    - {label: 301, action: pop-lookup, vrf: blue}
    - {label: 302, action: pop-lookup, vrf: green}
    - {label: 500, action: pop-xconnect, pseudowire: pw-fat}
    - {label: 501, action: pop-xconnect, pseudowire: pw-nocw}
    - {label: 600, action: swap, labels: [601], via: udp-gw}
    - {label: 700, action: swap, labels: [701], via: gre-gw}
pseudowires:
  pw-fat: {ac_port: ce1, label: 510, via: lsp, fat: true, control_word: true}
  pw-nocw: {ac_port: ce2, label: 511, via: lsp-noel}
  pw-cw: {ac_port: ce3, label: 512, via: lsp-noel, control_word: true}
  pw-ecmp: {ac_port: ce4, label: 513, via: transit, fat: true}
  pw-udp: {ac_port: ce5, label: 514, via: udp-gw, fat: true}
"""
(P0, CORE, UP1, UP2, UP3, UP4, R0, PK, CE1, CE2, CE3, CE4, CE5) = range(13)
NODE4, REMOTE_UDP, REMOTE_GRE = "192.0.2.1", "203.0.113.9", "203.0.113.10"
MEMBERS = ["m1", "m2", "m3", "m4"]
TRANSIT_TABLE = ecmp.build([1, 1, 1, 1], 4096)       # the group's bucket table
SRC_MAC = "02:aa:00:00:00:01"


def config(**changes):
    """The configuration above, with `old=new` text replacements (e.g. the TTL model)."""
    text = CONFIG
    for old, new in changes.values():
        assert old in text, old
        text = text.replace(old, new)
    return load_text(text, "mpls.yaml")


CFG = config()
PIPE = config(ttl=("ttl_model: uniform", "ttl_model: pipe"))


# ---- independent oracles --------------------------------------------------------------

def flow_hash4(src, dst, proto, sport, dport, seed=SEED) -> int:
    """docs/hashing.md with the default fields (0x1f): src | dst | proto | 0 | sport |
    dport | ingress 0, CRC32-C register from 0xFFFFFFFF, no final XOR, fmix32(crc ^ seed)."""
    key = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBHHH", proto, 0,
                                                                      sport, dport, 0)
    return hashing.fmix32(crc32c_raw(key, 0xFFFFFFFF) ^ seed)


def label_word(label: int) -> bytes:
    return label.to_bytes(4, "big")


def entropy_label(h: int) -> int:
    return 16 + h % ((1 << 20) - 16)


def member_of(h: int) -> str:
    return MEMBERS[TRANSIT_TABLE[(h * 4096) >> 32]]


# ---- frames in, frames out -------------------------------------------------------------

def port_mac(cfg, port: int) -> str:
    return mac_text(cfg.ports[port].mac)


def mac_text(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def stack(*entries) -> bytes:
    """Label stack entries (label, tc, s, ttl), built by scapy one by one."""
    return b"".join(bytes(MPLS(label=lb, cos=tc, s=s, ttl=ttl)) for lb, tc, s, ttl in entries)


def labelled(entries, payload: bytes, port=CORE, etype=0x8847, tags=()) -> bytes:
    eth = Ether(src=SRC_MAC, dst=port_mac(CFG, port), type=etype)
    if tags:
        eth = Ether(src=SRC_MAC, dst=port_mac(CFG, port))
        for tag in tags:
            eth = eth / tag.copy()
        eth.getlayer(len(tags)).type = etype        # the last tag names the EtherType
    return bytes(eth) + stack(*entries) + bytes(payload)


def decode_stack(data: bytes, off: int):
    """[(label, tc, s, ttl)] from `off` to the bottom of stack, each entry decoded by
    scapy on its own, and the bytes after the bottom."""
    out = []
    while True:
        m = MPLS(data[off:off + 4])
        out.append((m.label, m.cos, m.s, m.ttl))
        off += 4
        if m.s:
            return out, data[off:]


def run(fwd, frames, port):
    return tf.run(fwd, frames, port)


def one(fwd, frame, port=CORE, egress=None, nexthop=None, etype=0x8847) -> bytes:
    """Run one frame that must leave on `egress` (to `nexthop`'s MAC, from the egress
    port's MAC, with EtherType `etype`); check rx/tx and that nothing dropped."""
    out, ctr = run(fwd, [frame], port)
    assert len(out) == 1, (out, ctr)
    (eport, data), = out
    cfg = fwd.cfg
    if egress is not None:
        assert eport == egress
    eth = Ether(data[:14])
    if nexthop is not None:
        nh = next(n for n in cfg.nexthops if n.name == nexthop)
        assert (eth.dst, eth.src) == (mac_text(nh.mac), port_mac(cfg, eport))
    assert eth.type == etype
    assert ctr[cfg.ports[port].name]["rx"] == 1 and ctr[cfg.ports[eport].name]["tx"] == 1
    assert sum(c[r] for c in ctr.values() for r in DROP_REASONS) == 0
    return data


nexthop_taken = tf.nexthop_of


def dropped(fwd, frame, port=CORE) -> str:
    """Run one frame that must drop; the one reason counted on the ingress port."""
    return tf.dropped(fwd, frame, port)


def v4_tcp(dst="10.0.0.2", src="10.0.0.1", ttl=64, tos=0, sport=1234, dport=80, ip_id=1):
    return IP(src=src, dst=dst, ttl=ttl, tos=tos, id=ip_id) / TCP(sport=sport, dport=dport) \
        / Raw(b"payload-0123456789")


def v4_udp(dst, src="100.64.0.1", ttl=64, tos=0, sport=4000, dport=53, ip_id=1):
    return IP(src=src, dst=dst, ttl=ttl, tos=tos, id=ip_id) / UDP(sport=sport, dport=dport) \
        / Raw(b"query-0123456789")


def with_ttl(pkt, ttl):
    """The same IP packet with another TTL / hop limit, checksum recomputed by scapy."""
    pkt = pkt.copy()
    if IP in pkt:
        pkt[IP].ttl = ttl
        pkt[IP].chksum = None
    else:
        pkt[IPv6].hlim = ttl
    return bytes(pkt)


def from_p0(pkt, port=P0, pad=b"") -> bytes:
    etype = 0x0800 if IP in pkt else 0x86DD
    return bytes(Ether(src=SRC_MAC, dst=port_mac(CFG, port), type=etype) / pkt) + pad


# ---- §7 ingress push ----------------------------------------------------------------------

def test_push_eli_el_doc_vector(backend):
    """docs/hashing.md `v4-tcp-seed`: 10.0.0.1:1234 -> 10.0.0.2:80 TCP, seed 0x5eed0001,
    hash 0xd9ab26aa, EL 786522. The flow entry stores it and the push writes it."""
    fwd = backend(CFG)
    assert flow_hash4("10.0.0.1", "10.0.0.2", 6, 1234, 80) == 0xD9AB26AA
    for port in (P0, P0, PK):                   # flow mode: miss, hit; packet mode
        pkt = v4_tcp(ttl=64, tos=0xB8)          # EF: precedence 5
        data = one(fwd, from_p0(pkt, port), port, UP1, "lsp")
        entries, rest = decode_stack(data, 14)
        assert entries == [(16001, 5, 0, 63), (7, 5, 0, 0), (786522, 5, 1, 0)]
        assert rest == with_ttl(pkt, 63)
    [flow] = fwd.flows()
    assert (flow["hash"], flow["in_port"], flow["vrf"], flow["packets"]) == \
        (0xD9AB26AA, P0, 0, 2)


def test_push_el_is_the_flow_entrys_hash(backend):
    """Via a group hashing the IPv6 flow label: in flow mode every packet of the flow
    carries the EL of the hash stored when the entry was made (and keeps its member), in
    packet mode each packet's own."""
    fwd = backend(CFG)
    src, dst = "2001:db8:aa::1", "2001:db8:9::1"

    def h_of(fl):
        return hashing.flow_hash(6, socket.inet_pton(socket.AF_INET6, src),
                                 socket.inet_pton(socket.AF_INET6, dst), 17, 5000, 53, 0, fl,
                                 0x3F, SEED)
    table = ecmp.build([1, 1], 4096)
    labels = [h_of(fl) for fl in (1, 2, 3)]
    for port, expected in ((P0, [labels[0]] * 3), (PK, labels)):
        for fl, h in zip((1, 2, 3), expected):
            pkt = IPv6(src=src, dst=dst, fl=fl, hlim=9) / UDP(sport=5000, dport=53)
            out, _ = run(fwd, [from_p0(pkt, port)], port)
            [(egress, data)] = out
            member = table[(h * 4096) >> 32]
            assert nexthop_taken(fwd.cfg, egress, data) == ["e1", "e2"][member]
            entries, rest = decode_stack(data, 14)
            assert entries == [(17001 + member, 0, 0, 8), (7, 0, 0, 0),
                               (entropy_label(h), 0, 1, 0)]
            assert rest == with_ttl(pkt, 8)


def test_push_ipv6_and_padding(backend):
    fwd = backend(CFG)
    pkt = IPv6(src="2001:db8:aa::1", dst="2001:db8:1::5", hlim=10, tc=0x60, fl=0x12345) \
        / UDP(sport=7, dport=9) / Raw(b"x" * 8)
    pad = b"\xee" * 6
    data = one(fwd, from_p0(pkt, PK, pad), PK, UP1, "lsp")
    h = hashing.flow_hash(6, socket.inet_pton(socket.AF_INET6, "2001:db8:aa::1"),
                          socket.inet_pton(socket.AF_INET6, "2001:db8:1::5"), 17, 7, 9, 0, 0,
                          0x1F, SEED)
    entries, rest = decode_stack(data, 14)
    assert entries == [(16001, 3, 0, 9), (7, 3, 0, 0), (entropy_label(h), 3, 1, 0)]
    assert rest == with_ttl(pkt, 9) + pad      # padding carried over Ethernet


def test_push_ttl_pipe(backend):
    fwd = backend(PIPE)
    pkt = v4_tcp(ttl=20, tos=0x20)              # precedence 1
    entries, rest = decode_stack(one(fwd, from_p0(pkt), P0, UP1, "lsp"), 14)
    assert [(e[0], e[1], e[3]) for e in entries] == [(16001, 1, 255), (7, 1, 0),
                                                     (786522, 1, 0)]
    assert rest == with_ttl(pkt, 19)            # the IP hop still counts
    assert dropped(fwd, from_p0(v4_tcp(ttl=1)), P0) == "ttl_expired"   # the IP path's


@pytest.mark.parametrize("dst,readable,labels", [
    ("10.4.0.9", True, [16001, 16002, 7, "EL", 16003]),   # erld 4: EL at entry 4
    ("10.3.0.9", False, [16001, 16002, 16003, 7, "EL"]),  # erld 2: default place, counted
], ids=["erld4-readable", "erld2-not-readable"])
def test_erld_placement_and_el_not_readable(backend, dst, readable, labels):
    fwd = backend(CFG)
    pkt = v4_udp(dst)
    h = flow_hash4("100.64.0.1", dst, 17, 4000, 53)
    data = one(fwd, from_p0(pkt), P0, UP2)
    entries, rest = decode_stack(data, 14)
    assert [e[0] for e in entries] == [entropy_label(h) if x == "EL" else x for x in labels]
    assert [e[2] for e in entries] == [0, 0, 0, 0, 1]
    assert [e[3] for e in entries] == [0 if x in (7, "EL") else 63 for x in labels]
    assert rest == with_ttl(pkt, 63)
    assert fwd.mpls_counters() == {"el_not_readable": 0 if readable else 1}
    one(fwd, from_p0(pkt), P0, UP2)             # once per packet
    assert fwd.mpls_counters() == {"el_not_readable": 0 if readable else 2}


# ---- §5 swap and §8 transit hashing ----------------------------------------------------------

def vector_payload():
    return bytes(v4_tcp(ttl=63))                # v4-tcp: 10.0.0.1:1234 -> 10.0.0.2:80


PW_VECTOR_FRAME = bytes(Ether(dst="48:2c:a0:00:00:01", src="00:00:0c:06:00:02")
                        / IP(src="192.168.1.10", dst="192.168.2.20", id=7)
                        / UDP(sport=1000, dport=53))


@pytest.mark.parametrize("name,entries,payload,h", [
    # docs/mpls.md §12: the received stack (its top label swapped here) and its hash
    ("labels-ipv4", [(16001, 3, 0, 10), (300, 1, 1, 63)], vector_payload(), 0xF5B1DDBC),
    ("el", [(16001, 0, 0, 63), (7, 0, 0, 0), (470747, 0, 0, 0), (300, 0, 1, 63)],
     vector_payload(), 0x0463ED5C),
    ("explicit-null", [(16001, 6, 0, 63), (0, 0, 1, 63)], vector_payload(), 0x512D1F8B),
    ("pw-no-cw", [(16001, 0, 0, 255), (500, 0, 1, 255)], PW_VECTOR_FRAME, 0xB465B318),
], ids=["labels-ipv4", "el", "explicit-null", "pw-no-cw"])
def test_swap_via_group_member_is_the_transit_hash(backend, name, entries, payload, h):
    fwd = backend(CFG)
    data = one(fwd, labelled(entries, payload), CORE)
    (label, tc, s, ttl), below = entries[0], entries[1:]
    out_entries, rest = decode_stack(data, 14)
    assert out_entries == [(16101, tc, s, ttl - 1)] + below   # deeper pairs stay
    assert rest == payload
    nh = next(n for n in fwd.cfg.nexthops if n.mac == data[:6])
    assert nh.name == member_of(h)
    assert fwd.group_counters(0)[MEMBERS.index(nh.name)] == 1 and sum(fwd.group_counters(0)) == 1


def test_swap_one_for_two_via_a_next_hop(backend):
    fwd = backend(CFG)
    payload = bytes(v4_tcp(ttl=64)) + b"\x00" * 4           # padding stays in the region
    data = one(fwd, labelled([(16002, 3, 0, 10), (300, 1, 1, 63)], payload), CORE, UP1, "m1")
    entries, rest = decode_stack(data, 14)
    assert entries == [(16201, 3, 0, 9), (16202, 3, 0, 9), (300, 1, 1, 63)]
    assert rest == payload
    for model in (PIPE,):                                   # a swap is the same under pipe
        data = one(backend(model), labelled([(16002, 3, 1, 10)], payload), CORE, UP1, "m1")
        assert decode_stack(data, 14) == ([(16201, 3, 0, 9), (16202, 3, 1, 9)], payload)


def test_swap_via_drained_group_is_no_route(backend):
    fwd = backend(CFG)
    fwd.update_group(0, [(nh.nexthop_index, 0, True) for nh in CFG.groups[0].members])
    assert dropped(fwd, labelled([(16001, 0, 1, 9)], vector_payload())) == "no_route"


# ---- §4 pop: PHP, pop-lookup, explicit null, ELI/EL -------------------------------------------

@pytest.mark.parametrize("cfg,label_ttl,ip_ttl,out_ttl", [
    (CFG, 10, 64, 9),           # uniform: the lower label TTL is copied back
    (CFG, 50, 20, 19),          # never raised
    (PIPE, 10, 64, 63),         # pipe: the IP header counts this node only
], ids=["uniform-copy", "uniform-keep", "pipe"])
def test_php_pop_to_ip(backend, cfg, label_ttl, ip_ttl, out_ttl):
    fwd = backend(cfg)
    pkt = v4_udp("10.2.0.5", ttl=ip_ttl, tos=0xA0)
    data = one(fwd, labelled([(102, 5, 1, label_ttl)], pkt), CORE, UP1, "plain", 0x0800)
    assert data[14:] == with_ttl(pkt, out_ttl)          # no second decrement, DSCP kept
    pkt6 = IPv6(src="2001:db8:aa::1", dst="2001:db8:2::1", hlim=ip_ttl) / UDP() / Raw(b"v6")
    data = one(fwd, labelled([(102, 5, 1, label_ttl)], pkt6), CORE, UP1, "plain", 0x86DD)
    assert data[14:] == with_ttl(pkt6, out_ttl)


def test_popped_packet_leaving_with_ttl_1_is_not_checked_again(backend):
    """W = 1 is a valid TTL to leave with: the IP path's TTL check does not apply."""
    fwd = backend(CFG)
    pkt = v4_udp("10.2.0.5", ttl=64)
    assert one(fwd, labelled([(102, 0, 1, 2)], pkt), CORE, UP1, "plain", 0x0800)[14:] == \
        with_ttl(pkt, 1)
    pkt = v4_udp("10.1.0.5", ttl=2)                 # and pushed again with TTL 1
    entries, rest = decode_stack(one(fwd, labelled([(102, 0, 1, 64)], pkt), CORE, UP1,
                                     "lsp"), 14)
    assert entries[0] == (16001, 0, 0, 1) and rest == with_ttl(pkt, 1)


def test_labelled_frame_with_vlan_tags(backend):
    fwd = backend(CFG)
    pkt = v4_udp("10.2.0.5", ttl=64)
    for tags in ((Dot1Q(vlan=5),), (Dot1Q(vlan=5), Dot1Q(vlan=6))):
        frame = labelled([(102, 0, 1, 10)], pkt, tags=tags)
        assert Ether(frame)[Dot1Q].vlan == 5
        data = one(fwd, frame, CORE, UP1, "plain", 0x0800)   # leaves untagged
        assert data[14:] == with_ttl(pkt, 9)
    frame = labelled([(102, 0, 1, 10)], pkt, tags=(Dot1Q(), Dot1Q(), Dot1Q()))
    assert dropped(fwd, frame) == "unsupported"


def test_popped_packet_pushed_again_with_the_flow_hash(backend):
    """pop, then a route via a labelled next hop: the push writes TTL = W and the flow
    entry's hash as EL (the entry keyed in the routing VRF, counted with the frame as
    received)."""
    fwd = backend(CFG)
    pkt = v4_tcp(ttl=64, tos=0x40)
    frame = labelled([(102, 0, 1, 10)], pkt)
    entries, rest = decode_stack(one(fwd, frame, CORE, UP1, "lsp"), 14)
    assert entries == [(16001, 2, 0, 9), (7, 2, 0, 0), (786522, 2, 1, 0)]
    assert rest == with_ttl(pkt, 9)
    [flow] = fwd.flows()
    assert (flow["vrf"], flow["in_port"], flow["hash"], flow["packets"], flow["bytes"]) == \
        (0, CORE, 0xD9AB26AA, 1, len(frame))


def test_pop_lookup_into_another_vrf(backend):
    fwd = backend(CFG)
    pkt = v4_udp("172.16.1.1", ttl=64)
    data = one(fwd, labelled([(300, 0, 1, 20)], pkt), CORE, R0, "red-nh", 0x0800)
    assert data[14:] == with_ttl(pkt, 19)
    # the same packet popped by a plain pop is looked up in the port's VRF: no route
    assert dropped(fwd, labelled([(102, 0, 1, 20)], pkt)) == "no_route"


@pytest.mark.parametrize("entries,out_ttl", [
    ([(7, 0, 0, 0), (123456, 0, 0, 0), (300, 0, 1, 20)], 19),        # on top
    ([(102, 0, 0, 20), (7, 0, 0, 0), (123456, 0, 0, 0), (300, 0, 1, 60)], 19),  # below a pop
    ([(300, 0, 0, 30), (7, 0, 0, 0), (123456, 0, 1, 0)], 29),        # below the VPN label
], ids=["top", "below-pop", "below-vpn"])
def test_eli_el_popped(backend, entries, out_ttl):
    fwd = backend(CFG)
    pkt = v4_udp("172.16.1.1", ttl=64)
    data = one(fwd, labelled(entries, pkt), CORE, R0, "red-nh", 0x0800)
    assert data[14:] == with_ttl(pkt, out_ttl)


def test_explicit_null(backend):
    fwd = backend(CFG)
    pkt = v4_udp("10.2.0.5", ttl=64)
    assert one(fwd, labelled([(0, 0, 1, 9)], pkt), CORE, UP1, "plain", 0x0800)[14:] == \
        with_ttl(pkt, 8)
    pkt6 = IPv6(src="2001:db8:aa::1", dst="2001:db8:2::1", hlim=64) / UDP()
    assert one(fwd, labelled([(2, 0, 1, 9)], pkt6), CORE, UP1, "plain", 0x86DD)[14:] == \
        with_ttl(pkt6, 8)


def test_popped_packet_to_the_tunnel_address_is_routed_not_decapsulated(backend):
    fwd = backend(CFG)
    inner = IP(src="203.0.113.9", dst=NODE4, ttl=64) / UDP(sport=50000, dport=6635) \
        / Raw(stack((300, 0, 1, 64)) + bytes(v4_udp("172.16.1.1")))
    data = one(fwd, labelled([(102, 0, 1, 30)], inner), CORE, UP1, "plain", 0x0800)
    assert data[14:] == with_ttl(inner, 29)


# ---- §3 drops ----------------------------------------------------------------------------------

DROPS = {
    "no_lfib_entry": labelled([(999, 0, 1, 9)], v4_udp("10.2.0.5")),
    "mpls_ttl_expired": labelled([(16001, 0, 1, 1)], v4_udp("10.2.0.5")),
    "popped-ip-ttl": labelled([(102, 0, 1, 9)], v4_udp("10.2.0.5", ttl=1)),
    "egress-label-ttl": labelled([(300, 0, 1, 1)], v4_udp("172.16.1.1")),
    "label-1-on-top": labelled([(1, 0, 1, 9)], v4_udp("10.2.0.5")),
    "label-14-on-top": labelled([(14, 0, 1, 9)], v4_udp("10.2.0.5")),
    "multicast-mpls": labelled([(102, 0, 1, 9)], v4_udp("10.2.0.5"), etype=0x8848),
    "17-entries": labelled([(102, 0, int(i == 16), 9) for i in range(17)], v4_udp("10.2.0.5")),
    "eli-bottom": labelled([(16001, 0, 0, 9), (7, 0, 1, 0)], v4_udp("10.2.0.5")),
    "not-ip-below": labelled([(102, 0, 1, 9)], b"\x50" + bytes(40)),
    "half-entry": labelled([], b"\x00\x06"),
    "no-bottom": labelled([(102, 0, 0, 9)], b""),
    "short-ip": labelled([(102, 0, 1, 9)], bytes(v4_udp("10.2.0.5"))[:19]),
    "ip-total-length": labelled([(102, 0, 1, 9)], bytes(IP(dst="10.2.0.5", len=200) / UDP())),
    "martian": labelled([(102, 0, 1, 9)], v4_udp("10.2.0.5", src="127.0.0.1")),
    "multicast-ip": labelled([(102, 0, 1, 9)], v4_udp("224.0.0.5")),
    "vpn-then-label": labelled([(300, 0, 0, 9), (16001, 0, 1, 9)], v4_udp("172.16.1.1")),
}
EXPECTED = {
    "no_lfib_entry": "no_lfib_entry", "mpls_ttl_expired": "mpls_ttl_expired",
    "popped-ip-ttl": "mpls_ttl_expired", "egress-label-ttl": "mpls_ttl_expired",
    "label-1-on-top": "unsupported", "label-14-on-top": "unsupported",
    "multicast-mpls": "unsupported", "17-entries": "unsupported",
    "eli-bottom": "parse_error", "not-ip-below": "parse_error", "half-entry": "truncated",
    "no-bottom": "truncated", "short-ip": "truncated", "ip-total-length": "truncated",
    "martian": "martian", "multicast-ip": "unsupported", "vpn-then-label": "unsupported",
}


@pytest.mark.parametrize("name", DROPS)
def test_drop_reasons(backend, name):
    assert dropped(backend(CFG), DROPS[name]) == EXPECTED[name]


# ---- §9 pseudowires ---------------------------------------------------------------------------

def inner_frame(dst_mac="00:1b:21:00:00:01", ip_id=7, sport=1000, tags=()):
    pkt = Ether(dst=dst_mac, src="00:00:0c:06:00:02")
    for tag in tags:
        pkt = pkt / tag
    return bytes(pkt / IP(src="192.168.1.10", dst="192.168.2.20", id=ip_id)
                 / UDP(sport=sport, dport=53) / Raw(b"q" * 30))


def pw_hash_ip(sport=1000) -> int:
    return flow_hash4("192.168.1.10", "192.168.2.20", 17, sport, 53)


@pytest.mark.parametrize("tags", [(), (Dot1Q(vlan=7),)], ids=["untagged", "vlan"])
def test_pw_encap_fat_cw_entropy(backend, tags):
    fwd = backend(CFG)
    frame = inner_frame(tags=tags)
    el = entropy_label(pw_hash_ip())
    data = one(fwd, frame, CE1, UP1, "lsp")
    entries, rest = decode_stack(data, 14)
    assert entries == [(16001, 0, 0, 255), (7, 0, 0, 0), (el, 0, 0, 0), (510, 0, 0, 255),
                       (el, 0, 1, 1)]               # EL = FAT = the inner flow's hash
    assert rest == bytes(4) + frame                 # control word, then the frame as is


def test_pw_encap_non_ip_frame_hashes_the_macs(backend):
    fwd = backend(CFG)
    frame = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="00:00:0c:06:00:02") / ARP())
    key = frame[:14] + b"\x00\x00"
    el = entropy_label(hashing.fmix32(crc32c_raw(key, 0xFFFFFFFF) ^ SEED))
    entries, rest = decode_stack(one(fwd, frame, CE1, UP1, "lsp"), 14)
    assert entries[2][0] == el and entries[4] == (el, 0, 1, 1) and rest == bytes(4) + frame


def test_pw_encap_plain_and_cw(backend):
    fwd = backend(CFG)
    frame = inner_frame()
    data = one(fwd, frame, CE2, UP1, "lsp-noel")
    assert decode_stack(data, 14) == ([(16001, 0, 0, 255), (511, 0, 1, 255)], frame)
    data = one(fwd, frame, CE3, UP1, "lsp-noel")
    assert decode_stack(data, 14) == ([(16001, 0, 0, 255), (512, 0, 1, 255)],
                                      bytes(4) + frame)
    assert dropped(fwd, frame[:13], CE2) == "truncated"


def test_pw_via_group_member_is_the_inner_flow_hash(backend):
    fwd = backend(CFG)
    seen = set()
    for sport in range(1000, 1016):
        frame = inner_frame(sport=sport)
        h = pw_hash_ip(sport)
        out, _ = run(fwd, [frame], CE4)
        [(egress, data)] = out
        assert nexthop_taken(fwd.cfg, egress, data) == member_of(h)
        assert decode_stack(data, 14) == ([(513, 0, 0, 255), (entropy_label(h), 0, 1, 1)],
                                          frame)
        seen.add(member_of(h))
    assert sum(fwd.group_counters(0)) == 16 and len(seen) > 1


def test_pw_over_mpls_over_udp(backend):
    fwd = backend(CFG)
    frame = inner_frame()
    h = pw_hash_ip()
    data = one(fwd, frame, CE5, UP3, "udp-gw", 0x0800)
    check_outer4(data, REMOTE_UDP, 17, 0)
    assert UDP(data[34:42]).sport == 49152 + h % 16384
    assert decode_stack(data, 42) == ([(20, 0, 0, 255), (514, 0, 0, 255),
                                       (entropy_label(h), 0, 1, 1)], frame)


@pytest.mark.parametrize("entries,payload_cw,egress", [
    ([(500, 0, 0, 9), (777777, 0, 1, 1)], True, CE1),        # FAT label and CW removed
    ([(500, 0, 1, 9)], True, CE1),                          # no FAT label: fine too
    ([(102, 0, 0, 40), (501, 0, 1, 9)], False, CE2),        # under a PHP label
    ([(501, 0, 0, 9), (7, 0, 0, 0), (4242, 0, 0, 0), (99999, 0, 1, 1)], False, CE2),
], ids=["fat-cw", "cw", "php", "eli-fat"])
def test_pw_decap_to_the_ac_port(backend, entries, payload_cw, egress):
    fwd = backend(CFG)
    frame = inner_frame(dst_mac="48:2c:a0:00:00:01")
    out, ctr = run(fwd, [labelled(entries, (bytes(4) if payload_cw else b"") + frame)], CORE)
    assert out == [(egress, frame)]                 # no MAC rewrite, nothing else
    assert ctr[CFG.ports[egress].name]["tx"] == 1 and ctr["core"]["rx"] == 1


def test_pw_decap_drops(backend):
    fwd = backend(CFG)
    frame = inner_frame()
    assert dropped(fwd, labelled([(500, 0, 1, 9)], b"\x10\x00\x00\x00" + frame)) == \
        "unsupported"                               # PW associated channel
    assert dropped(fwd, labelled([(500, 0, 1, 9)], b"\x40\x00\x00\x00" + frame)) == \
        "parse_error"
    assert dropped(fwd, labelled([(500, 0, 1, 9)], bytes(4) + frame[:13])) == "truncated"
    assert dropped(fwd, labelled([(501, 0, 1, 1)], frame)) == "mpls_ttl_expired"


def test_mac_starting_with_4_at_a_transit_node(backend):
    """docs/mpls.md §8: 64 frames of one MAC pair, one inner UDP flow whose IP id varies,
    from a PE (pw-nocw / pw-cw) to a transit node that swaps 16001 through a 4-member
    group with payload_guess. Without the control word the inner frame is misread as
    IPv4 and the flow is sprayed over several members; with it, one member."""
    pe, transit = backend(CFG), backend(CFG)
    frames = [inner_frame(dst_mac="48:2c:a0:00:00:01", ip_id=1000 + 37 * i) for i in range(64)]

    def members(ce):
        out, _ = run(pe, frames, ce)
        assert len(out) == 64
        before = transit.group_counters(0)
        out, _ = run(transit, [Ether(dst=port_mac(CFG, CORE)).build()[:6] + f[6:]
                               for _, f in out], CORE)
        assert len(out) == 64
        counts = [a - b for a, b in zip(transit.group_counters(0), before)]
        assert sum(counts) == 64
        for egress, data in out:                    # swapped, the rest carried as is
            assert decode_stack(data, 14)[0][0] == (16101, 0, 0, 254)
        return {nexthop_taken(CFG, e, d) for e, d in out}, counts

    spread, counts = members(CE2)
    assert len(spread) > 1, counts
    one_member, counts = members(CE3)
    assert len(one_member) == 1 and sorted(counts)[-1] == 64
    cw_hash = hashing.fmix32(crc32c_raw(label_word(16001) + label_word(512), 0xFFFFFFFF)
                             ^ SEED)
    assert one_member == {member_of(cw_hash)}


def misread_hash(frame: bytes, pw_label: int) -> int:
    """docs/mpls.md §8 (vector `pw-no-cw`): the transit key of [16001][pw_label] + a frame
    whose destination MAC starts with 4, read as IPv4 with IHL 8: "src" = bytes 12-15,
    "dst" = 16-19, "proto" = byte 9, "ports" = bytes 32-35 (the fragment field, bytes 6-7
    of the source MAC, is 0)."""
    assert frame[0] == 0x48 and frame[6:8] == b"\x00\x00"
    key = label_word(16001) + label_word(pw_label) + frame[12:20] + bytes([frame[9], 0]) \
        + frame[32:36] + b"\x00\x00"
    return hashing.fmix32(crc32c_raw(key, 0xFFFFFFFF) ^ SEED)


def test_mac_starting_with_4_member_is_the_misread_hash(backend):
    pe, transit = backend(CFG), backend(CFG)
    frames = [inner_frame(dst_mac="48:2c:a0:00:00:01", ip_id=i) for i in range(8)]
    out, _ = run(pe, frames, CE2)
    out, _ = run(transit, [f for _, f in out], CORE)
    assert [nexthop_taken(CFG, e, d) for e, d in out] == \
        [member_of(misread_hash(f, 511)) for f in frames]


# ---- §10 overlays ------------------------------------------------------------------------------

def check_outer4(data: bytes, remote: str, proto: int, tc: int) -> IP:
    outer = IP(data[14:])
    assert (outer.src, outer.dst, outer.proto, outer.ttl) == (NODE4, remote, proto, 64)
    assert (outer.id, outer.flags, outer.tos) == (0, "DF", tc << 5)
    assert outer.len == len(data) - 14              # exact: no padding carried
    check = IP(data[14:34])
    check.chksum = None
    assert IP(bytes(check)).chksum == outer.chksum
    return outer


def test_mpls_over_udp_encap(backend):
    fwd = backend(CFG)
    pkt = v4_udp("10.5.0.9", ttl=64, tos=0x60, sport=3333, dport=4444)
    h = flow_hash4("100.64.0.1", "10.5.0.9", 17, 3333, 4444)
    for port in (P0, PK):
        data = one(fwd, from_p0(pkt, port, pad=bytes(12)), port, UP3, "udp-gw", 0x0800)
        check_outer4(data, REMOTE_UDP, 17, 3)
        udp = UDP(data[34:42])
        assert (udp.sport, udp.dport, udp.chksum) == (49152 + h % 16384, 6635, 0)
        assert udp.len == len(data) - 34
        assert decode_stack(data, 42) == ([(20, 3, 1, 63)], with_ttl(pkt, 63))
        decoded = Ether(data)                       # scapy: UDP 6635 carries MPLS
        assert decoded[UDP].dport == 6635 and MPLS in decoded
        assert decoded[MPLS].label == 20 and decoded[MPLS].s == 1


def test_mpls_over_udp_doc_vector_after_pop_lookup(backend):
    """docs/hashing.md v4-tcp-seed: UDP source port 59050 for 10.0.0.1:1234 ->
    10.0.0.2:80, popped by the VPN label 301 into VRF blue, routed into the tunnel."""
    fwd = backend(CFG)
    pkt = v4_tcp(ttl=64)
    data = one(fwd, labelled([(301, 0, 1, 30)], pkt), CORE, UP3, "udp-gw", 0x0800)
    assert UDP(data[34:42]).sport == 59050
    assert decode_stack(data, 42) == ([(20, 0, 1, 29)], with_ttl(pkt, 29))
    assert fwd.flows()[0]["vrf"] == 2


def test_mpls_over_gre_encap(backend):
    fwd = backend(CFG)
    pkt = v4_udp("10.6.0.9", ttl=64, tos=0xE0)
    data = one(fwd, from_p0(pkt, pad=bytes(10)), P0, UP3, "gre-gw", 0x0800)
    check_outer4(data, REMOTE_GRE, 47, 7)
    assert data[34:38] == bytes.fromhex("00008847")
    assert GRE(data[34:38]).proto == 0x8847
    assert decode_stack(data, 38) == ([(21, 7, 1, 63)], with_ttl(pkt, 63))
    pkt = v4_tcp(ttl=64)                            # pop-lookup into green: the same tunnel
    data = one(fwd, labelled([(302, 0, 1, 64)], pkt), CORE, UP3, "gre-gw", 0x0800)
    assert decode_stack(data, 38) == ([(21, 0, 1, 63)], with_ttl(pkt, 63))


def test_swap_into_a_tunnel_uses_the_transit_hash(backend):
    fwd = backend(CFG)
    pkt = v4_tcp(ttl=64)
    payload = bytes(pkt)
    key = label_word(600) + socket.inet_aton("10.0.0.1") + socket.inet_aton("10.0.0.2") \
        + struct.pack("!BBHHH", 6, 0, 1234, 80, 0)
    h = hashing.fmix32(crc32c_raw(key, 0xFFFFFFFF) ^ SEED)
    data = one(fwd, labelled([(600, 2, 1, 30)], payload), CORE, UP3, "udp-gw", 0x0800)
    check_outer4(data, REMOTE_UDP, 17, 2)
    assert UDP(data[34:42]).sport == 49152 + h % 16384
    assert decode_stack(data, 42) == ([(601, 2, 1, 29)], payload)
    data = one(fwd, labelled([(700, 1, 1, 30)], payload), CORE, UP3, "gre-gw", 0x0800)
    assert decode_stack(data, 38) == ([(701, 1, 1, 29)], payload)


def overlay(inner_region: bytes, kind="udp", pad=b"", port=P0, ttl=64) -> bytes:
    if kind == "udp":
        l4 = UDP(sport=50000, dport=6635)
    elif kind == "gre":
        l4 = GRE(proto=0x8847)
    else:
        l4 = UDP(sport=50000, dport=4789)
    return bytes(Ether(src=SRC_MAC, dst=port_mac(CFG, port))
                 / IP(src=REMOTE_UDP, dst=NODE4, ttl=ttl) / l4 / Raw(inner_region)) + pad


@pytest.mark.parametrize("kind", ["udp", "gre"])
def test_decap_at_the_tunnel_address_pop_lookup(backend, kind):
    fwd = backend(CFG)
    pkt = v4_udp("172.16.1.1", ttl=64)
    frame = overlay(stack((300, 0, 1, 64)) + bytes(pkt), kind, pad=bytes(8), ttl=1)
    data = one(fwd, frame, P0, R0, "red-nh", 0x0800)
    assert data[14:] == with_ttl(pkt, 63)           # outer TTL 1: not checked at decap
    [flow] = fwd.flows()
    assert (flow["vrf"], flow["in_port"], flow["bytes"]) == (1, P0, len(frame))


def test_decap_drops(backend):
    fwd = backend(CFG)
    region = stack((300, 0, 1, 64)) + bytes(v4_udp("172.16.1.1"))
    assert dropped(fwd, overlay(region, "vxlan"), P0) == "unsupported"
    assert dropped(fwd, overlay(stack((999, 0, 1, 64)) + bytes(v4_udp("172.16.1.1"))),
                   P0) == "no_lfib_entry"
    frag = bytes(Ether(dst=port_mac(CFG, P0)) / IP(src=REMOTE_UDP, dst=NODE4, flags="MF")
                 / UDP(sport=1, dport=6635) / Raw(region))
    assert dropped(fwd, frag, P0) == "unsupported"


# ---- flow mode for popped packets --------------------------------------------------------------

def test_flow_mode_keeps_flows_for_popped_packets(backend):
    fwd = backend(CFG)
    frames = [labelled([(300, 0, 1, 20)], v4_udp("172.16.1.1", ip_id=i)) for i in range(3)]
    out, _ = run(fwd, frames, CORE)
    assert [e for e, _ in out] == [R0] * 3
    [flow] = fwd.flows()
    assert (flow["vrf"], flow["src"], flow["dst"], flow["proto"], flow["sport"],
            flow["dport"], flow["in_port"], flow["packets"], flow["bytes"]) == \
        (1, "100.64.0.1", "172.16.1.1", 17, 4000, 53, CORE, 3, sum(map(len, frames)))
    assert flow["hash"] == flow_hash4("100.64.0.1", "172.16.1.1", 17, 4000, 53)
    assert fwd.flow_counters()["flow_created"] == 1
    # a packet-mode port keeps none
    run(fwd, [labelled([(300, 0, 1, 20)], v4_udp("172.16.1.1"), port=PK)], PK)
    assert len(fwd.flows()) == 1


def test_fat_flow_rules_of_the_ingress_port_apply_to_popped_packets(backend):
    cfg = config(fat=('  - {name: core, devargs: net_null1, mac: "02:00:00:00:00:02"}',
                      '  - {name: core, devargs: net_null1, mac: "02:00:00:00:00:02",\n'
                      '     fat_flows: [{proto: udp, port: 53}]}'))
    fwd = backend(cfg)
    frames = [labelled([(300, 0, 1, 20)], v4_udp("172.16.1.1", sport=4000 + i))
              for i in range(4)]
    out, _ = run(fwd, frames, CORE)
    assert len(out) == 4
    [flow] = fwd.flows()
    assert (flow["vrf"], flow["sport"], flow["dport"], flow["packets"]) == (1, 0, 53, 4)


# ---- tshark: a second, independent dissector of every encapsulation ----------------------

TSHARK = shutil.which("tshark")


def tshark_rows(tmp_path, frames, *fields):
    """One row per frame: every occurrence of each field, as a list."""
    path = tmp_path / "out.pcap"
    wrpcap(str(path), [Raw(f) for f in frames], linktype=1)
    cmd = [TSHARK, "-r", str(path), "-T", "fields", "-E", "occurrence=a",
           "-E", "aggregator=,"] + [a for f in fields for a in ("-e", f)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout
    return [[v.split(",") if v else [] for v in line.split("\t")] for line in out.splitlines()]


@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (make deps installs it)")
def test_tshark_dissects_our_encapsulations(backend, tmp_path):
    """Push with ELI/EL, PW with FAT and control word, MPLS-over-UDP and MPLS-over-GRE,
    as the forwarder wrote them, read back by Wireshark's dissectors."""
    fwd = backend(CFG)
    pkt = v4_tcp(dst="10.1.0.9", ttl=64)
    push = one(fwd, from_p0(pkt), P0, UP1, "lsp")
    pw = one(fwd, inner_frame(), CE1, UP1, "lsp")
    udp = one(fwd, from_p0(v4_udp("10.5.0.9")), P0, UP3, "udp-gw", 0x0800)
    gre = one(fwd, from_p0(v4_udp("10.6.0.9")), P0, UP3, "gre-gw", 0x0800)
    rows = tshark_rows(tmp_path, [push, pw, udp, gre], "frame.protocols", "mpls.label",
                       "mpls.bottom", "mpls.ttl", "udp.dstport", "gre.proto", "ip.dst")
    # push: transport, ELI 7 (tshark names it), EL, bottom of stack, then the IP packet
    protos, labels, bottoms, ttls = rows[0][0][0].split(":"), *rows[0][1:4]
    assert protos[:3] == ["eth", "ethertype", "mpls"] and "ip" in protos
    assert labels[:2] == ["16001", "7"] and len(labels) == 3
    assert bottoms == ["0", "0", "1"] and ttls == ["63", "0", "0"]
    assert rows[0][6] == ["10.1.0.9"]
    # PW: transport, ELI, EL, PW label, FAT (bottom, TTL 1), then the control word
    labels, bottoms, ttls = rows[1][1:4]
    assert labels[0] == "16001" and labels[1] == "7" and len(labels) == 5
    assert bottoms[-1] == "1" and ttls[-1] == "1"
    # MPLS-over-UDP: destination port 6635, an MPLS stack inside
    protos = rows[2][0][0].split(":")
    assert "udp" in protos and "mpls" in protos[protos.index("udp"):]
    assert rows[2][4] == ["6635", "53"] and rows[2][1] == ["20"]     # outer, inner UDP
    # MPLS-over-GRE: protocol 0x8847, an MPLS stack inside
    protos = rows[3][0][0].split(":")
    assert "gre" in protos and "mpls" in protos[protos.index("gre"):]
    assert rows[3][5] == ["0x8847"] and rows[3][1] == ["21"]
