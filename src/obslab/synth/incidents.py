"""The plan: incidents (with cascades), deployments and maintenance windows for the whole run.

Planning is cheap (hundreds of records a year) and done up front, day by day, each day from its
own seed stream: a longer run keeps the shorter run's plan as its prefix. Effects on the
metrics are functions of absolute time (:func:`intensity`), so any chunk of the run can be
generated on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from obslab.synth.config import SynthConfig
from obslab.synth.topology import Topology
from obslab.truth import Incident

__all__ = [
    "Fault",
    "Deploy",
    "Maintenance",
    "Plan",
    "plan_run",
    "intensity",
    "verify",
    "SEVERITY",
    "SYMPTOM_METRIC",
    "CASCADING_TYPES",
    "REGIONAL_TYPES",
]

SEVERITY = {"low": 0.45, "medium": 0.85, "high": 1.4}
_LOWER = {"high": "medium", "medium": "low", "low": "low"}

# minutes (min, max) of the fault phase; fraction of it spent ramping up (0: abrupt)
DURATION_MIN = {
    "memory_leak": (180, 720),
    "db_contention": (30, 180),
    "network_packet_loss": (20, 120),
    "cpu_saturation": (20, 150),
    "cascading_failure": (30, 180),
    "network_partition": (10, 60),
    "dependency_degradation": (30, 240),
    "configuration_mismatch": (30, 240),
    "resource_exhaustion": (60, 360),
}
RAMP_FRACTION = {
    "memory_leak": 1.0,
    "db_contention": 0.3,
    "network_packet_loss": 0.1,
    "cpu_saturation": 0.25,
    "cascading_failure": 0.2,
    "network_partition": 0.0,
    "dependency_degradation": 0.4,
    "configuration_mismatch": 0.0,
    "resource_exhaustion": 0.6,
}
# the metric each incident type is expected to move, and which way (checked as "verified")
SYMPTOM_METRIC = {
    "memory_leak": ("mem_pct", +1),
    "db_contention": ("latency_p95_ms", +1),
    "network_packet_loss": ("packet_loss_pct", +1),
    "cpu_saturation": ("cpu_pct", +1),
    "cascading_failure": ("error_rate_pct", +1),
    "network_partition": ("error_rate_pct", +1),
    "dependency_degradation": ("latency_p95_ms", +1),
    "configuration_mismatch": ("error_rate_pct", +1),
    "resource_exhaustion": ("shared_pool_pct", +1),
}
VERIFY_MIN_CHANGE = 0.1  # relative change of the symptom metric that counts as observed
CASCADING_TYPES = {"db_contention", "cascading_failure", "cpu_saturation", "resource_exhaustion"}
REGIONAL_TYPES = {"network_packet_loss", "network_partition"}
DESCRIPTION = {
    "memory_leak": "heap grows steadily until the process is restarted",
    "db_contention": "lock contention: slow queries, connection pool fills",
    "network_packet_loss": "regional packet loss: retransmits, higher latency, some errors",
    "cpu_saturation": "CPU pinned near 100%: queueing latency",
    "cascading_failure": "a service fails hard and drags its callers down",
    "network_partition": "a region loses connectivity: traffic drops, errors spike",
    "dependency_degradation": "a dependency slows down: latency and timeouts at the caller",
    "configuration_mismatch": "a deploy ships a bad config to some hosts: error spike",
    "resource_exhaustion": "a shared resource pool runs dry: waits, rejections",
}


@dataclass
class Fault:
    """An incident plus what the generator needs to draw it."""

    incident: Incident
    kind: str
    severity: float
    hosts: np.ndarray  # host indices
    host_weight: np.ndarray  # per host multiplier of the severity (regional origin = 1)
    ramp_ms: int


@dataclass
class Deploy:
    time_ms: int
    service: str
    version: str
    bad: bool = False  # the deploy that starts a configuration_mismatch


@dataclass
class Maintenance:
    start_ms: int
    end_ms: int
    region: str
    drained_hosts: list[int] = field(default_factory=list)


@dataclass
class Plan:
    faults: list[Fault]
    deploys: list[Deploy]
    maintenance: list[Maintenance]

    def incidents(self) -> list[Incident]:
        return [f.incident for f in self.faults]

    def overlapping(self, t0: int, t1: int):
        f = [x for x in self.faults if x.incident.start_ms < t1 and x.incident.cooldown_end_ms > t0]
        # a rolling restart that began the day before may still be going on
        d = [x for x in self.deploys if t0 - 86_400_000 <= x.time_ms < t1]
        m = [x for x in self.maintenance if x.start_ms < t1 and x.end_ms > t0]
        return f, d, m


def intensity(fault: Fault, t_ms: np.ndarray) -> np.ndarray:
    """Effect strength in [0, 1] at each time: ramp up, plateau, gradual recovery in cooldown."""
    inc = fault.incident
    t = t_ms.astype(np.float64)
    up = np.clip((t - inc.start_ms + 1) / max(fault.ramp_ms, 1), 0.0, 1.0)
    r = np.where((t >= inc.start_ms) & (t < inc.end_ms), up, 0.0)
    if fault.kind == "memory_leak":
        return r  # the restart at `end` frees the heap at once
    cool = max(inc.cooldown_end_ms - inc.end_ms, 1)
    end_level = min(1.0, (inc.end_ms - inc.start_ms) / max(fault.ramp_ms, 1))
    down = end_level * np.clip((inc.cooldown_end_ms - t) / cool, 0.0, 1.0) * 0.6
    return np.where((t >= inc.end_ms) & (t < inc.cooldown_end_ms), down, r)


def _choice(rng: np.random.Generator, items, p=None):
    return items[int(rng.choice(len(items), p=p))]


def _pick_hosts(rng, topo: Topology, service: str, partial: bool) -> np.ndarray:
    hosts = topo.hosts_of(service)
    if partial and len(hosts) > 1:
        k = int(rng.integers(1, max(2, len(hosts) // 2 + 1)))
        hosts = np.sort(rng.choice(hosts, size=k, replace=False))
    return hosts


def _new_fault(rng, cfg, topo, kind, day_start, step_ms, seq, level=None) -> Fault:
    services = topo.services
    sevs = list(cfg.severity_weights)
    w = np.array([cfg.severity_weights[s] for s in sevs], dtype=float)
    level = level or _choice(rng, sevs, w / w.sum())
    lo, hi = DURATION_MIN[kind]
    dur = int(rng.integers(lo, hi + 1)) * 60_000
    dur = max(step_ms * 2, dur // step_ms * step_ms)
    start = day_start + int(rng.integers(0, 86_400_000 // step_ms)) * step_ms
    end = start + dur
    cooldown = max(step_ms, int(dur * rng.uniform(0.15, 0.3)) // step_ms * step_ms)
    region = None
    with_callers = [s for s in services if topo.upstream(s)]
    with_callees = [s for s in services if topo.callees.get(s)]
    db_like = [s for s in services if "db" in s] or services
    if kind in REGIONAL_TYPES:
        region = _choice(rng, topo.regions)
        hosts = topo.hosts_in(region)
        if kind == "network_packet_loss" and len(hosts) > 2:
            # a regional issue that hits several (not all) services there
            svc_here = sorted({int(topo.host_service[h]) for h in hosts})
            keep = rng.choice(svc_here, size=max(2, len(svc_here) * 2 // 3), replace=False)
            hosts = hosts[np.isin(topo.host_service[hosts], keep)]
        origin = topo.services[int(topo.host_service[hosts[0]])]
        weight = np.where(topo.host_service[hosts] == topo.host_service[hosts[0]], 1.0, 0.6)
        targets = [origin] + sorted(
            {topo.services[int(topo.host_service[h])] for h in hosts} - {origin}
        )
    else:
        pool = {
            "db_contention": db_like,
            "cascading_failure": with_callers or services,
            "dependency_degradation": with_callees or services,
        }.get(kind, services)
        origin = _choice(rng, pool)
        partial = kind in {"memory_leak", "cpu_saturation", "configuration_mismatch"} or (
            rng.random() < 0.3 and kind != "cascading_failure"
        )
        hosts = _pick_hosts(rng, topo, origin, partial)
        weight = np.ones(len(hosts))
        targets = [origin]
    day = day_start // 86_400_000
    inc = Incident(
        incident_id=f"syn-{day:05d}-{seq:02d}",
        fault_id=kind,
        level=level,
        targets=targets,
        start_ms=start,
        end_ms=end,
        cooldown_end_ms=end + cooldown,
        root_cause=origin,
        hosts=[topo.hosts[h] for h in hosts],
        region=region,
        description=DESCRIPTION[kind],
    )
    ramp = max(step_ms, int(dur * RAMP_FRACTION[kind]))
    return Fault(inc, kind, SEVERITY[level], np.asarray(hosts), weight, ramp)


def _cascade(rng, cfg, topo, parent: Fault, step_ms, seq, depth=1) -> list[Fault]:
    """Secondary dependency_degradation on each caller of the parent's root service."""
    out: list[Fault] = []
    p = 1.0 if parent.kind == "cascading_failure" else cfg.cascade_probability
    if depth > 2 or rng.random() >= p:
        return out
    pin = parent.incident
    for caller in topo.upstream(pin.targets[0]):
        delay = int(rng.integers(1, 4)) * step_ms
        start = pin.start_ms + delay
        end = max(start + step_ms, pin.end_ms + int(rng.integers(0, 3)) * step_ms)
        cool = max(step_ms, (pin.cooldown_end_ms - pin.end_ms))
        hosts = topo.hosts_of(caller)
        seq[0] += 1
        level = _LOWER[pin.level] if parent.kind != "cascading_failure" else pin.level
        inc = Incident(
            incident_id=f"{pin.incident_id.rsplit('-', 1)[0]}-{seq[0]:02d}",
            fault_id="dependency_degradation",
            level=level,
            targets=[caller],
            start_ms=start,
            end_ms=end,
            cooldown_end_ms=end + cool,
            root_cause=pin.root_cause,
            primary_incident_id=pin.incident_id,
            hosts=[topo.hosts[h] for h in hosts],
            region=pin.region,
            description=f"cascade: {caller} degraded by {pin.targets[0]} ({pin.fault_id})",
        )
        child = Fault(inc, "dependency_degradation", SEVERITY[level], hosts,
                      np.ones(len(hosts)), max(step_ms, (end - start) // 3))
        out.append(child)
        if depth < 2 and rng.random() < 0.5:
            out.extend(_cascade(rng, cfg, topo, child, step_ms, seq, depth + 1))
    return out


def plan_day(cfg: SynthConfig, topo: Topology, day: int) -> Plan:
    """Everything that starts on absolute day ``day`` (days since the epoch)."""
    rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(1, day)))
    step_ms = cfg.step_s * 1000
    day_start = day * 86_400_000
    faults: list[Fault] = []
    deploys: list[Deploy] = []
    seq = [0]
    for _ in range(int(rng.poisson(cfg.incidents_per_day))):
        if not cfg.incident_types:
            break
        kind = _choice(rng, cfg.incident_types)
        seq[0] += 1
        f = _new_fault(rng, cfg, topo, kind, day_start, step_ms, seq[0])
        faults.append(f)
        if kind == "configuration_mismatch":
            deploys.append(Deploy(f.incident.start_ms, f.incident.root_cause,
                                  f"v{day % 100}.{seq[0]}.0", bad=True))
        if kind in CASCADING_TYPES or (kind == "dependency_degradation" and rng.random() < 0.3):
            faults.extend(_cascade(rng, cfg, topo, f, step_ms, seq))
    # routine deploys in local business hours, rolled out host by host
    for i in range(int(rng.poisson(cfg.deploys_per_day))):
        svc = _choice(rng, topo.services)
        hour = rng.uniform(9, 17) - topo.utc_offset_h[topo.hosts_of(svc)[0]]
        t = day_start + int(hour * 3_600_000) // step_ms * step_ms
        deploys.append(Deploy(t, svc, f"v{day % 100}.{i}.{int(rng.integers(0, 9))}"))
    maintenance: list[Maintenance] = []
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    if weekday == cfg.maintenance_weekday:
        for region in topo.regions:
            off = cfg.region_utc_offset.get(region, 0.0)
            start = day_start + int((cfg.maintenance_hour_local - off) % 24 * 3_600_000)
            start = start // step_ms * step_ms
            end = start + max(step_ms, int(cfg.maintenance_hours * 3_600_000) // step_ms * step_ms)
            here = topo.hosts_in(region)
            # drain one host of each service present in the region
            drained = sorted({int(here[topo.host_service[here] == s][0])
                              for s in np.unique(topo.host_service[here])})
            maintenance.append(Maintenance(start, end, region, drained))
    return Plan(faults, deploys, maintenance)


def plan_run(cfg: SynthConfig, topo: Topology) -> Plan:
    first = cfg.start_ms // 86_400_000
    plans = [plan_day(cfg, topo, d) for d in range(first, first + cfg.days)]
    end_ms = cfg.start_ms + cfg.days * 86_400_000
    faults = [f for p in plans for f in p.faults]
    for f in faults:  # nothing runs past the end of the run
        inc = f.incident
        inc.cooldown_end_ms = min(inc.cooldown_end_ms, end_ms)
        inc.end_ms = min(inc.end_ms, inc.cooldown_end_ms)
    return Plan(
        faults=sorted(faults, key=lambda f: (f.incident.start_ms, f.incident.incident_id)),
        deploys=sorted((d for p in plans for d in p.deploys), key=lambda d: d.time_ms),
        maintenance=[m for p in plans for m in p.maintenance],
    )


def verify(fault: Fault, sums: list[float]) -> None:
    """Record the symptom metric before vs during the fault (the lab's ``verified`` check).

    ``sums`` = [sum before, count before, sum during, count during] over the fault's hosts,
    "before" being up to three hours before the start outside other incidents, and "during"
    the second half of the fault."""
    metric, sign = SYMPTOM_METRIC[fault.kind]
    inc = fault.incident
    if sums[1] == 0 or sums[3] == 0:
        inc.verified = None
        inc.verification = {"metric": metric, "note": "no clean baseline or window outside run"}
        return
    before, during = sums[0] / sums[1], sums[2] / sums[3]
    change = (during - before) / max(abs(before), 1e-9)
    inc.verified = bool(sign * change >= VERIFY_MIN_CHANGE)
    inc.verification = {"metric": metric, "before": round(before, 4), "during": round(during, 4),
                        "change": round(change, 4)}
