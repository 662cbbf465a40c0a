"""Route tables at scale (issue 18): a million routes checked in seconds, in tens of MB.

Through PyYAML and the per-value checkers a route costs about 100 µs and a kilobyte or
two (a node per scalar, a dict, a Route, an ip_network); a million took minutes and GBs.
Here the common one-line form

    - {prefix: "10.1.0.0/16", via: nh1}

(quotes optional around an IPv4 prefix, single or double; `via` a plain name or quoted)
is read without YAML: `find_runs` finds runs of such lines (same indentation, at least
RUN_MIN of them) and replaces each run by one placeholder item tagged
`!dp-route-run-<token>` (the other lines of the run become empty, so every line number
stays), which the loader turns into the RouteRun holding the run's routes. Anything else
(block style, comments, anchors, IPv6 without quotes...) goes through YAML as before.
validate.py then checks a run in bulk (`RouteTableBuilder.add_run`): plainly valid IPv4
prefixes are parsed here already, and every line with anything to report goes through
the very checkers a YAML route goes through, so errors are the same lines with the same
paths. The result is a model.RouteTable (numpy columns).

The placeholder is accepted only where a route list is (`vrfs.<vrf>.routes`); a run the
loader did not build (inside a block scalar, a quoted string) or found anywhere else
makes validate.py parse the original text with YAML alone.
"""
from __future__ import annotations

import copy
import ipaddress
import re
import secrets
import socket
from array import array

import numpy as np

from .model import RouteTable

RUN_MIN = 16                    # shorter runs are left to YAML
RUN_TAG = "!dp-route-run-"
NODES_PER_ROUTE = 5             # what YAML builds for one: a mapping and four scalars

# YAML 1.1 plain scalars that are not strings; a `via` spelled so goes through YAML
_NOT_STR = {"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false",
            "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null",
            "NULL"}
_DQ = r'"([ !#-\[\]-~]*)"'               # printable ASCII without " and \ (no escapes)
_SQ = r"'([ -&(-~]*)'"                   # printable ASCII without ' (no '' escape)
_ROUTE_LINE = re.compile(
    r"^( *)- \{prefix: (?:" + _DQ + "|" + _SQ + r"|([0-9][0-9.]*/[0-9]+))"
    r", via: (?:" + _DQ + "|" + _SQ + r"|([A-Za-z_][A-Za-z0-9_-]*))\} *$", re.M)


class RouteRun:
    """Consecutive one-line routes, as the loader hands them to the validator.

    Line i has its prefix parsed (addr, plen) when it is plainly a valid IPv4 network,
    else its text in raw[i]; its via is via_names[via[i]]."""
    __slots__ = ("line", "addr", "plen", "raw", "via_names", "via")

    def __init__(self, line: int):
        self.line = line                        # 0-based line of its first route
        self.addr, self.plen = array("I"), array("B")
        self.raw: dict[int, str] = {}
        self.via_names: list[str] = []
        self.via = array("I")

    def __len__(self) -> int:
        return len(self.via)

    def __repr__(self) -> str:
        return f"<{len(self)} routes from line {self.line + 1}>"

    def prefix_text(self, i: int) -> str:
        if i in self.raw:
            return self.raw[i]
        return f"{ipaddress.IPv4Address(self.addr[i])}/{self.plen[i]}"

    def items(self) -> list[dict]:
        """The routes as YAML would have read them ({prefix, via} dicts)."""
        return [{"prefix": self.prefix_text(i), "via": self.via_names[self.via[i]]}
                for i in range(len(self))]


