"""Configuration loading and validation (SPEC §10, §12), and the CRC32-C reference.

Expected values are written out by hand (or come from RFC 3720 for CRC32-C), never
computed with the code under test.
"""
import copy
import ipaddress
import random
import re

import pytest
import yaml

from dataplane import drivers
from dataplane.config import ConfigError, load, load_text
from dataplane.config import validate
from dataplane.config.model import (DEFAULT_HASH_FIELDS, HashSpec, LfibRule, Mpls, Pseudowire,
                                    Tunnel)
from dataplane.crc32c import crc32c, crc32c_raw

FULL = """\
node:
  name: leaf1
  seed: 0x5eed0001
  tunnel_address: 192.0.2.1

eal:
  lcores: "0,2-3"
  memory_mb: 1024
  no_huge: false
  mbufs: 16384
  mlock: false
  extra: ["--no-pci", "--file-prefix=dp1"]

flow_table:
  entries: 65536
  idle_timeout: 30
  tcp_close_timeout: 2.5
  on_full: drop

ports:
  - name: p0
    devargs: "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
    mac: "02:00:00:00:00:01"
    vrf: red
    mode: packet
    fat_flows:
      - {proto: tcp, port: 22, ignore: dst}
      - {proto: udp, port: 0, src_prefix_len: 24}
    fat_flow_exclude: ["10.0.0.1/32"]
    mirror: {to: mon0, direction: both, sample: 1}
  - name: ce1
    devargs: "net_tap0,iface=ce1"
    mac: "02:00:00:00:00:02"
    xconnect: pw1
  - name: up1
    devargs: "0000:01:00.0"
    mac: 12:34:56:00:00:03          # unquoted: must not become a base-60 integer
  - name: up2
    devargs: "net_null0,size=64,copy=1"
    mac: "02:00:00:00:00:04"
  - name: mon0
    devargs: net_ring0
    mac: "02:00:00:00:00:05"

vrfs:
  default:
    routes:
      - {prefix: 10.0.0.0/8, via: spines}
      - {prefix: "2001:db8::/32", via: nh1}
  red:
    routes:
      - {prefix: 0.0.0.0/0, via: gw}
      - {prefix: "::/0", via: pair}
  blue: {}

nexthops:
  nh1: {port: up1, mac: "02:00:00:00:01:01", labels: [16001], entropy: true, erld: 4}
  nh2: {port: up2, mac: "02:00:00:00:01:02", labels: [16002, 16]}
  nh3: {port: up1, mac: "02:00:00:00:01:03"}
  gw:
    tunnel: {type: mpls-udp, remote: 203.0.113.9}
    port: up2
    mac: "02:00:00:00:01:09"
    labels: [20]

groups:
  spines:
    members:
      - {nexthop: nh1, weight: 1}
      - {nexthop: nh2, weight: 2}
      - {nexthop: nh3, weight: 0}   # drain
    buckets: 4099                   # a prime
    hash:
      fields: [src_ip, dst_ip, flow_label]
      symmetric: true
      fragments: l3
  pair:
    members: [{nexthop: gw, weight: 65535}, {nexthop: nh2}]

mpls:
  erld: 8
  payload_guess: true
  ttl_model: pipe
  lfib:
    - {label: 100, action: swap, labels: [200], via: spines}
    - {label: 101, action: pop}
    - {label: 300, action: pop-lookup, vrf: red}
    - {label: 500, action: pop-xconnect, pseudowire: pw1}

pseudowires:
  pw1: {ac_port: ce1, label: 500, via: spines, fat: true, control_word: true}
"""


