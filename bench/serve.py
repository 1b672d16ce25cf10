"""Benchmark of the inference daemon: `obslab serve` as a real subprocess, 16 concurrent clients.

Prints ingest records/s and p50/p99 latency of POST /feed/data (45-record batches: one
timestamp of a 45-server fleet) and of GET /predictions/current (45 servers), plus GET /health
as the baseline cost of one HTTP round trip on this machine. Goals: >= 20k records/s ingest,
p99 /predictions/current <= 50 ms. The clients share the machine's cores with the server, so
the server's CPU per request is printed too (the figure the machine's load does not inflate).

Then what the flags are worth (``obslab.serve.evaluation``): the false-alarm rate on a held-out
healthy fleet of the guide's profiles (seed 101; never used to choose anything), overall and per
profile, and the delay to flag injected slow leaks (seed 202; memory, CLOSE_WAIT, disk) in minutes
and records, beside a static alarm at the profile's healthy maximum, with bootstrap 95 % intervals.

The model is the one `obslab serve train --from synth` makes (2 days of a 112-server fleet of the
guide's profiles, seed 0; thresholds chosen on another fleet, seed 1000, for 0.5 % false alarms).

    .venv/bin/python bench/serve.py [--seconds 8] [--clients 16] [--skip-quality]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import torch

from obslab.serve.evaluation import false_alarms, leak_delays
from obslab.serve.cli import build
from obslab.serve.model_store import load_model
from obslab.serve.process import DaemonProcess
from obslab.serve.sample_records import labelled_server_metrics, records_from_frame

KEY = "bench-key-0123456789abcdef"
N_SERVERS = 45


def batches(days: int, seed: int) -> list[bytes]:
    """One JSON body per timestamp: 45 records each."""
    records, _ = labelled_server_metrics(days=days, step="5m", seed=seed, n_servers=N_SERVERS)
    out = []
    for _, group in records.groupby("timestamp", sort=True):
        out.append(json.dumps({"records": records_from_frame(group)}).encode())
    return out


def run_clients(port: int, n: int, seconds: float, request) -> tuple[list[float], int, float]:
    """n threads, each with its own keep-alive connection, calling request(conn, i) until time is up.
    Returns latencies (s), the units of work done (request's return values summed), elapsed."""
    lat: list[list[float]] = [[] for _ in range(n)]
    work = [0] * n
    errors: list[str] = []
    start = threading.Barrier(n + 1)
    stop_at = [0.0]

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        i = k
        while time.perf_counter() < stop_at[0]:
            t0 = time.perf_counter()
            try:
                work[k] += request(conn, i)
            except Exception as exc:  # a failed request is reported, not timed
                errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                continue
            lat[k].append(time.perf_counter() - t0)
            i += n
        conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        print(f"  {len(errors)} failed requests, first: {errors[0]}")
    return [x for per in lat for x in per], sum(work), elapsed


def call(conn, method: str, path: str, body: bytes | None = None) -> bytes:
    headers = {"X-API-Key": KEY}
    if body is not None:
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{method} {path}: {resp.status} {data[:200]!r}")
    return data


class ServerCpu:
    """CPU seconds the daemon process used: per request, a figure the machine's load does not
    inflate, and 1 / it = what one free core could serve."""

    def __init__(self, pid: int):
        self.proc = psutil.Process(pid)

    def __call__(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system


def report(name: str, lat: list[float], work: int, elapsed: float, unit: str, cpu_s: float) -> dict:
    ms = np.array(lat) * 1000
    row = {"requests": len(lat), f"{unit}/s": work / elapsed, "p50_ms": float(np.percentile(ms, 50)),
           "p99_ms": float(np.percentile(ms, 99)), "cpu_ms_per_req": 1000 * cpu_s / max(len(lat), 1)}
    per_core = work / cpu_s if cpu_s else float("nan")
    print(f"{name:<36} {len(lat):>6} req {row[f'{unit}/s']:>8.0f} {unit}/s  "
          f"p50 {row['p50_ms']:6.2f} ms  p99 {row['p99_ms']:6.2f} ms  "
          f"server CPU {row['cpu_ms_per_req']:.2f} ms/req ({per_core:.0f} {unit}/s per free core)")
    return row


def measure(name: str, port: int, n: int, secs: float, request, unit: str, cpu: ServerCpu) -> dict:
    before = cpu()
    lat, work, elapsed = run_clients(port, n, secs, request)
    return report(name, lat, work, elapsed, unit, cpu() - before)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=8.0, help="per phase")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--skip-quality", action="store_true", help="only the throughput and latency part")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="obslab-bench-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        build("synth", tmp / "model", days=2, seed=0, epochs=5)  # what `obslab serve train --from synth` does
        print(f"model trained in {time.perf_counter() - t0:.1f} s")
        bodies = batches(days=7, seed=3)  # 2016 timestamps x 45 servers
        # the per-key limit stays on (its check runs on every request) but high enough not to bind
        with DaemonProcess(tmp / "model", tmp / "state.sqlite", KEY, rate_limit=10**9, warmup=100) as d:
            n, secs = args.clients, args.seconds
            print(f"server {d.url}, {n} concurrent clients, {secs:.0f} s per phase, {N_SERVERS}-record batches, "
                  f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (others' work competes)")
            results, cpu = {}, ServerCpu(d.proc.pid)
            health = lambda c, i: (call(c, "GET", "/health"), 1)[1]  # noqa: E731
            results["health"] = measure("GET /health (baseline)", d.port, n, secs, health, "req", cpu)
            feed = lambda c, i: (call(c, "POST", "/feed/data", bodies[i % len(bodies)]), N_SERVERS)[1]  # noqa: E731
            results["feed"] = measure("POST /feed/data", d.port, n, secs, feed, "records", cpu)
            pred = lambda c, i: (call(c, "GET", "/predictions/current"), 1)[1]  # noqa: E731
            served = json.loads(call(http.client.HTTPConnection("127.0.0.1", d.port), "GET", "/predictions/current"))
            assert served["status"] == "ok" and len(served["servers"]) == N_SERVERS, served.get("status")
            results["pred"] = measure("GET /predictions/current", d.port, n, secs, pred, "req", cpu)

            # mixed: one feeder keeps the window changing, so every read may recompute the scores
            def mixed(c, i):
                if i % n == 0:
                    return (call(c, "POST", "/feed/data", bodies[(i // n) % len(bodies)]), 0)[1]
                return (call(c, "GET", "/predictions/current"), 1)[1]

            results["mixed"] = measure("GET /predictions/current + 1 feeder", d.port, n, secs, mixed, "req", cpu)
            status = json.loads(call(http.client.HTTPConnection("127.0.0.1", d.port), "GET", "/status"))
        print(f"records stored {status['records_total']}, ticks {status['ticks']}, window {status['rolling_window_size']}")
        ingest, p99 = results["feed"]["records/s"], results["pred"]["p99_ms"]
        print(f"ingest {ingest:.0f} records/s (goal >= 20000: {'met' if ingest >= 20000 else 'NOT met'}); "
              f"p99 /predictions/current {p99:.1f} ms (goal <= 50: {'met' if p99 <= 50 else 'NOT met'}); "
              f"feed p50 / health p50 = {results['feed']['p50_ms'] / results['health']['p50_ms']:.1f}x; "
              f"load average now {os.getloadavg()[0]:.1f}")
        if not args.skip_quality:
            quality(load_model(tmp / "model"))
    return 0


def _pct(r: dict) -> str:
    return f"{100 * r['rate']:.2f} % (95 % CI {100 * r['ci95'][0]:.2f}-{100 * r['ci95'][1]:.2f})"


def quality(model) -> None:
    cal = model.serving["calibration"]
    print(f"thresholds chosen on a validation fleet (seed {cal.get('seed')}, {cal.get('validation_servers')} servers): "
          f"{100 * cal.get('validation_rate', float('nan')):.2f} % of its checks flagged, target "
          f"{100 * cal.get('target_rate', float('nan')):.2f} %")
    fa = false_alarms(model, days=1, seed=101)
    print(f"false alarms on a held-out healthy fleet ({fa['servers']} servers, {fa['days']} day, seed "
          f"{fa['fleet_seed']}, {fa['checks']} server-checks after the first hour; CI over servers):")
    for col, name in (("flagged", "window score"), ("record_flag", "latest record only")):
        r = fa[col]
        print(f"  {name:<20} {_pct(r)}; {r['servers_ever_flagged']} of {r['servers']} servers ever flagged")
    for profile, r in fa["per_profile"].items():
        print(f"    {profile:<8} {_pct(r)}; {r['servers_ever_flagged']} of {r['servers']} servers ever flagged")
    ld = leak_delays(model, days=1, seed=202)
    print(f"injected slow leaks ({ld['leaks']}: memory +2 points/h, CLOSE_WAIT +24/h, disk +2 points/h, one of "
          f"each per profile; not caught within {ld['horizon_hours']:.0f} h counts as missed):")
    for key, name in (("flagged", "window score"), ("record_flag", "latest record only"),
                      ("extreme", "static alarm at the profile's healthy max")):
        r = ld[key]
        ci = r["median_ci95"]
        delay = "n/a" if r["median_min"] is None else \
            f"median delay {r['median_min']:.0f} min = {r['median_min'] / 5 + 1:.0f} records (95 % CI {ci[0]:.0f}-{ci[1]:.0f} min)"
        print(f"  {name:<42} caught {r['caught']}/{ld['leaks']}; {delay}")
    print(ld["table"].to_string(index=False, float_format=lambda v: f"{v:.0f}"))


if __name__ == "__main__":
    raise SystemExit(main())
