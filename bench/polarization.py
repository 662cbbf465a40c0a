#!/usr/bin/env python3
"""Hash polarization in a simulated multi-stage ECMP fabric, with the project's own hash.

One stage-1 node spreads N random IPv4 5-tuple flows over `fanout` stage-2 nodes, each
of which spreads the flows it receives over `fanout` stage-3 nodes, each of which
spreads them over `fanout` next hops (the first two stages are the two-stage fabric,
all three the three-stage one). Every node has its own seed, derived like the config's
default: crc32c(node name). Every node picks the member exactly as the packet path
does: bucket = (hash * 4096) >> 32 in a 4096-bucket table built by dataplane.ecmp.

Two hashes are compared, both computed by the C code of the packet path
(dataplane._hashing, DPDK rte_hash_crc):
  ours   fmix32(crc32c(key) ^ seed)      the hash contract of docs/hashing.md
  naive  crc32c register with init = seed, no finalizer

CRC is affine over GF(2), so the naive hash of a flow at two nodes differs by a
constant: the flows one upstream member receives all land on one downstream member
(power-of-two fan-out) — polarization. For each stage >= 2 and each upstream node, the
bench prints the shares of that node's flows over its members and the largest
deviation from 1/fanout, writes JSON and a PNG.

    python bench/polarization.py [--flows 200000] [--fanouts 2,3,4,8]
                                 [--png bench/results/polarization.png]
                                 [--json bench/results/polarization.json]
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from dataplane import _hashing, ecmp, hashing  # noqa: E402
from dataplane.crc32c import crc32c  # noqa: E402

FANOUTS = (2, 3, 4, 8)
STAGES = 3
BUCKETS = 4096
FIELDS = hashing.field_mask(["src_ip", "dst_ip", "proto", "src_port", "dst_port"])
VARIANTS = ("ours", "naive")
TOLERANCE = 0.02            # the bar for stage-2 shares (SPEC §11: 3 %)


def random_flows(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    """n random IPv4 flows: any addresses, TCP or UDP, ephemeral source ports, and a
    destination port from a realistic handful (services) or random."""
    rng = np.random.default_rng(seed)
    services = np.array([22, 53, 80, 443, 8080, 3306, 5432, 6379], dtype=np.uint16)
    dport = np.where(rng.random(n) < 0.5, services[rng.integers(0, len(services), n)],
                     rng.integers(1, 65536, n)).astype(np.uint16)
    return {"src": rng.integers(0, 1 << 32, n, dtype=np.uint32),
            "dst": rng.integers(0, 1 << 32, n, dtype=np.uint32),
            "proto": rng.choice(np.array([6, 17], dtype=np.uint8), n),
            "sport": rng.integers(1024, 65536, n).astype(np.uint16),
            "dport": dport}


def node_seed(name: str) -> int:
    """The config's default: node.seed = crc32c(node.name)."""
    return crc32c(name.encode())


def node_name(stage: int, path: tuple[int, ...]) -> str:
    """leaf1 (stage 1), spine<i> (stage 2), super<i>.<j> (stage 3): one seed per node."""
    if stage == 1:
        return "leaf1"
    kind = {2: "spine", 3: "super"}.get(stage, f"stage{stage}-")
    return kind + ".".join(str(m + 1) for m in path)


def flow_hash(variant: str, flows: dict[str, np.ndarray], seed: int) -> np.ndarray:
    args = (flows["src"], flows["dst"], flows["proto"], flows["sport"], flows["dport"],
            FIELDS)
    if variant == "ours":
        return _hashing.hash_v4_many(*args, seed)
    if variant == "naive":
        return _hashing.crc_v4_many(*args, seed)
    raise ValueError(f"unknown hash variant {variant!r}")


