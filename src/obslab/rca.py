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

Accuracy: AC@k = fraction of incidents whose root-cause service is in the top k, with a 95%
interval from a bootstrap over incidents (never over rows). Two trivial rankings are the floor
every method must clear: the *busiest service* (most events in the alert window: the service
that handles the most traffic is the most likely to show anything at all) and a seeded random
ranking. Each incident's alert time is its first detection when the detector caught it, else its
true start (a fallback that borrows the truth: :func:`alert_times` says which one each got).

A corpus (several runs, each on its own clock) is evaluated run by run and the per-incident rows
stacked with a ``run`` key: incidents are identified by ``run/incident_id``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from obslab.stats import Interval, bootstrap_over_groups
from obslab.truth import Incident

__all__ = [
    "guess_signal",
    "service_evidence",
    "call_graph",
    "call_graph_from_ocsf",
    "rank_services",
    "busiest_services",
    "random_services",
    "alert_times",
    "accuracy_at_k",
    "evaluate_rca",
    "compare_rca",
    "ac_at_k_intervals",
    "ac_interval",
    "paired_gap",
    "verdict",
]

# per-(service, window) event counts: what the busiest-service rule adds up
COUNT_COLUMNS = ("req_count", "log_count")

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


def _nan_median(x: np.ndarray) -> np.ndarray:
    # column medians ignoring NaN (np.nanmedian is ~50x slower on a few rows: masked arrays)
    ordered = np.sort(x, axis=0)  # NaN sorts last
    n = np.isfinite(x).sum(axis=0)
    if len(x) == 0:
        return np.full(x.shape[1], np.nan)
    cols = np.arange(x.shape[1])
    lo, hi = ordered[np.maximum(n - 1, 0) // 2, cols], ordered[np.minimum(n // 2, len(x) - 1), cols]
    return np.where(n > 0, (lo + hi) / 2, np.nan)


def _robust_z(current: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Per column: (mean of current - baseline median) / robust scale; 0 where either is empty.

    ``current`` and ``baseline`` are ``[rows, columns]``; non-finite values are ignored."""
    current = np.where(np.isfinite(current), current, np.nan)
    baseline = np.where(np.isfinite(baseline), baseline, np.nan)
    empty = (np.isfinite(current).sum(axis=0) == 0) | (np.isfinite(baseline).sum(axis=0) == 0)
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: handled by ``empty``
        med = _nan_median(baseline)
        mad = 1.4826 * _nan_median(np.abs(baseline - med))
        # floor the scale: a constant baseline (0 errors) must not turn one error into z = inf
        scale = np.fmax.reduce([mad, np.nanstd(baseline, axis=0), 0.01 * np.abs(med),
                                np.full(med.shape, 1e-3)])
        z = (np.nanmean(current, axis=0) - med) / scale
    return np.where(empty, 0.0, z)


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
    names = list(columns)
    values = windows[names].to_numpy(dtype=np.float64)
    of_signal = {sig: np.array([columns[c] == sig for c in names]) for sig in signals}
    rows = []
    for svc, idx in windows.groupby(service_col, sort=True).indices.items():
        z = np.minimum(np.abs(_robust_z(values[idx[cur[idx]]], values[idx[base[idx]]])), z_clip)
        row = {service_col: svc,
               **{sig: float(np.log1p(z[m].max())) for sig, m in of_signal.items()}}
        best = int(np.argmax(z))
        row["top_feature"] = names[best] if z[best] > 0 else None
        row["top_z"] = float(z[best]) if z[best] > 0 else 0.0
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
                  *, alpha: float = 0.5, evidence: pd.DataFrame | None = None,
                  **kwargs) -> pd.DataFrame:
    """Services ranked most-likely root cause first, with the evidence behind each rank.

    ``edges``: caller -> callee pairs (a :func:`call_graph` frame or ``(caller, callee)`` tuples).
    ``evidence``: this alert's :func:`service_evidence` if already computed (it does not depend
    on the graph). Other keyword arguments go to :func:`service_evidence`.
    """
    ev = service_evidence(windows, alert_ms, **kwargs) if evidence is None else evidence.copy()
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


def busiest_services(windows: pd.DataFrame, alert_ms: int, *,
                     count_columns: Sequence[str] = COUNT_COLUMNS, before_ms: int = 120_000,
                     after_ms: int = 120_000, time_col: str = "time", service_col: str = "service",
                     **_ignored) -> list[str]:
    """The trivial rule: services by their events in the alert window, most first (ties by name).

    Events are the sum of the ``count_columns`` present (requests and log lines by default).
    Other keyword arguments (those of :func:`service_evidence`) are accepted and ignored, so
    the rule takes the same arguments as the method it is a baseline for.
    """
    present = [c for c in count_columns if c in windows.columns]
    if not present:
        raise ValueError(f"none of the count columns {tuple(count_columns)} in the table")
    t = windows[time_col].to_numpy(dtype=np.int64)
    in_alert = (t >= alert_ms - before_ms) & (t < alert_ms + after_ms)
    rows = windows.loc[in_alert]
    events = rows[present].fillna(0.0).sum(axis=1).groupby(rows[service_col]).sum()
    events = events.reindex(sorted(windows[service_col].unique()), fill_value=0.0)
    order = sorted(events.index, key=lambda svc: (-events[svc], svc))
    return list(order)


def random_services(windows: pd.DataFrame, rng: np.random.Generator,
                    service_col: str = "service") -> list[str]:
    """A uniformly random ranking of the table's services (the chance floor: AC@k = k / n)."""
    services = sorted(windows[service_col].unique())
    return [services[i] for i in rng.permutation(len(services))]


def alert_times(incidents: Sequence[Incident], detected_ms: Mapping[str, int]) -> pd.DataFrame:
    """Each incident's alert time and where it came from: ``detection`` when the detector caught
    the incident (``detected_ms`` maps its id to the first flagged time), else ``fallback``
    (the true start, which only the ground truth knows)."""
    rows = [{"incident_id": inc.incident_id,
             "alert_ms": int(detected_ms.get(inc.incident_id, inc.start_ms)),
             "alert_source": "detection" if inc.incident_id in detected_ms else "fallback"}
            for inc in incidents]
    return pd.DataFrame(rows, columns=["incident_id", "alert_ms", "alert_source"])


def accuracy_at_k(rankings: Sequence[Sequence[str]], truths: Sequence[str], k: int) -> float:
    """AC@k: the fraction of cases whose true root cause is among the first k ranked services."""
    if len(rankings) != len(truths):
        raise ValueError("one ranking per truth")
    if not truths:
        return float("nan")
    return float(np.mean([t in list(r)[:k] for r, t in zip(rankings, truths)]))


def _ranker(method: str, windows: pd.DataFrame, edges, seed: int, kwargs: dict, cache: dict):
    """A function alert_ms -> (ranked service names, top feature or None) for one method.

    ``cache`` keeps each alert's evidence for the next method with the same evidence settings
    (with and without the call graph, say): it is the expensive part."""
    service_col = kwargs.get("service_col", "service")
    if method == "evidence":
        settings = tuple(sorted((k, v if not isinstance(v, Mapping) else tuple(v.items()))
                                for k, v in kwargs.items() if k != "alpha"))

        def by_evidence(alert):
            key = (alert, settings)
            if key not in cache:
                own = {k: v for k, v in kwargs.items() if k != "alpha"}
                cache[key] = service_evidence(windows, alert, **own)
            ranked = rank_services(windows, alert, edges, evidence=cache[key], **kwargs)
            return list(ranked[service_col]), ranked["top_feature"].iloc[0]
        return by_evidence
    if method == "busiest":
        return lambda alert: (busiest_services(windows, alert, **kwargs), None)
    if method == "random":
        rng = np.random.default_rng(seed)
        return lambda alert: (random_services(windows, rng, service_col), None)
    raise ValueError(f"unknown method {method!r}; expected evidence, busiest or random")


def evaluate_rca(windows: pd.DataFrame, incidents: Sequence[Incident], edges=(), *,
                 alert_times: Mapping[str, int] | pd.DataFrame | None = None,
                 ks: Sequence[int] = (1, 3),
                 method: str = "evidence", seed: int = 0, evidence_cache: dict | None = None,
                 **kwargs) -> tuple[pd.DataFrame, dict]:
    """Rank services for every incident (alert at its first detection, else its start).

    ``method``: ``evidence`` (:func:`rank_services`), ``busiest`` (:func:`busiest_services`) or
    ``random`` (:func:`random_services`, seeded). ``alert_times`` is an :func:`alert_times`
    frame or a mapping incident id -> detection time (missing ids fall back to the start).
    ``evidence_cache``: a dict shared by calls on the same ``windows`` to reuse evidence.
    Returns a per-incident table (truth, ranking, rank of the truth, alert source, number of
    services ranked) and ``{"AC@k": ...}``. Incidents whose alert window has no rows are skipped.
    """
    time_col = kwargs.get("time_col", "time")
    if not isinstance(alert_times, pd.DataFrame):
        alert_times = _alert_frame(incidents, alert_times)
    when = alert_times.set_index("incident_id")
    t = windows[time_col].to_numpy(dtype=np.int64)
    before, after = kwargs.get("before_ms", 120_000), kwargs.get("after_ms", 120_000)
    cache = {} if evidence_cache is None else evidence_cache
    rank = _ranker(method, windows, edges, seed, kwargs, cache)
    rows = []
    for inc in incidents:
        alert = int(when.loc[inc.incident_id, "alert_ms"])
        if not ((t >= alert - before) & (t < alert + after)).any():
            continue
        order, top = rank(alert)
        rows.append({"incident_id": inc.incident_id, "fault_id": inc.fault_id,
                     "root_cause": inc.root_cause, "alert_ms": alert,
                     "alert_source": when.loc[inc.incident_id, "alert_source"],
                     "ranking": order, "n_services": len(order),
                     "rank_of_truth": (order.index(inc.root_cause) + 1
                                       if inc.root_cause in order else None),
                     "top_feature": top})
    table = pd.DataFrame(rows, columns=["incident_id", "fault_id", "root_cause", "alert_ms",
                                        "alert_source", "ranking", "n_services", "rank_of_truth",
                                        "top_feature"])
    acc = {f"AC@{k}": accuracy_at_k(table["ranking"].tolist(), table["root_cause"].tolist(), k)
           for k in ks}
    return table, acc


def _alert_frame(incidents, detected_ms) -> pd.DataFrame:
    return alert_times(incidents, dict(detected_ms or {}))


def compare_rca(windows: pd.DataFrame, incidents: Sequence[Incident],
                methods: Mapping[str, dict], *, alert_times: Mapping[str, int] | pd.DataFrame | None = None, run: str = "",
                ks: Sequence[int] = (1, 3), **kwargs) -> pd.DataFrame:
    """Every method on every incident of one run, in long form (one row per method and incident).

    ``methods`` maps a display name to :func:`evaluate_rca` arguments (``method``, ``edges``,
    ``columns``, ``seed`` ...); shared arguments go in ``kwargs``. Rows carry ``run`` and
    ``incident`` (``run/incident_id``, the key to bootstrap over) and a ``hit@k`` column per k.
    Stack several runs' frames with ``pd.concat`` before :func:`ac_at_k_intervals`.
    """
    parts, cache = [], {}
    for name, own in methods.items():
        args = {**kwargs, **own}
        edges = args.pop("edges", ())
        table, _ = evaluate_rca(windows, incidents, edges, alert_times=alert_times, ks=ks,
                                evidence_cache=cache, **args)
        table.insert(0, "method", name)
        parts.append(table)
    out = pd.concat(parts, ignore_index=True)
    out.insert(1, "run", run)
    # a corpus's incident ids may already carry their run (obslab.experiment qualifies them)
    out.insert(2, "incident", [str(i) if not run or str(i).startswith(f"{run}/") else f"{run}/{i}"
                               for i in out["incident_id"]])
    for k in ks:
        out[f"hit@{k}"] = (out["rank_of_truth"].notna() & (out["rank_of_truth"] <= k)).astype(float)
    return out


def ac_at_k_intervals(per_incident: pd.DataFrame, ks: Sequence[int] = (1, 3), *, n_boot: int = 2000,
                      seed: int = 0) -> pd.DataFrame:
    """AC@k per method with a 95% interval from a bootstrap over incidents.

    Rows of one incident (several training seeds, say) are averaged first: the incident is the
    unit that is resampled. One row per method (in order of appearance): ``AC@k``, ``AC@k lo``,
    ``AC@k hi`` per k, the number of incidents and ``chance@1`` (1 / services ranked, averaged).
    """
    rows = []
    for method, part in per_incident.groupby("method", sort=False):
        per = part.groupby("incident", sort=True)
        row = {"method": method}
        for k in ks:
            hits = per[f"hit@{k}"].mean().to_numpy(float)
            iv = bootstrap_over_groups(hits, _mean, n_boot=n_boot, seed=seed)
            row.update({f"AC@{k}": iv.estimate, f"AC@{k} lo": iv.low, f"AC@{k} hi": iv.high})
        row["incidents"] = int(per.ngroups)
        row["chance@1"] = float(np.mean(1.0 / part["n_services"]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def ac_interval(table: pd.DataFrame, method: str, k: int = 1) -> Interval:
    """One method's AC@k from an :func:`ac_at_k_intervals` table, as an ``obslab.stats.Interval``
    (for ``obslab.stats.separated``: a winner only where intervals separate)."""
    row = table.loc[method]
    return Interval(float(row[f"AC@{k}"]), float(row[f"AC@{k} lo"]), float(row[f"AC@{k} hi"]))


def paired_gap(per_incident: pd.DataFrame, method: str, baseline: str, k: int = 1, *,
               n_boot: int = 2000, seed: int = 0) -> Interval:
    """AC@k(method) - AC@k(baseline) with a 95% bootstrap interval over incidents; both are
    scored on the same resampled incidents (paired)."""
    hits = per_incident.pivot_table(index="incident", columns="method", values=f"hit@{k}",
                                    aggfunc="mean")
    gap = (hits[method] - hits[baseline]).dropna().to_numpy(float)
    return bootstrap_over_groups(gap, _mean, n_boot=n_boot, seed=seed)


def verdict(table: pd.DataFrame, baseline: str = "busiest service", chance: str = "random",
            k: int = 1) -> str:
    """One paragraph from an :func:`ac_at_k_intervals` table: the best non-trivial ranking by
    AC@k, and whether its interval separates from the ``baseline`` rule's (only then is it
    called better or worse); the ``chance`` ranking's score for scale."""
    from obslab.stats import separated

    trivial = (baseline, chance)
    candidates = [m for m in table.index if m not in trivial]
    best = max(candidates, key=lambda m: (table.loc[m, f"AC@{k}"], -candidates.index(m)))
    side = separated(ac_interval(table, best, k), ac_interval(table, baseline, k))
    base = f"{ac_interval(table, baseline, k)}"
    if side > 0:
        said = (f"its interval lies wholly above the {baseline} rule's ({base}): "
                "it beats the trivial rule")
    elif side < 0:
        said = (f"its interval lies wholly *below* the {baseline} rule's ({base}): "
                "the trivial rule wins")
    else:
        said = (f"its interval overlaps the {baseline} rule's ({base}): on these "
                f"{int(table.loc[best, 'incidents'])} incidents no ranking is shown to beat the {baseline} rule")
    text = f"The best ranking by AC@{k} is *{best}*, {ac_interval(table, best, k)}; {said}."
    if chance in table.index:
        text += (f" A {chance} order scores {ac_interval(table, chance, k)} "
                 f"(expected {k * table.loc[chance, 'chance@1']:.3f}).")
    return text


def _mean(values: np.ndarray) -> float:
    # np.mean's dispatch costs more than the sum on a few dozen incidents x 2000 replicates
    return float(np.add.reduce(values)) / len(values)
