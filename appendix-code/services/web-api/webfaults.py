"""web-api's side of the fault catalog (appendix-code/faults.yaml).

Flags come from Redis through labcommon.faults.FaultFlags. Request-path faults are answered by
the small query methods below; faults that take something (pool connections, memory, CPU,
disk, a config change) are started in ``_on_change`` and released when the flag disappears.
No log line here names a fault: markers never enter the logs.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time

from labcommon.faults import FaultFlags
from labcommon.resources import ResourceFaults

__all__ = ["WebFaults", "KNOWN_FAULTS"]

log = logging.getLogger("web-api")

# Faults web-api implements itself; the gauge is pre-set to 0 for these.
KNOWN_FAULTS = ("latency_spike", "error_spike", "db_pool_exhaustion", "cpu_saturation", "memory_leak",
                "cache_miss_storm", "packet_loss", "bad_config_deploy", "disk_fill", "lock_contention",
                "route_backend_switch", "new_error_template")


class PoolHolder:
    """Check out `hold` connections and keep them (each idle in a transaction) until stopped."""

    def __init__(self, pool, hold: int):
        self.pool, self.hold = pool, hold
        self.conns = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pool-holder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and len(self.conns) < self.hold:
            try:
                self.conns.append(self.pool.getconn(timeout=1.0))
            except Exception:  # pool busy: keep trying until we hold our share or are stopped
                continue
        self._stop.wait()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for conn in self.conns:
            self.pool.putconn(conn)
        self.conns.clear()


class TableLocker:
    """Hold an ACCESS EXCLUSIVE lock on `table` for hold_ms of every second, on a connection of its own
    (a maintenance job gone wrong): every query on that table waits for it."""

    def __init__(self, database_url: str, table: str, hold_ms: float):
        self.database_url, self.table, self.hold_s = database_url, table, max(0.0, min(hold_ms, 990)) / 1000
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="table-locker", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psycopg

        try:
            conn = psycopg.connect(self.database_url, autocommit=False)
        except Exception as exc:  # the fault cannot act without its connection: say so once
            log.warning("maintenance job could not connect", extra={"event": "other", "error": str(exc)[:200]})
            return
        with conn:
            while not self._stop.is_set():
                started = time.monotonic()
                with conn.transaction():
                    conn.execute(f"LOCK TABLE {self.table} IN ACCESS EXCLUSIVE MODE")
                    self._stop.wait(self.hold_s)
                self._stop.wait(max(0.0, 1.0 - (time.monotonic() - started)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class WebFaults:
    def __init__(self, service: str, redis_url: str, redis_client, pool, config, data_dir: str,
                 fault_gauge, seed: int = 0):
        self.service = service
        self.redis = redis_client
        self.pool = pool
        self.config = config  # the configured values; bad_config_deploy overrides them
        self.resources = ResourceFaults(service, data_dir)
        self.holder: PoolHolder | None = None
        self.locker: TableLocker | None = None
        self.rng = random.Random(seed)
        self.gauge = fault_gauge
        for fault_id in KNOWN_FAULTS:
            fault_gauge.labels(fault_id=fault_id).set(0)
        self.deployed: dict | None = None
        self.flags = FaultFlags(redis_url, on_change=self._on_change)

    def start(self) -> None:
        self.flags.start()

    def _mine(self, fault_id: str) -> dict | None:
        return self.flags.get(fault_id, target=self.service)

    def _chance(self, fraction) -> bool:
        return self.rng.random() < float(fraction)

    # -- request-path faults -------------------------------------------------------------
    def error_spike(self) -> bool:
        flag = self._mine("error_spike")
        return bool(flag) and self._chance(flag["params"].get("error_rate", 0.3))

    def db_delay_s(self) -> float:
        flag = self._mine("latency_spike")
        if flag and self._chance(flag["params"].get("fraction", 1.0)):
            return float(flag["params"].get("delay_s", 0.5))
        return 0.0

    def cache_bypass(self) -> bool:
        flag = self._mine("cache_miss_storm")
        return bool(flag) and self._chance(flag["params"].get("miss_fraction", 1.0))

    def cache_ttl_s(self) -> int:
        if self.deployed is not None:
            return int(self.deployed.get("cache_ttl_s", self.config["cache_ttl_s"]))
        return int(self.config["cache_ttl_s"])

    def link_fault(self) -> tuple[bool, float]:
        """(drop this call?, extra delay in s) for the web-api -> auth-service link."""
        flag = self._mine("packet_loss")
        if not flag:
            return False, 0.0
        p = flag["params"]
        return self._chance(p.get("drop_fraction", 0.2)), float(p.get("delay_ms", 0)) / 1000.0

    def extra_backend_call(self) -> bool:
        """route_backend_switch: should this /api/search request also call auth-service?"""
        flag = self._mine("route_backend_switch")
        return bool(flag) and self._chance(flag["params"].get("fraction", 0.3))

    def new_warning(self) -> bool:
        """new_error_template: should this request log the never-seen warning?"""
        flag = self._mine("new_error_template")
        return bool(flag) and self._chance(flag["params"].get("fraction", 0.02))

    # -- faults that take something ------------------------------------------------------
    def _on_change(self, old: dict, new: dict) -> None:
        for fault_id in set(old) | set(new):
            self.gauge.labels(fault_id=fault_id).set(1 if fault_id in new else 0)
        self.resources.apply(new)
        self._apply_pool_hold(new)
        self._apply_config(new)
        self._apply_lock(new)
        if "cache_miss_storm" in new and "cache_miss_storm" not in old and self._mine("cache_miss_storm"):
            self._flush_cache()

    def _apply_pool_hold(self, active: dict) -> None:
        flag = active.get("db_pool_exhaustion")
        wanted = flag is not None and flag.get("target") in (None, "", self.service)
        if wanted and self.holder is None:
            hold = flag["params"].get("hold", "all")
            size = self.pool.max_size
            n = size if hold == "all" else min(int(hold), size) if float(hold) >= 1 else int(size * float(hold))
            self.holder = PoolHolder(self.pool, n)
        elif not wanted and self.holder is not None:
            self.holder.stop()
            self.holder = None

    def _apply_lock(self, active: dict) -> None:
        flag = active.get("lock_contention")
        wanted = flag is not None and flag.get("target") in (None, "", self.service)
        if wanted and self.locker is None:
            self.locker = TableLocker(self.config["database_url"], "products",
                                      float(flag["params"].get("hold_ms", 500)))
        elif not wanted and self.locker is not None:
            self.locker.stop()
            self.locker = None

    def _apply_config(self, active: dict) -> None:
        flag = active.get("bad_config_deploy")
        wanted = flag is not None and flag.get("target") in (None, "", self.service)
        if wanted and self.deployed is None:
            self.deployed = dict(flag["params"])
            size = int(self.deployed.get("pool_size", self.config["pool_size"]))
            self.pool.resize(min_size=min(size, self.pool.min_size), max_size=size)
            self._log_config(size)
        elif not wanted and self.deployed is not None:
            self.deployed = None
            size = int(self.config["pool_size"])
            self.pool.resize(min_size=size, max_size=size)
            self._log_config(size)

    def _log_config(self, pool_size: int) -> None:
        """A deploy-style lifecycle line; the version is a digest of the values, as a real one would be."""
        values = {"cache_ttl_s": self.cache_ttl_s(), "db_pool_size": pool_size}
        digest = hashlib.sha1(repr(sorted(values.items())).encode()).hexdigest()[:8]
        log.info("configuration reloaded", extra={"event": "lifecycle", "config_version": digest, **values})

    def _flush_cache(self) -> None:
        keys = list(self.redis.scan_iter(match="cache:*", count=500))
        if keys:
            self.redis.delete(*keys)

    def fill_bytes(self) -> int:
        return self.resources.fill_bytes()
