"""`eal.lcores`: DPDK's `-l` core list ("0-2", "0,2") or its `--lcores` map
("0@0,1@1,2@1": lcore 2 runs on CPU 1 beside lcore 1; "(1,2)@1" likewise). The first
lcore is the main (Python, control), every other one a worker (SPEC §10a)."""
from __future__ import annotations

import re

_NUM = r"\d+(?:-\d+)?"
_SET = rf"(?:{_NUM}|\((?:{_NUM})(?:,{_NUM})*\))"
_ITEM = re.compile(rf"({_SET})(?:@({_SET}))?")


def _ids(text: str) -> list[int]:
    out = []
    for part in text.strip("()").split(","):
        a, _, b = part.partition("-")
        if b and int(b) < int(a):
            raise ValueError(f"range {part} runs backwards")
        out += range(int(a), int(b or a) + 1)
    return out


def _items(text: str) -> list[str]:
    """Split at commas outside parentheses."""
    items, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return items + [cur]


def parse_lcores(text: str) -> list[int]:
    """The lcore ids of `text`, in order (main first); ValueError if malformed."""
    lcores = []
    for item in _items(text):
        m = _ITEM.fullmatch(item)
        if not m:
            raise ValueError(f"bad element {item!r}")
        lcores += _ids(m.group(1))
        if m.group(2):
            _ids(m.group(2))
    if len(set(lcores)) != len(lcores):
        raise ValueError("an lcore is named twice")
    return lcores


def is_map(text: str) -> bool:
    """True when `text` needs EAL's --lcores (it places lcores on CPUs)."""
    return "@" in text or "(" in text


def eal_flag(text: str) -> list[str]:
    return ["--lcores", text] if is_map(text) else ["-l", text]
