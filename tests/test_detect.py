"""Detectors rank planted outliers above inliers, thresholds behave, bad input is refused."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from obslab.detect import (
    DETECTORS,
    KNNDetector,
    build_index,
    contamination_threshold,
    make_detector,
    quantile_threshold,
    recall_at_k,
    score_batches,
)

CONFIGS = [
    ("knn", {"k": 5}),
    ("knn", {"k": 5, "index": "hnsw"}),
    ("knn", {"k": 5, "aggregate": "kth"}),
    ("lof", {"n_neighbors": 20}),
    ("iforest", {"n_estimators": 100, "seed": 3}),
    ("centroid", {}),
    ("centroid", {"n_clusters": 3}),
]


def planted(seed=0, n_train=1500, n_in=400, n_out=30, d=12):
    rng = np.random.default_rng(seed)
    # three normal clusters (services behave differently), outliers off every cluster
    centres = rng.normal(scale=6.0, size=(3, d))
    def normal(n):
        return centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d))
    X_train = normal(n_train)
    out = centres[rng.integers(0, 3, n_out)] + rng.normal(size=(n_out, d)) + rng.choice([-5.0, 5.0], size=(n_out, d))
    X_test = np.vstack([normal(n_in), out])
    y = np.r_[np.zeros(n_in), np.ones(n_out)].astype(bool)
    return X_train, X_test, y


@pytest.mark.parametrize("name,params", CONFIGS)
def test_planted_outliers_rank_above_inliers(name, params):
    X_train, X_test, y = planted()
    det = make_detector(name, **params).fit(X_train)
    s = det.score(X_test)
    assert s.shape == (len(y),) and np.isfinite(s).all()
    assert roc_auc_score(y, s) > 0.95


@pytest.mark.parametrize("name,params", CONFIGS)
def test_threshold_from_training_scores_controls_false_alarms(name, params):
    X_train, X_test, y = planted(seed=1)
    det = make_detector(name, **params).fit(X_train)
    det.set_threshold(quantile=0.98)
    alerts = det.predict(X_test)
    # fresh inliers from the training distribution: roughly the nominal 2 % alert rate
    assert alerts[~y].mean() < 0.08
    assert alerts[y].mean() > 0.5


def test_knn_training_scores_exclude_the_row_itself():
    X_train, _, _ = planted(seed=2)
    det = KNNDetector(k=1).fit(X_train)
    # with the row itself included the 1-NN distance would be 0 for every training row
    assert (det.train_scores_ > 0).all()
    # leave-one-out 1-NN on training rows equals the 2nd neighbour of a plain search
    d2, _ = det.index_.search(X_train.astype(np.float32), 2)
    np.testing.assert_allclose(det.train_scores_, np.sqrt(d2[:, 1]), rtol=1e-5)


def test_knn_matches_brute_force():
    rng = np.random.default_rng(4)
    X, Q = rng.normal(size=(300, 8)), rng.normal(size=(50, 8))
    s = KNNDetector(k=3, aggregate="kth").fit(X).score(Q)
    d = np.sqrt(((Q[:, None, :] - X[None]) ** 2).sum(-1))
    np.testing.assert_allclose(s, np.sort(d, axis=1)[:, 2], rtol=1e-4)


def test_hnsw_is_deterministic_and_close_to_exact():
    rng = np.random.default_rng(5)
    X, Q = rng.normal(size=(3000, 16)).astype(np.float32), rng.normal(size=(200, 16)).astype(np.float32)
    a = build_index(X, "hnsw").search(Q, 10)[1]
    b = build_index(X, "hnsw").search(Q, 10)[1]
    np.testing.assert_array_equal(a, b)
    exact = build_index(X, "flat").search(Q, 10)[1]
    recall = np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, exact)])
    assert recall > 0.9


def test_recall_at_k_counts_tied_neighbours_and_misses():
    rng = np.random.default_rng(8)
    base = rng.normal(size=(40, 4)).astype(np.float32)
    X = np.vstack([base, base])  # every row twice: ids of equally near neighbours differ
    Q = base[:10] + 0.01
    d_exact, _ = build_index(X, "flat").search(Q, 4)
    d_hnsw, _ = build_index(X[::-1].copy(), "hnsw").search(Q, 4)  # other ids for the same rows
    assert recall_at_k(d_exact, d_hnsw) == pytest.approx(1.0)
    # a wrong answer (a farther row) is a miss, and so is a missing result
    worse = d_exact.copy()
    worse[:, -1] = d_exact[:, -1] * 2 + 1
    worse[0, 0] = np.finfo(np.float32).max
    assert recall_at_k(d_exact, worse) == pytest.approx(1 - (10 + 1) / 40)
    with pytest.raises(ValueError):
        recall_at_k(d_exact, d_exact[:, :2])


def test_seeded_detectors_are_deterministic():
    X_train, X_test, _ = planted(seed=6)
    for name in DETECTORS:
        s1 = make_detector(name).fit(X_train).score(X_test)
        s2 = make_detector(name).fit(X_train).score(X_test)
        np.testing.assert_array_equal(s1, s2)


def test_thresholds():
    s = np.arange(1000, dtype=float)
    assert quantile_threshold(s, 0.99) == pytest.approx(989.01)
    assert (s > contamination_threshold(s, 0.05)).sum() == 50
    with pytest.raises(ValueError):
        quantile_threshold(s, 1.0)
    with pytest.raises(ValueError):
        contamination_threshold(s, 0.7)


def test_bad_input_is_refused_clearly():
    X_train, _, _ = planted(seed=7)
    det = KNNDetector(k=5)
    with pytest.raises(RuntimeError, match="not fitted"):
        det.score(X_train)
    det.fit(X_train)
    bad = X_train[:10].copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        det.score(bad)
    with pytest.raises(ValueError, match="features"):
        det.score(X_train[:, :5])
    with pytest.raises(ValueError, match="unknown detector"):
        make_detector("nope")
    with pytest.raises(ValueError, match="training rows"):
        KNNDetector(k=10).fit(X_train[:5])
    with pytest.raises(RuntimeError, match="threshold"):
        det.predict(X_train)


def test_score_batches_covers_every_row_once():
    X_train, X_test, y = planted(seed=8)
    det = make_detector("knn", k=5).fit(X_train)
    det.set_threshold(0.99)
    batches = np.array_split(X_test, 7)
    out = list(score_batches(det, batches))
    assert [b["batch"] for b in out] == list(range(7))
    assert sum(b["n"] for b in out) == len(X_test)
    np.testing.assert_allclose(np.concatenate([b["scores"] for b in out]), det.score(X_test))



def test_robust_z_scores_the_largest_kpi_deviation():
    rng = np.random.default_rng(6)
    X_train = rng.normal(loc=[10.0, 0.0, 100.0], scale=[1.0, 2.0, 10.0], size=(2000, 3))
    det = make_detector("robust-z").fit(X_train)
    # one KPI 6 of its own standard deviations off, the others at their medians
    s = det.score(np.array([[16.0, 0.0, 100.0], [10.0, 0.0, 40.0], [10.0, 0.0, 100.0]]))
    np.testing.assert_allclose(s[:2], [6.0, 6.0], rtol=0.1)
    assert s[2] < 0.3
    # the score is the max over KPIs, not a sum: two moderate deviations stay moderate
    assert det.score(np.array([[12.0, 4.0, 120.0]]))[0] < 2.5


def test_robust_z_survives_zero_mad_and_picks_columns():
    X_train = np.zeros((200, 3))
    X_train[:20, 0] = 1.0  # a counter that is mostly zero: MAD 0, mean absolute deviation not
    X_train[:, 2] = np.arange(200)
    det = make_detector("robust-z", columns=[0, 1]).fit(X_train)
    s = det.score(np.array([[0.0, 0.0, 1e6], [5.0, 0.0, 0.0], [0.0, 3.0, 0.0]]))
    assert np.isfinite(s).all()
    assert s[0] == 0.0  # column 2 is not looked at
    assert s[1] > 10 and s[2] == 3.0  # constant column: deviations in its own units
    assert np.isfinite(det.train_scores_).all()
    assert "robust-z" in DETECTORS
