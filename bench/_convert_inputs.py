"""Inputs for bench/convert.py: one function per input shape, each writing about ``target``
bytes (whole lines) and returning an :class:`Input` that says what is in the file.

Generated shapes are seeded (same seed, same bytes) and their event counts are known exactly;
the real files (shared fixtures, a lab run) are repeated to a measurable size, and the
expected counts of the fixtures come from their MANIFEST.json.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"
LAB_RAW = [REPO / "data" / "sample" / "raw"] + sorted(
    p for p in (REPO / "data" / "lab").glob("**/raw") if p.is_dir())
SERVICES = ["web-api", "auth-service", "payment-worker"]
T0_NS = 1_763_000_000_000_000_000


@dataclass
class Input:
    signal: str  # "logs" or "traces"
    path: Path
    expected: int | None  # events a correct converter emits; None where only the converter knows
    expected_rejected: int | None
    how: str  # one line: where the bytes come from
    ambiguous: int = 0  # records a converter may keep or reject (the fixtures' manifest)


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class _Sink:
    """Buffered line writer that tracks bytes written, so generators stop near the target."""

    def __init__(self, path: Path):
        self.f = open(path, "wb")
        self.size = 0
        self.buf: list[bytes] = []

    def line(self, text: str) -> None:
        b = (text + "\n").encode()
        self.size += len(b)
        self.buf.append(b)
        if len(self.buf) >= 4096:
            self.f.writelines(self.buf)
            self.buf.clear()

    def close(self) -> None:
        self.f.writelines(self.buf)
        self.f.close()


def _iso_ms(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _kv(key: str, value: dict) -> dict:
    return {"key": key, "value": value}


def _s(text: str) -> dict:
    return {"stringValue": text}


# ---- the two shapes the bench always had ---------------------------------------------------

def _collector_span(rng: random.Random, j: int) -> dict:
    start = T0_NS + j * 1_000_000
    server = j % 3 == 0
    if server:
        attrs = [_kv("http.request.method", _s("GET")),
                 _kv("url.path", _s(f"/api/items/{j % 100}")),
                 _kv("http.response.status_code", {"intValue": str(200 if j % 50 else 500)})]
    else:
        attrs = [_kv("db.system", _s("postgresql")),
                 _kv("db.statement", _s("SELECT * FROM items WHERE id = $1"))]
    return {"traceId": _hex(rng, 128), "spanId": _hex(rng, 64),
            "parentSpanId": "" if server else _hex(rng, 64),
            "name": "GET /api/items/{id}" if server else "SELECT items", "kind": 2 if server else 3,
            "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + rng.randint(10**5, 10**8)),
            "attributes": attrs, "status": {}, "flags": 256}


def collector_spans(path: Path, target: int, seed: int = 0, per_line: int = 50) -> Input:
    """Collector-style OTLP lines: one resource, one scope, 50 HTTP/DB spans with few attributes."""
    rng = random.Random(seed)
    out, done, n_lines = _Sink(path), 0, 0
    while out.size < target:
        spans = [_collector_span(rng, done + i) for i in range(per_line)]
        resource = {"attributes": [_kv("service.name", _s(SERVICES[n_lines % 3])),
                                   _kv("host.name", _s("host-1"))]}
        scope = {"scope": {"name": "opentelemetry.instrumentation.flask"}, "spans": spans}
        out.line(_dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [scope]}]}))
        done += per_line
        n_lines += 1
    out.close()
    how = f"generated, seed {seed}: {n_lines:,} lines x {per_line} spans, 2-3 attributes each"
    return Input("traces", path, done, 0, how)


def access_logs(path: Path, target: int, seed: int = 0) -> Input:
    """Compose prefix + flat JSON access/app lines (~250 bytes), as the lab's services write."""
    rng = random.Random(seed)
    out, j = _Sink(path), 0
    while out.size < target:
        svc = SERVICES[j % 3]
        ts = _iso_ms(1_763_000_000_000 + j)
        if j % 4:
            rec = {"timestamp": ts, "level": "INFO", "service": svc, "message": "request completed",
                   "method": "GET", "path": f"/api/items/{j % 100}",
                   "status": 200 if j % 97 else 503,
                   "duration_ms": round(rng.random() * 50, 3), "trace_id": _hex(rng, 128),
                   "span_id": _hex(rng, 64)}
        else:
            rec = {"timestamp": ts, "level": "WARN" if j % 7 == 0 else "INFO", "service": svc,
                   "message": f"cache refresh took {j % 13} ms", "logger": "app.cache"}
        out.line(f"{svc}-1  | {_dumps(rec)}")
        j += 1
    out.close()
    return Input("logs", path, j, 0, f"generated, seed {seed}: {j:,} flat JSON lines")


