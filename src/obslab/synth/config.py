"""Generation settings: one dataclass, defaults per issue 5, loadable from YAML and flags."""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

import yaml

__all__ = ["SynthConfig", "load_config", "parse_step", "parse_start"]

DEFAULT_SERVICES = [
    "web-frontend",
    "auth-service",
    "payment-gateway",
    "inventory-db",
    "recommendation-engine",
]

# caller -> callees. Faults propagate upstream: a sick callee hurts its callers.
DEFAULT_DEPENDENCIES = {
    "web-frontend": ["auth-service", "payment-gateway", "recommendation-engine"],
    "payment-gateway": ["auth-service", "inventory-db"],
    "recommendation-engine": ["inventory-db"],
    "auth-service": ["inventory-db"],
    "inventory-db": [],
}

INCIDENT_TYPES = [
    "memory_leak",
    "db_contention",
    "network_packet_loss",
    "cpu_saturation",
    "cascading_failure",
    "network_partition",
    "dependency_degradation",
    "configuration_mismatch",
    "resource_exhaustion",
]

_STEP_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "": 60}


def parse_step(text: str | int) -> int:
    """'15m' -> 900 seconds. A bare number means minutes."""
    if isinstance(text, int):
        return text * 60
    m = _STEP_RE.match(str(text))
    if not m:
        raise ValueError(f"bad step {text!r}: use e.g. 1m, 5m, 15m, 1h")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds < 60 or 86400 % seconds:
        raise ValueError(f"step {text!r} must be >= 1 minute and divide a day evenly")
    return seconds


def parse_start(text: str) -> int:
    """'2025-01-01' (UTC midnight) -> epoch ms; the start is truncated to a day boundary."""
    dt = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    day = int(dt.timestamp()) // 86400 * 86400
    return day * 1000


@dataclass
class SynthConfig:
    days: int = 365
    step: str = "15m"
    start: str = "2025-01-01"
    seed: int = 0
    regions: list[str] = field(default_factory=lambda: ["us-east-1", "eu-west-1", "on-prem-dc1"])
    # hours offset of each region's local time (drives the daily load shape)
    region_utc_offset: dict[str, float] = field(
        default_factory=lambda: {"us-east-1": -5.0, "eu-west-1": 0.0, "on-prem-dc1": 1.0}
    )
    services: list[str] = field(default_factory=lambda: list(DEFAULT_SERVICES))
    hosts_per_service: int = 5
    dependencies: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_DEPENDENCIES))
    # incidents
    incidents_per_day: float = 0.8
    incident_types: list[str] = field(default_factory=lambda: list(INCIDENT_TYPES))
    cascade_probability: float = 0.5
    severity_weights: dict[str, float] = field(
        default_factory=lambda: {"low": 0.45, "medium": 0.35, "high": 0.2}
    )
    # normal operations
    deploys_per_day: float = 1.5  # across all services
    benign_spike_probability: float = 0.004  # per host and step
    maintenance_weekday: int = 6  # Sunday
    maintenance_hour_local: int = 2
    maintenance_hours: float = 2.0
    # volumes of logs and traces (metrics are one row per metric, host and step)
    traces_per_frontend_host_minute: float = 0.1
    warnings_per_host_hour: float = 0.4
    # outputs
    server_metrics: bool = False
    n_servers: int = 0  # 0: one server record stream per host

    @property
    def step_s(self) -> int:
        return parse_step(self.step)

    @property
    def start_ms(self) -> int:
        return parse_start(self.start)

    def validate(self) -> "SynthConfig":
        self.step_s  # noqa: B018 - raises on a bad step
        self.start_ms  # noqa: B018
        if self.days < 1:
            raise ValueError("days must be >= 1")
        if self.hosts_per_service < 1:
            raise ValueError("hosts_per_service must be >= 1")
        unknown = [t for t in self.incident_types if t not in INCIDENT_TYPES]
        if unknown:
            raise ValueError(f"unknown incident types {unknown}; known: {INCIDENT_TYPES}")
        for caller, callees in self.dependencies.items():
            for name in [caller, *callees]:
                if name not in self.services:
                    raise ValueError(f"dependency names unknown service {name!r}")
        missing = [r for r in self.regions if r not in self.region_utc_offset]
        for r in missing:
            self.region_utc_offset[r] = 0.0
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def load_config(path: str | os.PathLike | None = None, **overrides) -> SynthConfig:
    """Defaults, then the YAML file's keys, then non-None overrides (e.g. from flags)."""
    values: dict = {}
    if path is not None:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        values.update(doc)
    values.update({k: v for k, v in overrides.items() if v is not None})
    known = {f.name for f in fields(SynthConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown synth settings {unknown}; known: {sorted(known)}")
    return SynthConfig(**values).validate()
