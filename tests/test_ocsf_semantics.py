"""Issue 13 items 1-7 on real fixtures: each OCSF field holds what the source says, in its OCSF
place, with the compiled reader and with the Python reader alike.

Expected values are read from the raw files here, independently of the readers (plain json and
str.split), never typed in.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from shared_fixtures import FIXTURES, MISSING

from obslab.ocsf import convert_file, validate_table
from obslab.ocsf import _tables as T
from obslab.ocsf.flat import FLAT_LOG, FLAT_SPAN

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
OTLP = FIXTURES / "otlp"
LOGS = FIXTURES / "compose_logs"


@pytest.fixture(params=["native", "python"])
def reader(request, monkeypatch):
    from obslab.ocsf import native

    if request.param == "native":
        assert native._native is not None, "obslab.ocsf._native was not built"
    monkeypatch.setenv("OBSLAB_NATIVE", "1" if request.param == "native" else "0")
    return request.param


def _convert(signal: str, src: Path, tmp_path: Path, **kw) -> list[dict]:
    out = tmp_path / f"{src.stem}.parquet"
    rep = convert_file(signal, src, out, validate_sample=None, quiet=True, **kw)
    assert rep.notes.get("invalid", 0) == 0, rep.problems
    import pyarrow.parquet as pq

    table = pq.read_table(out)
    assert validate_table(table).ok
    return table.to_pylist(maps_as_pydicts="strict")


def _raw_spans(path: Path):
    """(resource attrs, span) pairs of an OTLP JSON file, read with json alone."""
    text = path.read_text()
    try:
        docs = [json.loads(text)]
    except json.JSONDecodeError:
        docs = [json.loads(line) for line in text.splitlines() if line.strip()]
    for doc in docs:
        for rs in doc.get("resourceSpans", []):
            res = {a["key"]: a["value"] for a in rs.get("resource", {}).get("attributes", [])}
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    yield res, s


def _attrs(span: dict) -> dict:
    return {a["key"]: next(iter(a["value"].values())) if a.get("value") else None for a in span.get("attributes", [])}


def _by_span(rows):
    return {r["trace"]["span"]["uid"]: r for r in rows}


def _span_rows(path: Path, tmp_path: Path) -> list[tuple[dict, dict, dict, dict]]:
    """Each raw span of an OTLP file beside its converted row: (resource, span, attributes, row)."""
    rows = _by_span(_convert("traces", path, tmp_path))
    return [(res, s, _attrs(s), rows[s["spanId"].lower()]) for res, s in _raw_spans(path)]


@pytest.fixture
def lamp_spans(tmp_path, reader):
    """The Java agent's LAMP trace (HTTP server spans, two database calls), converted by each reader."""
    return _span_rows(OTLP / "collector_fileexporter_javaagent_lamp.jsonl", tmp_path)


# ----------------------------------------------------------------------------- item 1
def test_server_spans_name_the_caller_and_the_request(lamp_spans):
    checked = 0
    for _, s, a, row in lamp_spans:
        if s.get("kind") == 2 and "client.address" in a:
            checked += 1
            assert row["src_endpoint"]["ip"] == a["client.address"]
            assert row["src_endpoint"].get("svc_name") != row["unmapped"]["service"]  # not src == dst
            assert row["dst_endpoint"]["svc_name"] == row["unmapped"]["service"]
            assert row["dst_endpoint"]["port"] == int(a["server.port"])
            req = row["http_request"]
            assert req["user_agent"] == a["user_agent.original"]
            assert req["version"] == a["network.protocol.version"]
            assert req["url"]["scheme"] == a["url.scheme"] and req["url"]["port"] == int(a["server.port"])
            assert req["url"]["url_string"].startswith(f"{a['url.scheme']}://{a['server.address']}")
    assert checked == 2


def test_access_lines_carry_the_client_ip_user_and_agent(tmp_path):
    path = LOGS / "utf8_bom_nginx_access.log"
    rows = [r for r in _convert("logs", path, tmp_path) if r["class_uid"] == 4002]
    lines = [ln.split("|", 1)[1].strip() for ln in path.read_text(encoding="utf-8-sig").splitlines() if '"GET ' in ln]
    assert len(rows) == len(lines) > 0
    for row, line in zip(rows, lines):
        assert row["src_endpoint"]["ip"] == line.split(" ", 1)[0]
        assert row["http_request"]["user_agent"] == line.split('"')[5]
        assert row["http_request"]["version"] == line.split('"')[1].rsplit("HTTP/", 1)[1]
        assert {"name": "src_endpoint.ip", "type_id": 2, "value": line.split(" ", 1)[0]} in row["observables"]


