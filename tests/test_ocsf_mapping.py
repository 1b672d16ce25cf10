"""Mapping of flat tables to OCSF classes: routing, ids, captions, uids, markers, schemas."""

from __future__ import annotations

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from obslab.ocsf import CLASS_SCHEMAS, SIGNAL_SCHEMAS, logs_to_ocsf, metrics_to_ocsf, spans_to_ocsf, validate_table
from obslab.ocsf import catalog as C
from obslab.ocsf.flat import FLAT_LOG, FLAT_METRIC, FLAT_SPAN
from obslab.ocsf.validate import check_event, official_captions, strip_nulls

T0 = 1_760_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _logs():
    rows = [
        dict(time_ms=T0, service="web-api", level="INFO", message="POST /pay", event="access", http_method="post",
             http_path="/pay", http_status=502, duration_ms=12.6, trace_id=TRACE, span_id="b7ad6b7169203331", line_no=1),
        dict(time_ms=T0 + 1, service="web-api", level="ERROR", message="db down", error_type="OperationalError", line_no=2),
        dict(time_ms=T0 + 2, service="auth-service", level="INFO", message="listening on 127.0.0.1:3001", line_no=3,
             event="lifecycle"),
        dict(time_ms=T0 + 3, service="auth-service", level="INFO", message="Shutting down", event="lifecycle", line_no=4),
        dict(time_ms=T0 + 4, service="worker", level="DEBUG", message="tick", line_no=5),
        dict(time_ms=T0 + 5, service="web-api", level="INFO", message="GET /", http_method="GET", http_status=200, line_no=6),
    ]
    return pa.Table.from_pylist(rows, schema=FLAT_LOG)


def _spans():
    base = dict(time_ms=T0, end_time_ms=T0 + 5, duration_ms=5.0, trace_id=TRACE, service="web-api", status_code=0)
    rows = [
        dict(base, span_id="1" * 16, name="GET /checkout", kind=2, http_method="GET", http_path="/checkout",
             http_status=200, attributes=[("x", "1")], marker_type="latency_spike", marker_label="db_slow"),
        dict(base, span_id="2" * 16, parent_span_id="1" * 16, name="SELECT orders", kind=3, db_system="postgresql",
             db_statement="SELECT * FROM orders"),
        dict(base, span_id="3" * 16, parent_span_id="1" * 16, name="POST", kind=3, http_method="POST",
             server_address="auth-service", http_status=503, status_code=2),
        dict(base, span_id="4" * 16, name="tasks.charge", kind=5, messaging_system="redis"),
        dict(base, span_id="5" * 16, name="INSERT", kind=3, db_statement="insert into t values (1)"),
    ]
    return pa.Table.from_pylist(rows, schema=FLAT_SPAN)


def test_log_classes_and_activities():
    t = logs_to_ocsf(_logs(), "logs.txt")
    assert t.schema == SIGNAL_SCHEMAS["logs"]
    assert t.column("class_uid").to_pylist() == [4002, 6008, 6002, 6002, 0, 4002]
    assert t.column("activity_id").to_pylist() == [6, 1, 3, 4, 0, 3]
    assert t.column("type_uid").to_pylist() == [400206, 600801, 600203, 600204, 0, 400203]
    assert t.column("status_id").to_pylist()[:2] == [2, 2]  # 502 and an error line are failures
    first = strip_nulls(t.slice(0, 1).to_pylist()[0])
    assert first["http_request"]["http_method"] == "POST"
    assert first["http_response"]["code"] == 502
    assert first["trace"]["uid"] == TRACE and first["trace"]["span"]["uid"] == "b7ad6b7169203331"
    assert first["duration"] == 13
    assert first["metadata"]["profiles"] == ["trace"]
    assert validate_table(t).ok


def test_span_classes_activities_and_endpoints():
    t = spans_to_ocsf(_spans(), "traces.jsonl")
    assert t.schema == SIGNAL_SCHEMAS["traces"]
    assert t.column("class_uid").to_pylist() == [4002, 6003, 4002, 6003, 6003]
    assert t.column("activity_id").to_pylist() == [3, 2, 6, 99, 1]
    rows = [strip_nulls(r) for r in t.to_pylist()]
    assert rows[0]["dst_endpoint"] == {"svc_name": "web-api"}
    assert rows[2]["dst_endpoint"] == {"hostname": "auth-service"} and rows[2]["status_id"] == 2
    assert rows[1]["api"]["operation"] == "SELECT orders" and rows[1]["actor"]["app_name"] == "web-api"
    assert rows[1]["trace"]["span"]["parent_uid"] == "1" * 16
    res = validate_table(t)
    assert res.ok, res.summary()


def test_markers_never_reach_ocsf():
    t = spans_to_ocsf(_spans())
    text = orjson.dumps(t.to_pylist()).decode()
    assert "latency_spike" not in text and "db_slow" not in text
    assert not any("marker" in name for name in t.schema.names)


