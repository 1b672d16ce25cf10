"""Writers: day-partitioned parquet, and the lab's raw formats (Compose logs, OTLP JSON lines,
Prometheus range JSON bundle)."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from obslab.ocsf.schemas import parquet_leaves
from obslab.truth import ms_to_iso

__all__ = ["write_partition", "RawWriter", "day_name"]


def day_name(t_ms: int) -> str:
    return ms_to_iso(int(t_ms))[:10]


def write_partition(root: Path, name: str, day: str, table: pa.Table) -> Path:
    """DIR/<name>/day=YYYY-MM-DD/part-0.parquet (hive layout that obslab.data reads)."""
    folder = root / name / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "part-0.parquet"
    # statistics only on time (day files are read whole; stats on nested strings cost a lot)
    stats = ["time"] if "time" in table.schema.names else False
    # buffered: the writer otherwise issues a write() per page (~120 per metrics day file),
    # which costs more system time than encoding a small file
    with pa.output_stream(str(path), buffer_size=1 << 22) as sink:
        pq.write_table(table, sink, compression="snappy", write_statistics=stats,
                       use_dictionary=_dictionary_columns(table.schema))
    return path


@functools.lru_cache(maxsize=32)
def _dictionary_columns(schema: pa.Schema) -> list[str]:
    """Dictionary-encode repetitive strings, not unique ids (where it only costs time)."""
    unique = ("uid", "trace_id", "span_id", "parent_span_id")
    return [path for path, t in parquet_leaves(schema)
            if pa.types.is_string(t) and path.rsplit(".", 1)[-1] not in unique
            and not path.endswith(("trace.uid", "span.uid", "parent_uid"))]


def _iso_ms(ms: np.ndarray) -> list[str]:
    # ISO 8601 with milliseconds, vectorised via numpy datetime64
    return [s + "Z" for s in np.datetime_as_string(ms.astype("datetime64[ms]"), unit="ms")]


class RawWriter:
    """Appends each chunk to raw/logs.txt and raw/traces.jsonl; metrics are kept and written
    as one Prometheus range-query bundle at close (the format is one JSON document)."""

    LOG_KEYS = ("level", "service", "message", "logger", "event", "host", "region", "trace_id",
                "span_id", "error_type")

    def __init__(self, root: Path, step_s: int):
        self.dir = root / "raw"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.logs = open(self.dir / "logs.txt", "wb")
        self.traces = open(self.dir / "traces.jsonl", "wb")
        self.step_s = step_s
        self.metric_chunks: list[tuple[np.ndarray, dict]] = []
        self.series: list[tuple[str, str, str]] | None = None

    def write_logs(self, flat: pa.Table) -> None:
        d = flat.to_pydict()
        times = _iso_ms(np.asarray(d["time_ms"]))
        lines = []
        for i, container in enumerate(d["container"]):
            obj = {"timestamp": times[i]}
            for k in self.LOG_KEYS:
                v = d[k][i]
                if v is not None:
                    obj[k] = v
            if d["http_method"][i] is not None:
                obj.update(method=d["http_method"][i], path=d["http_path"][i],
                           status=d["http_status"][i], duration_ms=d["duration_ms"][i])
            lines.append(container.encode() + b"  | " + orjson.dumps(obj))
        if lines:
            self.logs.write(b"\n".join(lines) + b"\n")

    def write_traces(self, flat: pa.Table) -> None:
        """One OTLP JSON line per chunk: resourceSpans grouped by (service, host)."""
        if flat.num_rows == 0:
            return
        d = flat.to_pydict()
        groups: dict[tuple, list] = {}
        for i in range(flat.num_rows):
            attrs = []
            for key, col, kind in (("http.request.method", "http_method", "stringValue"),
                                   ("url.path", "http_path", "stringValue"),
                                   ("http.route", "http_route", "stringValue"),
                                   ("http.response.status_code", "http_status", "intValue"),
                                   ("server.address", "server_address", "stringValue"),
                                   ("db.system", "db_system", "stringValue"),
                                   ("db.statement", "db_statement", "stringValue"),
                                   ("anomaly.type", "marker_type", "stringValue"),
                                   ("anomaly.label", "marker_label", "stringValue"),
                                   ("anomaly.root_cause", "marker_root_cause", "stringValue"),
                                   ("anomaly.msg", "marker_msg", "stringValue")):
                v = d[col][i]
                if v is not None:
                    attrs.append({"key": key, "value": {kind: str(v) if kind == "intValue" else v}})
            start_ns = d["start_time_unix_nano"][i]
            span = {
                "traceId": d["trace_id"][i],
                "spanId": d["span_id"][i],
                "parentSpanId": d["parent_span_id"][i] or "",
                "name": d["name"][i],
                "kind": d["kind"][i],
                "startTimeUnixNano": str(start_ns),
                "endTimeUnixNano": str(start_ns + int(d["duration_ms"][i] * 1e6)),
                "attributes": attrs,
                "status": {"code": d["status_code"][i]}
                | ({"message": d["status_message"][i]} if d["status_message"][i] else {}),
            }
            key = (d["service"][i], d["host"][i], d["region"][i], d["scope"][i])
            groups.setdefault(key, []).append(span)
        resource_spans = []
        for (svc, host, region, scope), spans in groups.items():
            resource_spans.append({
                "resource": {"attributes": [
                    {"key": "service.name", "value": {"stringValue": svc}},
                    {"key": "host.name", "value": {"stringValue": host}},
                    {"key": "cloud.region", "value": {"stringValue": region}},
                ]},
                "scopeSpans": [{"scope": {"name": scope}, "spans": spans}],
            })
        self.traces.write(orjson.dumps({"resourceSpans": resource_spans}) + b"\n")

    def add_metrics(self, t_ms: np.ndarray, values: dict, series: list[tuple[str, str, str]]):
        self.series = series
        self.metric_chunks.append((t_ms, values))

    def close(self, units: dict[str, str]) -> None:
        self.logs.close()
        self.traces.close()
        if not self.metric_chunks:
            return
        t_ms = np.concatenate([c[0] for c in self.metric_chunks])
        ts = (t_ms / 1000.0).tolist()
        # the header the lab's exporter writes (obslab.prom.export_range); streamed series
        # by series so that a year of samples never becomes one Python structure
        head = {"prometheus_url": None, "start": ms_to_iso(int(t_ms[0])),
                "end": ms_to_iso(int(t_ms[-1])), "step": self.step_s}
        tmp = self.dir / "metrics.json.tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(head)[:-1] + b',"results":[')
            for k, (name, unit) in enumerate(units.items()):
                v = np.concatenate([c[1][name] for c in self.metric_chunks])
                entry = {"name": name, "query": f'synthetic:{name}{{job="obslab-synth"}}',
                         "unit": unit}
                f.write((b"," if k else b"") + orjson.dumps(entry)[:-1]
                        + b',"response":{"status":"success","data":{"resultType":"matrix","result":[')
                for h, (svc, host, region) in enumerate(self.series):
                    series = {
                        "metric": {"__name__": name, "service": svc, "instance": host,
                                   "region": region},
                        "values": [[t, repr(x)] for t, x in zip(ts, v[:, h].tolist())],
                    }
                    f.write((b"," if h else b"") + orjson.dumps(series))
                f.write(b"]}}}")
            f.write(b"]}")
        os.replace(tmp, self.dir / "metrics.json")
