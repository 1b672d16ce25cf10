"""web-api: the lab's front door (Flask, served by gunicorn gthread).

Routes: GET /api/users (Postgres through a Redis cache), GET /api/users/<id>, GET /api/search?q=,
POST /api/login (proxied to auth-service), POST /api/checkout (token checked by auth-service,
payment enqueued to Celery), GET /health, GET /metrics. Configuration: environment variables
listed in README.md (same names in Compose and native mode).
"""

from __future__ import annotations

import _paths  # noqa: F401  (labcommon on sys.path)

import json
import logging
import os
import random
import tempfile
import time
import uuid

import psycopg_pool
import redis
import requests
from celery import Celery
from flask import Flask, Response, g, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from labcommon import jsonlog, tracing
from labcommon.resources import dir_bytes
from labcommon.schema import ensure_schema

import metrics as m
from webfaults import WebFaults

SERVICE = os.environ.get("SERVICE_NAME", "web-api")
CONFIG = {
    "database_url": os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    "redis_url": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "broker_url": os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
    "auth_url": os.environ.get("AUTH_SERVICE_URL", "http://127.0.0.1:8081").rstrip("/"),
    "pool_size": int(os.environ.get("DB_POOL_SIZE", "10")),
    "pool_timeout_s": float(os.environ.get("DB_POOL_TIMEOUT_S", "2")),
    "cache_ttl_s": int(os.environ.get("CACHE_TTL_S", "30")),
    "auth_timeout_s": float(os.environ.get("AUTH_TIMEOUT_S", "1.0")),
    # the service's data folder (disk_fill writes here); natively a per-port temp folder
    "data_dir": os.environ.get("DATA_DIR") or os.path.join(
        tempfile.gettempdir(), f"obslab-web-api-{os.environ.get('PORT', '8080')}"),
    "data_quota_mb": float(os.environ.get("DATA_QUOTA_MB", "64")),
    "benign_5xx_rate": float(os.environ.get("BENIGN_5XX_RATE", "0.002")),
    "seed": int(os.environ.get("SEED", "42")),
}
PAGE_SIZE = 20
MARKER_HEADERS = {"x-anomaly-type": "anomaly.type", "x-anomaly-label": "anomaly.label",
                  "x-anomaly-root-cause": "anomaly.root_cause", "x-anomaly-msg": "anomaly.msg"}

jsonlog.configure(SERVICE)
log = logging.getLogger(SERVICE)
TRACING = tracing.setup(SERVICE)
if TRACING:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    PsycopgInstrumentor().instrument()
    RedisInstrumentor().instrument()
    RequestsInstrumentor().instrument()
    CeleryInstrumentor().instrument()

app = Flask(__name__)
if TRACING:
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    FlaskInstrumentor().instrument_app(app, excluded_urls="health,metrics")

os.makedirs(CONFIG["data_dir"], exist_ok=True)
cache = redis.Redis.from_url(CONFIG["redis_url"], socket_timeout=2.0)
pool = psycopg_pool.ConnectionPool(
    CONFIG["database_url"], min_size=CONFIG["pool_size"], max_size=CONFIG["pool_size"],
    timeout=CONFIG["pool_timeout_s"], open=True, name="web-api")
pool.wait(timeout=60)
with pool.connection() as _conn:
    ensure_schema(_conn, CONFIG["seed"])
celery_app = Celery("web-api", broker=CONFIG["broker_url"])
celery_app.conf.update(task_ignore_result=True, broker_connection_retry_on_startup=True)
http = requests.Session()
rng = random.Random(CONFIG["seed"] + os.getpid())
faults = WebFaults(SERVICE, CONFIG["redis_url"], cache, pool, CONFIG, CONFIG["data_dir"], m.FAULT_ACTIVE,
                   seed=CONFIG["seed"])
faults.start()
m.POOL_SIZE.labels(service=SERVICE).set(CONFIG["pool_size"])
log.info("service started", extra={"event": "lifecycle", "port": os.environ.get("PORT", "8080"),
                                    "db_pool_size": CONFIG["pool_size"], "cache_ttl_s": CONFIG["cache_ttl_s"]})


class ApiError(Exception):
    def __init__(self, status: int, message: str, error_type: str | None = None):
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


