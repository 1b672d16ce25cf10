"""Root-cause ranking around an alert: correlate logs, metrics and traces per service.

Input is a per-(service, window) table (``obslab.features`` windowed features, or anomaly
scores per service and window): a ``service`` column, a window-start ``time`` column in epoch
ms, and numeric columns. Each numeric column belongs to a signal (traces, logs, metrics,
score), guessed from its name or given explicitly.

For an alert at time ``t`` every service gets, per column, a robust z-score of the alert window
``[t - before, t + after)`` against a baseline ``[t - baseline, t - before)`` (median and MAD of
the baseline). Per signal the strongest column counts; the service's evidence sums
``log1p(|z|)`` over signals, so a service that is odd in logs AND metrics AND traces outranks
one that is very odd in one column only. Then the trace call graph breaks ties between a caller
and its callee: a caller whose anomaly is matched by an anomalous callee is partly explained by
it (errors and latency propagate upstream), so it loses ``alpha * min(own, callee)`` (both
measured above the quietest service's evidence, the noise level).

Accuracy: AC@k = fraction of incidents whose root-cause service is in the top k.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from obslab.truth import Incident

__all__ = [
    "guess_signal",
    "service_evidence",
    "call_graph",
    "call_graph_from_ocsf",
    "rank_services",
    "accuracy_at_k",
    "evaluate_rca",
]

# keys and clock columns: present in feature tables, never evidence of a fault
NOT_EVIDENCE = ("time", "time_ms", "window_start_ms", "hour_sin", "hour_cos")

_SIGNAL_HINTS = (
    ("score", ("score",)),
    ("logs", ("log", "error_lines", "warn")),
    ("traces", ("span", "latency", "lat_", "duration", "p50", "p95", "p99", "request", "req_",
                "rps", "status", "error_rate", "err_", "http")),
    ("metrics", ("cpu", "mem", "rss", "queue", "conn", "cache", "hit", "gc", "metric", "disk")),
)


def guess_signal(column: str) -> str:
    """The signal a feature column comes from, from its name (first matching hint wins)."""
    name = column.lower()
    if name.startswith(("log_", "logs_", "logs.", "log.")):
        return "logs"
    if name.startswith(("metric_", "metrics_", "metrics.", "metric.", "m_")):
        return "metrics"
    if name.startswith(("trace_", "traces_", "span_", "traces.", "trace.")):
        return "traces"
    for signal, hints in _SIGNAL_HINTS:
        if any(h in name for h in hints):
            return signal
    return "metrics"


def _robust_z(current: np.ndarray, baseline: np.ndarray) -> float:
    current = current[np.isfinite(current)]
    baseline = baseline[np.isfinite(baseline)]
    if len(current) == 0 or len(baseline) == 0:
        return 0.0
    med = float(np.median(baseline))
    mad = 1.4826 * float(np.median(np.abs(baseline - med)))
    # floor the scale: a constant baseline (0 errors) must not turn one error into z = inf
    scale = max(mad, float(np.std(baseline)), 0.01 * abs(med), 1e-3)
    return (float(np.mean(current)) - med) / scale


def service_evidence(windows: pd.DataFrame, alert_ms: int, *, columns: Mapping[str, str] | None = None,
                     before_ms: int = 120_000, after_ms: int = 120_000, baseline_ms: int = 1_800_000,
                     time_col: str = "time", service_col: str = "service",
                     z_clip: float = 50.0) -> pd.DataFrame:
    """Per service: |z| of the alert window vs the baseline, strongest column per signal.

    Returns one row per service with a column per signal (``log1p`` of the strongest |z|),
    ``evidence`` (their sum) and ``top_feature`` (the column with the largest |z|).
    """
    if columns is None:
        skip = {time_col, service_col, *NOT_EVIDENCE}
        numeric = [c for c in windows.columns if c not in skip
                   and pd.api.types.is_numeric_dtype(windows[c]) and not pd.api.types.is_bool_dtype(windows[c])]
        columns = {c: guess_signal(c) for c in numeric}
    if not columns:
        raise ValueError("no numeric columns to correlate")
    t = windows[time_col].to_numpy(dtype=np.int64)
    base = (t >= alert_ms - baseline_ms) & (t < alert_ms - before_ms)
    cur = (t >= alert_ms - before_ms) & (t < alert_ms + after_ms)
    signals = sorted(set(columns.values()))
    rows = []
    for svc, idx in windows.groupby(service_col, sort=True).indices.items():
        m_base = np.zeros(len(t), bool)
        m_base[idx] = True
        m_cur = m_base & cur
        m_base &= base
        row = {service_col: svc, **{s: 0.0 for s in signals}}
        best, best_col = 0.0, None
        for col, sig in columns.items():
            v = windows[col].to_numpy(dtype=np.float64)
            z = min(abs(_robust_z(v[m_cur], v[m_base])), z_clip)
            row[sig] = max(row[sig], float(np.log1p(z)))
            if z > best:
                best, best_col = z, col
        row["top_feature"], row["top_z"] = best_col, best
        rows.append(row)
    out = pd.DataFrame(rows)
    if out.empty:
        raise ValueError("no service rows in the table")
    out["evidence"] = out[signals].sum(axis=1)
    return out


def call_graph(spans: pd.DataFrame, span_col: str = "span_id", parent_col: str = "parent_span_id",
               service_col: str = "service", trace_col: str | None = "trace_id") -> pd.DataFrame:
    """Caller -> callee service edges (with call counts) from spans' parent links."""
    keys = [span_col] if trace_col is None or trace_col not in spans else [trace_col, span_col]
    left = spans[keys[:-1] + [parent_col, service_col]].dropna(subset=[parent_col])
    right = spans[keys + [service_col]].rename(columns={span_col: parent_col, service_col: "caller"})
    joined = left.merge(right, on=keys[:-1] + [parent_col], how="inner")
    joined = joined[joined["caller"] != joined[service_col]]
    edges = joined.groupby(["caller", service_col]).size().rename("calls").reset_index()
    return edges.rename(columns={service_col: "callee"})


