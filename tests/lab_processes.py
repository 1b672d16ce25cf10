"""Test helpers: the lab's services as real processes, started by the native runner itself.

:func:`start_stack` drives :class:`obslab.lab.runner.Lab` (free loopback ports with its
duplicate-port guard, the infrastructure, the Compose file's commands and environment, the
health waits), so these tests exercise exactly what ``obslab lab run`` starts. What is left
here only reads what the stack wrote (log lines, spans, metrics).
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import httpx

from obslab.lab.runner import Lab, RunConfig

ROOT = Path(__file__).resolve().parents[1]
APPENDIX = ROOT / "appendix-code"
SERVICES = APPENDIX / "services"
PREFIX = re.compile(r"^(?P<svc>[\w.-]+)-1\s*\| (?P<line>.*)$")


class Stack:
    """A started :class:`Lab` (no load, no fault plan) and readers for what it writes."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.dir = lab.out
        self.ports = lab.ports
        self.sink = lab.sink
        self._stopped = False

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def database_url(self) -> str:
        return self.lab.service_env("web-api")["DATABASE_URL"]

    def data_dir(self, service: str) -> Path:
        """Where the service writes its files (``DATA_DIR``: disk_fill)."""
        return Path(self.lab.service_env(service)["DATA_DIR"])

    def start(self, service: str):
        """Start one more Compose service (e.g. the load generator) the way the runner does."""
        return self.lab.start_service(service)

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
        if not self._stopped:
            self._stopped = True
            self.lab.stop_all()


def start_stack(workdir: Path, extra_env: dict[str, dict[str, str]] | None = None, **config) -> Stack:
    """The lab's infrastructure and app services (no load), through the runner's own steps.

    ``extra_env``: per service name (or ``"*"``), as :class:`RunConfig`; ``config``: other
    RunConfig fields (``rate``, ``seed``, ...). ``stop()`` stops exactly what was started.
    """
    lab = Lab(RunConfig(out=Path(workdir), progress=False, appendix=APPENDIX, extra_env=extra_env or {},
                        **config))
    try:
        lab.prepare()
        lab.start_infra()
        lab.start_services()
    except BaseException:
        lab.stop_all()
        raise
    return Stack(lab)


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


def wait_for(check, timeout: float = 10.0, interval: float = 0.1):
    """Poll until check() returns a truthy value; returns it, or raises AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)  # the polling interval of a condition wait, not a fixed delay
    raise AssertionError(f"condition not met within {timeout} s")


def wait_for_scrapes(url: str, metric: str, n: int, timeout_s: float = 90) -> int:
    """Poll Prometheus at ``url`` until it holds ``n`` samples of ``metric`` from the last minute
    (or ``timeout_s`` passes); returns the last count seen, for the caller's assertion."""
    seen, deadline = 0, time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = httpx.get(url + "/api/v1/query", params={"query": f"count_over_time({metric}[1m])"}, timeout=5)
            result = r.json()["data"]["result"] if r.status_code == 200 else []
            seen = int(float(result[0]["value"][1])) if result else 0
        except (httpx.TransportError, ValueError, KeyError):
            pass
        if seen >= n:
            break
        time.sleep(0.25)  # polling interval of a condition wait
    return seen
