"""A fleet of the metrics-feed guide's server profiles, and slow leaks to inject into it.

The guide names profiles by server-name prefix: ``ppdb`` (database), ``ppml`` (ML compute),
``ppapi`` (web API), ``ppcond`` (conductor), ``ppetl`` (ETL / ingest), ``pprisk`` (risk
analytics), anything else generic. Each profile has typical levels (the database profile's are
the guide's own "healthy" example record: cpu 25/8/2/64, mem 72, swap 5, disk 46, ...); every
server varies around its profile's levels, follows a daily load curve and has noise. The daemon's
model trains on such a fleet so that each profile's typical values are normal.

``inject_leak`` adds a slow leak (memory, or CLOSE_WAIT connections) to one server from a given
time, for measuring how long the daemon takes to flag it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obslab.serve.schemas import METRICS

__all__ = ["PROFILES", "LEAK_KINDS", "SYNTH_PER_PROFILE", "profile_of", "guide_fleet", "inject_leak", "fleet_names"]

_CPU = ("cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct", "java_cpu_pct")
# typical daytime levels per profile: cpu user/sys/iowait/java, mem, swap, disk, net in/out (MB/s),
# back/front CLOSE_WAIT, load average
PROFILES: dict[str, dict[str, float]] = {
    "ppdb": dict(cpu_user_pct=25, cpu_sys_pct=8, cpu_iowait_pct=2.1, java_cpu_pct=15, mem_used_pct=72,
                 swap_used_pct=5, disk_usage_pct=46, net_in_mb_s=12.5, net_out_mb_s=8.3, back_close_wait=5,
                 front_close_wait=3, load_average=2.4),
    "ppml": dict(cpu_user_pct=62, cpu_sys_pct=6, cpu_iowait_pct=1.0, java_cpu_pct=5, mem_used_pct=82,
                 swap_used_pct=3, disk_usage_pct=55, net_in_mb_s=20, net_out_mb_s=10, back_close_wait=2,
                 front_close_wait=1, load_average=9),
    "ppapi": dict(cpu_user_pct=30, cpu_sys_pct=11, cpu_iowait_pct=0.5, java_cpu_pct=24, mem_used_pct=55,
                  swap_used_pct=1, disk_usage_pct=30, net_in_mb_s=40, net_out_mb_s=55, back_close_wait=8,
                  front_close_wait=12, load_average=3),
    "ppcond": dict(cpu_user_pct=14, cpu_sys_pct=5, cpu_iowait_pct=0.6, java_cpu_pct=10, mem_used_pct=45,
                   swap_used_pct=1, disk_usage_pct=35, net_in_mb_s=5, net_out_mb_s=5, back_close_wait=2,
                   front_close_wait=2, load_average=1.2),
    "ppetl": dict(cpu_user_pct=35, cpu_sys_pct=8, cpu_iowait_pct=8, java_cpu_pct=20, mem_used_pct=60,
                  swap_used_pct=4, disk_usage_pct=65, net_in_mb_s=30, net_out_mb_s=15, back_close_wait=3,
                  front_close_wait=2, load_average=4),
    "pprisk": dict(cpu_user_pct=55, cpu_sys_pct=7, cpu_iowait_pct=1.0, java_cpu_pct=40, mem_used_pct=75,
                   swap_used_pct=2, disk_usage_pct=40, net_in_mb_s=8, net_out_mb_s=6, back_close_wait=2,
                   front_close_wait=2, load_average=6),
    "generic": dict(cpu_user_pct=20, cpu_sys_pct=6, cpu_iowait_pct=2, java_cpu_pct=10, mem_used_pct=50,
                    swap_used_pct=2, disk_usage_pct=40, net_in_mb_s=6, net_out_mb_s=5, back_close_wait=2,
                    front_close_wait=2, load_average=1.5),
}
_PREFIXES = tuple(p for p in PROFILES if p != "generic")
LEAK_KINDS = {"memory": "mem_used_pct", "close_wait": "back_close_wait", "disk": "disk_usage_pct"}  # kind -> metric
_DAY_MS = 86_400_000
SYNTH_PER_PROFILE = 16  # servers per profile (and generic) of the fleets the daemon trains, calibrates and is measured on


def profile_of(server_name: str) -> str:
    """The guide's profile for a server name (longest matching prefix), else "generic"."""
    name = server_name.lower()
    for prefix in sorted(_PREFIXES, key=len, reverse=True):
        if name.startswith(prefix):
            return prefix
    return "generic"


def fleet_names(per_profile: int = 6, generic: int | None = None) -> list[str]:
    """45 servers with the default 6 per named profile and 9 generic, like the guide's fleet;
    ``generic`` sets the number of generic servers (default: up to 45 in all)."""
    names = [f"{p}{i + 1:03d}" for p in _PREFIXES for i in range(per_profile)]
    generic = max(0, 45 - len(names)) if generic is None else generic
    return names + [f"srv{i + 1:03d}" for i in range(generic)]


