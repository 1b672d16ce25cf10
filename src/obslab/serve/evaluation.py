"""Where the daemon's thresholds come from and what its flags are worth, measured by replaying
fleets through the daemon's own ``Daemon`` (the same ingest and scoring code as the HTTP routes,
without HTTP), one timestamp per batch.

Three kinds of fleet of the metrics-feed guide's profiles, never the same seed:

- training (``obslab serve train --from synth --seed S``: seed S): the encoder, the reference
  records and the profile statistics;
- validation (seed S + ``VALIDATION_OFFSET``): ``calibrate`` chooses the four thresholds (record,
  profile, own, trend) there, so that the share of healthy server-checks flagged by any of them
  is ``target_rate``;
- held-out (seeds 101 and 202 by default): ``false_alarms`` and ``leak_delays`` only measure.

False alarms are reported overall and per profile, with bootstrap 95 % intervals over servers
(checks of one server are not independent). Leak delays are in minutes and in records (one
record per server every 5 minutes), beside the time a static alarm at the profile's healthy
maximum would take (``extreme_min``): the point of window scoring is to flag before that.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from obslab.serve import _window
from obslab.serve.fleet import LEAK_KINDS, PROFILES, SYNTH_PER_PROFILE, fleet_names, guide_fleet, inject_leak, profile_of
from obslab.serve.model_store import ServerModel
from obslab.serve.sample_records import records_from_frame
from obslab.serve.schemas import FeedRequest
from obslab.serve.service import Daemon
from obslab.serve.store import RecordStore

__all__ = ["replay", "calibrate", "false_alarms", "leak_delays", "bootstrap_ci", "SETTLE", "VALIDATION_OFFSET",
           "COMPONENTS"]

SETTLE = 12  # ticks (an hour at 5 minutes) before flags count: the daemon has no history yet
VALIDATION_OFFSET = 1000
COMPONENTS = ("record", *_window.COMPONENTS)


def replay(model: ServerModel, df: pd.DataFrame, window: int = 2880, warmup: int = 100) -> pd.DataFrame:
    """Feed ``df`` one timestamp at a time; after each, every server's prediction and its
    components (each a ratio to its threshold; NaN while a component has too little history)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="obslab-replay-") as tmp:
        store = RecordStore(Path(tmp) / "state.sqlite", keep=window)
        daemon = Daemon(model, store, window, warmup)
        for tick, (ts, group) in enumerate(df.groupby("timestamp", sort=True)):
            daemon.ingest(FeedRequest.model_validate({"records": records_from_frame(group)}).records)
            for s in daemon.predictions()["servers"]:
                comps = [s["components"].get(c, np.nan) for c in COMPONENTS]
                rows.append((tick, ts, s["server_name"], s["score"], s["flagged"], s["record_flag"], *comps))
        store.close()
    return pd.DataFrame(rows, columns=["tick", "timestamp", "server_name", "score", "flagged", "record_flag",
                                       *COMPONENTS])


def calibrate(model: ServerModel, df: pd.DataFrame, target_rate: float = 0.005) -> dict:
    """Thresholds for which the share of ``df``'s settled server-checks flagged by any component
    is ``target_rate`` (every component at the same quantile of its own scores, the quantile
    found by bisection). ``df``: a healthy validation fleet, never the held-out one."""
    if not 0 < target_rate < 1:
        raise ValueError(f"target false-alarm rate must be in (0, 1), got {target_rate}")
    settled = replay(model, df)
    settled = settled[settled["tick"] >= SETTLE]
    if settled.empty:
        raise ValueError("the validation fleet is too short to calibrate on (needs more than an hour)")
    r = settled[list(COMPONENTS)].fillna(0.0).to_numpy()
    current = np.array([model.threshold] + [model.window_thresholds[c] for c in _window.COMPONENTS])

    def at(q: float) -> tuple[float, np.ndarray]:
        thr = np.quantile(r, q, axis=0)
        thr = np.where(thr > 0, thr, r.max(axis=0))  # a mostly absent component: flag none of it
        return float((r > thr).any(axis=1).mean()), thr

    lo, hi = 1.0 - target_rate, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if at(mid)[0] > target_rate else (lo, mid)
    rate, ratio = at(hi)
    ratio = np.where(ratio > 0, ratio, 1.0)
    chosen = {c: float(current[j] * ratio[j]) for j, c in enumerate(COMPONENTS)}
    chosen.update({c: max(chosen[c], _window.MIN_Z) for c in _window.COMPONENTS})
    return {"thresholds": chosen,
            "target_rate": target_rate, "quantile": hi, "validation_rate": rate,
            "validation_checks": int(len(settled)), "validation_servers": int(settled["server_name"].nunique())}


