"""Fault scenarios: timelines, random schedules, injection through Redis flags, verification.

A scenario file (YAML) is an explicit timeline, run in order from the moment the load starts::

    name: three-faults
    timeline:
      - normal: 20s
      - fault: latency_spike        # an id from appendix-code/faults.yaml
        level: high                 # a level name of that fault (default: the first)
        target: web-api             # default: the catalog's target
        duration: 20s
        cooldown: 15s               # normal traffic after the fault, labelled "cooldown"
        cascade:                    # optional secondary incidents linked to this one
          - {fault: dependency_bottleneck, target: auth-service, after: 5s, duration: 10s}
      - deploy: auth-service        # benign: a graceful restart (lifecycle lines), no incident
      - maintenance: 15s            # benign: VACUUM ANALYZE + a Redis BGSAVE inside a window
      - normal: 10s

``random_schedule`` builds the same kind of plan from a seed. Injection sets the Redis key
``obslab:fault:<fault_id>`` to {"fault_id", "level", "incident_id", "params", "target"} with a
TTL equal to the duration, so the fault reverts by itself even if the runner dies.
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from obslab.truth import Incident

__all__ = [
    "ScenarioError", "FaultSpec", "Injection", "Event", "Plan", "parse_duration", "load_catalog",
    "load_scenario", "random_schedule", "no_fault_plan", "fault_key", "inject", "active_faults",
    "verify_incident",
]

KEY_PREFIX = "obslab:fault:"


class ScenarioError(ValueError):
    pass


def parse_duration(value) -> float:
    """'90s', '10m', '1h', '1m30s', '500ms' or a number of seconds -> seconds."""
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise ScenarioError(f"not a duration: {value!r} (use e.g. 90s, 10m, 1h)")
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(a) * scale[b] for a, b in parts)


def _read_yaml(path, what: str):
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"{what} {path} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{what} {path} is not valid YAML: {str(exc).splitlines()[0]}") from None


# --- the catalog -------------------------------------------------------------------------------

@dataclass
class FaultSpec:
    fault_id: str
    target: str
    levels: dict[str, dict]  # level name -> params
    symptom: str = ""
    verify: dict = field(default_factory=dict)
    mechanism: str = ""
    raw: dict = field(default_factory=dict)
    symptom_verify: list[dict] = field(default_factory=list)  # user-visible checks, all must hold
    family: str = ""  # the group the book reports per (database, dependency, contextual, ...)
    kind: str = "kpi"  # kpi: how much changes; contextual: what happens changes

    @property
    def targets(self) -> set[str]:
        """Services a scenario may aim this fault at: the ones whose code reads its flag."""
        return {self.target} | set(self.raw.get("targets") or [])

    def params(self, level: str) -> dict:
        if level not in self.levels:
            raise ScenarioError(f"fault {self.fault_id}: unknown level {level!r} (have {sorted(self.levels)})")
        return dict(self.levels[level] or {})

    @property
    def default_level(self) -> str:
        return next(iter(self.levels))


def _levels(raw) -> dict[str, dict]:
    if isinstance(raw, dict):
        return {str(k): (v.get("params", v) if isinstance(v, dict) else {"value": v}) for k, v in raw.items()}
    out = {}
    for item in raw or []:
        if isinstance(item, str):
            out[item] = {}
        else:
            name = item.get("name") or item.get("level")
            out[str(name)] = dict(item.get("params") or {k: v for k, v in item.items() if k not in ("name", "level")})
    return out


def load_catalog(path: str | os.PathLike) -> dict[str, FaultSpec]:
    """faults.yaml: a list of faults (top level or under ``faults:``), or a mapping id -> fault."""
    doc = _read_yaml(path, "fault catalog")
    items = doc.get("faults", doc) if isinstance(doc, dict) else doc
    if isinstance(items, dict):
        items = [{"id": k, **v} for k, v in items.items()]
    catalog = {}
    for item in items or []:
        fid = item.get("id") or item.get("fault_id")
        if not fid:
            raise ScenarioError(f"{path}: a fault without id: {item!r}")
        target = item.get("target") or item.get("service") or ""
        if isinstance(target, list):
            target = target[0]
        verify = item.get("verify") or item.get("verification") or {}
        symptom_verify = item.get("symptom_verify") or []
        if isinstance(symptom_verify, dict):
            symptom_verify = [symptom_verify]
        catalog[fid] = FaultSpec(
            fault_id=fid, target=str(target), levels=_levels(item.get("levels")) or {"default": {}},
            symptom=str(item.get("symptom", "")), verify=verify if isinstance(verify, dict) else {"rule": verify},
            mechanism=str(item.get("mechanism", "")), raw=item, symptom_verify=list(symptom_verify),
            family=str(item.get("family", "")), kind=str(item.get("kind", "kpi")),
        )
    return catalog


# --- plans -------------------------------------------------------------------------------------

@dataclass
class Injection:
    offset_s: float  # from the start of the load
    fault_id: str
    level: str
    target: str
    duration_s: float
    cooldown_s: float
    incident_id: str
    primary_incident_id: str | None = None
    params: dict = field(default_factory=dict)


@dataclass
class Event:
    """A benign normal-period event: ``deploy`` (graceful restart) or ``maintenance`` (window)."""

    offset_s: float
    kind: str
    service: str | None = None
    duration_s: float = 0.0


@dataclass
class Plan:
    name: str
    injections: list[Injection]
    events: list[Event]
    length_s: float  # where the timeline ends (the run may be longer: normal traffic after)
    source: dict = field(default_factory=dict)


def _fault(catalog: dict[str, FaultSpec], fid: str) -> FaultSpec:
    if fid not in catalog:
        raise ScenarioError(f"unknown fault {fid!r}; faults.yaml has: {', '.join(sorted(catalog))}")
    return catalog[fid]


def _target(spec: FaultSpec, step: dict, path) -> str:
    """The step's target, refused when no service implements the fault there (it would do nothing)."""
    target = str(step.get("target") or spec.target)
    if target not in spec.targets:
        raise ScenarioError(f"{path}: fault {spec.fault_id} cannot target {target!r}: it is implemented by "
                            f"{', '.join(sorted(spec.targets))} (faults.yaml)")
    return target


