"""Features for the encoder: per-event rows and per-(service, window) rows, and their encoding.

Public API (used by detection, evaluation, RCA and the daemon)::

    flatten(table) -> DataFrame                     nested OCSF structs -> dotted column names
    trace_events(table) / log_events(table) -> DataFrame
        one row per OCSF event: key columns (uid, time_ms, service, signal) + feature columns
    window_features(traces=None, logs=None, metrics=None, window_ms=60_000, services="all")
        one row per (service, window_start_ms): request count, error rate, latency p50/p95/max,
        log counts by level, one ``m_<metric>`` column per metric name (mean in the window),
        ``m_<metric>_shared`` for infrastructure metrics (Redis, Postgres, unlabelled)
    load_events(signal="traces", root=None) / load_windows(root=None, window_ms=60_000, services="all")
        the same, read from a dataset folder through obslab.data
    fit_features(df, numeric=None, categorical=None, ...) -> FeatureSpec   (training rows only)
    transform(spec, df) -> (x_num float32 [n, len(spec.numeric)], x_cat int64 [n, len(spec.categorical)])
    FeatureSpec.to_dict() / FeatureSpec.from_dict(d); spec.cardinalities (for TabularResNet)
    check_features(names)  raises LeakError for labels, markers, ids, raw time
    event_labels(frame, labels) / window_labels(frame, incidents)   label side only

Categorical index 0 means "unseen or missing" (TabularResNet reserves that row). Numeric
columns are log1p-compressed when heavy-tailed, filled with the training median, robustly
standardised with training statistics and clipped, so one extreme value cannot dominate.

Labels never become features: the builders read no label or marker column, and every feature
name passes ``check_features`` in ``fit_features``, ``transform`` and ``FeatureSpec.from_dict``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "KEY_COLUMNS",
    "TRACE_FEATURES",
    "LOG_FEATURES",
    "FeatureSpec",
    "LeakError",
    "check_features",
    "flatten",
    "trace_events",
    "log_events",
    "window_features",
    "load_events",
    "load_windows",
    "read_feature_columns",
    "fit_features",
    "transform",
    "event_labels",
    "window_labels",
]

# Carried beside the features for joins and splits; never features themselves.
KEY_COLUMNS = ("uid", "time_ms", "window_start_ms", "signal")

# What the per-event builders produce (numeric, categorical).
TRACE_FEATURES = (
    ["duration_ms", "is_error", "is_root", "hour_sin", "hour_cos"],
    ["service", "class_uid", "kind", "method", "route", "status_class", "operation"],
)
LOG_FEATURES = (
    ["severity_id", "is_error", "msg_len", "has_trace", "duration_ms", "hour_sin", "hour_cos"],
    ["service", "class_uid", "log_event", "method", "route", "status_class"],
)

# --- the denylist --------------------------------------------------------------------------

# Matched against each dotted part of a name. Narrow on purpose: a metric such as
# ``m_page_faults_rate`` is a legitimate feature, ``fault_id`` is ground truth.
_DENY_PATTERN = re.compile(
    r"anomal|marker|incident|root_cause"  # anywhere in the name
    r"|(^|_)fault($|_)|(^|_)phase$|(^|_)labels?$"  # as a word
)
_DENY_EXACT = {"uid", "time", "time_ms", "window_start_ms", "trace_id", "span_id",
               "parent_span_id", "end_time", "start_time", "end_time_ms"}


class LeakError(ValueError):
    """A label, marker, identifier or raw timestamp was offered as a feature."""


def _is_denied(name: str) -> bool:
    low = name.lower()
    if low in _DENY_EXACT or low.endswith(".uid") or low.endswith("parent_uid"):
        return True
    if low.split(".")[-1] in _DENY_EXACT:  # e.g. trace.span.start_time
        return True
    return any(_DENY_PATTERN.search(part) for part in low.split("."))


def check_features(names: Iterable[str]) -> None:
    """Raise LeakError naming every column that must never be a model input."""
    bad = sorted({n for n in names if _is_denied(n)})
    if bad:
        raise LeakError(f"these columns must not be features (labels, markers, ids, raw time): {bad}")


# --- reading OCSF tables -------------------------------------------------------------------

def flatten(table: pa.Table | pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Nested OCSF structs as dotted columns (``http_request.url.path``); list columns dropped.
    ``columns`` keeps only those dotted names that exist (a big table converts only what is used)."""
    if isinstance(table, pd.DataFrame):
        return table
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    keep = [f.name for f in table.schema if not pa.types.is_nested(f.type)]
    if columns is not None:
        wanted = set(columns)
        keep = [name for name in keep if name in wanted]
    return table.select(keep).to_pandas()


