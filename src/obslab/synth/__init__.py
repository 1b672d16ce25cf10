"""Synthetic MELT generator: a year of labelled metrics, events, logs and traces in seconds.

Hybrid-cloud telemetry (regions us-east-1, eu-west-1, on-prem-dc1; services web-frontend,
auth-service, payment-gateway, inventory-db, recommendation-engine; 5 hosts each by default)
with cascading incidents and complete ground truth, written in the same dataset layout as the
lab (:mod:`obslab.data`): OCSF parquet partitioned by day, ``labels.parquet``,
``incidents.json``, ``run.json``, and optionally the lab's raw formats.

Usage::

    obslab synth --days 365 --step 15m --seed 7 --out data/synth-year          # OCSF parquet
    obslab synth --days 3 --seed 1 --out /tmp/s --format both                  # + raw/ files
    obslab synth --days 30 --step 1m --hosts-per-service 20 --out /tmp/big --quiet
    obslab synth --config synth.yaml --out /tmp/s --server-metrics             # YAML settings

From Python::

    from obslab.synth import load_config, generate, server_metrics
    generate(load_config(days=3, seed=1), "/tmp/s")
    df = server_metrics(days=7, step="5m", seed=0, n_servers=10)   # daemon's 17 columns

The YAML file holds any :class:`SynthConfig` field (days, step, start, seed, regions,
services, hosts_per_service, dependencies, incidents_per_day, incident_types,
cascade_probability, severity_weights, deploys_per_day, maintenance_*, trace and log
volumes); flags override the file. Same seed and config -> identical output.

What is generated: eight metrics per host and step (cpu_pct, mem_pct, latency_p95_ms,
error_rate_pct, request_rate, packet_loss_pct, db_pool_pct, shared_pool_pct) with daily and
weekly seasonality, growth and noise; nine incident types (memory leak, DB contention,
network packet loss, CPU saturation, cascading failure, network partition, dependency
degradation, configuration mismatch, resource exhaustion) with gradual ramps and recoveries,
partial outages (some hosts of a service), regional network issues, and cascades that travel
upstream along the dependency graph (a secondary incident's target calls its primary's
target; ``primary_incident_id`` links them). Normal periods carry benign spikes, warnings,
errors and slow requests, noisy hosts, rolling deploys and weekly maintenance windows with
reduced traffic. Traces walk the dependency graph and take their durations and errors from
their hosts' metrics; logs (access, error, symptom, benign) and events (deploys, maintenance
notices, alerts firing/resolving, circuit breakers opening/closing) follow both.
Labels live only in ``labels.parquet`` (per event uid) and ``incidents.json``.
"""

from obslab.synth.config import INCIDENT_TYPES, SynthConfig, load_config
from obslab.synth.generate import FORMATS, LABEL_SCHEMA, RunResult, generate
from obslab.synth.incidents import Plan, plan_run
from obslab.synth.metrics import METRICS
from obslab.synth.server_metrics import (SERVER_FIELDS, STATUSES, server_metrics,
                                         server_metrics_with_labels)
from obslab.synth.topology import Topology, build_topology

__all__ = [
    "FORMATS",
    "INCIDENT_TYPES",
    "LABEL_SCHEMA",
    "METRICS",
    "Plan",
    "RunResult",
    "SERVER_FIELDS",
    "STATUSES",
    "SynthConfig",
    "Topology",
    "build_topology",
    "generate",
    "load_config",
    "plan_run",
    "server_metrics",
    "server_metrics_with_labels",
]