def _ipv4_network(text: str):
    """(address, prefix length) if text is an IPv4 network as ipaddress.ip_network
    accepts it strictly ("a.b.c.d/n", n in decimal, no host bits), else None (the
    validator's own checker then decides and words the error). inet_pton is as strict
    as ipaddress: four decimal octets up to 255, no leading zeros
    (tests/test_config_scale.py compares them)."""
    addr, slash, plen = text.partition("/")
    if not slash or not (plen.isascii() and plen.isdigit()) or len(plen) > 3:
        return None
    try:
        a = int.from_bytes(socket.inet_pton(socket.AF_INET, addr), "big")
    except OSError:
        return None
    n = int(plen)
    if n > 32 or a & ((1 << (32 - n)) - 1):
        return None
    return a, n


def find_runs(text: str) -> tuple[str, list[RouteRun], str]:
    """(text with every run replaced by its placeholder, the runs, the tag token)."""
    if "{prefix: " not in text:
        return text, [], ""
    token = secrets.token_hex(8)
    runs: list[RouteRun] = []
    pieces: list[str] = []
    pos = 0                                     # text before pos is in pieces
    run_start = run_end = -1                    # current run's span in text
    indent = None
    lines: list[tuple] = []

    def close():
        nonlocal pos
        if len(lines) >= RUN_MIN:
            run = RouteRun(text.count("\n", 0, run_start))
            names: dict[str, int] = {}
            for p, v in lines:
                parsed = _ipv4_network(p)
                if parsed is None:
                    run.raw[len(run.via)] = p
                    parsed = (0, 0)
                run.addr.append(parsed[0])
                run.plen.append(parsed[1])
                k = names.get(v)
                if k is None:
                    k = names[v] = len(run.via_names)
                    run.via_names.append(v)
                run.via.append(k)
            pieces.append(text[pos:run_start])
            pieces.append(f"{indent}- {RUN_TAG}{token} {len(runs)}")
            pieces.append("\n" * (len(lines) - 1))
            pos = run_end
            runs.append(run)
        lines.clear()

    for m in _ROUTE_LINE.finditer(text):
        ind, pd, ps, pu, vd, vs, vu = m.groups()
        via = vd if vd is not None else vs if vs is not None else vu
        if vu is not None and vu in _NOT_STR:
            close()
            indent = None
            continue
        if lines and (ind != indent or m.start() != run_end + 1):
            close()
        if not lines:
            run_start, indent = m.start(), ind
        lines.append((pd if pd is not None else ps if ps is not None else pu, via))
        run_end = m.end()
    close()
    if not runs:
        return text, [], ""
    pieces.append(text[pos:])
    return "".join(pieces), runs, token


def run_lines(runs: list[RouteRun]) -> list[tuple[int, int]]:
    """[first, last] 0-based lines of each run."""
    return [(r.line, r.line + len(r) - 1) for r in runs]


def runs_in_place(data, runs: list[RouteRun]) -> bool:
    """True if every RouteRun in data is an item of a `vrfs.<vrf>.routes` list (the path,
    not only the object: an alias may put one list in two places)."""
    stack = [(data, 0)]           # state: 0 root, 1 vrfs, 2 a vrf, 3 its routes, -1 other
    while stack:
        obj, state = stack.pop()
        if isinstance(obj, RouteRun):
            if state != 4:
                return False
        elif isinstance(obj, dict):
            for k, v in obj.items():
                nxt = (1 if state == 0 and k == "vrfs" else 2 if state == 1 else
                       3 if state == 2 and k == "routes" else -1)
                stack.append((v, nxt))
        elif isinstance(obj, list):
            stack.extend((x, 4 if state == 3 else -1) for x in obj)
    return True


def expand_runs(doc):
    """A deep copy of a parsed document with every RouteRun replaced by its routes as
    {prefix, via} dicts: the document as YAML alone would have read it."""
    def walk(obj):
        if isinstance(obj, dict):
            return {k: walk(v) for k, v in obj.items()}
        if isinstance(obj, list):
            out = []
            for x in obj:
                if isinstance(x, RouteRun):
                    out.extend(x.items())
                else:
                    out.append(walk(x))
            return out
        return copy.deepcopy(obj)
    return walk(doc)


