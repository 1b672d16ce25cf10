"""Per-event detection: row building, unknown categories, leaks, the KPI check, the committed tables."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from obslab._event_rows import EVENT_CATEGORICAL, EVENT_NUMERIC, message_template, span_rows
from obslab.data import REPO_ROOT
from obslab.events import (event_scores, fit_events, incident_detection, kpi_range, kpi_scores,
                           load_event_data, rarity_scores, read_results, window_scores)
from obslab.features import check_features, fit_features, transform

SAMPLE = REPO_ROOT / "data" / "sample"
QUICK = {"min_steps": 20, "epochs": 2, "check_every": 10, "budget_steps": 0}  # a cheap encoder where quality is not the point


def test_message_template_masks_variable_parts():
    out = message_template(pd.Series([
        "payment fc414374fa5b4fe8bc9a4948c5d7f80a captured",
        "payment 8a44eb6fb2dd46c3a3f1d57ddb7bbee5 captured",
        "GET /api/users/17 200 from 10.1.2.3",
        "certificate for gateway-3 expires in 5 days",
        None,
    ]))
    assert out[0] == out[1] == "payment <hex> captured"
    assert out[2] == "GET /api/users/<n> <n> from <ip>"
    assert out[3] == "certificate for gateway-<n> expires in <n> days"
    assert out[4] == "none"


def _spans():
    # one trace: web-api server span -> web-api client span -> auth-service server span
    return pd.DataFrame({
        "time": [1000, 1001, 1002, 2000],
        "metadata.uid": ["a", "b", "c", "d"],
        "unmapped.service": ["web-api", "web-api", "auth-service", "web-api"],
        "unmapped.kind": ["server", "client", "server", "server"],
        "trace.uid": ["t1", "t1", "t1", "t2"],
        "trace.span.uid": ["s1", "s2", "s3", "s4"],
        "trace.span.parent_uid": [None, "s1", "s2", None],
        "trace.span.operation": ["GET /api/search", "GET", "GET", "GET"],
        "unmapped.http_route": ["/api/search", None, None, None],
        "http_request.url.path": ["/api/search", None, "/health", "/.env"],
        "http_response.code": [200, None, 200, 404],
        "unmapped.attributes": [
            '{"http.user_agent":"python-requests/2.34.2","net.peer.ip":"127.0.0.1"}',
            '{"http.url":"http://127.0.0.1:8081/health?x=1"}',
            None,
            '{"http.user_agent":"Mozilla/5.0 (compatible; httpx-scan/1.3)","http.client_ip":"203.0.113.7"}',
        ],
        "unmapped.duration_ms": [5.0, 2.0, 1.0, 0.5],
    })


def test_span_rows_carry_caller_callee_and_entry_route():
    rows = span_rows(_spans())
    assert rows["edge"].tolist() == ["root->web-api", "web-api->web-api", "web-api->auth-service", "root->web-api"]
    assert rows["entry_operation"].tolist()[:3] == ["GET /api/search"] * 3
    assert rows.loc[1, "route"] == "/health"  # a client span's route is the path it called
    assert rows.loc[3, "status"] == "404"
    assert rows.loc[3, "client_net"] == "203.0.113.0/24"
    assert rows.loc[0, "user_agent"] == "python-requests/<v>"
    check_features(EVENT_NUMERIC + EVENT_CATEGORICAL)  # no label, marker, id or raw time


def test_unseen_categories_map_to_the_unknown_bucket():
    rows = span_rows(_spans())
    spec = fit_features(rows.iloc[:3], numeric=EVENT_NUMERIC, categorical=EVENT_CATEGORICAL)
    _, x_cat = transform(spec, rows)
    route = EVENT_CATEGORICAL.index("route")
    agent = EVENT_CATEGORICAL.index("user_agent")
    assert x_cat[3, route] == 0 and x_cat[3, agent] == 0  # "/.env" and the scanner were never seen
    assert (x_cat[:3] > 0).all()


@pytest.fixture(scope="module")
def sample():
    return load_event_data(SAMPLE)


def test_training_events_avoid_every_incident(sample):
    t = sample.events["time_ms"].to_numpy()
    train = sample.event_train
    for inc in sample.incidents:
        assert not (train & (t >= inc.start_ms) & (t < inc.cooldown_end_ms)).any(), inc.incident_id
    assert not sample.windows.loc[sample.window_train, "is_anomaly"].any()
    assert set(sample.held_out) <= {i.incident_id for i in sample.incidents}


def test_a_novel_route_moves_event_scores_and_no_kpi(sample):
    """Rename a few web-api requests of one held-out incident to a route nobody calls. The KPIs
    (counts, errors, latencies) do not move; in the raw one-hot space every renamed event is at
    least sqrt(2) from every training event (its route is the unknown bucket, which no training
    event has); their rarity rises and no other event's changes."""
    ex = fit_events(sample, seed=100, **QUICK)
    inc = next(i for i in ex.incidents if i.incident_id == ex.held_out[0])
    ev = ex.events
    hit = np.flatnonzero((ev["service"] == "web-api").to_numpy() & (ev["route"] == "/api/users").to_numpy()
                         & (ev["time_ms"] >= inc.start_ms).to_numpy() & (ev["time_ms"] < inc.end_ms).to_numpy())[:3]
    assert len(hit) == 3
    kpi_before, rarity_before = kpi_scores(ex), rarity_scores(ex)
    changed = ev.copy()
    changed.loc[hit, "route"] = "/.git/config"
    ex.data.events = changed
    try:
        kpi_after = kpi_scores(ex)
        raw_after = event_scores(ex, "raw")
        rarity_after = rarity_scores(ex)
    finally:
        ex.data.events = ev
    assert np.array_equal(kpi_after, kpi_before)
    assert (raw_after[hit] >= np.sqrt(2) - 1e-6).all(), raw_after[hit]
    assert (rarity_after[hit] > rarity_before[hit]).all()
    others = np.setdiff1d(np.arange(len(ev)), hit)
    assert np.array_equal(rarity_after[others], rarity_before[others])


