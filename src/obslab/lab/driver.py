"""Drive a fault plan against a running lab: inject at the planned offsets, record the truth.

Used by the native runner and, on its own, against the Compose stack (``obslab lab scenario``):
all it needs is the lab's Redis (fault flags) and, for verification, its Prometheus.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from obslab import prom
from obslab.lab import scenario
from obslab.truth import Incident

__all__ = ["PlanDriver", "drive_external"]


def _now_ms() -> int:
    return int(time.time() * 1000)


class PlanDriver:
    """Runs a :class:`scenario.Plan` from ``t0`` (epoch s); incidents are recorded at injection.

    ``on_event`` handles benign events (deploy, maintenance) in a thread of its own, so a slow
    restart never delays the next injection.
    """

    def __init__(self, redis_client, catalog: dict[str, scenario.FaultSpec], plan: scenario.Plan,
                 on_event: Callable[[scenario.Event], None] | None = None,
                 say: Callable[[str], None] | None = None, hosts: list[str] | None = None):
        self.redis = redis_client
        self.catalog = catalog
        self.plan = plan
        self.on_event = on_event
        self.say = say or (lambda text: None)
        self.hosts = hosts or []
        self.incidents: list[Incident] = []
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()

    def run(self, t0: float, until_s: float) -> None:
        """Blocking: perform every action whose offset is before ``until_s``; stop() ends it."""
        actions = sorted([(i.offset_s, 0, i) for i in self.plan.injections] +
                         [(e.offset_s, 1, e) for e in self.plan.events], key=lambda a: (a[0], a[1]))
        for offset, _, action in actions:
            if offset >= until_s:
                break
            if self.stopping.wait(max(0.0, t0 + offset - time.time())):
                return
            try:
                if isinstance(action, scenario.Injection):
                    self.inject(action)
                elif self.on_event is not None:
                    threading.Thread(target=self.on_event, args=(action,), daemon=True).start()
            except Exception as exc:  # one failed action must not end the run
                self.errors.append(f"scenario action at {offset:.0f} s failed: {exc}")

    def start(self, t0: float, until_s: float) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(t0, until_s), name="scenario", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.stopping.set()

    def inject(self, inj: scenario.Injection) -> Incident:
        start = _now_ms()
        scenario.inject(self.redis, inj)
        end = start + int(inj.duration_s * 1000)
        spec = self.catalog.get(inj.fault_id)
        inc = Incident(
            incident_id=inj.incident_id, fault_id=inj.fault_id, level=inj.level, targets=[inj.target],
            start_ms=start, end_ms=end, cooldown_end_ms=end + int(inj.cooldown_s * 1000),
            root_cause=self._root_of(inj), primary_incident_id=inj.primary_incident_id,
            hosts=list(self.hosts), description=spec.symptom if spec else "",
        )
        with self._lock:
            self.incidents.append(inc)
            self.incidents.extend(self._propagated(inc, spec))
        self.say(f"fault {inj.fault_id} ({inj.level}) on {inj.target} for {inj.duration_s:g} s")
        return inc

    @staticmethod
    def _propagated(primary: Incident, spec: scenario.FaultSpec | None) -> list[Incident]:
        """A catalog cascade (``cascade: {propagates_to: [...]}``) spreads along the call graph:
        one secondary incident per downstream service, linked to the primary, same window."""
        cascade = (spec.raw.get("cascade") if spec else None) or {}
        out = []
        for n, service in enumerate(cascade.get("propagates_to") or [], 1):
            out.append(Incident(
                incident_id=f"{primary.incident_id}-c{n}", fault_id=primary.fault_id, level=primary.level,
                targets=[service], start_ms=primary.start_ms, end_ms=primary.end_ms,
                cooldown_end_ms=primary.cooldown_end_ms, root_cause=primary.root_cause,
                primary_incident_id=primary.incident_id, hosts=list(primary.hosts),
                verification={"note": "secondary of a cascade: verified with its primary"},
                description=f"cascade from {primary.root_cause}: {cascade.get('path', '')}".strip(),
            ))
        return out

    def _root_of(self, inj: scenario.Injection) -> str:
        """A cascade's secondary incidents share the primary's root cause."""
        for i in self.incidents:
            if i.incident_id == inj.primary_incident_id:
                return i.root_cause
        return inj.target

    def active(self, now_ms: int | None = None) -> list[str]:
        now_ms = _now_ms() if now_ms is None else now_ms
        return [i.fault_id for i in self.incidents if i.start_ms <= now_ms < i.end_ms]

    def clear(self) -> None:
        """Remove the flags of this plan's faults (an interrupted run leaves nothing behind)."""
        for inj in self.plan.injections:
            try:
                self.redis.delete(scenario.fault_key(inj.fault_id))
            except Exception:  # Redis already gone: the TTL reverts the flag anyway
                pass

    def verify(self, prom_url: str, step: float) -> None:
        """Fill each incident's verified / verification from Prometheus (faults.yaml's rule)."""
        for inc in self.incidents:
            spec = self.catalog.get(inc.fault_id)
            if spec is None or inc.incident_id.rsplit("-", 1)[-1].startswith("c"):
                continue  # secondaries of a catalog cascade are verified with their primary
            try:
                inc.verified, inc.verification = scenario.verify_incident(prom_url, spec, inc, step=step)
            except (prom.PromError, OSError, ValueError) as exc:
                inc.verified, inc.verification = None, {"note": f"verification failed: {exc}"}


