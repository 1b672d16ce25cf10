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
