"""Converter throughput per input shape: MB/s and events/s per core, peak RSS, fallback counts.

    .venv/bin/python bench/convert.py [--scale 1] [--shapes a,b] [--repeat 1] [--no-baseline]
                                      [--quick] [--big-gb 0]

Each shape (bench/_convert_inputs.py) is written to a temp folder at about 40 MB x --scale:
the shared Compose and OTLP fixtures and a lab run (data/sample/raw, data/lab/**/raw), both
repeated to that size; the synthetic generator's raw output; application logs with nested JSON
values; spans with 30-40 attributes of mixed types; and the bench's earlier Collector-style
spans and flat access logs. Each file is converted (read -> map -> parquet, validation of a
200-event sample) in a fresh process. The per-core rates use that process's CPU time, all its
threads (the machine is shared: wall time swings with the neighbours, CPU time much less;
MB/s_wall shows what overlapping work across threads buys on an idle machine); library imports
happen before the clock starts, loading the OCSF schema and validating are inside it (the
"fixed cost" line gives that part alone, from a one-line file).

``notes`` is the converter's own report (``rep.notes``): how many blocks or lines went to the
Python reader and why (per-line counts also as a share of the records read). Baseline (on
unless --no-baseline/--quick): the same file with the compiled parsers off (``OBSLAB_NATIVE=0``,
the Python reference); the CPU-time ratio does not depend on how fast the machine is today,
and both must give the same counts (COUNT MISMATCH lines otherwise).
Goal: >= 200 MB/s per core on every shape.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _convert_inputs import SHAPES, Input  # noqa: E402

GOAL_MB_S = 200.0
BASE_MB = 40e6
HIDDEN_NOTES = {"validated"}  # facts about the check, not about the reading
COLUMNS = ["shape", "signal", "MB", "events", "expected", "rejected", "wall_s", "cpu_s",
           "MB/s/core", "ev/s/core", "MB/s_wall", "rss_MB", "base_cpu_s", "x_base", "notes"]


def _child(signal: str, src: str, out: str) -> None:
    """Run in a fresh process: convert, print one JSON line with times, counts, notes, peak RSS."""
    import pyarrow as pa

    from obslab.ocsf import convert_file

    pa.scalar(0)  # pyarrow imports pandas on its first Python -> Arrow conversion: not work
    t = time.perf_counter()
    c = time.process_time()
    rep = convert_file(signal, src, out, validate_sample=200, quiet=True)
    dt = time.perf_counter() - t
    cpu = time.process_time() - c
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "events": rep.records_out,
                      "records_in": rep.records_in, "rejected": rep.rejected,
                      "notes": dict(rep.notes), "problems": rep.problems,
                      "peak_rss_mb": peak_kb / 1024}))


def run(signal: str, src: Path, out: Path, native: bool = True) -> dict:
    """Convert in a fresh process; a failed child is reported as an error row, not a traceback."""
    cmd = [sys.executable, __file__, "--child", signal, str(src), str(out)]
    env = dict(os.environ, OBSLAB_NATIVE="1" if native else "0")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {res.returncode}: {tail[:160]}"}
    return json.loads(lines[-1])


def _is_line_fallback(key: str) -> bool:
    return "line" in key and ("fallback" in key or "slow" in key)


def notes_text(notes: dict, problems: list, records_in: int) -> str:
    """The report's notes, compact: counters as k=v (per-line fallback counts also as a share of
    the records read), strings quoted, file problems last."""
    parts = []
    for k, v in sorted(notes.items()):
        if k in HIDDEN_NOTES or (k == "invalid" and not v):
            continue
        if isinstance(v, str):
            parts.append(f"{k}={v!r}")
        elif _is_line_fallback(k) and records_in:
            parts.append(f"{k}={v:,} ({100 * v / records_in:.1f}%)")
        else:
            parts.append(f"{k}={v:,}")
    parts += [f"problem: {' '.join(p.split())[:80]}" for p in problems]
    return "; ".join(parts) or "-"


def best_of(repeat: int, signal: str, src: Path, out: Path, native: bool = True) -> dict:
    """The run with the least CPU time of ``repeat`` (neighbours only ever add time)."""
    runs = [run(signal, src, out, native) for _ in range(max(repeat, 1))]
    failed = [r for r in runs if "error" in r]
    return failed[0] if failed else min(runs, key=lambda r: r["cpu_seconds"])


def measure(name: str, inp: Input, out: Path, baseline: bool, repeat: int = 1) -> dict:
    r = best_of(repeat, inp.signal, inp.path, out)
    mb = inp.path.stat().st_size / 1e6
    row = {"shape": name, "signal": inp.signal, "mb": mb, "input": inp, **r}
    if baseline and "error" not in r:
        row["base"] = best_of(repeat, inp.signal, inp.path, out, native=False)
    out.unlink(missing_ok=True)
    return row


def fmt_row(row: dict) -> list[str]:
    inp = row["input"]
    if "error" in row:
        dashes = ["-"] * (len(COLUMNS) - 4)
        return [row["shape"], row["signal"], f"{row['mb']:.1f}", *dashes, f"ERROR {row['error']}"]
    cpu = max(row["cpu_seconds"], 1e-9)
    base = row.get("base", {})
    base_cpu = base.get("cpu_seconds")
    notes = notes_text(row["notes"], row["problems"], row.get("records_in", 0))
    if "error" in base:
        notes += f"; baseline ERROR {base['error']}"
    return [row["shape"], row["signal"], f"{row['mb']:.1f}", str(row["events"]),
            "-" if inp.expected is None else str(inp.expected), str(row["rejected"]),
            f"{row['seconds']:.2f}", f"{cpu:.2f}", f"{row['mb'] / cpu:.0f}",
            f"{row['events'] / cpu:.0f}",
            f"{row['mb'] / max(row['seconds'], 1e-9):.0f}", f"{row['peak_rss_mb']:.0f}",
            "-" if base_cpu is None else f"{base_cpu:.2f}",
            "-" if base_cpu is None else f"{base_cpu / cpu:.1f}",
            notes]


def print_table(rows: list[dict]) -> None:
    """Whitespace-aligned columns; every cell but the last (notes) is free of spaces."""
    cells = [COLUMNS] + [fmt_row(r) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS) - 1)]
    for c in cells:
        print("  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1])


def _as_expected(inp: Input, events: int, rejected: int) -> bool:
    """The manifest's rule: every good record out, ambiguous ones either way, all accounted for."""
    total = inp.expected + (inp.expected_rejected or 0) + inp.ambiguous
    return inp.expected <= events <= inp.expected + inp.ambiguous and events + rejected == total


