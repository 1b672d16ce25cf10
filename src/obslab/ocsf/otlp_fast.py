"""Vectorised OTLP JSON-lines block parser (the fast path of :mod:`obslab.ocsf.otlp`).

A block of canonical OTLP JSON lines (camelCase, the Collector's and SDK file exporters' shape)
is parsed by Arrow's C++ JSON reader and flattened with list/struct kernels: no Python per span.
Anything unusual in a block (snake_case, enum names, bad ids, missing times, nested attribute
values, another signal, a line that is not JSON) raises :class:`Unsupported` and the caller
re-parses that block with the per-span Python path, which handles and accounts for every case.
Both paths produce identical FLAT_SPAN columns for the inputs the fast path accepts.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from obslab.ocsf.compose_fast import has_any_byte, json_block_size
from obslab.ocsf.flat import FLAT_SPAN, to_batch
from obslab.ocsf.report import Unsupported
from obslab.ocsf.otlp import ATTR_COLUMNS

MARKER_RE = r"^(?:anomaly\.|.*x-anomaly-)(?P<m>type|label|root[-_]cause|msg)$"
SIMPLE_VALUES = ("stringValue", "intValue", "doubleValue", "boolValue")


INT_NUMBER = re.compile(rb'"intValue"\s*:\s*(-?\d+)')


def _field(arr, name: str, n: int | None = None, type_=pa.string()):
    """Child ``name`` of a struct array, or nulls when the JSON never had that key."""
    if arr is not None and pa.types.is_struct(arr.type) and arr.type.get_field_index(name) >= 0:
        child = pc.struct_field(arr, name)
        return child
    return pa.nulls(len(arr) if n is None else n, type_)


def _as_int(a):
    if pa.types.is_integer(a.type):
        return a.cast(pa.int64())
    if pa.types.is_string(a.type) or pa.types.is_null(a.type):
        try:
            return pc.cast(a, pa.int64())
        except pa.ArrowInvalid as exc:
            raise Unsupported(f"int64 text: {exc}") from None
    raise Unsupported(f"unexpected type {a.type}")


def _as_str(a):
    if pa.types.is_string(a.type):
        return a
    if pa.types.is_null(a.type) or pa.types.is_integer(a.type) or pa.types.is_floating(a.type):
        return pc.cast(a, pa.string())
    if pa.types.is_boolean(a.type):
        return pc.if_else(a, "true", "false")
    raise Unsupported(f"unexpected type {a.type}")


def _per_parent(values, parents, n: int, type_):
    """Scatter ``values`` (one per chosen child row) to their ``parents`` rows; first wins."""
    if len(parents) == 0:
        return pa.nulls(n, type_)
    p = np.asarray(parents.to_numpy(zero_copy_only=False), dtype=np.int64)
    idx = np.full(n, -1, dtype=np.int64)
    idx[p[::-1]] = np.arange(len(p) - 1, -1, -1)  # written in reverse, so the first occurrence stays
    take = pa.array(idx, mask=idx < 0)
    return pc.take(values, take).cast(type_)


def _value_text(value, n):
    """AnyValue struct -> (text for the column, JSON text for the attributes object)."""
    if value is None or not pa.types.is_struct(value.type):
        raise Unsupported("attribute value is not an object")
    extra = [f.name for f in value.type if f.name not in SIMPLE_VALUES]
    s = _field(value, "stringValue", n)
    i = _field(value, "intValue", n)
    d = _field(value, "doubleValue", n, pa.float64())
    b = _field(value, "boolValue", n, pa.bool_())
    si, sd, sb = _as_str(i), _as_str(d), _as_str(b)
    text = pc.coalesce(_as_str(s), si, sd, sb)
    escaped = s
    if not pa.types.is_string(s.type) or has_any_byte(s, b'\\"'):  # most blocks need no escaping
        escaped = pc.replace_substring(pc.replace_substring(s, "\\", "\\\\"), '"', '\\"')
    as_json = pc.coalesce(pc.binary_join_element_wise('"', escaped, '"', ""), si, sd, sb)
    complex_rows = None
    for name in extra:
        present = pc.is_valid(pc.struct_field(value, name))
        complex_rows = present if complex_rows is None else pc.or_(complex_rows, present)
    return text, as_json, complex_rows


def _read(data: bytes, longest: int) -> pa.Table:
    options = pj.ReadOptions(use_threads=False, block_size=json_block_size(longest))
    return pj.read_json(io.BytesIO(data), read_options=options)


def parse_block(lines: list[bytes]) -> pa.RecordBatch:
    """FLAT rows of a block of lines; raises Unsupported when the general parser must do it."""
    try:
        return _parse_block(lines)
    except Unsupported:
        raise
    except (pa.ArrowException, ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        # the fast path is an optimisation: any surprise sends the block to the general parser
        raise Unsupported(f"{type(exc).__name__}: {str(exc)[:80]}") from None


def _parse_block(lines: list[bytes]) -> pa.RecordBatch:
    """FLAT_SPAN rows of a block of OTLP JSON lines; raises Unsupported for the slow path."""
    body = [line.strip() for line in lines if line.strip()]
    # Arrow's JSON reader must only see objects (pyarrow 26 crashes on a bare "null" line)
    if not all(line[:1] == b"{" and line[-1:] == b"}" for line in body):
        raise Unsupported("a line is not a JSON object")
    data = b"\n".join(body)
    longest = max(map(len, body), default=0)
    if not data:
        return pa.RecordBatch.from_pylist([], schema=FLAT_SPAN)
    try:
        table = _read(data, longest)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if b'"intValue"' not in data:
            raise Unsupported(str(exc)[:100]) from None
        # Node writes intValue as a JSON number, Python as a string: one block may hold both
        try:
            fixed = INT_NUMBER.sub(rb'"intValue":"\1"', data)
            table = _read(fixed, longest + (len(fixed) - len(data)))  # (quotes added: bound the longest)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc2:
            raise Unsupported(str(exc2)[:100]) from None
    if table.column_names != ["resourceSpans"]:
        raise Unsupported("other top-level keys")
    rs_list = table.column("resourceSpans").combine_chunks()
    if rs_list.null_count or not pa.types.is_list(rs_list.type):
        raise Unsupported("line without resourceSpans")
    rs = pc.list_flatten(rs_list)
    n_rs = len(rs)
    res_attrs = _field(_field(rs, "resource", n_rs, pa.struct([])), "attributes", n_rs, pa.list_(pa.struct([])))
    service = pa.nulls(n_rs, pa.string())
    host = region = service
    if pa.types.is_list(res_attrs.type) and len(pc.list_flatten(res_attrs)):
        ra = pc.list_flatten(res_attrs)
        rp = pc.list_parent_indices(res_attrs)
        key = _field(ra, "key", len(ra))
        val = _as_str(_field(_field(ra, "value", len(ra), pa.struct([])), "stringValue", len(ra)))
        cols = {}
        for name, keys in (("service", ["service.name"]), ("host", ["host.name", "k8s.pod.name"]),
                           ("region", ["cloud.region", "region"])):
            out = pa.nulls(n_rs, pa.string())
            for k in reversed(keys):  # the first listed key wins
                m = pc.equal(key, k)
                got = _per_parent(pc.filter(val, m), pc.filter(rp, m), n_rs, pa.string())
                out = pc.coalesce(got, out)
            cols[name] = out
        service, host, region = cols["service"], cols["host"], cols["region"]
    service = pc.fill_null(service, "unknown_service")
    ss_list = _field(rs, "scopeSpans", n_rs, pa.list_(pa.struct([])))
    if not pa.types.is_list(ss_list.type):
        raise Unsupported("scopeSpans")
    ss = pc.list_flatten(ss_list)
    ss_rs = pc.list_parent_indices(ss_list)
    spans_list = _field(ss, "spans", len(ss), pa.list_(pa.struct([])))
    if not pa.types.is_list(spans_list.type):
        raise Unsupported("spans")
    sp = pc.list_flatten(spans_list)
    n = len(sp)
    if n == 0:
        if len(lines) and any(line.strip() for line in lines):
            raise Unsupported("no spans")  # let the slow path say what the lines were
        return pa.RecordBatch.from_pylist([], schema=FLAT_SPAN)
    sp_ss = pc.list_parent_indices(spans_list)
    sp_rs = pc.take(ss_rs, sp_ss)
    scope = pc.take(_field(_field(ss, "scope", len(ss), pa.struct([])), "name", len(ss)), sp_ss)

    trace_id = pc.utf8_lower(_as_str(_field(sp, "traceId", n)))
    span_id = pc.utf8_lower(_as_str(_field(sp, "spanId", n)))
    parent = pc.utf8_lower(_as_str(_field(sp, "parentSpanId", n)))
    if not pc.all(pc.fill_null(pc.match_substring_regex(trace_id, r"^[0-9a-f]{32}$"), False)).as_py():
        raise Unsupported("trace ids")
    if not pc.all(pc.fill_null(pc.match_substring_regex(span_id, r"^[0-9a-f]{16}$"), False)).as_py():
        raise Unsupported("span ids")
    if pc.any(pc.or_(pc.equal(trace_id, "0" * 32), pc.equal(span_id, "0" * 16))).as_py():
        raise Unsupported("all-zero ids")  # otlp.py rejects those spans and counts them
    parent = pc.if_else(pc.equal(pc.fill_null(parent, ""), "0" * 16), pa.scalar(None, pa.string()), parent)
    ok_parent = pc.or_(pc.is_null(parent), pc.or_(pc.equal(parent, ""), pc.match_substring_regex(parent, r"^[0-9a-f]{16}$")))
    if not pc.all(ok_parent).as_py():
        raise Unsupported("parent ids")
    parent = pc.if_else(pc.equal(pc.fill_null(parent, ""), ""), pa.scalar(None, pa.string()), parent)
    start = _as_int(_field(sp, "startTimeUnixNano", n))
    end = _as_int(_field(sp, "endTimeUnixNano", n))
    if start.null_count or not pc.all(pc.greater(start, 0)).as_py():
        raise Unsupported("start times")
    end = pc.if_else(pc.greater(pc.fill_null(end, 0), 0), end, start)
    kind = _field(sp, "kind", n, pa.int64())
    if not (pa.types.is_integer(kind.type) or pa.types.is_null(kind.type)):
        raise Unsupported("kind names")
    kind = pc.fill_null(kind.cast(pa.int64()), 0)
    kind = pc.if_else(pc.and_(pc.greater_equal(kind, 0), pc.less_equal(kind, 5)), kind, 0)
    status = _field(sp, "status", n, pa.struct([]))
    code = _field(status, "code", n, pa.int64())
    if not (pa.types.is_integer(code.type) or pa.types.is_null(code.type)):
        raise Unsupported("status names")
    code = pc.fill_null(code.cast(pa.int64()), 0)
    code = pc.if_else(pc.and_(pc.greater_equal(code, 0), pc.less_equal(code, 2)), code, 0)
    smsg = _as_str(_field(status, "message", n))
    smsg = pc.if_else(pc.equal(pc.fill_null(smsg, ""), ""), pa.scalar(None, pa.string()), smsg)
    name = pc.fill_null(_as_str(_field(sp, "name", n)), "")

    cols = {c: pa.nulls(n, pa.string()) for c in ATTR_COLUMNS}
    markers = {m: pa.nulls(n, pa.string()) for m in ("type", "label", "root_cause", "msg")}
    attributes = pa.nulls(n, pa.string())
    attrs = _field(sp, "attributes", n, pa.list_(pa.struct([])))
    if pa.types.is_list(attrs.type) and len(pc.list_flatten(attrs)):
        fa = pc.list_flatten(attrs)
        fp = pc.list_parent_indices(attrs)
        m_a = len(fa)
        key = _as_str(_field(fa, "key", m_a))
        if key.null_count:
            raise Unsupported("attribute without key")
        text, as_json, complex_rows = _value_text(_field(fa, "value", m_a, pa.struct([])), m_a)
        extracted = pa.array(np.zeros(m_a, dtype=bool))
        for col, keys in ATTR_COLUMNS.items():
            out = pa.nulls(n, pa.string())
            for k in reversed(keys):
                m = pc.equal(key, k)
                if pc.any(m).as_py():
                    out = pc.coalesce(_per_parent(pc.filter(text, m), pc.filter(fp, m), n, pa.string()), out)
                    extracted = pc.or_(extracted, m)
            cols[col] = out
        # the marker regex runs on the distinct keys only (a few dozen), then maps back
        keys_enc = key.dictionary_encode()
        distinct = pc.struct_field(pc.extract_regex(pc.utf8_lower(keys_enc.dictionary), MARKER_RE), "m")
        mk = pc.take(distinct, keys_enc.indices)
        is_marker = pc.is_valid(mk)
        if pc.any(is_marker).as_py():
            mk = pc.replace_substring(mk, "-", "_")
            for m_name in markers:
                m = pc.fill_null(pc.equal(mk, m_name), False)
                markers[m_name] = _per_parent(pc.filter(text, m), pc.filter(fp, m), n, pa.string())
            if pc.any(pc.and_(is_marker, pc.is_null(text))).as_py():
                raise Unsupported("marker with a nested value")
        rest = pc.invert(pc.or_(extracted, pc.fill_null(is_marker, False)))
        if complex_rows is not None and pc.any(pc.and_(rest, pc.fill_null(complex_rows, False))).as_py():
            raise Unsupported("nested attribute values")
        if pc.any(pc.and_(rest, pc.is_null(as_json))).as_py():
            raise Unsupported("attribute without a value")
        rk = pc.filter(key, rest)
        if pc.any(pc.match_substring_regex(rk, r'["\\\x00-\x1f]')).as_py():
            raise Unsupported("key needs escaping")
        rv = pc.filter(as_json, rest)
        if pc.any(pc.match_substring_regex(rv, r"[\x00-\x1f]")).as_py():
            raise Unsupported("control characters in a value")  # orjson escapes them (slow path)
        pairs = pc.binary_join_element_wise('"', rk, '":', rv, "")
        counts = np.bincount(np.asarray(pc.filter(fp, rest)), minlength=n)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), pairs), ",")
        obj = pc.binary_join_element_wise("{", joined, "}", "")
        attributes = pc.if_else(pa.array(counts > 0), obj, pa.scalar(None, pa.string()))
    status_num = cols["http_status"]
    try:
        http_status = pc.cast(status_num, pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise Unsupported("http status text") from None
    path = cols["http_path"]
    path = pc.replace_substring_regex(path, r"\?.*$", "")
    out = {
        "time_ms": pc.divide(start, 1_000_000),
        "end_time_ms": pc.divide(end, 1_000_000),
        "start_time_unix_nano": start,
        "duration_ms": pc.divide(pc.subtract(end, start).cast(pa.float64()), 1e6),
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent,
        "service": pc.take(service, sp_rs),
        "host": pc.take(host, sp_rs),
        "region": pc.take(region, sp_rs),
        "name": name,
        "kind": kind.cast(pa.int8()),
        "status_code": code.cast(pa.int8()),
        "status_message": smsg,
        "scope": pc.if_else(pc.equal(pc.fill_null(scope, ""), ""), pa.scalar(None, pa.string()), scope),
        "http_method": pc.utf8_upper(cols["http_method"]),
        "http_path": path,
        "http_route": cols["http_route"],
        "http_status": http_status,
        "server_address": cols["server_address"],
        "db_system": cols["db_system"],
        "db_statement": cols["db_statement"],
        "messaging_system": cols["messaging_system"],
        "attributes": attributes,
        "marker_type": markers["type"],
        "marker_label": markers["label"],
        "marker_root_cause": markers["root_cause"],
        "marker_msg": markers["msg"],
    }
    return to_batch(out, FLAT_SPAN)
