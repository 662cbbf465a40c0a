"""Hostile configurations and arguments (issue 18, "hangs, tracebacks, misleading
messages"): each is refused in bounded time with one line — or the configuration's error
list, one ``<file>: <path>: must be <rule>, got <value>`` line per problem — exit status
2 and no traceback; what is valid still loads.

- YAML alias bombs are refused at parse time; every ``got <value>`` is cut to about 80
  characters without building the whole repr (huge lists, strings, integers).
- Names have a length limit; ``ports: [null]`` and other wrong types anywhere in the
  document are reported, never a TypeError (a sweep puts each hostile value at every
  place of a full configuration); a 5,000-digit integer is a value like any other.
- `explain` and `flow` check their arguments (ports, protocols, flow label, addresses,
  the shape of a flows file); `run --duration/--stats-interval` must be finite and > 0.
- eal.lcores names each lcore once and only CPUs this process may run on; eal.extra does
  not set lcores behind eal.lcores' back.
- vdev devargs values are checked per driver (net_null, net_pcap, net_ring, net_tap).
- The memory a configuration needs (LPM tables, flow tables, mbuf pool) is checked
  against eal.memory_mb (with the figure to raise it to; the forwarder runs at exactly
  that figure) and against the memory this process may still use, cgroup limits
  included.
"""
from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path

import pytest
import yaml

from dataplane import cli
from dataplane.config import ConfigError, load, load_text
from dpdk_util import ROOT, dataplane, no_traceback, write_config

SAMPLE = ROOT / "samples" / "sample.yaml"
BOUND = 30              # seconds: each refusal takes well under one
LINE = 300              # no error line is longer than this


def base() -> dict:
    """A small valid configuration on net_null ports."""
    return {
        "node": {"name": "leaf1"},
        "ports": [{"name": "p0", "devargs": "net_null0", "mac": "02:00:00:00:00:01"},
                  {"name": "up1", "devargs": "net_null1", "mac": "02:00:00:00:00:02"}],
        "vrfs": {"default": {"routes": [{"prefix": "10.0.0.0/8", "via": "nh1"},
                                        {"prefix": "2001:db8::/32", "via": "nh1"}]}},
        "nexthops": {"nh1": {"port": "up1", "mac": "02:00:00:00:01:01"}},
    }


def refused(r, *needles: str) -> list[str]:
    """A CLI refusal: exit 2, no traceback, one line (or the configuration error list),
    every line bounded; returns the lines."""
    assert r.returncode == 2, (r.returncode, r.stdout[-2000:], r.stderr[-2000:])
    no_traceback(r.stdout + r.stderr)
    lines = r.stderr.rstrip("\n").split("\n")
    if lines[0] == "invalid configuration":
        lines = lines[1:]
        assert lines and all(re.match(r"\S+: ", line) for line in lines), r.stderr[:2000]
    else:
        assert len(lines) == 1, r.stderr[:2000]
    assert max(map(len, lines)) <= LINE, max(lines, key=len)[:2000]
    for needle in needles:
        assert needle in r.stderr, (needle, r.stderr[:2000])
    return lines


def config_errors(text: str) -> list[str]:
    """load_text(text)'s error list (it must raise ConfigError), each line bounded."""
    with pytest.raises(ConfigError) as info:
        load_text(text, "lab.yaml")
    errors = info.value.errors
    assert errors and max(map(len, errors)) <= LINE, max(errors, key=len)[:2000]
    return errors


def dump(doc: dict) -> str:
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
                     sort_keys=False)


def with_(changes: dict, doc: dict | None = None) -> dict:
    doc = copy.deepcopy(base() if doc is None else doc)
    for path, value in changes.items():
        keys = [int(k) if k.isdigit() else k for k in re.findall(r"[^.\[\]]+", path)]
        d = doc
        for key in keys[:-1]:
            d = d[key] if isinstance(d, list) or key in d else d.setdefault(key, {})
        d[keys[-1]] = value
    return doc


# ---------------------------------------------------------------- YAML alias bombs

BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
node: {name: *i}
ports: *i
"""


def test_alias_bomb_is_refused_at_parse_time(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    t0 = time.monotonic()
    r = dataplane("check", path, timeout=BOUND)
    lines = refused(r, "bomb.yaml: line ", "alias")
    assert len(lines) == 1 and time.monotonic() - t0 < BOUND


def test_recursive_alias_is_refused():
    errors = config_errors("node: &n {name: leaf1, seed: *n}\nports: []\n")
    assert len(errors) == 1 and "alias" in errors[0], errors


def test_ordinary_aliases_still_load():
    text = """\
