"""Encoder training and embedding throughput on CPU (prints figures; not a test).

For each objective: training rows/s over a fixed number of optimiser steps on a
windowed-feature-sized matrix, and embedding rows/s. Then one default run (validation split,
early stopping) to show how many steps it takes to stop. Baseline in the same process: the
contrastive objective with torch's default intra-op thread count, against the single thread
that train_encoder uses by default.

    .venv/bin/python bench/train.py [--rows 8000] [--steps 200]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from obslab.train import OBJECTIVES, embed, train_encoder

BATCH = 256


def make_rows(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 17)).astype(np.float32),  # like the windowed rows: 17 numeric
            rng.integers(0, 6, size=(n, 1)))               # and one service column


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    x_num, x_cat = make_rows(args.rows)
    fixed = dict(epochs=0, min_steps=args.steps, budget_steps=args.steps, validation=0.0, batch_size=BATCH)
    print(f"rows {args.rows}, {args.steps} steps of {BATCH} rows, d_model 64, 3 blocks, torch {torch.__version__}")
    results = {}
    for objective in OBJECTIVES:
        model, history = train_encoder(x_num, x_cat, objective=objective, seed=0, **fixed)
        seconds = history["seconds"]
        results[objective] = seconds
        t = time.perf_counter()
        embed(model, x_num, x_cat)
        emb_s = time.perf_counter() - t
        print(f"{objective:12s} train {args.steps * BATCH / seconds:9.0f} rows/s "
              f"({args.steps / seconds:6.1f} steps/s)   embed {args.rows / emb_s:9.0f} rows/s")
    _, history = train_encoder(x_num, x_cat, objective="contrastive", seed=0)
    print(f"default run (validation {history['validation_rows']} rows, early stopping): "
          f"{history['steps']} steps, best at {history['best_step']}, {history['seconds']:.1f} s")
    threads = torch.get_num_threads()
    _, history = train_encoder(x_num, x_cat, objective="contrastive", seed=0, threads=None, **fixed)
    print(f"contrastive with torch default threads ({threads}): {history['seconds']:.2f} s; "
          f"single-thread speed-up x{history['seconds'] / results['contrastive']:.2f}")


if __name__ == "__main__":
    main()
