"""OCSF parquet as a lake: one class per object, partitioned the way a security lake expects.

Layout (hive-style folders; every key is a folder, so Athena, DuckDB, Spark and
``pyarrow.dataset`` prune on it)::

    LAKE/manifest.json
    LAKE/class_uid=<n>/source=<signal>/region=<region>/date=YYYY-MM-DD/part-<writer>-<nnnnn>.parquet

It mirrors Amazon Security Lake's scheme for custom sources
(``ext/<source>/region=<region>/accountId=<account>/eventDay=YYYYMMDD/``): one OCSF class per
Parquet object, partitions by source, region and day. We put the class first because a reader
of OCSF asks for a class (all HTTP Activity), and use ``date=YYYY-MM-DD`` (UTC day of ``time``);
there is no account, so the level is left out. ``source`` is the signal the events came from
(``logs``, ``traces``, ``metrics``): it fixes the ``unmapped`` struct, so one source's objects
share a schema. ``region`` is ``unmapped.region`` (``unknown`` when absent).

An object holds the columns of its class only (:data:`obslab.ocsf.schemas.CLASS_SCHEMAS`);
:func:`read_ocsf` puts the signal's full schema back (absent columns are null) and returns rows
in a canonical order, ``(time, metadata.uid)``, from a lake or a single file alike, so both
forms give the same table.

``<writer>`` names what wrote the object (a hash of the raw file or generator chunk). Writing
is idempotent: a writer's objects are written beside their final names, renamed in, and its
older objects that the new write did not replace are removed, so a rerun neither duplicates
nor loses rows, and writers sharing a partition leave each other's objects alone. File names
and row order depend only on the input. ``manifest.json`` (rebuilt from the objects' footers
by :func:`write_manifest`) counts rows per partition and per object.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

__all__ = ["MANIFEST", "PARTITION_KEYS", "writer_id", "write_lake", "write_manifest", "read_manifest",
           "is_lake", "find_lake", "lake_files", "lake_schema", "read_lake", "read_ocsf", "canonical_order", "day_bounds_ms"]

MANIFEST = "manifest.json"
PARTITION_KEYS = ("class_uid", "source", "region", "date")
ROWS_PER_FILE = 1_000_000
DAY_MS = 86_400_000
# footer metadata of each object, so the manifest is built from footers alone
_META_SERVICES = b"obslab.services"
_META_TIME = b"obslab.time_range"


def writer_id(name: str) -> str:
    """The short, stable name of a writer (a raw file's path relative to its folder, a chunk)."""
    return hashlib.sha256(name.encode()).hexdigest()[:12]


def _day(ms: int) -> str:
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%d")


def day_bounds_ms(date: str) -> tuple[int, int]:
    """[start, end) of a ``YYYY-MM-DD`` UTC day in epoch ms."""
    d = _dt.datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=_dt.timezone.utc)
    start = int(d.timestamp() * 1000)
    return start, start + DAY_MS


def canonical_order(table: pa.Table) -> pa.Table:
    """Rows sorted by (time, metadata.uid): the order every lake read returns."""
    if table.num_rows < 2:
        return table
    keys = pa.table({"t": table.column("time"), "u": pc.struct_field(table.column("metadata"), "uid")})
    return table.take(pc.sort_indices(keys, sort_keys=[("t", "ascending"), ("u", "ascending")]))


def _partition_columns(table: pa.Table) -> pa.Table:
    region = None
    if "unmapped" in table.column_names and "region" in {f.name for f in table.schema.field("unmapped").type}:
        region = pc.struct_field(table.column("unmapped"), "region")
    n = table.num_rows
    region = pc.fill_null(region, "unknown") if region is not None else pa.repeat(pa.scalar("unknown"), n)
    date = pc.strftime(pc.cast(table.column("time"), pa.timestamp("ms", "UTC")), format="%Y-%m-%d")
    return pa.table({"class_uid": table.column("class_uid"), "region": region, "date": date})


def _class_columns(signal: str, class_uid: int, names: list[str]) -> list[str]:
    from obslab.ocsf.schemas import CLASS_SCHEMAS

    schema = CLASS_SCHEMAS.get(signal, {}).get(class_uid)
    if schema is None:  # a class we have no schema for keeps every column
        return names
    return [n for n in names if n in set(schema.names)]


def _safe(value: str) -> str:
    # a partition value is a folder name: keep it to a conservative alphabet
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(value)) or "unknown"


