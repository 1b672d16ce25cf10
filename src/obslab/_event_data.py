"""Events and KPI windows of every run of a dataset, with truth and the time split (no model).

Part of :mod:`obslab.events` (import from there). Per run: event rows
(:func:`obslab._event_rows.load_event_rows`), KPI windows (:func:`obslab.features.window_features`
from spans and logs), the window truth from the incident catalog, and the time split of
:func:`obslab.evaluate.split_by_time`; a corpus's runs are stacked with a ``run`` key and
run-qualified incident ids; the dataset's no-fault control run is appended, in no mask but its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from obslab._event_rows import load_event_rows
from obslab.evaluate import control_mask, split_by_time
from obslab.truth import Incident, qualify

__all__ = ["EventData", "load_event_data"]


@dataclass
class EventData:
    """Events and windows of every run with truth and the time split (no model yet)."""

    events: pd.DataFrame  # EVENT_NUMERIC + EVENT_CATEGORICAL + keys, run, window_start_ms
    event_train: np.ndarray  # bool per event: the normal training period
    windows: pd.DataFrame  # KPI window rows + run + truth (is_anomaly, incident_id, fault_id, phase)
    window_train: np.ndarray
    window_test: np.ndarray  # every window from its run's cut-off on
    window_evaluate: np.ndarray  # test windows minus cooldown
    window_control: np.ndarray  # test windows far from every incident
    window_control_run: np.ndarray  # windows of the separate no-fault control run, if any
    incidents: list  # run-qualified Incident objects
    held_out: list[str]  # incident ids after their run's cut-off
    window_ms: int
    name: str  # names cached encoders
    incident_run: dict = field(default_factory=dict)  # incident id -> run

    def normal_blocks(self) -> np.ndarray:
        """Per window: the normal stretch of its run it belongs to (between incident starts),
        the unit :class:`obslab.stats.Resampler` draws normal time in."""
        from obslab.stats import normal_blocks

        starts: dict[str, list[int]] = {}
        for inc in self.incidents:
            starts.setdefault(self.incident_run[inc.incident_id], []).append(inc.start_ms)
        w = self.windows
        return normal_blocks(w["window_start_ms"].to_numpy(), starts, w["run"].to_numpy())


def _kpi_windows(root: Path, window_ms: int) -> pd.DataFrame:
    # KPIs come from spans and logs; the metrics table of a long run is large and not needed
    from obslab.features import read_feature_columns, window_features

    return window_features(read_feature_columns("traces", root), read_feature_columns("logs", root),
                           None, window_ms)


def _one_run(root: Path, run: str | None, window_ms: int, train_fraction: float):
    from obslab.data import read_incidents
    from obslab.features import window_labels

    incidents = qualify(read_incidents(root), run)
    events = load_event_rows(root)
    events["window_start_ms"] = events["time_ms"] // window_ms * window_ms
    windows = _kpi_windows(root, window_ms)
    truth = window_labels(windows, incidents, window_ms=window_ms)
    windows = pd.concat([windows, truth], axis=1)
    split = split_by_time(windows["window_start_ms"].to_numpy(), incidents, truth["phase"].to_numpy(),
                          train_fraction=train_fraction, margin_ms=window_ms)
    t = events["time_ms"].to_numpy()
    event_train = (t < split.cutoff_ms) & control_mask(t, incidents, window_ms)
    for frame in (events, windows):
        frame.insert(0, "run", run or root.name)
    return events, event_train, windows, split, incidents, run or root.name


def _control_run(root: Path, window_ms: int):
    # the no-fault run beside the dataset: scored with everything fitted elsewhere, never fitted on
    from obslab.features import window_labels

    events = load_event_rows(root)
    events["window_start_ms"] = events["time_ms"] // window_ms * window_ms
    windows = _kpi_windows(root, window_ms)
    windows = pd.concat([windows, window_labels(windows, [], window_ms=window_ms)], axis=1)
    for frame in (events, windows):
        frame.insert(0, "run", "control")
    return events, windows


def load_event_data(root=None, *, window_ms: int | None = None, train_fraction: float = 0.4,
                    control: bool = True) -> EventData:
    """Every run of a dataset as events and KPI windows with truth, each run split by time.

    ``window_ms=None``: the window :func:`obslab.experiment.auto_window_ms` picks for the
    shortest run's time span (from event times only, never from labels). With ``control``,
    the dataset's no-fault control run (:func:`obslab.data.control_dataset`), when there is
    one, is appended as run ``"control"``: in no training, test or evaluation mask, only in
    ``window_control_run``, so every alert there is a false one.
    """
    from obslab.data import control_dataset, dataset_runs
    from obslab.experiment import auto_window_ms

    runs = dataset_runs(root)
    if window_ms is None:
        from obslab.features import read_feature_columns

        spans = []
        for r in runs:
            t = read_feature_columns("traces", r).column("time").to_numpy()
            spans.append(int(t.max() - t.min()) if len(t) else 0)
        window_ms = auto_window_ms(min(spans))
    parts = [_one_run(r, r.name if len(runs) > 1 else None, window_ms, train_fraction) for r in runs]
    splits = [p[3] for p in parts]
    events, windows = [p[0] for p in parts], [p[2] for p in parts]
    control_root = control_dataset(root) if control else None
    if control_root is not None:
        c_events, c_windows = _control_run(control_root, window_ms)
        events.append(c_events)
        windows.append(c_windows)
    n_extra = len(windows[-1]) if control_root is not None else 0

    def stack(masks):  # the control run's windows are in none of the split's masks
        return np.concatenate(masks + [np.zeros(n_extra, bool)])

    return EventData(
        events=pd.concat(events, ignore_index=True),
        event_train=np.concatenate([p[1] for p in parts] + [np.zeros(len(events[-1]) if n_extra else 0, bool)]),
        windows=pd.concat(windows, ignore_index=True),
        window_train=stack([s.train for s in splits]),
        window_test=stack([s.test for s in splits]),
        window_evaluate=stack([s.evaluate for s in splits]),
        window_control=stack([s.control for s in splits]),
        window_control_run=np.concatenate([np.zeros(sum(len(s.train) for s in splits), bool),
                                           np.ones(n_extra, bool)]),
        incidents=[inc for p in parts for inc in p[4]],
        held_out=[iid for s in splits for iid in s.test_incidents],
        window_ms=int(window_ms), name=Path(root or "default").resolve().name,
        incident_run={inc.incident_id: p[5] for p in parts for inc in p[4]})
