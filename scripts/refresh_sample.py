#!/usr/bin/env python3
"""Refresh the committed sample dataset (data/sample/) from a real native lab run.

    python scripts/refresh_sample.py [--duration 20m] [--seed 7] [--rate 8] [--out data/sample] [-- LAB_ARGS]

1. ``obslab lab run --schedule random --seed S`` into a scratch folder (_build/sample-run):
   the real services as native processes, faults injected on a seeded random schedule;
2. ``obslab.ocsf.convert_dataset``: raw telemetry -> OCSF parquet + labels.parquet;
3. copies the dataset files (not the lab's state) into a staging folder, writes
   ``MANIFEST.json`` (command, seed, date, counts, sizes), checks the size budget, and only
   then replaces ``--out``, so a failed refresh leaves the current sample untouched;
4. a no-fault control run of the same lab (``--schedule none``, ``--control-duration``) is made
   and converted the same way into ``control/`` (dataset files only, no raw/): the evaluation
   chapter measures false positives on it.

Raw OTLP traces are bulky (~3 KB per request), so ``raw/`` keeps ``metrics.json`` whole but only
the first whole lines of ``logs.txt`` and ``traces.jsonl`` up to ``--raw-mb`` each: enough to
convert with the appendix scripts (tests/test_book_zip.py does). The OCSF tables are converted
from the full files; the manifest's ``raw_excerpt`` says how many lines of each were kept.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# what a dataset folder holds (obslab.data); everything else the lab writes (state/, ...) stays
DATASET_FILES = ("ocsf_logs.parquet", "ocsf_traces.parquet", "ocsf_metrics.parquet",
                 "labels.parquet", "incidents.json", "run.json")
RAW_FILES = ("logs.txt", "traces.jsonl", "metrics.json")
# the committed sample's schedule: a fault every ~75 s on average, a deploy (restart) every 7 min
DEFAULT_LAB_ARGS = ["--interval", "75s", "--deploy-every", "7m"]


def run_lab(work: Path, duration: str, seed: int, rate: float | None, extra: list[str],
            schedule: str = "random") -> list[str]:
    """A real native lab run into ``work``; returns the command it ran."""
    cmd = [sys.executable, "-m", "obslab.cli", "lab", "run", "--duration", duration,
           "--schedule", schedule, "--seed", str(seed), "--out", str(work), "--quiet", *extra]
    if rate is not None:
        cmd += ["--rate", str(rate)]
    print("+", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO_ROOT)
    return ["obslab", *cmd[3:]]


def convert(work: Path) -> dict:
    from obslab.ocsf.convert import convert_dataset

    return convert_dataset(work / "raw", work, incidents=work / "incidents.json", quiet=True)


def file_entry(path: Path, root: Path) -> dict:
    data = path.read_bytes()
    return {"path": path.relative_to(root).as_posix(), "bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest()}


def dataset_counts(root: Path) -> dict:
    """Events per signal and OCSF class, labels per phase, incidents per fault: from the files."""
    import pyarrow.compute as pc

    from obslab.data import SIGNALS, read_incidents, read_labels, read_signal

    counts: dict = {"events": {}, "classes": {}}
    for signal in SIGNALS:
        table = read_signal(signal, root, columns=["class_uid"])
        counts["events"][signal] = table.num_rows
        vc = pc.value_counts(table["class_uid"]).to_pylist()
        counts["classes"][signal] = {str(d["values"]): d["counts"] for d in sorted(vc, key=lambda d: d["values"])}
    labels = read_labels(root).to_pandas()
    counts["labels"] = len(labels)
    counts["anomalous"] = int(labels["is_anomaly"].sum())
    counts["phases"] = {k: int(v) for k, v in labels["phase"].value_counts().sort_index().items()}
    incidents = read_incidents(root)
    counts["incidents"] = len(incidents)
    counts["faults"] = dict(sorted({i.fault_id: sum(j.fault_id == i.fault_id for j in incidents)
                                    for i in incidents}.items()))
    counts["verified_incidents"] = sum(bool(i.verified) for i in incidents)
    return counts


def copy_head(src: Path, dst: Path, max_bytes: int) -> dict:
    """Copy the first whole lines of src that fit in max_bytes; report kept and total lines."""
    kept_lines = kept_bytes = total_lines = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        for line in fin:
            total_lines += 1
            if kept_bytes + len(line) <= max_bytes and kept_lines == total_lines - 1:
                fout.write(line)
                kept_lines += 1
                kept_bytes += len(line)
    return {"lines_kept": kept_lines, "lines_total": total_lines, "bytes_total": src.stat().st_size}


def stage(work: Path, staging: Path, raw_mb: float) -> dict:
    """Copy the dataset into staging; returns what raw/ holds of each raw file."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name in DATASET_FILES:
        src = work / name
        if not src.exists():
            raise SystemExit(f"refresh_sample: {src} missing: the lab run or conversion failed")
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, staging / name)
    for report in sorted(work.glob("ocsf_*.report.json")):
        shutil.copy2(report, staging / report.name)
    excerpt: dict = {}
    if raw_mb > 0:
        (staging / "raw").mkdir()
        for name in RAW_FILES:
            src, dst = work / "raw" / name, staging / "raw" / name
            if not src.exists():
                continue
            if name.endswith(".jsonl") or name.endswith(".txt"):
                excerpt[name] = copy_head(src, dst, int(raw_mb * 1e6))
            else:  # one JSON document: whole or not at all
                shutil.copy2(src, dst)
                excerpt[name] = {"whole": True, "bytes_total": src.stat().st_size}
    return excerpt


