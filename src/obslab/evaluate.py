"""Evaluation against ground truth: splits by incident and time, metrics, a methods x metrics table.

Rows (events or (service, window) feature rows) are never split at random: neighbouring rows
of one incident are near-copies, and a random split lets a detector "remember" the incident.
Instead :func:`split_by_time` trains on the early, fault-free part of the timeline and tests on
later time that holds whole incidents; a cut-off that would fall inside an incident moves back
to the incident's start, so no incident has rows on both sides.

Metrics: AUROC and AUPRC (threshold-free; AUPRC of a random scorer equals the prevalence),
recall and precision at a threshold fixed on training scores, per-fault recall, and the
false-positive rate on a no-fault control period (test rows far from every incident).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from obslab.truth import COOLDOWN, NORMAL, Incident, phases

__all__ = [
    "FAULT_FAMILIES",
    "fault_family",
    "Split",
    "split_by_time",
    "stack_splits",
    "control_mask",
    "auroc",
    "auprc",
    "rates_at",
    "per_fault_recall",
    "per_incident_detection",
    "evaluate_scores",
    "compare_methods",
]

# The families the book reports per, for the lab's faults (appendix-code/faults.yaml) and the
# synthetic generator's incident types; anything else is "other".
FAULT_FAMILIES: dict[str, tuple[str, ...]] = {
    "latency": ("latency_spike", "lock_contention", "db_contention"),
    "errors": ("error_spike",),
    "resources": ("cpu_saturation", "memory_leak", "disk_fill", "db_pool_exhaustion",
                  "resource_exhaustion"),
    "dependency": ("dependency_bottleneck", "downstream_timeout", "packet_loss",
                   "cascade_auth_slowdown", "network_packet_loss", "cascading_failure",
                   "network_partition", "dependency_degradation"),
    "queue": ("queue_pause", "worker_slowdown"),
    "config": ("bad_config_deploy", "cache_miss_storm", "configuration_mismatch"),
    "contextual": ("route_backend_switch", "new_error_template", "endpoint_enumeration"),
}
_FAMILY_OF = {fault: family for family, faults in FAULT_FAMILIES.items() for fault in faults}


def fault_family(fault_id) -> str | None:
    """The family of a fault id ("latency", "errors", ..., "contextual"; "other" if unknown;
    None for no fault)."""
    if fault_id is None or (isinstance(fault_id, float) and np.isnan(fault_id)):
        return None
    return _FAMILY_OF.get(str(fault_id), "other")


@dataclass
class Split:
    """Boolean masks over the rows plus what went where."""

    train: np.ndarray  # early, normal rows: fit detectors here
    test: np.ndarray  # every row from the cut-off on
    evaluate: np.ndarray  # test rows minus cooldown rows (ambiguous: neither normal nor fault)
    control: np.ndarray  # test rows far from every incident: the no-fault control period
    cutoff_ms: int
    train_incidents: list[str]  # incidents before the cut-off (their rows are left out of train)
    test_incidents: list[str]
    run_cutoffs_ms: dict[str, int] = field(default_factory=dict)  # per run, for a stacked corpus

    def summary(self) -> dict:
        return {"train_rows": int(self.train.sum()), "test_rows": int(self.test.sum()),
                "evaluate_rows": int(self.evaluate.sum()), "control_rows": int(self.control.sum()),
                "cutoff_ms": self.cutoff_ms, "train_incidents": len(self.train_incidents),
                "test_incidents": len(self.test_incidents)}


def stack_splits(splits: Mapping[str, Split], qualify: bool = True) -> Split:
    """One Split over rows stacked run after run (in ``splits`` order), each run split on its
    own clock. Incident ids become ``"<run>/<id>"`` when ``qualify``; ``cutoff_ms`` is the
    first run's (a corpus has no common time axis: ``run_cutoffs_ms`` keeps them all)."""
    if not splits:
        raise ValueError("no runs to stack")

    def ids(run, names):
        return [f"{run}/{n}" if qualify else n for n in names]

    parts = list(splits.items())
    return Split(
        **{m: np.concatenate([getattr(sp, m) for _, sp in parts])
           for m in ("train", "test", "evaluate", "control")},
        cutoff_ms=parts[0][1].cutoff_ms,
        train_incidents=[i for run, sp in parts for i in ids(run, sp.train_incidents)],
        test_incidents=[i for run, sp in parts for i in ids(run, sp.test_incidents)],
        run_cutoffs_ms={run: sp.cutoff_ms for run, sp in parts},
    )


def _move_out_of_incidents(cutoff: int, incidents: Sequence[Incident], margin_ms: int) -> int:
    # move the cut-off back until it is not inside [start - margin, cooldown_end) of any incident
    moved = True
    while moved:
        moved = False
        for inc in incidents:
            if inc.start_ms - margin_ms < cutoff < inc.cooldown_end_ms:
                cutoff, moved = inc.start_ms - margin_ms, True
    return cutoff


