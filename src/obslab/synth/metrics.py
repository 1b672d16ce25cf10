"""Per-host metrics for one chunk of time: seasonality, noise, routine operations, incidents.

Everything is a (time x host) numpy array. A chunk depends only on the seed, its absolute
start and the plan, so chunks can be generated in any order and give identical values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obslab.synth.incidents import Fault, Plan, intensity
from obslab.synth.topology import Topology

__all__ = ["METRICS", "ChunkState", "generate_chunk_metrics", "chunk_rng"]

# name -> unit (the documented synthetic query names; one flat metric row per name, host, step)
METRICS = {
    "cpu_pct": "%",
    "mem_pct": "%",
    "latency_p95_ms": "ms",
    "error_rate_pct": "%",
    "request_rate": "req/s",
    "packet_loss_pct": "%",
    "db_pool_pct": "%",
    "shared_pool_pct": "%",
}
PHASE_NAMES = ("normal", "fault", "cooldown")


@dataclass
class ChunkState:
    t_ms: np.ndarray  # (T,) step start times
    values: dict[str, np.ndarray]  # metric -> (T, H)
    fault_idx: np.ndarray  # (T, H) index into the chunk's faults, -1 when none
    phase: np.ndarray  # (T, H) 0 normal, 1 fault, 2 cooldown
    faults: list[Fault]
    maint: np.ndarray  # (T, H) bool: host's region in a maintenance window
    restart: np.ndarray  # (T, H) bool: host restarted by a deploy at this step
    deploys: list  # (step index, host index, Deploy) restarts inside the chunk


def chunk_rng(seed: int, stream: int, day: int) -> np.random.Generator:
    """An independent generator per (stream, absolute day): chunks never share a stream."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream, day)))


def _ar1(rng, shape, phi: float, sd: float) -> np.ndarray:
    """Smooth noise with stationary standard deviation ``sd`` (starts stationary)."""
    return _ar1_many(rng, shape, [(phi, sd)])[0]


def _ar1_many(rng, shape, params: list[tuple[float, float]]) -> list[np.ndarray]:
    """``_ar1`` for each (phi, sd) in turn (same draws, same order), filtered together."""
    e = np.empty((shape[0], len(params)) + tuple(shape[1:]))
    for k, (phi, sd) in enumerate(params):
        e[:, k] = rng.normal(0.0, sd * np.sqrt(1 - phi * phi), shape)
        e[0, k] = rng.normal(0.0, sd, shape[1:])
    phis = np.array([phi for phi, _ in params]).reshape((len(params),) + (1,) * (len(shape) - 1))
    # y[t] = e[t] + phi * y[t-1], step by step over rows: bit-identical to
    # scipy.signal.lfilter([1], [1, -phi], e, axis=0), without its 1 s import per run
    for t in range(1, len(e)):
        e[t] += phis * e[t - 1]
    return [np.ascontiguousarray(e[:, k]) for k in range(len(params))]


