"""Per-event detection throughput on CPU (prints figures; not a test).

Stages of obslab.events on a dataset: building event rows (events/s), encoding and embedding,
k-NN scoring on embeddings against k-NN on the raw one-hot matrix (the cost the embedding saves
or adds: same reference set, same k), and rarity. ``--events`` tiles the dataset's event matrix
to a corpus-sized number of rows for the scoring stages; ``--reference`` sets the k-NN index size.

    .venv/bin/python bench/events.py [DATASET] [--events 600000] [--reference 10000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from obslab._event_rows import load_event_rows  # noqa: E402
from obslab.data import default_dataset  # noqa: E402
from obslab.detect import make_detector  # noqa: E402
from obslab.events import fit_events, load_event_data, rarity_scores  # noqa: E402


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", default=None)
    parser.add_argument("--events", type=int, default=200_000, help="rows to score (tiled)")
    parser.add_argument("--reference", type=int, default=10_000, help="k-NN index rows (tiled)")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    root = args.dataset or default_dataset()
    rows, s = timed(lambda: load_event_rows(root))
    print(f"event rows: {len(rows)} in {s:.2f} s ({len(rows) / s:,.0f} events/s)")
    data = load_event_data(root)
    # a short training: the bench is about cost per row, not about the encoder's quality (its
    # own seed, so the cached encoders of scripts/run_events.py, seeds 0-4, stay in place)
    ex, s = timed(lambda: fit_events(data, seed=1000, min_steps=50, epochs=2, check_every=25))
    print(f"encoder fit on {len(ex.reference)} events: {s:.1f} s (cached after the first run)")
    for features in ("embedding", "raw"):
        X, s = timed(lambda: ex.matrix(features))
        print(f"{features:9s} matrix: {X.shape[1]:4d} columns, {len(X) / s:,.0f} events/s")
        reps = -(-max(args.events, args.reference) // len(X))
        big = np.tile(X, (reps, 1))
        ref = big[: args.reference]
        det, s_fit = timed(lambda: make_detector("knn", k=args.k).fit(ref))
        _, s = timed(lambda: det.score(big[: args.events]))
        print(f"{features:9s} k-NN: index {len(ref)} rows (fit + leave-one-out {s_fit:.1f} s), "
              f"{args.events:,} events scored in {s:.1f} s ({args.events / s:,.0f} events/s)")
    _, s = timed(lambda: rarity_scores(ex))
    print(f"rarity: {len(ex.events) / s:,.0f} events/s (including encoding)")


if __name__ == "__main__":
    main()
