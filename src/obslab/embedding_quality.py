"""How good is an embedding space? Neighbour consistency, cluster structure, 2-D views.

Public API::

    knn_agreement(X, groups, k=10) -> float        share of each point's k nearest neighbours
                                                   (itself excluded) that share its group
    knn_agreement_by_group(X, groups, k=10) -> DataFrame   the same per group, with group size
    chance_agreement(groups) -> float              what random neighbours would score (sum p_g^2)
    silhouette(X, groups, sample_size=2000, seed=0) -> float in [-1, 1]
    project_2d(X, method="pca"|"tsne", seed=0) -> ndarray [n, 2]
    cluster(X, n_clusters=8, seed=0) -> ndarray[int]   k-means cluster ids
    cluster_profile(frame, clusters, numeric=(), categorical=(), flag=None) -> DataFrame
                                                   size, numeric means, top category per cluster,
                                                   share of ``flag`` (e.g. is_anomaly) per cluster
    nearest_rows(X, frame, index, k=5) -> DataFrame the k nearest rows of one row, with distance
    scatter_2d(ax, xy, groups, title="") -> ax      a matplotlib scatter coloured by group

Group labels here are for *reading* an embedding (services, status classes, or ground truth
in an evaluation); they never enter training.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

__all__ = [
    "knn_agreement",
    "knn_agreement_by_group",
    "chance_agreement",
    "silhouette",
    "project_2d",
    "cluster",
    "cluster_profile",
    "nearest_rows",
    "scatter_2d",
]


def _single_threaded(func):
    """Run sklearn/OpenMP work on one thread: on a small shared machine, spinning OpenMP
    threads made t-SNE twenty times slower than a single thread."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(1):
            return func(*args, **kwargs)

    return wrapper


@_single_threaded
def _neighbours(X: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    X = np.asarray(X, dtype=np.float32)
    if len(X) < 2:
        raise ValueError("need at least two points")
    k = min(k, len(X) - 1)
    idx = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)
    # drop the point itself (usually column 0; with duplicates it may sit elsewhere)
    out = np.empty((len(X), k), dtype=np.int64)
    for i, row in enumerate(idx):
        others = row[row != i]
        out[i] = others[:k]
    return out


def _agreement_per_point(X, groups, k) -> np.ndarray:
    groups = np.asarray(groups)
    if len(groups) != len(X):
        raise ValueError(f"{len(X)} points but {len(groups)} group labels")
    nn = _neighbours(X, k)
    return (groups[nn] == groups[:, None]).mean(axis=1)


def knn_agreement(X, groups, k: int = 10) -> float:
    """Mean share of k nearest neighbours with the same group (1.0 = groups perfectly local)."""
    return float(_agreement_per_point(X, groups, k).mean())


def knn_agreement_by_group(X, groups, k: int = 10) -> pd.DataFrame:
    per_point = _agreement_per_point(X, groups, k)
    df = pd.DataFrame({"group": np.asarray(groups), "agreement": per_point})
    out = df.groupby("group")["agreement"].agg(["size", "mean"])
    return out.rename(columns={"size": "n", "mean": "knn_agreement"}).sort_values("n", ascending=False)


def chance_agreement(groups) -> float:
    """Expected agreement of random neighbours: the baseline knn_agreement must beat."""
    p = pd.Series(np.asarray(groups)).value_counts(normalize=True).to_numpy()
    return float((p**2).sum())


@_single_threaded
def silhouette(X, groups, sample_size: int | None = 2000, seed: int = 0) -> float:
    from sklearn.metrics import silhouette_score

    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise ValueError("silhouette needs at least two groups")
    size = None if sample_size is None or sample_size >= len(groups) else sample_size
    return float(silhouette_score(np.asarray(X), groups, sample_size=size, random_state=seed))


@_single_threaded
def project_2d(X, method: str = "pca", seed: int = 0, perplexity: float = 30.0,
               max_iter: int = 500) -> np.ndarray:
    """A 2-D view: PCA (linear, fast, faithful to large distances) or t-SNE (local structure)."""
    X = np.asarray(X, dtype=np.float64)
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(X)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = min(perplexity, max(2.0, (len(X) - 1) / 3))
        return TSNE(n_components=2, random_state=seed, init="pca", perplexity=perplexity,
                    max_iter=max_iter).fit_transform(X)
    raise ValueError(f"method must be 'pca' or 'tsne', not {method!r}")


@_single_threaded
def cluster(X, n_clusters: int = 8, seed: int = 0) -> np.ndarray:
    from sklearn.cluster import KMeans

    n_clusters = min(n_clusters, len(X))
    return KMeans(n_clusters=n_clusters, random_state=seed, n_init=4).fit_predict(np.asarray(X))


def cluster_profile(
    frame: pd.DataFrame,
    clusters,
    numeric: Sequence[str] = (),
    categorical: Sequence[str] = (),
    flag=None,
) -> pd.DataFrame:
    """One row per cluster: size, mean of each numeric column, most common value (and its
    share) of each categorical column, and the share of rows where ``flag`` is true."""
    df = frame.reset_index(drop=True).assign(_cluster=np.asarray(clusters))
    g = df.groupby("_cluster")
    out = pd.DataFrame({"size": g.size()})
    for col in numeric:
        out[f"mean_{col}"] = g[col].mean()
    for col in categorical:
        top = g[col].agg(lambda s: s.value_counts().index[0])
        share = g[col].agg(lambda s: s.value_counts(normalize=True).iloc[0])
        out[f"top_{col}"] = top
        out[f"top_{col}_share"] = share
    if flag is not None:
        out["flag_share"] = pd.Series(np.asarray(flag, dtype=float)).groupby(df["_cluster"]).mean()
    out.index.name = "cluster"
    return out.sort_values("size", ascending=False)


def nearest_rows(X, frame: pd.DataFrame, index: int, k: int = 5) -> pd.DataFrame:
    """The k rows nearest to row ``index`` (itself excluded), with their distances."""
    X = np.asarray(X, dtype=np.float64)
    d = np.linalg.norm(X - X[index], axis=1)
    d[index] = np.inf
    order = np.argsort(d, kind="stable")[:k]
    return frame.iloc[order].assign(distance=d[order])


def scatter_2d(ax, xy, groups, title: str = "", max_groups: int = 10, size: float = 4.0):
    """Scatter a 2-D projection coloured by group (the largest ``max_groups`` groups; the rest
    drawn grey as "other")."""
    groups = pd.Series(np.asarray(groups).astype(str))
    top = list(groups.value_counts().index[:max_groups])
    rest = ~groups.isin(top)
    if rest.any():
        ax.scatter(xy[rest, 0], xy[rest, 1], s=size, c="lightgrey", label="other", alpha=0.5)
    for name in top:
        sel = (groups == name).to_numpy()
        ax.scatter(xy[sel, 0], xy[sel, 1], s=size, label=name, alpha=0.7)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(markerscale=3, fontsize="small", loc="best")
    return ax
