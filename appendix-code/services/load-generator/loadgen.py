"""load-generator: seeded open-loop traffic against web-api.

Settings (environment, same names in Compose and native mode): TARGET_URL, RATE (peak req/s),
DURATION_S (0 = until stopped), SEED, DAY_LENGTH_S (one simulated day in seconds; 0 = flat),
DAY_START_HOUR, LOADGEN_THREADS, LOADGEN_RECORD_FILE (JSON lines, one per request sent),
REDIS_URL (fault flags: while one is active, requests carry x-anomaly-* marker headers).
On exit (end of DURATION_S, SIGTERM or Ctrl-C) it prints a summary line: target vs achieved rate.
"""

from __future__ import annotations

import _paths  # noqa: F401  (labcommon on sys.path)

import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from labcommon import jsonlog
from labcommon.faults import FaultFlags, markers_for

from shape import SCANNER_AGENT, Request, probe_requests, schedule

SERVICE = os.environ.get("SERVICE_NAME", "load-generator")
log = logging.getLogger(SERVICE)


class Recorder:
    """Appends one JSON line per request sent; counts outcomes for the summary."""

    def __init__(self, path: str | None):
        self._fh = open(path, "a", encoding="utf-8", buffering=1 << 16) if path else None
        self._lock = threading.Lock()
        self.sent = self.ok = self.client_errors = self.server_errors = self.failed = 0

    def record(self, started: float, method: str, path: str, status: int, latency_ms: float, markers: dict):
        with self._lock:
            self.sent += 1
            if status == 0:
                self.failed += 1
            elif status >= 500:
                self.server_errors += 1
            elif status >= 400:
                self.client_errors += 1
            else:
                self.ok += 1
            if self._fh:
                self._fh.write(json.dumps({
                    "time": jsonlog.utc_ms(started), "method": method, "path": path, "status": status,
                    "latency_ms": round(latency_ms, 2), "markers": markers or None}) + "\n")

    def close(self):
        with self._lock:
            if self._fh:
                self._fh.close()
                self._fh = None


class LoadGenerator:
    def __init__(self, env: dict):
        self.target = env.get("TARGET_URL", "http://127.0.0.1:8080").rstrip("/")
        self.rate = float(env.get("RATE", "20"))
        self.duration = float(env.get("DURATION_S", "0"))
        self.seed = int(env.get("SEED", "42"))
        self.day_length = float(env.get("DAY_LENGTH_S", "0"))
        self.start_hour = float(env.get("DAY_START_HOUR", "9"))
        self.threads = int(env.get("LOADGEN_THREADS", "64"))
        self.timeout = float(env.get("REQUEST_TIMEOUT_S", "10"))
        self.recorder = Recorder(env.get("LOADGEN_RECORD_FILE"))
        redis_url = env.get("REDIS_URL")
        self.flags = FaultFlags(redis_url) if redis_url else None
        self.heartbeat = env.get("LOADGEN_HEARTBEAT_FILE")
        self.stop = threading.Event()
        self._local = threading.local()
        self.scheduled = self.skipped = self.completed = 0  # user actions (a checkout is 2 requests)
        self._pending = 0
        self._pending_lock = threading.Lock()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
        return s

    def _markers(self) -> dict:
        return markers_for(self.flags.active) if self.flags else {}

    def _send(self, method: str, path: str, headers: dict, body=None) -> requests.Response | None:
        markers = self._markers()
        started = time.time()
        t0 = time.perf_counter()
        status, resp = 0, None
        try:
            resp = self._session().request(method, self.target + path, json=body, timeout=self.timeout,
                                           headers={**headers, **markers})
            status = resp.status_code
        except requests.RequestException:
            pass
        self.recorder.record(started, method, path, status, (time.perf_counter() - t0) * 1000, markers)
        return resp

    def _run_one(self, req: Request) -> None:
        try:
            if req.kind != "checkout":
                self._send(req.method, req.path, {})
                return
            b = req.body
            resp = self._send("POST", "/api/login", {}, {"username": b["username"], "password": b["password"]})
            token = "invalid"
            if resp is not None and resp.status_code == 200:
                token = resp.json().get("token", "invalid")
            elif resp is None or resp.status_code >= 500:
                return  # login failed outright: a user would give up here
            self._send("POST", "/api/checkout", {"Authorization": f"Bearer {token}"},
                       {"product_id": b["product_id"], "quantity": b["quantity"]})
        finally:
            with self._pending_lock:
                self._pending -= 1
                self.completed += 1

    def _scan(self) -> None:
        """endpoint_enumeration: while its flag is up, probe paths nobody calls, as another client."""
        run = 0
        while not self.stop.is_set():
            flag = self.flags.get("endpoint_enumeration") if self.flags else None
            if not flag:
                self.stop.wait(0.5)
                continue
            run += 1
            probes = probe_requests(self.seed * 1000 + run, float(flag["params"].get("rate_per_s", 0.05)))
            while not self.stop.is_set() and self.flags.get("endpoint_enumeration"):
                gap, path, client = next(probes)
                if self.stop.wait(gap) or not self.flags.get("endpoint_enumeration"):
                    break
                self._send("GET", path, {"User-Agent": SCANNER_AGENT, "X-Forwarded-For": client})

    def _progress(self, t0: float) -> None:
        last = (0.0, 0)
        while not self.stop.wait(10.0):
            now, sent = time.monotonic() - t0, self.recorder.sent
            log.info("load progress", extra={"event": "other", "sent": sent,
                                              "rate": round((sent - last[1]) / max(now - last[0], 1e-9), 1)})
            last = (now, sent)
            if self.heartbeat:
                with open(self.heartbeat, "w") as f:
                    f.write(str(time.time()))

    def run(self) -> dict:
        if self.flags:
            self.flags.start()
        log.info("service started", extra={"event": "lifecycle", "target": self.target, "rate": self.rate,
                                            "duration_s": self.duration, "seed": self.seed})
        t0 = time.monotonic()
        threading.Thread(target=self._progress, args=(t0,), daemon=True).start()
        threading.Thread(target=self._scan, name="scan", daemon=True).start()
        pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="send")
        max_pending = self.threads * 20
        for req in schedule(self.seed, self.rate, self.duration, self.day_length, self.start_hour):
            delay = t0 + req.offset_s - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            if self.stop.is_set():
                break
            self.scheduled += 1
            with self._pending_lock:
                if self._pending >= max_pending:  # the target cannot keep up: count, don't queue forever
                    self.skipped += 1
                    continue
                self._pending += 1
            pool.submit(self._run_one, req)
        elapsed_sched = time.monotonic() - t0
        pool.shutdown(wait=True, cancel_futures=False)
        elapsed = time.monotonic() - t0
        self.stop.set()
        self.recorder.close()
        r = self.recorder
        summary = {
            "target_rate": round(self.scheduled / max(elapsed_sched, 1e-9), 2),
            "achieved_rate": round(self.completed / max(elapsed, 1e-9), 2),
            "http_request_rate": round(r.sent / max(elapsed, 1e-9), 2),
            "scheduled": self.scheduled, "completed": self.completed, "sent": r.sent, "skipped": self.skipped, "ok": r.ok,
            "client_errors": r.client_errors, "server_errors": r.server_errors, "failed": r.failed,
            "elapsed_s": round(elapsed, 2),
        }
        log.info(f"load finished: target {summary['target_rate']} req/s, achieved {summary['achieved_rate']} req/s",
                 extra={"event": "lifecycle", **summary})
        return summary


def main() -> int:
    jsonlog.configure(SERVICE)
    gen = LoadGenerator(dict(os.environ))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: gen.stop.set())
    gen.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
