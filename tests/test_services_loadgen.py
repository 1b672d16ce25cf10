"""The load generator: its seeded schedule (pure function) and a real run against the lab."""

from __future__ import annotations

import collections
import importlib.util
import json
import sys
import time
from datetime import datetime

import pytest
import redis

from lab_processes import SERVICES, start_stack, wait_for
from obslab.lab.scenario import Injection, inject


def _load_shape():
    spec = importlib.util.spec_from_file_location("loadgen_shape", SERVICES / "load-generator" / "shape.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


shape = _load_shape()


def test_same_seed_same_schedule_other_seed_differs():
    a = list(shape.schedule(7, 50, 120, 600, 6))
    assert a == list(shape.schedule(7, 50, 120, 600, 6))
    assert a != list(shape.schedule(8, 50, 120, 600, 6))
    assert all(x.offset_s < y.offset_s for x, y in zip(a, a[1:]))


def test_mix_is_about_60_25_15_with_benign_errors():
    reqs = list(shape.schedule(1, 200, 300))  # flat shape: 60k requests
    kinds = collections.Counter("browse" if r.kind in ("browse", "user") else r.kind for r in reqs)
    n = len(reqs)
    assert abs(n - 60_000) < 1500
    assert abs(kinds["browse"] / n - 0.60) < 0.01
    assert abs(kinds["search"] / n - 0.25) < 0.01
    assert abs(kinds["checkout"] / n - 0.15) < 0.01
    assert any(r.kind == "user" and int(r.path.rsplit("/", 1)[1]) > 500 for r in reqs)  # benign 404s
    assert any(r.kind == "checkout" and r.body["password"] == "wrong-password" for r in reqs)  # 401s


def test_daily_shape_has_a_night_low_and_day_peaks():
    day = 600.0
    at = lambda hour: shape.daily_factor((hour - 6) % 24 / 24 * day, day, 6)  # noqa: E731
    assert at(3) < 0.3 and at(11) > 0.95 and at(19.5) > 0.8
    assert shape.daily_factor(123.0, 0, 6) == 1.0
    # over a compressed day the arrivals follow the curve: the night hours get far fewer
    reqs = list(shape.schedule(3, 100, day, day, 0))
    hours = collections.Counter(int(r.offset_s / day * 24) for r in reqs)
    assert hours[11] > 2.5 * hours[3]


@pytest.mark.integration
def test_loadgen_run_records_requests_markers_and_summary(tmp_path):
    stack = start_stack(tmp_path / "lab", rate=40, seed=5,
                        extra_env={"load-generator": {"DURATION_S": "6", "DAY_LENGTH_S": "0"}})
    try:
        record = stack.dir / "raw" / "loadgen.jsonl"
        proc = stack.start("load-generator")
        r = redis.Redis.from_url(stack.redis_url)
        # the load is flowing (the runner's own count of web-api access lines) before the fault
        wait_for(lambda: sum(1 for s, line in stack.log_lines() if s == "web-api" and '"access"' in line) >= 20,
                 30, 0.1)
        t_on = time.time()
        inject(r, Injection(0, "error_spike", "low", "web-api", 2.0, 0, "inc-lg-1", params={"error_rate": 0.05}))
        t_off = t_on + 2.0
        proc.proc.wait(30)
        assert proc.returncode() == 0
        rows = [json.loads(line) for line in record.read_text().splitlines()]
        assert len(rows) > 150
        for row in rows:
            assert set(row) == {"time", "method", "path", "status", "latency_ms", "markers"}
            t = datetime.fromisoformat(row["time"].replace("Z", "+00:00")).timestamp()
            if row["markers"]:
                assert row["markers"]["x-anomaly-type"] == "error_spike"
                assert row["markers"]["x-anomaly-label"] == "inc-lg-1"
                assert t_on - 0.1 <= t <= t_off + 1.0, (row, t_on, t_off)  # flags are polled every 0.5 s
            elif t_on + 1.0 <= t <= t_off - 0.2:
                pytest.fail(f"unmarked request inside the fault window: {row}")
        assert sum(1 for row in rows if row["markers"]) > 20
        statuses = collections.Counter(row["status"] for row in rows)
        assert statuses[200] > 100 and statuses[401] + statuses[404] > 0
        lines = [json.loads(l) for s, l in stack.log_lines() if s == "load-generator"]
        summary = [l for l in lines if l["message"].startswith("load finished")]
        assert summary and summary[0]["event"] == "lifecycle"
        s = summary[0]
        assert s["sent"] == len(rows) and abs(s["achieved_rate"] - s["target_rate"]) / s["target_rate"] < 0.35
        stack.stop()
        # every app line stays JSON through shutdown, and each service logs its stop
        stopping = set()
        for service, payload in stack.log_lines():
            if service in ("web-api", "auth-service", "payment-worker", "load-generator"):
                obj = json.loads(payload)
                if obj["event"] == "lifecycle" and "stopping" in obj["message"]:
                    stopping.add(service)
        assert {"web-api", "auth-service", "payment-worker"} <= stopping
    finally:
        stack.stop()


@pytest.mark.integration
def test_endpoint_enumeration_probes_unmatched_routes_from_a_new_client(tmp_path):
    stack = start_stack(tmp_path / "lab", rate=1, seed=5, extra_env={"load-generator": {"DAY_LENGTH_S": "0"}})
    try:
        proc = stack.start("load-generator")
        r = redis.Redis.from_url(stack.redis_url)
        inject(r, Injection(0, "endpoint_enumeration", "high", "web-api", 30.0, 0, "inc-enum",
                            params={"rate_per_s": 5.0}))

        def probes():
            out = []
            for service, line in stack.log_lines():
                if service == "web-api":
                    obj = json.loads(line)
                    if obj.get("event") == "access" and obj.get("route") == "unmatched":
                        out.append(obj)
            return out

        wait_for(lambda: len(probes()) >= 5, 20, 0.2)
        r.delete("obslab:fault:endpoint_enumeration")
        got = probes()
        assert {p["status"] for p in got} == {404}
        assert all(p["client_ip"].startswith("203.0.113.") and "scan" in p["user_agent"] for p in got)
        assert len({p["client_ip"] for p in got}) == 1  # one scanner, one address per run
        proc.stop()
    finally:
        stack.stop()
