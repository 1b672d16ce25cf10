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
    for banned in ("node_modules", "__pycache__", ".pyc", ".so"):
        assert not [n for n in names if banned in n], banned
    # the converters' extension ships as source (it is compiled for the machine that builds it)
    assert f"{builder.TOP}/lib/obslab/ocsf/native/otlp.cpp" in names
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


from obslab.data import default_dataset  # noqa: E402

SAMPLE = default_dataset()  # data/sample unless OBSLAB_DATA points elsewhere
# Runs a script from the unzipped appendix as a user without obslab installed would: the
# project's own install (the editable .pth entry or finder) is hidden first, so only the
# scripts' fallback (scripts/_obslab_path.py -> ../lib) can make `import obslab` work.
RUN_SCRIPT = """
import runpy, sys
from pathlib import Path
root, repo_src, script, args = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), sys.argv[3], sys.argv[4:]
sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != repo_src]
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "") + repr(f)]
try:
    import obslab
    raise SystemExit(f"obslab still importable from {obslab.__file__}: the test cannot hide it")
except ModuleNotFoundError:
    pass
sys.path.insert(0, str(Path(script).parent))
import _obslab_path  # the scripts' own way to find the library
import obslab
assert Path(obslab.__file__).resolve().is_relative_to(root), obslab.__file__
sys.argv = [script, *args]
runpy.run_path(script, run_name="__main__")
"""


