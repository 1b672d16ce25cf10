"""OpenTelemetry set-up shared by the Python services.

OTEL_SDK_DISABLED=true: no provider and no instrumentation (the throughput baseline).
OTEL_TRACES_FILE / OTEL_METRICS_FILE set (native mode): OTLP JSON lines appended to those files.
Otherwise: OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (the Collector in Compose, which writes
traces.jsonl and metrics.jsonl). Metrics (the instrumentations' request durations and the like)
are exported every OTEL_METRIC_EXPORT_INTERVAL ms (10 s unless set).
Markers travelling in W3C baggage (anomaly.*) are copied onto every span started in that context.
"""

from __future__ import annotations

import os

from opentelemetry import baggage
from opentelemetry.sdk.trace import SpanProcessor

__all__ = ["MARKER_KEYS", "BaggageMarkerProcessor", "enabled", "setup", "shutdown"]

MARKER_KEYS = ("anomaly.type", "anomaly.label", "anomaly.root_cause", "anomaly.msg")
_provider = None
_meter_provider = None


def enabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "false").strip().lower() != "true"


class BaggageMarkerProcessor(SpanProcessor):
    """Copy anomaly.* baggage entries of the parent context onto each new span."""

    def on_start(self, span, parent_context=None):
        for key, value in baggage.get_all(parent_context).items():
            if key in MARKER_KEYS:
                span.set_attribute(key, str(value))



def setup(service: str | None = None) -> bool:
    """Install the global tracer provider once per process; returns whether tracing is on."""
    global _provider
    if not enabled():
        return False
    if _provider is not None:
        return True
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = service or os.environ.get("OTEL_SERVICE_NAME") or os.environ.get("SERVICE_NAME", "unknown")
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BaggageMarkerProcessor())
    exporter = _exporter("traces")
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    trace.set_tracer_provider(provider)
    _provider = provider
    _setup_metrics(provider.resource)
    return True


def _setup_metrics(resource) -> None:
    """The global meter provider, before the instrumentations ask for their meters."""
    global _meter_provider
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    exporter = _exporter("metrics")
    interval = float(os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") or 10000)
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=interval)
    _meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    metrics.set_meter_provider(_meter_provider)


def shutdown() -> None:
    """Flush and stop the exporter (called on process exit paths that skip atexit)."""
    if _provider is not None:
        _provider.force_flush(5000)
        _provider.shutdown()
    if _meter_provider is not None:
        _meter_provider.shutdown(5000)


def _exporter(signal: str):
    """The exporter of ``signal`` ("traces" or "metrics"): OTLP JSON lines to the file that
    ``OTEL_<SIGNAL>_FILE`` names (the native lab), else OTLP/HTTP to the Collector (Compose)."""
    path = os.environ.get(f"OTEL_{signal.upper()}_FILE")
    if path:
        from opentelemetry.exporter.otlp.json import file

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        return (file.FileSpanExporter if signal == "traces" else file.FileMetricExporter)(path)
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/")
    if signal == "traces":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as http
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as http
    return http(endpoint=f"{endpoint}/v1/{signal}")