def test_full_config_builds_the_model():
    config = load_text(FULL, "/etc/dataplane/lab.yaml")
    assert config.path == "/etc/dataplane/lab.yaml"
    assert config.node.name == "leaf1"
    assert config.node.seed == 0x5EED0001
    assert config.node.tunnel_address == ipaddress.IPv4Address("192.0.2.1")

    assert (config.eal.lcores, config.eal.memory_mb, config.eal.no_huge,
            config.eal.mbufs, config.eal.mlock) == ("0,2-3", 1024, False, 16384, False)
    assert config.eal.extra == ["--no-pci", "--file-prefix=dp1"]
    ft = config.flow_table
    assert (ft.entries, ft.idle_timeout, ft.tcp_close_timeout, ft.on_full) == \
        (65536, 30.0, 2.5, "drop")

    assert [p.name for p in config.ports] == ["p0", "ce1", "up1", "up2", "mon0"]
    assert [p.index for p in config.ports] == [0, 1, 2, 3, 4]
    p0 = config.port("p0")
    assert p0.devargs == "net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap"
    assert p0.dev_name == "net_pcap0"
    assert p0.mac == b"\x02\x00\x00\x00\x00\x01"
    assert (p0.vrf, p0.vrf_index, p0.mode, p0.xconnect) == ("red", 1, "packet", None)
    ce1 = config.port("ce1")
    assert (ce1.vrf, ce1.xconnect, ce1.mode) == (None, "pw1", "flow")
    up1 = config.port("up1")
    assert up1.mac == bytes([0x12, 0x34, 0x56, 0, 0, 3])
    assert (up1.vrf, up1.vrf_index, up1.dev_name) == ("default", 0, "0000:01:00.0")

    assert [(v.name, v.index) for v in config.vrfs] == [("default", 0), ("red", 1),
                                                       ("blue", 2)]
    default = config.vrf("default")
    assert [(str(r.prefix), r.via, r.via_group, r.via_index) for r in default.routes] == [
        ("10.0.0.0/8", "spines", True, 0), ("2001:db8::/32", "nh1", False, 0)]
    red = config.vrf("red")
    assert [(str(r.prefix), r.via, r.via_group, r.via_index) for r in red.routes] == [
        ("0.0.0.0/0", "gw", False, 3), ("::/0", "pair", True, 1)]
    assert isinstance(red.routes[1].prefix, ipaddress.IPv6Network)
    assert config.vrf("blue").routes == []

    nh = {n.name: n for n in config.nexthops}
    assert [n.name for n in config.nexthops] == ["nh1", "nh2", "nh3", "gw"]
    assert [n.index for n in config.nexthops] == [0, 1, 2, 3]
    assert (nh["nh1"].port, nh["nh1"].port_index, nh["nh1"].labels, nh["nh1"].entropy,
            nh["nh1"].erld, nh["nh1"].tunnel) == ("up1", 2, [16001], True, 4, None)
    assert nh["nh1"].mac == b"\x02\x00\x00\x00\x01\x01"
    assert (nh["nh2"].port_index, nh["nh2"].labels, nh["nh2"].entropy, nh["nh2"].erld) == \
        (3, [16002, 16], False, 8)
    assert nh["nh3"].labels == []
    assert nh["gw"].tunnel == Tunnel("mpls-udp", ipaddress.IPv4Address("203.0.113.9"))
    assert nh["gw"].labels == [20]

    spines, pair = config.groups
    assert (spines.name, spines.index, spines.buckets) == ("spines", 0, 4099)
    assert [(m.nexthop, m.nexthop_index, m.weight) for m in spines.members] == [
        ("nh1", 0, 1), ("nh2", 1, 2), ("nh3", 2, 0)]
    assert spines.hash == HashSpec(("src_ip", "dst_ip", "flow_label"), True, "l3")
    assert (pair.name, pair.index, pair.buckets) == ("pair", 1, 4096)
    assert [(m.nexthop, m.nexthop_index, m.weight) for m in pair.members] == [
        ("gw", 3, 65535), ("nh2", 1, 1)]
    assert pair.hash == HashSpec(DEFAULT_HASH_FIELDS, False, "follow")

    # MPLS and pseudowires, references resolved to indexes
    assert (config.mpls.erld, config.mpls.payload_guess, config.mpls.ttl_model) == \
        (8, True, "pipe")
    assert config.mpls.lfib == [
        LfibRule(label=100, action="swap", labels=[200], via="spines", via_group=True,
                 via_index=0),
        LfibRule(label=101, action="pop"),
        LfibRule(label=300, action="pop-lookup", vrf="red", vrf_index=1),
        LfibRule(label=500, action="pop-xconnect", pseudowire="pw1", pw_index=0)]
    assert config.pseudowires == [
        Pseudowire(name="pw1", index=0, ac_port="ce1", ac_port_index=1, label=500,
                   via="spines", via_group=True, via_index=0, fat=True, control_word=True)]
    assert [p.xconnect_index for p in config.ports] == [None, 0, None, None, None]
    assert p0.fat_flows[0].proto == 6 and [str(n) for n in p0.fat_flow_exclude] == \
        ["10.0.0.1/32"]

    # The document as parsed stays in raw.
    assert config.raw["mpls"]["lfib"][2] == {"label": 300, "action": "pop-lookup",
                                             "vrf": "red"}
    assert config.raw["pseudowires"]["pw1"]["control_word"] is True
    assert config.raw["ports"][0]["fat_flows"][1] == {"proto": "udp", "port": 0,
                                                      "src_prefix_len": 24}
    assert config.raw["ports"][0]["mirror"] == {"to": "mon0", "direction": "both",
                                                "sample": 1}


def test_defaults():
    config = load_text("""
node: {name: "123456789"}
ports: [{name: p0, devargs: net_ring0, mac: "02:00:00:00:00:01"}]
""")
    assert config.path == "<string>"
    assert config.node.seed == 0xE3069283           # CRC32-C check value
    assert config.node.tunnel_address is None
    assert (config.eal.lcores, config.eal.memory_mb, config.eal.no_huge,
            config.eal.mbufs, config.eal.extra, config.eal.mlock) == \
        ("0-1", 512, True, 8192, [], True)
    ft = config.flow_table
    assert (ft.entries, ft.idle_timeout, ft.tcp_close_timeout, ft.on_full) == \
        (1 << 20, 300.0, 10.0, "hash")
    assert [(v.name, v.index, v.routes) for v in config.vrfs] == [("default", 0, [])]
    port = config.ports[0]
    assert (port.vrf, port.vrf_index, port.mode, port.xconnect) == ("default", 0, "flow",
                                                                    None)
    assert config.nexthops == [] and config.groups == []
    assert config.mpls == Mpls(8, True, "uniform", []) and config.pseudowires == []
    assert port.xconnect_index is None


def test_mpls_and_pseudowires_compiled():
    config = load_text("""
node: {name: pe1}
ports:
  - {name: core, devargs: net_ring0, mac: "02:00:00:00:00:01"}
  - {name: ce2, devargs: net_ring1, mac: "02:00:00:00:00:02", xconnect: pw-b}
  - {name: ce1, devargs: net_ring2, mac: "02:00:00:00:00:03", xconnect: pw-a}
vrfs: {default: {}, red: {}, blue: {}}
nexthops:
  n1: {port: core, mac: "02:00:00:00:01:01", labels: [16001]}
  n2: {port: core, mac: "02:00:00:00:01:02"}
groups:
  g: {members: [{nexthop: n1}, {nexthop: n2}]}
mpls:
  lfib:
    - {label: 16, action: swap, labels: [17, 18], via: n2}
    - {label: 1048575, action: pop-lookup, vrf: blue}
    - {label: 600, action: pop-xconnect, pseudowire: pw-b}
    - {label: 601, action: pop-xconnect, pseudowire: pw-a}
pseudowires:
  pw-a: {ac_port: ce1, label: 700, via: n2}
  pw-b: {ac_port: ce2, label: 601, via: g, control_word: true}   # = an in-label: fine
""")
    assert config.mpls == Mpls(8, True, "uniform", [
        LfibRule(16, "swap", [17, 18], "n2", False, 1),
        LfibRule(1048575, "pop-lookup", vrf="blue", vrf_index=2),
        LfibRule(600, "pop-xconnect", pseudowire="pw-b", pw_index=1),
        LfibRule(601, "pop-xconnect", pseudowire="pw-a", pw_index=0)])
    assert config.pseudowires == [
        Pseudowire("pw-a", 0, "ce1", 2, 700, "n2", False, 1, fat=False, control_word=False),
        Pseudowire("pw-b", 1, "ce2", 1, 601, "g", True, 0, fat=False, control_word=True)]
    assert [(p.vrf, p.xconnect, p.xconnect_index) for p in config.ports] == [
        ("default", None, None), (None, "pw-b", 1), (None, "pw-a", 0)]


