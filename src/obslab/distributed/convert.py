"""Raw telemetry -> an OCSF lake, one task per raw file, through :func:`obslab.ocsf.convert.convert_file`.

A raw folder holds ``logs.txt``, ``traces.jsonl``, ``metrics.json`` and/or any number of
``logs*.txt``, ``traces*.jsonl``, ``metrics*.json`` in sub-folders (a day or a host each). Each
file is converted where its task runs, then written into ``OUT/lake`` as writer
``writer_id(<path relative to the raw folder>)``; its labels go to
``OUT/labels.parquet/part-<writer>.parquet``. The path is also the events' source name, so uids
are distinct across files and the same on every rerun; a top-level file keeps its bare name, as
``obslab ocsf convert`` does. The manifest is written once, after every task.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from obslab.distributed._engine import get_engine
from obslab.lake import write_lake, write_manifest, writer_id

PATTERNS = {"logs": "logs*.txt", "traces": "traces*.jsonl", "metrics": "metrics*.json"}


def raw_inputs(raw_dir) -> list[tuple[str, str]]:
    """``(signal, path relative to raw_dir)`` of every raw file, sorted (the task order)."""
    raw_dir = Path(raw_dir)
    found = {(signal, p.relative_to(raw_dir).as_posix())
             for signal, pattern in PATTERNS.items() for p in raw_dir.rglob(pattern) if p.is_file()}
    return sorted(found, key=lambda item: (item[1], item[0]))


def _find_incidents(raw_dir: Path, out_dir: Path):
    for cand in (raw_dir / "incidents.json", raw_dir.parent / "incidents.json", out_dir / "incidents.json"):
        if cand.exists():
            return cand
    return None


def convert_one(ctx: dict, signal: str, rel: str) -> dict:
    """Convert one raw file into the lake (a task; safe to rerun or retry)."""
    from obslab.labels import LABELS
    from obslab.ocsf.convert import convert_file

    out, writer = Path(ctx["out"]), writer_id(rel)
    staging = out / ".staging"
    staging.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]  # a retried task never meets its dead attempt's files
    tmp, labels_tmp = staging / f"{writer}.{tag}.parquet", staging / f"{writer}.{tag}.labels.parquet"
    try:
        with pq.ParquetWriter(labels_tmp, LABELS, compression="zstd", compression_level=1) as lw:
            rep = convert_file(signal, Path(ctx["raw_dir"]) / rel, tmp, incidents=ctx["incidents"],
                               labels_writer=lw, validate_sample=ctx["validate_sample"], quiet=True, source=rel)
        if ctx.get("hook") is not None:  # fault injection (tests, bench): after work, before output
            ctx["hook"](rel)
        written = write_lake(pq.read_table(tmp), out / "lake", signal, writer)
        labels_dir = out / "labels.parquet"
        labels_dir.mkdir(exist_ok=True)
        os.replace(labels_tmp, labels_dir / f"part-{writer}.parquet")
    finally:
        for f in (tmp, labels_tmp, Path(f"{tmp}.report.json")):
            f.unlink(missing_ok=True)
    r = rep.to_dict()
    return {"source": rel, "signal": signal, "writer": writer, "records_in": r["records_in"],
            "records_out": r["records_out"], "rejected": r["rejected"],
            "invalid": r.get("notes", {}).get("invalid", 0), "objects": len(written)}


def convert_lake(raw_dir, out_dir, engine="local", address: str | None = None, incidents=None,
                 validate_sample: int | None = 200, hook=None) -> dict:
    """Convert every raw file of ``raw_dir`` into ``out_dir/lake`` (+ ``out_dir/labels.parquet/``).

    ``engine``: "local", "ray" (``address`` of a cluster, or a local one) or an Engine. Returns
    ``{"files": [per-file counts], "manifest": manifest}``. Rerunning over the same output
    replaces each file's objects: no row is duplicated or lost."""
    from obslab.truth import read_incidents

    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    inputs = raw_inputs(raw_dir)
    if not inputs:
        raise FileNotFoundError(f"{raw_dir}: no raw files ({', '.join(PATTERNS.values())})")
    if (out_dir / "labels.parquet").is_file() or any(out_dir.glob("ocsf_*.parquet")):
        raise FileExistsError(f"{out_dir} holds a single-file dataset; write the lake to another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    if incidents is None:
        incidents = _find_incidents(raw_dir, out_dir)
    if isinstance(incidents, (str, os.PathLike)):
        incidents = read_incidents(incidents)
    ctx = {"raw_dir": os.fspath(raw_dir.resolve()), "out": os.fspath(out_dir.resolve()), "incidents": incidents,
           "validate_sample": validate_sample, "hook": hook}
    eng = get_engine(engine, address)
    try:
        files = eng.map(convert_one, inputs, shared=ctx)
    finally:
        if eng is not engine:
            eng.close()
    shutil.rmtree(out_dir / ".staging", ignore_errors=True)
    sources = {f["writer"]: {k: f[k] for k in ("source", "signal", "records_in", "records_out", "rejected")}
               for f in files}
    lake = out_dir / "lake"
    if (lake / "manifest.json").exists():  # writers of earlier runs into the same lake stay listed
        from obslab.lake import read_manifest

        sources = {**read_manifest(lake).get("writers", {}), **sources}
    manifest = write_manifest(lake, extra={"writers": dict(sorted(sources.items()))})
    return {"files": files, "manifest": manifest}
