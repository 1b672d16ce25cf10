"""Scoring a server's recent window, not only its latest record.

For one server, from its records in the daemon's window (oldest first), per metric (on the
model's scale: log1p for the heavy-tailed counters; uptime left out, it only ever climbs):

- ``profile``: how far the current level (mean of the last ``RECENT`` records) lies outside
  the range its fleet profile's healthy training records span (their 0.1 and 99.9 percentiles),
  in the profile's robust spread (1.4826 MAD). Inside the range it is 0: a server that is
  steadily a little unlike its peers is not flagged all day (distance from the profile's median
  did that, on validation fleets: a generic server's disk at 46 % against a median of 40 %);
- ``own``: the current level against the server's own records from before the trend span
  (median, robust spread floored at a tenth of the profile's), so a drift away from its own
  normal counts before the value is extreme for the fleet, and the drift itself does not widen
  the spread it is measured in;
- ``trend``: the t-statistic of a straight-line fit over the last ``TREND`` records, so a steady
  climb (growing CLOSE_WAIT) counts while the level is still ordinary;
- ``drift``: the same over the last ``DRIFT`` records (four hours at 5 minutes): a slow leak (a
  couple of memory points an hour) hides in an hour's noise but not in four hours' (added after
  the one-hour trend alone missed slow memory and disk leaks on a validation fleet).

Each component's score is its largest |z| over metrics; its flag threshold is a high quantile of
the same score over the healthy training fleet (``calibrate``). The same function scores in the
daemon and in calibration, so the two cannot disagree.
"""

from __future__ import annotations

import numpy as np

from obslab.serve.features import LOG_INDEX
from obslab.serve.schemas import METRICS

__all__ = ["COMPONENTS", "WINDOW_METRICS", "RECENT", "TREND", "DRIFT", "HISTORY", "transform", "profile_stats",
           "components", "calibrate", "since"]

COMPONENTS = ("profile", "own", "trend", "drift")
WINDOW_METRICS = tuple(m for m in METRICS if m != "uptime_days")
_IDX = np.array([METRICS.index(m) for m in WINDOW_METRICS])
_LOG = np.isin(np.arange(len(METRICS)), LOG_INDEX)[_IDX]
RECENT = 3  # records averaged as "now": one noisy sample is not a level
TREND = 12  # records the trend is fitted over (an hour at 5 minutes)
DRIFT = 48  # records the slow trend is fitted over (4 hours)
HISTORY = 96  # own-history records used at most (8 hours at 5 minutes)
MIN_Z = 1.0  # no component flags less than one spread away (profile: past its widened range)
ENVELOPE = 0.001  # a profile's healthy range: its training records' 0.1 to 99.9 percentiles
MIN_OWN = 12  # earlier records needed before the own-history component counts
_MAD = 1.4826
# smallest spread a metric is measured in: half a percentage point; 0.15 on log1p counters (at
# small counts one CLOSE_WAIT connection more is ~0.3), so a constant series is not "infinitely" tight
FLOOR = np.where(_LOG, 0.15, 0.5)
CALIBRATION_STRIDE = 3  # every third point of the training histories: neighbours are near-copies


def transform(values: np.ndarray) -> np.ndarray:
    """(n, len(METRICS)) raw values -> (n, len(WINDOW_METRICS)) on the model's scale."""
    x = np.asarray(values, dtype=np.float64)[:, _IDX]
    x[:, _LOG] = np.log1p(np.maximum(x[:, _LOG], 0))
    return x


