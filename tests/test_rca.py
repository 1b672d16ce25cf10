"""RCA ranks the planted root cause first; the call graph comes from spans; AC@k is right; the
trivial baselines rank as their rule says; intervals resample incidents, keyed by run."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from obslab.rca import (
    ac_at_k_intervals,
    ac_interval,
    accuracy_at_k,
    alert_times,
    busiest_services,
    call_graph,
    call_graph_from_ocsf,
    compare_rca,
    evaluate_rca,
    guess_signal,
    paired_gap,
    random_services,
    rank_services,
    service_evidence,
    verdict,
)
from obslab.truth import Incident

MIN = 60_000
SERVICES = ["web-api", "auth-service", "payment-worker"]
EDGES = [("web-api", "auth-service"), ("web-api", "payment-worker")]


def windows(seed=0, n=120, fault=None, start=80, stop=95):
    """Per-(service, minute) rows; ``fault`` plants a correlated incident from ``start`` to ``stop``."""
    rng = np.random.default_rng(seed)
    rows = []
    for svc in SERVICES:
        for m in range(n):
            rows.append({"service": svc, "time": m * MIN,
                         "latency_p95": rng.normal(100, 5), "error_rate": abs(rng.normal(0.01, 0.003)),
                         "log_error_count": rng.poisson(1.0), "cpu_pct": rng.normal(30, 2),
                         "rss_mb": rng.normal(200, 3)})
    df = pd.DataFrame(rows)
    on = (df["time"] >= start * MIN) & (df["time"] < stop * MIN)
    if fault == "auth_slow":
        # the root cause slows down and logs errors; its caller's latency rises even more
        df.loc[on & (df.service == "auth-service"), "latency_p95"] += 60
        df.loc[on & (df.service == "auth-service"), "log_error_count"] += 6
        df.loc[on & (df.service == "web-api"), "latency_p95"] += 80
        df.loc[on & (df.service == "web-api"), "error_rate"] += 0.03
        df.loc[on & (df.service == "web-api"), "log_error_count"] += 8  # "auth call failed" lines
    elif fault == "worker_leak":
        df.loc[on & (df.service == "payment-worker"), "rss_mb"] += np.linspace(20, 200, on.sum() // 3)
        df.loc[on & (df.service == "payment-worker"), "cpu_pct"] += 10
    return df


def test_guess_signal():
    assert guess_signal("log_error_count") == "logs"
    assert guess_signal("latency_p95") == "traces"
    assert guess_signal("cpu_pct") == "metrics"
    assert guess_signal("score") == "score"
    assert guess_signal("metric_queue_depth") == "metrics"
    # the names obslab.features.window_features produces
    assert [guess_signal(c) for c in ("req_count", "err_rate", "err_count", "lat_p95", "log_warn_count",
                                      "m_cache_hit_ratio")] == ["traces"] * 4 + ["logs", "metrics"]


def test_planted_root_cause_ranks_first_thanks_to_the_call_graph():
    df = windows(fault="auth_slow")
    alert = 81 * MIN
    ranked = rank_services(df, alert, EDGES)
    assert ranked["service"].tolist()[0] == "auth-service"
    assert ranked.set_index("service").loc["web-api", "explained_by"] == "auth-service"
    # without the graph the loudest symptom (the caller) would win: the graph is what fixes it
    assert rank_services(df, alert, [])["service"].iloc[0] == "web-api"


def test_single_service_fault_ranks_first_and_names_the_feature():
    df = windows(seed=1, fault="worker_leak")
    ranked = rank_services(df, 82 * MIN, EDGES)
    top = ranked.iloc[0]
    assert top["service"] == "payment-worker"
    assert top["top_feature"] in ("rss_mb", "cpu_pct")
    assert top["metrics"] > ranked.set_index("service").loc["web-api", "metrics"]


def test_quiet_period_has_small_evidence():
    df = windows(seed=2)
    ev = service_evidence(df, 82 * MIN)
    noisy = service_evidence(windows(seed=2, fault="worker_leak"), 82 * MIN)
    assert ev["evidence"].max() < noisy["evidence"].max() / 2


def test_call_graph_from_spans():
    spans = pd.DataFrame({
        "trace_id": ["t1"] * 4 + ["t2"] * 2,
        "span_id": ["a", "b", "c", "d", "a", "e"],
        "parent_span_id": [None, "a", "a", "c", None, "a"],
        "service": ["web-api", "web-api", "auth-service", "auth-service", "web-api", "payment-worker"],
    })
    edges = call_graph(spans)
    got = {(r.caller, r.callee): r.calls for r in edges.itertuples()}
    # span ids repeat across traces: the join must use the trace id too (t2's "a" is t2's)
    assert got == {("web-api", "auth-service"): 1, ("web-api", "payment-worker"): 1}


def test_call_graph_from_nested_ocsf_table():
    table = pa.table({
        "trace": pa.array([
            {"uid": "t1", "span": {"uid": "a", "parent_uid": None}, "service": {"name": "web-api"}},
            {"uid": "t1", "span": {"uid": "b", "parent_uid": "a"}, "service": {"name": "payment-worker"}},
        ]),
    })
    edges = call_graph_from_ocsf(table)
    assert list(zip(edges.caller, edges.callee)) == [("web-api", "payment-worker")]


def test_accuracy_at_k():
    rankings = [["a", "b", "c"], ["b", "a", "c"], ["c", "b", "a"]]
    assert accuracy_at_k(rankings, ["a", "a", "a"], 1) == pytest.approx(1 / 3)
    assert accuracy_at_k(rankings, ["a", "a", "a"], 2) == pytest.approx(2 / 3)
    assert accuracy_at_k(rankings, ["a", "a", "a"], 3) == 1.0
    with pytest.raises(ValueError):
        accuracy_at_k(rankings, ["a"], 1)


def test_evaluate_rca_over_incidents():
    a = windows(seed=3, fault="auth_slow", start=40, stop=50)
    b = windows(seed=3, fault="worker_leak", start=100, stop=110)
    # combine: the auth incident early, the leak late
    df = a.copy()
    late = df["time"] >= 90 * MIN
    df.loc[late, ["rss_mb", "cpu_pct"]] = b.loc[late, ["rss_mb", "cpu_pct"]].to_numpy()
    incs = [Incident("i1", "dependency_slow", "high", ["auth-service"], 40 * MIN, 50 * MIN, 55 * MIN, "auth-service"),
            Incident("i2", "memory_leak", "high", ["payment-worker"], 100 * MIN, 110 * MIN, 115 * MIN, "payment-worker"),
            Incident("i3", "off_the_end", "high", ["web-api"], 500 * MIN, 510 * MIN, 515 * MIN, "web-api")]
    table, acc = evaluate_rca(df, incs, EDGES, alert_times={"i1": 41 * MIN, "i2": 102 * MIN})
    assert table["incident_id"].tolist() == ["i1", "i2"]  # i3 has no data: skipped
    assert acc == {"AC@1": 1.0, "AC@3": 1.0}
    assert table["rank_of_truth"].tolist() == [1, 1]


# --- trivial baselines, alert sources, intervals over incidents, corpora ---

def busy_windows():
    """web-api handles the most requests; in minute 50-52 payment-worker logs a burst."""
    rows = []
    for m in range(60):
        for svc, req, logs in (("web-api", 100, 5), ("auth-service", 40, 2), ("payment-worker", 10, 1)):
            if svc == "payment-worker" and 50 <= m < 53:
                logs = 500
            rows.append({"service": svc, "time": m * MIN, "req_count": float(req), "log_count": float(logs)})
    return pd.DataFrame(rows)


def test_busiest_service_counts_events_in_the_alert_window_only():
    df = busy_windows()
    assert busiest_services(df, 20 * MIN) == ["web-api", "auth-service", "payment-worker"]
    # the log burst makes payment-worker the busiest around minute 51, and only there
    assert busiest_services(df, 51 * MIN, before_ms=MIN, after_ms=2 * MIN)[0] == "payment-worker"
    # evidence arguments are accepted (same call as the method it is a baseline for)
    assert busiest_services(df, 20 * MIN, columns={"req_count": "traces"}, baseline_ms=10 * MIN)[0] == "web-api"
    with pytest.raises(ValueError):
        busiest_services(df.drop(columns=["req_count", "log_count"]), 20 * MIN)


def test_random_ranking_is_seeded_and_at_chance():
    df = busy_windows()
    a = [random_services(df, np.random.default_rng(3)) for _ in range(3)]
    assert a[0] == a[1] == a[2] and sorted(a[0]) == sorted(SERVICES)
    rng = np.random.default_rng(0)
    firsts = [random_services(df, rng)[0] for _ in range(3000)]
    assert abs(np.mean([f == "web-api" for f in firsts]) - 1 / 3) < 0.03


def incidents_at(*starts, root="web-api"):
    return [Incident(f"i{n}", "f", "high", [root], s, s + 2 * MIN, s + 3 * MIN, root)
            for n, s in enumerate(starts, 1)]


def test_alert_times_say_detection_or_fallback():
    incs = incidents_at(10 * MIN, 30 * MIN, 50 * MIN)
    at = alert_times(incs, {"i2": 31 * MIN})
    assert at["alert_source"].tolist() == ["fallback", "detection", "fallback"]
    assert at["alert_ms"].tolist() == [10 * MIN, 31 * MIN, 50 * MIN]
    table, _ = evaluate_rca(busy_windows(), incs, method="busiest", alert_times={"i2": 31 * MIN})
    assert table["alert_source"].value_counts().to_dict() == {"fallback": 2, "detection": 1}
    assert (table["n_services"] == 3).all()


def test_compare_rca_over_a_corpus_keys_incidents_by_run_and_bootstraps_over_them():
    df = busy_windows()
    run_a = incidents_at(10 * MIN, 30 * MIN)  # web-api is the root cause: the busiest rule is right
    run_b = incidents_at(10 * MIN, 51 * MIN, root="auth-service")  # same ids, another run: wrong
    methods = {"busiest": dict(method="busiest"), "random": dict(method="random", seed=1)}
    per = pd.concat([compare_rca(df, run_a, methods, run="a"), compare_rca(df, run_b, methods, run="b")])
    assert sorted(per["incident"].unique()) == ["a/i1", "a/i2", "b/i1", "b/i2"]
    table = ac_at_k_intervals(per, ks=(1, 3), seed=0, n_boot=500)
    assert table.loc["busiest", "incidents"] == 4
    assert table.loc["busiest", "AC@1"] == 0.5 and table.loc["busiest", "AC@3"] == 1.0
    low, high = table.loc["busiest", ["AC@1 lo", "AC@1 hi"]]
    assert 0.0 <= low < 0.5 < high <= 1.0  # four incidents: a wide interval
    assert table.loc["busiest", ["AC@3 lo", "AC@3 hi"]].tolist() == [1.0, 1.0]
    assert table.loc["random", "chance@1"] == pytest.approx(1 / 3)
    # same seed, same interval
    assert ac_at_k_intervals(per, seed=0, n_boot=500).equals(ac_at_k_intervals(per, seed=0, n_boot=500))
    iv = ac_interval(table, "busiest", 3)
    assert (iv.estimate, iv.low, iv.high) == (1.0, 1.0, 1.0)


def test_rows_of_one_incident_are_averaged_before_resampling():
    per = pd.DataFrame({"method": "m", "incident": ["x", "x", "y"], "hit@1": [1.0, 0.0, 1.0],
                        "n_services": 3})
    table = ac_at_k_intervals(per, ks=(1,), n_boot=200)
    assert table.loc["m", "incidents"] == 2
    assert table.loc["m", "AC@1"] == pytest.approx(0.75)  # mean of 0.5 (two seeds) and 1


def test_paired_gap_is_zero_for_identical_methods_and_signed_otherwise():
    per = pd.DataFrame({"method": ["a"] * 4 + ["b"] * 4, "incident": list("wxyz") * 2,
                        "hit@1": [1, 1, 1, 0, 0, 0, 1, 0], "n_services": 3})
    same = paired_gap(per, "a", "a")
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    gap = paired_gap(per, "a", "b", n_boot=500)
    assert gap.estimate == pytest.approx(0.5) and gap.low >= 0.0 and gap.high <= 1.0


def test_incident_ids_that_already_carry_their_run_are_not_prefixed_twice():
    incs = [Incident("a/i1", "f", "high", ["web-api"], 10 * MIN, 12 * MIN, 13 * MIN, "web-api")]
    per = compare_rca(busy_windows(), incs, {"busiest": dict(method="busiest")}, run="a")
    assert per["incident"].tolist() == ["a/i1"]


def test_verdict_names_a_winner_only_where_intervals_separate():
    def table(rows):
        return pd.DataFrame(rows, columns=["method", "AC@1", "AC@1 lo", "AC@1 hi", "incidents", "chance@1"]
                            ).set_index("method")
    overlap = table([("busiest service", 0.6, 0.3, 0.8, 13, 0.11), ("random", 0.1, 0.0, 0.2, 13, 0.11),
                     ("signals", 0.8, 0.6, 1.0, 13, 0.11), ("score", 0.5, 0.2, 0.7, 13, 0.11)])
    text = verdict(overlap)
    assert "*signals*" in text and "no ranking is shown to beat" in text
    wins = overlap.assign(**{"AC@1 lo": [0.3, 0.0, 0.85, 0.2], "AC@1 hi": [0.6, 0.2, 1.0, 0.7]})
    assert "beats the trivial rule" in verdict(wins)
    loses = table([("busiest service", 0.9, 0.8, 1.0, 30, 0.1), ("signals", 0.4, 0.2, 0.6, 30, 0.1)])
    assert "the trivial rule wins" in verdict(loses)
