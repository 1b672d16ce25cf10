"""Explicit Arrow schemas of the OCSF 1.8.0 events we write (nested structs, OCSF names).

Each class has its own schema (``CLASS_SCHEMAS``); one parquet file holds one signal, so a
signal's schema (``SIGNAL_SCHEMAS``) is the union of its classes' columns, and a column that does
not belong to a row's class is null in that row. Fields that OCSF has no place for (service,
host, region, the log's own level, ...) live in the ``unmapped`` struct, whose shape is fixed
per signal. The field-by-field reference is ``book/appendix/ocsf-mapping.md``.
"""

from __future__ import annotations

import pyarrow as pa

I64, STR, F64 = pa.int64(), pa.string(), pa.float64()

STR_MAP = pa.map_(STR, STR)  # typed unmapped: attributes and labels, key -> text
PRODUCT = pa.struct([("name", STR), ("vendor_name", STR)])
REPORTER = pa.struct([("name", STR), ("hostname", STR)])
METADATA = pa.struct(
    [
        ("uid", STR),
        ("version", STR),
        ("product", PRODUCT),
        ("reporter", REPORTER),  # metrics: the exporter (job) and its instance
        ("profiles", pa.list_(STR)),
        ("log_name", STR),  # source file name (or generator name)
        ("log_provider", STR),  # docker-compose | otlp | prometheus | synthetic
        ("correlation_uid", STR),  # trace id, when the event belongs to a trace
        ("sequence", I64),  # 1-based line number in the source file
    ]
)
ENDPOINT = pa.struct([("svc_name", STR), ("hostname", STR), ("ip", STR), ("port", I64), ("name", STR)])
URL = pa.struct([("path", STR), ("hostname", STR), ("scheme", STR), ("port", I64), ("url_string", STR)])
HTTP_REQUEST = pa.struct([("http_method", STR), ("url", URL), ("user_agent", STR), ("version", STR)])
HTTP_RESPONSE = pa.struct([("code", I64)])
SERVICE = pa.struct([("name", STR), ("version", STR), ("uid", STR)])
# (type_id only: the caption ``type`` is optional and costs a column; 1 Hostname, 2 IP Address,
# 4 User Name, 6 URL String, 16 HTTP User-Agent, 99 Other: trace ids)
OBSERVABLES = pa.list_(pa.struct([("name", STR), ("type_id", I64), ("value", STR)]))
SPAN = pa.struct(
    [
        ("uid", STR),
        ("parent_uid", STR),
        ("operation", STR),
        ("start_time", I64),
        ("end_time", I64),
        ("duration", I64),
        ("status_code", STR),
        ("service", SERVICE),  # the span's own service
    ]
)
TRACE = pa.struct(
    [("uid", STR), ("span", SPAN), ("service", SERVICE), ("start_time", I64), ("end_time", I64),
     ("duration", I64), ("flags", pa.list_(STR))]
)
USER = pa.struct([("name", STR)])
ACTOR = pa.struct([("app_name", STR), ("user", USER)])
API = pa.struct([("operation", STR), ("service", SERVICE)])

UNMAPPED_LOG = pa.struct(
    [
        ("service", STR),
        ("container", STR),
        ("host", STR),
        ("region", STR),
        ("level", STR),
        ("logger", STR),
        ("event", STR),
        ("error_type", STR),
        ("duration_ms", F64),
        ("time_inferred", pa.bool_()),
        ("user_name", STR),  # the user of a combined-format access line (HTTP Activity has no actor)
        ("extra", STR_MAP),  # JSON keys no OCSF field takes (values that are not strings as JSON text)
    ]
)
UNMAPPED_SPAN = pa.struct(
    [
        ("service", STR),
        ("host", STR),
        ("region", STR),
        ("kind", STR),  # server | client | internal | producer | consumer | unspecified
        ("scope", STR),
        ("http_route", STR),
        ("db_system", STR),
        ("db_statement", STR),
        ("db_name", STR),
        ("db_user", STR),
        ("messaging_system", STR),
        ("duration_ms", F64),
        ("attributes", STR_MAP),  # the other span attributes (markers removed)
        ("resource", STR_MAP),  # resource attributes (service.version, process.*, telemetry.sdk.*, ...)
        ("trace_state", STR),
        ("events", STR),  # span events (exceptions), JSON array
        ("links", STR),  # span links, JSON array
    ]
)
UNMAPPED_METRIC = pa.struct(
    [
        ("service", STR),
        ("host", STR),
        ("region", STR),
        ("metric", STR),
        ("value", F64),
        ("unit", STR),
        ("query", STR),
        ("labels", STR_MAP),  # the series' label set (job, instance, ...)
    ]
)


def _subset(type_: pa.StructType, *names: str, **narrower: pa.DataType) -> pa.StructType:
    """``type_`` with only the children ``names`` (in that order), some of them ``narrower``."""
    return pa.struct([pa.field(n, narrower.get(n, type_.field(n).type)) for n in names])


# Each signal declares only the attributes its mapper fills: a leaf that is null on every row
# tells a reader nothing (OCSF attributes are optional; absent reads as null) and costs the
# Parquet writer levels and a page per row group all the same (~12% of a logs conversion).
NAME_ONLY = _subset(SERVICE, "name")
LOG_TRACE = _subset(TRACE, "uid", "span", "service", service=NAME_ONLY,
                    span=_subset(SPAN, "uid", "start_time", "end_time", "duration", "service", service=NAME_ONLY))
