"""Model inputs for one server-metrics record: the numeric metrics and the time of day.

``status`` and ``server_name`` are deliberately absent: status is an operator annotation
(a label, in effect) and the server name would tie the model to one fleet.
"""

from __future__ import annotations

import numpy as np

from obslab.serve.schemas import METRICS

__all__ = ["FEATURES", "LOG_SCALED", "LOG_INDEX", "feature_matrix", "Normaliser"]

# heavy-tailed counters are compared on a log scale, so one busy server is not an outlier forever
LOG_SCALED = ("net_in_mb_s", "net_out_mb_s", "back_close_wait", "front_close_wait", "load_average", "uptime_days")
FEATURES: tuple[str, ...] = (*METRICS, "hour_sin", "hour_cos")
LOG_INDEX = [METRICS.index(m) for m in LOG_SCALED]
_DAY_MS = 86_400_000


def feature_matrix(values: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
    """(n, len(METRICS)) raw metric values and (n,) epoch-ms times -> (n, len(FEATURES)) float32."""
    values = np.asarray(values, dtype=np.float64)
    out = np.empty((len(values), len(FEATURES)), dtype=np.float64)
    out[:, : len(METRICS)] = values
    out[:, LOG_INDEX] = np.log1p(np.maximum(values[:, LOG_INDEX], 0))
    phase = 2 * np.pi * (np.asarray(ts_ms, dtype=np.int64) % _DAY_MS) / _DAY_MS
    out[:, -2] = np.sin(phase)
    out[:, -1] = np.cos(phase)
    return out.astype(np.float32)


class Normaliser:
    """z-scores with the training mean / std (std floored so constant columns stay finite)."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.maximum(np.asarray(std, dtype=np.float32), 1e-3)

    @classmethod
    def fit(cls, x: np.ndarray) -> "Normaliser":
        return cls(x.mean(axis=0), x.std(axis=0))

    def transform(self, x: np.ndarray) -> np.ndarray:
        # clipped: a wild value should read as "very far", not blow up the encoder
        return np.clip((x - self.mean) / self.std, -20, 20).astype(np.float32)

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}
