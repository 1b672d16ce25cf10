"""The windowed experiment shared by the detection, evaluation, RCA and serving chapters.

It drives data -> per-(service, window) features -> time split -> encoder training, and hands
back both feature matrices (embedding and raw) with the truth; :mod:`obslab.evaluate` keeps the
splits and metrics it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from obslab.evaluate import Split, split_by_time

__all__ = [
    "CLOCK_FEATURES",
    "WINDOW_CHOICES_MS",
    "WindowExperiment",
    "window_experiment",
    "auto_window_ms",
]

# time-of-day features: a short training period covers a sliver of the daily cycle, so later
# hours would look novel for no reason but the clock
CLOCK_FEATURES = ("hour_sin", "hour_cos")


@dataclass
class WindowExperiment:
    """Per-(service, window) rows of a dataset with truth, a split and both feature matrices."""

    frame: pd.DataFrame  # obslab.features.window_features rows
    labels: pd.DataFrame  # per-row truth (is_anomaly, incident_id, fault_id, phase)
    incidents: list
    split: Split
    encoder: object  # obslab.train.Encoder fitted on split.train rows only
    embeddings: np.ndarray  # every row, encoder output
    raw: np.ndarray  # every row, normalised numeric + one-hot categorical (the baseline)
    window_ms: int

    def other_run(self, root) -> dict[str, np.ndarray]:
        """Another dataset's windows through this experiment's encoder and feature spec:
        ``{"embedding": ..., "raw features": ...}`` keyed like :meth:`matrices`.

        For a no-fault control run: nothing is refitted on it. A metric that run never
        reported is missing there, not zero, so it takes the training median.
        """
        from obslab.detect import raw_feature_matrix
        from obslab.features import load_windows

        frame = load_windows(root, window_ms=self.window_ms)
        needed = self.encoder.spec.numeric + self.encoder.spec.categorical
        frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *needed])))
        x_num, x_cat = self.encoder.encode(frame)
        return {"embedding": self.encoder.embed(frame),
                "raw features": raw_feature_matrix(x_num, x_cat, self.encoder.spec.cardinalities)}

    def matrices(self, rows: str = "evaluate") -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{"embedding": (train, rows), "raw features": (train, rows)}`` for compare_methods."""
        m = getattr(self.split, rows)
        t = self.split.train
        return {"embedding": (self.embeddings[t], self.embeddings[m]), "raw features": (self.raw[t], self.raw[m])}


WINDOW_CHOICES_MS = (60_000, 30_000, 15_000, 10_000)


def _enough_training(times, incidents, phase, train_fraction, margin_ms, min_train_rows) -> Split:
    split, error, fraction = None, None, train_fraction
    keep_out = min(max(2, len(incidents) // 3), len(incidents))
    while fraction < 0.8:
        try:
            later = split_by_time(times, incidents, phase, train_fraction=fraction, margin_ms=margin_ms)
        except ValueError as exc:  # e.g. no normal rows yet before this cut-off
            error = exc
        else:
            # keep a third of the incidents (at least two) held out
            if split is not None and len(later.test_incidents) < keep_out:
                break
            split = later
            if split.train.sum() >= min_train_rows:
                break
        fraction = round(fraction + 0.1, 2)
    if split is None:
        raise error
    return split


def auto_window_ms(span_ms: int, min_windows: int = 120, choices: Sequence[int] = WINDOW_CHOICES_MS) -> int:
    """The longest window giving at least ``min_windows`` windows over ``span_ms`` (else the
    shortest choice). A 3-hour run gets 1-minute windows; a 20-minute sample with a fault every
    ~75 s gets 10-second windows, or too few windows would be free of faults to train on."""
    for w in sorted(choices, reverse=True):
        if span_ms / w >= min_windows:
            return int(w)
    return int(min(choices))


def window_experiment(root=None, *, window_ms: int | None = None, seed: int = 7, epochs: int = 30,
                      train_fraction: float = 0.4, margin_ms: int | None = None,
                      objective: str = "contrastive", name: str | None = None,
                      exclude: Sequence[str] = CLOCK_FEATURES,
                      min_train_rows: int = 60) -> WindowExperiment:
    """Load a dataset's windowed features and truth, split by time, fit (or reuse) the encoder.

    ``window_ms=None`` picks the window from the dataset's time span (:func:`auto_window_ms`).
    The encoder is trained on the training rows only, through ``obslab.train.Encoder.fit`` (so
    it is cached under ``name``, default ``windows-<seconds>s-encoder``, and every chapter that
    calls this with the same arguments reuses it). ``margin_ms`` (default: one window) keeps
    the windows right before an incident out of training. When the ``train_fraction`` split
    leaves fewer than ``min_train_rows`` normal training rows (short runs with frequent faults),
    the cut-off moves later in steps of 0.1 while a third of the incidents (at least two) stay
    in the test period.
    """
    from obslab.data import read_incidents, read_labels
    from obslab.detect import raw_feature_matrix
    from obslab.features import KEY_COLUMNS, load_windows, window_labels
    from obslab.train import Encoder

    if window_ms is None:
        times = read_labels(root).column("time").to_numpy()
        window_ms = auto_window_ms(int(times.max() - times.min()) if len(times) else 0)
    name = name or f"windows-{window_ms // 1000}s-encoder"
    frame = load_windows(root, window_ms=window_ms)
    incidents = read_incidents(root)
    labels = window_labels(frame, incidents, window_ms=window_ms)
    margin = window_ms if margin_ms is None else margin_ms
    try:
        split = _enough_training(frame["window_start_ms"].to_numpy(), incidents,
                                 labels["phase"].to_numpy(), train_fraction, margin, min_train_rows)
    except ValueError as exc:
        raise ValueError(f"{exc} (with {window_ms // 1000}-second windows; shorter windows leave "
                         f"more fault-free ones: try window_ms=None for the automatic choice)") from exc
    skip = set(KEY_COLUMNS) | set(exclude) | {"service"}
    numeric = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
    encoder = Encoder.fit(frame, split.train, name, numeric=numeric, categorical=["service"],
                          data_id=str(root or "default"), epochs=epochs, seed=seed, objective=objective)
    x_num, x_cat = encoder.encode(frame)
    return WindowExperiment(frame=frame, labels=labels, incidents=incidents, split=split,
                            encoder=encoder, embeddings=encoder.embed(frame),
                            raw=raw_feature_matrix(x_num, x_cat, encoder.spec.cardinalities),
                            window_ms=window_ms)
