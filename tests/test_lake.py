"""The OCSF lake layout (obslab.lake) and the local engine of the lake jobs (no Ray here).

Real inputs: the committed sample's raw files (a native lab run) and the synthetic generator
(several days and regions). Every comparison is against the single-file path of the same data.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from obslab import lake as L
from obslab.data import REPO_ROOT, read_labels, read_signal
from obslab.distributed import convert_lake
from obslab.distributed.features import canonical_windows, lake_window_features
from obslab.ocsf.schemas import CLASS_SCHEMAS

SAMPLE_RAW = REPO_ROOT / "data" / "sample" / "raw"
SIGNALS = ("logs", "traces", "metrics")


def frame(table) -> pd.DataFrame:
    # nested structs flattened; pandas compares NaN == NaN (pyarrow's equals does not)
    return table.flatten().flatten().to_pandas()


def assert_tables_equal(a, b):
    assert a.schema.equals(b.schema), (a.schema, b.schema)
    pd.testing.assert_frame_equal(frame(a), frame(b))


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    from obslab.ocsf.convert import convert_dataset

    out = tmp_path_factory.mktemp("single")
    convert_dataset(SAMPLE_RAW, out, quiet=True)
    return out


@pytest.fixture(scope="module")
def lake_ds(tmp_path_factory):
    out = tmp_path_factory.mktemp("lakeds") / "ds"
    result = convert_lake(SAMPLE_RAW, out)
    return out, result


@pytest.fixture(scope="module")
def synth_pair(tmp_path_factory):
    """The same synthetic run (3 days, 3 regions) as day files and as a lake."""
    from obslab.synth import load_config
    from obslab.synth.generate import generate

    base = tmp_path_factory.mktemp("synth")
    cfg = dict(days=3, step="5m", seed=11)
    generate(load_config(**cfg), base / "files", fmt="ocsf", workers=1)
    generate(load_config(**cfg), base / "lake", fmt="lake", workers=2)
    return base / "files", base / "lake"


def test_lake_reads_as_the_single_file(single, lake_ds):
    out, result = lake_ds
    for signal in SIGNALS:
        one = L.read_ocsf(single / f"ocsf_{signal}.parquet")
        assert one.num_rows > 0
        assert_tables_equal(one, L.read_ocsf(out / "lake", signal))
        # the notebooks' loader: same table from either dataset form
        assert_tables_equal(L.canonical_order(read_signal(signal, single)), read_signal(signal, out))
    a = read_labels(single).to_pandas().sort_values("uid", ignore_index=True)
    b = read_labels(out).to_pandas().sort_values("uid", ignore_index=True)
    pd.testing.assert_frame_equal(a, b)


def test_one_class_per_object_and_partition_keys(lake_ds):
    out, _ = lake_ds
    files = L.lake_files(out / "lake")
    assert len(files) >= 5
    for f in files:
        keys = dict(part.split("=", 1) for part in f.parent.relative_to(out / "lake").parts)
        t = pq.read_table(f)
        assert pc.unique(t.column("class_uid")).to_pylist() == [int(keys["class_uid"])]
        days = pc.unique(pc.strftime(pc.cast(t.column("time"), pa.timestamp("ms", "UTC")), "%Y-%m-%d"))
        assert days.to_pylist() == [keys["date"]]
        # only the columns of its class (Security Lake: one class per object)
        assert set(t.column_names) <= set(CLASS_SCHEMAS[keys["source"]][int(keys["class_uid"])].names)
        assert f.name.startswith("part-") and f.name.endswith("-00000.parquet")


def test_manifest_counts_match_objects(lake_ds):
    out, result = lake_ds
    man = json.loads((out / "lake" / "manifest.json").read_text())
    total = 0
    for key, part in man["partitions"].items():
        counted = {f: pq.read_metadata(out / "lake" / key / f).num_rows for f in part["files"]}
        assert counted == part["files"]
        assert part["rows"] == sum(counted.values())
        total += part["rows"]
    assert total == man["rows"] == sum(f["records_out"] for f in result["files"])
    for signal in SIGNALS:
        assert man["rows_by_source"][signal] == read_signal(signal, out).num_rows


def test_rerun_neither_duplicates_nor_loses_rows(tmp_path, lake_ds):
    out, _ = lake_ds
    before = tree(out / "lake")
    copy = tmp_path / "ds"
    shutil.copytree(out, copy)
    # a stale object of a writer (as left by an earlier, larger run) must go on rerun
    some = sorted((copy / "lake").rglob("part-*-00000.parquet"))[0]
    stale = some.with_name(some.name.replace("-00000", "-00007"))
    shutil.copy(some, stale)
    # another writer's object in the same partition must stay
    other = some.with_name("part-otherwriter-00000.parquet")
    shutil.copy(some, other)
    convert_lake(SAMPLE_RAW, copy)
    after = tree(copy / "lake")
    assert not stale.exists() and other.exists()
    del after[other.relative_to(copy / "lake").as_posix()]
    assert after == before  # byte-identical objects, deterministic names
    man = L.read_manifest(copy / "lake")
    assert man["rows"] == L.read_manifest(out / "lake")["rows"] + pq.read_metadata(other).num_rows


def test_writers_sharing_partitions_keep_distinct_uids(tmp_path):
    raw = tmp_path / "raw"
    (raw / "host-b").mkdir(parents=True)
    shutil.copy(SAMPLE_RAW / "logs.txt", raw / "logs.txt")
    shutil.copy(SAMPLE_RAW / "logs.txt", raw / "host-b" / "logs.txt")
    res = convert_lake(raw, tmp_path / "out")
    assert [f["source"] for f in res["files"]] == ["host-b/logs.txt", "logs.txt"]
    logs = read_signal("logs", tmp_path / "out")
    assert logs.num_rows == 2 * res["files"][0]["records_out"] > 0
    uids = pc.struct_field(logs.column("metadata"), "uid")
    assert len(pc.unique(uids)) == logs.num_rows
    assert read_labels(tmp_path / "out").num_rows == logs.num_rows


def test_validate_cli_accepts_lake_and_file(single, lake_ds, capsys):
    from obslab.cli import main

    out, _ = lake_ds
    assert main(["ocsf", "validate", str(out / "lake"), str(single / "ocsf_traces.parquet"), "--sample", "300"]) == 0
    text = capsys.readouterr().out
    for signal in SIGNALS:
        assert f"[{signal}]: OCSF 1.8.0 validation OK" in text
    assert "ocsf_traces.parquet: OCSF 1.8.0 validation OK" in text


def test_convert_cli_lake_layout(tmp_path, lake_ds, capsys):
    from obslab.cli import main

    assert main(["ocsf", "convert", str(SAMPLE_RAW), str(tmp_path / "o"), "--lake", "--validate-sample", "50"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows_by_source"] == L.read_manifest(lake_ds[0] / "lake")["rows_by_source"]
    assert tree(tmp_path / "o" / "lake") == tree(lake_ds[0] / "lake")


def test_bad_inputs_are_clear_errors(tmp_path, single, lake_ds, capsys):
    from obslab.cli import main

    with pytest.raises(FileNotFoundError, match="no such OCSF parquet file or lake"):
        L.read_ocsf(tmp_path / "nothing.parquet")
    with pytest.raises(ValueError, match="say which signal"):
        L.read_ocsf(lake_ds[0] / "lake")
    with pytest.raises(FileExistsError, match="single-file dataset"):
        convert_lake(SAMPLE_RAW, single)
    with pytest.raises(FileNotFoundError, match="no raw files"):
        convert_lake(tmp_path, tmp_path / "o")
    with pytest.raises(ValueError, match="must divide a day"):
        lake_window_features(lake_ds[0], window_ms=7_000_000)
    assert main(["ocsf", "convert", str(tmp_path), str(tmp_path / "o"), "--lake"]) == 2
    assert main(["lake", "score", str(lake_ds[0]), str(tmp_path / "s.parquet"), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no raw files" in err and "not a scoring model folder" in err and "Traceback" not in err


def test_synthetic_lake_equals_day_files(synth_pair):
    files, lake = synth_pair
    man = L.read_manifest(lake / "lake")
    assert {p["date"] for p in man["partitions"].values()} == {"2025-01-01", "2025-01-02", "2025-01-03"}
    assert len({p["region"] for p in man["partitions"].values()}) == 3
    run = json.loads((lake / "run.json").read_text())
    for signal in SIGNALS:
        assert_tables_equal(L.canonical_order(read_signal(signal, files)), read_signal(signal, lake))
        assert man["rows_by_source"][signal] == run["counts"][signal]


def test_window_features_per_day_equal_whole_run(synth_pair):
    from obslab.features import load_windows, window_features

    files, lake = synth_pair
    whole = canonical_windows(load_windows(files, window_ms=300_000))
    per_day = lake_window_features(lake, window_ms=300_000)
    pd.testing.assert_frame_equal(whole, per_day)
    assert per_day["window_start_ms"].nunique() == 3 * 288
    # without explicit bounds a day's grid starts at its first event: a quiet first hour
    # (no events before 01:00) loses its windows; the day's bounds keep all 288
    lo, hi = L.day_bounds_ms("2025-01-02")
    day = L.read_lake(lake / "lake", "traces", dates=["2025-01-02"])
    late = day.filter(pc.greater_equal(day.column("time"), lo + 3_600_000))
    naive = window_features(traces=late, window_ms=300_000)
    bounded = window_features(traces=late, window_ms=300_000, start_ms=lo, end_ms=hi - 1)
    assert bounded["window_start_ms"].nunique() == 288
    assert naive["window_start_ms"].nunique() <= 288 - 12


def test_obslab_needs_no_ray(tmp_path):
    """Ray is optional: with it unimportable, obslab, its CLI and the local engine work, and
    asking for the Ray engine is a clear error."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import obslab, obslab.lake, obslab.data, obslab.distributed, obslab.distributed.score\n"
        "from obslab.cli import build_parser; build_parser()\n"
        "from obslab.distributed import convert_lake, get_engine\n"
        f"r = convert_lake({str(SAMPLE_RAW)!r}, {str(tmp_path / 'o')!r}, validate_sample=0)\n"
        "assert r['manifest']['rows'] > 0\n"
        "try:\n    get_engine('ray')\nexcept RuntimeError as e:\n    print('clear:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "clear: --engine ray needs Ray" in out.stdout


