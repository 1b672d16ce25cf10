"""The evaluation sweep: every detector on every feature set, several training seeds, 95 % intervals.

For one dataset (or corpus), :func:`evaluate_dataset` trains one encoder per seed
(:func:`obslab.experiment.window_experiment`, cached), scores the held-out rows with each
detector on the embedding and on the raw features, fixes each threshold at the 0.99 quantile of
the detector's own training scores, and puts intervals on every metric with
:mod:`obslab.stats` (incidents and normal blocks resampled; each replicate draws a seed). It
returns three small tables that ``scripts/run_evaluation.py`` writes to ``data/results/``:

- ``summary``: dataset, family ("all" or a fault family), features, detector, metric,
  estimate, low, high, n_incidents
- ``seeds``: the point metrics of every seed (what a re-run of one seed must reproduce)
- ``datasets``: what each dataset held (runs, window, rows, incidents, seeds)

:func:`verdicts` and :func:`verdict_sentence` turn the summary into the words the chapter
prints: a feature set wins only where the two intervals separate.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from obslab.evaluate import fault_family
from obslab.stats import METRICS, Interval, Resampler, bootstrap_metrics, normal_blocks, point_metrics, separated

__all__ = [
    "DETECTOR_NAMES",
    "BASELINES",
    "MIN_INCIDENTS",
    "methods",
    "FEATURE_SETS",
    "SEEDS",
    "make_method",
    "score_methods",
    "held_out",
    "HeldOut",
    "seed_metrics",
    "evaluate_dataset",
    "verdicts",
    "verdict_sentence",
    "versus_baselines",
    "interval_table",
    "results_dir",
    "read_results",
]

FEATURE_SETS = ("embedding", "raw features")
# table label -> detector name (chapter 7's settings in make_method); each runs on both feature sets
DETECTOR_NAMES = {"k-NN": "knn", "LOF": "lof", "Isolation Forest": "iforest", "centroid": "centroid"}
# the trivial baselines every table carries: per-KPI robust z on the raw KPIs, and chance
BASELINES = (("raw features", "robust-z"), ("none", "random"))
SEEDS = (7, 11, 23, 42, 97)
QUANTILE = 0.99
FAMILY_METRICS = ("AUROC", "AUPRC", "recall", "incidents detected")
# below this many held-out incidents a family's interval hardly moves with the incidents (with
# one incident the bootstrap never varies it): no winner is named there
MIN_INCIDENTS = 3


def make_method(detector: str, features: str, seed: int, n_kpis: int):
    """An unfitted detector for a table label, seeded where it has randomness. ``robust-z``
    looks at the raw matrix's numeric KPI columns only (not its one-hot service columns)."""
    from obslab.detect import make_detector

    if detector == "robust-z":
        return make_detector("robust-z", columns=slice(0, n_kpis) if features == "raw features" else None)
    name = DETECTOR_NAMES[detector]
    params = {"knn": dict(k=5), "lof": dict(n_neighbors=20),
              "iforest": dict(n_estimators=200, seed=seed)}.get(name, {})
    return make_detector(name, **params)


def methods(detectors: Sequence[str] = tuple(DETECTOR_NAMES)) -> list[tuple[str, str]]:
    """The table's rows: every detector on every feature set, then the baselines."""
    return [(f, d) for f in FEATURE_SETS for d in detectors] + list(BASELINES)


def _fit_rows(n: int, cap: int):
    if n <= cap:
        return slice(None)
    return np.sort(np.random.default_rng(0).choice(n, cap, replace=False))


SEEDED = ("Isolation Forest",)  # detectors whose result depends on the seed on fixed features


