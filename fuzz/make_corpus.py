#!/usr/bin/env python3
"""Write the fuzzer's seed corpus: inputs in fuzz/harness.py's format made of the frames
of the differential corpora (tests/test_differential.py: crafted IPv4/IPv6/VLAN frames,
truncations, fragments, random and mutated frames, samples/sample.pcap; and
tests/test_mpls_differential.py, both configs: label stacks, overlays, pseudowires).

    python fuzz/make_corpus.py [OUT_DIR] [--per-variant N]    (default fuzz/corpus, 1000)

Deterministic: the same files every time (named by the SHA-1 of their content, as
libFuzzer names what it adds). Each input is a burst of 1-8 frames on the port the
corpus gave them (test_differential's: its INGRESS ports), some in small segments
(seg > 0) or padded past the mbuf's headroom, a few repeated past the core's 32-frame
burst.
"""
from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness  # noqa: E402  (puts the repository and tests/ on sys.path)

SEED = 0xF022


def variant_items(variant: str) -> list[tuple[int, bytes]]:
    """(ingress port, frame) of a config's differential corpus."""
    if variant == "ip":
        import test_differential as td
        rng = random.Random(td.SEED)
        frames = td.corpus()
        return [(rng.choice(td.INGRESS), f) for f in frames]
    import test_mpls_differential as md
    return md.corpus(variant[-1])


def inputs(per_variant: int) -> list[bytes]:
    nports = harness.port_counts()
    rng = random.Random(SEED)
    out = []
    for variant in harness.VARIANTS:
        items = variant_items(variant)
        picked = rng.sample(items, min(per_variant * 3, len(items)))
        k = 0
        for _ in range(per_variant):
            if k >= len(picked):
                break
            n = rng.choice([1, 1, 1, 2, 3, 4, 8])
            port = picked[k][0]
            frames = [f for _, f in picked[k:k + n]]
            k += n
            r = rng.random()
            seg = pad = 0
            reps = 1
            if r < 0.15:
                seg = rng.choice([64, 100, 150, 256, 1000])
                pad = rng.choice([0, 600, 1500])
            elif r < 0.2:
                pad = rng.choice([1500, 8000])
            elif r < 0.23:
                reps = rng.choice([16, 33])
            out.append(harness.encode(variant, port, frames, seg, pad, reps, nports))
    return out


def write(out_dir: Path, per_variant: int = 1000) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for data in inputs(per_variant):
        path = out_dir / hashlib.sha1(data).hexdigest()
        if not path.exists():
            path.write_bytes(data)
            n += 1
    return n


def main(argv: list[str]) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    per = int(argv[argv.index("--per-variant") + 1]) if "--per-variant" in argv else 1000
    if "--per-variant" in argv:
        args.remove(str(per))
    out = Path(args[0]) if args else Path(__file__).resolve().parent / "corpus"
    n = write(out, per)
    print(f"{out}: {n} new seed inputs ({len(list(out.iterdir()))} in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