def _crc32c_bitwise(data: bytes) -> int:
    """An independent oracle: the bit-at-a-time definition, no table."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 * (crc & 1))
    return crc ^ 0xFFFFFFFF


def test_crc32c_vectors():
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(b"") == 0
    # RFC 3720 appendix B.4 (iSCSI), 32-byte test vectors.
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C
    # rte_hash_crc semantics: caller's init, no final XOR.
    assert crc32c_raw(b"123456789", 0xFFFFFFFF) ^ 0xFFFFFFFF == 0xE3069283
    assert crc32c_raw(b"", 0x12345678) == 0x12345678
    assert crc32c(b"6789", crc32c(b"12345")) == 0xE3069283
    rng = random.Random(7)
    for n in (1, 3, 8, 13, 64):
        data = rng.randbytes(n)
        assert crc32c(data) == _crc32c_bitwise(data)


def test_default_seed_is_crc32c_of_the_name():
    config = load_text("""
node: {name: leaf1}
ports: [{name: p0, devargs: net_ring0, mac: "02:00:00:00:00:01"}]
""")
    assert config.node.seed == _crc32c_bitwise(b"leaf1")


# ---- invalid documents: one mutation of a small valid base, one exact message -----

DELETE = object()


def base() -> dict:
    return {
        "node": {"name": "leaf1", "tunnel_address": "192.0.2.1"},
        "ports": [
            {"name": "p0", "devargs": "net_pcap0,rx_pcap=in.pcap", "mac": "02:00:00:00:00:01"},
            {"name": "up1", "devargs": "net_ring0", "mac": "02:00:00:00:00:02"},
        ],
        "vrfs": {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "nh1"},
                                        {"prefix": "10.1.0.0/16", "via": "g1"}]}},
        "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01", "labels": [16001]},
                     "nh2": {"port": "up1", "mac": "02:00:00:00:01:02"}},
        "groups": {"g1": {"members": [{"nexthop": "nh1"}, {"nexthop": "nh2"}]}},
    }


def put(doc: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
    for key in keys[:-1]:
        doc = doc[key] if isinstance(doc, list) or key in doc else doc.setdefault(key, {})
    if value is DELETE:
        del doc[keys[-1]]
    else:
        doc[keys[-1]] = value


def errors_of(changes: dict, doc=None) -> list[str]:
    doc = copy.deepcopy(base() if doc is None else doc)
    for path, value in changes.items():
        put(doc, path, value)
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(doc, sort_keys=False), "/srv/configs/lab.yaml")
    return info.value.errors


def test_base_is_valid():
    config = load_text(yaml.safe_dump(base(), sort_keys=False))
    assert [r.via_group for r in config.vrfs[0].routes] == [False, True]


VDEVS = ", ".join(drivers.vdev_names())     # the net vdevs of the installed DPDK
# (tests/test_drivers.py checks that list against the plugin files themselves)
NAME = "a name of letters, digits, '_' and '-' starting with a letter or '_'"

CASES = [
    # node
    ({"node.name": "leaf 1"},
     "node.name: must be a name of letters, digits, '_', '.' and '-', got 'leaf 1'"),
    ({"node.name": DELETE}, "node.name: is required"),
    ({"node.seed": 1 << 32}, "node.seed: must be an integer from 0 to 4294967295, "
                             "got 4294967296"),
    ({"node.seed": True}, "node.seed: must be an integer from 0 to 4294967295, got True"),
    ({"node.tunnel_address": "192.0.2.300"},
     "node.tunnel_address: must be an IPv4 or IPv6 address, got '192.0.2.300'"),
    # eal
    ({"eal.lcores": "1-0"}, "eal.lcores: must be a core list like \"0-1\" or \"0,2\" or an "
                            "lcore map like \"0@0,1@1,2@1\", got '1-0'"),
    ({"eal.lcores": "0;1"}, "eal.lcores: must be a core list like \"0-1\" or \"0,2\" or an "
                            "lcore map like \"0@0,1@1,2@1\", got '0;1'"),
    ({"eal.lcores": "0@0,1@1,1@1"}, "eal.lcores: must name each lcore once (lcore 1 is named "
                                    "twice), got '0@0,1@1,1@1'"),
    ({"eal.lcores": "0-17"}, "eal.lcores: must be a main lcore and at most 16 workers, "
                             "got '0-17'"),
    ({"eal.memory_mb": 32}, "eal.memory_mb: must be an integer from 64 to 65536, got 32"),
    ({"eal.no_huge": "yes"}, "eal.no_huge: must be true or false, got 'yes'"),
    ({"eal.mbufs": 1000}, "eal.mbufs: must be an integer >= 1024, got 1000"),
    ({"eal.extra": ["--no-pci", 1]}, "eal.extra[1]: must be a string, got 1"),
    ({"eal.extra": "--no-pci"}, "eal.extra: must be a list, got '--no-pci'"),
    # flow_table
    ({"flow_table.entries": 1000},
     "flow_table.entries: must be a power of two from 1024 to 1073741824, got 1000"),
    ({"flow_table.entries": 3072},
     "flow_table.entries: must be a power of two from 1024 to 1073741824, got 3072"),
    ({"flow_table.idle_timeout": 0},
     "flow_table.idle_timeout: must be a number of seconds > 0, got 0"),
    ({"flow_table.tcp_close_timeout": -1.5},
     "flow_table.tcp_close_timeout: must be a number of seconds > 0, got -1.5"),
    ({"flow_table.on_full": "block"},
     "flow_table.on_full: must be one of hash, drop, got 'block'"),
    ({"flow_table": [1]}, "flow_table: must be a mapping, got [1]"),
    # ports
    ({"ports": [], "nexthops": {}, "groups": {}, "vrfs": {"default": {}}},
     "ports: must be a list of 1 to 32 ports, got 0 ports"),
    ({"ports[0].name": "0p"}, f"ports[0].name: must be {NAME}, got '0p'"),
    ({"ports[0].name": "up1"}, "ports[1].name: must be unique, got 'up1'"),
    ({"ports[0].devargs": DELETE}, "ports[0].devargs: is required"),
    ({"ports[0].devargs": "eth_pcap0"},
     f"ports[0].devargs: must be a PCI address like 0000:01:00.0 or a vdev of {VDEVS}, "
     "got 'eth_pcap0'"),
    ({"ports[0].devargs": "net_pcap0,rx_pcap=a.pcap,foo=1"},
     "ports[0].devargs: must be a net_pcap argument (rx_pcap, tx_pcap, rx_iface, "
     "rx_iface_in, tx_iface, iface, phy_mac, infinite_rx), got 'foo=1'"),
    ({"ports[0].devargs": "net_null0,size=64,rx_pcap=x"},
     "ports[0].devargs: must be a net_null argument (size, copy, no-rx), got 'rx_pcap=x'"),
    ({"ports[0].devargs": "net_tap0,iface=t0,persist,queues=2"},
     "ports[0].devargs: must be a net_tap argument (iface, mac, remote, persist), "
     "got 'queues=2'"),
    ({"ports[0].devargs": "net_ring0,=x"},
     "ports[0].devargs: must be comma-separated key=value arguments, got 'net_ring0,=x'"),
    ({"ports[1].devargs": "net_pcap0,tx_pcap=out.pcap"},
     "ports[1].devargs: must be a device not used by another port, "
     "got 'net_pcap0,tx_pcap=out.pcap'"),
    ({"ports[0].mac": "02:00:00:00:00"},
     "ports[0].mac: must be a MAC address \"xx:xx:xx:xx:xx:xx\", got '02:00:00:00:00'"),
    ({"ports[0].mac": "01:00:5e:00:00:01"},
     "ports[0].mac: must be a unicast MAC address (low bit of the first byte clear), "
     "got '01:00:5e:00:00:01'"),
    ({"ports[0].mac": "ff:ff:ff:ff:ff:ff"},
     "ports[0].mac: must be a unicast MAC address (low bit of the first byte clear), "
     "got 'ff:ff:ff:ff:ff:ff'"),
    ({"ports[0].mac": "00:00:00:00:00:00"},
     "ports[0].mac: must be a non-zero MAC address, got '00:00:00:00:00:00'"),
    ({"ports[0].vrf": "blue"},
     "ports[0].vrf: must be a VRF defined under vrfs (default), got 'blue'"),
    ({"ports[0].mode": "fast"}, "ports[0].mode: must be one of flow, packet, got 'fast'"),
    ({"ports[0].fat_flows": [{"proto": "gre", "port": 1}]},
     "ports[0].fat_flows[0].proto: must be one of tcp, udp, icmp, sctp, got 'gre'"),
    ({"ports[0].fat_flows": [{"port": 22}]}, "ports[0].fat_flows[0].proto: is required"),
    ({"ports[0].fat_flows": [{"proto": "tcp", "port": 70000}]},
     "ports[0].fat_flows[0].port: must be an integer from 0 to 65535, got 70000"),
    ({"ports[0].fat_flows": [{"proto": "tcp", "ignore": "both"}]},
     "ports[0].fat_flows[0].ignore: must be one of none, src, dst, got 'both'"),
    ({"ports[0].fat_flows": [{"proto": "udp", "dst_prefix_len": 129}]},
     "ports[0].fat_flows[0].dst_prefix_len: must be an integer from 0 to 128, got 129"),
    ({"ports[0].fat_flows": [{"proto": "tcp", "port": 22}, {"proto": "tcp", "port": 22}]},
     "ports[0].fat_flows[1]: must be unique per proto and port, "
     "got {'proto': 'tcp', 'port': 22}"),
    ({"ports[0].fat_flow_exclude": ["10.0.0.1"]},
     "ports[0].fat_flow_exclude[0]: must be an IPv4 or IPv6 prefix, got '10.0.0.1'"),
    ({"ports[0].mirror": {"to": "nope"}},
     "ports[0].mirror.to: must be a port defined under ports (p0, up1), got 'nope'"),
    ({"ports[0].mirror": {"to": "p0"}},
     "ports[0].mirror.to: must be a port other than the mirrored one, got 'p0'"),
    ({"ports[0].mirror": {"to": "up1", "sample": 0}},
     "ports[0].mirror.sample: must be an integer from 1 to 4294967295, got 0"),
    ({"ports[0].mirror": {"to": "up1", "direction": "in"}},
     "ports[0].mirror.direction: must be one of rx, tx, both, got 'in'"),
    ({"ports[0].xconnect": "pw9"},
     "ports[0].xconnect: must be a pseudowire defined under pseudowires (none defined), "
     "got 'pw9'"),
    ({"ports[0].xconnect": "pw1", "ports[0].vrf": "default",
      "pseudowires.pw1": {"ac_port": "p0", "label": 500, "via": "nh1"}},
     "ports[0].vrf: must be absent on a port with xconnect, got 'default'"),
    ({"ports[0].foo": 1},
     "ports[0]: unknown key 'foo', allowed: name, devargs, mac, vrf, mode, fat_flows, "
     "fat_flow_exclude, mirror, xconnect, bind, proxy_arp"),
    # vrfs and routes
    ({"vrfs.red": {"routes": [{"prefix": "10.0.0.300/24", "via": "nh1"}] * 3}},
     "vrfs.red.routes[0].prefix: must be an IPv4 or IPv6 prefix, got '10.0.0.300/24'"),
    ({"vrfs.default.routes[0].prefix": "10.0.0.1/8"},
     "vrfs.default.routes[0].prefix: must be a prefix with no host bits set, "
     "got '10.0.0.1/8'"),
    ({"vrfs.default.routes[0].prefix": "2001:db8::1/32"},
     "vrfs.default.routes[0].prefix: must be a prefix with no host bits set, "
     "got '2001:db8::1/32'"),
    ({"vrfs.default.routes[0].prefix": "10.0.0.0/33"},
     "vrfs.default.routes[0].prefix: must be an IPv4 or IPv6 prefix, got '10.0.0.0/33'"),
    ({"vrfs.default.routes[1].prefix": "10.0.0.0/8"},
     "vrfs.default.routes[1].prefix: must be unique in the VRF, got '10.0.0.0/8'"),
    ({"vrfs.default.routes[0].via": "nope"},
     "vrfs.default.routes[0].via: must be a next hop or group defined under nexthops or "
     "groups (nh1, nh2, g1), got 'nope'"),
    ({"vrfs.default.routes[0].via": DELETE}, "vrfs.default.routes[0].via: is required"),
    ({"vrfs.default.routes": {"prefix": "10.0.0.0/8"}},
     "vrfs.default.routes: must be a list, got {'prefix': '10.0.0.0/8'}"),
    ({"vrfs.red-1": {"paths": []}},
     "vrfs.red-1: unknown key 'paths', allowed: routes, forwarding, flood_unknown_unicast, "
     "mac_learning, mac_aging, macs, gateway"),
    ({"vrfs.9": {}}, f"vrfs.9: must be {NAME}, got 9"),
    # nexthops
    ({"nexthops.nh1.port": "nope"},
     "nexthops.nh1.port: must be a port defined under ports (p0, up1), got 'nope'"),
    ({"nexthops.nh1.mac": DELETE},
     "nexthops.nh1.mac: is required unless ip is given (then ARP / ND resolves the MAC)"),
    ({"nexthops.nh1.labels": [16, 15]},
     "nexthops.nh1.labels[1]: must be an MPLS label from 16 to 1048575 (0-15 are "
     "reserved), got 15"),
    ({"nexthops.nh1.labels": [1048576]},
     "nexthops.nh1.labels[0]: must be an MPLS label from 16 to 1048575 (0-15 are "
     "reserved), got 1048576"),
    ({"nexthops.nh1.erld": 17}, "nexthops.nh1.erld: must be an integer from 1 to 16, got 17"),
    ({"nexthops.nh1.labels": list(range(16001, 16014))},     # 12 + ELI/EL + PW + FAT = 16
     "nexthops.nh1.labels: must be a list of 0 to 12 labels, got 13 labels"),
    ({"nexthops.nh1.tunnel": {"type": "mpls-udp", "remote": "203.0.113.9"},
      "nexthops.nh1.entropy": True},
     "nexthops.nh1.entropy: must be false on a tunnel next hop (the UDP source port "
     "carries the entropy), got True"),
    ({"nexthops.nh1.tunnel": {"type": "mpls-gre", "remote": "203.0.113.9"},
      "nexthops.nh1.entropy": True},
     "nexthops.nh1.entropy: must be false on a tunnel next hop (the UDP source port "
     "carries the entropy), got True"),
    ({"nexthops.nh2.entropy": True},
     "nexthops.nh2.entropy: must be false on a next hop without labels, got True"),
    ({"nexthops.nh1.entropy": 1}, "nexthops.nh1.entropy: must be true or false, got 1"),
    ({"nexthops.nh1.tunnel": {"type": "vxlan", "remote": "203.0.113.9"}},
     "nexthops.nh1.tunnel.type: must be one of mpls-udp, mpls-gre, got 'vxlan'"),
    ({"nexthops.nh1.tunnel": {"type": "mpls-gre"}}, "nexthops.nh1.tunnel.remote: is required"),
    ({"nexthops.nh1.tunnel": {"type": "mpls-gre", "remote": "2001:db8::9"}},
     "nexthops.nh1.tunnel.remote: must be an IPv4 address like node.tunnel_address, "
     "got '2001:db8::9'"),
    ({"nexthops.nh2.tunnel": {"type": "mpls-udp", "remote": "203.0.113.9"}},
     "nexthops.nh2.labels: is required on a tunnel next hop"),
    ({"nexthops.nh1.tunnel": {"type": "mpls-udp", "remote": "203.0.113.9"},
      "node.tunnel_address": DELETE},
     "node.tunnel_address: is required when a next hop has a tunnel (nexthops.nh1)"),
    # groups
    ({"groups.g1.members": []}, "groups.g1.members: must be a list of 1 to 64 members, "
                                "got 0 members"),
    ({"groups.g1.members[1].nexthop": "nh1"},
     "groups.g1.members[1].nexthop: must be unique in the group, got 'nh1'"),
    ({"groups.g1.members[1].nexthop": "nh9"},
     "groups.g1.members[1].nexthop: must be a next hop defined under nexthops (nh1, nh2), "
     "got 'nh9'"),
    ({"groups.g1.members[0].weight": 0, "groups.g1.members[1].weight": 0},
     "groups.g1.members: must have at least one member with weight > 0, got weights [0, 0]"),
    ({"groups.g1.members[0].weight": 65536},
     "groups.g1.members[0].weight: must be an integer from 0 to 65535, got 65536"),
    ({"groups.g1.buckets": 100},
     "groups.g1.buckets: must be a power of two or a prime from 64 to 65536, got 100"),
    ({"groups.g1.buckets": 32},
     "groups.g1.buckets: must be a power of two or a prime from 64 to 65536, got 32"),
    ({"groups.g1.buckets": 65537},
     "groups.g1.buckets: must be a power of two or a prime from 64 to 65536, got 65537"),
    ({"groups.g1.hash.fields": []},
     "groups.g1.hash.fields: must be a list of 1 to 7 fields, got 0 fields"),
    ({"groups.g1.hash.fields": ["src_ip", "vlan"]},
     "groups.g1.hash.fields[1]: must be one of src_ip, dst_ip, proto, src_port, dst_port, "
     "flow_label, ingress_port, got 'vlan'"),
    ({"groups.g1.hash.fields": ["src_ip", "dst_ip", "src_ip"]},
     "groups.g1.hash.fields[2]: must be unique, got 'src_ip'"),
    ({"groups.g1.hash.fragments": "drop"},
     "groups.g1.hash.fragments: must be one of follow, l3, got 'drop'"),
    ({"groups.g1.hash.symmetric": "no"},
     "groups.g1.hash.symmetric: must be true or false, got 'no'"),
    ({"groups.nh2": {"members": [{"nexthop": "nh1"}]}},
     "groups.nh2: must be a name not used by a next hop, got 'nh2'"),
    # mpls
    ({"mpls.erld": 0}, "mpls.erld: must be an integer from 1 to 16, got 0"),
    ({"mpls.ttl_model": "short"}, "mpls.ttl_model: must be one of uniform, pipe, got 'short'"),
    ({"mpls.payload_guess": "on"}, "mpls.payload_guess: must be true or false, got 'on'"),
    ({"mpls.lfib": [{"label": 100, "action": "swap", "via": "g1"}]},
     "mpls.lfib[0].labels: is required"),
    ({"mpls.lfib": [{"label": 100, "action": "swap", "labels": [], "via": "g1"}]},
     "mpls.lfib[0].labels: must be a list of 1 to 12 labels, got 0 labels"),
    ({"mpls.lfib": [{"label": 100, "action": "swap", "labels": list(range(200, 213)),
                     "via": "g1"}]},
     "mpls.lfib[0].labels: must be a list of 1 to 12 labels, got 13 labels"),
    ({"mpls.lfib": [{"label": 100, "action": "pop", "vrf": "default"}]},
     "mpls.lfib[0]: unknown key 'vrf', allowed: label, action"),
    ({"mpls.lfib": [{"label": 300, "action": "pop-lookup", "vrf": "red"}]},
     "mpls.lfib[0].vrf: must be a VRF defined under vrfs (default), got 'red'"),
    ({"mpls.lfib": [{"label": 500, "action": "pop-xconnect"}]},
     "mpls.lfib[0].pseudowire: is required"),
    ({"mpls.lfib": [{"label": 7, "action": "pop"}]},
     "mpls.lfib[0].label: must be an MPLS label from 16 to 1048575 (0-15 are reserved), "
     "got 7"),
    ({"mpls.lfib": [{"label": 100, "action": "pop"}, {"label": 100, "action": "pop"}]},
     "mpls.lfib[1].label: must be unique in the LFIB, got 100"),
    ({"mpls.lfib": [{"label": 100, "action": "push"}]},
     "mpls.lfib[0].action: must be one of swap, pop, pop-lookup, pop-xconnect, got 'push'"),
    # pseudowires
    ({"pseudowires.pw1": {"ac_port": "p0", "label": 500, "via": "g1"}},
     "pseudowires.pw1.ac_port: must be a port whose xconnect is pw1, got 'p0'"),
    ({"ports[0].xconnect": "pw1",
      "pseudowires.pw1": {"ac_port": "p0", "label": 500, "via": "g9", "fat": "yes"}},
     "pseudowires.pw1.via: must be a next hop or group defined under nexthops or groups "
     "(nh1, nh2, g1), got 'g9'"),
    ({"ports": base()["ports"] + [
        {"name": "ce1", "devargs": "net_tap0", "mac": "02:00:00:00:00:03", "xconnect": "pw1"},
        {"name": "ce2", "devargs": "net_tap1", "mac": "02:00:00:00:00:04", "xconnect": "pw1"}],
      "pseudowires.pw1": {"ac_port": "ce1", "label": 500, "via": "g1"}},
     "ports[3].xconnect: must be a pseudowire no other port cross-connects, got 'pw1'"),
    # top level
    ({"bogus": 1}, "unknown key 'bogus', allowed: node, eal, flow_table, ports, vrfs, "
                   "nexthops, groups, mpls, pseudowires, neighbors"),
    ({"node": DELETE}, "node: is required"),
]


@pytest.mark.parametrize("changes, message", CASES)
def test_invalid(changes, message):
    errors = errors_of(changes)
    if "pseudowires.pw1.via" in message:     # that case also has a bad `fat`
        assert errors == [f"lab.yaml: {message}",
                          "lab.yaml: pseudowires.pw1.fat: must be true or false, got 'yes'"]
    elif "vrfs.red.routes" in message:       # three identical bad routes, all reported
        assert errors == [f"lab.yaml: {message}".replace("[0]", f"[{i}]") for i in range(3)]
    else:
        assert errors == [f"lab.yaml: {message}"]


def test_the_example_message_from_the_brief():
    doc = base()
    doc["vrfs"]["red"] = {"routes": [{"prefix": "10.0.0.0/8", "via": "nh1"},
                                     {"prefix": "10.2.0.0/16", "via": "nh1"},
                                     {"prefix": "10.0.0.300/24", "via": "nh1"}]}
    assert errors_of({}, doc) == [
        "lab.yaml: vrfs.red.routes[2].prefix: must be an IPv4 or IPv6 prefix, "
        "got '10.0.0.300/24'"]


def test_all_errors_are_reported_together():
    text = """\