def score_methods(ex, detectors: Sequence[str] = tuple(DETECTOR_NAMES), quantile: float = QUANTILE,
                  reuse: Mapping | None = None, max_train_rows: int = 20_000,
                  ) -> dict[tuple[str, str], tuple[np.ndarray, float]]:
    """``(features, detector) -> (scores of the evaluate rows, threshold)`` for one experiment,
    for every row of :func:`methods`; ``("none", "random")`` is uniform scores from the
    experiment's seed, its threshold the quantile of as many uniform "training" scores.
    ``reuse``: another seed's results on the *same* raw matrix; its unseeded raw-feature
    methods are taken over instead of refitted (raw features do not depend on the seed).
    Detectors are fitted on at most ``max_train_rows`` training rows (a fixed random subset,
    the same for every seed), so a year of windows stays affordable for LOF and k-NN."""
    matrices = ex.matrices("evaluate")
    fit_rows = _fit_rows(int(ex.split.train.sum()), max_train_rows)
    rng = np.random.default_rng(ex.seed)
    out = {}
    for features, detector in methods(detectors):
        if reuse is not None and features == "raw features" and detector not in SEEDED:
            out[(features, detector)] = reuse[(features, detector)]
            continue
        if features == "none":
            train_scores = rng.random(int(ex.split.train.sum()))
            out[(features, detector)] = (rng.random(int(ex.split.evaluate.sum())),
                                         float(np.quantile(train_scores, quantile)))
            continue
        X_train, X_eval = matrices[features]
        det = make_method(detector, features, ex.seed, ex.n_kpis).fit(X_train[fit_rows])
        out[(features, detector)] = (det.score(X_eval), det.set_threshold(quantile))
    return out


@dataclass
class HeldOut:
    """The evaluate rows' truth, shared by every seed (the split does not depend on the seed):
    fault flag, incident id (None for normal rows), fault family, normal block id."""

    y: np.ndarray
    incident: np.ndarray
    family: np.ndarray
    blocks: np.ndarray


def held_out(ex) -> HeldOut:
    """What the bootstrap resamples, for the experiment's evaluate rows."""
    ev = ex.split.evaluate
    lab = ex.labels[ev]
    runs = list(pd.unique(ex.runs))
    # normal blocks: the time between consecutive incident starts of each run
    starts = {run: [i.start_ms for i in ex.incidents
                    if len(runs) == 1 or i.incident_id.startswith(f"{run}/")] for run in runs}
    blocks = normal_blocks(ex.frame.loc[ev, "window_start_ms"].to_numpy(), starts, ex.runs[ev])
    incident = lab["incident_id"].to_numpy(object)
    incident[pd.isna(incident)] = None  # missing may come back as NaN from a string column
    return HeldOut(y=lab["is_anomaly"].to_numpy(bool), incident=incident,
                 family=np.array([fault_family(f) for f in lab["fault_id"]], dtype=object), blocks=blocks)


def seed_metrics(scored, resampler: Resampler) -> list[dict]:
    """The point metrics (no resampling) of every method of one seed."""
    return [{"features": features, "detector": detector, "metric": metric, "value": value}
            for (features, detector), (s, thr) in scored.items()
            for metric, value in point_metrics(s, thr, resampler).items()]


