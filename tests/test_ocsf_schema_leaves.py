"""Each signal's schema declares only attributes its mapper fills: every Parquet leaf of
SIGNAL_SCHEMAS is non-null in some converted input (the shared fixtures, the sample lab run and
a few lines that carry the rarer fields). A leaf no input can fill fails here: it would cost the
writer on every row and tell a reader nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shared_fixtures import FIXTURES, MISSING

from obslab.ocsf import convert_file
from obslab.ocsf.schemas import SIGNAL_SCHEMAS, parquet_leaves

pytestmark = pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "raw"

# log fields the fixtures and the sample lack: a host, a region, a client, a user, unknown keys
RARE_LOGS = [
    'web-api-1  | {"timestamp":"2025-01-01T00:00:00.000Z","level":"INFO","message":"GET /a 200","method":"GET",'
    '"path":"/a","status":200,"host":"node-1","region":"eu-west-1","client_ip":"10.0.0.1","colour":"blue"}',
    'nginx-1  | 10.0.0.2 - alice [10/Oct/2025:13:55:36 +0000] "GET /b HTTP/1.1" 200 12 "-" "curl/8.5"',
]


def _kv(key, value):
    return {"key": key, "value": {"stringValue": value} if isinstance(value, str) else {"intValue": str(value)}}


def _rare_spans() -> str:
    # a client span naming its peer by IP and a queue, a server span with the caller's port
    span = dict(traceId="1" * 32, startTimeUnixNano="1735689600000000000", endTimeUnixNano="1735689600100000000")
    client = dict(span, spanId="2" * 16, name="publish", kind=4,
                  attributes=[_kv("network.peer.address", "10.1.2.3"), _kv("messaging.system", "rabbitmq")])
    server = dict(span, spanId="3" * 16, name="GET /c", kind=2,
                  attributes=[_kv("http.request.method", "GET"), _kv("url.path", "/c"),
                              _kv("client.address", "10.1.2.4"), _kv("client.port", 51000)])
    resource = {"attributes": [_kv("service.name", "web-api"), _kv("cloud.region", "eu-west-1"),
                               _kv("service.version", "1.2.3")]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [client, server]}]}]})


def _filled(table: pa.Table) -> set[str]:
    out = set()
    for f in table.schema:
        out |= _walk(table.column(f.name).combine_chunks(), f.name)
    return out


def _walk(arr: pa.Array, path: str) -> set[str]:
    if arr.null_count == len(arr):
        return set()
    if pa.types.is_struct(arr.type):
        return set().union(*(_walk(arr.field(i), f"{path}.{f.name}") for i, f in enumerate(arr.type)))
    if pa.types.is_list(arr.type):
        return _walk(arr.flatten(), f"{path}.list.element")
    return {path}  # (a map is one leaf path here, as parquet_leaves names it)


def _inputs(signal: str, tmp_path: Path) -> list[Path]:
    if signal == "logs":
        rare = tmp_path / "rare.log"
        rare.write_text("\n".join(RARE_LOGS) + "\n")
        return sorted((FIXTURES / "compose_logs").glob("*.log")) + [SAMPLE / "logs.txt", rare]
    if signal == "traces":
        rare = tmp_path / "rare.jsonl"
        rare.write_text(_rare_spans() + "\n")
        return sorted((FIXTURES / "otlp").glob("*.json*")) + [SAMPLE / "traces.jsonl", rare]
    rare = tmp_path / "rare.json"  # a series labelled with its region
    rare.write_text(json.dumps({"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {"__name__": "up", "job": "node", "instance": "h:9100", "region": "eu-west-1"},
         "values": [[1735689600, "1"]]}]}}))
    return sorted((FIXTURES / "prometheus").rglob("*.json")) + [SAMPLE / "metrics.json", rare]


@pytest.mark.parametrize("signal", ["logs", "traces", "metrics"])
def test_every_declared_leaf_is_filled_by_some_input(signal, tmp_path):
    filled: set[str] = set()
    for i, src in enumerate(_inputs(signal, tmp_path)):
        out = tmp_path / f"{i}.parquet"
        rep = convert_file(signal, src, out, quiet=True, validate_sample=None, raw_data=True)
        assert rep.notes.get("invalid", 0) == 0, (src.name, rep.problems)
        if rep.records_out:
            filled |= _filled(pq.read_table(out))
    declared = {path for path, _ in parquet_leaves(SIGNAL_SCHEMAS[signal])}
    assert declared - filled == set()
