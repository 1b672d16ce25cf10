"""Ground truth: the incident catalog shared by the lab, the synthetic generator and labelling.

``incidents.json`` is ``{"run_id", "seed", "source", "generated_at", "config", "incidents": [...],
"summary": {...}}``; each incident is an :class:`Incident`. Times are ISO 8601 UTC strings in the
file and epoch milliseconds in code. ``phase`` of an event at time t with respect to an
incident: ``fault`` for start <= t < end, ``cooldown`` for end <= t < cooldown_end, else normal.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path


def ms_to_iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def iso_to_ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass
class Incident:
    incident_id: str
    fault_id: str  # an id from appendix-code/faults.yaml (lab) or a synthetic incident type
    level: str  # severity level name from the catalog (e.g. "low", "medium", "high")
    targets: list[str]  # affected service(s)
    start_ms: int
    end_ms: int
    cooldown_end_ms: int
    root_cause: str  # root-cause service
    primary_incident_id: str | None = None  # set on secondary incidents of a cascade
    hosts: list[str] = field(default_factory=list)  # affected hosts, where known
    region: str | None = None
    verified: bool | None = None  # the expected symptom was observed (None: not checked)
    verification: dict = field(default_factory=dict)  # measured before/after figures
    description: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        for key in ("start_ms", "end_ms", "cooldown_end_ms"):
            d[key.removesuffix("_ms")] = ms_to_iso(d.pop(key))
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Incident":
        d = dict(d)
        for key in ("start", "end", "cooldown_end"):
            if key in d:
                d[f"{key}_ms"] = iso_to_ms(d.pop(key))
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in known})


def write_incidents(path: str | os.PathLike, incidents: list[Incident], **header) -> None:
    doc = {**header, "incidents": [i.to_json() for i in incidents]}
    doc.setdefault("summary", {"incidents": len(incidents)})
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def read_incidents(path: str | os.PathLike) -> list[Incident]:
    doc = json.loads(Path(path).read_text())
    items = doc["incidents"] if isinstance(doc, dict) else doc
    return [Incident.from_json(d) for d in items]
