"""``docker compose logs`` output -> FLAT_LOG record batches, streaming.

A record is one non-blank line. Good lines are ``<container> | <payload>`` (after removing ANSI
colour codes and a BOM; any padding; v1 ``name_1``, v2 ``name-1`` or fixed container names;
an RFC 3339 time first when ``--timestamps`` was used). The payload is a JSON log object (our
services, but also other key names: ``msg``, ``s``, ``t.$date``, ``log_type``) or plain text.
Rejected: unprefixed lines ("Attaching to ...", prompts), JSON objects with no usable time.

Time of a plain-text line: the ``--timestamps`` prefix, else a timestamp near the start of the
text, else the last time seen earlier in the file (or the first one seen later, for leading
lines; the file's mtime if the file has none): ``unmapped.time_inferred`` marks those.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

import numpy as np
import orjson
import pyarrow as pa

from obslab.ocsf import _tables as T
from obslab.ocsf.flat import FLAT_LOG
from obslab.ocsf.report import ConversionReport
from obslab.ocsf.textio import CHUNK_BYTES, iter_blocks
from obslab.ocsf.timeparse import any_time_ms, parse_iso_ms, search_time_ms

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
PREFIX = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.\-]*)\s*\|(?: (.*)|)$", re.S)
REPLICA = re.compile(r"[-_][1-9]\d*$")
TS_PREFIX = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}) ?")
TEXT_LEVEL = re.compile(r"\b(" + "|".join(T.TEXT_LEVELS) + r")\b", re.I)
ACCESS = re.compile('"(' + "|".join(T.HTTP_METHODS) + r') (\S+)[^"]*" (\d{3})\b')
# the NGINX/Apache "combined" format: client, user, [time], "request", status, bytes, referer, agent
COMBINED = re.compile(r'^(\S+) \S+ (\S+) \[[^\]]*\] "[A-Z]+ \S+(?: HTTP/([0-9.]+))?" \d{3} \S+ "[^"]*" "([^"]*)"')
LIFECYCLE = re.compile(T.phrase_regex(T.LIFECYCLE_PHRASES))
ERROR_TEXT = re.compile(r"\b(" + "|".join(re.escape(p) for p in T.ERROR_PHRASES) + ")")

G = T.LOG_KEY_GROUPS
TIME_KEYS = G["time"]
LEVEL_KEYS = G["level"]
MESSAGE_KEYS = G["message"]
LOGGER_KEYS = G["logger"]
SHORT_LEVELS = T.SHORT_LEVELS
EVENTS = set(T.LOG_EVENTS)
KNOWN_KEYS = frozenset(k for group in G.values() for k in group) | frozenset(T.LOG_SINGLE_KEYS)
KEEP_KEYS = frozenset(T.LOG_KEEP_KEYS)
SAME_AS_SERVICE = frozenset(T.LOG_SAME_AS_SERVICE)


def _first(d: dict, keys):
    for k in keys:
        v = d.get(k)
        if v is not None and v != "":
            return v
    return None


def _level(value) -> str | None:
    if value is None:
        return None
    text = str(value).upper()
    if text.startswith("D") and len(text) <= 2:
        return "DEBUG"
    return SHORT_LEVELS.get(text, text)


def _int(value) -> int | None:
    try:
        v = int(value)
        return v if -2**31 <= v < 2**31 else None
    except (TypeError, ValueError):
        return None


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _str(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _extra(obj: dict):
    """The keys no column reads (and those read only in part), as (key, text) map entries."""
    out = [(k, _str(v)) for k, v in obj.items() if k not in KNOWN_KEYS or k in KEEP_KEYS]
    return out or None


class _Columns:
    def __init__(self):
        self.cols = {name: [] for name in FLAT_LOG.names}
        self.inferred: list[bool] = []

    def __len__(self):
        return len(self.inferred)

    def batch(self) -> tuple[pa.RecordBatch, pa.Array]:
        arrays = [pa.array(self.cols[f.name], type=f.type) for f in FLAT_LOG]
        inferred = pa.array(self.inferred, pa.bool_())
        self.cols = {name: [] for name in FLAT_LOG.names}
        self.inferred = []
        return pa.RecordBatch.from_arrays(arrays, schema=FLAT_LOG), inferred


def _json_record(obj: dict) -> dict:
    """Fields of a JSON log object, whatever its key names."""
    http = obj.get("http") if isinstance(obj.get("http"), dict) else {}
    method = _first(obj, G["http_method"]) or http.get("method")
    path = _first(obj, G["http_path"]) or http.get("path")
    status = _first(obj, G["http_status"]) or http.get("status")
    err = obj.get("error")
    err_type = _first(obj, G["error_type"])
    if err_type is None and isinstance(err, dict):
        err_type = err.get("type")
    return {
        "level": _level(_first(obj, LEVEL_KEYS)),
        "message": _str(_first(obj, MESSAGE_KEYS)),
        "logger": _str(_first(obj, LOGGER_KEYS)),
        "event": obj.get("event") if isinstance(obj.get("event"), str) and obj.get("event") in EVENTS else None,
        "host": _str(_first(obj, G["host"])),
        "region": _str(obj.get("region")),
        "trace_id": _str(_first(obj, G["trace_id"])),
        "span_id": _str(_first(obj, G["span_id"])),
        "http_method": str(method).upper() if method else None,
        "http_path": _str(path),
        "http_status": _int(status),
        "duration_ms": _float(_first(obj, G["duration_ms"])),
        "error_type": _str(err_type),
        "client_ip": _str(_first(obj, G["client_ip"])),
        "user_agent": _str(_first(obj, G["user_agent"])),
        "http_version": _str(_first(obj, G["http_version"])),
        "extra": _extra(obj),
        "same_as_service": {k: obj[k] for k in SAME_AS_SERVICE if isinstance(obj.get(k), str)},
    }


def _text_record(text: str) -> dict:
    head = text[:120]
    m = TEXT_LEVEL.search(head)
    rec = {"level": m.group(1).upper().replace("WARNING", "WARN") if m else None, "message": text}
    a = ACCESS.search(text)
    if a is not None:
        rec.update(http_method=a.group(1), http_path=a.group(2).split("?", 1)[0], http_status=int(a.group(3)),
                   event="access")
        c = COMBINED.match(text)
        if c is not None:
            rec.update(client_ip=c.group(1), user_name=None if c.group(2) == "-" else c.group(2),
                       http_version=c.group(3), user_agent=None if c.group(4) == "-" else c.group(4))
    return rec


def _classify(rec: dict) -> str:
    if rec.get("event"):
        return rec["event"]
    if rec.get("http_method") and rec.get("http_status") is not None:
        return "access"
    level = rec.get("level")
    msg = rec.get("message") or ""
    if level in T.ERROR_LEVELS or (level is None and ERROR_TEXT.search(msg[:200])):
        return "error"
    if LIFECYCLE.search(msg[:200]):
        return "lifecycle"
    return "other"


FIELDS = ("level", "message", "logger", "event", "host", "region", "trace_id", "span_id", "http_method",
          "http_path", "http_status", "duration_ms", "error_type", "client_ip", "user_agent", "http_version",
          "user_name", "extra")


def _no_cr(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\r") else line


# reasons the compiled reader gives for lines it rejects itself start with this
REJECTED = "reject:"


class _Reader:
    """The per-line reference reader: rows in ``out``, and the time state that spans lines
    (the last time seen; rows before the first time, backfilled once one is seen)."""

    def __init__(self, report: ConversionReport):
        self.report = report
        self.out = _Columns()
        self.last_time = None
        self.pending: list[int] = []

    def saw_times(self, first: int, last: int) -> None:
        """Rows read elsewhere (the compiled reader) had times ``first`` .. ``last``."""
        cols = self.out.cols
        for row in self.pending:
            cols["time_ms"][row] = first
        self.pending.clear()
        self.last_time = last

    def reject(self, reason: str, raw: bytes, line_no: int) -> None:
        """A line the compiled reader rejected, recorded as :meth:`line` records it."""
        line = raw.decode("utf-8", "replace")
        self.report.records_in += 1
        self.report.reject(reason, line_no, ANSI.sub("", line) if "\x1b" in line else line)

    def line(self, raw: bytes, line_no: int) -> None:
        """One line: a row, a rejection, or nothing (blank)."""
        report = self.report
        line = raw.decode("utf-8", "replace")
        if "\x1b" in line:
            line = ANSI.sub("", line)
        if not line.strip():
            return
        report.records_in += 1
        m = PREFIX.match(line)
        if m is None:
            report.reject("no '<service> |' prefix", line_no, line)
            return
        container, payload = m.group(1), m.group(2) or ""
        t = None
        if payload[:2].isdigit():
            tm = TS_PREFIX.match(payload)
            if tm is not None:
                t = parse_iso_ms(tm.group(0))
                payload = payload[tm.end():]
        rec = None
        stripped = payload.lstrip()
        if stripped.startswith("{"):
            try:
                obj = orjson.loads(stripped)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                jt = any_time_ms(_first(obj, TIME_KEYS))
                if jt is None and t is None:
                    report.reject("JSON log without a usable time", line_no, line)
                    return
                t = jt if jt is not None else t
                rec = _json_record(obj)
        if rec is None:
            rec = _text_record(payload)
            if t is None:
                t = search_time_ms(payload)
        self._row(rec, t, container, payload, line_no)

    def _row(self, rec: dict, t, container: str, payload: str, line_no: int) -> None:
        out, cols = self.out, self.out.cols
        inferred = t is None
        if inferred:
            if self.last_time is None:
                self.pending.append(len(out))
                t = 0
            else:
                t = self.last_time
        else:
            self.saw_times(t, t)
        cols["time_ms"].append(t)
        service = REPLICA.sub("", container)
        cols["service"].append(service)
        cols["container"].append(container)
        same = rec.get("same_as_service")
        if same and rec.get("extra"):  # (string values only, as the compiled reader compares them)
            rec["extra"] = [(k, v) for k, v in rec["extra"] if same.get(k) != service] or None
        for f in FIELDS:
            cols[f].append(rec.get(f))
        cols["event"][-1] = _classify(rec)
        cols["payload"].append(payload)
        cols["line_no"].append(line_no)
        out.inferred.append(inferred)
        self.report.records_out += 1
        if inferred:
            self.report.notes["time_inferred"] += 1

    def merge(self, batch: pa.RecordBatch, refused: list, block, inferred_rows=None
              ) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
        """A compiled block's rows with its refused lines read here, in line order
        (``inferred_rows``: its rows that took the time of the row before them)."""
        flags = np.zeros(batch.num_rows, dtype=bool)
        if inferred_rows is not None and len(inferred_rows):
            flags[np.asarray(inferred_rows)] = True
            self.report.notes["time_inferred"] += len(inferred_rows)
        fallback = [why for _, why in refused if not why.startswith(REJECTED)]
        if fallback:
            self.report.notes["native_line_fallback"] += len(fallback)
            self.report.notes.setdefault("native_line_fallback_reason", fallback[0])
        line_nos = batch.column("line_no").to_numpy()
        times = batch.column("time_ms").to_numpy()
        # (the block split once, line ends removed only from the lines read here: textio's
        # Block.lines strips every line of a block with any CR)
        done, lines, first_no = 0, block.data.split(b"\n") if refused else None, block.first_line_no
        for index, why in refused:  # (the time state of each refused line: the rows before it)
            if why.startswith(REJECTED):  # rejected by the compiled reader: counted here, in order
                self.reject(why[len(REJECTED):], _no_cr(lines[index]), first_no + index)
                continue
            k = int(np.searchsorted(line_nos, first_no + index))
            if k > done:
                self.saw_times(int(times[done]), int(times[k - 1]))
                done = k
            self.line(_no_cr(lines[index]), first_no + index)
        if done < batch.num_rows:
            self.saw_times(int(times[done]), int(times[-1]))
        if not len(self.out):
            if batch.num_rows:
                yield batch, pa.array(flags)
        elif not self.pending:  # (a block of blank or untimed lines leaves pending rows in place)
            own, inferred = self.out.batch()
            if not batch.num_rows:
                yield own, inferred
                return
            table = pa.Table.from_batches([own, batch]).combine_chunks()
            flags = pa.concat_arrays([inferred, pa.array(flags)])
            order = np.argsort(table.column("line_no").to_numpy(), kind="stable")
            if (np.diff(order) < 0).any():
                table, flags = table.take(order).combine_chunks(), flags.take(pa.array(order))
            yield table.to_batches()[0], flags


def read_compose_logs(path: str | os.PathLike, report: ConversionReport | None = None,
                      chunk_bytes: int = CHUNK_BYTES, fast: bool = True
                      ) -> Iterator[tuple[pa.RecordBatch, pa.Array]]:
    """Stream ``(FLAT_LOG batch, time_inferred bool array)`` pairs from a Compose log file.

    With the extension built, each block goes to the compiled parser (:func:`_native_block`),
    which leaves the lines it cannot reproduce exactly to the per-line reader here (the
    reference; ``fast=False``: every line), counted in ``notes["native_line_fallback"]``.
    """
    from obslab.ocsf import native
    report = report if report is not None else ConversionReport()
    report.source = report.source or os.fspath(path)
    report.signal = report.signal or "logs"
    if os.path.getsize(path) == 0:
        report.problem("empty file")
        return
    enc: list = []
    reader = _Reader(report)
    use_native = fast and native.available()
    for block in iter_blocks(path, chunk_bytes, enc):
        first_no = block.first_line_no
        if enc and enc[0].startswith("utf-16"):
            report.notes["decoded_" + enc[0]] = 1
        if use_native:
            refused: list = []
            inferred: list = []
            batch = report.fast_block(_native_block, block.data, first_no, refused, inferred, reader.last_time)
            if batch is not None:
                yield from reader.merge(batch, refused, block, inferred[0] if inferred else None)
                continue
        out = reader.out
        for i, raw in enumerate(block.lines):
            reader.line(raw, first_no + i)
            if len(out) >= 65536 and not reader.pending:
                yield out.batch()
    out = reader.out
    if reader.pending:  # no time anywhere before the end of the file
        mtime = int(os.path.getmtime(path) * 1000)
        for row in reader.pending:
            out.cols["time_ms"][row] = mtime
        report.notes["time_from_file_mtime"] += len(reader.pending)
    if len(out):
        yield out.batch()


def _native_block(data: bytes, first_line_no: int, refused: list | None = None,
                  inferred: list | None = None, last_time: int | None = None) -> pa.RecordBatch:
    """FLAT_LOG rows of a block by the compiled parser (native/compose.cpp), which appends the
    lines it leaves to the Python reader to ``refused`` as (index in block, reason), and the
    indices of the rows whose time it inferred (the row before's, or ``last_time`` before the
    block's first timed row) to ``inferred``. Rows whose
    message regexes need Unicode rules come back with a null ``event``: :func:`_classify`
    decides those."""
    from obslab.ocsf import native
    from obslab.ocsf.flat import to_batch

    cols = native.call("parse_compose_block", data, first_line_no, refused, last_time)
    if inferred is not None:
        inferred.append(cols["inferred_rows"].to_numpy(zero_copy_only=False))
    event = cols["event"]
    if event.null_count:
        todo = np.flatnonzero(np.asarray(event.is_null()))
        take = pa.array(todo)
        level, message, method, status = (cols[k].take(take).to_pylist()
                                          for k in ("level", "message", "http_method", "http_status"))
        values = event.to_pylist()
        for j, row in enumerate(todo):
            values[row] = _classify({"level": level[j], "message": message[j], "http_method": method[j],
                                     "http_status": status[j]})
        cols["event"] = pa.array(values, pa.string())
    return to_batch(cols, FLAT_LOG)
