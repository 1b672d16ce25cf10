"""Regions, services, hosts and the service dependency graph."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from obslab.synth.config import SynthConfig

__all__ = ["Topology", "build_topology", "SERVICE_PROFILES"]

# Per-service operating point: requests/s per host at peak, latency ms, memory baseline %,
# whether it holds a DB connection pool.
SERVICE_PROFILES = {
    "web-frontend": dict(rps=120.0, latency=45.0, mem=45.0, db=False),
    "auth-service": dict(rps=90.0, latency=18.0, mem=38.0, db=True),
    "payment-gateway": dict(rps=25.0, latency=120.0, mem=50.0, db=True),
    "inventory-db": dict(rps=200.0, latency=6.0, mem=70.0, db=True),
    "recommendation-engine": dict(rps=60.0, latency=80.0, mem=60.0, db=True),
}
_DEFAULT_PROFILE = dict(rps=50.0, latency=40.0, mem=50.0, db=False)


@dataclass
class Topology:
    regions: list[str]
    services: list[str]
    hosts: list[str]  # host names, e.g. "web-frontend-3"
    host_service: np.ndarray  # (H,) service index
    host_region: np.ndarray  # (H,) region index
    host_number: np.ndarray  # (H,) 1-based replica number within its service
    callees: dict[str, list[str]]
    callers: dict[str, list[str]]
    capacity: np.ndarray  # (H,) relative capacity factor (hardware differences)
    mem_base: np.ndarray  # (H,) baseline memory %
    utc_offset_h: np.ndarray  # (H,) local time offset of the host's region

    @property
    def n_hosts(self) -> int:
        return len(self.hosts)

    def hosts_of(self, service: str) -> np.ndarray:
        return np.flatnonzero(self.host_service == self.services.index(service))

    def hosts_in(self, region: str) -> np.ndarray:
        return np.flatnonzero(self.host_region == self.regions.index(region))

    def profile(self, service: str) -> dict:
        return SERVICE_PROFILES.get(service, _DEFAULT_PROFILE)

    def upstream(self, service: str) -> list[str]:
        """Services that call ``service`` (where its failures propagate)."""
        return self.callers.get(service, [])


def build_topology(cfg: SynthConfig) -> Topology:
    # Host constants come from their own seed stream so they never depend on the chunking.
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(7, 0)))
    hosts, h_svc, h_reg, h_num = [], [], [], []
    for si, svc in enumerate(cfg.services):
        for n in range(cfg.hosts_per_service):
            hosts.append(f"{svc}-{n + 1}")
            h_svc.append(si)
            # spread replicas round-robin over regions, offset per service so regions differ
            h_reg.append((n + si) % len(cfg.regions))
            h_num.append(n + 1)
    h_svc_a = np.array(h_svc, dtype=np.int32)
    callers: dict[str, list[str]] = {s: [] for s in cfg.services}
    for caller, callees in cfg.dependencies.items():
        for c in callees:
            callers[c].append(caller)
    mem_base = np.array(
        [SERVICE_PROFILES.get(cfg.services[s], _DEFAULT_PROFILE)["mem"] for s in h_svc_a]
    ) + rng.normal(0, 4, len(hosts))
    h_reg_a = np.array(h_reg, dtype=np.int32)
    offsets = np.array([cfg.region_utc_offset.get(cfg.regions[r], 0.0) for r in h_reg_a])
    return Topology(
        regions=list(cfg.regions),
        services=list(cfg.services),
        hosts=hosts,
        host_service=h_svc_a,
        host_region=h_reg_a,
        host_number=np.array(h_num, dtype=np.int32),
        callees={s: list(cfg.dependencies.get(s, [])) for s in cfg.services},
        callers=callers,
        capacity=rng.uniform(0.8, 1.25, len(hosts)),
        mem_base=mem_base,
        utc_offset_h=offsets,
    )
