"""Raw files -> OCSF parquet (+ labels), streaming batch by batch with loss accounting.

``convert_file`` runs one reader into the mapper and a ``ParquetWriter`` (memory is bounded by
the batch size), validates a seeded random sample of the written events, prints the summary on
stderr and writes ``<out>.report.json``. ``convert_dataset`` does the three signals of a raw
folder and ``labels.parquet``.
"""

from __future__ import annotations

import gc
import os
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from obslab.ocsf.compose import read_compose_logs
from obslab.ocsf.mapping import logs_to_ocsf, mark_inferred_times, metrics_to_ocsf, spans_to_ocsf
from obslab.ocsf.otlp import read_otlp
from obslab.ocsf.prometheus import read_prometheus
from obslab.ocsf.report import ConversionReport
from obslab.ocsf.schemas import SIGNAL_SCHEMAS, parquet_leaves

RAW_FILES = {"logs": "logs.txt", "traces": "traces.jsonl", "metrics": "metrics.json"}
# zstd-1 is as small as the defaults but faster; dictionary pages and per-column statistics
# cost ~25% of the write and gain nothing here (zstd already packs repeats; readers prune on time)
# a write batch of 64k values (default 1k) runs each leaf's level and encoder loop 64x less
# often: ~8% of the write, the same bytes
WRITER_OPTIONS = dict(compression="zstd", compression_level=1, use_dictionary=False, write_statistics=["time"],
                      write_batch_size=65536)
# rows per Parquet row group: readers' batches (~20k spans, ~30k lines) are gathered to this
# many before a write, since each row group costs per leaf (a page, a zstd context, levels):
# ~12% of the write alone at 20k rows, ~2% of a whole conversion (the held tables cost the
# mapper fresh memory). Memory: at most this many OCSF rows held (~50 MB more for spans).
ROW_GROUP_ROWS = 100_000
# leaf names of high-entropy ids: length-prefixed in one block, zstd only sees the hex digits
ID_LEAVES = {"uid", "parent_uid", "correlation_uid"}
# other string leaves mostly holding ids (in logs, the observables are chiefly trace ids)
ID_PATHS = {"observables.list.element.value"}


def column_encodings(schema: pa.Schema) -> dict:
    """Parquet encodings per leaf: delta for integers and times (constant ids and near-sorted
    times pack to almost nothing, ~3x faster than plain + zstd) and delta lengths for ids (the
    uid's shared source prefix also delta-packs); the rest stays plain + zstd. Standard
    Parquet v2 encodings: pyarrow, DuckDB, Spark and polars read them."""
    out = {}
    for path, type_ in parquet_leaves(schema):
        leaf = path.rsplit(".", 1)[-1]
        if pa.types.is_integer(type_) or pa.types.is_timestamp(type_):
            out[path] = "DELTA_BINARY_PACKED"
        elif pa.types.is_string(type_) and (leaf in ID_LEAVES or path in ID_PATHS):
            out[path] = "DELTA_BYTE_ARRAY" if path == "metadata.uid" else "DELTA_LENGTH_BYTE_ARRAY"
    return out


def writer_options(schema: pa.Schema) -> dict:
    """``pq.ParquetWriter`` keyword arguments for an OCSF table of ``schema``."""
    return dict(WRITER_OPTIONS, column_encoding=column_encodings(schema))


def iter_ocsf(signal: str, src: str | os.PathLike, report: ConversionReport, source: str | None = None,
              raw_data: bool = False):
    """Yield ``(ocsf_table, flat_batch)`` per batch of ``src`` (a raw file of ``signal``);
    ``raw_data``: keep each log line's text in ``raw_data``."""
    source = source or Path(src).name
    offset = 0
    if signal == "logs":
        for batch, inferred in read_compose_logs(src, report):
            table = mark_inferred_times(logs_to_ocsf(batch, source, offset, raw_data=raw_data), inferred)
            offset += batch.num_rows
            yield table, batch
    elif signal == "traces":
        for batch in read_otlp(src, report):
            yield spans_to_ocsf(batch, source, offset), batch
            offset += batch.num_rows
    elif signal == "metrics":
        for batch in read_prometheus(src, report):
            yield metrics_to_ocsf(batch, source, offset), batch
            offset += batch.num_rows
    else:
        raise ValueError(f"unknown signal {signal!r}; expected logs, traces or metrics")


