"""Sphinx extension: build the appendix zip before the sources are read.

The zip is written to ``_build/downloads/obslab-appendix.zip`` (outside ``_static``, so Sphinx
copies it once: through the ``{download}`` role on the appendix page, into ``_downloads/``).
The builder lives in ``scripts/build_appendix_zip.py``; this hook only calls it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sphinx.util import logging

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILDER = REPO_ROOT / "scripts" / "build_appendix_zip.py"


def _load_builder():
    spec = importlib.util.spec_from_file_location("build_appendix_zip", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(app) -> None:
    path = _load_builder().build_zip()
    logger.info("[appendix_zip] built %s", path)


def setup(app):
    app.connect("builder-inited", _build)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
