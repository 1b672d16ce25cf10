"""Flat tables (``obslab.ocsf.flat``) -> OCSF 1.8.0 Arrow tables, vectorised.

Every column is computed with ``pyarrow.compute`` over the whole batch and nested structs are
assembled with ``StructArray.from_arrays`` and a null mask: no per-row Python in this path.
Class choice, ids and captions follow ``book/appendix/ocsf-mapping.md``.

``metadata.uid`` is deterministic: a short hash of the source name plus the line number (logs),
trace and span id (spans) or the row position (metrics and generated logs, shifted by
``offset`` so that successive batches of one source never collide).
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from obslab.ocsf import catalog as C
from obslab.ocsf import schemas as S
from obslab.ocsf.flat import FLAT_LOG, FLAT_METRIC, FLAT_SPAN

SPAN_KIND_NAMES = ["unspecified", "internal", "server", "client", "producer", "consumer"]
STATUS_CODE_NAMES = ["UNSET", "OK", "ERROR"]


# ----------------------------------------------------------------------------- helpers
def source_tag(source: str) -> str:
    """Short stable hash of a source name, the prefix of every uid from that source."""
    return hashlib.sha1(source.encode("utf-8")).hexdigest()[:10]


def _lookup(values: pa.Array, mapping: dict, value_type=pa.int64(), default=None) -> pa.Array:
    """Map each value through ``mapping`` (null when absent, then ``default``)."""
    keys = pa.array(list(mapping.keys()))
    vals = pa.array(list(mapping.values()), type=value_type)
    idx = pc.index_in(values, value_set=keys)
    out = pc.take(vals, idx)
    if default is not None:
        out = pc.fill_null(out, pa.scalar(default, type=value_type))
    return out


def _single(arr):
    """A ChunkedArray as one Array (no copy when it has a single chunk)."""
    if isinstance(arr, pa.ChunkedArray):
        return arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    return arr


def _struct(fields: dict, type_: pa.StructType, valid) -> pa.StructArray:
    """A struct array of ``type_`` from child arrays; rows where ``valid`` is false are null."""
    arrays = []
    for f in type_:
        arr = _single(fields[f.name])
        arrays.append(arr.cast(f.type) if arr.type != f.type else arr)
    mask = None
    if valid is not None:
        mask = pc.invert(pc.fill_null(_single(valid), False))
    return pa.StructArray.from_arrays(arrays, fields=list(type_), mask=mask)


def _per_distinct(values: pa.Array, fn) -> pa.Array:
    """``fn`` on the distinct values only, spread back to the rows (nulls stay null): for costly
    kernels on columns that repeat a few values."""
    enc = pc.dictionary_encode(values)
    return fn(enc.dictionary).take(enc.indices)


def _nulls(n: int, type_) -> pa.Array:
    return pa.nulls(n, type=type_)


def _const(n: int, value, type_) -> pa.Array:
    """``value`` repeated ``n`` times; strings and integers straight from numpy buffers
    (``pa.repeat`` appends value by value, which costs when done per column per batch)."""
    if value is None:
        return _nulls(n, type_)
    if pa.types.is_string(type_):
        data = str(value).encode("utf-8")
        if len(data) * n < 2**31:
            offsets = (np.arange(n + 1, dtype=np.int64) * len(data)).astype(np.int32)
            buffers = [None, pa.py_buffer(offsets), pa.py_buffer(data * n)]
            return pa.Array.from_buffers(type_, n, buffers)
    if pa.types.is_integer(type_) or pa.types.is_boolean(type_):
        return pa.array(np.full(n, value, dtype=type_.to_pandas_dtype()), type=type_)
    return pa.array([value] * n, type=type_) if n < 64 else pa.repeat(pa.scalar(value, type_), n)


def _col(table: pa.Table, name: str) -> pa.Array:
    return _single(table.column(name))


def _caption_row(cls: int, act: int, sev: int, status) -> dict:
    """The captions of one (class, activity, severity, status) combination (None: unknown)."""
    cls_info = C.CLASSES.get(cls)
    category = cls_info[2] if cls_info else None
    act_name = C.ACTIVITIES.get(cls, {}).get(act)
    return {
        "class_name": cls_info[0] if cls_info else None,
        "category_uid": category,
        "category_name": C.CATEGORIES.get(category),
        "activity_name": act_name,
        "type_uid": cls * 100 + act,
        "type_name": C.type_name(cls, act) if act_name is not None else None,
        "severity": C.SEVERITIES.get(sev),
        "status": None if status is None else C.STATUSES.get(status),
    }


CAPTION_TYPES = {"class_name": pa.string(), "category_uid": pa.int64(), "category_name": pa.string(),
                 "activity_name": pa.string(), "type_uid": pa.int64(), "type_name": pa.string(),
                 "severity": pa.string(), "status": pa.string()}


def _captions(class_uid: pa.Array, activity_id: pa.Array, severity_id: pa.Array, status_id):
    """Class, category, activity, type and severity/status captions from the ids.

    A batch holds a handful of distinct id combinations: their captions are looked up once in
    Python and spread to the rows with one ``take`` per column (one hash pass in all)."""
    status = pc.fill_null(status_id, -1)
    key = pc.add(pc.multiply(pc.add(pc.multiply(pc.add(pc.multiply(class_uid, 1000), activity_id), 1000),
                                    severity_id), 1000), pc.add(status, 1))
    enc = pc.dictionary_encode(key)
    rows = []
    for k in enc.dictionary.to_pylist():
        k, st = divmod(k, 1000)
        k, sev = divmod(k, 1000)
        cls, act = divmod(k, 1000)
        rows.append(_caption_row(cls, act, sev, None if st == 0 else st - 1))
    out = {"class_uid": class_uid, "activity_id": activity_id, "severity_id": severity_id, "status_id": status_id}
    for name, type_ in CAPTION_TYPES.items():
        out[name] = pa.array([r[name] for r in rows], type_).take(enc.indices)
    return out


def _const_captions(n: int, class_uid: int, activity_id: int, severity_id: int, status_id):
    """``_captions`` for a batch whose ids are all the same: look up once, repeat."""
    one = _captions(pa.array([class_uid], pa.int64()), pa.array([activity_id], pa.int64()),
                    pa.array([severity_id], pa.int64()), pa.array([status_id], pa.int64()))
    make = _const_cached if n <= 1 << 18 else _const
    return {k: make(n, v[0].as_py(), v.type) for k, v in one.items()}


@functools.lru_cache(maxsize=32, typed=True)
def _const_cached(n: int, value, type_) -> pa.Array:
    """Cached ``_const`` for the caption columns: successive batches of one size (the
    generator's chunks) reuse them; arrays are immutable."""
    return _const(n, value, type_)


def _profiles(n: int, valid) -> pa.Array:
    """``["trace"]`` per row (null where ``valid`` is false), built from offsets, not lists."""
    if valid is None:
        keep = np.ones(n, dtype=bool)
    else:
        keep = pc.fill_null(_single(valid), False).to_numpy(zero_copy_only=False)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(keep, out=offsets[1:])
    values = pa.repeat(pa.scalar("trace"), int(offsets[-1]))
    mask = None if valid is None else pa.array(~keep)
    return pa.ListArray.from_arrays(pa.array(offsets), values, type=pa.list_(pa.string()), mask=mask)


def _metadata(n, uid, product_name, profiles_valid, log_name, provider, correlation, sequence):
    profiles = _profiles(n, profiles_valid)
    product = _struct({"name": product_name, "vendor_name": _nulls(n, pa.string())}, S.PRODUCT, None)
    return _struct(
        {
            "uid": uid,
            "version": _const(n, C.OCSF_VERSION, pa.string()),
            "product": product,
            "profiles": profiles,
            "log_name": _const(n, log_name, pa.string()),
            "log_provider": _const(n, provider, pa.string()),
            "correlation_uid": correlation,
            "sequence": sequence,
        },
        S.METADATA,
        None,
    )


def _finish(cols: dict, schema: pa.Schema, n: int) -> pa.Table:
    arrays = []
    for f in schema:
        arr = cols.get(f.name)
        if arr is None:
            arr = _nulls(n, f.type)
        elif isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.type != f.type:
            arr = arr.cast(f.type)
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=schema)


