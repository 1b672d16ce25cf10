"""The compiled Compose block parser (native/compose.cpp) gives exactly what compose.py gives.

Every case either passes the native parser and equals the per-line Python parser, or is refused
and read by the Python parser: the converted table is the same either way, and the report says
which path read it. The comparison reads with ``OBSLAB_NATIVE=0`` and ``fast=False``.
"""

from __future__ import annotations

import json
import os
import random
import re
import tempfile
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
from shared_fixtures import FIXTURES as SHARED, MISSING
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from obslab.ocsf import ConversionReport, compose, native, read_compose_logs
from obslab.ocsf.flat import FLAT_LOG

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "raw" / "logs.txt"
FIXTURES = SHARED / "compose_logs"
T = "2025-11-13T02:03:04.567Z"


@pytest.fixture(autouse=True)
def _native_on(monkeypatch):
    assert native._native is not None, "obslab.ocsf._native was not built (needs g++ and libsimdjson-dev)"
    monkeypatch.setenv("OBSLAB_NATIVE", "1")


def _read(path: Path, native_on: bool, fast: bool | None = None, **kw):
    """(table or None, time_inferred list, report) with the native parser on, or the Python
    per-line parser alone."""
    with pytest.MonkeyPatch.context() as mp:  # (also inside hypothesis tests)
        mp.setenv("OBSLAB_NATIVE", "1" if native_on else "0")
        rep = ConversionReport()
        pairs = list(read_compose_logs(path, rep, fast=native_on if fast is None else fast, **kw))
    table = pa.Table.from_batches([b for b, _ in pairs]) if pairs else None
    inferred = [x for _, i in pairs for x in i.to_pylist()]
    return table, inferred, rep


def _compare(path: Path, **kw) -> ConversionReport:
    """Native against the per-line parser."""
    fast, fast_inf, rep = _read(path, True, fast=True, **kw)
    slow, slow_inf, slow_rep = _read(path, False, **kw)
    assert rep.balanced and slow_rep.balanced
    assert (rep.records_in, rep.records_out, rep.rejected) == (slow_rep.records_in, slow_rep.records_out,
                                                               slow_rep.rejected)
    assert rep.reasons == slow_rep.reasons
    assert rep.examples == slow_rep.examples  # (rejections: line numbers and text samples)
    for note in ("time_inferred", "time_from_file_mtime"):
        assert rep.notes[note] == slow_rep.notes[note], note
    assert fast_inf == slow_inf
    if slow is None or slow.num_rows == 0:
        assert fast is None or fast.num_rows == 0
        return rep
    assert fast.schema == slow.schema
    assert fast.num_rows == slow.num_rows
    for name in slow.column_names:
        assert _values(fast.column(name)) == _values(slow.column(name)), name
    return rep


def _values(col) -> list:
    """Python values, with NaN made comparable (float("nan") != itself)."""
    return [v if v == v else "NaN" for v in col.to_pylist()]


def _accepts(data: bytes) -> bool:
    """Whether the compiled parser takes every line of ``data`` (none left to Python; lines it
    rejects itself, as the reference would, count as taken)."""
    refused: list = []
    native.call("parse_compose_block", data, 1, refused)
    return all(why.startswith(compose.REJECTED) for _, why in refused)


