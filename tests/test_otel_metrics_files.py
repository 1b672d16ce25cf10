"""The services' OTLP metrics in the native lab: labcommon (Python) and auth-service's tracing.js
(Node) write OTLP JSON metric lines to OTEL_METRICS_FILE, the shape the Collector's metrics
pipeline writes to telemetry/metrics.jsonl in Compose. Each runs in its own process, as the
services do, and records one counter through the global meter provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "appendix-code" / "services"

PY = """
import sys
sys.path.insert(0, {labcommon!r})
from labcommon import tracing
from opentelemetry import metrics
assert tracing.setup("metrics-probe")
metrics.get_meter("probe").create_counter("probe_requests").add(3, {{"route": "/x"}})
tracing.shutdown()
"""

NODE = """
const tracing = require('./tracing');
tracing.start('auth-probe');
const { metrics } = require('@opentelemetry/api');
metrics.getMeter('probe').createCounter('probe_requests').add(3, { route: '/x' });
tracing.shutdown().then(() => process.exit(0));
"""


def _metric_docs(path: Path) -> list[dict]:
    assert path.exists(), f"{path} was not written"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _points(docs: list[dict], name: str) -> list[dict]:
    out = []
    for doc in docs:
        for rm in doc["resourceMetrics"]:
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    if m["name"] == name:
                        out.extend(m["sum"]["dataPoints"])
    return out


def _service_names(docs: list[dict]) -> set[str]:
    return {a["value"]["stringValue"] for d in docs for rm in d["resourceMetrics"]
            for a in rm["resource"]["attributes"] if a["key"] == "service.name"}


def _env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_METRICS_FILE=str(tmp_path / "metrics" / "svc.jsonl"),
               OTEL_TRACES_FILE=str(tmp_path / "traces" / "svc.jsonl"), **extra)
    return env


def test_python_services_write_otlp_metric_lines(tmp_path):
    code = PY.format(labcommon=str(SERVICES / "labcommon"))
    r = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    docs = _metric_docs(tmp_path / "metrics" / "svc.jsonl")
    assert _service_names(docs) == {"metrics-probe"}
    points = _points(docs, "probe_requests")
    assert points and int(points[-1]["asInt"]) == 3  # int64 as a JSON string in Python's exporter


def test_python_metrics_off_with_the_sdk(tmp_path):
    code = PY.format(labcommon=str(SERVICES / "labcommon")).replace('assert tracing.setup("metrics-probe")',
                                                                     'assert not tracing.setup("metrics-probe")')
    r = subprocess.run([sys.executable, "-c", code], env=_env(tmp_path, OTEL_SDK_DISABLED="true"),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "metrics" / "svc.jsonl").exists()


def test_auth_service_writes_otlp_metric_lines(tmp_path):
    auth = SERVICES / "auth-service"
    assert (auth / "node_modules").is_dir(), "run `make node` first (npm ci in auth-service)"
    r = subprocess.run(["node", "-e", NODE], cwd=auth, env=_env(tmp_path), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    docs = _metric_docs(tmp_path / "metrics" / "svc.jsonl")
    assert _service_names(docs) == {"auth-probe"}
    points = _points(docs, "probe_requests")
    assert points and float(points[-1]["asDouble"]) == 3  # JS counters are doubles unless declared INT


def test_collector_writes_metrics_and_is_checked_on_its_health_endpoint():
    """Compose side (static: the Collector image cannot run here): a metrics pipeline from the
    OTLP receiver to a file in the mounted folder, and a healthcheck that asks health_check."""
    import yaml

    appendix = REPO / "appendix-code"
    doc = yaml.safe_load((appendix / "config" / "otel-collector-config.yml").read_text())
    pipe = doc["service"]["pipelines"]["metrics"]
    assert "otlp" in pipe["receivers"]
    exporter = doc["exporters"][next(e for e in pipe["exporters"] if e.startswith("file"))]
    assert exporter["path"] == "/telemetry/metrics.jsonl" and exporter.get("format") == "json"
    assert "health_check" in doc["service"]["extensions"]
    health_port = doc["extensions"]["health_check"]["endpoint"].rsplit(":", 1)[1]
    compose = yaml.safe_load((appendix / "docker-compose.yml").read_text())
    collector = compose["services"]["otel-collector"]
    assert any(m.startswith("./telemetry:/telemetry") for m in collector["volumes"])
    probe = " ".join(collector["healthcheck"]["test"])
    assert f"127.0.0.1:{health_port}/" in probe and "validate" not in probe
    binary = collector["healthcheck"]["test"][1]
    dockerfile = (appendix / collector["build"]["context"] / collector["build"]["dockerfile"]).read_text()
    assert f"COPY --from=probe /bin/busybox {binary}" in dockerfile  # the probe exists in the image
    for name, svc in compose["services"].items():
        if "otel-collector" in (svc.get("depends_on") or {}):
            assert svc["depends_on"]["otel-collector"]["condition"] == "service_healthy", name
