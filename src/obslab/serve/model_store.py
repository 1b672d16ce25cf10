"""The daemon's model folder: train it, save it, load it, score with it.

A model folder holds::

    model.pt               TabularResNet state_dict and constructor config
    meta.json              features, normalisation, k, threshold, training-data identity,
                           created_at, torch_version, model_id
    normal_embeddings.npy  embeddings of the normal training records (the index)
    normal_features.npy    their normalised features (to explain a score)
    normal_ids.json        server_name and timestamp of each normal record

Score = mean distance from a record's embedding to its k nearest normal embeddings (faiss,
exact L2). The flag threshold is a high quantile of the same score computed leave-one-out on
the training records against other servers' records (see ``_other_server_scores``).

Choices measured on synthetic fleets (train 2 days, seed 0; score 2 days of seeds 100, 101):
the "masked" objective with raw (not L2-normalised) embeddings and 5 epochs flagged 0.1-0.3 %
of normal records and 40-42 % of fault records, every "offline" record among them. Contrastive
or "both", or normalised embeddings, caught 14-25 % and no offline record; 15 epochs, 4-9 %.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
import torch

from obslab.model import TabularResNet
from obslab.serve import _window
from obslab.serve.features import FEATURES, Normaliser, feature_matrix
from obslab.serve.fleet import PROFILES, profile_of
from obslab.serve.schemas import METRICS

__all__ = ["ServerModel", "train_server_model", "load_model", "frame_arrays"]

MAX_NORMALS = 20_000


def frame_arrays(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Raw metric values (n, 14) and epoch-ms times (n,) from a records frame."""
    ts = pd.to_datetime(df["timestamp"], utc=True)
    ts_ms = (ts - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    return df[list(METRICS)].to_numpy(dtype=np.float64), ts_ms.to_numpy(dtype=np.int64)


@dataclass
class ServerModel:
    encoder: TabularResNet
    meta: dict
    normaliser: Normaliser
    normal_embeddings: np.ndarray
    normal_features: np.ndarray
    normal_ids: list

    def __post_init__(self):
        self.index = faiss.IndexFlatL2(self.normal_embeddings.shape[1])
        self.index.add(self.normal_embeddings)
        self.k = int(self.meta.get("k", 5))
        self.threshold = float(self.meta["threshold"])
        # window scoring (models trained before it have none: record score only)
        self.profiles = self.meta.get("profiles", {})
        self.window_thresholds = self.meta.get("window_thresholds", {})

    def profile(self, server: str) -> dict | None:
        """Training statistics of the server's fleet profile (generic if its own was not seen)."""
        return self.profiles.get(profile_of(server)) or self.profiles.get("generic")

    @property
    def model_id(self) -> str:
        return self.meta["model_id"]

    def normalise(self, values: np.ndarray, ts_ms: np.ndarray) -> np.ndarray:
        return self.normaliser.transform(feature_matrix(values, ts_ms))

    @torch.inference_mode()
    def embed(self, x_norm: np.ndarray) -> np.ndarray:
        return self.encoder(torch.as_tensor(x_norm)).numpy().astype(np.float32)

    def search(self, emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Distances (L2, not squared) and indices of the k nearest normal embeddings."""
        d2, idx = self.index.search(np.ascontiguousarray(emb, dtype=np.float32), k)
        return np.sqrt(np.maximum(d2, 0)), idx

    def score(self, x_norm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Anomaly scores (n,), neighbour distances (n, k) and indices (n, k)."""
        dist, idx = self.search(self.embed(x_norm), self.k)
        return dist.mean(axis=1), dist, idx


def _train_encoder(x: np.ndarray, seed: int, epochs: int, objective: str) -> tuple[TabularResNet, dict]:
    from obslab.train import train_encoder

    # small encoder: the daemon embeds a few dozen rows per request and must answer in ms
    return train_encoder(x, None, objective=objective, epochs=epochs, batch_size=256, seed=seed,
                         d_model=64, n_blocks=2, d_embedding=16, dropout=0.0)


def _data_identity(values: np.ndarray, ts_ms: np.ndarray, df: pd.DataFrame, source: dict | None) -> dict:
    digest = hashlib.sha256(np.ascontiguousarray(values).tobytes() + ts_ms.tobytes()).hexdigest()
    return {
        **(source or {}),
        "n_records": int(len(df)),
        "n_servers": int(df["server_name"].nunique()),
        "time_range": [
            pd.Timestamp(int(ts_ms.min()), unit="ms", tz="UTC").isoformat(),
            pd.Timestamp(int(ts_ms.max()), unit="ms", tz="UTC").isoformat(),
        ],
        "sha256": digest,
    }


def _other_server_scores(index, emb: np.ndarray, servers: np.ndarray, k: int) -> np.ndarray:
    """Each training record's score against normal records of *other* servers only.

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


def _window_calibration(df: pd.DataFrame, values: np.ndarray, quantile: float) -> tuple[dict, dict]:
    """Per-profile statistics (every profile of the guide; one absent from the data borrows the
    pooled statistics) and each window component's threshold over the training servers."""
    x = _window.transform(values)
    prof = df["server_name"].map(profile_of).to_numpy()
    pooled = _window.profile_stats(x)
    profiles = {p: (_window.profile_stats(x[prof == p]) if (prof == p).sum() >= 10 else pooled) for p in PROFILES}
    order = np.argsort(pd.to_datetime(df["timestamp"], utc=True).to_numpy(), kind="stable")
    names = df["server_name"].to_numpy()[order]
    xs = x[order]
    histories = [(xs[names == s], profiles[profile_of(s)]) for s in np.unique(names)]
    return profiles, _window.calibrate(histories, quantile)


def train_server_model(
    df: pd.DataFrame,
    out_dir: str | Path,
    seed: int = 0,
    epochs: int = 5,
    objective: str = "masked",
    k: int = 5,
    quantile: float = 0.995,
    window_quantile: float = 0.9995,
    source: dict | None = None,
    name: str = "tabular-resnet-server-metrics",
) -> Path:
    """Train on normal server-metrics records ``df`` and write the model folder ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    values, ts_ms = frame_arrays(df)
    feats = feature_matrix(values, ts_ms)
    normaliser = Normaliser.fit(feats)
    x = normaliser.transform(feats)
    encoder, history = _train_encoder(x, seed, epochs, objective)

    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(x), size=min(len(x), MAX_NORMALS), replace=False))
    with torch.inference_mode():
        emb = encoder(torch.as_tensor(x[keep])).numpy().astype(np.float32)
    index = faiss.IndexFlatL2(emb.shape[1])
    index.add(emb)
    servers = df["server_name"].to_numpy()[keep]
    loo_scores = _other_server_scores(index, emb, servers, k)

    torch.save({"state_dict": encoder.state_dict(), "config": encoder.config}, out / "model.pt")
    np.save(out / "normal_embeddings.npy", emb)
    np.save(out / "normal_features.npy", x[keep])
    ids = [[str(s), pd.Timestamp(int(t), unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")] for s, t in
           zip(df["server_name"].to_numpy()[keep], ts_ms[keep])]
    (out / "normal_ids.json").write_text(json.dumps(ids))
    profiles, window_thresholds = _window_calibration(df, values, window_quantile)
    model_id = hashlib.sha256((out / "model.pt").read_bytes()).hexdigest()[:16]
    meta = {
        "name": name,
        "model_id": model_id,
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "trainer": f"obslab.train.train_encoder(objective={objective!r})",
        "seed": seed,
        "epochs": epochs,
        "losses": [round(v, 5) for v in history["loss"]],
        "features": list(FEATURES),
        "normalisation": normaliser.to_dict(),
        "k": k,
        "threshold_quantile": quantile,
        "threshold": float(np.quantile(loo_scores, quantile)),
        "profiles": profiles,
        "window_metrics": list(_window.WINDOW_METRICS),
        "window_quantile": window_quantile,
        "window_thresholds": window_thresholds,
        "trained_on": _data_identity(values, ts_ms, df, source),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    return out


def load_model(model_dir: str | Path) -> ServerModel:
    path = Path(model_dir)
    if (path / "meta.json").exists() and "feature_spec" in json.loads((path / "meta.json").read_text()):
        raise ValueError(f"{path} is an encoder exported by the book (obslab.train.save_model): it embeds OCSF "
                         "window features, not server-metrics records; make a daemon model folder with "
                         f"`obslab serve train --from synth|PARQUET --out DIR`")
    missing = [f for f in ("model.pt", "meta.json", "normal_embeddings.npy", "normal_features.npy", "normal_ids.json")
               if not (path / f).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a daemon model folder: missing {', '.join(missing)}")
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("features") != list(FEATURES):
        raise ValueError(f"{path}: model features {meta.get('features')} differ from this daemon's {list(FEATURES)}")
    saved = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    encoder = TabularResNet(**saved["config"])
    encoder.load_state_dict(saved["state_dict"])
    encoder.eval()
    norm = meta["normalisation"]
    return ServerModel(
        encoder=encoder,
        meta=meta,
        normaliser=Normaliser(norm["mean"], norm["std"]),
        normal_embeddings=np.load(path / "normal_embeddings.npy"),
        normal_features=np.load(path / "normal_features.npy"),
        normal_ids=json.loads((path / "normal_ids.json").read_text()),
    )
