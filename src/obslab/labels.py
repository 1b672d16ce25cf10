"""Ground truth per event: ``labels.parquet`` (the only place labels live).

An event is labelled from the incident catalog (``incidents.json``) by its time and service
with :func:`obslab.truth.phases` (``fault`` while an incident targeting its service is active,
``cooldown`` until ``cooldown_end``, else ``normal``; tie breaks documented there);
``is_anomaly`` is true in the fault phase. Spans that carry request markers (``marker_*`` of the flat table, copied
from ``x-anomaly-*`` headers / ``anomaly.*`` attributes) are anomalous whatever their service:
the marker names the fault, and the incident active at that time (if any) gives the ids.
Computed with ``pyarrow.compute`` over whole columns (incidents are few, events many).
"""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.compute as pc

from obslab.truth import PHASES, Incident, assign, precedence

__all__ = ["LABELS", "label_events", "evaluation_subset", "event_keys", "phase_arrays", "align_markers",
           "label_rows", "markers_from_otlp", "join_labels", "split_by_label", "flatten_for_csv"]

LABELS = pa.schema(
    [
        pa.field("uid", pa.string(), nullable=False),
        pa.field("signal", pa.string(), nullable=False),
        pa.field("time", pa.int64(), nullable=False),
        pa.field("service", pa.string()),
        pa.field("is_anomaly", pa.bool_(), nullable=False),
        pa.field("fault_id", pa.string()),
        pa.field("incident_id", pa.string()),
        pa.field("phase", pa.string(), nullable=False),  # normal | fault | cooldown
        pa.field("root_cause_service", pa.string()),
    ]
)


