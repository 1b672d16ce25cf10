"""End to end: a raw folder written by real exporters -> OCSF parquet + labels, and the scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from shared_fixtures import FIXTURES

from obslab.data import read_labels, read_signal
from obslab.ocsf import convert_dataset, validate_table
from obslab.truth import Incident, write_incidents

SCRIPTS = Path(__file__).resolve().parents[1] / "appendix-code" / "scripts"
T0 = 1_763_000_000_000  # ms


def _write_traces(path: Path) -> None:
    """Spans written by the real OTel SDK + OTLP JSON file exporter, with fault markers."""
    from opentelemetry.exporter.otlp.json.file import FileSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.trace import SpanKind, Status, StatusCode

    for service in ("web-api", "payment-worker"):
        exporter = FileSpanExporter(str(path))  # appends; one per provider (shutdown closes it)
        provider = TracerProvider(resource=Resource.create({"service.name": service, "host.name": "h1"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("test")
        for i in range(6):
            start = (T0 + i * 60_000) * 1_000_000
            with tracer.start_as_current_span("GET /checkout", kind=SpanKind.SERVER, start_time=start,
                                              end_on_exit=False) as span:
                span.set_attribute("http.request.method", "GET")
                span.set_attribute("url.path", "/checkout")
                span.set_attribute("http.response.status_code", 500 if i == 3 else 200)
                if i == 3:
                    span.set_attribute("anomaly.type", "error_spike")
                    span.set_attribute("anomaly.root_cause", "web-api")
                    span.set_status(Status(StatusCode.ERROR))
                with tracer.start_as_current_span("SELECT orders", kind=SpanKind.CLIENT, start_time=start + 1000,
                                                  end_on_exit=False) as child:
                    child.set_attribute("db.system", "postgresql")
                    child.set_attribute("db.statement", "SELECT * FROM orders")
                    child.end(end_time=start + 2_000_000)
                span.end(end_time=start + 5_000_000)
        provider.shutdown()


def _write_logs(path: Path) -> None:
    lines = ["Attaching to web-api-1, payment-worker-1"]
    for i in range(6):
        ts = f"2025-11-13T02:{13 + i:02d}:20.000Z"
        lines.append("web-api-1         | " + json.dumps({"timestamp": ts, "level": "INFO", "service": "web-api",
                     "message": "request", "method": "GET", "path": "/checkout", "status": 200,
                     "duration_ms": 4.5, "trace_id": "0" * 31 + "1", "span_id": "0" * 15 + "1"}))
        lines.append("payment-worker-1  | " + json.dumps({"timestamp": ts, "level": "ERROR", "message": "charge failed"}))
    lines.append("web-api-1         | {\"level\": \"INFO\", \"message\": \"no time here\"}")
    lines.append("web-api-1         | Booting worker with pid: 7")
    path.write_text("\n".join(lines) + "\n")


def _write_metrics(path: Path) -> None:
    values = [[T0 / 1000 + 15 * i, str(10.0 + i)] for i in range(12)] + [[T0 / 1000 + 180, "NaN"]]
    resp = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"service": "web-api", "instance": "127.0.0.1:8000"}, "values": values}]}}
    err = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    path.write_text(json.dumps({"results": [
        {"name": "cpu_pct", "query": "sum by (service) (rate(cpu[1m]))", "unit": "%", "response": resp},
        {"name": "broken", "query": "rate(", "unit": "", "response": err}]}))


@pytest.fixture(scope="module")
def raw_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    raw = root / "raw"
    raw.mkdir()
    _write_traces(raw / "traces.jsonl")
    _write_logs(raw / "logs.txt")
    _write_metrics(raw / "metrics.json")
    incident = Incident("inc-1", "error_spike", "high", ["web-api"], T0 + 170_000, T0 + 200_000, T0 + 260_000,
                        "web-api", verified=True)
    write_incidents(root / "incidents.json", [incident], run_id="t", seed=0)
    return root


@pytest.fixture(scope="module")
def converted(raw_dataset):
    result = convert_dataset(raw_dataset / "raw", raw_dataset, validate_sample=None, quiet=True)
    return raw_dataset, result


def test_convert_dataset_accounts_for_everything(converted):
    root, result = converted
    assert result["traces"]["records_out"] == 24 and result["traces"]["rejected"] == 0
    assert result["logs"]["records_in"] == 15 and result["logs"]["records_out"] == 13
    assert result["logs"]["reasons"] == {"no '<service> |' prefix": 1, "JSON log without a usable time": 1}
    assert result["metrics"]["records_out"] == 13
    assert any("bad_data" in p for p in result["metrics"]["problems"])
    for signal in ("logs", "traces", "metrics"):
        rep = json.loads((root / f"ocsf_{signal}.parquet.report.json").read_text())
        assert rep["balanced"] and rep["notes"]["invalid"] == 0


def test_loader_reads_the_result_and_events_validate(converted):
    root, _ = converted
    for signal in ("logs", "traces", "metrics"):
        table = read_signal(signal, root)
        assert table.num_rows > 0
        assert validate_table(table).ok
    traces = read_signal("traces", root)
    assert set(traces.column("class_uid").to_pylist()) == {4002, 6003}
    assert "anomaly" not in json.dumps(traces.to_pylist(), default=str)


def test_labels_from_incidents_and_markers(converted):
    root, result = converted
    labels = read_labels(root)
    assert labels.num_rows == sum(result[s]["records_out"] for s in ("logs", "traces", "metrics"))
    assert len(set(labels.column("uid").to_pylist())) == labels.num_rows
    rows = labels.to_pylist()
    marked = [r for r in rows if r["signal"] == "traces" and r["is_anomaly"]]
    # the one marked server span (i == 3), its incident found by time; plus web-api spans in the window
    assert any(r["fault_id"] == "error_spike" and r["root_cause_service"] == "web-api" for r in marked)
    metrics = [r for r in rows if r["signal"] == "metrics"]
    phases = {r["time"]: r["phase"] for r in metrics}
    assert phases[T0] == "normal" and phases[T0 + 180_000] == "fault" and phases[T0 + 165_000] == "normal"
    assert phases[T0 + 165_000 + 45_000] == "cooldown" if T0 + 210_000 in phases else True
    logs = [r for r in rows if r["signal"] == "logs"]
    assert not any(r["is_anomaly"] for r in logs if r["service"] == "payment-worker")


def test_reconversion_is_deterministic(converted, tmp_path):
    root, _ = converted
    convert_dataset(root / "raw", tmp_path, incidents=root / "incidents.json", quiet=True)
    for signal in ("logs", "traces", "metrics"):
        a = pq.read_table(root / f"ocsf_{signal}.parquet")
        b = pq.read_table(tmp_path / f"ocsf_{signal}.parquet")
        assert a.schema == b.schema and a.num_rows == b.num_rows
        assert repr(a.to_pylist()) == repr(b.to_pylist())  # repr: NaN values compare equal


def _run(script, *args, cwd=None):
    return subprocess.run([sys.executable, str(SCRIPTS / script), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def test_scripts_convert_label_kpis_split(converted, tmp_path):
    root, _ = converted
    r = _run("convert_to_ocsf.py", "--log-file", root / "raw" / "logs.txt", "--output", tmp_path / "l.parquet")
    assert r.returncode == 0, r.stderr
    assert "rejected=2" in r.stderr and (tmp_path / "l.parquet.report.json").exists()
    r = _run("convert_traces_to_ocsf.py", "--trace-file", root / "raw" / "traces.jsonl", "--output", tmp_path / "t.parquet")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "t.parquet").num_rows == 24
    r = _run("export_prometheus_metrics.py", "--from-json", root / "raw" / "metrics.json", "--output", tmp_path / "m.parquet")
    assert r.returncode == 0, r.stderr
    r = _run("label_subset_for_evaluation.py", "--data-dir", root, "--output", tmp_path / "labels.parquet",
             "--subset", tmp_path / "sub.parquet", "--subset-size", "10")
    assert r.returncode == 0, r.stderr
    assert pq.read_table(tmp_path / "labels.parquet").equals(read_labels(root))
    assert pq.read_table(tmp_path / "sub.parquet").num_rows == 10
    r = _run("export_kpis.py", "--data-dir", root, "--output", tmp_path / "kpis.csv")
    assert r.returncode == 0, r.stderr
    import pandas as pd

    kpis = pd.read_csv(tmp_path / "kpis.csv")
    assert {"cpu_pct", "cpu_pct_mean_5m", "cpu_pct_std_15m", "phase", "is_anomaly"} <= set(kpis.columns)
    assert len(kpis) == 13  # the NaN sample's step is kept
    assert kpis["is_anomaly"].sum() == 1  # the step at +180 s is in the fault window [170 s, 200 s)
    assert kpis["phase"].tolist()[-1] == "fault" and kpis["phase"].tolist()[0] == "normal"
    for fmt in ("parquet", "csv"):
        r = _run("split_by_label.py", "--data-dir", root, "--format", fmt, "--out-dir", tmp_path / fmt)
        assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in (tmp_path / "csv").iterdir())
    assert "traces_all.csv" in names and "traces_fault_error_spike.csv" in names
    all_ = pq.read_table(tmp_path / "parquet" / "traces_all.parquet")
    norm = pq.read_table(tmp_path / "parquet" / "traces_normal.parquet")
    anom = pq.read_table(tmp_path / "parquet" / "traces_anomalous.parquet")
    assert all_.num_rows == norm.num_rows + anom.num_rows == 24 and anom.num_rows >= 1


def test_bad_inputs_exit_nonzero_with_a_report(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = _run("convert_traces_to_ocsf.py", "--trace-file", empty, "--output", tmp_path / "e.parquet")
    assert r.returncode == 1 and "empty" in r.stderr
    jaeger = FIXTURES / "otlp" / "jaeger_query_api_NOT_otlp.json"
    if FIXTURES.exists():
        r = _run("convert_traces_to_ocsf.py", "--trace-file", jaeger, "--output", tmp_path / "j.parquet")
        assert r.returncode == 1 and "Jaeger" in r.stderr


def test_obslab_ocsf_cli(converted, tmp_path):
    root, _ = converted
    from obslab.cli import main

    assert main(["ocsf", "validate", str(root / "ocsf_traces.parquet")]) == 0
    assert main(["ocsf", "convert", str(root / "raw"), str(tmp_path)]) == 0
    assert (tmp_path / "labels.parquet").exists()
    # a parquet that is not valid OCSF fails validation
    t = pq.read_table(root / "ocsf_logs.parquet")
    t = t.set_column(t.schema.get_field_index("type_uid"), "type_uid", pc.add(t.column("type_uid"), 1))
    pq.write_table(t, tmp_path / "bad.parquet")
    assert main(["ocsf", "validate", str(tmp_path / "bad.parquet")]) == 1


SAMPLE_RAW = Path(__file__).resolve().parents[1] / "data" / "sample" / "raw"


@pytest.mark.skipif(not (SAMPLE_RAW / "traces.jsonl").exists(), reason="no committed native lab run in data/sample/raw")
def test_committed_native_lab_run_converts_cleanly(tmp_path):
    result = convert_dataset(SAMPLE_RAW, tmp_path, validate_sample=300, quiet=True)
    for signal in ("logs", "traces", "metrics"):
        if signal in result:
            rep = result[signal]
            assert rep["balanced"] and rep["records_out"] > 0 and rep["notes"]["invalid"] == 0, rep
    assert read_labels(tmp_path).num_rows == sum(result[s]["records_out"] for s in ("logs", "traces", "metrics")
                                                 if s in result)
