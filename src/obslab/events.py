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
categorical columns; unseen values map to the "unknown" index 0). A corpus
(:func:`obslab.data.dataset_runs`) is handled run by run: each run keeps its own clock, its
own time split and windows; rows are stacked with a ``run`` key and incident ids are
run-qualified (``run/inc-003``) when there is more than one run.

The split is by time, as in the evaluation chapter: per run, training events are those before
the cut-off and outside every incident (plus a margin of one window); only they fit the
feature vocabularies, the encoder, the k-NN reference set and the thresholds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from obslab._event_rows import EVENT_CATEGORICAL, EVENT_NUMERIC, load_event_rows, message_template
from obslab.evaluate import control_mask, split_by_time
from obslab.truth import Incident

__all__ = ["EVENT_NUMERIC", "EVENT_CATEGORICAL", "KPI_COLUMNS", "message_template", "EventData", "EventExperiment", "load_event_data", "fit_events",
           "event_experiment", "fault_kind", "event_scores", "rarity_scores",
           "window_scores", "kpi_z", "RESULT_TABLES", "read_results", "kpi_scores", "incident_detection", "window_metrics", "kpi_range"]

# the aggregate KPIs of obslab.features.window_features a dashboard would plot
KPI_COLUMNS = ["req_count", "err_rate", "lat_p50", "lat_p95", "lat_max", "log_count",
               "log_error_count", "log_warn_count"]


def fault_kind(fault_id) -> str:
    """"contextual" for the faults that change what happens (obslab.evaluate.FAULT_FAMILIES),
    else "kpi"."""
    from obslab.evaluate import fault_family

    return "contextual" if fault_family(fault_id) == "contextual" else "kpi"


@dataclass
class EventData:
    """Events and windows of every run with truth and the time split (no model yet)."""

    events: pd.DataFrame  # EVENT_NUMERIC + EVENT_CATEGORICAL + keys, run, window_start_ms
    event_train: np.ndarray  # bool per event: the normal training period
    windows: pd.DataFrame  # KPI window rows + run + truth (is_anomaly, incident_id, fault_id, phase)
    window_train: np.ndarray
    window_test: np.ndarray  # every window from its run's cut-off on
    window_evaluate: np.ndarray  # test windows minus cooldown
    window_control: np.ndarray  # test windows far from every incident
    window_control_run: np.ndarray  # windows of the separate no-fault control run, if any
    incidents: list  # run-qualified Incident objects
    held_out: list[str]  # incident ids after their run's cut-off
    window_ms: int
    name: str  # names cached encoders
    incident_run: dict = field(default_factory=dict)  # incident id -> run

    def normal_blocks(self) -> np.ndarray:
        """Per window: the normal stretch of its run it belongs to (between incident starts),
        the unit :class:`obslab.stats.Resampler` draws normal time in."""
        from obslab.stats import normal_blocks

        starts: dict[str, list[int]] = {}
        for inc in self.incidents:
            starts.setdefault(self.incident_run[inc.incident_id], []).append(inc.start_ms)
        w = self.windows
        return normal_blocks(w["window_start_ms"].to_numpy(), starts, w["run"].to_numpy())


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


def _qualify(incidents: list[Incident], run: str | None) -> list[Incident]:
    if run is None:
        return list(incidents)
    out = []
    for inc in incidents:
        q = Incident(**{**inc.__dict__})
        q.incident_id = f"{run}/{inc.incident_id}"
        if inc.primary_incident_id:
            q.primary_incident_id = f"{run}/{inc.primary_incident_id}"
        out.append(q)
    return out


def _kpi_windows(root: Path, window_ms: int) -> pd.DataFrame:
    # KPIs come from spans and logs; the metrics table of a long run is large and not needed
    from obslab.features import read_feature_columns, window_features

    return window_features(read_feature_columns("traces", root), read_feature_columns("logs", root),
                           None, window_ms)