def test_same_seed_same_scores(sample, tmp_path, monkeypatch):
    # two empty caches: both encoders are trained, not one trained and one read back
    scores = []
    for cache in ("a", "b"):
        monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path / cache))
        scores.append(event_scores(fit_events(sample, seed=101, **QUICK), "embedding"))
    assert np.array_equal(scores[0], scores[1])


def test_the_control_run_is_scored_never_fitted(sample):
    run = sample.window_control_run
    assert run.any() and (sample.windows.loc[run, "run"] == "control").all()
    for mask in (sample.window_train, sample.window_test, sample.window_evaluate, sample.window_control):
        assert not (mask & run).any()
    assert not sample.event_train[(sample.events["run"] == "control").to_numpy()].any()
    assert not sample.windows.loc[run, "is_anomaly"].any()


def test_kpi_range_reports_each_incident_of_the_kind(sample):
    table = kpi_range(sample, kinds=("kpi",))
    assert set(table["incident_id"]) == {i.incident_id for i in sample.incidents}
    # an incident whose KPIs left the range names them; max |z| is at least 0
    assert (table["inside_range"] == (table["kpis_outside"] == "")).all()
    assert (table["max_abs_z"] >= 0).all()


# ~35 s: the committed point's full-size encoder, trained from scratch
@pytest.mark.slow
def test_committed_table_point_reproduces():
    """Re-run one point of scripts/run_events.py (data/sample, seed 0) against its committed row."""
    table = read_results()["incidents"]
    table = table[table["dataset"] == "sample"]
    assert len(table), "no rows for data/sample: run scripts/run_events.py data/sample"
    settings = table.iloc[0]
    data = load_event_data(SAMPLE, window_ms=int(settings["window_s"]) * 1000)
    kwargs = {"epochs": int(settings["epochs"])} if str(settings["epochs"]).strip() not in ("", "nan") else {}
    ex = fit_events(data, seed=0, max_reference=int(settings["max_reference"]), **kwargs)
    k, index = int(settings["k"]), settings["index"]
    methods = {"events: embedding k-NN": (0, window_scores(ex, event_scores(ex, "embedding", k=k, index=index))),
               "events: raw k-NN": (0, window_scores(ex, event_scores(ex, "raw", k=k, index=index))),
               "events: rarity": (-1, window_scores(ex, rarity_scores(ex))),
               "windows: KPI robust-z": (-1, kpi_scores(ex))}
    assert set(methods) == set(table["method"])
    for method, (seed, scores) in methods.items():
        want = table[(table["method"] == method) & (table["seed"] == seed)]
        got = incident_detection(ex, scores)
        merged = want.merge(got, on="incident_id", suffixes=("_table", "_now"))
        assert len(merged) == len(want) > 0, method
        assert np.allclose(merged["max_score_table"], merged["max_score_now"], rtol=1e-4, atol=1e-6), merged
        assert (merged["detected_table"] == merged["detected_now"]).all(), merged


def test_a_corpus_is_split_run_by_run(sample, tmp_path):
    """Two runs (the sample twice, each on its own clock): rows stack with a run key, incident
    ids are run-qualified, and each run gets the split the sample gets alone."""
    for name in ("run-a", "run-b"):
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / name).symlink_to(SAMPLE, target_is_directory=True)
    corpus = load_event_data(tmp_path, window_ms=sample.window_ms)  # no control run beside it
    sample = load_event_data(SAMPLE, window_ms=sample.window_ms, control=False)
    assert len(corpus.events) == 2 * len(sample.events)
    assert sorted(corpus.events["run"].unique()) == ["run-a", "run-b"]
    assert sorted(corpus.held_out) == sorted(f"{r}/{i}" for r in ("run-a", "run-b") for i in sample.held_out)
    for run in ("run-a", "run-b"):
        rows = (corpus.windows["run"] == run).to_numpy()
        assert np.array_equal(corpus.window_train[rows], sample.window_train)
        assert np.array_equal(corpus.event_train[(corpus.events["run"] == run).to_numpy()], sample.event_train)
    blocks = corpus.normal_blocks()
    assert not set(blocks[corpus.windows["run"].to_numpy() == "run-a"]) & set(blocks[corpus.windows["run"].to_numpy() == "run-b"])