def convert_file(signal: str, src: str | os.PathLike, out: str | os.PathLike, *, incidents=None,
                 labels_writer=None, validate_sample: int | None = 200, seed: int = 0,
                 quiet: bool = False, source: str | None = None, raw_data: bool = False) -> ConversionReport:
    """Convert one raw file to ``out`` (parquet, explicit schema); returns the report.

    ``labels_writer``: an open ``pq.ParquetWriter`` of :data:`obslab.labels.LABELS` to append this
    file's labels to (built from ``incidents`` and span markers). ``validate_sample``: events
    checked against the official schema (None: all of them; 0: none). ``source``: the name
    uids and ``metadata.log_name`` carry (default: the file name; a lake job passes the path
    relative to the raw folder, so two ``logs.txt`` of different days get distinct uids).
    ``raw_data``: log lines keep their text in ``raw_data`` (off by default: it doubles the file).
    """
    from obslab.ocsf import native
    from obslab.ocsf.validate import validate_table

    if not quiet:
        native.tell_if_unavailable()
    if Path(out).is_dir():  # a folder: the conventional file name inside it
        out = Path(out) / f"ocsf_{signal}.parquet"
    report = ConversionReport(source=os.fspath(src), signal=signal)
    if not Path(src).exists():
        raise FileNotFoundError(f"{src}: no such {signal} file")
    schema = SIGNAL_SCHEMAS[signal]
    rng = random.Random(seed)
    samples = []
    tmp = Path(f"{os.fspath(out)}.partial")
    writer = pq.ParquetWriter(tmp, schema, **writer_options(schema))
    ok = False
    pending, pending_rows = [], 0
    # the loop makes no reference cycles worth collecting, yet its Python allocations (arrow
    # wrappers, dicts) trigger full-heap collection passes: ~1-2% of the CPU of a 1M conversion
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for table, flat in iter_ocsf(signal, src, report, source, raw_data=raw_data):
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= ROW_GROUP_ROWS:
                writer.write_table(pa.concat_tables(pending))  # (chunked columns: no copy)
                pending, pending_rows = [], 0
            if validate_sample is None:
                samples.append(table)
            elif validate_sample > 0 and table.num_rows:
                k = min(validate_sample, table.num_rows)  # per batch; the final sample is drawn below
                idx = sorted(rng.sample(range(table.num_rows), k))
                samples.append(table.take(pa.array(idx, pa.int64())))
            if labels_writer is not None:
                from obslab.labels import label_events

                labels_writer.write_table(label_events(table, signal, incidents, flat if signal == "traces" else None))
        if pending:
            writer.write_table(pa.concat_tables(pending))
        ok = True
    finally:
        if gc_was_on:
            gc.enable()
        writer.close()
        if not ok:  # never leave a half-written file behind
            tmp.unlink(missing_ok=True)
    os.replace(tmp, out)
    report.check()
    if samples:
        sample = pa.concat_tables(samples)
        n = None if validate_sample is None else min(validate_sample, sample.num_rows)
        result = validate_table(sample, sample=n, seed=seed)
        report.notes["validated"] = result.checked
        report.notes["invalid"] = result.invalid
        if not result.ok:
            report.problem(result.summary())
        if not quiet:
            print(f"{Path(out).name}: {result.summary()}", file=sys.stderr)
    report.write_sidecar(out)
    if not quiet:
        report.print_summary()
    return report


def convert_dataset(raw_dir: str | os.PathLike, out_dir: str | os.PathLike, incidents=None,
                    validate_sample: int | None = 200, quiet: bool = False) -> dict:
    """Convert ``raw_dir``/{logs.txt, traces.jsonl, metrics.json} into ``out_dir``.

    Writes ``ocsf_<signal>.parquet`` (+ ``.report.json``) for each raw file present and
    ``labels.parquet``. ``incidents``: a list of :class:`obslab.truth.Incident`, a path to
    incidents.json, or None to use ``raw_dir``/../incidents.json or ``raw_dir``/incidents.json
    when present. Returns ``{signal: report dict, "labels": counts}``.
    """
    from obslab.labels import LABELS
    from obslab.truth import read_incidents

    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if incidents is None:
        for cand in (raw_dir / "incidents.json", raw_dir.parent / "incidents.json", out_dir / "incidents.json"):
            if cand.exists():
                incidents = cand
                break
    if isinstance(incidents, (str, os.PathLike)):
        incidents = read_incidents(incidents)
    result: dict = {}
    labels_path = out_dir / "labels.parquet"
    with pq.ParquetWriter(labels_path, LABELS, compression="zstd", compression_level=1) as lw:
        for signal, name in RAW_FILES.items():
            src = raw_dir / name
            if not src.exists():
                continue
            rep = convert_file(signal, src, out_dir / f"ocsf_{signal}.parquet", incidents=incidents,
                               labels_writer=lw, validate_sample=validate_sample, quiet=quiet)
            result[signal] = rep.to_dict()
    if not result:
        raise FileNotFoundError(f"{raw_dir}: none of {sorted(RAW_FILES.values())} found")
    labels = pq.read_table(labels_path, columns=["is_anomaly", "phase"])
    result["labels"] = {
        "events": labels.num_rows,
        "anomalous": int(pa.compute.sum(labels.column("is_anomaly")).as_py() or 0),
        "incidents": len(incidents or []),
    }
    return result
