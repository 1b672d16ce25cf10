"""Write the API appendix's example exchanges by running them against a real daemon.

    python -m obslab.serve.examples book/appendix/api-examples

Trains a small model (``obslab serve train --from synth --days 1 --epochs 2``), starts ``obslab serve``
on a free loopback port, sends each request of the page and writes the request (as a curl
command) and the answer (status line + JSON, long lists shortened) to one text file per example.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import httpx
import torch

from obslab.serve.cli import build
from obslab.serve.fleet import guide_fleet
from obslab.serve.process import DaemonProcess
from obslab.serve.sample_records import records_from_frame
from obslab.serve.schemas import METRICS

KEY = "example-key-change-me-0123"


def _shorten(value, keep: int = 2):
    if isinstance(value, list):
        short = [_shorten(v, keep) for v in value[:keep]]
        return short + [f"... {len(value) - keep} more"] if len(value) > keep else short
    if isinstance(value, dict):
        return {k: _shorten(v, keep) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 4)
    return value


def _curl(method: str, path: str, body: dict | None, key: str | None) -> str:
    parts = ["curl -s", f"-X {method}" if method != "GET" else "", f"-H 'X-API-Key: {key}'" if key else ""]
    if body is not None:
        text = json.dumps(_shorten(body, 1))
        parts += ["-H 'Content-Type: application/json'", f"-d '{text}'"]
    return " ".join(p for p in parts if p) + f" http://127.0.0.1:8000{path}"


def _exchange(out: Path, name: str, client: httpx.Client, method: str, path: str, body=None, key: str | None = KEY,
              raw: bytes | None = None, keep: int = 2) -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    if raw is not None:
        r = client.request(method, path, content=raw, headers={**headers, "Content-Type": "application/json"})
    else:
        r = client.request(method, path, json=body, headers=headers)
    shown = ["$ " + _curl(method, path, body, key), f"HTTP {r.status_code}"]
    shown += [f"{h}: {r.headers[h]}" for h in ("retry-after",) if h in r.headers]
    shown.append(json.dumps(_shorten(r.json(), keep), indent=2))
    (out / f"{name}.txt").write_text("\n".join(shown) + "\n")
    return r


def write_examples(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    fleet = records_from_frame(guide_fleet(days=1, seed=7).iloc[: 45 * 24])  # 2 hours of a fleet not trained on
    with tempfile.TemporaryDirectory(prefix="obslab-examples-") as tmp:
        tmp = Path(tmp)
        build("synth", tmp / "model", days=1, seed=0, epochs=2)
        with DaemonProcess(tmp / "model", tmp / "state.sqlite", KEY, warmup=100, rate_limit=600,
                           max_body_bytes=1_000_000) as d, httpx.Client(base_url=d.url, timeout=30) as c:
            _exchange(out, "health", c, "GET", "/health", key=None)
            _exchange(out, "no-key", c, "GET", "/predictions/current", key=None)
            _exchange(out, "wrong-key", c, "GET", "/status", key="not-a-valid-key-000000")
            _exchange(out, "feed-warming-up", c, "POST", "/feed/data", {"records": fleet[:50]})
            _exchange(out, "predictions-warming-up", c, "GET", "/predictions/current")
            _exchange(out, "feed-accepted", c, "POST", "/feed/data", {"records": fleet[50:]})
            _exchange(out, "feed-empty", c, "POST", "/feed/data", {"records": []})
            bad = [dict(fleet[0]), dict(fleet[1])]
            bad[0]["cpu_user_pct"], bad[0]["status"] = 180, "on_fire"
            bad[1]["timestamp"] = "yesterday"
            del bad[1]["load_average"]
            _exchange(out, "feed-invalid", c, "POST", "/feed/data", {"records": bad}, keep=10)
            t = 1735696800000  # 2025-01-01T02:00Z, the fleet's next step
            events = [{"class_uid": 0, "activity_id": 99, "type_uid": 99, "category_uid": 0, "severity_id": 1,
                       "time": t, "metadata": {"version": "1.8.0", "uid": f"prom-{i}", "product": {"name": "prometheus"}},
                       "unmapped": {"host": "db-01", "metric": m, "value": 2.0}} for i, m in enumerate(METRICS)]
            _exchange(out, "feed-ocsf", c, "POST", "/feed/data", {"records": events})
            dark = [dict(r) for r in fleet[-45:]]
            dark[3].update({m: 0 for m in METRICS})  # a host gone dark
            c.post("/feed/data", json={"records": dark}, headers={"X-API-Key": KEY})
            pred = c.get("/predictions/current", headers={"X-API-Key": KEY}).json()
            pred["servers"].sort(key=lambda s: -s["anomaly_score"])  # the most anomalous first, for the page
            shown = ["$ " + _curl("GET", "/predictions/current", None, KEY), "HTTP 200",
                     json.dumps(_shorten(pred, 2), indent=2)]
            (out / "predictions.txt").write_text("\n".join(shown) + "\n")
            _exchange(out, "status", c, "GET", "/status", keep=20)
            _exchange(out, "status-public", c, "GET", "/status", key=None)
            _exchange(out, "too-large", c, "POST", "/feed/data", raw=b'{"records": [' + b" " * 1_100_000 + b"]}")
        # a second daemon with a limit of 2 requests a minute shows the 429
        with DaemonProcess(tmp / "model", tmp / "state.sqlite", KEY, rate_limit=2) as d, \
                httpx.Client(base_url=d.url, timeout=30) as c:
            for _ in range(2):
                c.get("/status", headers={"X-API-Key": KEY})
            _exchange(out, "rate-limited", c, "GET", "/status")
            spec = c.get("/openapi.json").json()
            (out / "openapi-paths.txt").write_text(
                "\n".join(f"{m.upper():5} {p}  {op.get('summary', '')}" for p, ops in spec["paths"].items()
                          for m, op in ops.items()) + "\n")


if __name__ == "__main__":
    write_examples(Path(sys.argv[1] if len(sys.argv) > 1 else "book/appendix/api-examples"))
