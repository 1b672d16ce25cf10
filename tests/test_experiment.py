"""The experiment on corpora (runs split on their own clocks, stacked), a split that test labels
cannot move, verdicts that follow the intervals, and the committed sweep reproduced at one point."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_evaluate import MIN, _tiny_dataset, incident

from obslab.truth import phases
from obslab.experiment import _enough_training, window_experiment

RESULTS = Path(__file__).resolve().parents[1] / "data" / "results"


def test_corpus_runs_are_split_per_run_and_stacked(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path / "cache"))
    for name, seed in (("run-a", 0), ("run-b", 1)):
        _tiny_dataset(tmp_path / "corpus" / "runs" / name, minutes=50, seed=seed)
    ex = window_experiment(tmp_path / "corpus", window_ms=60_000, epochs=2, seed=1)
    alone = window_experiment(tmp_path / "corpus" / "runs" / "run-b", window_ms=60_000, epochs=2, seed=1,
                              name="alone")
    assert list(pd.unique(ex.runs)) == ["run-a", "run-b"]
    b = ex.runs == "run-b"
    # run-b's rows, truth and split are those of run-b on its own (its clock, its cut-off)
    assert b.sum() == len(alone.frame)
    np.testing.assert_array_equal(ex.split.train[b], alone.split.train)
    np.testing.assert_array_equal(ex.split.evaluate[b], alone.split.evaluate)
    assert ex.split.run_cutoffs_ms["run-b"] == alone.split.cutoff_ms
    assert ex.labels.loc[b, "incident_id"].dropna().str.startswith("run-b/").all()
    # normal rows keep no incident id; fault and cooldown rows name a catalog incident
    normal = ex.labels["phase"] == "normal"
    assert ex.labels.loc[normal, "incident_id"].isna().all()
    assert ex.labels.loc[~normal, "incident_id"].notna().all() and (ex.labels["phase"] == "cooldown").any()
    assert set(ex.labels["incident_id"].dropna()) <= {i.incident_id for i in ex.incidents}
    assert [i for i in ex.split.test_incidents if i.startswith("run-b/")] == \
        [f"run-b/{i}" for i in alone.split.test_incidents]
    assert {i.incident_id for i in ex.incidents} == {f"{r}/inc-{i}" for r in ("run-a", "run-b") for i in (1, 2)}
    # one encoder on the training rows of both runs
    assert ex.split.train[~b].any() and ex.split.train[b].any()
    assert ex.encoder.meta["training"]["rows"] == int(ex.split.train.sum())
    assert "run" not in ex.encoder.spec.numeric + ex.encoder.spec.categorical
    assert not ex.labels.loc[ex.split.train, "is_anomaly"].any()
    # a plain dataset keeps its incident ids
    assert {i.incident_id for i in alone.incidents} == {"inc-1", "inc-2"}


def test_cutoff_ignores_what_happens_after_it():
    times = np.arange(120, dtype=np.int64) * MIN
    early = [incident(i, 3 + 10 * i, dur_min=4, cool_min=2) for i in range(5)]
    split = _enough_training(times, early, phases(times, early)["phase"].to_numpy(),
                             0.3, MIN, min_train_rows=20)
    # add (or drop) incidents in the test period: the cut-off and the training rows stay put
    later = early + [incident(10 + i, split.cutoff_ms // MIN + 5 + 15 * i) for i in range(3)]
    again = _enough_training(times, later, phases(times, later)["phase"].to_numpy(),
                             0.3, MIN, min_train_rows=20)
    assert again.cutoff_ms == split.cutoff_ms
    np.testing.assert_array_equal(again.train, split.train)
    assert len(again.test_incidents) == len(split.test_incidents) + 3


def _summary_row(detector, features, est, low, high, n=10, family="all"):
    return {"dataset": "d", "family": family, "features": features, "detector": detector,
            "metric": "AUROC", "estimate": est, "low": low, "high": high, "n_incidents": n}


def test_verdicts_follow_the_intervals():
    from obslab.sweep import verdict_sentence, verdicts

    summary = pd.DataFrame([
        _summary_row("k-NN", "embedding", 0.70, 0.60, 0.78), _summary_row("k-NN", "raw features", 0.90, 0.85, 0.95),
        _summary_row("LOF", "embedding", 0.80, 0.70, 0.88), _summary_row("LOF", "raw features", 0.85, 0.80, 0.90),
        _summary_row("centroid", "embedding", 0.95, 0.92, 0.97), _summary_row("centroid", "raw features", 0.8, 0.7, 0.9),
        _summary_row("robust-z", "raw features", 0.6, 0.5, 0.7),
        _summary_row("k-NN", "embedding", 0.9, 0.85, 0.95, n=2, family="queue"),
        _summary_row("k-NN", "raw features", 0.5, 0.4, 0.6, n=2, family="queue"),
    ])
    v = verdicts(summary).set_index(["family", "detector"])["winner"]
    assert v[("all", "k-NN")] == "raw features" and v[("all", "LOF")] == "no difference"
    assert v[("all", "centroid")] == "embedding"
    assert v[("queue", "k-NN")] == "too few incidents"  # separated, but two incidents prove little
    assert "robust-z" not in v.index.get_level_values("detector")
    text = verdict_sentence(verdicts(summary), "d")
    assert "raw features beat the embedding with k-NN" in text
    assert "the embedding beats raw features with centroid" in text
    assert "no difference at this sample size with LOF" in text
    assert "too few incidents" in verdict_sentence(verdicts(summary), "d", "queue")
    # where the embedding wins nowhere, the sentence says so
    losing = verdicts(summary[summary["detector"] != "centroid"])
    assert "the embedding wins with no detector" in verdict_sentence(losing, "d")
    assert "the embedding wins with no detector" not in text


def test_committed_sweep_reproduces_at_one_point():
    """One dataset, one seed, one detector of scripts/run_evaluation.py, against its table."""
    from obslab.data import REPO_ROOT
    from obslab.stats import Resampler
    from obslab.sweep import held_out, score_methods, seed_metrics

    datasets = pd.read_csv(RESULTS / "evaluation_datasets.csv").set_index("dataset")
    seeds = pd.read_csv(RESULTS / "evaluation_seeds.csv")
    info = datasets.loc["sample"]
    seed = int(str(info["seeds"]).split()[0])
    ex = window_experiment(REPO_ROOT / "data" / "sample", seed=seed, epochs=int(info["epochs"]),
                           name=f"eval-sample-seed{seed}")
    held = held_out(ex)
    assert int(held.y.sum()) == info["fault_rows"] and int(ex.split.train.sum()) == info["train_rows"]
    scored = score_methods(ex, detectors=("k-NN",))
    got = pd.DataFrame(seed_metrics(scored, Resampler(held.y, held.incident, held.blocks, n_boot=1)))
    want = seeds[(seeds["dataset"] == "sample") & (seeds["seed"] == seed)]
    merged = got.merge(want, on=["features", "detector", "metric"], suffixes=("", "_committed"))
    assert set(merged["detector"]) == {"k-NN", "robust-z", "random"}
    assert len(merged) == len(got)
    np.testing.assert_allclose(merged["value"], merged["value_committed"], atol=2e-6, equal_nan=True)
