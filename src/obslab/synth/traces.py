"""Multi-span traces drawn from the metrics: request shapes follow the dependency graph.

Each trace enters at a root service (one nobody calls), walks down the graph, and every span's
duration and error chance come from its host's latency and error rate at that step, so traces
agree with the metrics (and with the incidents behind them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from obslab.ocsf.flat import FLAT_SPAN
from obslab.synth._arrow_util import hex_ids, pick, table_from
from obslab.synth.metrics import ChunkState, chunk_rng
from obslab.synth.topology import Topology

__all__ = ["SpanBatch", "trace_templates", "generate_traces", "ENDPOINTS"]

# service -> (method, path) of its server spans; a db-like service gets a query span instead
ENDPOINTS = {
    "auth-service": ("POST", "/auth/verify"),
    "payment-gateway": ("POST", "/payments/charge"),
    "recommendation-engine": ("GET", "/recommendations"),
}
ROOT_ENDPOINTS = {
    None: ("GET", "/"),
    "auth-service": ("POST", "/api/login"),
    "payment-gateway": ("POST", "/api/checkout"),
    "recommendation-engine": ("GET", "/api/products"),
}
DB_STATEMENTS = {
    "auth-service": "SELECT id, password_hash FROM users WHERE email = $1",
    "payment-gateway": "UPDATE inventory SET stock = stock - $1 WHERE sku = $2",
    "recommendation-engine": "SELECT sku, score FROM recommendations WHERE user_id = $1 LIMIT 20",
}
ERROR_STATUS = np.array([500, 502, 503, 504], dtype=np.int32)
BENIGN_4XX = np.array([400, 401, 404, 429], dtype=np.int32)


def _is_db(service: str) -> bool:
    return "db" in service


# columns each template part carries; the string columns that are picks from small pools
# (service, host, name, ...) are built once per chunk from integer codes after sorting
_OWN = ("time_ms", "end_time_ms", "start_time_unix_nano", "duration_ms", "trace_id", "span_id",
        "parent_span_id", "kind", "status_code", "http_status")
_OWN_SCHEMA = pa.schema([FLAT_SPAN.field(c) for c in _OWN])
_BY_POSITION = ("service", "name", "http_method", "http_path", "http_route", "db_statement")
_MARKERS = ("marker_type", "marker_label", "marker_root_cause", "marker_msg")


@dataclass
class SpanBatch:
    table: pa.Table  # FLAT_SPAN rows
    t_idx: np.ndarray  # step index of each span (for labels)
    h_idx: np.ndarray  # host index of each span
    is_error: np.ndarray
    is_db: np.ndarray


def trace_templates(topo: Topology) -> list[list[tuple[int, int]]]:
    """Request shapes: lists of (service index, parent position), parents first."""
    roots = [s for s in topo.services if not topo.upstream(s)] or topo.services[:1]
    out = []
    for root in roots:
        out.append([(topo.services.index(root), -1)])
        for first in topo.callees.get(root, []):
            spans = [(topo.services.index(root), -1)]

            def walk(svc: str, parent: int, depth: int):
                spans.append((topo.services.index(svc), parent))
                me = len(spans) - 1
                if depth < 4:
                    for c in topo.callees.get(svc, []):
                        walk(c, me, depth + 1)

            walk(first, 0, 1)
            out.append(spans)
    return out


def _span_name(topo, template, j) -> tuple[str | None, str | None, str]:
    svc = topo.services[template[j][0]]
    if template[j][1] < 0:
        first = topo.services[template[1][0]] if len(template) > 1 else None
        method, path = ROOT_ENDPOINTS.get(first, ("GET", f"/api/{first}"))
        return method, path, f"{method} {path}"
    if _is_db(svc):
        caller = topo.services[template[template[j][1]][0]]
        stmt = DB_STATEMENTS.get(caller, "SELECT 1")
        return None, None, stmt.split(" ", 1)[0] + " " + svc
    method, path = ENDPOINTS.get(svc, ("GET", f"/{svc}"))
    return method, path, f"{method} {path}"


def generate_traces(topo: Topology, st: ChunkState, seed: int, step_ms: int,
                    per_host_minute: float, markers: dict) -> SpanBatch:
    """Sampled traces for the chunk. ``markers``: fault index -> (type, label, root, msg)."""
    day = int(st.t_ms[0] // 86_400_000)
    rng = chunk_rng(seed, 3, day)
    templates = trace_templates(topo)
    T = len(st.t_ms)
    lat = st.values["latency_p95_ms"]
    err = st.values["error_rate_pct"] / 100.0
    req = st.values["request_rate"]
    roots = sorted({tpl[0][0] for tpl in templates})
    root_hosts = np.flatnonzero(np.isin(topo.host_service, roots))
    peak = np.array([topo.profile(topo.services[s])["rps"] for s in topo.host_service[root_hosts]])
    lam = per_host_minute * (step_ms / 60_000) * req[:, root_hosts] / (0.6 * peak)
    counts = rng.poisson(np.maximum(lam, 0.0))
    cell = np.repeat(np.arange(counts.size), counts.ravel())
    tr_t = cell // len(root_hosts)
    tr_h = root_hosts[cell % len(root_hosts)]
    # a template whose root matches the host's service
    weights = np.array([0.25 if len(tp) == 1 else 1.0 for tp in templates])
    tpl_of = np.empty(len(cell), dtype=np.int32)
    for s in roots:
        mine = np.flatnonzero([tp[0][0] == s for tp in templates])
        sel = topo.host_service[tr_h] == s
        w = weights[mine] / weights[mine].sum()
        tpl_of[sel] = mine[rng.choice(len(mine), size=int(sel.sum()), p=w)]
    tr_start = st.t_ms[tr_t] + rng.uniform(0, step_ms, len(cell))

    parts, t_parts, h_parts, e_parts, d_parts, p_parts, m_parts = [], [], [], [], [], [], []
    pos_pools = {c: [] for c in _BY_POSITION}  # per (template, position) values, all templates
    mk_keys = sorted(markers)
    marker_pools = {col: [None] + [markers[key][c_i] for key in mk_keys]
                    for c_i, col in enumerate(_MARKERS)}
    for k, tpl in enumerate(templates):
        sel = np.flatnonzero(tpl_of == k)
        n = len(sel)
        if n == 0:
            continue
        S = len(tpl)
        tt = tr_t[sel]
        hosts = np.empty((n, S), dtype=np.int64)
        for j, (s, parent) in enumerate(tpl):
            if parent < 0:
                hosts[:, j] = tr_h[sel]
            else:
                cand = np.flatnonzero(topo.host_service == s)
                hosts[:, j] = cand[rng.integers(0, len(cand), n)]
        has_child = np.array([any(p == j for _, p in tpl) for j in range(S)])
        median = lat[tt[:, None], hosts] / 1.78  # p95 / median of a lognormal with sigma 0.35
        self_ms = median * rng.lognormal(0.0, 0.35, (n, S)) * np.where(has_child, 0.4, 1.0)
        error = rng.random((n, S)) < err[tt[:, None], hosts]
        dur = self_ms.copy()
        for j in range(S - 1, 0, -1):  # children after parents: fold durations and errors up
            p = tpl[j][1]
            dur[:, p] += dur[:, j]
            error[:, p] |= error[:, j] & (rng.random(n) < 0.7)
        start = np.empty((n, S))
        start[:, 0] = tr_start[sel]
        cursor = {0: start[:, 0] + 0.3}
        for j in range(1, S):
            p = tpl[j][1]
            c = cursor.get(p, start[:, p] + 0.3)
            start[:, j] = c
            cursor[p] = c + dur[:, j] + 0.1
            cursor[j] = start[:, j] + 0.3
        trace_ids = hex_ids(rng, n, 16)
        span_ids = hex_ids(rng, n * S, 8)
        names = [_span_name(topo, tpl, j) for j in range(S)]
        svc_names = [topo.services[s] for s, _ in tpl]
        is_db = np.array([_is_db(s) for s in svc_names])
        status = np.where(error, ERROR_STATUS[rng.integers(0, 4, (n, S))], 200)
        benign = (rng.random(n) < 0.03) & ~error[:, 0]
        status[:, 0] = np.where(benign, BENIGN_4XX[rng.integers(0, 4, n)], status[:, 0])
        pos = np.tile(np.arange(S), n)
        parent_pos = np.array([p for _, p in tpl])
        tr_rep = np.repeat(np.arange(n), S)
        parent_flat = np.where(parent_pos[pos] >= 0, tr_rep * S + np.maximum(parent_pos[pos], 0), -1)
        parent_ids = pc.take(span_ids, pa.array(np.where(parent_flat < 0, 0, parent_flat)))
        parent_ids = pc.if_else(pa.array(parent_flat < 0), pa.scalar(None, pa.string()),
                                        parent_ids)
        hflat = hosts.ravel()
        s_ms = start.ravel()
        d_ms = dur.ravel()
        e_flat = error.ravel()
        db_flat = is_db[pos]
        http_status = np.where(db_flat, 0, status.ravel())
        fidx = st.fault_idx[np.repeat(tt, S), hflat]
        active = (fidx >= 0) & (st.phase[np.repeat(tt, S), hflat] == 1)
        mk = np.where(active, fidx, -1)
        lookup = np.full(len(st.faults) + 1, 0, dtype=np.int32)  # 0 -> null marker
        for i, key in enumerate(mk_keys):
            lookup[key + 1] = i + 1
        stmt = [DB_STATEMENTS.get(svc_names[tpl[j][1]], "SELECT 1") if is_db[j] else None
                for j in range(S)]
        base = len(pos_pools["service"])
        for col, values in (("service", svc_names), ("name", [nm for _, _, nm in names]),
                            ("http_method", [m for m, _, _ in names]),
                            ("http_path", [p for _, p, _ in names]),
                            ("http_route", [p for _, p, _ in names]), ("db_statement", stmt)):
            pos_pools[col] += values
        cols = {
            "time_ms": np.floor(s_ms).astype(np.int64),
            "end_time_ms": np.floor(s_ms + d_ms).astype(np.int64),
            "start_time_unix_nano": (s_ms * 1e6).astype(np.int64),
            "duration_ms": np.round(d_ms, 3),
            "trace_id": pc.take(trace_ids, pa.array(tr_rep)),
            "span_id": span_ids,
            "parent_span_id": parent_ids,
            "kind": pa.array(np.where(db_flat, 3, 2).astype(np.int8)),
            "status_code": pa.array(np.where(e_flat, 2, 0).astype(np.int8)),
            "http_status": pa.array(http_status.astype(np.int32), mask=db_flat),
        }
        parts.append(table_from(_OWN_SCHEMA, n * S, cols))
        t_parts.append(np.repeat(tt, S))
        h_parts.append(hflat)
        e_parts.append(e_flat)
        d_parts.append(db_flat)
        p_parts.append(base + pos)
        m_parts.append(lookup[mk + 1])
    if not parts:
        empty = FLAT_SPAN.empty_table()
        z = np.zeros(0, dtype=np.int64)
        return SpanBatch(empty, z, z, z.astype(bool), z.astype(bool))
    table = pa.concat_tables(parts)
    t_idx = np.concatenate(t_parts)
    # by step, then time: rows of a day are contiguous (day partitions are slices)
    order = np.lexsort((table.column("time_ms").to_numpy(), t_idx))
    table = table.take(order)
    h = np.concatenate(h_parts)[order]
    e = np.concatenate(e_parts)[order]
    d = np.concatenate(d_parts)[order]
    p = np.concatenate(p_parts)[order]
    m = np.concatenate(m_parts)[order]
    derived = {
        "host": pick(topo.hosts, h),
        "region": pick(topo.regions, topo.host_region[h]),
        "status_message": pick([None, "upstream request failed"], e.astype(np.int32)),
        "scope": pick(["obslab.synth.http", "obslab.synth.db"], d.astype(np.int32)),
        "server_address": pick(topo.hosts, h),
        "db_system": pick([None, "postgresql"], d.astype(np.int32)),
        **{col: pick(pos_pools[col], p) for col in _BY_POSITION},
        **{col: pick(marker_pools[col], m) for col in _MARKERS},
    }
    cols = {f.name: table.column(f.name) if f.name in _OWN else derived.get(f.name)
            for f in FLAT_SPAN}
    return SpanBatch(table_from(FLAT_SPAN, len(order), cols), t_idx[order], h, e, d)
