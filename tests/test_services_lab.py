"""The lab services as real processes (gunicorn, node, celery) against a real Redis and Postgres.

One stack per module (started in a few seconds): endpoints, the payment row a checkout
produces, JSON logs, cross-service traces with the anomaly markers, Prometheus metrics, and
fault flags in Redis that change behaviour and revert by themselves.
"""

from __future__ import annotations

import json
import re
import statistics
import time

import psycopg
import pytest
import redis
import requests

from lab_processes import metric_value, metrics_text, start_stack, wait_for
from obslab.lab.scenario import Injection, inject

pytestmark = pytest.mark.integration

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")
MARKERS = {"x-anomaly-type": "latency_spike", "x-anomaly-label": "inc-test-1",
           "x-anomaly-root-cause": "web-api", "x-anomaly-msg": "latency_spike level=high"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    # no benign transient 5xx here (web-api answers 0.2% of searches with one by default): these
    # tests read single answers; the benign failure has its own stack (test_services_benign.py)
    s = start_stack(tmp_path_factory.mktemp("lab"), extra_env={"web-api": {"BENIGN_5XX_RATE": "0"}})
    yield s
    s.stop()


@pytest.fixture(scope="module")
def r(stack):
    return redis.Redis.from_url(stack.redis_url)


def faults_active(stack) -> float:
    """fault_active summed over every fault and every service (0 when all have reverted)."""
    total = 0.0
    for service in ("web-api", "auth-service", "payment-worker"):
        for line in metrics_text(stack.url(service, "/metrics")).splitlines():
            if line.startswith("fault_active{"):
                total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(autouse=True)
def no_fault_carried_over(stack, r):
    """Each test starts and ends with no fault flag, and with every service reverted: a failed
    test never leaks its fault into the next one."""
    clear_faults(r)
    wait_for(lambda: faults_active(stack) == 0, 10, 0.2)
    yield
    clear_faults(r)


def set_fault(r, fault_id: str, params: dict, seconds: float, target: str = "web-api", level: str = "high"):
    """Set the flag the way the scenario runner does (TTL = duration)."""
    inject(r, Injection(0, fault_id, level, target, seconds, 0, f"inc-{fault_id}", params=params))


def clear_faults(r):
    for key in r.scan_iter(match="obslab:fault:*"):
        r.delete(key)


def fault_state(stack, fault_id: str, active: bool, target: str = "web-api", timeout: float = 5.0):
    """Wait until ``target`` reports the fault on (its poller read the flag) or off (the TTL ran
    out and it reverted): the condition, never a fixed delay."""
    want = 1.0 if active else 0.0
    wait_for(lambda: metric_value(metrics_text(stack.url(target, "/metrics")), "fault_active",
                                  fault_id=fault_id) == want, timeout, 0.1)


def login(stack, user="user0042") -> str:
    resp = requests.post(stack.url("web-api", "/api/login"), json={"username": user, "password": f"pw-{user}"},
                         timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["token"]


def timed_get(url: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    resp = requests.get(url, timeout=15)
    return time.perf_counter() - t0, resp.status_code


# --- endpoints ------------------------------------------------------------------------------------

def test_endpoints_answer_with_benign_errors(stack):
    w = lambda p: stack.url("web-api", p)  # noqa: E731
    users = requests.get(w("/api/users?page=2"), timeout=10)
    assert users.status_code == 200 and [u["id"] for u in users.json()["users"]][:2] == [21, 22]
    assert requests.get(w("/api/users/7"), timeout=10).json()["username"] == "user0007"
    assert requests.get(w("/api/users/9999"), timeout=10).status_code == 404
    found = requests.get(w("/api/search?q=lamp"), timeout=10).json()
    assert found["count"] > 0 and all("lamp" in item["name"] for item in found["items"])
    assert requests.get(w("/api/search"), timeout=10).status_code == 400
    bad = requests.post(w("/api/login"), json={"username": "user0001", "password": "nope"}, timeout=10)
    assert bad.status_code == 401
    assert requests.post(w("/api/checkout"), json={"product_id": 1}, timeout=10).status_code == 401
    forged = requests.post(w("/api/checkout"), json={"product_id": 1}, timeout=10,
                           headers={"Authorization": "Bearer abc.def"})
    assert forged.status_code == 401
    token = login(stack)
    missing = requests.post(w("/api/checkout"), json={"product_id": 99999}, timeout=10,
                            headers={"Authorization": f"Bearer {token}"})
    assert missing.status_code == 404


def test_checkout_writes_a_payment_row(stack):
    token = login(stack, "user0123")
    resp = requests.post(stack.url("web-api", "/api/checkout"), json={"product_id": 17, "quantity": 2},
                         headers={"Authorization": f"Bearer {token}", **MARKERS}, timeout=10)
    assert resp.status_code == 202, resp.text
    pid = resp.json()["payment_id"]

    def row():
        with psycopg.connect(stack.database_url) as conn:
            return conn.execute("SELECT user_id, product_id, quantity, amount_cents, status, trace_id "
                                "FROM payments WHERE id = %s", (pid,)).fetchone()

    user_id, product_id, quantity, amount, status, trace_id = wait_for(row, 15)
    with psycopg.connect(stack.database_url) as conn:
        price = conn.execute("SELECT price_cents FROM products WHERE id = 17").fetchone()[0]
    assert (user_id, product_id, quantity, amount) == (123, 17, 2, 2 * price)
    assert status in ("captured", "declined") and HEX32.match(trace_id)


# --- telemetry --------------------------------------------------------------------------------------

def test_trace_crosses_web_api_auth_and_worker_with_markers(stack):
    test_checkout_writes_a_payment_row(stack)

    def marked_trace():
        by_trace: dict[str, list[dict]] = {}
        for span in stack.spans():
            if span["attrs"].get("anomaly.label") == "inc-test-1":
                by_trace.setdefault(span["traceId"], []).append(span)
        for spans in by_trace.values():
            if {"web-api", "auth-service", "payment-worker"} <= {s["service"] for s in spans}:
                return spans
        return None

    spans = wait_for(marked_trace, 30, 0.5)
    # the fault-flag poller is not traced: no Redis spans that would track fault activity
    assert not [s for s in stack.spans() if s["name"].split()[0] in ("SCAN", "MGET")]
    for span in spans:
        assert span["attrs"]["anomaly.type"] == "latency_spike"
        assert span["attrs"]["anomaly.root_cause"] == "web-api"
    kinds = {(s["service"], s["name"]) for s in spans}
    assert any(svc == "payment-worker" and "payments.process" in name for svc, name in kinds), kinds
    # unmarked requests carry no markers
    requests.get(stack.url("web-api", "/api/search?q=desk"), timeout=10)
    wait_for(lambda: [s for s in stack.spans() if s["attrs"].get("http.route") == "/api/search"
                      and "anomaly.type" not in s["attrs"]], 20, 0.5)


def test_logs_are_json_lines_with_required_fields(stack):
    requests.get(stack.url("web-api", "/api/users?page=1"), timeout=10)
    login(stack)

    def access_logged():  # both requests' access lines are written (the sink is line-buffered)
        lines = stack.log_lines()
        return lines if {"web-api", "auth-service"} <= {s for s, line in lines if '"access"' in line} else None

    lines = wait_for(access_logged, 10)
    seen_services, lifecycle, access = set(), set(), set()
    for service, payload in lines:
        if service not in ("web-api", "auth-service", "payment-worker"):  # infrastructure logs its own formats
            continue
        obj = json.loads(payload)  # every app line is one JSON object
        for key in ("timestamp", "level", "service", "message", "event"):
            assert key in obj, (key, payload)
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", obj["timestamp"]), obj["timestamp"]
        assert obj["level"] in ("DEBUG", "INFO", "WARN", "ERROR")
        assert obj["event"] in ("access", "lifecycle", "error", "other")
        assert obj["service"] == service
        assert not any(k.startswith("anomaly") or "x-anomaly" in str(v) for k, v in obj.items()), payload
        seen_services.add(service)
        if obj["event"] == "lifecycle":
            lifecycle.add(service)
        if obj["event"] == "access":
            access.add(service)
            for key in ("method", "path", "status", "duration_ms"):
                assert key in obj, (key, payload)
            assert HEX32.match(obj["trace_id"]) and HEX16.match(obj["span_id"]), payload
    assert {"web-api", "auth-service", "payment-worker"} <= seen_services
    assert {"web-api", "auth-service", "payment-worker"} <= lifecycle
    assert {"web-api", "auth-service"} <= access


def test_metrics_endpoints_expose_the_documented_names(stack):
    requests.get(stack.url("web-api", "/api/users?page=3"), timeout=10)
    requests.get(stack.url("web-api", "/api/users?page=3"), timeout=10)
    login(stack)
    web = metrics_text(stack.url("web-api", "/metrics"))
    assert metric_value(web, "http_requests_total", service="web-api", route="/api/users", status="200") >= 2
    assert metric_value(web, "http_request_duration_seconds_count", service="web-api") is not None
    assert metric_value(web, "cache_hits_total", service="web-api") >= 1
    assert metric_value(web, "cache_misses_total", service="web-api") >= 1
    assert metric_value(web, "db_pool_size", service="web-api") == 10
    assert metric_value(web, "db_pool_in_use", service="web-api") is not None
    assert metric_value(web, "fault_active", fault_id="latency_spike") == 0
    assert metric_value(web, "process_resident_memory_bytes") > 0
    auth = metrics_text(stack.url("auth-service", "/metrics"))
    assert metric_value(auth, "http_requests_total", service="auth-service", route="/login") >= 1
    assert metric_value(auth, "process_cpu_seconds_total") is not None
    assert metric_value(auth, "fault_active", fault_id="dependency_bottleneck") == 0
    worker = metrics_text(stack.url("payment-worker", "/metrics"))
    assert metric_value(worker, "celery_queue_depth", queue="celery") is not None
    assert metric_value(worker, "payment_task_duration_seconds_count") is not None
    assert metric_value(worker, "process_resident_memory_bytes") > 0
    # every fault of the catalog is implemented by some service (each exposes its fault_active)
    from lab_processes import APPENDIX
    from obslab.lab.scenario import load_catalog

    exposed = {m for text in (web, auth, worker) for m in re.findall(r'^fault_active\{fault_id="([^"]+)"', text, re.M)}
    catalog = load_catalog(APPENDIX / "faults.yaml")
    # a fault another process acts out (the load generator's scanner) is implemented there
    elsewhere = {f: s.raw["implemented_by"] for f, s in catalog.items() if s.raw.get("implemented_by")}
    for fault_id, process in elsewhere.items():
        assert f'"{fault_id}"' in (APPENDIX / "services" / process / "loadgen.py").read_text(), fault_id
    assert set(catalog) - set(elsewhere) <= exposed, set(catalog) - set(elsewhere) - exposed
    for fault_id, spec in catalog.items():
        if fault_id in elsewhere:
            continue
        text = {"web-api": web, "auth-service": auth, "payment-worker": worker}[spec.target]
        assert metric_value(text, "fault_active", fault_id=fault_id) == 0, (fault_id, spec.target)


# --- faults ------------------------------------------------------------------------------------------

def test_error_spike_gives_5xx_and_reverts(stack, r):
    url = stack.url("web-api", "/api/search?q=chair")
    assert requests.get(url, timeout=10).status_code == 200
    set_fault(r, "error_spike", {"error_rate": 1.0}, seconds=3)
    wait_for(lambda: requests.get(url, timeout=10).status_code == 500, 3)
    assert metric_value(metrics_text(stack.url("web-api", "/metrics")), "fault_active", fault_id="error_spike") == 1
    wait_for(lambda: requests.get(url, timeout=10).status_code == 200, 6, 0.3)  # the TTL ran out
    assert metric_value(metrics_text(stack.url("web-api", "/metrics")), "fault_active", fault_id="error_spike") == 0
    assert any('"error_type":"internal"' in line for _s, line in stack.log_lines())


def test_latency_spike_slows_search_and_reverts(stack, r):
    url = stack.url("web-api", "/api/search?q=desk")
    base = statistics.median(timed_get(url)[0] for _ in range(5))
    set_fault(r, "latency_spike", {"delay_s": 0.4, "fraction": 1.0}, seconds=4)
    fault_state(stack, "latency_spike", True)
    during = statistics.median(timed_get(url)[0] for _ in range(3))
    assert during >= max(3 * base, 0.35), (base, during)
    fault_state(stack, "latency_spike", False, timeout=8)
    after = statistics.median(timed_get(url)[0] for _ in range(5))
    assert after < min(during / 2, max(0.2, 3 * base)), (base, during, after)


def test_dependency_bottleneck_slows_auth(stack, r):
    base = min(timed_post_login(stack) for _ in range(3))
    set_fault(r, "dependency_bottleneck", {"delay_ms": 500, "jitter_ms": 0, "fraction": 1.0}, 3,
              target="auth-service")
    fault_state(stack, "dependency_bottleneck", True, target="auth-service")
    during = timed_post_login(stack)
    assert during >= 0.45 and during >= 3 * base, (base, during)
    wait_for(lambda: timed_post_login(stack) < max(0.3, 3 * base), 6, 0.3)


def timed_post_login(stack) -> float:
    t0 = time.perf_counter()
    login(stack, "user0005")
    return time.perf_counter() - t0


def test_packet_loss_partition_gives_504(stack, r):
    set_fault(r, "packet_loss", {"drop_fraction": 1.0, "delay_ms": 0}, 3)
    fault_state(stack, "packet_loss", True)
    resp = requests.post(stack.url("web-api", "/api/login"), json={"username": "user0001",
                                                                    "password": "pw-user0001"}, timeout=10)
    assert resp.status_code == 504
    wait_for(lambda: requests.post(stack.url("web-api", "/api/login"), timeout=10, json={
        "username": "user0001", "password": "pw-user0001"}).status_code == 200, 6, 0.3)


def test_db_pool_exhaustion_holds_connections_and_restores(stack, r):
    url = stack.url("web-api", "/api/search?q=eco")
    set_fault(r, "db_pool_exhaustion", {"hold": "all"}, 5)
    wait_for(lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "db_pool_in_use",
                                  service="web-api") == 10, 4)
    elapsed, status = timed_get(url)
    assert status == 503 and elapsed >= 1.5, (status, elapsed)
    wait_for(lambda: requests.get(url, timeout=10).status_code == 200, 8, 0.3)
    wait_for(lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "db_pool_in_use",
                                  service="web-api") <= 2, 4)


def test_memory_leak_grows_rss_and_frees_it(stack, r):
    def rss():
        return metric_value(metrics_text(stack.url("web-api", "/metrics")), "process_resident_memory_bytes")

    before = rss()
    set_fault(r, "memory_leak", {"mb_per_s": 40, "max_mb": 120}, 4)
    peak = wait_for(lambda: (v := rss()) > before + 80e6 and v, 6, 0.3)
    wait_for(lambda: not r.exists("obslab:fault:memory_leak"), 5)
    after = wait_for(lambda: (v := rss()) < peak - 60e6 and v, 5, 0.3)
    assert before < peak and after < peak, (before, peak, after)


def test_cache_miss_storm_bypasses_the_cache(stack, r):
    url = stack.url("web-api", "/api/users?page=4")
    requests.get(url, timeout=10)
    hits = lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "cache_hits_total",  # noqa: E731
                                service="web-api") or 0.0
    h0 = hits()
    requests.get(url, timeout=10)
    assert hits() == h0 + 1  # a warm cache hits
    set_fault(r, "cache_miss_storm", {"miss_fraction": 1.0}, 3)
    fault_state(stack, "cache_miss_storm", True)
    h1 = hits()
    for _ in range(5):
        requests.get(url, timeout=10)
    assert hits() == h1  # every read bypassed the cache
    fault_state(stack, "cache_miss_storm", False, timeout=8)
    requests.get(url, timeout=10)
    requests.get(url, timeout=10)
    assert hits() >= h1 + 1


