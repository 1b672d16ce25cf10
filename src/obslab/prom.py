"""Prometheus HTTP API: range queries for the documented metric queries, instant queries.

Shared by the lab (verification, the run's metrics export) and the converter script
appendix-code/scripts/export_prometheus_metrics.py, which needs no lab.

``export_range`` produces the document written as ``DIR/raw/metrics.json``::

    {"prometheus_url", "start", "end", "step",
     "results": [{"name", "query", "unit", "response": <raw /api/v1/query_range JSON>}]}
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import yaml

__all__ = ["PromError", "load_queries", "query_range", "query", "export_range", "series_count"]


class PromError(RuntimeError):
    pass


def _to_epoch(t) -> float:
    if isinstance(t, datetime):
        return t.timestamp()
    if isinstance(t, str):
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    return float(t)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _get(prometheus_url: str, path: str, params: dict, timeout: float = 30.0) -> dict:
    url = f"{prometheus_url.rstrip('/')}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 400/422/503 carry a JSON error body: keep it
        body = exc.read()
        try:
            return json.loads(body)
        except ValueError:
            raise PromError(f"{url}: HTTP {exc.code}: {body[:200]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise PromError(f"{url}: {exc}") from None


def query_range(prometheus_url: str, promql: str, start, end, step: float) -> dict:
    """The raw JSON of /api/v1/query_range (status "success" or "error" with errorType)."""
    return _get(prometheus_url, "/api/v1/query_range",
                {"query": promql, "start": _to_epoch(start), "end": _to_epoch(end), "step": step})


def query(prometheus_url: str, promql: str, at=None) -> dict:
    params = {"query": promql}
    if at is not None:
        params["time"] = _to_epoch(at)
    return _get(prometheus_url, "/api/v1/query", params)


def load_queries(path: str | os.PathLike) -> list[dict]:
    """metrics_queries.yaml: a list of {name, promql, unit} (top level or under ``queries:``)."""
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PromError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    items = doc.get("queries", doc) if isinstance(doc, dict) else doc
    if isinstance(items, dict):  # {name: {promql, unit}} form
        items = [{"name": k, **v} for k, v in items.items()]
    out = []
    for item in items or []:
        q = item.get("promql") or item.get("query") or item.get("expr")
        if not item.get("name") or not q:
            raise PromError(f"{path}: each query needs name and promql: {item!r}")
        out.append({"name": item["name"], "query": q, "unit": item.get("unit", "")})
    return out


def export_range(prometheus_url: str, queries: list[dict], start, end, step: float) -> dict:
    """Run every query over [start, end] at ``step`` seconds; one result entry per query.

    A query Prometheus rejects keeps its error response in the document rather than stopping
    the export.
    """
    results = []
    for q in queries:
        promql = q.get("query") or q.get("promql")
        results.append({"name": q["name"], "query": promql, "unit": q.get("unit", ""),
                        "response": query_range(prometheus_url, promql, start, end, step)})
    return {"prometheus_url": prometheus_url, "start": _iso(_to_epoch(start)), "end": _iso(_to_epoch(end)),
            "step": step, "results": results}


def series_count(doc: dict) -> int:
    """Number of series across all successful results of an export_range document."""
    n = 0
    for r in doc.get("results", []):
        resp = r.get("response") or {}
        if resp.get("status") == "success":
            n += len(resp.get("data", {}).get("result", []))
    return n
