"""Route lookups (pyx/route.pxd route(): rte_lpm / rte_lpm6, else the VRF's default) on
tables built as Core builds a VRF's, against a longest-prefix match in Python (ipaddress)
over the same routes."""
from __future__ import annotations

import ipaddress
import random

import pytest

from dataplane import _micro as micro
from oracles import OPS, cycled_sum, frame, unicast4, unicast6, longest_match

N_ROUTES = {4: 4000, 6: 1000}
N_ADDRS = 1024
DEFAULT4 = 4242             # 0.0.0.0/0; IPv6 has no default: some lookups find no route

pytestmark = pytest.mark.benchmark(group="lpm")


def make_routes(rng: random.Random, family: int) -> dict:
    """Random unicast prefixes (v4 /8-/32, most /16-/24; v6 /16-/128, most /32-/64),
    a quarter of them with a more specific route inside."""
    routes = {}
    bits = 32 if family == 4 else 128
    while len(routes) < N_ROUTES[family]:
        addr = unicast4(rng) if family == 4 else unicast6(rng)
        if family == 4:
            plen = rng.choice([8, 12, 16, 20, 22, 24, 24, 24, 25, 28, 32])
        else:
            plen = rng.choice([16, 32, 40, 48, 48, 56, 64, 64, 96, 128])
        net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
        routes[net] = rng.randrange(1 << 16)
        if plen < bits and rng.random() < 0.25:
            inner = rng.randrange(plen + 1, bits + 1)
            routes[ipaddress.ip_network(f"{addr}/{inner}", strict=False)] = rng.randrange(1 << 16)
    if family == 4:
        routes[ipaddress.ip_network("0.0.0.0/0")] = DEFAULT4
    return routes


def addresses(rng: random.Random, family: int, routes: dict) -> list[str]:
    """Three quarters inside a route (random host bits), the rest anywhere unicast."""
    nets = [n for n in routes if n.prefixlen]
    out = []
    while len(out) < N_ADDRS:
        if rng.random() < 0.75:
            n = rng.choice(nets)
            a = n[rng.randrange(n.num_addresses)] if n.num_addresses > 1 else n[0]
            if family == 6 or a.packed[0] not in (0, 127) and a.packed[0] < 224:
                out.append(str(a))
        else:
            out.append(unicast4(rng) if family == 4 else unicast6(rng))
    return out


@pytest.mark.parametrize("family", [4, 6], ids=["v4", "v6"])
def test_route_lookup(timed, family):
    rng = random.Random(family)
    routes = make_routes(rng, family)
    addrs = addresses(rng, family, routes)
    vrf = micro.Vrf(routes)
    pk = micro.Packets([frame(rng, family, 17, dst=a) for a in addrs])
    assert pk.rcs == [0] * len(addrs)
    expect = [longest_match(routes, a, micro.NO_ROUTE) for a in addrs]
    if family == 6:
        assert micro.NO_ROUTE in expect        # the no-route path is exercised too
    assert micro.routes_of(vrf, pk) == expect
    assert timed(micro.route_loop, vrf, pk, OPS) == cycled_sum(expect)
