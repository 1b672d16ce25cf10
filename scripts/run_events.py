"""Per-event detection against the window-KPI baseline, several training seeds, into small tables.

    python scripts/run_events.py data/sample [data/lab ...] [--seeds 0 1 2 3 4]

For each dataset (a plain dataset or a corpus of runs, see obslab.data.dataset_runs): events and
KPI windows per run, split by time; per seed an encoder on a sample of the training events;
k-NN over event embeddings and over the raw one-hot event features, and the rarity (surprisal)
of the events' categorical values, aggregated to (service, window); the per-service robust-z
KPI detector on the same windows. Writes to data/results/:

- ``events_summary.csv``: per dataset, method and incident group (all, contextual, kpi):
  AUROC, AUPRC, incidents detected, FPR on held-out windows, each with its 95 % interval
  (bootstrap over incidents and normal blocks; each replicate draws a seed: obslab.stats);
  and the false-alarm rate on the dataset's separate no-fault control run, when it has one
  (bootstrap over 5-minute blocks of that run);
- ``events_incidents.csv``: per dataset, method, seed (-1: a method without one) and held-out
  incident: best window score, threshold, detected;

Only the encoder has training randomness, so only embedding k-NN runs once per seed; raw k-NN
(its index: the first seed's sample of training events), rarity and the KPI detector run once.
- ``events_kpi_range.csv``: per contextual incident: how far its KPIs moved from normal.

Rows of a dataset already in a table are replaced; other datasets' rows are kept.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from obslab.data import REPO_ROOT  # noqa: E402
from obslab.events import (RESULT_TABLES, event_scores, fault_kind, fit_events, incident_detection, kpi_range,  # noqa: E402
                           kpi_scores, load_event_data, rarity_scores, window_scores)
from obslab.stats import Resampler, bootstrap_metrics, bootstrap_over_groups  # noqa: E402

METHODS = ("events: embedding k-NN", "events: raw k-NN", "events: rarity", "windows: KPI robust-z")
METRICS = ("AUROC", "AUPRC", "incidents detected", "FPR")
QUANTILE = 0.99  # alert threshold: this quantile of the training windows' scores
RESULTS = REPO_ROOT / "data" / "results"


def method_scores(data, seeds, k, index, max_reference, train_kwargs, log):
    """{method: [window scores per seed]} and the per-incident rows of every seed."""
    scores = {m: [] for m in METHODS}
    incidents = []
    kpi = kpi_scores(data)
    scores["windows: KPI robust-z"].append(kpi)
    incidents.append(incident_detection(data, kpi, QUANTILE).assign(method=METHODS[3], seed=-1))
    for seed in seeds:
        t0 = time.perf_counter()
        ex = fit_events(data, seed=seed, max_reference=max_reference, **train_kwargs)
        t1 = time.perf_counter()
        w = window_scores(ex, event_scores(ex, "embedding", k=k, index=index))
        scores[METHODS[0]].append(w)
        incidents.append(incident_detection(ex, w, QUANTILE).assign(method=METHODS[0], seed=seed))
        if not scores["events: rarity"]:
            # neither has training randomness (the one-hot matrix and the counts come from all
            # training events; raw k-NN's index is the first seed's sample): computed once
            w = window_scores(ex, event_scores(ex, "raw", k=k, index=index))
            scores[METHODS[1]].append(w)
            incidents.append(incident_detection(ex, w, QUANTILE).assign(method=METHODS[1], seed=seed))
            w = window_scores(ex, rarity_scores(ex))
            scores[METHODS[2]].append(w)
            incidents.append(incident_detection(ex, w, QUANTILE).assign(method=METHODS[2], seed=-1))
        log(f"  seed {seed}: encoder {t1 - t0:.1f}s, scoring {time.perf_counter() - t1:.1f}s")
    return scores, pd.concat(incidents, ignore_index=True)


def summarise(data, scores, n_boot, seed):
    """Intervals per method and incident group, on the held-out windows (paired draws)."""
    ev = data.window_evaluate
    w = data.windows[ev]
    y = w["is_anomaly"].to_numpy(bool)
    resampler = Resampler(y, w["incident_id"].to_numpy(object), data.normal_blocks()[ev], n_boot=n_boot,
                          seed=seed, n_seeds=max(len(v) for v in scores.values()))
    kind = np.array([fault_kind(f) for f in w["fault_id"]], dtype=object)
    rows = []
    for group in ("all", "contextual", "kpi"):
        keep = np.ones(len(y), bool) if group == "all" else (~y | (kind == group))
        sub = resampler.subset(keep)
        if not sub.incidents or (group != "all" and len(sub.incidents) == len(resampler.incidents)):
            continue  # no incident of the kind, or all of them: the "all" rows say it
        for method, per_seed in scores.items():
            thresholds = [float(np.quantile(s[data.window_train], QUANTILE)) for s in per_seed]
            out = bootstrap_metrics([s[ev][keep] for s in per_seed], thresholds, sub, METRICS)
            for metric, iv in out.items():
                rows.append({"method": method, "incidents": group, "metric": metric, "estimate": iv.estimate,
                             "low": iv.low, "high": iv.high, "n_incidents": len(sub.incidents),
                             "n_seeds": len(per_seed)})
    rows += control_run_rows(data, scores, n_boot, seed)
    return pd.DataFrame(rows)


def control_run_rows(data, scores, n_boot, seed, block_ms=300_000):
    """False-alarm rate on the separate no-fault run, per method: the alert indicator averaged
    over seeds per window, with an interval from a bootstrap over 5-minute blocks of that run."""
    run = data.window_control_run
    if not run.any():
        return []
    block = data.windows.loc[run, "window_start_ms"].to_numpy() // block_ms
    out = []
    for method, per_seed in scores.items():
        alerts = np.mean([s[run] > np.quantile(s[data.window_train], QUANTILE) for s in per_seed], axis=0)
        groups = [np.array([alerts[block == b].sum(), (block == b).sum()]) for b in np.unique(block)]
        iv = bootstrap_over_groups(groups, lambda g: sum(x[0] for x in g) / sum(x[1] for x in g), n_boot, seed)
        out.append({"method": method, "incidents": "none (control run)", "metric": "control_run_FPR",
                    "estimate": iv.estimate, "low": iv.low, "high": iv.high, "n_incidents": 0,
                    "n_seeds": len(per_seed)})
    return out


def _replace(path: Path, dataset: str, frame: pd.DataFrame) -> None:
    frame = frame.assign(dataset=dataset)
    frame = frame[["dataset"] + [c for c in frame.columns if c != "dataset"]]
    if path.exists():
        old = pd.read_csv(path)
        frame = pd.concat([old[old["dataset"] != dataset], frame], ignore_index=True)
    frame.to_csv(path, index=False, float_format="%.6g")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", nargs="+", type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--window-s", type=int, default=None, help="window length (default: auto_window_ms)")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--index", choices=["flat", "hnsw"], default="flat", help="k-NN index (hnsw: approximate, faster)")
    ap.add_argument("--max-reference", type=int, default=10_000, help="training events in the k-NN index")
    ap.add_argument("--epochs", type=int, default=None, help="at most this many epochs (default: train_encoder's)")
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    for root in args.datasets:
        started = time.perf_counter()
        name = root.resolve().name
        data = load_event_data(root, window_ms=args.window_s * 1000 if args.window_s else None)
        log(f"{name}: {len(data.events)} events ({int(data.event_train.sum())} training), "
            f"{len(data.windows)} windows, {data.window_ms // 1000}s, {len(data.held_out)} held-out incidents "
            f"of {len(data.incidents)} ({time.perf_counter() - started:.1f}s)")
        train_kwargs = {"epochs": args.epochs} if args.epochs else {}
        scores, incidents = method_scores(data, args.seeds, args.k, args.index, args.max_reference, train_kwargs, log)
        summary = summarise(data, scores, args.n_boot, seed=0)
        _replace(args.out / RESULT_TABLES["summary"], name, summary)
        settings = {"window_s": data.window_ms // 1000, "k": args.k, "index": args.index,
                    "max_reference": args.max_reference,
                    "epochs": args.epochs or ""}
        _replace(args.out / RESULT_TABLES["incidents"], name, incidents.assign(**settings))
        _replace(args.out / RESULT_TABLES["kpi_range"], name, kpi_range(data))
        log(summary[summary["metric"].isin(["AUROC", "incidents detected"])].to_string(index=False))
        log(f"{name}: done in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