def test_bad_config_deploy_shrinks_pool_and_logs_a_reload(stack, r):
    size = lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "db_pool_size", service="web-api")  # noqa: E731
    set_fault(r, "bad_config_deploy", {"cache_ttl_s": 1, "pool_size": 2}, 3)
    wait_for(lambda: size() == 2, 3)
    assert requests.get(stack.url("web-api", "/api/search?q=red"), timeout=10).status_code == 200
    wait_for(lambda: size() == 10, 6, 0.3)
    reloads = wait_for(lambda: (x := [json.loads(line) for s, line in stack.log_lines()
                                      if s == "web-api" and "configuration reloaded" in line])
                       and x[-1]["db_pool_size"] == 10 and x, 5)
    assert [x["db_pool_size"] for x in reloads][-2:] == [2, 10]
    assert all(x["event"] == "lifecycle" for x in reloads)


def test_disk_fill_writes_a_file_and_removes_it(stack, r):
    data = stack.data_dir("web-api")
    used = lambda: sum(p.stat().st_size for p in data.glob("fault-disk-fill-*"))  # noqa: E731
    set_fault(r, "disk_fill", {"mb_per_s": 40, "max_mb": 80}, 3)
    wait_for(lambda: used() > 65 << 20, 5, 0.2)
    token = login(stack)
    resp = requests.post(stack.url("web-api", "/api/checkout"), json={"product_id": 3},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert resp.status_code == 507  # over the 64 MB quota
    wait_for(lambda: not list(data.glob("fault-disk-fill-*")), 6, 0.3)


def test_cpu_saturation_burns_cpu_and_stops(stack, r):
    def cpu():
        return metric_value(metrics_text(stack.url("web-api", "/metrics")), "process_cpu_seconds_total")

    def rate_over(seconds: float) -> float:  # CPU seconds per second over a measured interval
        c0, t0 = cpu(), time.monotonic()
        time.sleep(seconds)  # the measurement window itself, not a wait for a state
        return (cpu() - c0) / (time.monotonic() - t0)

    idle = rate_over(1.0)
    set_fault(r, "cpu_saturation", {"threads": 1, "duty": 1.0}, 3)
    fault_state(stack, "cpu_saturation", True)
    busy = rate_over(1.5)
    # relative figures: the 2 shared cores may be busy with other work
    assert busy >= max(0.15, 3 * idle), (idle, busy)
    fault_state(stack, "cpu_saturation", False, timeout=8)
    after = rate_over(1.5)
    assert after <= max(busy / 2, idle + 0.1), (idle, busy, after)


def test_queue_pause_builds_a_backlog_that_drains(stack, r):
    depth = lambda: metric_value(metrics_text(stack.url("payment-worker", "/metrics")), "celery_queue_depth",  # noqa: E731
                                 queue="celery")
    set_fault(r, "queue_pause", {"max_stall_s": 60}, 4, target="payment-worker")
    fault_state(stack, "queue_pause", True, target="payment-worker")
    token = login(stack)
    ids = []
    for i in range(8):
        resp = requests.post(stack.url("web-api", "/api/checkout"), json={"product_id": 30 + i},
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert resp.status_code == 202
        ids.append(resp.json()["payment_id"])
    assert depth() >= 4  # two stalled consumers hold one message each; the rest wait in Redis
    wait_for(lambda: depth() == 0, 10, 0.3)

    def all_written():
        with psycopg.connect(stack.database_url) as conn:
            return conn.execute("SELECT count(*) FROM payments WHERE id = ANY(%s)", (ids,)).fetchone()[0] == 8

    wait_for(all_written, 10, 0.3)


def test_worker_slowdown_lengthens_tasks(stack, r):
    set_fault(r, "worker_slowdown", {"delay_s": 0.5}, 3, target="payment-worker")
    fault_state(stack, "worker_slowdown", True, target="payment-worker")
    before = metric_value(metrics_text(stack.url("payment-worker", "/metrics")), "payment_task_duration_seconds_sum")
    n0 = metric_value(metrics_text(stack.url("payment-worker", "/metrics")), "payment_task_duration_seconds_count")
    token = login(stack)
    requests.post(stack.url("web-api", "/api/checkout"), json={"product_id": 5},
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    text = wait_for(lambda: (t := metrics_text(stack.url("payment-worker", "/metrics"))) and metric_value(
        t, "payment_task_duration_seconds_count") > n0 and t, 5)
    assert metric_value(text, "payment_task_duration_seconds_sum") - before >= 0.5


def test_lock_contention_blocks_search_and_releases(stack, r):
    url = stack.url("web-api", "/api/search?q=lamp")
    base = statistics.median(timed_get(url)[0] for _ in range(5))
    set_fault(r, "lock_contention", {"hold_ms": 900}, seconds=4)
    wait_for(lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "fault_active",
                                  fault_id="lock_contention") == 1, 3)
    during = max(timed_get(url)[0] for _ in range(4))  # a query that meets the lock waits for it
    assert during >= max(3 * base, 0.2), (base, during)
    wait_for(lambda: not r.exists("obslab:fault:lock_contention"), 6)
    wait_for(lambda: max(timed_get(url)[0] for _ in range(3)) < max(0.15, 3 * base), 6, 0.3)


def test_route_backend_switch_adds_a_caller_callee_pair_without_changing_status(stack, r):
    url = stack.url("web-api", "/api/search?q=desk")
    calls = lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "backend_calls_total",  # noqa: E731
                                 service="web-api", route="/api/search", backend="auth-service") or 0
    before = calls()
    set_fault(r, "route_backend_switch", {"fraction": 1.0}, seconds=3)
    wait_for(lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "fault_active",
                                  fault_id="route_backend_switch") == 1, 3)
    statuses = [requests.get(url, timeout=10).status_code for _ in range(5)]
    assert statuses == [200] * 5
    assert calls() >= before + 4
    wait_for(lambda: not r.exists("obslab:fault:route_backend_switch"), 5)
    wait_for(lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "fault_active",
                                  fault_id="route_backend_switch") == 0, 3)
    settled = calls()
    requests.get(url, timeout=10)
    assert calls() == settled


