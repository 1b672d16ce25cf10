"""labels.parquet rules (phase windows, targets, markers, cascades) and the KPI table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from obslab.kpis import kpi_table
from obslab.labels import LABELS, evaluation_subset, label_events, phase_arrays
from obslab.ocsf import metrics_to_ocsf, spans_to_ocsf
from obslab.ocsf.flat import FLAT_METRIC, FLAT_SPAN
from obslab.truth import Incident

T0 = 1_760_000_000_000
T1 = 1_760_000_010_000
INC = Incident("inc-1", "latency_spike", "high", ["db"], T0 + 100, T0 + 200, T0 + 300, "db")
CASCADE = Incident("inc-2", "downstream_timeout", "medium", ["web-api"], T0 + 150, T0 + 250, T0 + 260, "db",
                   primary_incident_id="inc-1")


def test_phase_windows_and_targets():
    times = pa.array([T0 + 99, T0 + 100, T0 + 199, T0 + 200, T0 + 299, T0 + 300, T0 + 150], pa.int64())
    services = pa.array(["db"] * 6 + ["cache"])
    phase, fault, inc, root = phase_arrays(times, services, [INC])
    assert phase.to_pylist() == ["normal", "fault", "fault", "cooldown", "cooldown", "normal", "normal"]
    assert fault.to_pylist()[1] == "latency_spike" and fault.to_pylist()[0] is None
    assert inc.to_pylist()[3] == "inc-1" and root.to_pylist()[2] == "db"


def test_cascade_secondary_labels_its_own_target():
    times = pa.array([T0 + 160, T0 + 160, T0 + 255], pa.int64())
    phase, fault, inc, root = phase_arrays(times, pa.array(["db", "web-api", "web-api"]), [CASCADE, INC])
    assert phase.to_pylist() == ["fault", "fault", "cooldown"]
    assert inc.to_pylist() == ["inc-1", "inc-2", "inc-2"]
    assert root.to_pylist() == ["db", "db", "db"]


def _spans(markers, start=T0 + 150):
    rows = [dict(time_ms=start + i, end_time_ms=T0 + 151 + i, duration_ms=1.0, trace_id="a" * 32,
                 span_id=f"{i:016x}", service="web-api", name="GET /", kind=2, marker_type=m) for i, m in enumerate(markers)]
    return pa.Table.from_pylist(rows, schema=FLAT_SPAN)


def test_markers_make_spans_anomalous_and_none_does_not():
    flat = _spans(["latency_spike", None, "none"])
    ocsf = spans_to_ocsf(flat, "t.jsonl")
    labels = label_events(ocsf, "traces", [INC], flat)
    assert labels.schema == LABELS
    assert labels.column("is_anomaly").to_pylist() == [True, False, False]
    row = labels.to_pylist()[0]
    assert row["fault_id"] == "latency_spike" and row["incident_id"] == "inc-1" and row["root_cause_service"] == "db"
    assert labels.column("uid").to_pylist() == pc.struct_field(ocsf.column("metadata"), "uid").to_pylist()


def test_marked_request_in_flight_after_the_revert_keeps_its_incident():
    """A span that started just after the fault was reverted (the request carried the marker)
    belongs to that fault's incident during its cooldown; another fault's marker does not."""
    flat = _spans(["latency_spike", "cpu_hog"], start=T0 + 250)  # after end (200), before cooldown end (300)
    labels = label_events(spans_to_ocsf(flat, "t.jsonl"), "traces", [INC], flat).to_pylist()
    assert [r["is_anomaly"] for r in labels] == [True, True]
    assert labels[0]["incident_id"] == "inc-1" and labels[0]["root_cause_service"] == "db"
    assert labels[1]["incident_id"] is None and labels[1]["fault_id"] == "cpu_hog"


def test_evaluation_subset_is_seeded_and_stratified():
    flat = _spans(["x"] * 30 + [None] * 70)
    labels = label_events(spans_to_ocsf(flat), "traces", [], flat)
    a = evaluation_subset(labels, n=20, seed=1)
    b = evaluation_subset(labels, n=20, seed=1)
    c = evaluation_subset(labels, n=20, seed=2)
    assert a.equals(b) and not a.equals(c)
    assert pc.sum(a.column("is_anomaly")).as_py() == 10 and a.num_rows == 20


def test_kpi_table_per_step_labels_and_rolling_windows():
    rows = []  # T1 is a multiple of the 15 s step, as Prometheus range timestamps are
    for i in range(80):  # 15 s steps, 20 minutes
        for svc in ("db", "web-api"):
            rows += [dict(time_ms=T1 + i * 15000, metric="cpu_pct", value=float(i % 4), service=svc),
                     dict(time_ms=T1 + i * 15000, metric="latency_p95_ms", value=10.0, service=svc),
                     dict(time_ms=T1 + i * 15000, metric="error_rate_pct", value=2.0, service=svc)]
    ocsf = metrics_to_ocsf(pa.Table.from_pylist(rows, schema=FLAT_METRIC))
    inc = Incident("i", "cpu_saturation", "high", ["db"], T1 + 300_000, T1 + 450_000, T1 + 600_000, "db")
    df = kpi_table(ocsf, [inc])
    assert len(df) == 160
    db = df[df.service == "db"].reset_index(drop=True)
    assert db.loc[19, "phase"] == "normal" and db.loc[20, "phase"] == "fault" and db.loc[30, "phase"] == "cooldown"
    assert db["is_anomaly"].sum() == 10 and not df[df.service == "web-api"]["is_anomaly"].any()
    assert db.loc[40, "availability_pct"] == pytest.approx(98.0)
    assert db.loc[40, "p95_latency_ms"] == 10.0
    # 5 minutes of 15 s steps = 20 values cycling 0..3: mean 1.5
    assert db.loc[40, "cpu_pct_mean_5m"] == pytest.approx(1.5)
    assert db.loc[40, "cpu_pct_std_15m"] > 0


def test_kpi_table_without_known_metrics_is_an_error():
    ocsf = metrics_to_ocsf(pa.Table.from_pylist([dict(time_ms=T0, metric="nope", value=1.0)], schema=FLAT_METRIC))
    with pytest.raises(ValueError, match="KPI"):
        kpi_table(ocsf)
