"""What the daemon's flags are worth: false alarms on a held-out healthy fleet and detection
delay on injected leaks, measured by replaying fleets through the daemon's own ``Daemon``
(the same ingest and scoring code as the HTTP routes, without HTTP), one timestamp per batch.

Both are reported for the window score (``flagged``) and for the record score alone
(``record_flag``, what the daemon did before it scored windows). Intervals are bootstrap 95 %
intervals over servers (false alarms) and over leaks (delays).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from obslab.serve.fleet import fleet_names, guide_fleet, inject_leak
from obslab.serve.model_store import ServerModel
from obslab.serve.sample_records import records_from_frame
from obslab.serve.schemas import FeedRequest
from obslab.serve.service import Daemon
from obslab.serve.store import RecordStore

__all__ = ["replay", "false_alarms", "leak_delays", "bootstrap_ci"]

SETTLE = 12  # ticks (an hour at 5 minutes) before flags count: the daemon has no history yet


def replay(model: ServerModel, df: pd.DataFrame, window: int = 2880, warmup: int = 100) -> pd.DataFrame:
    """Feed ``df`` one timestamp at a time; after each, every server's prediction."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="obslab-replay-") as tmp:
        store = RecordStore(Path(tmp) / "state.sqlite", keep=window)
        daemon = Daemon(model, store, window, warmup)
        for tick, (ts, group) in enumerate(df.groupby("timestamp", sort=True)):
            daemon.ingest(FeedRequest.model_validate({"records": records_from_frame(group)}).records)
            pred = daemon.predictions()
            for s in pred["servers"]:
                rows.append((tick, ts, s["server_name"], s["score"], s["flagged"], s["record_flag"]))
        store.close()
    return pd.DataFrame(rows, columns=["tick", "timestamp", "server_name", "score", "flagged", "record_flag"])


def bootstrap_ci(values: np.ndarray, stat=np.mean, n: int = 2000, seed: int = 0) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draws = [stat(values[rng.integers(0, len(values), len(values))]) for _ in range(n)]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def false_alarms(model: ServerModel, days: float = 1, seed: int = 101) -> dict:
    """Share of server-checks flagged on a healthy fleet the model never saw (another seed)."""
    scored = replay(model, guide_fleet(days=days, seed=seed))
    settled = scored[scored["tick"] >= SETTLE]
    out = {"fleet_seed": seed, "days": days, "servers": int(settled["server_name"].nunique()),
           "checks": int(len(settled))}
    for col in ("flagged", "record_flag"):
        per_server = settled.groupby("server_name")[col].mean().to_numpy()
        out[col] = {"rate": float(settled[col].mean()), "ci95": bootstrap_ci(per_server),
                    "servers_ever_flagged": int((per_server > 0).sum())}
    return out


def leak_delays(model: ServerModel, days: float = 1, seed: int = 202, horizon_hours: float = 8) -> dict:
    """One leak per named profile and kind, starting at staggered hours; per leak the time from
    its start to the server's first flag (censored at ``horizon_hours``: "not caught")."""
    names = fleet_names()
    df = guide_fleet(days=days, seed=seed, names=names)
    t0 = df["timestamp"].min()
    leaks = []
    victims = [n for n in names if not n.startswith("srv")][::3]  # two servers of each named profile
    for i, server in enumerate(victims):
        kind = "memory" if i % 2 == 0 else "close_wait"
        start = t0 + pd.Timedelta(hours=2 + (i * 1.5) % 12)
        df = inject_leak(df, server, start, kind)
        leaks.append((server, kind, start))
    scored = replay(model, df)
    rows = []
    for server, kind, start in leaks:
        mine = scored[(scored["server_name"] == server) & (scored["timestamp"] >= start)]
        mine = mine[mine["timestamp"] <= start + pd.Timedelta(hours=horizon_hours)]
        before = scored[(scored["server_name"] == server) & (scored["timestamp"] < start)
                        & (scored["tick"] >= SETTLE)]
        row = {"server": server, "kind": kind, "start": start.isoformat(),
               "flagged_before_start": int(before["flagged"].sum())}
        for col in ("flagged", "record_flag"):
            hit = mine[mine[col]]
            row[f"{col}_delay_h"] = (float((hit["timestamp"].iloc[0] - start).total_seconds() / 3600)
                                     if len(hit) else float("nan"))
        rows.append(row)
    table = pd.DataFrame(rows)
    out = {"leaks": len(table), "horizon_hours": horizon_hours, "table": table}
    for col in ("flagged", "record_flag"):
        delays = table[f"{col}_delay_h"].to_numpy()
        caught = delays[~np.isnan(delays)]
        out[col] = {"caught": int(len(caught)), "median_delay_h": float(np.median(caught)) if len(caught) else None,
                    "median_ci95": bootstrap_ci(caught, np.median) if len(caught) else None}
    return out
