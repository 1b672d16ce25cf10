"""The inference daemon: REST ingestion of server metrics, rolling window, scoring.

Modules: ``schemas`` (request/response models), ``app`` (FastAPI factory), ``service`` (state
and operations), ``store`` (SQLite log and rolling window), ``model_store`` (the model folder:
the library's ``obslab.train`` folder plus the daemon's reference; training, scoring),
``features`` (record inputs through ``obslab.features.FeatureSpec``), ``_window`` (scoring a
server's recent window), ``fleet`` (the metrics-feed guide's server profiles, leaks to inject),
``evaluation`` (thresholds chosen on a validation fleet, false alarms, detection delay), ``_errors`` (the guide's validation format), ``auth``, ``ratelimit``, ``guard`` (ASGI
security layer), ``prometheus`` / ``zabbix`` (turning monitoring data into feed records),
``cli`` (``obslab serve``, ``obslab serve train``) / ``feed_cli``.
Heavy imports (torch, FastAPI) happen only when a name is used.
"""

from __future__ import annotations

import importlib

__all__ = ["create_app", "ServeSettings", "load_model", "train_server_model"]

_WHERE = {
    "create_app": "obslab.serve.app",
    "ServeSettings": "obslab.serve.app",
    "load_model": "obslab.serve.model_store",
    "train_server_model": "obslab.serve.model_store",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'obslab.serve' has no attribute {name!r}")