node: {name: leaf1, seed: -1, colour: blue}
eal: {memory_mb: 1}
ports:
  - {name: p0, devargs: "net_pcap0,bogus=1", mac: "01:00:00:00:00:01", vrf: red}
  - {name: p0, devargs: net_ring0}
vrfs:
  red:
    routes:
      - {prefix: 10.0.0.1/8, via: nh1}
      - {prefix: 10.0.0.300/24, via: g}
nexthops:
  nh1: {port: p9, mac: "02:00:00:00:00:01", labels: [3]}
"""
    with pytest.raises(ConfigError) as info:
        load_text(text, "lab.yaml")
    expected = [
        "lab.yaml: node: unknown key 'colour', allowed: name, seed, tunnel_address",
        "lab.yaml: node.seed: must be an integer from 0 to 4294967295, got -1",
        "lab.yaml: eal.memory_mb: must be an integer from 64 to 65536, got 1",
        "lab.yaml: ports[0].devargs: must be a net_pcap argument (rx_pcap, tx_pcap, "
        "rx_iface, rx_iface_in, tx_iface, iface, phy_mac, infinite_rx), got 'bogus=1'",
        "lab.yaml: ports[0].mac: must be a unicast MAC address (low bit of the first byte "
        "clear), got '01:00:00:00:00:01'",
        "lab.yaml: ports[1].mac: is required",
        "lab.yaml: ports[1].vrf: is required when vrfs defines no 'default' VRF",
        "lab.yaml: ports[1].name: must be unique, got 'p0'",
        "lab.yaml: vrfs.red.routes[0].prefix: must be a prefix with no host bits set, "
        "got '10.0.0.1/8'",
        "lab.yaml: vrfs.red.routes[1].prefix: must be an IPv4 or IPv6 prefix, "
        "got '10.0.0.300/24'",
        "lab.yaml: vrfs.red.routes[1].via: must be a next hop or group defined under "
        "nexthops or groups (nh1), got 'g'",
        "lab.yaml: nexthops.nh1.port: must be a port defined under ports (p0), got 'p9'",
        "lab.yaml: nexthops.nh1.labels[0]: must be an MPLS label from 16 to 1048575 "
        "(0-15 are reserved), got 3",
    ]
    assert info.value.errors == expected
    assert str(info.value) == "\n".join(expected)


def test_limits():
    def port(i):
        return {"name": f"p{i}", "devargs": f"net_ring{i}", "mac": "02:00:00:00:00:01"}
    assert errors_of({"ports": base()["ports"] + [port(i) for i in range(1, 32)]}) == [
        "lab.yaml: ports: must be a list of 1 to 32 ports, got 33 ports"]
    assert errors_of({"vrfs": {"default": {}, **{f"v{i}": {} for i in range(256)}}}) == [
        "lab.yaml: vrfs: must be at most 256 VRFs, got 257 VRFs"]
    nexthops = {f"n{i}": {"port": "up1", "mac": "02:00:00:00:01:01"} for i in range(65)}
    members = [{"nexthop": f"n{i}"} for i in range(65)]
    assert errors_of({"nexthops": nexthops, "groups.g1.members": members,
                      "vrfs.default.routes": []}) == [
        "lab.yaml: groups.g1.members: must be a list of 1 to 64 members, got 65 members"]
    groups = {f"g{i}": {"members": [{"nexthop": "nh1"}]} for i in range(4097)}
    assert errors_of({"groups": groups}) == [
        "lab.yaml: groups: must be at most 4096 groups, got 4097 groups"]


def test_nexthop_and_route_limits(monkeypatch):
    # The real limits (65535 next hops, 1 Mi routes per VRF) take too long to load
    # through YAML in a unit test; the check is the same code with a smaller bound.
    monkeypatch.setattr(validate, "MAX_NEXTHOPS", 2)
    monkeypatch.setattr(validate, "MAX_ROUTES_PER_VRF", 1)
    assert errors_of({"nexthops.nh3": {"port": "up1", "mac": "02:00:00:00:01:03"}}) == [
        "lab.yaml: vrfs.default.routes: must be a list of 0 to 1 routes, got 2 routes",
        "lab.yaml: nexthops: must be at most 2 nexthops, got 3 nexthops"]
    assert (validate.MAX_PORTS, validate.MAX_VRFS, validate.MAX_GROUPS) == (32, 256, 4096)


def test_buckets_accept_powers_of_two_and_primes():
    for buckets in (64, 65536, 67, 4099, 65521):
        doc = base()
        doc["groups"]["g1"]["buckets"] = buckets
        assert load_text(yaml.safe_dump(doc)).groups[0].buckets == buckets


def test_port_vrf_required_without_default_vrf():
    assert errors_of({"vrfs": {"red": {}}, "nexthops": {}, "groups": {}}) == [
        "lab.yaml: ports[0].vrf: is required when vrfs defines no 'default' VRF",
        "lab.yaml: ports[1].vrf: is required when vrfs defines no 'default' VRF"]


def test_xconnect_port_has_no_vrf_and_cannot_carry_a_next_hop():
    changes = {"ports[1].xconnect": "pw1",
               "pseudowires.pw1": {"ac_port": "up1", "label": 500, "via": "nh1"}}
    assert errors_of(changes) == [
        "lab.yaml: nexthops.nh1.port: must be a port without xconnect, got 'up1'",
        "lab.yaml: nexthops.nh2.port: must be a port without xconnect, got 'up1'"]


CE_PORTS = [{"name": "ce1", "devargs": "net_tap0", "mac": "02:00:00:00:00:03", "xconnect": "pw1"},
            {"name": "ce2", "devargs": "net_tap1", "mac": "02:00:00:00:00:04", "xconnect": "pw2"}]


def test_xconnect_and_ac_port_must_name_each_other():
    ok = {"ports": base()["ports"] + CE_PORTS,
          "pseudowires.pw1": {"ac_port": "ce1", "label": 500, "via": "g1"},
          "pseudowires.pw2": {"ac_port": "ce2", "label": 501, "via": "nh1"}}
    doc = copy.deepcopy(base())
    for path, value in ok.items():
        put(doc, path, value)
    assert [p.xconnect_index for p in load_text(yaml.safe_dump(doc)).ports] == \
        [None, None, 0, 1]
    # pw2 claims ce1, whose xconnect is pw1; ce2's pseudowire does not name it back
    assert errors_of(copy.deepcopy({**ok, "pseudowires.pw2.ac_port": "ce1"})) == [
        "lab.yaml: ports[3].xconnect: must be a pseudowire whose ac_port is ce2, got 'pw2'",
        "lab.yaml: pseudowires.pw2.ac_port: must be a port whose xconnect is pw2, got 'ce1'"]
    # a pseudowire whose ac_port has no xconnect at all (an L3 port)
    assert errors_of(copy.deepcopy({**ok, "pseudowires.pw2.ac_port": "p0"})) == [
        "lab.yaml: ports[3].xconnect: must be a pseudowire whose ac_port is ce2, got 'pw2'",
        "lab.yaml: pseudowires.pw2.ac_port: must be a port whose xconnect is pw2, got 'p0'"]
    # an undefined ac_port: its own error, and the port is not named back either
    assert errors_of(copy.deepcopy({**ok, "pseudowires.pw1.ac_port": "ce9"})) == [
        "lab.yaml: ports[2].xconnect: must be a pseudowire whose ac_port is ce1, got 'pw1'",
        "lab.yaml: pseudowires.pw1.ac_port: must be a port defined under ports "
        "(p0, up1, ce1, ce2), got 'ce9'"]


def test_label_depth_limits_accept_twelve():
    twelve = list(range(16001, 16013))
    doc = copy.deepcopy(base())
    doc["nexthops"]["nh1"]["labels"] = twelve
    doc["nexthops"]["nh1"]["entropy"] = True
    doc["mpls"] = {"lfib": [{"label": 100, "action": "swap", "labels": twelve, "via": "g1"}]}
    config = load_text(yaml.safe_dump(doc))
    assert config.nexthops[0].labels == twelve and config.mpls.lfib[0].labels == twelve


def test_new_mpls_errors_are_reported_together():
    assert errors_of({
        "ports": base()["ports"] + CE_PORTS[:1],
        "nexthops.nh1.labels": list(range(16001, 16014)),
        "nexthops.nh2": {"port": "up1", "mac": "02:00:00:00:01:02", "labels": [20],
                         "entropy": True,
                         "tunnel": {"type": "mpls-udp", "remote": "203.0.113.9"}},
        "mpls.lfib": [{"label": 100, "action": "swap", "labels": list(range(200, 214)),
                       "via": "nh2"}],
        "pseudowires.pw1": {"ac_port": "up1", "label": 500, "via": "g1"}}) == [
        "lab.yaml: ports[2].xconnect: must be a pseudowire whose ac_port is ce1, got 'pw1'",
        "lab.yaml: nexthops.nh1.labels: must be a list of 0 to 12 labels, got 13 labels",
        "lab.yaml: nexthops.nh2.entropy: must be false on a tunnel next hop (the UDP source "
        "port carries the entropy), got True",
        "lab.yaml: mpls.lfib[0].labels: must be a list of 1 to 12 labels, got 14 labels",
        "lab.yaml: pseudowires.pw1.ac_port: must be a port whose xconnect is pw1, got 'up1'"]


def test_empty_and_non_mapping_documents():
    with pytest.raises(ConfigError) as info:
        load_text("", "lab.yaml")
    assert info.value.errors == ["lab.yaml: node: is required", "lab.yaml: ports: is required"]
    with pytest.raises(ConfigError) as info:
        load_text("- node\n", "lab.yaml")
    assert info.value.errors == ["lab.yaml: must be a mapping, got ['node']"]


def test_duplicate_keys_are_rejected():
    text = """\
