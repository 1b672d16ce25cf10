"""The optional compiled block parsers (``obslab.ocsf._native``, simdjson) and their glue.

The extension is built by ``pip install`` when a C++ compiler and simdjson are present
(Debian: ``g++ libsimdjson-dev``); without it the Python readers (the reference) read
everything, and :func:`tell_if_unavailable` says so once. Both produce the same FLAT columns
(tests/test_ocsf_fastpath.py and test_ocsf_native_*.py compare them). The key lists, level
words and phrases both use are declared once, in :mod:`obslab.ocsf._tables`.
"""

from __future__ import annotations

import os
import sys

import pyarrow as pa

from obslab.ocsf.report import Unsupported

try:  # the compiled module is optional; OBSLAB_NATIVE=0 switches it off (tests compare paths)
    from obslab.ocsf import _native
except ImportError:  # pragma: no cover - depends on the build machine
    _native = None

KINDS = {"str": pa.string(), "i64": pa.int64(), "f64": pa.float64()}


def available() -> bool:
    return _native is not None and os.environ.get("OBSLAB_NATIVE", "1") != "0"


_told = False


def tell_if_unavailable() -> None:
    """Say once per process that the compiled parsers are absent (the appendix zip, other platforms)."""
    global _told
    if _native is None and not _told:
        _told = True
        print("note: obslab.ocsf._native is not built here (it needs g++ and simdjson at install): converting "
              "with the Python readers, same output, slower", file=sys.stderr)


MAP = pa.map_(pa.string(), pa.string())


def _array(kind, n, validity, offsets, *data) -> pa.Array:
    valid = None if validity is None else pa.py_buffer(validity)
    if kind == "map":  # (keys, values) column tuples: the entries of every row
        keys, values = (_array(*col) for col in data)
        entries = pa.StructArray.from_arrays([keys, values], fields=[MAP.key_field, MAP.item_field])
        return pa.Array.from_buffers(MAP, n, [valid, pa.py_buffer(offsets)], children=[entries])
    bufs = [valid] + ([] if offsets is None else [pa.py_buffer(offsets)]) + [pa.py_buffer(data[0])]
    return pa.Array.from_buffers(KINDS[kind], n, bufs)


def to_arrays(columns: dict) -> dict[str, pa.Array]:
    """Column buffers from the extension -> Arrow arrays, without copying."""
    return {name: _array(*col) for name, col in columns.items()}


def call(parser: str, *args) -> dict[str, pa.Array]:
    """Run one of the extension's block parsers; its refusal becomes :class:`Unsupported`."""
    try:
        return to_arrays(getattr(_native, parser)(*args))
    except ValueError as exc:
        raise Unsupported(f"native: {exc}") from None
