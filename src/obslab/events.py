"""Per-event detection: score every span and log line, then aggregate to windows and incidents.

Window KPIs (request rate, error rate, latency percentiles, log counts) measure *how much*.
Some faults change *what* happens instead: a route calling a backend it never called, a log
template never seen, a client probing endpoints nobody uses. This module scores events::

    data = load_event_data(root)                              # rows, windows, truth, split per run
    ex = fit_events(data, seed=7)                             # + an encoder (cached per seed)
    s = event_scores(ex, "embedding", k=10)                   # k-NN distance per event
    r = rarity_scores(ex)                                     # or: how rare are its values
    w = window_scores(ex, s)                                  # max per (run, service, window)
    kpi = kpi_scores(ex)                                      # the KPI baseline on the same windows
    det = incident_detection(ex, w)                           # per incident: caught at threshold?
    rng = kpi_range(ex)                                       # per incident: did its KPIs leave the normal range?

Rows come from :mod:`obslab._event_rows` (spans and log lines, high-cardinality context as
categorical columns; unseen values map to the "unknown" index 0), runs and splits from
:mod:`obslab._event_data`, the KPI baseline and range check from :mod:`obslab._event_kpis`. A corpus
(:func:`obslab.data.dataset_runs`) is handled run by run: each run keeps its own clock, its
own time split and windows; rows are stacked with a ``run`` key and incident ids are
run-qualified (``run/inc-003``) when there is more than one run.

The split is by time, as in the evaluation chapter: per run, training events are those before
the cut-off and outside every incident (plus a margin of one window); only they fit the
feature vocabularies, the encoder, the k-NN reference set and the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from obslab._event_data import EventData, load_event_data
from obslab._event_kpis import KPI_COLUMNS, kpi_range, kpi_scores, kpi_z
from obslab._event_rows import EVENT_CATEGORICAL, EVENT_NUMERIC, message_template

__all__ = ["EVENT_NUMERIC", "EVENT_CATEGORICAL", "KPI_COLUMNS", "message_template", "fault_kind",
           "EventData", "load_event_data", "EventExperiment", "fit_events", "event_experiment",
           "event_scores", "rarity_scores", "window_scores", "kpi_z", "kpi_scores", "kpi_range",
           "incident_detection", "window_metrics", "RESULT_TABLES", "read_results"]


def fault_kind(fault_id) -> str:
    """"contextual" for the faults that change what happens (obslab.evaluate.FAULT_FAMILIES),
    else "kpi"."""
    from obslab.evaluate import fault_family

    return "contextual" if fault_family(fault_id) == "contextual" else "kpi"


@dataclass
class EventExperiment:
    """EventData plus an encoder fitted with one seed on a sample of the training events."""

    data: EventData
    encoder: object  # obslab.train.Encoder (its FeatureSpec fitted on all training events)
    reference: np.ndarray  # indices of the training events the encoder and k-NN index use
    seed: int

    def __getattr__(self, name):  # the data's fields read as the experiment's own
        if name == "data":
            raise AttributeError(name)
        return getattr(self.data, name)

    def matrix(self, features: str) -> np.ndarray:
        """Every event as the detector sees it: ``"embedding"`` or ``"raw"`` (one-hot)."""
        from obslab.detect import raw_feature_matrix

        if features == "embedding":
            return self.encoder.embed(self.events)
        if features == "raw":
            x_num, x_cat = self.encoder.encode(self.events)
            return raw_feature_matrix(x_num, x_cat, self.encoder.spec.cardinalities)
        raise ValueError(f"features must be 'embedding' or 'raw', not {features!r}")


def fit_events(data: EventData, seed: int = 7, max_reference: int = 10_000, **train_kwargs) -> EventExperiment:
    """Fit the FeatureSpec on all training events and the encoder on a seeded sample of at
    most ``max_reference`` of them (the cost stays flat however long the recording);
    ``train_kwargs`` go to :func:`obslab.train.train_encoder`. The encoder is cached by
    :func:`obslab.train.load_or_train` (keyed by data and settings)."""
    from obslab.cache import cache_path
    from obslab.features import fit_features, transform
    from obslab.train import Encoder, load_or_train

    train_idx = np.flatnonzero(data.event_train)
    if len(train_idx) < 50:
        raise ValueError(f"only {len(train_idx)} training events: the runs start with incidents?")
    rng = np.random.default_rng(seed)
    reference = np.sort(rng.choice(train_idx, size=min(max_reference, len(train_idx)), replace=False))
    spec = fit_features(data.events.iloc[train_idx], numeric=EVENT_NUMERIC, categorical=EVENT_CATEGORICAL)
    x_num, x_cat = transform(spec, data.events.iloc[reference])
    name = f"events-{data.name}-{data.window_ms // 1000}s-seed{seed}"
    model, meta = load_or_train(name, x_num, x_cat, spec, data_id=data.name, seed=seed, **train_kwargs)
    return EventExperiment(data, Encoder(model, spec, meta, cache_path("models", name)), reference, seed)


def event_experiment(root=None, *, window_ms: int | None = None, seed: int = 7, train_fraction: float = 0.4,
                     **fit_kwargs) -> EventExperiment:
    """:func:`load_event_data` then :func:`fit_events`."""
    data = load_event_data(root, window_ms=window_ms, train_fraction=train_fraction)
    return fit_events(data, seed=seed, **fit_kwargs)


def event_scores(ex: EventExperiment, features: str = "embedding", k: int = 10, index: str = "flat") -> np.ndarray:
    """k-NN distance of every event to the reference (training) events, on one feature set.

    A reference event's own score leaves itself out (the detector's leave-one-out training
    scores), so the training windows' scores, and the thresholds taken from them, are honest.
    ``index="hnsw"`` searches an approximate faiss index (chapter 7): much faster on
    corpus-sized event counts.
    """
    from obslab.detect import make_detector

    X = ex.matrix(features)
    det = make_detector("knn", k=k, index=index).fit(X[ex.reference])
    scores = det.score(X)
    scores[ex.reference] = det.train_scores_
    return scores


def rarity_scores(ex: EventExperiment) -> np.ndarray:
    """Surprisal of every event's categorical values: the sum over columns of -log p(value),
    p estimated on all training events with add-one smoothing (an unseen value, index 0, has
    count 0). No distance, no model: how rare is what this event says? A training event's own
    occurrence is left out of its counts, so a value seen once in training is as surprising
    there as a new one is later, and thresholds taken from training windows stay honest."""
    _, x_cat = ex.encoder.encode(ex.events)
    train = ex.event_train
    n = int(train.sum())
    out = np.zeros(len(x_cat), dtype=np.float64)
    for j, card in enumerate(ex.encoder.spec.cardinalities):
        counts = np.bincount(x_cat[train, j], minlength=card + 1).astype(np.float64)
        counts[0] = 0.0  # "unknown" never occurs in training by construction
        own = counts[x_cat[:, j]] - train  # leave the event itself out
        out += -np.log((own + 1.0) / (n + card + 1.0))
    return out


def window_scores(ex: EventExperiment, scores: np.ndarray) -> np.ndarray:
    """Per window row of ``ex.windows``: the highest event score of that service in that window
    (0 where the service logged nothing: absence is not something an event can show)."""
    ev = ex.events[["run", "service", "window_start_ms"]].assign(score=scores)
    top = ev.groupby(["run", "service", "window_start_ms"], sort=False)["score"].max()
    keys = pd.MultiIndex.from_frame(ex.windows[["run", "service", "window_start_ms"]])
    top = top.reindex(keys).fillna(0.0).to_numpy(dtype=np.float64)
    # a busy service's window holds more events, so a higher maximum by chance: put every
    # service on the scale of its own training windows before one threshold serves them all
    out = np.empty_like(top)
    for rows in ex.windows.groupby("service").indices.values():
        median, scale = _robust_fit(top[rows][ex.window_train[rows]])
        out[rows] = (top[rows] - median) / scale
    return out


def _robust_fit(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if len(v) == 0:
        return 0.0, 1.0
    median = float(np.median(v))
    scale = 1.4826 * float(np.median(np.abs(v - median)))
    if scale == 0:  # mostly-constant KPIs (error counts): fall back to the spread that exists
        scale = float(np.std(v))
    return median, scale if scale > 0 else 1.0


def _threshold(ex: EventExperiment, window_score: np.ndarray, quantile: float) -> float:
    return float(np.quantile(window_score[ex.window_train], quantile))


def incident_detection(ex: EventExperiment, window_score: np.ndarray, quantile: float = 0.99,
                       only_held_out: bool = True) -> pd.DataFrame:
    """Per incident: its best fault-window score, the threshold (the ``quantile`` of training
    windows' scores), whether any of its fault windows crossed it, and its fault kind."""
    thr = _threshold(ex, window_score, quantile)
    w = ex.windows
    rows = []
    for inc in ex.incidents:
        if only_held_out and inc.incident_id not in ex.held_out:
            continue
        m = (w["incident_id"] == inc.incident_id).to_numpy() & w["is_anomaly"].to_numpy(bool)
        best = float(window_score[m].max()) if m.any() else float("nan")
        rows.append({"incident_id": inc.incident_id, "fault_id": inc.fault_id,
                     "kind": fault_kind(inc.fault_id), "windows": int(m.sum()),
                     "max_score": best, "threshold": thr, "detected": bool(m.any() and best > thr)})
    return pd.DataFrame(rows, columns=["incident_id", "fault_id", "kind", "windows", "max_score",
                                       "threshold", "detected"])


def window_metrics(ex: EventExperiment, window_score: np.ndarray, quantile: float = 0.99) -> dict:
    """AUROC and AUPRC over the evaluated test windows, and the false-alarm rates at the
    training threshold in the control period (test time far from incidents) and in the
    separate no-fault control run (NaN without one)."""
    from obslab.evaluate import auprc, auroc

    ev = ex.window_evaluate
    y = ex.windows["is_anomaly"].to_numpy(bool)[ev]
    thr = _threshold(ex, window_score, quantile)
    c, run = ex.window_control, ex.window_control_run
    return {"AUROC": auroc(y, window_score[ev]), "AUPRC": auprc(y, window_score[ev]),
            "prevalence": float(y.mean()) if len(y) else float("nan"),
            "control_FPR": float((window_score[c] > thr).mean()) if c.any() else float("nan"),
            "control_run_FPR": float((window_score[run] > thr).mean()) if run.any() else float("nan")}


# what scripts/run_events.py writes to data/results/ (name -> file)
RESULT_TABLES = {"summary": "events_summary.csv", "incidents": "events_incidents.csv",
                 "kpi_range": "events_kpi_range.csv"}


def read_results(folder=None) -> dict[str, pd.DataFrame]:
    """The committed tables of scripts/run_events.py: ``{"summary", "incidents", "kpi_range"}``."""
    from obslab.data import REPO_ROOT

    folder = Path(folder or REPO_ROOT / "data" / "results")
    return {name: pd.read_csv(folder / file, keep_default_na=(name != "kpi_range"))
            for name, file in RESULT_TABLES.items()}