def _conform(flat: pa.Table, schema: pa.Schema) -> pa.Table:
    """Accept a flat table/batch with missing optional columns (added as nulls)."""
    if isinstance(flat, pa.RecordBatch):
        flat = pa.Table.from_batches([flat])
    missing = [f for f in schema if f.name not in flat.column_names]
    for f in missing:
        if not f.nullable:
            raise ValueError(f"flat table lacks required column {f.name!r}")
        flat = flat.append_column(f, _nulls(flat.num_rows, f.type))
    return flat.select(schema.names).cast(schema)


def _row_keys(flat: pa.Table, offset: int, line_col: str | None) -> pa.Array:
    n = flat.num_rows
    pos = pa.array(np.arange(offset + 1, offset + n + 1, dtype=np.int64))
    if line_col is not None:
        pos = pc.coalesce(_col(flat, line_col), pos)
    return pc.cast(pos, pa.string())


def _ms(values: pa.Array) -> pa.Array:
    return pc.cast(pc.round(values), pa.int64())


# ----------------------------------------------------------------------------- logs
def logs_to_ocsf(flat: pa.Table, source: str = "logs", offset: int = 0,
                 provider: str = "docker-compose") -> pa.Table:
    """FLAT_LOG rows -> OCSF events (4002 access lines, 6008 errors, 6002 start/stop, 0 others).

    ``source`` names the input (file name) for ``metadata.log_name`` and uids; ``offset`` is the
    number of rows of this source already converted (used for uids when ``line_no`` is null).
    """
    flat = _conform(flat, FLAT_LOG)
    n = flat.num_rows
    g = {name: _col(flat, name) for name in FLAT_LOG.names}
    level = pc.utf8_upper(g["level"])
    event = pc.utf8_lower(g["event"])
    is_err_level = pc.is_in(level, value_set=pa.array(["ERROR", "ERR", "FATAL", "CRITICAL", "PANIC"]))
    has_http = pc.and_(pc.is_valid(g["http_method"]), pc.is_valid(g["http_status"]))
    inferred = pc.if_else(has_http, "access", pc.if_else(is_err_level, "error", "other"))
    event = pc.coalesce(event, inferred)
    class_uid = _lookup(event, {"access": 4002, "error": 6008, "lifecycle": 6002}, default=0)
    is_http = pc.equal(class_uid, 4002)
    is_life = pc.equal(class_uid, 6002)
    is_err = pc.equal(class_uid, 6008)

    method = pc.utf8_upper(g["http_method"])
    if pc.any(is_life).as_py():
        msg_l = pc.utf8_lower(pc.fill_null(g["message"], ""))
        life_act = pc.if_else(
            pc.match_substring_regex(msg_l, r"\b(stop|stopping|stopped|shut ?down|shutting|exit|exiting|terminat)"),
            4,
            pc.if_else(pc.match_substring_regex(msg_l, r"\b(start|starting|started|listening|ready|running|boot)"), 3, 99),
        )
    else:  # only read where is_life: skip the message regexes in batches without lifecycle lines
        life_act = _const(n, 99, pa.int64())
    activity = pc.if_else(
        is_http,
        _lookup(method, C.HTTP_ACTIVITY, default=99),
        pc.if_else(is_life, life_act, pc.if_else(is_err, 1, 0)),
    ).cast(pa.int64())
    activity = pc.if_else(pc.and_(is_http, pc.is_null(method)), 0, activity)
    severity = _lookup(level, C.LEVEL_SEVERITY, default=0)
    status = g["http_status"]
    status_id = pc.if_else(
        is_http,
        pc.if_else(pc.greater_equal(pc.fill_null(status, 0), 400), 2, 1),
        pc.if_else(is_err, 2, pa.scalar(None, pa.int64())),
    ).cast(pa.int64())
    cols = _captions(class_uid, activity, severity, status_id)

    time = g["time_ms"]
    dur = _ms(g["duration_ms"])
    tag = source_tag(source)
    uid = pc.binary_join_element_wise(tag, _row_keys(flat, offset, "line_no"), "-")
    service = g["service"]
    endpoint = _struct({"svc_name": service, "hostname": g["host"]}, S.ENDPOINT, is_http)
    url = _struct({"path": g["http_path"], "hostname": _nulls(n, pa.string())}, S.URL, pc.is_valid(g["http_path"]))
    span_start = pc.subtract(time, pc.fill_null(dur, 0))
    span = _struct(
        {"uid": g["span_id"], "parent_uid": _nulls(n, pa.string()), "operation": _nulls(n, pa.string()),
         "start_time": span_start, "end_time": time, "duration": dur, "status_code": _nulls(n, pa.string())},
        S.SPAN, pc.is_valid(g["span_id"]),
    )
    has_trace = pc.and_(is_http, pc.is_valid(g["trace_id"]))
    cols.update(
        time=time,
        status_code=pc.cast(status, pa.string()),
        message=g["message"],
        duration=pc.if_else(is_http, dur, _nulls(n, pa.int64())),
        metadata=_metadata(n, uid, service, is_http, source, provider, g["trace_id"], g["line_no"]),
        unmapped=_struct(
            {"service": service, "container": g["container"], "host": g["host"], "region": g["region"],
             "level": g["level"], "logger": g["logger"], "event": event, "error_type": g["error_type"],
             "duration_ms": g["duration_ms"], "time_inferred": _nulls(n, pa.bool_())},
            S.UNMAPPED_LOG, None,
        ),
        http_request=_struct({"http_method": method, "url": url}, S.HTTP_REQUEST, is_http),
        http_response=_struct({"code": status}, S.HTTP_RESPONSE, pc.and_(is_http, pc.is_valid(status))),
        dst_endpoint=endpoint,
        trace=_struct(
            {"uid": g["trace_id"], "span": span, "service": _struct({"name": service}, S.SERVICE, None),
             "start_time": _nulls(n, pa.int64()), "end_time": _nulls(n, pa.int64()),
             "duration": _nulls(n, pa.int64())},
            S.TRACE, has_trace,
        ),
        app=_struct({"name": service, "vendor_name": _nulls(n, pa.string())}, S.PRODUCT, is_life),
    )
    cols["status_code"] = pc.if_else(is_http, cols["status_code"], _nulls(n, pa.string()))
    return _finish(cols, S.OCSF_LOGS, n)


