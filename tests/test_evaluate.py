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
    rates_at,
    split_by_time,
)
from obslab.truth import Incident, phases

MIN = 60_000


def incident(i, start_min, dur_min=10, cool_min=5, fault="latency_spike", root="web-api"):
    s = start_min * MIN
    return Incident(f"inc-{i}", fault, "high", [root], s, s + dur_min * MIN,
                    s + (dur_min + cool_min) * MIN, root)


def timeline(n_minutes=600, starts=(100, 250, 330, 420, 520)):
    times = np.arange(n_minutes, dtype=np.int64) * MIN
    incs = [incident(i, s, fault=["latency_spike", "error_spike"][i % 2]) for i, s in enumerate(starts)]
    return times, incs


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
    lab = phases(times, incs)
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
    lab = phases(times, incs)
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


def test_control_run_false_positive_rate():
    rng = np.random.default_rng(2)
    X_train = rng.normal(size=(1000, 4))
    X_test = rng.normal(size=(200, 4))
    y = np.zeros(200, bool)
    y[:20] = True
    X_test[:20] += 5.0
    dets = {"knn": lambda: make_detector("knn", k=5)}
    quiet = rng.normal(size=(2000, 4))  # a control run like training: FPR near 1 - quantile
    drifted = rng.normal(size=(2000, 4)) + 3.0  # a control run unlike training: mostly alerts
    for run, low, high in [(quiet, 0.0, 0.05), (drifted, 0.9, 1.0)]:
        table, _ = compare_methods({"f": (X_train, X_test)}, dets, y, quantile=0.99,
                                   control_run={"f": run})
        assert low <= table.loc[("f", "knn"), "control_run_FPR"] <= high
        assert 0.0 <= table.loc[("none", "random"), "control_run_FPR"] <= 0.05
    table, _ = compare_methods({"f": (X_train, X_test)}, dets, y)
    assert "control_run_FPR" not in table.columns


