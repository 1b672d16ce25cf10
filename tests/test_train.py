"""Self-supervised training: losses fall, early stopping stops and restores the best weights,
seeds reproduce, model folders round-trip, cache reuse (keyed by the full configuration)."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from obslab.embedding_quality import knn_agreement
from obslab.features import fit_features, transform
from obslab.train import (
    Encoder,
    embed,
    load_model,
    load_or_train,
    nt_xent,
    save_model,
    scarf_corrupt,
    train_encoder,
)


def clustered_rows(n=1200, seed=0):
    """Rows from 3 regimes (a service-like category decides the numeric profile)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 3, n)
    centres = np.array([[0, 0, 0, 0], [3, -2, 1, 0], [-2, 3, -3, 2]], dtype=np.float32)
    x_num = (centres[group] + 0.5 * rng.normal(size=(n, 4))).astype(np.float32)
    x_cat = np.stack([group + 1, rng.integers(1, 4, n)], axis=1).astype(np.int64)
    return x_num, x_cat, group


@pytest.fixture(scope="module")
def data():
    return clustered_rows()


@pytest.mark.parametrize("objective", ["contrastive", "masked", "both"])
def test_training_reduces_the_loss(data, objective):
    x_num, x_cat, _ = data
    model, history = train_encoder(x_num, x_cat, objective=objective, epochs=6, batch_size=128, seed=3,
                                   check_every=8, min_steps=0, budget_steps=0, patience=100)
    # 960 training rows in batches of 128: 8 steps an epoch, one check per epoch
    assert history["train_rows"] == 960 and history["validation_rows"] == 240
    assert history["step"] == [8 * e for e in range(1, 7)] and history["epoch"] == [1.0 * e for e in range(1, 7)]
    for curve in ("loss", "val_loss"):
        assert len(history[curve]) == 6 and all(np.isfinite(history[curve]))
    assert history["loss"][-1] < 0.95 * history["loss"][0], history["loss"]
    assert min(history["val_loss"][1:]) < history["val_loss"][0], history["val_loss"]
    assert not model.training


def test_budget_in_steps_gives_a_small_table_room(data):
    x_num, x_cat, _ = data
    _, history = train_encoder(x_num[:100], x_cat[:100], epochs=3, min_steps=10, budget_steps=60,
                               check_every=10, patience=10**6, seed=0)
    assert history["steps"] == 60  # 3 one-step epochs, but a 60-step budget


def test_min_steps_outlast_epochs_on_a_small_table(data):
    x_num, x_cat, _ = data
    _, history = train_encoder(x_num[:100], x_cat[:100], epochs=3, min_steps=40, budget_steps=0,
                               check_every=10, patience=100, seed=0)
    # 80 training rows fit one batch: 3 epochs would be 3 steps, min_steps asks for 40
    assert history["steps"] == 40 and history["step"] == [10, 20, 30, 40]
    assert not history["stopped_early"]


def test_early_stopping_stops_and_restores_the_best_weights(data):
    x_num, x_cat, _ = data
    settings = dict(objective="contrastive", batch_size=64, seed=5, lr=3e-3, check_every=5,
                    min_delta=0.0)
    model, history = train_encoder(x_num[:400], x_cat[:400], epochs=1000, patience=3, min_steps=10,
                                   **settings)
    val, steps, best = history["val_loss"], history["step"], history["best_step"]
    assert history["stopped_early"] and history["steps"] < 1000 * 5 and steps[-1] > 10
    # stopped exactly when the last `patience` checks did not beat the best one
    assert steps[-1] - best == 3 * 5 and min(val) == val[steps.index(best)]
    assert min(val[:steps.index(best)] or [np.inf]) > val[steps.index(best)]
    # the weights returned are those of the best check: the same run stopped there is identical
    again, h2 = train_encoder(x_num[:400], x_cat[:400], epochs=0, patience=10**6, min_steps=best,
                              budget_steps=0, restore_best=False, **settings)
    assert h2["steps"] == best
    assert np.array_equal(embed(model, x_num, x_cat), embed(again, x_num, x_cat))
    last, _ = train_encoder(x_num[:400], x_cat[:400], epochs=0, patience=10**6, min_steps=steps[-1],
                            budget_steps=0, restore_best=False, **settings)
    assert not np.array_equal(embed(model, x_num, x_cat), embed(last, x_num, x_cat))


