"""Vectorised block parser for Compose log lines with JSON payloads (fast path of compose.py).

Handles the common case, our services' output: every non-blank line of the block is
``<container> | {json with a parseable ISO time}``. Prefix split, ANSI removal, JSON parsing
(Arrow's C++ reader), time parsing and classification run as Arrow kernels. Anything else in a
block (plain-text payloads, ``--timestamps``, unprefixed lines, JSON without time or with
types Arrow cannot unify) raises :class:`Unsupported` and the block goes through the general
per-line parser, which produces the same columns.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from obslab.ocsf import compose as C
from obslab.ocsf.flat import FLAT_LOG, to_batch
from obslab.ocsf.report import Unsupported

PREFIX_RE = r"^(?P<container>[A-Za-z0-9][A-Za-z0-9_.\-]*)\s*\|(?: (?P<payload>.*))?$"
HEAD_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*\s*$"  # PREFIX_RE up to its "|"
ANSI_RE = r"\x1b\[[0-9;?]*[A-Za-z]"
ERROR_LEVELS = ["ERROR", "FATAL", "CRITICAL", "PANIC"]


def _first_col(table: pa.Table, keys, n: int):
    """The first of ``keys`` present as a column, coalesced in key order (like compose._first)."""
    out = None
    for k in keys:
        if k in table.column_names:
            col = table.column(k).combine_chunks()
            if pa.types.is_struct(col.type) or pa.types.is_list(col.type):
                raise Unsupported(f"nested {k}")
            if not pa.types.is_string(col.type):
                col = pc.cast(col, pa.string()) if not pa.types.is_null(col.type) else pa.nulls(n, pa.string())
            col = pc.if_else(pc.equal(col, ""), pa.scalar(None, pa.string()), col)
            out = col if out is None else pc.coalesce(out, col)
    return out if out is not None else pa.nulls(n, pa.string())


def _time_ms(table: pa.Table, n: int):
    """Epoch ms from the first time key present (ISO text, or a timestamp Arrow inferred)."""
    out = None
    for k in C.TIME_KEYS:
        if k not in table.column_names:
            continue
        col = table.column(k).combine_chunks()
        try:
            if pa.types.is_timestamp(col.type):
                ts = col.cast(pa.timestamp("ns", tz=col.type.tz or "UTC"))
            elif pa.types.is_string(col.type):
                ts = pc.cast(col, pa.timestamp("ns", tz="UTC"))
            elif pa.types.is_null(col.type):
                continue
            else:
                raise Unsupported(f"time of type {col.type}")
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise Unsupported("time format") from None
        ms = pc.divide(ts.cast(pa.int64()), 1_000_000)
        out = ms if out is None else pc.coalesce(out, ms)
    if out is None or out.null_count:
        raise Unsupported("JSON without a time")
    return out


def json_block_size(longest_line: int) -> int:
    """Arrow JSON reader block size: 1 MB blocks parse faster than one huge block (cache), and
    twice the longest line keeps every object inside one block (types are unified across
    blocks just as within one)."""
    return max(1 << 20, 2 * longest_line + 2)


def _binary_array(lines: list[bytes]) -> pa.Array:
    """``pa.array(lines, pa.binary())`` from one join and numpy offsets (several times faster
    than converting a million bytes objects one by one)."""
    lengths = np.fromiter(map(len, lines), dtype=np.int64, count=len(lines))
    offsets = np.zeros(len(lines) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] >= 2**31:
        return pa.array(lines, pa.binary())
    data = b"".join(lines)
    return pa.Array.from_buffers(pa.binary(), len(lines), [None, pa.py_buffer(offsets.astype(np.int32)),
                                                           pa.py_buffer(data)])


def has_any_byte(arr: pa.Array, chars: bytes) -> bool:
    """Whether any of ``chars`` occurs in a string/binary array's data buffer: one memchr per
    char instead of a string kernel. The whole buffer is scanned (also bytes outside a slice):
    a false yes only costs the kernel it saves."""
    data = arr.buffers()[2]
    if data is None:
        return False
    raw = data.to_pybytes()
    return any(bytes([c]) in raw for c in chars)


def _split_prefix(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """``(container, payload)`` as PREFIX_RE extracts them, without running it on whole lines.

    The container name and the spaces after it cannot contain ``|``, so PREFIX_RE's separator is
    the first ``|``: split there, check the short head with the regex's head part, and take the
    payload after the single space.
    """
    # usual case: every line has "| " (a head without "|" makes it the first "|")
    two = _split_two(text, "| ")
    if two is not None:
        head, payload = two
    else:  # some line ends at its "|": split on "|", then drop the one space
        two = _split_two(text, "|")
        if two is None:
            raise Unsupported("unprefixed line")
        head, rest = two
        if not pc.all(pc.or_(pc.equal(rest, ""), pc.starts_with(rest, " "))).as_py():
            raise Unsupported("unprefixed line")
        payload = pc.utf8_slice_codeunits(rest, 1)  # "" when nothing follows, as extract_regex gives
    if not pc.all(pc.match_substring_regex(head, HEAD_RE)).as_py():
        raise Unsupported("unprefixed line")
    return pc.utf8_rtrim_whitespace(head), payload


def _split_two(text: pa.Array, sep: str) -> tuple[pa.Array, pa.Array] | None:
    """(before, after) the first ``sep`` of every row, or None when a row lacks it."""
    pieces = pc.split_pattern(text, sep, max_splits=1)
    if pc.any(pc.less(pc.list_value_length(pieces), 2)).as_py():
        return None
    # every row has exactly two pieces: they alternate in the flat values (take is much
    # faster than list_element here)
    both = pc.list_flatten(pieces)
    even = np.arange(0, len(both), 2, dtype=np.int64)
    return both.take(pa.array(even)), both.take(pa.array(even + 1))


def parse_block(lines: list[bytes], first_line_no: int) -> pa.RecordBatch:
    """FLAT rows of a block of lines; raises Unsupported when the general parser must do it."""
    try:
        return _parse_block(lines, first_line_no)
    except Unsupported:
        raise
    except (pa.ArrowException, ValueError, TypeError, IndexError, KeyError, OverflowError) as exc:
        # the fast path is an optimisation: any surprise sends the block to the general parser
        raise Unsupported(f"{type(exc).__name__}: {str(exc)[:80]}") from None


def _parse_block(lines: list[bytes], first_line_no: int) -> pa.RecordBatch:
    n_all = len(lines)
    arr = _binary_array(lines)
    try:
        text = arr.cast(pa.string())
    except pa.ArrowInvalid:
        raise Unsupported("invalid UTF-8") from None
    line_no = pa.array(np.arange(first_line_no, first_line_no + n_all, dtype=np.int64))
    if has_any_byte(arr, b"\n"):
        raise Unsupported("line break inside a line")  # PREFIX_RE's ``.`` stops there
    if has_any_byte(arr, b"\x1b"):
        text = pc.replace_substring_regex(text, ANSI_RE, "")
    keep = pc.invert(pc.match_substring_regex(text, r"^\s*$"))
    if not pc.all(keep).as_py():  # (no copy in the usual block without blank lines)
        text, line_no = pc.filter(text, keep), pc.filter(line_no, keep)
    n = len(text)
    if n == 0:
        return pa.RecordBatch.from_pylist([], schema=FLAT_LOG)
    container, payload = _split_prefix(text)
    payload_s = pc.utf8_trim_whitespace(payload)
    if not pc.all(pc.and_(pc.starts_with(payload_s, "{"), pc.ends_with(payload_s, "}"))).as_py():
        raise Unsupported("plain-text payload")  # (Arrow's JSON reader must only see objects)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), payload_s), "\n")[0]
    data = joined.as_buffer()
    longest = pc.max(pc.binary_length(payload_s)).as_py() or 0
    try:
        table = pj.read_json(pa.BufferReader(data),
                             read_options=pj.ReadOptions(use_threads=False, block_size=json_block_size(longest)))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise Unsupported(str(exc)[:80]) from None
    if table.num_rows != n:
        raise Unsupported("payload is not one JSON object per line")
    if "http" in table.column_names:
        raise Unsupported("nested http object")
    time_ms = _time_ms(table, n)
    lvl = pc.utf8_upper(_first_col(table, C.LEVEL_KEYS, n))
    short = {k: v for k, v in C.SHORT_LEVELS.items()}
    keys = pa.array(list(short))
    mapped = pc.take(pa.array(list(short.values())), pc.index_in(lvl, value_set=keys))
    debug = pc.and_(pc.starts_with(pc.fill_null(lvl, ""), "D"), pc.less_equal(pc.utf8_length(pc.fill_null(lvl, "")), 2))
    level = pc.if_else(debug, "DEBUG", pc.coalesce(mapped, lvl))
    message = _first_col(table, C.MESSAGE_KEYS, n)
    method = pc.utf8_upper(_first_col(table, ("method", "http_method", "http.method", "http.request.method"), n))
    status_txt = _first_col(table, ("status", "status_code", "http_status", "http.status_code",
                                    "http.response.status_code"), n)
    try:
        status = pc.cast(status_txt, pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise Unsupported("status text") from None
    dur_txt = _first_col(table, ("duration_ms", "latency_ms", "elapsed_ms", "response_time_ms"), n)
    try:
        duration = pc.cast(dur_txt, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise Unsupported("duration text") from None
    event = _first_col(table, ("event",), n)
    event = pc.if_else(pc.is_in(event, value_set=pa.array(sorted(C.EVENTS))), event, pa.scalar(None, pa.string()))
    head = pc.utf8_slice_codeunits(pc.fill_null(message, ""), 0, 200)
    is_access = pc.and_(pc.is_valid(method), pc.is_valid(status))
    is_error = pc.or_(pc.is_in(level, value_set=pa.array(ERROR_LEVELS)),
                      pc.and_(pc.is_null(level), pc.match_substring_regex(head, C.ERROR_TEXT.pattern)))
    is_life = pc.match_substring_regex(head, C.LIFECYCLE.pattern.removeprefix("(?i)"), ignore_case=True)
    inferred = pc.if_else(is_access, "access", pc.if_else(is_error, "error", pc.if_else(is_life, "lifecycle", "other")))
    # the replica suffix regex runs once per distinct container name, then maps back
    names = container.dictionary_encode()
    service = pc.take(pc.replace_substring_regex(names.dictionary, r"[-_][1-9]\d*$", ""), names.indices)
    cols = {
        "time_ms": time_ms,
        "service": service,
        "container": container,
        "level": level,
        "message": message,
        "logger": _first_col(table, C.LOGGER_KEYS, n),
        "event": pc.coalesce(event, inferred),
        "host": _first_col(table, ("host", "hostname", "host.name"), n),
        "region": _first_col(table, ("region",), n),
        "trace_id": _first_col(table, ("trace_id", "traceId", "trace.id", "otelTraceID"), n),
        "span_id": _first_col(table, ("span_id", "spanId", "span.id", "otelSpanID"), n),
        "http_method": method,
        "http_path": _first_col(table, ("path", "http_path", "http.target", "url.path", "route"), n),
        "http_status": status,
        "duration_ms": duration,
        "error_type": _first_col(table, ("error_type", "error.type", "exc_type", "exception_type"), n),
        "payload": payload,
        "line_no": line_no,
    }
    return to_batch(cols, FLAT_LOG)
