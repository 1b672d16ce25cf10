"""The jupytext-aware nbval collector in tests/conftest.py: it runs MyST notebooks cell by cell,
reports a failing cell as a failure, runs the kernel in the notebook's folder, and skips a
notebook that needs a dataset when none exists."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import is_myst_notebook

REPO = Path(__file__).resolve().parents[1]

FRONT = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
  language: python
---

# A test notebook

"""


def cell(source: str) -> str:
    return f"```{{code-cell}} ipython3\n{source}\n```\n\n"


def run_pytest(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """pytest in a subprocess, with this suite's conftest loaded (via the tests/ argument)."""
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
           "--nbval-current-env", "-rs", str(REPO / "tests" / "test_book_nbval.py::test_marker"),
           *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_marker():
    """Collected alongside the notebooks so the subprocess loads tests/conftest.py."""


def test_detects_myst_notebooks(tmp_path):
    nb = tmp_path / "nb.md"
    nb.write_text(FRONT + cell("x = 1"))
    plain = tmp_path / "plain.md"
    plain.write_text("# Just markdown\n\n```python\nx = 1\n```\n")
    assert is_myst_notebook(nb)
    assert not is_myst_notebook(plain)
    assert not is_myst_notebook(tmp_path / "x.py")


def test_passing_and_failing_cells(tmp_path):
    (tmp_path / "data.txt").write_text("hello")
    good = tmp_path / "good.md"
    # the kernel's cwd is the notebook's folder: a relative read works
    good.write_text(FRONT + cell("x = open('data.txt').read()") + cell("assert x == 'hello'"))
    bad = tmp_path / "bad.md"
    bad.write_text(FRONT + cell("y = 2") + cell("assert y == 3, 'deliberate failure'"))
    result = run_pytest(str(good), str(bad))
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "1 failed, 4 passed" in out, out  # marker + 2 good cells + 1 good cell of bad.md
    assert "deliberate failure" in out


def test_notebook_needing_data_skips_without_dataset(tmp_path):
    nb = tmp_path / "needs_data.md"
    nb.write_text(FRONT + cell("from obslab.data import read_signal\nread_signal('logs')"))
    empty = tmp_path / "empty-dataset"
    empty.mkdir()
    result = run_pytest(str(nb), env={"OBSLAB_DATA": str(empty)})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "1 passed, 1 skipped" in out, out
    assert "no dataset at" in out


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.md")), ids=lambda p: p.name)
def test_every_notebook_is_collectable(path):
    assert is_myst_notebook(path), f"{path} lacks jupytext/kernelspec front matter"


NOTEBOOKS = sorted((REPO / "notebooks").glob("*.md"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_chapter_shape(path):
    """One H1, Overview first, Summary and Exercises last, a SEED up front, no installs."""
    import re

    import jupytext

    nb = jupytext.read(path)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    fence = re.compile(r"^```.*?^```", re.S | re.M)  # ignore code shown inside prose
    lines = fence.sub("", markdown).splitlines()
    assert len([x for x in lines if x.startswith("# ")]) == 1, "exactly one H1"
    h2 = [x[3:].strip() for x in lines if x.startswith("## ")]
    assert h2 and h2[0] == "Overview", h2
    assert h2[-2:] == ["Summary", "Exercises"], h2
    assert code and re.search(r"^SEED\s*=", code[0], re.M), "the first code cell sets SEED"
    assert not any(re.search(r"^\s*[!%]\s*(pip|conda)\b|pip install", c, re.M) for c in code), "no installs"
    assert len(path.read_text().splitlines()) <= 450, "chapters stay under ~400 lines"
    # data only through obslab.data: no file reads by path in a chapter
    banned = r"read_parquet|pq\.read_table|read_csv\(|\bopen\(|data/sample|\.\./data"
    assert not any(re.search(banned, c) for c in code), "load data through obslab.data only"