node: {name: leaf1}
ports:
  - &p {name: p0, devargs: net_null0, mac: "02:00:00:00:00:01"}
  - {<<: *p, name: p1, devargs: net_null1}
nexthops:
  nh1: &nh {port: p1, mac: "02:00:00:00:01:01"}
  nh2: *nh
vrfs:
  default:
    routes: [{prefix: 10.0.0.0/8, via: nh1}, {prefix: 10.1.0.0/16, via: nh2}]
"""
    cfg = load_text(text)
    assert [p.name for p in cfg.ports] == ["p0", "p1"]
    assert [nh.port for nh in cfg.nexthops] == ["p1", "p1"]


def test_a_wide_alias_below_the_limit_prints_a_short_value():
    """9 x 9 x 9 x 9 strings (6,561 leaves) is not a bomb, but its repr is not printed."""
    text = BOMB.split("e: ")[0] + "node: {name: *d}\nports: []\n"
    errors = config_errors(text)
    [name] = [e for e in errors if "node.name" in e]
    assert name.startswith("lab.yaml: node.name: must be a name of letters, digits, "
                           "'_', '.' and '-', got [[[['lol', 'lol'")
    assert len(name.split(", got ", 1)[1]) <= 100, name


# ------------------------------------------------------------ long names and values

def test_long_node_name_is_refused_quickly(tmp_path):
    doc = with_({"node.name": "a" * 100_000})
    t0 = time.monotonic()
    r = dataplane("check", write_config(tmp_path / "long.yaml", doc), timeout=BOUND)
    [line] = refused(r, "long.yaml: node.name: must be at most 64 characters, got 'aaaa")
    assert "(100000 characters)" in line
    assert time.monotonic() - t0 < BOUND


@pytest.mark.parametrize("changes, where", [
    ({"ports[0].name": "p" * 100_000}, "ports[0].name: must be at most 64 characters"),
    ({"nexthops": {"n" * 100_000: {"port": "up1", "mac": "02:00:00:00:01:01"}}},
     "nexthops.nnnn"),
    ({"vrfs.default.routes[0].via": "x" * 100_000}, "vrfs.default.routes[0].via: must be"),
    ({"node.k" * 1 + "e" * 100_000: 1}, "node: unknown key 'keee"),
    ({"node.name": "a b" * 50_000}, "node.name: must be"),
    ({"ports[0].devargs": "net_null0,size=" + "9" * 100_000}, "ports[0].devargs: must be"),
])
def test_long_values_are_cut_in_messages(changes, where):
    errors = config_errors(dump(with_(changes)))
    assert any(where in e for e in errors), errors


def test_names_of_64_characters_are_fine():
    doc = with_({"node.name": "n" * 64, "ports[0].name": "p" * 64})
    cfg = load_text(dump(doc))
    assert cfg.node.name == "n" * 64 and cfg.ports[0].name == "p" * 64


# ------------------------------------------------------------------ wrong types

@pytest.mark.parametrize("changes, message", [
    ({"ports": [None]}, "ports[0]: must be a mapping, got None"),
    ({"ports": [None, 1, [], "p0"]}, "ports[3]: must be a mapping, got 'p0'"),
    ({"vrfs.default.routes": [None]}, "vrfs.default.routes[0]: must be a mapping, got None"),
    ({"nexthops.nh1": None}, "nexthops.nh1.port: is required"),   # `nh1:`: empty
    ({"groups": {"g": {"members": [None]}}}, "groups.g.members[0]: must be a mapping, "
                                             "got None"),
    ({"mpls": {"lfib": [None]}}, "mpls.lfib[0]: must be a mapping, got None"),
    ({"ports[0].fat_flows": [None]}, "ports[0].fat_flows[0]: must be a mapping, got None"),
    ({"ports[0].fat_flow_exclude": [None]},
     "ports[0].fat_flow_exclude[0]: must be an IPv4 or IPv6 prefix, got None"),
    ({"eal": {"extra": [None]}}, "eal.extra[0]: must be a string, got None"),
    ({"nexthops.nh1.labels": [None]}, "nexthops.nh1.labels[0]: must be an MPLS label"),
    ({"pseudowires": {"pw1": None}}, "pseudowires.pw1.ac_port: is required"),
    ({"ports[0].mirror": None}, None),
])
def test_null_and_wrong_types_in_lists(changes, message):
    doc = with_(changes)
    if message is None:         # `mirror:` with nothing under it: an empty mapping
        errors = config_errors(dump(doc))
        assert any("mirror.to: is required" in e for e in errors), errors
        return
    errors = config_errors(dump(doc))
    assert any(message in e for e in errors), errors


BIG = "1" * 5000                # Python refuses int("1" * 5000) (int_max_str_digits)
HEX = "0x" + "f" * 5000         # parses, but its decimal repr is refused as well


@pytest.mark.parametrize("path", ["node.seed", "eal.memory_mb", "eal.lcores",
                                  "flow_table.entries", "flow_table.idle_timeout",
                                  "ports[0].name", "ports[0].devargs", "nexthops.nh1.erld",
                                  "nexthops.nh1.labels[0]", "vrfs.default.routes[0].prefix"])
@pytest.mark.parametrize("number", [BIG, HEX, "-" + BIG])
def test_huge_integers_anywhere(path, number):
    doc = with_({"nexthops.nh1.labels": [16], path: "@BIG@"})
    text = dump(doc).replace("'@BIG@'", number)
    t0 = time.monotonic()
    errors = config_errors(text)
    assert time.monotonic() - t0 < 5
    [error] = [e for e in errors if e.startswith(f"lab.yaml: {path}: ")]
    if number == BIG:
        assert error.endswith("got 1111111111111111111111111111111111111111…"
                              "(5000 digits)"), error


def test_huge_integer_key(tmp_path):
    # (an explicit key: libyaml allows 1024 characters in a simple one)
    text = dump(base()).replace("vrfs:\n", f"vrfs:\n  ? {BIG}\n  : {{}}\n")
    errors = config_errors(text)
    assert any(e.startswith("lab.yaml: vrfs.1111") for e in errors), errors
    (tmp_path / "big.yaml").write_text(text)
    refused(dataplane("check", tmp_path / "big.yaml", timeout=BOUND), "(5000 digits)")


FULL_DOC = None


def _full_doc() -> dict:
    global FULL_DOC
    if FULL_DOC is None:
        from test_config import FULL
        FULL_DOC = yaml.safe_load(FULL)
    return FULL_DOC


def _places(doc, path=""):
    """Every place of doc: (path, container, key)."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc)
    for key, value in items:
        here = f"{path}[{key}]" if isinstance(doc, list) else (
            f"{path}.{key}" if path else str(key))
        yield here, doc, key
        if isinstance(value, (dict, list)):
            yield from _places(value, here)


