"""A small generated dataset: determinism, schema validity, labels kept apart, raw formats."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from obslab.cli import main
from obslab.data import read_incidents, read_labels, read_run, read_signal
from obslab.ocsf import read_compose_logs, read_otlp, read_prometheus, validate_table
from obslab.synth import LABEL_SCHEMA, generate, load_config

DAYS = 3


def _digests(root: Path) -> dict[str, str]:
    files = sorted(root.rglob("*.parquet")) + [root / "incidents.json"]
    files += sorted((root / "raw").glob("*")) if (root / "raw").exists() else []
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files if p.is_file()}


@pytest.fixture(scope="module")
def ds(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "a"
    generate(load_config(days=DAYS, seed=11, server_metrics=True), root, fmt="both", workers=2)
    return root


def test_layout_and_counts(ds):
    run = read_run(ds)
    for signal in ("logs", "traces", "metrics"):
        days = sorted(p.name for p in (ds / f"ocsf_{signal}.parquet").iterdir())
        assert days == ["day=2025-01-01", "day=2025-01-02", "day=2025-01-03"]
        assert read_signal(signal, ds).num_rows == run["counts"][signal] > 0
    # 8 metrics x 25 hosts x 96 steps a day
    assert run["counts"]["metrics"] == 8 * 25 * 96 * DAYS
    assert (ds / "server_metrics.parquet").exists()


def test_same_seed_same_bytes_other_seed_differs(ds, tmp_path):
    again = tmp_path / "b"
    generate(load_config(days=DAYS, seed=11, server_metrics=True), again, fmt="both", workers=1)
    assert _digests(ds) == _digests(again)  # also independent of the worker count
    other = tmp_path / "c"
    generate(load_config(days=DAYS, seed=12), other, fmt="ocsf", workers=1)
    a = read_signal("metrics", ds, columns=["unmapped"]).column("unmapped").combine_chunks()
    b = read_signal("metrics", other, columns=["unmapped"]).column("unmapped").combine_chunks()
    assert not a.field("value").equals(b.field("value"))


def test_ocsf_samples_validate(ds):
    for signal in ("logs", "traces", "metrics"):
        table = read_signal(signal, ds)
        res = validate_table(table, sample=400)
        assert res.invalid == 0, (signal, res.examples[:3])
    classes = set(read_signal("logs", ds, columns=["class_uid"]).column("class_uid").to_pylist())
    assert {0, 4002, 6002, 6008} <= classes  # events, access, lifecycle (deploys), errors


def _field_names(t: pa.DataType, prefix=""):
    if pa.types.is_struct(t):
        for f in t:
            yield prefix + f.name
            yield from _field_names(f.type, prefix + f.name + ".")
    elif pa.types.is_list(t):
        yield from _field_names(t.value_type, prefix)


def test_labels_live_only_in_labels_parquet(ds):
    for signal in ("logs", "traces", "metrics"):
        schema = read_signal(signal, ds).schema
        names = [n for f in schema for n in [f.name, *_field_names(f.type, f.name + ".")]]
        leaks = [n for n in names if any(w in n.lower() for w in
                                         ("marker", "anomaly", "incident", "fault", "phase"))]
        assert leaks == [], leaks  # (unmapped.labels of metrics is the series' label set)
        # and no marker value in any string of the events either
        text = json.dumps(read_signal(signal, ds).slice(0, 2000).to_pylist(), default=str)
        assert "syn-" not in text
    labels = read_labels(ds)
    assert labels.schema.equals(LABEL_SCHEMA, check_metadata=False)
    for signal in ("logs", "traces", "metrics"):
        uids = read_signal(signal, ds, columns=["metadata"]).column("metadata").combine_chunks()
        mine = labels.filter(pa.compute.equal(labels.column("signal"), signal)).column("uid")
        assert sorted(uids.field("uid").to_pylist()) == sorted(mine.to_pylist())
    assert len(set(labels.column("uid").to_pylist())) == labels.num_rows


def test_labels_agree_with_incidents(ds):
    incs = {i.incident_id: i for i in read_incidents(ds)}
    lab = read_labels(ds).to_pandas()
    bad = lab[lab.is_anomaly]
    assert len(bad) > 0 and set(bad.phase) == {"fault"}
    for row in bad.sample(min(300, len(bad)), random_state=0).itertuples():
        inc = incs[row.incident_id]
        assert inc.start_ms <= row.time < inc.end_ms + 15 * 60_000  # spans may end a step later
        assert row.root_cause_service == inc.root_cause
        assert row.service in inc.targets
    assert set(lab.phase) <= {"normal", "fault", "cooldown"}


def test_raw_files_read_back_with_the_ocsf_readers(ds):
    run = read_run(ds)
    n_logs = sum(len(b) for b in _batches(read_compose_logs(ds / "raw" / "logs.txt")))
    n_spans = sum(len(b) for b in _batches(read_otlp(ds / "raw" / "traces.jsonl")))
    n_metrics = sum(len(b) for b in _batches(read_prometheus(ds / "raw" / "metrics.json")))
    assert (n_logs, n_spans, n_metrics) == (run["counts"]["logs"], run["counts"]["traces"],
                                            run["counts"]["metrics"])
    first = (ds / "raw" / "logs.txt").read_text().splitlines()[0]
    container, payload = first.split("  | ", 1)
    assert json.loads(payload)["service"] in container


def _batches(it):
    for b in it:
        yield b[0] if isinstance(b, tuple) else b


def test_cli_writes_a_dataset_and_rejects_bad_flags(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--days", "1", "--step", "30m", "--seed", "3", "--out", str(out),
                 "--hosts-per-service", "2", "--quiet", "--workers", "1"]) == 0
    assert read_signal("metrics", out).num_rows == 8 * 10 * 48
    assert main(["synth", "--days", "1", "--step", "7m", "--out", str(tmp_path / "x")]) == 2
    assert "step" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    # a second run into the same folder must not mix with the first one's day partitions
    again = ["synth", "--days", "1", "--step", "1h", "--out", str(out), "--quiet", "--workers", "1"]
    assert main(again) == 2
    assert "already holds a dataset" in capsys.readouterr().err
    assert main([*again, "--overwrite"]) == 0
    assert read_signal("metrics", out).num_rows == 8 * 25 * 24


def test_parquet_day_files_hold_their_day(ds):
    for p in (ds / "ocsf_metrics.parquet").rglob("*.parquet"):
        day = p.parent.name.split("=")[1]
        t = pq.read_table(p, columns=["time"]).column("time").to_numpy()
        days = np.unique(t.astype("datetime64[ms]").astype("datetime64[D]").astype(str))
        assert list(days) == [day]


def test_host_level_labels_refine_the_service_level_labeller(ds):
    """obslab.labels labels by (time, service) from incidents.json; synth labels per host, so
    every synthetic anomaly is an anomaly there too, and partial outages leave healthy hosts
    of the same service normal."""
    from obslab.labels import label_events

    incs = read_incidents(ds)
    mine = read_labels(ds)
    for signal in ("metrics", "logs"):
        ocsf = read_signal(signal, ds)
        theirs = label_events(ocsf, signal, incs)
        by_uid = dict(zip(theirs.column("uid").to_pylist(), theirs.column("is_anomaly").to_pylist()))
        sel = mine.filter(pa.compute.equal(mine.column("signal"), signal))
        flags = dict(zip(sel.column("uid").to_pylist(), sel.column("is_anomaly").to_pylist()))
        assert set(by_uid) == set(flags)
        assert all(by_uid[u] for u, a in flags.items() if a)
