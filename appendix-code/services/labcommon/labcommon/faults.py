"""Fault flags: read the active faults from Redis, the same way in Compose and native mode.

A flag is the key ``obslab:fault:<fault_id>`` holding JSON
``{"fault_id", "level", "incident_id", "params": {...}, "target"}`` with a TTL equal to the
fault's duration, so a fault reverts by itself. One background thread per process polls the
keys every ``interval`` seconds (never a Redis call per request) and calls ``on_change`` with
the new set when it changes, so mechanisms can start and release what they hold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from typing import Callable

__all__ = ["KEY_PREFIX", "FaultFlags", "flag_key", "markers_for"]

KEY_PREFIX = "obslab:fault:"
log = logging.getLogger("faults")


def flag_key(fault_id: str) -> str:
    return KEY_PREFIX + fault_id


def markers_for(active: dict[str, dict]) -> dict[str, str]:
    """x-anomaly-* request headers describing the active faults ({} when none)."""
    if not active:
        return {}
    flags = [active[k] for k in sorted(active)]
    return {
        "x-anomaly-type": ",".join(f["fault_id"] for f in flags),
        "x-anomaly-label": ",".join(str(f.get("incident_id") or f["fault_id"]) for f in flags),
        "x-anomaly-root-cause": ",".join(str(f.get("target", "")) for f in flags),
        "x-anomaly-msg": ";".join(f"{f['fault_id']} level={f.get('level', '')}" for f in flags),
    }


def _untraced():
    """Suppress OTel instrumentation (e.g. the redis client's spans) where it is installed."""
    try:
        from opentelemetry.instrumentation.utils import suppress_instrumentation
    except ImportError:  # the load generator runs without OpenTelemetry
        return contextlib.nullcontext()
    return suppress_instrumentation()


class FaultFlags:
    """Cached view of the active fault flags, refreshed by a daemon thread."""

    def __init__(self, redis_url: str, interval: float = 0.5,
                 on_change: Callable[[dict[str, dict], dict[str, dict]], None] | None = None):
        import redis

        self._redis = redis.Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.interval = interval
        self.on_change = on_change
        self._active: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._started = False
        self._stop = threading.Event()
        self._reported: set[bytes] = set()

    # -- reading -------------------------------------------------------------------------
    @property
    def active(self) -> dict[str, dict]:
        self.start()
        return self._active  # replaced wholesale, never mutated: safe to read without the lock

    def get(self, fault_id: str, target: str | None = None) -> dict | None:
        """The flag for fault_id if active (and aimed at target, when given)."""
        flag = self.active.get(fault_id)
        if flag is None or (target is not None and flag.get("target") not in (None, "", target)):
            return None
        return flag

    def param(self, fault_id: str, name: str, default=None, target: str | None = None):
        flag = self.get(fault_id, target)
        return default if flag is None else flag.get("params", {}).get(name, default)

    # -- polling -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the poller once (lazily, so it runs in the process that uses it, after forks)."""
        if self._started:
            return
        with self._lock:
            if self._started:
                return
            self._started = True
            self.refresh()
            threading.Thread(target=self._loop, name="fault-flags", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.refresh()

    def read(self) -> dict[str, dict]:
        keys = sorted(self._redis.scan_iter(match=KEY_PREFIX + "*", count=100))
        if not keys:
            return {}
        out = {}
        for key, raw in zip(keys, self._redis.mget(keys)):
            if raw is None:  # expired between SCAN and MGET
                continue
            try:
                flag = json.loads(raw)
            except ValueError:
                if key not in self._reported:  # once per key, not every poll
                    self._reported.add(key)
                    log.warning("ignoring malformed fault flag %s", key.decode(errors="replace"),
                                extra={"event": "error"})
                continue
            fault_id = flag.get("fault_id") or key.decode().removeprefix(KEY_PREFIX)
            flag["fault_id"] = fault_id
            flag.setdefault("params", {})
            out[fault_id] = flag
        return out

    def refresh(self) -> None:
        try:
            with _untraced():  # polling is not the app's work: no Redis spans, and none that track faults
                new = self.read()
        except Exception as exc:  # Redis down: keep the last view, the TTL semantics hold in Redis
            log.debug("fault flag refresh failed: %s", exc)
            return
        old = self._active
        if new != old:
            self._active = new
            if self.on_change is not None:
                try:
                    with _untraced():  # a mechanism's own bookkeeping (e.g. a cache flush) is not traced
                        self.on_change(old, new)
                except Exception:
                    log.exception("fault on_change handler failed", extra={"event": "error"})
