"""Bootstrap intervals over incidents: right where the answer is known, wider than row
bootstraps when rows of one incident move together, narrower with more incidents."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from obslab.stats import (
    METRICS,
    GroupStats,
    Interval,
    Resampler,
    bootstrap_metrics,
    bootstrap_over_groups,
    normal_blocks,
    point_metrics,
    separated,
    weighted_auprc,
    weighted_auroc,
)


def held_out(n_incidents=12, rows_per_incident=6, n_blocks=13, rows_per_block=40, shift=2.0,
             incident_sd=0.0, seed=0):
    """Fault rows grouped by incident (each incident shifted by its own random effect), normal
    rows grouped in blocks; -> y, incident ids, block ids, scores."""
    rng = np.random.default_rng(seed)
    y, inc, blk, s = [], [], [], []
    for i in range(n_incidents):
        effect = shift + rng.normal(scale=incident_sd)
        y += [True] * rows_per_incident
        inc += [f"inc-{i}"] * rows_per_incident
        blk += [None] * rows_per_incident
        s += list(effect + rng.normal(size=rows_per_incident))
    for b in range(n_blocks):
        y += [False] * rows_per_block
        inc += [None] * rows_per_block
        blk += [f"#{b}"] * rows_per_block
        s += list(rng.normal(size=rows_per_block))
    return np.array(y), np.array(inc, dtype=object), np.array(blk, dtype=object), np.array(s)


@pytest.mark.parametrize("seed", range(4))
def test_weighted_metrics_equal_sklearn_on_the_repeated_rows(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(400) < 0.15
    s = np.round(rng.random(400) + 0.4 * y, 1)  # rounded: many ties
    w = rng.integers(0, 4, 400)
    idx = np.repeat(np.arange(400), w)
    assert weighted_auroc(y, s, w)[0] == pytest.approx(roc_auc_score(y[idx], s[idx]), abs=1e-12)
    assert weighted_auprc(y, s, w)[0] == pytest.approx(average_precision_score(y[idx], s[idx]), abs=1e-12)


def test_separated_scorer_excludes_chance_and_random_scorer_covers_it():
    y, inc, blk, s = held_out(shift=2.5)
    res = Resampler(y, inc, blk, n_boot=500, seed=1)
    good = bootstrap_metrics([s], [1.5], res)["AUROC"]
    assert good.low > 0.5 and good.low <= good.estimate <= good.high
    covered = 0
    for k in range(20):
        noise = np.random.default_rng(100 + k).random(len(y))
        iv = bootstrap_metrics([noise], [0.99], res, metrics=["AUROC"])["AUROC"]
        covered += iv.low <= 0.5 <= iv.high
    assert covered >= 16  # a 95 % interval: most random scorers' intervals hold 0.5


def test_width_shrinks_with_more_incidents():
    widths = []
    for n in (5, 40):
        y, inc, blk, s = held_out(n_incidents=n, n_blocks=n + 1, shift=1.0, incident_sd=1.0, seed=3)
        iv = bootstrap_metrics([s], [1.0], Resampler(y, inc, blk, n_boot=400, seed=0), metrics=["AUROC"])["AUROC"]
        widths.append(iv.high - iv.low)
    assert widths[1] < 0.6 * widths[0]


def test_incident_bootstrap_is_wider_than_a_row_bootstrap_when_incidents_differ():
    # rows of one incident move together: resampling rows would count each row as evidence
    y, inc, blk, s = held_out(n_incidents=8, rows_per_incident=20, shift=1.0, incident_sd=1.5, seed=4)
    by_incident = bootstrap_metrics([s], [1.0], Resampler(y, inc, blk, n_boot=500, seed=0), ["AUROC"])["AUROC"]
    rows = np.arange(len(y)).astype(str).astype(object)
    by_row = bootstrap_metrics([s], [1.0], Resampler(y, np.where(y, rows, None), np.where(y, None, rows),
                                                     n_boot=500, seed=0), ["AUROC"])["AUROC"]
    assert by_incident.high - by_incident.low > 1.5 * (by_row.high - by_row.low)


def test_incidents_detected_counts_incidents_not_rows():
    y, inc, blk, s = held_out(n_incidents=4, rows_per_incident=10, shift=0.0, seed=5)
    s = np.where(y, -10.0, s)
    s[np.flatnonzero(inc == "inc-0")[0]] = 10.0  # one row of one incident crosses the threshold
    ivs = bootstrap_metrics([s], [5.0], Resampler(y, inc, blk, n_boot=300, seed=0))
    assert ivs["incidents detected"].estimate == 0.25
    assert ivs["recall"].estimate == pytest.approx(1 / 40)
    assert ivs["incidents detected"].low == 0.0 and ivs["incidents detected"].high >= 0.5


def test_seeds_point_is_the_mean_and_the_interval_spans_them():
    y, inc, blk, s = held_out(shift=3.0, seed=6)
    noise = np.random.default_rng(0).random(len(y))
    res = Resampler(y, inc, blk, n_boot=600, seed=2, n_seeds=2)
    ivs = bootstrap_metrics([s, noise], [1.0, 0.99], res, ["AUROC"])["AUROC"]
    one = [bootstrap_metrics([x], [0.5], res, ["AUROC"])["AUROC"].estimate for x in (s, noise)]
    assert ivs.estimate == pytest.approx(np.mean(one))
    assert ivs.low < 0.65 and ivs.high > 0.95  # the random seed and the good seed both show
    again = bootstrap_metrics([s, noise], [1.0, 0.99], Resampler(y, inc, blk, n_boot=600, seed=2, n_seeds=2),
                              ["AUROC"])["AUROC"]
    assert again == ivs  # same seed, same interval


def test_subset_keeps_draws_paired():
    y, inc, blk, s = held_out(n_incidents=6, seed=7)
    res = Resampler(y, inc, blk, n_boot=50, seed=0)
    keep = ~y | np.isin(inc, ["inc-1", "inc-4"])
    sub = res.subset(keep)
    assert sub.incidents == ["inc-1", "inc-4"] and sub.blocks == res.blocks
    np.testing.assert_array_equal(sub.block_counts, res.block_counts)
    np.testing.assert_array_equal(sub.incident_counts, res.incident_counts[:, [1, 4]])
    got = bootstrap_metrics([s[keep]], [1.0], sub, ["AUROC"])["AUROC"]
    assert got.low <= got.estimate <= got.high


@pytest.mark.parametrize("seed", range(3))
def test_group_statistics_equal_the_row_weighted_definitions(seed):
    # each replicate = every row weighted by its group's draw count; ties included
    y, inc, blk, s = held_out(n_incidents=7, rows_per_incident=5, n_blocks=9, rows_per_block=15,
                              shift=1.0, incident_sd=1.0, seed=seed)
    s = np.round(s, 1)
    res = Resampler(y, inc, blk, n_boot=40, seed=seed)
    st, d = GroupStats(s, 0.8, res), res.draws()
    w = np.where(y, np.take(d.incident_counts, np.maximum(res.row_incident, 0), axis=1),
                 np.take(d.block_counts, np.maximum(res.row_block, 0), axis=1)).astype(float)
    np.testing.assert_allclose(METRICS["AUROC"](st, d), weighted_auroc(y, s, w), atol=1e-12)
    np.testing.assert_allclose(METRICS["AUPRC"](st, d), weighted_auprc(y, s, w), atol=1e-12)
    alert = s > 0.8
    np.testing.assert_allclose(METRICS["recall"](st, d), (w * (y & alert)).sum(1) / (w * y).sum(1))
    np.testing.assert_allclose(METRICS["FPR"](st, d), (w * (~y & alert)).sum(1) / (w * ~y).sum(1))
    point = point_metrics(s, 0.8, res)
    assert point["AUROC"] == pytest.approx(roc_auc_score(y, s))
    assert point["AUPRC"] == pytest.approx(average_precision_score(y, s))


def test_resampler_refuses_fault_rows_without_incident():
    with pytest.raises(ValueError, match="incident id"):
        Resampler([True, False], [None, None], [None, "#0"])


def test_bootstrap_over_groups():
    hits = np.array([1, 1, 1, 0, 1, 0, 1, 1, 1, 1], dtype=float)
    iv = bootstrap_over_groups(hits, np.mean, n_boot=1000, seed=0)
    assert iv.estimate == 0.8 and iv.low < 0.8 < iv.high and 0.0 <= iv.low and iv.high <= 1.0
    assert bootstrap_over_groups(hits, np.mean, n_boot=1000, seed=0) == iv
    assert bootstrap_over_groups(np.ones(5), np.mean, 200, 1) == Interval(1.0, 1.0, 1.0)
    # any per-group values: fn gets the drawn groups as a list
    ranks = [[1, 3], [2], [1, 1, 4]]
    got = bootstrap_over_groups(ranks, lambda groups: np.mean([r <= 1 for g in groups for r in g]), 300, 0)
    assert got.estimate == pytest.approx(3 / 6) and got.low <= got.estimate <= got.high


def test_separated():
    a, b, c = Interval(0.9, 0.85, 0.95), Interval(0.7, 0.6, 0.8), Interval(0.8, 0.75, 0.88)
    assert separated(a, b) == 1 and separated(b, a) == -1
    assert separated(a, c) == 0 and separated(c, b) == 0
    assert separated(a, Interval(float("nan"), float("nan"), float("nan"))) == 0


def test_normal_blocks_follow_incident_starts_per_run():
    t = np.array([0, 5, 10, 15, 20, 5])
    runs = np.array(["a", "a", "a", "a", "a", "b"], dtype=object)
    got = normal_blocks(t, {"a": [5, 15], "b": [100]}, runs)
    assert list(got) == ["a#0", "a#1", "a#1", "a#2", "a#2", "b#0"]
    assert list(normal_blocks([0, 7], [5])) == ["#0", "#1"]