def control_mask(times_ms, incidents: Sequence[Incident], margin_ms: int = 0) -> np.ndarray:
    """Rows at least ``margin_ms`` away from every incident's ``[start, cooldown_end)``."""
    t = np.asarray(times_ms, dtype=np.int64)
    ok = np.ones(len(t), bool)
    for inc in incidents:
        ok &= ~((t >= inc.start_ms - margin_ms) & (t < inc.cooldown_end_ms + margin_ms))
    return ok


def split_by_time(times_ms, incidents: Sequence[Incident], phase=None, *,
                  n_test_incidents: int | None = None, train_fraction: float = 0.5,
                  margin_ms: int = 0, control_margin_ms: int | None = None,
                  min_test_incidents: int = 1) -> Split:
    """Train on early fault-free time, test on later time holding whole incidents.

    The cut-off is the start of the ``n_test_incidents``-th last incident (minus ``margin_ms``)
    when given, else the ``train_fraction`` quantile of the row times, moved back to before any
    incident it would cut. ``phase`` (per row; e.g. labels' phase column) defaults to the phase
    of each row's time in the catalog (:func:`obslab.truth.phases`, every service); training rows are those before the cut-off whose phase is normal
    and that lie outside every incident window. If fewer than ``min_test_incidents`` start
    after the cut-off, it moves back to the start of the ``min_test_incidents``-th last one.
    """
    t = np.asarray(times_ms, dtype=np.int64)
    if len(t) == 0:
        raise ValueError("no rows to split")
    incidents = sorted(incidents, key=lambda i: (i.start_ms, i.incident_id))
    if phase is None:
        phase = phases(t, incidents)["phase"].to_numpy()
    phase = np.asarray(phase, dtype=object)
    if n_test_incidents is not None:
        if not 1 <= n_test_incidents <= len(incidents):
            raise ValueError(f"n_test_incidents must be in 1..{len(incidents)}, got {n_test_incidents}")
        cutoff = incidents[len(incidents) - n_test_incidents].start_ms - margin_ms
    else:
        if not 0.0 < train_fraction < 1.0:
            raise ValueError("train_fraction must be in (0, 1)")
        cutoff = int(np.quantile(t, train_fraction))
    cutoff = _move_out_of_incidents(cutoff, incidents, margin_ms)
    if min_test_incidents and len(incidents) >= min_test_incidents:
        last = incidents[len(incidents) - min_test_incidents].start_ms - margin_ms
        cutoff = _move_out_of_incidents(min(cutoff, last), incidents, margin_ms)
    before = t < cutoff
    outside = control_mask(t, incidents, margin_ms)
    train = before & (phase == NORMAL) & outside
    test = ~before
    if not train.any():
        raise ValueError("no normal rows before the cut-off: the data starts with an incident; "
                         "lower margin_ms or add a warm-up period")
    if not test.any():
        raise ValueError("no rows after the cut-off")
    cm = margin_ms if control_margin_ms is None else control_margin_ms
    control = test & (phase == NORMAL) & control_mask(t, incidents, cm)
    return Split(
        train=train, test=test, evaluate=test & (phase != COOLDOWN), control=control,
        cutoff_ms=int(cutoff),
        train_incidents=[i.incident_id for i in incidents if i.start_ms < cutoff],
        test_incidents=[i.incident_id for i in incidents if i.start_ms >= cutoff],
    )


def _check(y, s):
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels {y.shape} and scores {s.shape} differ in shape")
    return y, s


def auroc(y, scores) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    from sklearn.metrics import roc_auc_score

    y, s = _check(y, scores)
    return float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def auprc(y, scores) -> float:
    """Average precision (area under the precision-recall curve); a random scorer ~ prevalence."""
    from sklearn.metrics import average_precision_score

    y, s = _check(y, scores)
    return float(average_precision_score(y, s)) if 0 < y.sum() < len(y) else float("nan")


def rates_at(y, scores, threshold: float) -> dict:
    """Recall, precision, false-positive rate and alert rate of ``scores > threshold``."""
    y, s = _check(y, scores)
    alert = s > threshold
    tp, fp = int((alert & y).sum()), int((alert & ~y).sum())
    pos, neg = int(y.sum()), int((~y).sum())
    return {"recall": tp / pos if pos else float("nan"),
            "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "fpr": fp / neg if neg else float("nan"),
            "alert_rate": float(alert.mean()) if len(alert) else float("nan")}


