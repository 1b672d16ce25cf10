#!/usr/bin/env python3
"""Refresh the lab corpus (data/lab/): several long seeded native lab runs, recorded in parallel.

    python scripts/refresh_lab_corpus.py [--runs 6] [--seed 12] [--rate 5] [--out data/lab]

Every fault of appendix-code/faults.yaml is injected ``--repeats`` times (default twice), each
copy in a different run. A run's timeline is explicit (a scenario file written beside it): a
normal warm-up, then for each of its faults ``fault (2-3 min) -> cooldown -> at least --gap of
normal traffic``, with the load's diurnal shape on (``--day-length``). Runs are independent
(their own Redis, Postgres, Prometheus, services, ports and clock) and go in parallel, so the
corpus holds far more lab time than the wall-clock time it takes to record; they are never
stitched onto one time axis (obslab.data.dataset_runs reads them as a list). A no-fault control
run with the same load shape goes beside them in ``control/``.

The scripts stages the new corpus and swaps it in only when every run converted and the folder
fits ``--max-mb``; MANIFEST.json records commands, seeds, plans, counts and file hashes.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refresh_sample import (REPO_ROOT, convert, dataset_counts, file_entry, replace,  # noqa: E402
                            stage)


def deal(fault_ids: list[str], runs: int, repeats: int, seed: int) -> list[list[str]]:
    """Each fault ``repeats`` times, copies of one fault in different runs, runs as even as can be."""
    if repeats > runs:
        raise SystemExit(f"--repeats {repeats} needs at least as many --runs ({runs})")
    rng = random.Random(seed)
    order = sorted(fault_ids)
    rng.shuffle(order)
    plans: list[list[str]] = [[] for _ in range(runs)]
    stride = max(1, runs // repeats)
    for k, fid in enumerate(order):
        for r in range(repeats):
            plans[(k + r * stride) % runs].append(fid)
    for plan in plans:
        rng.shuffle(plan)
    return plans


def timeline(fault_ids: list[str], catalog: dict, rng: random.Random, warmup_s: float, gap_s: float,
             cooldown_s: float, min_fault_s: float, max_fault_s: float,
             min_run_s: float = 0.0, levels: dict[str, str] | None = None) -> tuple[list[dict], float]:
    """A scenario timeline for one run and its length in seconds (normal traffic pads it to min_run_s)."""
    steps: list[dict] = [{"normal": f"{warmup_s:g}s"}]
    t = warmup_s
    for fid in fault_ids:
        spec = catalog[fid]
        level = rng.choice(sorted(spec.levels))
        level = (levels or {}).get(fid, level)
        duration = round(rng.uniform(min_fault_s, max_fault_s) / 5) * 5
        steps.append({"fault": fid, "level": level, "duration": f"{duration:g}s",
                      "cooldown": f"{cooldown_s:g}s"})
        steps.append({"normal": f"{gap_s:g}s"})
        t += duration + cooldown_s + gap_s
    if t < min_run_s:
        steps.append({"normal": f"{min_run_s - t:g}s"})
        t = min_run_s
    return steps, t


def lab_command(out: Path, seed: int, rate: float, duration_s: float, day_length: str,
                scenario: Path | None) -> list[str]:
    cmd = [sys.executable, "-m", "obslab.cli", "lab", "run", "--duration", f"{duration_s:g}s", "--seed", str(seed),
           "--rate", f"{rate:g}", "--day-length", day_length, "--out", str(out), "--quiet"]
    return cmd + (["--scenario", str(scenario)] if scenario else ["--schedule", "none"])


def record(jobs: dict[str, list[str]], work: Path) -> None:
    """Start every lab run at once and wait for all; a failed run stops the refresh."""
    procs = {}
    for name, cmd in jobs.items():
        print("+", " ".join(["obslab", *cmd[3:]]), flush=True)
        log = (work / f"{name}.log").open("w")
        procs[name] = (subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT), log)
    failed = []
    for name, (proc, log) in procs.items():
        if proc.wait() != 0:
            failed.append(name)
        log.close()
    if failed:
        raise SystemExit(f"refresh_lab_corpus: runs failed: {', '.join(failed)} (see {work}/<run>.log)")


def main(argv: list[str] | None = None) -> int:
    from obslab.lab.scenario import load_catalog, parse_duration

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5, help="parallel lab runs (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=2, help="copies of every fault (default: %(default)s)")
    p.add_argument("--seed", type=int, default=12, help="plan and load seed (default: %(default)s)")
    p.add_argument("--rate", type=float, default=5.0, help="peak requests/s of each run (default: %(default)s)")
    p.add_argument("--day-length", default="1h", help="one simulated day of the load shape (default: %(default)s)")
    p.add_argument("--min-run", default="2h", help="every run lasts at least this long (default: %(default)s)")
    p.add_argument("--warmup", default="10m", help="normal traffic before the first fault (default: %(default)s)")
    p.add_argument("--gap", default="10m", help="normal traffic after each cooldown (default: %(default)s)")
    p.add_argument("--cooldown", default="45s", help="cooldown after each fault (default: %(default)s)")
    p.add_argument("--min-fault", default="2m", help="shortest fault (default: %(default)s)")
    p.add_argument("--max-fault", default="3m", help="longest fault (default: %(default)s)")
    p.add_argument("--control-duration", default="30m", help="no-fault control run, 0 for none (default: %(default)s)")
    p.add_argument("--level", action="append", default=["cpu_saturation=low"], metavar="FAULT=LEVEL",
                   help="fix a fault's level (default: cpu_saturation=low: the runs share the machine's "
                        "cores, and a saturated core would slow the other runs' normal traffic)")
    p.add_argument("--faults", default=None, help="comma-separated fault ids (default: the whole catalog)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "lab")
    p.add_argument("--work", type=Path, default=REPO_ROOT / "_build" / "lab-corpus")
    p.add_argument("--max-mb", type=float, default=60.0,
                   help="size budget (default: %(default)s; ten hours of lab time take about 57 MB)")
    p.add_argument("--reuse-runs", action="store_true", help="convert what --work already holds")
    args = p.parse_args(argv)

    started = time.time()
    work = args.work.resolve()
    catalog = load_catalog(REPO_ROOT / "appendix-code" / "faults.yaml")
    fault_ids = args.faults.split(",") if args.faults else sorted(catalog)
    rng = random.Random(args.seed)
    plans = deal(fault_ids, args.runs, args.repeats, args.seed)
    jobs, runs_doc = {}, []
    if not args.reuse_runs and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for n, plan in enumerate(plans, 1):
        name = f"run-{n:02d}"
        steps, length = timeline(plan, catalog, rng, parse_duration(args.warmup), parse_duration(args.gap),
                                 parse_duration(args.cooldown), parse_duration(args.min_fault),
                                 parse_duration(args.max_fault), parse_duration(args.min_run),
                                 dict(item.split("=", 1) for item in args.level))
        scenario = work / f"{name}.scenario.yaml"
        scenario.write_text(yaml.safe_dump({"name": f"corpus-{name}", "timeline": steps}, sort_keys=False))
        jobs[name] = lab_command(work / name, args.seed + n, args.rate, length, args.day_length, scenario)
        runs_doc.append({"name": name, "seed": args.seed + n, "duration_s": length, "faults": plan,
                         "timeline": steps, "command": ["obslab", *jobs[name][3:]]})
    if args.control_duration not in ("", "0"):
        jobs["control"] = lab_command(work / "control", args.seed + 100, args.rate,
                                      parse_duration(args.control_duration), args.day_length, None)
    if not args.reuse_runs:
        record(jobs, work)

    staging = args.out.with_name(args.out.name + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    conversion = {}
    for name in jobs:
        conversion[name] = convert(work / name)
        stage(work / name, staging / ("control" if name == "control" else f"runs/{name}"), raw_mb=0)
    for doc in runs_doc:
        doc["counts"] = dataset_counts(staging / "runs" / doc["name"])
    files = [file_entry(f, staging) for f in sorted(staging.rglob("*")) if f.is_file()]
    manifest = {
        "what": "obslab lab corpus: independent seeded native lab runs (each its own clock), every fault "
                f"of the catalog {args.repeats} times, converted to OCSF 1.8.0",
        "refresh_command": ["python", "scripts/refresh_lab_corpus.py", *(argv if argv is not None else sys.argv[1:])],
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("out", "work", "reuse_runs")},
        "lab_hours": round(sum(d["duration_s"] for d in runs_doc) / 3600, 2),
        "runs": runs_doc,
        "control": ({"command": ["obslab", *jobs["control"][3:]], "counts": dataset_counts(staging / "control")}
                    if "control" in jobs else None),
        "refresh_seconds": round(time.time() - started, 1),
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files),
    }
    (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    mb = manifest["total_bytes"] / 1e6
    if mb > args.max_mb:
        raise SystemExit(f"refresh_lab_corpus: {mb:.1f} MB exceeds --max-mb {args.max_mb} (staged in {staging})")
    replace(staging, args.out)
    inc = sum(d["counts"]["incidents"] for d in runs_doc)
    ver = sum(d["counts"]["verified_incidents"] for d in runs_doc)
    print(f"{args.out}: {mb:.1f} MB, {len(runs_doc)} runs, {manifest['lab_hours']} h of lab time, "
          f"{inc} incidents ({ver} verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
