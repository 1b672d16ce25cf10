"""Anomaly detectors over any matrix (embeddings or raw features), all with one interface.

Every detector is fitted on rows assumed normal and scores new rows, higher = more anomalous::

    det = make_detector("knn", k=10).fit(X_train)
    scores = det.score(X_test)
    det.set_threshold(quantile=0.99)          # from the training scores
    alerts = det.predict(X_test)              # scores > det.threshold_

``train_scores_`` holds each training row's score computed without the row itself (the k-NN
detector drops the row's own neighbour), so thresholds taken from them are not optimistic.

Detectors:

- ``KNNDetector``: distance to the k-th (or mean of k) nearest training rows, over a faiss
  vector index: exact ``IndexFlatL2`` or approximate ``IndexHNSWFlat``.
- ``LOFDetector``: Local Outlier Factor (sklearn, ``novelty=True``).
- ``IsolationForestDetector``: sklearn Isolation Forest.
- ``CentroidDetector``: distance to the nearest of ``n_clusters`` k-means centroids (1 = the mean).
- ``RobustZDetector``: the trivial baseline: per column median and MAD on the training rows,
  score = the largest ``|z|`` over the columns (``columns`` picks the raw KPI columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

__all__ = [
    "Detector",
    "KNNDetector",
    "LOFDetector",
    "IsolationForestDetector",
    "CentroidDetector",
    "RobustZDetector",
    "DETECTORS",
    "make_detector",
    "quantile_threshold",
    "contamination_threshold",
    "score_batches",
    "build_index",
    "recall_at_k",
    "raw_feature_matrix",
]


def _as_matrix(X) -> np.ndarray:
    X = np.ascontiguousarray(np.asarray(X, dtype=np.float32))
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D matrix (rows x features), got shape {X.shape}")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise ValueError(f"{bad} row(s) contain NaN or inf; impute or drop them before detection")
    return X


def quantile_threshold(train_scores: np.ndarray, quantile: float = 0.99) -> float:
    """The score above which a row is flagged: a high quantile of scores on normal training rows."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    return float(np.quantile(np.asarray(train_scores, dtype=np.float64), quantile))


def contamination_threshold(scores: np.ndarray, contamination: float) -> float:
    """The threshold that flags the top ``contamination`` fraction of ``scores``.

    Use when the expected anomaly rate of the scored data is known (or assumed); equivalent to
    ``quantile_threshold(scores, 1 - contamination)``.
    """
    if not 0.0 < contamination < 0.5:
        raise ValueError(f"contamination must be in (0, 0.5), got {contamination}")
    return quantile_threshold(scores, 1.0 - contamination)


class Detector:
    """Base class: ``fit`` on normal rows, ``score`` new rows (higher = more anomalous)."""

    name = "detector"

    def __init__(self):
        self.threshold_: float | None = None
        self.train_scores_: np.ndarray | None = None
        self.n_features_: int | None = None

    def fit(self, X) -> "Detector":
        X = _as_matrix(X)
        if len(X) < 2:
            raise ValueError("need at least 2 training rows")
        self.n_features_ = X.shape[1]
        self._fit(X)
        self.train_scores_ = self._train_scores(X)
        return self

    def score(self, X) -> np.ndarray:
        if self.n_features_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(X_train) first")
        X = _as_matrix(X)
        if X.shape[1] != self.n_features_:
            raise ValueError(f"fitted on {self.n_features_} features, got {X.shape[1]}")
        if len(X) == 0:
            return np.zeros(0, dtype=np.float64)
        return self._score(X).astype(np.float64)

    def set_threshold(self, quantile: float | None = 0.99, value: float | None = None) -> float:
        """Fix the alert threshold: an explicit ``value`` or a quantile of the training scores."""
        if value is not None:
            self.threshold_ = float(value)
        else:
            if self.train_scores_ is None:
                raise RuntimeError("fit first")
            self.threshold_ = quantile_threshold(self.train_scores_, quantile)
        return self.threshold_

    def predict(self, X) -> np.ndarray:
        if self.threshold_ is None:
            raise RuntimeError("no threshold: call set_threshold() first")
        return self.score(X) > self.threshold_

    # subclasses implement these
    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _train_scores(self, X: np.ndarray) -> np.ndarray:
        return self._score(X)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"

    def params(self) -> dict:
        return {}


