"""The incident plan and its symptoms: cascades follow the graph, incidents show in metrics."""

import numpy as np
import pytest

from obslab.synth import INCIDENT_TYPES, build_topology, load_config, plan_run
from obslab.synth.incidents import REGIONAL_TYPES, Fault, Plan, intensity
from obslab.synth.metrics import generate_chunk_metrics
from obslab.truth import Incident

STEP = 900_000


@pytest.fixture(scope="module")
def year():
    cfg = load_config(days=365, seed=5)
    topo = build_topology(cfg)
    return cfg, topo, plan_run(cfg, topo)


def test_every_type_occurs_with_cascades_regions_and_partial_outages(year):
    cfg, topo, plan = year
    incs = plan.incidents()
    assert {i.fault_id for i in incs} == set(INCIDENT_TYPES)
    assert any(i.primary_incident_id for i in incs)
    assert any(i.region and len(i.targets) >= 2 for i in incs)  # regional, several services
    assert any(not i.region and 0 < len(i.hosts) < cfg.hosts_per_service for i in incs)
    assert len({i.incident_id for i in incs}) == len(incs)
    assert plan.maintenance and plan.deploys and any(d.bad for d in plan.deploys)


def test_cascade_links_follow_the_dependency_graph(year):
    _, topo, plan = year
    by_id = {i.incident_id: i for i in plan.incidents()}
    secondaries = [i for i in by_id.values() if i.primary_incident_id]
    assert len(secondaries) > 20
    for s in secondaries:
        parent = by_id[s.primary_incident_id]
        # the secondary's service calls the service where the parent started (upstream)
        assert s.targets[0] in topo.upstream(parent.targets[0]), (s, parent)
        assert parent.start_ms < s.start_ms <= parent.end_ms + STEP
        assert s.root_cause == parent.root_cause
        assert set(s.hosts) == {topo.hosts[h] for h in topo.hosts_of(s.targets[0])}


def test_regional_incidents_stay_in_their_region(year):
    _, topo, plan = year
    for f in plan.faults:
        inc = f.incident
        assert inc.start_ms < inc.end_ms <= inc.cooldown_end_ms
        if f.kind in REGIONAL_TYPES and inc.primary_incident_id is None:
            region = topo.regions.index(inc.region)
            assert all(topo.host_region[h] == region for h in f.hosts)
            assert inc.root_cause in inc.targets


def test_plan_is_deterministic(year):
    cfg, topo, plan = year
    again = plan_run(load_config(days=365, seed=5), topo)
    assert [i.to_json() for i in again.incidents()] == [i.to_json() for i in plan.incidents()]
    other = plan_run(load_config(days=365, seed=6), topo)
    assert [i.to_json() for i in other.incidents()] != [i.to_json() for i in plan.incidents()]


# (incident type, metric that must rise (+) or fall (-))
SYMPTOMS = [
    ("memory_leak", "mem_pct", +1),
    ("db_contention", "db_pool_pct", +1),
    ("network_packet_loss", "packet_loss_pct", +1),
    ("cpu_saturation", "cpu_pct", +1),
    ("cascading_failure", "error_rate_pct", +1),
    ("network_partition", "request_rate", -1),
    ("dependency_degradation", "latency_p95_ms", +1),
    ("configuration_mismatch", "error_rate_pct", +1),
    ("resource_exhaustion", "shared_pool_pct", +1),
]


@pytest.mark.parametrize("kind,metric,sign", SYMPTOMS)
def test_an_incident_shows_in_the_metric_it_claims(kind, metric, sign):
    cfg = load_config(days=1, seed=2, incident_types=[])
    topo = build_topology(cfg)
    svc = "inventory-db"
    hosts = topo.hosts_of(svc)[:2]  # a partial outage: two of five hosts
    t0 = cfg.start_ms
    start, end = t0 + 10 * 3_600_000, t0 + 14 * 3_600_000
    inc = Incident("t-1", kind, "medium", [svc], start, end, end + 3_600_000, svc)
    fault = Fault(inc, kind, 0.85, hosts, np.ones(len(hosts)), 3_600_000)
    quiet = generate_chunk_metrics(topo, Plan([], [], []), 2, t0, 96, STEP, t0)
    sick = generate_chunk_metrics(topo, Plan([fault], [], []), 2, t0, 96, STEP, t0)
    inside = (quiet.t_ms >= start + 3_600_000) & (quiet.t_ms < end)  # after the ramp
    delta = sick.values[metric][inside][:, hosts] - quiet.values[metric][inside][:, hosts]
    base = np.abs(quiet.values[metric][inside][:, hosts]).mean()
    assert sign * delta.mean() > 0.2 * base, (kind, delta.mean(), base)
    others = np.setdiff1d(np.arange(topo.n_hosts), hosts)
    np.testing.assert_array_equal(sick.values[metric][:, others], quiet.values[metric][:, others])
    outside = quiet.t_ms < start
    np.testing.assert_array_equal(sick.values[metric][outside], quiet.values[metric][outside])
    assert set(np.unique(sick.phase[:, hosts][inside])) == {1}
    assert np.all(sick.phase[:, others] == 0)


def test_memory_leak_grows_then_recovers():
    cfg = load_config(days=1, seed=4, incident_types=[])
    topo = build_topology(cfg)
    h = topo.hosts_of("web-frontend")[:1]
    t0 = cfg.start_ms
    inc = Incident("t-2", "memory_leak", "high", ["web-frontend"], t0 + 6 * 3_600_000,
                   t0 + 12 * 3_600_000, t0 + 13 * 3_600_000, "web-frontend")
    f = Fault(inc, "memory_leak", 1.4, h, np.ones(1), 6 * 3_600_000)
    r = intensity(f, t0 + np.arange(96, dtype=np.int64) * STEP)
    assert np.all(np.diff(r[24:48]) > 0) and r[47] > 0.95 and r[48] == 0.0
    mem = generate_chunk_metrics(topo, Plan([f], [], []), 4, t0, 96, STEP, t0).values["mem_pct"]
    before, late, after = mem[16:24, h].mean(), mem[42:48, h].mean(), mem[52:60, h].mean()
    assert late > before + 25 and after < before + 5


def test_generated_incidents_are_verified_in_their_symptom_metric(tmp_path):
    from obslab.data import read_incidents
    from obslab.synth import generate
    from obslab.synth.incidents import SYMPTOM_METRIC

    generate(load_config(days=14, seed=8, incidents_per_day=2.0), tmp_path, workers=2)
    incs = read_incidents(tmp_path)
    checked = [i for i in incs if i.verified is not None]
    assert len(checked) >= 15
    assert sum(i.verified for i in checked) >= 0.9 * len(checked)
    for i in checked:
        metric, sign = SYMPTOM_METRIC[i.fault_id]
        v = i.verification
        assert v["metric"] == metric
        assert i.verified == (sign * (v["during"] - v["before"]) / abs(v["before"]) >= 0.1)
