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

from obslab.ocsf import _tables as T
from obslab.ocsf import catalog as C
from obslab.ocsf import schemas as S
from obslab.ocsf._spanmap import only
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


def _coalesce(*arrays):
    """``pc.coalesce`` of arrays, skipping the kernel where it changes nothing: all-null
    arguments are left out and an argument without nulls ends the list."""
    keep = []
    for arr in arrays:
        arr = _single(arr)
        if isinstance(arr, pa.Array) and arr.null_count == len(arr):
            continue
        keep.append(arr)
        if not isinstance(arr, pa.Array) or arr.null_count == 0:
            break
    if not keep:
        return _single(arrays[0])
    return keep[0] if len(keep) == 1 else pc.coalesce(*keep)


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


# metadata.product.vendor_name per log_provider: who makes the software that wrote the record
VENDORS = {"docker-compose": "Docker", "otlp": "OpenTelemetry", "prometheus": "Prometheus", "synthetic": "obslab"}


def _type(schema: pa.Schema, path: str) -> pa.DataType:
    """The type at a dotted ``path`` of ``schema`` (each signal narrows the shared objects)."""
    first, *rest = path.split(".")
    type_ = schema.field(first).type
    for name in rest:
        type_ = type_.field(name).type
    return type_


def _metadata(type_, n, uid, product_name, profiles_valid, log_name, provider, correlation, sequence, reporter=None):
    """``metadata`` of ``type_`` (the signal's: fields it lacks are not built)."""
    profiles = _profiles(n, profiles_valid) if "profiles" in type_.names else None
    vendor = _const(n, VENDORS.get(provider, provider), pa.string())
    product = _struct({"name": product_name, "vendor_name": vendor}, S.PRODUCT, None)
    return _struct(
        {
            "uid": uid,
            "version": _const(n, C.OCSF_VERSION, pa.string()),
            "product": product,
            "reporter": reporter,
            "profiles": profiles,
            "log_name": _const(n, log_name, pa.string()),
            "log_provider": _const(n, provider, pa.string()),
            "correlation_uid": correlation,
            "sequence": sequence,
        },
        type_,
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
    have = set(flat.column_names)  # (once: column_names builds a new list per call, ~2 ms a batch in the loop)
    missing = [f for f in schema if f.name not in have]
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


def _port(text: pa.Array) -> pa.Array:
    """Port text -> int64 (null when it is not a port number)."""
    text = _single(text)
    if text.null_count == len(text):
        return _nulls(len(text), pa.int64())

    def parse(values):
        ok = pc.fill_null(pc.match_substring_regex(values, r"^[0-9]{1,5}$"), False)
        num = pc.cast(pc.if_else(ok, values, pa.scalar(None, pa.string())), pa.int64())
        return pc.if_else(pc.less_equal(pc.fill_null(num, 0), 65535), num, pa.scalar(None, pa.int64()))
    return _per_distinct(text, parse)  # (a few ports repeat over a batch)




IP = r"^([0-9]{1,3}(\.[0-9]{1,3}){3}|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*)$"


def _split_address(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Address text -> (ip, hostname): ``client.address`` and friends may hold a domain name."""
    text = _single(text)
    if text.null_count == len(text):
        return text, text
    is_ip = pc.fill_null(pc.match_substring_regex(text, IP), False)
    return only(is_ip, text), only(pc.invert(is_ip), text)


def _observables(n: int, entries: list) -> pa.Array:
    """OCSF ``observables`` from ``(name, type_id, values)`` candidates: per row, one entry for
    each candidate that has a value there (built from offsets, no per-row Python)."""
    entries = [(name, tid, _single(v)) for name, tid, v in entries]
    entries = [e for e in entries if e[2].null_count < n]  # (all-null candidates add nothing)
    if not entries:
        return _nulls(n, S.OBSERVABLES)
    if len(entries) == 1:  # (the usual case: no row-major interleave, no take)
        return _one_observable(n, *entries[0])
    valid = np.stack([pc.is_valid(_single(v)).to_numpy(zero_copy_only=False) for _, _, v in entries], axis=1)
    counts = valid.sum(axis=1)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    order = np.flatnonzero(valid.ravel())  # row-major: row by row, candidates in order
    cand = order % len(entries)
    rows = order // len(entries)
    values = pa.chunked_array([pc.cast(_single(v), pa.string()) for _, _, v in entries]).combine_chunks()
    value = values.take(pa.array(cand * n + rows))
    names = pa.array([e[0] for e in entries]).take(pa.array(cand))
    ids = pa.array([e[1] for e in entries], pa.int64()).take(pa.array(cand))
    items = pa.StructArray.from_arrays([names, ids, value], fields=list(S.OBSERVABLES.value_type))
    mask = pa.array(counts == 0)
    return pa.ListArray.from_arrays(pa.array(offsets), items, type=S.OBSERVABLES, mask=mask)


def _one_observable(n: int, name: str, type_id: int, values: pa.Array) -> pa.Array:
    """:func:`_observables` with one candidate: its non-null values, one entry per row that has one."""
    valid = pc.is_valid(values)
    counts = valid.to_numpy(zero_copy_only=False)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    value = pc.cast(values.filter(valid), pa.string())
    m = len(value)
    items = pa.StructArray.from_arrays([pa.repeat(name, m), pa.repeat(pa.scalar(type_id, pa.int64()), m), value],
                                       fields=list(S.OBSERVABLES.value_type))
    return pa.ListArray.from_arrays(pa.array(offsets), items, type=S.OBSERVABLES, mask=pc.invert(valid))


RESTART = T.phrase_regex(T.LIFECYCLE_RESTART + ("restart",))
STOP_WORDS = r"(?i)\b(stop|stopping|stopped|shut ?down|shutting|exit|exiting|terminat\w*|sigterm|sigint)\b"
START_WORDS = r"(?i)\b(start|starting|started|startup|listening|ready|running|boot|booting)\b"


def _lifecycle_activity(message: pa.Array) -> pa.Array:
    """Application Lifecycle activity of a line already known to be one (the reader decides that
    with _tables.LIFECYCLE_PHRASES): Restart (5), Stop (4), Start (3), else Other (99)."""
    msg = pc.fill_null(message, "")
    return pc.if_else(pc.match_substring_regex(msg, RESTART), 5,
                      pc.if_else(pc.match_substring_regex(msg, STOP_WORDS), 4,
                                 pc.if_else(pc.match_substring_regex(msg, START_WORDS), 3, 99)))


# ----------------------------------------------------------------------------- logs
def logs_to_ocsf(flat: pa.Table, source: str = "logs", offset: int = 0,
                 provider: str = "docker-compose", raw_data: bool = False) -> pa.Table:
    """FLAT_LOG rows -> OCSF events (4002 access lines, 6008 errors, 6002 start/stop, 0 others).

    ``source`` names the input (file name) for ``metadata.log_name`` and uids; ``offset`` is the
    number of rows of this source already converted (used for uids when ``line_no`` is null);
    ``raw_data``: keep each line's payload text in ``raw_data``.
    """
    flat = _conform(flat, FLAT_LOG)
    n = flat.num_rows
    g = {name: _col(flat, name) for name in FLAT_LOG.names}
    level = pc.utf8_upper(g["level"])
    event = pc.utf8_lower(g["event"])
    is_err_level = pc.is_in(level, value_set=pa.array(list(T.ERROR_LEVELS) + ["ERR"]))
    has_http = pc.and_(pc.is_valid(g["http_method"]), pc.is_valid(g["http_status"]))
    inferred = pc.if_else(has_http, "access", pc.if_else(is_err_level, "error", "other"))
    event = pc.coalesce(event, inferred)
    class_uid = _lookup(event, {"access": 4002, "error": 6008, "lifecycle": 6002}, default=0)
    is_http = pc.equal(class_uid, 4002)
    is_life = pc.equal(class_uid, 6002)
    is_err = pc.equal(class_uid, 6008)

    method = pc.utf8_upper(g["http_method"])
    if pc.any(is_life).as_py():
        # (the phrase regexes only on the lifecycle lines, a few of a batch, spread back)
        life_act = pc.replace_with_mask(_const(n, 99, pa.int64()), is_life,
                                        _lifecycle_activity(g["message"].filter(is_life)).cast(pa.int64()))
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
    none_s, none_i = _nulls(n, pa.string()), _nulls(n, pa.int64())
    L = S.OCSF_LOGS  # (its objects hold only what a log line fills)
    # an access line: the caller in src_endpoint (client_ip), this service in dst_endpoint
    dst = _struct({"svc_name": service, "hostname": g["host"]}, _type(L, "dst_endpoint"), is_http)
    src = _struct({"ip": g["client_ip"]}, _type(L, "src_endpoint"), pc.and_(is_http, pc.is_valid(g["client_ip"])))
    url = _struct({"path": g["http_path"]}, _type(L, "http_request.url"), pc.is_valid(g["http_path"]))
    span_start = pc.subtract(time, pc.fill_null(dur, 0))
    svc = _struct({"name": service}, S.NAME_ONLY, None)
    span = _struct(
        {"uid": g["span_id"], "start_time": span_start, "end_time": time, "duration": pc.subtract(time, span_start),
         "service": svc},
        _type(L, "trace.span"), pc.is_valid(g["span_id"]),
    )
    has_trace = pc.and_(is_http, pc.is_valid(g["trace_id"]))
    cols.update(
        time=time,
        status_code=pc.cast(status, pa.string()),
        message=g["message"],
        duration=pc.if_else(is_http, dur, none_i),
        metadata=_metadata(S.METADATA_LOG, n, uid, service, is_http, source, provider, g["trace_id"], g["line_no"]),
        observables=_observables(n, [
            ("src_endpoint.ip", 2, pc.if_else(is_http, g["client_ip"], none_s)),
            ("unmapped.host", 1, g["host"]),
            ("unmapped.user_name", 4, g["user_name"]),
            ("http_request.user_agent", 16, pc.if_else(is_http, g["user_agent"], none_s)),
            ("trace.uid", 99, pc.if_else(has_trace, g["trace_id"], none_s)),
        ]),
        raw_data=g["payload"] if raw_data else None,
        unmapped=_struct(
            {"service": service, "container": g["container"], "host": g["host"], "region": g["region"],
             "level": g["level"], "logger": g["logger"], "event": event, "error_type": g["error_type"],
             "duration_ms": g["duration_ms"], "time_inferred": _nulls(n, pa.bool_()), "user_name": g["user_name"],
             "extra": g["extra"]},
            S.UNMAPPED_LOG, None,
        ),
        http_request=_struct({"http_method": method, "url": url, "user_agent": g["user_agent"],
                              "version": g["http_version"]}, _type(L, "http_request"), is_http),
        http_response=_struct({"code": status}, S.HTTP_RESPONSE, pc.and_(is_http, pc.is_valid(status))),
        src_endpoint=src,
        dst_endpoint=dst,
        trace=_struct({"uid": g["trace_id"], "span": span, "service": svc}, _type(L, "trace"), has_trace),
        app=_struct({"name": service}, _type(L, "app"), is_life),
    )
    cols["status_code"] = pc.if_else(is_http, cols["status_code"], none_s)
    return _finish(cols, S.OCSF_LOGS, n)


def mark_inferred_times(table: pa.Table, inferred: pa.Array) -> pa.Table:
    """Set ``unmapped.time_inferred`` (the reader knows which times were not in the line)."""
    idx = table.schema.get_field_index("unmapped")
    col = table.column(idx)
    um = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()  # (one chunk: no copy)
    children = {f.name: um.field(f.name) for f in S.UNMAPPED_LOG}
    children["time_inferred"] = inferred
    new = _struct(children, S.UNMAPPED_LOG, None)
    return table.set_column(idx, table.schema.field(idx), new)


# ----------------------------------------------------------------------------- spans
def _trace_flags(flags: pa.Array) -> pa.Array:
    """W3C trace flags -> OCSF ``trace.flags`` captions (bit 0 sampled; OTLP bits 8-9 remote parent)."""
    def captions(values):
        out = []
        for v in values.to_pylist():
            names = [] if v is None else (["sampled"] if v & 1 else []) + (["remote parent"] if v & 0x300 == 0x300 else [])
            out.append(names or None)
        return pa.array(out, pa.list_(pa.string()))
    return _per_distinct(flags, captions)


def _map_value(m: pa.Array, key: str) -> pa.Array:
    """``m[key]`` of a map<string,string> column (null where absent; the first when repeated).

    One vectorised compare over all the entries: ``pc.map_lookup`` compares entry by entry
    per row, ~3x slower on spans that carry their resource's 15 attributes each."""
    m = _single(m)
    n = len(m)
    if m.null_count == n:
        return _nulls(n, m.type.item_type)
    off = m.offsets.to_numpy()  # (absolute positions in the entries: a slice keeps the whole child)
    hit = np.flatnonzero(pc.fill_null(pc.equal(m.keys, key), False).to_numpy(zero_copy_only=False))
    hit = hit[(hit >= off[0]) & (hit < off[-1])]
    if not len(hit):
        return _nulls(n, m.type.item_type)
    rows = np.searchsorted(off, hit, side="right") - 1
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    rows, hit = rows[first], hit[first]
    mask = np.zeros(n, dtype=bool)
    mask[rows] = True
    if m.null_count:  # (a null row's entries, if any, are not its value)
        mask &= pc.is_valid(m).to_numpy(zero_copy_only=False)
        hit = hit[mask[rows]]
    return pc.replace_with_mask(_nulls(n, m.type.item_type), pa.array(mask), m.items.take(pa.array(hit)))


def spans_to_ocsf(flat: pa.Table, source: str = "traces", offset: int = 0, provider: str = "otlp") -> pa.Table:
    """FLAT_SPAN rows -> 4002 HTTP Activity (HTTP server/client spans) or 6003 API Activity.

    Server and consumer spans: the caller is the actor and the source (its address, and its
    service when the parent span is in the same batch), the span's own service the destination.
    Client, producer and internal spans: the span's own service is the actor and the source,
    the called service (``peer.service``, ``server.address``) the destination and ``api.service``.
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
    api_act = _lookup(_coalesce(method, verb), C.API_ACTIVITY, default=99)
    activity = pc.if_else(is_http, _lookup(method, C.HTTP_ACTIVITY, default=99), api_act).cast(pa.int64())
    code = pc.fill_null(g["status_code"].cast(pa.int64()), 0)
    http_status = g["http_status"]
    failed = pc.or_(pc.equal(code, 2), pc.greater_equal(pc.fill_null(http_status, 0), 500))
    status_id = pc.if_else(failed, 2, 1).cast(pa.int64())
    severity = pc.if_else(failed, 4, pc.if_else(pc.greater_equal(pc.fill_null(http_status, 0), 400), 2, 1))
    cols = _captions(class_uid, activity, severity.cast(pa.int64()), status_id)

    start, end = g["time_ms"], g["end_time_ms"]
    dur = pc.subtract(end, start)  # exactly end_time - start_time (ms); unmapped.duration_ms keeps the ns detail
    service, host = g["service"], g["host"]
    none_s = _nulls(n, pa.string())
    tag = source_tag(source)
    uid = pc.binary_join_element_wise(tag, g["trace_id"], g["span_id"], "-")
    code_name = pc.take(pa.array(STATUS_CODE_NAMES), pc.min_element_wise(pc.max_element_wise(code, 0), 2))
    kind_name = pc.take(pa.array(SPAN_KIND_NAMES), pc.min_element_wise(pc.max_element_wise(kind, 0), 5))
    inbound = pc.is_in(kind, value_set=pa.array([2, 5], pa.int64()))  # server, consumer: called by another
    outbound = pc.is_in(kind, value_set=pa.array([3, 4], pa.int64()))  # client, producer: calls another
    resource = g["resource"]
    own = _struct({"name": service, "version": _map_value(resource, "service.version"),
                   "uid": _map_value(resource, "service.instance.id")}, S.SERVICE, None)
    span = _struct(
        {"uid": g["span_id"], "parent_uid": g["parent_span_id"], "operation": g["name"], "start_time": start,
         "end_time": end, "duration": dur, "status_code": code_name, "service": own},
        _type(S.OCSF_TRACES, "trace.span"), None,
    )
    # the caller of an inbound span: peer.service when the span names it (OpenTracing names the
    # remote side so on both ends), else its parent's service when the parent is in this batch
    # (the parent lookup, a hash join, runs only for the inbound spans that have a parent and no peer.service)
    need = pc.and_(inbound, pc.and_(pc.is_valid(g["parent_span_id"]), pc.is_null(g["peer_service"])))
    parent_service = none_s
    if pc.any(need).as_py():
        parent_at = pc.index_in(g["parent_span_id"].filter(need), value_set=g["span_id"])
        parent_service = pc.replace_with_mask(none_s, need, pc.take(service, parent_at))
    caller = only(inbound, _coalesce(g["peer_service"], parent_service))
    caller_ip, caller_host = _split_address(_coalesce(g["client_address"], g["peer_address"]))
    peer_ip, peer_host = _split_address(g["peer_address"])
    caller_port = _port(g["peer_port"] if g["client_address"].null_count == n
                        else pc.if_else(pc.is_valid(g["client_address"]), g["client_port"], g["peer_port"]))
    unknown = pc.and_(inbound, pc.and_(pc.is_null(caller), pc.is_null(_coalesce(caller_ip, caller_host))))
    # 6003 requires actor and src_endpoint: an unidentified caller is named "unknown", never the span's own service
    caller_name = only(pc.and_(unknown, pc.equal(class_uid, 6003)), _const(n, "unknown", pa.string()))
    called = _coalesce(g["peer_service"], g["server_address"])
    # src/dst per field (a struct-level if_else costs ~10x more than its string children's)
    def pick(cond, a, b):
        if cond is True or cond is False:
            return a if cond else b
        if b.null_count == n:  # (one side all null: only() shares the other's buffers)
            return only(cond, a)
        if a.null_count == n:
            return only(pc.invert(cond), b)
        return pc.if_else(cond, a, b)
    any_in = pc.any(inbound).as_py()
    into = inbound if any_in else False
    peer_port = _port(_coalesce(g["server_port"], g["peer_port"]))
    url_port = _port(g["server_port"])  # (once: also the inbound side's dst_endpoint.port)
    src_valid = pc.or_(pc.invert(inbound), pc.or_(pc.invert(unknown), pc.equal(class_uid, 6003)))
    src_ep = _struct({"svc_name": pick(into, caller, service), "hostname": pick(into, caller_host, host),
                      "ip": only(into, caller_ip), "port": only(into, caller_port),
                      "name": only(into, caller_name)}, S.ENDPOINT, src_valid)
    dst_valid = pc.or_(inbound, pc.or_(pc.or_(pc.is_valid(g["peer_service"]), pc.is_valid(g["server_address"])),
                                       pc.is_valid(g["peer_address"])))
    dst_ep = _struct({"svc_name": pick(into, service, g["peer_service"]),
                      "hostname": pick(into, host, _coalesce(g["server_address"], peer_host)),
                      "ip": only(pc.invert(inbound) if any_in else True, peer_ip),
                      "port": pick(into, url_port, peer_port)}, _type(S.OCSF_TRACES, "dst_endpoint"), dst_valid)
    url_host = g["server_address"]
    if g["url_scheme"].null_count == n:  # (most spans: no scheme, no URL string to build)
        url_string = none_s
    else:
        url_string = pc.binary_join_element_wise(
            g["url_scheme"], "://", url_host,
            pc.if_else(pc.is_valid(url_port), pc.binary_join_element_wise(":", pc.cast(url_port, pa.string()), ""), ""),
            g["http_path"], "")
    url = _struct({"path": g["http_path"], "hostname": url_host, "scheme": g["url_scheme"], "port": url_port,
                   "url_string": url_string}, S.URL, pc.is_valid(g["http_path"]))
    actor_app = pc.if_else(inbound, _coalesce(caller, caller_name), service)
    user = _struct({"name": g["db_user"]}, S.USER, pc.is_valid(g["db_user"]))
    called_any = [c for c in (called, g["db_system"], g["messaging_system"]) if c.null_count < n]
    api_service = pc.if_else(outbound, _coalesce(*called_any, service), service) if called_any else service
    cols.update(
        time=start,
        start_time=start,
        end_time=end,
        duration=dur,
        status_code=code_name,
        message=_coalesce(g["status_message"], g["name"]),
        metadata=_metadata(S.METADATA_SPAN, n, uid, service, None, source, provider, g["trace_id"], None),
        observables=_observables(n, [
            ("src_endpoint.ip", 2, only(inbound, caller_ip)),
            ("dst_endpoint.ip", 2, only(outbound, peer_ip)),
            ("dst_endpoint.hostname", 1, only(outbound, g["server_address"])),
            ("actor.user.name", 4, g["db_user"]),
            ("http_request.url.url_string", 6, url_string),
            ("http_request.user_agent", 16, g["user_agent"]),
            # (not the span's own host and trace id: every span has them, in unmapped.host and
            # trace.uid / metadata.correlation_uid; repeating them costs ~10% of the conversion)
        ]),
        unmapped=_struct(
            {"service": service, "host": host, "region": g["region"], "kind": kind_name, "scope": g["scope"],
             "http_route": g["http_route"], "db_system": g["db_system"], "db_statement": g["db_statement"],
             "db_name": g["db_name"], "db_user": g["db_user"], "messaging_system": g["messaging_system"],
             "duration_ms": g["duration_ms"], "attributes": g["attributes"], "resource": resource,
             "trace_state": g["trace_state"], "events": g["events"], "links": g["links"]},
            S.UNMAPPED_SPAN, None,
        ),
        http_request=_struct({"http_method": method, "url": url, "user_agent": g["user_agent"],
                              "version": g["http_version"]}, S.HTTP_REQUEST, pc.is_valid(method)),
        http_response=_struct({"code": http_status}, S.HTTP_RESPONSE, pc.is_valid(http_status)),
        src_endpoint=src_ep,
        dst_endpoint=dst_ep,
        trace=_struct({"uid": g["trace_id"], "span": span, "service": own, "flags": _trace_flags(g["flags"])},
                      _type(S.OCSF_TRACES, "trace"), None),
        actor=_struct({"app_name": actor_app, "user": user}, S.ACTOR,
                      pc.and_(pc.invert(is_http), pc.or_(pc.is_valid(actor_app), pc.is_valid(g["db_user"])))),
        api=_struct({"operation": g["name"], "service": _struct({"name": api_service}, S.NAME_ONLY, None)},
                    _type(S.OCSF_TRACES, "api"), pc.invert(is_http)),
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
    # the reporting product is Prometheus; the exporter it scraped (its job) and instance report it
    product = _const(n, "Prometheus" if provider == "prometheus" else provider, pa.string())
    job = _map_value(g["labels"], "job")
    reporter = _struct({"name": job, "hostname": g["host"]}, S.REPORTER,
                       pc.or_(pc.is_valid(job), pc.is_valid(g["host"])))
    cols.update(
        time=g["time_ms"],
        message=g["metric"],
        metadata=_metadata(S.METADATA_METRIC, n, uid, product, None, source, provider, None, None, reporter),
        observables=_observables(n, [("unmapped.host", 1, g["host"])]),
        unmapped=_struct(
            {"service": g["service"], "host": g["host"], "region": g["region"], "metric": g["metric"],
             "value": g["value"], "unit": g["unit"], "query": g["query"], "labels": g["labels"]},
            S.UNMAPPED_METRIC, None,
        ),
    )
    return _finish(cols, S.OCSF_METRICS, n)