def load_scenario(path: str | os.PathLike, catalog: dict[str, FaultSpec]) -> Plan:
    doc = _read_yaml(path, "scenario") or {}
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path}: a scenario is a mapping with a 'timeline:' list")
    steps = doc.get("timeline")
    if not isinstance(steps, list):
        raise ScenarioError(f"{path}: a scenario needs a 'timeline:' list")
    t = 0.0
    injections: list[Injection] = []
    events: list[Event] = []
    for n, step in enumerate(steps, 1):
        if not isinstance(step, dict):
            raise ScenarioError(f"{path}: timeline step {n} is not a mapping: {step!r}")
        if "normal" in step:
            t += parse_duration(step["normal"])
        elif "maintenance" in step:
            d = parse_duration(step["maintenance"])
            events.append(Event(t, "maintenance", step.get("service"), d))
            t += d
        elif "deploy" in step:
            events.append(Event(t, "deploy", str(step["deploy"])))
        elif "fault" in step:
            spec = _fault(catalog, step["fault"])
            level = str(step.get("level", spec.default_level))
            duration = parse_duration(step.get("duration", 20))
            cooldown = parse_duration(step.get("cooldown", 0))
            primary = Injection(t, spec.fault_id, level, _target(spec, step, path), duration,
                                cooldown, f"inc-{len(injections) + 1:03d}", params=spec.params(level))
            injections.append(primary)
            for sec in step.get("cascade") or []:
                sspec = _fault(catalog, sec["fault"])
                slevel = str(sec.get("level", sspec.default_level))
                after = parse_duration(sec.get("after", 0))
                sdur = parse_duration(sec.get("duration", max(duration - after, 1)))
                injections.append(Injection(
                    t + after, sspec.fault_id, slevel, _target(sspec, sec, path), sdur,
                    max(0.0, t + duration + cooldown - (t + after + sdur)), f"inc-{len(injections) + 1:03d}",
                    primary_incident_id=primary.incident_id, params=sspec.params(slevel)))
            t += duration + cooldown
        else:
            raise ScenarioError(f"{path}: step {n} must be one of normal/fault/deploy/maintenance: {step!r}")
    return Plan(str(doc.get("name") or Path(path).stem), injections, events, t,
                source={"scenario": str(path), "doc": doc})


