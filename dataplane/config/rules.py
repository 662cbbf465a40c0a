"""The checkers of the configuration (dataplane/config/validate.py walks the document with
them): one small function ``(ctx, value)`` per kind of value, returning the converted
value or BAD after recording ``<file>: <path>: must be <rule>, got <value>`` at ctx; and
records (``{key: (checker, default)}``) for the flat sections."""
from __future__ import annotations

import ipaddress
import math
import re

from ..limits import MAX_FAT_RULES, MAX_NEXTHOP_LABELS, MAX_SWAP, MAX_WORKERS
from .lcores import LcoreError, parse_lcores
from .model import (DEFAULT_HASH_FIELDS, FAT_FLOW_PROTOS, HASH_FIELDS, Eal, FatFlowRule,
                    FlowTable, HashSpec, Tunnel)

# One push writes at most 16 label stack entries (docs/mpls.md §1, MAX_PUSH): a next
# hop's labels (at most 12) + ELI/EL + a pseudowire label + a FAT label. A swap writes at
# most 12 labels in place of one.
MAX_SWAP_LABELS = MAX_SWAP

# vdev devargs are checked against the drivers and keys of the installed DPDK's PMD
# plugins (dataplane/drivers.py). Only when those cannot be read: this built-in list of
# vdev drivers with the devargs keys each takes (None: keys not checked), from DPDK 22.11.
VDEV_ARGS = {
    "net_pcap": ("rx_pcap", "tx_pcap", "rx_iface", "rx_iface_in", "tx_iface", "iface",
                 "phy_mac", "infinite_rx"),
    "net_tap": ("iface", "mac", "remote", "persist"),
    "net_ring": ("nodeaction",),
    "net_null": ("size", "copy", "no-rx"),
    "net_af_packet": None, "net_memif": None, "net_virtio_user": None, "net_vhost": None,
}
PCI_RE = re.compile(r"([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]")
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
NAME_RULE = "a name of letters, digits, '_' and '-' starting with a letter or '_'"
NODE_NAME_RE = re.compile(r"[A-Za-z0-9_.-]+")
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}")
MAX_NAME = 64         # node, port, VRF, next hop, group and pseudowire names (a node's
#                       name is in its control socket's path: sun_path holds 108 bytes)
SHOWN = 80            # a value in a message is cut to about this many characters
LFIB_ACTIONS = {"swap": ("labels", "via"), "pop": (), "pop-lookup": ("vrf",),
                "pop-xconnect": ("pseudowire",)}


class HugeInt:
    """An integer literal with more digits than Python converts (int_max_str_digits): a
    value the checkers reject like any other non-integer, shown by its first digits."""
    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __eq__(self, other) -> bool:
        return isinstance(other, HugeInt) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("HugeInt", self.text))

    def __repr__(self) -> str:
        digits = sum(c.isdigit() for c in self.text)
        return f"{self.text[:40]}…({digits} digits)"


def short(value, limit: int = SHOWN) -> str:
    """repr(value), cut to about `limit` characters without building the whole repr
    (a list of a million items, an alias bomb, a 5,000-digit integer): what does not fit
    ends in "…"; a long string says how long it is."""
    out: list[str] = []
    room, cut = [limit], [False]

    def put(text: str, whole: bool = False) -> bool:
        """Append text (cut to the room left unless whole); False if it did not fit."""
        if room[0] <= 0 or len(text) > room[0] and not whole:
            out.append(text[:max(0, room[0])])
            room[0], cut[0] = 0, True
            return False
        out.append(text)
        room[0] -= len(text)
        return True

    def walk(v, depth: int) -> bool:
        if room[0] <= 0:
            return put("")
        if isinstance(v, str):
            if len(v) <= max(room[0], 24) and (len(text := repr(v)) <= room[0]
                                                or len(v) <= 24):
                return put(text)
            text = repr(v[:max(8, room[0] - 24)])
            return put(f"{text[:-1]}…{text[-1]} ({len(v)} characters)", whole=True)
        if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 128:
            # never converted to decimal: slow, and refused past 4,300 digits
            return put(f"<an integer of {v.bit_length()} bits>")
        if isinstance(v, (list, tuple, dict)):
            if depth >= 32:
                return put("…")
            opening, closing = ("[", "]") if isinstance(v, list) else (
                ("(", ")") if isinstance(v, tuple) else ("{", "}"))
            if not put(opening):
                return False
            for i, item in enumerate(v.items() if isinstance(v, dict) else v):
                if i and not put(", "):
                    return False
                if isinstance(v, dict):
                    if not (walk(item[0], depth + 1) and put(": ") and
                            walk(item[1], depth + 1)):
                        return False
                elif not walk(item, depth + 1):
                    return False
            if isinstance(v, tuple) and len(v) == 1 and not put(","):
                return False
            return put(closing)
        if isinstance(v, (bytes, bytearray)):
            v = v[:room[0]]
        return put(repr(v))

    walk(value, 0)
    return "".join(out) + ("…" if cut[0] else "")


