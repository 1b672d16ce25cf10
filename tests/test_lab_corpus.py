"""The lab corpus's plan (scripts/refresh_lab_corpus.py) and the catalog rules it relies on:
every fault twice in different runs, gaps of normal traffic, targets the services implement,
user-visible symptom checks, and query windows shorter than every cooldown."""

from __future__ import annotations

import importlib.util
import random
import re
from pathlib import Path

import pytest
import yaml

from obslab.lab import scenario

REPO = Path(__file__).resolve().parents[1]
APPENDIX = REPO / "appendix-code"


def _script():
    spec = importlib.util.spec_from_file_location("refresh_lab_corpus", REPO / "scripts" / "refresh_lab_corpus.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def catalog():
    return scenario.load_catalog(APPENDIX / "faults.yaml")


def test_every_fault_twice_in_different_runs(catalog):
    mod = _script()
    plans = mod.deal(sorted(catalog), runs=6, repeats=2, seed=12)
    flat = [f for p in plans for f in p]
    assert sorted(set(flat)) == sorted(catalog) and all(flat.count(f) == 2 for f in catalog)
    assert all(len(p) == len(set(p)) for p in plans)  # the two copies of a fault are in different runs
    assert max(map(len, plans)) - min(map(len, plans)) <= 1
    assert mod.deal(sorted(catalog), 6, 2, 12) == plans and mod.deal(sorted(catalog), 6, 2, 13) != plans
    with pytest.raises(SystemExit):
        mod.deal(sorted(catalog), runs=1, repeats=2, seed=0)


def test_timeline_spacing_and_scenario_round_trip(catalog, tmp_path):
    mod = _script()
    steps, length = mod.timeline(["latency_spike", "endpoint_enumeration"], catalog, random.Random(1),
                                 warmup_s=360, gap_s=600, cooldown_s=45, min_fault_s=120, max_fault_s=180)
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"name": "t", "timeline": steps}))
    plan = scenario.load_scenario(f, catalog)
    assert plan.length_s == length
    for a, b in zip(plan.injections, plan.injections[1:]):
        assert b.offset_s - (a.offset_s + a.duration_s + a.cooldown_s) >= 600  # 10 min of normal traffic
    assert all(120 <= i.duration_s <= 180 for i in plan.injections)


def test_scenario_target_must_be_implemented(catalog, tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump({"timeline": [{"fault": "queue_pause", "target": "web-api", "duration": "5s"}]}))
    with pytest.raises(scenario.ScenarioError, match="implemented by payment-worker"):
        scenario.load_scenario(f, catalog)


def test_catalog_families_kinds_and_symptom_rules(catalog):
    assert {s.kind for s in catalog.values()} == {"kpi", "contextual"}
    assert all(s.family for s in catalog.values())
    contextual = {f for f, s in catalog.items() if s.kind == "contextual"}
    assert contextual == {"route_backend_switch", "new_error_template", "endpoint_enumeration"}
    assert "lock_contention" in catalog
    # faults whose mechanism gauge says nothing a user sees carry a user-visible symptom rule
    for fid in ("db_pool_exhaustion", "cache_miss_storm", "bad_config_deploy", "cascade_auth_slowdown"):
        assert catalog[fid].symptom_verify, fid
        assert all("http_request_duration" in r["promql"] or "payment_tasks_total" in r["promql"]
                   for r in catalog[fid].symptom_verify)


def test_query_windows_are_shorter_than_every_cooldown():
    """A rate over a window longer than the cooldown carries one fault's symptom into the next."""
    queries = yaml.safe_load((APPENDIX / "config" / "metrics_queries.yaml").read_text())["queries"]
    longest = max(scenario.parse_duration(w) for q in queries for w in re.findall(r"\[(\d+[smh])\]", q["promql"]))
    cooldowns = []
    for f in (APPENDIX / "scenarios").glob("*.yaml"):
        for step in yaml.safe_load(f.read_text()).get("timeline", []):
            if "fault" in step and step.get("cooldown"):
                cooldowns.append(scenario.parse_duration(step["cooldown"]))
    assert cooldowns and longest < min(cooldowns), (longest, min(cooldowns))
    assert any(q["name"] == "net_bytes_rate" for q in queries)  # network throughput per service


def test_catalog_families_are_the_ones_the_evaluation_reports(catalog):
    from obslab.evaluate import fault_family

    assert {f: s.family for f, s in catalog.items()} == {f: fault_family(f) for f in catalog}


CORPUS = REPO / "data" / "lab"


@pytest.mark.skipif(not (CORPUS / "MANIFEST.json").exists(), reason="no committed lab corpus")
def test_committed_corpus_matches_its_manifest_and_its_design(catalog):
    import hashlib
    import json

    from obslab.data import control_dataset, dataset_runs, read_incidents

    manifest = json.loads((CORPUS / "MANIFEST.json").read_text())
    for entry in manifest["files"]:
        data = (CORPUS / entry["path"]).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"], entry["path"]
    runs = dataset_runs(CORPUS)
    assert len(runs) == len(manifest["runs"]) >= 2 and control_dataset(runs[0]) == CORPUS / "control"
    seen: dict[str, set] = {}
    for run in runs:
        primaries = sorted((i for i in read_incidents(run) if not i.primary_incident_id), key=lambda i: i.start_ms)
        for inc in primaries:
            seen.setdefault(inc.fault_id, set()).add(run.name)
            assert 120_000 <= inc.end_ms - inc.start_ms <= 180_000  # incidents of 2-3 minutes
        for a, b in zip(primaries, primaries[1:]):
            assert b.start_ms - a.cooldown_end_ms >= 599_000  # 10 minutes of normal traffic (injection jitter: ms)
        run_doc = json.loads((run / "run.json").read_text())
        assert run_doc["duration_s"] >= 7200  # every run at least two hours of lab time
    assert {f: len(r) for f, r in seen.items()} == {f: 2 for f in catalog}  # every fault twice, two runs
