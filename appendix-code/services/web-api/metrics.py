"""Prometheus metrics of web-api (names documented in appendix-code/TELEMETRY.md)."""

from prometheus_client import Counter, Gauge, Histogram

SERVICE_LABEL = ["service"]

REQUESTS = Counter("http_requests_total", "HTTP requests served", ["service", "route", "method", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds", "HTTP request duration", ["service", "route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
ERRORS = Counter("app_errors_total", "Application errors by type", ["service", "type"])
CACHE_HITS = Counter("cache_hits_total", "Cache hits", SERVICE_LABEL)
CACHE_MISSES = Counter("cache_misses_total", "Cache misses", SERVICE_LABEL)
POOL_IN_USE = Gauge("db_pool_in_use", "DB connections checked out of the pool", SERVICE_LABEL)
POOL_SIZE = Gauge("db_pool_size", "DB pool maximum size", SERVICE_LABEL)
POOL_WAITING = Gauge("db_pool_waiting", "Requests waiting for a DB connection", SERVICE_LABEL)
DATA_DIR_BYTES = Gauge("data_dir_bytes", "Bytes used in the service's data folder", SERVICE_LABEL)
REQUEST_BYTES = Counter("http_request_bytes_total", "Request body bytes received", ["service", "route"])
RESPONSE_BYTES = Counter("http_response_bytes_total", "Response body bytes sent", ["service", "route"])
BACKEND_CALLS = Counter("backend_calls_total", "Calls to other services by route and backend",
                        ["service", "route", "backend"])
WARNINGS = Counter("app_warnings_total", "WARNING log lines the application writes, by kind", ["service", "kind"])
FAULT_ACTIVE = Gauge("fault_active", "1 while a fault flag is active (verification only)", ["fault_id"])
