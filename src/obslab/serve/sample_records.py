"""Server-metrics records for training and trying the daemon, from the project's generator.

``obslab.synth.server_metrics_with_labels`` makes a fleet with injected incidents and ground
truth beside it; the daemon's model trains on the normal phase only.
"""

from __future__ import annotations

import pandas as pd

from obslab.synth import server_metrics_with_labels

__all__ = ["normal_server_metrics", "labelled_server_metrics", "records_from_frame"]


def labelled_server_metrics(days: int = 2, step: str = "5m", seed: int = 0, n_servers: int = 10, **kwargs):
    """(records, labels) aligned row by row; labels never enter the records."""
    return server_metrics_with_labels(days=days, step=step, seed=seed, n_servers=n_servers, **kwargs)


def normal_server_metrics(days: int = 2, step: str = "5m", seed: int = 0, n_servers: int = 10, **kwargs) -> pd.DataFrame:
    """Records of the normal phase only (no fault, no cooldown): the training data."""
    records, labels = labelled_server_metrics(days, step, seed, n_servers, **kwargs)
    return records[(labels["phase"] == "normal").to_numpy()].reset_index(drop=True)


def records_from_frame(df: pd.DataFrame) -> list[dict]:
    """JSON-ready ``ServerRecord`` dicts (ISO 8601 timestamps) from a records frame."""
    out = df.copy()
    out["timestamp"] = pd.to_datetime(out["timestamp"], utc=True).dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    for name in ("back_close_wait", "front_close_wait"):
        out[name] = out[name].astype(int)
    return out.to_dict(orient="records")