class ConfigError(Exception):
    """The configuration is invalid; `errors` holds one message per problem."""

    def __init__(self, errors: list[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def __str__(self) -> str:
        return "\n".join(self.errors)


class _Bad:
    def __repr__(self) -> str:
        return "<invalid>"


BAD = _Bad()          # a value that failed its check (its error is already recorded)
REQUIRED = object()   # the default of a key that must be present


class Ctx:
    """A place in the document; the path is built only when an error is reported."""
    __slots__ = ("file", "errors", "parent", "key")

    def __init__(self, file: str, errors: list[str], parent: Ctx | None = None, key=None):
        self.file, self.errors, self.parent, self.key = file, errors, parent, key

    def at(self, key) -> Ctx:
        """A mapping key (str) or a list index (int) below this place."""
        return Ctx(self.file, self.errors, self, key)

    @property
    def path(self) -> str:
        if self.parent is None:
            return ""
        head = self.parent.path
        if isinstance(self.key, int) and not isinstance(self.key, bool):
            return f"{head}[{self.key}]"
        key = key_text(self.key)
        return f"{head}.{key}" if head else key

    def report(self, message: str) -> _Bad:
        path = self.path
        self.errors.append(f"{self.file}: {path}: {message}" if path else
                           f"{self.file}: {message}")
        return BAD

    def error(self, rule: str, value) -> _Bad:
        return self.report(f"must be {rule}, got {short(value)}")


def key_text(key) -> str:
    """A mapping key as a path element: a string as it is (cut), anything else short."""
    if isinstance(key, str):
        return key if len(key) <= 40 else key[:40] + f"…({len(key)} characters)"
    return short(key, 40)


# ---- generic checkers -------------------------------------------------------------

def checker(rule: str, ok, convert=lambda v: v):
    """A checker that accepts values for which ok(value) holds."""
    def check(ctx, value):
        return convert(value) if ok(value) else ctx.error(rule, value)
    return check


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def integer(lo: int, hi: int | None = None):
    rule = f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"
    return checker(rule, lambda v: _is_int(v) and lo <= v and (hi is None or v <= hi))


def one_of(*choices: str):
    return checker("one of " + ", ".join(choices),
                   lambda v: isinstance(v, str) and v in choices)


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, math.isqrt(n) + 1))


def _finite_positive(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, int):
        return 0 < v <= 1 << 53         # float(v) of a huge int raises OverflowError
    return math.isfinite(v) and v > 0


boolean = checker("true or false", lambda v: isinstance(v, bool))
string = checker("a string", lambda v: isinstance(v, str))
seconds = checker("a number of seconds > 0", _finite_positive, float)


def named_like(rule: str, pattern: re.Pattern):
    """A checker for a name: at most MAX_NAME characters of `pattern`."""
    def check(ctx, value):
        if isinstance(value, str) and len(value) > MAX_NAME:
            return ctx.error(f"at most {MAX_NAME} characters", value)
        if isinstance(value, str) and pattern.fullmatch(value):
            return value
        return ctx.error(rule, value)
    return check


name = named_like(NAME_RULE, NAME_RE)
label = checker("an MPLS label from 16 to 1048575 (0-15 are reserved)",
                lambda v: _is_int(v) and 16 <= v <= 0xFFFFF)


def power_of_two(lo: int, hi: int):
    return checker(f"a power of two from {lo} to {hi}",
                   lambda v: _is_int(v) and lo <= v <= hi and v & (v - 1) == 0)


def ip_address(ctx, value):
    try:
        if isinstance(value, str):
            return ipaddress.ip_address(value)
    except ValueError:
        pass
    return ctx.error("an IPv4 or IPv6 address", value)


def prefix(ctx, value):
    if isinstance(value, str) and "/" in value:
        try:
            return ipaddress.ip_network(value)
        except ValueError:
            try:
                ipaddress.ip_network(value, strict=False)
                return ctx.error("a prefix with no host bits set", value)
            except ValueError:
                pass
    return ctx.error("an IPv4 or IPv6 prefix", value)


