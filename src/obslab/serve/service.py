"""The daemon's state and operations, independent of HTTP: ingest, status, predictions."""

from __future__ import annotations

import datetime as dt
import operator
import time
from collections import defaultdict

import numpy as np
import orjson

from obslab.serve.model_store import ServerModel
from obslab.serve import _window
from obslab.serve._errors import clip
from obslab.serve.fleet import profile_of
from obslab.serve.schemas import METRIC_RANGES, METRICS, OcsfMetricEvent, ServerRecord, iso_ms as iso, timestamp_problem
from obslab.serve.store import RecordStore, RollingWindow, Row

__all__ = ["Daemon", "RecordError"]

_UTC = dt.timezone.utc
_NEAREST = 3  # neighbours and features shown per server
_VALUES = operator.attrgetter(*METRICS)  # one C call per record instead of 14 getattr
_METRIC_INDEX = {m: i for i, m in enumerate(METRICS)}


def _epoch_ms(t: dt.datetime) -> int:
    if t.tzinfo is None:  # documented: a timestamp without an offset is UTC
        t = t.replace(tzinfo=_UTC)
    return int(t.timestamp() * 1000)


class RecordError(Exception):
    """Records that passed schema validation but cannot be stored; nothing was stored."""

    def __init__(self, errors: list[dict]):
        super().__init__(f"{len(errors)} record error(s)")
        self.errors = errors


def _ocsf_rows(events: list[tuple[int, OcsfMetricEvent]]) -> tuple[list[tuple], list[dict]]:
    """Group OCSF metric events by (host, time) into full records; a group lacking a metric is an error."""
    groups: dict[tuple[str, int], dict] = defaultdict(lambda: {"values": {}, "status": None, "first": None})
    errors = []
    now_ms = int(time.time() * 1000)
    for i, ev in events:
        problem = timestamp_problem(ev.time, now_ms)
        if problem:
            errors.append({"record": i, "field": "time", "message": problem, "input": ev.time})
            continue
        if ev.host is None:
            errors.append({"record": i, "field": "unmapped.host", "message": "no server: set unmapped.host or device.hostname",
                           "input": None})
            continue
        g = groups[(ev.host, ev.time)]
        g["first"] = i if g["first"] is None else g["first"]
        m, v = ev.unmapped.metric, ev.unmapped.value
        lo, hi, _ = METRIC_RANGES[m]
        if not lo <= v <= hi:
            errors.append({"record": i, "field": "unmapped.value", "message": f"{m} must be in [{lo}, {hi}]", "input": v})
        g["values"][m] = v
        if ev.unmapped.status is not None:
            g["status"] = ev.unmapped.status.value
    rows = []
    for (host, ts), g in groups.items():
        missing = [m for m in METRICS if m not in g["values"]]
        if missing:
            errors.append({"record": g["first"], "field": "unmapped.metric",
                           "message": f"host {host!r} at time {ts} lacks metric(s): {', '.join(missing)}",
                           "input": sorted(g["values"])})
            continue
        rows.append((ts, host, g["status"], *(float(g["values"][m]) for m in METRICS)))
    return rows, errors


