"""The book's GitHub workflow (.github/workflows/book.yml): valid against the workflow schema
vendored in check-jsonschema, and clean under zizmor (pinned actions, no credential leaks, least
privilege). Both checkers run offline and really refuse a bad workflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = REPO / ".github" / "workflows" / "book.yml"
BIN = Path(sys.executable).parent


def schema_check(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120)


def zizmor(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "zizmor"), "--offline", "--no-progress", str(path)],
                          capture_output=True, text=True, timeout=120)


def test_workflow_is_valid_and_clean():
    r = schema_check(WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    r = zizmor(WORKFLOW)
    assert r.returncode == 0, r.stdout + r.stderr
    text = WORKFLOW.read_text()
    assert "make test" in text and "make book" in text and "_build/html" in text


def test_the_checkers_refuse_a_bad_workflow(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("name: bad\non: [push]\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
                   "      - uses: someone/action@v1\n      - uses: actions/checkout@v4\n")
    assert zizmor(bad).returncode != 0  # unpinned actions, persisted credentials, default permissions
    broken = tmp_path / "broken.yml"
    broken.write_text("name: broken\non: [push]\njobs:\n  a:\n    steps: 3\n")
    assert schema_check(broken).returncode != 0
