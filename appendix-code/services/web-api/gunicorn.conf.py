"""gunicorn settings for web-api: gthread workers, JSON logs, clean shutdown."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "labcommon"))

bind = f"{os.environ.get('BIND_HOST', '127.0.0.1')}:{os.environ.get('PORT', '8080')}"
# One process keeps Prometheus metrics and the DB pool coherent; threads give concurrency.
workers = int(os.environ.get("WEB_WORKERS", "1"))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))
timeout = 60
graceful_timeout = 10
control_socket_disable = True  # several lab instances may run side by side
accesslog = None  # web-api writes its own JSON access lines
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "labcommon.jsonlog.JsonFormatter"}},
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["stdout"]},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["stdout"], "propagate": False},
        "gunicorn.access": {"level": "WARNING", "handlers": ["stdout"], "propagate": False},
    },
}


def worker_exit(server, worker):
    app_module = sys.modules.get("app")
    if app_module is not None and hasattr(app_module, "shutdown"):
        app_module.shutdown()
