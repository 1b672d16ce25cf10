"""The Jupyter Book's configuration: the toc lists files that exist, the config keeps the rules
the build depends on, and the per-dataset execution cache key behaves."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def load_ext(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "book" / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def toc_files(node) -> list[str]:
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("root", "file"):
                found.append(value)
            else:
                found += toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += toc_files(item)
    return found


def test_toc_lists_existing_files_once():
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    assert toc["format"] == "jb-book"
    files = toc_files(toc)
    assert files[0] == "book/intro"
    assert len(files) == len(set(files)), "a file is listed twice"
    missing = [f for f in files if not (REPO / f"{f}.md").exists()]
    assert not missing, f"listed in _toc.yml but missing: {missing}"
    # every notebook in notebooks/ is a chapter
    chapters = {f for f in files if f.startswith("notebooks/")}
    assert {f"notebooks/{p.stem}" for p in (REPO / "notebooks").glob("*.md")} <= chapters


def test_config_keeps_the_build_rules():
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    assert config["only_build_toc_files"] is True
    execute = config["execute"]
    assert execute["execute_notebooks"] == "cache"
    assert execute["raise_on_error"] is True
    assert execute["stderr_output"] in ("warn", "error", "severe")
    for pattern in ("appendix-code", "src", "tests", "data", ".venv", "_build", "bench", "scripts"):
        assert pattern in config["exclude_patterns"], pattern
    url = config.get("repository", {}).get("url")
    assert url is None or url.startswith("https://github.com/")
    for name, path in config["sphinx"]["local_extensions"].items():
        assert (REPO / path / f"{name}.py").is_file(), name


def test_dataset_cache_key_tracks_the_data(tmp_path):
    key = load_ext("dataset_cache").dataset_key
    (tmp_path / "ocsf_logs.parquet").write_bytes(b"a")
    first = key(tmp_path)
    assert key(tmp_path) == first  # stable
    (tmp_path / "ocsf_logs.parquet").write_bytes(b"ab")
    assert key(tmp_path) != first  # content changed
    other = tmp_path / "copy"
    other.mkdir()
    assert key(other) != key(tmp_path)  # another dataset
    os.utime(other, ns=(0, 0))
    assert len(key(other)) == 12


def test_download_role_points_at_the_built_zip():
    import re

    spec = importlib.util.spec_from_file_location("build_appendix_zip", REPO / "scripts" / "build_appendix_zip.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    page = REPO / "book" / "appendix" / "lab.md"
    targets = re.findall(r"\{download\}`[^<`]*<([^>]+)>`", page.read_text())
    assert targets, "the lab appendix offers no download"
    assert all((page.parent / t).resolve() == builder.DEFAULT_OUT.resolve() for t in targets), targets
    # the zip is built outside _static, so Sphinx copies it once
    assert "_static" not in builder.DEFAULT_OUT.parts
