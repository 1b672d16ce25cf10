"""Unit tests of the daemon's parts that need no model and no server."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from obslab.serve.auth import KeyChecker, load_keys
from obslab.serve.features import FEATURES, RECORD_INPUTS, encode, fit_spec, record_frame
from obslab.serve.ratelimit import RateLimiter
from obslab.serve.schemas import METRICS, FeedRequest
from obslab.serve.store import RecordStore, RollingWindow

KEY_A = "alpha-key-0123456789"
KEY_B = "bravo-key-0123456789"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limiter_never_admits_more_than_the_limit_in_any_60_s():
    clock = FakeClock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [0, 0, 0]
    assert limiter.acquire("k") == 60  # the oldest admitted request leaves the span in 60 s
    assert limiter.acquire("other") == 0  # per caller
    clock.now += 59.5
    assert limiter.acquire("k") == 1
    clock.now += 0.5
    assert limiter.acquire("k") == 0 and limiter.acquire("k") == 0 and limiter.acquire("k") == 0
    assert limiter.acquire("k") >= 1


def test_rate_limiter_60_per_minute_admits_60_in_59_s_not_118():
    """The issue's measurement: one request a second for 59 s after a burst of 60."""
    clock = FakeClock()
    limiter = RateLimiter(per_minute=60, clock=clock)
    admitted = 0
    for i in range(60 + 59):
        admitted += limiter.acquire("k") == 0
        if i >= 60:
            clock.now += 1.0
    assert admitted == 60
    # and any 60-second span holds at most 60 admitted requests over a long steady run
    times = []
    for _ in range(600):
        clock.now += 0.25
        if limiter.acquire("k") == 0:
            times.append(clock.now)
    times = np.array(times)
    assert max(np.searchsorted(times, t + 60, side="left") - i for i, t in enumerate(times)) <= 60


def test_keys_from_env_and_file(tmp_path):
    f = tmp_path / "keys"
    f.write_text(f"# ops\n{KEY_B}  # second\n\n")
    keys = load_keys(f, environ={"OBSLAB_API_KEYS": f"{KEY_A}, {KEY_B}"})
    assert keys == [KEY_A, KEY_B]
    with pytest.raises(ValueError, match="shorter"):
        load_keys(None, environ={"OBSLAB_API_KEYS": "short"})
    with pytest.raises(ValueError, match="no API keys"):
        KeyChecker([])
    checker = KeyChecker(keys)
    assert checker.identify(KEY_A) == "key0" and checker.identify(KEY_B) == "key1"
    assert checker.identify(KEY_A[:-1]) is None and checker.identify("") is None


def _record(**over):
    rec = {"timestamp": "2026-01-05T10:00:00Z", "server_name": "web-01", "status": "healthy"}
    rec.update({m: 1 for m in METRICS})
    rec.update(over)
    return rec


def test_schema_reports_every_bad_field_of_every_record():
    body = {"records": [_record(), _record(cpu_user_pct=101, status="sleepy"), _record(uptime_days=False, server_name="")]}
    with pytest.raises(ValidationError) as info:
        FeedRequest.model_validate(body)
    bad = {(e["loc"][1], e["loc"][-1]) for e in info.value.errors()}
    assert bad == {(1, "cpu_user_pct"), (1, "status"), (2, "uptime_days"), (2, "server_name")}


def test_record_inputs_use_the_librarys_feature_spec_and_leave_out_labels_and_uptime():
    from obslab.features import FeatureSpec, transform

    rng = np.random.default_rng(0)
    values = rng.uniform(0, 50, size=(200, len(METRICS)))
    ts = 1_767_607_200_000 + np.arange(200) * 300_000
    frame = record_frame(values, ts)
    assert list(frame.columns) == list(RECORD_INPUTS) and "status" not in RECORD_INPUTS
    assert "server_name" not in RECORD_INPUTS and "uptime_days" not in FEATURES
    quarter = record_frame(values[:2], np.array([0, 6 * 3_600_000]))
    assert np.allclose(quarter[["hour_sin", "hour_cos"]].to_numpy(), [[0, 1], [1, 0]], atol=1e-6)
    spec = fit_spec(values, ts)
    assert isinstance(spec, FeatureSpec) and spec.numeric == list(FEATURES) and spec.categorical == []
    assert "back_close_wait" in spec.log1p and "cpu_user_pct" not in spec.log1p
    x = encode(spec, values, ts)
    assert x.shape == (200, len(FEATURES)) and np.array_equal(x, transform(spec, frame)[0])  # one encoder of features
    assert np.isclose(np.median(x[:, FEATURES.index("cpu_user_pct")]), 0, atol=1e-5)  # centred on training rows


def _rows(n, server="a", t0=0):
    return [(t0 + i * 300_000, server, "healthy", *([float(i)] * len(METRICS))) for i in range(n)]