HOSTILE = [None, [], {}, [None], {"x": None}, True, -1, 1.5, float("nan"), float("inf"),
           "@BIG@", "@HEX@", "x" * 5000, ["@BIG@"] * 3, {"@BIG@": 1}]


def test_every_place_takes_every_hostile_value():
    """The full configuration of tests/test_config.py with each place replaced by each
    hostile value: ConfigError or a Config, never another exception; bounded lines."""
    doc = _full_doc()
    n_places = len(list(_places(doc)))
    assert n_places > 100
    t0 = time.monotonic()
    for i in range(n_places):
        for value in HOSTILE:
            d = copy.deepcopy(doc)
            path, container, key = list(_places(d))[i]
            container[key] = value
            text = (dump(d).replace("'@BIG@'", BIG).replace("'@HEX@'", HEX)
                    .replace("@BIG@", BIG))
            try:
                load_text(text, "lab.yaml")
            except ConfigError as e:
                assert e.errors and max(map(len, e.errors)) <= LINE, (path, value)
            except Exception as e:          # noqa: BLE001 - the point of the test
                raise AssertionError(f"{path} = {str(value)[:40]}: "
                                     f"{type(e).__name__}: {str(e)[:300]}") from None
    assert time.monotonic() - t0 < 120


# ------------------------------------------------------------------------ explain