node:
  name: leaf1
  name: leaf2
ports:
  - {name: p0, devargs: net_ring0, mac: "02:00:00:00:00:01", mode: flow, mode: packet}
"""
    with pytest.raises(ConfigError) as info:
        load_text(text, "configs/lab.yaml")
    assert info.value.errors == [
        "lab.yaml: line 3, column 3: duplicate key 'name' (first at line 2)",
        "lab.yaml: line 5, column 74: duplicate key 'mode' (first at line 5)"]


def test_yaml_merge_keys_are_not_duplicates():
    # Merge keys are legal YAML: an explicit key overrides the merged one.
    text = """\
node: {name: leaf1}
ports:
  - &port {name: p0, devargs: net_ring0, mac: "02:00:00:00:00:01"}
  - {<<: *port, name: p1, devargs: net_ring1}
"""
    assert [p.name for p in load_text(text).ports] == ["p0", "p1"]


def test_malformed_yaml_names_file_and_line():
    with pytest.raises(ConfigError) as info:
        load_text("node:\n  name: x\n   seed: 1\n", "/tmp/lab.yaml")
    [message] = info.value.errors
    assert message.startswith("lab.yaml: line 3, column 8: malformed YAML: "
                              "mapping values are not allowed")
    with pytest.raises(ConfigError) as info:
        load_text("node: !!python/object:os.system x\n", "lab.yaml")
    assert info.value.errors[0].startswith("lab.yaml: line 1, column 7: malformed YAML: ")


def test_hex_seed_and_unquoted_mac():
    config = load_text("""
