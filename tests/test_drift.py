"""Drift fires on a shifted distribution and not on a resample; the trigger keeps state."""

import numpy as np
import pandas as pd
import pytest

from obslab.drift import RetrainTrigger, feature_drift


def data(seed, n=2000, d=10, shift=0.0, cols=()):
    rng = np.random.default_rng(seed)
    X = np.column_stack([rng.normal(size=n), rng.exponential(size=n), *rng.normal(size=(d - 2, n))])
    for c in cols:
        X[:, c] += shift
    return X


def test_resample_does_not_drift():
    ref = data(0)
    for seed in range(1, 6):
        rep = feature_drift(ref, data(seed))
        assert not rep["drifted"].any()
        assert (rep["shift"] < 0.1).all()


def test_shift_drifts_only_in_the_shifted_features():
    rep = feature_drift(data(0), data(1, shift=0.5, cols=(1, 4, 7)))
    assert rep.loc[rep["drifted"], "feature"].tolist() == ["f1", "f4", "f7"]
    assert rep.loc[[1, 4, 7], "shift"].min() > 0.4
    # Wasserstein of a pure location shift equals the shift
    assert rep.loc[4, "wasserstein"] == pytest.approx(0.5, abs=0.08)


def test_scale_change_is_caught_by_ks():
    ref = data(0)
    cur = data(2)
    cur[:, 3] *= 2.0
    rep = feature_drift(ref, cur)
    assert rep.loc[rep["drifted"], "feature"].tolist() == ["f3"]


def test_dataframes_nan_and_constant_columns():
    ref = pd.DataFrame({"a": np.r_[np.arange(100.0), np.nan], "const": 1.0})
    cur = pd.DataFrame({"a": np.arange(100.0) + 50, "const": 1.0})
    rep = feature_drift(ref, cur).set_index("feature")
    assert bool(rep.loc["a", "drifted"]) and not bool(rep.loc["const", "drifted"])
    assert rep.loc["const", "shift"] == 0.0
    with pytest.raises(ValueError):
        feature_drift(np.zeros((10, 3)), np.zeros((10, 2)))


def test_retrain_trigger_fires_with_patience_and_resets():
    ref = data(0)
    trig = RetrainTrigger(ref, min_fraction=0.2, patience=2)
    assert not trig.check(data(1)).retrain
    first = trig.check(data(2, shift=1.0, cols=(0, 2, 3)))
    assert not first.retrain and first.drifted_fraction == pytest.approx(0.3)
    second = trig.check(data(3, shift=1.0, cols=(0, 2, 3)))
    assert second.retrain and "3/10" in second.reason
    # after retraining on the new regime, the new data is the reference: no drift
    trig.reset(data(4, shift=1.0, cols=(0, 2, 3)))
    assert not trig.check(data(5, shift=1.0, cols=(0, 2, 3))).retrain
    assert len(trig.history) == 4
