"""Features from small OCSF-shaped tables: values, windows, encoding, and the label denylist."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from obslab.features import (
    FeatureSpec,
    LeakError,
    check_features,
    event_labels,
    fit_features,
    log_events,
    trace_events,
    transform,
    window_features,
    window_labels,
)
from obslab.truth import Incident

T0 = 1_700_000_000_000 - (1_700_000_000_000 % 86_400_000)  # midnight UTC


def ocsf_spans(with_labels: bool = False) -> pa.Table:
    """Five HTTP/API activity events with the nested OCSF structure of the trace profile."""
    rows = [
        # time offset, uid, service, method, path, code, duration, parent, status_id, class
        (0, "e1", "web-api", "GET", "/orders/123", 200, 12, None, 1, 4002),
        (1_000, "e2", "web-api", "POST", "/orders", 503, 900, None, 2, 4002),
        (61_000, "e3", "auth-service", "POST", "/login", 200, 30, "aaaa", 1, 4002),
        (62_000, "e4", "web-api", "GET", "/orders/9f8e7d6c5b4a", 200, 20, None, 1, 4002),
        (62_500, "e5", "payment-worker", None, None, None, 55, "bbbb", 1, 6003),
    ]
    cols = {
        "time": pa.array([T0 + r[0] for r in rows], pa.int64()),
        "class_uid": pa.array([r[9] for r in rows], pa.int64()),
        "status_id": pa.array([r[8] for r in rows], pa.int32()),
        "duration": pa.array([r[6] for r in rows], pa.int64()),
        "metadata": pa.StructArray.from_arrays([pa.array([r[1] for r in rows])], ["uid"]),
        "http_request": pa.StructArray.from_arrays(
            [pa.array([r[3] for r in rows], pa.string()),
             pa.StructArray.from_arrays([pa.array([r[4] for r in rows], pa.string())], ["path"])],
            ["http_method", "url"],
        ),
        "http_response": pa.StructArray.from_arrays([pa.array([r[5] for r in rows], pa.int32())], ["code"]),
        "trace": pa.StructArray.from_arrays(
            [pa.array([f"t{i}" for i in range(len(rows))]),
             pa.StructArray.from_arrays(
                 [pa.array([f"s{i}" for i in range(len(rows))]),
                  pa.array([r[7] for r in rows], pa.string()),
                  pa.array(["op"] * len(rows)),
                  pa.StructArray.from_arrays([pa.array([r[2] for r in rows])], ["name"])],
                 ["uid", "parent_uid", "operation", "service"])],
            ["uid", "span"],
        ),
    }
    if with_labels:
        cols["is_anomaly"] = pa.array([False, True, False, False, True])
        cols["unmapped"] = pa.StructArray.from_arrays(
            [pa.array([None, "latency_spike", None, None, "error_spike"])], ["marker_type"])
    return pa.table(cols)


def ocsf_logs() -> pa.Table:
    return pa.table({
        "time": pa.array([T0 + 500, T0 + 700, T0 + 61_000], pa.int64()),
        "class_uid": pa.array([4002, 6008, 0], pa.int64()),
        "severity_id": pa.array([1, 4, 2], pa.int32()),
        "message": pa.array(["GET /orders 200", "boom: db down", "slow"]),
        "metadata": pa.StructArray.from_arrays([pa.array(["l1", "l2", "l3"])], ["uid"]),
        "service": pa.StructArray.from_arrays([pa.array(["web-api", "web-api", "auth-service"])], ["name"]),
        "trace": pa.StructArray.from_arrays([pa.array(["t0", None, None])], ["uid"]),
    })


def ocsf_metrics() -> pa.Table:
    return pa.table({
        "time": pa.array([T0, T0 + 30_000, T0, T0 + 60_000], pa.int64()),
        "metadata": pa.StructArray.from_arrays([pa.array(["m1", "m2", "m3", "m4"])], ["uid"]),
        "service": pa.StructArray.from_arrays(
            [pa.array(["web-api", "web-api", None, None], pa.string())], ["name"]),
        "metric": pa.StructArray.from_arrays(
            [pa.array(["cpu_pct", "cpu_pct", "redis hit ratio", "redis hit ratio"]),
             pa.array([10.0, 30.0, 0.9, float("nan")])], ["name", "value"]),
    })


def test_trace_events_reads_nested_ocsf():
    ev = trace_events(ocsf_spans())
    assert list(ev["uid"]) == ["e1", "e2", "e3", "e4", "e5"]
    assert list(ev["service"]) == ["web-api", "web-api", "auth-service", "web-api", "payment-worker"]
    assert list(ev["duration_ms"]) == [12, 900, 30, 20, 55]
    assert list(ev["status_class"]) == ["2xx", "5xx", "2xx", "2xx", "none"]
    assert list(ev["is_error"]) == [0, 1, 0, 0, 0]
    assert list(ev["is_root"]) == [1, 1, 0, 1, 0]
    # ids in paths collapse so every order is the same route
    assert list(ev["route"]) == ["/orders/:id", "/orders", "/login", "/orders/:id", "none"]
    assert list(ev["class_uid"]) == ["4002", "4002", "4002", "4002", "6003"]
    assert ev["hour_sin"].iloc[0] == pytest.approx(0.0) and ev["hour_cos"].iloc[0] == pytest.approx(1.0)


def test_log_events():
    ev = log_events(ocsf_logs())
    assert list(ev["is_error"]) == [0, 1, 0]
    assert list(ev["has_trace"]) == [1, 0, 0]
    assert list(ev["msg_len"]) == [15, 13, 4]
    assert list(ev["service"]) == ["web-api", "web-api", "auth-service"]


def test_builders_reject_tables_without_time():
    with pytest.raises(ValueError, match="no time column"):
        trace_events(pa.table({"x": [1, 2]}))


def test_window_features_counts_latency_metrics():
    w = window_features(ocsf_spans(), ocsf_logs(), ocsf_metrics(), window_ms=60_000)
    # 3 services x 2 windows: every (service, window) pair exists, even without events
    assert len(w) == 6
    w = w.set_index(["service", "window_start_ms"])
    first = w.loc[("web-api", T0)]
    assert first["req_count"] == 2 and first["err_count"] == 1 and first["err_rate"] == 0.5
    assert first["lat_max"] == 900 and first["lat_p50"] == pytest.approx(456)
    assert first["log_count"] == 2 and first["log_error_count"] == 1
    assert first["m_cpu_pct"] == pytest.approx(20.0)
    # a metric without service is shared context for every service
    assert w.loc[("auth-service", T0), "m_redis_hit_ratio_shared"] == pytest.approx(0.9)
    quiet = w.loc[("auth-service", T0)]
    assert quiet["req_count"] == 0 and np.isnan(quiet["lat_p95"])
    assert w.loc[("auth-service", T0 + 60_000), "log_warn_count"] == 1


def test_fit_transform_shapes_and_training_only_statistics():
    ev = trace_events(ocsf_spans())
    train, test = ev.iloc[:3], ev.iloc[3:]
    spec = fit_features(train, numeric=["duration_ms", "is_error"], categorical=["service", "route"])
    assert spec.vocab["service"] == ["web-api", "auth-service"]  # by frequency, then name
    assert spec.cardinalities == [2, 3]
    x_num, x_cat = transform(spec, test)
    assert x_num.dtype == np.float32 and x_cat.dtype == np.int64
    assert x_num.shape == (2, 2) and x_cat.shape == (2, 2)
    # payment-worker never appeared in training: index 0 (unseen)
    assert x_cat[:, 0].tolist() == [1, 0]
    assert spec.center["duration_ms"] == pytest.approx(np.median([12, 900, 30]))
    again = fit_features(train, numeric=["duration_ms", "is_error"], categorical=["service", "route"])
    assert again == spec  # same data, same spec
    assert FeatureSpec.from_dict(spec.to_dict()) == spec


def test_transform_fills_missing_and_clips():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "c": ["x", "y", "x", "x"]})
    spec = fit_features(train, clip=5.0)
    assert spec.numeric == ["a"] and spec.categorical == ["c"]
    x_num, x_cat = transform(spec, pd.DataFrame({"a": [np.nan, 1e9, np.inf], "c": [None, "y", "z"]}))
    assert x_num[0, 0] == pytest.approx(0.0)  # median fill lands on the centre
    assert x_num[1, 0] == 5.0  # clipped
    assert x_num[2, 0] == pytest.approx(0.0)  # inf treated as missing
    assert x_cat[:, 0].tolist() == [0, 2, 0]


def test_heavy_tails_are_log_compressed():
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"lat": rng.lognormal(3, 1.5, 2000), "sym": rng.normal(size=2000)})
    spec = fit_features(train)
    assert spec.log1p == ["lat"]


def test_transform_names_missing_columns():
    spec = fit_features(pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(KeyError, match="'a'"):
        transform(spec, pd.DataFrame({"b": [1.0]}))


LABELISH = ["is_anomaly", "fault_id", "incident_id", "phase", "root_cause_service", "uid",
            "metadata.uid", "trace.uid", "trace.span.parent_uid", "marker_type", "labels",
            "unmapped.marker_type", "time", "time_ms", "window_start_ms", "x_anomaly_type",
            "primary_fault", "marker_label", "anomaly_score", "label"]


@pytest.mark.parametrize("name", LABELISH)
def test_denylist_refuses_labels_markers_ids(name):
    with pytest.raises(LeakError):
        check_features(["duration_ms", name])
    frame = pd.DataFrame({"duration_ms": [1.0, 2.0], name: [1, 0]})
    with pytest.raises(LeakError):
        fit_features(frame, numeric=["duration_ms", name], categorical=[])
    # default column choice silently leaves it out
    assert name not in fit_features(frame).numeric + fit_features(frame).categorical


def test_denylist_keeps_legitimate_columns():
    check_features(["duration_ms", "class_uid", "status_class", "service", "hour_sin", "m_cpu_pct",
                    "m_page_faults_rate", "m_db_pool_in_use"])


def test_spec_from_dict_refuses_a_tampered_spec():
    spec = fit_features(pd.DataFrame({"a": [1.0, 2.0]})).to_dict()
    spec["numeric"].append("is_anomaly")
    with pytest.raises(LeakError):
        FeatureSpec.from_dict(spec)


def test_label_columns_in_input_change_nothing():
    clean, dirty = trace_events(ocsf_spans()), trace_events(ocsf_spans(with_labels=True))
    pd.testing.assert_frame_equal(clean, dirty)
    assert not any("anomal" in c or "marker" in c for c in dirty.columns)
    spec = fit_features(dirty)
    assert set(spec.numeric + spec.categorical).isdisjoint({"uid", "time_ms", "signal"})


def test_event_labels_align_by_uid():
    ev = trace_events(ocsf_spans())
    labels = pa.table({"uid": ["e5", "e2", "zz"], "is_anomaly": [True, True, True],
                       "phase": ["fault", "fault", "fault"]})
    lab = event_labels(ev, labels)
    assert lab["is_anomaly"].tolist() == [False, True, False, False, True]
    assert lab["phase"].tolist() == ["normal", "fault", "normal", "normal", "fault"]


def test_window_labels_from_incidents():
    w = window_features(ocsf_spans(), window_ms=60_000)
    inc = Incident("i1", "latency_spike", "high", ["web-api"], T0 + 60_000, T0 + 90_000,
                   T0 + 200_000, "web-api")
    lab = window_labels(w, [inc], window_ms=60_000)
    hit = w[lab["is_anomaly"]]
    assert list(zip(hit["service"], hit["window_start_ms"])) == [("web-api", T0 + 60_000)]
    assert set(lab.loc[lab["is_anomaly"], "fault_id"]) == {"latency_spike"}


def test_load_from_a_dataset_folder(tmp_path):
    import pyarrow.parquet as pq

    from obslab.features import load_events, load_windows

    spans = ocsf_spans().append_column("unmapped", pa.StructArray.from_arrays(
        [pa.array(["server", "server", "server", "server", "client"]), pa.array([12.5, 900.0, 30.0, 20.0, 55.0])],
        ["kind", "duration_ms"]))
    pq.write_table(spans, tmp_path / "ocsf_traces.parquet")
    pq.write_table(ocsf_logs(), tmp_path / "ocsf_logs.parquet")
    ev = load_events("traces", tmp_path)
    assert list(ev["kind"]) == ["server"] * 4 + ["client"]
    assert ev["duration_ms"].iloc[0] == 12.5  # the precise float duration wins over the int one
    w = load_windows(tmp_path)  # no metrics file: windows from traces and logs only
    assert len(w) == 6 and not any(c.startswith("m_") for c in w.columns)
    with pytest.raises(FileNotFoundError):
        load_events("traces", tmp_path / "nowhere")


def test_window_rows_for_traced_services_infrastructure_as_shared_context():
    logs = pa.concat_tables([ocsf_logs(), pa.table({
        "time": pa.array([T0 + 100], pa.int64()), "class_uid": pa.array([0], pa.int64()),
        "severity_id": pa.array([1], pa.int32()), "message": pa.array(["ready"]),
        "metadata": pa.StructArray.from_arrays([pa.array(["l9"])], ["uid"]),
        "service": pa.StructArray.from_arrays([pa.array(["redis"])], ["name"]),
        "trace": pa.StructArray.from_arrays([pa.array([None], pa.string())], ["uid"])})])
    metrics = pa.table({
        "time": pa.array([T0, T0], pa.int64()),
        "service": pa.StructArray.from_arrays([pa.array(["redis", "web-api"])], ["name"]),
        "metric": pa.StructArray.from_arrays(
            [pa.array(["redis_ops_rate", "cpu_pct"]), pa.array([40.0, 5.0])], ["name", "value"])})
    w = window_features(ocsf_spans(), logs, metrics, window_ms=60_000, services="traced")
    assert set(w["service"]) == {"web-api", "auth-service", "payment-worker"}
    assert (w.loc[w["window_start_ms"] == T0, "m_redis_ops_rate_shared"] == 40.0).all()
    assert w.loc[(w["service"] == "web-api") & (w["window_start_ms"] == T0), "m_cpu_pct"].item() == 5.0
    everything = window_features(ocsf_spans(), logs, metrics, window_ms=60_000)  # "all"
    assert "redis" in set(everything["service"]) and "m_redis_ops_rate" in everything.columns
    only = window_features(ocsf_spans(), logs, metrics, window_ms=60_000, services=["web-api"])
    assert set(only["service"]) == {"web-api"} and len(only) == 2