def _one_run(root: Path, run: str | None, window_ms: int, train_fraction: float):
    from obslab.data import read_incidents
    from obslab.features import window_labels

    incidents = _qualify(read_incidents(root), run)
    events = load_event_rows(root)
    events["window_start_ms"] = events["time_ms"] // window_ms * window_ms
    windows = _kpi_windows(root, window_ms)
    truth = window_labels(windows, incidents, window_ms=window_ms)
    windows = pd.concat([windows, truth], axis=1)
    split = split_by_time(windows["window_start_ms"].to_numpy(), incidents, truth["phase"].to_numpy(),
                          train_fraction=train_fraction, margin_ms=window_ms)
    t = events["time_ms"].to_numpy()
    event_train = (t < split.cutoff_ms) & control_mask(t, incidents, window_ms)
    for frame in (events, windows):
        frame.insert(0, "run", run or root.name)
    return events, event_train, windows, split, incidents, run or root.name


def _control_run(root: Path, window_ms: int):
    # the no-fault run beside the dataset: scored with everything fitted elsewhere, never fitted on
    from obslab.features import window_labels

    events = load_event_rows(root)
    events["window_start_ms"] = events["time_ms"] // window_ms * window_ms
    windows = _kpi_windows(root, window_ms)
    windows = pd.concat([windows, window_labels(windows, [], window_ms=window_ms)], axis=1)
    for frame in (events, windows):
        frame.insert(0, "run", "control")
    return events, windows


def load_event_data(root=None, *, window_ms: int | None = None, train_fraction: float = 0.4,
                    control: bool = True) -> EventData:
    """Every run of a dataset as events and KPI windows with truth, each run split by time.

    ``window_ms=None``: the window :func:`obslab.experiment.auto_window_ms` picks for the
    shortest run's time span (from event times only, never from labels). With ``control``,
    the dataset's no-fault control run (:func:`obslab.data.control_dataset`), when there is
    one, is appended as run ``"control"``: in no training, test or evaluation mask, only in
    ``window_control_run``, so every alert there is a false one.
    """
    from obslab.data import control_dataset, dataset_runs
    from obslab.experiment import auto_window_ms

    runs = dataset_runs(root)
    if window_ms is None:
        from obslab.features import read_feature_columns

        spans = []
        for r in runs:
            t = read_feature_columns("traces", r).column("time").to_numpy()
            spans.append(int(t.max() - t.min()) if len(t) else 0)
        window_ms = auto_window_ms(min(spans))
    parts = [_one_run(r, r.name if len(runs) > 1 else None, window_ms, train_fraction) for r in runs]
    splits = [p[3] for p in parts]
    events, windows = [p[0] for p in parts], [p[2] for p in parts]
    control_root = control_dataset(root) if control else None
    if control_root is not None:
        c_events, c_windows = _control_run(control_root, window_ms)
        events.append(c_events)
        windows.append(c_windows)
    n_extra = len(windows[-1]) if control_root is not None else 0

    def stack(masks):  # the control run's windows are in none of the split's masks
        return np.concatenate(masks + [np.zeros(n_extra, bool)])

    return EventData(
        events=pd.concat(events, ignore_index=True),
        event_train=np.concatenate([p[1] for p in parts] + [np.zeros(len(events[-1]) if n_extra else 0, bool)]),
        windows=pd.concat(windows, ignore_index=True),
        window_train=stack([s.train for s in splits]),
        window_test=stack([s.test for s in splits]),
        window_evaluate=stack([s.evaluate for s in splits]),
        window_control=stack([s.control for s in splits]),
        window_control_run=np.concatenate([np.zeros(sum(len(s.train) for s in splits), bool),
                                           np.ones(n_extra, bool)]),
        incidents=[inc for p in parts for inc in p[4]],
        held_out=[iid for s in splits for iid in s.test_incidents],
        window_ms=int(window_ms), name=Path(root or "default").resolve().name,
        incident_run={inc.incident_id: p[5] for p in parts for inc in p[4]})


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