@pytest.mark.parametrize("args, needle", [
    (["10.0.0.1", "10.1.0.1", "tcp", "70000", "80"], "70000"),
    (["10.0.0.1", "10.1.0.1", "tcp", "1", "-1"], "-1"),
    (["10.0.0.1", "10.1.0.1", str(2 ** 64), "1", "2"], str(2 ** 64)),
    (["10.0.0.1", "10.1.0.1", "300", "1", "2"], "300"),
    (["10.0.0.1", "10.1.0.1", "bogus"], "bogus"),
    (["10.0.0.1", "10.1.0.1", "tcp", "1", "2", "--flow-label", "-1"], "flow label"),
    (["10.0.0.1", "10.1.0.1", "tcp", "1", "2", "--flow-label", str(1 << 20)], "flow label"),
    (["10.0.0.1", "bogus"], "bogus"),
    (["10.0.0.999", "10.1.0.1"], "10.0.0.999"),
    (["10.0.0.1", "2001:db8::1"], "address family"),
    (["10.0.0.1", "10.1.0.1", "--in-port", "nope"], "nope"),
    (["10.0.0.1", "10.1.0.1", "--vrf", "nope"], "nope"),
    (["10.0.0.1"], "explain"),
])
def test_explain_arguments(args, needle):
    r = dataplane("explain", SAMPLE, *args, timeout=BOUND)
    refused(r, needle)


def test_explain_live_arguments():
    """explain --live shifts the positionals: SRC DST [PROTO [SPORT [DPORT]]]; they are
    checked before any socket is asked."""
    for args, needle in ((["10.0.0.1", "10.1.0.1", "tcp", "99999"], "99999"),
                         (["10.0.0.1", "10.1.0.1", "tcp", "x"], "'x'"),
                         (["10.0.0.1", "10.1.0.1", "bogus"], "bogus"),
                         (["nope", "10.1.0.1"], "nope")):
        refused(dataplane("explain", "--live", *args, "--socket", "/nonexistent/s",
                          timeout=BOUND), needle)


def test_explain_still_explains():
    r = dataplane("explain", SAMPLE, "10.0.0.1", "10.3.0.1", "udp", "65535", "0",
                  "--flow-label", str((1 << 20) - 1), "--json", timeout=BOUND)
    assert r.returncode == 0, r.stderr
    r = dataplane("explain", SAMPLE, "10.0.0.1", "10.3.0.1", "255", timeout=BOUND)
    assert r.returncode == 0, r.stderr


# --------------------------------------------------------------------------- flow

@pytest.mark.parametrize("content", ['{"a": 1}', "[1]", '"flows"', "null", "[{}]",
                                     '[{"src": "10.0.0.1"}]', "[[]]", "{", ""])
def test_flow_on_a_file_of_the_wrong_shape(tmp_path, content):
    path = tmp_path / "flows.json"
    path.write_text(content)
    refused(dataplane("flow", path, timeout=BOUND), str(path))


FLOW = {"vrf": 0, "family": 4, "src": "10.0.0.1", "dst": "10.3.0.1", "proto": 6,
        "sport": 1000, "dport": 80, "in_port": 0, "nh_id": 1, "group": None,
        "member": None, "packets": 3, "bytes": 180, "closing": False, "fin": False,
        "rst": False}


@pytest.mark.parametrize("args, needle", [
    (["--proto", "bogus"], "--proto"), (["--proto", "300"], "--proto"),
    (["--port", "70000"], "--port"), (["--limit", "-1"], "--limit"),
    (["--vrf", "-1"], "--vrf"), (["--get", "-1"], "--get"),
    (["--match", "10.0.0.0/33"], "--match")])
def test_flow_arguments(tmp_path, args, needle):
    import json
    path = tmp_path / "flows.json"
    path.write_text(json.dumps([FLOW]))
    refused(dataplane("flow", path, *args, timeout=BOUND), needle)
    r = dataplane("flow", path, "--proto", "tcp", "--port", "80", timeout=BOUND)
    assert r.returncode == 0 and "1 of 1 flows" in r.stdout, r.stderr


# ---------------------------------------------------------------------------- run

@pytest.mark.parametrize("flag, value", [
    (flag, value) for flag in ("--duration", "--stats-interval")
    for value in ("nan", "inf", "-inf", "1e308", "0", "-1", "abc", "1e-9")])
def test_run_seconds_arguments(flag, value):
    """Refused by the argparse type, before any configuration is read or EAL starts
    (--duration nan or 1e308 ran forever; 0 and -1 were accepted)."""
    t0 = time.monotonic()
    r = dataplane("run", SAMPLE, f"{flag}={value}", timeout=BOUND)
    refused(r, flag)
    assert time.monotonic() - t0 < BOUND


