"""Highest sustained request rate of the native lab, tracing on vs off (OTEL_SDK_DISABLED=true).

Two native stacks start side by side (obslab.lab.runner.Lab, services from docker-compose.yml),
one with tracing, one without; the load generator is restarted at rising RATE steps, each step
run on one stack then the other, so background load on a shared machine hits both modes
alike. A step is sustained when the load generator completed >= 95% of what it scheduled (its own summary line;
RATE counts user actions, a checkout being two HTTP requests), 5xx/failed requests stayed under
5% and p99 latency stayed under max(5x the first step's p99, 1 s). Prints a table per
mode, the highest sustained rate of each, and their ratio; and the services' CPU time per
request in each mode, a figure that other work on a shared machine does not distort.

    .venv/bin/python bench/lab_throughput.py [--rates 25,50,75,100,125,150,200] [--step-s 15]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from obslab.lab.processes import LabError
from obslab.lab.runner import Lab, RunConfig


def _t(value) -> float:
    if isinstance(value, (int, float)):
        return value / 1000 if value > 1e11 else float(value)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _records(path: Path, lo: float, hi: float) -> list[dict]:
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if lo <= _t(r["time"]) < hi:
            out.append(r)
    return out


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _loadgen_summary(logs: Path) -> dict:
    """The load generator's own last 'load finished' line: target vs achieved rate."""
    summary = {}
    for line in logs.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("load-generator-1") and "load finished" in line:
            summary = json.loads(line.split("| ", 1)[1])
    return summary


SERVICES = ("web-api", "auth-service", "payment-worker")


def _cpu_s(lab: Lab) -> dict[str, float]:
    """CPU seconds used so far by each app service (its process and children): unlike the
    rates, CPU per request does not depend on what else runs on the machine."""
    import psutil

    out = {}
    for name in SERVICES:
        total = 0.0
        try:
            root = psutil.Process(lab.procs[name].pid)
            for p in [root, *root.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except (psutil.Error, KeyError):
            pass
        out[name] = total
    return out


def load_step(lab: Lab, rate: float, seconds: float, warmup: float = 3.0) -> dict:
    lab.cfg.rate = rate
    lab.start_load()
    time.sleep(warmup)
    lo = time.time()
    cpu0 = _cpu_s(lab)
    time.sleep(seconds)
    cpu1 = _cpu_s(lab)
    hi = time.time()
    lab.procs["load-generator"].stop()
    recs = _records(lab.raw / "loadgen.jsonl", lo, hi)
    lat = [float(r["latency_ms"]) for r in recs if r.get("latency_ms") is not None]
    errors = sum(1 for r in recs if not isinstance(r.get("status"), int) or r["status"] >= 500 or r["status"] == 0)
    lg = _loadgen_summary(lab.raw / "logs.txt")
    return {"target": rate, "achieved": float(lg.get("achieved_rate", 0.0)), "lg_target": lg.get("target_rate"),
            "http_rate": len(recs) / (hi - lo), "skipped": lg.get("skipped"), "p50_ms": _p(lat, 0.5),
            "p99_ms": _p(lat, 0.99), "error_share": errors / max(1, len(recs)), "n": len(recs),
            "cpu_ms_per_req": {n: 1000 * (cpu1[n] - cpu0[n]) / max(1, len(recs)) for n in SERVICES}}


def _start(tracing: bool) -> Lab:
    out = Path(tempfile.mkdtemp(prefix=f"obslab-bench-{'on' if tracing else 'off'}-"))
    # a flat load (no daily shape) so that the target rate is the rate asked for
    lab = Lab(RunConfig(out=out, tracing=tracing, progress=False, duration_s=0,
                        extra_env={"load-generator": {"DAY_LENGTH_S": "0"}}))
    lab.prepare()
    lab.start_infra()
    lab.start_services()
    return lab


def step_up(rates: list[float], step_s: float) -> dict[bool, dict | None]:
    """Both stacks up side by side (idle one costs little); each rate is run on, then off, so
    that background load on a shared machine hits both modes alike. A mode stops at its first
    step that is not sustained."""
    labs: dict[bool, Lab] = {}
    best: dict[bool, dict | None] = {True: None, False: None}
    first_p99: dict[bool, float] = {}
    cpu: dict[float, dict[bool, float]] = {}
    try:
        for tracing in (True, False):
            labs[tracing] = _start(tracing)
        running = {True, False}
        for rate in rates:
            for tracing in (True, False):
                if tracing not in running:
                    continue
                s = load_step(labs[tracing], rate, step_s)
                first_p99.setdefault(tracing, s["p99_ms"])
                limit = max(5 * first_p99[tracing], 1000.0)
                s["ratio"] = s["achieved"] / float(s["lg_target"] or rate)
                s["sustained"] = s["ratio"] >= 0.95 and s["error_share"] < 0.05 and s["p99_ms"] <= limit
                print(f"  tracing={'on ' if tracing else 'off'} target {rate:5.0f}/s  load generator: achieved "
                      f"{s['achieved']:6.1f}/s of {s['lg_target']}/s ({s['ratio']:6.1%}), skipped {s['skipped']}; "
                      f"HTTP {s['http_rate']:6.1f} req/s  p50 {s['p50_ms']:7.1f} ms  p99 {s['p99_ms']:8.1f} ms  "
                      f"5xx/failed {s['error_share']:5.1%}  {'ok' if s['sustained'] else 'NOT sustained'}",
                      flush=True)
                print("      CPU ms per HTTP request: " + ", ".join(
                    f"{n} {v:.2f}" for n, v in s["cpu_ms_per_req"].items()), flush=True)
                cpu.setdefault(rate, {})[tracing] = sum(s["cpu_ms_per_req"].values())
                if s["sustained"]:
                    best[tracing] = s
                else:
                    running.discard(tracing)
            if not running:
                break
    finally:
        for lab in labs.values():
            lab.stop_all()
            shutil.rmtree(lab.out, ignore_errors=True)
    both = [r for r in cpu if len(cpu[r]) == 2]
    if both:
        on = sum(cpu[r][True] for r in both) / len(both)
        off = sum(cpu[r][False] for r in both) / len(both)
        print(f"app CPU per HTTP request (all services, mean over {len(both)} rates run in both modes): "
              f"tracing on {on:.2f} ms, off {off:.2f} ms, ratio on/off {on / off:.2f}")
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="25,50,75,100,125,150,200,250,300")
    ap.add_argument("--step-s", type=float, default=15.0)
    args = ap.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(other work on the machine lowers these figures)")
    try:
        best = step_up(rates, args.step_s)
        on, off = best[True], best[False]
    except LabError as exc:
        print(f"lab_throughput: error: {exc}", file=sys.stderr)
        return 1
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    def fmt(best):
        return "none" if best is None else f"{best['http_rate']:.0f} HTTP req/s (RATE={best['target']:.0f} actions/s)"

    print(f"highest sustained rate, tracing on : {fmt(on)}")
    print(f"highest sustained rate, tracing off: {fmt(off)}")
    if on and off:
        print(f"ratio on/off: {on['http_rate'] / off['http_rate']:.2f}")
    print(f"goal >= 100 req/s with tracing on: {'met' if on and on['http_rate'] >= 100 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
