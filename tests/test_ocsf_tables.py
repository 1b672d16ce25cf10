"""The compiled readers' tables are the Python ones: native/tables.hpp is generated from
obslab.ocsf._tables, and the C++ sources hold no other copy of a key list or phrase."""

from __future__ import annotations

import re

from obslab.ocsf import _tables as T
from obslab.ocsf import compose, otlp

NATIVE = T.HEADER.parent


def test_header_is_generated_from_the_python_tables():
    assert T.HEADER.read_text() == T.render_header(), "run `python -m obslab.ocsf._tables` after editing _tables.py"


def test_the_header_holds_every_key_and_phrase_once():
    text = T.HEADER.read_text()
    literals = re.findall(r'"((?:[^"\\]|\\.)*)"', text)
    for group in T.LOG_KEY_GROUPS.values():
        for key in group:
            assert key in literals, key
    for phrase in T.LIFECYCLE_PHRASES + T.ERROR_PHRASES:
        assert phrase in literals, phrase
    for keys in T.SPAN_ATTR_COLUMNS.values():
        for key in keys:
            assert key in literals, key


def test_cpp_sources_use_the_header_not_their_own_copies():
    for name in ("compose.cpp", "otlp.cpp"):
        src = (NATIVE / name).read_text()
        assert '#include "tables.hpp"' in src, name
        code = re.sub(r"//[^\n]*", "", src)  # comments may name keys
        for key in ("otelTraceID", "response_time_ms", "startup complete", "http.request.method", "db.query.text",
                    "root_cause"):
            assert f'"{key}"' not in code, f"{name} has its own copy of {key!r}"


def test_python_readers_use_the_same_tables():
    assert compose.TIME_KEYS == T.LOG_KEY_GROUPS["time"]
    assert compose.LIFECYCLE.pattern == T.phrase_regex(T.LIFECYCLE_PHRASES)
    assert otlp.ATTR_COLUMNS is T.SPAN_ATTR_COLUMNS
    assert compose.LIFECYCLE.search("Server started on :8080") and not compose.LIFECYCLE.search("checkpoint starting")
