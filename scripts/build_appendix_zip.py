#!/usr/bin/env python3
"""Build the book's downloadable zip: the lab (appendix-code/) plus the obslab library.

The zip holds ``obslab-appendix/`` with everything in ``appendix-code/`` except installed
dependencies, caches and telemetry output, and the library source under
``obslab-appendix/lib/obslab`` (bundled at build time, never kept twice in the repo), so the
converter scripts work from an unzipped copy with only ``scripts/requirements.txt`` installed.

    python scripts/build_appendix_zip.py [--out _build/downloads/obslab-appendix.zip]

The build is reproducible: entries are sorted and carry a fixed timestamp, so an unchanged
tree gives a byte-identical zip.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
APPENDIX = REPO_ROOT / "appendix-code"
LIBRARY = REPO_ROOT / "src" / "obslab"
DEFAULT_OUT = REPO_ROOT / "_build" / "downloads" / "obslab-appendix.zip"
TOP = "obslab-appendix"
LIB_IN_ZIP = f"{TOP}/lib/obslab"

# Directory names never shipped: installed packages, caches, and the lab's own output.
EXCLUDED_DIRS = {
    "node_modules", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".venv",
    "venv", ".ipynb_checkpoints", "telemetry", "runs", "output", "out", ".git",
}
# (.so: the converters' extension is built for this machine; the zipped library runs without it)
EXCLUDED_SUFFIXES = {".pyc", ".pyo", ".log", ".parquet", ".so"}
EXCLUDED_NAMES = {".DS_Store", ".installed", ".env.local"}
FIXED_DATE = (2020, 1, 1, 0, 0, 0)  # zip timestamps: fixed, so the archive is reproducible


def _wanted(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
        return False
    return path.suffix not in EXCLUDED_SUFFIXES and path.name not in EXCLUDED_NAMES


def iter_files(root: Path):
    """Files under root that belong in the zip, in a stable order."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_file() and _wanted(path, root):
                yield path


def zip_members(appendix: Path = APPENDIX, library: Path = LIBRARY) -> list[tuple[Path, str]]:
    """(source file, name in the zip) pairs: the appendix tree, then the bundled library."""
    if not appendix.is_dir():
        raise FileNotFoundError(f"{appendix} not found: the appendix zip is built from it")
    if not (library / "__init__.py").is_file():
        raise FileNotFoundError(f"{library} is not the obslab package")
    members = [(p, f"{TOP}/{p.relative_to(appendix).as_posix()}") for p in iter_files(appendix)]
    members += [(p, f"{LIB_IN_ZIP}/{p.relative_to(library).as_posix()}") for p in iter_files(library)]
    return members


def build_zip(out: str | os.PathLike = DEFAULT_OUT, appendix: Path = APPENDIX,
              library: Path = LIBRARY) -> Path:
    """Write the zip to ``out`` (atomically) and return its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for src, name in zip_members(appendix, library):
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            # keep the executable bit (scripts), drop everything else about the local file
            mode = 0o755 if src.stat().st_mode & stat.S_IXUSR else 0o644
            info.external_attr = (stat.S_IFREG | mode) << 16
            zf.writestr(info, src.read_bytes())
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="zip to write (default: %(default)s)")
    args = parser.parse_args(argv)
    path = build_zip(args.out)
    with zipfile.ZipFile(path) as zf:
        n = len(zf.namelist())
    print(f"{path}: {n} files, {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
