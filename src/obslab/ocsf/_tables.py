"""The tables both readers use, declared once: JSON log keys, level words, message phrases and
OTLP attribute keys.

The Python readers (compose.py, otlp.py) import them; the compiled readers include
``native/tables.hpp``, which is generated from this module (``python -m obslab.ocsf._tables``
rewrites it) and checked against it by tests/test_ocsf_tables.py. Edit here, never there.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

# ----------------------------------------------------------------------------- Compose JSON logs
# key groups in priority order: the first present, non-null, non-"" value wins
LOG_KEY_GROUPS: dict[str, tuple[str, ...]] = {
    "time": ("timestamp", "time", "ts", "@timestamp", "t", "datetime", "date", "asctime"),
    "level": ("level", "lvl", "severity", "levelname", "log_level", "loglevel", "log_type", "s"),
    "message": ("message", "msg", "event_message", "log", "text"),
    "logger": ("logger", "logger_name", "name", "c", "component"),
    "host": ("host", "hostname", "host.name"),
    "trace_id": ("trace_id", "traceId", "trace.id", "otelTraceID"),
    "span_id": ("span_id", "spanId", "span.id", "otelSpanID"),
    "http_method": ("method", "http_method", "http.method", "http.request.method"),
    "http_path": ("path", "http_path", "http.target", "url.path", "route"),
    "http_status": ("status", "status_code", "http_status", "http.status_code", "http.response.status_code"),
    "duration_ms": ("duration_ms", "latency_ms", "elapsed_ms", "response_time_ms"),
    "error_type": ("error_type", "error.type", "exc_type", "exception_type"),
    "client_ip": ("client_ip", "remote_addr", "client.address", "clientip", "remote_ip"),
    "user_agent": ("user_agent", "http_user_agent", "user_agent.original", "userAgent"),
    "http_version": ("http_version", "network.protocol.version"),
}
# single keys read with obj.get(); "error" and "http" may be objects (error.type, http.method)
LOG_SINGLE_KEYS = ("event", "region", "error", "http")
# keys that are read only in part: kept whole among the line's other keys (FLAT_LOG.extra)
LOG_KEEP_KEYS = ("error",)
# keys left out of FLAT_LOG.extra when their value is the line's service (the Compose prefix
# without its replica suffix): our services write it on every line, and it says nothing new
LOG_SAME_AS_SERVICE = ("service",)
LOG_EVENTS = ("access", "lifecycle", "error", "other")

# level text (upper case) -> the level written; a D plus at most one character is DEBUG
SHORT_LEVELS = {"I": "INFO", "W": "WARN", "E": "ERROR", "F": "FATAL", "D": "DEBUG", "WARNING": "WARN",
                "ERR": "ERROR", "CRIT": "CRITICAL"}
# levels (after SHORT_LEVELS) that make a line an error, and OCSF severity per level
ERROR_LEVELS = ("ERROR", "FATAL", "CRITICAL", "PANIC")
LEVEL_SEVERITY = {"TRACE": 1, "DEBUG": 1, "INFO": 1, "NOTICE": 1, "WARN": 2, "WARNING": 2,
                  "ERROR": 4, "ERR": 4, "CRITICAL": 5, "CRIT": 5, "FATAL": 6, "PANIC": 6,
                  "ALERT": 5, "EMERG": 6}

# error text in a message without a level: case-sensitive, a word boundary before
ERROR_PHRASES = ("Traceback (most recent call last)", "Exception", "Error:", "panic:")
# real process start / stop / restart lines (case-insensitive whole words): a component that
# starts some work ("checkpoint starting", "starting from scratch") is not one
LIFECYCLE_RESTART = ("restarted", "restarting")
LIFECYCLE_STOP = ("shutting down", "shutdown complete", "graceful shutdown", "shutdown started",
                  "server stopped", "stopping server", "stopping temporary server", "all modules stopped",
                  "exiting", "received sigterm", "received sigint", "stopped server")
LIFECYCLE_START = ("server started", "started server", "server process", "startup complete", "listening on",
                   "listening at", "ready to accept", "ready for start up", "booting worker", "is starting",
                   "starting as process", "starting gunicorn", "starting server", "starting temporary server",
                   "starting postgresql", "server is running", "application started", "service started")
LIFECYCLE_PHRASES = LIFECYCLE_RESTART + LIFECYCLE_STOP + LIFECYCLE_START
# plain-text lines: level words (case-insensitive whole words, in regex alternation order) and
# the request methods of an access line ("GET /path HTTP/1.1" 200)
TEXT_LEVELS = ("TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "WARNING", "ERROR", "FATAL", "CRITICAL", "PANIC")
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE")
# non-ASCII characters the plain-text regexes treat as ASCII punctuation (not \w, \d or \s, no
# case folding: punctuation, arrows, box drawing, dingbats, emoji), as inclusive code point
# ranges: the compiled reader reads plain text made of ASCII and these (test_ocsf_native_compose
# checks them against the regexes)
INERT_TEXT_RANGES = ((0x200D, 0x200D), (0x2010, 0x2027), (0x2030, 0x205E), (0x2190, 0x23FF), (0x2500, 0x2775),
                     (0x2794, 0x27BF), (0x2900, 0x2BFF), (0xFE0F, 0xFE0F), (0x1F300, 0x1FAFF))


def phrase_regex(phrases, ignore_case: bool = True) -> str:
    """A regex that finds any of ``phrases`` as whole words (the compiled readers' matcher)."""
    return ("(?i)" if ignore_case else "") + r"\b(" + "|".join(re.escape(p) for p in phrases) + r")\b"


# ----------------------------------------------------------------------------- OTLP spans
# span attribute -> FLAT_SPAN column; the first key present wins (current names first)
SPAN_ATTR_COLUMNS: dict[str, tuple[str, ...]] = {
    "http_method": ("http.request.method", "http.method"),
    "http_path": ("url.path", "http.target"),
    "http_route": ("http.route",),
    "http_status": ("http.response.status_code", "http.status_code"),
    # string columns from here on (str(value))
    "server_address": ("server.address", "net.peer.name"),
    "db_system": ("db.system", "db.system.name"),
    "db_statement": ("db.statement", "db.query.text"),
    "messaging_system": ("messaging.system",),
    "client_address": ("client.address", "http.client_ip"),
    "client_port": ("client.port",),
    "peer_address": ("network.peer.address", "net.peer.ip", "net.sock.peer.addr"),
    "peer_port": ("network.peer.port", "net.peer.port", "net.sock.peer.port"),
    "server_port": ("server.port", "net.host.port"),
    "peer_service": ("peer.service",),
    "user_agent": ("user_agent.original", "http.user_agent"),
    "http_version": ("network.protocol.version", "http.flavor"),
    "url_scheme": ("url.scheme", "http.scheme"),
    "db_name": ("db.name", "db.namespace"),
    "db_user": ("db.user",),
}
SPAN_STRING_COLUMNS = tuple(SPAN_ATTR_COLUMNS)[4:]
# resource attributes with a column of their own (the rest go to FLAT_SPAN.resource)
RESOURCE_COLUMNS = ("service.name", "host.name", "cloud.region")
MARKER_FIELDS = ("type", "label", "root_cause", "msg")


# ----------------------------------------------------------------------------- the C++ copy
HEADER = Path(__file__).with_name("native") / "tables.hpp"


def _lit(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _array(name: str, values, per_line: int = 6) -> list[str]:
    vals = [_lit(v) for v in values]
    rows = [", ".join(vals[i:i + per_line]) for i in range(0, len(vals), per_line)]
    return [f"inline constexpr std::string_view {name}[] = {{"] + [f"    {r}," for r in rows] + ["};"]


def render_header() -> str:
    """The text of native/tables.hpp for the tables above."""
    out = ["// Generated by `python -m obslab.ocsf._tables` from src/obslab/ocsf/_tables.py: do not edit.",
           "// tests/test_ocsf_tables.py fails when this file and the Python tables differ.",
           "#pragma once", "#include <cstdint>", "#include <string_view>", "", "namespace obslab::tables {", "",
           "struct KeyGroup {", "  int first, n;", "};", ""]
    keys: list[str] = []
    groups = []
    for name, group in LOG_KEY_GROUPS.items():
        groups.append(f"inline constexpr KeyGroup G_{name.upper()}{{{len(keys)}, {len(group)}}};")
        keys.extend(group)
    singles = []
    for k in LOG_SINGLE_KEYS:
        singles.append(f"inline constexpr int K_{k.upper()} = {len(keys)};")
        keys.append(k)
    out += ["// compose JSON log keys: groups (first present wins), then single keys"]
    out += _array("LOG_KEYS", keys) + groups + singles
    out += [f"inline constexpr int N_LOG_KEYS = {len(keys)};", ""]
    out += _array("LOG_KEEP_KEYS", LOG_KEEP_KEYS) + _array("LOG_SAME_AS_SERVICE", LOG_SAME_AS_SERVICE)
    out += _array("LOG_EVENTS", LOG_EVENTS)
    out += _array("SHORT_LEVEL_FROM", SHORT_LEVELS) + _array("SHORT_LEVEL_TO", SHORT_LEVELS.values())
    out += _array("ERROR_LEVELS", ERROR_LEVELS)
    out += ["// case-sensitive, word boundary before"] + _array("ERROR_PHRASES", ERROR_PHRASES, 3)
    out += ["// case-insensitive whole words (lower case here)"] + _array("LIFECYCLE_PHRASES", LIFECYCLE_PHRASES, 4)
    out += ["// plain-text lines (compose.TEXT_LEVEL, compose.ACCESS)"] + _array("TEXT_LEVELS", TEXT_LEVELS)
    out += _array("HTTP_METHODS", HTTP_METHODS)
    out += ["inline constexpr uint32_t INERT_TEXT_RANGES[][2] = {"]
    out += [f"    {{0x{lo:X}, 0x{hi:X}}}," for lo, hi in INERT_TEXT_RANGES] + ["};"]
    out += ["", "// OTLP span attribute -> FLAT_SPAN column (first key present wins); \"\" pads"]
    width = max(len(v) for v in SPAN_ATTR_COLUMNS.values())
    out += ["enum SpanAttr {"] + [f"  A_{c.upper()}," for c in SPAN_ATTR_COLUMNS] + ["  N_SPAN_ATTRS", "};"]
    out += [f"inline constexpr std::string_view SPAN_ATTR_KEYS[][{width}] = {{"]
    for c, group in SPAN_ATTR_COLUMNS.items():
        padded = list(group) + [""] * (width - len(group))
        out.append("    {" + ", ".join(_lit(k) for k in padded) + "},")
    out += ["};"]
    out += _array("SPAN_ATTR_NAMES", SPAN_ATTR_COLUMNS, 4)
    out += _array("RESOURCE_COLUMNS", RESOURCE_COLUMNS) + _array("MARKER_FIELDS", MARKER_FIELDS)
    out += ["", "}  // namespace obslab::tables", ""]
    return "\n".join(out)


if __name__ == "__main__":
    HEADER.write_text(render_header())
    print(f"wrote {HEADER}", file=sys.stderr)