def _writer_options(schema: pa.Schema) -> dict:
    try:
        from obslab.ocsf.convert import writer_options

        return writer_options(schema)
    except Exception:  # encodings are an optimisation; plain zstd is always valid
        return {"compression": "zstd"}


def _file_metadata(part: pa.Table) -> dict:
    meta = dict(part.schema.metadata or {})
    if "unmapped" in part.column_names and "service" in {f.name for f in part.schema.field("unmapped").type}:
        svc = pc.unique(pc.struct_field(part.column("unmapped"), "service")).drop_null().to_pylist()
        meta[_META_SERVICES] = json.dumps(sorted(svc)).encode()
    mm = pc.min_max(part.column("time")).as_py()
    meta[_META_TIME] = json.dumps([mm["min"], mm["max"]]).encode()
    return meta


def _existing(root: Path, writer: str, signal: str) -> set[Path]:
    return set(root.glob(f"class_uid=*/source={signal}/*/*/part-{writer}-*.parquet"))


def write_lake(table: pa.Table, root, signal: str, writer: str,
               rows_per_file: int = ROWS_PER_FILE) -> list[dict]:
    """Write ``table`` (OCSF events of one signal) into the lake at ``root`` as writer ``writer``.

    Replaces everything this writer wrote before (see the module notes). Returns one dict per
    object: path (relative to root), partition keys and rows. Does not touch the manifest: call
    :func:`write_manifest` once all writers are done (writers may run in parallel)."""
    root = Path(root)
    before = _existing(root, writer, signal)
    written: list[dict] = []
    if table.num_rows:
        table = canonical_order(table)  # deterministic rows whatever the input order
        keys = _partition_columns(table)
        groups = keys.group_by(["class_uid", "region", "date"]).aggregate([]).sort_by(
            [("class_uid", "ascending"), ("region", "ascending"), ("date", "ascending")])
        for cls, region, date in zip(*(groups.column(k).to_pylist() for k in ("class_uid", "region", "date"))):
            mask = pc.and_(pc.and_(pc.equal(keys.column("class_uid"), cls), pc.equal(keys.column("region"), region)),
                           pc.equal(keys.column("date"), date))
            part = table.filter(mask).select(_class_columns(signal, cls, table.column_names))
            folder = root / f"class_uid={cls}" / f"source={_safe(signal)}" / f"region={_safe(region)}" / f"date={date}"
            folder.mkdir(parents=True, exist_ok=True)
            for k, start in enumerate(range(0, part.num_rows, rows_per_file)):
                piece = part.slice(start, rows_per_file)
                piece = piece.replace_schema_metadata(_file_metadata(piece))
                path = folder / f"part-{writer}-{k:05d}.parquet"
                tmp = folder / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
                pq.write_table(piece, tmp, **_writer_options(piece.schema))
                os.replace(tmp, path)  # atomic: a reader sees the old object or the new one
                written.append({"path": path.relative_to(root).as_posix(), "class_uid": cls, "source": signal,
                                "region": region, "date": date, "rows": piece.num_rows})
    for stale in before - {root / w["path"] for w in written}:
        stale.unlink(missing_ok=True)
    return written


def lake_files(root, signal: str | None = None, class_uid: int | None = None,
               date: str | None = None) -> list[Path]:
    """The lake's objects (sorted), optionally only one source, class or day."""
    pattern = "/".join([f"class_uid={'*' if class_uid is None else class_uid}",
                        f"source={signal or '*'}", "region=*", f"date={date or '*'}", "part-*.parquet"])
    return sorted(Path(root).glob(pattern))


def _keys_of(path: Path) -> dict:
    return dict(p.split("=", 1) for p in path.parent.parts[-4:])


def write_manifest(root, extra: dict | None = None) -> dict:
    """Rebuild ``manifest.json`` from the objects' footers: rows per partition and per object,
    time range and services per partition (what a job plans its tasks with)."""
    root = Path(root)
    partitions: dict[str, dict] = {}
    for path in lake_files(root):
        md = pq.read_metadata(path)
        kv = md.metadata or {}
        keys = _keys_of(path)
        pkey = path.parent.relative_to(root).as_posix()
        p = partitions.setdefault(pkey, {**keys, "class_uid": int(keys["class_uid"]), "rows": 0,
                                         "time_min": None, "time_max": None, "services": [], "files": {}})
        p["rows"] += md.num_rows
        p["files"][path.name] = md.num_rows
        if _META_TIME in kv:
            lo, hi = json.loads(kv[_META_TIME])
            p["time_min"] = lo if p["time_min"] is None else min(p["time_min"], lo)
            p["time_max"] = hi if p["time_max"] is None else max(p["time_max"], hi)
        if _META_SERVICES in kv:
            p["services"] = sorted(set(p["services"]) | set(json.loads(kv[_META_SERVICES])))
    by_source: dict[str, int] = {}
    for p in partitions.values():
        by_source[p["source"]] = by_source.get(p["source"], 0) + p["rows"]
    manifest = {"layout": "class_uid=<n>/source=<signal>/region=<region>/date=YYYY-MM-DD",
                "ocsf_version": "1.8.0", "rows": sum(by_source.values()), "rows_by_source": dict(sorted(by_source.items())),
                "partitions": dict(sorted(partitions.items())), **(extra or {})}
    tmp = root / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    root.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, root / MANIFEST)
    return manifest


