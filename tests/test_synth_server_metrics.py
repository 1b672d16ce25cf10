"""Server-metric records for the inference daemon: schema, plausibility, labels apart."""

import numpy as np
import pandas as pd

from obslab.synth import SERVER_FIELDS, STATUSES, server_metrics, server_metrics_with_labels


def test_schema_and_values():
    df = server_metrics(days=2, step="5m", seed=1, n_servers=6)
    assert list(df.columns) == SERVER_FIELDS
    assert len(df) == 2 * 288 * 6
    assert set(df.status) <= set(STATUSES)
    assert {"healthy", "idle", "maintenance"} <= set(server_metrics(days=7, seed=1).status)
    cpu = df[["cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct", "cpu_idle_pct"]].sum(axis=1)
    on = df.status != "offline"
    assert np.allclose(cpu[on], 100, atol=0.01)
    assert (df.java_cpu_pct <= df.cpu_user_pct + 1e-9).all()
    for col in ("mem_used_pct", "swap_used_pct", "disk_usage_pct"):
        assert df[col].between(0, 100).all()
    assert (df[["net_in_mb_s", "net_out_mb_s", "load_average", "uptime_days"]] >= 0).all().all()
    assert df.back_close_wait.dtype == np.int64
    assert isinstance(df.timestamp.dtype, pd.DatetimeTZDtype)


def test_deterministic_and_labels_apart():
    a, la = server_metrics_with_labels(days=3, seed=9, n_servers=5)
    b, lb = server_metrics_with_labels(days=3, seed=9, n_servers=5)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(la, lb)
    c = server_metrics(days=3, seed=10, n_servers=5)
    assert not a.cpu_user_pct.equals(c.cpu_user_pct)
    assert not set(a.columns) & {"is_anomaly", "incident_type", "phase"}
    assert la.is_anomaly.any() and (~la.is_anomaly).any()
    # statuses lag the truth: some anomalous records still look healthy
    bad = a[la.is_anomaly.to_numpy()]
    alarm = bad.status.isin(["critical_issue", "offline"])
    assert alarm.any() and (~alarm).any()
    leak = la.incident_type.eq("memory_leak") & la.is_anomaly
    if leak.any():
        assert a.mem_used_pct[leak].mean() > a.mem_used_pct[~la.is_anomaly].mean()