def _bench_logs(path: Path, n: int, seed: int) -> None:
    """Lines of the shape bench/convert.py's synthetic logs have (flat JSON, a few keys)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for i in range(n):
            svc = rng.choice(["web-api", "auth-service", "payment-worker"])
            rec = {"timestamp": f"2025-11-13T02:{i // 60000 % 60:02d}:{i // 1000 % 60:02d}.{i % 1000:03d}Z",
                   "level": rng.choice(["INFO", "WARN", "ERROR", "DEBUG"]), "service": svc,
                   "message": rng.choice(["request completed", "cache refresh took 0 ms", "worker started"])}
            if rng.random() < 0.6:
                rec.update(method=rng.choice(["GET", "POST"]), path=f"/api/items/{i}", status=rng.choice([200, 500]),
                           duration_ms=round(rng.random() * 100, 3), trace_id=f"{rng.getrandbits(128):032x}",
                           span_id=f"{rng.getrandbits(64):016x}")
            f.write(f"{svc}-1  | {json.dumps(rec, separators=(',', ':'))}\n")


def _app_record(rng: random.Random, j: int) -> dict:
    """An application log object: nested objects and arrays, integers, floats, booleans, unicode."""
    ms = 1_763_000_000_000 + j * 7
    return {
        "ts": ms if j % 4 == 0 else f"2025-11-13T02:03:{j % 60:02d}.{j % 1000:03d}Z",
        "level": rng.choice(["info", "warn", "error", "debug"]), "msg": rng.choice(["déjà vu ✓", "order placed", "retry"]),
        "pid": rng.randint(1, 65535), "ok": rng.random() < 0.5, "none": None,
        "http": {"method": rng.choice(["get", "POST"]), "path": f"/v2/o/{j}", "status": rng.choice([200, 404, 503]),
                 "latency": rng.random() * 900, "headers": {"ua": "Mozilla/5.0", "n": [1, 2.5, -0.0]}},
        "user": {"id": rng.randint(1, 10**9), "roles": ["ops", "dev"], "score": rng.random() * 100, "q": None},
        "metrics": [rng.randint(-1000, 1000), rng.random(), 1e-7 * rng.random(), 2**40 + j, 1e20, 123456.0, 1e-5],
        "duration_ms": rng.choice([12, 3.25, "7", " 8 ", "1e3"]), "status_text": "Grüße",
    }


def _app_logs(path: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for j in range(n):
            f.write(f"app-{1 + j % 2}  | {json.dumps(_app_record(rng, j), ensure_ascii=j % 2 == 0)}\n")


def test_extension_is_built_and_used():
    assert native.available()
    cols = native.call("parse_compose_block", f'web-api-1 | {{"time": "{T}", "msg": "hi"}}\n'.encode(), 7)
    assert set(cols) == set(FLAT_LOG.names) | {"inferred_rows"} and len(cols["inferred_rows"]) == 0
    assert cols["line_no"].to_pylist() == [7] and cols["service"].to_pylist() == ["web-api"]


def test_bench_generator_equal(tmp_path):
    path = tmp_path / "logs.txt"
    _bench_logs(path, 20_000, seed=3)
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"]
    rep = _compare(path, chunk_bytes=300_000)  # several blocks, line numbers carried across
    assert rep.notes["blocks_fast_path"] > 5 and not rep.notes["blocks_slow_path"]


@pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.log")) if FIXTURES.exists() else [])
def test_real_fixtures_equal(name):
    path = FIXTURES / name
    _compare(path)
    _compare(path, chunk_bytes=2048)  # small blocks: the JSON-only ones go native


@pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
def test_real_json_app_logs_go_native():
    """The colour-prefixed JSON app logs of a real project: their pure-JSON blocks are accepted."""
    rep = _compare(FIXTURES / "gologs_colored_json_app_logs_lines1-9000.log", chunk_bytes=2048)
    assert rep.notes["blocks_fast_path"] > 10, rep.notes


def test_sample_logs_equal():
    _compare(SAMPLE)
    _compare(SAMPLE, chunk_bytes=4096)


def _obj(**over) -> str:
    rec = {"timestamp": T, "level": "info", "message": "request done"}
    rec.update(over)
    return json.dumps(rec)


# (name, payload (or the whole line when the name starts with "!"), whether the native parser
# must accept it)
CASES = [
    ("plain", _obj(), True),
    ("offset with colon", _obj(timestamp="2025-01-01T10:00:00+05:30"), True),
    ("offset without colon", _obj(timestamp="2025-01-01T10:00:00.5-0800"), True),
    ("space separator comma fraction", _obj(timestamp="2025/01/01 10:00:00,123456789"), True),
    ("UTC after a space", _obj(timestamp=" 2025-01-01 10:00:00 UTC "), True),
    ("seconds past 59", _obj(timestamp="2025-01-01T10:00:75Z"), True),
    ("partial offset ignored", _obj(timestamp="2025-01-01T10:00:00+05:3"), True),
    ("leap day", _obj(timestamp="2024-02-29T23:59:59.999Z"), True),
    ("epoch s", _obj(timestamp=1763000000), True),
    ("epoch ms", _obj(timestamp=1763000000123), True),
    ("epoch us", _obj(timestamp=1763000000123456), True),
    ("epoch ns", _obj(timestamp=1763000000123456789), True),
    ("epoch float s", _obj(timestamp=1763000000.123456), True),
    ("epoch float ms", _obj(timestamp=1763000000123.9), True),
    ("other time keys", json.dumps({"@timestamp": T, "msg": "x"}), True),
    ("empty time falls to next key", json.dumps({"timestamp": "", "time": None, "ts": T, "msg": "x"}), True),
    ("mongo t key as text", json.dumps({"t": T, "s": "I", "c": "NETWORK", "msg": "Listening on"}), True),
    ("level warning", _obj(level="warning"), True),
    ("level D1", _obj(level="D1"), True),
    ("level ERR", _obj(level="ERR"), True),
    ("level crit", _obj(level="crit"), True),
    ("level number", _obj(level=30), True),
    ("level bool", _obj(level=True), True),
    ("level PANIC", _obj(level="panic", message="boom"), True),
    ("severity key", json.dumps({"time": T, "severity": "E", "msg": "x"}), True),
    ("no level, traceback", _obj(level=None, message="Traceback (most recent call last):"), True),
    ("no level, Error:", _obj(level=None, message="Error: disk full"), True),
    ("no level, ValueError: (no word boundary)", _obj(level=None, message="ValueError: bad"), True),
    ("no level, Exceptional", _obj(level=None, message="Exceptional"), True),
    ("no level, panic:", _obj(level=None, message="x panic: y"), True),
    ("lifecycle any case", _obj(message="Server STARTED on 8080"), True),
    ("lifecycle word boundary", _obj(message="restarted"), True),
    ("server restarted", _obj(message="the server restarted"), True),
    ("listening on", _obj(message="Listening on :80"), True),
    ("lifecycle past 200 chars", _obj(message="x" * 195 + " started"), True),
    ("lifecycle cut at 200 chars", _obj(message="x" * 192 + " started" + "y"), True),
    ("non-ASCII message: classified in Python", _obj(message="café ſtarted"), True),
    ("non-ASCII before a keyword", _obj(level=None, message="éException here"), True),
    ("non-ASCII after 200 chars", _obj(message="s" * 200 + " é started"), True),
    ("message int", _obj(message=42), True),
    ("message bool", _obj(message=False), True),
    ("empty message falls back", _obj(message="", msg="second"), True),
    ("null message", _obj(message=None), True),
    ("escapes", _obj(message="say \"hi\"\n\ttab \\ \u00e9 \u2603 \U0001F600"), True),
    ("NUL escape", _obj(message="a\u0000b"), True),
    ("logger keys", json.dumps({"time": T, "name": "app.db", "component": "x", "msg": "m"}), True),
    ("logger int", json.dumps({"time": T, "logger": 7, "msg": "m"}), True),
    ("duplicate keys: last wins", '{"time": "%s", "level": "info", "level": "error", "msg": "a", "msg": "b"}' % T, True),
    ("access", _obj(method="get", path="/a?b=1", status=200, duration_ms=1.25), True),
    ("status text", _obj(method="POST", path="/a", status="503"), True),
    ("status zero is None", _obj(method="GET", status=0), True),
    ("status float truncates", _obj(method="GET", status=200.7), True),
    ("status bool", _obj(method="GET", status=True), True),
    ("status out of int32", _obj(method="GET", status=3_000_000_000), True),
    ("status huge text", _obj(method="GET", status="99999999999999999999999"), True),
    ("status list", _obj(method="GET", status=[1]), True),
    ("status object", _obj(method="GET", status={}), True),
    ("method zero", _obj(method=0, status=200), True),
    ("method false", _obj(method=False, status=200), True),
    ("method true", _obj(method=True, status=200), True),
    ("path zero", _obj(path=0), True),
    ("path int", _obj(path=12), True),
    ("path bool", _obj(path=True), True),
    ("dotted http keys", json.dumps({"time": T, "http.request.method": "get", "url.path": "/x",
                                     "http.response.status_code": 201}), True),
    ("http text value", _obj(http="GET /"), True),
    ("duration text", _obj(duration_ms="1.5e3"), True),
    ("duration int", _obj(latency_ms=7), True),
    ("duration bool", _obj(elapsed_ms=True), True),
    ("duration list", _obj(duration_ms=[1]), True),
    ("duration big int", _obj(duration_ms=2**63 + 5), True),
    ("event lifecycle", _obj(event="lifecycle", method="GET", status=200), True),
    ("event unknown", _obj(event="bogus"), True),
    ("event object", _obj(event={"a": 1}), True),
    ("event list", _obj(event=[1]), True),
    ("error object type", _obj(error={"type": "ValueError", "type2": 1}), True),
    ("error object null type", _obj(error={"type": None}), True),
    ("error object empty type", _obj(error={"type": ""}), True),
    ("error object duplicate type", '{"time": "%s", "error": {"type": "A", "type": "B"}}' % T, True),  # kept whole in extra: printed as the dict
    ("error type key wins", _obj(error_type="KeyError", error={"type": "ValueError"}), True),
    ("empty error type key", _obj(error_type="", error={"type": "ValueError"}), True),
    ("error text", _obj(error="boom"), True),
    ("region empty", _obj(region=""), True),
    ("region int", _obj(region=5), True),
    ("ids", _obj(trace_id="A" * 32, spanId="b" * 16, host="h1", hostname="h2"), True),
    ("unknown nested values", _obj(extra={"a": [1, 2.5, {"b": None}, "q\"\n"]}, n=7, ok=True, no=None), True),
    ("unknown float outside repr's fixed range", _obj(more=[1e300]), True),
    ("own service key", _obj(service="web-api", other="x"), True),
    ("other service key", _obj(service="billing"), True),
    ("numeric service key", _obj(service=5), True),
    ("unknown negative zero", _obj(more=[-0.0]), True),
    ("tiny float status", '{"time": "%s", "method": "GET", "status": 1e-400}' % T, True),
    ("minus zero message", '{"time": "%s", "msg": -0}' % T, True),
    ("big int elsewhere", '{"time": "%s", "n": 18446744073709551615}' % T, True),
    ("unicode key", _obj(**{"clé": "v"}), True),
    ("escaped key", '{"tim\\u0065": "%s", "msg": "x"}' % T, True),
    ("leading and trailing blanks", "  " + _obj() + " \t ", True),
    ("!colour codes", "\x1b[36mweb-api-1  |\x1b[0m " + _obj(), True),
    ("!colour codes in the payload", "web-1 | \x1b[1m" + _obj() + "\x1b[0m", True),
    ("!tab before the bar", "db_12\t| " + _obj(), True),
    ("!replica zero kept", "web-0 | " + _obj(), True),
    ("!dotted name", "x.y-2 | " + _obj(), True),
    ("!double CR", "web-1 | " + _obj() + "\r", True),
    # refused: the Python path must read them (most of these it keeps as text or rejects; the
    # untimed plain-text ones marked True take the time of the native row before them)
    ("plain text", "GET /x 200", True),
    ("--timestamps", "2025-08-18T22:10:11.275876972Z " + _obj(), True),
    ("no time", json.dumps({"msg": "x"}), False),
    ("time of no known format", _obj(timestamp="yesterday"), False),
    ("impossible date", _obj(timestamp="2025-02-30T00:00:00Z"), False),
    ("numeric time text", _obj(timestamp="1763000000"), False),
    ("time true", _obj(timestamp=True), False),
    ("negative epoch", _obj(timestamp=-5), False),
    ("offset out of range", _obj(timestamp="2025-01-01T10:00:00+24:00"), False),
    ("non-ASCII time", _obj(timestamp="2025-01-01T10:00:00Z\u00e9"), False),
    ("mongo $date", json.dumps({"t": {"$date": T}, "msg": "x"}), True),
    ("http object", _obj(http={"method": "GET", "status": 200}), True),
    ("float message", _obj(message=1.5), True),
    ("object message", _obj(message={"a": 1}), True),
    ("non-ASCII level", _obj(level="ünfo"), False),
    ("float level", _obj(level=1.5), True),
    ("non-ASCII method", _obj(method="gét"), False),
    ("status words", _obj(method="GET", status="OK"), True),
    ("status spaced", _obj(method="GET", status=" 200"), True),
    ("duration words", _obj(duration_ms="fast"), True),
    ("duration nan text", _obj(duration_ms="nan"), True),
    ("float path", _obj(path=1.5), True),
    ("invalid JSON", '{"time": "%s", "msg": "x",}' % T, True),  # broken structure: text, as orjson fails
    ("truncated JSON", _obj()[:-1], True),  # broken structure: text, as orjson fails
    ("trailing junk", _obj() + " x", True),  # broken structure: text, as orjson fails
    ("lone surrogate", '{"time": "%s", "msg": "\\ud800"}' % T, False),
    ("bad escape", '{"time": "%s", "msg": "\\q"}' % T, False),
    ("float overflow", '{"time": "%s", "n": 1e400}' % T, False),
    ("negative big int", '{"time": "%s", "n": -9223372036854775809}' % T, False),
    ("big int in a field", '{"time": "%s", "n": 18446744073709551616}' % T, False),
    ("deep nesting", '{"time": "%s", "n": %s}' % (T, "[" * 100 + "]" * 100), False),
    ("array payload", "[1, 2]", True),
    ("empty payload", "", True),
    ("!unprefixed", "Attaching to web-1", True),
    ("!no space after the bar", "web-1 |" + _obj(), True),
    ("!bar only", "web-1 |", True),
    ("!leading space", " web-1 | " + _obj(), True),
    ("!vertical tab before the bar", "web-1\x0b| " + _obj(), True),
]


def _case_line(name: str, text: str) -> str:
    return text if name.startswith("!") else "web-api-1  | " + text


@pytest.mark.parametrize("name,text,accepted", CASES, ids=[c[0] for c in CASES])
def test_edge_case(tmp_path, name, text, accepted):
    good = "auth-1 | " + json.dumps({"time": "2025-01-01T00:00:00Z", "msg": "ok"})
    data = "\n".join([good, _case_line(name, text), "", good]) + "\n"
    assert _accepts(data.encode()) is accepted, name
    path = tmp_path / "logs.txt"
    path.write_bytes(data.encode())
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"]
    assert rep.notes["native_line_fallback"] == (0 if accepted else 1), rep.notes


def test_blank_lines_crlf_and_line_numbers(tmp_path):
    rows = ["", "   ", "\t", "web-1 | " + _obj(), "\x1b[0m", "db-1 | " + _obj(level="error")]
    path = tmp_path / "logs.txt"
    path.write_bytes(("\r\n".join(rows) + "\r\n").encode())
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1
    table, _, _ = _read(path, True)
    assert table.column("line_no").to_pylist() == [4, 6]
    assert not table.column("payload")[0].as_py().endswith("\r")
    path.write_bytes(("\n".join(rows)).encode())  # no final line end
    _compare(path)


def test_invalid_utf8_is_refused(tmp_path):
    data = b'web-1 | {"time": "2025-01-01T00:00:00Z", "msg": "caf\xff"}\n'
    data += b"web-1 | " + _obj().encode() + b"\n"
    assert not _accepts(data)
    path = tmp_path / "logs.txt"
    path.write_bytes(data)
    _compare(path)


def test_utf16_and_bom_files(tmp_path):
    text = "\n".join("web-1 | " + _obj(message=f"m{i} é") for i in range(50)) + "\n"
    for name, data in (("bom", b"\xef\xbb\xbf" + text.encode()), ("utf16", text.encode("utf-16"))):
        path = tmp_path / name
        path.write_bytes(data)
        rep = _compare(path)
        assert rep.notes["blocks_fast_path"] == 1, name


def test_mixed_blocks_keep_order_and_backfill(tmp_path):
    """Plain-text blocks (Python) and JSON blocks (native) interleave; leading untimed text lines
    are backfilled from the first native block's time."""
    rows = []
    for i in range(300):
        if (i // 50) % 2:
            rows.append("web-1 | " + json.dumps({"time": f"2025-01-01T00:00:{i % 60:02d}Z", "msg": f"m{i}"}))
        else:
            rows.append(f"web-1 | plain {i}")
    path = tmp_path / "mixed.txt"
    path.write_text("\n".join(rows) + "\n")
    rep = _compare(path, chunk_bytes=600)
    assert rep.notes["blocks_fast_path"] > 1 and not rep.notes["blocks_slow_path"]
    # left to Python: the plain-text lines of a block before its first JSON line (the others
    # take the time of the row before them natively); how many depends on where blocks end
    assert 0 < rep.notes["native_line_fallback"] < 150, rep.notes


def test_block_mixing_taken_and_refused_lines(tmp_path):
    """One block: the compiled reader takes the JSON lines and leaves the others to Python, line
    by line; rows stay in line order, untimed lines take the time of the line before them
    (compiled or not), leading untimed lines the first time after them."""
    rows = ["web-1 | starting up",  # untimed, before any time: backfilled
            "web-1 | " + json.dumps({"time": "2025-01-01T00:00:01Z", "msg": "a"}),
            "web-1 | plain line, time of the JSON line before",
            "web-1 | 2025-01-01T00:00:05Z plain with its own time",
            "web-1 | not json {",
            "web-1 | " + json.dumps({"time": "2025-01-01T00:00:09Z", "msg": "b", "dur": {"a": [1, 2.5]}}),
            "unprefixed line",
            "web-1 | " + json.dumps({"msg": "no time"}),  # rejected, by both
            "web-1 | " + json.dumps({"time": "2025-01-01T00:00:10Z", "status": "201 ", "method": "get",
                                     "level": "\u00e9rror"}),  # non-ASCII upper-case: refused
            "web-1 | after all"]
    path = tmp_path / "logs.txt"
    path.write_text("\n".join(rows) + "\n")
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["blocks_slow_path"]
    # left to Python: the first line (untimed, no time before it in the block), the JSON line
    # without a time, the non-ASCII level and the untimed line after those (the timed plain line
    # and the untimed ones after native rows are read natively, the unprefixed one rejected there)
    assert rep.notes["native_line_fallback"] == 4, rep.notes
    assert rep.rejected == 2 and rep.records_out == 8
    table, inferred, _ = _read(path, True)
    assert table.column("line_no").to_pylist() == [1, 2, 3, 4, 5, 6, 9, 10]
    t1, t5, t9, t10 = (1735689600000 + s * 1000 for s in (1, 5, 9, 10))
    assert table.column("time_ms").to_pylist() == [t1, t1, t1, t5, t5, t9, t10, t10]
    assert inferred == [True, False, True, False, True, False, False, True]


def test_nested_app_logs_go_native_and_equal(tmp_path):
    """Application logs with nested objects, integers, floats, booleans and unicode: every line
    compiled, nothing left to Python, same table as the reference."""
    path = tmp_path / "app.txt"
    _app_logs(path, 3000, seed=5)
    rep = _compare(path)
    assert rep.notes["blocks_fast_path"] == 1 and not rep.notes["native_line_fallback"], rep.notes
    table, _, _ = _read(path, True)
    extra = dict(table.column("extra")[0].as_py())
    assert extra["pid"].isdigit() and extra["ok"] in ("true", "false") and extra["none"] is None
    assert '"roles":["ops","dev"]' in extra["user"]
    _compare(path, chunk_bytes=50_000)


FLOATS = [0.0, -0.0, 1.0, 1e-5, 1e-6, 2.5e-5, 1e15, 1e16, 1e17, 1e20, 1e22, 1.5e300, 5e-324, 0.1, 100.0,
          123456789.123, 9999999999999998.0, 1.2345678901234567e16, -1.5e-7, 1.7976931348623157e308]


@pytest.mark.parametrize("x", FLOATS)
def test_floats_print_as_orjson(tmp_path, x):
    """Floats in unmapped keys and in message text: orjson's own notation, byte for byte."""
    line = "web-1 | " + json.dumps({"time": T, "f": x, "g": [x, {"h": x}], "msg": x})
    assert _accepts(line.encode())
    path = tmp_path / "logs.txt"
    path.write_text(line + "\n")
    _compare(path)


@settings(max_examples=300, deadline=None)
@given(x=st.floats(allow_nan=False, allow_infinity=False))
def test_fuzz_floats_print_as_orjson(x):
    data = ("web-1 | " + json.dumps({"time": T, "f": [x]}) + "\n").encode()
    refused: list = []
    cols = native.call("parse_compose_block", data, 1, refused)
    assert not refused
    assert dict(cols["extra"][0].as_py())["f"] == orjson.dumps([x]).decode()


# --- fuzz ---------------------------------------------------------------------------------------
KNOWN_KEYS = ["timestamp", "time", "ts", "t", "@timestamp", "level", "lvl", "severity", "s", "message", "msg",
              "log", "logger", "name", "c", "event", "host", "region", "trace_id", "spanId", "method",
              "http.method", "path", "route", "status", "status_code", "duration_ms", "latency_ms", "error_type",
              "error", "http"]
TIMES = [T, "2025-01-01 10:00:00,5 +0130", "2025-13-01T00:00:00Z", "1763000000", "", " ", "nope",
         "2025-01-01T10:00:00UTC", "2024-02-29T00:00:00-23:59"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(TIMES),
                    st.sampled_from(["info", "WARNING", "E", "d", "GET", "access", "lifecycle", "started",
                                     "Error: x", "Traceback (most recent call last)", "200", "1.5", "ſtarted"]))
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(
    st.sampled_from(["type", "method", "status", "$date"]) | st.text(max_size=4), c, max_size=3), max_leaves=6)
