"""Precompute the sensitivity and cost tables the training chapter reads.

    .venv/bin/python scripts/run_sensitivity.py                      # sample + synth (+ lab if present)
    .venv/bin/python scripts/run_sensitivity.py --datasets sample --seeds 7 11 23

Writes ``data/results/sensitivity.csv`` (one factor at a time around the default: AUROC and
AUPRC of k-NN on the embedding, and on raw features where they change, with 95 % intervals
over incidents and training seeds; see :mod:`obslab.sensitivity`) and ``data/results/cost.csv``
(training time, rows per second, k-NN time, peak memory, embedding beside raw features).
Everything is seeded: the same command gives the same tables (timings and memory aside), and
a point's numbers do not depend on which other points ran with it (checked across processes).
The committed tables were made, on a shared and heavily loaded 2-core machine, by
``--datasets sample`` (every factor) and, on the synthetic month, ``--datasets synth --factors
k`` and ``--datasets synth --factors corruption --no-cost``, rows concatenated; the other
synthetic factors and the lab corpus are still to run.

Datasets: ``sample`` (the committed 20-minute lab run), ``synth`` (a seeded synthetic run of
``--synth-days`` days at 5-minute steps, from :func:`obslab.data.synth_dataset`), ``lab`` (the
corpus in ``data/lab``, when it has been recorded). ``--cost-year`` also measures the cost on the
full synthetic year (over 200,000 training rows), which takes a few minutes more.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # two cores, shared with the lab recording

from obslab.data import REPO_ROOT, dataset_step_ms, synth_dataset  # noqa: E402
from obslab.sensitivity import FACTORS, SEEDS, cost, prepare, sweep  # noqa: E402

SYNTH_SEED = 7
SYNTH_DAYS = 30  # 43,200 window rows: a few dozen incidents, fast enough for 33 trainings


def dataset_roots(names, synth_days: int) -> dict[str, tuple[Path, int | None]]:
    """name -> (dataset root, its base window in ms or None for the automatic choice)."""
    roots = {}
    for name in names:
        if name == "sample":
            roots[name] = (REPO_ROOT / "data" / "sample", None)
        elif name == "synth":
            root = synth_dataset(seed=SYNTH_SEED, days=synth_days)
            roots[name] = (root, dataset_step_ms(root))
        elif name == "lab":
            root = REPO_ROOT / "data" / "lab"
            if (root / "runs").exists() or (root / "labels.parquet").exists():
                roots[name] = (root, None)
            else:
                print(f"lab: {root} not recorded yet, skipped", file=sys.stderr)
        else:
            raise SystemExit(f"unknown dataset {name!r}: sample, synth or lab")
    return roots


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["sample", "synth", "lab"])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--factors", nargs="+", choices=list(FACTORS), help="only these factors (default: all)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
    parser.add_argument("--synth-days", type=int, default=SYNTH_DAYS)
    parser.add_argument("--cost-year", action="store_true", help="also measure cost on the synthetic year")
    parser.add_argument("--no-cost", action="store_true", help="the sensitivity table only")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "results")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    started = time.perf_counter()
    tables, costs = [], []
    for name, (root, window_ms) in dataset_roots(args.datasets, args.synth_days).items():
        t = time.perf_counter()
        tables.append(sweep(root, name, seeds=args.seeds, n_boot=args.boot, base_window_ms=window_ms,
                            factors=args.factors))
        if not args.no_cost:
            costs.append(cost(prepare(root, name, window_ms, args.boot, 0, args.seeds), name, args.seeds[0]))
        print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
    if args.cost_year:
        root = synth_dataset(seed=SYNTH_SEED)
        costs.append(cost(prepare(root, "synth-year", dataset_step_ms(root), args.boot, 0, args.seeds),
                          "synth-year", args.seeds[0]))
    sens = pd.concat(tables, ignore_index=True)
    sens.to_csv(args.out / "sensitivity.csv", index=False, float_format="%.6g")
    if costs:
        pd.concat(costs, ignore_index=True).to_csv(args.out / "cost.csv", index=False, float_format="%.6g")
    print(f"wrote {args.out / 'sensitivity.csv'} ({len(sens)} rows) and cost.csv "
          f"in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
