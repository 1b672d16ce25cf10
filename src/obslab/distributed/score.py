"""Batch scoring of a lake's events: per-event features, the encoder's embedding, a fitted
detector's score, on one machine or as a Ray Data job.

A scoring model folder is a :func:`obslab.train.save_model` folder (encoder and FeatureSpec)
plus ``detector.pkl``, the fitted :class:`obslab.detect.Detector` with its threshold (its faiss
index included: the index is built once, when the detector is fitted, and travels with it).

The model travels once: the driver loads the folder, ``ray.put`` s it, and the Ray Data
function UDF takes it from the object store the first time a worker process needs it, keeping
it in a module-level cache keyed by the object's id (function UDFs: actor pools hung on 1-CPU
nodes). Each lake object is one batch; output rows are sorted by (time_ms, uid), so the output
does not depend on the engine or the number of workers.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from obslab.lake import find_lake, lake_files, lake_schema

SCORE_SCHEMA = pa.schema([("uid", pa.string()), ("time_ms", pa.int64()), ("service", pa.string()),
                          ("signal", pa.string()), ("score", pa.float64()), ("alert", pa.bool_())])
_CACHE: dict = {}  # object id -> model, per worker process
LOADS: dict = {"count": 0}  # how many times this process deserialised a model


@dataclass
class ScoringModel:
    encoder: object  # obslab.train.Encoder
    detector: object  # fitted obslab.detect.Detector, threshold set
    signal: str = "traces"

    def score_events(self, events) -> np.ndarray:
        return self.detector.score(self.encoder.embed(events))


def _builder(signal: str):
    from obslab.features import log_events, trace_events

    builders = {"traces": trace_events, "logs": log_events}
    if signal not in builders:
        raise ValueError(f"per-event scoring exists for {sorted(builders)}, not {signal!r}")
    return builders[signal]


def fit_scoring_model(events, train_mask, signal: str = "traces", k: int = 10, quantile: float = 0.99,
                      seed: int = 0, **train_kwargs) -> ScoringModel:
    """Fit the FeatureSpec, the encoder and a k-NN detector on the training rows only."""
    from obslab.detect import KNNDetector
    from obslab.features import fit_features, transform
    from obslab.train import Encoder, train_encoder

    train = events[np.asarray(train_mask, dtype=bool)]
    spec = fit_features(train)
    x_num, x_cat = transform(spec, train)
    model, history = train_encoder(x_num, x_cat, spec, seed=seed, **train_kwargs)
    encoder = Encoder(model, spec, {"history": history, "training": {"seed": seed, **train_kwargs}})
    detector = KNNDetector(k=k).fit(encoder.embed(train))
    detector.set_threshold(quantile)
    return ScoringModel(encoder, detector, signal)


def save_scoring_model(path, sm: ScoringModel) -> Path:
    from obslab.train import save_model

    path = Path(path)
    save_model(path, sm.encoder.model, sm.encoder.spec, training={"signal": sm.signal})
    tmp = path / f".detector.pkl.{os.getpid()}"
    tmp.write_bytes(pickle.dumps(sm.detector))
    os.replace(tmp, path / "detector.pkl")
    return path


def load_scoring_model(path) -> ScoringModel:
    from obslab.train import Encoder

    path = Path(path)
    if not (path / "detector.pkl").exists():
        raise FileNotFoundError(f"{path} is not a scoring model folder (needs detector.pkl beside model.pt)")
    encoder = Encoder.load(path)
    detector = pickle.loads((path / "detector.pkl").read_bytes())  # our own file, written above
    return ScoringModel(encoder, detector, encoder.meta.get("training", {}).get("signal", "traces"))


def score_object(sm: ScoringModel, path: str, signal: str, schema: pa.Schema) -> pa.Table:
    """Scores of one lake object's events (uid, time, service, score, alert)."""
    import pyarrow.dataset as ds

    table = ds.dataset([path], schema=schema, format="parquet").to_table()
    events = _builder(signal)(table)
    scores = sm.score_events(events) if len(events) else np.zeros(0)
    return pa.Table.from_pydict({
        "uid": events["uid"].astype(str).tolist(), "time_ms": events["time_ms"].to_numpy(np.int64),
        "service": events["service"].astype(str).tolist(), "signal": [signal] * len(events),
        "score": np.asarray(scores, np.float64), "alert": np.asarray(scores) > sm.detector.threshold_,
    }, schema=SCORE_SCHEMA)


