"""The lake jobs on a real local Ray cluster (two 1-CPU nodes: two worker processes) give the
same output as the local engine; a worker killed mid-job and a rerun change nothing.

The cluster is started once for the module, in its own RAY_TMPDIR with auth and usage stats
off, and shut down in teardown. Inputs: the committed sample's raw files and a small
synthetic run (several days and regions).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pyarrow.parquet as pq
import pytest

from obslab import lake as L
from obslab.data import REPO_ROOT, read_labels, read_signal
from obslab.distributed import convert_lake

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

SAMPLE_RAW = REPO_ROOT / "data" / "sample" / "raw"
SIGNALS = ("logs", "traces", "metrics")


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def frame(table) -> pd.DataFrame:
    return table.flatten().flatten().to_pandas()


@pytest.fixture(scope="module")
def ray_engine():
    pytest.importorskip("ray")
    from obslab.distributed._cluster import local_cluster

    with local_cluster(nodes=2) as engine:  # own RAY_TMPDIR, auth and usage stats off; stopped after
        assert engine.workers == 2
        yield engine


@pytest.fixture(scope="module")
def local_lake(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "ds"
    convert_lake(SAMPLE_RAW, out)
    return out


def assert_same_dataset(a: Path, b: Path):
    assert tree(a / "lake") == tree(b / "lake")  # same objects, byte for byte
    for signal in SIGNALS:
        pd.testing.assert_frame_equal(frame(read_signal(signal, a)), frame(read_signal(signal, b)))
    la = read_labels(a).to_pandas().sort_values("uid", ignore_index=True)
    lb = read_labels(b).to_pandas().sort_values("uid", ignore_index=True)
    pd.testing.assert_frame_equal(la, lb)
    ma, mb = L.read_manifest(a / "lake"), L.read_manifest(b / "lake")
    assert ma["partitions"] == mb["partitions"] and ma["rows"] == mb["rows"] > 0


def test_convert_on_ray_equals_local(ray_engine, local_lake, tmp_path):
    ray_engine.peaks.clear()
    res = convert_lake(SAMPLE_RAW, tmp_path / "ds", engine=ray_engine)
    assert len(res["files"]) == 3
    assert ray_engine.peaks and all(pid != os.getpid() for pid in ray_engine.peaks)  # ran in workers
    assert_same_dataset(local_lake, tmp_path / "ds")


def test_worker_killed_mid_job_still_completes(ray_engine, local_lake, tmp_path):
    from obslab.distributed._faults import KillOnce

    hook = KillOnce(tmp_path / "killed", source="traces.jsonl")
    ray_engine.peaks.clear()
    convert_lake(SAMPLE_RAW, tmp_path / "ds", engine=ray_engine, hook=hook)
    assert hook.fired  # a worker died after converting and before writing; Ray retried the task
    dead_pid = int((tmp_path / "killed").read_text().split()[0])
    assert not psutil.pid_exists(dead_pid) or psutil.Process(dead_pid).status() == psutil.STATUS_ZOMBIE
    assert_same_dataset(local_lake, tmp_path / "ds")
    assert not (tmp_path / "ds" / ".staging").exists()


def test_rerun_on_ray_neither_duplicates_nor_loses(ray_engine, local_lake, tmp_path):
    shutil.copytree(local_lake, tmp_path / "ds")
    convert_lake(SAMPLE_RAW, tmp_path / "ds", engine=ray_engine)
    convert_lake(SAMPLE_RAW, tmp_path / "ds", engine=ray_engine)
    assert_same_dataset(local_lake, tmp_path / "ds")


def test_window_features_on_ray_equal_local(ray_engine, local_lake):
    from obslab.distributed.features import lake_window_features

    local = lake_window_features(local_lake)
    remote = lake_window_features(local_lake, engine=ray_engine)
    assert len(local) > 100
    pd.testing.assert_frame_equal(local, remote)


@pytest.fixture(scope="module")
def scoring(local_lake, tmp_path_factory):
    """A lake whose traces are split into small objects (more batches than workers) and a
    scoring model fitted on the first 40 % of them (seeded, short training)."""
    from obslab.distributed.score import fit_scoring_model, save_scoring_model
    from obslab.features import trace_events

    root = tmp_path_factory.mktemp("scoring")
    traces = read_signal("traces", local_lake)
    L.write_lake(traces, root / "lake", "traces", "small", rows_per_file=120)
    L.write_manifest(root / "lake")
    events = trace_events(traces)
    cut = events["time_ms"].quantile(0.4)
    sm = fit_scoring_model(events, events["time_ms"] <= cut, seed=3, epochs=1, min_steps=20,
                           budget_steps=40, check_every=10)
    return root / "lake", save_scoring_model(root / "model", sm)


def test_scoring_on_ray_equals_local_and_model_travels_once(ray_engine, scoring, tmp_path):
    from obslab.distributed.score import score_lake

    lake, model = scoring
    local = score_lake(lake, model, tmp_path / "local.parquet")
    remote = score_lake(lake, model, tmp_path / "ray.parquet", engine=ray_engine)
    objects = len(L.lake_files(lake, "traces"))
    assert remote["objects"] == objects >= 6
    a, b = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert a.schema.equals(b.schema) and a.num_rows == b.num_rows == read_signal("traces", lake.parent).num_rows
    assert a.column("uid").equals(b.column("uid"))  # same rows, same order
    sa, sb = a.column("score").to_numpy(), b.column("score").to_numpy()
    np.testing.assert_allclose(sa, sb, rtol=1e-5, atol=1e-6)
    assert np.ptp(sa) > 0
    # the model reached each worker once, however many objects it scored there
    assert os.getpid() not in remote["workers"]
    assert 1 <= len(remote["workers"]) <= 2
    assert all(loads == 1 for loads in remote["workers"].values())


def test_synthetic_lake_as_ray_job_equals_local(ray_engine, tmp_path):
    from obslab.synth import load_config
    from obslab.synth.generate import generate

    cfg = dict(days=3, step="15m", seed=5)
    generate(load_config(**cfg), tmp_path / "local", fmt="lake", workers=1)
    generate(load_config(**cfg), tmp_path / "ray", fmt="lake", engine=ray_engine)
    assert tree(tmp_path / "local" / "lake") == tree(tmp_path / "ray" / "lake")
    assert tree(tmp_path / "local" / "labels.parquet") == tree(tmp_path / "ray" / "labels.parquet")
    man = L.read_manifest(tmp_path / "ray" / "lake")
    assert len({p["date"] for p in man["partitions"].values()}) == 3
