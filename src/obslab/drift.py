"""Drift between a reference window (what the model was trained on) and a current window.

Per feature: the two-sample Kolmogorov-Smirnov test (statistic and p-value: is the
distribution different at all?) and the 1-Wasserstein distance divided by the reference's
standard deviation (how far did it move, in reference units?). A feature drifts when its KS
p-value is below ``alpha / n_features`` (Bonferroni: with 40 features, testing each at 0.01
would flag one every few windows by chance) AND it moved at least ``min_shift`` reference
standard deviations (large windows make tiny, harmless differences significant).

:class:`RetrainTrigger` turns per-feature drift into a decision: retrain when at least
``min_fraction`` of the features drift in ``patience`` consecutive checks.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["feature_drift", "RetrainTrigger", "DriftDecision"]


def _matrix(X, names):
    if isinstance(X, pd.DataFrame):
        names = list(X.columns) if names is None else list(names)
        return X[names].to_numpy(dtype=np.float64), names
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    names = [f"f{i}" for i in range(X.shape[1])] if names is None else list(names)
    if len(names) != X.shape[1]:
        raise ValueError(f"{len(names)} names for {X.shape[1]} columns")
    return X, names


def feature_drift(reference, current, names: Sequence[str] | None = None, *, alpha: float = 0.01,
                  min_shift: float = 0.1) -> pd.DataFrame:
    """Per-feature KS and Wasserstein drift of ``current`` against ``reference``.

    Both are 2-D arrays or DataFrames with the same columns. Non-finite values are dropped per
    feature. Returns one row per feature: ``ks``, ``p_value``, ``wasserstein`` (raw),
    ``shift`` (Wasserstein / reference std), ``drifted``.
    """
    from scipy.stats import ks_2samp, wasserstein_distance

    ref, names = _matrix(reference, names)
    cur, _ = _matrix(current, names)
    if ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} features, current {cur.shape[1]}")
    n_feat = ref.shape[1]
    rows = []
    for j, name in enumerate(names):
        a, b = ref[:, j], cur[:, j]
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if len(a) < 2 or len(b) < 2:
            rows.append({"feature": name, "ks": np.nan, "p_value": np.nan, "wasserstein": np.nan,
                         "shift": np.nan, "drifted": False})
            continue
        with warnings.catch_warnings():
            # when scipy's exact p-value fails numerically it falls back to the asymptotic one,
            # which is fine here; its RuntimeWarning would only be noise on a notebook's stderr
            warnings.filterwarnings("ignore", message=".*Exact calculation unsuccessful",
                                    category=RuntimeWarning)
            ks = ks_2samp(a, b)
        w = float(wasserstein_distance(a, b))
        scale = float(np.std(a))
        # a constant reference feature: any movement is measured against a tiny floor
        shift = w / scale if scale > 1e-12 else (0.0 if w == 0 else np.inf)
        drifted = bool(ks.pvalue < alpha / n_feat and shift >= min_shift)
        rows.append({"feature": name, "ks": float(ks.statistic), "p_value": float(ks.pvalue),
                     "wasserstein": w, "shift": shift, "drifted": drifted})
    return pd.DataFrame(rows, columns=["feature", "ks", "p_value", "wasserstein", "shift", "drifted"])


@dataclass
class DriftDecision:
    retrain: bool
    drifted_fraction: float
    drifted: list[str]
    reason: str
    report: pd.DataFrame = field(repr=False)


class RetrainTrigger:
    """Stateful retraining trigger: fires after ``patience`` consecutive drifting checks."""

    def __init__(self, reference, names: Sequence[str] | None = None, *, alpha: float = 0.01,
                 min_shift: float = 0.1, min_fraction: float = 0.2, patience: int = 1):
        self.reference, self.names = _matrix(reference, names)
        self.alpha, self.min_shift = alpha, min_shift
        self.min_fraction, self.patience = min_fraction, int(patience)
        self.streak = 0
        self.history: list[DriftDecision] = []

    def check(self, current) -> DriftDecision:
        report = feature_drift(self.reference, current, self.names, alpha=self.alpha,
                               min_shift=self.min_shift)
        drifted = report.loc[report["drifted"], "feature"].tolist()
        frac = len(drifted) / max(len(report), 1)
        self.streak = self.streak + 1 if frac >= self.min_fraction else 0
        fire = self.streak >= self.patience
        if fire:
            reason = (f"{len(drifted)}/{len(report)} features drifted "
                      f"for {self.streak} check(s): {', '.join(drifted[:5])}")
        elif self.streak:
            reason = (f"{len(drifted)}/{len(report)} features drifted; "
                      f"{self.streak}/{self.patience} consecutive checks needed")
        elif drifted:
            reason = f"{len(drifted)}/{len(report)} features drifted (below the trigger fraction)"
        else:
            reason = "no drift"
        decision = DriftDecision(fire, frac, drifted, reason, report)
        self.history.append(decision)
        return decision

    def reset(self, reference=None) -> None:
        """After retraining: the new training data becomes the reference."""
        if reference is not None:
            self.reference, _ = _matrix(reference, self.names)
        self.streak = 0
