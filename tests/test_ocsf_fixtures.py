"""Every real third-party fixture, checked by MANIFEST.json's rule, every event validated."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from shared_fixtures import FIXTURES, MISSING

from obslab.ocsf import ConversionReport, read_compose_logs, read_otlp, read_prometheus, validate_table
from obslab.ocsf.convert import iter_ocsf

MANIFEST = json.loads((FIXTURES / "MANIFEST.json").read_text()) if FIXTURES.exists() else {"files": []}
SIGNAL = {"otlp": "traces", "compose_logs": "logs", "prometheus": "metrics"}
READERS = {"traces": read_otlp, "logs": read_compose_logs, "metrics": read_prometheus}

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)


def _entries():
    return [pytest.param(e, id=e["path"]) for e in MANIFEST["files"]]


def test_manifest_lists_every_fixture_file():
    on_disk = {str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*") if p.is_file()}
    on_disk -= {"MANIFEST.json", "README.md"}
    assert on_disk == {e["path"] for e in MANIFEST["files"]}


@pytest.mark.parametrize("entry", _entries())
def test_fixture_accounting_and_validation(entry):
    signal = SIGNAL[entry["kind"]]
    path = FIXTURES / entry["path"]
    good = entry.get("expected_good_records", 0)
    rejected = entry.get("expected_rejected_records") or 0
    ambiguous = entry.get("ambiguous_records") or 0
    report = ConversionReport(signal=signal)
    tables = [t for t, _ in iter_ocsf(signal, path, report)]
    emitted = sum(t.num_rows for t in tables)
    # the MANIFEST checker rule
    assert emitted >= good
    assert emitted <= good + ambiguous
    assert emitted + report.rejected == good + rejected + ambiguous
    assert report.records_out == emitted
    report.check()  # records_in == records_out + rejected
    if good == 0 and path.stat().st_size > 0 and entry["kind"] != "prometheus" or "error" in entry["path"]:
        assert report.problems or report.rejected, "a file with nothing usable must be reported"
        assert not report.ok
    if emitted:
        table = pa.concat_tables(tables)
        result = validate_table(table)  # every event
        assert result.ok, result.summary()
        assert result.checked == emitted


def test_error_bodies_are_query_errors_not_empty_results():
    base = FIXTURES / "prometheus" / "generated_here_debian_prometheus_2.42"
    err = ConversionReport()
    assert list(read_prometheus(base / "10_error_timeout.json", err)) == []
    assert err.notes["query_errors"] == 1 and "timeout" in err.problems[0]
    empty = ConversionReport()
    assert list(read_prometheus(base / "06_empty_result.json", empty)) == []
    assert empty.problems == [] and empty.ok


def test_wrong_signal_files_are_named_in_the_report():
    logs = ConversionReport()
    assert list(read_otlp(FIXTURES / "otlp" / "collector_fileexporter_LOGS_not_traces.jsonl", logs)) == []
    assert any("OTLP logs" in p for p in logs.problems)
    jaeger = ConversionReport()
    assert list(read_otlp(FIXTURES / "otlp" / "jaeger_query_api_NOT_otlp.json", jaeger)) == []
    assert any("Jaeger" in p for p in jaeger.problems)


def test_otlp_variants_normalised():
    rep = ConversionReport()
    upper = pa.Table.from_batches(list(read_otlp(FIXTURES / "otlp" / "otlp_proto_examples_trace.json", rep)))
    tid = upper.column("trace_id")[0].as_py()
    assert tid == tid.lower() and len(tid) == 32
    snake = pa.Table.from_batches(
        list(read_otlp(FIXTURES / "otlp" / "snake_case_fieldnames_robotframework_tracer.jsonl", ConversionReport())))
    assert set(snake.column("kind").to_pylist()) == {1}  # SPAN_KIND_INTERNAL by name
    assert snake.column("status_code").to_pylist().count(1) == 15  # "STATUS_CODE_OK" by name; 3 are {}
    node = pa.Table.from_batches(list(read_otlp(
        FIXTURES / "otlp" / "generated_here" / "node_otlp_transformer_0.223.1_JsonTraceSerializer.jsonl",
        ConversionReport())))
    assert node.column("parent_span_id").null_count < node.num_rows
    assert "" not in node.column("parent_span_id").to_pylist()


def test_compose_variants():
    utf16 = pa.Table.from_batches([b for b, _ in read_compose_logs(
        FIXTURES / "compose_logs" / "utf16le_powershell_redirect_springboot.log")])
    assert "\x00" not in "".join(utf16.column("message").to_pylist())
    assert set(utf16.column("service").to_pylist()) <= {"ds-app", "ds-db", "ds-redis"} or utf16.num_rows == 200
    ts = pa.Table.from_batches([b for b, _ in read_compose_logs(FIXTURES / "compose_logs" / "timestamps_flag_postgres.log")])
    assert ts.column("time_ms")[0].as_py() == 1755555011275  # 2025-08-18T22:10:11.275876972Z
    mongo = pa.Table.from_batches([b for b, _ in read_compose_logs(
        FIXTURES / "compose_logs" / "spreadpilot_colored_mongodb_json_tracebacks.log")])
    assert not any("\x1b" in (s or "") for s in mongo.column("container").to_pylist())
    nginx = pa.Table.from_batches([b for b, _ in read_compose_logs(FIXTURES / "compose_logs" / "utf8_bom_nginx_access.log")])
    assert nginx.column("service")[0].as_py() == "webserver"
    assert set(nginx.column("event").to_pylist()) == {"access"}
