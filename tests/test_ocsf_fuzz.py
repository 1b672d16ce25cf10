"""Property-based fuzzing of every parser: no crash, and records in = out + rejected."""

from __future__ import annotations

import json
import os
import tempfile

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obslab.ocsf import ConversionReport, logs_to_ocsf, metrics_to_ocsf, read_compose_logs, read_otlp, read_prometheus, spans_to_ocsf

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                         st.text(max_size=20))
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
                           max_leaves=12)
hexes = st.text("0123456789abcdefABCDEF", min_size=0, max_size=34)
int64ish = st.one_of(st.integers(-10, 2**64), st.just("1750000000000000000"), st.integers(0, 2**63 - 1).map(str), st.text(max_size=5), st.none())


@st.composite
def spans(draw):
    s = {"traceId": draw(st.one_of(hexes, st.just("ABCDEF0123456789" * 2))),
         "spanId": draw(st.one_of(hexes, st.just("0123456789abcdef"))), "name": draw(st.text(max_size=10)),
         "startTimeUnixNano": draw(int64ish), "endTimeUnixNano": draw(int64ish),
         "kind": draw(st.one_of(st.integers(-3, 9), st.sampled_from(["SPAN_KIND_SERVER", "BOGUS"]), st.none())),
         "status": draw(st.one_of(st.none(), st.fixed_dictionaries({"code": st.one_of(st.integers(-1, 5), st.text(max_size=6))}))),
         "attributes": draw(st.lists(st.fixed_dictionaries({
             "key": st.sampled_from(["http.method", "http.status_code", "url.path", "anomaly.type", "x", "db.statement"]),
             "value": st.one_of(st.fixed_dictionaries({"stringValue": st.text(max_size=8)}),
                                st.fixed_dictionaries({"intValue": int64ish}), json_values)}), max_size=4))}
    if draw(st.booleans()):
        s["extra"] = draw(json_values)
    return s


@st.composite
def otlp_lines(draw):
    kind = draw(st.sampled_from(["doc", "garbage", "truncated", "json", "blank", "logs"]))
    if kind == "doc":
        doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
                                  "scopeSpans": [{"scope": {"name": "s"}, "spans": draw(st.lists(spans(), max_size=4))}]}]}
        return json.dumps(doc)
    if kind == "truncated":
        return json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [draw(spans())]}]}]})[: draw(st.integers(1, 40))]
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "logs":
        return json.dumps({"resourceLogs": []})
    if kind == "blank":
        return ""
    return draw(st.text(max_size=60)).replace("\n", " ").replace("\r", " ")


def _write(data: bytes) -> str:
    fd, path = tempfile.mkstemp()
    os.write(fd, data)
    os.close(fd)
    return path


def _drain(reader, path, signal):
    report = ConversionReport(signal=signal)
    try:
        batches = list(reader(path, report))
    finally:
        os.unlink(path)
    report.check()
    return report, batches


@SETTINGS
@given(st.lists(otlp_lines(), max_size=8))
def test_fuzz_otlp(lines):
    report, batches = _drain(read_otlp, _write("\n".join(lines).encode("utf-8", "surrogatepass")), "traces")
    rows = sum(b.num_rows for b in batches)
    assert rows == report.records_out
    if batches:
        table = spans_to_ocsf(pa.Table.from_batches(batches))
        assert table.num_rows == rows


prefixes = st.sampled_from(["web-api-1  | ", "\x1b[36mauth_1 |\x1b[0m ", "db | ", "", "Attaching to x", "a |"])
payloads = st.one_of(
    st.text(max_size=80),
    st.builds(lambda d: json.dumps(d), st.fixed_dictionaries(
        {"timestamp": st.one_of(st.text(max_size=30), st.integers(), st.just("2025-01-01T00:00:00Z")),
         "level": st.text(max_size=6), "message": st.text(max_size=20)},
        optional={"method": st.text(max_size=5), "status": json_values, "duration_ms": json_values})),
    st.builds(lambda v: json.dumps(v), json_values),
    st.just("2025-08-18T22:10:11.275876972Z hello"),
)


@SETTINGS
@given(st.lists(st.tuples(prefixes, payloads), max_size=12), st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
       st.sampled_from(["\n", "\r\n"]))
def test_fuzz_compose(lines, encoding, eol):
    text = eol.join(p + q.replace("\n", " ").replace("\r", " ") for p, q in lines)
    report, batches = _drain(read_compose_logs, _write(text.encode(encoding, "surrogatepass")), "logs")
    rows = sum(b.num_rows for b, _ in batches)
    assert rows == report.records_out
    if batches:
        table = logs_to_ocsf(pa.Table.from_batches([b for b, _ in batches]))
        assert table.num_rows == rows


sample_values = st.one_of(st.just("NaN"), st.just("+Inf"), st.just("-Inf"), st.floats().map(str), st.integers().map(str),
                          json_values)
samples = st.lists(st.one_of(st.tuples(st.one_of(st.floats(), st.integers(), st.text(max_size=4)), sample_values).map(list),
                             json_values), max_size=6)
series = st.fixed_dictionaries({"metric": st.one_of(st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=3), json_values),
                                "values": st.one_of(samples, json_values)})
responses = st.one_of(
    st.builds(lambda r: {"status": "success", "data": {"resultType": "matrix", "result": r}}, st.lists(series, max_size=3)),
    st.builds(lambda e: {"status": "error", "errorType": "bad_data", "error": e}, st.text(max_size=10)),
    st.lists(series, max_size=3),
    json_values,
)


@SETTINGS
@given(st.one_of(responses, st.builds(lambda rs: {"results": [{"name": "m", "query": "q", "unit": "u", "response": r} for r in rs]},
                                      st.lists(responses, max_size=3))),
       st.booleans())
def test_fuzz_prometheus(doc, truncate):
    data = json.dumps(doc).encode()
    if truncate:
        data = data[: len(data) // 2]
    report, batches = _drain(read_prometheus, _write(data), "metrics")
    rows = sum(b.num_rows for b in batches)
    assert rows == report.records_out
    if batches:
        assert metrics_to_ocsf(pa.Table.from_batches(batches)).num_rows == rows


@SETTINGS
@given(st.binary(max_size=300))
def test_fuzz_garbage_bytes_every_reader(data):
    for reader, signal in ((read_otlp, "traces"), (read_compose_logs, "logs"), (read_prometheus, "metrics")):
        _drain(reader, _write(data), signal)
