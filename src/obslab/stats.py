"""95 % intervals that respect how the evidence was collected: by incident, never by row.

Windows of one incident are near-copies, and so are neighbouring normal windows; resampling
rows would pretend a 20-window incident is 20 independent pieces of evidence and give intervals
far too narrow. Here the units of resampling are

- each held-out **incident** (with all its fault windows), and
- each **normal block**: the normal test time between consecutive incident starts of a run
  (:func:`normal_blocks`), with all its windows,

drawn with replacement, incidents and blocks separately (a stratified cluster bootstrap), and
the metric is recomputed on every replicate; the interval is the 2.5 and 97.5 percentiles.

**Training seeds.** An encoder trained with another seed scores differently. Each bootstrap
replicate also draws one training seed uniformly, and the metric is computed on that seed's
scores, so the interval covers both "which incidents happened to be held out" and "which seed
the encoder was trained with"; the point estimate is the mean over seeds of the metric on all
the data. Every method is evaluated on the same draws (a :class:`Resampler` with one seed), so
the replicates of two methods are paired.

Row metrics use per-row weights (how often the row's group was drawn) over scores sorted once,
so a replicate costs O(rows), not a fresh sort.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Interval",
    "separated",
    "normal_blocks",
    "Resampler",
    "Draws",
    "MetricFn",
    "ROW_METRICS",
    "bootstrap_metrics",
    "bootstrap_over_groups",
    "weighted_auroc",
    "weighted_auprc",
]

LEVEL = 0.95
CHUNK_CELLS = 4_000_000  # replicates x rows evaluated at once


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap percentile interval."""

    estimate: float
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def separated(a: Interval, b: Interval) -> int:
    """+1 if ``a``'s interval lies wholly above ``b``'s, -1 if wholly below, 0 if they overlap
    (or either is undefined): only a non-zero answer names a winner."""
    if not all(np.isfinite([a.low, a.high, b.low, b.high])):
        return 0
    if a.low > b.high:
        return 1
    if a.high < b.low:
        return -1
    return 0


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_over_groups(per_group_values, fn: Callable = np.mean, n_boot: int = 2000, seed: int = 0,
                          *, level: float = LEVEL) -> Interval:
    """Percentile interval of ``fn`` over groups resampled with replacement.

    ``per_group_values``: one entry per independent group (an incident, say): scalars or any
    objects. ``fn(sample)`` gets the resampled entries (``per_group_values`` indexed by the drawn
    group indices: a numpy array when ``per_group_values`` is one, else a list) and returns a
    number; e.g. per-incident AC@k hits (0/1) with ``fn=np.mean`` give AC@k with its interval.
    Returns ``Interval(fn(all groups), low, high)``; the same ``seed`` gives the same interval.
    This name and signature are stable (the root-cause chapter uses them).
    """
    values = per_group_values if isinstance(per_group_values, np.ndarray) else list(per_group_values)
    n = len(values)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"))

    def take(idx):
        return values[idx] if isinstance(values, np.ndarray) else [values[i] for i in idx]

    rng = np.random.default_rng(seed)
    stats = np.array([fn(take(rng.integers(0, n, n))) for _ in range(int(n_boot))], dtype=np.float64)
    return Interval(float(fn(take(np.arange(n)))), *_percentiles(stats, level))


def normal_blocks(times_ms, incident_starts_ms, runs=None) -> np.ndarray:
    """Block id of each row: its run and how many of that run's incidents started at or before
    it, e.g. ``"run-a#3"`` (the normal time between the 3rd and 4th incident start).

    ``incident_starts_ms``: a list of start times (one run), or a mapping run -> start times.
    """
    t = np.asarray(times_ms, dtype=np.int64)
    runs = np.full(len(t), "", dtype=object) if runs is None else np.asarray(runs, dtype=object)
    if not isinstance(incident_starts_ms, Mapping):
        incident_starts_ms = {r: incident_starts_ms for r in set(runs.tolist())}
    out = np.empty(len(t), dtype=object)
    for run in set(runs.tolist()):
        m = runs == run
        starts = np.sort(np.asarray(incident_starts_ms.get(run, []), dtype=np.int64))
        out[m] = [f"{run}#{k}" for k in np.searchsorted(starts, t[m], side="right")]
    return out


