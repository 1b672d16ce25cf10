"""The run: plan once, then generate, map and write chunks of days (a week, or fewer at fine
steps) in worker processes, one parquet partition per day."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from obslab.labels import LABELS
from obslab.ocsf.flat import FLAT_METRIC
from obslab.synth._arrow_util import pick, table_from, tile_strings
from obslab.synth.config import SynthConfig
from obslab.synth.incidents import SYMPTOM_METRIC, Plan, plan_run, verify
from obslab.synth.logs import generate_logs
from obslab.synth.metrics import METRICS, PHASE_NAMES, ChunkState, generate_chunk_metrics
from obslab.synth.server_metrics import write_server_metrics
from obslab.synth.topology import Topology, build_topology
from obslab.synth.traces import generate_traces
from obslab.synth.writers import RawWriter, day_name, write_partition
from obslab.truth import ms_to_iso, write_incidents

__all__ = ["generate", "RunResult", "metrics_table", "label_table", "LABEL_SCHEMA", "FORMATS"]

FORMATS = ("ocsf", "raw", "both", "lake")  # lake: OCSF in DIR/lake (obslab.lake layout)
# Same columns as the lab's labels (obslab.labels), but computed per host: a partial outage
# marks only the hosts it hit, where labelling by (time, service) would mark them all.
LABEL_SCHEMA = LABELS


@dataclass
class RunResult:
    out: Path
    counts: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    incidents: int = 0


def metrics_table(topo: Topology, st: ChunkState) -> tuple[pa.Table, np.ndarray, np.ndarray]:
    """Long FLAT_METRIC rows ordered (step, metric, host), with each row's step and host."""
    T, H = st.phase.shape
    names = list(METRICS)
    M = len(names)
    n = M * T * H
    t_idx = np.repeat(np.arange(T), M * H)
    h_idx = np.tile(np.arange(H), M * T)
    # one block of (metric, host) rows per step: string columns are that block, tiled
    blk_m = np.repeat(np.arange(M), H)
    blk_h = np.tile(np.arange(H), M)
    svc = [topo.services[topo.host_service[h]] for h in blk_h]
    reg = [topo.regions[topo.host_region[h]] for h in blk_h]
    host = [topo.hosts[h] for h in blk_h]
    # the series' label set: a map sorted by key, as the Prometheus reader writes it
    series = pa.array([[("host", h), ("region", r), ("service", s)] for s, h, r in zip(svc, host, reg)],
                      FLAT_METRIC.field("labels").type)
    cols = {
        "time_ms": np.repeat(st.t_ms, M * H),
        "metric": tile_strings([names[m] for m in blk_m], T),
        "value": np.stack([st.values[k] for k in names], axis=1).ravel(),
        "service": tile_strings(svc, T),
        "host": tile_strings(host, T),
        "region": tile_strings(reg, T),
        "unit": tile_strings([METRICS[names[m]] for m in blk_m], T),
        "labels": series.take(pa.array(np.tile(np.arange(len(series)), T))),
    }
    return table_from(FLAT_METRIC, n, cols), t_idx, h_idx


def label_table(signal: str, uid: pa.Array, time_ms, service, st: ChunkState,
                t_idx: np.ndarray, h_idx: np.ndarray) -> pa.Table:
    """Ground truth per event: the incident (if any) covering the event's host at its step."""
    fi = st.fault_idx[t_idx, h_idx]
    ph = st.phase[t_idx, h_idx]
    faults = st.faults
    lookup = fi + 1  # 0: no incident
    fault_ids = [None] + [f.incident.fault_id for f in faults]
    inc_ids = [None] + [f.incident.incident_id for f in faults]
    roots = [None] + [f.incident.root_cause for f in faults]
    n = len(t_idx)
    return pa.Table.from_arrays([
        uid,
        pa.repeat(pa.scalar(signal), n) if n else pa.array([], pa.string()),
        pa.array(np.asarray(time_ms, dtype=np.int64)),
        service,
        pa.array(ph == 1),
        pick(fault_ids, lookup),
        pick(inc_ids, lookup),
        pick(list(PHASE_NAMES), ph),
        pick(roots, lookup),
    ], schema=LABEL_SCHEMA)