def _load_shape(local_hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """Daily business curve (two peaks, evening tail) times a weekly factor; about 0.2..1."""
    h = local_hour
    day = (
        0.65 * np.exp(-(((h - 11.0) / 3.0) ** 2))
        + 0.75 * np.exp(-(((h - 15.5) / 3.5) ** 2))
        + 0.25 * np.exp(-(((h - 21.0) / 2.0) ** 2))
    )
    weekly = np.where(weekday >= 5, 0.62, 1.0)
    return (0.2 + 0.8 * np.clip(day, 0, 1)) * weekly


def generate_chunk_metrics(topo: Topology, plan: Plan, seed: int, t0_ms: int, n_steps: int,
                           step_ms: int, run_start_ms: int, spike_p: float = 0.004) -> ChunkState:
    day = t0_ms // 86_400_000
    rng = chunk_rng(seed, 2, day)
    H = topo.n_hosts
    T = n_steps
    t = t0_ms + np.arange(T, dtype=np.int64) * step_ms
    hours_utc = (t / 3_600_000.0) % 24.0
    local = (hours_utc[:, None] + topo.utc_offset_h[None, :]) % 24.0
    local_day = np.floor((t[:, None] / 3_600_000.0 + topo.utc_offset_h[None, :]) / 24.0)
    weekday = ((local_day + 3) % 7).astype(np.int32)  # Monday = 0
    growth = 1.0 + 0.15 * ((t0_ms - run_start_ms) / (365 * 86_400_000))  # traffic grows
    n_days = max(1, -(-T * step_ms // 86_400_000))
    day_of_step = (np.arange(T) * step_ms) // 86_400_000
    day_level = rng.normal(1.0, 0.06, n_days)[day_of_step][:, None]  # some days are busier

    svc = topo.host_service
    prof = [topo.profile(s) for s in topo.services]
    rps = np.array([prof[s]["rps"] for s in svc])
    lat0 = np.array([prof[s]["latency"] for s in svc])
    has_db = np.array([prof[s]["db"] for s in svc])

    # the noises of load, cpu, mem, latency and errors: drawn in that order, filtered at once
    n_load, n_cpu, n_mem, n_lat, n_err = _ar1_many(
        rng, (T, H), [(0.9, 0.07), (0.7, 3.0), (0.8, 1.2), (0.6, 0.12), (0.5, 0.5)])
    load = _load_shape(local, weekday) * growth * day_level
    load = load * np.exp(n_load)
    req = rps * topo.capacity * load
    util = np.clip(load / 1.25, 0.0, 1.2)

    cpu = 8.0 + 62.0 * util / topo.capacity + n_cpu
    # memory: host baseline, a little load, a slow GC sawtooth, noise
    saw = ((t[:, None] / 3_600_000.0 + topo.capacity[None, :] * 7) % 6.0) / 6.0
    mem = topo.mem_base + 6.0 * util + 4.0 * saw + n_mem
    lat = lat0 * (1.0 + 0.8 * util**3) * np.exp(n_lat)
    err = 0.25 * np.exp(n_err) + 0.2 * util
    loss = rng.exponential(0.02, (T, H))
    n_dbp, n_shp = _ar1_many(rng, (T, H), [(0.7, 4.0), (0.8, 3.0)])
    dbp = np.where(has_db, 15.0 + 45.0 * util + n_dbp, 0.0)
    # a pool shared by all hosts of a region (cache / thread pool / NAT gateway)
    reg_load = np.stack([load[:, topo.host_region == r].mean(axis=1) if np.any(topo.host_region == r)
                         else np.zeros(T) for r in range(len(topo.regions))], axis=1)
    shp = 20.0 + 40.0 * reg_load[:, topo.host_region] + n_shp

    # benign spikes: slow requests, brief error bursts, busy moments; no incident behind them
    spike = rng.random((T, H)) < spike_p
    kind = rng.integers(0, 4, (T, H))
    cpu = np.where(spike & (kind == 0), cpu + rng.uniform(10, 35, (T, H)), cpu)
    lat = np.where(spike & (kind == 1), lat * rng.uniform(1.5, 3.5, (T, H)), lat)
    err = np.where(spike & (kind == 2), err + rng.uniform(0.5, 5.0, (T, H)), err)
    loss = np.where(spike & (kind == 3), loss + rng.uniform(0.3, 2.0, (T, H)), loss)
    # some hosts run hot for no reason for a day (noisy neighbours)
    hot = (rng.random((n_days, H)) < 0.08)[day_of_step]
    cpu = cpu + hot * rng.uniform(5, 15, (n_days, H))[day_of_step]
    lat = lat * (1 + hot * 0.25)

    faults, deploys, maint_list = plan.overlapping(t[0], t[-1] + step_ms)

    # maintenance: reduced traffic in the region, drained hosts idle
    maint = np.zeros((T, H), dtype=bool)
    drained = np.zeros((T, H), dtype=bool)
    for m in maint_list:
        rows = (t >= m.start_ms) & (t < m.end_ms)
        cols = topo.host_region == topo.regions.index(m.region)
        maint |= rows[:, None] & cols[None, :]
        drained[np.ix_(rows, np.asarray(m.drained_hosts, dtype=int))] = True
    factor = np.where(maint, 0.35, 1.0) * np.where(drained, 0.02, 1.0)
    req = req * factor
    cpu = np.where(drained, 3.0 + rng.uniform(0, 2, (T, H)), np.where(maint, cpu * 0.6 + 3, cpu))

    # routine deploys: each host restarts in turn, one step apart
    restart = np.zeros((T, H), dtype=bool)
    restarts = []
    for d in deploys:
        for k, h in enumerate(topo.hosts_of(d.service)):
            ts = d.time_ms + k * step_ms
            i = (ts - t0_ms) // step_ms
            if 0 <= i < T:
                restart[i, h] = True
                restarts.append((int(i), int(h), d))
    cpu = np.where(restart, cpu + 20.0, cpu)
    mem = np.where(restart, topo.mem_base - 8.0, mem)
    err = np.where(restart, err + rng.uniform(0.5, 2.5, (T, H)), err)
    lat = np.where(restart, lat * 1.3, lat)

    # incidents
    fault_idx = np.full((T, H), -1, dtype=np.int32)
    phase = np.zeros((T, H), dtype=np.int8)
    v = dict(cpu=cpu, mem=mem, lat=lat, err=err, req=req, loss=loss, dbp=dbp, shp=shp)
    for fi, f in enumerate(faults):
        r = intensity(f, t)[:, None] * (f.severity * f.host_weight)[None, :]  # (T, h)
        _apply(f.kind, v, f.hosts, r, has_db[f.hosts])
        inc = f.incident
        in_fault = (t >= inc.start_ms) & (t < inc.end_ms)
        in_cool = (t >= inc.end_ms) & (t < inc.cooldown_end_ms)
        sub_idx = fault_idx[:, f.hosts]
        sub_ph = phase[:, f.hosts]
        free = sub_idx < 0
        # a fault outranks a cooldown; otherwise the first incident keeps the cell
        take_fault = in_fault[:, None] & (free | (sub_ph == 2))
        take_cool = in_cool[:, None] & free
        sub_idx[take_fault | take_cool] = fi
        sub_ph[take_fault] = 1
        sub_ph[take_cool] = 2
        fault_idx[:, f.hosts] = sub_idx
        phase[:, f.hosts] = sub_ph

    values = {
        "cpu_pct": np.clip(v["cpu"], 0.0, 100.0),
        "mem_pct": np.clip(v["mem"], 1.0, 99.5),
        "latency_p95_ms": np.maximum(v["lat"], 0.5),
        "error_rate_pct": np.clip(v["err"], 0.0, 100.0),
        "request_rate": np.maximum(v["req"], 0.0),
        "packet_loss_pct": np.clip(v["loss"], 0.0, 100.0),
        "db_pool_pct": np.clip(v["dbp"], 0.0, 100.0),
        "shared_pool_pct": np.clip(v["shp"], 0.0, 100.0),
    }
    return ChunkState(t, values, fault_idx, phase, faults, maint, restart, restarts)


def _apply(kind: str, v: dict, hosts: np.ndarray, r: np.ndarray, has_db: np.ndarray) -> None:
    """Add one incident's symptoms to the hosts' columns, scaled by intensity r (T, h)."""
    c = np.ix_(np.arange(r.shape[0]), hosts)

    def add(name, amount):
        v[name][c] = v[name][c] + amount

    def mul(name, factor):
        v[name][c] = v[name][c] * factor

    if kind == "memory_leak":
        add("mem", 38.0 * r)
        add("cpu", 6.0 * r)
        mul("lat", 1 + 0.35 * r)
    elif kind == "db_contention":
        mul("lat", 1 + 2.5 * r)
        add("dbp", np.where(has_db, 45.0 * r, 0.0))
        add("cpu", 8.0 * r)
        add("err", 1.0 * r)
    elif kind == "network_packet_loss":
        add("loss", 4.0 * r)
        mul("lat", 1 + 0.8 * r)
        add("err", 0.8 * r)
    elif kind == "cpu_saturation":
        add("cpu", (97.0 - v["cpu"][c]) * np.minimum(1.0, 0.7 * r))
        mul("lat", 1 + 1.5 * r)
    elif kind == "cascading_failure":
        add("err", 12.0 * r)
        mul("lat", 1 + 2.0 * r)
        mul("req", 1 - 0.25 * np.minimum(r, 1.0))
    elif kind == "network_partition":
        mul("req", 1 - 0.7 * np.minimum(r, 1.0))
        add("err", 18.0 * r)
        add("loss", 12.0 * r)
        mul("lat", 1 + 1.0 * r)
    elif kind == "dependency_degradation":
        mul("lat", 1 + 1.2 * r)
        add("err", 1.5 * r)
        add("shp", 15.0 * r)
    elif kind == "configuration_mismatch":
        add("err", 7.0 * r)
        mul("lat", 1 + 0.2 * r)
    elif kind == "resource_exhaustion":
        add("shp", (100.0 - v["shp"][c]) * np.minimum(1.0, 0.8 * r))
        add("dbp", np.where(has_db, 30.0 * r, 0.0))
        mul("lat", 1 + 1.0 * r)
        add("err", 2.0 * r)
    else:  # pragma: no cover - config validation rejects unknown kinds
        raise ValueError(f"unknown incident type {kind}")
