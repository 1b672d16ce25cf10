"""The native lab's building blocks: real Redis, Postgres, Prometheus and exporters on free ports,
Compose interpolation and host rewriting, plans and injection, and the clear errors."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import redis as redis_lib
import yaml

from obslab import prom
from obslab.lab import compose, processes, scenario
from obslab.lab.processes import LabError, LogSink


# --- compose.py ------------------------------------------------------------------------------

def test_interpolate_forms():
    env = {"A": "1", "EMPTY": ""}
    assert compose.interpolate("${A}", env) == "1"
    assert compose.interpolate("${B:-dflt}", env) == "dflt"
    assert compose.interpolate("${EMPTY:-dflt}", env) == "dflt"
    assert compose.interpolate("${EMPTY-dflt}", env) == ""
    assert compose.interpolate("${B-x}", env) == "x"
    assert compose.interpolate("$A/$$A", env) == "1/$A"
    assert compose.interpolate("${A:+set}${B:+set}", env) == "set"
    assert compose.interpolate("${B:-${A}}", env) == "1"  # nested default
    with pytest.raises(compose.ComposeError, match="B"):
        compose.interpolate("${B:?B is required}", env)
    with pytest.raises(compose.ComposeError):
        compose.interpolate("${A", env)


def test_env_file(tmp_path):
    f = tmp_path / ".env"
    f.write_text("# comment\n\nexport A=1\nB='two words'\nC=\"q\\\"d\"\nD=val # note\nE=\n")
    assert compose.parse_env_file(f) == {"A": "1", "B": "two words", "C": 'q"d', "D": "val", "E": ""}
    f.write_text("NOT A LINE\n")
    with pytest.raises(compose.ComposeError, match=":1"):
        compose.parse_env_file(f)


def test_rewrite_hosts():
    ports = {"postgres": 5001, "redis": 5002, "web-api": 5003, "auth-service": 5004}
    r = compose.rewrite_hosts
    assert r("postgresql://user:pass@postgres:5432/db", ports) == "postgresql://user:pass@127.0.0.1:5001/db"
    assert r("redis://redis:6379/0", ports) == "redis://127.0.0.1:5002/0"
    assert r("http://web-api:8080", ports) == "http://127.0.0.1:5003"
    assert r("http://auth-service:8081/validate", ports) == "http://127.0.0.1:5004/validate"
    # not a host:port of a known host: left alone
    assert r("web-api", ports) == "web-api"
    assert r("http://my-redis:6379", ports) == "http://my-redis:6379"
    assert r("redis.example:6379", ports) == "redis.example:6379"


def test_load_compose(tmp_path):
    (tmp_path / ".env").write_text("AUTH_TOKEN_SECRET=dev-secret\nWEB_PORT=8080\n")
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump({
        "name": "obslab",
        "services": {
            "web-api": {
                "command": ["gunicorn", "-c", "gunicorn.conf.py", "app:app"],
                "environment": {"PORT": "${WEB_PORT:-8080}", "DATABASE_URL": "postgresql://u:p@postgres:5432/db",
                                "RATE": "${RATE:-20}"},
            },
            "auth-service": {"command": "node server.js",
                             "environment": ["AUTH_TOKEN_SECRET=${AUTH_TOKEN_SECRET:?set it in .env}"]},
        },
    }))
    specs = compose.load_compose(tmp_path / "docker-compose.yml")
    assert specs["web-api"].command == ["gunicorn", "-c", "gunicorn.conf.py", "app:app"]
    assert specs["auth-service"].command == ["node", "server.js"]
    assert specs["auth-service"].environment == {"AUTH_TOKEN_SECRET": "dev-secret"}
    env = specs["web-api"].native_environment({"postgres": 6000}, {"PORT": "7000"})
    assert env == {"PORT": "7000", "DATABASE_URL": "postgresql://u:p@127.0.0.1:6000/db", "RATE": "20"}
    # the caller's environment is not consulted unless passed, so runs do not depend on the shell
    assert compose.load_compose(tmp_path / "docker-compose.yml", environ={"RATE": "5"})[
        "web-api"].environment["RATE"] == "5"


# --- errors ------------------------------------------------------------------------------------

def test_missing_binary_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(processes, "PG_BIN", processes.Path("/nonexistent"))
    with pytest.raises(LabError, match=r"apt-get install prometheus-redis-exporter"):
        processes.find_binary("prometheus-redis-exporter")
    with pytest.raises(LabError, match=r"apt-get install postgresql-15"):
        processes.find_binary("initdb")


@pytest.mark.integration
def test_busy_port_is_a_clear_error(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(LabError, match=f"cannot bind 127.0.0.1:{port}"):
            processes.start_redis(port, tmp_path / "redis")


@pytest.mark.integration
def test_cli_reports_missing_compose_file_in_one_line(tmp_path):
    from obslab.cli import main

    r = subprocess.run([processes.Path(__import__("sys").executable).parent / "obslab", "lab", "run",
                        "--duration", "5s", "--out", str(tmp_path / "o"), "--appendix", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "docker-compose.yml not found" in r.stderr
    assert "Traceback" not in r.stderr
    assert callable(main)


# --- real processes ----------------------------------------------------------------------------

@pytest.mark.integration
def test_redis_start_stop_and_log_capture(tmp_path):
    sink = LogSink(tmp_path / "logs.txt")
    port = processes.free_port()
    p = processes.start_redis(port, tmp_path / "redis", sink)
    try:
        r = redis_lib.Redis(port=port)
        assert r.ping()
        assert r.set("k", "v") and r.get("k") == b"v"
    finally:
        p.stop()
    assert not p.alive()
    assert not processes.port_open(port)
    sink.close()
    lines = (tmp_path / "logs.txt").read_text().splitlines()
    assert lines and all(line.startswith("redis-1") and " | " in line for line in lines)
    assert sink.counts["redis"] == len(lines)


@pytest.mark.integration
def test_stop_kills_the_whole_process_group(tmp_path):
    # a parent that ignores SIGTERM with a child: both must be gone after stop()
    script = "import subprocess,signal,time,sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); " \
             "c=subprocess.Popen(['sleep','300']); print(c.pid, flush=True); time.sleep(300)"
    sink = LogSink(None)
    p = processes.ManagedProcess("stubborn", [__import__("sys").executable, "-c", script], sink=sink,
                                 stop_timeout=1.0).start()
    processes.wait_until(lambda: sink.counts.get("stubborn", 0) >= 1, 10, "child pid")
    children = subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) >= 2
    p.stop()

    def group_gone() -> bool:  # zombies waiting for their reaper do not count
        ps = subprocess.run(["ps", "-o", "stat=", "-g", str(p.pid)], capture_output=True, text=True).stdout
        return all(stat.startswith("Z") for stat in ps.split())

    processes.wait_until(group_gone, 5, "process group gone")


@pytest.mark.integration
def test_redis_injection_with_ttl(tmp_path):
    port = processes.free_port()
    p = processes.start_redis(port, tmp_path / "redis")
    try:
        r = redis_lib.Redis(port=port, decode_responses=True)
        inj = scenario.Injection(0, "latency_spike", "high", "web-api", 0.6, 1, "inc-001",
                                 params={"delay_ms": 300})
        scenario.inject(r, inj)
        flag = json.loads(r.get("obslab:fault:latency_spike"))
        assert flag == {"fault_id": "latency_spike", "level": "high", "incident_id": "inc-001",
                        "params": {"delay_ms": 300}, "target": "web-api"}
        assert 0 < r.pttl("obslab:fault:latency_spike") <= 600
        assert [f["fault_id"] for f in scenario.active_faults(r)] == ["latency_spike"]
        # reverted by itself once the TTL ran out (nothing deletes the flag here)
        processes.wait_until(lambda: scenario.active_faults(r) == [], 5, "flag expired")
        assert r.get("obslab:fault:latency_spike") is None
    finally:
        p.stop()


@pytest.mark.integration
def test_postgres_prometheus_and_exporters(tmp_path):
    sink = LogSink(tmp_path / "logs.txt")
    started = []
    datadir = tmp_path / "never-made"
    try:
        pg_port, prom_port, pex_port = processes.free_port(), processes.free_port(), processes.free_port()
        datadir = processes.postgres_datadir(tmp_path / "state")
        started.append(processes.start_postgres(pg_port, datadir, sink))
        processes.ensure_database(pg_port, "user", "pa'ss", "db")
        processes.ensure_database(pg_port, "user", "pa'ss", "db")  # idempotent
        import psycopg

        with psycopg.connect(f"postgresql://user:pa%27ss@127.0.0.1:{pg_port}/db") as conn:
            assert conn.execute("select 40 + 2").fetchone()[0] == 42
        started.append(processes.start_postgres_exporter(pex_port, pg_port, sink))
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "postgres", "static_configs": [
                {"targets": [f"127.0.0.1:{pex_port}"], "labels": {"service": "postgres"}}]}],
        }))
        t0 = time.time()
        started.append(processes.start_prometheus(prom_port, cfg, tmp_path / "tsdb", sink))
        url = f"http://127.0.0.1:{prom_port}"
        processes.wait_until(
            lambda: prom.query(url, 'pg_up{service="postgres"}')["data"]["result"], 20, "first scrape")

        def scrapes() -> int:  # samples in the range so far (1 s scrapes): counted, not waited for
            result = prom.query_range(url, "pg_up", t0, time.time(), 1)["data"]["result"]
            return len(result[0]["values"]) if result else 0

        processes.wait_until(lambda: scrapes() >= 3, 20, "three scrapes")
        doc = prom.export_range(url, [
            {"name": "pg_up", "query": "pg_up", "unit": "bool"},
            {"name": "bad", "query": "sum(", "unit": ""},
        ], t0, time.time(), 1)
        json.dumps(doc)  # the document is plain JSON
        ok, bad = doc["results"]
        assert ok["response"]["status"] == "success"
        series = ok["response"]["data"]["result"]
        assert series[0]["metric"]["service"] == "postgres"
        assert {v for _, v in series[0]["values"]} == {"1"}
        assert bad["response"]["status"] == "error" and bad["response"]["errorType"] == "bad_data"
        assert prom.series_count(doc) == 1
    finally:
        for p in reversed(started):
            p.stop()
    assert not datadir.exists()  # a throwaway cluster is deleted when stopped
    sink.close()
    names = {line.split("-1", 1)[0] for line in (tmp_path / "logs.txt").read_text().splitlines()}
    assert {"postgres", "prometheus", "postgres-exporter"} <= names
    assert not any(p.alive() for p in started)


# --- plans -------------------------------------------------------------------------------------

CATALOG = {
    "faults": [
        {"id": "latency_spike", "target": "web-api", "levels": {"low": {"delay_ms": 100}, "high": {"delay_ms": 500}},
         "verify": {"promql": "x", "expect": "increase", "factor": 3}},
        {"id": "error_spike", "target": "web-api", "targets": ["web-api", "auth-service"], "levels": [{"name": "low", "rate": 0.1}, {"name": "high", "rate": 0.5}]},
        {"id": "memory_leak", "target": "payment-worker", "levels": {"medium": {"mb_per_s": 5}}},
    ]
}


def _catalog(tmp_path):
    f = tmp_path / "faults.yaml"
    f.write_text(yaml.safe_dump(CATALOG))
    return scenario.load_catalog(f)


def test_parse_duration():
    assert scenario.parse_duration("90s") == 90
    assert scenario.parse_duration("10m") == 600
    assert scenario.parse_duration("1m30s") == 90
    assert scenario.parse_duration(5) == 5
    with pytest.raises(scenario.ScenarioError):
        scenario.parse_duration("ten minutes")


def test_scenario_timeline(tmp_path):
    cat = _catalog(tmp_path)
    assert cat["error_spike"].params("high") == {"rate": 0.5}
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"name": "t", "timeline": [
        {"normal": "10s"},
        {"fault": "latency_spike", "level": "high", "duration": "20s", "cooldown": "5s",
         "cascade": [{"fault": "error_spike", "target": "auth-service", "after": "5s", "duration": "10s"}]},
        {"deploy": "auth-service"},
        {"maintenance": "10s"},
        {"fault": "memory_leak", "duration": 15},
    ]}))
    plan = scenario.load_scenario(f, cat)
    got = [(i.incident_id, i.fault_id, i.level, i.target, i.offset_s, i.duration_s, i.primary_incident_id)
           for i in plan.injections]
    assert got == [
        ("inc-001", "latency_spike", "high", "web-api", 10, 20, None),
        ("inc-002", "error_spike", "low", "auth-service", 15, 10, "inc-001"),
        ("inc-003", "memory_leak", "medium", "payment-worker", 45, 15, None),
    ]
    assert plan.injections[0].params == {"delay_ms": 500}
    assert [(e.kind, e.offset_s) for e in plan.events] == [("deploy", 35), ("maintenance", 35)]
    assert plan.length_s == 60
    f.write_text(yaml.safe_dump({"timeline": [{"fault": "nope"}]}))
    with pytest.raises(scenario.ScenarioError, match="unknown fault 'nope'"):
        scenario.load_scenario(f, cat)


def test_random_schedule_is_seeded_and_respects_limits(tmp_path):
    cat = _catalog(tmp_path)
    a = scenario.random_schedule(cat, 7, 900, interval_s=40, min_duration_s=10, max_duration_s=30, cooldown_s=10)
    b = scenario.random_schedule(cat, 7, 900, interval_s=40, min_duration_s=10, max_duration_s=30, cooldown_s=10)
    c = scenario.random_schedule(cat, 8, 900, interval_s=40, min_duration_s=10, max_duration_s=30, cooldown_s=10)
    assert a.injections == b.injections and a.injections != c.injections
    assert len(a.injections) >= 5
    for prev, nxt in zip(a.injections, a.injections[1:]):  # max_concurrency 1: no overlap
        assert nxt.offset_s >= prev.offset_s + prev.duration_s + prev.cooldown_s
    for i in a.injections:
        assert 10 <= i.duration_s <= 30 and i.offset_s + i.duration_s + i.cooldown_s <= 900
    ev = scenario.random_schedule(cat, 7, 900, interval_s=40, min_duration_s=10, max_duration_s=30, cooldown_s=10,
                                  deploy_every_s=45, maintenance_every_s=100, maintenance_s=20)
    assert ev.injections == a.injections
    assert {e.kind for e in ev.events} == {"deploy", "maintenance"}
    for e in ev.events:  # benign events only in quiet gaps
        assert not any(i.offset_s - 5 <= e.offset_s + max(e.duration_s, 10) and e.offset_s < i.offset_s + i.duration_s
                       + i.cooldown_s for i in ev.injections), e
    two = scenario.random_schedule(cat, 3, 900, interval_s=10, max_concurrency=2, levels=["high"])
    for i in two.injections:
        active = [j for j in two.injections if j.offset_s <= i.offset_s < j.offset_s + j.duration_s + j.cooldown_s]
        assert len(active) <= 2 and len({j.fault_id for j in active}) == len(active)
        assert i.level in ("high", cat[i.fault_id].default_level)


# --- the runner's view of a Compose project ----------------------------------------------------

def _appendix(tmp_path):
    app = tmp_path / "appendix"
    for name in ("web-api", "auth-service", "payment-worker", "load-generator"):
        (app / "services" / name).mkdir(parents=True)
    (app / "config").mkdir()
    (app / ".env").write_text("POSTGRES_USER=lab\nPOSTGRES_PASSWORD=labpass\nPOSTGRES_DB=labdb\nRATE=20\n")
    db = "postgresql://${POSTGRES_USER}:${POSTGRES_PASSWORD}@postgres:5432/${POSTGRES_DB}"
    common = {"REDIS_URL": "redis://redis:6379/0", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"}
    (app / "docker-compose.yml").write_text(yaml.safe_dump({"services": {
        "web-api": {"command": ["gunicorn", "-c", "gunicorn.conf.py", "app:app"],
                    "environment": {**common, "PORT": "8080", "BIND_HOST": "0.0.0.0", "DATABASE_URL": db,
                                    "AUTH_SERVICE_URL": "http://auth-service:8081"}},
        "auth-service": {"command": ["node", "server.js"], "environment": {**common, "PORT": "8081"}},
        "payment-worker": {"command": ["celery", "-A", "worker", "worker"],
                           "environment": {**common, "METRICS_PORT": "9102", "DATABASE_URL": db}},
        "load-generator": {"command": ["python", "loadgen.py"],
                           "environment": {**common, "TARGET_URL": "http://web-api:8080", "RATE": "${RATE:-5}",
                                           "SEED": "1", "DURATION_S": "60"}},
        "redis": {"image": "redis:7.2"}, "postgres": {"image": "postgres:16"},
    }}))
    (app / "config" / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [
            {"job_name": "web-api", "static_configs": [{"targets": ["web-api:8080"], "labels": {"service": "web-api"}}]},
            {"job_name": "worker", "static_configs": [{"targets": ["payment-worker:9102"],
                                                       "labels": {"service": "payment-worker"}}]},
            {"job_name": "otel", "static_configs": [{"targets": ["otel-collector:8888"]}]},
            {"job_name": "redis", "static_configs": [{"targets": ["redis-exporter:9121"], "labels": {"service": "redis"}}]},
        ]}))
    return app


@pytest.mark.integration
def test_runner_environment_and_prometheus_config(tmp_path):
    from obslab.lab.runner import Lab, RunConfig

    lab = Lab(RunConfig(out=tmp_path / "run", appendix=_appendix(tmp_path), rate=33, seed=9, tracing=False,
                        scrape_interval_s=2, progress=False))
    lab.prepare()
    p = lab.ports
    web = lab.service_env("web-api")
    assert web["PORT"] == str(p["web-api"]) and web["BIND_HOST"] == "127.0.0.1"
    assert web["DATABASE_URL"] == f"postgresql://lab:labpass@127.0.0.1:{p['postgres']}/labdb"
    assert web["AUTH_SERVICE_URL"] == f"http://127.0.0.1:{p['auth-service']}"
    assert web["REDIS_URL"] == f"redis://127.0.0.1:{p['redis']}/0"
    assert web["OTEL_TRACES_FILE"].endswith("raw/traces/web-api.jsonl") and web["OTEL_SDK_DISABLED"] == "true"
    assert web["PATH"].split(":")[0] == str(processes.Path(__import__("sys").executable).parent)
    assert lab.service_env("payment-worker")["METRICS_PORT"] == str(p["payment-worker"])
    load = lab.service_env("load-generator")
    assert (load["RATE"], load["SEED"], load["DURATION_S"]) == ("33", "9", "0")
    assert load["TARGET_URL"] == f"http://127.0.0.1:{p['web-api']}"
    assert load["LOADGEN_RECORD_FILE"].endswith("raw/loadgen.jsonl")
    cfg = lab._prometheus_config()
    assert cfg["global"]["scrape_interval"] == "2s"
    targets = {j["job_name"]: j["static_configs"][0]["targets"] for j in cfg["scrape_configs"]}
    assert targets == {"web-api": [f"127.0.0.1:{p['web-api']}"], "worker": [f"127.0.0.1:{p['payment-worker']}"],
                       "redis": [f"127.0.0.1:{p['redis-exporter']}"]}  # no Collector natively
    assert cfg["scrape_configs"][0]["static_configs"][0]["labels"] == {"service": "web-api"}
    f = tmp_path / "prom.yml"
    f.write_text(yaml.safe_dump(cfg))
    check = subprocess.run([processes.find_binary("promtool"), "check", "config", str(f)], capture_output=True)
    assert check.returncode == 0, check.stderr


@pytest.mark.integration
def test_scenario_command_drives_an_external_lab(tmp_path):
    """`obslab lab scenario` (how the Compose stack is driven): flags in Redis at the planned
    times with their TTL, deploy events through a command, incidents.json written."""
    import sys

    from obslab.truth import read_incidents

    faults = tmp_path / "faults.yaml"
    faults.write_text(yaml.safe_dump(CATALOG))
    scen = tmp_path / "s.yaml"
    scen.write_text(yaml.safe_dump({"name": "tiny", "timeline": [
        {"normal": "1s"}, {"fault": "error_spike", "level": "high", "duration": "2s", "cooldown": "1s"},
        {"deploy": "auth-service"}, {"normal": "0.5s"}]}))
    port = processes.free_port()
    rp = processes.start_redis(port, tmp_path / "redis")
    try:
        r = redis_lib.Redis(port=port, decode_responses=True)
        t0 = time.time()
        cli = subprocess.Popen(
            [processes.Path(sys.executable).parent / "obslab", "lab", "scenario", "--scenario", str(scen),
             "--faults-file", str(faults), "--out", str(tmp_path / "out"), "--seed", "5",
             "--redis-url", f"redis://127.0.0.1:{port}/0", "--prometheus-url", "",
             "--deploy-command", f"touch {tmp_path}/deployed-{{service}}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen = {}
        while cli.poll() is None and time.time() - t0 < 30:
            if r.exists("obslab:fault:error_spike"):
                seen.setdefault("first", time.time() - t0)
                seen["last"] = time.time() - t0
            time.sleep(0.05)
        out, err = cli.communicate(timeout=30)
        assert cli.returncode == 0, err
    finally:
        rp.stop()
    assert 1.5 <= seen["last"] - seen["first"] <= 2.2, seen  # the flag lived for its TTL
    (inc,) = read_incidents(tmp_path / "out" / "incidents.json")
    from obslab.truth import iso_to_ms

    start = iso_to_ms(json.loads((tmp_path / "out" / "incidents.json").read_text())["config"]["start"])
    assert 950 <= inc.start_ms - start <= 1300  # injected at its planned offset
    assert (inc.fault_id, inc.level, inc.targets, inc.root_cause) == ("error_spike", "high", ["web-api"], "web-api")
    assert inc.end_ms - inc.start_ms == 2000 and inc.cooldown_end_ms - inc.end_ms == 1000
    assert inc.verified is None  # no Prometheus given: not checked, and not claimed
    doc = json.loads((tmp_path / "out" / "incidents.json").read_text())
    assert doc["seed"] == 5 and doc["config"]["events"][0]["exit_code"] == 0
    assert (tmp_path / "deployed-auth-service").exists()
    assert "1 incidents" in out


def test_example_scenarios_use_the_real_catalog():
    from obslab.lab.runner import default_appendix

    app = default_appendix()
    catalog = scenario.load_catalog(app / "faults.yaml")
    files = sorted((app / "scenarios").glob("*.yaml"))
    assert {f.stem for f in files} >= {"no-fault-control", "three-faults"}
    for f in files:
        plan = scenario.load_scenario(f, catalog)
        for inj in plan.injections:
            assert inj.level in catalog[inj.fault_id].levels and inj.params == catalog[inj.fault_id].params(inj.level)
    assert scenario.load_scenario(app / "scenarios" / "no-fault-control.yaml", catalog).injections == []
    assert len({i.fault_id for i in scenario.load_scenario(app / "scenarios" / "three-faults.yaml",
                                                           catalog).injections}) >= 3


@pytest.mark.integration
def test_driver_records_cascades(tmp_path):
    from obslab.lab.driver import PlanDriver

    cat = _catalog(tmp_path)
    cat["latency_spike"].raw["cascade"] = {"propagates_to": ["auth-service", "payment-worker"], "path": "a -> b"}
    plan = scenario.Plan("c", [
        scenario.Injection(0.0, "latency_spike", "low", "web-api", 1, 1, "inc-001", params={"delay_ms": 100}),
        scenario.Injection(0.2, "memory_leak", "medium", "payment-worker", 1, 0, "inc-002",
                           primary_incident_id="inc-001"),
    ], [scenario.Event(0.1, "deploy", "auth-service")], 1)
    port = processes.free_port()
    rp = processes.start_redis(port, tmp_path / "redis")
    seen = []
    try:
        d = PlanDriver(redis_lib.Redis(port=port, decode_responses=True), cat, plan, on_event=seen.append)
        d.run(time.time(), until_s=10)
        assert sorted(f["fault_id"] for f in scenario.active_faults(d.redis)) == ["latency_spike", "memory_leak"]
        d.clear()
        assert scenario.active_faults(d.redis) == []
    finally:
        rp.stop()
    got = [(i.incident_id, i.targets, i.root_cause, i.primary_incident_id) for i in d.incidents]
    assert got == [("inc-001", ["web-api"], "web-api", None),
                   ("inc-001-c1", ["auth-service"], "web-api", "inc-001"),
                   ("inc-001-c2", ["payment-worker"], "web-api", "inc-001"),
                   ("inc-002", ["payment-worker"], "web-api", "inc-001")]
    assert d.incidents[1].start_ms == d.incidents[0].start_ms and d.incidents[1].end_ms == d.incidents[0].end_ms
    processes.wait_until(lambda: seen, 5, "the deploy event")
    assert [e.kind for e in seen] == ["deploy"]


@pytest.mark.integration
def test_cli_names_the_apt_package_of_a_missing_binary(tmp_path):
    import os
    import sys

    empty = tmp_path / "bin"
    empty.mkdir()
    r = subprocess.run([str(processes.Path(sys.executable).parent / "obslab"), "lab", "run", "--duration", "5s",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PATH": str(empty)})
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip() == ("obslab lab: error: required binary 'redis-server' not found: "
                                "install it with `apt-get install redis-server`")
