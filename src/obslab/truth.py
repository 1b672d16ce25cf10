"""Ground truth: the incident catalog shared by the lab, the synthetic generator and labelling.

``incidents.json`` is ``{"run_id", "seed", "source", "generated_at", "config", "incidents": [...],
"summary": {...}}``; each incident is an :class:`Incident`. Times are ISO 8601 UTC strings in the
file and epoch milliseconds in code.

:func:`phases` is the one incident -> phase mapping: the converters' event labels
(:mod:`obslab.labels`), the KPI table, the window truth of the features and the evaluation's
split all call it, so an event and the window holding it never disagree on the tie breaks.
The synthetic generator alone labels finer, per host (a partial outage leaves a service's
healthy hosts normal); its labels refine these (tests/test_synth_dataset.py checks that).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = ["Incident", "read_incidents", "write_incidents", "qualify", "ms_to_iso", "iso_to_ms", "NORMAL", "FAULT",
           "COOLDOWN", "PHASES", "precedence", "assign", "phases"]


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


def qualify(incidents: list[Incident], run: str | None) -> list[Incident]:
    """Copies with ids (and cascade links) as ``"<run>/<id>"``: the runs of a corpus share no id
    space. ``run=None`` leaves them as they are."""
    from dataclasses import replace

    if run is None:
        return list(incidents)
    return [replace(i, incident_id=f"{run}/{i.incident_id}",
                    primary_incident_id=i.primary_incident_id and f"{run}/{i.primary_incident_id}")
            for i in incidents]


def write_incidents(path: str | os.PathLike, incidents: list[Incident], **header) -> None:
    doc = {**header, "incidents": [i.to_json() for i in incidents]}
    doc.setdefault("summary", {"incidents": len(incidents)})
    Path(path).write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")


def read_incidents(path: str | os.PathLike) -> list[Incident]:
    doc = json.loads(Path(path).read_text())
    items = doc["incidents"] if isinstance(doc, dict) else doc
    return [Incident.from_json(d) for d in items]


# --- the incident -> phase mapping (the one place; labels, features and evaluation call it) ---

NORMAL, FAULT, COOLDOWN = "normal", "fault", "cooldown"
PHASES = (NORMAL, FAULT, COOLDOWN)  # phase codes 0, 1, 2 of :func:`assign`


def precedence(incidents) -> list[Incident]:
    """The order in which incidents claim rows: primaries before cascade secondaries, then by
    start, then by id (so the file order never decides)."""
    return sorted(incidents or [], key=lambda i: (i.primary_incident_id is not None, i.start_ms, i.incident_id))


def _codes(column) -> tuple[np.ndarray, list]:
    """Integer codes (-1: missing) and the distinct values of a service column (list, numpy,
    pandas or Arrow): incidents are matched on the few distinct names, not per row."""
    if type(column).__module__.startswith("pyarrow"):
        import pyarrow.compute as pc

        if hasattr(column, "combine_chunks"):
            column = column.combine_chunks()
        enc = pc.dictionary_encode(column)
        return enc.indices.fill_null(-1).to_numpy(zero_copy_only=False), enc.dictionary.to_pylist()
    import pandas as pd

    codes, values = pd.factorize(np.asarray(column, dtype=object))
    return codes, list(values)


def _as_int64(times_ms) -> np.ndarray:
    if hasattr(times_ms, "combine_chunks"):
        times_ms = times_ms.combine_chunks()
    if type(times_ms).__module__.startswith("pyarrow"):
        times_ms = times_ms.to_numpy(zero_copy_only=False)
    return np.asarray(times_ms, dtype=np.int64)


def assign(times_ms, incidents, *, window_ms: int = 0, service=None) -> tuple[np.ndarray, np.ndarray, list[Incident]]:
    """``(phase code int8, incident index int32, ordered incidents)`` per row.

    Codes index :data:`PHASES`; the index points into the returned list (-1: no incident).
    ``times_ms`` and ``service`` may be lists, numpy, pandas or Arrow. See :func:`phases`.
    """
    t0 = _as_int64(times_ms)
    t1 = t0 + max(int(window_ms), 1)  # half-open [t0, t1): an event is the instant [t, t + 1 ms)
    n = len(t0)
    if service is not None and len(service) != n:
        raise ValueError(f"{n} times but {len(service)} services")
    svc, names = _codes(service) if service is not None else (None, [])
    ordered = precedence(incidents)
    code = np.zeros(n, np.int8)
    which = np.full(n, -1, np.int32)
    for k, inc in enumerate(ordered):
        if svc is None or not inc.targets:
            hit = np.ones(n, bool)
        else:
            hit = np.isin(svc, [i for i, name in enumerate(names) if name in inc.targets])
        in_fault = hit & (t0 < inc.end_ms) & (t1 > inc.start_ms)
        in_cool = hit & (t0 < inc.cooldown_end_ms) & (t1 > inc.end_ms) & ~in_fault
        take_fault = in_fault & (code != 1)  # a fault beats any cooldown, whichever came first
        take_cool = in_cool & (code == 0)
        code[take_fault], code[take_cool] = 1, 2
        which[take_fault | take_cool] = k
    return code, which, ordered


def phases(times_ms, incidents, *, window_ms: int = 0, service=None) -> pd.DataFrame:
    """Truth per row: ``phase``, ``incident_id``, ``fault_id``, ``root_cause_service``, ``is_anomaly``.

    A row covers ``[t, t + window_ms)``; ``window_ms=0`` is an event, the instant ``t``.

    - ``fault`` when the row overlaps an incident's ``[start, end)``; else ``cooldown`` when it
      overlaps ``[end, cooldown_end)``; else ``normal``. Boundaries are half-open: an event at
      exactly ``start`` is fault, at ``end`` cooldown, at ``cooldown_end`` normal; a window that
      ends exactly at ``start`` is normal, one that starts exactly at ``end`` is cooldown.
    - An incident applies to rows of its ``targets`` only (its root cause is a target of its own
      primary incident); one without targets, or rows without a ``service``, see every incident.
    - Overlapping incidents: a fault phase beats a cooldown phase whatever the order; between
      incidents giving the same phase, :func:`precedence` decides. The ids come from the
      incident that gave the phase (cooldown rows carry their incident too).
    - ``is_anomaly`` is the fault phase; cooldown is neither normal nor anomalous (evaluation
      leaves it out).
    """
    import pandas as pd

    code, which, ordered = assign(times_ms, incidents, window_ms=window_ms, service=service)

    def pick(attr):
        values = np.array([getattr(i, attr) for i in ordered] + [None], dtype=object)
        return values[which]  # -1 takes the trailing None

    return pd.DataFrame({"phase": np.array(PHASES, dtype=object)[code], "incident_id": pick("incident_id"),
                         "fault_id": pick("fault_id"), "root_cause_service": pick("root_cause"),
                         "is_anomaly": code == 1})