def kpi_z(ex: EventExperiment) -> pd.DataFrame:
    """Robust z of every KPI of every window against the same service's training windows: the
    ``robust-z`` detector of :mod:`obslab.detect` fitted per service. A KPI missing in a window
    (no request, no latency) counts as the training median; a service without training windows
    gets z = 0 (nothing to compare with)."""
    from obslab.detect import make_detector

    w = ex.windows
    cols = [c for c in KPI_COLUMNS if c in w.columns]
    z = np.zeros((len(w), len(cols)))
    for rows in w.groupby("service").indices.values():
        values = w[cols].to_numpy(dtype=np.float64)[rows]
        train = values[ex.window_train[rows]]
        if len(train) < 2:
            continue
        median = np.nan_to_num(np.nanmedian(np.where(np.isnan(train).all(axis=0), 0.0, train), axis=0))
        det = make_detector("robust-z").fit(np.where(np.isnan(train), median, train))
        z[rows] = (np.where(np.isnan(values), median, values) - det.median_) / det.scale_
    return pd.DataFrame(z, index=w.index, columns=cols)


def kpi_scores(ex: EventExperiment) -> np.ndarray:
    """The KPI baseline per window: max robust |z| over the KPIs (per-service statistics)."""
    return kpi_z(ex).abs().max(axis=1).to_numpy(dtype=np.float64)


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


def kpi_range(ex: EventExperiment, kinds: tuple[str, ...] = ("contextual",), low: float = 1.0,
              high: float = 99.0) -> pd.DataFrame:
    """Per incident of the given kinds: did any KPI of its fault windows leave the normal range?

    Normal range per (service, KPI): the ``low``-``high`` percentiles of that service's training
    windows. Reported: the largest robust |z| over the incident's fault windows and KPIs, which
    KPI it was, and the KPIs with a fault window outside the percentile range.
    """
    w = ex.windows
    cols = [c for c in KPI_COLUMNS if c in w.columns]
    z = kpi_z(ex)
    train = ex.window_train
    bounds = {}
    for service, g in w[train].groupby("service"):
        bounds[service] = {c: np.nanpercentile(g[c].to_numpy(dtype=np.float64), [low, high]) if
                           g[c].notna().any() else np.array([np.nan, np.nan]) for c in cols}
    rows = []
    for inc in ex.incidents:
        kind = fault_kind(inc.fault_id)
        if kind not in kinds:
            continue
        m = (w["incident_id"] == inc.incident_id).to_numpy() & w["is_anomaly"].to_numpy(bool)
        if not m.any():
            continue
        za = z[m].abs()
        worst = za.max().idxmax()
        outside = []
        for col in cols:
            for service, value in zip(w.loc[m, "service"], w.loc[m, col].to_numpy(dtype=np.float64)):
                lo, hi = bounds.get(service, {}).get(col, (np.nan, np.nan))
                if np.isfinite(value) and np.isfinite(lo) and not lo <= value <= hi:
                    outside.append(col)
                    break
        rows.append({"incident_id": inc.incident_id, "fault_id": inc.fault_id, "windows": int(m.sum()),
                     "held_out": inc.incident_id in ex.held_out, "max_abs_z": float(za.max().max()),
                     "worst_kpi": worst, "kpis_outside": " ".join(outside),
                     "inside_range": not outside})
    return pd.DataFrame(rows, columns=["incident_id", "fault_id", "windows", "held_out", "max_abs_z",
                                       "worst_kpi", "kpis_outside", "inside_range"])


# what scripts/run_events.py writes to data/results/ (name -> file)
RESULT_TABLES = {"summary": "events_summary.csv", "incidents": "events_incidents.csv",
                 "kpi_range": "events_kpi_range.csv"}


def read_results(folder=None) -> dict[str, pd.DataFrame]:
    """The committed tables of scripts/run_events.py: ``{"summary", "incidents", "kpi_range"}``."""
    from obslab.data import REPO_ROOT

    folder = Path(folder or REPO_ROOT / "data" / "results")
    return {name: pd.read_csv(folder / file, keep_default_na=(name != "kpi_range"))
            for name, file in RESULT_TABLES.items()}
