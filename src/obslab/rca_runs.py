"""The inputs of root-cause ranking for every run of a dataset (one run, or a corpus's runs).

Per run: the windowed experiment (features, truth, the encoder trained on that run's own
training windows), the k-NN detector's anomaly score on every (service, window) as one more
evidence column, each incident's alert time (first detection, else the true start: see
:func:`obslab.rca.alert_times`) and the call graph from that run's traces. Runs keep their own
clocks; nothing is compared across runs except the per-incident results.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from obslab.rca import NOT_EVIDENCE, alert_times, guess_signal

__all__ = ["RcaRun", "rca_run", "rca_runs", "evidence_columns"]


@dataclass
class RcaRun:
    name: str  # the run's folder name (incidents are keyed run/incident_id)
    windows: pd.DataFrame  # per-(service, window) features plus ``anomaly_score``
    incidents: list
    edges: pd.DataFrame  # caller -> callee from this run's traces
    alerts: pd.DataFrame  # obslab.rca.alert_times: incident_id, alert_ms, alert_source
    window_ms: int
    threshold: float  # the detector's alert threshold (quantile of its training scores)

    @property
    def rca_kw(self) -> dict:
        """Alert window one window before to two after the alert; baseline the 20 windows before."""
        return dict(time_col="window_start_ms", before_ms=self.window_ms, after_ms=2 * self.window_ms,
                    baseline_ms=20 * self.window_ms)


def evidence_columns(windows: pd.DataFrame) -> dict[str, str]:
    """Every numeric feature column of a windows table with its signal (keys and clock left out)."""
    skip = {"service", "signal", *NOT_EVIDENCE}
    return {c: guess_signal(c) for c in windows.columns
            if c not in skip and pd.api.types.is_numeric_dtype(windows[c])}


def rca_run(root, *, seed: int = 7, k: int = 5, quantile: float = 0.99) -> RcaRun:
    """One run's RCA inputs; the detector is fitted on that run's training embeddings only."""
    from pathlib import Path

    from obslab.data import read_signal
    from obslab.detect import make_detector
    from obslab.evaluate import per_incident_detection
    from obslab.experiment import window_experiment
    from obslab.rca import call_graph_from_ocsf

    ex = window_experiment(root, seed=seed)
    det = make_detector("knn", k=k).fit(ex.embeddings[ex.split.train])
    threshold = det.set_threshold(quantile)
    windows = ex.frame.copy()
    windows["anomaly_score"] = det.score(ex.embeddings)
    first = per_incident_detection(windows["anomaly_score"], windows["window_start_ms"],
                                   ex.labels["incident_id"], ex.labels["is_anomaly"], threshold, ex.incidents)
    starts = {inc.incident_id: inc.start_ms for inc in ex.incidents}
    detected = {r.incident_id: starts[r.incident_id] + int(r.delay_s * 1000)
                for r in first.itertuples() if r.detected and r.incident_id in starts}
    return RcaRun(name=Path(root).name, windows=windows, incidents=ex.incidents,
                  edges=call_graph_from_ocsf(read_signal("traces", root)),
                  alerts=alert_times(ex.incidents, detected), window_ms=ex.window_ms, threshold=threshold)


def rca_runs(root=None, *, seed: int = 7, **kwargs) -> list[RcaRun]:
    """:func:`rca_run` for every run of ``root`` (:func:`obslab.data.dataset_runs`)."""
    from obslab.data import dataset_runs

    return [rca_run(path, seed=seed, **kwargs) for path in dataset_runs(root)]
