"""Distributed mode: the library's conversion, feature and scoring jobs over an OCSF lake, in
this process or on a Ray cluster (``engine="local" | "ray"``), with the same output.

Ray is optional: it is imported only when a job runs with ``engine="ray"``.
"""

from obslab.distributed._engine import Engine, LocalEngine, get_engine
from obslab.distributed.convert import convert_lake, raw_inputs

__all__ = ["Engine", "LocalEngine", "get_engine", "convert_lake", "raw_inputs"]