def test_new_error_template_logs_a_new_warning_with_unchanged_status(stack, r):
    url = stack.url("web-api", "/api/users?page=2")
    set_fault(r, "new_error_template", {"fraction": 1.0}, seconds=3)
    wait_for(lambda: metric_value(metrics_text(stack.url("web-api", "/metrics")), "fault_active",
                                  fault_id="new_error_template") == 1, 3)
    assert [requests.get(url, timeout=10).status_code for _ in range(3)] == [200] * 3
    # the lines reach the log through the process's pipe: wait for them, not for a delay
    warn = wait_for(lambda: (w := [json.loads(l) for s, l in stack.log_lines()
                                   if s == "web-api" and "certificate for gateway" in l]) and len(w) >= 3 and w, 10)
    assert all(l["level"] == "WARN" for l in warn), warn[:2]
    clear_faults(r)


def test_access_log_and_byte_counters(stack):
    requests.get(stack.url("web-api", "/api/users?page=1"), headers={"X-Forwarded-For": "198.51.100.7"}, timeout=10)
    access = wait_for(lambda: [o for s, l in stack.log_lines() if s == "web-api" and "198.51.100.7" in l
                               and (o := json.loads(l)).get("event") == "access" and o.get("client_ip") == "198.51.100.7"], 10)
    assert access[-1]["user_agent"].startswith("python-requests")
    text = metrics_text(stack.url("web-api", "/metrics"))
    assert metric_value(text, "http_response_bytes_total", service="web-api", route="/api/users") > 0
    login(stack)
    auth = metrics_text(stack.url("auth-service", "/metrics"))
    assert metric_value(auth, "http_response_bytes_total", service="auth-service", route="/login") > 0
    assert metric_value(auth, "http_request_bytes_total", service="auth-service", route="/login") > 0