def unicast_mac(ctx, value):
    if not (isinstance(value, str) and MAC_RE.fullmatch(value)):
        return ctx.error('a MAC address "xx:xx:xx:xx:xx:xx"', value)
    mac = bytes.fromhex(value.replace(":", ""))
    if mac[0] & 1:
        return ctx.error("a unicast MAC address (low bit of the first byte clear)", value)
    if not any(mac):
        return ctx.error("a non-zero MAC address", value)
    return mac


def lcores(ctx, value):
    text = str(value) if _is_int(value) and 0 <= value < 1 << 20 else value
    rule = 'a core list like "0-1" or "0,2" or an lcore map like "0@0,1@1,2@1"'
    if not isinstance(text, str) or len(text) > 4096:
        return ctx.error(rule, value)
    try:
        ids = parse_lcores(text)
    except LcoreError as e:
        if e.kind == "twice":
            return ctx.report(f"must name each lcore once ({e}), got {short(value)}")
        if e.kind == "range":
            what, bound = str(e).split()[0], str(e).split()[-1]
            return ctx.report(f"must use {what} ids below {bound} ({e}), got {short(value)}")
        return ctx.error(rule, value)
    except ValueError:
        return ctx.error(rule, value)
    if len(ids) - 1 > MAX_WORKERS:
        return ctx.error(f"a main lcore and at most {MAX_WORKERS} workers", value)
    return text


# EAL options that choose the lcores: eal.lcores does, and a second choice in eal.extra
# leaves the workers' lcores unlaunchable ("launch worker: Broken pipe")
LCORE_FLAGS = ("-l", "-c", "--lcores", "--main-lcore", "--master-lcore", "--coremask")


def eal_extra(ctx, value):
    items = list_of(string)(ctx, value)
    if items is BAD:
        return BAD
    for i, arg in enumerate(items):
        if arg is BAD:
            continue
        flag = arg.split("=", 1)[0]
        if flag in LCORE_FLAGS or (flag[:2] in ("-l", "-c") and not flag.startswith("--")):
            ctx.at(i).report(f"must not set the lcores (eal.lcores does), got {short(arg)}")
    return items


def _vdev(driver: str):
    """(known, keys, vdevs, note) for vdev `driver`: is it a net vdev driver, its devargs
    keys (None: not checked), all net vdev drivers, and "" or why the list is built in."""
    from .. import drivers
    try:
        drv = drivers.find(driver)
        if drv is not None and drv.is_vdev and drv.kind == "net":
            return True, drv.keys, None, ""
        return False, None, drivers.vdev_names(), ""
    except drivers.Unavailable as e:
        note = f" ({e.short}: checked against a built-in list)"
    except Exception as e:          # an unreadable plugin must not stop validation
        note = f" (DPDK PMD plugins not read, {e}: checked against a built-in list)"
    return driver in VDEV_ARGS, VDEV_ARGS.get(driver), list(VDEV_ARGS), note


# The values of the vdev devargs keys DPDK 22.11's PMDs parse, where a bad one fails late
# or misleads (net_null: "size=abc" is strtoul's 0, a 0-byte rte_zmalloc and "Cannot
# allocate memory"; a size beyond the mbuf's data room is written past it; a key given
# twice is ignored). Keys of other drivers, and these drivers' keys not listed, are
# only checked against the driver's key list.
IFNAME_RULE = "an interface name of 1 to 15 characters without '/' or spaces"
_IFNAME = re.compile(r"[^/\s:]{1,15}")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]{1,8}|[0-9]{1,10}")
_NODEACTION = re.compile(r"[^:]{1,64}:[0-9]{1,3}:(CREATE|ATTACH)")


def _strtoul(text: str):
    """C strtoul(text, NULL, 0) of a whole number (hex 0x.., octal 0.., decimal); None
    if text is not one."""
    if not _NUMBER.fullmatch(text):
        return None
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if len(text) > 1 and text[0] == "0":
        return int(text, 8) if set(text) <= set("01234567") else None
    return int(text)