def check_counts(rows: list[dict]) -> list[str]:
    """Counts against the input's makeup (where it gives them) and against the Python reference."""
    out = []
    for r in (r for r in rows if "error" not in r):
        inp, got = r["input"], (r["events"], r["rejected"])
        if inp.expected is not None and not _as_expected(inp, *got):
            out.append(f"{r['shape']}: {got[0]:,} events / {got[1]:,} rejected, expected "
                       f"{inp.expected:,} / {inp.expected_rejected or 0:,}"
                       + (f" (+ {inp.ambiguous:,} either way)" if inp.ambiguous else ""))
        b = r.get("base", {})
        if "events" in b and (b["events"], b["rejected"]) != got:
            out.append(f"{r['shape']}: compiled {got[0]:,} events / {got[1]:,} rejected, "
                       f"Python reference {b['events']:,} / {b['rejected']:,}")
    return out


def fixed_costs(d: Path, seed: int) -> str:
    """CPU time of converting a one-line file per signal: schema loading, writer set-up and
    validation, paid once per file whatever its size (it weighs on small --scale figures)."""
    parts = []
    for signal, make in (("logs", SHAPES["access-logs"]), ("traces", SHAPES["collector-spans"])):
        inp = make(d / f"one-{signal}", 1, seed)
        r = run(signal, inp.path, d / "one.parquet")
        parts.append(f"{signal} " + (r["error"] if "error" in r else f"{r['cpu_seconds']:.3f} s"))
    return "fixed cost per file (a one-line input, CPU): " + ", ".join(parts)