objects = st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), values, max_size=7)
names = st.sampled_from(["web-api-1", "db_2", "x", "web-0", "a.b-10", "\x1b[36mweb-1  ", "-bad", "9z"])


@st.composite
def log_lines(draw) -> bytes:
    kind = draw(st.sampled_from(["json", "json", "json", "timed", "truncated", "text", "bytes", "blank"]))
    name = draw(names)
    sep = draw(st.sampled_from(["  | ", " | ", "\t| ", "|", "| \x1b[0m", " |  "]))
    if kind in ("json", "truncated", "timed"):
        obj = draw(objects)
        if kind == "timed" or draw(st.booleans()):
            obj = {"time": draw(st.sampled_from(TIMES[:2])), **obj}
        body = json.dumps(obj, ensure_ascii=draw(st.booleans()))
        if kind == "truncated":
            body = body[: draw(st.integers(0, len(body)))]
        line = (name + sep + body).encode("utf-8", "surrogatepass")
    elif kind == "text":
        line = (name + sep + draw(st.text(max_size=30))).encode("utf-8", "surrogatepass")
    elif kind == "bytes":
        line = draw(st.binary(max_size=30))
    else:
        line = draw(st.sampled_from([b"", b"  ", b"\t\r"]))
    return line.replace(b"\n", b" ")


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(log_lines(), min_size=1, max_size=12), crlf=st.booleans(), chunk=st.sampled_from([64, 1 << 20]))
def test_fuzz_native_equals_python(lines, crlf, chunk):
    data = (b"\r\n" if crlf else b"\n").join(lines) + b"\n"
    fd, name = tempfile.mkstemp()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        rep = _compare(Path(name), chunk_bytes=chunk)
        assert rep.records_in == rep.records_out + rep.rejected
    finally:
        os.unlink(name)


