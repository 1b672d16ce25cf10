"""Self-supervised training of TabularResNet encoders, embedding, saving and the training cache.

API (stable: detection, evaluation and the daemon code against it)::

    train_encoder(x_num, x_cat=None, spec=None, objective="contrastive"|"masked"|"both",
                  epochs=100, batch_size=256, seed=0, lr=1e-3, corruption=0.3, noise_std=0.1,
                  temperature=0.2, validation=0.2, check_every=50, patience=5, min_steps=500,
                  budget_steps=2000, min_delta=1e-3, restore_best=True, threads=1, **model_kwargs)
                  -> (model in eval mode, history)
        model_kwargs go to TabularResNet (d_model, n_blocks, d_embedding, d_cat, dropout, ...);
        cardinalities come from spec (or x_cat's maxima without one); x_cat=None: numeric only.
        A seeded ``validation`` share of the rows is held out; at least min_steps optimiser
        steps, then early stopping on the validation loss (checked every check_every steps,
        patience in checks), best weights restored. history per check: "step", "epoch",
        "loss" (training), "val_loss", "contrastive", "masked", "val_contrastive",
        "val_masked"; and "steps", "best_step", "stopped_early", "train_rows",
        "validation_rows", "seconds".
    training_config(**train_kwargs) -> every setting of a run, defaults filled in (cache keys)
        threads=1: torch runs single-threaded while training (much faster on a busy 2-core box
        for a model this small); threads=None keeps torch's setting. Restored afterwards.
    embed(model, x_num, x_cat) -> np.ndarray float32 [n, d_embedding]
    save_model(path, model, spec, history=None, training=None) / load_model(path) -> (model, spec, meta)
        a model folder: model.pt (encoder state_dict) + meta.json (config, feature_spec,
        training: every setting (training_config), rows/steps/best step, data fingerprint/data id,
        history, created, torch version)
    load_or_train(name, x_num, x_cat, spec, data_id="", **train_kwargs) -> (model, meta)
        reuses cache_dir()/models/<name> when it was trained on the same arrays with the same
        settings (defaults included), else trains (deterministically) and saves it there
    train_supervised(model, x_num, x_cat, y, epochs=30, ...) -> history   (the ResNet chapter's
        residual-vs-plain experiment; not part of the anomaly pipeline)
    Encoder.fit(frame, train_mask, name, numeric=None, categorical=None, **train_kwargs)
        fit_features on the training rows + load_or_train; Encoder.load(path);
        enc.encode(frame) -> (x_num, x_cat); enc.embed(frame) -> embeddings; enc.path, enc.meta

Objectives. "contrastive": two views of each row, each made by SCARF-style corruption (a share
of cells replaced by the same column of random other rows) plus gaussian noise on numeric
cells; a projection head and the NT-Xent (InfoNCE) loss pull the two views of a row together
and push other rows away. "masked": a share of cells is corrupted the same way and heads on
the embedding predict the original values (MSE for numeric, cross-entropy for categorical) at
the corrupted cells. "both": the sum. Only the encoder is kept; the heads are training aids.

Determinism: the same seed gives identical weights and embeddings on one machine
(torch.manual_seed, seeded generators for the validation rows, the batch order and the
augmentations, torch.use_deterministic_algorithms).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from obslab.features import FeatureSpec, fit_features, transform
from obslab.model import TabularResNet

__all__ = [
    "OBJECTIVES",
    "Encoder",
    "SelfSupervisedHeads",
    "scarf_corrupt",
    "nt_xent",
    "train_encoder",
    "train_supervised",
    "embed",
    "save_model",
    "load_model",
    "load_or_train",
    "training_config",
    "data_fingerprint",
]

OBJECTIVES = ("contrastive", "masked", "both")
FORMAT_VERSION = 1


class SelfSupervisedHeads(nn.Module):
    """Training-only heads on the embedding: a projection for NT-Xent and reconstruction heads."""

    def __init__(self, d_embedding: int, n_numeric: int, cat_cardinalities, d_projection: int = 32):
        super().__init__()
        self.projection = nn.Sequential(
            nn.Linear(d_embedding, d_embedding), nn.ReLU(), nn.Linear(d_embedding, d_projection)
        )
        self.numeric = nn.Linear(d_embedding, n_numeric) if n_numeric else None
        self.categorical = nn.ModuleList(nn.Linear(d_embedding, c + 1) for c in cat_cardinalities)


def scarf_corrupt(x_num, x_cat, rate: float, generator: torch.Generator):
    """Replace each cell with probability ``rate`` by the same column of a random row of the
    batch (SCARF): corrupted values stay realistic per column. Returns the corrupted tensors and
    the boolean masks of replaced cells."""
    n = x_num.shape[0]

    def swap(x):
        mask = torch.rand(x.shape, generator=generator) < rate
        donors = torch.randint(0, n, x.shape, generator=generator)
        return torch.where(mask, torch.gather(x, 0, donors), x), mask

    num, mask_num = swap(x_num)
    cat, mask_cat = swap(x_cat)
    return num, cat, mask_num, mask_cat


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.2) -> torch.Tensor:
    """NT-Xent / InfoNCE: row i of z1 must pick row i of z2 among all other 2n-2 views."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = (z @ z.T) / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, targets)


