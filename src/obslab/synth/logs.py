"""Log lines and events for one chunk, consistent with its metrics, traces and incidents.

Sources of lines: access lines for every HTTP span, error lines for failed spans, benign
warnings and errors at all times, symptom lines on hosts inside an incident, and events:
deploys (rolling restarts), maintenance notices, alerts firing/resolving on metric thresholds
(benign spikes fire them too) and circuit breakers opening/closing when a callee's error rate
climbs (cascade triggers).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from obslab.ocsf.flat import FLAT_LOG
from obslab.synth._arrow_util import pick, table_from
from obslab.synth.metrics import ChunkState, chunk_rng
from obslab.synth.topology import Topology
from obslab.synth.traces import SpanBatch

__all__ = ["LogBatch", "generate_logs", "BENIGN", "SYMPTOMS", "ALERT_RULES", "RESOLUTIONS"]

# (level, message, error_type)
BENIGN = [
    ("WARN", "slow request: handler took {} ms", None),
    ("WARN", "retrying upstream call after connection reset", None),
    ("WARN", "cache miss ratio above 30% over last minute", None),
    ("WARN", "GC pause {} ms", None),
    ("WARN", "client closed connection before response was sent", None),
    ("WARN", "slow query detected ({} ms)", None),
    ("INFO", "connection pool resized", None),
    ("ERROR", "request validation failed: missing field 'sku'", "ValidationError"),
    ("ERROR", "upstream timeout after 2000 ms, retry succeeded", "TimeoutError"),
    ("ERROR", "broken pipe while writing response", "BrokenPipeError"),
]
SYMPTOMS = {
    "memory_leak": [("WARN", "GC pause {} ms", None),
                    ("WARN", "heap usage above 85% after full GC", None),
                    ("ERROR", "allocation failure: unable to grow heap", "MemoryError")],
    "db_contention": [("WARN", "slow query detected ({} ms)", None),
                      ("ERROR", "lock wait timeout exceeded; try restarting transaction", "LockTimeout"),
                      ("WARN", "connection pool wait time {} ms", None)],
    "network_packet_loss": [("WARN", "retrying upstream call after connection reset", None),
                            ("WARN", "TCP retransmission rate elevated", None),
                            ("ERROR", "upstream timeout after 2000 ms, retry succeeded", "TimeoutError")],
    "cpu_saturation": [("WARN", "slow request: handler took {} ms", None),
                       ("WARN", "worker queue depth 240, requests waiting", None)],
    "cascading_failure": [("ERROR", "upstream returned 503 Service Unavailable", "HTTPError"),
                          ("ERROR", "request failed: dependency unavailable", "DependencyError")],
    "network_partition": [("ERROR", "connect ECONNREFUSED: no route to host", "ConnectionError"),
                          ("ERROR", "upstream timeout after 5000 ms", "TimeoutError")],
    "dependency_degradation": [("WARN", "upstream latency above SLO", None),
                               ("ERROR", "upstream timeout after 2000 ms, retry succeeded", "TimeoutError")],
    "configuration_mismatch": [("ERROR", "config key 'payments.endpoint' missing, request rejected", "ConfigError"),
                               ("WARN", "feature flag schema version mismatch", None)],
    "resource_exhaustion": [("ERROR", "resource pool exhausted: no free workers", "PoolExhausted"),
                            ("WARN", "connection pool wait time {} ms", None)],
}
RESOLUTIONS = {
    "memory_leak": "process restarted by supervisor: memory limit reached",
    "configuration_mismatch": "rolled back to previous release after failed health checks",
    "cpu_saturation": "autoscaler added capacity; worker pool rebalanced",
}
SPAN_ERRORS = [("upstream returned 503 Service Unavailable", "HTTPError"),
               ("request failed: internal server error", "InternalError"),
               ("upstream timeout after 2000 ms", "TimeoutError")]
DB_ERRORS = [("query canceled: statement timeout", "QueryCanceled"),
             ("could not obtain connection from pool", "PoolTimeout")]
# (alert name, metric, threshold; a threshold < 0 means "times the host's median")
ALERT_RULES = [
    ("HighCPU", "cpu_pct", 85.0),
    ("HighMemory", "mem_pct", 88.0),
    ("HighLatency", "latency_p95_ms", -3.0),
    ("HighErrorRate", "error_rate_pct", 5.0),
    ("PacketLoss", "packet_loss_pct", 2.0),
    ("DBPoolSaturated", "db_pool_pct", 85.0),
    ("SharedPoolSaturated", "shared_pool_pct", 90.0),
]


class LogBatch:
    """Accumulates parts (Arrow tables plus step/host indices for labelling)."""

    # filled once in finish() from the host index of every row, not per part
    HOST_COLUMNS = ("service", "container", "host", "region")

    def __init__(self):
        self.topo: Topology | None = None
        self.parts: list[pa.Table] = []
        self.t: list[np.ndarray] = []
        self.h: list[np.ndarray] = []

    def add(self, topo: Topology, t_ms, t_idx, h_idx, level, message, event, logger, **extra):
        n = len(t_idx)
        if n == 0:
            return
        h_idx = np.asarray(h_idx, dtype=np.int64)
        self.topo = topo
        cols = {
            "time_ms": np.asarray(t_ms, dtype=np.int64),
            "level": level,
            "message": message,
            "event": event if not isinstance(event, str) else pa.repeat(pa.scalar(event), n),
            "logger": pa.repeat(pa.scalar(logger), n),
            **extra,
        }
        if isinstance(level, str):
            cols["level"] = pa.repeat(pa.scalar(level), n)
        if isinstance(message, str):
            cols["message"] = pa.repeat(pa.scalar(message), n)
        self.parts.append(table_from(FLAT_LOG, n, cols))
        self.t.append(np.asarray(t_idx, dtype=np.int64))
        self.h.append(h_idx)

    def finish(self):
        if not self.parts:
            z = np.zeros(0, dtype=np.int64)
            return FLAT_LOG.empty_table(), z, z
        table = pa.concat_tables(self.parts)
        t = np.concatenate(self.t)
        h = np.concatenate(self.h)
        # by step, then time: rows of a day are contiguous (day partitions are slices)
        order = np.lexsort((table.column("time_ms").to_numpy(), t))
        table, t, h = table.take(order), t[order], h[order]
        topo = self.topo
        host_cols = {
            "service": pick(topo.services, topo.host_service[h]),
            "container": pick(topo.hosts, h),
            "host": pick(topo.hosts, h),
            "region": pick(topo.regions, topo.host_region[h]),
        }
        for name in self.HOST_COLUMNS:
            i = FLAT_LOG.get_field_index(name)
            table = table.set_column(i, FLAT_LOG.field(i), host_cols[name])
        return table, t, h


# numbers that fill a template's "{}": the same line text recurs, as real logs do
_FILL = [str(v) for v in (240, 310, 420, 515, 640, 780, 910, 1250, 1800, 2600)]


def _expand(pool):
    """Templates -> concrete lines, each template keeping its share of the draws."""
    lines, weights = [], []
    for level, text, etype in pool:
        variants = [text.format(v) for v in _FILL] if "{}" in text else [text]
        lines += [(level, v, etype) for v in variants]
        weights += [1.0 / len(variants)] * len(variants)
    w = np.array(weights)
    return lines, w / w.sum()


def _pool_add(out: LogBatch, topo, rng, pool, t_ms, t_idx, h_idx, event_for_error="error"):
    pool, p = _expand(pool)
    k = rng.choice(len(pool), size=len(t_idx), p=p)
    levels = [p[0] for p in pool]
    out.add(
        topo, t_ms, t_idx, h_idx,
        level=pick(levels, k),
        message=pick([p[1] for p in pool], k),
        event=pick([event_for_error if lv == "ERROR" else "other" for lv in levels], k),
        logger="app",
        error_type=pick([p[2] for p in pool], k),
    )


def _edges(firing: np.ndarray):
    """Rising and falling edges along time of a (T, ...) boolean array."""
    prev = np.concatenate([np.zeros_like(firing[:1]), firing[:-1]], axis=0)
    return firing & ~prev, ~firing & prev


def generate_logs(topo: Topology, st: ChunkState, spans: SpanBatch, seed: int, step_ms: int,
                  warnings_per_host_hour: float):
    day = int(st.t_ms[0] // 86_400_000)
    rng = chunk_rng(seed, 4, day)
    T, H = st.phase.shape
    out = LogBatch()
    sp = spans.table

    # access lines for HTTP spans, error lines for failed spans
    http = np.flatnonzero(~spans.is_db)
    if len(http):
        # only the columns used here: taking the whole span table costs
        sub = sp.select(["http_status", "http_method", "http_path", "end_time_ms", "trace_id",
                         "span_id", "duration_ms"]).take(pa.array(http))
        status = sub.column("http_status").to_numpy(zero_copy_only=False)
        lvl = np.where(status >= 500, 2, np.where(status >= 400, 1, 0))
        msg = pc.binary_join_element_wise(
            sub.column("http_method"), sub.column("http_path"),
            pc.cast(sub.column("http_status"), pa.string()), " ")
        out.add(topo, sub.column("end_time_ms").to_numpy(), spans.t_idx[http], spans.h_idx[http],
                level=pick(["INFO", "WARN", "ERROR"], lvl), message=msg, event="access",
                logger="http", trace_id=sub.column("trace_id"), span_id=sub.column("span_id"),
                http_method=sub.column("http_method"), http_path=sub.column("http_path"),
                http_status=sub.column("http_status"), duration_ms=sub.column("duration_ms"))
    bad = np.flatnonzero(spans.is_error)
    if len(bad):
        sub = sp.select(["end_time_ms", "trace_id", "span_id"]).take(pa.array(bad))
        db = spans.is_db[bad]
        k = np.where(db, len(SPAN_ERRORS) + rng.integers(0, len(DB_ERRORS), len(bad)),
                     rng.integers(0, len(SPAN_ERRORS), len(bad)))
        pool = SPAN_ERRORS + DB_ERRORS
        out.add(topo, sub.column("end_time_ms").to_numpy(), spans.t_idx[bad], spans.h_idx[bad],
                level="ERROR", message=pick([p[0] for p in pool], k), event="error",
                logger="app", error_type=pick([p[1] for p in pool], k),
                trace_id=sub.column("trace_id"), span_id=sub.column("span_id"))

    # benign warnings and errors everywhere, all the time
    lam = warnings_per_host_hour * step_ms / 3_600_000
    cnt = rng.poisson(lam, (T, H))
    cell = np.repeat(np.arange(T * H), cnt.ravel())
    ti, hi = cell // H, cell % H
    _pool_add(out, topo, rng, BENIGN, st.t_ms[ti] + rng.integers(0, step_ms, len(cell)), ti, hi)

    # symptom lines inside incidents (fewer during the recovery)
    for fi, f in enumerate(st.faults):
        mask = (st.fault_idx == fi) & (st.phase >= 1)
        ti, hi = np.nonzero(mask)
        if len(ti) == 0:
            continue
        rate = np.where(st.phase[ti, hi] == 1, 3.0, 0.8) * f.severity * step_ms / 900_000
        cnt = rng.poisson(rate)
        ti, hi = np.repeat(ti, cnt), np.repeat(hi, cnt)
        _pool_add(out, topo, rng, SYMPTOMS[f.kind], st.t_ms[ti] + rng.integers(0, step_ms, len(ti)),
                  ti, hi)

    # deploy events: rolling restarts
    dep_t, dep_i, dep_h, dep_msg = [], [], [], []  # one part for all (same rows, same order)
    for i, h, d in st.deploys:
        t = int(st.t_ms[i]) + int(rng.integers(0, step_ms // 2))
        dep_t += [t, t + 4000]
        dep_i += [i, i]
        dep_h += [h, h]
        dep_msg += [f"shutting down for deploy {d.version}",
                    f"started {d.service} version {d.version}"]
    out.add(topo, dep_t, dep_i, dep_h, level="INFO", message=pa.array(dep_msg, pa.string()),
            event="lifecycle", logger="deploy")

    # resolutions an operator (or a supervisor) performs when an incident ends
    for f in st.faults:
        text = RESOLUTIONS.get(f.kind)
        i = int(np.searchsorted(st.t_ms, f.incident.end_ms))
        if text is None or i >= T or st.t_ms[i] != f.incident.end_ms:
            continue
        hi = np.asarray(f.hosts)
        out.add(topo, np.full(len(hi), st.t_ms[i] + 20_000), np.full(len(hi), i), hi,
                level="INFO", message=text, event="lifecycle", logger="ops")

    # maintenance notices at the window's edges
    start_e, end_e = _edges(st.maint)
    for edges, text in ((start_e, "maintenance window started: traffic drained and reduced"),
                        (end_e, "maintenance window ended: traffic restored")):
        ti, hi = np.nonzero(edges)
        out.add(topo, st.t_ms[ti], ti, hi, level="INFO", message=text, event="lifecycle",
                logger="ops")

    # alerts on thresholds (they fire on benign spikes too) and their resolutions
    for name, metric, thr in ALERT_RULES:
        x = st.values[metric]
        limit = -thr * np.median(x, axis=0) if thr < 0 else thr
        fire, clear = _edges(x > limit)
        for edges, state, level in ((fire, "firing", "WARN"), (clear, "resolved", "INFO")):
            ti, hi = np.nonzero(edges)
            out.add(topo, st.t_ms[ti] + 30_000, ti, hi, level=level,
                    message=f"ALERT {name} {state}", event="other", logger="alertmanager")

    # cascade triggers: callers open a circuit breaker when a callee's error rate climbs
    err = st.values["error_rate_pct"]
    for s, callee in enumerate(topo.services):
        callers = [topo.services.index(c) for c in topo.upstream(callee)]
        if not callers:
            continue
        open_, close = _edges(err[:, topo.host_service == s].mean(axis=1) > 6.0)
        caller_hosts = np.flatnonzero(np.isin(topo.host_service, callers))
        for edges, text, level in ((open_, f"circuit breaker OPEN for {callee}", "ERROR"),
                                   (close, f"circuit breaker CLOSED for {callee}", "INFO")):
            ti = np.flatnonzero(edges)
            ti, hi = np.repeat(ti, len(caller_hosts)), np.tile(caller_hosts, len(ti))
            out.add(topo, st.t_ms[ti] + 45_000, ti, hi, level=level, message=text,
                    event="other", logger="resilience")
    return out.finish()
