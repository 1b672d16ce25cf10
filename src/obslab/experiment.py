"""The windowed experiment shared by the detection, evaluation, RCA and serving chapters.

It drives data -> per-(service, window) features -> time split -> encoder training, and hands
back both feature matrices (embedding and raw) with the truth; :mod:`obslab.evaluate` keeps the
splits and metrics it uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from obslab.evaluate import Split, split_by_time, stack_splits
from obslab.truth import qualify

__all__ = [
    "CLOCK_FEATURES",
    "WINDOW_CHOICES_MS",
    "WindowExperiment",
    "window_experiment",
    "auto_window_ms",
    "MAX_TRAIN_FRACTION",
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
    seed: int = 7

    @property
    def runs(self) -> np.ndarray:
        """Each row's run name (one name for a plain dataset)."""
        return self.frame["run"].to_numpy()

    @property
    def n_kpis(self) -> int:
        """The numeric (KPI) columns come first in :attr:`raw`; one-hot service columns follow."""
        return len(self.encoder.spec.numeric)

    def other_run(self, root) -> dict[str, np.ndarray]:
        """Another dataset's windows through this experiment's encoder and feature spec:
        ``{"embedding": ..., "raw features": ...}`` keyed like :meth:`matrices`.

        For a no-fault control run: nothing is refitted on it. A metric that run never
        reported is missing there, not zero, so it takes the training median.
        """
        from obslab.detect import raw_feature_matrix
        from obslab.features import load_windows

        frame = pd.concat([load_windows(run, window_ms=self.window_ms) for run in _runs(root)],
                          ignore_index=True)
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
MAX_TRAIN_FRACTION = 0.7


def _runs(root):
    from obslab.data import dataset_runs

    return dataset_runs(root)


def _enough_training(times, incidents, phase, train_fraction, margin_ms, min_train_rows,
                     max_fraction: float = MAX_TRAIN_FRACTION) -> Split:
    """The first split, from ``train_fraction`` up in steps of 0.1 (at most ``max_fraction``),
    with ``min_train_rows`` normal training rows. Only the training side decides: how many
    incidents land in the test period, and how they score, never moves the cut-off."""
    split, error, fraction = None, None, train_fraction
    while fraction <= max_fraction + 1e-9:
        try:
            split = split_by_time(times, incidents, phase, train_fraction=fraction, margin_ms=margin_ms)
        except ValueError as exc:  # e.g. no normal rows yet before this cut-off
            error = exc
        else:
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


def _capped(mask: np.ndarray, cap: int) -> np.ndarray:
    # at most ``cap`` of the True rows, a fixed random choice (seed 0: the same for every seed)
    rows = np.flatnonzero(mask)
    if len(rows) <= cap:
        return mask
    out = np.zeros_like(mask)
    out[np.random.default_rng(0).choice(rows, cap, replace=False)] = True
    return out


def _span_ms(run) -> int:
    from obslab.data import read_labels

    times = read_labels(run).column("time").to_numpy()
    return int(times.max() - times.min()) if len(times) else 0


def _load_run(run, window_ms, train_fraction, margin_ms, min_train_rows):
    """One run's windows, truth and split, on its own clock (memoised per process while the
    run's files are unchanged: a sweep over training seeds reads a long run once)."""
    stamp = tuple((p.name, p.stat().st_mtime_ns) for p in sorted(Path(run).glob("*"))
                  if p.name.endswith((".parquet", ".json")))
    return _load_run_cached(str(run), stamp, window_ms, train_fraction, margin_ms, min_train_rows)


@lru_cache(maxsize=4)
def _load_run_cached(run, stamp, window_ms, train_fraction, margin_ms, min_train_rows):
    from obslab.data import read_incidents
    from obslab.features import load_windows, window_labels

    frame = load_windows(run, window_ms=window_ms)
    incidents = read_incidents(run)
    labels = window_labels(frame, incidents, window_ms=window_ms)
    try:
        split = _enough_training(frame["window_start_ms"].to_numpy(), incidents,
                                 labels["phase"].to_numpy(), train_fraction, margin_ms, min_train_rows)
    except ValueError as exc:
        raise ValueError(f"{run}: {exc} (with {window_ms // 1000}-second windows; shorter windows "
                         f"leave more fault-free ones: try window_ms=None for the automatic choice)") from exc
    return frame, labels, incidents, split


