"""Sphinx extension: one notebook-execution cache per dataset.

myst-nb's ``cache`` mode re-executes a notebook only when its code changes, so switching
``OBSLAB_DATA`` or refreshing ``data/sample`` would silently keep outputs computed on the old
data. This hook points ``nb_execution_cache_path`` at ``_build/.jupyter_cache/<key>``, where the
key fingerprints the dataset the notebooks will read (its path and every file's name, size and
modification time). A new key is a changed ``env`` config value, so Sphinx re-reads the
notebooks and myst-nb executes them against the new data; going back to a dataset reuses its
cache.
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
                st = path.stat()
                digest.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def _set_cache_path(app, config) -> None:
    from obslab.data import default_dataset

    root = default_dataset()
    cache = Path(app.outdir).parent / ".jupyter_cache" / dataset_key(root)
    config.nb_execution_cache_path = str(cache)
    logger.info("[dataset_cache] dataset %s -> %s", root, cache)


def setup(app):
    # after myst-nb registered its config values, before it reads them on builder-inited
    app.connect("config-inited", _set_cache_path)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
