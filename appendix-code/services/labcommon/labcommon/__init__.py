"""Code shared by the lab's Python services (web-api, payment-worker, load-generator).

Each service folder finds this package next to itself (services/labcommon) both natively and
in its container image, so there is one copy of the logging, tracing and fault-flag code.
"""

__all__ = ["jsonlog", "tracing", "faults"]