def _masked_loss(heads, emb, x_num, x_cat, mask_num, mask_cat) -> torch.Tensor:
    loss = emb.new_zeros(())
    if heads.numeric is not None and mask_num.any():
        err = (heads.numeric(emb) - x_num) ** 2
        loss = loss + (err * mask_num).sum() / mask_num.sum()
    for j, head in enumerate(heads.categorical):
        rows = mask_cat[:, j]
        if rows.any():
            loss = loss + F.cross_entropy(head(emb[rows]), x_cat[rows, j])
    return loss


@contextmanager
def _deterministic(threads: int | None = 1):
    # small models gain nothing from intra-op threads and lose a lot on a shared 2-core box
    before = torch.are_deterministic_algorithms_enabled()
    before_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before)
        torch.set_num_threads(before_threads)


def _as_tensors(x_num, x_cat):
    x_num = torch.as_tensor(np.asarray(x_num, dtype=np.float32))
    if x_cat is None:
        x_cat = np.zeros((x_num.shape[0], 0), dtype=np.int64)
    x_cat = torch.as_tensor(np.asarray(x_cat, dtype=np.int64))
    if x_num.ndim != 2 or x_cat.ndim != 2 or x_num.shape[0] != x_cat.shape[0]:
        raise ValueError(f"x_num {tuple(x_num.shape)} and x_cat {tuple(x_cat.shape)} must be 2-D with equal rows")
    return x_num, x_cat


def _split_validation(n: int, validation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, validation) row indices; no validation rows when it would leave fewer than
    two rows on either side (a contrastive batch needs negatives)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = int(round(validation * n))
    if n_val < 2 or n - n_val < 2:
        return np.sort(order), np.zeros(0, dtype=np.int64)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _batch_losses(model, heads, xb_num, xb_cat, objective, corruption, noise_std, temperature,
                  generator):
    """The self-supervised losses of one batch ({"contrastive": ..., "masked": ...})."""
    losses = {}
    if objective in ("contrastive", "both"):
        views = []
        for _ in range(2):
            num, cat, _, _ = scarf_corrupt(xb_num, xb_cat, corruption, generator)
            num = num + noise_std * torch.randn(num.shape, generator=generator)
            views.append(heads.projection(model(num, cat)))
        losses["contrastive"] = nt_xent(views[0], views[1], temperature)
    if objective in ("masked", "both"):
        num, cat, mask_num, mask_cat = scarf_corrupt(xb_num, xb_cat, corruption, generator)
        losses["masked"] = _masked_loss(heads, model(num, cat), xb_num, xb_cat, mask_num, mask_cat)
    return losses


@torch.no_grad()
def _validation_losses(model, heads, x_num, x_cat, batch_size, seed, **loss_kwargs) -> dict:
    """Mean losses on the held-out rows, in eval mode, with the same seeded corruptions at every
    call: epochs are compared on one fixed task, so a change is the model's, not the dice's."""
    model.eval()
    heads.eval()
    gen = torch.Generator().manual_seed(seed)
    sums, batches = {}, 0
    for i in range(0, x_num.shape[0], batch_size):
        if x_num[i:i + batch_size].shape[0] < 2:
            continue
        for k, v in _batch_losses(model, heads, x_num[i:i + batch_size], x_cat[i:i + batch_size],
                                  generator=gen, **loss_kwargs).items():
            sums[k] = sums.get(k, 0.0) + v.item()
        batches += 1
    model.train()
    heads.train()
    return {k: v / batches for k, v in sums.items()}