def per_fault_recall(scores, fault_ids, is_anomaly, threshold: float) -> pd.DataFrame:
    """Recall at ``threshold`` for each fault type, over its anomalous rows."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(is_anomaly).astype(bool)
    f = pd.Series(np.asarray(fault_ids, dtype=object))
    out = []
    for fault, idx in f[y].groupby(f[y], sort=True).groups.items():
        hit = s[np.asarray(idx)] > threshold
        out.append({"fault_id": fault, "rows": int(len(hit)), "recall": float(hit.mean())})
    return pd.DataFrame(out, columns=["fault_id", "rows", "recall"])


def per_incident_detection(scores, times_ms, incident_ids, is_anomaly, threshold: float,
                           incidents: Sequence[Incident] = ()) -> pd.DataFrame:
    """Per incident: was any of its fault rows flagged, and how long after the start (delay)."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(times_ms, dtype=np.int64)
    inc = np.asarray(incident_ids, dtype=object)
    y = np.asarray(is_anomaly).astype(bool)
    starts = {i.incident_id: i.start_ms for i in incidents}
    faults = {i.incident_id: i.fault_id for i in incidents}
    rows = []
    for iid in pd.unique(inc[y]):
        m = y & (inc == iid)
        hits = t[m][s[m] > threshold]
        start = starts.get(iid, int(t[m].min()))
        rows.append({"incident_id": iid, "fault_id": faults.get(iid), "rows": int(m.sum()),
                     "detected": bool(len(hits)),
                     "delay_s": float((hits.min() - start) / 1000) if len(hits) else float("nan")})
    return pd.DataFrame(rows, columns=["incident_id", "fault_id", "rows", "detected", "delay_s"])


def evaluate_scores(scores_test, y_test, threshold: float, control=None) -> dict:
    """Threshold-free and at-threshold metrics for one method on the test rows."""
    y, s = _check(y_test, scores_test)
    at = rates_at(y, s, threshold)
    row = {"AUROC": auroc(y, s), "AUPRC": auprc(y, s), "prevalence": float(y.mean()),
           "recall": at["recall"], "precision": at["precision"], "FPR": at["fpr"]}
    if control is not None:
        c = np.asarray(control).astype(bool)
        row["control_FPR"] = float((s[c] > threshold).mean()) if c.any() else float("nan")
    return row


def compare_methods(feature_sets: Mapping[str, tuple[np.ndarray, np.ndarray]],
                    detectors: Mapping[str, Callable[[], object]], y_test, *, control=None,
                    fault_ids=None, quantile: float = 0.99, seed: int = 0,
                    control_run: Mapping[str, np.ndarray] | None = None):
    """The methods x metrics table: every detector on every feature set, on the same split.

    ``feature_sets`` maps a name ("embedding", "raw features", ...) to ``(X_train, X_test)``;
    ``detectors`` maps a name to a zero-argument factory returning an unfitted detector. The
    threshold is the ``quantile`` of each detector's training scores (no test labels used).
    A seeded random scorer is added as the floor. ``control_run`` maps the same names to the
    rows of a separate no-fault run: its false-positive rate at the same threshold is the
    ``control_run_FPR`` column (every row there is normal, so any alert is false).
    Returns ``(table, per_fault)``: one row per method, and per-fault recall in long form
    (``per_fault`` is empty without ``fault_ids``).
    """
    y = np.asarray(y_test).astype(bool)
    rows, faults = [], []
    for fname, (X_train, X_test) in feature_sets.items():
        if len(X_test) != len(y):
            raise ValueError(f"{fname}: {len(X_test)} test rows but {len(y)} labels")
        for dname, factory in detectors.items():
            det = factory().fit(X_train)
            thr = det.set_threshold(quantile)
            s = det.score(X_test)
            row = {"features": fname, "detector": dname, **evaluate_scores(s, y, thr, control)}
            if control_run is not None:
                row["control_run_FPR"] = float(np.mean(det.score(control_run[fname]) > thr))
            rows.append(row)
            if fault_ids is not None:
                pf = per_fault_recall(s, fault_ids, y, thr)
                faults += [{"features": fname, "detector": dname, **r} for r in pf.to_dict("records")]
    rng = np.random.default_rng(seed)
    s = rng.random(len(y))
    row = {"features": "none", "detector": "random", **evaluate_scores(s, y, quantile_of(s, quantile), control)}
    if control_run is not None:
        n = len(next(iter(control_run.values())))
        row["control_run_FPR"] = float(np.mean(rng.random(n) > quantile_of(s, quantile)))
    rows.append(row)
    table = pd.DataFrame(rows).set_index(["features", "detector"])
    per_fault = pd.DataFrame(faults, columns=["features", "detector", "fault_id", "rows", "recall"])
    return table, per_fault


def quantile_of(scores, q: float) -> float:
    return float(np.quantile(np.asarray(scores, dtype=np.float64), q))