def test_json_access_lines_client_ip_and_user_agent(tmp_path, reader):
    path = tmp_path / "logs.txt"
    rec = {"timestamp": "2026-11-23T06:27:23.740Z", "level": "INFO", "message": "request completed", "method": "GET",
           "path": "/api/x", "status": 200, "client_ip": "10.1.2.3", "user_agent": "curl/8.5", "tenant": "a",
           "nested": {"k": [1, 2]}, "service": "web-api"}
    path.write_text(f"web-api-1  | {json.dumps(rec)}\n" * 3)
    rows = _convert("logs", path, tmp_path)
    assert [r["src_endpoint"]["ip"] for r in rows] == ["10.1.2.3"] * 3
    assert rows[0]["http_request"]["user_agent"] == "curl/8.5"
    # unknown keys are kept, typed: a map whose non-string values are JSON text
    # (its "service" is the line's own service: not repeated; another service would be kept)
    assert rows[0]["unmapped"]["extra"] == {"tenant": "a", "nested": '{"k":[1,2]}'}
    path.write_text(f"web-api-1  | {json.dumps(dict(rec, service='billing'))}\n")
    assert _convert("logs", path, tmp_path)[0]["unmapped"]["extra"]["service"] == "billing"


# ----------------------------------------------------------------------------- item 2
def test_client_spans_name_the_called_service(tmp_path):
    kinds = Counter()
    for _, s, a, row in _span_rows(OTLP / "jaeger_fixture_memory_otel_traces_01.json", tmp_path):
        kind = s["kind"] if isinstance(s["kind"], int) else ["", "INTERNAL", "SERVER", "CLIENT", "PRODUCER",
                                                               "CONSUMER"].index(s["kind"].removeprefix("SPAN_KIND_"))
        kinds[kind] += 1
        peer = a["peer.service"]
        if kind in (3, 4):  # client, producer: the called service
            assert row["dst_endpoint"]["svc_name"] == peer
            assert row["src_endpoint"]["svc_name"] == row["unmapped"]["service"]
            if row["class_uid"] == 6003:
                assert row["api"]["service"]["name"] == peer != row["unmapped"]["service"]
                assert row["actor"]["app_name"] == row["unmapped"]["service"]
        else:  # server, consumer: the caller
            assert row["src_endpoint"]["svc_name"] == peer
            assert row["unmapped"]["attributes"]["peer.ipv4"] == a["peer.ipv4"]  # a Jaeger uint32: kept, not an ip
            assert row["dst_endpoint"]["svc_name"] == row["unmapped"]["service"]
            if row["class_uid"] == 6003:
                assert row["actor"]["app_name"] == peer
        assert row["dst_endpoint"].get("hostname") != peer  # a logical name, not a host
    assert set(kinds) == {2, 3, 4, 5}


def test_database_fields_are_kept_typed(lamp_spans):
    seen = 0
    for _, s, a, row in lamp_spans:
        if "db.system" not in a:
            continue
        seen += 1
        um = row["unmapped"]
        assert (um["db_system"], um["db_name"], um["db_user"], um["db_statement"]) == (
            a["db.system"], a["db.name"], a["db.user"], a["db.statement"])
        assert row["actor"]["user"]["name"] == a["db.user"]
        assert {"name": "actor.user.name", "type_id": 4, "value": a["db.user"]} in row["observables"]
        assert um["attributes"]["db.operation"] == a["db.operation"]  # the rest: typed map
    assert seen == 2


# ----------------------------------------------------------------------------- item 3
def test_nothing_from_a_span_is_dropped(tmp_path, reader):
    path = OTLP / "generated_here" / "python_otlp_json_file_exporter_0.66b1.jsonl"
    rows = _by_span(_convert("traces", path, tmp_path))
    events = links = 0
    for res, s in _raw_spans(path):
        row = rows[s["spanId"].lower()]
        um = row["unmapped"]
        for key in res:
            if key not in T.RESOURCE_COLUMNS:
                assert key in um["resource"], key
        extracted = {k for keys in T.SPAN_ATTR_COLUMNS.values() for k in keys}
        for key in _attrs(s):
            assert key in extracted or key in (um["attributes"] or {}), key
        if s.get("events"):
            events += 1
            got = json.loads(um["events"])
            assert [e["name"] for e in got] == [e["name"] for e in s["events"]]
            assert got[0]["time_unix_nano"] == int(s["events"][0]["timeUnixNano"])
        if s.get("links"):
            links += 1
            got = json.loads(um["links"])
            assert [ln["span_id"] for ln in got] == [ln["spanId"].lower() for ln in s["links"]]
        if s.get("flags", 0) & 1:
            assert "sampled" in row["trace"]["flags"]
    assert events and links
    assert any("exception" in (r["unmapped"]["events"] or "") for r in rows.values())


def test_trace_state_is_kept(tmp_path):
    path = OTLP / "jaeger_fixture_memory_otel_traces_01.json"
    rows = _by_span(_convert("traces", path, tmp_path))
    states = {s["spanId"].lower(): s["traceState"] for _, s in _raw_spans(path) if s.get("traceState")}
    assert states and all(rows[k]["unmapped"]["trace_state"] == v for k, v in states.items())