def guide_fleet(days: float = 2, seed: int = 0, names: list[str] | None = None,
                start: str = "2025-01-06T00:00:00Z", step_minutes: int = 5) -> pd.DataFrame:
    """Healthy records of the fleet: one row per server and step, the 16-field schema."""
    names = names or fleet_names()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(16, len(names))))
    t0 = pd.Timestamp(start).value // 1_000_000
    n_t = int(days * 24 * 60 / step_minutes)
    t = t0 + np.arange(n_t, dtype=np.int64) * step_minutes * 60_000
    hour = (t % _DAY_MS) / 3_600_000
    weekday = (t // _DAY_MS + 3) % 7 < 5
    curve = 0.55 + 0.55 * np.exp(-(((hour - 14) / 4.5) ** 2)) + 0.25 * np.exp(-(((hour - 9) / 1.0) ** 2)) * weekday
    frames = []
    for name in names:
        typical = PROFILES[profile_of(name)]
        size = rng.uniform(0.8, 1.2)  # this server's share of its profile's work
        load = curve * size * np.exp(rng.normal(0, 0.06, n_t))
        rec = {}
        for m in _CPU:
            rec[m] = typical[m] * load * np.exp(rng.normal(0, 0.08, n_t))
        busy = rec["cpu_user_pct"] + rec["cpu_sys_pct"] + rec["cpu_iowait_pct"]
        scale = np.minimum(1.0, 97 / np.maximum(busy, 1e-9))  # the CPU never exceeds 100 %
        for m in ("cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct"):
            rec[m] = rec[m] * scale
        rec["java_cpu_pct"] = np.minimum(rec["java_cpu_pct"], rec["cpu_user_pct"] + rec["cpu_sys_pct"])
        rec["cpu_idle_pct"] = 100 - rec["cpu_user_pct"] - rec["cpu_sys_pct"] - rec["cpu_iowait_pct"]
        rec["mem_used_pct"] = typical["mem_used_pct"] * rng.uniform(0.9, 1.1) + 6 * (load - 1) + rng.normal(0, 1.0, n_t)
        rec["swap_used_pct"] = typical["swap_used_pct"] * rng.uniform(0.7, 1.3) + np.abs(rng.normal(0, 0.3, n_t))
        rec["disk_usage_pct"] = typical["disk_usage_pct"] * rng.uniform(0.85, 1.15) + np.arange(n_t) * 0.0005
        for m in ("net_in_mb_s", "net_out_mb_s", "load_average"):
            rec[m] = typical[m] * load * np.exp(rng.normal(0, 0.12, n_t))
        for m in ("back_close_wait", "front_close_wait"):
            rec[m] = rng.poisson(typical[m] * load)
        rec["uptime_days"] = rng.uniform(3, 200) + (t - t0) / _DAY_MS
        frame = pd.DataFrame({m: np.clip(rec[m], 0, 100) if m.endswith("_pct") else rec[m] for m in METRICS})
        frame.insert(0, "status", "healthy")
        frame.insert(0, "server_name", name)
        frame.insert(0, "timestamp", pd.to_datetime(t, unit="ms", utc=True))
        frames.append(frame)
    out = pd.concat(frames, ignore_index=True).sort_values(["timestamp", "server_name"], kind="stable")
    return out.reset_index(drop=True)


def inject_leak(df: pd.DataFrame, server: str, start: pd.Timestamp, kind: str = "memory",
                rate_per_hour: float | None = None) -> pd.DataFrame:
    """A copy of ``df`` where ``server`` leaks from ``start`` on.

    memory: mem_used_pct climbs ``rate_per_hour`` points an hour (default 2) up to 99, swap
    follows once memory is above 90. close_wait: back_close_wait grows by ``rate_per_hour``
    connections an hour (default 24). disk: disk_usage_pct climbs ``rate_per_hour`` points an
    hour (default 2; a log or spool filling the disk). Status stays "healthy": the annotation is
    not the truth."""
    out = df.copy()
    rows = (out["server_name"] == server) & (out["timestamp"] >= start)
    hours = (out.loc[rows, "timestamp"] - start).dt.total_seconds().to_numpy() / 3600
    if kind == "memory":
        mem = np.minimum(99.0, out.loc[rows, "mem_used_pct"].to_numpy() + (rate_per_hour or 2.0) * hours)
        out.loc[rows, "mem_used_pct"] = mem
        out.loc[rows, "swap_used_pct"] = np.minimum(100.0, out.loc[rows, "swap_used_pct"] + np.maximum(0, mem - 90) * 3)
    elif kind == "close_wait":
        out.loc[rows, "back_close_wait"] = out.loc[rows, "back_close_wait"] + np.floor((rate_per_hour or 24.0) * hours)
    elif kind == "disk":
        out.loc[rows, "disk_usage_pct"] = np.minimum(100.0, out.loc[rows, "disk_usage_pct"] + (rate_per_hour or 2.0) * hours)
    else:
        raise ValueError(f"unknown leak kind {kind!r}: {', '.join(LEAK_KINDS)}")
    return out
