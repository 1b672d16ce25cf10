"""Small vectorised builders for Arrow string columns (ids, picks from a pool)."""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["hex_ids", "pick", "table_from", "tile_strings"]

# 256 two-character lower-case hex codes as uint16 so a (n, k) byte array maps in one take
_HEX = np.frombuffer("".join(f"{i:02x}" for i in range(256)).encode(), dtype=np.uint16)


def hex_ids(rng: np.random.Generator, n: int, n_bytes: int) -> pa.Array:
    """n random lower-case hex ids of 2 * n_bytes characters (trace ids: 16, span ids: 8)."""
    raw = rng.integers(0, 256, (n, n_bytes), dtype=np.uint8)
    raw[:, 0] |= 1  # never all zeros (an invalid id in OTLP)
    data = _HEX[raw]
    width = 2 * n_bytes
    offsets = np.arange(0, width * n + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(
        pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
    )


def pick(pool, idx: np.ndarray, type_=pa.string()) -> pa.Array:
    """pool[idx] as an Arrow array (None entries in the pool give nulls)."""
    return pc.take(pa.array(list(pool), type=type_), pa.array(np.asarray(idx, dtype=np.int32)))


def tile_strings(block: list[str], reps: int) -> pa.Array:
    """``block`` repeated ``reps`` times as one string array, built by copying bytes (no gather).

    Small results are cached: every chunk of a run tiles the same blocks (arrays are immutable).
    """
    if len(block) * reps <= 1 << 18:
        return _tile_cached(tuple(block), reps)
    return _tile(block, reps)


@functools.lru_cache(maxsize=32)
def _tile_cached(block: tuple, reps: int) -> pa.Array:
    return _tile(block, reps)


def _tile(block, reps: int) -> pa.Array:
    enc = [b.encode() for b in block]
    data = np.frombuffer(b"".join(enc), dtype=np.uint8)
    lens = np.array([len(b) for b in enc], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
    total = int(lens.sum())
    if total * reps >= 2**31:
        raise ValueError("chunk too large for a string array: use fewer days per chunk")
    offsets = (starts[None, :] + total * np.arange(reps)[:, None]).ravel()
    offsets = np.append(offsets, total * reps).astype(np.int32)
    return pa.Array.from_buffers(pa.string(), len(block) * reps,
                                 [None, pa.py_buffer(offsets), pa.py_buffer(np.tile(data, reps))])


def table_from(schema: pa.Schema, n: int, cols: dict) -> pa.Table:
    """A table of ``schema`` with the given columns; the others are null."""
    arrays = []
    for f in schema:
        a = cols.get(f.name)
        if a is None:
            arrays.append(pa.nulls(n, f.type))
            continue
        if not isinstance(a, (pa.Array, pa.ChunkedArray)):
            a = pa.array(a, type=f.type)
        elif a.type != f.type:
            a = a.cast(f.type)
        arrays.append(a)
    return pa.Table.from_arrays(arrays, schema=schema)
