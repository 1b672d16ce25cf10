"""Flat, source-neutral telemetry records: the one hand-off between readers and OCSF.

Every reader (Compose logs, OTLP traces, Prometheus range JSON) and the synthetic generator
produce Arrow tables with exactly these schemas; ``obslab.ocsf`` maps them to OCSF classes.
Keeping this layer flat and columnar is what lets the mapping run vectorised, once, for
every source.

Ground-truth markers (``anomaly.*`` span attributes, ``x-anomaly-*`` headers) are kept in the
``marker_*`` columns of spans: the mapper moves them into ``labels.parquet`` and never into an
OCSF event, so they can never become model features.
"""

from __future__ import annotations

import pyarrow as pa

# Times are epoch milliseconds (int64) everywhere; durations are float64 milliseconds.
# Attribute and label sets are maps of text (values that are not strings as their JSON text):
# typed, so Athena/DuckDB/pandas read a key without json_extract.
STR_MAP = pa.map_(pa.string(), pa.string())

FLAT_LOG = pa.schema(
    [
        pa.field("time_ms", pa.int64(), nullable=False),
        pa.field("service", pa.string(), nullable=False),  # compose service name, "-1" suffix removed
        pa.field("container", pa.string()),  # the prefix as written ("web-api-1")
        pa.field("level", pa.string()),  # upper case: DEBUG INFO WARN ERROR FATAL
        pa.field("message", pa.string()),
        pa.field("logger", pa.string()),
        pa.field("event", pa.string()),  # access | lifecycle | error | other (see TELEMETRY.md)
        pa.field("host", pa.string()),
        pa.field("region", pa.string()),
        pa.field("trace_id", pa.string()),  # lower-case hex, 32 chars
        pa.field("span_id", pa.string()),  # lower-case hex, 16 chars
        pa.field("http_method", pa.string()),
        pa.field("http_path", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("duration_ms", pa.float64()),
        pa.field("error_type", pa.string()),
        pa.field("client_ip", pa.string()),  # the caller's address (access lines)
        pa.field("user_agent", pa.string()),
        pa.field("http_version", pa.string()),  # "1.1", "2"
        pa.field("user_name", pa.string()),  # the authenticated user of a combined-format access line
        pa.field("extra", STR_MAP),  # JSON keys no column reads: key -> text (JSON text if not a string)
        pa.field("payload", pa.string()),  # the original payload text (JSON or plain)
        pa.field("line_no", pa.int64()),  # 1-based line in the source file; null if generated
    ]
)

FLAT_SPAN = pa.schema(
    [
        pa.field("time_ms", pa.int64(), nullable=False),  # span start
        pa.field("end_time_ms", pa.int64(), nullable=False),
        pa.field("start_time_unix_nano", pa.int64()),
        pa.field("duration_ms", pa.float64(), nullable=False),
        pa.field("trace_id", pa.string(), nullable=False),  # lower-case hex
        pa.field("span_id", pa.string(), nullable=False),
        pa.field("parent_span_id", pa.string()),  # null on roots (never "")
        pa.field("service", pa.string(), nullable=False),  # resource service.name
        pa.field("host", pa.string()),
        pa.field("region", pa.string()),
        pa.field("name", pa.string(), nullable=False),
        pa.field("kind", pa.int8()),  # OTLP SpanKind number: 0 unspecified .. 5 consumer
        pa.field("status_code", pa.int8()),  # OTLP StatusCode: 0 unset, 1 ok, 2 error
        pa.field("status_message", pa.string()),
        pa.field("scope", pa.string()),  # instrumentation scope name
        pa.field("http_method", pa.string()),
        pa.field("http_path", pa.string()),
        pa.field("http_route", pa.string()),
        pa.field("http_status", pa.int32()),
        pa.field("server_address", pa.string()),
        pa.field("db_system", pa.string()),
        pa.field("db_statement", pa.string()),
        pa.field("messaging_system", pa.string()),
        # more attributes with an OCSF place (obslab.ocsf._tables.SPAN_ATTR_COLUMNS), as text
        pa.field("client_address", pa.string()),  # the caller (server spans)
        pa.field("client_port", pa.string()),
        pa.field("peer_address", pa.string()),  # the other end of the connection
        pa.field("peer_port", pa.string()),
        pa.field("server_port", pa.string()),
        pa.field("peer_service", pa.string()),  # the called service's logical name (client spans)
        pa.field("user_agent", pa.string()),
        pa.field("http_version", pa.string()),
        pa.field("url_scheme", pa.string()),
        pa.field("db_name", pa.string()),
        pa.field("db_user", pa.string()),
        pa.field("attributes", STR_MAP),  # the other attributes (markers removed)
        pa.field("resource", STR_MAP),  # resource attributes but service.name, host.name, cloud.region
        pa.field("flags", pa.int64()),  # W3C trace flags (bit 0: sampled) and OTLP remote bits
        pa.field("trace_state", pa.string()),
        pa.field("events", pa.string()),  # span events as a JSON array (name, time_unix_nano, attributes)
        pa.field("links", pa.string()),  # span links as a JSON array (trace_id, span_id, trace_state, attributes)
        # ground-truth markers: label side only, never features
        pa.field("marker_type", pa.string()),
        pa.field("marker_label", pa.string()),
        pa.field("marker_root_cause", pa.string()),
        pa.field("marker_msg", pa.string()),
    ]
)

FLAT_METRIC = pa.schema(
    [
        pa.field("time_ms", pa.int64(), nullable=False),
        pa.field("metric", pa.string(), nullable=False),  # documented query name, e.g. cpu_pct
        pa.field("value", pa.float64()),  # NaN and +/-Inf are real Prometheus values
        pa.field("service", pa.string()),
        pa.field("host", pa.string()),  # instance / host name
        pa.field("region", pa.string()),
        pa.field("unit", pa.string()),
        pa.field("labels", STR_MAP),  # the series' label set
        pa.field("query", pa.string()),  # PromQL that produced it (null when generated)
    ]
)

SCHEMAS = {"logs": FLAT_LOG, "traces": FLAT_SPAN, "metrics": FLAT_METRIC}


def to_batch(columns: dict, schema: pa.Schema) -> pa.RecordBatch:
    """A record batch with exactly ``schema`` from a name -> array mapping (cast where needed)."""
    arrays = []
    for f in schema:
        a = columns[f.name]
        if isinstance(a, pa.ChunkedArray):
            a = a.combine_chunks()
        arrays.append(a.cast(f.type) if a.type != f.type else a)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