# --------------------------------------------------------------------------- lcores

def test_lcore_named_twice():
    assert config_errors(dump(with_({"eal": {"lcores": "0,0"}}))) == [
        "lab.yaml: eal.lcores: must name each lcore once (lcore 0 is named twice), "
        "got '0,0'"]
    assert config_errors(dump(with_({"eal": {"lcores": "0@0,1@1,(1,2)@0"}}))) == [
        "lab.yaml: eal.lcores: must name each lcore once (lcore 1 is named twice), "
        "got '0@0,1@1,(1,2)@0'"]


@pytest.mark.parametrize("lcores, message", [
    ("0,200", "eal.lcores: must use lcore ids below 128 (lcore 200 is not below 128), "
              "got '0,200'"),
    ("0@0,1@5000", "eal.lcores: must use CPU ids below 1024 (CPU 5000 is not below "
                   "1024), got '0@0,1@5000'"),
    ("0-100000000", 'eal.lcores: must be a core list like "0-1" or "0,2" or an lcore map '
                    'like "0@0,1@1,2@1", got \'0-100000000\''),
])
def test_lcore_ids_bounded(lcores, message):
    t0 = time.monotonic()
    assert config_errors(dump(with_({"eal": {"lcores": lcores}}))) == [
        f"lab.yaml: {message}"]
    assert time.monotonic() - t0 < 2


def cpu_list(ids) -> str:
    """{0, 1, 2, 5} -> "0-2,5" (as the message writes a CPU set)."""
    runs = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def cpu_set(text: str) -> set[int]:
    out = set()
    for part in text.strip().split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def online_cpus() -> set[int]:
    return cpu_set(Path("/sys/devices/system/cpu/online").read_text())


def allowed_cpus() -> set[int]:
    """Online CPUs within the cpuset of this process's cgroup (read here directly)."""
    cpus = online_cpus()
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        num, controllers, path = line.split(":", 2)
        if "cpuset" in controllers.split(",") or (num == "0" and not controllers):
            for name in ("cpuset.effective_cpus", "cpuset.cpus.effective"):
                for base in ("/sys/fs/cgroup/cpuset", "/sys/fs/cgroup"):
                    f = Path(base + path.rstrip("/")) / name
                    if f.is_file() and f.read_text().strip():
                        return cpus & cpu_set(f.read_text())
    return cpus


def test_lcores_beyond_this_machine(tmp_path):
    """CPUs that are not online (or outside this process's cpuset) are refused by
    `check` and `run` before EAL prints its usage; the document itself stays valid
    (load_text does not look at the host)."""
    cpus = sorted(allowed_cpus())
    beyond = max(online_cpus()) + 1
    for lcores in (f"0,{beyond}", f"0@{cpus[0]},1@{beyond}", f"{cpus[0]}@{cpus[0]},{beyond}"):
        doc = with_({"eal": {"lcores": lcores}})
        path = write_config(tmp_path / "cpus.yaml", doc)
        load(path)                                  # the document itself is fine
        [line] = refused(dataplane("check", path, timeout=BOUND))
        assert re.fullmatch(r"cpus\.yaml: eal\.lcores: must name CPUs this process may run "
                            rf"on \([0-9,-]+; CPU {beyond} is not\), got {lcores!r}", line), line
        assert f"({cpu_list(cpus)}; " in line, line
        refused(dataplane("run", path, "--duration", "1", timeout=BOUND),
                "must name CPUs this process may run on")
    ok = with_({"eal": {"lcores": f"{cpus[0]}@{cpus[0]},1@{cpus[-1]}"}})
    r = dataplane("check", write_config(tmp_path / "ok.yaml", ok), timeout=BOUND)
    assert r.returncode == 0, r.stderr


@pytest.mark.skipif(len(online_cpus()) < 2, reason="needs two CPUs")
def test_an_inherited_affinity_is_no_limit(tmp_path):
    """A process pinned to one CPU by its parent (taskset; a test process whose own EAL
    pinned it) may still place its lcores on the others: EAL sets their affinity."""
    import subprocess
    from dpdk_util import child_env, cli_argv
    cpus = sorted(online_cpus())
    doc = with_({"eal": {"lcores": f"{cpus[0]},{cpus[1]}"}})
    path = write_config(tmp_path / "pinned.yaml", doc)
    r = subprocess.run(cli_argv("check", path), cwd=ROOT, env=child_env(), text=True,
                       capture_output=True, timeout=BOUND,
                       preexec_fn=lambda: os.sched_setaffinity(0, {cpus[0]}))
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("extra", [["-l", "0"], ["--lcores=0@0"], ["-c", "0x3"],
                                   ["--main-lcore", "1"], ["-l0-1"]])