def test_uids_deterministic_unique_and_source_dependent():
    a = logs_to_ocsf(_logs(), "logs.txt")
    b = logs_to_ocsf(_logs(), "logs.txt")
    c = logs_to_ocsf(_logs(), "other.txt")
    ua = pc.struct_field(a.column("metadata"), "uid").to_pylist()
    assert ua == pc.struct_field(b.column("metadata"), "uid").to_pylist()
    assert len(set(ua)) == len(ua)
    assert set(ua).isdisjoint(pc.struct_field(c.column("metadata"), "uid").to_pylist())
    flat = _logs().drop_columns(["line_no"])  # generated rows: uids from position + offset
    u1 = pc.struct_field(logs_to_ocsf(flat, "g", offset=0).column("metadata"), "uid").to_pylist()
    u2 = pc.struct_field(logs_to_ocsf(flat, "g", offset=6).column("metadata"), "uid").to_pylist()
    assert set(u1).isdisjoint(u2)


def test_metrics_as_base_event_with_unmapped_nonfinite_values():
    flat = pa.Table.from_pylist(
        [dict(time_ms=T0, metric="cpu_pct", value=float("nan"), service="web-api", unit="percent"),
         dict(time_ms=T0, metric="p95_latency_ms", value=float("inf"), service="web-api"),
         dict(time_ms=T0, metric="up", value=1.0)], schema=FLAT_METRIC)
    t = metrics_to_ocsf(flat)
    assert t.column("class_uid").to_pylist() == [0, 0, 0]
    assert t.column("type_uid").to_pylist() == [99, 99, 99]
    values = pc.struct_field(t.column("unmapped"), "value").to_pylist()
    assert values[0] != values[0] and values[1] == float("inf")
    assert validate_table(t).ok


def test_missing_optional_columns_are_accepted_and_required_are_not():
    flat = pa.table({"time_ms": pa.array([T0], pa.int64()), "service": ["a"], "message": ["hello"]})
    assert logs_to_ocsf(flat).num_rows == 1
    with pytest.raises(ValueError, match="time_ms"):
        logs_to_ocsf(pa.table({"service": ["a"]}))


def test_catalog_matches_official_schema():
    official = official_captions()
    for cls, (name, schema_name, cat) in C.CLASSES.items():
        caps = official[cls]
        assert caps["class"] == name and caps["name"] == schema_name and caps["category_uid"] == cat
        assert caps["activities"] == C.ACTIVITIES[cls]
        assert caps["severities"] == C.SEVERITIES and caps["statuses"] == C.STATUSES
        assert C.CATEGORIES[cat] == caps["category"]


def test_class_schemas_are_subsets_of_signal_schema():
    for signal, classes in CLASS_SCHEMAS.items():
        for cls, schema in classes.items():
            for f in schema:
                assert SIGNAL_SCHEMAS[signal].field(f.name) == f


def test_code_checks_catch_what_json_schema_cannot():
    event = strip_nulls(logs_to_ocsf(_logs()).slice(0, 1).to_pylist()[0])
    assert check_event(event, "logs") == []
    bad = dict(event, type_uid=400299)
    assert any("type_uid" in e for e in check_event(bad))
    bad = dict(event, activity_name="Get")
    assert any("activity_name" in e for e in check_event(bad))
    bad = dict(event, metadata=dict(event["metadata"], version="1.1.0"))
    assert any("metadata.version" in e for e in check_event(bad))
    bad = dict(event, severity="High")
    assert any("severity" in e for e in check_event(bad))
    bad = dict(event, bogus=1)
    assert any("bogus" in e for e in check_event(bad))


def test_compiled_schema_validation_agrees_with_the_reference_validator():
    """jsonschema-rs (used for speed) and the pure-Python jsonschema agree on valid and broken
    events of every class we write."""
    import jsonschema
    from ocsf_json_schema import OcsfJsonSchemaEmbedded

    from obslab.ocsf.validate import official_schema

    events = [strip_nulls(r) for r in logs_to_ocsf(_logs()).to_pylist()]
    broken = []
    for ev in events[:3]:
        broken += [dict(ev, time="soon"), {k: v for k, v in ev.items() if k != "metadata"},
                   dict(ev, severity_id="high"), dict(ev, metadata=dict(ev["metadata"], uid=5)),
                   dict(ev, http_request={"http_method": 7})]
    seen = {True: 0, False: 0}
    for ev in events + broken:
        caps = official_captions()[ev["class_uid"]]
        profiles = sorted((ev.get("metadata") or {}).get("profiles") or []) if isinstance(ev.get("metadata"), dict) else []
        schema = OcsfJsonSchemaEmbedded(official_schema()).get_class_schema(caps["name"], profiles=profiles)
        reference = jsonschema.Draft202012Validator(schema).is_valid(ev)
        ours = not [e for e in check_event(ev) if e.startswith("schema ")]
        assert ours == reference, ev
        seen[reference] += 1
    assert seen[True] and seen[False] >= len(broken) - 1


def test_map_value_is_map_lookup_first():
    """The vectorised map lookup gives what ``pc.map_lookup(..., "first")`` gives: null rows,
    absent keys, repeated keys, null values, slices."""
    import random

    from obslab.ocsf.mapping import _map_value

    rng = random.Random(0)
    for _ in range(300):
        rows = [None if rng.random() < 0.15 else
                [(rng.choice("abcd"), rng.choice(["x", "y", None])) for _ in range(rng.randint(0, 4))]
                for _ in range(rng.randint(1, 30))]
        m = pa.array(rows, type=pa.map_(pa.string(), pa.string()))
        if rng.random() < 0.5:
            start = rng.randint(0, len(m) - 1)
            m = m.slice(start, rng.randint(0, len(m) - start))
        for key in "abz":
            assert _map_value(m, key).equals(pc.map_lookup(m, pa.scalar(key), "first")), (m, key)
