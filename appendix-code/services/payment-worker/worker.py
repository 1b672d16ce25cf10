"""payment-worker: Celery on Redis. Task ``payments.process`` writes a payment row to Postgres.

Run: ``celery -A worker --quiet worker --pool=threads --concurrency=2 --without-mingle
--without-gossip`` (the compose file's command). The threads pool keeps one process, so the
Prometheus metrics on METRICS_PORT and the fault mechanisms see every task.
"""

from __future__ import annotations

import _paths  # noqa: F401  (labcommon on sys.path)

import json
import logging
import os
import random
import tempfile
import time
import warnings

import psycopg_pool
import redis
from celery import Celery, signals
from celery.apps import worker as _celery_worker_app
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

from labcommon import jsonlog, tracing
from labcommon.faults import FaultFlags
from labcommon.resources import ResourceFaults
from labcommon.schema import ensure_schema

SERVICE = os.environ.get("SERVICE_NAME", "payment-worker")
BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
QUEUE = "celery"
KNOWN_FAULTS = ("queue_pause", "worker_slowdown", "memory_leak", "cpu_saturation", "disk_fill")

log = logging.getLogger(SERVICE)
app = Celery("payment-worker", broker=BROKER)
app.conf.update(
    task_ignore_result=True,
    worker_prefetch_multiplier=1,  # a stalled worker leaves the backlog visible in Redis
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

TASKS = Counter("payment_tasks_total", "Payment tasks by final status", ["status"])
DURATION = Histogram("payment_task_duration_seconds", "Payment task duration",
                     buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
ERRORS = Counter("app_errors_total", "Application errors by type", ["service", "type"])
POOL_IN_USE = Gauge("db_pool_in_use", "DB connections checked out of the pool", ["service"])
POOL_SIZE = Gauge("db_pool_size", "DB pool maximum size", ["service"])
FAULT_ACTIVE = Gauge("fault_active", "1 while a fault flag is active (verification only)", ["fault_id"])


class _State:
    pool: psycopg_pool.ConnectionPool | None = None
    flags: FaultFlags | None = None
    resources: ResourceFaults | None = None
    redis: redis.Redis | None = None
    rng = random.Random(int(os.environ.get("SEED", "42")))


state = _State()


class QueueDepthCollector:
    """celery_queue_depth{queue}: LLEN of the broker queue, measured at scrape time."""

    def collect(self):
        g = GaugeMetricFamily("celery_queue_depth", "Messages waiting in the Celery queue", labels=["queue"])
        try:
            g.add_metric([QUEUE], float(state.redis.llen(QUEUE)) if state.redis else float("nan"))
        except redis.RedisError:
            g.add_metric([QUEUE], float("nan"))
        yield g


# Native runs are often root; the warning would be a non-JSON line in the logs.
warnings.filterwarnings("ignore", message=".*superuser privileges.*")


def _say_json(msg: str, f=None) -> None:
    """Celery prints shutdown notices as bare text from its signal handler; keep them JSON.

    Replaces celery.apps.worker.safe_say; like the original it only calls os.write (no locks),
    so it is safe inside a signal handler.
    """
    line = json.dumps({"timestamp": jsonlog.utc_ms(time.time()), "level": "INFO", "service": SERVICE,
                       "message": msg.strip(), "event": "lifecycle" if "shutdown" in msg else "other"})
    try:
        os.write(1, (line + "\n").encode())
    except OSError:
        pass


_celery_worker_app.safe_say = _say_json


@signals.setup_logging.connect
def _logging(**_kwargs):
    jsonlog.configure(SERVICE)
    for chatty in ("celery.worker.strategy", "celery.app.trace"):  # our own line per task suffices
        logging.getLogger(chatty).setLevel(logging.WARNING)


def _on_fault_change(old: dict, new: dict) -> None:
    for fault_id in set(old) | set(new):
        FAULT_ACTIVE.labels(fault_id=fault_id).set(1 if fault_id in new else 0)
    state.resources.apply(new)


def _init_process() -> None:
    """Tracing, DB pool, schema, fault flags and the metrics endpoint (once per process)."""
    if state.pool is not None:
        return
    if tracing.setup(SERVICE):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

        CeleryInstrumentor().instrument()
        PsycopgInstrumentor().instrument()
    size = int(os.environ.get("DB_POOL_SIZE", "4"))
    state.pool = psycopg_pool.ConnectionPool(
        os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        min_size=min(2, size), max_size=size, timeout=5, open=True, name="payment-worker")
    state.pool.wait(timeout=60)
    with state.pool.connection() as conn:
        ensure_schema(conn, int(os.environ.get("SEED", "42")))
    POOL_SIZE.labels(SERVICE).set(size)
    state.redis = redis.Redis.from_url(os.environ.get("REDIS_URL", BROKER), socket_timeout=2.0)
    data_dir = os.environ.get("DATA_DIR") or os.path.join(
        tempfile.gettempdir(), f"obslab-payment-worker-{os.environ.get('METRICS_PORT', '9102')}")
    state.resources = ResourceFaults(SERVICE, data_dir)
    for fault_id in KNOWN_FAULTS:
        FAULT_ACTIVE.labels(fault_id=fault_id).set(0)
    state.flags = FaultFlags(os.environ.get("REDIS_URL", BROKER), on_change=_on_fault_change)
    state.flags.start()
    REGISTRY.register(QueueDepthCollector())
    start_http_server(int(os.environ.get("METRICS_PORT", "9102")), addr=os.environ.get("BIND_HOST", "127.0.0.1"))


@signals.worker_init.connect
def _worker_init(**_kwargs):
    _init_process()


@signals.worker_process_init.connect  # prefork children, if someone runs the worker that way
def _child_init(**_kwargs):
    _init_process()


@signals.worker_ready.connect
def _ready(**_kwargs):
    log.info("service started", extra={"event": "lifecycle", "queue": QUEUE,
                                        "metrics_port": os.environ.get("METRICS_PORT", "9102")})


@signals.worker_shutdown.connect
def _shutdown(**_kwargs):
    log.info("service stopping", extra={"event": "lifecycle"})
    if state.resources is not None:
        state.resources.apply({})
    tracing.shutdown()


def _fault(fault_id: str) -> dict | None:
    return state.flags.get(fault_id, target=SERVICE) if state.flags else None


def _stall_while_paused() -> None:
    """queue_pause: the consumer stops making progress until the flag expires (or max_stall_s)."""
    started = time.monotonic()
    while (flag := _fault("queue_pause")) and time.monotonic() - started < float(
            flag["params"].get("max_stall_s", 600)):
        time.sleep(0.25)


@app.task(name="payments.process", bind=True)
def process_payment(self, payment_id: str, user_id: int, product_id: int, quantity: int, amount_cents: int):
    t0 = time.perf_counter()
    _stall_while_paused()
    slow = _fault("worker_slowdown")
    time.sleep(state.rng.uniform(0.005, 0.02) + (float(slow["params"].get("delay_s", 1.0)) if slow else 0.0))
    status = "declined" if state.rng.random() < 0.02 else "captured"  # benign card declines
    trace_id = None
    if tracing.enabled():
        from opentelemetry import trace

        ctx = trace.get_current_span().get_span_context()
        trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else None
    try:
        with state.pool.connection() as conn:
            stats = state.pool.get_stats()
            POOL_IN_USE.labels(SERVICE).set(stats.get("pool_size", 0) - stats.get("pool_available", 0))
            conn.execute(
                "INSERT INTO payments (id, user_id, product_id, quantity, amount_cents, status, trace_id)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
                (payment_id, user_id, product_id, quantity, amount_cents, status, trace_id))
    except Exception as exc:
        status = "failed"
        ERRORS.labels(SERVICE, "db_error").inc()
        log.error(f"payment {payment_id} failed: {exc.__class__.__name__}", extra={"event": "error", "payment_id": payment_id})
    elapsed = time.perf_counter() - t0
    TASKS.labels(status).inc()
    DURATION.observe(elapsed)
    log.info(f"payment {payment_id} {status}", extra={
        "event": "other", "payment_id": payment_id, "status": status, "duration_ms": round(elapsed * 1000, 2)})
    return status