def _first(df: pd.DataFrame, candidates: Sequence[str]) -> pd.Series:
    """Row-wise first non-null value over the candidate columns that exist (else all null)."""
    present = [name for name in candidates if name in df.columns]
    if not present:
        return pd.Series([None] * len(df), index=df.index, dtype=object)
    out = df[present[0]]
    for name in present[1:]:
        missing = out.isna()
        if not missing.any():
            break
        out = out.astype(object).where(~missing, df[name].astype(object))
    return out


def _text(series: pd.Series) -> pd.Series:
    """Strings with missing values as None-free "none" (categorical features need a value)."""
    return series.astype("string").fillna("none").astype(str)


def _num(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series, errors="coerce").astype("float64")


# Where each quantity lives, in order of preference. OCSF names first, flat names as fallback.
_TIME = ["time", "time_ms"]
_UID = ["metadata.uid", "uid"]
_SERVICE = ["unmapped.service", "service.name", "api.service.name", "trace.service.name",
            "trace.span.service.name", "app_name", "service", "metadata.product.name"]
_DURATION = ["unmapped.duration_ms", "duration", "trace.span.duration", "trace.duration",
             "http_response.latency", "duration_ms"]
_KIND = ["unmapped.kind", "kind"]
_LOG_EVENT = ["unmapped.event", "event"]
_METHOD = ["http_request.http_method", "http_method"]
_ROUTE = ["unmapped.http_route", "http_route", "http_request.url.path", "http_path"]
_OPERATION = ["trace.span.operation", "api.operation", "name"]
_STATUS = ["http_response.code", "http_status"]
_PARENT = ["trace.span.parent_uid", "parent_span_id"]
_TRACE = ["trace.uid", "trace_id"]
_MESSAGE = ["message"]
_METRIC_NAME = ["unmapped.metric", "metric.name", "metric", "unmapped.name", "metric_name"]
_METRIC_VALUE = ["unmapped.value", "metric.value", "value", "metric_value"]
_BASE_COLUMNS = _TIME + _UID + _SERVICE + ["class_uid", "status_id", "severity_id"]
_TRACE_COLUMNS = _BASE_COLUMNS + _DURATION + _KIND + _METHOD + _ROUTE + _OPERATION + _STATUS + _PARENT
_LOG_COLUMNS = _BASE_COLUMNS + _DURATION + _LOG_EVENT + _METHOD + _ROUTE + _STATUS + _TRACE + _MESSAGE
_METRIC_COLUMNS = _TIME + _SERVICE + _METRIC_NAME + _METRIC_VALUE

_ID_PATTERN = re.compile(r"/(?:[0-9]+|[0-9a-fA-F-]{8,})(?=/|$)")


def _normalise_route(route: pd.Series) -> pd.Series:
    # ids inside paths would make every request its own category
    return route.astype("string").str.replace(_ID_PATTERN, "/:id", regex=True)


