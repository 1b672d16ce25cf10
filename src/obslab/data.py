"""Dataset layout and loaders. Notebooks, scripts and the daemon read data only through here.

A dataset is a folder (a lab run, a synthetic run, or the committed sample)::

    DIR/raw/logs.txt            Compose-format log lines         (lab; synth with --format raw)
    DIR/raw/traces.jsonl        OTLP JSON lines
    DIR/raw/metrics.json        Prometheus range-query results for the documented queries
    DIR/ocsf_logs.parquet       OCSF events, one file or a folder of parquet files
    DIR/ocsf_traces.parquet     (a folder when written partitioned, e.g. by day)
    DIR/ocsf_metrics.parquet
    DIR/lake/                   or the same events as a lake (obslab.lake: one OCSF class per
                                object, class_uid=/source=/region=/date= partitions, manifest.json)
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

__all__ = ["SIGNALS", "REPO_ROOT", "SYNTH_DEFAULTS", "default_dataset", "dataset_runs", "example_run",
           "control_dataset", "signal_path", "signal_schema", "read_signal", "read_labels", "read_incidents",
           "read_run", "synth_dataset", "dataset_step_ms"]

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


def example_run(root: str | os.PathLike | None = None) -> Path:
    """One run to look at: the dataset itself, or a corpus's first run (the single-run chapters use it)."""
    return dataset_runs(root)[0]


def _one_run(root) -> Path:
    """A single-run dataset folder; a corpus is refused with what to do instead (never read silently)."""
    root = Path(root or default_dataset())
    if not (root / "labels.parquet").exists() and (root / "runs").is_dir():
        raise ValueError(f"{root} is a corpus of {len(dataset_runs(root))} runs, each on its own clock: read one "
                         "run (obslab.data.example_run(root)) or each of obslab.data.dataset_runs(root)")
    return root


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


def _lake_of(root, signal: str):
    """The dataset's lake when it holds this signal in lake form (and no single file)."""
    from obslab.lake import find_lake, lake_files

    if signal_path(root, signal).exists():
        return None
    lake = find_lake(root)
    return lake if lake is not None and lake_files(lake, signal) else None


def signal_schema(signal: str, root: str | os.PathLike | None = None) -> pa.Schema | None:
    """The Arrow schema of one signal of a dataset (file, folder or lake); None when absent."""
    root = _one_run(root)
    lake = _lake_of(root, signal)
    if lake is not None:
        from obslab.lake import lake_schema

        return lake_schema(lake, signal)
    path = signal_path(root, signal)
    return ds.dataset(path, format="parquet", partitioning=None).schema if path.exists() else None


def read_signal(signal: str, root: str | os.PathLike | None = None, columns=None) -> pa.Table:
    """One signal's OCSF events as an Arrow table (file, partitioned folder or lake alike; a
    lake's rows come in (time, metadata.uid) order)."""
    root = _one_run(root)
    lake = _lake_of(root, signal)
    if lake is not None:
        from obslab.lake import read_lake

        return read_lake(lake, signal, columns=columns)
    path = signal_path(root, signal)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: is {path.parent} an obslab dataset?")
    # partition folders (day=...) are a storage layout, not OCSF attributes: keep them out
    return ds.dataset(path, format="parquet", partitioning=None).to_table(columns=columns)


def read_labels(root: str | os.PathLike | None = None) -> pa.Table:
    path = _one_run(root) / "labels.parquet"
    return ds.dataset(path, format="parquet", partitioning=None).to_table()


def read_incidents(root: str | os.PathLike | None = None) -> list:
    from obslab.truth import read_incidents as _read

    return _read(_one_run(root) / "incidents.json")


def read_run(root: str | os.PathLike | None = None) -> dict:
    return json.loads((_one_run(root) / "run.json").read_text())


# --- the synthetic year as a dataset ----------------------------------------------------------

# A year at 5-minute steps: 105,120 windows per service, 525,600 (service, window) rows, of
# which window_experiment's early 40 % give the encoder over 200,000 training rows.
SYNTH_DEFAULTS = {"days": 365, "step": "5m"}


def _synth_code_fingerprint() -> str:
    # the generator and the OCSF mapping decide the bytes: a change to either regenerates
    import hashlib

    h = hashlib.sha256()
    for folder in ("synth", "ocsf"):
        for path in sorted((Path(__file__).parent / folder).glob("*.py")):
            h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:16]


def synth_dataset(seed: int = 7, workers: int | None = None, **config) -> Path:
    """A labelled synthetic dataset (:mod:`obslab.synth`) in the obslab layout, in the cache.

    Defaults: a year (``days=365``) at ``step="5m"``, the generator's other defaults (5
    services x 5 hosts in 3 regions, about 0.8 incidents a day plus cascades); any
    :class:`obslab.synth.SynthConfig` field overrides them. The folder is keyed by the full
    configuration and the generator's code, so the same arguments reuse it and the same seed
    gives the same bytes; it is written beside its final name and renamed in when complete.
    The window matching its granularity is ``dataset_step_ms(path)``.
    """
    import hashlib
    import shutil

    from obslab.cache import cache_path
    from obslab.synth import generate, load_config

    cfg = load_config(**{**SYNTH_DEFAULTS, **config, "seed": seed})
    blob = json.dumps([cfg.to_dict(), _synth_code_fingerprint()], sort_keys=True)
    key = hashlib.sha256(blob.encode()).hexdigest()[:12]
    path = cache_path("datasets", f"synth-{seed}-{cfg.days}d-{cfg.step}-{key}")
    if (path / "run.json").exists():
        return path
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    generate(cfg, tmp, fmt="ocsf", quiet=True, workers=workers)
    try:
        tmp.rename(path)
    except OSError:  # another process finished the same dataset first: identical bytes
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def dataset_step_ms(root: str | os.PathLike | None = None) -> int | None:
    """The sampling step of a synthetic dataset (its metrics' granularity) in ms, from
    run.json; None for a lab run, whose scrape interval is seconds."""
    run_file = Path(root or default_dataset()) / "run.json"
    if not run_file.exists():
        return None
    step = json.loads(run_file.read_text()).get("config", {}).get("step")
    if step is None:
        return None
    from obslab.synth.config import parse_step

    return parse_step(step) * 1000