class Resampler:
    """Bootstrap draws over incidents and normal blocks, as per-row weights.

    ``is_anomaly``, ``incident_ids`` (of fault rows) and ``blocks`` (of normal rows, e.g.
    :func:`normal_blocks`) are per row. ``weights`` is ``[n_boot, rows]``: how many times each
    row's group was drawn in each replicate; ``incident_counts`` is ``[n_boot, incidents]`` in
    the order of ``incidents``; ``seed_choice`` picks a training seed per replicate.
    """

    def __init__(self, is_anomaly, incident_ids, blocks, n_boot: int = 1000, seed: int = 0,
                 n_seeds: int = 1):
        y = np.asarray(is_anomaly).astype(bool)
        inc = np.asarray(incident_ids, dtype=object)
        blk = np.asarray(blocks, dtype=object)
        if not len(y) == len(inc) == len(blk):
            raise ValueError("is_anomaly, incident_ids and blocks must have one entry per row")
        if (y & (inc == None)).any():  # noqa: E711 (elementwise)
            raise ValueError("every fault row needs its incident id")
        self.is_anomaly = y
        self.incidents = sorted(set(inc[y].tolist()))
        self.blocks = sorted(set(blk[~y].tolist()))
        self.n_boot = int(n_boot)
        rng = np.random.default_rng(seed)
        n_i, n_b = len(self.incidents), len(self.blocks)
        # drawing n groups with replacement = multinomial counts over the groups
        self.incident_counts = rng.multinomial(n_i, np.full(n_i, 1 / n_i), size=self.n_boot) if n_i \
            else np.zeros((self.n_boot, 0), dtype=np.int64)
        block_counts = rng.multinomial(n_b, np.full(n_b, 1 / n_b), size=self.n_boot) if n_b \
            else np.zeros((self.n_boot, 0), dtype=np.int64)
        self.seed_choice = rng.integers(0, max(int(n_seeds), 1), self.n_boot)
        group = np.empty(len(y), dtype=np.int64)
        inc_index = {g: i for i, g in enumerate(self.incidents)}
        blk_index = {g: n_i + i for i, g in enumerate(self.blocks)}
        group[y] = [inc_index[g] for g in inc[y]]
        group[~y] = [blk_index[g] for g in blk[~y]]
        self.row_incident = np.where(y, group, -1)
        self.weights = np.hstack([self.incident_counts, block_counts])[:, group].astype(np.float64)

    def __len__(self) -> int:
        return self.n_boot

    def draws(self, pick=slice(None)) -> Draws:
        """Some replicates (a boolean mask, indices or a slice over them) as :class:`Draws`."""
        return Draws(self.weights[pick], self.incident_counts[pick], self.row_incident)

    def whole(self) -> Draws:
        """All rows and incidents once: the point estimate."""
        return Draws(np.ones((1, len(self.is_anomaly))), np.ones((1, len(self.incidents))),
                     self.row_incident)

    def subset(self, rows) -> "Resampler":
        """The same draws restricted to some rows (e.g. one fault family's incidents plus all
        normal rows): incidents outside ``rows`` drop out of every replicate, normal blocks are
        drawn as before. Draws are not re-made, so methods stay paired."""
        rows = np.asarray(rows, dtype=bool)
        sub = object.__new__(Resampler)
        kept = sorted(set(self.row_incident[rows & self.is_anomaly].tolist()))
        sub.is_anomaly = self.is_anomaly[rows]
        sub.incidents = [self.incidents[i] for i in kept]
        sub.blocks = self.blocks
        sub.n_boot = self.n_boot
        sub.incident_counts = self.incident_counts[:, kept]
        sub.seed_choice = self.seed_choice
        remap = {old: new for new, old in enumerate(kept)}
        sub.row_incident = np.array([remap.get(i, -1) for i in self.row_incident[rows]], dtype=np.int64)
        sub.weights = self.weights[:, rows]
        return sub


def _tie_blocks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # rows sorted by descending score, and where each run of tied scores starts
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    return order, starts


def _block_sums(w: np.ndarray, y: np.ndarray, order: np.ndarray, starts: np.ndarray):
    # weighted positives and negatives per tie block, for each replicate (rows of w)
    wp = (w * y)[:, order]
    wn = (w * ~y)[:, order]
    return np.add.reduceat(wp, starts, axis=1), np.add.reduceat(wn, starts, axis=1)