def _status_class(code: pd.Series) -> pd.Series:
    hundreds = (code.fillna(0) // 100).astype("int64").astype(str) + "xx"
    return pd.Series(np.where(code.isna(), "none", hundreds), index=code.index)


def _code_text(code: pd.Series) -> pd.Series:
    return pd.Series(np.where(code.isna(), "none", code.fillna(0).astype("int64").astype(str)),
                     index=code.index)


def _hour_cycle(time_ms: pd.Series) -> tuple[pd.Series, pd.Series]:
    hours = (time_ms % 86_400_000) / 3_600_000.0
    angle = 2 * math.pi * hours / 24.0
    return np.sin(angle), np.cos(angle)


def _base(df: pd.DataFrame, signal: str) -> pd.DataFrame:
    if not any(c in df.columns for c in _TIME):
        raise ValueError(f"{signal}: no time column (expected one of {_TIME}); is this an OCSF table?")
    out = pd.DataFrame(index=df.index)
    out["uid"] = _first(df, _UID).astype("string")
    out["time_ms"] = _num(_first(df, _TIME)).astype("int64")
    out["service"] = _first(df, _SERVICE).astype("string").fillna("unknown").astype(str)
    out["signal"] = signal
    return out


def trace_events(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per span event: keys + TRACE_FEATURES."""
    df = flatten(table, _TRACE_COLUMNS)
    out = _base(df, "traces")
    status = _num(_first(df, _STATUS))
    status_id = _num(_first(df, ["status_id"]))
    out["duration_ms"] = _num(_first(df, _DURATION))
    out["is_error"] = ((status >= 500) | (status_id == 2)).astype("float64")
    parent = _first(df, _PARENT).astype("string")
    out["is_root"] = (parent.isna() | (parent == "")).astype("float64")
    out["hour_sin"], out["hour_cos"] = _hour_cycle(out["time_ms"])
    out["class_uid"] = _code_text(_num(_first(df, ["class_uid"])))
    out["kind"] = _text(_first(df, _KIND)).str.lower()
    out["method"] = _text(_first(df, _METHOD))
    out["route"] = _text(_normalise_route(_first(df, _ROUTE)))
    out["status_class"] = _status_class(status)
    out["operation"] = _text(_normalise_route(_first(df, _OPERATION)))
    return out.reset_index(drop=True)


def log_events(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per log event: keys + LOG_FEATURES."""
    df = flatten(table, _LOG_COLUMNS)
    out = _base(df, "logs")
    status = _num(_first(df, _STATUS))
    severity = _num(_first(df, ["severity_id"]))
    cls = _num(_first(df, ["class_uid"]))
    message = _first(df, _MESSAGE)
    out["severity_id"] = severity
    out["is_error"] = ((cls == 6008) | (severity >= 4) | (status >= 500)).astype("float64")
    out["msg_len"] = message.astype("string").str.len().fillna(0).astype("float64")
    out["has_trace"] = _first(df, _TRACE).notna().astype("float64")
    out["duration_ms"] = _num(_first(df, _DURATION))
    out["hour_sin"], out["hour_cos"] = _hour_cycle(out["time_ms"])
    out["class_uid"] = _code_text(cls)
    out["log_event"] = _text(_first(df, _LOG_EVENT))
    out["method"] = _text(_first(df, _METHOD))
    out["route"] = _text(_normalise_route(_first(df, _ROUTE)))
    out["status_class"] = _status_class(status)
    return out.reset_index(drop=True)


# --- windowed features ---------------------------------------------------------------------

def _window(time_ms: pd.Series, window_ms: int) -> pd.Series:
    return (time_ms // window_ms) * window_ms


def _metric_events(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    df = flatten(table, _METRIC_COLUMNS)
    name = _first(df, _METRIC_NAME)
    if name.isna().all():
        raise ValueError(f"metrics: no metric name column (expected one of {_METRIC_NAME})")
    value = _num(_first(df, _METRIC_VALUE)).replace([np.inf, -np.inf], np.nan)
    service = _first(df, _SERVICE)
    return pd.DataFrame({
        "time_ms": _num(_first(df, _TIME)).astype("int64"),
        "service": service,
        "metric": "m_" + name.astype(str).str.replace(r"\W+", "_", regex=True).str.strip("_"),
        "value": value,
    })


def window_features(traces=None, logs=None, metrics=None, window_ms: int = 60_000,
                    services: str | Sequence[str] = "all", start_ms: int | None = None,
                    end_ms: int | None = None) -> pd.DataFrame:
    """One row per (service, window_start_ms) over the whole time range of the inputs.

    ``services``: "all" (default) makes rows for every service seen in any signal (Redis,
    Postgres, exporters ... get rows of their own), "traced" only for the services that emitted
    spans (the instrumented application; every service when there are no traces), or a list.
    Counts are 0 in windows without events; latencies and metric means stay NaN there (the
    FeatureSpec fills them with the training median). Metrics of services without rows, or
    without a service label (shared infrastructure such as Redis or Postgres), become
    ``<metric>_shared`` columns copied onto every row of the window. Logs of services without
    rows are left out. ``start_ms``/``end_ms`` fix the grid's first and last window (default:
    the events' range): a job over one partition of a lake passes the partition's bounds.
    """
    parts: list[pd.DataFrame] = []
    ev_t = trace_events(traces) if traces is not None else None
    ev_l = log_events(logs) if logs is not None else None
    ev_m = _metric_events(metrics) if metrics is not None else None
    times = [e["time_ms"] for e in (ev_t, ev_l, ev_m) if e is not None and len(e)]
    if not times:
        raise ValueError("window_features: no events in any signal")
    if services == "traced" and ev_t is not None and len(ev_t):
        services = sorted(ev_t["service"].dropna().unique())
    elif services in ("traced", "all"):
        services = sorted(set().union(*[
            set(e["service"].dropna().unique()) for e in (ev_t, ev_l, ev_m) if e is not None
        ]))
    else:
        services = sorted(services)
    if ev_l is not None:
        ev_l = ev_l[ev_l["service"].isin(services)]
    start = int(_window(pd.concat(times).min() if start_ms is None else start_ms, window_ms))
    end = int(_window(pd.concat(times).max() if end_ms is None else end_ms, window_ms))
    grid = pd.MultiIndex.from_product(
        [services, range(start, end + window_ms, window_ms)], names=["service", "window_start_ms"]
    )
    if ev_t is not None and len(ev_t):
        g = ev_t.assign(window_start_ms=_window(ev_t["time_ms"], window_ms)).groupby(
            ["service", "window_start_ms"])
        parts.append(pd.DataFrame({
            "req_count": g.size().astype("float64"),
            "err_count": g["is_error"].sum(),
            "lat_p50": g["duration_ms"].median(),
            "lat_p95": g["duration_ms"].quantile(0.95),
            "lat_max": g["duration_ms"].max(),
        }))
    if ev_l is not None and len(ev_l):
        lg = ev_l.assign(window_start_ms=_window(ev_l["time_ms"], window_ms),
                         is_warn=ev_l["severity_id"].isin([2, 3]).astype("float64"))
        g = lg.groupby(["service", "window_start_ms"])
        parts.append(pd.DataFrame({
            "log_count": g.size().astype("float64"),
            "log_error_count": g["is_error"].sum(),
            "log_warn_count": g["is_warn"].sum(),
        }))
    out = pd.DataFrame(index=grid)
    for part in parts:
        out = out.join(part, how="left")
    if ev_m is not None and len(ev_m):
        m = ev_m.assign(window_start_ms=_window(ev_m["time_ms"], window_ms))
        is_own = m["service"].isin(services)
        own = m[is_own].pivot_table(
            index=["service", "window_start_ms"], columns="metric", values="value", aggfunc="mean")
        shared = m[~is_own].pivot_table(
            index="window_start_ms", columns="metric", values="value", aggfunc="mean")
        out = out.join(own, how="left")
        if len(shared):
            shared = shared.add_suffix("_shared")
            out = out.join(shared, on="window_start_ms", how="left")
    out = out.reset_index()
    for col in ("req_count", "err_count", "log_count", "log_error_count", "log_warn_count"):
        if col in out.columns:
            out[col] = out[col].fillna(0.0)
    if "req_count" in out.columns:
        out["err_rate"] = np.where(out["req_count"] > 0, out["err_count"] / out["req_count"].clip(lower=1), 0.0)
    out["hour_sin"], out["hour_cos"] = _hour_cycle(out["window_start_ms"])
    out["time_ms"] = out["window_start_ms"]
    out["signal"] = "windows"
    out.columns = [str(c) for c in out.columns]
    return out


_SIGNAL_COLUMNS = {"traces": _TRACE_COLUMNS, "logs": _LOG_COLUMNS, "metrics": _METRIC_COLUMNS}


def read_feature_columns(signal: str, root=None) -> pa.Table | None:
    """Only the columns the feature builders use, read through obslab.data (a metrics table of
    a long run is mostly columns we do not need); None when the dataset lacks the signal."""
    import pyarrow.dataset as ds

    from obslab.data import read_signal, signal_schema
    from obslab.ocsf.schemas import parquet_leaves

    schema = signal_schema(signal, root)  # a file, a folder or a lake
    if schema is None:
        return None
    wanted = set(_SIGNAL_COLUMNS[signal])
    columns = {path: ds.field(*path.split(".")) for path, _ in parquet_leaves(schema) if path in wanted}
    return read_signal(signal, root, columns=columns)


def load_events(signal: str = "traces", root=None) -> pd.DataFrame:
    """Per-event features of one signal ("traces" or "logs") of a dataset folder."""
    builders = {"traces": trace_events, "logs": log_events}
    if signal not in builders:
        raise ValueError(f"per-event features exist for {sorted(builders)}, not {signal!r}")
    table = read_feature_columns(signal, root)
    if table is None:
        from obslab.data import read_signal

        read_signal(signal, root)  # raises the loader's own FileNotFoundError
    return builders[signal](table)


def load_windows(root=None, window_ms: int = 60_000, services="all") -> pd.DataFrame:
    """Windowed features from every signal present in a dataset folder."""
    tables = {signal: read_feature_columns(signal, root) for signal in ("traces", "logs", "metrics")}
    return window_features(tables["traces"], tables["logs"], tables["metrics"], window_ms, services)


# --- encoding ------------------------------------------------------------------------------

@dataclass
class FeatureSpec:
    """Which columns are features and how to encode them; statistics come from training rows."""

    numeric: list[str]
    categorical: list[str]
    vocab: dict[str, list[str]] = field(default_factory=dict)  # index = position + 1
    log1p: list[str] = field(default_factory=list)
    fill: dict[str, float] = field(default_factory=dict)  # median after log1p
    center: dict[str, float] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    clip: float = 10.0

    @property
    def cardinalities(self) -> list[int]:
        return [len(self.vocab[c]) for c in self.categorical]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FeatureSpec":
        spec = cls(**d)
        check_features(spec.numeric + spec.categorical)
        return spec


def _default_columns(df: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for col in df.columns:
        if col in KEY_COLUMNS or _is_denied(col):
            continue
        if pd.api.types.is_bool_dtype(df[col]) or pd.api.types.is_numeric_dtype(df[col]):
            numeric.append(col)
        else:
            categorical.append(col)
    return numeric, categorical


def _prepare_numeric(values: pd.Series, use_log: bool) -> np.ndarray:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
    x[~np.isfinite(x)] = np.nan
    if use_log:
        x = np.sign(x) * np.log1p(np.abs(x))
    return x


def fit_features(
    df: pd.DataFrame,
    numeric: Sequence[str] | None = None,
    categorical: Sequence[str] | None = None,
    log1p: Sequence[str] | None = None,
    min_count: int = 1,
    clip: float = 10.0,
) -> FeatureSpec:
    """Fit a FeatureSpec on TRAINING rows only (vocabularies, medians, scales).

    Without explicit lists, numeric columns are the numeric dtypes and categorical columns the
    rest, minus KEY_COLUMNS and anything the denylist refuses. Without ``log1p``, non-negative
    columns with a long right tail (skew > 2) are log-compressed.
    """
    if numeric is None or categorical is None:
        num_default, cat_default = _default_columns(df)
        numeric = num_default if numeric is None else numeric
        categorical = cat_default if categorical is None else categorical
    numeric, categorical = list(numeric), list(categorical)
    check_features(numeric + categorical)
    missing = [c for c in numeric + categorical if c not in df.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    if len(df) == 0:
        raise ValueError("fit_features needs at least one training row")
    if log1p is None:
        log1p = []
        for col in numeric:
            x = _prepare_numeric(df[col], False)
            x = x[~np.isnan(x)]
            if len(x) > 2 and x.min() >= 0 and np.std(x) > 0 and pd.Series(x).skew() > 2:
                log1p.append(col)
    spec = FeatureSpec(numeric=numeric, categorical=categorical, log1p=list(log1p), clip=clip)
    for col in numeric:
        x = _prepare_numeric(df[col], col in spec.log1p)
        x = x[~np.isnan(x)]
        if len(x) == 0:
            median, scale = 0.0, 1.0
        else:
            median = float(np.median(x))
            q75, q25 = np.percentile(x, [75, 25])
            scale = float((q75 - q25) / 1.349) or float(np.std(x)) or 1.0
        spec.fill[col], spec.center[col], spec.scale[col] = median, median, scale
    for col in categorical:
        counts = df[col].dropna().astype(str).value_counts()
        # sorted by frequency, ties by name: the same data always gives the same indices
        kept = sorted(counts[counts >= min_count].items(), key=lambda kv: (-kv[1], kv[0]))
        spec.vocab[col] = [k for k, _ in kept]
    return spec


def transform(spec: FeatureSpec, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Encode rows with a fitted spec: (x_num float32, x_cat int64; 0 = unseen/missing)."""
    check_features(spec.numeric + spec.categorical)
    missing = [c for c in spec.numeric + spec.categorical if c not in df.columns]
    if missing:
        raise KeyError(f"columns the FeatureSpec needs are missing from the frame: {missing}")
    n = len(df)
    x_num = np.zeros((n, len(spec.numeric)), dtype=np.float32)
    for j, col in enumerate(spec.numeric):
        x = _prepare_numeric(df[col], col in spec.log1p)
        x = np.where(np.isnan(x), spec.fill[col], x)
        x_num[:, j] = np.clip((x - spec.center[col]) / spec.scale[col], -spec.clip, spec.clip)
    x_cat = np.zeros((n, len(spec.categorical)), dtype=np.int64)
    for j, col in enumerate(spec.categorical):
        index = {v: i + 1 for i, v in enumerate(spec.vocab[col])}
        values = df[col].astype("string")  # missing stays missing, then maps to 0 below
        x_cat[:, j] = values.map(index).fillna(0).astype("int64").to_numpy()
    return x_num, x_cat


# --- label side (never passed to fit_features/transform) -----------------------------------

def event_labels(frame: pd.DataFrame, labels: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """labels.parquet rows aligned to ``frame`` by uid (is_anomaly False where unlabelled)."""
    lab = labels.to_pandas() if isinstance(labels, pa.Table) else labels
    lab = lab.drop_duplicates("uid").set_index("uid")
    out = lab.reindex(frame["uid"].astype(str).to_numpy())
    out["is_anomaly"] = out["is_anomaly"].fillna(False).astype(bool)
    if "phase" in out.columns:
        out["phase"] = out["phase"].fillna("normal")
    return out.reset_index().rename(columns={"index": "uid"}).set_index(frame.index)


def window_labels(frame: pd.DataFrame, incidents: list, window_ms: int = 60_000) -> pd.DataFrame:
    """Per-(service, window) truth from the incident catalog (:func:`obslab.truth.phases`): a
    window is anomalous when it overlaps the fault period of an incident targeting its service."""
    from obslab.truth import phases

    truth = phases(frame["window_start_ms"].to_numpy(), incidents, window_ms=window_ms,
                   service=frame["service"].astype(str).to_numpy())
    return truth[["is_anomaly", "incident_id", "fault_id", "phase"]].set_index(frame.index)