def test_eal_extra_does_not_set_lcores(extra):
    errors = config_errors(dump(with_({"eal": {"extra": ["--no-pci", *extra]}})))
    assert len(errors) == 1 and errors[0].startswith(
        "lab.yaml: eal.extra[1]: must not set the lcores (eal.lcores does), got "), errors


# -------------------------------------------------------------------------- devargs

@pytest.mark.parametrize("devargs, message", [
    ("net_null0,size=abc", "must be a net_null size= of an integer from 1 to 2048, "
                           "got 'size=abc'"),
    ("net_null0,size=0", "must be a net_null size= of an integer from 1 to 2048, "
                         "got 'size=0'"),
    ("net_null0,size=-1", "must be a net_null size= of an integer from 1 to 2048, "
                          "got 'size=-1'"),
    ("net_null0,size=4096", "must be a net_null size= of an integer from 1 to 2048, "
                            "got 'size=4096'"),
    ("net_null0,size", "must be a net_null size= of an integer from 1 to 2048, "
                       "got 'size'"),
    ("net_null0,copy=yes", "must be a net_null copy= of 0 or 1, got 'copy=yes'"),
    ("net_null0,no-rx=2", "must be a net_null no-rx= of 0 or 1, got 'no-rx=2'"),
    ("net_null0,size=64,size=128", "must be a net_null argument given once, "
                                   "got 'size=128'"),
    ("net_pcap0,rx_pcap=a.pcap,infinite_rx=2",
     "must be a net_pcap infinite_rx= of 0 or 1, got 'infinite_rx=2'"),
    ("net_pcap0,rx_pcap=", "must be a net_pcap rx_pcap= of a file name, got 'rx_pcap='"),
    ("net_pcap0,iface=eth0,phy_mac=x", "must be a net_pcap phy_mac= of 0 or 1, "
                                        "got 'phy_mac=x'"),
    ("net_ring0,nodeaction=r0:0", "must be a net_ring nodeaction= of "
                                  "NAME:NODE:CREATE or NAME:NODE:ATTACH, "
                                  "got 'nodeaction=r0:0'"),
    ("net_tap0,mac=zz", 'must be a net_tap mac= of "fixed" or a MAC address, '
                        "got 'mac=zz'"),
    ("net_tap0,iface=" + "t" * 16, "must be a net_tap iface= of an interface name of 1 "
                                   "to 15 characters without '/' or spaces, got 'iface="),
])
def test_vdev_values(devargs, message):
    errors = config_errors(dump(with_({"ports[0].devargs": devargs})))
    assert errors == [f"lab.yaml: ports[0].devargs: {message}"] or \
        errors[0].startswith(f"lab.yaml: ports[0].devargs: {message}"), errors


def test_vdev_values_that_are_fine():
    for i, devargs in enumerate([
            "net_null0,size=64,copy=1,no-rx=1", "net_null0,size=0x40,copy=0",
            "net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap,infinite_rx=1",
            "net_pcap0,rx_pcap=a.pcap,rx_pcap=b.pcap,tx_pcap=c.pcap,tx_pcap=d.pcap",
            "net_pcap0,iface=eth0,phy_mac=1", "net_tap0,iface=ce1,mac=fixed,persist",
            "net_tap0,mac=02:00:00:00:00:09,remote=eth0", "net_ring0,nodeaction=r0:0:CREATE",
            "net_ring0,nodeaction=r0:0:CREATE,nodeaction=r1:0:ATTACH"]):
        load_text(dump(with_({"ports[0].devargs": devargs})), f"ok{i}.yaml")


def test_null_size_fits_the_mbuf():
    """net_null writes `size` bytes into one mbuf: at most its data room."""
    assert config_errors(dump(with_({"ports[0].devargs": "net_null0,size=3000"}))) == [
        "lab.yaml: ports[0].devargs: must be a net_null size= of an integer from 1 to 2048, "
        "got 'size=3000'"]
    load_text(dump(with_({"ports[0].devargs": "net_null0,size=3000",
                          "eal": {"mbuf_size": 4096}})))


