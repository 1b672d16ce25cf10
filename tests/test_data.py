"""obslab.data reads day-partitioned datasets as plain OCSF tables."""

from __future__ import annotations

import subprocess
import sys

import pytest

from obslab.data import SIGNALS, read_labels, read_signal, signal_path
from obslab.ocsf import validate_table


@pytest.fixture(scope="module")
def partitioned(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    subprocess.run([sys.executable, "-m", "obslab.cli", "synth", "--days", "2", "--step", "15m", "--seed", "5",
                    "--out", str(out), "--quiet", "--overwrite"], check=True, timeout=300)
    return out


@pytest.mark.parametrize("signal", SIGNALS)
def test_partition_folders_stay_out_of_the_events(partitioned, signal):
    assert signal_path(partitioned, signal).is_dir()  # written partitioned by day
    table = read_signal(signal, partitioned)
    assert table.num_rows > 0 and "day" not in table.column_names
    result = validate_table(table, sample=100)
    assert result.invalid == 0, result.examples


def test_labels_cover_every_event(partitioned):
    uids = set(read_labels(partitioned).column("uid").to_pylist())
    for signal in SIGNALS:
        events = read_signal(signal, partitioned, columns=["metadata"]).column("metadata")
        assert set(events.combine_chunks().field("uid").to_pylist()) <= uids


def test_missing_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="obslab dataset"):
        read_signal("logs", tmp_path)
    with pytest.raises(ValueError, match="unknown signal"):
        signal_path(tmp_path, "profiles")


def test_a_corpus_is_a_list_of_runs_and_never_read_as_one(tmp_path):
    from obslab import data

    sample = data.REPO_ROOT / "data" / "sample"
    (tmp_path / "runs").mkdir()
    for name in ("run-b", "run-a"):
        (tmp_path / "runs" / name).symlink_to(sample, target_is_directory=True)
    (tmp_path / "runs" / "notes").mkdir()  # not a dataset: not a run
    assert data.dataset_runs(sample) == [sample]
    assert [p.name for p in data.dataset_runs(tmp_path)] == ["run-a", "run-b"]
    assert data.example_run(tmp_path).name == "run-a"
    for read in (data.read_labels, data.read_incidents, data.read_run, lambda r: data.read_signal("logs", r)):
        with pytest.raises(ValueError, match="corpus of 2 runs"):  # noqa: PT012
            read(tmp_path)
    assert data.read_labels(data.example_run(tmp_path)).num_rows == data.read_labels(sample).num_rows
    # one control run serves the whole corpus; a run's own control wins where it has one
    bare = tmp_path / "runs" / "run-c"
    bare.mkdir()
    (bare / "labels.parquet").symlink_to(sample / "labels.parquet")
    assert data.control_dataset(bare) is None
    (tmp_path / "control").symlink_to(sample / "control", target_is_directory=True)
    assert data.control_dataset(bare) == tmp_path / "control"
    assert data.control_dataset(tmp_path) == tmp_path / "control"
    assert data.control_dataset(data.example_run(tmp_path)).resolve() == (sample / "control").resolve()
    with pytest.raises(FileNotFoundError, match="neither an obslab dataset"):
        data.dataset_runs(tmp_path / "runs" / "notes")
