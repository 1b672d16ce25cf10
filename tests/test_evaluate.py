"""Splits never mix an incident's rows, metrics match their definitions, the table is complete."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from obslab.detect import make_detector
from obslab.evaluate import (
    auprc,
    auroc,
    compare_methods,
    per_fault_recall,
    per_incident_detection,
    phase_from_incidents,
    rates_at,
    split_by_time,
)
from obslab.truth import Incident

MIN = 60_000


def incident(i, start_min, dur_min=10, cool_min=5, fault="latency_spike", root="web-api"):
    s = start_min * MIN
    return Incident(f"inc-{i}", fault, "high", [root], s, s + dur_min * MIN,
                    s + (dur_min + cool_min) * MIN, root)


def timeline(n_minutes=600, starts=(100, 250, 330, 420, 520)):
    times = np.arange(n_minutes, dtype=np.int64) * MIN
    incs = [incident(i, s, fault=["latency_spike", "error_spike"][i % 2]) for i, s in enumerate(starts)]
    return times, incs


def test_phase_from_incidents():
    times, incs = timeline()
    lab = phase_from_incidents(times, incs)
    assert lab.loc[100, "phase"] == "fault" and lab.loc[100, "incident_id"] == "inc-0"
    assert lab.loc[109, "phase"] == "fault" and lab.loc[110, "phase"] == "cooldown"
    assert lab.loc[115, "phase"] == "normal" and lab.loc[99, "phase"] == "normal"
    assert lab["is_anomaly"].sum() == 50
    # a 5-minute window starting at minute 96 overlaps the fault starting at 100
    win = phase_from_incidents([96 * MIN], incs, window_ms=5 * MIN)
    assert win.loc[0, "phase"] == "fault"
    # targets_only: a service the incident does not target stays normal
    tgt = phase_from_incidents([100 * MIN, 100 * MIN], incs, service=["web-api", "auth-service"],
                               targets_only=True)
    assert tgt["phase"].tolist() == ["fault", "normal"]


def _assert_no_incident_on_both_sides(split, lab):
    train_inc = set(lab.loc[split.train, "incident_id"].dropna())
    test_inc = set(lab.loc[split.test, "incident_id"].dropna())
    assert not train_inc, "training rows must be normal"
    # no incident's rows fall before and after the cut-off
    before = set(lab.loc[~split.test, "incident_id"].dropna())
    assert not (before & test_inc)
    assert not (split.train & split.test).any()


def test_split_moves_cutoff_out_of_an_incident():
    times, incs = timeline()
    lab = phase_from_incidents(times, incs)
    # the 0.55 quantile is minute 330: inside inc-2 -> the cut-off moves back to its start
    split = split_by_time(times, incs, train_fraction=0.555)
    assert split.cutoff_ms == 330 * MIN
    assert split.test_incidents == ["inc-2", "inc-3", "inc-4"]
    assert split.train_incidents == ["inc-0", "inc-1"]
    _assert_no_incident_on_both_sides(split, lab)
    assert not (split.evaluate & (lab["phase"] == "cooldown")).any()
    assert not (split.control & lab["incident_id"].notna()).any()
    assert (split.control & split.test).sum() == split.control.sum() > 0


def test_split_by_number_of_test_incidents_with_margin():
    times, incs = timeline()
    split = split_by_time(times, incs, n_test_incidents=2, margin_ms=5 * MIN)
    assert split.cutoff_ms == 415 * MIN
    assert split.test_incidents == ["inc-3", "inc-4"]
    t = times[split.train]
    # margin: no training row within 5 minutes before an incident
    for inc in incs:
        assert not ((t >= inc.start_ms - 5 * MIN) & (t < inc.cooldown_end_ms)).any()


@settings(max_examples=60, deadline=None)
@given(starts=st.lists(st.integers(5, 580), min_size=1, max_size=8, unique=True),
       frac=st.floats(0.05, 0.95), durations=st.data())
def test_split_never_shares_an_incident(starts, frac, durations):
    times = np.arange(600, dtype=np.int64) * MIN
    incs = [incident(i, s, dur_min=durations.draw(st.integers(1, 40)), cool_min=3)
            for i, s in enumerate(sorted(starts))]
    lab = phase_from_incidents(times, incs)
    try:
        split = split_by_time(times, incs, train_fraction=frac)
    except ValueError:
        return  # e.g. the timeline starts with an incident: refused, not mis-split
    _assert_no_incident_on_both_sides(split, lab)
    assert set(split.train_incidents).isdisjoint(split.test_incidents)


def test_split_refuses_bad_input():
    times, incs = timeline()
    with pytest.raises(ValueError):
        split_by_time(times, incs, n_test_incidents=9)
    with pytest.raises(ValueError, match="no rows"):
        split_by_time([], incs)
    with pytest.raises(ValueError, match="normal rows"):
        split_by_time(times, [incident(0, 0, dur_min=590)], train_fraction=0.5)


def test_metric_definitions():
    y = np.array([0, 0, 1, 1, 0, 1], bool)
    perfect = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7])
    assert auroc(y, perfect) == 1.0 and auprc(y, perfect) == 1.0
    assert auroc(y, -perfect) == 0.0
    r = rates_at(y, perfect, 0.75)
    assert r["recall"] == pytest.approx(2 / 3) and r["precision"] == 1.0 and r["fpr"] == 0.0
    assert np.isnan(auroc(np.zeros(4, bool), np.arange(4)))
    with pytest.raises(ValueError, match="shape"):
        auroc(y, perfect[:3])


def test_random_scorer_auprc_is_prevalence_and_auroc_half():
    rng = np.random.default_rng(0)
    y = rng.random(20_000) < 0.05
    s = rng.random(20_000)
    assert auprc(y, s) == pytest.approx(y.mean(), abs=0.01)
    assert auroc(y, s) == pytest.approx(0.5, abs=0.02)


def test_per_fault_recall_and_incident_detection():
    s = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.0])
    y = np.array([1, 1, 1, 1, 0, 0], bool)
    f = np.array(["a", "a", "b", "b", None, None], object)
    pf = per_fault_recall(s, f, y, 0.5).set_index("fault_id")
    assert pf.loc["a", "recall"] == 0.5 and pf.loc["b", "recall"] == 1.0
    t = np.arange(6) * MIN
    inc = np.array(["i1", "i1", "i2", "i2", None, None], object)
    det = per_incident_detection(s, t, inc, y, 0.85).set_index("incident_id")
    assert bool(det.loc["i1", "detected"]) and not bool(det.loc["i2", "detected"])
    assert det.loc["i1", "delay_s"] == 0.0


def test_compare_methods_table():
    rng = np.random.default_rng(1)
    X_train = rng.normal(size=(800, 6))
    X_test = rng.normal(size=(300, 6))
    y = np.zeros(300, bool)
    y[:30] = True
    X_test[:30] += 4.0
    faults = np.where(y, np.where(np.arange(300) < 15, "a", "b"), None)
    control = ~y
    sets = {"good": (X_train, X_test), "noise": (rng.normal(size=(800, 6)), rng.normal(size=(300, 6)))}
    dets = {"knn": lambda: make_detector("knn", k=5), "iforest": lambda: make_detector("iforest", seed=0)}
    table, pf = compare_methods(sets, dets, y, control=control, fault_ids=faults, quantile=0.99)
    assert len(table) == 5  # 2 feature sets x 2 detectors + the random floor
    assert (table.loc["good", "AUROC"] > 0.95).all()
    assert (table.loc["noise", "AUROC"] < 0.7).all()
    assert {"AUROC", "AUPRC", "recall", "precision", "control_FPR", "prevalence"} <= set(table.columns)
    assert set(pf["fault_id"]) == {"a", "b"} and len(pf) == 8
    with pytest.raises(ValueError, match="labels"):
        compare_methods({"x": (X_train, X_test[:10])}, dets, y)
