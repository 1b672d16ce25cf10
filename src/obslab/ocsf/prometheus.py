"""Prometheus range-query JSON -> FLAT_METRIC record batches.

Accepted shapes: our ``metrics.json`` bundle ``{"results": [{"name", "query", "unit",
"response"}]}`` (written by ``obslab.prom.export_range`` / export_prometheus_metrics.py), a
single ``/api/v1/query_range`` response, or a bare ``result`` list (``[{"metric", "values"}]``).
A record is one ``[timestamp, "value"]`` sample; ``"NaN"``, ``"+Inf"``, ``"-Inf"`` are real
values and kept. Error bodies (``status: error``) are reported as query errors, never as an
empty result. These are single JSON documents (one response per query), read whole; samples
are emitted in batches.
"""

from __future__ import annotations

import math
import os
from typing import Iterator

import orjson
import pyarrow as pa

from obslab.ocsf.flat import FLAT_METRIC
from obslab.ocsf.report import ConversionReport
from obslab.ocsf.textio import read_all_text

CHUNK_SAMPLES = 65536


def _sample(pair) -> tuple[int, float]:
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise ValueError("sample is not a [timestamp, value] pair")
    ts, val = pair
    if isinstance(ts, bool) or not isinstance(ts, (int, float, str)):
        raise ValueError("timestamp is not a number")
    t = float(ts)
    if not math.isfinite(t) or t <= 0 or t >= 1e11:
        raise ValueError("timestamp is not epoch seconds")
    if isinstance(val, bool) or not isinstance(val, (str, int, float)):
        raise ValueError("value is not a number string")
    return int(round(t * 1000)), float(val)


class _Columns:
    def __init__(self):
        self.cols = {name: [] for name in FLAT_METRIC.names}

    def __len__(self):
        return len(self.cols["time_ms"])

    def batch(self) -> pa.RecordBatch:
        arrays = [pa.array(self.cols[f.name], type=f.type) for f in FLAT_METRIC]
        self.cols = {name: [] for name in FLAT_METRIC.names}
        return pa.RecordBatch.from_arrays(arrays, schema=FLAT_METRIC)


def _series(out: _Columns, series, name, query, unit, report, where) -> Iterator[pa.RecordBatch]:
    if not isinstance(series, dict):
        report.records_in += 1
        report.reject("series is not an object", None, f"{where}: {str(series)[:100]}")
        return
    labels = series.get("metric")
    samples = series.get("values")
    if samples is None and "value" in series:
        samples = [series["value"]]
    if not isinstance(samples, list):
        report.records_in += 1
        report.reject("series without a values list", None, where)
        return
    if labels is None:
        labels = {}
    if not isinstance(labels, dict):  # its samples cannot be told from another series': reject them all
        report.records_in += len(samples)
        report.reject("series whose metric is not an object of labels", None, f"{where}: {str(labels)[:100]}",
                      count=len(samples))
        return
    metric = name or labels.get("__name__") or query or "value"
    service = labels.get("service") or labels.get("job")
    host = labels.get("instance") or labels.get("host")
    region = labels.get("region")
    label_text = [(str(k), v if isinstance(v, str) else orjson.dumps(v).decode()) for k, v in sorted(labels.items())]
    c = out.cols
    for pair in samples:
        report.records_in += 1
        try:
            t, v = _sample(pair)
        except (ValueError, TypeError, OverflowError) as exc:
            report.reject(f"bad sample: {exc}", None, f"{where}: {str(pair)[:100]}")
            continue
        c["time_ms"].append(t)
        c["value"].append(v)
        c["metric"].append(str(metric))
        c["service"].append(None if service is None else str(service))
        c["host"].append(None if host is None else str(host))
        c["region"].append(None if region is None else str(region))
        c["unit"].append(unit)
        c["labels"].append(label_text)
        c["query"].append(query)
        report.records_out += 1
        if len(out) >= CHUNK_SAMPLES:
            yield out.batch()
            c = out.cols


def _response(out, resp, name, query, unit, report, where) -> Iterator[pa.RecordBatch]:
    """One query_range response (or bare result list)."""
    if isinstance(resp, list):
        report.notes["bare_result_lists"] += 1
        for series in resp:
            yield from _series(out, series, name, query, unit, report, where)
        return
    if not isinstance(resp, dict):
        report.problem(f"{where}: not a Prometheus response (a {type(resp).__name__})")
        return
    status = resp.get("status")
    if status == "error":
        report.notes["query_errors"] += 1
        report.problem(f"{where}: query error {resp.get('errorType')}: {resp.get('error')}")
        return
    data = resp.get("data")
    if status != "success" or not isinstance(data, dict):
        report.problem(f"{where}: not a Prometheus query response (status={status!r})")
        return
    rtype = data.get("resultType")
    result = data.get("result")
    if rtype == "scalar" and isinstance(result, list):
        yield from _series(out, {"metric": {}, "values": [result]}, name, query, unit, report, where)
        return
    if rtype not in ("matrix", "vector") or not isinstance(result, list):
        report.problem(f"{where}: unsupported resultType {rtype!r}")
        return
    for series in result:
        yield from _series(out, series, name, query, unit, report, where)


def read_prometheus(path: str | os.PathLike, report: ConversionReport | None = None) -> Iterator[pa.RecordBatch]:
    """Stream FLAT_METRIC batches from a bundle, a query_range response or a bare result list."""
    report = report if report is not None else ConversionReport()
    report.source = report.source or os.fspath(path)
    report.signal = report.signal or "metrics"
    data = read_all_text(path)
    if not data.strip():
        report.problem("empty file")
        return
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        report.problem(f"not JSON: {exc}")
        return
    out = _Columns()
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):
        for i, entry in enumerate(doc["results"]):
            if not isinstance(entry, dict):
                report.problem(f"results[{i}] is not an object")
                continue
            name = entry.get("name")
            where = f"results[{i}] {name or ''}".strip()
            yield from _response(out, entry.get("response"), name, entry.get("query"), entry.get("unit"),
                                 report, where)
    else:
        yield from _response(out, doc, None, None, None, report, os.path.basename(os.fspath(path)))
    if len(out):
        yield out.batch()
