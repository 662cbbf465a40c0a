"""`eal.lcores`: DPDK's `-l` core list ("0-2", "0,2") or its `--lcores` map
("0@0,1@1,2@1": lcore 2 runs on CPU 1 beside lcore 1; "(1,2)@1" likewise). The first
lcore is the main (Python, control), every other one a worker (SPEC §10a)."""
from __future__ import annotations

import re

MAX_LCORE = 128          # RTE_MAX_LCORE of DPDK 22.11's default build: lcore ids below it
MAX_CPU = 1024           # CPU_SETSIZE: CPU ids below it

_NUM = r"\d{1,6}(?:-\d{1,6})?"
_SET = rf"(?:{_NUM}|\((?:{_NUM})(?:,{_NUM})*\))"
_ITEM = re.compile(rf"({_SET})(?:@({_SET}))?")


class LcoreError(ValueError):
    """`eal.lcores` is not usable; `kind` is "syntax", "twice" or "range"."""

    def __init__(self, kind: str, why: str):
        self.kind = kind
        super().__init__(why)


def _ids(text: str, bound: int, what: str) -> list[int]:
    out = []
    for part in text.strip("()").split(","):
        a, _, b = part.partition("-")
        lo, hi = int(a), int(b or a)
        if hi < lo:
            raise LcoreError("syntax", f"range {part} runs backwards")
        if hi >= bound:
            raise LcoreError("range", f"{what} {hi} is not below {bound}")
        out += range(lo, hi + 1)
    return out


def _items(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    return items + [text[start:]]


def parse_map(text: str) -> tuple[list[int], list[set[int]]]:
    """(the lcore ids of `text` in order, main first; the CPUs of each element): an
    element without @ runs its lcores on the CPUs of the same numbers. LcoreError
    (a ValueError) if malformed, if an lcore is named twice or an id is out of range."""
    lcores, places = [], []
    for item in _items(text):
        m = _ITEM.fullmatch(item)
        if not m:
            raise LcoreError("syntax", f"bad element {item[:40]!r}")
        ids = _ids(m.group(1), MAX_LCORE, "lcore")
        lcores += ids
        places.append(set(_ids(m.group(2), MAX_CPU, "CPU") if m.group(2) else ids))
    seen = set()
    for lcore in lcores:
        if lcore in seen:
            raise LcoreError("twice", f"lcore {lcore} is named twice")
        seen.add(lcore)
    return lcores, places


def parse_lcores(text: str) -> list[int]:
    """The lcore ids of `text`, in order (main first); ValueError if malformed."""
    return parse_map(text)[0]


def is_map(text: str) -> bool:
    """True when `text` needs EAL's --lcores (it places lcores on CPUs)."""
    return "@" in text or "(" in text


def eal_flag(text: str) -> list[str]:
    return ["--lcores", text] if is_map(text) else ["-l", text]
