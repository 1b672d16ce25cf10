"""The appendix zip: built from appendix-code/ plus the bundled library, reproducible, and it
works on its own: its obslab is the bundled one, its scripts convert the sample raw telemetry,
and its Compose file passes Compose's own validation."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_builder():
    spec = importlib.util.spec_from_file_location("build_appendix_zip", REPO / "scripts" / "build_appendix_zip.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()


@pytest.fixture(scope="module")
def unzipped(tmp_path_factory):
    """The zip built once and extracted into a temporary folder: (zip path, extracted root)."""
    tmp = tmp_path_factory.mktemp("appendix")
    path = builder.build_zip(tmp / "obslab-appendix.zip")
    with zipfile.ZipFile(path) as zf:
        zf.extractall(tmp / "x")
    return path, tmp / "x" / builder.TOP


def bundled_python(root: Path, code: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run code with the project's interpreter but the zip's lib/ first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(root / "lib"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("OBSLAB_DATA", None)
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd or root, env=env,
                          capture_output=True, text=True, timeout=600)


def test_zip_holds_appendix_and_library(unzipped):
    path, _ = unzipped
    names = zipfile.ZipFile(path).namelist()
    assert f"{builder.TOP}/lib/obslab/__init__.py" in names
    assert f"{builder.TOP}/lib/obslab/data.py" in names
    for banned in ("node_modules", "__pycache__", ".pyc"):
        assert not [n for n in names if banned in n], banned
    # every shipped appendix file is in the zip, under the same relative path
    expected = {f"{builder.TOP}/{p.relative_to(builder.APPENDIX).as_posix()}"
                for p in builder.iter_files(builder.APPENDIX)}
    assert expected <= set(names)
    # the library is bundled, not kept in the repo a second time
    assert not (REPO / "appendix-code" / "lib").exists()


def test_zip_is_reproducible(tmp_path):
    a = builder.build_zip(tmp_path / "a.zip")
    b = builder.build_zip(tmp_path / "b.zip")
    assert a.read_bytes() == b.read_bytes()


def test_zip_excludes_installed_and_generated_files(tmp_path):
    appendix = tmp_path / "appendix-code"
    (appendix / "services" / "x" / "node_modules" / "dep").mkdir(parents=True)
    (appendix / "services" / "x" / "node_modules" / "dep" / "index.js").write_text("x")
    (appendix / "services" / "x" / "__pycache__").mkdir()
    (appendix / "services" / "x" / "__pycache__" / "a.pyc").write_bytes(b"x")
    (appendix / "services" / "x" / "app.py").write_text("print('hi')\n")
    (appendix / "telemetry").mkdir()
    (appendix / "telemetry" / "traces.jsonl").write_text("{}\n")
    names = [n for _, n in builder.zip_members(appendix, builder.LIBRARY)]
    assert f"{builder.TOP}/services/x/app.py" in names
    assert not [n for n in names if "node_modules" in n or "pycache" in n or "telemetry" in n]


def test_bundled_library_is_the_one_imported(unzipped):
    _, root = unzipped
    result = bundled_python(root, "import obslab, obslab.data, obslab.truth; print(obslab.__file__)")
    assert result.returncode == 0, result.stderr
    imported = Path(result.stdout.strip()).resolve()
    assert imported.is_relative_to(root.resolve()), imported
