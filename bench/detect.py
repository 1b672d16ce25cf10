"""k-NN query throughput for the detector's vector index: faiss flat and HNSW vs sklearn brute.

Prints queries/second per index, the speed-up over the sklearn brute-force baseline measured in
the same process, and HNSW's recall@k against the exact answer. Usage:

    python bench/detect.py [--n 50000] [--d 32] [--queries 2000] [--k 10] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn, repeat=3):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000, help="indexed (training) rows")
    ap.add_argument("--d", type=int, default=32, help="dimensions (embedding size)")
    ap.add_argument("--queries", type=int, default=2_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import faiss
    from sklearn.neighbors import NearestNeighbors

    from obslab.detect import build_index, recall_at_k

    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    # clustered data, like embeddings of a few services' behaviours
    centres = rng.normal(scale=4.0, size=(20, args.d))
    X = (centres[rng.integers(0, 20, args.n)] + rng.normal(size=(args.n, args.d))).astype(np.float32)
    Q = (centres[rng.integers(0, 20, args.queries)] + rng.normal(size=(args.queries, args.d))).astype(np.float32)
    print(f"n={args.n} d={args.d} queries={args.queries} k={args.k} threads={args.threads}")

    from threadpoolctl import threadpool_limits

    nn = NearestNeighbors(n_neighbors=args.k, algorithm="brute", n_jobs=args.threads).fit(X)
    # same thread budget for the baseline's BLAS as for faiss' OpenMP
    with threadpool_limits(limits=args.threads):
        t_base, (_, exact_sk) = timed(lambda: nn.kneighbors(Q))
    qps_base = args.queries / t_base

    results = [("sklearn brute (baseline)", 0.0, t_base, None)]
    t0 = time.perf_counter()
    flat = build_index(X, "flat")
    build_flat = time.perf_counter() - t0
    t_flat, (d_exact, exact) = timed(lambda: flat.search(Q, args.k))
    results.append(("faiss IndexFlatL2", build_flat, t_flat, 1.0))
    for ef in (32, 64, 128):
        t0 = time.perf_counter()
        hnsw = build_index(X, "hnsw", ef_search=ef)
        build_h = time.perf_counter() - t0
        t_h, (d_approx, _) = timed(lambda: hnsw.search(Q, args.k))
        recall = recall_at_k(d_exact, d_approx)
        results.append((f"faiss HNSW32 efSearch={ef}", build_h, t_h, recall))
    agree = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(exact_sk, exact)])
    print(f"faiss flat vs sklearn neighbour agreement: {agree:.4f}")
    print(f"{'index':<28}{'build s':>9}{'queries/s':>12}{'x baseline':>12}{'recall@k':>10}")
    for name, build, t, recall in results:
        qps = args.queries / t
        rec = "" if recall is None else f"{recall:.3f}"
        print(f"{name:<28}{build:>9.2f}{qps:>12.0f}{qps / qps_base:>12.2f}{rec:>10}")


if __name__ == "__main__":
    main()