def _model(holder) -> ScoringModel:
    kind, value = holder
    if kind == "local":
        return value
    key = value.hex()
    if key not in _CACHE:
        import ray

        _CACHE.clear()  # one model per worker at a time
        _CACHE[key] = ray.get(value)
        LOADS["count"] += 1
    return _CACHE[key]


def score_batch(batch: pa.Table, holder, signal: str, schema: pa.Schema) -> pa.Table:
    """Ray Data function UDF: a batch of lake object paths -> their scores (+ who scored)."""
    from obslab.distributed._engine import pin_threads

    import resource
    import time

    pin_threads()
    cpu = time.process_time()
    sm = _model(holder)
    load = time.process_time() - cpu  # non-zero once per worker: the model's one trip
    out = [score_object(sm, p, signal, schema) for p in batch.column("path").to_pylist()]
    table = pa.concat_tables(out) if out else SCORE_SCHEMA.empty_table()
    n, rss = table.num_rows, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    # spread over the rows: the columns sum to the batch's CPU seconds
    cpu, load = (time.process_time() - cpu) / max(n, 1), load / max(n, 1)
    return (table.append_column("worker_pid", pa.array([os.getpid()] * n, pa.int64()))
            .append_column("model_loads", pa.array([LOADS["count"]] * n, pa.int64()))
            .append_column("worker_peak_rss", pa.array([rss] * n, pa.int64()))
            .append_column("worker_cpu_s", pa.array([cpu] * n, pa.float64()))
            .append_column("worker_load_cpu_s", pa.array([load] * n, pa.float64())))


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by([("time_ms", "ascending"), ("uid", "ascending")])


def score_lake(lake, model, out=None, signal: str = "traces", engine="local",
               address: str | None = None) -> dict:
    """Score every ``signal`` event of a lake with a scoring model (folder or ScoringModel).

    Writes ``out`` (parquet, rows by (time_ms, uid)) when given. Returns ``{"scores": table,
    "workers": {pid: model loads}, "peak_rss": {pid: bytes}, "cpu_s": worker CPU seconds (of which
    "load_cpu_s" receiving the model), "objects": n}``."""
    from obslab.distributed._engine import RayEngine, get_engine

    lake = find_lake(lake) or lake
    files = [str(f) for f in lake_files(lake, signal)]
    if not files:
        raise FileNotFoundError(f"{lake}: no {signal} objects")
    sm = model if isinstance(model, ScoringModel) else load_scoring_model(model)
    schema = lake_schema(lake, signal)
    eng = get_engine(engine, address)
    try:
        if isinstance(eng, RayEngine):
            import ray.data

            ds = ray.data.from_items([{"path": f} for f in files], override_num_blocks=len(files))
            ds = ds.map_batches(score_batch, batch_size=1, batch_format="pyarrow", num_cpus=1,
                                fn_kwargs={"holder": ("ref", eng.put(sm)), "signal": signal, "schema": schema})
            parts = [pa.Table.from_pandas(b, preserve_index=False) if not isinstance(b, pa.Table) else b
                     for b in ds.iter_batches(batch_size=None, batch_format="pyarrow")]
            table = pa.concat_tables(parts)
        else:
            table = score_batch(pa.table({"path": files}), ("local", sm), signal, schema)
    finally:
        if eng is not engine:
            eng.close()
    workers, peak = {}, {}
    for pid, loads, rss in zip(*(table.column(c).to_pylist() for c in ("worker_pid", "model_loads", "worker_peak_rss"))):
        workers[pid] = max(workers.get(pid, 0), loads)
        peak[pid] = max(peak.get(pid, 0), rss)
    import pyarrow.compute as pc

    cpu_s = float(pc.sum(table.column("worker_cpu_s")).as_py() or 0.0)
    load_cpu_s = float(pc.sum(table.column("worker_load_cpu_s")).as_py() or 0.0)
    scores = _sorted(table.drop_columns(["worker_pid", "model_loads", "worker_peak_rss", "worker_cpu_s",
                                         "worker_load_cpu_s"])
                     .cast(SCORE_SCHEMA))
    if out is not None:
        import pyarrow.parquet as pq

        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        pq.write_table(scores, tmp, compression="zstd")
        os.replace(tmp, out)
    return {"scores": scores, "workers": workers, "peak_rss": peak, "cpu_s": cpu_s, "load_cpu_s": load_cpu_s,
            "objects": len(files)}