# -- request lifecycle: markers, access log, metrics ---------------------------------------
@app.before_request
def _start():
    g.t0 = time.perf_counter()
    g.baggage_token = None
    markers = {attr: request.headers[h] for h, attr in MARKER_HEADERS.items() if h in request.headers}
    if markers and TRACING:
        from opentelemetry import baggage, context, trace

        span = trace.get_current_span()
        ctx = context.get_current()
        for attr, value in markers.items():
            span.set_attribute(attr, value)
            ctx = baggage.set_baggage(attr, value, ctx)
        g.baggage_token = context.attach(ctx)  # downstream calls carry the markers as baggage
    if request.path.startswith("/api/") and faults.error_spike():
        raise ApiError(500, "internal server error: upstream handler failed", "internal")
    if request.path.startswith("/api/") and faults.new_warning():
        m.WARNINGS.labels(SERVICE, "certificate_expiry").inc()
        gateway = rng.randint(1, 4)
        log.warning(f"payment provider certificate for gateway-{gateway} expires in {rng.randint(2, 9)} days; "
                    "renewal job has not run", extra={"event": "other", "gateway": f"gateway-{gateway}"})


@app.after_request
def _finish(resp):
    route = request.url_rule.rule if request.url_rule else "unmatched"
    if route in ("/metrics", "/health"):
        return resp
    elapsed = time.perf_counter() - g.get("t0", time.perf_counter())
    m.REQUESTS.labels(SERVICE, route, request.method, str(resp.status_code)).inc()
    m.LATENCY.labels(SERVICE, route, request.method).observe(elapsed)
    m.REQUEST_BYTES.labels(SERVICE, route).inc(request.content_length or 0)
    m.RESPONSE_BYTES.labels(SERVICE, route).inc(resp.calculate_content_length() or 0)
    level = logging.ERROR if resp.status_code >= 500 else logging.WARNING if resp.status_code >= 400 else logging.INFO
    # the client as a proxy would report it: the first X-Forwarded-For hop, else the peer
    client = (request.headers.get("X-Forwarded-For", "").split(",")[0].strip() or request.remote_addr or "")
    log.log(level, f"{request.method} {request.path} {resp.status_code}", extra={
        "event": "access", "method": request.method, "path": request.path, "route": route,
        "status": resp.status_code, "duration_ms": round(elapsed * 1000, 2),
        "client_ip": client, "user_agent": request.headers.get("User-Agent", "")[:200]})
    return resp


@app.teardown_request
def _teardown(_exc):
    token = g.get("baggage_token")
    if token is not None:
        from opentelemetry import context

        context.detach(token)


@app.errorhandler(ApiError)
def _api_error(err: ApiError):
    if err.error_type:
        m.ERRORS.labels(SERVICE, err.error_type).inc()
        log.error(err.message, extra={"event": "error", "error_type": err.error_type})
    return jsonify(error=err.message), err.status


@app.errorhandler(psycopg_pool.PoolTimeout)
def _pool_timeout(_err):
    return _api_error(ApiError(503, "database connection pool timeout", "db_pool_timeout"))


@app.errorhandler(404)
def _not_found(_err):
    return jsonify(error="not found"), 404


# -- helpers ---------------------------------------------------------------------------------
def query(sql: str, params=()) -> list[tuple]:
    with pool.connection() as conn:
        delay = faults.db_delay_s()
        if delay:
            conn.execute("SELECT pg_sleep(%s)", (delay,))
        return conn.execute(sql, params).fetchall()


def cached(key: str, load):
    """Read-through cache: JSON in Redis under cache:<key> for the effective TTL."""
    full = f"cache:{key}"
    if not faults.cache_bypass():
        raw = cache.get(full)
        if raw is not None:
            m.CACHE_HITS.labels(SERVICE).inc()
            return json.loads(raw)
    m.CACHE_MISSES.labels(SERVICE).inc()
    value = load()
    ttl = faults.cache_ttl_s()
    if ttl > 0:
        cache.set(full, json.dumps(value), ex=ttl)
    return value


def auth_call(method: str, path: str, **kwargs) -> requests.Response:
    m.BACKEND_CALLS.labels(SERVICE, request.url_rule.rule if request.url_rule else "unmatched", "auth-service").inc()
    drop, delay = faults.link_fault()
    timeout = CONFIG["auth_timeout_s"]
    try:
        if delay:
            time.sleep(delay)
        if drop:  # emulated packet loss: the call never gets an answer
            time.sleep(timeout)
            raise requests.Timeout(f"no response from auth-service within {timeout}s")
        return http.request(method, CONFIG["auth_url"] + path, timeout=timeout, **kwargs)
    except requests.Timeout as exc:
        raise ApiError(504, f"auth-service timeout: {exc}", "dependency_timeout") from exc
    except requests.ConnectionError as exc:
        raise ApiError(502, f"auth-service unreachable: {exc.__class__.__name__}", "dependency_error") from exc


def session_lookup() -> None:
    """route_backend_switch: /api/search asks auth-service about the session; the answer is not used,
    and a failed lookup is ignored (the route's status codes stay as they were)."""
    m.BACKEND_CALLS.labels(SERVICE, "/api/search", "auth-service").inc()
    try:
        http.get(CONFIG["auth_url"] + "/health", timeout=CONFIG["auth_timeout_s"])
    except requests.RequestException:
        pass