def read_manifest(root) -> dict:
    path = Path(root) / MANIFEST
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {root} an obslab lake?")
    return json.loads(path.read_text())


def is_lake(path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / MANIFEST).exists() or any(path.glob("class_uid=*")))


def find_lake(root) -> Path | None:
    """The lake of a dataset folder (``DIR/lake``) or the folder itself when it is one."""
    root = Path(root)
    for cand in (root, root / "lake"):
        if is_lake(cand):
            return cand
    return None


def _signal_schema(signal: str, files: list[Path]) -> pa.Schema:
    from obslab.ocsf.schemas import SIGNAL_SCHEMAS

    full = SIGNAL_SCHEMAS.get(signal)
    found = [pq.read_schema(f) for f in files]
    if full is not None and all(all(full.field(n).type == s.field(n).type for n in s.names if n in full.names)
                                and set(s.names) <= set(full.names) for s in found):
        return full
    # objects written by another version of the schema: unify what they hold
    return pa.unify_schemas(found, promote_options="permissive")


def lake_schema(root, signal: str) -> pa.Schema:
    """The schema :func:`read_lake` returns for one source of a lake."""
    return _signal_schema(signal, lake_files(root, signal))


def _sorted_projection(dataset: ds.Dataset, columns, filter=None) -> pa.Table:
    """Read ``columns`` (names or {name: expression}) in canonical order."""
    if columns is None:
        columns = {n: ds.field(n) for n in dataset.schema.names}
    elif not isinstance(columns, dict):
        columns = {n: ds.field(n) for n in columns}
    keyed = {**columns, "__t": ds.field("time"), "__u": ds.field("metadata", "uid")}
    table = dataset.to_table(columns=keyed, filter=filter)
    idx = pc.sort_indices(table.select(["__t", "__u"]), sort_keys=[("__t", "ascending"), ("__u", "ascending")])
    return table.take(idx).drop_columns(["__t", "__u"])


def read_lake(root, signal: str, columns=None, dates: list[str] | None = None, filter=None) -> pa.Table:
    """One source's events from a lake (all classes, optionally some days), canonical order."""
    files = [f for f in lake_files(root, signal) if dates is None or _keys_of(f)["date"] in set(dates)]
    if not files:
        from obslab.ocsf.schemas import SIGNAL_SCHEMAS

        if signal not in SIGNAL_SCHEMAS:
            raise ValueError(f"unknown signal {signal!r}; expected one of {sorted(SIGNAL_SCHEMAS)}")
        return _select_empty(SIGNAL_SCHEMAS[signal], columns)
    dataset = ds.dataset([str(f) for f in files], schema=_signal_schema(signal, files), format="parquet")
    return _sorted_projection(dataset, columns, filter)


def _select_empty(schema: pa.Schema, columns) -> pa.Table:
    empty = schema.empty_table()
    if columns is None:
        return empty
    ds_ = ds.dataset(empty)
    return ds_.to_table(columns=columns if isinstance(columns, dict) else list(columns))


def read_ocsf(path, signal: str | None = None, columns=None) -> pa.Table:
    """OCSF events from a single parquet file, a folder of parquet files, or a lake (then
    ``signal`` picks the source): the same table, rows in (time, metadata.uid) order."""
    path = Path(path)
    lake = path if is_lake(path) else None
    if lake is not None:
        if signal is None:
            sources = sorted({_keys_of(f)["source"] for f in lake_files(lake)})
            if len(sources) != 1:
                raise ValueError(f"{path} is a lake of sources {sources}: say which signal to read")
            signal = sources[0]
        return read_lake(lake, signal, columns)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such OCSF parquet file or lake")
    return _sorted_projection(ds.dataset(path, format="parquet", partitioning=None), columns)