def train_encoder(
    x_num,
    x_cat=None,
    spec: FeatureSpec | None = None,
    objective: str = "contrastive",
    epochs: int = 100,
    batch_size: int = 256,
    seed: int = 0,
    lr: float = 1e-3,
    weight_decay: float = 1e-4,
    corruption: float = 0.3,
    noise_std: float = 0.1,
    temperature: float = 0.2,
    validation: float = 0.2,
    check_every: int = 50,
    patience: int = 5,
    min_steps: int = 500,
    budget_steps: int = 2000,
    min_delta: float = 1e-3,
    restore_best: bool = True,
    threads: int | None = 1,
    **model_kwargs,
):
    """Train a TabularResNet encoder without labels. Returns (model in eval mode, history).

    A seeded ``validation`` share of the rows is held out and scored every ``check_every``
    optimiser steps. Training takes at least ``min_steps`` steps (however many epochs that
    is: a small table gives one step per epoch), then stops once the validation loss has not
    improved by ``min_delta`` for ``patience`` checks. The budget is ``epochs`` epochs or
    ``budget_steps`` steps, whichever is longer (so a small table still has room to converge),
    and never less than ``min_steps``. The weights of the best check are restored (unless
    ``restore_best=False``: the last weights). ``validation=0`` (or too few rows to hold any
    out) trains for the full budget and keeps the last weights.

    history: one entry per check in "step", "epoch" (passes over the training rows, a float),
    "loss"/"contrastive"/"masked" (training means since the previous check) and
    "val_loss"/"val_contrastive"/"val_masked"; plus "steps", "best_step", "stopped_early",
    "train_rows", "validation_rows", "seconds"."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    x_num, x_cat = _as_tensors(x_num, x_cat)
    if x_num.shape[0] < 2:
        raise ValueError("training needs at least two rows")
    if spec is not None:
        cards = spec.cardinalities
    else:
        cards = [int(c) for c in x_cat.max(dim=0).values] if x_cat.shape[1] else []
    if x_cat.shape[1] != len(cards):
        raise ValueError(f"x_cat has {x_cat.shape[1]} columns, the spec {len(cards)}")
    train_idx, val_idx = _split_validation(x_num.shape[0], validation, seed)
    tr_num, tr_cat = x_num[train_idx], x_cat[train_idx]
    va_num, va_cat = x_num[val_idx], x_cat[val_idx]
    n = tr_num.shape[0]
    starts = [i for i in range(0, n, batch_size) if min(batch_size, n - i) >= 2]
    max_steps = max(epochs * len(starts), budget_steps, min_steps)
    loss_kwargs = dict(objective=objective, corruption=corruption, noise_std=noise_std,
                       temperature=temperature)
    with _deterministic(threads):
        torch.manual_seed(seed)
        model = TabularResNet(x_num.shape[1], cards, **model_kwargs)
        heads = SelfSupervisedHeads(model.d_embedding, x_num.shape[1], cards)
        params = list(model.parameters()) + list(heads.parameters())
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        order = torch.Generator().manual_seed(seed)
        aug = torch.Generator().manual_seed(seed + 1)
        history = {k: [] for k in ("step", "epoch", "loss", "contrastive", "masked",
                                   "val_loss", "val_contrastive", "val_masked")}
        best = (float("inf"), 0, None)  # validation loss, step, encoder weights
        sums = dict.fromkeys(("loss", "contrastive", "masked"), 0.0)
        started = time.perf_counter()
        model.train()
        heads.train()
        steps, stop = 0, False
        while not stop:
            perm = torch.randperm(n, generator=order)
            for i in starts:
                losses = _batch_losses(model, heads, tr_num[perm[i:i + batch_size]],
                                       tr_cat[perm[i:i + batch_size]], generator=aug, **loss_kwargs)
                loss = sum(losses.values())
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                steps += 1
                sums["loss"] += loss.item()
                for k, v in losses.items():
                    sums[k] += v.item()
                if steps % check_every and steps < max_steps:
                    continue
                # a check: record the curve, keep the best weights, maybe stop
                since = (steps - 1) % check_every + 1
                history["step"].append(steps)
                history["epoch"].append(steps / len(starts))
                for k in sums:
                    history[k].append(sums[k] / since)
                    sums[k] = 0.0
                if len(val_idx):
                    val = _validation_losses(model, heads, va_num, va_cat, batch_size, seed + 2,
                                             **loss_kwargs)
                    history["val_loss"].append(sum(val.values()))
                    for k in ("contrastive", "masked"):
                        history[f"val_{k}"].append(val.get(k, 0.0))
                    if history["val_loss"][-1] < best[0] - min_delta:
                        best = (history["val_loss"][-1], steps, copy.deepcopy(model.state_dict()))
                    checks_since_best = (steps - best[1]) // check_every
                    stop = steps >= min_steps and checks_since_best >= patience
                if stop or steps >= max_steps:
                    stop = True
                    break
        if restore_best and best[2] is not None:
            model.load_state_dict(best[2])
        history.update(seconds=time.perf_counter() - started, steps=steps,
                       best_step=best[1] or steps, stopped_early=steps < max_steps,
                       train_rows=int(n), validation_rows=int(len(val_idx)))
        model.eval()
    return model, history


@torch.no_grad()
def embed(model: TabularResNet, x_num, x_cat=None, batch_size: int = 8192) -> np.ndarray:
    """Embeddings of rows (model in eval mode: no dropout), float32 [n, d_embedding]."""
    x_num, x_cat = _as_tensors(x_num, x_cat)
    model.eval()
    with _deterministic():
        out = [model(x_num[i:i + batch_size], x_cat[i:i + batch_size])
               for i in range(0, x_num.shape[0], batch_size)]
    if not out:
        return np.zeros((0, model.d_embedding), dtype=np.float32)
    return torch.cat(out).numpy().astype(np.float32)


def train_supervised(model: TabularResNet, x_num, x_cat, y, epochs: int = 30, batch_size: int = 128,
                     lr: float = 1e-3, seed: int = 0) -> dict:
    """Fit ``model`` plus a linear head to a numeric target ``y`` (mean squared error).

    Not part of the anomaly pipeline: the TabularResNet chapter uses it to compare residual and
    plain stacks on a task with a known answer. Returns {"loss": per-epoch mean training loss,
    "grad_norm_first_block": gradient norm of the first block's first layer after the first
    batch} (how much learning signal reaches the bottom of the stack)."""
    x_num, x_cat = _as_tensors(x_num, x_cat)
    y = torch.as_tensor(np.asarray(y, dtype=np.float32)).reshape(len(x_num), -1)
    with _deterministic():
        torch.manual_seed(seed)
        head = nn.Linear(model.d_embedding, y.shape[1])
        optimiser = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=lr)
        loader = DataLoader(TensorDataset(x_num, x_cat, y), batch_size=batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(seed))
        history = {"loss": [], "grad_norm_first_block": None}
        model.train()
        for _ in range(epochs):
            total, rows = 0.0, 0
            for xb_num, xb_cat, yb in loader:
                loss = F.mse_loss(head(model(xb_num, xb_cat)), yb)
                optimiser.zero_grad()
                loss.backward()
                if history["grad_norm_first_block"] is None and len(model.blocks):
                    grad = model.blocks[0].ff[0].weight.grad
                    history["grad_norm_first_block"] = float(grad.norm())
                optimiser.step()
                total += loss.item() * len(yb)
                rows += len(yb)
            history["loss"].append(total / rows)
        model.eval()
    return history


def data_fingerprint(x_num, x_cat=None) -> str:
    """A short hash of the training arrays (which data a model saw)."""
    h = hashlib.sha256()
    for arr in (x_num, x_cat):
        if arr is not None:
            arr = np.ascontiguousarray(arr)
            h.update(str((arr.shape, arr.dtype.str)).encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]


def save_model(path, model: TabularResNet, spec: FeatureSpec, history: dict | None = None,
               training: dict | None = None) -> Path:
    """Write a model folder: model.pt (encoder weights) + meta.json (everything to reload it)."""
    from obslab import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path / "model.pt")
    meta = {
        "format": FORMAT_VERSION,
        "model": "TabularResNet",
        "config": model.config,
        "feature_spec": spec.to_dict(),
        "training": training or {},
        "history": history or {},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "torch_version": torch.__version__,
        "obslab_version": __version__,
    }
    (path / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return path


def load_model(path):
    """Read a model folder: (model in eval mode, FeatureSpec, meta dict)."""
    path = Path(path)
    if not (path / "meta.json").exists() or not (path / "model.pt").exists():
        raise FileNotFoundError(f"{path} is not a model folder (needs model.pt and meta.json)")
    meta = json.loads((path / "meta.json").read_text())
    if meta.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path}: model folder format {meta.get('format')}, expected {FORMAT_VERSION}")
    model = TabularResNet(**meta["config"])
    model.load_state_dict(torch.load(path / "model.pt", weights_only=True))
    model.eval()
    return model, FeatureSpec.from_dict(meta["feature_spec"]), meta


def _code_fingerprint() -> str:
    """A hash of the code that defines training and the network: a cached encoder trained by
    an older version of it must be retrained, or chapters would read a stale model."""
    import obslab.model

    h = hashlib.sha256()
    for module_file in (__file__, obslab.model.__file__):
        h.update(Path(module_file).read_bytes())
    return h.hexdigest()[:16]


def training_config(**train_kwargs) -> dict:
    """Every setting a training run uses: the given ones over train_encoder's and
    TabularResNet's defaults (so a cache key changes when a default does)."""
    import inspect

    config = {}
    for fn in (TabularResNet.__init__, train_encoder):
        for name, p in inspect.signature(fn).parameters.items():
            if p.default is not inspect.Parameter.empty and name not in ("spec", "x_cat", "cat_cardinalities"):
                config[name] = p.default
    unknown = set(train_kwargs) - set(config)
    if unknown:
        raise TypeError(f"unknown training settings {sorted(unknown)}")
    return {**config, **train_kwargs}


