"""The native lab run: infrastructure, the services from docker-compose.yml, load, faults, export.

``run_lab(RunConfig(...))`` starts everything on free loopback ports, runs the load and the fault
plan for the duration, then exports metrics, gathers traces, writes run.json and incidents.json,
and stops exactly the processes it started. Ctrl-C (or SIGTERM) ends the run early and still
writes everything gathered so far.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from obslab import prom
from obslab.lab import scenario
from obslab.lab.compose import ServiceSpec, load_compose
from obslab.lab.driver import PlanDriver
from obslab.lab.processes import (
    LabError, LogSink, ManagedProcess, find_binary, free_port, http_ok, port_open, postgres_datadir, psql,
    remove_datadir, start_postgres, start_postgres_exporter, start_prometheus, start_redis, start_redis_exporter, wait_until,
    ensure_database,
)
from obslab.truth import Incident, ms_to_iso, write_incidents

REPO_ROOT = Path(__file__).resolve().parents[3]
APP_SERVICES = ("auth-service", "payment-worker", "web-api", "load-generator")  # start order
# the port each app service listens on natively, and the variable that tells it
PORT_VARS = {"web-api": "PORT", "auth-service": "PORT", "payment-worker": "METRICS_PORT"}
# compose hosts of the infrastructure (their native port is the process's port)
INFRA_HOSTS = ("redis", "postgres", "prometheus", "redis-exporter", "postgres-exporter", "otel-collector")


def default_appendix() -> Path:
    """``$OBSLAB_APPENDIX``, the repository's appendix-code/, or (the unzipped appendix, whose
    bundled library sits in its lib/) the folder holding lib/ itself."""
    if os.environ.get("OBSLAB_APPENDIX"):
        return Path(os.environ["OBSLAB_APPENDIX"])
    if not (REPO_ROOT / "appendix-code").is_dir() and (REPO_ROOT / "faults.yaml").exists():
        return REPO_ROOT
    return REPO_ROOT / "appendix-code"


@dataclass
class RunConfig:
    out: Path
    duration_s: float = 600.0
    rate: float | None = None  # requests/s; None: the Compose default
    seed: int = 42
    scenario_file: Path | None = None
    schedule: str = "none"  # none | random (ignored when scenario_file is set)
    schedule_options: dict = field(default_factory=dict)
    tracing: bool = True
    scrape_interval_s: float = 5.0
    step_s: float | None = None  # metrics.json step (default: the scrape interval)
    appendix: Path = field(default_factory=default_appendix)
    max_restarts: int = 5
    progress: bool = True
    extra_env: dict = field(default_factory=dict)  # per service name, or "*" for all
    command: list[str] = field(default_factory=list)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _iso_now() -> str:
    return ms_to_iso(_now_ms())


def _version(argv: list[str]) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


class Progress:
    """One line updated in place on a TTY, a plain line every 10 s otherwise."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text)
            sys.stderr.flush()
        elif time.monotonic() - self._last >= 10:
            self._last = time.monotonic()
            print(text, file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")

    def say(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                sys.stderr.write("\r\x1b[2K")
            print(text, file=sys.stderr, flush=True)


class RequestCounter:
    """Requests sent so far: lines appended to the load generator's record file."""

    def __init__(self, path: Path):
        self.path = path
        self.count = 0
        self._pos = 0

    def update(self) -> int:
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self._pos)
                chunk = fh.read()
        except FileNotFoundError:
            return self.count
        end = chunk.rfind(b"\n") + 1  # only whole lines
        self.count += chunk[:end].count(b"\n")
        self._pos += end
        return self.count


class Lab:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        self.out = Path(cfg.out).resolve()  # services run in their own folders: hand them absolute paths
        self.raw = self.out / "raw"
        self.state = self.out / "state"
        self.run_id = f"lab-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
        self.procs: dict[str, ManagedProcess] = {}
        self.ports: dict[str, int] = {}
        self.restarts: list[dict] = []
        self.events: list[dict] = []
        self.driver: PlanDriver | None = None
        self.errors: list[str] = []
        self.lock = threading.RLock()
        self.paused: set[str] = set()  # services being restarted on purpose (deploys)
        self.stopping = threading.Event()
        self.sink: LogSink | None = None
        self.specs: dict[str, ServiceSpec] = {}
        self.catalog: dict[str, scenario.FaultSpec] = {}
        self.plan: scenario.Plan | None = None
        self.redis = None
        self.pg_datadir: Path | None = None
        self.load_started_ms: int | None = None
        self.started_ms = _now_ms()
        self.counter = RequestCounter(self.raw / "loadgen.jsonl")
        self.loadgen_sent = 0
        self.otlp_metrics = 0
        self.loadgen_summary: dict = {}
        self.progress = Progress(cfg.progress)

    # ---- set-up -------------------------------------------------------------------------------
    def prepare(self) -> None:
        appendix = Path(self.cfg.appendix)
        compose_file = appendix / "docker-compose.yml"
        if not compose_file.exists():
            raise LabError(f"{compose_file} not found: the lab's Compose file is the source of truth")
        self.specs = load_compose(compose_file)
        missing = [s for s in APP_SERVICES if s not in self.specs]
        if missing:
            raise LabError(f"{compose_file}: services missing: {', '.join(missing)}")
        for name in APP_SERVICES:
            if not self.specs[name].command:
                raise LabError(f"{compose_file}: service {name} has no explicit command:")
            if not (appendix / "services" / name).is_dir():
                raise LabError(f"{appendix / 'services' / name} not found")
        for b in ("redis-server", "postgres", "initdb", "pg_isready", "psql", "prometheus", "promtool",
                  "prometheus-redis-exporter", "prometheus-postgres-exporter", "node"):
            find_binary(b)
        faults_file = appendix / "faults.yaml"
        self.catalog = scenario.load_catalog(faults_file) if faults_file.exists() else {}
        self.plan = self._make_plan()
        for d in (self.raw, self.raw / "traces", self.raw / "metrics", self.state):
            d.mkdir(parents=True, exist_ok=True)
        for stale in [self.raw / "logs.txt", self.raw / "loadgen.jsonl", *self.raw.glob("traces/*.jsonl"),
                      *self.raw.glob("metrics/*.jsonl")]:
            stale.unlink(missing_ok=True)  # a re-run into the same DIR starts clean
        self.sink = LogSink(self.raw / "logs.txt", on_line=self._follow_line)
        for name in ("redis", "postgres", "prometheus", "redis-exporter", "postgres-exporter", "otel-collector",
                     "web-api", "auth-service", "payment-worker"):
            port = free_port()
            while port in self.ports.values():  # the kernel may hand the same free port out twice
                port = free_port()
            self.ports[name] = port

    def _make_plan(self) -> scenario.Plan:
        cfg = self.cfg
        if cfg.scenario_file:
            if not self.catalog:
                raise LabError("a scenario needs appendix-code/faults.yaml, which is missing")
            return scenario.load_scenario(cfg.scenario_file, self.catalog)
        if cfg.schedule == "random":
            if not self.catalog:
                raise LabError("a random schedule needs appendix-code/faults.yaml, which is missing")
            return scenario.random_schedule(self.catalog, cfg.seed, cfg.duration_s, **cfg.schedule_options)
        if cfg.schedule not in ("none", "", None):
            raise LabError(f"unknown schedule {cfg.schedule!r} (random or none)")
        return scenario.no_fault_plan(cfg.duration_s)

    def start_infra(self) -> None:
        p, sink = self.ports, self.sink
        self._add(start_redis(p["redis"], self.state / "redis", sink))
        self.pg_datadir = postgres_datadir(self.state)
        self._add(start_postgres(p["postgres"], self.pg_datadir, sink))
        self._ensure_databases()
        self._add(start_redis_exporter(p["redis-exporter"], p["redis"], sink))
        self._add(start_postgres_exporter(p["postgres-exporter"], p["postgres"], sink))
        config = self.state / "prometheus.yml"
        config.write_text(yaml.safe_dump(self._prometheus_config(), sort_keys=False))
        self._add(start_prometheus(p["prometheus"], config, self.state / "prometheus", sink))
        import redis as redis_lib

        self.redis = redis_lib.Redis(host="127.0.0.1", port=p["redis"], decode_responses=True)
        self.driver = PlanDriver(self.redis, self.catalog, self.plan, on_event=self._on_event,
                                 say=self.progress.say, hosts=["127.0.0.1"])

    @property
    def incidents(self) -> list[Incident]:
        return self.driver.incidents if self.driver else []

    def start_plan(self) -> None:
        """Faults and benign events at their offsets from the load start, in a thread."""
        assert self.driver is not None and self.load_started_ms is not None
        self.driver.start(self.load_started_ms / 1000, self.cfg.duration_s)

    def _on_event(self, ev: scenario.Event) -> None:
        if ev.kind == "deploy":
            self._deploy(ev)
        elif ev.kind == "maintenance":
            self._maintenance(ev)

    def _ensure_databases(self) -> None:
        """Create the roles/databases the services' DATABASE_URLs name (Compose: POSTGRES_* env)."""
        seen = set()
        for name in APP_SERVICES:
            url = self.specs[name].native_environment(self._host_ports()).get("DATABASE_URL")
            if not url:
                continue
            u = urlsplit(url)
            key = (u.username, u.path)
            if key in seen:
                continue
            seen.add(key)
            ensure_database(self.ports["postgres"], unquote(u.username or "postgres"),
                            unquote(u.password or ""), u.path.lstrip("/") or "postgres")

    def _host_ports(self) -> dict[str, int]:
        return {h: self.ports[h] for h in (*INFRA_HOSTS, "web-api", "auth-service", "payment-worker")
                if h in self.ports}

    def _prometheus_config(self) -> dict:
        """appendix-code/config/prometheus.yml with targets rewritten to loopback ports."""
        src = Path(self.cfg.appendix) / "config" / "prometheus.yml"
        interval = f"{int(self.cfg.scrape_interval_s)}s"
        doc = yaml.safe_load(src.read_text()) if src.exists() else {"scrape_configs": []}
        doc.setdefault("global", {})
        doc["global"].update({"scrape_interval": interval, "evaluation_interval": interval})
        doc["global"].pop("scrape_timeout", None)
        doc.pop("rule_files", None)
        doc.pop("alerting", None)
        hosts = self._host_ports()
        jobs = []
        for job in doc.get("scrape_configs") or []:
            job = dict(job)
            job.pop("scrape_interval", None)
            job.pop("scrape_timeout", None)
            statics = []
            for sc in job.get("static_configs") or []:
                targets = []
                for t in sc.get("targets") or []:
                    host = t.rsplit(":", 1)[0]
                    if host in hosts and host != "otel-collector":  # no Collector natively
                        targets.append(f"127.0.0.1:{hosts[host]}")
                if targets:
                    statics.append({**sc, "targets": targets})
            if statics:
                job["static_configs"] = statics
                jobs.append(job)
        doc["scrape_configs"] = jobs
        return doc

    def service_env(self, name: str) -> dict[str, str]:
        spec = self.specs[name]
        overrides = {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            "OTEL_TRACES_FILE": str(self.raw / "traces" / f"{name}.jsonl"),
            # the services' own OTLP metrics, as the Collector's metrics pipeline writes them in Compose
            "OTEL_METRICS_FILE": str(self.raw / "metrics" / f"{name}.jsonl"),
            # files a service writes (disk_fill) go to the run's state, never into the repo
            "DATA_DIR": str(self.state / name / "data"),
        }
        # containers listen on 0.0.0.0; native processes only on loopback
        overrides.update({k: "127.0.0.1" for k, v in spec.environment.items() if v == "0.0.0.0"})
        if name in PORT_VARS:
            overrides[PORT_VARS[name]] = str(self.ports[name])
        if not self.cfg.tracing:
            overrides["OTEL_SDK_DISABLED"] = "true"
        if name == "load-generator":
            overrides["LOADGEN_RECORD_FILE"] = str(self.raw / "loadgen.jsonl")
            overrides["SEED"] = str(self.cfg.seed)
            overrides["DURATION_S"] = "0"  # the runner decides when the run ends
            if self.cfg.rate is not None:
                overrides["RATE"] = f"{self.cfg.rate:g}"
        overrides.update(self.cfg.extra_env.get("*", {}))
        overrides.update(self.cfg.extra_env.get(name, {}))
        return spec.native_environment(self._host_ports(), overrides)

    def _service_proc(self, name: str) -> ManagedProcess:
        return ManagedProcess(name, list(self.specs[name].command), env=self.service_env(name),
                              cwd=str(Path(self.cfg.appendix) / "services" / name), sink=self.sink,
                              stop_timeout=15.0)

    def _wait_healthy(self, name: str, proc: ManagedProcess, timeout: float = 60.0) -> None:
        port = self.ports.get(name)
        if name in ("web-api", "auth-service"):
            wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), timeout, name, proc, 0.2)
        elif name == "payment-worker":
            wait_until(lambda: port_open(port), timeout, name, proc, 0.2)
        else:
            time.sleep(0.5)
            if not proc.alive():
                raise LabError(f"{name}: exited with code {proc.returncode()} right after start")

    def _ensure_node_modules(self) -> None:
        folder = Path(self.cfg.appendix) / "services" / "auth-service"
        if (folder / "package.json").exists() and not (folder / "node_modules").is_dir():
            self.progress.say("auth-service: node_modules missing, running npm ci ...")
            r = subprocess.run([find_binary("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                               cwd=folder, capture_output=True, text=True, check=False)
            if r.returncode != 0:
                raise LabError(f"auth-service: npm ci failed: {r.stderr.strip().splitlines()[-1:]}")

    def start_service(self, name: str) -> ManagedProcess:
        """Start one Compose service as the run does (its environment, folder and log sink)."""
        return self._add(self._service_proc(name).start())

    def start_services(self) -> None:
        self._ensure_node_modules()
        for name in APP_SERVICES:
            if name == "load-generator":
                continue
            self._wait_healthy(name, self.start_service(name))

    def start_load(self) -> None:
        proc = self.start_service("load-generator")
        self.load_started_ms = _now_ms()
        self._wait_healthy("load-generator", proc)

    def _follow_line(self, service: str, line: str) -> None:
        """The load generator logs how many requests it sent every 10 s: show the latest figure."""
        if service == "load-generator" and '"sent"' in line:
            try:
                doc = json.loads(line)
                self.loadgen_sent = max(self.loadgen_sent, int(doc["sent"]))
                if "achieved_rate" in doc:  # its summary at exit: target vs achieved rate
                    self.loadgen_summary = {k: doc[k] for k in ("target_rate", "achieved_rate", "http_request_rate",
                                                                "scheduled", "completed", "sent", "skipped") if k in doc}
            except (ValueError, KeyError, TypeError):
                pass

    def _add(self, proc: ManagedProcess) -> ManagedProcess:
        with self.lock:
            self.procs[proc.name] = proc
        return proc

    # ---- while running ------------------------------------------------------------------------
    def watch(self) -> None:
        """Restart app services that died; show progress. Returns when the duration is over."""
        end = time.monotonic() + self.cfg.duration_s
        while not self.stopping.is_set() and time.monotonic() < end:
            self._restart_dead()
            self._show_progress(end)
            self.stopping.wait(0.5)

    def _restart_dead(self) -> None:
        for name in APP_SERVICES:
            with self.lock:
                proc = self.procs.get(name)
                if proc is None or proc.alive() or name in self.paused or self.stopping.is_set():
                    continue
                code = proc.returncode()
                n = sum(1 for r in self.restarts if r["service"] == name)
                if n >= self.cfg.max_restarts:
                    if not any(e.startswith(f"{name}:") for e in self.errors):
                        self.errors.append(f"{name}: died {n + 1} times, not restarted again")
                    continue
                self.restarts.append({"service": name, "time": _iso_now(), "exit_code": code})
                self.progress.say(f"{name} exited with code {code}: restarting")
                proc.stop()
                self.procs[name] = self._service_proc(name).start()

    def _show_progress(self, end: float) -> None:
        elapsed = self.cfg.duration_s - max(0.0, end - time.monotonic())
        active = self.driver.active() if self.driver else []
        self.progress.show(
            f"[lab] {elapsed:5.0f}/{self.cfg.duration_s:.0f} s  requests sent {max(self.counter.update(), self.loadgen_sent)}  "
            f"active faults: {', '.join(active) or 'none'}  restarts {len(self.restarts)}")

    def _deploy(self, ev: scenario.Event) -> None:
        """A graceful restart, as a deploy would do: stop and start logged as lifecycle lines."""
        name = ev.service
        if name not in APP_SERVICES or name == "load-generator":
            self.errors.append(f"deploy: not an app service: {name}")
            return
        t = _iso_now()
        with self.lock:
            self.paused.add(name)
            old = self.procs[name]
        old.stop()
        proc = self._service_proc(name).start()
        with self.lock:
            self.procs[name] = proc
        try:
            self._wait_healthy(name, proc, 30)
        except LabError as exc:
            self.errors.append(f"deploy of {name}: {exc}")
        finally:
            with self.lock:
                self.paused.discard(name)
        self.events.append({"kind": "deploy", "service": name, "start": t, "end": _iso_now()})

    def _maintenance(self, ev: scenario.Event) -> None:
        """A maintenance window: VACUUM ANALYZE on the app database and a Redis BGSAVE."""
        t0 = time.time()
        url = self.service_env("web-api").get("DATABASE_URL", "")
        db = urlsplit(url).path.lstrip("/") or "postgres"
        try:
            psql(self.ports["postgres"], "VACUUM ANALYZE", db=db)
            self.redis.bgsave()
        except Exception as exc:  # maintenance is best effort; the run goes on
            self.errors.append(f"maintenance: {exc}")
        self.stopping.wait(max(0.0, ev.duration_s - (time.time() - t0)))
        self.events.append({"kind": "maintenance", "service": ev.service or "postgres,redis",
                            "start": ms_to_iso(int(t0 * 1000)), "end": _iso_now(), "planned_s": ev.duration_s})

    # ---- the end ------------------------------------------------------------------------------
    def finish(self, interrupted: bool) -> dict:
        """Stop the load, export metrics and verify faults while Prometheus is up, stop all."""
        self.stopping.set()
        if self.driver:
            self.driver.stop()
        self.progress.done()
        end_ms = _now_ms()
        summary: dict = {"interrupted": interrupted}
        load = self.procs.get("load-generator")
        if load:
            load.stop()
        prom_url = f"http://127.0.0.1:{self.ports.get('prometheus')}"
        prom_proc = self.procs.get("prometheus")
        metrics_doc = None
        if prom_proc and prom_proc.alive():
            # the last samples of the run: wait for one more scrape (short when interrupted)
            time.sleep(0 if interrupted else self.cfg.scrape_interval_s + 1)
            try:
                metrics_doc = self._export_metrics(prom_url, end_ms)
            except (prom.PromError, OSError, ValueError) as exc:
                self.errors.append(f"metrics export: {exc}")
            if not interrupted and self.driver:
                self.driver.verify(prom_url, self.cfg.scrape_interval_s)
        self.stop_all()
        spans = self._gather_traces()
        self.otlp_metrics = self._gather_otlp_metrics()
        summary.update(self._write_outputs(end_ms, metrics_doc, spans, interrupted))
        return summary

    def _export_metrics(self, prom_url: str, end_ms: int) -> dict:
        qfile = Path(self.cfg.appendix) / "config" / "metrics_queries.yaml"
        queries = prom.load_queries(qfile) if qfile.exists() else []
        if not queries:
            self.errors.append(f"{qfile} missing or empty: metrics.json has no results")
        start = (self.load_started_ms or self.started_ms) / 1000
        step = self.cfg.step_s or self.cfg.scrape_interval_s
        doc = prom.export_range(prom_url, queries, start, end_ms / 1000, step)
        (self.raw / "metrics.json").write_text(json.dumps(doc) + "\n")
        return doc

    def stop_all(self) -> None:
        """Stop exactly what was started, in reverse order (Postgres last, with SIGINT)."""
        self.stopping.set()
        with self.lock:
            procs = list(self.procs.values())
        for proc in reversed(procs):
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                self.errors.append(f"stopping {proc.name}: {exc}")
        if self.sink:
            self.sink.close()
        if self.pg_datadir is not None:
            remove_datadir(self.pg_datadir)
        shutil.rmtree(self.state / "prometheus", ignore_errors=True)

    def _gather_traces(self) -> int:
        """Concatenate each process's OTLP JSON lines into raw/traces.jsonl; count the spans."""
        return self._gather("traces", lambda doc: sum(
            len(ss.get("spans", [])) for rs in doc.get("resourceSpans", []) for ss in rs.get("scopeSpans", [])))

    def _gather_otlp_metrics(self) -> int:
        """The same for the services' OTLP metrics (raw/metrics.jsonl); count the metrics."""
        return self._gather("metrics", lambda doc: sum(
            len(sm.get("metrics", [])) for rm in doc.get("resourceMetrics", [])
            for sm in rm.get("scopeMetrics", [])))

    def _gather(self, kind: str, count) -> int:
        total = 0
        with open(self.raw / f"{kind}.jsonl", "w", encoding="utf-8") as out:
            for part in sorted((self.raw / kind).glob("*.jsonl")):
                with open(part, encoding="utf-8", errors="replace") as fh:
                    for line in fh:
                        line = line.strip()
                        if not line:
                            continue
                        try:
                            doc = json.loads(line)
                        except ValueError:
                            self.errors.append(f"{kind}/{part.name}: a line that is not JSON was skipped")
                            continue
                        out.write(line + "\n")
                        total += count(doc)
        return total

    def versions(self) -> dict:
        import obslab

        return {
            "obslab": getattr(obslab, "__version__", "0.1.0"),
            "python": platform.python_version(),
            "node": _version(["node", "--version"]),
            "redis": _version([find_binary("redis-server"), "--version"]),
            "postgres": _version([find_binary("postgres"), "--version"]),
            "prometheus": _version([find_binary("prometheus"), "--version"]),
            "platform": platform.platform(),
        }

    def _write_outputs(self, end_ms: int, metrics_doc: dict | None, spans: int, interrupted: bool) -> dict:
        self.counter.update()
        counts = {
            "log_lines": dict(self.sink.counts) if self.sink else {},
            "log_lines_total": sum(self.sink.counts.values()) if self.sink else 0,
            "spans": spans,
            "otlp_metrics": self.otlp_metrics,
            "series": prom.series_count(metrics_doc) if metrics_doc else 0,
            "requests_sent": self.counter.count,
            "incidents": len(self.incidents),
        }
        run = {
            "run_id": self.run_id,
            "command": self.cfg.command or sys.argv,
            "seed": self.cfg.seed,
            "rate": self.cfg.rate,
            "tracing": self.cfg.tracing,
            "mode": "native",
            "scenario": self.plan.name if self.plan else None,
            "plan": self.plan.source if self.plan else None,
            "start": ms_to_iso(self.started_ms),
            "load_start": ms_to_iso(self.load_started_ms) if self.load_started_ms else None,
            "end": ms_to_iso(end_ms),
            "duration_s": self.cfg.duration_s,
            "interrupted": interrupted,
            "versions": self.versions(),
            "ports": dict(self.ports),
            "pids": {n: p.pid for n, p in self.procs.items()},
            "counts": counts,
            "load_generator": self.loadgen_summary,
            "restarts": self.restarts,
            "events": self.events,
            "errors": self.errors + (self.driver.errors if self.driver else []),
        }
        (self.out / "run.json").write_text(json.dumps(run, indent=2) + "\n")
        write_incidents(self.out / "incidents.json", self.incidents, run_id=self.run_id, seed=self.cfg.seed,
                        source="lab", generated_at=_iso_now(),
                        config={"scenario": run["scenario"], "plan": run["plan"]},
                        summary={"incidents": len(self.incidents),
                                 "verified": sum(1 for i in self.incidents if i.verified),
                                 "faults": sorted({i.fault_id for i in self.incidents})})
        return run


def run_lab(cfg: RunConfig) -> dict:
    """Run the lab for cfg.duration_s; returns run.json's content. LabError for user errors."""
    lab = Lab(cfg)
    interrupted = False
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_term)
        # SIGINT too: a lab started in the background by a non-interactive shell inherits
        # SIGINT ignored (POSIX), and Python keeps it so: Ctrl-C / kill -INT would be lost
        signal.signal(signal.SIGINT, on_term)
    try:
        lab.prepare()
        try:
            lab.progress.say(f"[lab] starting infrastructure in {lab.out}")
            lab.start_infra()
            lab.progress.say("[lab] starting services from docker-compose.yml")
            lab.start_services()
            lab.start_load()
            lab.start_plan()
            lab.watch()
        except KeyboardInterrupt:
            interrupted = True
            lab.progress.say("[lab] interrupted: stopping and keeping what was written")
        except LabError as exc:
            lab.stopping.set()
            lab.stop_all()
            raise LabError(f"{exc} (output so far: {lab.raw / 'logs.txt'})") from None
        except BaseException:
            lab.stopping.set()
            lab.stop_all()
            raise
        # a second Ctrl-C must not orphan the services mid-shutdown: finish has its own timeouts
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        return lab.finish(interrupted)
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