class Daemon:
    def __init__(self, model: ServerModel, store: RecordStore, window: int = 2880, warmup: int = 100):
        if not 1 <= warmup <= window:
            raise ValueError(f"warmup ({warmup}) must be between 1 and the window size ({window})")
        self.model, self.store = model, store
        self.window = RollingWindow(window)
        self.warmup = int(warmup)
        self.window.extend(store.newest(window))  # resume after a restart
        self._cache: tuple[int, bytes] | None = None
        self.last_prediction_ms: int | None = None

    # ---- ingest -------------------------------------------------------------------------
    def _progress(self) -> dict:
        n = min(len(self.window), self.warmup)
        return {"records": n, "required": self.warmup, "percent": round(100.0 * n / self.warmup, 1)}

    def _progress_text(self) -> str:
        """The guide's form: "45% (need 100 records minimum)"."""
        n = min(len(self.window), self.warmup)
        return f"{int(100 * n / self.warmup)}% (need {self.warmup} records minimum)"

    def warmup_complete(self) -> bool:
        return len(self.window) >= self.warmup

    def ingest(self, records: list) -> dict:
        if not records:
            return self._feed_response("ignored", 0, 0, reason="empty batch")
        rows, events, errors = [], [], []
        now_ms = int(time.time() * 1000)
        for i, rec in enumerate(records):
            if isinstance(rec, ServerRecord):
                ts = _epoch_ms(rec.timestamp)
                problem = timestamp_problem(ts, now_ms)
                if problem:
                    errors.append({"record": i, "field": "timestamp", "message": problem,
                                   "input": clip(rec.timestamp.isoformat())})
                rows.append((ts, rec.server_name, rec.status.value, *_VALUES(rec)))
            else:
                events.append((i, rec))
        if events:
            more, ocsf_errors = _ocsf_rows(events)
            errors += ocsf_errors
            rows += more
        if errors:
            raise RecordError(errors)
        self.window.extend(self.store.append(rows))
        status = "accepted" if self.warmup_complete() else "warming_up"
        return self._feed_response(status, len(records), len(rows))

    def _feed_response(self, status: str, received: int, stored: int, reason: str | None = None) -> dict:
        out = {
            "status": status,
            "records_received": received,
            "records_stored": stored,
            "tick": self.store.tick,
            "rolling_window_size": len(self.window),
            "window_capacity": self.window.capacity,
            "warmup_complete": self.warmup_complete(),
            "servers_tracked": len(self.window.latest),
        }
        if not out["warmup_complete"]:
            out["progress"] = self._progress_text()
            out["warmup"] = self._progress()
        if reason:
            out["reason"] = reason
        return out

    # ---- status ---------------------------------------------------------------------------
    def public_status(self) -> dict:
        """The guide's fields only: what a caller without a key may know."""
        return {
            "tick_count": self.store.tick,
            "last_prediction": None if self.last_prediction_ms is None else iso(self.last_prediction_ms),
            "warmup_complete": self.warmup_complete(),
            "rolling_window_size": len(self.window),
            "servers_tracked": len(self.window.latest),
            "progress": self._progress_text(),
        }

    def status(self) -> dict:
        meta = self.model.meta
        public = self.public_status()
        return {
            **public,
            "window_capacity": self.window.capacity,
            "ticks": self.store.tick,
            "records_total": self.store.total,
            "newest_timestamp": None if self.store.newest_ts is None else iso(self.store.newest_ts),
            "last_prediction_time": public["last_prediction"],
            "records_stored": self.store.stored(),
            "warmup": {"complete": self.warmup_complete(), **self._progress()},
            "model": {
                "model_id": meta["model_id"],
                "name": meta["name"],
                "created_at": meta["created_at"],
                "torch_version": meta["torch_version"],
                "trainer": meta.get("trainer"),
                "features": meta["features"],
                "threshold": meta["threshold"],
                "threshold_quantile": meta.get("threshold_quantile"),
                "k": meta.get("k"),
                "trained_on": meta["trained_on"],
                "thresholds": meta.get("thresholds"),
                "calibration": {k: v for k, v in (meta.get("calibration") or {}).items() if k != "initial"},
            },
        }

    # ---- predictions ------------------------------------------------------------------------
    def predictions_json(self) -> bytes:
        """Serialised predictions, recomputed only when the window has changed."""
        if self._cache is None or self._cache[0] != self.window.version:
            self._cache = (self.window.version, orjson.dumps(self.predictions()))
        return self._cache[1]

    def predictions(self) -> dict:
        now_ms = int(time.time() * 1000)
        base = {"generated_at": iso(now_ms), "tick": self.store.tick, "threshold": self.model.threshold,
                "window_thresholds": self.model.window_thresholds}
        if not self.warmup_complete():
            return {**base, "status": "warming_up", "progress": self._progress(),
                    "fleet": {"servers": len(self.window.latest), "flagged": 0, "flagged_servers": [],
                              "max_score": None, "mean_score": None},
                    "servers": []}
        rows = self.window.current()
        servers = self._score(rows)
        self.last_prediction_ms = now_ms
        flagged = [s["server_name"] for s in servers if s["flagged"]]
        scores = [s["score"] for s in servers]
        return {**base, "status": "ok",
                "fleet": {"servers": len(servers), "flagged": len(flagged), "flagged_servers": flagged,
                          "max_score": max(scores) if scores else None,
                          "mean_score": float(np.mean(scores)) if scores else None},
                "servers": servers}

    def _score(self, rows: list[Row]) -> list[dict]:
        if not rows:
            return []
        values, ts = RollingWindow.arrays(rows)
        x = self.model.normalise(values, ts)
        scores, dist, idx = self.model.score(x, _NEAREST)
        # why: per metric input, how far (in training z-units) the record sits from its nearest normal record
        columns = [c for c in self.model.encoder.spec.numeric if c in _METRIC_INDEX]
        inputs = [self.model.encoder.spec.numeric.index(c) for c in columns]
        deviation = np.abs(x[:, inputs] - self.model.reference_features[idx[:, 0]][:, inputs])
        out = []
        parts = self._window_parts(rows)
        for i, row in enumerate(rows):
            top = np.argsort(-deviation[i], kind="stable")[:_NEAREST]
            record_ratio = float(scores[i]) / self.model.threshold
            entry = {
                "server_name": row.server,
                "timestamp": iso(row.ts_ms),
                "status": row.status,
                "anomaly_score": float(scores[i]),
                "record_flag": bool(scores[i] > self.model.threshold),
                "nearest_normal": [
                    {"server_name": self.model.normal_ids[j][0], "timestamp": self.model.normal_ids[j][1],
                     "distance": float(d)}
                    for j, d in zip(idx[i, :_NEAREST], dist[i, :_NEAREST])
                ],
                "top_features": [self._contribution(columns[f], values[i], idx[i, 0], deviation[i, f])
                                 for f in top],
            }
            entry.update(self._window_score(row, record_ratio, parts[i]))
            out.append(entry)
        return out

    def _contribution(self, column: str, values: np.ndarray, ref: int, deviation: float) -> dict:
        m = _METRIC_INDEX[column]
        return {"feature": column, "value": float(values[m]),
                "normal_value": float(self.model.reference_values[ref, m]), "deviation": float(deviation)}

    def _window_parts(self, rows: list[Row]) -> list[tuple[dict, list[Row], np.ndarray | None, dict | None]]:
        """Per row: the window components (|z| per metric), the server's history, its transformed
        values and its profile. Histories of equal length are stacked: one numpy pass each."""
        parts: list = [({}, [], None, None)] * len(rows)
        if not self.model.window_thresholds:
            return parts
        groups: dict[int, list[int]] = defaultdict(list)
        histories, profiles = {}, {}
        for i, row in enumerate(rows):
            profiles[i] = self.model.profile(row.server)
            if profiles[i] is not None:
                histories[i] = self.window.history(row.server)[-_window.HISTORY:]
                groups[len(histories[i])].append(i)
        for members in groups.values():
            x = _window.transform(np.array([[r.values for r in histories[i]] for i in members],
                                           dtype=np.float64).reshape(-1, len(METRICS))).reshape(
                len(members), -1, len(_window.WINDOW_METRICS))
            keys = [k for k in ("median", "scale", "low", "high") if all(k in profiles[i] for i in members)]
            stacked = {key: np.array([profiles[i][key] for i in members]) for key in keys}
            comps = _window.components(x, stacked)
            for k, i in enumerate(members):
                parts[i] = ({c: z[k] for c, z in comps.items()}, histories[i], x[k], profiles[i])
        return parts

    def _window_score(self, row: Row, record_ratio: float, part) -> dict:
        """The server's recent window against its own history and its fleet profile; the score is
        the largest component over its threshold (1.0 = flag), the record score one of them."""
        comps, history, x, profile = part
        ratios = {"record": record_ratio}
        top_metrics: list[dict] = []
        for comp, z in comps.items():
            if np.isnan(z).all() or comp not in self.model.window_thresholds:  # older folders lack newer components
                continue
            ratio = z / self.model.window_thresholds[comp]
            ratios[comp] = float(np.nanmax(ratio))
            for m in np.argsort(-np.nan_to_num(ratio, nan=-1.0), kind="stable")[:_NEAREST]:
                top_metrics.append({"metric": _window.WINDOW_METRICS[m], "component": comp,
                                    "ratio": float(ratio[m]), "z": float(z[m]), "_index": int(m)})
        top_metrics.sort(key=lambda t: -t["ratio"])
        top_metrics = top_metrics[:_NEAREST]
        score = max(ratios.values())
        flagged = score > 1.0
        since_ts = None
        if flagged:
            if top_metrics and top_metrics[0]["ratio"] >= record_ratio:
                back = _window.since(x, top_metrics[0]["_index"], profile)
                since_ts = iso(history[-back].ts_ms)
            else:  # the latest record alone is unusual
                since_ts = iso(row.ts_ms)
        for t in top_metrics:
            del t["_index"]
        return {"score": score, "flagged": flagged, "flag": flagged, "since": since_ts,
                "profile": profile_of(row.server), "components": ratios, "top_metrics": top_metrics}