def benign_failure() -> None:
    if rng.random() < CONFIG["benign_5xx_rate"]:
        raise ApiError(500, "transient error: request could not be completed", "transient")


# -- routes ----------------------------------------------------------------------------------
@app.get("/api/users")
def list_users():
    page = request.args.get("page", "1")
    if not page.isdigit() or int(page) < 1:
        raise ApiError(400, "page must be a positive integer")
    page_n = int(page)

    def load():
        rows = query("SELECT id, username, email FROM users ORDER BY id LIMIT %s OFFSET %s",
                     (PAGE_SIZE, (page_n - 1) * PAGE_SIZE))
        return [{"id": r[0], "username": r[1], "email": r[2]} for r in rows]

    return jsonify(page=page_n, users=cached(f"users:page:{page_n}", load))


@app.get("/api/users/<int:user_id>")
def get_user(user_id: int):
    def load():
        rows = query("SELECT id, username, email FROM users WHERE id = %s", (user_id,))
        return {"id": rows[0][0], "username": rows[0][1], "email": rows[0][2]} if rows else None

    user = cached(f"users:{user_id}", load)
    if user is None:
        raise ApiError(404, f"user {user_id} not found")
    return jsonify(user)


@app.get("/api/search")
def search():
    q = request.args.get("q", "").strip()
    if not q:
        raise ApiError(400, "query parameter q is required")
    benign_failure()
    if faults.extra_backend_call():
        session_lookup()
    rows = query("SELECT id, name, category, price_cents FROM products WHERE lower(name) LIKE %s "
                 "ORDER BY id LIMIT 20", (f"%{q.lower()}%",))
    return jsonify(q=q, count=len(rows),
                   items=[{"id": r[0], "name": r[1], "category": r[2], "price_cents": r[3]} for r in rows])


@app.post("/api/login")
def login():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "JSON body with username and password required")
    resp = auth_call("POST", "/login", json=body)
    if resp.status_code >= 500:
        raise ApiError(502, f"auth-service answered {resp.status_code}", "dependency_error")
    return Response(resp.content, status=resp.status_code, content_type="application/json")


def _disk_full() -> bool:
    used = dir_bytes(CONFIG["data_dir"])
    m.DATA_DIR_BYTES.labels(SERVICE).set(used)
    return used > CONFIG["data_quota_mb"] * (1 << 20)


@app.post("/api/checkout")
def checkout():
    auth = request.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise ApiError(401, "missing bearer token")
    resp = auth_call("GET", "/validate", headers={"Authorization": auth})
    if resp.status_code == 401:
        raise ApiError(401, "invalid or expired token")
    if resp.status_code != 200:
        raise ApiError(502, f"auth-service answered {resp.status_code}", "dependency_error")
    user_id = int(resp.json()["user_id"])
    body = request.get_json(silent=True) or {}
    try:
        product_id, quantity = int(body["product_id"]), int(body.get("quantity", 1))
    except (KeyError, TypeError, ValueError):
        raise ApiError(400, "product_id (int) and quantity (int) required") from None
    if not 1 <= quantity <= 10:
        raise ApiError(400, "quantity must be between 1 and 10")
    rows = query("SELECT price_cents FROM products WHERE id = %s", (product_id,))
    if not rows:
        raise ApiError(404, f"product {product_id} not found")
    if _disk_full():
        raise ApiError(507, "no space left on device: data volume over quota", "disk_full")
    benign_failure()
    payment_id = uuid.UUID(int=rng.getrandbits(128), version=4).hex
    celery_app.send_task("payments.process", kwargs={
        "payment_id": payment_id, "user_id": user_id, "product_id": product_id,
        "quantity": quantity, "amount_cents": rows[0][0] * quantity})
    return jsonify(payment_id=payment_id, status="queued"), 202


@app.get("/health")
def health():
    return jsonify(status="ok", service=SERVICE)


@app.get("/metrics")
def metrics():
    stats = pool.get_stats()
    m.POOL_IN_USE.labels(SERVICE).set(stats.get("pool_size", 0) - stats.get("pool_available", 0))
    m.POOL_SIZE.labels(SERVICE).set(pool.max_size)
    m.POOL_WAITING.labels(SERVICE).set(stats.get("requests_waiting", 0))
    _disk_full()
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def shutdown() -> None:
    """Called by gunicorn's worker_exit hook: log, flush spans, close the pool."""
    log.info("service stopping", extra={"event": "lifecycle"})
    tracing.shutdown()
    pool.close()
