"""Model inputs for server-metrics records, encoded with the library's ``FeatureSpec``.

A record's candidate inputs (``RECORD_INPUTS``) are its 14 numeric metrics and the time of day
(``hour_sin``, ``hour_cos``). ``status`` and ``server_name`` are deliberately absent: status is an
operator annotation (a label, in effect) and the server name would tie the model to one fleet.
The daemon's own encoder (``FEATURES``) leaves out ``uptime_days`` too: it only grows, and a
server rebooted three days ago is not anomalous, but on validation fleets the k-NN score flagged
such servers all day (few training servers had so short an uptime). Heavy-tailed counters are
log-compressed. An encoder fitted elsewhere (``obslab.train.Encoder.fit`` on a records frame) may
use any subset of the candidates; its spec decides.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from obslab.features import FeatureSpec, fit_features, transform
from obslab.serve.schemas import METRICS

__all__ = ["FEATURES", "RECORD_INPUTS", "LOG_SCALED", "LOG_INDEX", "CLIP", "record_frame", "fit_spec", "encode", "spec_problem"]

# heavy-tailed counters are compared on a log scale, so one busy server is not an outlier forever
LOG_SCALED = ("net_in_mb_s", "net_out_mb_s", "back_close_wait", "front_close_wait", "load_average", "uptime_days")
RECORD_INPUTS: tuple[str, ...] = (*METRICS, "hour_sin", "hour_cos")
FEATURES: tuple[str, ...] = tuple(c for c in RECORD_INPUTS if c != "uptime_days")
LOG_INDEX = [METRICS.index(m) for m in LOG_SCALED]
CLIP = 20.0  # a wild value should read as "very far", not blow up the encoder
_DAY_MS = 86_400_000


def record_frame(values: np.ndarray, ts_ms: np.ndarray) -> pd.DataFrame:
    """(n, 14) raw metric values and (n,) epoch-ms times -> a frame of every candidate input."""
    frame = pd.DataFrame(np.asarray(values, dtype=np.float64).reshape(-1, len(METRICS)), columns=list(METRICS))
    phase = 2 * np.pi * (np.asarray(ts_ms, dtype=np.int64) % _DAY_MS) / _DAY_MS
    frame["hour_sin"] = np.sin(phase)
    frame["hour_cos"] = np.cos(phase)
    return frame


def fit_spec(values: np.ndarray, ts_ms: np.ndarray) -> FeatureSpec:
    """The daemon encoder's spec, fitted on normal training records (median / IQR scaling)."""
    return fit_features(record_frame(values, ts_ms), numeric=list(FEATURES), categorical=[],
                        log1p=[c for c in LOG_SCALED if c in FEATURES], clip=CLIP)


def encode(spec: FeatureSpec, values: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """The encoder's numeric input (n, len(spec.numeric)) float32."""
    return transform(spec, record_frame(values, ts_ms))[0]


def spec_problem(spec: FeatureSpec) -> str | None:
    """Why an encoder cannot score server-metrics records, or None."""
    foreign = [c for c in spec.numeric if c not in RECORD_INPUTS]
    if spec.categorical or foreign:
        cols = foreign + list(spec.categorical)
        return (f"its FeatureSpec reads {len(cols)} column(s) a server-metrics record does not have "
                f"({', '.join(cols[:6])}{', ...' if len(cols) > 6 else ''}); records carry {', '.join(RECORD_INPUTS)}")
    if not spec.numeric:
        return "its FeatureSpec has no input columns"
    return None