def run_script(root: Path, name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OBSLAB_DATA")}
    code = [sys.executable, "-c", RUN_SCRIPT, str(root), str(REPO / "src"), str(root / "scripts" / name), *args]
    return subprocess.run(code, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def read_report(path: Path) -> dict:
    import json

    report = json.loads(Path(f"{path}.report.json").read_text())
    assert report["records_in"] == report["records_out"] + report["rejected"], report
    return report


@pytest.mark.skipif(not (SAMPLE / "raw" / "logs.txt").exists(), reason=f"no {SAMPLE}/raw yet (make sample)")
def test_zip_scripts_convert_the_sample_raw_telemetry(unzipped, tmp_path):
    import pyarrow.parquet as pq

    _, root = unzipped
    raw = SAMPLE / "raw"
    out = tmp_path / "converted"
    out.mkdir()
    steps = [
        ("convert_to_ocsf.py", "logs", ["--log-file", str(raw / "logs.txt")]),
        ("convert_traces_to_ocsf.py", "traces", ["--trace-file", str(raw / "traces.jsonl")]),
        ("export_prometheus_metrics.py", "metrics", ["--from-json", str(raw / "metrics.json")]),
    ]
    for script, signal, args in steps:
        target = out / f"ocsf_{signal}.parquet"
        result = run_script(root, script, *args, "--output", str(target), cwd=out)
        assert result.returncode == 0, f"{script}: {result.stdout}\n{result.stderr}"
        report = read_report(target)
        table = pq.read_table(target)
        assert table.num_rows == report["records_out"] > 0, script
        assert report["notes"].get("invalid", 0) == 0, report
        assert {"time", "class_uid", "metadata"} <= set(table.column_names)
    # ground truth from the sample's incident catalog, labels beside the events
    result = run_script(root, "label_subset_for_evaluation.py", "--data-dir", str(out),
                        "--incidents", str(SAMPLE / "incidents.json"), cwd=out)
    assert result.returncode == 0, result.stdout + result.stderr
    labels = pq.read_table(out / "labels.parquet")
    events = sum(pq.read_metadata(out / f"ocsf_{s}.parquet").num_rows for s in ("logs", "traces", "metrics"))
    assert labels.num_rows == events


def compose_binary() -> Path:
    import compose

    return Path(compose.__file__).parent / "docker-compose"


def test_zip_compose_file_passes_compose_validation(unzipped):
    _, root = unzipped
    if not (root / "docker-compose.yml").exists():
        pytest.fail("the appendix has no docker-compose.yml")
    result = subprocess.run([str(compose_binary()), "-f", "docker-compose.yml", "config", "-q"],
                            cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # and it really checks: a broken file is refused
    broken = root / "broken-compose.yml"
    broken.write_text((root / "docker-compose.yml").read_text() + "\nservices: [oops\n")
    bad = subprocess.run([str(compose_binary()), "-f", broken.name, "config", "-q"],
                         cwd=root, capture_output=True, text=True, timeout=120)
    broken.unlink()
    assert bad.returncode != 0


@pytest.fixture(scope="module")
def fresh_venv(unzipped, tmp_path_factory):
    """A new virtual environment holding only what the zip's scripts/requirements.txt asks for."""
    _, root = unzipped
    venv = tmp_path_factory.mktemp("zip-venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(root / "scripts" / "requirements.txt")],
                         capture_output=True, text=True, timeout=1200)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv / "bin" / "python"


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not (SAMPLE / "raw" / "logs.txt").exists(), reason=f"no {SAMPLE}/raw yet (make sample)")
def test_zip_in_a_fresh_venv_runs_all_six_scripts(unzipped, fresh_venv, tmp_path):
    """What a reader does: unzip, a new venv with the zip's requirements only, every script."""
    import pyarrow.parquet as pq

    from obslab.ocsf import validate_table
    from shared_fixtures import FIXTURES

    _, root = unzipped
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OBSLAB_DATA", "VIRTUAL_ENV")}

    def run(script: str, *args) -> subprocess.CompletedProcess:
        r = subprocess.run([str(fresh_venv), str(root / "scripts" / script), *map(str, args)], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{script} {args}: {r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
        return r

    raw, out = SAMPLE / "raw", tmp_path / "out"
    out.mkdir()
    inputs = [("convert_to_ocsf.py", "logs", "--log-file", raw / "logs.txt", out),
              ("convert_traces_to_ocsf.py", "traces", "--trace-file", raw / "traces.jsonl", out),
              ("export_prometheus_metrics.py", "metrics", "--from-json", raw / "metrics.json", out)]
    if FIXTURES.exists():  # real telemetry written by other software
        inputs += [("convert_to_ocsf.py", "logs", "--log-file", FIXTURES / "compose_logs" / "utf8_bom_nginx_access.log",
                    tmp_path / "nginx"),
                   ("convert_traces_to_ocsf.py", "traces", "--trace-file",
                    FIXTURES / "otlp" / "collector_fileexporter_javaagent_lamp.jsonl", tmp_path / "lamp")]
    for script, signal, option, src, folder in inputs:
        folder.mkdir(exist_ok=True)
        target = folder / f"ocsf_{signal}.parquet"
        r = run(script, option, src, "--output", target, "--validate-sample", "-1")
        # the zip ships the extension's source, never a binary: the Python readers run, and say so once
        assert r.stderr.count("obslab.ocsf._native is not built here") == 1, r.stderr
        report = read_report(target)
        table = pq.read_table(target)
        assert table.num_rows == report["records_out"] > 0 and report["notes"].get("invalid", 0) == 0
        assert validate_table(table, sample=None).invalid == 0
    run("label_subset_for_evaluation.py", "--data-dir", out, "--incidents", SAMPLE / "incidents.json")
    events = sum(pq.read_metadata(out / f"ocsf_{s}.parquet").num_rows for s in ("logs", "traces", "metrics"))
    assert pq.read_metadata(out / "labels.parquet").num_rows == events
    run("export_kpis.py", "--data-dir", out, "--incidents", SAMPLE / "incidents.json", "--output", tmp_path / "kpis.csv")
    assert (tmp_path / "kpis.csv").stat().st_size > 0
    run("split_by_label.py", "--data-dir", out, "--format", "parquet", "--out-dir", tmp_path / "split")
    split = tmp_path / "split"
    assert pq.read_metadata(split / "traces_all.parquet").num_rows == (
        pq.read_metadata(split / "traces_normal.parquet").num_rows
        + pq.read_metadata(split / "traces_anomalous.parquet").num_rows)


@pytest.mark.integration
@pytest.mark.slow
def test_zip_drives_a_scenario_against_a_real_redis(unzipped, fresh_venv, tmp_path):
    """The appendix page's command: scripts/obslab_cli.py lab scenario, from the unzipped folder."""
    import json

    from obslab.lab.processes import free_port, start_redis

    _, root = unzipped
    scenario = tmp_path / "one.yaml"
    scenario.write_text("timeline:\n  - normal: 1s\n  - fault: error_spike\n    level: high\n"
                        "    duration: 2s\n    cooldown: 1s\n")
    port = free_port()
    redis_proc = start_redis(port, tmp_path / "redis")
    try:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OBSLAB_DATA", "OBSLAB_APPENDIX")}
        r = subprocess.run([str(fresh_venv), "scripts/obslab_cli.py", "lab", "scenario", "--scenario", str(scenario),
                            "--redis-url", f"redis://127.0.0.1:{port}/0", "--prometheus-url", "",
                            "--deploy-command", "", "--out", str(tmp_path / "out")],
                           cwd=root, env=env, capture_output=True, text=True, timeout=120)
    finally:
        redis_proc.stop()
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stdout + r.stderr
    doc = json.loads((tmp_path / "out" / "incidents.json").read_text())
    [inc] = doc["incidents"]
    assert inc["fault_id"] == "error_spike" and inc["targets"] == ["web-api"]
    assert inc["verified"] is None  # no Prometheus given: not checked, and not claimed