def simulate(flows: dict[str, np.ndarray], fanout: int, variant: str,
             stages: int = STAGES, buckets: int = BUCKETS) -> list[dict]:
    """Per stage: {"stage", "nodes": [{"node", "path", "flows", "counts"}]}, where a
    node at stage s is reached through `path`, the members chosen at stages 1..s-1."""
    n = len(flows["src"])
    table = ecmp.build([1] * fanout, buckets)
    path = np.zeros(n, dtype=np.int64)               # node index within the stage
    out = []
    for stage in range(1, stages + 1):
        member = np.empty(n, dtype=np.int64)
        order = np.argsort(path, kind="stable")
        nodes, starts = np.unique(path[order], return_index=True)
        rows = []
        for node, idx in zip(nodes, np.split(order, starts[1:])):
            p = tuple(int(node) // fanout ** k % fanout for k in range(stage - 2, -1, -1))
            name = node_name(stage, p)
            sub = {k: np.ascontiguousarray(v[idx]) for k, v in flows.items()}
            h = flow_hash(variant, sub, node_seed(name))
            m = table[_hashing.buckets_many(h, buckets)].astype(np.int64)
            member[idx] = m
            rows.append({"node": name, "path": p, "flows": int(len(idx)),
                         "counts": np.bincount(m, minlength=fanout).tolist()})
        out.append({"stage": stage, "nodes": rows})
        path = path * fanout + member
    return out


def stage_summary(stage: dict, fanout: int) -> dict:
    """Largest deviation of a member's share from 1/fanout over the stage's nodes, the
    largest share any one member got, and the binomial noise of the smallest node."""
    dev = share = 0.0
    for r in stage["nodes"]:
        s = np.array(r["counts"]) / max(r["flows"], 1)
        dev = max(dev, float(np.abs(s - 1 / fanout).max()))
        share = max(share, float(s.max()))
    fewest = min(r["flows"] for r in stage["nodes"])
    sigma = math.sqrt((1 / fanout) * (1 - 1 / fanout) / max(fewest, 1))
    return {"max_deviation": dev, "max_share": share, "min_flows": fewest, "sigma": sigma}


def run(n_flows: int, fanouts=FANOUTS, stages: int = STAGES, seed: int = 1) -> dict:
    flows = random_flows(n_flows, seed)
    result = {"flows": n_flows, "buckets": BUCKETS, "stages": stages, "fields": FIELDS,
              "tolerance": TOLERANCE, "fanouts": {}}
    for f in fanouts:
        per = {}
        for v in VARIANTS:
            sim = simulate(flows, f, v, stages)
            per[v] = {"stages": [dict(s, **stage_summary(s, f)) for s in sim]}
        result["fanouts"][str(f)] = per
    return result


def _shares(counts, flows) -> str:
    return " ".join(f"{c / max(flows, 1):.3f}" for c in counts)


def print_tables(result: dict, max_rows: int) -> None:
    from rich.console import Console
    from rich.table import Table
    con = Console()
    if not con.is_terminal:                 # piped or captured: do not wrap at 80
        con = Console(width=150)
    for stage in range(2, result["stages"] + 1):
        for f, per in result["fanouts"].items():
            ours, naive = (per[v]["stages"][stage - 1] for v in VARIANTS)
            t = Table(title=f"stage {stage}, fan-out {f}: each upstream member's flows "
                            f"over its {f} downstream members (fair share {1 / int(f):.3f})",
                      title_justify="left")
            t.add_column("node (upstream path)")
            t.add_column("flows", justify="right")
            t.add_column("ours: shares")
            t.add_column("dev", justify="right")
            t.add_column("naive: shares")
            t.add_column("dev", justify="right")
            rows = list(zip(ours["nodes"], naive["nodes"]))
            for a, b in rows[:max_rows]:
                da = max(abs(c / a["flows"] - 1 / int(f)) for c in a["counts"])
                db = max(abs(c / b["flows"] - 1 / int(f)) for c in b["counts"])
                t.add_row(a["node"], str(a["flows"]), _shares(a["counts"], a["flows"]),
                          f"{da:.2%}", _shares(b["counts"], b["flows"]), f"{db:.2%}")
            if len(rows) > max_rows:
                t.add_row(f"… {len(rows) - max_rows} more", "", "", "", "", "")
            t.caption = (f"max deviation over all {len(rows)} nodes: ours "
                         f"{ours['max_deviation']:.2%}, naive {naive['max_deviation']:.2%}")
            con.print(t)
    s = Table(title=f"Polarization summary ({result['flows']} flows, {result['buckets']} "
                    "buckets per node, one seed per node)", title_justify="left")
    for c in ("fan-out", "stage", "flows/node (min)", "noise σ", "ours max dev",
              "naive max dev", "naive max share", "ours within ±2 %"):
        s.add_column(c, justify="right")
    for f, per in result["fanouts"].items():
        for stage in range(2, result["stages"] + 1):
            o, nv = (per[v]["stages"][stage - 1] for v in VARIANTS)
            s.add_row(f, str(stage), str(o["min_flows"]), f"{o['sigma']:.2%}",
                      f"{o['max_deviation']:.2%}", f"{nv['max_deviation']:.2%}",
                      f"{nv['max_share']:.1%}",
                      "yes" if o["max_deviation"] <= TOLERANCE else "NO")
    con.print(s)


def plot(result: dict, path: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fanouts = list(result["fanouts"])
    fig = plt.figure(figsize=(3.2 * len(fanouts), 9.5), layout="constrained")
    grid = fig.add_gridspec(3, len(fanouts))
    for col, f in enumerate(fanouts):
        for row, v in enumerate(VARIANTS):
            ax = fig.add_subplot(grid[row, col])
            nodes = result["fanouts"][f][v]["stages"][1]["nodes"]
            m = np.array([np.array(r["counts"]) / r["flows"] for r in nodes]) * int(f)
            im = ax.imshow(m, cmap="RdBu_r", vmin=0, vmax=2, aspect="auto")
            ax.set_title(f"{v}, fan-out {f}", fontsize=10)
            ax.set_xlabel("stage-2 member")
            ax.set_ylabel("stage-1 member (spine)")
            ax.set_xticks(range(int(f)))
            ax.set_yticks(range(int(f)))
            if int(f) <= 4:
                for (i, j), val in np.ndenumerate(m):
                    ax.text(j, i, f"{val / int(f):.2f}", ha="center", va="center",
                            fontsize=8)
    fig.colorbar(im, ax=fig.axes, shrink=0.5, label="share × fan-out (1 = fair)")
    ax = fig.add_subplot(grid[2, :])
    x = np.arange(len(fanouts))
    width = 0.2
    bars = [(v, s) for s in range(2, result["stages"] + 1) for v in VARIANTS]
    for i, (v, s) in enumerate(bars):
        y = [result["fanouts"][f][v]["stages"][s - 1]["max_deviation"] * 100 for f in fanouts]
        ax.bar(x + (i - (len(bars) - 1) / 2) * width, y, width, label=f"{v}, stage {s}",
               hatch="//" if v == "naive" else None)
    ax.axhline(TOLERANCE * 100, color="k", ls="--", lw=1, label="±2 % bar")
    ax.set_yscale("log")
    ax.set_ylim(0.05, 1000)                  # room for the legend above the bars
    ax.set_xticks(x, [f"fan-out {f}" for f in fanouts])
    ax.set_ylabel("max |share − 1/fan-out| (%)")
    ax.set_title(f"Max deviation per stage, {result['flows']} flows")
    ax.legend(ncol=5, fontsize=8, loc="upper center")
    fig.suptitle("ECMP polarization: stage-2 shares of each stage-1 member's flows "
                 "(top: fmix32(crc ^ seed); middle: seed as CRC init)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=200_000)
    ap.add_argument("--fanouts", default=",".join(map(str, FANOUTS)))
    ap.add_argument("--stages", type=int, default=STAGES, choices=(2, 3))
    ap.add_argument("--seed", type=int, default=1, help="random seed of the flows")
    ap.add_argument("--rows", type=int, default=8, help="rows shown per table")
    ap.add_argument("--png", default=str(HERE / "results" / "polarization.png"))
    ap.add_argument("--json", default=str(HERE / "results" / "polarization.json"))
    args = ap.parse_args(argv)
    fanouts = [int(f) for f in args.fanouts.split(",")]
    result = run(args.flows, fanouts, args.stages, args.seed)
    print_tables(result, args.rows)
    result["machine"] = platform.node()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    if args.png:
        plot(result, args.png)
    ok = all(per["ours"]["stages"][1]["max_deviation"] <= TOLERANCE
             for per in result["fanouts"].values())
    print(f"wrote {args.json} and {args.png}; ours stage 2 within ±2 %: "
          f"{'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