LOG_HTTP_FIELDS = [
    pa.field("http_request", _subset(HTTP_REQUEST, "http_method", "url", "user_agent", "version",
                                     url=_subset(URL, "path"))),
    pa.field("http_response", HTTP_RESPONSE),
    pa.field("src_endpoint", _subset(ENDPOINT, "ip")),  # the caller's address
    pa.field("dst_endpoint", _subset(ENDPOINT, "svc_name", "hostname")),  # the service that logged
    pa.field("trace", LOG_TRACE),
]
SPAN_HTTP_FIELDS = [
    pa.field("http_request", HTTP_REQUEST),
    pa.field("http_response", HTTP_RESPONSE),
    pa.field("src_endpoint", ENDPOINT),
    pa.field("dst_endpoint", _subset(ENDPOINT, "svc_name", "hostname", "ip", "port")),
    pa.field("trace", _subset(TRACE, "uid", "span", "service", "flags")),  # (span times: on the span)
]
API_FIELDS = [pa.field("actor", ACTOR), pa.field("api", _subset(API, "operation", "service", service=NAME_ONLY))]
LIFECYCLE_FIELDS = [pa.field("app", _subset(PRODUCT, "name"))]
# metadata per signal: metrics alone have a reporter; spans no line number; metrics no trace
METADATA_LOG = _subset(METADATA, *(n for n in METADATA.names if n != "reporter"))
METADATA_SPAN = _subset(METADATA, *(n for n in METADATA.names if n not in ("reporter", "sequence")))
METADATA_METRIC = _subset(METADATA, *(n for n in METADATA.names if n not in ("profiles", "correlation_uid", "sequence")))


def _base(unmapped: pa.DataType, metadata: pa.DataType, omit: tuple = ()) -> list[pa.Field]:
    """The attributes every event of a signal may have; ``omit``: those its mapper never fills."""
    fields = [
        pa.field("time", I64, nullable=False),
        pa.field("class_uid", I64, nullable=False),
        pa.field("class_name", STR),
        pa.field("category_uid", I64, nullable=False),
        pa.field("category_name", STR),
        pa.field("activity_id", I64, nullable=False),
        pa.field("activity_name", STR),
        pa.field("type_uid", I64, nullable=False),
        pa.field("type_name", STR),
        pa.field("severity_id", I64, nullable=False),
        pa.field("severity", STR),
        pa.field("status_id", I64),
        pa.field("status", STR),
        pa.field("status_code", STR),
        pa.field("message", STR),
        pa.field("duration", I64),
        pa.field("start_time", I64),
        pa.field("end_time", I64),
        pa.field("metadata", metadata, nullable=False),
        pa.field("observables", OBSERVABLES),
        pa.field("raw_data", STR),  # logs: the line's text, only when asked for (``raw_data=True``)
    ]
    return [f for f in fields if f.name not in omit] + [pa.field("unmapped", unmapped)]


def _schema(fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={"ocsf_version": "1.8.0"})


_LOG = _base(UNMAPPED_LOG, METADATA_LOG, omit=("start_time", "end_time"))  # (a line has a time)
_SPAN = _base(UNMAPPED_SPAN, METADATA_SPAN, omit=("raw_data",))
_METRIC = _base(UNMAPPED_METRIC, METADATA_METRIC,  # (a sample has a time and a value, no outcome)
                omit=("duration", "start_time", "end_time", "status_id", "status", "status_code", "raw_data"))
CLASS_SCHEMAS: dict[str, dict[int, pa.Schema]] = {
    "logs": {
        4002: _schema(_LOG + LOG_HTTP_FIELDS),
        6008: _schema(_LOG),
        6002: _schema(_LOG + LIFECYCLE_FIELDS),
        0: _schema(_LOG),
    },
    "traces": {
        4002: _schema(_SPAN + SPAN_HTTP_FIELDS),
        6003: _schema(_SPAN + API_FIELDS + SPAN_HTTP_FIELDS),
    },
    "metrics": {0: _schema(_METRIC)},
}

OCSF_LOGS = _schema(_LOG + LOG_HTTP_FIELDS + LIFECYCLE_FIELDS)
OCSF_TRACES = _schema(_SPAN + SPAN_HTTP_FIELDS + API_FIELDS)
OCSF_METRICS = _schema(_METRIC)
SIGNAL_SCHEMAS = {"logs": OCSF_LOGS, "traces": OCSF_TRACES, "metrics": OCSF_METRICS}


def parquet_leaves(schema: pa.Schema):
    """``(column path, type)`` of every Parquet leaf column of ``schema``, as the writer's
    per-column options name them (``a.b`` for struct children, ``a.list.element`` for lists)."""
    for f in schema:
        yield from _leaves(f, "")


def _leaves(field: pa.Field, prefix: str):
    t = field.type
    if pa.types.is_struct(t):
        for child in t:
            yield from _leaves(child, prefix + field.name + ".")
    elif pa.types.is_list(t):
        yield from _leaves(pa.field("element", t.value_type), prefix + field.name + ".list.")
    else:
        yield prefix + field.name, t