def drive_external(redis_url: str, catalog: dict[str, scenario.FaultSpec], plan: scenario.Plan, duration_s: float,
                   out_dir, prometheus_url: str | None = None, step_s: float = 5.0, seed: int | None = None,
                   event_commands: dict[str, str] | None = None, say: Callable[[str], None] | None = None) -> dict:
    """Run a plan against a lab started elsewhere (the Compose stack) and write incidents.json.

    ``event_commands`` maps an event kind to a shell command template for it, e.g.
    ``{"deploy": "docker compose restart {service}"}``; kinds without a command are recorded
    as skipped. Returns {"incidents": [...], "events": [...], "errors": [...]}.
    """
    import shlex
    import subprocess
    import uuid
    from pathlib import Path

    import redis as redis_lib

    from obslab.truth import ms_to_iso, write_incidents

    say = say or (lambda text: None)
    client = redis_lib.Redis.from_url(redis_url, decode_responses=True, socket_timeout=5)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        raise scenario.ScenarioError(f"cannot reach the lab's Redis at {redis_url}: {exc}") from None
    events: list[dict] = []

    def on_event(ev: scenario.Event) -> None:
        template = (event_commands or {}).get(ev.kind)
        rec = {"kind": ev.kind, "service": ev.service, "start": ms_to_iso(_now_ms())}
        if not template:
            rec["skipped"] = "no command configured for this event kind"
        else:
            cmd = template.format(service=ev.service or "", duration=ev.duration_s)
            r = subprocess.run(shlex.split(cmd), capture_output=True, text=True, check=False)
            rec.update(command=cmd, exit_code=r.returncode)
        rec["end"] = ms_to_iso(_now_ms())
        events.append(rec)

    driver = PlanDriver(client, catalog, plan, on_event=on_event, say=say)
    t0 = time.time()
    interrupted = False
    try:
        driver.start(t0, duration_s)
        while time.time() < t0 + duration_s:
            time.sleep(0.5)
    except KeyboardInterrupt:
        interrupted = True
        driver.stop()
        driver.clear()
    driver.stop()
    if prometheus_url and not interrupted:
        driver.verify(prometheus_url, step_s)
    run_id = f"scenario-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(t0))}-{uuid.uuid4().hex[:6]}"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_incidents(out / "incidents.json", driver.incidents, run_id=run_id, seed=seed, source="lab",
                    generated_at=ms_to_iso(_now_ms()),
                    config={"scenario": plan.name, "plan": plan.source, "events": events,
                            "start": ms_to_iso(int(t0 * 1000)), "interrupted": interrupted},
                    summary={"incidents": len(driver.incidents),
                             "verified": sum(1 for i in driver.incidents if i.verified),
                             "faults": sorted({i.fault_id for i in driver.incidents})})
    return {"incidents": driver.incidents, "events": events, "errors": driver.errors, "interrupted": interrupted}