@st.composite
def timed_json_lines(draw) -> bytes:
    """Well-formed Compose JSON lines with a usable time: most blocks of them go native."""
    plain = st.one_of(st.text(max_size=12), st.integers(-2**40, 2**40), st.booleans(), st.none(), st.sampled_from(
        ["info", "WARNING", "E", "GET", "access", "started", "Error: x", "200", "1.5", "ſtarted", "/a?b"]), values)
    obj = draw(st.dictionaries(st.sampled_from(KNOWN_KEYS[5:]) | st.text(max_size=6), plain, max_size=7))
    obj = {draw(st.sampled_from(["time", "timestamp", "ts", "t"])): draw(st.sampled_from(TIMES[:2] + [
        1763000000.5, 1763000000123, "2025-06-30 23:59:59.1+02:00"])), **obj}
    name = draw(st.sampled_from(["web-api-1", "db_2", "x", "web-0", "a.b-10", "\x1b[36mweb-1  "]))
    sep = draw(st.sampled_from(["  | ", " | ", "\t| ", "| \x1b[0m", " |  "]))
    return (name + sep + json.dumps(obj, ensure_ascii=draw(st.booleans()))).encode()


@settings(max_examples=250, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(timed_json_lines(), min_size=1, max_size=8))
def test_fuzz_json_lines_native_equals_python(lines):
    fd, name = tempfile.mkstemp()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        _compare(Path(name))
    finally:
        os.unlink(name)