def test_validation_rows_are_seeded_and_held_out(data):
    from obslab.train import _split_validation

    tr, va = _split_validation(100, 0.2, seed=1)
    assert len(va) == 20 and not set(tr) & set(va) and sorted([*tr, *va]) == list(range(100))
    assert np.array_equal(va, _split_validation(100, 0.2, seed=1)[1])
    assert not np.array_equal(va, _split_validation(100, 0.2, seed=2)[1])
    assert len(_split_validation(5, 0.2, seed=1)[1]) == 0  # one row is no validation set


def test_same_seed_same_embeddings_other_seed_differs(data):
    x_num, x_cat, _ = data
    a, _ = train_encoder(x_num, x_cat, objective="both", epochs=2, seed=11, min_steps=20, budget_steps=0)
    b, _ = train_encoder(x_num, x_cat, objective="both", epochs=2, seed=11, min_steps=20, budget_steps=0)
    c, _ = train_encoder(x_num, x_cat, objective="both", epochs=2, seed=12, min_steps=20, budget_steps=0)
    ea, eb, ec = embed(a, x_num, x_cat), embed(b, x_num, x_cat), embed(c, x_num, x_cat)
    assert ea.dtype == np.float32 and ea.shape == (len(x_num), a.d_embedding)
    assert np.array_equal(ea, eb)
    assert not np.allclose(ea, ec)


def test_training_leaves_global_torch_settings_alone(data):
    x_num, x_cat, _ = data
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    train_encoder(x_num[:64], x_cat[:64], epochs=1, seed=0, min_steps=1, budget_steps=0)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)


# ~30 s: the default budget (>= 500 steps) is what is checked, so it cannot be shortened
@pytest.mark.slow
def test_contrastive_embedding_keeps_regimes_apart(data):
    x_num, x_cat, group = data
    model, history = train_encoder(x_num, x_cat, objective="contrastive", seed=0)
    assert history["steps"] >= 500
    emb = embed(model, x_num, x_cat)
    assert knn_agreement(emb, group, k=10) > 0.9


def test_bad_inputs_are_refused(data):
    x_num, x_cat, _ = data
    with pytest.raises(ValueError, match="objective"):
        train_encoder(x_num, x_cat, objective="magic")
    with pytest.raises(ValueError, match="equal rows"):
        train_encoder(x_num, x_cat[:10])


def test_scarf_corrupt_swaps_within_columns():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(40, dtype=torch.float32).reshape(10, 4)  # column j holds values = j mod 4
    c = torch.arange(20).reshape(10, 2)
    same, same_c, m, mc = scarf_corrupt(x, c, 0.0, g)
    assert torch.equal(same, x) and torch.equal(same_c, c) and not m.any() and not mc.any()
    num, cat, m, mc = scarf_corrupt(x, c, 1.0, g)
    assert m.all() and mc.all()
    assert torch.equal(num % 4, x % 4)  # every replacement came from the same column
    assert torch.equal(cat % 2, c % 2)


def test_nt_xent_prefers_matching_views():
    torch.manual_seed(0)
    z = torch.randn(32, 8)
    assert nt_xent(z, z, 0.1) < nt_xent(z, torch.randn(32, 8), 0.1)


def test_save_and_load_round_trip(tmp_path, data):
    x_num, x_cat, _ = data
    frame = pd.DataFrame({"a": x_num[:, 0], "b": x_num[:, 1], "svc": x_cat[:, 0].astype(str)})
    spec = fit_features(frame)
    xn, xc = transform(spec, frame)
    model, history = train_encoder(xn, xc, spec, epochs=1, seed=0, min_steps=1, budget_steps=0, d_model=32, n_blocks=2)
    save_model(tmp_path / "m", model, spec, history, {"objective": "contrastive"})
    again, spec2, meta = load_model(tmp_path / "m")
    assert spec2 == spec and meta["config"]["n_blocks"] == 2
    assert meta["torch_version"] == torch.__version__ and meta["history"]["val_loss"] == history["val_loss"]
    assert np.array_equal(embed(model, xn, xc), embed(again, xn, xc))
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing")