def _column(table, *names):
    for n in names:
        if n in table.column_names:
            return table.column(n).to_pandas()
    raise KeyError(f"none of {names} in the table (columns: {table.column_names[:20]}...)")


def call_graph_from_ocsf(traces) -> pd.DataFrame:
    """Call graph from an OCSF traces table (nested structs or flattened dotted names)."""
    import pyarrow as pa

    table = traces if isinstance(traces, pa.Table) else pa.Table.from_pandas(traces)
    if any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
        while any(pa.types.is_struct(f.type) for f in table.schema):
            table = table.flatten()
    spans = pd.DataFrame({
        "trace_id": _column(table, "trace.uid"),
        "span_id": _column(table, "trace.span.uid"),
        "parent_span_id": _column(table, "trace.span.parent_uid"),
        "service": _column(table, "trace.service.name", "service.name", "api.service.name",
                           "metadata.product.name"),
    })
    spans["parent_span_id"] = spans["parent_span_id"].replace("", None)
    return call_graph(spans)


def rank_services(windows: pd.DataFrame, alert_ms: int, edges: pd.DataFrame | Iterable = (),
                  *, alpha: float = 0.5, **kwargs) -> pd.DataFrame:
    """Services ranked most-likely root cause first, with the evidence behind each rank.

    ``edges``: caller -> callee pairs (a :func:`call_graph` frame or ``(caller, callee)`` tuples).
    Other keyword arguments go to :func:`service_evidence`.
    """
    ev = service_evidence(windows, alert_ms, **kwargs)
    service_col = kwargs.get("service_col", "service")
    if isinstance(edges, pd.DataFrame):
        pairs = list(zip(edges["caller"], edges["callee"]))
    else:
        pairs = [tuple(e) for e in edges]
    own = dict(zip(ev[service_col], ev["evidence"]))
    penalty = {s: 0.0 for s in own}
    explained_by = {s: None for s in own}
    # the quietest service's evidence is the noise level every service has anyway: only
    # evidence above it can explain a caller's anomaly
    noise = min(own.values())
    for caller, callee in pairs:
        if caller in own and callee in own:
            p = alpha * max(0.0, min(own[caller], own[callee]) - noise)
            if p > penalty[caller]:
                penalty[caller], explained_by[caller] = p, callee
    ev["penalty"] = ev[service_col].map(penalty)
    ev["explained_by"] = ev[service_col].map(explained_by)
    ev["rca_score"] = ev["evidence"] - ev["penalty"]
    ev = ev.sort_values(["rca_score", service_col], ascending=[False, True], kind="mergesort")
    ev.insert(0, "rank", np.arange(1, len(ev) + 1))
    return ev.reset_index(drop=True)


def accuracy_at_k(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    """AC@k: the fraction of cases whose true root cause is among the first k ranked services."""
    if len(rankings) != len(truths):
        raise ValueError("one ranking per truth")
    if not truths:
        return float("nan")
    return float(np.mean([t in list(r)[:k] for r, t in zip(rankings, truths)]))


def evaluate_rca(windows: pd.DataFrame, incidents: Sequence[Incident], edges=(), *,
                 alert_times: Mapping[str, int] | None = None, ks: Sequence[int] = (1, 3),
                 **kwargs) -> tuple[pd.DataFrame, dict]:
    """Rank services for every incident (alert at its first detection, else its start).

    Returns a per-incident table (truth, ranking, rank of the truth) and ``{"AC@k": ...}``.
    Incidents whose window has no rows are skipped.
    """
    service_col = kwargs.get("service_col", "service")
    time_col = kwargs.get("time_col", "time")
    t = windows[time_col].to_numpy(dtype=np.int64)
    rows = []
    for inc in incidents:
        alert = int((alert_times or {}).get(inc.incident_id, inc.start_ms))
        before, after = kwargs.get("before_ms", 120_000), kwargs.get("after_ms", 120_000)
        if not ((t >= alert - before) & (t < alert + after)).any():
            continue
        ranked = rank_services(windows, alert, edges, **kwargs)
        order = list(ranked[service_col])
        rows.append({"incident_id": inc.incident_id, "fault_id": inc.fault_id,
                     "root_cause": inc.root_cause, "alert_ms": alert,
                     "ranking": order,
                     "rank_of_truth": order.index(inc.root_cause) + 1 if inc.root_cause in order else None,
                     "top_feature": ranked["top_feature"].iloc[0]})
    table = pd.DataFrame(rows, columns=["incident_id", "fault_id", "root_cause", "alert_ms",
                                        "ranking", "rank_of_truth", "top_feature"])
    acc = {f"AC@{k}": accuracy_at_k(table["ranking"].tolist(), table["root_cause"].tolist(), k)
           for k in ks}
    return table, acc
