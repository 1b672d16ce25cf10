"""obslab: embedding-based anomaly detection on observability data.

Subpackages (each importable on its own, heavy dependencies imported lazily):

- ``obslab.ocsf``     raw telemetry readers, OCSF 1.8.0 mapping, schemas and validation
- ``obslab.synth``    synthetic MELT generator with ground truth
- ``obslab.lab``      the lab as native processes, fault scenarios, ground truth
- ``obslab.data``     dataset layout and loaders used by the notebooks
- ``obslab.features`` / ``obslab.model`` / ``obslab.train`` / ``obslab.detect`` /
  ``obslab.evaluate`` / ``obslab.rca``  the modelling pipeline
- ``obslab.serve``    the inference daemon
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
