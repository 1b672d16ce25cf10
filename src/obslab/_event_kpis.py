"""The KPI side of per-event detection: robust z of each window's KPIs against its service's
training windows, the KPI detector built on it, and the check that an incident's KPIs stayed
in their normal range. Part of :mod:`obslab.events` (import from there)."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["KPI_COLUMNS", "kpi_z", "kpi_scores", "kpi_range"]

# the aggregate KPIs of obslab.features.window_features a dashboard would plot
KPI_COLUMNS = ["req_count", "err_rate", "lat_p50", "lat_p95", "lat_max", "log_count",
               "log_error_count", "log_warn_count"]


def kpi_z(ex) -> pd.DataFrame:
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


def kpi_scores(ex) -> np.ndarray:
    """The KPI baseline per window: max robust |z| over the KPIs (per-service statistics)."""
    return kpi_z(ex).abs().max(axis=1).to_numpy(dtype=np.float64)


def kpi_range(ex, kinds: tuple[str, ...] = ("contextual",), low: float = 1.0,
              high: float = 99.0) -> pd.DataFrame:
    """Per incident of the given kinds: did any KPI of its fault windows leave the normal range?

    Normal range per (service, KPI): the ``low``-``high`` percentiles of that service's training
    windows. Reported: the largest robust |z| over the incident's fault windows and KPIs, which
    KPI it was, and the KPIs with a fault window outside the percentile range.
    """
    from obslab.events import fault_kind

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
