"""The compiled OTLP block parser (obslab.ocsf._native) gives exactly what otlp.py gives.

Every line either passes the native parser and equals the per-span Python parser, or is refused
and read by the Python parser (that line only): the converted table is the same either way, and
the report says how many lines the Python parser read (``notes["native_line_fallback"]``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obslab.ocsf import ConversionReport, native, read_otlp

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "raw" / "traces.jsonl"
T0 = 1_763_000_000_000_000_000


@pytest.fixture(autouse=True)
def _native_on(monkeypatch):
    assert native._native is not None, "obslab.ocsf._native was not built (needs g++ and libsimdjson-dev)"
    monkeypatch.setenv("OBSLAB_NATIVE", "1")


def _read(path: Path, fast: bool = True):
    rep = ConversionReport()
    batches = list(read_otlp(path, rep, fast=fast))
    return (pa.Table.from_batches(batches) if batches else None), rep


def _compare(path: Path) -> ConversionReport:
    fast, rep = _read(path)
    slow, slow_rep = _read(path, fast=False)
    assert rep.balanced and slow_rep.balanced
    assert (rep.records_in, rep.records_out, rep.rejected) == (slow_rep.records_in, slow_rep.records_out,
                                                               slow_rep.rejected)
    assert rep.reasons == slow_rep.reasons and rep.examples == slow_rep.examples
    assert rep.problems == slow_rep.problems
    assert rep.notes["wrong_signal_lines"] == slow_rep.notes["wrong_signal_lines"]
    if slow is None or slow.num_rows == 0:
        assert fast is None or fast.num_rows == 0
        return rep
    assert fast.num_rows == slow.num_rows
    for name in slow.column_names:
        assert fast.column(name).to_pylist() == slow.column(name).to_pylist(), name
    return rep


def _span(**over) -> dict:
    span = {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173", "name": "GET /api", "kind": 2,
            "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 1_500_000),
            "attributes": [{"key": "http.request.method", "value": {"stringValue": "GET"}},
                           {"key": "url.path", "value": {"stringValue": "/api/items?id=3"}},
                           {"key": "http.response.status_code", "value": {"intValue": "200"}}],
            "status": {}}
    span.update(over)
    return span


def _line(spans, resource_attrs=None, scope=None) -> str:
    if resource_attrs is None:
        resource_attrs = [{"key": "service.name", "value": {"stringValue": "web-api"}}]
    ss = {"scope": {"name": "flask"} if scope is None else scope, "spans": spans}
    return json.dumps({"resourceSpans": [{"resource": {"attributes": resource_attrs}, "scopeSpans": [ss]}]})


def _attr(key, value) -> dict:
    return {"key": key, "value": value}


# (name, line, whether the native parser must accept it)
CASES = [
    ("plain", _line([_span()]), True),
    ("upper-case ids", _line([_span(traceId="5B8EFFF798038103D269B633813FC60C", spanId="EEE19B7EC3C1B174")]), True),
    ("root span", _line([_span(parentSpanId="")]), True),
    ("no parent key", _line([{k: v for k, v in _span().items() if k != "parentSpanId"}]), True),
    ("no end", _line([{k: v for k, v in _span().items() if k != "endTimeUnixNano"}]), True),
    ("empty end", _line([_span(endTimeUnixNano="")]), True),
    ("numeric times", _line([_span(startTimeUnixNano=T0, endTimeUnixNano=T0 + 5)]), True),
    ("end before start", _line([_span(endTimeUnixNano=str(T0 - 10**6))]), True),
    ("kind out of range", _line([_span(kind=9)]), True),
    ("error status", _line([_span(status={"code": 2, "message": "boom"})]), True),
    ("status empty message", _line([_span(status={"code": 1, "message": ""})]), True),
    ("name missing", _line([{k: v for k, v in _span().items() if k != "name"}]), True),
    ("name a number", _line([_span(name=5)]), True),
    ("extra span fields", _line([_span(flags=256, traceState="", droppedAttributesCount=0,
                                       events=[{"timeUnixNano": str(T0), "name": "exception",
                                                "attributes": [_attr("exception.type", {"stringValue": "X"})]}],
                                       links=[])]), True),
    ("node int", _line([_span(attributes=[_attr("http.status_code", {"intValue": 503}),
                                          _attr("net.peer.port", {"intValue": 5432})])]), True),
    ("int text forms", _line([_span(attributes=[_attr("a", {"intValue": "007"}), _attr("b", {"intValue": "-0"})])]), True),
    ("int text the Python way only", _line([_span(attributes=[_attr("a", {"intValue": " 7"})])]), False),
    ("int64 text", _line([_span(attributes=[_attr("a", {"intValue": "4611686018427387904"}),
                                            _attr("b", {"intValue": "-9223372036854775808"}),
                                            _attr("c", {"intValue": "9223372036854775807"})])]), True),
    ("int text past int64", _line([_span(attributes=[_attr("a", {"intValue": "9223372036854775808"})])]), False),
    ("float times", _line([_span(startTimeUnixNano=float(T0), endTimeUnixNano=float(T0) + 4096.0)]), True),
    ("doubles", _line([_span(attributes=[_attr("r", {"doubleValue": v}) for v in (0.25, 3, 0.0, 1e-4, 123.456)] +
                             [_attr("ratio", {"doubleValue": 1e15})])]), True),
    ("negative zero", _line([_span(attributes=[_attr("r", {"doubleValue": -0.0}),
                                               _attr("db.system", {"doubleValue": -0.0})])]), True),
    ("integer negative zero", _line([_span(attributes=[
        _attr("r", {"doubleValue": 1.5}), _attr("db.system", {"doubleValue": 1.5})])]).replace("1.5", "-0"), True),
    ("doubles out of fixed range", _line([_span(attributes=[
        _attr("r", {"doubleValue": v}) for v in (1e20, 1e16, 1.5e-5, -2.5e-300, 5e-324, 1.7976931348623157e308)] + [
        _attr("db.system", {"doubleValue": 1.25e17}), _attr("anomaly.type", {"doubleValue": 3e-7}),
        _attr("http.method", {"doubleValue": 1e22}),
        _attr("list", {"arrayValue": {"values": [{"doubleValue": 1e-9}, {"doubleValue": -0.0}]}})])]), True),
    ("double as text", _line([_span(attributes=[_attr("r", {"doubleValue": "NaN"})])]), False),
    ("bools", _line([_span(attributes=[_attr("f", {"boolValue": True}), _attr("g", {"boolValue": False})])]), True),
    ("bool method", _line([_span(attributes=[_attr("http.method", {"boolValue": True})])]), True),
    ("double status", _line([_span(attributes=[_attr("http.status_code", {"doubleValue": 404.7})])]), True),
    ("text status", _line([_span(attributes=[_attr("http.status_code", {"stringValue": "abc"})])]), False),
    ("huge status", _line([_span(attributes=[_attr("http.status_code", {"intValue": "99999999999"})])]), True),
    ("int path", _line([_span(attributes=[_attr("url.path", {"intValue": 5})])]), True),
    ("duplicate keys", _line([_span(attributes=[_attr("a", {"stringValue": "1"}), _attr("b", {"intValue": 2}),
                                                _attr("a", {"stringValue": "3"})])]), True),
    ("old and new names", _line([_span(attributes=[_attr("http.method", {"stringValue": "post"}),
                                                   _attr("http.request.method", {"stringValue": "get"}),
                                                   _attr("http.target", {"stringValue": "/old"}),
                                                   _attr("peer.service", {"stringValue": "db"})])]), True),
    ("null value", _line([_span(attributes=[_attr("a", None), _attr("http.route", {"stringValue": None}),
                                            {"key": "b"}])]), True),
    ("markers", _line([_span(attributes=[_attr("anomaly.type", {"stringValue": "cpu"}),
                                         _attr("http.request.header.x-anomaly-label", {"arrayValue": {"values": [
                                             {"stringValue": "1"}, {"stringValue": "2"}]}}),
                                         _attr("X-Anomaly-Root-Cause", {"intValue": 7}),
                                         _attr("anomaly.msg", {"arrayValue": {"values": []}}),
                                         _attr("anomaly.other", {"stringValue": "stays"})])]), True),
    ("marker overwritten by null", _line([_span(attributes=[_attr("anomaly.type", {"stringValue": "cpu"}),
                                                            _attr("x-anomaly-type", None)])]), True),
    ("array attribute", _line([_span(attributes=[_attr("a", {"arrayValue": {"values": [{"stringValue": "x"}]}})])]), True),
    ("bytes values", _line([_span(attributes=[_attr("blob", {"bytesValue": "AAAwOQ=="}),
                                              _attr("url.path", {"bytesValue": "L3g/eT0x"}),
                                              _attr("anomaly.type", {"bytesValue": None})])],
                            [_attr("service.name", {"bytesValue": "d2Vi"})]), True),
    ("kvlist attribute", _line([_span(attributes=[_attr("a", {"kvlistValue": {"values": []}})])]), True),
    ("escapes and unicode", _line([_span(name="caf\u00e9 \U0001F600", attributes=[
        _attr("note", {"stringValue": 'say "hi" \\ \u00fc \t\n\r\x01\x1f\x7f \u2028'})])]), True),
    ("key needs escaping", _line([_span(attributes=[_attr('we"ird', {"stringValue": "x"})])]), True),
    ("events and links", _line([_span(flags=769, traceState="k=v", events=[
        {"timeUnixNano": str(T0), "name": 'boom "x"', "attributes": [_attr("exception.type", {"stringValue": "E"}),
                                                                    _attr("n", {"intValue": 3}),
                                                                    _attr("r", {"doubleValue": 0.5})]},
        {"name": "no time"}, {"timeUnixNano": T0}],
        links=[{"traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174", "traceState": "a=b",
                "attributes": [_attr("link.kind", {"stringValue": "follows"})]}, {"spanId": ""}])]), True),
    ("event with a list attribute", _line([_span(events=[{"name": "e", "attributes": [
        _attr("a", {"arrayValue": {"values": [{"stringValue": "x"}]}})]}])]), True),
    ("base64 link id", _line([_span(links=[{"traceId": "W47/95gDgQPSabYzgT/GDA==", "spanId": "7uGbfsPBsXQ="}])]), True),
    ("unpadded base64 link id", _line([_span(links=[{"spanId": "7uGbfsPBsXQ"}])]), False),
    ("flags as text", _line([_span(flags="1")]), False),
    ("resource attributes", _line([_span()], [_attr("service.name", {"stringValue": "web"}),
                                             _attr("service.version", {"stringValue": "1.2"}),
                                             _attr("process.pid", {"intValue": 7}),
                                             _attr("telemetry.sdk.name", {"stringValue": "opentelemetry"})]), True),
    ("resource list value", _line([_span()], [_attr("process.command_args", {"arrayValue": {"values": [
        {"stringValue": "java"}, {"intValue": "3"}, {"kvlistValue": {"values": [_attr("k", {"boolValue": True})]}}]}})]),
     True),
    ("list with a null values", _line([_span(attributes=[_attr("a", {"arrayValue": {"values": None}})])]), False),
    ("resource identity", _line([_span()], [_attr("service.name", {"stringValue": ""}),
                                            _attr("host.name", {"stringValue": ""}),
                                            _attr("k8s.pod.name", {"stringValue": "pod-1"}),
                                            _attr("region", {"stringValue": ""}),
                                            _attr("process.command_args", {"arrayValue": {"values": [
                                                {"stringValue": "python"}]}})]), True),
    ("resource host only", _line([_span()], [_attr("host.name", {"stringValue": "h1"}),
                                             _attr("cloud.region", {"stringValue": "eu"})]), True),
    ("int service name", _line([_span()], [_attr("service.name", {"intValue": 5})]), False),
    ("before OTLP 0.15", json.dumps({"resourceSpans": [{"resource": {}, "instrumentationLibrarySpans": [
        {"instrumentationLibrary": {"name": "old-lib", "version": "1"}, "spans": [_span(name="old")]}]}]}), True),
    ("empty scopeSpans, then the old name", json.dumps({"resourceSpans": [{"scopeSpans": [],
        "instrumentationLibrarySpans": [{"scope": {}, "instrumentation_library": {"name": "lib2"},
                                         "spans": [_span()]}]}]}), True),
    ("scopeSpans wins", json.dumps({"resourceSpans": [{"instrumentationLibrarySpans": [{"spans": [_span(name="x")]}],
        "scopeSpans": [{"scope": {"name": "s"}, "instrumentationLibrary": {"name": "il"}, "spans": [_span()]}]}]}),
     True),
    ("scope of another type", _line([_span()], scope="flask"), False),
    ("no scope", _line([_span()], scope={}), True),
    ("empty scope name", _line([_span()], scope={"name": ""}), True),
    ("base64 ids", _line([_span(traceId="W47/95gDgQPSabYzgT/GDA==", spanId="7uGbfsPBsXQ=",
                                parentSpanId="AAAAAAAAAAA=")]), True),
    ("base64 low bits set", _line([_span(traceId="W47/95gDgQPSabYzgT/GDB==", spanId="7uGbfsPBsXR=")]), True),
    ("all-zero base64 id", _line([_span(spanId="AAAAAAAAAAA=")]), False),
    ("base64 id of another length", _line([_span(spanId="7uGbfsPBsXQAAA==")]), False),
    ("short id", _line([_span(spanId="abc")]), False),
    ("missing start", _line([{k: v for k, v in _span().items() if k != "startTimeUnixNano"}]), False),
    ("kind name", _line([_span(kind="SPAN_KIND_SERVER")]), True),
    ("enum names and texts", _line([_span(kind="client", status={"code": "STATUS_CODE_ERROR"}),
                                    _span(kind="-1", status={"code": "Ok"}), _span(kind="4", status={"code": "what"}),
                                    _span(kind="", status={"code": "2"})]), True),
    ("enum text int() refuses", _line([_span(kind="--5")]), False),
    ("snake case span", _line([{"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174",
                                "start_time_unix_nano": str(T0), "name": "x"}]), True),
    ("snake case throughout", json.dumps({"resource_spans": [{"resource": {"attributes": [
        _attr("service.name", {"string_value": "robot"}), _attr("n", {"int_value": "4"})],
        "dropped_attributes_count": 0},
        "schema_url": "", "scope_spans": [{"scope": {"name": "rf"}, "schema_url": "", "spans": [{
            "trace_id": "5B8EFFF798038103D269B633813FC60C", "span_id": "eee19b7ec3c1b174",
            "parent_span_id": "eee19b7ec3c1b173", "start_time_unix_nano": str(T0), "end_time_unix_nano": T0 + 9,
            "trace_state": "a=b", "dropped_events_count": 0, "kind": "SPAN_KIND_CLIENT",
            "status": {"code": "STATUS_CODE_OK"},
            "attributes": [_attr("r", {"double_value": 2.5e-9}), _attr("db.system", {"string_value": "pg"}),
                           _attr("l", {"array_value": {"values": [{"bool_value": True}, {"kvlist_value": {
                               "values": [_attr("k", {"bytes_value": "AA=="})]}}]}})],
            "events": [{"time_unix_nano": str(T0), "name": "e", "attributes": [_attr("x", {"int_value": 1})]}],
            "links": [{"trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b171",
                       "trace_state": "c=d"}]}]}]}]}), True),
    ("camel and snake names in one span", _line([_span(trace_id="5b8efff798038103d269b633813fc60d")]), False),
    ("camel and snake names in one event", _line([_span(events=[{"timeUnixNano": None, "time_unix_nano": str(T0)}])]),
     False),
    ("snake value name first", _line([_span(attributes=[_attr("a", {"int_value": "3", "stringValue": "x"})])]), True),
    ("escaped key", _line([_span()]).replace('"parentSpanId"', '"parent\\u0053panId"'), True),
    # values the parser does not read must still be valid JSON (orjson rejects the whole line)
    ("bad atom in a skipped field", _line([_span()]).replace('"kind": 2', '"flags": tru, "kind": 2'), False),
    ("bad number in skipped events", _line([_span(events=[])]).replace('"events": []', '"events": [01]'), False),
    ("two objects on a line", _line([_span()]) + " " + _line([_span()]), False),
    ("truncated", _line([_span()])[:-7], False),
    ("null line", "null", False),
    ("logs not traces", json.dumps({"resourceLogs": []}), False),
    ("empty resourceSpans", json.dumps({"resourceSpans": []}), True),
]


@pytest.mark.parametrize("name,line,accepted", CASES, ids=[c[0] for c in CASES])
def test_case_equals_python_path(tmp_path, name, line, accepted):
    path = tmp_path / "t.jsonl"
    path.write_text(_line([_span(name="first")]) + "\n" + line + "\n\n")
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"], (name, rep.notes)
    assert rep.notes["native_line_fallback"] == int(not accepted), (name, rep.notes)


def test_crlf_and_blank_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_bytes(("\r\n".join([_line([_span()]), "", "  ", _line([_span(name="b")])]) + "\r\n").encode())
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1 and rep.records_out == 2


def test_real_lab_sample_takes_the_native_path():
    rep = _compare(SAMPLE)
    assert rep.records_out > 500
    assert rep.notes["blocks_fast_path"] >= 1 and not rep.notes["blocks_slow_path"], rep.notes


def test_many_blocks(tmp_path):
    """Spans of a multi-block file keep their order and count across block boundaries."""
    rng = random.Random(4)
    path = tmp_path / "t.jsonl"
    with open(path, "w") as f:
        for i in range(300):
            f.write(_line([_span(spanId=f"{rng.getrandbits(64):016x}", name=f"op{i}")]) + "\n")
    rep = ConversionReport()
    fast = pa.Table.from_batches(list(read_otlp(path, rep, chunk_bytes=4096)))
    slow = pa.Table.from_batches(list(read_otlp(path, fast=False)))
    assert rep.notes["blocks_fast_path"] > 10 and not rep.notes["blocks_slow_path"]
    assert fast.column("name").to_pylist() == slow.column("name").to_pylist() == [f"op{i}" for i in range(300)]
    assert fast.equals(slow)


VALUES = st.one_of(
    st.builds(lambda s: {"stringValue": s}, st.text(max_size=8)),
    st.builds(lambda i: {"intValue": i}, st.integers(-10**12, 10**12)),
    st.builds(lambda i: {"intValue": str(i)}, st.integers(-10**5, 10**5)),
    st.builds(lambda d: {"doubleValue": d}, st.floats(allow_nan=False, allow_infinity=False)),
    st.builds(lambda b: {"boolValue": b}, st.booleans()),
    st.builds(lambda xs: {"arrayValue": {"values": [{"stringValue": x} for x in xs]}}, st.lists(st.text(max_size=3), max_size=2)),
    st.just({}), st.none(),
)
KEYS = st.sampled_from(["http.method", "http.request.method", "url.path", "http.target", "http.route",
                        "http.status_code", "http.response.status_code", "server.address", "peer.service",
                        "db.system", "db.statement", "messaging.system", "anomaly.type", "x-anomaly-label",
                        "http.request.header.x-anomaly-root-cause", "anomaly.msg", "note", "a", "b"])
SPANS = st.builds(
    lambda attrs, kind, code, parent, end: _span(
        attributes=[_attr(k, v) for k, v in attrs], kind=kind, status={"code": code},
        parentSpanId=parent, endTimeUnixNano=end),
    st.lists(st.tuples(KEYS, VALUES), max_size=6), st.integers(-1, 7), st.integers(-1, 3),
    st.sampled_from(["", "eee19b7ec3c1b173", "EEE19B7EC3C1B173", "xyz"]),
    st.sampled_from(["", str(T0 + 7), "0", "-5", T0 + 9]),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(spans=st.lists(SPANS, min_size=1, max_size=4), cut=st.integers(0, 40))
def test_fuzz_equals_python_path(tmp_path_factory, spans, cut):
    """Random spans, and the same line cut short: never a crash, always the Python result."""
    path = tmp_path_factory.mktemp("fz") / "t.jsonl"
    line = _line(spans)
    path.write_text(line + "\n" + line[: max(1, len(line) - cut)] + "\n")
    _compare(path)


def _names(path: Path, **kw) -> list:
    return pa.Table.from_batches(list(read_otlp(path, ConversionReport(), **kw))).column("name").to_pylist()


@pytest.mark.parametrize("chunk", [1 << 20, 900])
def test_block_mixing_accepted_and_refused_lines(tmp_path, chunk):
    """Only the refused lines go to the Python reader: rows in line order, the same counts and
    rejections as the reference, the refused lines counted (never as rejections)."""
    bad_start = {k: v for k, v in _span(name="no start").items() if k != "startTimeUnixNano"}
    lines = [
        _line([_span(name="a1"), _span(name="a2")]),
        _line([_span(name="b64", attributes=[_attr("a", {"intValue": " 7"})])]),  # refused, read here
        "",
        _line([_span(name="c")]),
        '{"resourceSpans": [ not json',  # refused, rejected here
        _line([bad_start, _span(name="e")]),  # refused: one span rejected, one kept
        json.dumps({"resourceLogs": []}),  # refused: another signal
        "null",  # refused, rejected
        _line([_span(name="g1")]) + "\r",
        _line([_span(name="mixed", trace_id="5b8efff798038103d269b633813fc60d")]),  # refused, read here
        _line([_span(name="i")]),
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n")
    rep = _compare(path)
    assert _names(path, chunk_bytes=chunk) == _names(path, fast=False) == \
        ["a1", "a2", "b64", "c", "e", "g1", "mixed", "i"]
    fast = ConversionReport()
    list(read_otlp(path, fast, chunk_bytes=chunk))
    assert fast.notes["native_line_fallback"] == 6 and not fast.notes["blocks_slow_path"], fast.notes
    assert fast.notes["native_line_fallback_reason"] == "integer text the Python path must read"
    assert (fast.records_in, fast.records_out, fast.rejected) == (rep.records_in, rep.records_out, rep.rejected) \
        == (11, 8, 3)
    assert [e["line"] for e in fast.examples] == [5, 6, 8]


def test_native_call_without_a_list_refuses_the_whole_block():
    """Callers that pass no list still get the old contract: one refused line refuses the block."""
    from obslab.ocsf.report import Unsupported

    data = (_line([_span()]) + "\n" + "null\n").encode()
    with pytest.raises(Unsupported, match="not a JSON object"):
        native.call("parse_otlp_block", data)
    refused: list = []
    cols = native.call("parse_otlp_block", data, refused)
    assert refused == [(1, "a line is not a JSON object", 1)] and len(cols["span_id"]) == 1


# OTLP fixtures whose lines the compiled parser leaves to Python, and why: only lines that are
# not OTLP traces at all or not JSON (the reference reports them as problems or rejections)
FIXTURE_FALLBACK = {
    "collector_fileexporter_LOGS_not_traces.jsonl": 2,  # OTLP logs
    "jaeger_query_api_NOT_otlp.json": 1,  # Jaeger query-API JSON
    "thirdparty_robotframework_malformed_trace.jsonl": 3,  # 2 lines not JSON, 1 without resource_spans
}


def _otlp_fixtures():
    from shared_fixtures import FIXTURES

    return sorted((FIXTURES / "otlp").rglob("*.json*")) if FIXTURES.exists() else []


@pytest.mark.parametrize("src", _otlp_fixtures(), ids=lambda p: p.name)
def test_fixture_takes_the_compiled_path_and_equals_the_reference(tmp_path, src):
    """Every OTLP fixture, as it is and with a (pretty) .json document compacted to one line."""
    path = tmp_path / (src.stem + ".jsonl")
    data = src.read_bytes()
    if src.suffix == ".json":
        data = json.dumps(json.loads(data), ensure_ascii=False).encode() + b"\n"
    path.write_bytes(data)
    _compare(src)
    rep = _compare(path)
    assert not rep.notes["blocks_slow_path"], rep.notes
    assert rep.notes["native_line_fallback"] == FIXTURE_FALLBACK.get(src.name, 0), rep.notes


def test_otlp_fixtures_are_present():
    from shared_fixtures import FIXTURES, MISSING

    if not FIXTURES.exists():
        pytest.skip(MISSING)
    assert len(_otlp_fixtures()) >= 10


FLOAT_EDGES = [1e16, 9999999999999998.0, 1e-4, 9.999999999999999e-05, 1e-5, 5e-324, 2.2250738585072014e-308,
               1.7976931348623157e308, 1.5e-7, 1.2345678901234568e+17, 1e22, 1e21, 123456789.125, 0.1, 2.0**63,
               2.0**64, 1e100, -0.0, 0.0]
NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(FLOAT_EDGES),
                    st.builds(lambda m, e: float(f"{m}e{e}"), st.integers(-10**6, 10**6), st.integers(-330, 310))
                    .filter(lambda x: x == x and abs(x) != float("inf")),
                    st.integers(-2**63, 2**64 - 1))


def _float_span(xs) -> dict:
    """Each number where the reference prints it as repr() (mapped string columns, markers) and
    where it prints it as orjson.dumps (the attribute map, lists, event attributes)."""
    attrs = [_attr(f"r{i}", {"doubleValue": x}) for i, x in enumerate(xs)]
    attrs += [_attr("db.system", {"doubleValue": xs[0]}), _attr("anomaly.type", {"doubleValue": xs[-1]}),
              _attr("http.method", {"doubleValue": xs[len(xs) // 2]}),
              _attr("list", {"arrayValue": {"values": [{"doubleValue": x} for x in xs]}})]
    return _span(attributes=attrs, events=[{"name": "e", "attributes": attrs[: len(xs)]}])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(xs=st.lists(NUMBERS, min_size=1, max_size=6))
def test_fuzz_float_printing_equals_python(tmp_path_factory, xs):
    """Doubles of every magnitude print as repr() and orjson.dumps print them, with no fallback."""
    path = tmp_path_factory.mktemp("fl") / "t.jsonl"
    path.write_text(_line([_float_span(xs)]) + "\n")
    rep = _compare(path)
    assert rep.notes["native_line_fallback"] == 0 and rep.records_out == 1, rep.notes


def test_float_edges_print_as_python(tmp_path):
    """The edges of repr's fixed range, subnormals and the largest double, on the compiled path."""
    import orjson

    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(_line([_span(attributes=[_attr("db.system", {"doubleValue": x}),
                                                         _attr("r", {"doubleValue": x})])]) for x in FLOAT_EDGES))
    rep = ConversionReport()
    table = pa.Table.from_batches(list(read_otlp(path, rep)))
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["native_line_fallback"], rep.notes
    assert table.column("db_system").to_pylist() == [repr(x) for x in FLOAT_EDGES]
    assert [dict(m)["r"] for m in table.column("attributes").to_pylist()] == \
        [orjson.dumps(x).decode() for x in FLOAT_EDGES]