def test_load_or_train_reuses_the_cache(tmp_path, monkeypatch, data):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path))
    x_num, x_cat, _ = data
    frame = pd.DataFrame({"a": x_num[:, 0], "svc": x_cat[:, 0].astype(str)})
    spec = fit_features(frame)
    xn, xc = transform(spec, frame)
    m1, meta1 = load_or_train("enc", xn, xc, spec, data_id="unit", epochs=1, seed=0, min_steps=5, budget_steps=0)
    stamp = (tmp_path / "models" / "enc" / "model.pt").stat().st_mtime_ns
    m2, meta2 = load_or_train("enc", xn, xc, spec, data_id="unit", epochs=1, seed=0, min_steps=5, budget_steps=0)
    assert (tmp_path / "models" / "enc" / "model.pt").stat().st_mtime_ns == stamp  # not retrained
    assert meta2["training"]["data_id"] == "unit" and meta2["training"]["rows"] == len(xn)
    assert np.array_equal(embed(m1, xn, xc), embed(m2, xn, xc))
    # other settings: retrained, and the folder now describes the new run
    _, meta3 = load_or_train("enc", xn, xc, spec, epochs=1, seed=1, min_steps=5, budget_steps=0)
    assert meta3["training"]["seed"] == 1
    assert json.loads((tmp_path / "models" / "enc" / "meta.json").read_text())["training"]["seed"] == 1
    # a setting left at its default is still in the key: spelling it out changes nothing,
    # changing it retrains; the folder records every setting, defaults included
    _, meta4 = load_or_train("enc", xn, xc, spec, epochs=1, seed=1, min_steps=5, budget_steps=0, patience=5)
    assert meta4["training"]["cache_key"] == meta3["training"]["cache_key"]
    _, meta5 = load_or_train("enc", xn, xc, spec, epochs=1, seed=1, min_steps=5, budget_steps=0, patience=6)
    assert meta5["training"]["cache_key"] != meta3["training"]["cache_key"]
    assert meta5["training"]["validation"] == 0.2 and meta5["training"]["d_embedding"] == 32
    assert meta5["training"]["steps"] >= 5
    with pytest.raises(TypeError, match="unknown training settings"):
        load_or_train("enc", xn, xc, spec, epoch=3)


def test_encoder_fits_on_training_rows_only(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path))
    frame = pd.DataFrame({"lat": [1.0, 2.0, 3.0, 4.0, 500.0, 600.0],
                          "service": ["a", "a", "b", "b", "c", "c"]})
    train = np.array([True, True, True, True, False, False])
    enc = Encoder.fit(frame, train, "tiny", epochs=1, batch_size=4, seed=0, min_steps=2, budget_steps=0, d_model=16)
    assert enc.spec.vocab["service"] == ["a", "b"]  # "c" only in held-out rows
    assert enc.embed(frame).shape == (6, enc.model.d_embedding)
    same = Encoder.load(tmp_path / "models" / "tiny")
    assert np.array_equal(same.embed(frame), enc.embed(frame))


def test_train_supervised_learns_a_target_and_reports_gradients():
    from obslab.model import TabularResNet
    from obslab.train import train_supervised

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    y = 2 * x[:, 0] - x[:, 1] * x[:, 2]
    model = TabularResNet(4, [], d_model=16, n_blocks=2, d_embedding=8, dropout=0.0)
    history = train_supervised(model, x, None, y, epochs=8, seed=0)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["grad_norm_first_block"] > 0 and not model.training


def test_plain_stack_option_round_trips(tmp_path):
    from obslab.features import FeatureSpec
    from obslab.model import TabularResNet

    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    plain = TabularResNet(3, [], d_model=8, n_blocks=2, d_embedding=4, residual=False)
    residual = TabularResNet(3, [], d_model=8, n_blocks=2, d_embedding=4)
    residual.load_state_dict(plain.state_dict())  # same weights: only the identity path differs
    assert not np.allclose(embed(plain, x), embed(residual, x))
    spec = FeatureSpec(numeric=["a", "b", "c"], categorical=[])
    save_model(tmp_path / "p", plain, spec)
    again, _, meta = load_model(tmp_path / "p")
    assert meta["config"]["residual"] is False
    assert np.array_equal(embed(again, x), embed(plain, x))
