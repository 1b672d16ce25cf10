"""The book builds with `-W -n` (no warnings, no broken references) and ships the appendix zip.

Notebook execution is switched off here (the notebooks run under nbval in the same test run and
executed in `make book`); this checks the pages, the toc, cross-references, literalincludes of
the lab's real files, and the zip download, in well under a minute.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_book_builds_without_warnings(tmp_path):
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    # glued values exist only in executed notebooks: without execution, glue cannot resolve
    # (test_every_glue_role_has_its_glue_call checks the keys; `make book` resolves them)
    config["sphinx"].setdefault("config", {}).setdefault("suppress_warnings", []).append("mystnb.glue")
    # local extension paths are relative to the config file: make them absolute for the copy
    config["sphinx"]["local_extensions"] = {
        name: str(REPO / path) for name, path in config["sphinx"]["local_extensions"].items()
    }
    (tmp_path / "_config.yml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jb), "build", "-W", "-n", "--keep-going", "--config", str(tmp_path / "_config.yml"),
         "--path-output", str(out), str(REPO)],
        capture_output=True, text=True, timeout=600, cwd=REPO,
    )
    log = result.stdout + result.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line and "IPKernelApp" not in line]
    assert result.returncode == 0 and not warnings, "\n".join(warnings) or log[-3000:]

    html = out / "_build" / "html"
    assert (html / "index.html").exists()
    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    pages = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    missing = [p for p in pages if not (html / f"{p}.html").exists()]
    assert not missing, missing
    # the zip is offered under _downloads and is a valid archive holding the lab and the library
    downloads = list((html / "_downloads").glob("*/obslab-appendix.zip"))
    assert len(downloads) == 1, downloads
    names = zipfile.ZipFile(downloads[0]).namelist()
    assert "obslab-appendix/docker-compose.yml" in names
    assert "obslab-appendix/lib/obslab/__init__.py" in names
    assert "obslab-appendix.zip" in (html / "book" / "appendix" / "lab.html").read_text()


def test_every_glue_role_has_its_glue_call():
    """Every number the prose shows through {glue} is glued by a cell of the same notebook."""
    import re

    for nb in sorted((REPO / "notebooks").glob("*.md")):
        text = nb.read_text(encoding="utf-8")
        used = set(re.findall(r"\{glue(?::[a-z]+)?\}`([A-Za-z0-9_]+)", text))
        used |= set(re.findall(r"```\{glue(?::[a-z]+)?\} ([A-Za-z0-9_]+)", text))
        glued = set(re.findall(r"""glue\(\s*["']([A-Za-z0-9_]+)["']""", text))
        glued |= set(re.findall(r"""glue\(\s*f["']([A-Za-z0-9_]+)\{""", text))  # f"prefix_{...}" families
        for var, names in re.findall(r"""for (\w+) in [\(\[]([^\)\]]*)[\)\]]:[^\n]*\n\s*glue\(\1\b""", text):
            glued |= set(re.findall(r"""["']([A-Za-z0-9_]+)["']""", names))  # glue(name) over a literal list
        missing = {k for k in used - glued if not any(k.startswith(g) for g in glued)}
        assert not missing, f"{nb.name}: {sorted(missing)} shown but never glued"