def _id_forms(nbytes: int):
    """An id of nbytes as exporters write it (hex in either case, base64 padded or not), or a
    near miss (another length, a stray character, all zeros)."""
    import base64

    def form(raw, how, cut):
        if how == "hex":
            return raw.hex()
        if how == "HEX":
            return raw.hex().upper()
        b64 = base64.b64encode(raw).decode()
        if how == "b64":
            return b64
        if how == "b64-unpadded":
            return b64.rstrip("=")
        if how == "b64-stray":
            return b64[:cut % len(b64)] + "-" + b64[cut % len(b64) + 1:]
        return (raw + b"\x01").hex()[: 2 * nbytes + cut % 3]  # another length

    raw = st.one_of(st.binary(min_size=nbytes, max_size=nbytes), st.just(bytes(nbytes)))
    hows = st.sampled_from(["hex", "HEX", "b64", "b64", "b64-unpadded", "b64-stray", "length"])
    return st.builds(form, raw, hows, st.integers(0, 30))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trace=_id_forms(16), span=_id_forms(8), parent=_id_forms(8), link_trace=_id_forms(16),
       link_span=_id_forms(8))
def test_fuzz_ids_equal_python(tmp_path_factory, trace, span, parent, link_trace, link_span):
    """Hex and base64 ids (and near misses) read as norm_id reads them."""
    path = tmp_path_factory.mktemp("id") / "t.jsonl"
    spans = [_span(traceId=trace, spanId=span, parentSpanId=parent,
                   links=[{"traceId": link_trace, "spanId": link_span}]), _span(name="plain")]
    path.write_text(_line(spans) + "\n")
    _compare(path)