def test_blank_block_between_untimed_and_timed_lines(tmp_path):
    """A fast block of blank lines must not flush rows still waiting for a time (regression:
    IndexError when the next timed block backfilled them)."""
    path = tmp_path / "logs.txt"
    path.write_text("web-1 | plain text\n" + "\n" * 80 + "web-1 | " + _obj() + "\n")
    rep = _compare(path, chunk_bytes=16)
    assert rep.notes["blocks_fast_path"] > 1
    table, inferred, _ = _read(path, True, chunk_bytes=16)
    assert table.column("line_no").to_pylist() == [1, 82] and inferred == [True, False]
    assert table.column("time_ms")[0] == table.column("time_ms")[1]


# === plain-text payloads, --timestamps, Mongo times and unprefixed lines (issue 15.1) ==========
# The compiled reader takes ASCII plain-text lines that carry their own time and rejects ASCII
# unprefixed lines itself; each case must equal the reference, row for row and rejection for
# rejection (count, reason, line number, text sample).
NGINX = '172.20.0.3 - - [18/Mar/2026:08:31:58 +0000] "GET /a?x=1 HTTP/1.1" 200 896 "-" "python-requests/2.31"'
TEXT_CASES = [
    ("--timestamps Z", "2025-08-18T22:10:11.275876972Z database system is ready", True),
    ("--timestamps offset", "2025-08-18T22:10:11+02:00 LOG:  checkpoint starting", True),
    ("--timestamps alone", "2025-08-18T22:10:11.275876972Z ", True),
    ("--timestamps, no space after", "2025-08-18T22:10:11Zx", True),
    ("--timestamps, impossible date", "2025-02-30T22:10:11Z x", False),
    ("--timestamps then JSON", "2025-08-18T22:10:11Z " + _obj(), True),
    ("--timestamps then JSON without a time", "2025-08-18T22:10:11Z " + json.dumps({"msg": "x", "n": 1}), True),
    ("--timestamps then JSON with an unusable time", "2025-08-18T22:10:11Z " + json.dumps({"time": True}), False),
    ("--timestamps then broken JSON", "2025-08-18T22:10:11Z {\"msg\": ", True),
    ("--timestamps then JSON after blanks", "2025-08-18T22:10:11Z   " + _obj(), True),
    ("--timestamps without zone: searched", "2025-08-18T22:10:11.5 INFO x", True),
    ("ISO time inside", "[app] 2026/04/06 11:56:47 failed to start", True),
    ("ISO time past 64 chars", "x" * 60 + " 2026-04-06 11:56:47 late", True),
    ("ISO time cut by the 64-char window", "x" * 40 + " 2026-04-06 11:56:47.123456789 +0200", True),
    ("ISO time with offset and a space", "2026-04-06 11:56:41 +00:00 [Note] Entrypoint", True),
    ("ISO time with UTC", "t=2026-04-06T11:56:41.1UTC level=info", True),
    ("ISO out of range", "2026-04-31 11:56:41 [Note]", False),
    ("CLF nginx", NGINX, True),
    ("CLF redis", "1:C 21 Jan 2018 15:44:58.654 # Redis is starting", True),
    ("CLF lower-case month", "12/mar/2026:08:31:58 -0130 hello", True),
    ("CLF unknown month: no time", "12/Foo/2026:08:31:58 hello", True),
    ("CLF without year: no time", "1:C 21 Jan 15:44:58.654 # Redis", True),
    ("combined, user and agent", NGINX.replace("- - [", "- bob [").replace("python-requests/2.31", "-"), True),
    ("combined, no version", NGINX.replace(" HTTP/1.1", ""), True),
    ("combined, quote in the target", NGINX.replace("/a?x=1", '/a"b'), True),
    ("access, not combined", '2026-01-01T00:00:00Z "POST /api/v1?q HTTP/2" 503 -', True),
    ("access, status then a word char", '2026-01-01T00:00:00Z "GET /x" 2001', True),
    ("access, quote in the target", '2026-01-01T00:00:00Z "GET /x" 200" 404', True),
    ("access, second request matches", '2026-01-01T00:00:00Z "GET" "PUT /y HTTP/1.0" 201', True),
    ("access, lower-case method", '2026-01-01T00:00:00Z "get /x" 200', True),
    ("level words", "2026-01-01T00:00:00Z  WARNING 1 --- [main] o.s.Boot", True),
    ("level any case", "2026-01-01T00:00:00Z [eRrOr] boom", True),
    ("level inside a word", "2026-01-01T00:00:00Z INFORMATION only", True),
    ("level past 120 chars", "2026-01-01T00:00:00Z " + "x " * 60 + "ERROR", True),
    ("no level, error text", "2026-01-01T00:00:00Z Traceback (most recent call last):", True),
    ("lifecycle", "2026-01-01T00:00:00Z Server started on :80", True),
    ("tab and control characters", "2026-01-01T00:00:00Z a\tb\x1fc\x0bd", True),
    ("non-ASCII text", "2026-01-01T00:00:00Z caf\u00e9 started", False),
    ("untimed text", "Waiting for Postgres to be ready...", True),
    ("mongo $date and s", json.dumps({"t": {"$date": "2025-11-14T14:11:48.722+00:00"}, "s": "I", "c": "NETWORK",
                                      "msg": "Listening on", "attr": {"port": 27017}}), True),
    ("mongo $numberLong", json.dumps({"t": {"$date": {"$numberLong": "1763000000123"}}, "msg": "x"}), False),
    ("mongo $date epoch", json.dumps({"t": {"$date": 1763000000123}, "msg": "x"}), True),
    ("mongo object without a time key", json.dumps({"t": {"x": 1}, "msg": "x"}), False),
    ("mongo repeated $date: last wins", '{"t": {"$date": "%s", "$date": "2025-01-01T00:00:00Z"}, "msg": "x"}' % T,
     True),
    ("mongo shell object", "{ ok: 1 }", True),
    ("JSON cut inside a string", '{"time": "%s", "msg": "a long li' % T, True),
    ("JSON with a bad atom", '{"time": "%s", "ok": tru}' % T, True),
    ("JSON cut at 16 KiB", '{"time": "%s", "msg": "%s' % (T, "x" * 16384), True),
    ("JSON with a bad number", '{"time": "%s", "n": 1.5e}' % T, False),
    ("JSON with non-JSON blanks", '{"time": "%s"}\x0c' % T, True),
    ("!v1 prefix", "redis_1      | 1:C 21 Jan 2018 15:44:58.654 # Redis version=4.0.6", True),
    ("!ANSI prefix and text", "\x1b[33mweb |\x1b[0m 2026-01-01T00:00:00Z \x1b[1mINFO\x1b[0m ok", True),
    ("!bar, then nothing", "web-1 |", True),
    ("!shell prompt", "\u279c fedora23-17:44 ~/Apps % docker-compose up", False),
    ("!unprefixed ASCII", "Starting pyredis_redis_1 ... done", True),
    ("!unprefixed with colour", "\x1b[32mAttaching to a, b\x1b[0m", True),
    ("!bar without a name", "| 2026-01-01T00:00:00Z x", True),
    ("!unprefixed with a tab", "\tweb-1 | x", True),
]