def evaluate_dataset(root, dataset: str, seeds: Sequence[int] = SEEDS, n_boot: int = 1000,
                     boot_seed: int = 0, epochs: int = 30, detectors: Sequence[str] = tuple(DETECTOR_NAMES),
                     log: Callable[[str], None] = print, experiment=None) -> dict[str, pd.DataFrame]:
    """Run the sweep on one dataset; ``{"summary", "seeds", "datasets"}`` tables (see module doc).

    ``experiment(root, seed)`` builds the experiment (default: :func:`window_experiment` with a
    per-dataset, per-seed cache name).
    """
    import time

    from obslab.experiment import window_experiment

    if experiment is None:
        def experiment(root, seed):
            return window_experiment(root, seed=seed, epochs=epochs, name=f"eval-{dataset}-seed{seed}")

    scored_by_seed, held, ex, first = {}, None, None, None
    for seed in seeds:
        t0 = time.perf_counter()
        ex = experiment(root, seed)
        t1 = time.perf_counter()
        here = held_out(ex)
        if held is None:
            held, first = here, ex
        elif not (np.array_equal(held.y, here.y) and np.array_equal(held.incident, here.incident)):
            raise RuntimeError("the held-out rows changed with the seed; the split must not depend on it")
        same_raw = first is not ex and np.array_equal(first.raw, ex.raw)
        scored_by_seed[seed] = score_methods(ex, detectors, reuse=scored_by_seed[seeds[0]] if same_raw else None)
        log(f"{dataset} seed {seed}: experiment {t1 - t0:.1f} s, detectors {time.perf_counter() - t1:.1f} s")
    t0 = time.perf_counter()
    resampler = Resampler(held.y, held.incident, held.blocks, n_boot=n_boot, seed=boot_seed, n_seeds=len(seeds))
    seed_rows = [{"dataset": dataset, "seed": seed, **r} for seed in seeds
                 for r in seed_metrics(scored_by_seed[seed], resampler)]
    summary = []
    families = ["all", *sorted({f for f in held.family[held.y]})]
    for family in families:
        rows = np.ones(len(held.y), bool) if family == "all" else ~held.y | (held.family == family)
        res = resampler if family == "all" else resampler.subset(rows)
        metrics = tuple(METRICS) if family == "all" else FAMILY_METRICS
        for method in scored_by_seed[seeds[0]]:
            per_seed = [scored_by_seed[s][method] for s in seeds]
            ivs = bootstrap_metrics([s[rows] for s, _ in per_seed], [t for _, t in per_seed], res, metrics)
            for metric, iv in ivs.items():
                summary.append({"dataset": dataset, "family": family, "features": method[0],
                                "detector": method[1], "metric": metric, "estimate": iv.estimate,
                                "low": iv.low, "high": iv.high, "n_incidents": len(res.incidents)})
    log(f"{dataset}: bootstrap ({n_boot} replicates, {len(families)} families) {time.perf_counter() - t0:.1f} s")
    info = {"dataset": dataset, "runs": len(pd.unique(ex.runs)), "window_s": ex.window_ms // 1000,
            "train_rows": int(ex.split.train.sum()), "evaluate_rows": int(ex.split.evaluate.sum()),
            "fault_rows": int(held.y.sum()), "test_incidents": len(resampler.incidents),
            "normal_blocks": len(resampler.blocks), "seeds": " ".join(map(str, seeds)), "n_boot": n_boot,
            "boot_seed": boot_seed, "epochs": epochs}
    return {"summary": pd.DataFrame(summary), "seeds": pd.DataFrame(seed_rows), "datasets": pd.DataFrame([info])}


def _interval(rows: pd.DataFrame) -> Interval:
    if len(rows) != 1:
        return Interval(float("nan"), float("nan"), float("nan"))
    r = rows.iloc[0]
    return Interval(float(r["estimate"]), float(r["low"]), float(r["high"]))


def verdicts(summary: pd.DataFrame, metric: str = "AUROC") -> pd.DataFrame:
    """Per dataset, family and detector: which feature set wins on ``metric`` ("embedding",
    "raw features") where their intervals separate, else "no difference"; "too few incidents"
    below ``MIN_INCIDENTS`` held-out incidents."""
    out = []
    keys = summary[summary["features"].isin(FEATURE_SETS) & (summary["metric"] == metric)
                   & summary["detector"].isin(list(DETECTOR_NAMES))]
    for (dataset, family, detector), g in keys.groupby(["dataset", "family", "detector"], sort=False):
        emb = _interval(g[g["features"] == "embedding"])
        raw = _interval(g[g["features"] == "raw features"])
        n = int(g["n_incidents"].iloc[0])
        side = separated(emb, raw)
        winner = {1: "embedding", -1: "raw features", 0: "no difference"}[side]
        out.append({"dataset": dataset, "family": family, "detector": detector,
                    "embedding": str(emb), "raw features": str(raw),
                    "winner": winner if n >= MIN_INCIDENTS else "too few incidents", "n_incidents": n})
    return pd.DataFrame(out)