def random_schedule(catalog: dict[str, FaultSpec], seed: int, run_s: float, interval_s: float = 60.0,
                    min_duration_s: float = 15.0, max_duration_s: float = 45.0, cooldown_s: float = 15.0,
                    levels: list[str] | None = None, max_concurrency: int = 1, faults: list[str] | None = None,
                    warmup_s: float = 20.0, deploy_every_s: float = 0.0, maintenance_every_s: float = 0.0,
                    maintenance_s: float = 30.0) -> Plan:
    """Faults at exponential gaps (mean ``interval_s``) after a warm-up, the same for one seed.

    At most ``max_concurrency`` faults are active at once, and one fault id never overlaps itself
    (its Redis key is unique). Deploys and maintenance windows, if asked, fall in quiet gaps.
    """
    rng = random.Random(seed)
    ids = sorted(faults or catalog)
    for fid in ids:
        _fault(catalog, fid)
    injections: list[Injection] = []
    t = warmup_s
    while True:
        t += rng.expovariate(1.0 / interval_s) if interval_s > 0 else 0
        fid = rng.choice(ids)
        spec = catalog[fid]
        allowed = [lv for lv in spec.levels if not levels or lv in levels] or [spec.default_level]
        level = rng.choice(allowed)
        duration = round(rng.uniform(min_duration_s, max_duration_s), 1)
        if t + duration + cooldown_s > run_s:
            break
        busy = [i for i in injections if i.offset_s <= t < i.offset_s + i.duration_s + i.cooldown_s]
        if len(busy) >= max_concurrency or any(i.fault_id == fid for i in busy):
            t = min(i.offset_s + i.duration_s + i.cooldown_s for i in busy)
            continue
        injections.append(Injection(round(t, 1), fid, level, spec.target, duration, cooldown_s,
                                    f"inc-{len(injections) + 1:03d}", params=spec.params(level)))
        if max_concurrency == 1:
            t += duration + cooldown_s
    events = []

    def quiet(lo: float, hi: float) -> bool:  # no fault (or its cooldown) overlaps [lo, hi]
        return not any(i.offset_s - 5 <= hi and lo < i.offset_s + i.duration_s + i.cooldown_s for i in injections)

    if deploy_every_s > 0:
        services = sorted({s.target for s in catalog.values() if s.target})
        for k in range(1, int(run_s // deploy_every_s) + 1):
            if quiet(k * deploy_every_s, k * deploy_every_s + 10):
                events.append(Event(k * deploy_every_s, "deploy", rng.choice(services)))
    if maintenance_every_s > 0:
        for k in range(1, int(run_s // maintenance_every_s) + 1):
            at = k * maintenance_every_s
            if at + maintenance_s <= run_s and quiet(at, at + maintenance_s):
                events.append(Event(at, "maintenance", None, maintenance_s))
    events.sort(key=lambda e: e.offset_s)
    return Plan(f"random-seed{seed}", injections, events, run_s,
                source={"schedule": "random", "seed": seed, "interval_s": interval_s,
                        "min_duration_s": min_duration_s, "max_duration_s": max_duration_s,
                        "cooldown_s": cooldown_s, "levels": levels, "max_concurrency": max_concurrency,
                        "deploy_every_s": deploy_every_s, "maintenance_every_s": maintenance_every_s})


def no_fault_plan(run_s: float) -> Plan:
    return Plan("no-fault-control", [], [], run_s, source={"schedule": "none"})


# --- injection through Redis ---------------------------------------------------------------

def fault_key(fault_id: str) -> str:
    return KEY_PREFIX + fault_id


def inject(redis_client, inj: Injection) -> None:
    """Set the fault flag; its TTL is the duration, so the fault reverts by itself."""
    payload = {"fault_id": inj.fault_id, "level": inj.level, "incident_id": inj.incident_id,
               "params": inj.params, "target": inj.target}
    redis_client.set(fault_key(inj.fault_id), json.dumps(payload), px=max(1, int(inj.duration_s * 1000)))


def active_faults(redis_client) -> list[dict]:
    out = []
    for key in redis_client.scan_iter(match=KEY_PREFIX + "*", count=100):
        raw = redis_client.get(key)
        if raw:
            try:
                out.append(json.loads(raw))
            except ValueError:
                pass
    return out


# --- verification from Prometheus ------------------------------------------------------------

def _mean(values: list[float]) -> float | None:
    vals = [v for v in values if not math.isnan(v) and not math.isinf(v)]
    return sum(vals) / len(vals) if vals else None


def _window_values(prom_url: str, promql: str, start_s: float, end_s: float, step: float) -> list[float]:
    from obslab.prom import query_range

    if end_s <= start_s:
        return []
    resp = query_range(prom_url, promql, start_s, end_s, step)
    if resp.get("status") != "success":
        return []
    # several series (e.g. one per route): combine them per timestamp by the max
    by_t: dict[float, float] = {}
    for series in resp["data"]["result"]:
        for ts, v in series.get("values", []):
            try:
                fv = float(v)
            except ValueError:
                continue
            if not math.isnan(fv):
                by_t[ts] = max(by_t.get(ts, fv), fv)
    return [by_t[t] for t in sorted(by_t)]


def _range_window_s(promql: str) -> float:
    """The longest range selector ([15s], [1m]) in a query, in seconds (0 when none)."""
    return max((parse_duration(m) for m in re.findall(r"\[(\d+[smh])\]", promql)), default=0.0)


def _rule(v: dict, inc: Incident) -> dict | None:
    """One verification rule as {query, direction, factor, min_delta, ends_after}, or None.

    Accepted forms: ``{promql|query: ..., expect: increase|decrease, factor|ratio: 3,
    min_delta|min_increase: x}``, with ``{service}``/``{target}`` placeholders.
    """
    promql = v.get("promql") or v.get("query") or v.get("expr")
    if not promql:
        return None
    target = inc.targets[0] if inc.targets else ""
    promql = promql.replace("{service}", target).replace("{target}", target)
    direction = str(v.get("expect") or v.get("direction") or "increase").lower()
    return {
        "query": promql,
        "direction": "decrease" if direction.startswith(("dec", "down", "drop", "fall", "<")) else "increase",
        "factor": float(v.get("factor") or v.get("ratio") or v.get("min_ratio") or 1.5),
        "min_delta": float(v.get("min_delta") or v.get("min_increase") or v.get("delta") or 0.0),
        "ends_after": bool(v.get("ends_after", True)),
    }


def verify_rule(spec: FaultSpec, inc: Incident) -> dict | None:
    """The mechanism's verification rule of a fault (faults.yaml ``verify``), or None."""
    return _rule(spec.verify or {}, inc)


def _measure(prom_url: str, rule: dict, inc: Incident, step: float, baseline_s: float) -> tuple[bool, dict]:
    """Before, during and after figures of one rule; ok when the fault moved it as the rule says."""
    s, e, c = inc.start_ms / 1000, inc.end_ms / 1000, inc.cooldown_end_ms / 1000
    before = _window_values(prom_url, rule["query"], s - baseline_s, s, step)
    # skip the first scrape after the onset: rates need a sample inside the window
    during = _window_values(prom_url, rule["query"], s + step, e, step)
    # after the revert, a rate over [15s] still sees fault samples for 15 s: start later, or
    # (short cooldown) measure with range windows shortened to three scrapes
    lag = _range_window_s(rule["query"]) + step
    after_query = rule["query"]
    if e + lag >= c:
        after_query = re.sub(r"\[\d+[smh]\]", f"[{int(3 * step)}s]", rule["query"])
        lag = 4 * step
    after = _window_values(prom_url, after_query, e + lag, c, step)
    b, d, a = _mean(before), (max(during) if during else None), _mean(after)
    if rule["direction"] == "decrease":
        d = min(during) if during else None
    figures = {"query": rule["query"], "direction": rule["direction"], "factor": rule["factor"],
               "before": b, "during": d, "after": a, "samples": [len(before), len(during), len(after)]}
    if b is None or d is None:
        return False, {**figures, "note": "no data in the baseline or fault window"}
    if rule["direction"] == "increase":
        ok = d >= b * rule["factor"] and d - b >= rule["min_delta"] and d > b
    else:
        ok = d <= b / rule["factor"] and b - d >= rule["min_delta"] and d < b
    if ok and rule["ends_after"] and a is not None:
        figures["ended"] = abs(a - b) < abs(d - b) / 2  # back nearer the baseline than the peak
    return ok, figures


def verify_incident(prom_url: str, spec: FaultSpec, inc: Incident, step: float = 5.0,
                    baseline_s: float = 30.0) -> tuple[bool | None, dict]:
    """Measure the fault's mechanism rule and its user-visible symptom rules before, during and after.

    Verified when the mechanism figure moved by ``factor`` (and ``min_delta``) in the expected
    direction against the baseline just before the fault, and so did every ``symptom_verify``
    rule (what the catalog promises a user sees: latency, errors, throughput). A fault whose
    mechanism acted but whose symptom did not show is unverified (``symptom_verified`` false).
    ``ended`` says whether the figure came back nearer the baseline in the cooldown.
    """
    rule = verify_rule(spec, inc)
    if rule is None:
        return None, {"note": "faults.yaml has no Prometheus verification query for this fault"}
    ok, figures = _measure(prom_url, rule, inc, step, baseline_s)
    symptoms = [r for r in (_rule(v, inc) for v in spec.symptom_verify) if r is not None]
    if symptoms:
        checked = [_measure(prom_url, r, inc, step, baseline_s) for r in symptoms]
        figures["symptoms"] = [f for _, f in checked]
        figures["symptom_verified"] = all(o for o, _ in checked)
        figures["mechanism_verified"] = ok
        ok = ok and figures["symptom_verified"]
    return ok, figures
