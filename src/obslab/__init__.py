"""obslab: embedding-based anomaly detection on observability data.

The public API is the modules in ``__all__`` (and, inside each, its own ``__all__``); modules
whose name starts with an underscore are internal and may change. Each module imports on first
use (``obslab.features`` works without an import statement), so ``import obslab`` stays cheap.

- ``ocsf``      raw telemetry readers, OCSF 1.8.0 mapping, schemas, validation and conversion
- ``lake`` / ``distributed``  OCSF parquet as a partitioned lake; conversion and scoring spread
  over workers
- ``prom``      the Prometheus HTTP client (range queries, the ``metrics.json`` export)
- ``synth``     synthetic MELT generator with ground truth
- ``lab``       the lab as native processes, fault scenarios, the ``obslab lab`` command
- ``truth``     the incident catalog and the one incident -> phase mapping
- ``labels``    per-event labels (``labels.parquet``) from the catalog and request markers
- ``data``      dataset layout and loaders used by the notebooks; ``cache`` where encoders live
- ``events`` / ``kpis``  event rows and KPI tables of a dataset
- ``features`` / ``model`` / ``train`` / ``detect``  features, the encoder and the detectors
- ``experiment`` / ``evaluate`` / ``stats`` / ``sweep`` / ``sensitivity``  splits, metrics and
  their uncertainty
- ``rca`` / ``rca_runs``  root-cause ranking
- ``drift`` / ``embedding_quality`` / ``plots``  the notebooks' diagnostics and figures
- ``serve``     the inference daemon; ``cli`` the ``obslab`` command
"""

import importlib

__version__ = "0.1.0"

_MODULES = (
    "cache", "cli", "data", "detect", "distributed", "drift", "embedding_quality", "evaluate", "events",
    "experiment", "features", "kpis", "lab", "labels", "lake", "model", "ocsf", "plots", "prom", "rca", "rca_runs",
    "sensitivity", "serve", "stats", "sweep", "synth", "train", "truth",
)
__all__ = ["__version__", *_MODULES]


def __getattr__(name: str):
    # heavy dependencies (torch, pandas) load only with the module that needs them
    if name in _MODULES:
        return importlib.import_module(f"obslab.{name}")
    raise AttributeError(f"module 'obslab' has no attribute {name!r}")