def big_file(d: Path, gb: float) -> None:
    """Memory bound: an N GB log file (the access-log shape, repeated) converted once."""
    small = SHAPES["access-logs"](d / "access-small.txt", int(BASE_MB))
    big = d / "big.txt"
    chunk = small.path.read_bytes()
    small.path.unlink()
    with open(big, "wb") as out:
        while out.tell() < gb * 1e9:
            out.write(chunk)
    r = run("logs", big, d / "b.parquet")
    if "error" in r:
        print(f"logs {gb:g} GB: {r['error']}")
        return
    verdict = "met" if r["peak_rss_mb"] < 1024 else "NOT met"
    print(f"logs {big.stat().st_size / 1e9:.2f} GB: {r['events']:,} events,"
          f" {r['cpu_seconds']:.1f} s CPU,"
          f" peak RSS {r['peak_rss_mb']:,.0f} MB (goal < 1024 MB: {verdict})")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _source_state() -> str:
    """Which obslab is measured: its folder, commit, and how many of its src files are uncommitted
    (helpers share a checkout, so a figure is only meaningful with this next to it)."""
    import obslab

    src = Path(obslab.__file__).resolve().parents[1]

    def git(*cmd: str) -> str:
        res = subprocess.run(["git", "-C", str(src), *cmd], capture_output=True, text=True)
        return res.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    n = len(git("status", "--porcelain", "--", ".").splitlines())
    return f"obslab from {src} at {commit}" + (f" + {n} uncommitted file(s) under src" if n else "")


def header(args) -> None:
    from obslab.ocsf import native

    now = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"bench/convert.py  {now}  cpus {os.cpu_count()}  load average {_load()}")
    print(_source_state())
    print(f"compiled block parsers: {'on' if native.available() else 'NOT BUILT'};"
          f" scale {args.scale:g} (~{BASE_MB * args.scale / 1e6:.0f} MB per shape);"
          f" seed {args.seed}; best of {args.repeat}; "
          f"baseline (OBSLAB_NATIVE=0) {'on' if args.baseline else 'off'}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=float, default=1.0,
                   help="input size factor (1: ~40 MB per shape)")
    p.add_argument("--shapes", default=",".join(SHAPES),
                   help=f"comma-separated subset of: {', '.join(SHAPES)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-baseline", dest="baseline", action="store_false",
                   help="skip the run with the compiled parsers off")
    p.add_argument("--repeat", type=int, default=1,
                   help="convert each file this many times and keep the least CPU time")
    p.add_argument("--quick", action="store_true", help="scale 0.25 and no baseline")
    p.add_argument("--big-gb", type=float, default=0.0,
                   help="also convert a log file of this size (GB)")
    args = p.parse_args(argv)
    if args.quick:
        args.scale, args.baseline = min(args.scale, 0.25), False
    unknown = [s for s in args.shapes.split(",") if s not in SHAPES]
    if unknown:
        p.error(f"unknown shape(s) {', '.join(unknown)}; known: {', '.join(SHAPES)}")
    return args


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(*sys.argv[2:5])
        return
    args = parse_args()
    header(args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="obslab-bench-") as d:
        d = Path(d)
        print(fixed_costs(d, args.seed), flush=True)
        for name in args.shapes.split(","):
            t = time.perf_counter()
            inp = SHAPES[name](d / name, int(BASE_MB * args.scale), args.seed)
            if inp is None:
                print(f"{name}: skipped, its source files are absent")
                continue
            print(f"{name}: {inp.how} (written in {time.perf_counter() - t:.1f} s)", flush=True)
            rows.append(measure(name, inp, d / "out.parquet", args.baseline, args.repeat))
            inp.path.unlink()
        if args.big_gb > 0:
            big_file(d, args.big_gb)
    print()
    print("expected: events the input's makeup gives ('-': only the converter knows); "
          "x_base: CPU time of the Python reference / compiled")
    print_table(rows)
    print()
    for line in check_counts(rows):
        print(f"COUNT MISMATCH {line}")
    ok = [r for r in rows if "error" not in r]
    rate = {r["shape"]: r["mb"] / max(r["cpu_seconds"], 1e-9) for r in ok}
    slow = [f"{name} {mb_s:.0f}" for name, mb_s in rate.items() if mb_s < GOAL_MB_S]
    total_mb = sum(r["mb"] for r in ok)
    total_cpu = sum(r["cpu_seconds"] for r in ok)
    print(f"all shapes: {total_mb:.0f} MB in {total_cpu:.2f} s CPU"
          f" = {total_mb / max(total_cpu, 1e-9):.0f} MB/s per core; "
          f"load average now {_load()}")
    verdict = "met" if ok and not slow and len(ok) == len(rows) else "NOT met"
    print(f"goal >= {GOAL_MB_S:.0f} MB/s per core on every shape: {verdict}"
          + (f" (below: {', '.join(slow)} MB/s)" if slow else "")
          + (f" ({len(rows) - len(ok)} shape(s) failed)" if len(ok) < len(rows) else ""))


if __name__ == "__main__":
    main()
