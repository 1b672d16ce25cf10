"""obslab.data.synth_dataset: the synthetic run as a cached dataset, keyed by its settings."""

import hashlib

import numpy as np

from obslab.data import dataset_runs, dataset_step_ms, read_incidents, read_labels, read_run, synth_dataset
from obslab.features import load_windows, window_labels


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.parquet")) if p.is_file()}


def test_synth_dataset_is_cached_deterministic_and_keyed(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path / "a"))
    root = synth_dataset(seed=3, days=2, workers=1)
    assert root.is_relative_to(tmp_path / "a") and dataset_runs(root) == [root]
    stamp = (root / "run.json").stat().st_mtime_ns
    assert synth_dataset(seed=3, days=2, workers=1) == root  # reused, not regenerated
    assert (root / "run.json").stat().st_mtime_ns == stamp
    assert read_run(root)["config"]["seed"] == 3 and read_run(root)["config"]["step"] == "5m"
    # same settings in another cache: the same bytes; another seed or size: another folder
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path / "b"))
    again = synth_dataset(seed=3, days=2, workers=2)
    assert again.name == root.name and _digests(again) == _digests(root)
    assert synth_dataset(seed=4, days=2).name != root.name
    assert synth_dataset(seed=3, days=1).name != root.name
    assert not list((tmp_path / "b" / "datasets").glob(".*tmp"))  # no half-written folders left


def test_synth_dataset_windows_at_its_step(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path))
    root = synth_dataset(seed=2, days=2)  # seed 2 plans two incidents in two days
    step = dataset_step_ms(root)
    assert step == 300_000
    frame = load_windows(root, window_ms=step)
    services = read_run(root)["config"]["services"]
    assert len(frame) == len(services) * 2 * 288  # every service, every 5-minute step of 2 days
    assert frame["m_cpu_pct"].notna().all()  # one metrics sample per window: none missing
    labels = window_labels(frame, read_incidents(root), window_ms=step)
    assert labels["is_anomaly"].any() and not labels["is_anomaly"].all()
    # the windows' truth agrees with the per-event labels: a fault window holds fault events
    ev = read_labels(root).to_pandas()
    hit = ev[ev["is_anomaly"]]
    keys = set(zip(hit["service"], hit["time"] // step * step))
    fault_rows = frame[labels["is_anomaly"].to_numpy()]
    share = np.mean([(s, w) in keys for s, w in zip(fault_rows["service"], fault_rows["window_start_ms"])])
    assert share > 0.5, share


def test_lab_datasets_have_no_synth_step():
    assert dataset_step_ms("data/sample") is None