def write_manifest(staging: Path, command: list[str], seed: int, duration: str, started: float,
                   conversion: dict, excerpt: dict, control: dict | None = None) -> dict:
    import obslab

    files = [file_entry(p, staging) for p in sorted(staging.rglob("*")) if p.is_file()]
    run = json.loads((staging / "run.json").read_text())
    manifest = {
        "what": "obslab sample dataset: a real native lab run with a seeded random fault schedule, "
                "converted to OCSF 1.8.0",
        "command": command,
        "refresh_command": ["python", "scripts/refresh_sample.py", "--duration", duration, "--seed", str(seed)],
        "seed": seed,
        "duration": duration,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "refresh_seconds": round(time.time() - started, 1),
        "run_id": run.get("run_id"),
        "versions": {"obslab": obslab.__version__, "python": platform.python_version()},
        "counts": dataset_counts(staging),
        "conversion": {s: {k: r[k] for k in ("records_in", "records_out", "rejected") if k in r}
                       for s, r in conversion.items() if s != "labels"},
        "raw_excerpt": excerpt,
        "control_run": control,
        "files": files,
        "total_bytes": sum(f["bytes"] for f in files),
    }
    (staging / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def replace(staging: Path, out: Path) -> None:
    """Swap the staged dataset into place; the old one is removed only after the swap."""
    old = out.with_name(out.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", default="20m", help="lab run length (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=7, help="fault schedule and load seed (default: %(default)s)")
    parser.add_argument("--rate", type=float, default=8.0, help="requests/s (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "data" / "sample")
    parser.add_argument("--work", type=Path, default=REPO_ROOT / "_build" / "sample-run",
                        help="scratch folder for the lab run (default: %(default)s)")
    parser.add_argument("--max-mb", type=float, default=20.0, help="size budget of the sample (default: %(default)s)")
    parser.add_argument("--raw-mb", type=float, default=1.5,
                        help="MB of each line-based raw file kept in raw/ (0: no raw/; default: %(default)s)")
    parser.add_argument("--control-duration", default="6m",
                        help="no-fault control run length, 0 for none (default: %(default)s)")
    parser.add_argument("--reuse-run", action="store_true",
                        help="skip the lab runs and convert what --work (and --work/control) already hold")
    parser.add_argument("lab_args", nargs="*",
                        help=f"`obslab lab run` options, after -- (default: {' '.join(DEFAULT_LAB_ARGS)})")
    args = parser.parse_args(argv)

    started = time.time()
    work = args.work.resolve()
    if args.reuse_run:
        run = json.loads((work / "run.json").read_text())
        command = run.get("command") or ["obslab", "lab", "run", "(reused)"]
        args.seed, args.duration = run.get("seed", args.seed), f"{run.get('duration_s', 0):g}s"
    else:
        if work.exists():
            shutil.rmtree(work)
        command = run_lab(work, args.duration, args.seed, args.rate, args.lab_args or DEFAULT_LAB_ARGS)
    conversion = convert(work)
    staging = args.out.with_name(args.out.name + ".new")
    excerpt = stage(work, staging, args.raw_mb)
    control = None
    if args.control_duration not in ("", "0"):
        control_work, control_seed = work / "control", args.seed + 1
        if not (args.reuse_run and (control_work / "run.json").exists()):
            if control_work.exists():
                shutil.rmtree(control_work)
            # the same deploy rhythm as the main run: deploys are normal operations, not faults
            run_lab(control_work, args.control_duration, control_seed, args.rate,
                    ["--deploy-every", "7m"], schedule="none")
        convert(control_work)
        stage(control_work, staging / "control", raw_mb=0)
        control = {"duration": args.control_duration, "seed": control_seed,
                   "command": json.loads((control_work / "run.json").read_text()).get("command"),
                   "counts": dataset_counts(staging / "control")}
    manifest = write_manifest(staging, command, args.seed, args.duration, started, conversion, excerpt,
                              control)
    mb = manifest["total_bytes"] / 1e6
    if mb > args.max_mb:
        raise SystemExit(f"refresh_sample: {mb:.1f} MB exceeds --max-mb {args.max_mb}: use a shorter "
                         f"--duration or a lower --rate (staged copy left in {staging})")
    replace(staging, args.out)
    c = manifest["counts"]
    print(f"{args.out}: {mb:.1f} MB, events {c['events']}, {c['incidents']} incidents "
          f"({c['verified_incidents']} verified), {c['anomalous']} anomalous of {c['labels']} labelled")
    return 0


if __name__ == "__main__":
    sys.exit(main())
