"""Dataset layout and loaders. Notebooks, scripts and the daemon read data only through here.

A dataset is a folder (a lab run, a synthetic run, or the committed sample)::

    DIR/raw/logs.txt            Compose-format log lines         (lab; synth with --format raw)
    DIR/raw/traces.jsonl        OTLP JSON lines
    DIR/raw/metrics.json        Prometheus range-query results for the documented queries
    DIR/ocsf_logs.parquet       OCSF events, one file or a folder of parquet files
    DIR/ocsf_traces.parquet     (a folder when written partitioned, e.g. by day)
    DIR/ocsf_metrics.parquet
    DIR/labels.parquet          ground truth per event uid (the only place labels live)
    DIR/incidents.json          the incident catalog (ground truth per injected fault)
    DIR/run.json                how the data was made: command, seed, versions, counts
    DIR/control/                optional: a no-fault control run of the same lab, same layout

A *corpus* is a folder of such datasets, ``DIR/runs/<name>/``, each an independent seeded run
(``DIR/MANIFEST.json`` says how they were made); :func:`dataset_runs` lists them, and a plain
dataset is a corpus of one run. Runs are never concatenated on one time axis: each keeps its own
clock, so windows and splits are computed per run and the rows stacked with a ``run`` key.

The default dataset is the committed sample (``data/sample`` at the repository root);
``OBSLAB_DATA`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

SIGNALS = ("logs", "traces", "metrics")
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_dataset() -> Path:
    """The dataset the book runs on: ``$OBSLAB_DATA`` or the committed sample."""
    return Path(os.environ.get("OBSLAB_DATA") or REPO_ROOT / "data" / "sample")


def dataset_runs(root: str | os.PathLike | None = None) -> list[Path]:
    """The runs of a dataset: ``[root]`` for a plain dataset, ``root/runs/*`` (sorted) for a corpus."""
    root = Path(root or default_dataset())
    if (root / "labels.parquet").exists():
        return [root]
    runs = sorted(p for p in (root / "runs").glob("*") if (p / "labels.parquet").exists())
    if not runs:
        raise FileNotFoundError(f"{root} is neither an obslab dataset (labels.parquet) nor a corpus (runs/*/)")
    return runs


def control_dataset(root: str | os.PathLike | None = None) -> Path | None:
    """The no-fault control run kept beside a dataset (``DIR/control``, or a corpus's), or None."""
    root = Path(root or default_dataset())
    path = root / "control"
    if root.parent.name == "runs" and not (path / "labels.parquet").exists():
        path = root.parent.parent / "control"  # a corpus keeps one control run for all its runs
    return path if (path / "labels.parquet").exists() else None


def signal_path(root: str | os.PathLike, signal: str) -> Path:
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; expected one of {SIGNALS}")
    return Path(root) / f"ocsf_{signal}.parquet"


def read_signal(signal: str, root: str | os.PathLike | None = None, columns=None) -> pa.Table:
    """One signal's OCSF events as an Arrow table (file or partitioned folder alike)."""
    path = signal_path(root or default_dataset(), signal)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {path.parent} an obslab dataset?")
    # partition folders (day=...) are a storage layout, not OCSF attributes: keep them out
    return ds.dataset(path, format="parquet", partitioning=None).to_table(columns=columns)


def read_labels(root: str | os.PathLike | None = None) -> pa.Table:
    path = Path(root or default_dataset()) / "labels.parquet"
    return ds.dataset(path, format="parquet", partitioning=None).to_table()


def read_incidents(root: str | os.PathLike | None = None) -> list:
    from obslab.truth import read_incidents as _read

    return _read(Path(root or default_dataset()) / "incidents.json")


def read_run(root: str | os.PathLike | None = None) -> dict:
    return json.loads((Path(root or default_dataset()) / "run.json").read_text())
