"""Sample-data tooling: scripts/refresh_sample.py's pieces, and the committed data/sample
agreeing with its MANIFEST.json (files, sizes, hashes, counts) within the size budget."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample"


def load_script():
    spec = importlib.util.spec_from_file_location("refresh_sample", REPO / "scripts" / "refresh_sample.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


refresh = load_script()


def test_copy_head_keeps_whole_leading_lines(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [f'{{"n": {i}, "pad": "{"x" * (i % 7)}"}}\n' for i in range(100)]
    src.write_text("".join(lines))
    budget = sum(len(x) for x in lines[:40]) + 3  # room for 40 lines and a bit, not 41
    info = refresh.copy_head(src, tmp_path / "out.jsonl", budget)
    assert info == {"lines_kept": 40, "lines_total": 100, "bytes_total": src.stat().st_size}
    assert (tmp_path / "out.jsonl").read_text() == "".join(lines[:40])
    # a budget larger than the file keeps it whole
    info = refresh.copy_head(src, tmp_path / "all.jsonl", 10**9)
    assert info["lines_kept"] == 100 and (tmp_path / "all.jsonl").read_bytes() == src.read_bytes()


def test_replace_swaps_in_the_staged_folder(tmp_path):
    out, staging = tmp_path / "sample", tmp_path / "sample.new"
    out.mkdir()
    (out / "old.txt").write_text("old")
    staging.mkdir()
    (staging / "new.txt").write_text("new")
    refresh.replace(staging, out)
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert not staging.exists() and not (tmp_path / "sample.old").exists()


manifest_path = SAMPLE / "MANIFEST.json"
needs_sample = pytest.mark.skipif(not manifest_path.exists(), reason="data/sample has no MANIFEST.json yet")


@needs_sample
def test_sample_matches_its_manifest():
    manifest = json.loads(manifest_path.read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    present = {p.relative_to(SAMPLE).as_posix() for p in SAMPLE.rglob("*") if p.is_file()} - {"MANIFEST.json"}
    assert present == set(listed), present ^ set(listed)
    for rel, entry in listed.items():
        data = (SAMPLE / rel).read_bytes()
        assert len(data) == entry["bytes"], rel
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], rel
    assert manifest["total_bytes"] <= 20e6
    assert manifest["command"][:3] == ["obslab", "lab", "run"]  # a real lab run, not synthetic
    assert isinstance(manifest["seed"], int)


def independent_counts(root: Path) -> dict:
    """The same figures as refresh.dataset_counts, read another way: Parquet footers and columns
    through pyarrow alone, incidents from the JSON file, with no obslab reader involved."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts: dict = {"events": {}, "classes": {}}
    for signal in ("logs", "traces", "metrics"):
        path = root / f"ocsf_{signal}.parquet"
        counts["events"][signal] = pq.read_metadata(path).num_rows
        classes = pq.read_table(path, columns=["class_uid"]).column("class_uid").to_pylist()
        counts["classes"][signal] = {str(k): classes.count(k) for k in sorted(set(classes))}
    labels = pq.read_table(root / "labels.parquet", columns=["is_anomaly", "phase"])
    counts["labels"] = labels.num_rows
    counts["anomalous"] = int(pc.sum(labels["is_anomaly"]).as_py() or 0)
    phases = labels["phase"].to_pylist()
    counts["phases"] = {k: phases.count(k) for k in sorted(set(phases))}
    incidents = json.loads((root / "incidents.json").read_text())["incidents"]
    counts["incidents"] = len(incidents)
    faults = [i["fault_id"] for i in incidents]
    counts["faults"] = {f: faults.count(f) for f in sorted(set(faults))}
    counts["verified_incidents"] = sum(bool(i.get("verified")) for i in incidents)
    return counts


def check_counts(root: Path, listed: dict) -> None:
    """Manifest counts against an independent recount, and against what the lab run and the
    converters recorded when they wrote the files (run.json, *.report.json)."""
    assert listed == independent_counts(root)
    assert refresh.dataset_counts(root) == listed  # the tool that wrote them agrees with the recount
    run = json.loads((root / "run.json").read_text())["counts"]
    assert listed["events"]["logs"] == run["log_lines_total"]  # one OCSF event per Compose log line
    assert listed["events"]["traces"] == run["spans"]
    assert listed["incidents"] == run["incidents"]
    for signal, n in listed["events"].items():
        report = json.loads((root / f"ocsf_{signal}.parquet.report.json").read_text())
        assert report["records_out"] == n and report["rejected"] == 0, (signal, report)
    assert listed["labels"] == sum(listed["events"].values())  # one label per event
    assert listed["anomalous"] == listed["phases"].get("fault", 0)


@needs_sample
def test_sample_counts_match_the_data():
    manifest = json.loads(manifest_path.read_text())
    check_counts(SAMPLE, manifest["counts"])
    assert manifest["counts"]["incidents"] >= 3
    assert all(n > 0 for n in manifest["counts"]["events"].values())


@needs_sample
def test_control_run_is_fault_free_and_counted():
    control = json.loads(manifest_path.read_text()).get("control_run")
    if control is None:
        pytest.skip("this sample has no control run")
    counts = control["counts"]
    check_counts(SAMPLE / "control", counts)
    assert counts["incidents"] == 0 and counts["anomalous"] == 0
    assert control["command"][:3] == ["obslab", "lab", "run"] and "none" in control["command"]
    assert all(n > 0 for n in counts["events"].values())
