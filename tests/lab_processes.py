"""Test helpers: the lab's app services as real processes on free loopback ports.

Infrastructure (Redis, Postgres, free ports, process groups, the Compose log format) comes from
obslab.lab.processes; the services' commands and environment come from
appendix-code/docker-compose.yml through obslab.lab.compose, exactly as the native runner
uses them, so these tests exercise the one source of truth.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from obslab.lab.compose import load_compose
from obslab.lab.processes import (LogSink, ManagedProcess, ensure_database, free_port, http_ok, port_open,
                                  postgres_datadir, start_postgres, start_redis, wait_until)

ROOT = Path(__file__).resolve().parents[1]
APPENDIX = ROOT / "appendix-code"
SERVICES = APPENDIX / "services"
COMPOSE = APPENDIX / "docker-compose.yml"
PREFIX = re.compile(r"^(?P<svc>[\w.-]+)-1\s*\| (?P<line>.*)$")


@dataclass
class Stack:
    dir: Path
    ports: dict[str, int]
    sink: LogSink
    procs: dict[str, ManagedProcess] = field(default_factory=dict)
    env: dict[str, dict] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def database_url(self) -> str:
        return self.env["web-api"]["DATABASE_URL"]

    def log_lines(self) -> list[tuple[str, str]]:
        """(service, payload) for every line written so far in the Compose log format."""
        out = []
        for raw in (self.dir / "raw" / "logs.txt").read_text(encoding="utf-8").splitlines():
            m = PREFIX.match(raw)
            assert m, f"not in the Compose log format: {raw!r}"
            out.append((m["svc"], m["line"]))
        return out

    def spans(self) -> list[dict]:
        """Every span in the services' OTLP JSON trace files, with its service.name."""
        out = []
        for path in sorted((self.dir / "raw" / "traces").glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                for rs in json.loads(line)["resourceSpans"]:
                    attrs = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
                    service = attrs["service.name"]["stringValue"]
                    for ss in rs["scopeSpans"]:
                        for span in ss["spans"]:
                            span["service"] = service
                            span["attrs"] = {a["key"]: next(iter(a["value"].values()))
                                             for a in span.get("attributes", [])}
                            out.append(span)
        return out

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            proc.stop()
        self.sink.close()


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return resp.read().decode()


def metric_value(text: str, name: str, **labels) -> float | None:
    """The value of the first sample of `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def start_stack(workdir: Path, services=("auth-service", "payment-worker", "web-api"),
                extra_env: dict[str, str] | None = None) -> Stack:
    """Redis, Postgres and the given app services; stop() stops exactly these processes."""
    workdir = Path(workdir)
    ports = {name: free_port() for name in ("redis", "postgres", "web-api", "auth-service", "payment-worker")}
    stack = Stack(workdir, ports, LogSink(workdir / "raw" / "logs.txt"))
    try:
        stack.procs["redis"] = start_redis(ports["redis"], workdir / "redis", stack.sink)
        stack.procs["postgres"] = start_postgres(ports["postgres"], postgres_datadir(workdir), stack.sink)
        specs = load_compose(COMPOSE)
        hosts = {"redis": ports["redis"], "postgres": ports["postgres"], "web-api": ports["web-api"],
                 "auth-service": ports["auth-service"], "otel-collector": free_port()}
        from urllib.parse import unquote, urlsplit

        db = urlsplit(specs["web-api"].native_environment(hosts)["DATABASE_URL"])
        ensure_database(ports["postgres"], unquote(db.username), unquote(db.password or ""), db.path.lstrip("/"))
        port_var = {"web-api": "PORT", "auth-service": "PORT", "payment-worker": "METRICS_PORT"}
        for name in services:
            env = specs[name].native_environment(hosts, {
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                "PYTHONUNBUFFERED": "1",
                "OTEL_TRACES_FILE": str(workdir / "raw" / "traces" / f"{name}.jsonl"),
                "DATA_DIR": str(workdir / "data" / name),
                port_var[name]: str(ports[name]),
                **(extra_env or {}),
            })
            stack.env[name] = env
            proc = ManagedProcess(name, list(specs[name].command), env=env, cwd=str(SERVICES / name),
                                  sink=stack.sink, stop_timeout=10).start()
            stack.procs[name] = proc
            if name == "payment-worker":
                wait_until(lambda: port_open(ports[name]), 60, name, proc, 0.1)
            else:
                wait_until(lambda: http_ok(stack.url(name, "/health")), 60, name, proc, 0.1)
    except BaseException:
        stack.stop()
        raise
    return stack


def wait_for(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll until check() returns a truthy value; returns it, or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")