def test_null_size_abc_in_check(tmp_path):
    doc = with_({"ports[0].devargs": "net_null0,size=abc"})
    refused(dataplane("check", write_config(tmp_path / "n.yaml", doc), timeout=BOUND),
            "ports[0].devargs: must be a net_null size=")


# --------------------------------------------------------------------------- memory

def test_256_vrfs_need_memory_mb():
    doc = with_({"vrfs": {(f"v{i}" if i else "default"): {"routes": [
        {"prefix": f"10.{i}.0.0/16", "via": "nh1"}]} for i in range(256)}})
    [error] = config_errors(dump(doc))
    m = re.fullmatch(r"lab\.yaml: eal\.memory_mb: must be at least (\d+) for this "
                     r"configuration \(the IPv4 LPM tables of 256 VRFs (\d+) MiB, .*\): "
                     r"raise eal\.memory_mb to \1, got 512", error)
    assert m, error
    assert 256 * 64 < int(m.group(1)) < 256 * 66 and int(m.group(2)) >= 256 * 64


def test_100k_ipv6_routes_need_memory_mb():
    text = dump(with_({"vrfs.default.routes": []})).replace(
        "routes: []", "routes:\n" + "".join(
            f"    - {{prefix: '2001:db8:{i >> 16:x}:{i & 0xffff:x}::/64', via: nh1}}\n"
            for i in range(100_000)))
    [error] = config_errors(text)
    m = re.search(r"raise eal\.memory_mb to (\d+), got 512$", error)
    assert m and "the IPv6 LPM tables of 1 VRF" in error, error
    assert 1400 < int(m.group(1)) < 1600, error


def test_ipv6_routes_beyond_rte_lpm6(monkeypatch):
    from dataplane.config import memory         # noqa: F401 (new in issue 18)
    monkeypatch.setattr(memory, "LPM6_MAX_TBL8", 14 * 3)
    routes = [{"prefix": f"2001:db8:{i}::/48", "via": "nh1"} for i in range(4)]
    errors = config_errors(dump(with_({"vrfs.default.routes": routes})))
    assert errors == ["lab.yaml: vrfs.default.routes: must have at most 3 IPv6 routes "
                      "(rte_lpm6 holds 42 tbl8 groups, 14 per route), got 4"], errors


def _needed_mb(doc: dict) -> int:
    error = config_errors(dump(with_({"eal": {**doc.get("eal", {}), "memory_mb": 64}},
                                     doc)))[0]
    return int(re.search(r"raise eal\.memory_mb to (\d+)", error).group(1))


@pytest.mark.parametrize("shape", ["sample", "vrfs", "many"])
def test_the_forwarder_runs_at_the_memory_it_asks_for(tmp_path, shape):
    """The figure the check asks for is enough: the forwarder starts and runs with
    exactly eal.memory_mb = that figure (and the check accepts it)."""
    doc = base()
    if shape == "vrfs":
        doc["vrfs"].update({f"v{i}": {"routes": [{"prefix": "10.0.0.0/8", "via": "nh1"}]}
                            for i in range(1, 4)})
    elif shape == "many":
        doc["vrfs"]["default"]["routes"] += (
            [{"prefix": f"11.{i >> 8}.{i & 255}.0/24", "via": "nh1"} for i in range(3000)]
            + [{"prefix": f"12.0.{i >> 8}.{i & 255}/32", "via": "nh1"} for i in range(3000)]
            + [{"prefix": f"2001:db8:1:{i:x}::/64", "via": "nh1"} for i in range(3000)])
    mb = _needed_mb(doc)
    doc["eal"] = {"memory_mb": mb}
    path = write_config(tmp_path / "m.yaml", doc)
    r = dataplane("run", path, "--duration", "0.2", "-q", timeout=120)
    assert r.returncode == 0, (mb, r.stderr[-2000:])


def test_no_huge_false_is_not_capped_by_memory_mb():
    """With huge pages EAL grows beyond -m on demand: memory_mb is no cap there."""
    doc = with_({"eal": {"no_huge": False, "memory_mb": 64}})
    load_text(dump(doc))


# --------------------------------------------------------------------- host memory

