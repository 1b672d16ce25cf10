"""bench/convert.py runs end to end on two small generated shapes and its table adds up.

The two shapes have event counts known from how they were written, so a converter that drops
or invents records, or a bench that mislabels its columns, fails here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SHAPES = ["app-nested-logs", "spans-many-attrs"]


def _table(text: str) -> dict[str, dict[str, str]]:
    """Rows of the final table by shape; cells split on whitespace, notes keep their spaces."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("shape "))
    columns = lines[start].split()
    rows = {}
    for line in lines[start + 1:]:
        if not line.strip():
            break
        cells = line.split(None, len(columns) - 1)
        rows[cells[0]] = dict(zip(columns, cells))
    return rows


def test_bench_runs_two_shapes_and_counts_match():
    cmd = [sys.executable, str(BENCH / "convert.py"), "--scale", "0.01", "--no-baseline",
           "--shapes", ",".join(SHAPES)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = _table(res.stdout)
    assert sorted(rows) == sorted(SHAPES), res.stdout
    for shape, row in rows.items():
        assert "ERROR" not in row["notes"], row
        assert int(row["expected"]) > 0
        assert row["events"] == row["expected"], (shape, row)
        assert row["rejected"] == "0", (shape, row)
        assert 0.3 < float(row["MB"]) < 0.5  # 1% of the 40 MB default
        assert float(row["MB/s/core"]) > 0 and float(row["ev/s/core"]) > 0
        assert float(row["rss_MB"]) > 0
    assert "COUNT MISMATCH" not in res.stdout
    assert "goal >= 200 MB/s per core on every shape: " in res.stdout


def _inputs():
    sys.path.insert(0, str(BENCH))
    try:
        import _convert_inputs
    finally:
        sys.path.remove(str(BENCH))
    return _convert_inputs


@pytest.mark.parametrize("name", SHAPES + ["collector-spans", "access-logs"])
def test_generated_inputs_are_seeded_and_sized(tmp_path, name):
    make = _inputs().SHAPES[name]
    a, b, c = (make(tmp_path / f"{k}", 200_000, seed) for k, seed in (("a", 7), ("b", 7), ("c", 8)))
    digest = [hashlib.sha256(x.path.read_bytes()).hexdigest() for x in (a, b, c)]
    assert digest[0] == digest[1] != digest[2]
    lines = a.path.read_bytes().splitlines()
    if a.signal == "logs":  # one event per line
        assert a.expected == len(lines)
    assert 200_000 <= a.path.stat().st_size < 200_000 + max(len(x) + 1 for x in lines)


def _types(value, seen: set) -> set:
    seen.add(type(value).__name__)
    children = value.values() if isinstance(value, dict) else value
    for v in children if isinstance(value, (dict, list)) else ():
        _types(v, seen)
    return seen


def test_app_log_lines_are_near_950_bytes_and_nested(tmp_path):
    inp = _inputs().app_nested_logs(tmp_path / "x.log", 300_000, 0)
    lines = inp.path.read_bytes().splitlines()
    sizes = sorted(len(x) for x in lines)
    assert 850 <= sizes[len(sizes) // 2] <= 1100
    payload = json.loads(lines[1].split(b"| ", 1)[1])
    assert {"dict", "list", "int", "float", "bool", "str", "NoneType"} <= _types(payload, set())
    assert any(max(line) > 127 for line in lines[:20])  # unicode text, written as UTF-8
