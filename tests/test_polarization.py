"""Polarization in a simulated fabric (bench/polarization.py, SPEC §11): with the
project's hash and a seed per node, each downstream stage shares every upstream
member's flows evenly; with the seed used as the CRC initial value it does not."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FANOUTS = (2, 3, 4, 8)
N_FLOWS = 200_000        # a three-stage 8×8 fabric leaves ~3 000 flows per stage-3 node


def load_bench():
    spec = importlib.util.spec_from_file_location("polarization",
                                                  ROOT / "bench" / "polarization.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["polarization"] = mod
    spec.loader.exec_module(mod)
    return mod


bench = load_bench()


@pytest.fixture(scope="module")
def result():
    return bench.run(N_FLOWS, FANOUTS, stages=3)


def shares(node):
    return [c / node["flows"] for c in node["counts"]]


@pytest.mark.parametrize("fanout", FANOUTS)
def test_ours_stage2_within_2pc(result, fanout):
    stage2 = result["fanouts"][str(fanout)]["ours"]["stages"][1]
    assert len(stage2["nodes"]) == fanout                  # one node per stage-1 member
    for node in stage2["nodes"]:
        assert max(abs(s - 1 / fanout) for s in shares(node)) <= 0.02, node
    assert stage2["max_deviation"] <= 0.02


@pytest.mark.parametrize("fanout", FANOUTS)
def test_ours_stage3_within_2pc_or_noise(result, fanout):
    """Stage 3: ±2 %, except where binomial noise alone approaches 2 % (fan-out 8: 64
    nodes of ~3 000 flows, σ ≈ 0.6 %); there 5 σ of the smallest node."""
    stage3 = result["fanouts"][str(fanout)]["ours"]["stages"][2]
    assert len(stage3["nodes"]) == fanout ** 2
    tolerance = max(0.02, 5 * stage3["sigma"])
    assert stage3["max_deviation"] <= tolerance
    if fanout <= 4:
        assert stage3["max_deviation"] <= 0.02


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("fanout", FANOUTS)
def test_ours_is_at_noise_level(result, fanout, stage):
    """Each node's shares within 5 binomial σ of fair: no systematic skew at all."""
    p = 1 / fanout
    for node in result["fanouts"][str(fanout)]["ours"]["stages"][stage - 1]["nodes"]:
        sigma = math.sqrt(p * (1 - p) / node["flows"])
        assert max(abs(s - p) for s in shares(node)) <= 5 * sigma, node


@pytest.mark.parametrize("stage", [2, 3])
@pytest.mark.parametrize("fanout", [2, 4, 8])
def test_naive_polarizes_at_power_of_two_fanout(result, fanout, stage):
    """Seed as CRC init: every upstream member's flows go to one downstream member."""
    for node in result["fanouts"][str(fanout)]["naive"]["stages"][stage - 1]["nodes"]:
        assert max(shares(node)) >= 0.95, node
        assert max(shares(node)) == 1.0                    # in fact all of them


def test_naive_is_skewed_at_fanout_3(result):
    naive = result["fanouts"]["3"]["naive"]["stages"][1]
    ours = result["fanouts"]["3"]["ours"]["stages"][1]
    assert naive["max_deviation"] > 0.02 > ours["max_deviation"]


def test_stage1_is_fair_for_both(result):
    """The first node is fine with either hash: polarization is a multi-stage effect."""
    for f in FANOUTS:
        for v in ("ours", "naive"):
            assert result["fanouts"][str(f)][v]["stages"][0]["max_deviation"] < 0.01


def test_one_seed_everywhere_polarizes_even_with_our_hash(monkeypatch):
    """A per-node seed is part of the contract: with one seed on every node, a node's
    hash is its upstream neighbour's and the finalizer cannot help."""
    monkeypatch.setattr(bench, "node_seed", lambda name: 0x5EED0001)
    flows = bench.random_flows(20_000)
    for f in (2, 3, 4, 8):
        stage2 = bench.simulate(flows, f, "ours", stages=2)[1]
        for node in stage2["nodes"]:
            assert max(shares(node)) == 1.0


def test_node_seeds_are_the_config_default():
    from dataplane.crc32c import crc32c
    assert bench.node_seed("leaf1") == crc32c(b"leaf1") == 0x3EF69BFF
    names = {bench.node_name(3, (i, j)) for i in range(8) for j in range(8)}
    names |= {bench.node_name(2, (i,)) for i in range(8)} | {bench.node_name(1, ())}
    assert len(names) == 1 + 8 + 64
    assert len({bench.node_seed(n) for n in names}) == len(names)


def test_cli_writes_json_and_png(tmp_path, capsys):
    png, js = tmp_path / "p.png", tmp_path / "p.json"
    rc = bench.main(["--flows", "20000", "--fanouts", "2,4", "--png", str(png),
                     "--json", str(js)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "Polarization summary" in out and "stage 2, fan-out 4" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(js.read_text())
    assert data["flows"] == 20000 and set(data["fanouts"]) == {"2", "4"}
    assert data["fanouts"]["4"]["naive"]["stages"][1]["max_share"] == 1.0
