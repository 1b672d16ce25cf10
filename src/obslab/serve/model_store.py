"""The daemon's model folder: the library's model folder plus the daemon's reference.

A model folder holds::

    model.pt, meta.json   written by obslab.train.save_model: the TabularResNet encoder and its
                          FeatureSpec over the record's inputs (obslab.serve.features), training
                          settings and history; obslab.train.load_model / Encoder.load read it as
                          they read any encoder the book exports
    serving.json          the daemon's part: k, the flag thresholds and how they were chosen, the
                          fleet profiles' statistics, the training data's identity, model_id
    reference.npz         the normal reference records (raw metrics, times, server names); their
                          embeddings are recomputed through the encoder on load

Record score = mean distance from a record's embedding to its k nearest reference embeddings
(``obslab.detect.KNNDetector``, exact faiss index). Thresholds: the record score's is first a
high quantile of the reference records' scores against *other* servers' records
(``_other_server_scores``), the window components' a high quantile over the training histories;
then, when a validation fleet is given (``obslab serve train`` always gives one), each of the
four is re-chosen on it so the union of flags stays near a target false-alarm rate
(``obslab.serve.evaluation.calibrate``). The held-out evaluation uses other fleets again.

An encoder folder without the daemon's part (``obslab.train.save_model`` alone) whose spec reads
record fields gets one with ``attach_reference`` (``obslab serve train --encoder DIR``, or
``obslab serve --model DIR`` at start); an encoder of other features (the book's OCSF window
encoder) is refused with the reason.

Choices measured on synthetic fleets (train 2 days, seed 0; score 2 days of seeds 100, 101):
the "masked" objective with raw (not L2-normalised) embeddings and 5 epochs flagged 0.1-0.3 %
of normal records and 40-42 % of fault records, every "offline" record among them. Contrastive
or "both", or normalised embeddings, caught 14-25 % and no offline record; 15 epochs, 4-9 %.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from obslab.detect import KNNDetector
from obslab.serve import _window
from obslab.serve.features import encode, fit_spec, spec_problem
from obslab.serve.fleet import PROFILES, profile_of
from obslab.serve.schemas import METRICS
from obslab.train import Encoder, embed, save_model, train_encoder, training_config

__all__ = ["ServerModel", "train_server_model", "attach_reference", "load_model", "frame_arrays",
           "NoReference", "SERVING_FILES"]

MAX_NORMALS = 20_000
SERVING_FILES = ("serving.json", "reference.npz")
_TRAIN = dict(batch_size=256, d_model=64, n_blocks=2, d_embedding=16, dropout=0.0)  # small: ms per request


class NoReference(FileNotFoundError):
    """An encoder folder that can score records but has no daemon reference yet."""


def frame_arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Raw metric values (n, 14) and epoch-ms times (n,) from a records frame."""
    ts = pd.to_datetime(df["timestamp"], utc=True)
    ts_ms = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return df[list(METRICS)].to_numpy(dtype=np.float64), ts_ms.to_numpy(dtype=np.int64)


