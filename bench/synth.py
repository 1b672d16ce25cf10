"""Benchmark of the synthetic MELT generator (issue 5).

Prints, for each scenario: wall seconds, CPU seconds (all processes), rows written, rows/s and
peak RSS (largest single process, and parent + workers as an upper bound), against the goals:

  year:  365 days x 25 hosts at 15 minutes, all signals to OCSF parquet: < 7 s, < 2 GB
  dense: 30 days x 100 hosts at 1 minute:                                  < 60 s

and the raw-feature Isolation Forest baseline AUROC on 90 days of metrics.

    .venv/bin/python bench/synth.py               # everything
    .venv/bin/python bench/synth.py --only year   # one scenario
    .venv/bin/python bench/synth.py --days 30     # a shorter "year" for a quick look
    .venv/bin/python bench/synth.py --profile 28  # where the time goes (one process, CPU time)

Each scenario runs in a fresh child process so that its peak RSS is its own. The machine's
load average is printed alongside: on a shared 2-core machine it moves the wall time a lot.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import time


def _scenario(kwargs: dict, workers: int, conn) -> None:
    from obslab.synth import generate, load_config

    out = tempfile.mkdtemp(prefix="obslab-synth-bench-")
    try:
        t0 = time.perf_counter()
        res = generate(load_config(**kwargs), out, fmt="ocsf", quiet=True, workers=workers)
        wall = time.perf_counter() - t0
        rows = sum(v for k, v in res.counts.items() if not k.endswith("_anomalous"))
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
        conn.send({"wall": wall, "rows": rows, "counts": dict(res.counts), "bytes": size})
    finally:
        shutil.rmtree(out, ignore_errors=True)


def run(name: str, kwargs: dict, workers: int, goal_s: float, goal_gb: float | None) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    parent, child = mp.Pipe()
    proc = mp.get_context("spawn").Process(target=_scenario, args=(kwargs, workers, child))
    proc.start()
    result = parent.recv()
    proc.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    peak_gb = after.ru_maxrss / 1024 / 1024  # largest single descendant (KiB on Linux)
    upper_gb = peak_gb * (workers + 1)
    rows = result["rows"]
    line = (f"{name}: {result['wall']:.1f} s wall, {cpu:.1f} s CPU, {rows:,} rows, "
            f"{rows / result['wall']:,.0f} rows/s, peak RSS {peak_gb:.2f} GB per process "
            f"(<= {upper_gb:.2f} GB with {workers} workers), {result['bytes'] / 1e6:.0f} MB on disk; "
            f"load avg {load:.1f}; goal < {goal_s:g} s"
            + (f" and < {goal_gb:g} GB" if goal_gb else "")
            + f": {'met' if result['wall'] < goal_s and (not goal_gb or upper_gb < goal_gb) else 'NOT met'}")
    print(line, flush=True)
    print("   counts:", json.dumps(result["counts"]), flush=True)
    return {"name": name, "cpu": cpu, "peak_gb": peak_gb, **result}


def profile(days: int, top: int = 20) -> None:
    """cProfile (CPU-time clock) of ``days`` of the year scenario in this one process."""
    import cProfile
    import pstats

    from obslab.synth import generate, load_config

    out = tempfile.mkdtemp(prefix="obslab-synth-profile-")
    prof = cProfile.Profile(time.process_time)
    try:
        prof.enable()
        generate(load_config(days=days, step="15m", seed=1), out, fmt="ocsf", quiet=True, workers=1)
        prof.disable()
    finally:
        shutil.rmtree(out, ignore_errors=True)
    stats = pstats.Stats(prof, stream=sys.stdout)
    print(f"profile: {days} days, 25 hosts, 15m, one process, by own CPU time:", flush=True)
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=["year", "dense", "baseline"])
    ap.add_argument("--days", type=int, default=365, help="days of the 'year' scenario")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", type=int, metavar="DAYS",
                    help="only print a profile of DAYS days of the year scenario")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
        return 0
    print(f"cores: {os.cpu_count()}, python {sys.version.split()[0]}", flush=True)
    if args.only in (None, "year"):
        run("year (25 hosts, 15m, OCSF)", dict(days=args.days, step="15m", seed=1),
            args.workers, 7.0, 2.0)
    if args.only in (None, "dense"):
        run("dense (100 hosts, 30 days, 1m, OCSF)",
            dict(days=30, step="1m", seed=1, hosts_per_service=20), args.workers, 60.0, None)
    if args.only in (None, "baseline"):
        from obslab.synth import load_config
        from obslab.synth.baseline import isolation_forest_auroc

        t0 = time.perf_counter()
        res = isolation_forest_auroc(load_config(days=90, seed=1))
        print(f"baseline: raw-feature Isolation Forest on 90 days of metrics: AUROC "
              f"{res['auroc']:.3f}, average precision {res['average_precision']:.3f}, "
              f"{res['rows']:,} host-steps, {100 * res['anomalous_fraction']:.1f}% anomalous "
              f"({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