@pytest.mark.parametrize("name,text,accepted", TEXT_CASES, ids=[c[0] for c in TEXT_CASES])
def test_text_edge_case(tmp_path, name, text, accepted):
    good = "auth-1 | " + json.dumps({"time": "2025-01-01T00:00:00Z", "msg": "ok"})
    data = "\n".join([good, _case_line(name, text), "", good]) + "\n"
    _check_one_line_case(tmp_path, data.encode(), accepted, name)


def _check_one_line_case(tmp_path, data: bytes, accepted: bool, name: str) -> None:
    """The compiled reader takes (or leaves to Python) exactly the case line; output equals the reference."""
    assert _accepts(data) is accepted, name
    path = tmp_path / "logs.txt"
    path.write_bytes(data)
    rep = _compare(path)
    assert rep.notes["native_line_fallback"] == (0 if accepted else 1), rep.notes


def test_many_rejections_keep_the_first_examples_in_order(tmp_path):
    """Rejections from both readers interleaved: the report keeps the same first examples."""
    rows = []
    for i in range(40):
        rows += [f"Attaching to web-{i}", "\u279c prompt %d" % i, "web-1 | " + json.dumps({"msg": i}),
                 f"web-1 | 2026-01-01T00:00:{i % 60:02d}Z line {i}"]
    path = tmp_path / "logs.txt"
    path.write_text("\n".join(rows) + "\n")
    rep = _compare(path)
    assert rep.rejected == 120 and rep.records_out == 40
    assert rep.notes["native_line_fallback"] == 80, rep.notes  # the non-ASCII prompts and untimed JSON


@pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
@pytest.mark.parametrize("name", ["utf8_bom_nginx_access.log", "timestamps_flag_postgres.log"])
def test_real_text_fixtures_go_native(name):
    """Real plain-text fixtures whose lines carry their time: no line left to Python."""
    rep = _compare(FIXTURES / name)
    assert rep.records_out > 40 and not rep.notes["native_line_fallback"], rep.notes


LEVEL_WORDS = ["INFO", "warn", "Warning", "ERROR", "panic", "debugging", "Trace", "FATAL:", "_ERROR"]
TIME_TEXTS = ["2026-01-01T00:00:00Z", "2026/01/01 00:00:00,5 +0130", "2026-01-01 00:00:00 UTC",
              "2026-02-30 00:00:00", "01/Jan/2026:00:00:00 +0000", "01 jan 2026 00:00:00.12", "01/Xyz/2026:00:00:00",
              "2026-01-01T00:00:00+24:00", "1:C 01 Jan 00:00:00"]
ACCESS_BITS = ['"GET ', '"POST /a?b HTTP/1.1"', '" 200', '" 404 ', "200", '"', "-", "[", "]", " HTTP/", "?"]
text_bits = st.one_of(st.sampled_from(LEVEL_WORDS + TIME_TEXTS + ACCESS_BITS + [" ", "\t", "é", "x", "/p"]
                                     + ["\u2705", "\U0001F680", "\u2014" * 30, "\u2776", "\u00a0", "\u2028"]),
                      st.text(alphabet=st.characters(max_codepoint=127), max_size=6))


@st.composite
def text_lines(draw) -> bytes:
    """Compose lines with plain-text payloads assembled from pieces of times, levels, requests."""
    name = draw(st.sampled_from(["web-api-1", "db_2", "x", "redis_1", "\x1b[36mweb-1  ", "Attaching to", "-bad"]))
    sep = draw(st.sampled_from(["  | ", " | ", "\t| ", "|", "| \x1b[0m", " |  "]))
    head = draw(st.sampled_from(["", "2026-01-01T00:00:00.5Z ", "2026-01-01T00:00:00+01:00", "2026-01-01T00:00:00"]))
    pick = draw(st.integers(0, 5))
    if pick == 5:  # (after a --timestamps head too: the object's time wins, else the prefix's)
        body = json.dumps(draw(st.dictionaries(st.sampled_from(["time", "msg", "level", "t", "x"]),
                                               st.sampled_from([T, "nope", 5, None, True, "INFO"]), max_size=3)))
        body = body[: draw(st.integers(0, len(body)))] if draw(st.booleans()) else body
    elif pick == 0:
        body = NGINX.replace("GET", draw(st.sampled_from(["GET", "PUT", "get", "TRACE"])))
        cut = draw(st.integers(0, len(body)))
        body = body[:cut] + draw(text_bits) + body[cut:]
    else:
        body = "".join(draw(st.lists(text_bits, max_size=12)))
    return (name + sep + head + body).encode("utf-8", "surrogatepass").replace(b"\n", b" ")


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lines=st.lists(text_lines(), min_size=1, max_size=10), chunk=st.sampled_from([64, 1 << 20]))
def test_fuzz_text_lines_native_equals_python(lines, chunk):
    fd, name = tempfile.mkstemp()
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        _compare(Path(name), chunk_bytes=chunk)
    finally:
        os.unlink(name)


def test_untimed_text_takes_the_time_of_the_native_row_before(tmp_path):
    """An untimed plain-text line is read natively only when the block's last timed row before it
    was native and no line since went to Python (that line might carry a time)."""
    rows = ["web-1 | untimed first",  # 0: no time before it in the block: Python
            "web-1 | 2026-01-01T00:00:01Z timed",
            "web-1 | untimed after a native row",  # 2: native, inferred
            "Attaching to web-1",  # 3: rejected natively: the time state is kept
            "web-1 | untimed after a rejection",  # 4: native, inferred
            "web-1 | " + json.dumps({"msg": "no time"}),  # 5: Python (rejected there)
            "web-1 | untimed after a Python line",  # 6: Python
            "",
            "web-1 | " + json.dumps({"t": {"$date": "2026-01-01T00:00:02Z"}}),
            "web-1 | untimed after JSON"]  # 9: native, inferred
    data = ("\n".join(rows) + "\n").encode()
    refused: list = []
    cols = native.call("parse_compose_block", data, 1, refused)
    assert [i for i, why in refused if not why.startswith(compose.REJECTED)] == [0, 5, 6]
    assert cols["inferred_rows"].to_pylist() == [1, 2, 4]  # (row indices among the native rows)
    path = tmp_path / "logs.txt"
    path.write_bytes(data)
    rep = _compare(path)
    assert rep.notes["time_inferred"] == 5 and rep.notes["native_line_fallback"] == 3, rep.notes
    _compare(path, chunk_bytes=64)  # block ends between a timed row and the untimed ones


def test_unprefixed_non_ascii_lines_and_the_time_state(tmp_path):
    """A non-ASCII line that cannot start a prefix makes no row in Python: untimed lines after it
    stay native. One that starts like a name may still get one (Unicode \\s before the bar)."""
    rows = ["web-1 | 2026-01-01T00:00:01Z timed",
            "\u279c prompt % docker compose up",  # 1: Python skips or rejects it
            "web-1 | untimed after the prompt",  # 2: native
            "web-1\u00a0| 2026-01-01T00:00:05Z a row in Python",  # 3: Python
            "web-1 | untimed after it",  # 4: Python (its time is line 3's)
            "\u00a0\u2003"]  # 5: blank in Python
    data = ("\n".join(rows) + "\n").encode()
    refused: list = []
    native.call("parse_compose_block", data, 1, refused)
    assert [i for i, _ in refused] == [1, 3, 4, 5]
    path = tmp_path / "logs.txt"
    path.write_bytes(data)
    rep = _compare(path)
    assert rep.records_out == 4 and rep.rejected == 1 and rep.notes["time_inferred"] == 2, rep