def build_index(X: np.ndarray, kind: str = "flat", hnsw_m: int = 32, ef_search: int = 64,
                ef_construction: int = 80):
    """A faiss index over the rows of ``X`` (squared L2). ``kind``: "flat" (exact) or "hnsw"."""
    import faiss

    X = _as_matrix(X)
    d = X.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatL2(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    else:
        raise ValueError(f"unknown index kind {kind!r}; expected 'flat' or 'hnsw'")
    # HNSW insertion order matters and parallel insertion is not reproducible: build on one thread
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.add(X)
    finally:
        faiss.omp_set_num_threads(threads)
    return index


def recall_at_k(d_exact: np.ndarray, d_approx: np.ndarray, rtol: float = 1e-4) -> float:
    """Recall@k of an approximate index against an exact one, from their distance rows.

    A returned neighbour counts as found when it is no farther than the exact k-th neighbour.
    Comparing neighbour *ids* instead undercounts when rows tie: identical rows (quiet windows
    often have identical features) are equally near, and any of them is a right answer, but the
    two indexes may return different ones. Both arrays: [queries, k], as ``index.search`` returns.
    """
    d_exact, d_approx = np.asarray(d_exact, np.float64), np.asarray(d_approx, np.float64)
    if d_exact.shape != d_approx.shape or d_exact.ndim != 2 or d_exact.shape[1] == 0:
        raise ValueError(f"distance rows of equal shape [queries, k] expected, got "
                         f"{d_exact.shape} and {d_approx.shape}")
    if len(d_exact) == 0:
        return float("nan")
    kth = d_exact[:, -1:]
    # a missing result (faiss id -1) comes with a huge distance and is never counted
    found = np.isfinite(d_approx) & (d_approx <= kth + rtol * np.maximum(np.abs(kth), 1.0))
    return float(found.mean())


class KNNDetector(Detector):
    """Distance to the nearest training rows over a faiss index.

    ``aggregate``: "kth" (distance to the k-th neighbour) or "mean" (mean over the k nearest).
    Distances are Euclidean (faiss returns squared L2; we take the square root).
    """

    name = "knn"

    def __init__(self, k: int = 10, index: str = "flat", aggregate: str = "mean",
                 hnsw_m: int = 32, ef_search: int = 64):
        super().__init__()
        if k < 1:
            raise ValueError("k must be >= 1")
        if aggregate not in ("kth", "mean"):
            raise ValueError("aggregate must be 'kth' or 'mean'")
        self.k, self.index_kind, self.aggregate = int(k), index, aggregate
        self.hnsw_m, self.ef_search = hnsw_m, ef_search
        self.index_ = None

    def params(self) -> dict:
        return dict(k=self.k, index=self.index_kind, aggregate=self.aggregate)

    def _fit(self, X):
        if len(X) <= self.k:
            raise ValueError(f"k={self.k} needs more than {self.k} training rows, got {len(X)}")
        self.index_ = build_index(X, self.index_kind, hnsw_m=self.hnsw_m, ef_search=self.ef_search)

    def _reduce(self, d2: np.ndarray) -> np.ndarray:
        d = np.sqrt(np.maximum(d2.astype(np.float64), 0.0))
        return d[:, -1] if self.aggregate == "kth" else d.mean(axis=1)

    def _score(self, X):
        d2, _ = self.index_.search(X, self.k)
        return self._reduce(d2)

    def _train_scores(self, X):
        # ask for one more neighbour and drop the row itself (leave-one-out)
        d2, ids = self.index_.search(X, self.k + 1)
        own = ids == np.arange(len(X))[:, None]
        # rows whose self-match was not returned (exact duplicates, HNSW misses): drop the last
        own[~own.any(axis=1), -1] = True
        keep = d2[~own].reshape(len(X), self.k)
        return self._reduce(keep)


class LOFDetector(Detector):
    """Local Outlier Factor in novelty mode: density of a row relative to its neighbours'."""

    name = "lof"

    def __init__(self, n_neighbors: int = 20):
        super().__init__()
        self.n_neighbors = int(n_neighbors)

    def params(self) -> dict:
        return dict(n_neighbors=self.n_neighbors)

    def _fit(self, X):
        from sklearn.neighbors import LocalOutlierFactor

        self.model_ = LocalOutlierFactor(n_neighbors=min(self.n_neighbors, len(X) - 1), novelty=True)
        self.model_.fit(X)

    def _score(self, X):
        return -self.model_.score_samples(X)

    def _train_scores(self, X):
        # the fitted training LOF excludes each row from its own neighbourhood
        return -self.model_.negative_outlier_factor_.astype(np.float64)


class IsolationForestDetector(Detector):
    """Isolation Forest: rows isolated by few random splits are anomalous."""

    name = "iforest"

    def __init__(self, n_estimators: int = 200, max_samples: int | str = "auto", seed: int = 0):
        super().__init__()
        self.n_estimators, self.max_samples, self.seed = int(n_estimators), max_samples, int(seed)

    def params(self) -> dict:
        return dict(n_estimators=self.n_estimators, seed=self.seed)

    def _fit(self, X):
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(n_estimators=self.n_estimators, max_samples=self.max_samples,
                                      random_state=self.seed, n_jobs=1)
        self.model_.fit(X)

    def _score(self, X):
        return -self.model_.score_samples(X)


class CentroidDetector(Detector):
    """Euclidean distance to the nearest centroid (k-means with ``n_clusters``; 1 = the mean)."""

    name = "centroid"

    def __init__(self, n_clusters: int = 1, seed: int = 0):
        super().__init__()
        self.n_clusters, self.seed = int(n_clusters), int(seed)

    def params(self) -> dict:
        return dict(n_clusters=self.n_clusters)

    def _fit(self, X):
        if self.n_clusters == 1:
            self.centroids_ = X.mean(axis=0, keepdims=True).astype(np.float64)
        else:
            from sklearn.cluster import KMeans

            km = KMeans(n_clusters=self.n_clusters, n_init=4, random_state=self.seed).fit(X)
            self.centroids_ = km.cluster_centers_.astype(np.float64)

    def _score(self, X):
        X = X.astype(np.float64)
        d2 = ((X[:, None, :] - self.centroids_[None, :, :]) ** 2).sum(axis=2)
        return np.sqrt(d2.min(axis=1))


class RobustZDetector(Detector):
    """Per-KPI robust z-score: ``max_j |x_j - median_j| / scale_j`` over the chosen columns.

    ``scale_j`` is 1.4826 x MAD (the standard deviation for normal data). A column whose MAD is
    0 (a counter that is mostly zero in training) falls back to 1.2533 x the mean absolute
    deviation, and a column constant in training to 1, so any move shows in its own units
    instead of dividing by zero. ``columns`` (indices or a slice) restricts the score to some
    columns, e.g. the numeric KPIs of the raw matrix without its one-hot service columns.
    """

    name = "robust-z"

    def __init__(self, columns=None):
        super().__init__()
        self.columns = columns

    def params(self) -> dict:
        return dict(columns=self.columns)

    def _pick(self, X):
        return X if self.columns is None else X[:, self.columns]

    def _fit(self, X):
        X = self._pick(X).astype(np.float64)
        if X.shape[1] == 0:
            raise ValueError("robust-z needs at least one column")
        self.median_ = np.median(X, axis=0)
        dev = np.abs(X - self.median_)
        scale = 1.4826 * np.median(dev, axis=0)
        scale = np.where(scale > 0, scale, 1.2533 * dev.mean(axis=0))
        self.scale_ = np.where(scale > 0, scale, 1.0)

    def _score(self, X):
        return (np.abs(self._pick(X).astype(np.float64) - self.median_) / self.scale_).max(axis=1)


DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls for cls in (KNNDetector, LOFDetector, IsolationForestDetector, CentroidDetector,
                              RobustZDetector)
}