def _robust(x: np.ndarray, floor: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    med = np.median(x, axis=-2)
    return med, np.maximum(_MAD * np.median(np.abs(x - med[..., None, :]), axis=-2), floor)


def profile_stats(x: np.ndarray, n_servers: int = 0) -> dict:
    """Median, robust spread and healthy range of one profile's transformed records (training).

    The range of ``n_servers`` servers understates the profile's: the next server may lie past
    the extremes. It is widened by range / (n - 1) on each side, the gap by which the range of
    n draws from a uniform spread falls short of the spread's own."""
    med, scale = _robust(x, FLOOR)
    lo, hi = np.quantile(x, [ENVELOPE, 1 - ENVELOPE], axis=0)
    if n_servers > 1:
        lo, hi = lo - (hi - lo) / (n_servers - 1), hi + (hi - lo) / (n_servers - 1)
    return {"median": med.tolist(), "scale": scale.tolist(), "low": lo.tolist(), "high": hi.tolist()}


def components(x: np.ndarray, profile: dict) -> dict[str, np.ndarray]:
    """|z| per window metric for each component; NaN where the history is too short.

    ``x`` is one server's (n, metrics) history, or a stack (servers, n, metrics) of equally long
    histories with ``profile`` arrays stacked to (servers, metrics): one numpy pass for a fleet."""
    x = x[..., -HISTORY:, :]
    p_scale = np.asarray(profile["scale"])
    level = x[..., -RECENT:, :].mean(axis=-2)
    if "low" in profile:
        outside = np.maximum(np.maximum(level - np.asarray(profile["high"]), np.asarray(profile["low"]) - level), 0)
    else:  # a model folder from before the range was kept
        outside = np.abs(level - np.asarray(profile["median"]))
    out = {"profile": outside / p_scale}
    base = x[..., :-TREND, :]
    if base.shape[-2] >= MIN_OWN:
        med, scale = _robust(base, np.maximum(0.1 * p_scale, FLOOR))
        out["own"] = np.abs(level - med) / scale
    else:
        out["own"] = np.full(level.shape, np.nan)
    out["trend"] = _slope_t(x, TREND, level.shape)
    out["drift"] = _slope_t(x, DRIFT, level.shape)
    return out


def _slope_t(x: np.ndarray, n: int, shape: tuple) -> np.ndarray:
    """|t| of the least-squares slope over the last ``n`` records (NaN with fewer)."""
    if x.shape[-2] < n:
        return np.full(shape, np.nan)
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    sxx = float((t ** 2).sum())
    y = x[..., -n:, :]
    centred = y - y.mean(axis=-2, keepdims=True)
    slope = np.einsum("t,...tm->...m", t, centred) / sxx
    resid = centred - t[:, None] * slope[..., None, :]
    se = np.sqrt((resid ** 2).sum(axis=-2) / (n - 2) / sxx)
    return np.abs(slope) / np.maximum(se, FLOOR / np.sqrt(sxx))


def calibrate(histories: list[tuple[np.ndarray, dict]], quantile: float) -> dict[str, float]:
    """Per component, the ``quantile`` of its score over every point of healthy histories
    (each a server's transformed records, oldest first, with its profile statistics)."""
    scores: dict[str, list[float]] = {c: [] for c in COMPONENTS}
    for x, prof in histories:
        for end in range(RECENT, len(x) + 1, CALIBRATION_STRIDE):
            for c, z in components(x[:end], prof).items():
                if not np.isnan(z).all():
                    scores[c].append(float(np.nanmax(z)))
    return {c: max(float(np.quantile(v, quantile)), MIN_Z) for c, v in scores.items() if v}


def since(x: np.ndarray, metric: int, profile: dict) -> int:
    """How many records back the metric's current excursion began: the trailing run of records
    on the same side of its earlier median by more than two profile spreads (at least 1)."""
    x = x[-HISTORY:]
    base = x[:-TREND] if len(x) >= TREND + MIN_OWN else x
    med = np.median(base[:, metric])
    gap = 2 * np.asarray(profile["scale"])[metric]
    side = np.sign(x[-RECENT:, metric].mean() - med)
    away = side * (x[:, metric] - med) > gap
    run = 0
    for flag in away[::-1]:
        if not flag:
            break
        run += 1
    return max(run, 1)
