"""Where heavy, reusable artefacts (trained encoders) live between notebook runs.

``cache_dir()`` is ``$OBSLAB_CACHE`` or ``<repo>/_build/obslab-cache`` (git-ignored, removed by
``make clean``). ``cache_path("models", "encoder")`` names a path inside it and creates the
parent folders. Nothing in the cache is authoritative: deleting it only costs retraining.
"""

from __future__ import annotations

import os
from pathlib import Path

from obslab.data import REPO_ROOT

__all__ = ["cache_dir", "cache_path"]


def cache_dir() -> Path:
    """The cache root: ``$OBSLAB_CACHE`` or ``<repo>/_build/obslab-cache``; created on demand."""
    root = Path(os.environ.get("OBSLAB_CACHE") or REPO_ROOT / "_build" / "obslab-cache")
    root.mkdir(parents=True, exist_ok=True)
    return root


def cache_path(*parts: str) -> Path:
    """A path inside the cache (its parent folder exists; the path itself may not)."""
    path = cache_dir().joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