@dataclass
class ServerModel:
    encoder: Encoder  # the library's encoder + FeatureSpec
    serving: dict
    reference_values: np.ndarray  # (n, 14) raw metrics of the normal reference records
    reference_ts: np.ndarray
    reference_servers: list
    meta: dict = field(init=False)

    def __post_init__(self):
        self.reference_features = self.normalise(self.reference_values, self.reference_ts)
        self.k = int(self.serving["k"])
        self.detector = KNNDetector(k=self.k).fit(self.embed(self.reference_features))
        self.set_thresholds(self.serving["thresholds"])
        self.profiles = self.serving.get("profiles", {})
        self.normal_ids = [[s, pd.Timestamp(int(t), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")]
                           for s, t in zip(self.reference_servers, self.reference_ts)]
        enc = self.encoder.meta
        self.meta = {**{k: v for k, v in self.serving.items() if k not in ("profiles",)},
                     "threshold": self.threshold, "created_at": enc.get("created"),
                     "torch_version": enc.get("torch_version"), "features": list(self.encoder.spec.numeric),
                     "trainer": self.serving.get("trainer")}

    def set_thresholds(self, thresholds: dict) -> None:
        self.threshold = float(thresholds["record"])
        self.detector.set_threshold(value=self.threshold)
        self.window_thresholds = {c: float(thresholds[c]) for c in _window.COMPONENTS if c in thresholds}

    def profile(self, server: str) -> dict | None:
        """Training statistics of the server's fleet profile (generic if its own was not seen)."""
        return self.profiles.get(profile_of(server)) or self.profiles.get("generic")

    @property
    def model_id(self) -> str:
        return self.serving["model_id"]

    def normalise(self, values: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        return encode(self.encoder.spec, values, ts_ms)

    @torch.inference_mode()
    def embed(self, x_norm: np.ndarray) -> np.ndarray:
        return embed(self.encoder.model, x_norm)

    def score(self, x_norm: np.ndarray, nearest: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anomaly scores (n,), distances (n, nearest) and indices (n, nearest) of the nearest
        reference records."""
        emb = self.embed(x_norm)
        d2, idx = self.detector.index_.search(np.ascontiguousarray(emb, dtype=np.float32), max(nearest, 1))
        return self.detector.score(emb), np.sqrt(np.maximum(d2, 0)), idx


def _other_server_scores(index, emb: np.ndarray, servers: np.ndarray, k: int) -> np.ndarray:
    """Each reference record's score against reference records of *other* servers only.

    Plain leave-one-out is far too optimistic: a record's nearest neighbours are the same
    server five minutes earlier and later, so a threshold fitted that way flags most records of
    a server the model has never seen. Calibrating against other servers fits the daemon's job,
    which is scoring fleets that were not all in the training data."""
    wide = min(len(emb), k + 64)
    d2, idx = index.search(emb, wide)
    dist = np.sqrt(np.maximum(d2, 0))
    other = (servers[np.clip(idx, 0, None)] != servers[:, None]) & (idx >= 0)
    scores = np.empty(len(emb), dtype=np.float64)
    for i in range(len(emb)):
        row = dist[i][other[i]][:k]
        scores[i] = row.mean() if len(row) else dist[i, 1 : k + 1].mean()  # one-server data: plain LOO
    return scores


def _data_identity(values: np.ndarray, ts_ms: np.ndarray, df: pd.DataFrame, source: dict | None) -> dict:
    digest = hashlib.sha256(np.ascontiguousarray(values).tobytes() + ts_ms.tobytes()).hexdigest()
    return {
        **(source or {}),
        "n_records": int(len(df)),
        "n_servers": int(df["server_name"].nunique()),
        "time_range": [pd.Timestamp(int(ts_ms.min()), unit="ms", tz="UTC").isoformat(),
                       pd.Timestamp(int(ts_ms.max()), unit="ms", tz="UTC").isoformat()],
        "sha256": digest,
    }


def _window_calibration(df: pd.DataFrame, values: np.ndarray, quantile: float) -> tuple[dict, dict]:
    """Per-profile statistics (every profile of the guide; one absent from the data borrows the
    pooled statistics) and each window component's threshold over the training servers."""
    x = _window.transform(values)
    prof = df["server_name"].map(profile_of).to_numpy()
    names = df["server_name"].to_numpy()
    pooled = _window.profile_stats(x, len(np.unique(names)))
    profiles = {p: (_window.profile_stats(x[prof == p], len(np.unique(names[prof == p])))
                    if (prof == p).sum() >= 10 else pooled) for p in PROFILES}
    order = np.argsort(pd.to_datetime(df["timestamp"], utc=True).to_numpy(), kind="stable")
    names = df["server_name"].to_numpy()[order]
    xs = x[order]
    histories = [(xs[names == s], profiles[profile_of(s)]) for s in np.unique(names)]
    return profiles, _window.calibrate(histories, quantile)


def _model_id(folder: Path, ref: dict, thresholds: dict) -> str:
    h = hashlib.sha256((folder / "model.pt").read_bytes())
    for key in ("values", "ts_ms", "servers"):
        h.update(np.ascontiguousarray(ref[key]).tobytes())
    h.update(json.dumps(thresholds, sort_keys=True).encode())
    return h.hexdigest()[:16]


def _write_serving(folder: Path, serving: dict, ref: dict) -> None:
    serving["model_id"] = _model_id(folder, ref, serving["thresholds"])
    (folder / "serving.json").write_text(json.dumps(serving, indent=2) + "\n")


def attach_reference(folder: str | Path, df: pd.DataFrame, seed: int = 0, k: int = 5, quantile: float = 0.995,
                     window_quantile: float = 0.9995, validation: pd.DataFrame | None = None,
                     target_rate: float = 0.005, source: dict | None = None, validation_source: dict | None = None,
                     name: str = "tabular-resnet-server-metrics") -> Path:
    """Give the encoder folder ``folder`` the daemon's part: reference records from normal
    records ``df``, thresholds (re-chosen on ``validation`` when given), profile statistics."""
    folder = Path(folder)
    encoder = Encoder.load(folder)
    problem = spec_problem(encoder.spec)
    if problem:
        raise ValueError(f"{folder}: cannot score server-metrics records: {problem}")
    values, ts_ms = frame_arrays(df)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(df), size=min(len(df), MAX_NORMALS), replace=False))
    servers = df["server_name"].to_numpy()[keep].astype(str)
    ref = {"values": values[keep], "ts_ms": ts_ms[keep], "servers": servers}
    emb = embed(encoder.model, encode(encoder.spec, ref["values"], ref["ts_ms"]))
    detector = KNNDetector(k=k).fit(emb)
    record = float(np.quantile(_other_server_scores(detector.index_, emb, servers, k), quantile))
    profiles, window_thresholds = _window_calibration(df, values, window_quantile)
    np.savez(folder / "reference.npz", **ref)
    serving = {
        "name": name,
        "format": 1,
        "trainer": encoder.meta.get("training", {}).get("trainer", "obslab.train.train_encoder"),
        "k": k,
        "threshold_quantile": quantile,
        "window_metrics": list(_window.WINDOW_METRICS),
        "window_quantile": window_quantile,
        "thresholds": {"record": record, **window_thresholds},
        "calibration": {"on": "training records", "record_quantile": quantile, "window_quantile": window_quantile},
        "profiles": profiles,
        "trained_on": _data_identity(values, ts_ms, df, source),
    }
    _write_serving(folder, serving, ref)
    if validation is not None:
        from obslab.serve.evaluation import calibrate  # replays through the Daemon, which needs this module

        chosen = calibrate(load_model(folder), validation, target_rate)
        serving["thresholds"] = chosen.pop("thresholds")
        serving["calibration"] = {"on": "validation fleet", **(validation_source or {}), **chosen,
                                  "initial": {"on": "training records", "thresholds": {"record": record,
                                                                                       **window_thresholds}}}
        _write_serving(folder, serving, ref)
    return folder


def train_server_model(
    df: pd.DataFrame,
    out_dir: str | Path,
    seed: int = 0,
    epochs: int = 5,
    objective: str = "masked",
    k: int = 5,
    quantile: float = 0.995,
    window_quantile: float = 0.9995,
    validation: pd.DataFrame | None = None,
    target_rate: float = 0.005,
    source: dict | None = None,
    validation_source: dict | None = None,
    name: str = "tabular-resnet-server-metrics",
) -> Path:
    """Train on normal server-metrics records ``df`` and write the model folder ``out_dir``."""
    out = Path(out_dir)
    values, ts_ms = frame_arrays(df)
    spec = fit_spec(values, ts_ms)
    x = encode(spec, values, ts_ms)
    settings = dict(objective=objective, epochs=epochs, seed=seed, **_TRAIN)
    model, history = train_encoder(x, None, spec, **settings)
    training = {**training_config(**settings), "rows": int(len(x)), "train_rows": history["train_rows"],
                "validation_rows": history["validation_rows"], "steps": history["steps"],
                "best_step": history["best_step"], "data_id": (source or {}).get("generator", ""),
                "trainer": f"obslab.train.train_encoder(objective={objective!r})"}
    save_model(out, model, spec, history, training)
    return attach_reference(out, df, seed=seed, k=k, quantile=quantile, window_quantile=window_quantile,
                            validation=validation, target_rate=target_rate, source=source,
                            validation_source=validation_source, name=name)


def load_model(model_dir: str | Path) -> ServerModel:
    """The daemon's model from a model folder (see the module's description); clear errors for
    a folder that is not one, an older daemon folder, and an encoder of other features."""
    path = Path(model_dir)
    if not (path / "meta.json").exists() or not (path / "model.pt").exists():
        raise FileNotFoundError(f"{path} is not a model folder (needs model.pt and meta.json); make one with "
                                f"`obslab serve train --from synth|PARQUET --out DIR`")
    meta = json.loads((path / "meta.json").read_text())
    if "feature_spec" not in meta:
        raise ValueError(f"{path} was written by an older `obslab serve train` (its own format); train it again "
                         f"with `obslab serve train --from synth|PARQUET --out DIR`")
    encoder = Encoder.load(path)
    problem = spec_problem(encoder.spec)
    if problem:
        raise ValueError(f"{path} holds an encoder the daemon cannot use: {problem}. The book's exported window "
                         f"encoder embeds OCSF window features; make a daemon model folder with "
                         f"`obslab serve train --from synth|PARQUET --out DIR`")
    missing = [f for f in SERVING_FILES if not (path / f).exists()]
    if missing:
        raise NoReference(f"{path} holds an encoder of record fields without the daemon's reference "
                          f"({', '.join(missing)}); add it with `obslab serve train --encoder {path} --from synth`")
    serving = json.loads((path / "serving.json").read_text())
    ref = np.load(path / "reference.npz", allow_pickle=False)
    return ServerModel(encoder=encoder, serving=serving, reference_values=ref["values"],
                       reference_ts=ref["ts_ms"], reference_servers=ref["servers"].tolist())