def _values(data_room: int) -> dict:
    """{driver: {key: (rule, ok(value or None))}} (value None: the key without '=')."""
    def flag01(v):
        return v in ("0", "1")
    size_rule = f"an integer from 1 to {data_room}"
    ifname = (IFNAME_RULE, lambda v: v is not None and bool(_IFNAME.fullmatch(v)))
    return {
        "net_null": {
            "size": (size_rule, lambda v: v is not None and
                     (n := _strtoul(v)) is not None and 1 <= n <= data_room),
            "copy": ("0 or 1", flag01), "no-rx": ("0 or 1", flag01)},
        "net_pcap": {
            "rx_pcap": ("a file name", bool), "tx_pcap": ("a file name", bool),
            "rx_iface": ifname, "rx_iface_in": ifname, "tx_iface": ifname, "iface": ifname,
            "phy_mac": ("0 or 1", flag01), "infinite_rx": ("0 or 1", flag01)},
        "net_ring": {
            "nodeaction": ("NAME:NODE:CREATE or NAME:NODE:ATTACH",
                           lambda v: v is not None and bool(_NODEACTION.fullmatch(v)))},
        "net_tap": {
            "iface": (IFNAME_RULE, lambda v: v is not None and
                      bool(_IFNAME.fullmatch(v))),
            "mac": ('"fixed" or a MAC address',
                    lambda v: v is not None and (v.lower() == "fixed" or
                                                 bool(MAC_RE.fullmatch(v)))),
            "remote": ifname},
    }


REPEATABLE = {"net_pcap": {"rx_pcap", "tx_pcap", "rx_iface", "rx_iface_in", "tx_iface"},
              "net_ring": {"nodeaction"}}      # one queue each


def devargs_checker(data_room: int = 2176 - 128):
    """A checker of a port's devargs; net_null's size must fit `data_room` bytes (the
    mbuf's data room: eal.mbuf_size less the 128-byte headroom)."""
    values = _values(data_room)

    def check(ctx, value):
        if not isinstance(value, str) or not value:
            return ctx.error("a PCI address or vdev devargs string", value)
        if len(value) > 4096:
            return ctx.error("a devargs string of at most 4096 characters", value)
        dev, *args = value.split(",")
        driver, allowed, note = None, None, ""
        if not PCI_RE.fullmatch(dev):
            driver = dev.rstrip("0123456789")
            known, allowed, vdevs, note = _vdev(driver)
            if not known:
                return ctx.report("must be a PCI address like 0000:01:00.0 or a vdev of "
                                  f"{', '.join(vdevs)}, got {short(value)}{note}")
        bad = False
        seen = set()
        for arg in args:
            key, eq, val = arg.partition("=")
            if not key:
                bad = ctx.error("comma-separated key=value arguments", value)
            elif allowed is not None and key not in allowed:
                keys = ", ".join(allowed) or "it takes none"
                bad = ctx.report(f"must be a {driver} argument ({keys}), got {short(arg)}"
                                 f"{note}")
            elif key in values.get(driver, {}) and \
                    not values[driver][key][1](val if eq else None):
                bad = ctx.report(f"must be a {driver} {key}= of {values[driver][key][0]}, "
                                 f"got {short(arg)}")
            elif driver in values and key in seen and \
                    key not in REPEATABLE.get(driver, ()):
                bad = ctx.report(f"must be a {driver} argument given once, got {short(arg)}")
            seen.add(key)
        return BAD if bad else value
    return check


devargs = devargs_checker()


def fields(ctx, value, spec: dict, none_is_empty: bool = True):
    """Check a mapping against spec {key: (checker, default)}; returns {key: value}.
    None is an empty mapping (`section:` with nothing under it) unless none_is_empty is
    false (a list item: `ports: [null]`)."""
    if value is None and none_is_empty:
        value = {}
    if not isinstance(value, dict):
        return ctx.error("a mapping", value)
    for key in value:
        if key not in spec:
            ctx.report(f"unknown key {short(key, 40)}, allowed: {', '.join(spec)}")
    out = {}
    for key, (check, default) in spec.items():
        if key in value:
            out[key] = check(ctx.at(key), value[key])
        elif default is REQUIRED:
            out[key] = ctx.at(key).report("is required")
        else:
            out[key] = default() if callable(default) else default
    return out


def record(spec: dict, build=dict, none_is_empty: bool = True):
    """A checker for a mapping with fixed keys, built into `build(**fields)`."""
    def check(ctx, value):
        out = fields(ctx, value, spec, none_is_empty)
        return out if out is BAD else build(**out)
    return check


def list_of(item, lo: int = 0, hi: int | None = None, what: str = "entries",
            convert=list):
    """A checker for a list whose items are checked by `item` (BAD items are kept)."""
    def check(ctx, value):
        if not isinstance(value, list):
            return ctx.error("a list", value)
        if len(value) < lo or (hi is not None and len(value) > hi):
            rule = (f"a list of {lo} to {hi} {what}" if hi is not None
                    else f"a list of at least {lo} {what}")
            ctx.report(f"must be {rule}, got {len(value)} {what}")
        return convert(item(ctx.at(i), v) for i, v in enumerate(value))
    return check