def _ocsf_api():
    from obslab.ocsf import logs_to_ocsf, metrics_to_ocsf, spans_to_ocsf

    return {"logs": logs_to_ocsf, "traces": spans_to_ocsf, "metrics": metrics_to_ocsf}


def _uids(table: pa.Table) -> pa.Array:
    # the uid child of each chunk, without copying the whole metadata struct
    col = table.column("metadata")
    uid = pa.chunked_array([c.field("uid") for c in col.chunks], type=pa.string())
    uid = uid.chunk(0) if uid.num_chunks == 1 else uid.combine_chunks()
    if uid.null_count:
        raise RuntimeError("OCSF mapping produced events without metadata.uid")
    return uid


def _progress(total: int, quiet: bool):
    disable = quiet or not sys.stderr.isatty()
    if disable:  # no bar: spare the import
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:  # pragma: no cover - tqdm is in requirements
        return None
    return tqdm(total=total, unit="day", desc="synth", file=sys.stderr, disable=disable)


def _catalog(cfg: SynthConfig, plan: Plan, out: Path, counts: Counter, run_id: str) -> None:
    incs = plan.incidents()
    anomalous = {k.removesuffix("_anomalous"): v for k, v in counts.items() if k.endswith("_anomalous")}
    summary = {
        "incidents": len(incs),
        "primary": sum(1 for i in incs if i.primary_incident_id is None),
        "secondary": sum(1 for i in incs if i.primary_incident_id is not None),
        "by_type": dict(sorted(Counter(i.fault_id for i in incs).items())),
        "by_level": dict(sorted(Counter(i.level for i in incs).items())),
        "regional": sum(1 for i in incs if i.region),
        "partial_outages": sum(1 for i in incs
                               if not i.region and len(i.hosts) < cfg.hosts_per_service),
        "verified": sum(1 for i in incs if i.verified),
        "not_verified": sorted(i.incident_id for i in incs if i.verified is False),
        "fault_hours": round(sum((i.end_ms - i.start_ms) for i in incs) / 3_600_000, 2),
        "deploys": len(plan.deploys),
        "maintenance_windows": len(plan.maintenance),
        "events": {k: v for k, v in counts.items() if not k.endswith("_anomalous")},
        "anomalous_events": anomalous,
    }
    write_incidents(
        out / "incidents.json", incs,
        run_id=run_id, seed=cfg.seed, source="synthetic",
        generated_at=ms_to_iso(cfg.start_ms + cfg.days * 86_400_000),
        config=cfg.to_dict(),
        maintenance=[{"region": m.region, "start": ms_to_iso(m.start_ms), "end": ms_to_iso(m.end_ms),
                      "drained_hosts": m.drained_hosts} for m in plan.maintenance],
        deploys=[{"time": ms_to_iso(d.time_ms), "service": d.service, "version": d.version,
                  "bad": d.bad} for d in plan.deploys],
        summary=summary,
    )


