"""The inputs of root-cause ranking for every run of a dataset (one run, or a corpus's runs).

Per run: the windowed experiment's rows of that run (features and truth; the encoder is the
one shared with the other chapters), the k-NN detector's anomaly score on every (service,
window) as one more evidence column, each incident's alert time (first detection, else the
true start: see :func:`obslab.rca.alert_times`) and the call graph from that run's traces.
Runs keep their own clocks; nothing is compared across runs except the per-incident results.

:func:`rca_seed_sweep` repeats the comparison for several training seeds; ``scripts/run_rca.py``
commits its per-incident table to ``data/results/rca_per_incident.csv``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from obslab.rca import NOT_EVIDENCE, alert_times, guess_signal

__all__ = ["RcaRun", "rca_runs", "evidence_columns", "rca_methods", "rca_per_incident",
           "rca_seed_sweep", "RESULT_COLUMNS", "read_rca_results"]

# what the committed table keeps per (dataset, seed, method, incident): no lists, no floats
# but the hits, so a re-run compares exactly
RESULT_COLUMNS = ["dataset", "seed", "method", "run", "incident", "fault_id", "root_cause",
                  "alert_source", "n_services", "rank_of_truth", "hit@1", "hit@3"]


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
        return dict(time_col="window_start_ms", before_ms=self.window_ms,
                    after_ms=2 * self.window_ms, baseline_ms=20 * self.window_ms)


def evidence_columns(windows: pd.DataFrame) -> dict[str, str]:
    """Every numeric feature column of a windows table with its signal (keys and clock left out)."""
    skip = {"service", "signal", *NOT_EVIDENCE}
    return {c: guess_signal(c) for c in windows.columns
            if c not in skip and pd.api.types.is_numeric_dtype(windows[c])}


def rca_runs(root=None, *, seed: int = 7, k: int = 5, quantile: float = 0.99,
             name: str | None = None) -> list[RcaRun]:
    """RCA inputs for every run of ``root`` (a dataset or a corpus, as
    :func:`obslab.data.dataset_runs` lists them).

    One :func:`obslab.experiment.window_experiment` (the encoder the other chapters cache, trained
    on every run's training windows); the k-NN detector is fitted on those training embeddings
    only. Each run then gets its own rows, incidents, alert times and call graph. ``name``: the
    encoder's cache name (default: the chapters' shared one).
    """
    from obslab.data import dataset_runs, read_signal
    from obslab.detect import make_detector
    from obslab.evaluate import per_incident_detection
    from obslab.experiment import window_experiment
    from obslab.rca import call_graph_from_ocsf

    ex = window_experiment(root, seed=seed, name=name)
    det = make_detector("knn", k=k).fit(ex.embeddings[ex.split.train])
    threshold = det.set_threshold(quantile)
    scored = ex.frame.assign(anomaly_score=det.score(ex.embeddings))
    # incident ids are unique across runs (a corpus qualifies them run/id): one pass finds all
    first = per_incident_detection(scored["anomaly_score"], scored["window_start_ms"],
                                   ex.labels["incident_id"], ex.labels["is_anomaly"], threshold,
                                   ex.incidents)
    starts = {inc.incident_id: inc.start_ms for inc in ex.incidents}
    detected = {r.incident_id: starts[r.incident_id] + int(r.delay_s * 1000)
                for r in first.itertuples() if r.detected and r.incident_id in starts}
    paths = dataset_runs(root)
    out = []
    for path in paths:
        rows = ((scored["run"] == path.name).to_numpy() if "run" in scored
                else np.ones(len(scored), bool))
        incidents = [i for i in ex.incidents
                     if len(paths) == 1 or i.incident_id.startswith(f"{path.name}/")]
        out.append(RcaRun(name=path.name, windows=scored[rows].reset_index(drop=True),
                          incidents=incidents,
                          edges=call_graph_from_ocsf(read_signal("traces", path)),
                          alerts=alert_times(incidents, detected), window_ms=ex.window_ms,
                          threshold=threshold))
    return out


def rca_methods(run: RcaRun, seed: int) -> dict[str, dict]:
    """The rankings every comparison runs: two trivial rules, the evidence from the signals with
    and without the call graph, the same with the anomaly score as one more column, and the
    anomaly score alone (:func:`obslab.rca.compare_rca` arguments)."""
    cols = evidence_columns(run.windows)
    signals_only = {c: s for c, s in cols.items() if s != "score"}
    return {
        "busiest service": dict(method="busiest"),
        "random": dict(method="random", seed=seed),
        "signals + call graph": dict(edges=run.edges, columns=signals_only),
        "signals, no graph": dict(columns=signals_only),
        "signals + score + call graph": dict(edges=run.edges, columns=cols),
        "signals + score, no graph": dict(columns=cols),
        "anomaly score only": dict(columns={"anomaly_score": "score"}),
    }


def rca_per_incident(runs: list[RcaRun], seed: int) -> pd.DataFrame:
    """Every method of :func:`rca_methods` on every incident of every run, stacked."""
    from obslab.rca import compare_rca

    return pd.concat([compare_rca(r.windows, r.incidents, rca_methods(r, seed),
                                  alert_times=r.alerts, run=r.name, **r.rca_kw) for r in runs],
                     ignore_index=True)


def rca_seed_sweep(root, seeds, dataset: str) -> pd.DataFrame:
    """:func:`rca_per_incident` for each training seed (each its own encoder, detector and alert
    times), in the committed table's columns (:data:`RESULT_COLUMNS`)."""
    # one cache slot per seed, so a sweep neither retrains nor evicts the chapters' encoder
    parts = [rca_per_incident(rca_runs(root, seed=seed, name=f"rca-{dataset}-seed{seed}"), seed)
             .assign(dataset=dataset, seed=seed) for seed in seeds]
    table = pd.concat(parts, ignore_index=True)
    table["rank_of_truth"] = table["rank_of_truth"].astype("Int64")
    return table[RESULT_COLUMNS]


def read_rca_results(folder=None) -> pd.DataFrame:
    """The committed per-incident table (``data/results/rca_per_incident.csv``), or an empty one."""
    from obslab.data import REPO_ROOT

    path = (REPO_ROOT / "data" / "results" if folder is None else folder) / "rca_per_incident.csv"
    if not path.exists():
        return pd.DataFrame(columns=RESULT_COLUMNS)
    return pd.read_csv(path, dtype={"rank_of_truth": "Int64"})
