"""Malformed inputs found with data this project had not seen: each is kept or rejected and
counted (records in = out + rejected), never a traceback; every parser tier agrees."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "appendix-code" / "scripts"


def run(script: str, *args, env=None) -> subprocess.CompletedProcess:
    import os

    r = subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                       timeout=120, env={**os.environ, **(env or {})})
    assert "Traceback" not in r.stderr, r.stderr
    return r


def report(path: Path) -> dict:
    doc = json.loads(Path(f"{path}.report.json").read_text())
    assert doc["records_in"] == doc["records_out"] + doc["rejected"], doc
    return doc


def span(trace: str, span_id: str, parent: str | None = None, name: str = "op") -> dict:
    s = {"traceId": trace, "spanId": span_id, "name": name, "kind": 2,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000250000000"}
    if parent is not None:
        s["parentSpanId"] = parent
    return s


@pytest.mark.parametrize("native", ["1", "0"])
def test_all_zero_trace_and_span_ids_are_rejected_and_counted(tmp_path, native):
    good = "0123456789abcdef0123456789abcdef"
    spans = [span("0" * 32, "1" * 16), span(good, "0" * 16), span(good, "2" * 16, parent="0" * 16, name="root"),
             span(good, "3" * 16, parent="2" * 16, name="child")]
    src = tmp_path / "t.jsonl"
    src.write_text(json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "a"}}]}, "scopeSpans": [{"spans": spans}]}]}) + "\n")
    out = tmp_path / "t.parquet"
    r = run("convert_traces_to_ocsf.py", "--trace-file", src, "--output", out, env={"OBSLAB_NATIVE": native})
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert (rep["records_in"], rep["records_out"], rep["rejected"]) == (4, 2, 2)
    assert "all-zero" in " ".join(rep["reasons"])
    rows = {row["trace"]["span"]["uid"]: row for row in pq.read_table(out).to_pylist()}
    assert set(rows) == {"2" * 16, "3" * 16}
    assert rows["2" * 16]["trace"]["span"].get("parent_uid") is None  # zeros mean no parent: a root span


def test_prometheus_series_whose_metric_is_an_array_is_rejected(tmp_path):
    src = tmp_path / "m.json"
    src.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": ["service", "x"], "values": [[1700000000, "1"], [1700000005, "2"]]},
        {"metric": {"service": "web-api", "__name__": "up"}, "values": [[1700000000, "1"]]}]}}))
    out = tmp_path / "m.parquet"
    r = run("export_prometheus_metrics.py", "--from-json", src, "--output", out)
    assert r.returncode == 0, r.stderr
    rep = report(out)
    assert (rep["records_in"], rep["records_out"], rep["rejected"]) == (3, 1, 2)
    assert any("not an object of labels" in reason for reason in rep["reasons"])


def test_nan_and_infinity_tokens_in_a_json_log_line_never_crash(tmp_path):
    lines = [
        '{"timestamp":"2026-12-02T10:00:00.000Z","level":"INFO","service":"web-api","message":"GET /a 200",'
        '"event":"access","status":200,"duration_ms":NaN}',
        '{"timestamp":"2026-12-02T10:00:01.000Z","level":"ERROR","service":"web-api","message":"GET /b 500",'
        '"event":"access","status":NaN,"duration_ms":Infinity,"count":-Infinity}',
        '{"timestamp":"2026-12-02T10:00:02.000Z","level":"INFO","service":"web-api","message":"GET /c 200",'
        '"event":"access","status":200,"duration_ms":3.5}',
    ]
    src = tmp_path / "logs.txt"
    src.write_text("".join(f"web-api-1  | {line}\n" for line in lines * 400))
    out = tmp_path / "l.parquet"
    for native in ("1", "0"):
        r = run("convert_to_ocsf.py", "--log-file", src, "--output", out, env={"OBSLAB_NATIVE": native})
        assert r.returncode == 0, r.stderr
        rep = report(out)
        assert rep["records_in"] == 1200 and rep["records_out"] + rep["rejected"] == 1200
        table = pq.read_table(out).to_pylist()
        good = [row for row in table if row["message"] == "GET /c 200"]
        assert len(good) == 400 and all(row["http_response"]["code"] == 200 for row in good)


def test_output_naming_a_folder_writes_the_default_name_inside(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    src = tmp_path / "logs.txt"
    src.write_text('web-api-1  | {"timestamp":"2026-12-02T10:00:00.000Z","level":"INFO","message":"hi"}\n')
    r = run("convert_to_ocsf.py", "--log-file", src, "--output", folder)
    assert r.returncode == 0, r.stderr
    assert pq.read_table(folder / "ocsf_logs.parquet").num_rows == 1
