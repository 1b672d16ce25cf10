"""The sensitivity sweep: its points, its words, and one committed point re-run from scratch."""

import numpy as np
import pandas as pd
import pytest

from obslab.data import REPO_ROOT
from obslab.sensitivity import DEFAULT, FACTORS, findings, interval_table, points, read_results

RESULTS = REPO_ROOT / "data" / "results"


def test_points_move_one_factor_at_a_time():
    pts = points()
    assert pts[0] == ("default", "default", DEFAULT)
    for factor, _, settings in pts[1:]:
        changed = {k for k in DEFAULT if settings[k] != DEFAULT[k]}
        assert changed and changed <= set().union(*(v.keys() for v in FACTORS[factor]))
    labels = [(f, v) for f, v, _ in pts]
    assert len(labels) == len(set(labels))
    assert all(sum(f == factor for f, _ in labels) >= 2 for factor in FACTORS)  # >= 3 values with the default


def _rows(dataset, factor, value, features, est, low, high):
    return {"dataset": dataset, "factor": factor, "value": value, "features": features, "metric": "AUROC",
            "estimate": est, "low": low, "high": high, "seeds": 3 if features == "embedding" else 1,
            "incidents": 9}


def test_findings_name_a_difference_only_where_intervals_separate():
    sens = pd.DataFrame([
        _rows("d", "default", "default", "embedding", 0.80, 0.75, 0.85),
        _rows("d", "default", "default", "raw features", 0.95, 0.90, 0.98),
        _rows("d", "corruption", "0.6", "embedding", 0.60, 0.50, 0.70),   # separates: worse
        _rows("d", "temperature", "0.5", "embedding", 0.83, 0.78, 0.88),  # overlaps
        _rows("d", "k", "10", "embedding", 0.81, 0.70, 0.90),
        _rows("d", "k", "10", "raw features", 0.85, 0.80, 0.90),
    ])
    text = findings(sens, "d")
    assert "Worse than the default (intervals separate): corruption 0.6." in text
    assert "temperature" not in text and "Better" not in text
    assert "Raw features beat the embedding at: default." in text
    assert "No difference between the two at: k 10." in text
    table = interval_table(sens, "d")
    assert table.loc[("default", "default"), "raw features"] == "0.950 [0.900, 0.980]"
    assert table.loc[("corruption", "0.6"), "raw features"] == ""


def test_one_committed_point_reproduces():
    """Re-run the sample's k=10 point (three encoders trained from scratch, or from the cache)
    and compare it with the committed table: same seeds, same bootstrap draws, same numbers."""
    from obslab.sensitivity import SEEDS, prepare, run_point

    table = read_results(RESULTS)["sensitivity"]
    want = table[(table["dataset"] == "sample") & (table["factor"] == "k") & (table["value"].astype(str) == "10")]
    assert len(want) == 4  # embedding and raw features, AUROC and AUPRC
    prep = prepare(REPO_ROOT / "data" / "sample", "sample", None, n_boot=1000, boot_seed=0, seeds=SEEDS)
    got = pd.DataFrame(run_point(prep, "sample", "k", "10", {**DEFAULT, "k": 10}, SEEDS))
    merged = want.merge(got, on=["features", "metric"], suffixes=("_want", "_got"))
    assert len(merged) == 4
    for col in ("estimate", "low", "high"):
        np.testing.assert_allclose(merged[f"{col}_got"], merged[f"{col}_want"], rtol=0, atol=1e-5)
