"""How much memory a configuration needs, estimated before EAL starts (issue 18).

EAL's memory (`eal.memory_mb`, `-m`) holds every rte_lpm / rte_lpm6 table (one pair per
VRF with routes longer than /0), the LFIB's rte_hash and, with huge pages
(`eal.no_huge: false`), the mbuf pool and each worker's flow-table rte_hash. With
`--no-huge` the core maps the pool and the flow tables itself, on transparent huge pages
outside EAL (pyx/memory.pxi thp_heap), and only what the LPM tables need counts against
`eal.memory_mb`; what is mapped outside EAL has to fit the host (config/host.py).

The sizes follow DPDK 22.11's allocations for the parameters pyx/core.pxi and
pyx/flowtable.pxi create the tables with:

- rte_lpm_create: the struct with its 2^24-entry tbl24 (64 MiB), max_rules 8-byte rules,
  number_tbl8s groups of 256 4-byte entries (core: max_rules = max(1024, 2 n),
  number_tbl8s = max(256, routes longer than /24 + 16));
- rte_lpm6_create: the struct with its 2^24-entry tbl24 (64 MiB) and number_tbl8s groups
  of 256 4-byte entries, a 4-byte pool slot and a 12-byte header per group, and an
  rte_hash of max_rules * 1.2 + 64 20-byte rule keys (core: max_rules = max(1024, 2 n),
  number_tbl8s = max(256, 14 n); rte_lpm6 refuses more than 2^21 groups);
- rte_hash_create: 64-byte buckets of 8 slots (twice with the extendable table), a free
  slot ring of 4-byte entries and the key store (8-byte data pointer + key, 16-byte
  aligned), each array for a power of two above the entries.

On top: EAL's own allocations and each port's queues (EAL_BASE, PER_PORT), measured on
DPDK 22.11 (tests/test_hostile_config.py runs the forwarder at the estimate).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .routes import prefix_lengths

MiB = 1 << 20
TBL24 = (1 << 24) * 4                 # rte_lpm / rte_lpm6 tbl24: 2^24 4-byte entries
TBL8_GROUP = 256 * 4                  # one tbl8 group: 256 4-byte entries
LPM6_MAX_TBL8 = 1 << 21               # RTE_LPM6_TBL8_MAX_NUM_GROUPS
LPM6_TBL8_PER_ROUTE = 14              # pyx/core.pxi: number_tbl8s = max(256, 14 n)
FLOW_KEY = 48                         # sizeof(flow_key_t) (pyx/parse.pxd)
FLOW_ENTRY = 64                       # sizeof(flow_entry_t) (pyx/flow.pxd)
EMC = 4096 * 64                       # the exact-match cache in front of each table
MALLOC_ELEM = 256                     # an rte_malloc element's header, trailer, alignment
EAL_BASE = 2 * MiB                    # EAL, ethdev and telemetry allocations, and slack
PER_PORT = 64 << 10                   # a port's queues and TX buffers, per worker


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def rte_hash_bytes(entries: int, key_len: int, ext: bool = False) -> int:
    """Memory of rte_hash_create(entries, key_len) (DPDK 22.11, single writer)."""
    entries = max(entries, 8)
    slots = entries + 1                                   # slot 0 is a dummy
    buckets = _pow2(entries) // 8
    size = 384 + 4 * _pow2(slots)                         # free-slot ring
    size += 64 * buckets * (2 if ext else 1)
    if ext:
        size += 384 + 4 * _pow2(buckets + 1)              # free extendable buckets
    size += (8 + key_len + 15) // 16 * 16 * slots         # key store
    return size + 1024 + 5 * MALLOC_ELEM


def lpm4_bytes(routes: int, longer_than_24: int) -> int:
    max_rules, tbl8s = max(1024, 2 * routes), max(256, longer_than_24 + 16)
    return TBL24 + 1024 + 8 * max_rules + TBL8_GROUP * tbl8s + 4 * MALLOC_ELEM


def lpm6_tbl8s(routes: int) -> int:
    return max(256, LPM6_TBL8_PER_ROUTE * routes)


def lpm6_bytes(routes: int) -> int:
    max_rules, tbl8s = max(1024, 2 * routes), lpm6_tbl8s(routes)
    return (TBL24 + 1024 + (TBL8_GROUP + 4 + 12) * tbl8s + 4 * MALLOC_ELEM
            + rte_hash_bytes(int(max_rules * 1.2) + 64, 20))


def flow_hash_bytes(entries: int) -> int:
    """One worker's flow-table rte_hash: 2 x entries slots, extendable buckets."""
    return rte_hash_bytes(2 * entries, FLOW_KEY, ext=True)


