"""Sphinx extension: one notebook-execution cache per (dataset, library) state.

myst-nb's ``cache`` mode re-executes a notebook only when its code cells change, so switching
``OBSLAB_DATA``, refreshing ``data/sample`` or editing ``src/obslab`` would silently keep
outputs computed by old code on old data. This hook points ``nb_execution_cache_path`` at
``_build/.jupyter_cache/<key>``, where the key fingerprints the dataset the notebooks read and
the library they call (paths, and every file's name, size and modification time). A new key is
a changed ``env`` config value, so Sphinx re-reads the notebooks and myst-nb executes them
again; returning to an earlier state reuses its cache.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)


def dataset_key(root: Path) -> str:
    """Short fingerprint of a dataset folder (path plus each file's name, size, mtime)."""
    digest = hashlib.sha256(str(root.resolve()).encode())
    if root.is_dir():
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if "__pycache__" in path.parts:
                    continue
                st = path.stat()
                digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


LIBRARY = Path(__file__).resolve().parents[2] / "src" / "obslab"


def _set_cache_path(app, config) -> None:
    from obslab.data import default_dataset

    root = default_dataset()
    key = hashlib.sha256(f"{dataset_key(root)}:{dataset_key(LIBRARY)}".encode()).hexdigest()[:12]
    cache = Path(app.outdir).parent / ".jupyter_cache" / key
    config.nb_execution_cache_path = str(cache)
    logger.info("[dataset_cache] dataset %s -> %s", root, cache)


def setup(app):
    # after myst-nb registered its config values, before it reads them on builder-inited
    app.connect("config-inited", _set_cache_path)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