def _cache_key(fingerprint: str, spec: FeatureSpec, train_kwargs: dict) -> str:
    blob = json.dumps([fingerprint, spec.to_dict(), training_config(**train_kwargs), torch.__version__,
                       _code_fingerprint()], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_train(name: str, x_num, x_cat, spec: FeatureSpec, data_id: str = "", **train_kwargs):
    """The cached encoder ``cache_dir()/models/<name>`` if it was trained on these arrays with
    these settings; otherwise train it (deterministically) and save it there. -> (model, meta)"""
    from obslab.cache import cache_path

    fingerprint = data_fingerprint(x_num, x_cat)
    key = _cache_key(fingerprint, spec, train_kwargs)
    folder = cache_path("models", name)
    if (folder / "meta.json").exists():
        try:
            model, _, meta = load_model(folder)
            if meta.get("training", {}).get("cache_key") == key:
                return model, meta
        except (ValueError, RuntimeError, KeyError, json.JSONDecodeError):
            pass  # a stale or damaged cache entry is simply retrained
    model, history = train_encoder(x_num, x_cat, spec, **train_kwargs)
    training = {**training_config(**train_kwargs), "rows": int(np.shape(x_num)[0]),
                "train_rows": history["train_rows"], "validation_rows": history["validation_rows"],
                "steps": history["steps"], "best_step": history["best_step"], "data_fingerprint": fingerprint,
                "data_id": data_id, "cache_key": key}
    # write next to the target and swap in, so a reader never sees a half-written folder
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
    save_model(tmp, model, spec, history, training)
    shutil.rmtree(folder, ignore_errors=True)
    try:
        tmp.rename(folder)
    except OSError:  # another process (a parallel notebook) swapped its copy in first
        shutil.rmtree(tmp, ignore_errors=True)
    return model, json.loads((tmp if tmp.exists() else folder).joinpath("meta.json").read_text())


@dataclass
class Encoder:
    """A trained encoder with the FeatureSpec it expects: frame in, embeddings out."""

    model: TabularResNet
    spec: FeatureSpec
    meta: dict
    path: Path | None = None  # the model folder it was loaded from or saved to

    @classmethod
    def fit(cls, frame, train_mask, name: str, numeric=None, categorical=None, data_id: str = "",
            **train_kwargs) -> "Encoder":
        """Fit the FeatureSpec on the training rows only, then load_or_train the encoder."""
        train = frame[np.asarray(train_mask, dtype=bool)]
        spec = fit_features(train, numeric=numeric, categorical=categorical)
        x_num, x_cat = transform(spec, train)
        model, meta = load_or_train(name, x_num, x_cat, spec, data_id=data_id, **train_kwargs)
        from obslab.cache import cache_path

        return cls(model, spec, meta, cache_path("models", name))

    @classmethod
    def load(cls, path) -> "Encoder":
        return cls(*load_model(path), Path(path))

    def encode(self, frame):
        return transform(self.spec, frame)

    def embed(self, frame) -> np.ndarray:
        return embed(self.model, *transform(self.spec, frame))