def pool_bytes(mbufs: int, mbuf_size: int) -> int:
    """The mbuf pool: each mbuf its header, struct and data room; the ring; caches."""
    return mbufs * (mbuf_size + 256) + 8 * _pow2(mbufs + 1) + 2 * MiB


@dataclass
class Need:
    """Bytes a configuration needs: (what, bytes, the setting that sizes it)."""
    eal: list[tuple[str, int, str]] = field(default_factory=list)      # in EAL memory
    outside: list[tuple[str, int, str]] = field(default_factory=list)  # mapped by the core

    @property
    def eal_bytes(self) -> int:
        return sum(n for _, n, _ in self.eal)

    @property
    def outside_bytes(self) -> int:
        return sum(n for _, n, _ in self.outside)

    @property
    def eal_mb(self) -> int:
        """The smallest eal.memory_mb that holds it (whole MiB)."""
        return -(-self.eal_bytes // MiB)


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def need(cfg, workers: int) -> Need:
    """What `cfg` (a validated Config) needs with `workers` worker lcores."""
    e, ft = cfg.eal, cfg.flow_table
    out = Need()
    v4 = v6 = 0
    v4_bytes = v6_bytes = 0
    for vrf in cfg.vrfs:
        r4, r6 = prefix_lengths(vrf.routes)      # numpy: a million routes in milliseconds
        if r4.any():
            v4 += 1
            v4_bytes += lpm4_bytes(len(r4), int((r4 > 24).sum()))
        if r6.any():
            v6 += 1
            v6_bytes += lpm6_bytes(len(r6))
    if v4:
        out.eal.append((f"the IPv4 LPM tables of {_plural(v4, 'VRF')}", v4_bytes, "vrfs"))
    if v6:
        out.eal.append((f"the IPv6 LPM tables of {_plural(v6, 'VRF')}", v6_bytes, "vrfs"))
    if cfg.mpls.lfib:
        out.eal.append(("the LFIB", rte_hash_bytes(max(64, 2 * len(cfg.mpls.lfib)), 4),
                        "mpls.lfib"))
    flows = any(p.mode == "flow" and p.vrf is not None for p in cfg.ports)
    where = out.outside if e.no_huge else out.eal
    where.append((f"the mbuf pool of {e.mbufs} mbufs", pool_bytes(e.mbufs, e.mbuf_size),
                  "eal.mbufs"))
    if flows:
        tables = _plural(workers, "worker")
        per = flow_hash_bytes(ft.entries)
        if e.no_huge:      # the rte_hash on a heap of its own: whole 2 MiB pages + 4 MiB
            per = -(-(per + (4 << 20)) // (2 << 20)) * (2 << 20)
        where.append((f"the flow tables of {tables} ({ft.entries} flows each)",
                      workers * per, "flow_table.entries"))
        out.outside.append((f"the flow entries and caches of {tables}",
                            workers * (2 * ft.entries * FLOW_ENTRY + EMC),
                            "flow_table.entries"))
    out.eal.append(("EAL and the ports' queues",
                    EAL_BASE + PER_PORT * len(cfg.ports) * max(1, workers), "ports"))
    return out
