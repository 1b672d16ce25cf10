"""The inference daemon as a real server: `obslab serve` in a subprocess on a free loopback port,
scoring with a tiny model trained here on the synthetic fleet's normal records."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from lab_processes import wait_for_scrapes
from obslab.lab.processes import start_prometheus
from obslab.serve.model_store import load_model, train_server_model
from obslab.serve.process import DaemonProcess, free_port
from obslab.serve.sample_records import labelled_server_metrics, normal_server_metrics, records_from_frame
from obslab.serve.schemas import METRICS

pytestmark = pytest.mark.integration

KEY = "test-key-7c1f0b2e9d4a"
OTHER = "not-the-key-5e6f7a8b9c"
PROTECTED = [("GET", "/predictions/current"), ("POST", "/feed/data")]
GUIDE_STATUS = {"tick_count", "last_prediction", "warmup_complete", "rolling_window_size", "servers_tracked", "progress"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("serve-model")
    df = normal_server_metrics(days=1, step="5m", seed=0, n_servers=10)
    return train_server_model(df, out, seed=0, epochs=5,
                              source={"generator": "obslab.synth.server_metrics_with_labels", "days": 1, "seed": 0,
                                      "n_servers": 10, "phase": "normal"})


@pytest.fixture(scope="module")
def fleet() -> list[dict]:
    """Two hours of a fleet the model has not seen (another seed), as JSON records."""
    records, _ = labelled_server_metrics(days=1, step="5m", seed=7, n_servers=10, incidents_per_server_day=0)
    return records_from_frame(records.iloc[:240])  # 24 timestamps x 10 servers


@pytest.fixture(scope="module")
def shared(model_dir, tmp_path_factory):
    """One daemon for the tests that only add records of their own (starting one costs ~5-20 s,
    mostly importing torch). Body limit 200 kB; schemathesis runs last against it."""
    d = DaemonProcess(model_dir, tmp_path_factory.mktemp("shared") / "state.sqlite", KEY, warmup=5,
                      rate_limit=100_000, max_body_bytes=200_000).start()
    yield d
    d.stop()


def _total(client) -> int:
    return client.get("/status").json()["records_total"]


@pytest.fixture
def daemon(model_dir, tmp_path):
    """A fresh daemon per test (own state file); generous rate limit unless a test asks otherwise."""
    started = []

    def start(state=None, **opts):
        opts.setdefault("rate_limit", 10_000)
        d = DaemonProcess(model_dir, state or tmp_path / "state.sqlite", KEY, **opts).start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()


def test_health_is_open_and_every_other_route_needs_the_key(shared):
    d = shared
    assert httpx.get(d.url + "/health").json() == {"status": "ok"}
    spec = httpx.get(d.url + "/openapi.json").json()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert set(PROTECTED) == routes - {("GET", "/health"), ("GET", "/status")}  # every route there is
    # /status without a key: the guide's fields only; with a wrong key: refused; with the key: detail
    anonymous = httpx.get(d.url + "/status")
    assert anonymous.status_code == 200 and set(anonymous.json()) == GUIDE_STATUS
    assert httpx.get(d.url + "/status", headers={"X-API-Key": OTHER}).status_code == 403
    full = httpx.get(d.url + "/status", headers={"X-API-Key": KEY}).json()
    assert set(full) > GUIDE_STATUS and "model" in full and "records_total" in full
    for method, path in PROTECTED:
        body = {"json": {"records": []}} if method == "POST" else {}
        missing = httpx.request(method, d.url + path, **body)
        assert missing.status_code == 401, (method, path)
        wrong = httpx.request(method, d.url + path, headers={"X-API-Key": OTHER}, **body)
        assert wrong.status_code == 403, (method, path)
        ok = httpx.request(method, d.url + path, headers={"X-API-Key": KEY}, **body)
        assert ok.status_code == 200, (method, path, ok.text)
    # unauthenticated garbage is refused before it is parsed
    assert httpx.post(d.url + "/feed/data", content=b"{not json").status_code == 401
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


def test_empty_batch_is_ignored(shared):
    with shared.client() as c:
        before = c.get("/status").json()
        r = c.post("/feed/data", json={"records": []}).json()
        assert r["status"] == "ignored" and r["records_received"] == 0 and r["tick"] == before["ticks"]
        assert _total(c) == before["records_total"]


def test_body_size_limit_413(shared, fleet):
    big = {"records": fleet * 3}  # ~300 kB against a 200 kB limit
    with shared.client() as c:
        before = _total(c)
        assert c.post("/feed/data", json=big).status_code == 413
        # chunked, without Content-Length: counted as it arrives
        chunked = c.post("/feed/data", content=(b" " * 50_000 for _ in range(5)),
                         headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        assert _total(c) == before


def test_validation_names_every_bad_field_and_stores_nothing(shared, fleet):
    bad = [dict(r) for r in fleet[:5]]
    bad[1]["cpu_user_pct"] = 250
    bad[1]["status"] = "on_fire"
    bad[3]["timestamp"] = "yesterday"
    del bad[3]["mem_used_pct"]
    bad[3]["back_close_wait"] = 2.5
    bad[4]["unexpected"] = 1
    with shared.client() as c:
        before = _total(c)
        r = c.post("/feed/data", json={"records": bad})
        assert r.status_code == 422
        body = r.json()
        assert body["status"] == "error" and body["bad_records"] == [1, 3, 4]
        assert {(e["record"], e["field"]) for e in body["field_errors"]} == {
            (1, "cpu_user_pct"), (1, "status"), (3, "timestamp"), (3, "mem_used_pct"),
            (3, "back_close_wait"), (4, "unexpected")}
        assert _total(c) == before  # all or nothing
        assert c.post("/feed/data", content=b"{oops", headers={"content-type": "application/json"}).status_code == 422


def test_ocsf_metric_events_are_a_second_input(shared):
    """Base Events with the sample in ``unmapped`` (as obslab.ocsf writes metrics), grouped by
    host and time into records: 5 hosts x 14 metrics -> 5 records (the shared warmup is 5)."""
    t = 1767607200000
    events = [{"class_uid": 0, "activity_id": 99, "time": t, "metadata": {"version": "1.8.0", "uid": f"{h}-{m}"},
               "unmapped": {"host": f"db-0{h}", "metric": m, "value": 3 if "close_wait" in m else 1.5 + h}}
              for h in range(5) for m in METRICS]
    with shared.client() as c:
        before = _total(c)
        r = c.post("/feed/data", json={"records": events})
        assert r.status_code == 200, r.text
        assert r.json()["records_stored"] == 5 and r.json()["records_received"] == 5 * len(METRICS)
        incomplete = c.post("/feed/data", json={"records": events[:-1]})
        assert incomplete.status_code == 422
        assert [e["record"] for e in incomplete.json()["field_errors"]] == [4 * len(METRICS)]  # db-04's first event
        assert "uptime_days" in incomplete.json()["field_errors"][0]["message"]
        assert _total(c) == before + 5
        p = {s["server_name"]: s for s in c.get("/predictions/current").json()["servers"]}
        assert p["db-01"]["status"] is None and p["db-01"]["timestamp"] == "2026-01-05T10:00:00Z"
        assert p["db-03"]["top_features"][0]["value"] in (4.5, 3.0)


def test_a_broken_server_is_flagged_and_status_is_not_an_input(shared, fleet):
    last = [dict(r) for r in fleet[-10:]]
    broken = last[3]
    broken.update({m: 0 for m in METRICS})  # gone dark: every metric 0, as an offline host reports
    names = {r["server_name"] for r in last}
    with shared.client() as c:
        assert c.post("/feed/data", json={"records": fleet[:-10]}).status_code == 200
        assert c.post("/feed/data", json={"records": last}).status_code == 200
        p = c.get("/predictions/current").json()
        scores = {s["server_name"]: s for s in p["servers"] if s["server_name"] in names}
        assert len(scores) == 10 and scores[broken["server_name"]]["flagged"]
        assert max(scores.values(), key=lambda s: s["anomaly_score"])["server_name"] == broken["server_name"]
        assert sum(s["flag"] for s in scores.values()) <= 3  # the healthy rest is mostly not flagged
        # the same records again, every status changed: identical scores, the new statuses returned
        relabelled = [dict(r, status="critical_issue") for r in last]
        assert c.post("/feed/data", json={"records": relabelled}).status_code == 200
        q = {s["server_name"]: s for s in c.get("/predictions/current").json()["servers"]}
        for name, s in scores.items():
            assert q[name]["anomaly_score"] == s["anomaly_score"] and q[name]["status"] == "critical_issue"


def test_rate_limit_429_with_retry_after_and_backfill_is_one_request(daemon, fleet):
    d = daemon(rate_limit=3, warmup=5)
    with d.client() as c:
        first = c.post("/feed/data", json={"records": fleet})  # 24 timestamps in one request
        assert first.status_code == 200 and first.json()["tick"] == 24
        assert c.get("/status").status_code == 200
        assert c.get("/status").status_code == 200
        limited = c.get("/status")
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
    # the limit is per key, not per connection; /health is never limited
    assert httpx.get(d.url + "/status", headers={"X-API-Key": KEY}).status_code == 429
    assert httpx.get(d.url + "/health").status_code == 200


def test_warmup_then_predictions_and_restart_keeps_the_window(daemon, fleet, tmp_path):
    state = tmp_path / "kept.sqlite"
    d = daemon(state=state, warmup=100, window=200)
    with d.client() as c:
        r = c.post("/feed/data", json={"records": fleet[:60]}).json()
        assert r["status"] == "warming_up" and r["progress"] == "60% (need 100 records minimum)"
        assert r["warmup"] == {"records": 60, "required": 100, "percent": 60.0}
        p = c.get("/predictions/current").json()
        assert p["status"] == "warming_up" and p["servers"] == []
        r = c.post("/feed/data", json={"records": fleet[60:]}).json()
        assert r["status"] == "accepted" and r["warmup_complete"]
        assert r["rolling_window_size"] == 200 and r["window_capacity"] == 200  # 240 fed, window 200
        assert r["tick"] == 24 and r["servers_tracked"] == 10
        before = c.get("/predictions/current").json()
        assert before["status"] == "ok" and before["fleet"]["servers"] == 10 and len(before["servers"]) == 10
        newest = max(rec["timestamp"] for rec in fleet)
        for s in before["servers"]:
            assert s["timestamp"] == newest and np.isfinite(s["anomaly_score"])
            assert s["record_flag"] == (s["anomaly_score"] > before["threshold"])
            assert s["flagged"] == s["flag"] == (s["score"] > 1.0) and s["score"] >= s["anomaly_score"] / before["threshold"]
            assert (s["since"] is not None) == s["flagged"] and s["profile"] == "generic"
            assert len(s["nearest_normal"]) == 3 and len(s["top_features"]) == 3
            assert {f["feature"] for f in s["top_features"]} <= set(METRICS)
        assert before["fleet"]["flagged"] == len(before["fleet"]["flagged_servers"])
        before_status = c.get("/status").json()
        assert before_status["last_prediction_time"] is not None and before_status["warmup"]["complete"]
        meta = load_model(d.args[d.args.index("--model") + 1]).meta
        model = before_status["model"]
        assert model["model_id"] == meta["model_id"] and model["torch_version"] == torch.__version__
        assert model["trained_on"]["generator"] == "obslab.synth.server_metrics_with_labels"
        assert model["trained_on"]["n_records"] > 0 and model["created_at"] == meta["created_at"]
        assert model["features"] == json.loads((Path(d.args[d.args.index("--model") + 1]) / "meta.json").read_text())[
            "feature_spec"]["numeric"]
    assert d.stop() in (0, -15)  # uvicorn re-raises SIGTERM after a graceful shutdown

    again = daemon(state=state, warmup=100, window=200)
    with again.client() as c:
        after_status = c.get("/status").json()
        after = c.get("/predictions/current").json()
    for key in ("rolling_window_size", "ticks", "records_total", "servers_tracked", "newest_timestamp"):
        assert after_status[key] == before_status[key], key
    assert after_status["records_total"] == 240
    assert [(s["server_name"], s["anomaly_score"]) for s in after["servers"]] == \
           [(s["server_name"], s["anomaly_score"]) for s in before["servers"]]


def test_serve_refuses_to_start_without_keys(model_dir, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OBSLAB_API_KEYS"}
    r = subprocess.run([sys.executable, "-m", "obslab.cli", "serve", "--model", str(model_dir),
                        "--state", str(tmp_path / "s.sqlite")], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no API keys" in r.stderr


@pytest.fixture(scope="module")
def prometheus_with_a_host(tmp_path_factory, fleet):
    """A real Prometheus scraping a real exporter (prometheus_client) that serves one fleet
    record as gauges named demo_<metric>; yields (prometheus URL, the record)."""
    from prometheus_client import CollectorRegistry, Gauge, start_http_server

    record = fleet[5]
    registry = CollectorRegistry()
    for m in METRICS:
        Gauge(f"demo_{m}", m, registry=registry).set(record[m])
    tmp_path = tmp_path_factory.mktemp("prometheus")
    exporter_port, prom_port = free_port(), free_port()
    server, thread = start_http_server(exporter_port, addr="127.0.0.1", registry=registry)
    config = tmp_path / "prometheus.yml"
    config.write_text(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: demo\n"
                      f"    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n")
    proc = start_prometheus(prom_port, config, tmp_path / "tsdb")
    url = f"http://127.0.0.1:{prom_port}"
    try:
        stored = wait_for_scrapes(url, "demo_load_average", 4)
        assert stored >= 4, f"Prometheus stored {stored} scrapes of demo_load_average in 90 s (4 needed)"
        yield url, record
    finally:
        proc.stop()
        server.shutdown()


def test_feed_from_prometheus_to_the_daemon(shared, prometheus_with_a_host, tmp_path, fleet):
    url, record = prometheus_with_a_host
    queries = tmp_path / "queries.json"
    queries.write_text(json.dumps({m: f"demo_{m}" for m in METRICS}))
    with shared.client() as c:
        assert c.post("/feed/data", json={"records": fleet[:10]}).status_code == 200  # past the warmup
        before = _total(c)
    r = subprocess.run([sys.executable, "-m", "obslab.cli", "feed", "--from-prometheus", url, "--interval", "1s",
                        "--backfill", "3s", "--once", "--queries", str(queries), "--to", shared.url],
                       env={**os.environ, "OBSLAB_API_KEY": KEY}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    sent = int(re.search(r"; (\d+) stored", r.stderr).group(1))
    assert sent >= 3 and "0 server/times incomplete" in r.stderr
    with shared.client() as c:
        assert _total(c) == before + sent
        p = {s["server_name"]: s for s in c.get("/predictions/current").json()["servers"]}
    values = {f["feature"]: f["value"] for f in p["127.0.0.1"]["top_features"]}
    assert all(v == pytest.approx(record[k]) for k, v in values.items())
    # without --to the batches are JSON lines a client can post as they are
    r = subprocess.run([sys.executable, "-m", "obslab.cli", "feed", "--from-prometheus", url, "--interval", "1s",
                        "--once", "--queries", str(queries)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and json.loads(r.stdout.splitlines()[0])["records"][0]["server_name"] == "127.0.0.1"


def test_feed_reports_a_prometheus_error(prometheus_with_a_host, tmp_path):
    url, _ = prometheus_with_a_host
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"load_average": "rate(("}))
    r = subprocess.run([sys.executable, "-m", "obslab.cli", "feed", "--from-prometheus", url, "--once",
                        "--queries", str(bad)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "bad_data" in r.stderr


def test_schemathesis_finds_no_server_error(shared, tmp_path):
    """Property-based run against the published OpenAPI (last: it feeds random records).
    Every check except positive-data acceptance: an OCSF event is schema-valid alone, but a
    host/time group must carry all 14 metrics, a cross-record rule OpenAPI cannot express."""
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    r = subprocess.run(
        [st, "run", shared.url + "/openapi.json", "-H", f"X-API-Key: {KEY}", "--max-examples", "25", "--seed", "7",
         "--generation-database", "none", "--no-color", "--workers", "1", "--exclude-checks", "positive_data_acceptance",
         "--phases", "examples,coverage,fuzzing"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert r.returncode == 0, r.stdout[-4000:]