# ---- application logs with nested values ---------------------------------------------------

WORDS = ["order", "basket", "Zürich", "naïve", "café", "東京", "пример", "ünïcödé", "emoji 🚀",
         "a\"quote", "tab\there", "slash/\\back", "payment", "retry", "timeout", "ok"]
APPS = ["checkout-api", "inventory", "notification-svc", "user-profile", "search-indexer"]
LEVELS = ["info", "INFO", "debug", "warn", "WARNING", "error", "ERROR", "fatal"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _http(rng: random.Random) -> dict:
    return {"method": rng.choice(["GET", "POST", "PUT"]),
            "path": f"/v2/orders/{rng.randint(1, 10**6)}",
            "status": rng.choice([200, 201, 204, 400, 404, 500, 503]),
            "latency_ms": round(rng.random() * 900, 3), "bytes": rng.randint(0, 10**7),
            "headers": {"user-agent": "Mozilla/5.0 (X11; Linux x86_64)",
                        "x-request-id": _hex(rng, 64)}}


def _cart(rng: random.Random) -> dict:
    items = [{"sku": f"SKU-{rng.randint(1000, 9999)}", "qty": rng.randint(1, 5),
              "price": round(rng.random() * 200, 2), "tags": [_text(rng, 1)]}
             for _ in range(rng.randint(1, 3))]
    return {"items": items, "total": round(rng.random() * 600, 2), "currency": "EUR",
            "discounted": rng.random() < 0.2}


def _nested_record(rng: random.Random, j: int) -> dict:
    """One application log object: nested objects, arrays, ints, floats, booleans, unicode."""
    ms = 1_763_000_000_000 + j * 7
    error = {"type": "TimeoutError", "stack": ["at a (x.js:1:2)", "at b (y.js:3:4)"], "code": -110}
    return {
        "timestamp": _iso_ms(ms) if j % 5 else ms,  # both ISO text and epoch-ms integers occur
        "level": rng.choice(LEVELS),
        "msg" if j % 3 == 0 else "message": _text(rng, rng.randint(3, 9)),
        "logger": f"com.example.{rng.choice(['http', 'db', 'cache', 'jobs'])}",
        "thread": f"worker-{rng.randint(0, 31)}",
        "pid": rng.randint(1, 65535),
        "trace_id": _hex(rng, 128),
        "span_id": _hex(rng, 64),
        "http": _http(rng),
        "user": {"id": rng.randint(1, 10**9), "name": _text(rng, 2),
                 "roles": rng.sample(["admin", "ops", "dev", "viewer"], 2),
                 "verified": rng.random() < 0.7, "score": rng.random() * 100, "quota": None},
        "cart": _cart(rng),
        "metrics": [rng.randint(-1000, 1000), rng.random(), 1e-7 * rng.random(),
                    2**40 + rng.randint(0, 99)],
        "flags": {"beta": rng.random() < 0.5, "canary": False, "shard": rng.randint(0, 15)},
        "error": None if j % 11 else error,
    }


def app_nested_logs(path: Path, target: int, seed: int = 0) -> Input:
    """Compose prefix + JSON application lines near 950 bytes carrying nested values."""
    rng = random.Random(seed)
    out, j = _Sink(path), 0
    while out.size < target:
        app = APPS[j % len(APPS)]
        rec = _nested_record(rng, j)
        line = _dumps(rec)
        if len(line) < 900:  # pad with a free-text field to the ~950-byte shape of the report
            rec["detail"] = _text(rng, (950 - len(line)) // 7 + 1)
            line = _dumps(rec)
        out.line(f"{app}-{1 + j % 2}  | {line}")
        j += 1
    out.close()
    how = f"generated, seed {seed}: {j:,} nested JSON lines, {out.size / max(j, 1):.0f} B/line"
    return Input("logs", path, j, 0, how)


# ---- spans with many attributes ------------------------------------------------------------

def _any_value(rng: random.Random, k: int) -> dict:
    """An OTLP AnyValue of a type that varies with k (all the protobuf-JSON spellings)."""
    kind = k % 9
    if kind in (0, 1):
        return _s(_text(rng, rng.randint(1, 4)))
    if kind == 2:
        return {"intValue": str(rng.randint(-10**12, 10**12))}  # int64 as a JSON string
    if kind == 3:
        return {"intValue": rng.randint(0, 10**6)}  # ... and as a JSON number (SDKs write both)
    if kind == 4:
        return {"doubleValue": rng.random() * 1e4}
    if kind == 5:
        return {"boolValue": rng.random() < 0.5}
    if kind == 6:
        values = [_s(_text(rng, 1)), {"intValue": str(rng.randint(0, 99))}]
        return {"arrayValue": {"values": values}}
    if kind == 7:
        return {"kvlistValue": {"values": [_kv("inner", _s(_text(rng, 1))),
                                           _kv("n", {"doubleValue": rng.random()})]}}
    return {"bytesValue": "3q2+7w=="}


def _known_attrs(rng: random.Random) -> list:
    """Semantic-convention attributes with the values real SDKs give them."""
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH"])
    path = f"/v2/{rng.choice(['orders', 'users', 'carts'])}/{rng.randint(1, 10**6)}"
    client = ".".join(str(rng.randint(1, 254)) for _ in range(3))
    kv = {"http.request.method": _s(method), "url.full": _s(f"https://shop.example.com{path}?q=1"),
          "url.path": _s(path), "url.scheme": _s("https"),
          "http.response.status_code": {"intValue": str(rng.choice([200, 201, 404, 500, 503]))},
          "server.address": _s("shop.example.com"), "server.port": {"intValue": 443},
          "client.address": _s(f"10.{client}"),
          "user_agent.original": _s("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/133.0"),
          "network.protocol.version": _s(rng.choice(["1.1", "2"])),
          "db.system": _s("postgresql"), "db.name": _s("shop"),
          "db.statement": _s("SELECT * FROM orders WHERE id = $1 AND name = 'café'"),
          "peer.service": _s(rng.choice(APPS)), "thread.id": {"intValue": rng.randint(1, 400)},
          "thread.name": _s(f"worker-{rng.randint(0, 31)}"), "code.function": _s("handle"),
          "code.lineno": {"intValue": rng.randint(1, 5000)}, "enduser.id": _s(_text(rng, 1))}
    return [_kv(k, v) for k, v in kv.items()]


def _custom_attrs(rng: random.Random, n: int, first: int = 0) -> list:
    return [_kv(f"app.custom.attr_{k}", _any_value(rng, k)) for k in range(first, first + n)]


def _attrs(rng: random.Random, n: int) -> list:
    """``n`` attributes: the known ones first, then custom ones of every AnyValue type."""
    known = _known_attrs(rng)[:n]
    return known + _custom_attrs(rng, n - len(known))


def _rich_span(rng: random.Random, j: int) -> dict:
    start = T0_NS + j * 2_000_000
    events = [{"timeUnixNano": str(start + 1000 * e),
               "name": "exception" if e == 0 and j % 7 == 0 else "log",
               "attributes": _custom_attrs(rng, 3)} for e in range(rng.randint(0, 3))]
    links = [{"traceId": _hex(rng, 128), "spanId": _hex(rng, 64),
              "attributes": [_kv("link.kind", _s("follows"))]} for _ in range(j % 3)]
    name = f"{rng.choice(['GET', 'POST'])} /v2/{rng.choice(['orders', 'users', 'carts'])}/{{id}}"
    return {"traceId": _hex(rng, 128), "spanId": _hex(rng, 64),
            "parentSpanId": _hex(rng, 64) if j % 4 else "",
            "traceState": "vendor=1" if j % 9 == 0 else "",
            "name": name, "kind": 1 + j % 5, "startTimeUnixNano": str(start),
            "endTimeUnixNano": str(start + rng.randint(10**4, 10**9)),
            "attributes": _attrs(rng, rng.randint(30, 40)), "droppedAttributesCount": 0,
            "events": events, "links": links,
            "status": {"code": j % 3, "message": "boom" if j % 3 == 2 else ""},
            "flags": 256 + j % 2}


def _resource(rng: random.Random, r: int, app: str, first_span: int) -> dict:
    """One resource with 1-3 scopes of 1-6 spans each, numbered from ``first_span``."""
    scopes, j = [], first_span
    for s in range(rng.randint(1, 3)):
        spans = [_rich_span(rng, j + i) for i in range(rng.randint(1, 6))]
        j += len(spans)
        scope = {"name": f"io.opentelemetry.lib-{s}", "version": "1.2.3",
                 "attributes": _custom_attrs(rng, 2)}
        scopes.append({"scope": scope, "spans": spans, "schemaUrl": ""})
    args = {"arrayValue": {"values": [_s("java"), _s("-jar")]}}
    attrs = [_kv("service.name", _s(app)), _kv("service.version", _s(f"2.{r}.0")),
             _kv("host.name", _s(f"node-{r}")), _kv("process.pid", {"intValue": 4000 + r}),
             _kv("process.command_args", args)]
    return {"resource": {"attributes": attrs}, "scopeSpans": scopes}


def spans_many_attrs(path: Path, target: int, seed: int = 0) -> Input:
    """OTLP lines with 2-3 resources x 1-3 scopes x a few spans of 30-40 mixed-type attributes."""
    rng = random.Random(seed)
    out, j, n_lines = _Sink(path), 0, 0
    while out.size < target:
        resources = []
        for r in range(rng.randint(2, 3)):
            res = _resource(rng, r, APPS[(n_lines + r) % len(APPS)], j)
            j += sum(len(s["spans"]) for s in res["scopeSpans"])
            resources.append(res)
        out.line(_dumps({"resourceSpans": resources}))
        n_lines += 1
    out.close()
    how = f"generated, seed {seed}: {n_lines:,} lines, {j:,} spans of 30-40 attributes"
    return Input("traces", path, j, 0, how)


# ---- real files, repeated -----------------------------------------------------------------

def _repeat(path: Path, chunk: bytes, target: int) -> int:
    """Write ``chunk`` as many times as it takes to reach ``target`` bytes (at least once)."""
    k = max(1, math.ceil(target / max(len(chunk), 1)))
    with open(path, "wb") as f:
        for _ in range(k):
            f.write(chunk)
    return k


def _manifest() -> dict:
    m = json.loads((FIXTURES / "MANIFEST.json").read_text())
    return {f["path"]: f for f in m["files"]}


def _as_utf8_lines(raw: bytes) -> bytes:
    """Fixture bytes as UTF-8 ending in a newline: BOMs dropped and UTF-16 transcoded, because a
    BOM or a UTF-16 body is only legal at the start of a file and these pieces are concatenated."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raw = raw.decode("utf-16").encode()
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    return raw if raw.endswith(b"\n") else raw + b"\n"


def _counts(entries: list) -> tuple[int, int, int]:
    """Good, rejected and ambiguous records of manifest entries, summed."""
    return (sum(e["expected_good_records"] for e in entries),
            sum(e.get("expected_rejected_records") or 0 for e in entries),
            sum(e.get("ambiguous_records") or 0 for e in entries))


def fixture_logs(path: Path, target: int, seed: int = 0) -> Input | None:
    """The Compose fixtures the manifest lists, as UTF-8, concatenated and repeated."""
    if not (FIXTURES / "MANIFEST.json").is_file():
        return None
    entries = [e for _, e in sorted(_manifest().items()) if e["kind"] == "compose_logs"]
    files = [FIXTURES / e["path"] for e in entries]
    chunk = b"".join(_as_utf8_lines(f.read_bytes()) for f in files)
    good, bad, either = _counts(entries)
    k = _repeat(path, chunk, target)
    return Input("logs", path, k * good, k * bad,
                 f"{len(files)} Compose fixtures ({len(chunk) / 1e6:.2f} MB as UTF-8, BOMs dropped,"
                 f" UTF-16 transcoded) x {k}", k * either)


def fixture_traces(path: Path, target: int, seed: int = 0) -> Input | None:
    """OTLP fixtures with spans in them; one-document .json files compacted to one line."""
    if not (FIXTURES / "MANIFEST.json").is_file():
        return None
    pieces, entries = [], []
    for rel, entry in sorted(_manifest().items()):
        if entry["kind"] != "otlp" or not entry.get("expected_good_records"):
            continue  # the not-OTLP files are about reporting, not throughput
        raw = (FIXTURES / rel).read_bytes()
        if rel.endswith(".json"):
            raw = _dumps(json.loads(raw)).encode()
        pieces.append(raw if raw.endswith(b"\n") else raw + b"\n")
        entries.append(entry)
    chunk = b"".join(pieces)
    good, bad, either = _counts(entries)
    k = _repeat(path, chunk, target)
    return Input("traces", path, k * good, k * bad,
                 f"{len(entries)} OTLP fixtures with spans ({len(chunk) / 1e6:.2f} MB,"
                 f" .json compacted to a line) x {k}", k * either)


def _lab(name: str, signal: str, path: Path, target: int) -> Input | None:
    sources = [d / name for d in LAB_RAW if (d / name).is_file()]
    if not sources:
        return None
    chunk = b"".join(_as_utf8_lines(p.read_bytes()) for p in sources)
    k = _repeat(path, chunk, target)
    where = ", ".join(str(p.relative_to(REPO)) for p in sources)
    return Input(signal, path, None, None, f"lab run {where} ({len(chunk) / 1e6:.2f} MB) x {k}")


def lab_logs(path: Path, target: int, seed: int = 0) -> Input | None:
    return _lab("logs.txt", "logs", path, target)


def lab_traces(path: Path, target: int, seed: int = 0) -> Input | None:
    return _lab("traces.jsonl", "traces", path, target)


# ---- the synthetic generator's raw output -------------------------------------------------

def _synth_raw(workdir: Path, target: int, seed: int) -> Path:
    """Run ``obslab synth --format raw`` once, with enough days for ``target`` bytes a file."""
    out = workdir / f"synth-{seed}-{target}"
    if (out / "raw" / "traces.jsonl").exists():
        return out / "raw"
    days = max(1, math.ceil(target / 0.45e6))  # a day is ~0.5 MB of logs and ~1 MB of traces
    cmd = [sys.executable, "-m", "obslab.cli", "synth", "--out", str(out), "--days", str(days),
           "--step", "1h",
           "--seed", str(seed), "--format", "raw", "--quiet", "--workers", "1"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out / "raw"


def _head_lines(src: Path, dst: Path, target: int) -> tuple[int, int, int]:
    """Copy whole lines of ``src`` up to ``target`` bytes (repeat the file if it is shorter):
    bytes and lines of the piece, and how many times it was written."""
    data = src.read_bytes()
    if len(data) >= target:
        end = data.find(b"\n", target - 1)
        data = data if end < 0 else data[:end + 1]
    return len(data), data.count(b"\n"), _repeat(dst, data, target)


def _synth(name: str, signal: str, path: Path, target: int, seed: int) -> Input:
    raw = _synth_raw(path.parent, target, seed)
    n, lines, k = _head_lines(raw / name, path, target)
    how = (f"obslab synth --format raw --seed {seed}: {name}, first {n / 1e6:.1f} MB"
           f" ({lines:,} whole lines)")
    return Input(signal, path, None, None, how + (f" x {k}" if k > 1 else ""))


def synth_logs(path: Path, target: int, seed: int = 0) -> Input:
    return _synth("logs.txt", "logs", path, target, seed)


def synth_traces(path: Path, target: int, seed: int = 0) -> Input:
    return _synth("traces.jsonl", "traces", path, target, seed)


# name -> generator; the order is the table's order
SHAPES = {
    "fixtures-logs": fixture_logs,
    "fixtures-traces": fixture_traces,
    "lab-logs": lab_logs,
    "lab-traces": lab_traces,
    "synth-logs": synth_logs,
    "synth-traces": synth_traces,
    "app-nested-logs": app_nested_logs,
    "spans-many-attrs": spans_many_attrs,
    "collector-spans": collector_spans,
    "access-logs": access_logs,
}