def verdict_sentence(table: pd.DataFrame, dataset: str, family: str = "all", metric: str = "AUROC") -> str:
    """One sentence from :func:`verdicts` rows of one dataset and family."""
    rows = table[(table["dataset"] == dataset) & (table["family"] == family)]
    if rows.empty:
        return f"{dataset}, {family}: no results."
    n = int(rows["n_incidents"].iloc[0])
    where = "all faults" if family == "all" else f"the {family} family"
    parts = []
    for winner, words in (("raw features", "raw features beat the embedding"),
                          ("embedding", "the embedding beats raw features")):
        dets = rows.loc[rows["winner"] == winner, "detector"].tolist()
        if dets:
            parts.append(f"{words} with {', '.join(dets)}")
    tied = rows.loc[rows["winner"] == "no difference", "detector"].tolist()
    if tied:
        parts.append(f"no difference at this sample size with {', '.join(tied)}")
    if not (rows["winner"] == "embedding").any():
        parts.append("the embedding wins with no detector")
    if (rows["winner"] == "too few incidents").all():
        parts = [f"too few incidents to compare (fewer than {MIN_INCIDENTS})"]
    return (f"On {dataset}, {where} ({n} held-out incident{'s' if n != 1 else ''}), {metric}: "
            + "; ".join(parts) + ".")


def results_dir():
    """Where the committed sweep tables live: ``data/results`` at the repository root."""
    from obslab.data import REPO_ROOT

    return REPO_ROOT / "data" / "results"


def read_results(folder=None) -> dict[str, pd.DataFrame]:
    """The committed tables: ``{"summary", "seeds", "datasets"}``."""
    folder = results_dir() if folder is None else folder
    return {name: pd.read_csv(folder / f"evaluation_{name}.csv") for name in ("summary", "seeds", "datasets")}


def interval_table(summary: pd.DataFrame, dataset: str, family: str = "all",
                   metrics: Sequence[str] = ("AUROC", "AUPRC", "recall", "incidents detected")) -> pd.DataFrame:
    """One dataset's methods x metrics, each cell ``"estimate [low, high]"``, in table order."""
    rows = summary[(summary["dataset"] == dataset) & (summary["family"] == family)
                   & summary["metric"].isin(list(metrics))]
    cells = rows.assign(cell=[str(Interval(e, lo, hi)) for e, lo, hi in zip(rows["estimate"], rows["low"], rows["high"])])
    wide = cells.pivot(index=["features", "detector"], columns="metric", values="cell")
    order = [m for m in methods() if m in wide.index]
    return wide.loc[order, [m for m in metrics if m in wide.columns]]


def versus_baselines(summary: pd.DataFrame, dataset: str, family: str = "all", metric: str = "AUROC") -> str:
    """How many methods per feature set beat chance and the per-KPI robust z (intervals
    separate), as one sentence."""
    rows = summary[(summary["dataset"] == dataset) & (summary["family"] == family) & (summary["metric"] == metric)]
    by = {(f, d): Interval(e, lo, hi) for f, d, e, lo, hi in
          rows[["features", "detector", "estimate", "low", "high"]].itertuples(index=False)}
    random, robust = by.get(("none", "random")), by.get(("raw features", "robust-z"))
    if random is None or robust is None:
        return f"{dataset}, {family}: no baselines in the table."
    parts = []
    for features in FEATURE_SETS:
        ivs = [by[(features, d)] for d in DETECTOR_NAMES if (features, d) in by]
        over_random = sum(separated(iv, random) == 1 for iv in ivs)
        over_robust = sum(separated(iv, robust) == 1 for iv in ivs)
        under_robust = sum(separated(iv, robust) == -1 for iv in ivs)
        parts.append(f"on {features}, {over_random} of {len(ivs)} detectors beat chance and "
                     f"{over_robust} beat the per-KPI robust z ({under_robust} lose to it)")
    return f"Against the trivial baselines ({metric}), " + "; ".join(parts) + "."
