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
    obslab synth --config synth.yaml --out /tmp/s --server-metrics --overwrite

Flags: ``--days --step --seed --start --hosts-per-service --format ocsf|raw|both --config FILE
--server-metrics --quiet --workers N --overwrite``. From Python::

    from obslab.synth import load_config, generate, server_metrics
    generate(load_config(days=3, seed=1), "/tmp/s")
    df = server_metrics(days=7, step="5m", seed=0, n_servers=10)   # the daemon's 17 columns

The YAML file holds any :class:`SynthConfig` field (days, step, start, seed, regions,
region_utc_offset, services, hosts_per_service, dependencies, incidents_per_day,
incident_types, cascade_probability, severity_weights, deploys_per_day,
benign_spike_probability, maintenance_*, traces_per_frontend_host_minute,
warnings_per_host_hour, server_metrics, n_servers); flags override the file. The same seed
and config give byte-identical parquet, whatever ``--workers``.

Output (``DIR``): ``ocsf_{logs,traces,metrics}.parquet/day=YYYY-MM-DD/part-0.parquet`` (mapped
with :mod:`obslab.ocsf`), ``labels.parquet/day=.../part-0.parquet`` (uid, signal, time,
service, is_anomaly, fault_id, incident_id, phase, root_cause_service), ``incidents.json``
(config, every incident with cascade links, severity, hosts, region and a ``verified`` check
of its symptom metric; deploys, maintenance windows, summary statistics), ``run.json``;
``raw/`` (Compose log lines, OTLP JSON lines, Prometheus range bundle) with ``--format
raw|both``; ``server_metrics.parquet`` + ``server_metrics_labels.parquet`` with
``--server-metrics``. A raw-only run writes no labels.parquet: converting it with
``obslab.ocsf.convert_dataset`` labels it from incidents.json (per service, not per host).

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
their hosts' metrics; logs (access, error, symptom, benign) follow both. Events are log
records too (they land in ``ocsf_logs``): deploys and maintenance notices (6002 lifecycle),
alerts firing/resolving on metric thresholds, circuit breakers opening/closing when a
callee's error rate climbs (cascade triggers) and resolutions (restarts, rollbacks).
Labels are per host and step and live only in ``labels.parquet`` and ``incidents.json``.
:func:`obslab.synth.baseline.isolation_forest_auroc` measures how hard the data is
(raw-feature Isolation Forest AUROC, about 0.8 on the defaults).
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