def test_lake_cli_features_score_manifest(tmp_path, lake_ds, capsys):
    from obslab.cli import main
    from obslab.distributed.score import fit_scoring_model, save_scoring_model
    from obslab.features import trace_events

    out, _ = lake_ds
    assert main(["lake", "features", str(out), str(tmp_path / "w.parquet")]) == 0
    windows = pd.read_parquet(tmp_path / "w.parquet")
    pd.testing.assert_frame_equal(windows, lake_window_features(out))
    events = trace_events(read_signal("traces", out))
    model = save_scoring_model(tmp_path / "model", fit_scoring_model(
        events, events["time_ms"] <= events["time_ms"].median(), seed=1, epochs=1, min_steps=10,
        budget_steps=20, check_every=10))
    capsys.readouterr()
    assert main(["lake", "score", str(out), str(tmp_path / "s.parquet"), "--model", str(model)]) == 0
    printed = json.loads(capsys.readouterr().out)
    scores = pq.read_table(tmp_path / "s.parquet").to_pandas()
    assert printed["events"] == len(scores) == len(events)
    assert scores["time_ms"].is_monotonic_increasing and scores["uid"].is_unique
    assert printed["alerts"] == int(scores["alert"].sum())
    assert main(["lake", "manifest", str(out / "lake")]) == 0
    assert json.loads(capsys.readouterr().out)["rows"] == L.read_manifest(out / "lake")["rows"]
