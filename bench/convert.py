"""Converter throughput and memory: 1M OTLP spans and 1M Compose log lines, converted to parquet.

    .venv/bin/python bench/convert.py [--spans 1000000] [--lines 1000000] [--big-gb 0]

Generates the inputs in a temp folder (realistic shapes: Collector-style OTLP lines with 50
spans each and HTTP/DB attributes; JSON access/app log lines with the Compose prefix), then runs
each full converter (read -> map -> parquet, validation of a 200-event sample) in a fresh
process and prints events/s and that process's peak RSS. The per-core rate is CPU time (the
machine is shared: wall time swings with the neighbours, CPU time much less). Library imports
happen before the clock starts; loading the OCSF schema and validating are inside it.

Baseline, in the same run: the same conversion with the compiled block parsers switched off
(``OBSLAB_NATIVE=0``: the Python readers, the reference); the ratio of the two is the figure
that does not depend on how fast the machine is today. ``--big-gb N`` also converts an
N GB log file to check that memory stays bounded. Goals (one core): >= 200k spans/s,
>= 300k lines/s, peak RSS < 1 GB for a 2 GB input.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = ["web-api", "auth-service", "payment-worker"]


def write_otlp(path: Path, n_spans: int, seed: int = 0, per_line: int = 50) -> None:
    rng = random.Random(seed)
    t0 = 1_763_000_000_000_000_000
    with open(path, "w") as f:
        done = 0
        while done < n_spans:
            k = min(per_line, n_spans - done)
            spans = []
            for i in range(k):
                j = done + i
                start = t0 + j * 1_000_000
                server = j % 3 == 0
                attrs = [{"key": "http.request.method", "value": {"stringValue": "GET"}},
                         {"key": "url.path", "value": {"stringValue": f"/api/items/{j % 100}"}},
                         {"key": "http.response.status_code", "value": {"intValue": str(200 if j % 50 else 500)}}] \
                    if server else [{"key": "db.system", "value": {"stringValue": "postgresql"}},
                                    {"key": "db.statement", "value": {"stringValue": "SELECT * FROM items WHERE id = $1"}}]
                spans.append({"traceId": f"{rng.getrandbits(128):032x}", "spanId": f"{rng.getrandbits(64):016x}",
                              "parentSpanId": "" if server else f"{rng.getrandbits(64):016x}",
                              "name": "GET /api/items/{id}" if server else "SELECT items", "kind": 2 if server else 3,
                              "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + rng.randint(10**5, 10**8)),
                              "attributes": attrs, "status": {}, "flags": 256})
            doc = {"resourceSpans": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": SERVICES[done // per_line % 3]}},
                {"key": "host.name", "value": {"stringValue": "host-1"}}]},
                "scopeSpans": [{"scope": {"name": "opentelemetry.instrumentation.flask"}, "spans": spans}]}]}
            f.write(json.dumps(doc, separators=(",", ":")) + "\n")
            done += k


def write_logs(path: Path, n_lines: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with open(path, "w") as f:
        buf = []
        for j in range(n_lines):
            svc = SERVICES[j % 3]
            ms = 1_763_000_000_000 + j
            ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"
            if j % 4:
                rec = {"timestamp": ts, "level": "INFO", "service": svc, "message": "request completed",
                       "method": "GET", "path": f"/api/items/{j % 100}", "status": 200 if j % 97 else 503,
                       "duration_ms": round(rng.random() * 50, 3), "trace_id": f"{rng.getrandbits(128):032x}",
                       "span_id": f"{rng.getrandbits(64):016x}"}
            else:
                rec = {"timestamp": ts, "level": "WARN" if j % 7 == 0 else "INFO", "service": svc,
                       "message": f"cache refresh took {j % 13} ms", "logger": "app.cache"}
            buf.append(f"{svc}-1  | {json.dumps(rec, separators=(',', ':'))}\n")
            if len(buf) >= 10000:
                f.writelines(buf)
                buf.clear()
        f.writelines(buf)


def _child(signal: str, src: str, out: str) -> None:
    """Run in a fresh process: convert, print JSON with seconds, events and peak RSS."""
    import pyarrow as pa

    from obslab.ocsf import convert_file

    pa.scalar(0)  # pyarrow imports pandas on its first Python -> Arrow conversion: start-up, not work
    t = time.perf_counter()
    c = time.process_time()
    rep = convert_file(signal, src, out, validate_sample=200, quiet=True)
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "events": rep.records_out, "rejected": rep.rejected,
                      "invalid": rep.notes.get("invalid", 0), "peak_rss_mb": peak_kb / 1024}))


def run(signal: str, src: Path, out: Path, native: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", signal, str(src), str(out)]
    env = dict(os.environ, OBSLAB_NATIVE="1" if native else "0")
    res = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(name: str, src: Path, out: Path, signal: str, goal: float, baseline: bool) -> None:
    r = run(signal, src, out)
    report(name, src, r, goal)
    if baseline:
        b = run(signal, src, out, native=False)
        report("  baseline, compiled parsers off", src, b, None)
        print(f"  ratio CPU time baseline / compiled: x{b['cpu_seconds'] / r['cpu_seconds']:.2f}")


def report(name: str, src: Path, r: dict, goal: float | None) -> None:
    """Wall-clock and CPU-time rates: on a shared machine the CPU-time rate is the one-core figure."""
    rate = r["events"] / r["seconds"]
    cpu = r.get("cpu_seconds") or r["seconds"]
    cpu_rate = r["events"] / cpu
    size = src.stat().st_size / 1e6
    goal_txt = f" (goal >= {goal:,.0f}/s: {'met' if cpu_rate >= goal else 'NOT met'})" if goal else ""
    print(f"{name}: {r['events']:,} events from {size:,.0f} MB in {r['seconds']:.2f} s wall = {rate:,.0f} events/s;"
          f" {cpu:.2f} s CPU = {cpu_rate:,.0f} events/s per core{goal_txt}; peak RSS {r['peak_rss_mb']:,.0f} MB;"
          f" rejected {r['rejected']}, invalid in sample {r['invalid']}; load average {os.getloadavg()[0]:.1f}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spans", type=int, default=1_000_000)
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--big-gb", type=float, default=0.0, help="also convert a log file of this size (GB)")
    p.add_argument("--no-baseline", action="store_true", help="skip the run with the compiled parsers off")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="obslab-bench-") as d:
        d = Path(d)
        t = time.perf_counter()
        write_otlp(d / "traces.jsonl", args.spans)
        write_logs(d / "logs.txt", args.lines)
        print(f"inputs generated in {time.perf_counter() - t:.1f} s", flush=True)
        from obslab.ocsf import native

        print(f"compiled block parsers: {'on' if native.available() else 'NOT BUILT'}")
        compare("traces (OTLP -> OCSF)", d / "traces.jsonl", d / "t.parquet", "traces", 200_000, not args.no_baseline)
        compare("logs (Compose -> OCSF)", d / "logs.txt", d / "l.parquet", "logs", 300_000, not args.no_baseline)
        if args.big_gb > 0:
            per_line = (d / "logs.txt").stat().st_size / max(args.lines, 1)
            big = d / "big.txt"
            with open(big, "wb") as out:
                chunk = (d / "logs.txt").read_bytes()
                while out.tell() < args.big_gb * 1e9:
                    out.write(chunk)
            (d / "logs.txt").unlink()
            r = run("logs", big, d / "b.parquet")
            report(f"logs {args.big_gb:g} GB (memory bound, ~{per_line:.0f} B/line)", big, r, None)
            print(f"peak RSS for {big.stat().st_size / 1e9:.2f} GB input: {r['peak_rss_mb']:,.0f} MB "
                  f"(goal < 1024 MB: {'met' if r['peak_rss_mb'] < 1024 else 'NOT met'})")


if __name__ == "__main__":
    main()
