"""How much the embedding detector depends on its settings, and what it costs beside raw features.

**Sensitivity.** One factor at a time around the default (:data:`DEFAULT`): the embedding size,
the encoder's depth and width, the SCARF corruption rate, the NT-Xent temperature, the window
length (a multiple of the dataset's default window) and the k of the k-NN detector. Every point
trains an encoder per seed (cached by :func:`obslab.train.Encoder.fit`), scores the held-out
rows with k-NN on the embedding, and puts 95 % intervals on AUROC and AUPRC with
:mod:`obslab.stats` (incidents and normal blocks resampled, each replicate drawing a seed). The
raw-feature k-NN is scored beside it wherever it changes (the default, window and k points).
Within one window every point shares the same bootstrap draws, so points are paired.

**Cost.** Per dataset and feature set: CPU seconds to build the detector's input (training
the encoder for the embedding, encoding for raw features), rows turned into detector input per
CPU second, k-NN fit + scoring CPU seconds, and the peak resident memory of each stage.

``scripts/run_sensitivity.py`` runs both into ``data/results/sensitivity.csv`` and
``data/results/cost.csv``; a test re-runs one point with :func:`run_point`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from obslab.stats import Interval, Resampler, bootstrap_metrics, normal_blocks, separated

__all__ = ["DEFAULT", "FACTORS", "SEEDS", "EPOCHS", "points", "Prepared", "prepare", "run_point",
           "sweep", "cost", "peak_rss_mb", "read_results", "interval_table", "findings"]

# the settings every chapter uses: train_encoder's and TabularResNet's defaults, chapter 7's k
DEFAULT = {"d_embedding": 32, "n_blocks": 3, "d_model": 64, "corruption": 0.3, "temperature": 0.2,
           "window": 1, "k": 5}
# factor -> values tried (each a dict of the settings it changes); the default is one of them
FACTORS: dict[str, list[dict]] = {
    "embedding size": [{"d_embedding": d} for d in (8, 32, 64)],
    "depth x width": [{"n_blocks": b, "d_model": w} for b, w in ((1, 32), (3, 64), (6, 128))],
    "corruption": [{"corruption": c} for c in (0.1, 0.3, 0.6)],
    "temperature": [{"temperature": t} for t in (0.05, 0.2, 0.5)],
    "window": [{"window": m} for m in (1, 2, 3)],
    "k": [{"k": k} for k in (2, 5, 10, 20)],
}
SEEDS = (7, 11, 23)
EPOCHS = 30  # the cap window_experiment uses; early stopping usually ends training sooner
QUANTILE = 0.99
METRICS = ("AUROC", "AUPRC")
_MODEL_KEYS = ("d_embedding", "n_blocks", "d_model", "corruption", "temperature")


def points() -> list[tuple[str, str, dict]]:
    """``(factor, value label, settings)``: the default once, then every other value of each factor."""
    out = [("default", "default", dict(DEFAULT))]
    for factor, values in FACTORS.items():
        for change in values:
            settings = {**DEFAULT, **change}
            if settings != DEFAULT:
                out.append((factor, _label(change), settings))
    return out


def _label(change: dict) -> str:
    return " x ".join(f"{v}" for v in change.values())


def peak_rss_mb() -> float:
    """Peak resident memory since the last reset (Linux VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


@dataclass
class Prepared:
    """One dataset at one window length: the experiment and its held-out truth."""

    experiment: object  # obslab.experiment.WindowExperiment
    y: np.ndarray  # evaluate rows: is a fault row
    resampler: Resampler


def prepare(root, dataset: str, window_ms: int | None, n_boot: int = 1000, boot_seed: int = 0,
            seeds: Sequence[int] = SEEDS) -> Prepared:
    """The windowed experiment (its own encoder is the default settings' first seed) and the
    bootstrap draws over its held-out incidents and normal blocks."""
    from obslab.experiment import window_experiment

    name = f"sens-{dataset}-{window_ms // 1000 if window_ms else 'auto'}s-default-seed{seeds[0]}"
    seed = seeds[0]
    ex = window_experiment(root, window_ms=window_ms, seed=seed, epochs=EPOCHS, name=name)
    ev = ex.split.evaluate
    lab = ex.labels[ev]
    runs = np.asarray(ex.runs, dtype=object)
    run_names = list(pd.unique(runs))
    starts = {run: [i.start_ms for i in ex.incidents
                    if len(run_names) == 1 or i.incident_id.startswith(f"{run}/")] for run in run_names}
    blocks = normal_blocks(ex.frame.loc[ev, "window_start_ms"].to_numpy(), starts, runs[ev])
    incident = lab["incident_id"].to_numpy(object)
    incident[pd.isna(incident)] = None
    y = lab["is_anomaly"].to_numpy(bool)
    return Prepared(ex, y, Resampler(y, incident, blocks, n_boot=n_boot, seed=boot_seed, n_seeds=len(seeds)))


def _encoder(prep: Prepared, dataset: str, settings: dict, seed: int):
    from obslab.train import Encoder

    ex = prep.experiment
    model = {k: settings[k] for k in _MODEL_KEYS}
    if model == {k: DEFAULT[k] for k in _MODEL_KEYS} and seed == ex.encoder.meta["training"]["seed"]:
        return ex.encoder  # prepare() trained exactly this one
    tag = "-".join(f"{k}{v}" for k, v in model.items())
    name = f"sens-{dataset}-{ex.window_ms // 1000}s-{tag}-seed{seed}"
    return Encoder.fit(ex.frame, ex.split.train, name, numeric=ex.encoder.spec.numeric,
                       categorical=ex.encoder.spec.categorical, data_id=f"sensitivity {dataset}",
                       epochs=EPOCHS, seed=seed, objective="contrastive", **model)


def _knn_scores(X_train, X_eval, k: int) -> tuple[np.ndarray, float]:
    from obslab.detect import KNNDetector

    det = KNNDetector(k=k).fit(X_train)
    return det.score(X_eval), det.set_threshold(QUANTILE)


def run_point(prep: Prepared, dataset: str, factor: str, value: str, settings: dict,
              seeds: Sequence[int] = SEEDS, with_raw: bool = True) -> list[dict]:
    """AUROC and AUPRC with intervals for one setting (k-NN on the embedding, one encoder per
    seed; and on raw features when ``with_raw``): one row per feature set and metric."""
    ex = prep.experiment
    tr, ev = ex.split.train, ex.split.evaluate
    scored, steps = [], []
    for seed in seeds:
        enc = _encoder(prep, dataset, settings, seed)
        emb = enc.embed(ex.frame)
        scored.append(_knn_scores(emb[tr], emb[ev], settings["k"]))
        steps.append(enc.meta["training"].get("steps", np.nan))
    results = {"embedding": scored}
    if with_raw:
        results["raw features"] = [_knn_scores(ex.raw[tr], ex.raw[ev], settings["k"])]
    rows = []
    for features, per_seed in results.items():
        ivs = bootstrap_metrics([s for s, _ in per_seed], [t for _, t in per_seed], prep.resampler, METRICS)
        for metric, iv in ivs.items():
            rows.append({"dataset": dataset, "factor": factor, "value": value, "features": features,
                         "metric": metric, "estimate": iv.estimate, "low": iv.low, "high": iv.high,
                         "seeds": len(per_seed), "window_s": ex.window_ms // 1000,
                         "train_rows": int(tr.sum()), "evaluate_rows": int(ev.sum()),
                         "incidents": len(prep.resampler.incidents),
                         "mean_steps": float(np.mean(steps)) if features == "embedding" else np.nan})
    return rows


def sweep(root, dataset: str, seeds: Sequence[int] = SEEDS, n_boot: int = 1000, boot_seed: int = 0,
          base_window_ms: int | None = None, factors: Sequence[str] | None = None,
          log: Callable[[str], None] = print) -> pd.DataFrame:
    """Every point of :func:`points` on one dataset (the default and only ``factors``' points,
    when given); the long table of :func:`run_point` rows."""
    prepared: dict[int, Prepared] = {}
    base = prepare(root, dataset, base_window_ms, n_boot, boot_seed, seeds)
    prepared[1] = base
    rows = []
    for factor, value, settings in points():
        if factors is not None and factor not in ("default", *factors):
            continue
        t = time.perf_counter()
        mult = settings["window"]
        if mult not in prepared:
            try:
                prepared[mult] = prepare(root, dataset, base.experiment.window_ms * mult, n_boot, boot_seed,
                                         seeds)
            except ValueError as exc:  # e.g. too few fault-free windows at this length
                log(f"{dataset} {factor}={value}: skipped ({exc})")
                continue
        with_raw = factor in ("default", "window", "k")
        rows += run_point(prepared[mult], dataset, factor, value, settings, seeds, with_raw)
        log(f"{dataset} {factor}={value}: {time.perf_counter() - t:.1f} s")
    return pd.DataFrame(rows)


class _Clock:
    """CPU seconds of this process (what the work costs, whatever else shares the machine:
    torch trains single-threaded and k-NN runs with one OpenMP thread) and wall seconds."""

    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu, self.wall = time.process_time() - self.cpu, time.perf_counter() - self.wall


def cost(prep: Prepared, dataset: str, seed: int = SEEDS[0]) -> pd.DataFrame:
    """What each feature set costs on one prepared dataset (default settings, one seed).

    ``build_s``: CPU seconds to make the detector's input from the window rows (training the
    encoder with early stopping, then embedding every row; for raw features: encoding every
    row), ``build_wall_s`` the same in wall-clock time; ``train_s``: the training part;
    ``rows_per_s``: rows turned into detector input per CPU second once built (encoding, plus
    the forward pass for the embedding); ``knn_s``: CPU seconds to fit k-NN on the training
    rows and score the held-out rows; ``peak_mb``: the peak resident memory of the process
    during build and k-NN. The encoder is trained here, not read from the cache."""
    from obslab.detect import raw_feature_matrix
    from obslab.train import embed, train_encoder

    ex = prep.experiment
    tr, ev = ex.split.train, ex.split.evaluate
    spec = ex.encoder.spec
    common = {"dataset": dataset, "train_rows": int(tr.sum()), "rows": len(ex.frame)}
    _reset_peak()
    with _Clock() as encode:
        x_num, x_cat = ex.encoder.encode(ex.frame)
        raw = raw_feature_matrix(x_num, x_cat, spec.cardinalities)
    with _Clock() as knn:
        _knn_scores(raw[tr], raw[ev], DEFAULT["k"])
    rows = [{**common, "features": "raw features", "dims": raw.shape[1], "train_s": 0.0, "steps": 0,
             "build_s": encode.cpu, "build_wall_s": encode.wall, "rows_per_s": len(raw) / encode.cpu,
             "knn_s": knn.cpu, "peak_mb": peak_rss_mb()}]
    _reset_peak()
    with _Clock() as train:
        model, history = train_encoder(x_num[tr], x_cat[tr], spec, objective="contrastive",
                                       epochs=EPOCHS, seed=seed)
    with _Clock() as forward:
        emb = embed(model, x_num, x_cat)
    with _Clock() as knn:
        _knn_scores(emb[tr], emb[ev], DEFAULT["k"])
    rows.append({**common, "features": "embedding", "dims": emb.shape[1], "train_s": train.cpu,
                 "steps": history["steps"], "build_s": encode.cpu + train.cpu + forward.cpu,
                 "build_wall_s": encode.wall + train.wall + forward.wall,
                 "rows_per_s": len(emb) / (encode.cpu + forward.cpu), "knn_s": knn.cpu,
                 "peak_mb": peak_rss_mb()})
    return pd.DataFrame(rows)


# --- reading the committed tables ------------------------------------------------------------

def read_results(folder=None) -> dict[str, pd.DataFrame]:
    """The committed tables of scripts/run_sensitivity.py: ``{"sensitivity", "cost"}``."""
    from obslab.data import REPO_ROOT

    folder = Path(folder or REPO_ROOT / "data" / "results")
    return {name: pd.read_csv(folder / f"{name}.csv") for name in ("sensitivity", "cost")}


def _cell(r) -> str:
    return f"{r.estimate:.3f} [{r.low:.3f}, {r.high:.3f}]"


def interval_table(sens: pd.DataFrame, dataset: str, metric: str = "AUROC") -> pd.DataFrame:
    """One dataset's points (factor, value) x feature set, cells ``"estimate [low, high]"``."""
    rows = sens[(sens["dataset"] == dataset) & (sens["metric"] == metric)]
    cells = rows.assign(cell=[_cell(r) for r in rows.itertuples()])
    order = list(dict.fromkeys(zip(rows["factor"], rows["value"].astype(str))))
    wide = cells.assign(value=cells["value"].astype(str)).pivot_table(
        index=["factor", "value"], columns="features", values="cell", aggfunc="first").reindex(order)
    wide.columns.name = None
    return wide.fillna("")


def _interval(rows: pd.DataFrame) -> Interval:
    r = rows.iloc[0]
    return Interval(float(r["estimate"]), float(r["low"]), float(r["high"]))


def findings(sens: pd.DataFrame, dataset: str, metric: str = "AUROC") -> str:
    """What the intervals say, in words: which settings differ from the default (intervals
    separate), and embedding against raw features at each point where both were scored."""
    rows = sens[(sens["dataset"] == dataset) & (sens["metric"] == metric)]
    emb = rows[rows["features"] == "embedding"]
    default = _interval(emb[emb["factor"] == "default"])
    better, worse = [], []
    for r in emb[emb["factor"] != "default"].itertuples():
        side = separated(Interval(r.estimate, r.low, r.high), default)
        (better if side > 0 else worse if side < 0 else []).append(f"{r.factor} {r.value}")
    n = int(rows["incidents"].iloc[0])
    text = [f"On {dataset} ({n} held-out incidents, {int(emb['seeds'].iloc[0])} seeds), {metric} "
            f"of k-NN on the default embedding is {default}."]
    if not better and not worse:
        text.append("No other setting's interval separates from the default's: with this many "
                    "incidents the sweep cannot tell the settings apart (which is not evidence "
                    "that they do not matter).")
    if better:
        text.append(f"Better than the default (intervals separate): {', '.join(better)}.")
    if worse:
        text.append(f"Worse than the default (intervals separate): {', '.join(worse)}.")
    versus = {"embedding": [], "raw features": [], "no difference": []}
    for (factor, value), g in rows.groupby(["factor", "value"], sort=False):
        if set(g["features"]) >= {"embedding", "raw features"}:
            side = separated(_interval(g[g["features"] == "embedding"]), _interval(g[g["features"] == "raw features"]))
            versus[{1: "embedding", -1: "raw features", 0: "no difference"}[side]].append(
                "default" if factor == "default" else f"{factor} {value}")
    if versus["raw features"]:
        text.append(f"Raw features beat the embedding at: {', '.join(versus['raw features'])}.")
    if versus["embedding"]:
        text.append(f"The embedding beats raw features at: {', '.join(versus['embedding'])}.")
    if versus["no difference"]:
        text.append(f"No difference between the two at: {', '.join(versus['no difference'])}.")
    return " ".join(text)