def make_detector(name: str, **params) -> Detector:
    """A detector by name: "knn", "lof", "iforest", "centroid", "robust-z" (params go to its
    constructor)."""
    try:
        return DETECTORS[name](**params)
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; expected one of {sorted(DETECTORS)}") from None


def raw_feature_matrix(x_num, x_cat=None, cardinalities=()) -> np.ndarray:
    """The raw-feature baseline: normalised numeric columns plus one-hot categoricals.

    ``x_cat`` uses the FeatureSpec's indices (0 = unseen); ``cardinalities`` is
    ``spec.cardinalities``. Detectors on this matrix are what embeddings must beat.
    """
    parts = [np.asarray(x_num, dtype=np.float32)]
    if x_cat is not None and len(cardinalities):
        x_cat = np.asarray(x_cat, dtype=np.int64)
        for j, card in enumerate(cardinalities):
            parts.append(np.eye(int(card) + 1, dtype=np.float32)[np.clip(x_cat[:, j], 0, card)])
    return np.hstack(parts)


def score_batches(detector: Detector, batches: Iterable, transform=None) -> Iterator[dict]:
    """Score a stream in micro-batches: yields ``{"batch", "n", "scores", "alerts"}`` per batch.

    ``transform`` maps a raw batch to the detector's matrix (e.g. features then embedding).
    """
    if detector.threshold_ is None:
        raise RuntimeError("set the detector's threshold before scoring a stream")
    for i, batch in enumerate(batches):
        X = transform(batch) if transform is not None else batch
        scores = detector.score(X)
        yield {"batch": i, "n": len(scores), "scores": scores, "alerts": scores > detector.threshold_}
