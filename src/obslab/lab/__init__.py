"""The native lab runner: infrastructure processes, the Compose file as the source of truth,
Prometheus export, fault scenarios with ground truth, and the ``obslab lab`` command.

Submodules: ``processes`` (start/stop helpers), ``compose`` (docker-compose.yml + .env),
``scenario`` (plans, injection, verification),
``runner`` (the whole run), ``cli``.
"""

from obslab.lab.compose import ComposeError, ServiceSpec, interpolate, load_compose, rewrite_hosts
from obslab.lab.processes import LabError, LogSink, ManagedProcess, find_binary, free_port
from obslab.prom import export_range, load_queries

__all__ = [
    "ComposeError", "ServiceSpec", "interpolate", "load_compose", "rewrite_hosts",
    "LabError", "LogSink", "ManagedProcess", "find_binary", "free_port",
    "export_range", "load_queries",
]
