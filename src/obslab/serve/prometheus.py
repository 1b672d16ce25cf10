"""Prometheus -> feed records: one range query per metric, grouped by server and time.

``DEFAULT_QUERIES`` assumes node_exporter (with the tcpstat collector) and process-exporter
(a ``java`` group); ``--queries FILE`` (JSON: metric -> PromQL) replaces any of them. The
server is the ``instance`` label without its port (``--server-label`` to change). Prometheus
has no operator annotation, so every record gets the status given (default ``healthy``).

Values outside the schema's range (a rate-derived CPU share of 100.4 %) are clamped into it and
counted; a server/time lacking a metric (or with NaN / Inf) is not sent and is counted with the
metrics it lacked. Nothing is dropped silently: the summary reports both.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import httpx

from obslab.serve.schemas import METRIC_RANGES, METRICS, iso_ms

__all__ = ["DEFAULT_QUERIES", "PrometheusError", "FeedSummary", "query_range", "records_from_results"]

_CPU = 'avg by (instance) (rate(node_cpu_seconds_total{{mode="{mode}"}}[5m])) * 100'
DEFAULT_QUERIES: dict[str, str] = {
    "cpu_user_pct": _CPU.format(mode="user"),
    "cpu_sys_pct": _CPU.format(mode="system"),
    "cpu_iowait_pct": _CPU.format(mode="iowait"),
    "cpu_idle_pct": _CPU.format(mode="idle"),
    "java_cpu_pct": 'sum by (instance) (rate(namedprocess_namegroup_cpu_seconds_total{groupname="java"}[5m]))'
                    ' / on (instance) count by (instance) (node_cpu_seconds_total{mode="idle"}) * 100',
    "mem_used_pct": "(1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes) * 100",
    "swap_used_pct": "(1 - node_memory_SwapFree_bytes / clamp_min(node_memory_SwapTotal_bytes, 1)) * 100",
    "disk_usage_pct": '(1 - node_filesystem_avail_bytes{mountpoint="/"} / node_filesystem_size_bytes{mountpoint="/"}) * 100',
    "net_in_mb_s": 'sum by (instance) (rate(node_network_receive_bytes_total{device!="lo"}[5m])) / 1e6',
    "net_out_mb_s": 'sum by (instance) (rate(node_network_transmit_bytes_total{device!="lo"}[5m])) / 1e6',
    # tcpstat collector; back end = connections to local port 8080, front end = port 443 (adjust)
    "back_close_wait": 'sum by (instance) (node_tcp_connection_states{state="close_wait",local_port="8080"}) or on (instance) (0 * node_load1)',
    "front_close_wait": 'sum by (instance) (node_tcp_connection_states{state="close_wait",local_port="443"}) or on (instance) (0 * node_load1)',
    "load_average": "node_load1",
    "uptime_days": "(time() - node_boot_time_seconds) / 86400",
}


class PrometheusError(RuntimeError):
    pass


def query_range(client: httpx.Client, base_url: str, promql: str, start: float, end: float, step: float) -> list[dict]:
    """The ``result`` list of a matrix answer; a Prometheus error body raises with its errorType."""
    r = client.get(base_url.rstrip("/") + "/api/v1/query_range",
                   params={"query": promql, "start": start, "end": end, "step": step})
    try:
        body = r.json()
    except ValueError as exc:
        raise PrometheusError(f"{r.status_code} from Prometheus, not JSON: {r.text[:200]!r}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"Prometheus {body.get('errorType', r.status_code)}: {body.get('error')} (query: {promql})")
    return body["data"]["result"]


@dataclass
class FeedSummary:
    records: int = 0
    clamped: int = 0
    incomplete: int = 0
    missing: dict = field(default_factory=lambda: defaultdict(int))  # metric -> server/times lacking it

    def line(self) -> str:
        lack = ", ".join(f"{m} x{n}" for m, n in sorted(self.missing.items()))
        return (f"{self.records} records, {self.clamped} values clamped into range, "
                f"{self.incomplete} server/times incomplete" + (f" (lacking {lack})" if lack else ""))


def _server(labels: dict, label: str) -> str | None:
    value = labels.get(label)
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    return host if host and port.isdigit() else value  # "web-01:9100" -> "web-01"


def records_from_results(results: dict[str, list[dict]], status: str = "healthy", server_label: str = "instance",
                         summary: FeedSummary | None = None) -> list[dict]:
    """{metric: matrix result list} -> 16-field records (ISO timestamps), sorted by time then server."""
    summary = summary if summary is not None else FeedSummary()
    cells: dict[tuple[float, str], dict] = defaultdict(dict)
    for metric, series_list in results.items():
        for series in series_list:
            server = _server(series.get("metric", {}), server_label)
            if server is None:
                continue
            for ts, text in series.get("values", []):
                value = float(text)  # "NaN", "+Inf" parse; they are rejected below
                if math.isfinite(value):
                    cells[(float(ts), server)][metric] = value
                else:
                    cells[(float(ts), server)].setdefault("__bad__", set()).add(metric)
    records = []
    for (ts, server), values in sorted(cells.items()):
        bad = values.pop("__bad__", set())
        lacking = [m for m in METRICS if m not in values] + sorted(bad - set(values))
        if lacking:
            summary.incomplete += 1
            for m in set(lacking):
                summary.missing[m] += 1
            continue
        rec = {"timestamp": iso_ms(ts * 1000), "server_name": server, "status": status}
        for m in METRICS:
            lo, hi, kind = METRIC_RANGES[m]
            v = values[m]
            if not lo <= v <= hi:
                summary.clamped += 1
                v = min(max(v, lo), hi)
            rec[m] = int(round(v)) if kind is int else v
        records.append(rec)
    summary.records += len(records)
    return records
