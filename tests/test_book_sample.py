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


@needs_sample
def test_sample_counts_match_the_data():
    manifest = json.loads(manifest_path.read_text())
    assert refresh.dataset_counts(SAMPLE) == manifest["counts"]
    assert manifest["counts"]["incidents"] >= 3
    assert all(n > 0 for n in manifest["counts"]["events"].values())


@needs_sample
def test_control_run_is_fault_free_and_counted():
    control = json.loads(manifest_path.read_text()).get("control_run")
    if control is None:
        pytest.skip("this sample has no control run")
    counts = refresh.dataset_counts(SAMPLE / "control")
    assert counts == control["counts"]
    assert counts["incidents"] == 0 and counts["anomalous"] == 0
    assert control["command"][:3] == ["obslab", "lab", "run"] and "none" in control["command"]
    assert all(n > 0 for n in counts["events"].values())
