"""Server-metric records in the inference daemon's schema (one row per server and step).

``status`` is what an operator's agent reports (healthy, idle, morning_spike, heavy_load,
maintenance, recovery, critical_issue, offline); it lags the truth: a memory leak or a
filling disk stays ``healthy`` until it crosses a threshold. The ground truth (is_anomaly,
incident kind, phase) is returned or written separately and never sits among the fields.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from obslab.synth.config import parse_start, parse_step

__all__ = ["SERVER_FIELDS", "STATUSES", "server_metrics", "server_metrics_with_labels",
           "write_server_metrics"]

SERVER_FIELDS = [
    "timestamp", "server_name", "status", "cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct",
    "cpu_idle_pct", "java_cpu_pct", "mem_used_pct", "swap_used_pct", "disk_usage_pct",
    "net_in_mb_s", "net_out_mb_s", "back_close_wait", "front_close_wait", "load_average",
    "uptime_days",
]
STATUSES = ["critical_issue", "healthy", "heavy_load", "idle", "maintenance", "morning_spike",
            "offline", "recovery"]
KINDS = ["cpu_runaway", "memory_leak", "disk_fill", "connection_leak", "offline"]
_DAY = 86_400_000
_WEEK = 7 * _DAY


def server_metrics_with_labels(days: int = 7, step: str = "5m", seed: int = 0,
                               n_servers: int = 10, start: str = "2025-01-01",
                               names: list[str] | None = None,
                               incidents_per_server_day: float = 0.25):
    """(records DataFrame with SERVER_FIELDS, labels DataFrame aligned row by row)."""
    step_ms = parse_step(step) * 1000
    t0 = parse_start(start)
    T = days * _DAY // step_ms
    N = n_servers
    names = names or [f"srv-{i + 1:03d}" for i in range(N)]
    if len(names) != N:
        raise ValueError("names must have n_servers entries")
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(9, days, N)))
    t = t0 + np.arange(T, dtype=np.int64) * step_ms
    hour = (t / 3_600_000.0) % 24.0
    weekday = ((t // _DAY + 3) % 7)[:, None]
    cap = rng.uniform(0.8, 1.2, N)

    morning = np.exp(-(((hour - 9.0) / 1.0) ** 2))[:, None] * (weekday < 5)
    day_curve = 0.15 + 0.7 * np.exp(-(((hour - 14.0) / 4.5) ** 2))[:, None]
    load = (day_curve * np.where(weekday >= 5, 0.55, 1.0) + 0.35 * morning) / cap
    load = np.clip(load * np.exp(rng.normal(0, 0.08, (T, N))), 0.02, 1.3)

    # weekly maintenance, Sunday 02:00-03:00 UTC, staggered; ends with a restart
    m_off = (3 * _DAY + 2 * 3_600_000 + (np.arange(N) % 4) * 900_000)[None, :]  # Sunday from Thu 0h
    since = (t[:, None] - m_off) % _WEEK
    in_maint = since < 3_600_000
    # uptime: days since the last maintenance restart (or boot for servers that skip it)
    uptime = np.where(since >= 3_600_000, since - 3_600_000, since + _WEEK) / _DAY
    skip = rng.random(N) < 0.3  # some servers are never restarted in maintenance
    uptime = np.where(skip, (t[:, None] - t0) / _DAY + rng.uniform(5, 200, N), uptime)

    # incidents: (server, start, length, kind)
    kind = np.full((T, N), -1, dtype=np.int8)
    phase = np.zeros((T, N), dtype=np.int8)  # 0 normal, 1 fault, 2 cooldown
    r = np.zeros((T, N))
    n_inc = rng.poisson(incidents_per_server_day * days * N)
    for _ in range(n_inc):
        s = int(rng.integers(0, N))
        k = int(rng.integers(0, len(KINDS)))
        i0 = int(rng.integers(0, T))
        length = max(2, int(rng.integers(30, 300) * 60_000 // step_ms))
        cool = max(1, length // 4)
        sl = slice(i0, min(T, i0 + length))
        if np.any(kind[sl, s] >= 0):
            continue
        n = sl.stop - sl.start
        kind[sl, s] = k
        phase[sl, s] = 1
        r[sl, s] = np.linspace(1.0 / n, 1.0, n) if KINDS[k] in ("memory_leak", "disk_fill") else 1.0
        cs = slice(sl.stop, min(T, sl.stop + cool))
        free = kind[cs, s] < 0
        kind[cs, s] = np.where(free, k, kind[cs, s])
        phase[cs, s] = np.where(free, 2, phase[cs, s])
        if KINDS[k] == "offline" and sl.stop < T:  # comes back freshly booted
            back = np.arange(sl.stop, T)
            uptime[back, s] = np.minimum(uptime[back, s], (t[back] - t[sl.stop]) / _DAY)

    def active(name):
        return (kind == KINDS.index(name)) & (phase == 1)

    cpu_user = 8 + 55 * load + rng.normal(0, 3, (T, N))
    cpu_user += active("cpu_runaway") * rng.uniform(25, 45, (T, N)) * r
    cpu_sys = 2 + 8 * load + rng.normal(0, 1, (T, N))
    iowait = np.abs(rng.normal(1.0, 0.8, (T, N))) + active("disk_fill") * 12 * r
    java = np.clip(cpu_user * rng.uniform(0.55, 0.85, N), 0, None)
    mem = 45 + 15 * load + rng.normal(0, 2, (T, N)) + active("memory_leak") * 45 * r
    swap = np.clip(rng.normal(2, 1, (T, N)) + np.maximum(mem - 85, 0) * 3, 0, 100)
    disk_base = rng.uniform(35, 70, N) + 3 * ((t[:, None] - t0) % _WEEK) / _WEEK  # logs, rotated
    disk = disk_base + active("disk_fill") * 40 * r
    net_in = 40 * load * cap * np.exp(rng.normal(0, 0.1, (T, N)))
    net_out = 1.6 * net_in * np.exp(rng.normal(0, 0.1, (T, N)))
    conn = active("connection_leak")
    back_cw = rng.poisson(2 + 6 * load) + conn * rng.poisson(180 * np.maximum(r, 0.1))
    front_cw = rng.poisson(1 + 3 * load) + conn * rng.poisson(60 * np.maximum(r, 0.1))
    net_in = np.where(conn, net_in * 0.6, net_in)
    load_avg = 8 * (cpu_user + cpu_sys + iowait) / 100 + rng.normal(0, 0.2, (T, N))  # 8 cores

    # maintenance: idle and drained
    cpu_user = np.where(in_maint, 3 + rng.uniform(0, 3, (T, N)), cpu_user)
    net_in = np.where(in_maint, net_in * 0.05, net_in)
    net_out = np.where(in_maint, net_out * 0.05, net_out)

    cpu_user = np.clip(cpu_user, 0, 100)
    cpu_sys = np.clip(cpu_sys, 0, 100 - cpu_user)
    iowait = np.clip(iowait, 0, 100 - cpu_user - cpu_sys)
    idle = 100 - cpu_user - cpu_sys - iowait
    java = np.minimum(java, cpu_user)
    mem = np.clip(mem, 0, 100)
    disk = np.clip(disk, 0, 100)

    off = active("offline")
    status = np.full((T, N), STATUSES.index("healthy"), dtype=np.int8)
    status[load < 0.3] = STATUSES.index("idle")
    status[(morning > 0.5) & (load > 0.6)] = STATUSES.index("morning_spike")
    status[load > 0.95] = STATUSES.index("heavy_load")
    status[(phase == 2)] = STATUSES.index("recovery")
    critical = (phase == 1) & ((cpu_user > 85) | (mem > 90) | (disk > 92) | (back_cw > 80))
    status[critical] = STATUSES.index("critical_issue")
    status[in_maint] = STATUSES.index("maintenance")
    status[off] = STATUSES.index("offline")
    zero = off[..., None]
    num = np.stack([cpu_user, cpu_sys, iowait, idle, java, mem, swap, disk, net_in, net_out,
                    back_cw, front_cw, np.maximum(load_avg, 0), uptime], axis=-1)
    num = np.where(zero, 0.0, num)
    num[..., 3] = np.where(off, 0.0, num[..., 3])

    flat = num.reshape(T * N, -1)
    records = pd.DataFrame({
        "timestamp": pd.to_datetime(np.repeat(t, N), unit="ms", utc=True),
        "server_name": pd.Categorical(np.tile(names, T), categories=names),
        "status": pd.Categorical.from_codes(status.ravel(), categories=STATUSES),
    })
    for j, name in enumerate(SERVER_FIELDS[3:]):
        col = flat[:, j]
        if name in ("back_close_wait", "front_close_wait"):
            records[name] = col.astype(np.int64)
        else:
            records[name] = np.round(col, 3)
    records["server_name"] = records["server_name"].astype(str)
    records["status"] = records["status"].astype(str)
    kinds = np.array([None] + KINDS, dtype=object)
    labels = pd.DataFrame({
        "timestamp": records["timestamp"],
        "server_name": records["server_name"],
        "is_anomaly": (phase == 1).ravel(),
        "incident_type": kinds[kind.ravel() + 1],
        "phase": np.array(["normal", "fault", "cooldown"])[phase.ravel()],
    })
    return records, labels


def server_metrics(days: int = 7, step: str = "5m", seed: int = 0, n_servers: int = 10,
                   **kwargs) -> pd.DataFrame:
    """Server-metric records only (the daemon's 17 columns), deterministic per seed."""
    return server_metrics_with_labels(days, step, seed, n_servers, **kwargs)[0]


def write_server_metrics(out: Path, cfg) -> int:
    """DIR/server_metrics.parquet and DIR/server_metrics_labels.parquet for a run config."""
    from obslab.synth.topology import build_topology

    hosts = build_topology(cfg).hosts
    n = cfg.n_servers or len(hosts)
    names = hosts if n == len(hosts) else None
    rec, lab = server_metrics_with_labels(cfg.days, cfg.step, cfg.seed, n, start=cfg.start,
                                          names=names)
    rec.to_parquet(Path(out) / "server_metrics.parquet", index=False)
    lab.to_parquet(Path(out) / "server_metrics_labels.parquet", index=False)
    return len(rec)