def test_store_persists_and_window_resumes(tmp_path):
    path = tmp_path / "state.sqlite"
    store = RecordStore(path)
    window = RollingWindow(5)
    window.extend(store.append(_rows(4, "a")))
    window.extend(store.append(_rows(3, "b", t0=10 * 300_000)))
    assert len(window) == 5 and store.total == 7 and store.tick == 7
    before = [(r.seq, r.server, r.values) for r in window.rows]
    store.close()

    again = RecordStore(path)
    resumed = RollingWindow(5)
    resumed.extend(again.newest(5))
    assert [(r.seq, r.server, r.values) for r in resumed.rows] == before
    assert again.total == 7 and again.tick == 7
    # a backfill of older timestamps is stored but does not advance the tick
    again.append(_rows(2, "c"))
    assert again.tick == 7 and again.total == 9


def test_window_tracks_latest_per_server_and_evicts():
    window = RollingWindow(3)
    store_rows = [  # seq, ts, server
        (1, 0, "a"), (2, 0, "b"), (3, 300_000, "a"), (4, 300_000, "b"),
    ]
    from obslab.serve.store import Row

    window.extend([Row(s, t, srv, None, (0.0,) * len(METRICS)) for s, t, srv in store_rows])
    assert len(window) == 3 and {r.seq for r in window.current()} == {3, 4}
    # an older (backfilled) record does not replace a server's current one
    window.extend([Row(5, 0, "a", None, (0.0,) * len(METRICS))])
    assert window.latest["a"].seq == 3
    window.extend([Row(6, 600_000, "c", None, (0.0,) * len(METRICS)), Row(7, 600_000, "c", None, (0.0,) * len(METRICS))])
    assert set(window.latest) == {"a", "c"}  # b's only row left the window


def test_prometheus_results_become_records_and_gaps_are_counted():
    from obslab.serve.prometheus import FeedSummary, records_from_results

    def series(inst, values):
        return [{"metric": {"instance": inst, "job": "node"}, "values": values}]

    results = {m: series("web-01:9100", [[1767607200, "10"], [1767607500, "12.5"]]) for m in METRICS}
    results["cpu_user_pct"] = series("web-01:9100", [[1767607200, "100.4"], [1767607500, "NaN"]])
    summary = FeedSummary()
    recs = records_from_results(results, summary=summary)
    assert len(recs) == 1 and recs[0]["server_name"] == "web-01" and recs[0]["timestamp"] == "2026-01-05T10:00:00Z"
    assert recs[0]["cpu_user_pct"] == 100 and recs[0]["back_close_wait"] == 10  # clamped; int field
    assert summary.clamped == 1 and summary.incomplete == 1 and summary.missing == {"cpu_user_pct": 1}
    FeedRequest.model_validate({"records": recs})


def test_zabbix_history_maps_to_records():
    from obslab.serve.zabbix import ZABBIX_ITEMS, records_from_zabbix

    rows = []
    for key, (name, _) in ZABBIX_ITEMS.items():
        raw = {"system.swap.size[,pfree]": "97", "system.uptime": "172800", "net.if.in[eth0]": "2500000"}.get(key, "5")
        for clock in (1767607190, 1767607490, 1767607790):  # polled 10 s before each 5-minute grid time
            rows.append({"host": "app-7", "key_": key, "clock": clock, "value": raw})
    rows.append({"host": "app-7", "key_": "agent.ping", "clock": 1767607190, "value": "1"})
    recs = records_from_zabbix(rows, step=300)
    assert [r["timestamp"] for r in recs] == ["2026-01-05T10:00:00Z", "2026-01-05T10:05:00Z"]
    assert recs[0]["swap_used_pct"] == 3 and recs[0]["uptime_days"] == 2 and recs[0]["net_in_mb_s"] == 2.5
    FeedRequest.model_validate({"records": recs})


def test_training_is_deterministic_and_status_free_and_the_folder_is_the_librarys(tmp_path):
    import json

    import torch

    from obslab.serve.model_store import load_model, train_server_model
    from obslab.serve.sample_records import normal_server_metrics
    from obslab.train import Encoder

    torch.set_num_threads(1)
    df = normal_server_metrics(days=1, step="15m", seed=3, n_servers=4)
    a = train_server_model(df, tmp_path / "a", seed=5, epochs=2)
    relabelled = df.assign(status="critical_issue")  # status is not an input: same model
    b = train_server_model(relabelled, tmp_path / "b", seed=5, epochs=2)
    serving_a, serving_b = (json.loads((p / "serving.json").read_text()) for p in (a, b))
    assert serving_a["model_id"] == serving_b["model_id"] and serving_a["thresholds"] == serving_b["thresholds"]
    assert serving_a["trained_on"]["sha256"] == serving_b["trained_on"]["sha256"]
    c = train_server_model(df, tmp_path / "c", seed=6, epochs=2)
    assert json.loads((c / "serving.json").read_text())["model_id"] != serving_a["model_id"]
    model = load_model(a)
    assert model.reference_values.shape == (len(df), len(METRICS)) and len(model.normal_ids) == len(df)
    # the library reads the daemon's folder as any exported encoder, and embeds the same
    enc = Encoder.load(a)
    assert enc.spec.numeric == model.encoder.spec.numeric and json.loads((a / "meta.json").read_text())["format"] == 1
    x = model.normalise(model.reference_values[:7], model.reference_ts[:7])
    assert np.allclose(enc.embed(record_frame(model.reference_values[:7], model.reference_ts[:7])), model.embed(x))
