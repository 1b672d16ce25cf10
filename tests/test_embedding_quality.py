"""Embedding-quality measures on spaces whose structure is known."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from obslab.embedding_quality import (  # noqa: E402
    chance_agreement,
    cluster,
    cluster_profile,
    knn_agreement,
    knn_agreement_by_group,
    nearest_rows,
    project_2d,
    scatter_2d,
    silhouette,
)


def blobs(n=300, d=6, sep=8.0, seed=0):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 3, n)
    centres = rng.normal(size=(3, d)) * sep
    return centres[groups] + rng.normal(size=(n, d)), groups


def test_agreement_separates_structure_from_noise():
    X, g = blobs()
    assert knn_agreement(X, g, k=10) > 0.98
    shuffled = np.random.default_rng(1).permutation(g)
    assert abs(knn_agreement(X, shuffled, k=10) - chance_agreement(shuffled)) < 0.08
    assert chance_agreement(np.array([0, 0, 1, 1])) == pytest.approx(0.5)


def test_agreement_by_group_and_self_exclusion():
    X = np.array([[0.0], [0.0], [10.0], [10.0]])
    g = np.array(["a", "a", "b", "b"])
    assert knn_agreement(X, g, k=1) == 1.0  # the neighbour is the twin, never the point itself
    table = knn_agreement_by_group(X, g, k=1)
    assert table.loc["a", "n"] == 2 and table.loc["b", "knn_agreement"] == 1.0
    with pytest.raises(ValueError):
        knn_agreement(X, g[:3])


def test_silhouette_ranges():
    X, g = blobs()
    assert silhouette(X, g) > 0.7
    assert silhouette(X, np.random.default_rng(2).permutation(g)) < 0.05
    with pytest.raises(ValueError):
        silhouette(X, np.zeros(len(X)))


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_shape_and_determinism(method):
    X, _ = blobs(n=120)
    a, b = project_2d(X, method, seed=0), project_2d(X, method, seed=0)
    assert a.shape == (120, 2) and np.allclose(a, b)
    with pytest.raises(ValueError):
        project_2d(X, "umap")


def test_clusters_recover_blobs_and_profile_reads_them():
    X, g = blobs()
    c = cluster(X, n_clusters=3, seed=0)
    # every cluster is (almost) one blob
    purity = pd.crosstab(c, g).max(axis=1).sum() / len(g)
    assert purity > 0.98
    frame = pd.DataFrame({"lat": g * 100.0, "service": np.array(["a", "b", "c"])[g]})
    prof = cluster_profile(frame, c, numeric=["lat"], categorical=["service"], flag=g == 2)
    assert prof["size"].sum() == len(g)
    assert set(prof["top_service"]) == {"a", "b", "c"}
    assert sorted(prof["flag_share"].round(2)) == [0.0, 0.0, 1.0]


def test_nearest_rows_excludes_itself():
    X = np.array([[0.0], [1.0], [5.0], [1.5]])
    frame = pd.DataFrame({"name": ["p", "q", "r", "s"]})
    near = nearest_rows(X, frame, 1, k=2)
    assert list(near["name"]) == ["s", "p"] and list(near["distance"]) == [0.5, 1.0]


def test_scatter_draws_every_group():
    X, g = blobs(n=60)
    fig, ax = plt.subplots()
    scatter_2d(ax, project_2d(X), g, title="t", max_groups=2)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "other" in labels and len(labels) == 3
    plt.close(fig)
