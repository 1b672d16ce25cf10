"""Scale-out of the lake jobs: conversion and scoring at 1 and 2 Ray workers on the same lake.

    .venv/bin/python bench/scale.py [--copies 24] [--json OUT.json]

Input: ``--copies`` copies of the committed sample's raw files (a real lab run: Compose logs,
OTLP traces, Prometheus metrics), each in its own sub-folder, so the conversion has
3 x copies raw files (tasks) and distinct uids per copy. Figures:

- local (no Ray): the same jobs in this process, the reference for events/s and output;
- per cluster size (``ray.cluster_utils.Cluster``, nodes of 1 CPU each): start-up seconds
  (cluster up and connected), conversion events/s (raw events in / wall seconds, all files),
  scoring events/s (trace events / wall seconds, one Ray Data job), peak RSS per worker
  process (``ru_maxrss`` read inside the tasks), model loads per worker, and whether the
  lake and the scores equal the local ones.

Threads: torch and faiss are pinned to one thread per worker (and in the local run), so 2
workers can add throughput on a 2-core machine instead of fighting over the cores. The
machine is shared: wall-clock figures swing with the neighbours; the ratio 2 vs 1 worker
from the same run is the figure to quote.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def make_raw(root: Path, copies: int) -> Path:
    raw = root / "raw"
    for k in range(copies):
        shutil.copytree(REPO / "data" / "sample" / "raw", raw / f"copy-{k:03d}")
    return raw


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def run(copies: int, work: Path) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from obslab.data import read_signal
    from obslab.distributed import convert_lake, get_engine
    from obslab.distributed._cluster import local_cluster
    from obslab.distributed._engine import pin_threads
    from obslab.distributed.score import fit_scoring_model, save_scoring_model, score_lake
    from obslab.features import trace_events

    raw = make_raw(work, copies)
    out: dict = {"copies": copies, "raw_files": 3 * copies, "cpus": os.cpu_count(),
                 "load_average_at_start": round(os.getloadavg()[0], 2)}  # other processes on the machine
    import torch  # noqa: F401  (imported so pin_threads reaches it)

    pin_threads()
    local = get_engine("local")
    t0 = time.perf_counter()
    res = convert_lake(raw, work / "local", engine=local)
    secs = time.perf_counter() - t0
    events = sum(f["records_in"] for f in res["files"])
    out["events"] = events
    out["lake_objects"] = sum(len(p["files"]) for p in res["manifest"]["partitions"].values())
    out["local"] = {"convert_s": round(secs, 2), "convert_events_per_s": round(events / secs),
                    "convert_events_per_cpu_s": round(events / local.cpu_s)}

    traces = read_signal("traces", work / "local")
    ev = trace_events(traces)
    first = ev["uid"].str.startswith(ev["uid"].iloc[0].split("-")[0])  # one copy's events
    train = first & (ev["time_ms"] <= ev.loc[first, "time_ms"].quantile(0.4))
    sm = fit_scoring_model(ev, train, seed=0, epochs=1, min_steps=50, budget_steps=100, check_every=25)
    model = save_scoring_model(work / "model", sm)
    t0 = time.perf_counter()
    local_scores = score_lake(work / "local", model, work / "local_scores.parquet")
    secs = time.perf_counter() - t0
    out["scored_events"] = n_scored = local_scores["scores"].num_rows
    out["local"].update(score_s=round(secs, 2), score_events_per_s=round(n_scored / secs),
                        score_events_per_cpu_s=round(n_scored / local_scores["cpu_s"]))
    local_tree = tree(work / "local" / "lake")
    ref_scores = pq.read_table(work / "local_scores.parquet")

    for nodes in (1, 2):
        with local_cluster(nodes) as eng:
            row = {"workers": eng.workers, "startup_s": round(eng.startup_s, 2)}
            t0 = time.perf_counter()
            convert_lake(raw, work / f"ray{nodes}", engine=eng)
            secs = time.perf_counter() - t0
            row.update(convert_s=round(secs, 2), convert_events_per_s=round(events / secs),
                       convert_events_per_cpu_s=round(events / eng.cpu_s),
                       convert_peak_rss_mb={str(p): round(v / 2**20) for p, v in sorted(eng.peaks.items())},
                       lake_identical=tree(work / f"ray{nodes}" / "lake") == local_tree)
            t0 = time.perf_counter()
            sc = score_lake(work / f"ray{nodes}", model, work / f"ray{nodes}_scores.parquet", engine=eng)
            secs = time.perf_counter() - t0
            got = pq.read_table(work / f"ray{nodes}_scores.parquet")
            row.update(score_s=round(secs, 2), score_events_per_s=round(n_scored / secs),
                       score_events_per_cpu_s=round(n_scored / sc["cpu_s"]),
                       score_events_per_cpu_s_after_load=round(n_scored / (sc["cpu_s"] - sc["load_cpu_s"])),
                       model_load_cpu_s_per_worker=round(sc["load_cpu_s"] / len(sc["workers"]), 2),
                       score_peak_rss_mb={str(p): round(v / 2**20) for p, v in sorted(sc["peak_rss"].items())},
                       model_loads={str(p): n for p, n in sorted(sc["workers"].items())},
                       scores_equal=bool(got.column("uid").equals(ref_scores.column("uid")) and np.allclose(
                           got.column("score").to_numpy(), ref_scores.column("score").to_numpy(), rtol=1e-5, atol=1e-6)))
            out[f"ray_{nodes}"] = row
    out["load_average_at_end"] = round(os.getloadavg()[0], 2)
    r1, r2 = out["ray_1"], out["ray_2"]
    out["speedup_2_vs_1"] = {"convert": round(r2["convert_events_per_s"] / r1["convert_events_per_s"], 2),
                             "score": round(r2["score_events_per_s"] / r1["score_events_per_s"], 2)}
    return out


def report(r: dict) -> str:
    lines = [f"scale bench: {r['copies']} copies of the sample = {r['raw_files']} raw files, {r['events']:,} events, "
             f"{r['lake_objects']} lake objects, {r['scored_events']:,} trace events scored; {r['cpus']} CPUs, "
             f"load average {r['load_average_at_start']} -> {r['load_average_at_end']}",
             "events/s: wall clock (all workers); ev/cpu-s: events per CPU second of one worker",
             f"{'run':<10}{'start s':>9}{'convert ev/s':>14}{'ev/cpu-s':>10}{'score ev/s':>12}{'ev/cpu-s':>10}"
             "  peak RSS per worker MB (convert / score)"]
    lo = r["local"]
    lines.append(f"{'local':<10}{'-':>9}{lo['convert_events_per_s']:>14,}{lo['convert_events_per_cpu_s']:>10,}"
                 f"{lo['score_events_per_s']:>12,}{lo['score_events_per_cpu_s']:>10,}  (this process)")
    for key in ("ray_1", "ray_2"):
        x = r[key]
        rss = f"{sorted(x['convert_peak_rss_mb'].values())} / {sorted(x['score_peak_rss_mb'].values())}"
        lines.append(f"{key + ' wk':<10}{x['startup_s']:>9}{x['convert_events_per_s']:>14,}"
                     f"{x['convert_events_per_cpu_s']:>10,}{x['score_events_per_s']:>12,}{x['score_events_per_cpu_s']:>10,}  {rss}")
        lines.append(f"{'':<10}lake identical to local: {x['lake_identical']}; scores equal: {x['scores_equal']}; "
                     f"model loads per worker: {sorted(x['model_loads'].values())} "
                     f"({x['model_load_cpu_s_per_worker']} CPU s each; scoring after it: "
                     f"{x['score_events_per_cpu_s_after_load']:,} ev/cpu-s)")
    s = r["speedup_2_vs_1"]
    lines.append(f"2 workers vs 1: conversion x{s['convert']}, scoring x{s['score']}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=24)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="obslab-scale-") as tmp:
        result = run(args.copies, Path(tmp))
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
