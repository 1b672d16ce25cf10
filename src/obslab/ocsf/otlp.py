"""OTLP JSON traces -> FLAT_SPAN record batches, streaming.

Accepts what real exporters write: JSON lines (Collector file exporter, SDK file exporters) or
one (pretty-printed) document; camelCase or snake_case (proto) field names; int64 as strings or
numbers; span kind and status code as ints or enum names; upper/lower-case hex ids (base64 ids
are converted); old and current HTTP semantic-convention names. The record unit is one span;
a line that is not JSON, or JSON without spans that is not another known signal, is one
rejected record. Files of another kind (OTLP logs/metrics, Jaeger JSON) are reported as a
problem and yield nothing. ``anomaly.*`` / ``x-anomaly-*`` attributes go to ``marker_*``.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Iterator

import orjson
import pyarrow as pa

from obslab.ocsf import _tables as T
from obslab.ocsf.flat import FLAT_SPAN
from obslab.ocsf.report import ConversionReport
from obslab.ocsf.textio import CHUNK_BYTES, iter_blocks, read_all_text

CHUNK_SPANS = 65536
MAX_DOC_BYTES = 512 << 20

KIND_NAMES = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2,
              "SPAN_KIND_CLIENT": 3, "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
KIND_NAMES.update({k.removeprefix("SPAN_KIND_"): v for k, v in list(KIND_NAMES.items())})
STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2,
                "UNSET": 0, "OK": 1, "ERROR": 2}
# attribute key -> flat column (the first key present wins) and the marker names: _tables
ATTR_COLUMNS = T.SPAN_ATTR_COLUMNS
EXTRACTED = {k for keys in ATTR_COLUMNS.values() for k in keys}
MARKER_FIELDS = T.MARKER_FIELDS
RESOURCE_COLUMNS = frozenset(T.RESOURCE_COLUMNS)
OTHER_SIGNALS = {
    "resourceLogs": "OTLP logs (resourceLogs), not traces",
    "resource_logs": "OTLP logs (resource_logs), not traces",
    "resourceMetrics": "OTLP metrics (resourceMetrics), not traces",
    "resource_metrics": "OTLP metrics (resource_metrics), not traces",
}


class SpanError(ValueError):
    """One span that cannot be used (missing ids or times)."""


def _g(d: dict, camel: str, snake: str, default=None):
    v = d.get(camel)
    if v is None:
        v = d.get(snake, default)
    return v


def any_value(v):
    """OTLP AnyValue (camel or snake) -> Python value."""
    if not isinstance(v, dict):
        return v
    for key, val in v.items():
        if key in ("stringValue", "string_value"):
            return val
        if key in ("intValue", "int_value"):
            try:
                return int(val)
            except (TypeError, ValueError):
                return val
        if key in ("doubleValue", "double_value"):
            return float(val) if isinstance(val, (int, float, str)) else val
        if key in ("boolValue", "bool_value"):
            return bool(val)
        if key in ("arrayValue", "array_value"):
            return [any_value(x) for x in (val or {}).get("values", [])]
        if key in ("kvlistValue", "kvlist_value"):
            return attrs_to_dict((val or {}).get("values", []))
        if key in ("bytesValue", "bytes_value"):
            return val
    return None


def attrs_to_dict(attrs) -> dict:
    out = {}
    if not attrs:
        return out
    for a in attrs:
        if isinstance(a, dict) and "key" in a:
            out[a["key"]] = any_value(a.get("value"))
    return out


def norm_id(value, nbytes: int) -> str | None:
    """Lower-case hex id of ``nbytes`` bytes from hex (any case) or base64; None if unusable."""
    if not value or not isinstance(value, str):
        return None
    if len(value) == nbytes * 2:
        try:
            int(value, 16)
            return value.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == nbytes else None


def _nanos(value) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        try:
            return int(float(value))
        except (TypeError, ValueError):
            return None


def _enum(value, names: dict) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        if value.lstrip("-").isdigit():
            return int(value)
        return names.get(value.upper(), 0)
    return 0


def _marker_key(key: str) -> str | None:
    """'anomaly.type' / 'x-anomaly-type' / 'http.request.header.x-anomaly-type' -> 'type'."""
    k = key.lower()
    if k.startswith("anomaly."):
        name = k[8:]
    else:
        i = k.find("x-anomaly-")
        if i < 0:
            return None
        name = k[i + 10 :]
    name = name.replace("-", "_")
    return name if name in MARKER_FIELDS else None


class _Columns:
    """Column lists for one FLAT_SPAN batch."""

    def __init__(self):
        self.cols = {name: [] for name in FLAT_SPAN.names}

    def __len__(self):
        return len(self.cols["span_id"])

    def batch(self) -> pa.RecordBatch:
        arrays = [pa.array(self.cols[f.name], type=f.type) for f in FLAT_SPAN]
        self.cols = {name: [] for name in FLAT_SPAN.names}
        return pa.RecordBatch.from_arrays(arrays, schema=FLAT_SPAN)


def _text(value) -> str | None:
    """An attribute value as map text: strings as they are, other values as JSON."""
    if value is None:
        return None
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _entries(attrs: dict):
    """A dict as map entries (None when empty)."""
    return [(k, _text(v)) for k, v in attrs.items()] or None


def _resource_info(resource) -> tuple:
    attrs = attrs_to_dict((resource or {}).get("attributes"))
    service = attrs.get("service.name") or "unknown_service"
    host = attrs.get("host.name") or attrs.get("k8s.pod.name")
    region = attrs.get("cloud.region") or attrs.get("region")
    rest = _entries({k: v for k, v in attrs.items() if k not in RESOURCE_COLUMNS})
    return str(service), None if host is None else str(host), None if region is None else str(region), rest


def _events(s: dict) -> str | None:
    """Span events (exceptions, annotations) as one JSON array: name, time, attributes."""
    events = s.get("events")
    if not isinstance(events, list):
        return None
    out = [{"name": ev.get("name"), "time_unix_nano": _nanos(_g(ev, "timeUnixNano", "time_unix_nano")),
            "attributes": attrs_to_dict(ev.get("attributes")) or None} for ev in events if isinstance(ev, dict)]
    return orjson.dumps(out, option=orjson.OPT_NON_STR_KEYS).decode() if out else None


def _links(s: dict) -> str | None:
    """Span links as one JSON array: the linked trace and span ids, trace state, attributes."""
    links = s.get("links")
    if not isinstance(links, list):
        return None
    out = [{"trace_id": norm_id(_g(ln, "traceId", "trace_id"), 16), "span_id": norm_id(_g(ln, "spanId", "span_id"), 8),
            "trace_state": _g(ln, "traceState", "trace_state") or None,
            "attributes": attrs_to_dict(ln.get("attributes")) or None} for ln in links if isinstance(ln, dict)]
    return orjson.dumps(out, option=orjson.OPT_NON_STR_KEYS).decode() if out else None


def _add_span(cols: dict, s: dict, service, host, region, resource, scope) -> None:
    trace_id = norm_id(_g(s, "traceId", "trace_id"), 16)
    span_id = norm_id(_g(s, "spanId", "span_id"), 8)
    if trace_id is None:
        raise SpanError("missing or invalid traceId")
    if span_id is None:
        raise SpanError("missing or invalid spanId")
    if not trace_id.strip("0") or not span_id.strip("0"):  # all-zero ids are invalid (OTLP spec)
        raise SpanError("all-zero traceId or spanId")
    start = _nanos(_g(s, "startTimeUnixNano", "start_time_unix_nano"))
    if start is None or not 0 < start < 2**63:
        raise SpanError("missing or invalid startTimeUnixNano")
    end = _nanos(_g(s, "endTimeUnixNano", "end_time_unix_nano"))
    if end is None or not 0 < end < 2**63:
        end = start
    parent = norm_id(_g(s, "parentSpanId", "parent_span_id"), 8)
    if parent is not None and not parent.strip("0"):
        parent = None  # a parent of zeros means none: a root span
    status = s.get("status") or {}
    attrs = attrs_to_dict(s.get("attributes"))
    found = {}
    for col, keys in ATTR_COLUMNS.items():
        for k in keys:
            if k in attrs:
                found[col] = attrs[k]
                break
    markers = {}
    if attrs:
        for key in list(attrs):
            m = _marker_key(key)
            if m is not None:
                val = attrs.pop(key)
                markers[m] = val[0] if isinstance(val, list) and val else val
            elif key in EXTRACTED:
                del attrs[key]
    path = found.get("http_path")
    if isinstance(path, str) and "?" in path:
        path = path.split("?", 1)[0]
    code = found.get("http_status")
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    name = s.get("name")
    cols["time_ms"].append(start // 1_000_000)
    cols["end_time_ms"].append(end // 1_000_000)
    cols["start_time_unix_nano"].append(start)
    cols["duration_ms"].append((end - start) / 1e6)
    cols["trace_id"].append(trace_id)
    cols["span_id"].append(span_id)
    cols["parent_span_id"].append(parent)
    cols["service"].append(service)
    cols["host"].append(host)
    cols["region"].append(region)
    cols["name"].append(name if isinstance(name, str) else "")
    kind = _enum(s.get("kind"), KIND_NAMES)
    cols["kind"].append(kind if 0 <= kind <= 5 else 0)
    sc = _enum(status.get("code") if isinstance(status, dict) else None, STATUS_NAMES)
    cols["status_code"].append(sc if 0 <= sc <= 2 else 0)
    cols["status_message"].append((status.get("message") or None) if isinstance(status, dict) else None)
    cols["scope"].append(scope)
    m = found.get("http_method")
    cols["http_method"].append(str(m).upper() if m is not None else None)
    cols["http_path"].append(path if isinstance(path, str) else None)
    r = found.get("http_route")
    cols["http_route"].append(r if isinstance(r, str) else None)
    cols["http_status"].append(code if code is not None and -2**31 <= code < 2**31 else None)
    for col in T.SPAN_STRING_COLUMNS:
        v = found.get(col)
        cols[col].append(None if v is None else str(v))
    cols["attributes"].append(_entries(attrs))
    cols["resource"].append(resource)
    flags = s.get("flags")
    cols["flags"].append(flags if isinstance(flags, int) and not isinstance(flags, bool) and 0 <= flags < 2**32
                         else None)
    state = _g(s, "traceState", "trace_state")
    cols["trace_state"].append(state if isinstance(state, str) and state else None)
    cols["events"].append(_events(s))
    cols["links"].append(_links(s))
    for f in MARKER_FIELDS:
        v = markers.get(f)
        cols["marker_" + f].append(None if v is None else str(v))


def _scope_name(ss: dict) -> str | None:
    scope = ss.get("scope") or ss.get("instrumentationLibrary") or ss.get("instrumentation_library") or {}
    name = scope.get("name") if isinstance(scope, dict) else None
    return name or None


def _doc_spans(doc, report: ConversionReport, line_no, out: _Columns) -> None:
    """Add every span of one OTLP document; account for everything found in it."""
    if not isinstance(doc, dict):
        report.records_in += 1
        report.reject("JSON value is not an object", line_no, orjson.dumps(doc)[:200])
        return
    rss = _g(doc, "resourceSpans", "resource_spans")
    if rss is None:
        for key, what in OTHER_SIGNALS.items():
            if key in doc:
                report.problem(f"{what}: line {line_no} is another signal, nothing converted from it")
                report.notes["wrong_signal_lines"] += 1
                return
        if isinstance(doc.get("data"), list) and doc["data"] and isinstance(doc["data"][0], dict) \
                and "traceID" in doc["data"][0]:
            report.problem("Jaeger query-API JSON (data[].traceID/spans), not OTLP: nothing converted")
            report.notes["jaeger_spans_seen"] += sum(len(t.get("spans") or []) for t in doc["data"])
            return
        report.records_in += 1
        report.reject("JSON without resourceSpans", line_no, orjson.dumps(doc)[:200])
        return
    if not isinstance(rss, list):
        report.records_in += 1
        report.reject("resourceSpans is not a list", line_no)
        return
    cols = out.cols
    for rs in rss:
        if not isinstance(rs, dict):
            report.records_in += 1
            report.reject("resourceSpans entry is not an object", line_no)
            continue
        service, host, region, resource = _resource_info(rs.get("resource"))
        for ss in _g(rs, "scopeSpans", "scope_spans") or rs.get("instrumentationLibrarySpans") or []:
            if not isinstance(ss, dict):
                continue
            scope = _scope_name(ss)
            for s in ss.get("spans") or []:
                report.records_in += 1
                if not isinstance(s, dict):
                    report.reject("span is not an object", line_no)
                    continue
                n_before = len(cols["span_id"])
                try:
                    _add_span(cols, s, service, host, region, resource, scope)
                    report.records_out += 1
                except (SpanError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                    for c in cols.values():  # undo a half-added row
                        del c[n_before:]
                    report.reject(f"bad span: {exc}" if isinstance(exc, SpanError) else
                                  f"bad span: {type(exc).__name__}", line_no, orjson.dumps(s)[:200])


def read_otlp(path: str | os.PathLike, report: ConversionReport | None = None,
              chunk_spans: int = CHUNK_SPANS, fast: bool = True,
              chunk_bytes: int = CHUNK_BYTES) -> Iterator[pa.RecordBatch]:
    """Stream FLAT_SPAN batches from an OTLP JSON file (lines or one document).

    Blocks of JSON lines take the compiled parser when it is built (:func:`_native_block`);
    the lines it leaves (counted in ``notes["native_line_fallback"]``), and every line without
    the extension, are read span by span here by :func:`_read_line`, the reference
    (``fast=False``: always).
    """
    from obslab.ocsf import native

    report = report if report is not None else ConversionReport()
    report.source = report.source or os.fspath(path)
    report.signal = report.signal or "traces"
    out = _Columns()
    if os.path.getsize(path) == 0:
        report.problem("empty file")
        return
    first = True
    saw_content = False
    use_native = fast and native.available()
    for block in iter_blocks(path, chunk_bytes):
        first_no = block.first_line_no
        if first and use_native:  # JSON lines (not one pretty document)? then the fast path may try
            head = _first_line(block.data)
            try:
                orjson.loads(head) if head is not None else None
                first = head is None
            except orjson.JSONDecodeError:
                pass
            saw_content = saw_content or head is not None
        if use_native and not first:
            refused: list = []
            batch = report.fast_block(_native_block, block.data, refused)
            if batch is not None:
                yield from _flush(out, 1)
                merged = _merge(batch, refused, block, report, out)
                if merged.num_rows:
                    yield merged
                continue
        lines = block.lines
        for i, line in enumerate(lines):
            line_no = first_no + i
            read = _read_line(line, line_no, report, out)
            if read is None:
                continue
            if not read and first and os.path.getsize(path) <= MAX_DOC_BYTES:
                try:  # a pretty-printed single document
                    doc = orjson.loads(read_all_text(path))
                except orjson.JSONDecodeError:
                    pass
                else:
                    _doc_spans(doc, report, 1, out)
                    yield from _flush(out, 1)
                    return
            if not read:
                _reject_not_json(report, line_no, line)
            first = False
            saw_content = True
            if len(out) >= chunk_spans:
                yield out.batch()
    if not saw_content and first:
        report.problem("no content (blank file)")
    yield from _flush(out, 1)


def _read_line(line: bytes, line_no: int, report: ConversionReport, out: _Columns) -> bool | None:
    """One line's spans into ``out`` (the reference): True when read, False when it is not
    JSON (nothing counted yet: the caller decides), None for a blank line."""
    if not line.strip():
        return None
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    _doc_spans(doc, report, line_no, out)
    return True


def _reject_not_json(report: ConversionReport, line_no: int, line: bytes) -> None:
    report.records_in += 1
    report.reject("not JSON (malformed or truncated)", line_no, line)


def _merge(batch: pa.RecordBatch, refused: list, block, report: ConversionReport,
           out: _Columns) -> pa.RecordBatch:
    """A compiled block's rows with its refused lines read here, in line order (``out`` is
    empty on entry and on return)."""
    if not refused:
        return batch
    report.notes["native_line_fallback"] += len(refused)
    report.notes.setdefault("native_line_fallback_reason", refused[0][1])
    lines, first_no = block.lines, block.first_line_no
    order, done = [], 0  # row numbers in [batch rows, then the rows read here]
    for index, _, rows_before in refused:
        order.extend(range(done, rows_before))
        done = rows_before
        n_before = len(out)
        if _read_line(lines[index], first_no + index, report, out) is False:
            _reject_not_json(report, first_no + index, lines[index])
        order.extend(range(batch.num_rows + n_before, batch.num_rows + len(out)))
    order.extend(range(done, batch.num_rows))
    if not len(out):
        return batch
    table = pa.Table.from_batches([batch, out.batch()])
    return table.take(pa.array(order, pa.int64())).combine_chunks().to_batches()[0]


def _first_line(data: bytes) -> bytes | None:
    """The first non-blank line of a block (None if there is none)."""
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        line = data[start:end].strip()
        if line:
            return line
        start = end + 1
    return None


def _native_block(data: bytes, refused: list | None = None) -> pa.RecordBatch:
    """FLAT_SPAN rows of a block by the compiled parser (native/otlp.cpp). The lines it cannot
    reproduce exactly are left out and appended to ``refused`` as (index in block, reason,
    rows of the block's earlier lines); without that list they refuse the whole block."""
    from obslab.ocsf import native
    from obslab.ocsf.flat import to_batch

    return to_batch(native.call("parse_otlp_block", data, refused), FLAT_SPAN)


def _flush(out: _Columns, minimum: int):
    if len(out) >= minimum:
        yield out.batch()