node: {name: leaf1, seed: 0xFFFFFFFF}
ports: [{name: p0, devargs: net_ring0, mac: 10:22:33:44:55:01}]
""")
    assert config.node.seed == 0xFFFFFFFF
    assert config.ports[0].mac == bytes([0x10, 0x22, 0x33, 0x44, 0x55, 0x01])


def test_load_from_a_file(tmp_path):
    path = tmp_path / "lab.yaml"
    path.write_text(FULL)
    config = load(path)
    assert config.path == str(path) and config.node.name == "leaf1"
    path.write_text(FULL.replace("on_full: drop", "on_full: spill"))
    with pytest.raises(ConfigError) as info:
        load(str(path))
    assert info.value.errors == [
        "lab.yaml: flow_table.on_full: must be one of hash, drop, got 'spill'"]
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "missing.yaml")
    assert info.value.errors == ["missing.yaml: cannot read: No such file or directory"]


@pytest.mark.parametrize("text, ids, flag", [
    ("0-1", [0, 1], "-l"), ("0,2-3", [0, 2, 3], "-l"),
    ("0@0,1@1,2@1", [0, 1, 2], "--lcores"), ("0@0,(1,2)@1", [0, 1, 2], "--lcores"),
    ("0@(0-1),1@1", [0, 1], "--lcores")])
def test_lcores_map(text, ids, flag):
    """DPDK's -l list and --lcores map: lcore ids in order, main first, and the EAL flag
    that carries them (the map form needs --lcores)."""
    from dataplane.config.lcores import eal_flag, parse_lcores
    assert parse_lcores(text) == ids
    assert eal_flag(text) == [flag, text]
