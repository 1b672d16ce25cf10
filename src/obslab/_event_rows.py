"""Per-event rows for contextual detection: what each span or log line *is*, not how much.

Builds on :func:`obslab.features.trace_events` / :func:`~obslab.features.log_events` and adds
the high-cardinality context a window KPI throws away:

- ``template``: a log message with numbers, hex ids, addresses and quoted values masked
  (``payment <hex> captured``), or a span's database statement masked the same way;
- ``route``: the server route, or for an HTTP client span the path it called (ids masked);
- ``parent_service``, ``edge`` (``caller->callee``) and ``entry_operation`` (the operation of
  the trace's root span): who called whom, on behalf of which user-facing route;
- ``user_agent`` (versions masked) and ``client_net`` (the client's /24), where recorded;
- ``status``: the exact HTTP code (404 and 400 are different stories).

Every categorical value a model has not seen in training maps to index 0 ("unknown") in
:func:`obslab.features.transform`; nothing here reads a label or marker column.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from obslab.features import flatten, log_events, trace_events

__all__ = ["EVENT_NUMERIC", "EVENT_CATEGORICAL", "message_template", "span_rows", "log_rows",
           "load_event_rows"]

EVENT_NUMERIC = ["duration_ms", "is_error", "is_root", "severity_id"]
EVENT_CATEGORICAL = ["service", "kind", "operation", "route", "method", "status", "template",
                     "parent_service", "edge", "entry_operation", "user_agent", "client_net"]

# most specific first: a uuid or a long hex id before a bare number eats part of it
_MASKS = [
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<id>"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "<ip>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"'[^']*'|\"[^\"]*\""), "<str>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def message_template(messages: pd.Series, max_len: int = 160) -> pd.Series:
    """Messages with the variable parts masked: one template per kind of line."""
    out = messages.astype("string").fillna("none")
    for pattern, token in _MASKS:
        out = out.str.replace(pattern, token, regex=True)
    return out.str.strip().str.slice(0, max_len).astype(str)


_TRACE_EXTRA = ["metadata.uid", "trace.uid", "trace.span.uid", "trace.span.parent_uid",
                "unmapped.service", "unmapped.db_statement", "unmapped.attributes", "http_response.code",
                "trace.span.operation", "api.operation", "http_request.user_agent", "src_endpoint.ip"]
_LOG_EXTRA = ["message", "http_response.code", "http_request.user_agent", "src_endpoint.ip"]


def _attribute(attrs: pd.Series, keys: list[str]) -> pd.Series:
    """The first of ``keys`` found in OTLP attribute JSON text (string values only)."""
    out = pd.Series(pd.NA, index=attrs.index, dtype="string")
    text = attrs.astype("string")
    for key in keys:
        found = text.str.extract(r'"' + re.escape(key) + r'":"((?:[^"\\]|\\.)*)"', expand=False)
        out = out.fillna(found)
    return out


def _typed_attribute(table, keys: list[str]) -> pd.Series | None:
    """The first of ``keys`` in a typed ``unmapped.attributes`` map column (None: not a map)."""
    if not isinstance(table, pa.Table):
        return None
    if "unmapped.attributes" in table.column_names:
        col = table.column("unmapped.attributes")
    elif "unmapped" in table.column_names and table.schema.field("unmapped").type.get_field_index("attributes") >= 0:
        col = pc.struct_field(table.column("unmapped"), "attributes")
    else:
        return None
    if not pa.types.is_map(col.type):
        return None
    out = None
    for key in keys:
        value = pc.map_lookup(col, pa.scalar(key), "first")
        out = value if out is None else pc.coalesce(out, value)
    return pd.Series(out.to_pandas(), dtype="string")


def _url_path(urls: pd.Series) -> pd.Series:
    path = urls.str.extract(r"^[a-z]+://[^/]*(/[^?#]*)?", expand=False)
    return path.where(urls.isna() | path.notna(), "/")


def _mask_path(paths: pd.Series) -> pd.Series:
    return paths.str.replace(r"/(?:\d+|[0-9a-fA-F-]{8,})(?=/|$)", "/:id", regex=True)


def _client_net(addresses: pd.Series) -> pd.Series:
    """The /24 of an IPv4 client address (one category per network, not per host)."""
    net = addresses.str.extract(r"^(\d{1,3}\.\d{1,3}\.\d{1,3})\.\d{1,3}$", expand=False)
    return (net + ".0/24").fillna(addresses).fillna("none").astype(str)


def _user_agent(agents: pd.Series) -> pd.Series:
    return agents.str.replace(r"\d+(?:\.\d+)*", "<v>", regex=True).str.slice(0, 80).fillna("none").astype(str)


def _code(values: pd.Series) -> pd.Series:
    code = pd.to_numeric(values, errors="coerce")
    return pd.Series(np.where(code.isna(), "none", code.fillna(0).astype("int64").astype(str)), index=values.index)


def _extra_columns(table: pa.Table | pd.DataFrame, columns) -> pd.DataFrame:
    """The context columns flattened; a column the table lacks is all missing, never absent."""
    extra = flatten(table, columns).reset_index(drop=True)
    for col in columns:
        if col not in extra.columns:
            extra[col] = pd.Series(pd.NA, index=extra.index, dtype="string")
    return extra


def span_rows(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per span: the keys of trace_events plus the context columns."""
    base = trace_events(table)
    extra = _extra_columns(table, _TRACE_EXTRA)
    attrs = extra["unmapped.attributes"]

    def attribute(keys):  # typed map (current files) or JSON text (older ones)
        typed = _typed_attribute(table, keys)
        return _attribute(attrs, keys) if typed is None else typed

    out = base
    out["kind"] = "span:" + base["kind"]
    client_path = _mask_path(_url_path(attribute(["url.full", "http.url"])))
    out["route"] = base["route"].where(base["route"] != "none", client_path.fillna("none").astype(str))
    out["method"] = base["method"]
    out["status"] = _code(extra["http_response.code"])
    out["severity_id"] = np.nan
    out["template"] = np.where(extra["unmapped.db_statement"].isna(), "none",
                               message_template(extra["unmapped.db_statement"]))
    # the caller's agent and address have OCSF places now; older files kept them in the attributes
    agent = extra["http_request.user_agent"].astype("string")
    out["user_agent"] = _user_agent(agent.fillna(attribute(["user_agent.original", "http.user_agent"])))
    caller = extra["src_endpoint.ip"].astype("string")
    out["client_net"] = _client_net(caller.fillna(attribute(["client.address", "http.client_ip", "net.peer.ip"])))
    # caller and entry point: join each span to its parent and to its trace's root span
    span_id = extra["trace.span.uid"].astype("string")
    parent_id = extra["trace.span.parent_uid"].astype("string")
    service_of = pd.Series(out["service"].to_numpy(), index=span_id).groupby(level=0).first()
    has_parent = parent_id.notna() & (parent_id != "")
    parent_service = parent_id.map(service_of)
    out["parent_service"] = np.where(has_parent, parent_service.fillna("missing"), "root")
    out["edge"] = out["parent_service"] + "->" + out["service"]
    trace_id = extra["trace.uid"].astype("string")
    roots = pd.Series(out["operation"].to_numpy(), index=trace_id)[~has_parent.to_numpy()]
    entry = trace_id.map(roots.groupby(level=0).first())
    out["entry_operation"] = entry.fillna("missing").astype(str)
    return out