def window_experiment(root=None, *, window_ms: int | None = None, seed: int = 7, epochs: int = 30,
                      train_fraction: float = 0.4, margin_ms: int | None = None,
                      objective: str = "contrastive", name: str | None = None,
                      exclude: Sequence[str] = CLOCK_FEATURES,
                      min_train_rows: int = 60, max_encoder_rows: int = 20_000) -> WindowExperiment:
    """Load a dataset's windowed features and truth, split by time, fit (or reuse) the encoder.

    ``root`` is a dataset or a corpus (:func:`obslab.data.dataset_runs`). Each run is windowed,
    labelled and split on its own clock; the rows are stacked with a ``run`` column (in
    ``frame`` and ``labels``), and a corpus's incident ids become ``"<run>/<id>"``. One encoder
    is trained on the training rows of all runs.

    ``window_ms=None`` picks the window from the shortest run's time span
    (:func:`auto_window_ms`), never shorter than a synthetic dataset's sampling step. The encoder is trained on the training rows only, through
    ``obslab.train.Encoder.fit`` (so it is cached under ``name``, default
    ``windows-<seconds>s-encoder``, and every chapter that calls this with the same arguments
    reuses it). ``margin_ms`` (default: one window) keeps the windows right before an incident
    out of training. When the ``train_fraction`` split of a run leaves fewer than
    ``min_train_rows`` normal training rows (short runs with frequent faults), its cut-off
    moves later in steps of 0.1, up to ``MAX_TRAIN_FRACTION``; neither choice looks at the
    test period's labels. A long dataset fits its encoder (feature statistics and network) on
    a fixed random ``max_encoder_rows`` of the training rows, the same for every seed.
    """
    from obslab.data import dataset_step_ms
    from obslab.detect import raw_feature_matrix
    from obslab.features import KEY_COLUMNS
    from obslab.train import Encoder

    runs = _runs(root)
    corpus = len(runs) > 1 or runs[0] != Path(root or runs[0])
    if window_ms is None:
        window_ms = auto_window_ms(min(_span_ms(run) for run in runs))
        # a synthetic dataset samples every step: a shorter window would be mostly empty
        window_ms = max([window_ms, *(dataset_step_ms(run) or 0 for run in runs)])
    name = name or f"windows-{window_ms // 1000}s-encoder"
    margin = window_ms if margin_ms is None else margin_ms
    frames, labels, incidents, splits = [], [], [], {}
    for run in runs:
        f, lab, incs, sp = _load_run(run, window_ms, train_fraction, margin, min_train_rows)
        run_name = run.name
        if corpus:
            lab = lab.assign(incident_id=lab["incident_id"].map(
                lambda i, r=run_name: f"{r}/{i}" if pd.notna(i) and i else None))  # no incident stays None
            incs = qualify(incs, run_name)
        frames.append(f.assign(run=run_name))
        labels.append(lab.assign(run=run_name))
        incidents += incs
        splits[run_name] = sp
    frame = pd.concat(frames, ignore_index=True)
    labels = pd.concat(labels, ignore_index=True)
    split = stack_splits(splits, qualify=corpus)
    skip = set(KEY_COLUMNS) | set(exclude) | {"service", "run"}
    numeric = [c for c in frame.columns if c not in skip and pd.api.types.is_numeric_dtype(frame[c])]
    encoder = Encoder.fit(frame, _capped(split.train, max_encoder_rows), name, numeric=numeric,
                          categorical=["service"], data_id=str(root or "default"), epochs=epochs,
                          seed=seed, objective=objective)
    x_num, x_cat = encoder.encode(frame)
    return WindowExperiment(frame=frame, labels=labels, incidents=incidents, split=split,
                            encoder=encoder, embeddings=encoder.embed(frame),
                            raw=raw_feature_matrix(x_num, x_cat, encoder.spec.cardinalities),
                            window_ms=window_ms, seed=seed)