class RouteTableBuilder:
    """Collects a routes list's items in order (Route objects, BAD, and RouteRuns)
    into columns; `table()` makes the model.RouteTable. Items whose prefix is invalid
    are kept as placeholders (valid[i] = 0) so indexes stay those of the file."""

    def __init__(self):
        self.family, self.hi, self.lo = array("B"), array("Q"), array("Q")
        self.plen, self.group, self.index, self.valid = (array("B"), array("B"),
                                                         array("I"), array("B"))
        self.chunks: list[tuple] = []         # numpy blocks from runs, in order
        self.count = 0

    def _flush_scalars(self):
        if len(self.plen):
            self.chunks.append(tuple(np.frombuffer(a, dtype=d).copy() for a, d in (
                (self.family, np.uint8), (self.hi, np.uint64), (self.lo, np.uint64),
                (self.plen, np.uint8), (self.group, np.uint8), (self.index, np.uint32),
                (self.valid, np.uint8))))
            self.family, self.hi, self.lo = array("B"), array("Q"), array("Q")
            self.plen, self.group, self.index, self.valid = (array("B"), array("B"),
                                                             array("I"), array("B"))

    def add(self, net, via_group: bool = False, via_index: int = 0) -> None:
        """One route; net None when its prefix is invalid."""
        if net is None:
            self.family.append(0)
            self.hi.append(0)
            self.lo.append(0)
            self.plen.append(0)
        else:
            a = int(net.network_address)
            self.family.append(net.version)
            self.hi.append(a >> 64)
            self.lo.append(a & 0xFFFFFFFFFFFFFFFF)
            self.plen.append(net.prefixlen)
        self.group.append(bool(via_group))
        self.index.append(via_index)
        self.valid.append(net is not None)
        self.count += 1

    def add_columns(self, family, hi, lo, plen, group, index, valid) -> None:
        self._flush_scalars()
        self.chunks.append((family, hi, lo, plen, group, index, valid))
        self.count += len(plen)

    def table(self, names) -> tuple[RouteTable, np.ndarray]:
        """(the RouteTable, its valid-prefix mask)."""
        self._flush_scalars()
        if self.chunks:
            cols = [np.concatenate([c[k] for c in self.chunks]) for k in range(7)]
        else:
            cols = [np.zeros(0, d) for d in (np.uint8, np.uint64, np.uint64, np.uint8,
                                             np.uint8, np.uint32, np.uint8)]
        family, hi, lo, plen, group, index, valid = cols
        return (RouteTable(family, hi, lo, plen, group.astype(bool), index, names),
                valid.astype(bool))


def repeated(table: RouteTable, valid: np.ndarray) -> list[int]:
    """Indexes of the routes whose prefix an earlier route of the table has (in order):
    the ones `unique in the VRF` reports."""
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return []
    f, hi, lo, pl = (table.family[idx], table.hi[idx], table.lo[idx], table.plen[idx])
    order = np.lexsort((idx, pl, lo, hi, f))        # by key, then file order
    same = ((f[order][1:] == f[order][:-1]) & (hi[order][1:] == hi[order][:-1]) &
            (lo[order][1:] == lo[order][:-1]) & (pl[order][1:] == pl[order][:-1]))
    return sorted(idx[order][1:][same].tolist())


def prefix_lengths(routes) -> tuple[np.ndarray, np.ndarray]:
    """(IPv4 prefix lengths, IPv6 prefix lengths) of a VRF's routes (a RouteTable or a
    list of Route), for the memory estimate and the LPM limits."""
    if isinstance(routes, RouteTable):
        return routes.plen[routes.family == 4], routes.plen[routes.family == 6]
    return (np.array([r.prefix.prefixlen for r in routes if r.prefix.version == 4], np.uint8),
            np.array([r.prefix.prefixlen for r in routes if r.prefix.version == 6], np.uint8))
