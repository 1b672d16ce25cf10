"""How hard is the generated data? A raw-feature Isolation Forest on the per-host metrics.

Rows are (host, step) with the eight raw metric values; truth is "inside an incident's fault
phase on that host". A score near 1.0 would mean anomalies are trivially separable; the
generator aims well below that (benign spikes, noisy hosts, deploys, maintenance, mild
incidents).
"""

from __future__ import annotations

import numpy as np

from obslab.synth.config import SynthConfig
from obslab.synth.incidents import plan_run
from obslab.synth.metrics import METRICS, generate_chunk_metrics
from obslab.synth.topology import build_topology

__all__ = ["metric_matrix", "isolation_forest_auroc"]


def metric_matrix(cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """(X rows of raw metric values, y fault-phase truth) for the whole run, week by week."""
    topo = build_topology(cfg)
    plan = plan_run(cfg, topo)
    step_ms = cfg.step_s * 1000
    per_day = 86_400_000 // step_ms
    xs, ys = [], []
    for d in range(0, cfg.days, 7):
        n = min(7, cfg.days - d)
        st = generate_chunk_metrics(topo, plan, cfg.seed, cfg.start_ms + d * 86_400_000,
                                    per_day * n, step_ms, cfg.start_ms,
                                    cfg.benign_spike_probability)
        xs.append(np.stack([st.values[k] for k in METRICS], axis=-1).reshape(-1, len(METRICS)))
        ys.append((st.phase == 1).ravel())
    return np.concatenate(xs), np.concatenate(ys)


def isolation_forest_auroc(cfg: SynthConfig, random_state: int = 0) -> dict:
    """Fit an Isolation Forest on all rows (unsupervised), score them, AUROC against truth."""
    from sklearn.ensemble import IsolationForest
    from sklearn.metrics import average_precision_score, roc_auc_score

    X, y = metric_matrix(cfg)
    model = IsolationForest(n_estimators=100, random_state=random_state).fit(X)
    score = -model.score_samples(X)
    return {
        "rows": int(len(y)),
        "anomalous_fraction": float(y.mean()),
        "auroc": float(roc_auc_score(y, score)),
        "average_precision": float(average_precision_score(y, score)),
    }
