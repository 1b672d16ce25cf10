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

A replicate weights each row by how often its group was drawn. The metrics are computed from
per-group sums (:class:`GroupStats`, once per score vector), so a replicate costs a few small
matrix products, however many rows the dataset has; ``weighted_auroc`` and ``weighted_auprc``
are the row-level definitions they are tested against.
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
    "GroupStats",
    "METRICS",
    "point_metrics",
    "bootstrap_metrics",
    "bootstrap_over_groups",
    "weighted_auroc",
    "weighted_auprc",
]

LEVEL = 0.95
CHUNK_CELLS = 4_000_000  # replicates x fault rows evaluated at once (AUPRC)


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
    """Bootstrap draws over incidents and normal blocks, as counts per group.

    ``is_anomaly``, ``incident_ids`` (of fault rows) and ``blocks`` (of normal rows, e.g.
    :func:`normal_blocks`) are per row. ``incident_counts`` ``[n_boot, incidents]`` and
    ``block_counts`` ``[n_boot, blocks]`` say how often each group was drawn in each replicate
    (in the order of ``incidents`` and ``blocks``); ``seed_choice`` picks a training seed per
    replicate. A row's weight in a replicate is its group's count.
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
        # drawing n groups with replacement = multinomial counts over the groups
        self.incident_counts = _draw_counts(rng, len(self.incidents), self.n_boot)
        self.block_counts = _draw_counts(rng, len(self.blocks), self.n_boot)
        self.seed_choice = rng.integers(0, max(int(n_seeds), 1), self.n_boot)
        self.row_incident = _indices(inc, y, self.incidents)
        self.row_block = _indices(blk, ~y, self.blocks)

    def __len__(self) -> int:
        return self.n_boot

    def draws(self, pick=slice(None)) -> "Draws":
        """Some replicates (a boolean mask, indices or a slice over them) as :class:`Draws`."""
        return Draws(self.incident_counts[pick], self.block_counts[pick])

    def whole(self) -> "Draws":
        """Every group once: the point estimate."""
        return Draws(np.ones((1, len(self.incidents))), np.ones((1, len(self.blocks))))

    def subset(self, rows) -> "Resampler":
        """The same draws restricted to some rows (e.g. one fault family's incidents plus all
        normal rows): groups without rows there drop out of every replicate. Draws are not
        re-made, so methods and subsets stay paired."""
        rows = np.asarray(rows, dtype=bool)
        sub = object.__new__(Resampler)
        sub.is_anomaly, sub.n_boot, sub.seed_choice = self.is_anomaly[rows], self.n_boot, self.seed_choice
        for names, counts, index in (("incidents", "incident_counts", "row_incident"),
                                     ("blocks", "block_counts", "row_block")):
            old = getattr(self, index)[rows]
            kept = np.unique(old[old >= 0])
            remap = np.full(len(getattr(self, names)) + 1, -1)
            remap[kept] = np.arange(len(kept))
            setattr(sub, names, [getattr(self, names)[k] for k in kept])
            setattr(sub, counts, getattr(self, counts)[:, kept])
            setattr(sub, index, np.where(old >= 0, remap[old], -1))
        return sub


def _draw_counts(rng, n_groups: int, n_boot: int) -> np.ndarray:
    if n_groups == 0:
        return np.zeros((n_boot, 0), dtype=np.int64)
    return rng.multinomial(n_groups, np.full(n_groups, 1 / n_groups), size=n_boot)


def _indices(names: np.ndarray, mask: np.ndarray, order: list) -> np.ndarray:
    # each row's position in ``order`` (rows outside ``mask``: -1)
    index = {g: i for i, g in enumerate(order)}
    out = np.full(len(names), -1, dtype=np.int64)
    out[mask] = [index[g] for g in names[mask]]
    return out


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
    """Replicates as group counts: ``incident_counts`` ``[reps, incidents]`` and
    ``block_counts`` ``[reps, blocks]``."""

    incident_counts: np.ndarray
    block_counts: np.ndarray


class GroupStats:
    """What every metric needs from one score vector, summed per incident and per block.

    A replicate's metric is then a few products of these with its group counts: cheap however
    many rows there are. For each fault row i (sorted by incident): ``pos_at_least[i, g]``
    counts the fault rows of incident g scoring at least ``s_i`` and ``neg_at_least[i, h]`` the
    normal rows of block h; ``pairs[g, h]`` counts (fault of g, normal of h) pairs ranked
    right, ties one half (AUROC's numerator).
    """

    def __init__(self, scores, threshold: float, resampler: Resampler):
        s = np.asarray(scores, dtype=np.float64)
        y = resampler.is_anomaly
        if len(s) != len(y):
            raise ValueError(f"scores must have one entry per resampled row ({len(y)})")
        n_i, n_b = len(resampler.incidents), len(resampler.blocks)
        gi, hb = resampler.row_incident[y], resampler.row_block[~y]
        pos, neg = s[y], s[~y]
        self.pos_incident = gi
        self.positives = np.bincount(gi, minlength=n_i).astype(np.float64)
        self.negatives = np.bincount(hb, minlength=n_b).astype(np.float64)
        self.hits = np.bincount(gi, weights=pos > threshold, minlength=n_i)
        self.false_alarms = np.bincount(hb, weights=neg > threshold, minlength=n_b)
        self.detected = (self.hits > 0).astype(np.float64)
        self.pos_at_least = np.zeros((len(pos), n_i))
        self.neg_at_least = np.zeros((len(pos), n_b))
        self.pairs = np.zeros((n_i, n_b))
        for g, mine in enumerate(_sorted_groups(pos, gi, n_i)):
            self.pos_at_least[:, g] = len(mine) - np.searchsorted(mine, pos, "left")
        for h, mine in enumerate(_sorted_groups(neg, hb, n_b)):
            below = np.searchsorted(mine, pos, "left")
            ties = np.searchsorted(mine, pos, "right") - below
            self.neg_at_least[:, h] = len(mine) - below
            self.pairs[:, h] = np.bincount(gi, weights=below + 0.5 * ties, minlength=n_i)


def _sorted_groups(values: np.ndarray, group: np.ndarray, n_groups: int) -> list[np.ndarray]:
    # each group's values, sorted: one lexsort instead of a mask per group
    order = np.lexsort((values, group))
    bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
    return [values[order[bounds[k]:bounds[k + 1]]] for k in range(n_groups)]


def _ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _auroc(st: GroupStats, d: Draws) -> np.ndarray:
    a, b = d.incident_counts, d.block_counts
    return _ratio(((a @ st.pairs) * b).sum(axis=1), (a @ st.positives) * (b @ st.negatives))


def _auprc(st: GroupStats, d: Draws) -> np.ndarray:
    # average precision = mean over (weighted) fault rows of the precision at their own score
    a, b = d.incident_counts, d.block_counts
    out = np.empty(len(a))
    chunk = max(1, CHUNK_CELLS // max(len(st.pos_incident), 1))
    for i in range(0, len(a), chunk):
        ac, bc = a[i:i + chunk], b[i:i + chunk]
        tp, fp = st.pos_at_least @ ac.T, st.neg_at_least @ bc.T  # [fault rows, reps]
        precision = _ratio(tp, tp + fp)
        weight = ac[:, st.pos_incident].T
        out[i:i + chunk] = _ratio(np.nansum(weight * precision, axis=0), weight.sum(axis=0))
    return np.where(b @ st.negatives > 0, out, np.nan)


METRICS: dict[str, Callable[[GroupStats, Draws], np.ndarray]] = {
    "AUROC": _auroc,
    "AUPRC": _auprc,
    "recall": lambda st, d: _ratio(d.incident_counts @ st.hits, d.incident_counts @ st.positives),
    "FPR": lambda st, d: _ratio(d.block_counts @ st.false_alarms, d.block_counts @ st.negatives),
    "incidents detected": lambda st, d: _ratio(d.incident_counts @ st.detected, d.incident_counts.sum(axis=1)),
}


def point_metrics(scores, threshold: float, resampler: Resampler,
                  metrics: Sequence[str] = tuple(METRICS)) -> dict[str, float]:
    """The metrics on all held-out rows once (no resampling)."""
    st, whole = GroupStats(scores, threshold, resampler), resampler.whole()
    return {name: float(METRICS[name](st, whole)[0]) for name in metrics}


def bootstrap_metrics(scores_by_seed: Sequence[np.ndarray], thresholds: Sequence[float],
                      resampler: Resampler, metrics: Sequence[str] = tuple(METRICS),
                      level: float = LEVEL) -> dict[str, Interval]:
    """Each metric with its interval, for one method scored with one or more training seeds.

    ``scores_by_seed[k]`` are the rows' scores from seed k (the rows of ``resampler``),
    ``thresholds[k]`` its alert threshold (fixed on training scores). Point estimate: the mean
    over seeds on all rows; replicate b uses seed ``resampler.seed_choice[b] % n_seeds`` (a
    method without training randomness passes one score vector). Metrics: ``METRICS``
    (AUROC, AUPRC, recall and FPR at the threshold, share of incidents detected).
    """
    n_seeds = len(scores_by_seed)
    if n_seeds == 0 or n_seeds != len(thresholds):
        raise ValueError("one threshold per seed's scores, and at least one seed")
    stats = [GroupStats(s, t, resampler) for s, t in zip(scores_by_seed, thresholds)]
    choice = resampler.seed_choice % n_seeds
    whole = resampler.whole()
    draws = [resampler.draws(choice == k) for k in range(n_seeds)]
    out = {}
    for name in metrics:
        fn = METRICS[name]
        point = float(np.mean([fn(st, whole)[0] for st in stats]))
        reps = np.full(resampler.n_boot, np.nan)
        for k, st in enumerate(stats):
            if len(draws[k].incident_counts):
                reps[choice == k] = fn(st, draws[k])
        out[name] = Interval(point, *_percentiles(reps, level))
    return out
