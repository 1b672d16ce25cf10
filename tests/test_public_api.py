"""The public API is explicit: every public module is listed and lists its names; the converter
script needs no lab; API docstrings carry no project notes."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import obslab
from shared_fixtures import FIXTURES, MISSING

SRC = Path(obslab.__file__).resolve().parent
REPO = SRC.parents[1]


def test_every_top_level_module_is_public_by_list_or_internal_by_name():
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    public = set(obslab.__all__) - {"__version__"}
    assert {m for m in modules if not m.startswith("_")} == public
    with pytest.raises(AttributeError):
        obslab.no_such_module


@pytest.mark.parametrize("name", sorted(set(obslab.__all__) - {"__version__"}))
def test_public_module_lists_its_names_and_they_exist(name):
    module = getattr(obslab, name)  # imported on first use
    assert hasattr(module, "__all__"), f"obslab.{name} has no __all__"
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing, f"obslab.{name}.__all__ names {missing}, which it does not define"


def test_no_project_notes_in_docstrings():
    notes = ("engineer ", "helper a", "helper b", "todo(")
    found = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                doc = (ast.get_docstring(node) or "").lower()
                found += [f"{path.relative_to(SRC)}: {n!r}" for n in notes if n in doc]
    assert not found


@pytest.mark.skipif(not FIXTURES.exists(), reason=MISSING)
def test_prometheus_export_script_converts_without_the_lab(tmp_path):
    src = next((FIXTURES / "prometheus").glob("*.json"))
    code = (f"import sys; sys.path.insert(0, {str(REPO / 'appendix-code' / 'scripts')!r})\n"
            "import export_prometheus_metrics as e\n"
            f"rc = e.main(['--from-json', {str(src)!r}, '--output', {str(tmp_path / 'm.parquet')!r}])\n"
            "assert 'obslab.lab' not in sys.modules, 'the converter imported the lab'\n"
            "sys.exit(rc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "m.parquet").stat().st_size > 0
