"""The one list of limits and counter slots shared by the configuration validator and the
C core. `setup.py` writes pyx/consts.pxd from it (tools/gen_consts.py) before Cython
runs, so the C enum and the Python names cannot drift apart."""
from __future__ import annotations

from .drops import DROP_REASONS

# limits the validator enforces and the C tables are sized for
LIMITS = {
    "MAX_PORTS": 32,             # ports (C: per-worker port array)
    "MAX_WORKERS": 16,           # worker lcores (eal.lcores less the main)
    "MAX_MEMBERS": 64,           # members of one ECMP group (SPEC §6)
    "MAX_FAT_RULES": 16,         # fat-flow rules per port
    "MAX_FAT_EXCLUDE": 16,       # fat-flow exclude prefixes per port
    "MAX_PUSH": 16,              # label stack entries one push writes (docs/mpls.md §1)
    "MAX_NEXTHOP_LABELS": 12,    # a next hop's labels: leaves room for ELI/EL + PW + FAT
    "MAX_SWAP": 12,              # labels an LFIB swap writes
    "BURST": 32,                 # packets per RX burst
}
# codes the compiled tables carry (dataplane/config/compile.py writes them, C reads them)
CODES = {
    "NH_NONE": 0xFFFFFF,         # no route: beyond any id (rte_lpm next hops are 24-bit)
    "NH_GROUP": 1 << 20,         # next-hop id flag: the low bits index a group
    "NO_MEMBER": 0xFFFF,         # every member drained: the packet has no route
    "MEMBER_REMOVED": 0,         # gone: flows pinned to it are re-hashed
    "MEMBER_ACTIVE": 1,
    "MEMBER_DRAIN": 2,           # weight 0: keeps its pinned flows, takes no new ones
    "NO_PW": 0xFFFF,             # a port that is no pseudowire's attachment circuit
    "IGNORE_NONE": 0,            # fat-flow rule `ignore`
    "IGNORE_SRC": 1,
    "IGNORE_DST": 2,
    "NO_PREFIX": 255,            # fat-flow rule without a prefix length
    "TUN_NONE": 0,               # next-hop overlay
    "TUN_UDP": 1,                # MPLS-over-UDP, RFC 7510
    "TUN_GRE": 2,                # MPLS-over-GRE, RFC 4023
    "A_SWAP": 0,                 # LFIB actions
    "A_POP": 1,
    "A_POP_LOOKUP": 2,
    "A_POP_XC": 3,
    "MIRROR_RX": 1,              # mirror direction bits (a port's mirror, and the
    "MIRROR_TX": 2,              # metadata header's direction field: docs/mirroring.md)
    "MIRROR_NONE": 0xFFFF,       # metadata: no egress port yet (rx copy), no VRF
    "MIRROR_META_LEN": 32,       # bytes of the analyzer metadata header
    "MIRROR_HDR_MAX": 96,        # Ethernet + IPv6 + UDP + metadata, rounded up
    "MIRROR_STAGE": 64,          # copies one burst may make (rx + tx: 2 * BURST)
}
MAX_VRFS, MAX_NEXTHOPS, MAX_GROUPS, MAX_ROUTES_PER_VRF = 256, 65535, 4096, 1 << 20

# per-port counters that are no drop of the port's packets: mirror copies of its traffic
# made and accepted by the PMD, and those that could not be made or sent (docs/mirroring.md)
MIRROR_COUNTERS = ("mirrored", "mirror_dropped")
# per-port counters of virtual networks that are no drop (docs/virtual-networks.md §7)
VNET_COUNTERS = ("consumed", "arp_replied", "flooded", "flood_dropped", "arp_sent",
                 "mac_moved")
# per-port counter slots: rx, tx, the drop reasons in order, mirror and VN counters
COUNTERS = ("rx", "tx") + DROP_REASONS + MIRROR_COUNTERS + VNET_COUNTERS
N_COUNTERS = 32
assert len(COUNTERS) <= N_COUNTERS


def slot_name(name: str) -> str:
    """The C enum name of a counter slot: C_RX, C_TX, C_MIRRORED, C_MIRROR_DROPPED,
    D_<REASON>."""
    return ("D_" if name in DROP_REASONS else "C_") + name.upper()


globals().update(LIMITS)
globals().update(CODES)