def weighted_auroc(y, scores, weights) -> np.ndarray:
    """AUROC (ties count one half) with row weights; ``weights`` ``[rows]`` or ``[reps, rows]``.
    Equals ``sklearn.metrics.roc_auc_score`` for unit weights."""
    y = np.asarray(y, bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order, starts = _tie_blocks(np.asarray(scores, dtype=np.float64))
    pos, neg = _block_sums(w, y, order, starts)
    above = np.cumsum(pos, axis=1) - pos
    total_p, total_n = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (neg * (above + 0.5 * pos)).sum(axis=1) / (total_p * total_n)


def weighted_auprc(y, scores, weights) -> np.ndarray:
    """Average precision with row weights (a step per distinct score, as
    ``sklearn.metrics.average_precision_score``); ``weights`` ``[rows]`` or ``[reps, rows]``."""
    y = np.asarray(y, bool)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    order, starts = _tie_blocks(np.asarray(scores, dtype=np.float64))
    pos, neg = _block_sums(w, y, order, starts)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        ap = (pos * precision).sum(axis=1) / pos.sum(axis=1)
    return np.where(neg.sum(axis=1) > 0, ap, np.nan)


@dataclass
class Draws:
    """Replicates as weights: ``weights`` ``[reps, rows]``, ``incident_counts`` ``[reps,
    incidents]``, and each row's incident index (-1 for normal rows)."""

    weights: np.ndarray
    incident_counts: np.ndarray
    row_incident: np.ndarray


def _recall(y, s, thr, d: Draws):
    with np.errstate(invalid="ignore", divide="ignore"):
        return (d.weights * (y & (s > thr))).sum(axis=1) / (d.weights * y).sum(axis=1)


def _fpr(y, s, thr, d: Draws):
    with np.errstate(invalid="ignore", divide="ignore"):
        return (d.weights * (~y & (s > thr))).sum(axis=1) / (d.weights * ~y).sum(axis=1)


def _detection_rate(y, s, thr, d: Draws):
    # per incident: was any of its fault rows above the threshold? then the drawn share
    hit = np.zeros(d.incident_counts.shape[1], dtype=bool)
    np.logical_or.at(hit, d.row_incident[y & (s > thr)], True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (d.incident_counts * hit).sum(axis=1) / d.incident_counts.sum(axis=1)


MetricFn = Callable[[np.ndarray, np.ndarray, float, Draws], np.ndarray]

# name -> fn(y, scores, threshold, draws) -> one value per replicate
ROW_METRICS: dict[str, MetricFn] = {
    "AUROC": lambda y, s, thr, d: weighted_auroc(y, s, d.weights),
    "AUPRC": lambda y, s, thr, d: weighted_auprc(y, s, d.weights),
    "recall": _recall,
    "FPR": _fpr,
    "incidents detected": _detection_rate,
}


def bootstrap_metrics(scores_by_seed: Sequence[np.ndarray], thresholds: Sequence[float],
                      resampler: "Resampler", metrics: Sequence[str] = tuple(ROW_METRICS),
                      level: float = LEVEL) -> dict[str, Interval]:
    """Each metric with its interval, for one method scored with one or more training seeds.

    ``scores_by_seed[k]`` are the rows' scores from seed k (the rows of ``resampler``),
    ``thresholds[k]`` its alert threshold (fixed on training scores). Point estimate: the mean
    over seeds on all rows; replicate b uses seed ``resampler.seed_choice[b] % n_seeds`` (a
    method without training randomness passes one score vector). Metrics: ``ROW_METRICS``
    (AUROC, AUPRC, recall and FPR at the threshold, share of incidents detected).
    """
    y = resampler.is_anomaly
    n_seeds = len(scores_by_seed)
    if n_seeds == 0 or n_seeds != len(thresholds):
        raise ValueError("one threshold per seed's scores, and at least one seed")
    scores = [np.asarray(s, np.float64) for s in scores_by_seed]
    if any(len(s) != len(y) for s in scores):
        raise ValueError(f"scores must have one entry per resampled row ({len(y)})")
    choice = resampler.seed_choice % n_seeds
    whole = resampler.whole()
    # replicates in chunks, so [chunk, rows] weight matrices stay small on long datasets
    chunk = max(1, CHUNK_CELLS // max(len(y), 1))
    out = {}
    for name in metrics:
        fn = ROW_METRICS[name]
        point = float(np.mean([fn(y, s, t, whole)[0] for s, t in zip(scores, thresholds)]))
        reps = np.full(resampler.n_boot, np.nan)
        for k, (s, t) in enumerate(zip(scores, thresholds)):
            mine = np.flatnonzero(choice == k)
            for i in range(0, len(mine), chunk):
                reps[mine[i:i + chunk]] = fn(y, s, t, resampler.draws(mine[i:i + chunk]))
        out[name] = Interval(point, *_percentiles(reps, level))
    return out
