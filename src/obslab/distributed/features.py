"""Window features of a lake, one task per day, through :func:`obslab.features.window_features`.

A window never crosses a day (the window length must divide a day), so each day's task sees
every event of its windows. ``window_features`` builds its grid from the events it is given,
which per day would lose the empty windows at the edges and services absent that day: each
task passes the run's service list and explicit bounds (the day, clipped to the lake's first
and last event), so the days' rows stacked equal the rows of one call over the whole lake.
"""

from __future__ import annotations

import pandas as pd

from obslab.distributed._engine import get_engine
from obslab.lake import DAY_MS, day_bounds_ms, find_lake, lake_schema, read_lake, read_manifest

SIGNALS = ("traces", "logs", "metrics")


def _feature_tables(lake, date: str) -> dict:
    import pyarrow.dataset as ds

    from obslab.features import _SIGNAL_COLUMNS
    from obslab.lake import lake_files
    from obslab.ocsf.schemas import parquet_leaves

    out = {}
    for signal in SIGNALS:
        if not lake_files(lake, signal, date=date):
            out[signal] = None
            continue
        wanted = set(_SIGNAL_COLUMNS[signal])
        cols = {p: ds.field(*p.split(".")) for p, _ in parquet_leaves(lake_schema(lake, signal)) if p in wanted}
        out[signal] = read_lake(lake, signal, columns=cols, dates=[date])
    return out


def day_services(ctx: dict, date: str) -> list[str]:
    """The services ``window_features(services="all")`` would see in one day (a task)."""
    from obslab.features import _metric_events, log_events, trace_events

    t = _feature_tables(ctx["lake"], date)
    found = set()
    for signal, build in (("traces", trace_events), ("logs", log_events), ("metrics", _metric_events)):
        if t[signal] is not None and t[signal].num_rows:
            found |= set(build(t[signal])["service"].dropna().unique())
    return sorted(found)


def day_windows(ctx: dict, date: str) -> pd.DataFrame:
    """One day's (service, window) rows with the run's services and the day's bounds (a task)."""
    from obslab.features import window_features

    t = _feature_tables(ctx["lake"], date)
    lo, hi = day_bounds_ms(date)
    start, end = max(lo, ctx["time_min"]), min(hi - 1, ctx["time_max"])
    return window_features(t["traces"], t["logs"], t["metrics"], ctx["window_ms"], ctx["services"],
                           start_ms=start, end_ms=end)


def canonical_windows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows by (service, window), columns sorted: a stable form to store and compare."""
    return df.sort_values(["service", "window_start_ms"], kind="stable").reset_index(drop=True)[sorted(df.columns)]


def lake_window_features(lake, engine="local", address: str | None = None, window_ms: int = 60_000,
                         services="all") -> pd.DataFrame:
    """``window_features`` over every day of a lake (or a dataset folder holding one)."""
    lake = find_lake(lake) or lake
    if DAY_MS % window_ms:
        raise ValueError(f"window_ms={window_ms} must divide a day ({DAY_MS} ms) so no window crosses a partition")
    parts = [p for p in read_manifest(lake)["partitions"].values() if p["source"] in SIGNALS and p["rows"]]
    if not parts:
        raise ValueError(f"{lake}: no events in any signal")
    dates = sorted({p["date"] for p in parts})
    ctx = {"lake": str(lake), "window_ms": window_ms,
           "time_min": min(p["time_min"] for p in parts), "time_max": max(p["time_max"] for p in parts)}
    eng = get_engine(engine, address)
    try:
        if services == "all":
            services = sorted(set().union(*eng.map(day_services, [(d,) for d in dates], shared=ctx)))
        ctx["services"] = services
        frames = eng.map(day_windows, [(d,) for d in dates], shared=ctx)
    finally:
        if eng is not engine:
            eng.close()
    return canonical_windows(pd.concat(frames, ignore_index=True))
