"""Self-supervised training: losses fall, seeds reproduce, model folders round-trip, cache reuse."""

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
    model, history = train_encoder(x_num, x_cat, objective=objective, epochs=6, batch_size=128, seed=3)
    assert len(history["loss"]) == 6 and all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < 0.95 * history["loss"][0], history["loss"]
    assert not model.training


def test_same_seed_same_embeddings_other_seed_differs(data):
    x_num, x_cat, _ = data
    a, _ = train_encoder(x_num, x_cat, objective="both", epochs=2, seed=11)
    b, _ = train_encoder(x_num, x_cat, objective="both", epochs=2, seed=11)
    c, _ = train_encoder(x_num, x_cat, objective="both", epochs=2, seed=12)
    ea, eb, ec = embed(a, x_num, x_cat), embed(b, x_num, x_cat), embed(c, x_num, x_cat)
    assert ea.dtype == np.float32 and ea.shape == (len(x_num), a.d_embedding)
    assert np.array_equal(ea, eb)
    assert not np.allclose(ea, ec)


def test_training_leaves_global_torch_settings_alone(data):
    x_num, x_cat, _ = data
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    train_encoder(x_num[:64], x_cat[:64], epochs=1, seed=0)
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)


def test_contrastive_embedding_keeps_regimes_apart(data):
    x_num, x_cat, group = data
    model, _ = train_encoder(x_num, x_cat, objective="contrastive", epochs=8, seed=0)
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
    model, history = train_encoder(xn, xc, spec, epochs=1, seed=0, d_model=32, n_blocks=2)
    save_model(tmp_path / "m", model, spec, history, {"objective": "contrastive"})
    again, spec2, meta = load_model(tmp_path / "m")
    assert spec2 == spec and meta["config"]["n_blocks"] == 2
    assert meta["torch_version"] == torch.__version__ and meta["history"]["loss"] == history["loss"]
    assert np.array_equal(embed(model, xn, xc), embed(again, xn, xc))
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing")


def test_load_or_train_reuses_the_cache(tmp_path, monkeypatch, data):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path))
    x_num, x_cat, _ = data
    frame = pd.DataFrame({"a": x_num[:, 0], "svc": x_cat[:, 0].astype(str)})
    spec = fit_features(frame)
    xn, xc = transform(spec, frame)
    m1, meta1 = load_or_train("enc", xn, xc, spec, data_id="unit", epochs=1, seed=0)
    stamp = (tmp_path / "models" / "enc" / "model.pt").stat().st_mtime_ns
    m2, meta2 = load_or_train("enc", xn, xc, spec, data_id="unit", epochs=1, seed=0)
    assert (tmp_path / "models" / "enc" / "model.pt").stat().st_mtime_ns == stamp  # not retrained
    assert meta2["training"]["data_id"] == "unit" and meta2["training"]["rows"] == len(xn)
    assert np.array_equal(embed(m1, xn, xc), embed(m2, xn, xc))
    # other settings: retrained, and the folder now describes the new run
    _, meta3 = load_or_train("enc", xn, xc, spec, epochs=1, seed=1)
    assert meta3["training"]["seed"] == 1
    assert json.loads((tmp_path / "models" / "enc" / "meta.json").read_text())["training"]["seed"] == 1


def test_encoder_fits_on_training_rows_only(tmp_path, monkeypatch):
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path))
    frame = pd.DataFrame({"lat": [1.0, 2.0, 3.0, 4.0, 500.0, 600.0],
                          "service": ["a", "a", "b", "b", "c", "c"]})
    train = np.array([True, True, True, True, False, False])
    enc = Encoder.fit(frame, train, "tiny", epochs=1, batch_size=4, seed=0, d_model=16)
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