def event_keys(ocsf: pa.Table) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(uid, time, service) of OCSF events written by :mod:`obslab.ocsf`."""
    uid = pc.struct_field(ocsf.column("metadata"), "uid")
    service = pc.struct_field(ocsf.column("unmapped"), "service")
    return _flat(uid), _flat(ocsf.column("time")), _flat(service)


def _flat(a):
    return a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a


def phase_arrays(time: pa.Array, service: pa.Array, incidents: list[Incident] | None):
    """(phase, fault_id, incident_id, root_cause_service) Arrow columns per (time ms, service)
    row, by :func:`obslab.truth.phases` (its rules and tie breaks)."""
    code, which, ordered = assign(time, incidents or [], service=_flat(service))
    phase = pc.take(pa.array(PHASES, pa.string()), pa.array(code))
    idx = pa.array(which, mask=which < 0)  # no incident: null

    def pick(attr):
        return pc.take(pa.array([getattr(i, attr) for i in ordered], pa.string()), idx)

    return phase, pick("fault_id"), pick("incident_id"), pick("root_cause")


def label_events(ocsf: pa.Table, signal: str, incidents: list[Incident] | None = None,
                 markers: pa.Table | pa.RecordBatch | None = None) -> pa.Table:
    """LABELS rows for every event of ``ocsf`` (same order).

    ``markers``: the flat span batch the events came from (its ``marker_*`` columns), same rows.
    """
    uid, time, service = event_keys(ocsf)
    return label_rows(uid, time, service, signal, incidents, markers)


def label_rows(uid, time, service, signal: str, incidents=None, markers=None) -> pa.Table:
    """LABELS rows from the (uid, time ms, service) columns of events (see label_events)."""
    uid, time, service = _flat(uid), _flat(time), _flat(service)
    n = len(uid)
    incidents = precedence(incidents)
    none = pa.nulls(n, pa.string())
    phase, fault_id, incident_id, root = phase_arrays(time, service, incidents)
    is_anomaly = pc.equal(phase, "fault")
    if markers is not None and "marker_type" in markers.column_names:
        mtype = _flat(markers.column("marker_type"))
        mlabel = _flat(markers.column("marker_label"))
        mroot = _flat(markers.column("marker_root_cause"))
        unmarked = pa.array(["", "none", "normal", "false", "0"])
        mtype = pc.if_else(pc.is_in(pc.utf8_lower(mtype), value_set=unmarked), pa.scalar(None, pa.string()), mtype)
        mlabel = pc.if_else(pc.is_in(pc.utf8_lower(mlabel), value_set=unmarked), pa.scalar(None, pa.string()), mlabel)
        marked = pc.or_(pc.is_valid(mtype), pc.is_valid(mlabel))
        # incident active at the span's time, any service (markers travel with the request);
        # then, for requests still in flight when the fault was reverted, the incident of the
        # marker's own fault whose cooldown covers the span
        marker_fault = pc.coalesce(mtype, mlabel)
        by_time_id, by_time_root = none, none
        for window_end in ("end_ms", "cooldown_end_ms"):
            for inc in incidents:
                active = pc.and_(pc.greater_equal(time, inc.start_ms), pc.less(time, getattr(inc, window_end)))
                if window_end == "cooldown_end_ms":
                    active = pc.and_(active, pc.fill_null(pc.equal(marker_fault, inc.fault_id), False))
                free = pc.is_null(by_time_id)
                by_time_id = pc.if_else(pc.and_(active, free), inc.incident_id, by_time_id)
                by_time_root = pc.if_else(pc.and_(active, free), inc.root_cause, by_time_root)
        is_anomaly = pc.or_(is_anomaly, marked)
        phase = pc.if_else(marked, "fault", phase)
        fault_id = pc.if_else(marked, marker_fault, fault_id)
        incident_id = pc.if_else(marked, pc.coalesce(incident_id, by_time_id), incident_id)
        root = pc.if_else(marked, pc.coalesce(mroot, root, by_time_root), root)
    return pa.Table.from_arrays(
        [uid, pa.array([signal] * n, pa.string()), time, service, is_anomaly, fault_id, incident_id, phase, root],
        schema=LABELS,
    )


def evaluation_subset(labels: pa.Table, n: int = 2000, anomaly_share: float = 0.5, seed: int = 0) -> pa.Table:
    """A seeded, stratified subset: up to ``anomaly_share`` of ``n`` anomalous events, rest normal."""
    is_anom = labels.column("is_anomaly").to_pylist()
    anom = [i for i, a in enumerate(is_anom) if a]
    norm = [i for i, a in enumerate(is_anom) if not a]
    rng = random.Random(seed)
    k_anom = min(len(anom), int(round(n * anomaly_share)))
    k_norm = min(len(norm), n - k_anom)
    idx = sorted(rng.sample(anom, k_anom) + rng.sample(norm, k_norm))
    return labels.take(pa.array(idx, pa.int64()))


MARKER_COLUMNS = ("marker_type", "marker_label", "marker_root_cause")


def align_markers(uids: pa.Array, marker_uids: pa.Array, markers: pa.Table) -> pa.Table:
    """Marker columns of ``markers`` (keyed by ``marker_uids``) in the order of ``uids``."""
    idx = pc.index_in(_flat(uids), value_set=_flat(marker_uids))
    return pa.table({c: pc.take(_flat(markers.column(c)), idx) for c in MARKER_COLUMNS})


def markers_from_otlp(trace_file, source: str | None = None) -> tuple[pa.Array, pa.Table]:
    """(uids, marker columns) of the marked spans of a raw OTLP file, uids as the converter makes them."""
    from pathlib import Path

    from obslab.ocsf.mapping import source_tag
    from obslab.ocsf.otlp import read_otlp

    tag = source_tag(source or Path(trace_file).name)
    uids, parts = [], []
    for batch in read_otlp(trace_file):
        t = pa.Table.from_batches([batch])
        t = t.filter(pc.or_(pc.is_valid(t.column("marker_type")), pc.is_valid(t.column("marker_label"))))
        if t.num_rows:
            uids.append(pc.binary_join_element_wise(tag, t.column("trace_id"), t.column("span_id"), "-"))
            parts.append(t.select(list(MARKER_COLUMNS)))
    if not parts:
        return pa.array([], pa.string()), pa.table({c: pa.array([], pa.string()) for c in MARKER_COLUMNS})
    return pa.chunked_array(uids).combine_chunks(), pa.concat_tables(parts)


def join_labels(events: pa.Table, labels: pa.Table) -> pa.Table:
    """``events`` with the label columns of their uid appended (unlabelled: normal)."""
    uid = pc.struct_field(events.column("metadata"), "uid")
    idx = pc.index_in(_flat(uid), value_set=_flat(labels.column("uid")))
    out = events
    for name in ("is_anomaly", "phase", "fault_id", "incident_id", "root_cause_service"):
        col = pc.take(_flat(labels.column(name)), idx)
        if name == "is_anomaly":
            col = pc.fill_null(col, False)
        elif name == "phase":
            col = pc.fill_null(col, "normal")
        out = out.append_column(f"label_{name}", col)
    return out


def split_by_label(labelled: pa.Table) -> dict[str, pa.Table]:
    """{"all", "normal", "anomalous", "fault_<id>" ...} from a :func:`join_labels` table."""
    anom = labelled.column("label_is_anomaly")
    parts = {"all": labelled, "normal": labelled.filter(pc.invert(anom)), "anomalous": labelled.filter(anom)}
    faults = parts["anomalous"].column("label_fault_id")
    for fid in sorted(v for v in pc.unique(faults).to_pylist() if v is not None):
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in fid)
        parts[f"fault_{safe}"] = parts["anomalous"].filter(pc.equal(faults, fid))
    return parts


def flatten_for_csv(table: pa.Table) -> pa.Table:
    """Nested OCSF structs as dotted columns and lists as JSON text, for CSV writers."""
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    for i, f in enumerate(table.schema):
        if pa.types.is_list(f.type) or pa.types.is_map(f.type):  # (maps as JSON objects)
            import json

            values = table.column(i).to_pylist(maps_as_pydicts="lossy")
            text = pa.array([None if v is None else json.dumps(v) for v in values], pa.string())
            table = table.set_column(i, pa.field(f.name, pa.string()), text)
    return table