def bootstrap_ci(values: np.ndarray, stat=np.mean, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = [stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def _rates(settled: pd.DataFrame, col: str) -> dict:
    per_server = settled.groupby("server_name")[col].mean().to_numpy()
    return {"rate": float(settled[col].mean()), "ci95": bootstrap_ci(per_server),
            "servers": int(len(per_server)), "servers_ever_flagged": int((per_server > 0).sum())}


def false_alarms(model: ServerModel, days: float = 1, seed: int = 101, per_profile: int = SYNTH_PER_PROFILE) -> dict:
    """Share of server-checks flagged on a healthy fleet the model never saw (another seed),
    ``per_profile`` servers of each of the guide's profiles, overall and per profile."""
    scored = replay(model, guide_fleet(days=days, seed=seed, names=fleet_names(per_profile, generic=per_profile)))
    settled = scored[scored["tick"] >= SETTLE].assign(profile=lambda d: d["server_name"].map(profile_of))
    out = {"fleet_seed": seed, "days": days, "servers": int(settled["server_name"].nunique()),
           "checks": int(len(settled))}
    for col in ("flagged", "record_flag"):
        out[col] = _rates(settled, col)
    out["per_profile"] = {p: _rates(settled[settled["profile"] == p], "flagged") for p in PROFILES}
    return out


def _first(times: pd.Series, start: pd.Timestamp) -> float:
    return float((times.iloc[0] - start).total_seconds() / 60) if len(times) else float("nan")


def leak_delays(model: ServerModel, days: float = 1, seed: int = 202, horizon_hours: float = 8) -> dict:
    """One leak of each kind (memory, CLOSE_WAIT, disk) on a server of each profile, starting at
    staggered hours; per leak the minutes (and records) from its start to the server's first
    flag (censored at ``horizon_hours``: not caught), the minutes until the leaked metric passes
    the highest healthy value of the server's profile in the same fleet (``extreme_min``), and
    until the leak has added the profile's whole healthy range to it (``range_min``)."""
    names = fleet_names()
    healthy = guide_fleet(days=days, seed=seed, names=names)
    df, leaks = healthy, []
    t0 = healthy["timestamp"].min()
    for i, profile in enumerate(PROFILES):
        mine = [n for n in names if profile_of(n) == profile]
        for j, kind in enumerate(LEAK_KINDS):
            start = t0 + pd.Timedelta(hours=2 + ((3 * i + j) * 1.25) % 12)
            df = inject_leak(df, mine[j], start, kind)
            leaks.append((mine[j], profile, kind, start))
    scored = replay(model, df)
    rows = []
    for server, profile, kind, start in leaks:
        metric = LEAK_KINDS[kind]
        ceiling = healthy.loc[healthy["server_name"].map(profile_of) == profile, metric].max()
        end = start + pd.Timedelta(hours=horizon_hours)
        mine = scored[(scored["server_name"] == server) & (scored["timestamp"] >= start) & (scored["timestamp"] <= end)]
        before = scored[(scored["server_name"] == server) & (scored["timestamp"] < start) & (scored["tick"] >= SETTLE)]
        series = df[(df["server_name"] == server) & (df["timestamp"] >= start) & (df["timestamp"] <= end)]
        row = {"server": server, "profile": profile, "kind": kind, "start": start.isoformat(),
               "flagged_before_start": int(before["flagged"].sum())}
        row["delay_min"] = _first(mine.loc[mine["flagged"], "timestamp"], start)
        row["delay_records"] = row["delay_min"] / 5 + 1 if row["delay_min"] == row["delay_min"] else float("nan")
        row["record_only_delay_min"] = _first(mine.loc[mine["record_flag"], "timestamp"], start)
        row["extreme_min"] = _first(series.loc[series[metric] > ceiling, "timestamp"], start)
        # the time the leak takes to add the profile's whole healthy range (max - min) to the metric
        spread = ceiling - healthy.loc[healthy["server_name"].map(profile_of) == profile, metric].min()
        added = series[metric] - healthy.loc[series.index, metric]
        row["range_min"] = _first(series.loc[added >= spread, "timestamp"], start)
        rows.append(row)
    table = pd.DataFrame(rows)
    out = {"leaks": len(table), "horizon_hours": horizon_hours, "table": table}
    for col, name in (("delay_min", "flagged"), ("record_only_delay_min", "record_flag"), ("extreme_min", "extreme")):
        delays = table[col].to_numpy()
        caught = delays[~np.isnan(delays)]
        out[name] = {"caught": int(len(caught)), "median_min": float(np.median(caught)) if len(caught) else None,
                     "median_ci95": bootstrap_ci(caught, np.median) if len(caught) else None}
    return out