def log_rows(table: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """One row per log line: the keys of log_events plus the context columns."""
    base = log_events(table)
    extra = _extra_columns(table, _LOG_EXTRA)
    out = base
    out["kind"] = "log:" + base["log_event"]
    out["operation"] = "none"
    out["status"] = _code(extra["http_response.code"])
    out["is_root"] = np.nan
    out["template"] = message_template(extra["message"])
    out["user_agent"] = _user_agent(extra["http_request.user_agent"].astype("string"))
    out["client_net"] = _client_net(extra["src_endpoint.ip"].astype("string"))
    out["parent_service"] = "none"
    out["edge"] = "none"
    out["entry_operation"] = "none"
    return out


def _read(signal: str, root, wanted: list[str]) -> pa.Table | None:
    from obslab.data import signal_path
    from obslab.features import read_feature_columns
    from obslab.ocsf.schemas import parquet_leaves

    path = signal_path(root, signal)
    if not path.exists():
        return None
    base = read_feature_columns(signal, root)
    schema = ds.dataset(path, format="parquet", partitioning=None).schema
    columns = {leaf: ds.field(*leaf.split(".")) for leaf, _ in parquet_leaves(schema)
               if leaf in set(wanted) and leaf not in base.column_names}
    if not columns:
        return base
    extra = ds.dataset(path, format="parquet", partitioning=None).to_table(columns=columns)
    for name in extra.column_names:
        base = base.append_column(name, extra.column(name))
    return base


def load_event_rows(root) -> pd.DataFrame:
    """Spans and log lines of one dataset (one run) as rows of EVENT_NUMERIC + EVENT_CATEGORICAL
    plus the keys ``uid``, ``time_ms``, ``signal``; sorted by time."""
    parts = []
    traces = _read("traces", root, _TRACE_EXTRA)
    if traces is not None and traces.num_rows:
        parts.append(span_rows(traces))
    logs = _read("logs", root, _LOG_EXTRA)
    if logs is not None and logs.num_rows:
        parts.append(log_rows(logs))
    if not parts:
        raise ValueError(f"{root}: no spans and no log lines")
    keys = ["uid", "time_ms", "signal"]
    frame = pd.concat([p[keys + EVENT_NUMERIC + EVENT_CATEGORICAL] for p in parts], ignore_index=True)
    return frame.sort_values(["time_ms", "uid"], kind="stable").reset_index(drop=True)
