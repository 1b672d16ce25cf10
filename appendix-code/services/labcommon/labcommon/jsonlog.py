"""One JSON object per log line on stdout, with the fields TELEMETRY.md documents."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

__all__ = ["JsonFormatter", "configure", "get_logger", "log_event", "utc_ms"]

_LEVELS = {"WARNING": "WARN", "CRITICAL": "ERROR"}
# LogRecord attributes that are not user fields.
_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def utc_ms(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created % 1 * 1000):03d}Z"


def _trace_ids() -> dict:
    try:  # tracing is optional (OTEL_SDK_DISABLED, load generator)
        from opentelemetry import trace
    except ImportError:
        return {}
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return {}
    return {"trace_id": format(ctx.trace_id, "032x"), "span_id": format(ctx.span_id, "016x")}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str | None = None):
        super().__init__()
        self.service = service or os.environ.get("SERVICE_NAME", "unknown")

    def format(self, record: logging.LogRecord) -> str:
        level = _LEVELS.get(record.levelname, record.levelname)
        out = {
            "timestamp": utc_ms(record.created),
            "level": level,
            "service": self.service,
            "message": record.getMessage(),
            "event": getattr(record, "event", None) or ("error" if level == "ERROR" else "other"),
            "logger": record.name,
        }
        out.update(_trace_ids())
        for key, value in vars(record).items():
            if key not in _RESERVED and key != "event":
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def configure(service: str | None = None, level: str | None = None) -> None:
    """Route the root logger to stdout as JSON; replaces handlers others installed."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    for noisy in ("urllib3", "werkzeug", "kombu", "amqp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def log_event(logger: logging.Logger, level: int, event: str, message: str, **fields) -> None:
    logger.log(level, message, extra={"event": event, **fields})
