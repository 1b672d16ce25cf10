"""The KPI table: one row per service and time step, from OCSF metrics, with per-step labels.

Columns: cpu_pct, ram_pct, rss_mb, storage_pct, storage_mb, net_bytes_per_s, request_rate,
error_rate_pct, availability_pct (100 - error rate, or success/request rate), p95_latency_ms,
queue_depth, worker_throughput (a column stays empty when no source metric exists: the lab
measures RSS in MiB and its data directory in MiB, not percentages, and no network bytes); each with rolling mean and std over 5 and 15 minutes (per service, time
based, so missing steps shrink the window instead of shifting it); and the step's own labels
(phase, is_anomaly, fault_id, incident_id, root_cause_service) from ``incidents.json`` by the
same rule as ``labels.parquet``. Metric names are matched through aliases so the lab's queries
(metrics_queries.yaml) and the synthetic generator's names both work; several hosts of one
service are averaged (rates too: per-host figures stay comparable when hosts are added).
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from obslab.labels import phase_arrays

__all__ = ["KPI_ALIASES", "KPI_COLUMNS", "metric_frame", "kpi_table"]

# kpi -> (metric name, scale to the kpi's unit): the lab's metrics_queries.yaml names first,
# then the synthetic generator's and common alternatives
KPI_ALIASES = {
    "cpu_pct": (("cpu_pct", 1.0), ("cpu_percent", 1.0)),
    "ram_pct": (("ram_pct", 1.0), ("mem_pct", 1.0), ("memory_pct", 1.0), ("mem_used_pct", 1.0)),
    "rss_mb": (("rss_mb", 1.0),),
    "storage_pct": (("storage_pct", 1.0), ("disk_pct", 1.0), ("disk_usage_pct", 1.0)),
    "storage_mb": (("data_dir_mb", 1.0), ("storage_mb", 1.0)),
    "net_bytes_per_s": (("net_bytes_per_s", 1.0), ("network_bytes_per_s", 1.0)),
    "request_rate": (("request_rate", 1.0), ("req_rate", 1.0)),
    "error_rate_pct": (("error_rate", 100.0), ("error_rate_pct", 1.0)),  # lab: ratio of 5xx
    "success_rate": (("success_rate", 1.0),),
    "p95_latency_ms": (("latency_p95", 1000.0), ("latency_p95_ms", 1.0), ("p95_latency_ms", 1.0)),  # lab: s
    "queue_depth": (("queue_depth", 1.0), ("celery_queue_depth", 1.0)),
    "worker_throughput": (("payment_task_rate", 1.0), ("worker_throughput", 1.0), ("tasks_per_s", 1.0)),
}
KPI_COLUMNS = ["cpu_pct", "ram_pct", "rss_mb", "storage_pct", "storage_mb", "net_bytes_per_s", "request_rate",
               "error_rate_pct", "availability_pct", "p95_latency_ms", "queue_depth", "worker_throughput"]
WINDOWS = {"5m": "5min", "15m": "15min"}


def metric_frame(ocsf_metrics: pa.Table) -> pd.DataFrame:
    """Long frame (time_ms, service, kpi, value) of the metrics that match a KPI alias."""
    um = ocsf_metrics.column("unmapped")
    metric = pc.struct_field(um, "metric")
    alias = {name: (k, scale) for k, names in KPI_ALIASES.items() for name, scale in names}
    keys = pa.array(list(alias))
    idx = pc.index_in(metric, value_set=keys)
    kpi = pc.take(pa.array([v[0] for v in alias.values()]), idx)
    scale = pc.take(pa.array([v[1] for v in alias.values()], pa.float64()), idx)
    df = pa.table({
        "time_ms": ocsf_metrics.column("time"),
        "service": pc.fill_null(pc.struct_field(um, "service"), "(none)"),
        "kpi": kpi,
        "value": pc.multiply(pc.struct_field(um, "value"), scale),
    }).filter(pc.is_valid(kpi)).to_pandas()
    return df


def kpi_table(ocsf_metrics: pa.Table, incidents=None, step_s: int | None = None) -> pd.DataFrame:
    """The KPI table (see module doc). ``step_s``: bucket width; default: the data's own step."""
    long = metric_frame(ocsf_metrics)
    if long.empty:
        raise ValueError("no metric matches a KPI (see obslab.kpis.KPI_ALIASES)")
    if step_s is None:
        times = pd.Series(sorted(long["time_ms"].unique()))
        diffs = times.diff().dropna()
        step_s = max(1, int(round(diffs.median() / 1000))) if len(diffs) else 60
    step_ms = step_s * 1000
    long["time_ms"] = (long["time_ms"] // step_ms) * step_ms
    # groupby keeps steps whose value is NaN (a real Prometheus value), pivot_table would drop them
    wide = long.groupby(["service", "time_ms", "kpi"])["value"].mean().unstack("kpi").reset_index()
    wide.columns.name = None
    for col in list(KPI_ALIASES):
        if col not in wide:
            wide[col] = float("nan")
    wide["availability_pct"] = (100.0 - wide["error_rate_pct"]).where(
        wide["error_rate_pct"].notna(), 100.0 * wide["success_rate"] / wide["request_rate"])
    wide = wide[["service", "time_ms", *KPI_COLUMNS]].sort_values(["service", "time_ms"]).reset_index(drop=True)
    wide["time"] = pd.to_datetime(wide["time_ms"], unit="ms", utc=True)
    parts = []
    for _, g in wide.groupby("service", sort=True):
        g = g.set_index("time")
        out = g.copy()
        for wname, span in WINDOWS.items():
            roll = g[KPI_COLUMNS].rolling(span, min_periods=1)
            out = out.join(roll.mean().add_suffix(f"_mean_{wname}")).join(roll.std().add_suffix(f"_std_{wname}"))
        parts.append(out.reset_index())
    table = pd.concat(parts, ignore_index=True)
    phase, fault, inc, root = phase_arrays(pa.array(table["time_ms"], pa.int64()),
                                           pa.array(table["service"], pa.string()), incidents)
    table["phase"] = phase.to_pylist()
    table["is_anomaly"] = table["phase"] == "fault"
    table["fault_id"] = fault.to_pylist()
    table["incident_id"] = inc.to_pylist()
    table["root_cause_service"] = root.to_pylist()
    return table


def write_table(df: pd.DataFrame, path) -> None:
    """CSV when the name ends in .csv, Parquet otherwise."""
    if str(path).endswith(".csv"):
        df.to_csv(path, index=False)
    else:
        df.to_parquet(path, index=False)
