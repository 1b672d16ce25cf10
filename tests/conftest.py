"""pytest configuration shared by the whole suite.

The book's notebooks are MyST markdown files (jupytext), which nbval does not collect: it only
knows ``.ipynb``. The collector below reads a ``.md`` whose front matter declares a
``kernelspec`` with jupytext and hands the notebook to nbval's own cell items, so

    pytest -q tests --nbval-lax --nbval-current-env notebooks

runs every notebook cell by cell in a kernel whose working directory is the notebook's folder.
It is registered as a plugin (not only as this folder's conftest hook) so that it also
collects notebooks outside ``tests/``.

A notebook that reads the dataset is skipped, with the reason, when no dataset exists yet (no
``ocsf_*.parquet`` under ``obslab.data.default_dataset()``): run ``make sample`` or point
``OBSLAB_DATA`` at one.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import jupytext
import pytest
from nbval.plugin import IPyNbCell, IPyNbFile, find_comment_markers, find_metadata_tags

# front matter of a jupytext MyST notebook begins with these (see notebooks/*.md)
_FRONT_MATTER_MARKERS = ("jupytext:", "kernelspec:")
# a notebook that mentions one of these reads the dataset
_DATA_MARKERS = ("obslab.data", "read_signal", "read_labels", "read_incidents", "default_dataset")


def is_myst_notebook(path: Path) -> bool:
    """A ``.md`` file whose YAML front matter declares a jupytext kernelspec."""
    if path.suffix != ".md":
        return False
    head = path.read_text(encoding="utf-8", errors="replace")[:4000]
    if not head.startswith("---"):
        return False
    front = head.split("---", 2)[1] if head.count("---") >= 2 else ""
    return all(marker in front for marker in _FRONT_MATTER_MARKERS)


def dataset_missing_reason() -> str | None:
    from obslab.data import SIGNALS, dataset_runs, default_dataset, signal_path

    root = default_dataset()
    try:
        runs = dataset_runs(root)  # a dataset, or a corpus of runs
    except FileNotFoundError:
        runs = [root]
    if any(signal_path(run, s).exists() for run in runs for s in SIGNALS):
        return None
    return f"no dataset at {root} (no ocsf_*.parquet): run `make sample` or set OBSLAB_DATA"


class MystNotebookFile(IPyNbFile):
    """nbval's notebook collector, reading the notebook with jupytext instead of nbformat."""

    def collect(self):
        self.nb = jupytext.read(self.path)
        code_cells = (c for c in self.nb.cells if c.cell_type == "code")
        for cell_num, cell in enumerate(code_cells):
            options = defaultdict(bool, find_metadata_tags(cell.metadata))
            options.update(dict(find_comment_markers(cell.source)))
            options.setdefault("check", self.compare_outputs)
            yield IPyNbCell.from_parent(
                self, name=f"Cell {cell_num}", cell_num=cell_num, cell=cell, options=options
            )

    def setup(self):
        # skip before starting a kernel: every cell of this notebook reports the reason
        source = "\n".join(c.source for c in self.nb.cells if c.cell_type == "code")
        if any(m in source for m in _DATA_MARKERS):
            reason = dataset_missing_reason()
            if reason:
                pytest.skip(reason)
        super().setup()


class MystNotebookCollector:
    """Plugin object: hooks registered this way apply to paths anywhere, not only tests/."""

    @staticmethod
    def pytest_collect_file(file_path: Path, parent):
        opt = parent.config.option
        if (opt.nbval or opt.nbval_lax) and is_myst_notebook(file_path):
            return MystNotebookFile.from_parent(parent, path=file_path)
        return None


def pytest_configure(config):
    name = "obslab-myst-notebooks"
    if not config.pluginmanager.has_plugin(name):
        config.pluginmanager.register(MystNotebookCollector(), name)


@pytest.fixture(scope="session")
def synth_serve_model(tmp_path_factory):
    """`obslab serve train --from synth --days 1 --epochs 2` run once per test session: the
    serving guide checks the command and its folder, the quality tests measure the model. Both
    only read the folder (a daemon keeps its state in its own file). Returns (folder, result)."""
    import os
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("synth-serve-model") / "model"
    result = subprocess.run([sys.executable, "-m", "obslab.cli", "serve", "train", "--from", "synth", "--days", "1",
                             "--epochs", "2", "--out", str(out)], capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    return out, result
