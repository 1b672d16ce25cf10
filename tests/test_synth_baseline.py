"""Anomalies are learnable but not trivially separable by a raw-feature Isolation Forest."""

from obslab.synth import load_config
from obslab.synth.baseline import isolation_forest_auroc


def test_isolation_forest_baseline_is_clearly_below_perfect():
    res = isolation_forest_auroc(load_config(days=42, seed=21))
    print(res)
    assert 0.005 < res["anomalous_fraction"] < 0.2
    assert 0.55 < res["auroc"] < 0.92, res
