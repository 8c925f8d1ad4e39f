"""The live evaluation's cost: decoding the outcomes kept for a model and computing its figures.

    python -m stream.bench.evaluation [--outcomes 20000] [--repeat 3]

`/metrics`, the dashboard and `leadstream models evaluate` read every outcome kept for a model
(at most `LEADSTREAM_EVALUATION_MAX_OUTCOMES`) and rank them; a worker does it in a thread, at
most once per 30 s. Prints the best of `--repeat` runs of each step, for seeded outcomes in the
stored form. A benchmark to run and record, not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Sequence

import orjson

from stream.model_files import load_default_models
from stream.readmodel.evaluation import NEGATIVE, POSITIVE, pairs_from, summarize

__all__ = ["main"]


def stored_outcomes(count: int, seed: int = 1) -> list[bytes]:
    """`count` outcomes as the store keeps them, scores higher for good outcomes."""
    rng = random.Random(seed)
    kinds = sorted(POSITIVE | NEGATIVE)
    docs = []
    for n in range(count):
        outcome = rng.choice(kinds)
        total = rng.gauss(60.0 if outcome in POSITIVE else 40.0, 20.0)
        doc = {
            "lead": f"lead-{n // 2}",
            "outcome": outcome,
            "total": round(total, 4),
            "fit": 10.0,
            "engagement": round(total - 10.0, 4),
            "at": 1.7e9 + n,
        }
        docs.append(orjson.dumps(doc))
    return docs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stream.bench.evaluation", description=__doc__)
    parser.add_argument("--outcomes", type=int, default=20_000, help="outcomes of one model")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (the best counts)")
    args = parser.parse_args(argv)
    docs = stored_outcomes(args.outcomes)
    model = load_default_models().get("b2b")
    decode, figures = [], []
    result = None
    for _ in range(args.repeat):
        start = time.perf_counter()
        pairs = pairs_from(docs)
        decoded = time.perf_counter()
        result = summarize("b2b", pairs, model)
        figures.append(time.perf_counter() - decoded)
        decode.append(decoded - start)
    assert result is not None
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}")
    print(f"{args.outcomes} outcomes of one model (AUC {result.auc:.3f})")
    print(f"  decode   {min(decode) * 1000:8.1f} ms")
    print(f"  figures  {min(figures) * 1000:8.1f} ms (AUC, precision at MQL, MQL conversion)")
    print(f"  total    {(min(decode) + min(figures)) * 1000:8.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