def mark_inferred_times(table: pa.Table, inferred: pa.Array) -> pa.Table:
    """Set ``unmapped.time_inferred`` (the reader knows which times were not in the line)."""
    idx = table.schema.get_field_index("unmapped")
    um = table.column(idx).combine_chunks()
    children = {f.name: um.field(f.name) for f in S.UNMAPPED_LOG}
    children["time_inferred"] = inferred
    new = _struct(children, S.UNMAPPED_LOG, None)
    return table.set_column(idx, table.schema.field(idx), new)


# ----------------------------------------------------------------------------- spans
def spans_to_ocsf(flat: pa.Table, source: str = "traces", offset: int = 0, provider: str = "otlp") -> pa.Table:
    """FLAT_SPAN rows -> 4002 HTTP Activity (HTTP server/client spans) or 6003 API Activity.

    Markers (``marker_*``) are not carried over: labels come from the flat table, never OCSF.
    """
    flat = _conform(flat, FLAT_SPAN)
    n = flat.num_rows
    g = {name: _col(flat, name) for name in FLAT_SPAN.names}
    kind = pc.fill_null(g["kind"].cast(pa.int64()), 0)
    method = pc.utf8_upper(g["http_method"])
    is_http = pc.and_(pc.is_valid(method), pc.is_in(kind, value_set=pa.array([2, 3], pa.int64())))
    class_uid = pc.if_else(is_http, 4002, 6003).cast(pa.int64())
    verb = _per_distinct(g["db_statement"],  # (statements repeat: the regex runs once per text)
                         lambda v: pc.utf8_upper(pc.extract_regex(v, r"^\s*(?P<v>[A-Za-z]+)").field("v")))
    api_act = _lookup(pc.coalesce(method, verb), C.API_ACTIVITY, default=99)
    activity = pc.if_else(is_http, _lookup(method, C.HTTP_ACTIVITY, default=99), api_act).cast(pa.int64())
    code = pc.fill_null(g["status_code"].cast(pa.int64()), 0)
    http_status = g["http_status"]
    failed = pc.or_(pc.equal(code, 2), pc.greater_equal(pc.fill_null(http_status, 0), 500))
    status_id = pc.if_else(failed, 2, 1).cast(pa.int64())
    severity = pc.if_else(failed, 4, pc.if_else(pc.greater_equal(pc.fill_null(http_status, 0), 400), 2, 1))
    cols = _captions(class_uid, activity, severity.cast(pa.int64()), status_id)

    start, end = g["time_ms"], g["end_time_ms"]
    dur = _ms(g["duration_ms"])
    service, host = g["service"], g["host"]
    tag = source_tag(source)
    uid = pc.binary_join_element_wise(tag, g["trace_id"], g["span_id"], "-")
    code_name = pc.take(pa.array(STATUS_CODE_NAMES), pc.min_element_wise(pc.max_element_wise(code, 0), 2))
    kind_name = pc.take(pa.array(SPAN_KIND_NAMES), pc.min_element_wise(pc.max_element_wise(kind, 0), 5))
    is_server = pc.equal(kind, 2)
    is_client = pc.equal(kind, 3)
    span = _struct(
        {"uid": g["span_id"], "parent_uid": g["parent_span_id"], "operation": g["name"], "start_time": start,
         "end_time": end, "duration": dur, "status_code": code_name},
        S.SPAN, None,
    )
    none_s = _nulls(n, pa.string())
    # OCSF url needs a path (or url_string); the peer host is in dst_endpoint anyway
    url = _struct({"path": g["http_path"], "hostname": g["server_address"]}, S.URL, pc.is_valid(g["http_path"]))
    self_ep = {"svc_name": service, "hostname": host}
    cols.update(
        time=start,
        start_time=start,
        end_time=end,
        duration=dur,
        status_code=code_name,
        message=pc.coalesce(g["status_message"], g["name"]),
        metadata=_metadata(n, uid, service, None, source, provider, g["trace_id"], _nulls(n, pa.int64())),
        unmapped=_struct(
            {"service": service, "host": host, "region": g["region"], "kind": kind_name, "scope": g["scope"],
             "http_route": g["http_route"], "db_system": g["db_system"], "db_statement": g["db_statement"],
             "messaging_system": g["messaging_system"], "duration_ms": g["duration_ms"],
             "attributes": g["attributes"]},
            S.UNMAPPED_SPAN, None,
        ),
        http_request=_struct({"http_method": method, "url": url}, S.HTTP_REQUEST, pc.is_valid(method)),
        http_response=_struct({"code": http_status}, S.HTTP_RESPONSE, pc.is_valid(http_status)),
        src_endpoint=_struct(self_ep, S.ENDPOINT, pc.or_(pc.invert(is_http), pc.invert(is_server))),
        dst_endpoint=pc.if_else(
            is_server,
            _struct(self_ep, S.ENDPOINT, None),
            _struct({"svc_name": none_s, "hostname": g["server_address"]}, S.ENDPOINT,
                    pc.and_(is_client, pc.is_valid(g["server_address"]))),
        ),
        trace=_struct(
            {"uid": g["trace_id"], "span": span, "service": _struct({"name": service}, S.SERVICE, None),
             "start_time": _nulls(n, pa.int64()), "end_time": _nulls(n, pa.int64()),
             "duration": _nulls(n, pa.int64())},
            S.TRACE, None,
        ),
        actor=_struct({"app_name": service}, S.ACTOR, pc.invert(is_http)),
        api=_struct({"operation": g["name"], "service": _struct({"name": service}, S.SERVICE, None)}, S.API,
                    pc.invert(is_http)),
    )
    return _finish(cols, S.OCSF_TRACES, n)