def _tiny_dataset(root, minutes=50, seed=0):
    """A lab-shaped dataset (3 services, OCSF via the real mapper, labels via obslab.labels)
    with two incidents: a latency spike on web-api and an error spike on auth-service."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from obslab.labels import label_events
    from obslab.ocsf import logs_to_ocsf, metrics_to_ocsf, spans_to_ocsf
    from obslab.ocsf.flat import FLAT_LOG, FLAT_METRIC, FLAT_SPAN
    from obslab.truth import write_incidents

    rng = np.random.default_rng(seed)
    t0 = 1_763_880_000_000
    incs = [Incident("inc-1", "latency_spike", "high", ["web-api"], t0 + 20 * MIN, t0 + 25 * MIN, t0 + 27 * MIN, "web-api"),
            Incident("inc-2", "error_spike", "high", ["auth-service"], t0 + 35 * MIN, t0 + 40 * MIN, t0 + 42 * MIN, "auth-service")]
    spans, logs, mets = [], [], []
    for k, t in enumerate(np.sort(rng.integers(t0, t0 + minutes * MIN, minutes * 40))):
        t = int(t)
        slow = incs[0].start_ms <= t < incs[0].end_ms
        fail = incs[1].start_ms <= t < incs[1].end_ms and rng.random() < 0.7
        tid, root_id, auth_id = f"{k:032x}", f"{2 * k:016x}", f"{2 * k + 1:016x}"
        d = rng.lognormal(3, 0.3) * (6 if slow else 1)
        for svc, sid, parent, code in (("web-api", root_id, None, 500 if fail else 200),
                                       ("auth-service", auth_id, root_id, 500 if fail else 200)):
            spans.append(dict(time_ms=t, end_time_ms=t + int(d), duration_ms=float(d), trace_id=tid, span_id=sid,
                              parent_span_id=parent, service=svc, name="GET /api", kind=2,
                              status_code=2 if code >= 500 else 1, http_method="GET", http_path="/api",
                              http_route="/api", http_status=code))
        if fail:
            logs.append(dict(time_ms=t, service="auth-service", level="ERROR", message="failed", event="error",
                             trace_id=tid, span_id=auth_id, http_status=500))
    for t in range(t0, t0 + minutes * MIN, 15_000):
        for svc in ("web-api", "auth-service", "payment-worker"):
            mets.append(dict(time_ms=t, metric="cpu_pct", value=float(rng.normal(20, 2)), service=svc))
    root.mkdir(parents=True, exist_ok=True)
    labels = []
    for sig, rows, schema, fn in (("traces", spans, FLAT_SPAN, spans_to_ocsf), ("logs", logs, FLAT_LOG, logs_to_ocsf),
                                  ("metrics", mets, FLAT_METRIC, metrics_to_ocsf)):
        flat = pa.Table.from_pylist(rows, schema=schema)
        ocsf = fn(flat)
        pq.write_table(ocsf, root / f"ocsf_{sig}.parquet")
        labels.append(label_events(ocsf, sig, incs, markers=flat if sig == "traces" else None))
    pq.write_table(pa.concat_tables(labels), root / "labels.parquet")
    write_incidents(root / "incidents.json", incs, run_id="test", seed=seed)
    return incs


def test_window_experiment_end_to_end(tmp_path, monkeypatch):
    """The chapters' shared setup on a real (tiny) OCSF dataset: truth aligned, split clean,
    encoder trained on training rows only and cached, both matrices usable by the detectors."""
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path / "cache"))
    from obslab.experiment import window_experiment

    _tiny_dataset(tmp_path / "data")
    ex = window_experiment(tmp_path / "data", window_ms=60_000, epochs=2, seed=1)
    n = len(ex.frame)
    assert n == 3 * 50 and ex.embeddings.shape[0] == ex.raw.shape[0] == len(ex.labels) == n
    assert ex.split.test_incidents and not ex.labels.loc[ex.split.train, "is_anomaly"].any()
    assert ex.encoder.meta["training"]["rows"] == int(ex.split.train.sum())
    # clock features stay out of the encoder; labels could never get in
    assert not {"hour_sin", "hour_cos"} & set(ex.encoder.spec.numeric)
    assert not any(("anomal" in c) or ("fault" in c) for c in ex.encoder.spec.numeric)
    table, _ = compare_methods(ex.matrices("evaluate"), {"knn": lambda: make_detector("knn", k=3)},
                               ex.labels["is_anomaly"].to_numpy()[ex.split.evaluate])
    # raw window features catch a 6x latency spike and a 70 % error spike easily
    assert table.loc[("raw features", "knn"), "AUROC"] > 0.9
    # a second call reuses the cached encoder: identical embeddings
    again = window_experiment(tmp_path / "data", window_ms=60_000, epochs=2, seed=1)
    np.testing.assert_array_equal(again.embeddings, ex.embeddings)
    # another run through the same encoder and spec: the same data gives the same matrices
    other = ex.other_run(tmp_path / "data")
    np.testing.assert_array_equal(other["embedding"], ex.embeddings)
    np.testing.assert_array_equal(other["raw features"], ex.raw)


def test_auto_window_ms():
    from obslab.experiment import auto_window_ms

    assert auto_window_ms(3 * 3600_000) == 60_000
    assert auto_window_ms(60 * MIN) == 30_000
    assert auto_window_ms(30 * MIN) == 15_000
    assert auto_window_ms(20 * MIN) == 10_000
    assert auto_window_ms(0) == 10_000


def test_short_runs_move_the_cutoff_for_enough_training_rows():
    from obslab.experiment import MAX_TRAIN_FRACTION, _enough_training

    # a fault every 10 minutes from minute 3: few clean minutes early on
    times = np.arange(120, dtype=np.int64) * MIN
    incs = [incident(i, 3 + 10 * i, dur_min=4, cool_min=2) for i in range(12)]
    phase = phases(times, incs)["phase"].to_numpy()
    first = split_by_time(times, incs, phase, train_fraction=0.1)
    split = _enough_training(times, incs, phase, 0.1, 0, min_train_rows=30)
    assert first.train.sum() < split.train.sum()
    assert split.train.sum() >= 30
    # the first fraction that meets the floor: 0.1 did not
    assert first.train.sum() < 30
    # an unreachable floor stops at MAX_TRAIN_FRACTION: the later part stays held out
    tight = _enough_training(times, incs, phase, 0.1, 0, min_train_rows=10_000)
    assert tight.cutoff_ms <= np.quantile(times, MAX_TRAIN_FRACTION)
    assert len(tight.test_incidents) >= 4
    with pytest.raises(ValueError, match="normal rows"):
        _enough_training(times, [incident(0, 0, dur_min=119)], phase, 0.4, 0, 10)
