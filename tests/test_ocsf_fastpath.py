"""The compiled block parsers give exactly what the per-record Python readers give."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pytest
from shared_fixtures import FIXTURES, MISSING

from obslab.ocsf import ConversionReport, read_compose_logs, read_otlp



@pytest.fixture
def engine(monkeypatch):
    """The compiled parser, required: the extension is built by `make deps` (its absence fails)."""
    from obslab.ocsf import native

    assert native._native is not None, "obslab.ocsf._native was not built (g++, libsimdjson-dev)"
    monkeypatch.setenv("OBSLAB_NATIVE", "1")
    return "native"


def _same(fast: pa.Table, slow: pa.Table):
    assert fast.num_rows == slow.num_rows
    for name in slow.column_names:
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name


def _write_spans(path: Path, n_lines: int = 40, seed: int = 3, tab_line: int = -1) -> None:
    rng = random.Random(seed)
    with open(path, "w") as f:
        for line in range(n_lines):
            spans = []
            for i in range(rng.randint(1, 30)):
                attrs = [{"key": "http.method" if i % 2 else "http.request.method", "value": {"stringValue": "get"}},
                         {"key": "http.target", "value": {"stringValue": f"/a/{i}?q=1"}},
                         {"key": "http.status_code", "value": {"intValue": 503 if line % 2 else str(200)}},
                         {"key": "note", "value": {"stringValue": 'say "hi" \\ ok ü' if line != tab_line else "tab\there"}},
                         {"key": "ratio", "value": {"doubleValue": 0.25}},
                         {"key": "flag", "value": {"boolValue": True}}]
                if i % 7 == 0:
                    attrs.append({"key": "http.request.header.x-anomaly-type", "value": {"stringValue": "cpu_saturation"}})
                    attrs.append({"key": "anomaly.root_cause", "value": {"stringValue": "db"}})
                start = 1_763_000_000_000_000_000 + rng.randrange(10**12)
                spans.append({"traceId": f"{rng.getrandbits(128):032X}", "spanId": f"{rng.getrandbits(64):016x}",
                              "parentSpanId": "" if i == 0 else f"{rng.getrandbits(64):016x}",
                              "name": f"op{i}", "kind": rng.randint(0, 5),
                              "startTimeUnixNano": str(start), "endTimeUnixNano": start + rng.randrange(10**9),
                              "status": {"code": 2, "message": "boom"} if i == 3 else {},
                              "attributes": attrs if i % 5 else []})
            doc = {"resourceSpans": [{"resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": f"svc{line % 3}"}},
                {"key": "cloud.region", "value": {"stringValue": "eu-1"}}]},
                "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}
            f.write(json.dumps(doc) + "\n")


def test_otlp_fast_equals_slow(tmp_path, engine):
    path = tmp_path / "t.jsonl"
    _write_spans(path)
    rep = ConversionReport()
    fast = pa.Table.from_batches(list(read_otlp(path, rep)))
    slow = pa.Table.from_batches(list(read_otlp(path, fast=False)))
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"]
    _same(fast, slow)
    assert fast.column("marker_type").null_count < fast.num_rows
    assert not any("anomaly" in k for entries in fast.column("attributes").to_pylist() for k, _ in entries or [])
    # a control character in a value: the native parser keeps it as the Python reader does
    _write_spans(path, tab_line=7)
    rep = ConversionReport()
    tab = pa.Table.from_batches(list(read_otlp(path, rep)))
    assert not rep.notes["blocks_slow_path"]
    _same(tab, pa.Table.from_batches(list(read_otlp(path, fast=False))))


@pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
def test_otlp_fast_on_real_exporter_output(engine):
    for name in ("collector_fileexporter_javaagent_lamp.jsonl", "otlp_proto_examples_trace.json"):
        path = FIXTURES / "otlp" / name
        _same(pa.Table.from_batches(list(read_otlp(path))), pa.Table.from_batches(list(read_otlp(path, fast=False))))


def test_compose_fast_equals_slow(tmp_path, engine):
    rng = random.Random(5)
    lines = []
    for i in range(3000):
        rec = {"timestamp": f"2025-11-13T02:{i % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
               "level": rng.choice(["info", "WARNING", "error", "I", "D1"]), "message": rng.choice(
                   ["GET /x 200", "service started", "Traceback (most recent call last):", "cache ok"])}
        if i % 3 == 0:
            rec.update(method="get", path="/x", status=200 + i % 400, duration_ms=1.5, trace_id="a" * 32, span_id="b" * 16)
        if i % 11 == 0:
            rec["event"] = "lifecycle"
        lines.append(f"\x1b[36m{rng.choice(['web-api-1', 'auth_1', 'db'])}  |\x1b[0m {json.dumps(rec)}")
    path = tmp_path / "logs.txt"
    path.write_text("\n".join(lines) + "\n")
    rep = ConversionReport()
    fast = pa.Table.from_batches([b for b, _ in read_compose_logs(path, rep)])
    slow = pa.Table.from_batches([b for b, _ in read_compose_logs(path, fast=False)])
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"]
    _same(fast, slow)


def test_compose_mixed_blocks_keep_order_and_times(tmp_path, engine):
    # small blocks: plain-text blocks (slow) and JSON blocks (fast) interleave
    path = tmp_path / "mixed.txt"
    rows = []
    for i in range(240):
        if (i // 60) % 2:
            rows.append("web-1 | " + json.dumps({"time": f"2025-01-01T00:00:{i % 60:02d}Z", "msg": f"m{i}"}))
        else:
            rows.append(f"web-1 | plain {i}")
    path.write_text("\n".join(rows) + "\n")
    rep = ConversionReport()
    fast = pa.Table.from_batches([b for b, _ in read_compose_logs(path, rep, chunk_bytes=400)])
    slow = pa.Table.from_batches([b for b, _ in read_compose_logs(path, chunk_bytes=400, fast=False)])
    # left to Python: the text lines before the first time (the later ones take the last time natively)
    assert rep.notes["blocks_fast_path"] > 0 and rep.notes["native_line_fallback"] == 60
    _same(fast, slow)
    assert fast.column("line_no").to_pylist() == list(range(1, 241))


def test_line_chunks_split_like_readlines(tmp_path):
    """The join-and-split line reader gives the lines (and numbers) of the per-line one."""
    import io

    from obslab.ocsf.textio import _strip, iter_blocks

    rng = random.Random(5)
    for k in range(30):
        data = bytes(rng.choice(b"ab|{}\r\n") for _ in range(rng.randint(0, 300)))
        path = tmp_path / f"f{k}.txt"
        path.write_bytes(data)
        got = [(b.first_line_no, b.lines) for b in iter_blocks(path, chunk_bytes=64)]
        flat = [line for _, lines in got for line in lines]
        assert flat == [_strip(line) for line in io.BytesIO(data).readlines()]
        assert [no for no, _ in got] == [1 + sum(len(ls) for _, ls in got[:i]) for i in range(len(got))]


def test_compose_fast_spanning_json_blocks(tmp_path, engine):
    """One large block: a float duration, a status and a host first seen late, one very long line."""
    lines = []
    for i in range(16000):
        rec = {"timestamp": f"2025-11-13T02:00:{i % 60:02d}.{i % 1000:03d}Z", "level": "INFO", "message": f"m{i}",
               "duration_ms": i if i < 12000 else i + 0.5}
        if i > 12000:
            rec.update(method="GET", path="/p", status=200, host="h")
        if i == 14000:
            rec["message"] = "x" * (3 << 20)  # longer than a default block
        lines.append(f"web-1 | {json.dumps(rec)}")
    path = tmp_path / "logs.txt"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size > 4 << 20
    rep = ConversionReport()
    fast = pa.Table.from_batches([b for b, _ in read_compose_logs(path, rep, chunk_bytes=64 << 20)])
    slow = pa.Table.from_batches([b for b, _ in read_compose_logs(path, chunk_bytes=64 << 20, fast=False)])
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"]
    _same(fast, slow)
    assert fast.column("duration_ms")[100].as_py() == 100.0


def test_otlp_fast_spanning_json_blocks(tmp_path, engine):
    """Many OTLP lines in one large block and a Node-style numeric intValue late on."""
    path = tmp_path / "t.jsonl"
    _write_spans(path, n_lines=400, seed=9)
    assert path.stat().st_size > 2 << 20
    rep = ConversionReport()
    fast = pa.Table.from_batches(list(read_otlp(path, rep)))
    assert rep.notes["blocks_fast_path"] >= 1 and not rep.notes["blocks_slow_path"]
    _same(fast, pa.Table.from_batches(list(read_otlp(path, fast=False))))