def named(item, most: int, what: str):
    """A checker for a mapping name -> entry; `item(ctx, name, index, value)`."""
    def check(ctx, value):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            return ctx.error(f"a mapping of name to {what[:-1]}", value)
        if len(value) > most:
            ctx.report(f"must be at most {most} {what}, got {len(value)} {what}")
        out = []
        for index, (key, entry) in enumerate(value.items()):
            here = ctx.at(key if isinstance(key, str) else key_text(key))
            name(here, key)
            out.append(item(here, key, index, entry))
        return out
    return check


def unique(ctx, items: list, rule: str, attr: str | None = None, key=lambda v: v):
    """Report each item (or its `attr`) whose key repeats an earlier one."""
    seen = set()
    for i, item in enumerate(items):
        if item is BAD:
            continue
        value = item if attr is None else (
            item[attr] if isinstance(item, dict) else getattr(item, attr))
        if value is BAD or value is None:
            continue
        k = key(value)
        if k in seen:
            here = ctx.at(i) if attr is None else ctx.at(i).at(attr)
            here.error(rule, value if isinstance(value, (str, int)) else str(value))
        seen.add(k)


def _hint(names) -> str:
    first = [key_text(n) for n, _ in zip(names, range(9))]
    if not first:
        return "none defined"
    return ", ".join(first[:8]) + (", ..." if len(first) > 8 else "")


labels = list_of(label, 0, MAX_NEXTHOP_LABELS, "labels")
hash_fields = list_of(one_of(*HASH_FIELDS), 1, len(HASH_FIELDS), "fields", tuple)


def hash_fields_unique(ctx, value):
    out = hash_fields(ctx, value)
    if out is not BAD:
        unique(ctx, out, "unique")
    return out


EAL = record({
    "lcores": (lcores, Eal.lcores), "memory_mb": (integer(64, 65536), Eal.memory_mb),
    "no_huge": (boolean, Eal.no_huge), "mbufs": (integer(1024), Eal.mbufs),
    "mbuf_size": (integer(256, 65535), Eal.mbuf_size), "mlock": (boolean, Eal.mlock),
    "extra": (eal_extra, list)}, Eal)
FLOW_TABLE = record({
    "entries": (power_of_two(1024, 1 << 30), FlowTable.entries),
    "idle_timeout": (seconds, FlowTable.idle_timeout),
    "tcp_close_timeout": (seconds, FlowTable.tcp_close_timeout),
    "on_full": (one_of("hash", "drop"), FlowTable.on_full)}, FlowTable)
HASH = record({
    "fields": (hash_fields_unique, DEFAULT_HASH_FIELDS), "symmetric": (boolean, False),
    "fragments": (one_of("follow", "l3"), "follow")}, HashSpec)
TUNNEL = record({"type": (one_of("mpls-udp", "mpls-gre"), REQUIRED),
                 "remote": (ip_address, REQUIRED)}, Tunnel)
FAT_FLOW = record({
    "proto": (one_of("tcp", "udp", "icmp", "sctp"), REQUIRED),
    "port": (integer(0, 65535), 0), "ignore": (one_of("none", "src", "dst"), "none"),
    "src_prefix_len": (integer(0, 128), None), "dst_prefix_len": (integer(0, 128), None)},
    none_is_empty=False)
BUCKETS = checker("a power of two or a prime from 64 to 65536",
                  lambda v: _is_int(v) and 64 <= v <= 65536
                  and (v & (v - 1) == 0 or _is_prime(v)))


def fat_flows(ctx, value):
    """The rules of one port, compiled to FatFlowRule (protocol by number)."""
    rules = list_of(FAT_FLOW, 0, MAX_FAT_RULES, "rules")(ctx, value)
    if rules is BAD:
        return BAD
    seen = set()
    for i, rule in enumerate(rules):
        if rule is BAD or BAD in (rule["proto"], rule["port"]):
            continue
        if rule["proto"] == "icmp" and rule["port"] != 0:
            ctx.at(i).at("port").error("0 for icmp (ICMP has no ports)", rule["port"])
        if (rule["proto"], rule["port"]) in seen:
            ctx.at(i).error("unique per proto and port", value[i])
        seen.add((rule["proto"], rule["port"]))
    if any(r is BAD or BAD in r.values() for r in rules):
        return BAD
    return [FatFlowRule(FAT_FLOW_PROTOS[r["proto"]], r["port"], r["ignore"],
                        r["src_prefix_len"], r["dst_prefix_len"]) for r in rules]


# ---- the document ------------------------------------------------------------------