# ----------------------------------------------------------------------------- metrics
def metrics_to_ocsf(flat: pa.Table, source: str = "metrics", offset: int = 0,
                    provider: str = "prometheus") -> pa.Table:
    """FLAT_METRIC samples -> Base Event (class 0, activity 99 Other), sample in ``unmapped``.

    OCSF has no metric class; we chose Base Event + ``unmapped`` (documented in the appendix)
    so every event validates against the official schema without an extension.
    """
    flat = _conform(flat, FLAT_METRIC)
    n = flat.num_rows
    g = {name: _col(flat, name) for name in FLAT_METRIC.names}
    cols = _const_captions(n, 0, 99, 1, None)
    tag = source_tag(source)
    uid = pc.binary_join_element_wise(tag, _row_keys(flat, offset, None), "-")
    product = pc.coalesce(g["service"], _const(n, "prometheus", pa.string()))
    cols.update(
        time=g["time_ms"],
        message=g["metric"],
        metadata=_metadata(n, uid, product, _const(n, False, pa.bool_()), source, provider,
                           _nulls(n, pa.string()), _nulls(n, pa.int64())),
        unmapped=_struct(
            {"service": g["service"], "host": g["host"], "region": g["region"], "metric": g["metric"],
             "value": g["value"], "unit": g["unit"], "query": g["query"], "labels": g["labels"]},
            S.UNMAPPED_METRIC, None,
        ),
    )
    return _finish(cols, S.OCSF_METRICS, n)