def chunk_days(cfg: SynthConfig, n_hosts: int) -> int:
    """Days per generation chunk: a week when small, fewer so a chunk stays ~2M metric rows."""
    rows_per_day = 86_400 // cfg.step_s * n_hosts * len(METRICS)
    return int(max(1, min(7, 2_000_000 // max(rows_per_day, 1))))


# Worker state, set once per process (fork inherits it; no per-chunk pickling of the plan).
_CTX: dict = {}


def _init(cfg, topo, plan, out, fmt) -> None:
    _CTX.update(cfg=cfg, topo=topo, plan=plan, out=Path(out), fmt=fmt)
    _CTX["api"] = _ocsf_api() if fmt in ("ocsf", "both", "lake") else None


def _run_chunk_in(ctx: tuple, first: int, n_days: int):
    """_run_chunk in a worker that has no state yet (a task of a distributed engine)."""
    _init(*ctx)
    return _run_chunk(first, n_days)


def _run_chunk(first: int, n_days: int):
    """Generate days [first, first + n_days) of the run, write their partitions.

    Returns (counts, raw payload or None, symptom sums per incident) so that the parent can
    write raw files in order and verify incidents that span chunks."""
    cfg, topo, plan, out = _CTX["cfg"], _CTX["topo"], _CTX["plan"], _CTX["out"]
    step_ms = cfg.step_s * 1000
    per_day = 86_400_000 // step_ms
    t0 = cfg.start_ms + first * 86_400_000
    st = generate_chunk_metrics(topo, plan, cfg.seed, t0, per_day * n_days, step_ms,
                                cfg.start_ms, cfg.benign_spike_probability)
    markers = {}
    for i, f in enumerate(st.faults):
        inc = f.incident
        markers[i] = (inc.fault_id, "anomaly", inc.root_cause, inc.incident_id)
    spans = generate_traces(topo, st, cfg.seed, step_ms, cfg.traces_per_frontend_host_minute,
                            markers)
    logs, lt, lh = generate_logs(topo, st, spans, cfg.seed, step_ms, cfg.warnings_per_host_hour)
    mtab, mt, mh = metrics_table(topo, st)
    flats = {"logs": (logs, lt, lh), "traces": (spans.table, spans.t_idx, spans.h_idx),
             "metrics": (mtab, mt, mh)}
    counts: Counter = Counter()
    api = _CTX["api"]
    if api is not None:
        label_parts = []
        for signal, (flat, ti, hi) in flats.items():
            ocsf = api[signal](flat, source=f"synth/{signal}/{day_name(t0)}")
            if ocsf.num_rows != flat.num_rows:
                raise RuntimeError(f"{signal}: {flat.num_rows} records in, {ocsf.num_rows} out")
            bounds = _day_bounds(ti // per_day, n_days)
            if _CTX["fmt"] == "lake":  # one writer per chunk and signal: a rerun replaces it
                from obslab.lake import write_lake, writer_id

                write_lake(ocsf, out / "lake", signal, writer_id(f"synth/{signal}/{first}"))
            else:
                _write_days(out, f"ocsf_{signal}.parquet", t0, ocsf, bounds)
            lab = label_table(signal, _uids(ocsf), flat.column("time_ms"), flat.column("service"),
                              st, ti, hi)
            label_parts.append((lab, bounds))
            counts[f"{signal}_anomalous"] += int(np.count_nonzero(st.phase[ti, hi] == 1))
        for k in range(n_days):  # one labels file per day, all signals
            day = pa.concat_tables([lab.slice(int(b[k]), int(b[k + 1] - b[k]))
                                    for lab, b in label_parts])
            write_partition(out, "labels.parquet", day_name(t0 + k * 86_400_000), day)
    for signal, (flat, _, _) in flats.items():
        counts[signal] += flat.num_rows
    raw = None
    if _CTX["fmt"] in ("raw", "both"):
        raw = (logs, spans.table, st.t_ms, st.values)
    return counts, raw, _symptom_sums(st, per_day * n_days)


def _symptom_sums(st: ChunkState, T: int) -> dict[str, list[float]]:
    """Per incident: symptom metric sums over its hosts, before the fault (the three hours
    before, skipping host-steps inside another incident) and in its second half (past most of
    the ramp of gradual incidents)."""
    out = {}
    step = int(st.t_ms[1] - st.t_ms[0]) if T > 1 else 86_400_000
    for f in st.faults:
        inc = f.incident
        metric, _ = SYMPTOM_METRIC[f.kind]
        x = st.values[metric][:, f.hosts]
        before = (st.t_ms >= inc.start_ms - max(3 * 3_600_000, 2 * step)) & (st.t_ms < inc.start_ms)
        clean = before[:, None] & (st.phase[:, f.hosts] == 0)
        during = (st.t_ms >= (inc.start_ms + inc.end_ms) // 2) & (st.t_ms < inc.end_ms)
        out[inc.incident_id] = [float(x[clean].sum()), float(clean.sum()),
                                float(x[during].sum()), float(during.sum() * x.shape[1])]
    return out


def _day_bounds(day_of_row: np.ndarray, n_days: int) -> np.ndarray:
    """Row offsets where each day starts (rows are ordered by step)."""
    if len(day_of_row) > 1 and np.any(np.diff(day_of_row) < 0):
        raise RuntimeError("rows are not ordered by step")
    return np.searchsorted(day_of_row, np.arange(n_days + 1))


def _write_days(out: Path, name: str, t0: int, table: pa.Table, bounds: np.ndarray) -> None:
    """One partition per day; a row belongs to the day of the step that produced it."""
    for k in range(len(bounds) - 1):
        part = table.slice(int(bounds[k]), int(bounds[k + 1] - bounds[k]))
        write_partition(out, name, day_name(t0 + k * 86_400_000), part)


OUTPUTS = ("lake", "ocsf_logs.parquet", "ocsf_traces.parquet", "ocsf_metrics.parquet", "labels.parquet",
           "raw", "incidents.json", "run.json", "server_metrics.parquet",
           "server_metrics_labels.parquet")


def _clear(out: Path, overwrite: bool) -> None:
    """Stale day partitions of an earlier run would mix with this one: refuse or remove them."""
    present = [name for name in OUTPUTS if (out / name).exists()]
    if present and not overwrite:
        raise FileExistsError(f"{out} already holds a dataset ({', '.join(present)}); "
                              "pass overwrite=True (--overwrite) or choose another folder")
    for name in present:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def generate(cfg: SynthConfig, out, fmt: str = "ocsf", quiet: bool = True,
             argv: list[str] | None = None, workers: int | None = None,
             overwrite: bool = False, engine=None) -> RunResult:
    """Write a synthetic dataset to ``out`` (layout of :mod:`obslab.data`).

    ``workers`` processes generate chunks in parallel (default: up to 2); the output does not
    depend on it. An existing dataset in ``out`` is an error unless ``overwrite``. ``engine``: an
    :class:`obslab.distributed.Engine` (e.g. Ray) to run the chunks on instead of processes."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    cfg.validate()
    out = Path(out)
    _clear(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    topo = build_topology(cfg)
    plan = plan_run(cfg, topo)
    size = chunk_days(cfg, topo.n_hosts)
    chunks = [(d, min(size, cfg.days - d)) for d in range(0, cfg.days, size)]
    workers = workers or min(2, os.cpu_count() or 1)
    workers = max(1, min(workers, len(chunks)))
    raw = RawWriter(out, cfg.step_s) if fmt in ("raw", "both") else None
    series = [(topo.services[topo.host_service[h]], topo.hosts[h], topo.regions[topo.host_region[h]])
              for h in range(topo.n_hosts)]
    counts: Counter = Counter()
    bar = _progress(cfg.days, quiet)
    pool = None
    try:
        if engine is not None:
            results = engine.map(_run_chunk_in, chunks, shared=(cfg, topo, plan, out.resolve(), fmt))
        elif workers == 1:
            _init(cfg, topo, plan, out, fmt)
            results = (_run_chunk(*c) for c in chunks)
        else:
            pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("fork"),
                                       initializer=_init, initargs=(cfg, topo, plan, out, fmt))
            results = pool.map(_run_chunk, *zip(*chunks))
        sums: dict[str, np.ndarray] = {}
        for (first, n_days), (c, payload, symptom) in zip(chunks, results):
            counts.update(c)
            for key, v in symptom.items():
                sums[key] = sums.get(key, 0) + np.asarray(v)
            if raw is not None:
                logs, spans, t_ms, values = payload
                raw.write_logs(logs)
                raw.write_traces(spans)
                raw.add_metrics(t_ms, values, series)
            if bar is not None:
                bar.update(n_days)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
        if bar is not None:
            bar.close()
        if raw is not None:
            raw.close(METRICS)
    for f in plan.faults:
        verify(f, list(sums.get(f.incident.incident_id, [0, 0, 0, 0])))
    if fmt == "lake":
        from obslab.lake import write_manifest

        write_manifest(out / "lake")
    if cfg.server_metrics:
        counts["server_metrics"] = write_server_metrics(out, cfg)
    run_id = f"synth-{cfg.seed}-{day_name(cfg.start_ms)}-{cfg.days}d"
    _catalog(cfg, plan, out, counts, run_id)
    seconds = time.perf_counter() - started
    run = {
        "run_id": run_id,
        "source": "synthetic",
        "command": argv or ["obslab", "synth"],
        "seed": cfg.seed,
        "format": fmt,
        "config": cfg.to_dict(),
        "counts": dict(sorted(counts.items())),
        "versions": {"numpy": np.__version__, "pyarrow": pa.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 2),
    }
    (out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    return RunResult(out, counts, seconds, len(plan.faults))