def fake_host(root: Path, meminfo_kb: int, v1=None, v2=None) -> None:
    """A /proc with meminfo, self/cgroup and self/mountinfo, and cgroup directories
    under root/sys: v1/v2 = (limit, usage, inactive_file) of the process's cgroup."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(f"MemTotal: {2 * meminfo_kb} kB\n"
                                  f"MemAvailable: {meminfo_kb} kB\nHugePages_Free: 0\n"
                                  "Hugepagesize: 2048 kB\n")
    cgroup, mounts = [], []
    if v1:
        d = root / "sys/memory/box/job"
        d.mkdir(parents=True)
        limit, usage, cache = v1
        (d / "memory.limit_in_bytes").write_text(f"{limit}\n")
        (d / "memory.usage_in_bytes").write_text(f"{usage}\n")
        (d / "memory.stat").write_text(f"cache 5\ntotal_inactive_file {cache}\n")
        (root / "sys/memory/memory.limit_in_bytes").write_text("9223372036854771712\n")
        cgroup.append("4:memory:/box/job")
        mounts.append(f"35 31 0:32 / {root}/sys/memory rw,relatime - cgroup cgroup "
                      "rw,memory")
    if v2:
        d = root / "sys/unified/box.slice/job.scope"
        d.mkdir(parents=True)
        limit, usage, cache = v2
        (d / "memory.max").write_text(f"{limit}\n")
        (d / "memory.current").write_text(f"{usage}\n")
        (d / "memory.stat").write_text(f"anon 1\ninactive_file {cache}\n")
        (root / "sys/unified/box.slice/memory.max").write_text("max\n")
        cgroup.append("0::/box.slice/job.scope")
        mounts.append(f"30 23 0:26 / {root}/sys/unified rw - cgroup2 cgroup2 rw")
    (proc / "self/cgroup").write_text("\n".join(cgroup) + "\n")
    (proc / "self/mountinfo").write_text("\n".join(mounts) + "\n")


GiB = 1 << 30


@pytest.mark.parametrize("v1, v2, expect", [
    (None, None, 16 * GiB),                                     # no cgroup: MemAvailable
    ((6 * GiB, 2 * GiB, GiB), None, 5 * GiB),                   # v1: 6 - (2 - 1)
    (None, (6 * GiB, 3 * GiB, 0), 3 * GiB),                     # v2
    ((9223372036854771712, GiB, 0), (4 * GiB, GiB, 0), 3 * GiB),    # v1 unlimited, v2
    ((6 * GiB, 0, 0), (GiB << 40, 0, 0), 6 * GiB),              # v2 limit beyond RAM
])
def test_available_memory_reads_the_cgroup(tmp_path, monkeypatch, v1, v2, expect):
    from dataplane.config import host
    fake_host(tmp_path, 16 * GiB >> 10, v1, v2)
    monkeypatch.setattr(host, "PROC", str(tmp_path / "proc"))
    avail, what = host.available_memory()
    assert avail == expect, what
    assert ("cgroup" in what) == (expect != 16 * GiB), what


def test_flow_tables_beyond_the_cgroup_are_refused(tmp_path, monkeypatch, capsys):
    """A 6 GiB memory cgroup on a host with 64 GiB available: flow tables of 8 Mi flows
    (≈ 2.4 GiB per worker) for two workers do not fit; check says so, naming the cgroup."""
    from dataplane.config import host
    fake_host(tmp_path, 64 * GiB >> 10, v2=(6 * GiB, 2 * GiB, 0))
    monkeypatch.setattr(host, "PROC", str(tmp_path / "proc"))
    monkeypatch.setattr(host, "cpus", lambda: {0, 1, 2})
    doc = with_({"flow_table": {"entries": 1 << 23}, "eal": {"lcores": "0-2"}})
    path = write_config(tmp_path / "ft.yaml", doc)
    with pytest.raises(SystemExit) as info:
        cli.main(["check", str(path)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    [line] = err.strip().splitlines()[1:]
    assert line.startswith("ft.yaml: flow_table.entries: must fit this host's memory: "
                           "the forwarder needs "), line
    assert "available under the memory cgroup limit" in line and "6144 MiB" in line, line
    assert line.endswith("lower flow_table.entries, eal.memory_mb or eal.mbufs, "
                         "got 8388608"), line
    doc["flow_table"]["entries"] = 1 << 20
    write_config(path, doc)
    assert cli.main(["check", str(path)]) == 0