def test_unknown_json_log_keys_are_kept_and_raw_data_on_request(tmp_path, reader):
    path = LOGS / "gologs_colored_json_app_logs_lines1-9000.log"
    rows = _convert("logs", path, tmp_path, raw_data=True)
    known = {k for group in T.LOG_KEY_GROUPS.values() for k in group} | set(T.LOG_SINGLE_KEYS) | \
        set(T.LOG_SAME_AS_SERVICE)
    checked = 0
    for row in rows[:2000]:
        payload = row["raw_data"]
        assert payload is not None
        obj = json.loads(payload[payload.index("{"):]) if "{" in payload else None
        if not isinstance(obj, dict):
            continue
        checked += 1
        for key in obj:
            assert key in known or key in (row["unmapped"]["extra"] or {}), key
    assert checked > 1000
    plain = _convert("logs", path, tmp_path)
    assert all(r["raw_data"] is None for r in plain)


# ----------------------------------------------------------------------------- item 4
def test_span_service_and_exact_durations(tmp_path, reader):
    path = OTLP / "collector_fileexporter_multiservice_robotframework.jsonl"
    rows = _convert("traces", path, tmp_path)
    assert len(rows) > 1000
    for r in rows:
        span = r["trace"]["span"]
        assert span["duration"] == span["end_time"] - span["start_time"] == r["duration"]
        assert span["service"]["name"] == r["unmapped"]["service"]


# ----------------------------------------------------------------------------- item 5
def test_lifecycle_only_for_real_start_stop_restart(tmp_path, reader):
    rows = _convert("logs", LOGS / "ecommerce_container_name_prefix_ansi_in_message.log", tmp_path)
    life = [r for r in rows if r["class_uid"] == 6002]
    assert not any("starting from scratch" in r["message"] or "module stopped" in r["message"] for r in life)
    assert any("graceful shutdown" in r["message"] and r["activity_id"] == 4 for r in life)
    assert len(life) < 55  # (55 of 163 lines were 6002 before)
    rows = _convert("logs", LOGS / "spreadpilot_colored_mongodb_json_tracebacks.log", tmp_path)
    restarted = [r for r in rows if "RESTARTED" in (r["message"] or "")]
    assert restarted and all(r["class_uid"] == 6002 and r["activity_id"] == 5 for r in restarted)
    assert all(r["activity_name"] == "Restart" for r in restarted)


# ----------------------------------------------------------------------------- items 6, 7
def test_vendor_names_observables_and_prometheus_product(tmp_path):
    logs = _convert("logs", LOGS / "utf8_bom_nginx_access.log", tmp_path)
    spans = _convert("traces", OTLP / "collector_fileexporter_javaagent_lamp.jsonl", tmp_path)
    assert {r["metadata"]["product"]["vendor_name"] for r in logs} == {"Docker"}
    assert {r["metadata"]["product"]["vendor_name"] for r in spans} == {"OpenTelemetry"}
    sample = Path(__file__).resolve().parents[1] / "data" / "sample" / "raw" / "logs.txt"  # a lab run's access lines
    traced = [r for r in _convert("logs", sample, tmp_path) if r.get("trace")]
    assert traced and all({"name": "trace.uid", "type_id": 99, "value": r["trace"]["uid"]} in r["observables"]
                          for r in traced)
    ips = [o for r in spans for o in r.get("observables") or [] if o["type_id"] == 2]
    assert ips and all(o["value"] == r_ip for o, r_ip in zip(ips, [r["src_endpoint"]["ip"] for r in spans
                                                                   if r.get("src_endpoint", {}).get("ip")]))
    src = FIXTURES / "prometheus" / "generated_here_debian_prometheus_2.42" / "01_up_two_targets_one_down.json"
    raw = json.loads(src.read_text())["data"]["result"]
    metrics = _convert("metrics", src, tmp_path)
    assert {r["metadata"]["product"]["name"] for r in metrics} == {"Prometheus"}
    jobs = {s["metric"]["instance"]: s["metric"]["job"] for s in raw}
    for r in metrics:
        labels = r["unmapped"]["labels"]
        assert labels["job"] == jobs[labels["instance"]] == r["metadata"]["reporter"]["name"]  # job kept as a label
        assert r["metadata"]["reporter"]["hostname"] == labels["instance"]


def test_attributes_labels_and_extras_are_typed_maps(tmp_path):
    import pyarrow.parquet as pq

    from obslab.ocsf.schemas import SIGNAL_SCHEMAS

    for signal, name in (("traces", "attributes"), ("traces", "resource"), ("metrics", "labels"), ("logs", "extra")):
        assert pa.types.is_map(SIGNAL_SCHEMAS[signal].field("unmapped").type.field(name).type)
    assert pa.types.is_map(FLAT_SPAN.field("attributes").type) and pa.types.is_map(FLAT_LOG.field("extra").type)
    path = OTLP / "collector_fileexporter_javaagent_lamp.jsonl"
    out = tmp_path / "t.parquet"
    convert_file("traces", path, out, quiet=True)
    attrs = pc.struct_field(pq.read_table(out).column("unmapped"), "attributes")
    ops = pc.map_lookup(attrs, pa.scalar("db.operation"), "first").drop_null().to_pylist()
    assert ops == [a["db.operation"] for _, s in _raw_spans(path) for a in [_attrs(s)] if "db.operation" in a]
