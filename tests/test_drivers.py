"""PMD discovery (dataplane/drivers.py) against the DPDK installed here, `dataplane
drivers`, and vdev devargs validation with the discovered keys or the built-in fallback.

Expected keys and ids are written out by hand from DPDK 22.11's sources and
/work/shared/DPDK_NOTES.md (e.g. 8086:10fb is the 82599ES 10-Gigabit SFI/SFP+ that
net_ixgbe drives), never taken from the code under test.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from dataplane import drivers
from dataplane.config import ConfigError, load_text
from dataplane.config.rules import VDEV_ARGS
from dpdk_util import ROOT, child_env, cli_argv, error_lines, no_traceback, port

try:
    PMD_DIR, WHY = drivers.pmd_dir(), ""
except drivers.Unavailable as e:
    PMD_DIR, WHY = None, str(e)
needs_dpdk = pytest.mark.skipif(PMD_DIR is None, reason=WHY)

PCAP_KEYS = ["rx_pcap", "tx_pcap", "rx_iface", "rx_iface_in", "tx_iface", "iface",
             "phy_mac", "infinite_rx"]
FALLBACK = " (DPDK PMD plugins not found: checked against a built-in list)"


def run(*args, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """`dataplane ARGS` in a child process, with extra environment variables."""
    return subprocess.run(cli_argv(*args), cwd=ROOT, env={**child_env(), **(env or {})},
                          capture_output=True, text=True, timeout=timeout)


def doc(p0: str) -> dict:
    return {"node": {"name": "leaf1"},
            "ports": [port("p0", p0, 0), port("up1", "net_null1", 1)],
            "vrfs": {"default": {"routes": [{"prefix": "10.1.0.0/16", "via": "nh1"}]}},
            "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"}}}


def errors(p0: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_text(yaml.safe_dump(doc(p0), sort_keys=False), "lab.yaml")
    return info.value.errors


def write(tmp_path, p0: str):
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(doc(p0), sort_keys=False))
    return path


# ------------------------------------------------------------------ parsing params

def test_parse_params_glued_and_bracketed():
    # net_pcap's string has no space before infinite_rx; `=` inside [..] / <..> is a hint
    assert drivers.parse_params("rx_pcap=<string> phy_mac=<int>infinite_rx=<0|1>") == (
        ("rx_pcap", "<string>"), ("phy_mac", "<int>"), ("infinite_rx", "<0|1>"))
    assert drivers.parse_params("mode=[a=b|c] x=<k=v>, y") == (
        ("mode", "[a=b|c]"), ("x", "<k=v>, y"))
    # a key glued to a bare value: split where the plugin holds the key as a string
    known = {"role", "bsize", "rsize"}.__contains__
    assert drivers.parse_params("role=server|clientbsize=<int>rsize=<int>", known) == (
        ("role", "server|client"), ("bsize", "<int>"), ("rsize", "<int>"))
    assert drivers.parse_params(None) == drivers.parse_params("") == ()


def test_pci_id_text():
    assert drivers.pci_id_text((0x8086, 0x10FB, 0xFFFF, 0xFFFF)) == "8086:10fb"
    assert drivers.pci_id_text((0x15B3, 0x1013, 0x15B3, 0x0001)) == "15b3:1013 (15b3:0001)"


# ------------------------------------------------------------ the installed DPDK

@needs_dpdk
def test_net_pcap_keys_from_the_plugin():
    d = drivers.find("net_pcap")
    assert list(d.keys) == PCAP_KEYS                  # the PMD's own order
    assert drivers.driver_args("net_pcap") == set(PCAP_KEYS)
    assert (d.kind, d.bus, d.pci_ids, d.kmod) == ("net", "vdev", (), None)
    assert dict(d.params)["infinite_rx"] == "<0|1>"
    assert d.file.startswith(str(PMD_DIR)) and "librte_net_pcap.so" in d.file


@needs_dpdk
@pytest.mark.parametrize("name, keys", [
    ("net_ring", ["nodeaction"]),
    ("net_null", ["size", "copy", "no-rx"]),
    # `persist` is parsed by rte_eth_tap.c but missing from its PMD_INFO_STRING
    ("net_tap", ["iface", "mac", "remote", "persist"]),
    ("net_tun", ["iface"]),
    # no spaces between several of memif's keys: "role=server|clientbsize=<int>..."
    ("net_memif", ["id", "role", "bsize", "rsize", "socket", "socket-abstract", "mac",
                   "zero-copy", "secret"]),
])
def test_vdev_drivers_and_keys(name, keys):
    d = drivers.find(name)
    assert d is not None and list(d.keys) == keys
    assert (d.kind, d.bus) == ("net", "vdev")
    assert name in drivers.vdev_names()


@needs_dpdk
def test_pci_driver_lists_intel_ids():
    d = drivers.find("net_ixgbe") or drivers.find("net_e1000_igb")
    assert d is not None, "neither net_ixgbe nor net_e1000_igb is installed"
    assert d.bus == "pci" and d.pci_ids and "vfio-pci" in d.kmod
    assert {p[0] for p in d.pci_ids} == {0x8086}
    if d.name == "net_ixgbe":
        assert (0x8086, 0x10FB) in {p[:2] for p in d.pci_ids}
    assert d.name not in drivers.vdev_names()


@needs_dpdk
def test_one_plugin_several_drivers_each_once():
    tap = {d.name for d in drivers.discover() if d.file == drivers.find("net_tap").file}
    assert tap == {"net_tap", "net_tun"}
    virtio = {d.name: d.bus for d in drivers.discover()
              if d.file == drivers.find("net_virtio").file}
    assert virtio == {"net_virtio": "pci", "net_virtio_user": "vdev"}
    names = [d.name for d in drivers.discover()]
    assert len(names) == len(set(names))             # .so / .so.23 / .so.23.0 read once
    assert drivers.find("net_no_such") is None and drivers.driver_args("nope") is None


# ---------------------------------------------------------------- dataplane drivers

@needs_dpdk
def test_cli_json_agrees_with_drivers():
    r = run("drivers", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["pmd_dir"] == str(PMD_DIR)
    assert out["drivers"] == [d.as_dict() for d in drivers.discover()]
    pcap = next(d for d in out["drivers"] if d["name"] == "net_pcap")
    assert [p["key"] for p in pcap["params"]] == PCAP_KEYS
    r = run("drivers", "net_pcap0", "--json")            # a device name finds its driver
    assert r.returncode == 0 and json.loads(r.stdout) == pcap


@needs_dpdk
def test_cli_table_and_one_driver():
    r = run("drivers")
    assert r.returncode == 0, r.stderr
    rows = {line.split("│")[1].strip(): line for line in r.stdout.splitlines()
            if line.startswith("│")}
    assert " ".join(PCAP_KEYS) in rows["net_pcap"] and "vdev" in rows["net_pcap"]
    assert "librte_net_pcap.so" in rows["net_pcap"]
    pci = drivers.find("net_ixgbe") or drivers.find("net_e1000_igb")
    assert f"{len(pci.pci_ids)} PCI" in rows[pci.name]
    r = run("drivers", pci.name)
    assert r.returncode == 0, r.stderr
    assert "8086:" in r.stdout and "kernel modules:" in r.stdout
    r = run("drivers", "net_tap")
    assert "persist" in r.stdout and "fixed|xx:xx:xx:xx:xx:xx" in r.stdout


@needs_dpdk
def test_cli_unknown_driver():
    r = run("drivers", "net_no_such")
    no_traceback(r.stderr)
    assert r.returncode == 2 and error_lines(r.stderr) == r.stderr.splitlines()
    assert r.stderr.startswith("error: no driver 'net_no_such' among the ")


def test_cli_no_plugin_directory(tmp_path):
    r = run("drivers", env={drivers.ENV_DIR: str(tmp_path)})
    no_traceback(r.stderr)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [
        f"error: DPDK PMD plugins not found: checked {drivers.ENV_DIR}={tmp_path} "
        "(no librte_*.so in it)"]


# ------------------------------------------------------------- config validation

@needs_dpdk
def test_unknown_key_names_it_and_the_allowed_keys():
    assert errors("net_pcap0,rx_pcap=in.pcap,bogus=1") == [
        "lab.yaml: ports[0].devargs: must be a net_pcap argument "
        f"({', '.join(PCAP_KEYS)}), got 'bogus=1'"]


@needs_dpdk
def test_keys_only_the_plugins_know():
    # net_af_xdp was not in the hand-written table at all, and net_memif's keys were not
    # checked by it: both now come from the plugins
    assert "net_af_xdp" not in VDEV_ARGS and VDEV_ARGS["net_memif"] is None
    load_text(yaml.safe_dump(doc("net_af_xdp0,iface=eth0,start_queue=0,queue_count=1")))
    load_text(yaml.safe_dump(doc("net_memif0,role=server,socket=/m.sock,zero-copy=yes")))
    assert errors("net_memif0,role=server,sokcet=/run/m.sock") == [
        "lab.yaml: ports[0].devargs: must be a net_memif argument (id, role, bsize, rsize, "
        "socket, socket-abstract, mac, zero-copy, secret), got 'sokcet=/run/m.sock'"]


@needs_dpdk
def test_unknown_driver_lists_the_net_vdevs():
    for dev in ("eth_pcap0", "net_ixgbe0", "crypto_null0"):
        [e] = errors(dev)
        assert e.startswith("lab.yaml: ports[0].devargs: must be a PCI address like "
                            "0000:01:00.0 or a vdev of "), e
        assert e.endswith(f", got '{dev}'"), e
        vdevs = e.split(" or a vdev of ")[1].split(", got ")[0].split(", ")
        assert vdevs == drivers.vdev_names()
        assert {"net_pcap", "net_ring", "net_af_xdp", "net_virtio_user"} <= set(vdevs)
        assert "net_ixgbe" not in vdevs and "crypto_null" not in vdevs


def test_fallback_when_no_plugins(tmp_path):
    env = {drivers.ENV_DIR: str(tmp_path)}             # a directory with no PMDs in it
    r = run("check", write(tmp_path, "net_pcap0,bogus=1"), env=env)
    no_traceback(r.stderr)
    assert r.returncode == 2
    assert (f"lab.yaml: ports[0].devargs: must be a net_pcap argument "
            f"({', '.join(PCAP_KEYS)}), got 'bogus=1'{FALLBACK}") in r.stderr.splitlines()
    r = run("check", write(tmp_path, "net_af_xdp0,iface=eth0"), env=env)
    assert r.returncode == 2
    assert ("lab.yaml: ports[0].devargs: must be a PCI address like 0000:01:00.0 or a vdev "
            f"of {', '.join(VDEV_ARGS)}, got 'net_af_xdp0,iface=eth0'{FALLBACK}"
            ) in r.stderr.splitlines()
    r = run("check", write(tmp_path, "net_pcap0,rx_pcap=in.pcap"), env=env)
    assert r.returncode == 0, r.stderr


def test_validation_without_pyelftools(tmp_path):
    """pyelftools missing: validation falls back and says why; `drivers` exits 2."""
    code = ("import sys; sys.modules['elftools'] = None\n"
            "from dataplane.cli import main\nsys.exit(main(sys.argv[1:]))")

    def run_without(*args):
        return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=ROOT,
                              env=child_env(), capture_output=True, text=True, timeout=60)
    r = run_without("check", write(tmp_path, "net_null0,bogus=1"))
    no_traceback(r.stderr)
    assert r.returncode == 2
    assert ("lab.yaml: ports[0].devargs: must be a net_null argument (size, copy, no-rx), "
            "got 'bogus=1' (DPDK PMD plugins not read: pyelftools is not installed: "
            "checked against a built-in list)") in r.stderr.splitlines()
    r = run_without("drivers")
    no_traceback(r.stderr)
    assert r.returncode == 2 and r.stderr.splitlines() == [
        "error: DPDK PMD plugins not read: pyelftools is not installed: pip install "
        "pyelftools"]