def test_inert_text_ranges_are_punctuation_to_the_text_regexes():
    """The compiled reader treats these characters like ASCII punctuation: they must not be \\w, \\d
    or \\s, nor fold to other characters under re.I (_tables.INERT_TEXT_RANGES)."""
    from obslab.ocsf import _tables

    probe = re.compile(r"[\w\d\s]")
    for lo, hi in _tables.INERT_TEXT_RANGES:
        for c in map(chr, range(lo, hi + 1)):
            assert not probe.match(c) and not c.isspace() and not c.isalnum(), hex(ord(c))
            assert c.lower() == c.upper() == c.casefold() == c, hex(ord(c))
            assert not re.match(r"(?i)[a-z]", c), hex(ord(c))


SYMBOL_CASES = [
    ("emoji first", "\U0001F680 Writing 1000 logs/sec 2026-01-01T00:00:00Z", True),
    ("emoji then level", "\u2705 ERROR\u2705 wrote batch", True),
    ("dingbat digits are \\w", "\u2776 2026-01-01T00:00:00Z", False),
    ("letters are not inert", "2026-01-01T00:00:00Z caf\u00e9", False),
    ("emoji shift the 64-char window", "\U0001F680" * 50 + "x 2026-01-01T00:00:00Z", True),
    ("emoji keep a time inside the window", "\u2192" * 40 + " 2026-01-01T00:00:00Z", True),
    ("emoji shift the 120-char level window", "\u2014" * 115 + " WARN x", True),
    ("emoji inside an access line", '2026-01-01T00:00:00Z "GET /\u2713 HTTP/1.1" 200 \u2713', True),
    ("zero-width joiner and variation selector", "2026-01-01T00:00:00Z \u2764\ufe0f\u200d\U0001F525 INFO", True),
    ("no-break space", "2026-01-01T00:00:00Z a\u00a0b", False),
    ("emoji right after a searched time", "started 2026-01-01 00:00:00.5\u2705", True),
    ("emoji after a searched time and a space", "started 2026-01-01 00:00:00 \u2705", True),
    ("line separator", "2026-01-01T00:00:00Z a\u2028b", False),
]


@pytest.mark.parametrize("name,text,accepted", SYMBOL_CASES, ids=[c[0] for c in SYMBOL_CASES])
def test_symbol_text_edge_case(tmp_path, name, text, accepted):
    """After a timed line (untimed ones take its time): equal to the reference, time flags too."""
    data = ("web-1 | 2025-01-01T00:00:00Z first\nweb-1 | " + text + "\n").encode()
    _check_one_line_case(tmp_path, data, accepted, name)


def test_invalid_utf8_around_symbols_is_refused(tmp_path):
    good = "\u2705".encode()
    for bad in (b"\xf8\x9f\x8c\x80", good[:2], b"\xe0\x82\x85", b"\xed\xa0\x80", b"\xc0\xa2", good + b"\x80"):
        data = b"web-1 | 2026-01-01T00:00:00Z x " + bad + b" y\n"
        refused: list = []
        native.call("parse_compose_block", data, 1, refused)
        assert [why for _, why in refused] == ["non-ASCII plain-text payload"], bad
        path = tmp_path / "logs.txt"
        path.write_bytes(data)
        _compare(path)



# --- repeated keys in nested objects: printed as the dict orjson.loads builds ------------------
@st.composite
def json_with_repeats(draw, depth: int = 0) -> str:
    """JSON text whose objects may repeat keys (json.dumps of a dict never does)."""
    if depth >= 3 or draw(st.integers(0, 2)) == 0:
        return json.dumps(draw(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=3))))
    if draw(st.booleans()):
        items = draw(st.lists(json_with_repeats(depth + 1), max_size=3))
        return "[" + ",".join(items) + "]"
    keys = draw(st.lists(st.sampled_from(["a", "b", "type", "\u00e9"]), max_size=5))
    return "{" + ",".join(f'{json.dumps(k)}:{draw(json_with_repeats(depth + 1))}' for k in keys) + "}"


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(values=st.lists(json_with_repeats(), min_size=1, max_size=4))
def test_fuzz_repeated_nested_keys_native_equals_python(values):
    lines = [f'web-1 | {{"time": "{T}", "n": {v}, "error": {v}, "msg": {v}}}' for v in values]
    fd, name = tempfile.mkstemp()
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        _compare(Path(name))
    finally:
        os.unlink(name)


def test_repeated_nested_keys_go_native(tmp_path):
    text = '{"time": "%s", "attr": {"a": 1, "b": {"x": [1, {"y": 2, "y": 3}]}, "a": {"z": null}}}' % T
    data = f"web-1 | {text}\n".encode()
    assert _accepts(data)
    cols = native.call("parse_compose_block", data, 1)
    assert cols["extra"].to_pylist() == [[("attr", '{"a":{"z":null},"b":{"x":[1,{"y":3}]}}')]]
    path = tmp_path / "logs.txt"
    path.write_bytes(data)
    _compare(path)


def test_untimed_lines_at_a_block_start_take_the_reader_last_time(tmp_path):
    """The Python reader's last time goes into each block: untimed lines at a block's start stay
    native; only those before the file's first time are left to Python (their time comes later)."""
    rows = ["web-1 | waiting", "web-1 | still waiting"]
    for i in range(200):
        rows.append(f"web-1 | 2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z tick {i}" if i % 10 == 0 else f"web-1 | x {i}")
    path = tmp_path / "logs.txt"
    path.write_text("\n".join(rows) + "\n")
    rep = _compare(path, chunk_bytes=100)
    assert rep.notes["blocks_fast_path"] > 20
    assert rep.notes["native_line_fallback"] == 2 and rep.notes["time_inferred"] == 182, rep.notes
    refused: list = []
    cols = native.call("parse_compose_block", b"web-1 | x\nweb-1 | y\n", 5, refused, 1767225600000)
    assert not refused and cols["time_ms"].to_pylist() == [1767225600000] * 2
    assert cols["inferred_rows"].to_pylist() == [0, 1]
