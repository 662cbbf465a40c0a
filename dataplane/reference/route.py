"""Reference of pyx/route.pxd: longest-prefix match per VRF and family."""
# The tables are the production dataplane.lpm (a dict per prefix length, probed longest
# first), shared with `explain` and the replay summary.
from __future__ import annotations

from typing import Optional

from ..config.model import Route
from ..lpm import Lpm, vrf_tables
from .parse import Parsed

__all__ = ["Lpm", "route_lookup", "vrf_tables"]


def route_lookup(tables: list[dict[int, Lpm]], vrf_index: int, p: Parsed
                 ) -> Optional[Route]:
    """The route of p's destination in VRF `vrf_index` (None: no_route)."""
    return tables[vrf_index][p.family].lookup(p.dst)
