"""The daemon's parts behind issue 16 that need no server: window bookkeeping, the state file,
echo clipping, the guide's fleet and the window score components."""

from __future__ import annotations

import sqlite3

import numpy as np
import orjson
import pandas as pd
import pytest

from obslab.serve import _window
from obslab.serve._errors import clip, invalid_body, reject_duplicate_keys
from obslab.serve.fleet import PROFILES, guide_fleet, inject_leak, profile_of
from obslab.serve.schemas import METRICS, iso_ms
from obslab.serve.store import RecordStore, RollingWindow, Row, StateFileError


def _row(seq, ts, server):
    return Row(seq, ts, server, None, (float(seq),) * len(METRICS))


def test_window_latest_matches_a_brute_force_scan_under_backfill():
    rng = np.random.default_rng(0)
    window = RollingWindow(25)
    everything = []
    for seq in range(1, 400):
        row = _row(seq, int(rng.integers(0, 50)) * 300_000, f"s{rng.integers(0, 6)}")
        everything.append(row)
        window.extend([row])
        kept = everything[-25:]
        expected = {}
        for r in kept:
            cur = expected.get(r.server)
            if cur is None or (r.ts_ms, r.seq) >= (cur.ts_ms, cur.seq):
                expected[r.server] = r
        assert {s: r.seq for s, r in window.latest.items()} == {s: r.seq for s, r in expected.items()}
        assert sum(len(v) for v in window.by_server.values()) == len(window) == len(kept)


def test_eviction_cost_does_not_grow_with_the_window():
    """O(1) per record: 40,000 records through a window of 40,000 cost about what they cost
    through one of 400 (an O(window) eviction would be ~100x slower); best of three runs each."""
    import time

    def run(capacity: int) -> float:
        rows = [_row(seq, seq * 1000, f"s{seq % 45}") for seq in range(1, 3 * capacity // 2 + 40_001)]
        window = RollingWindow(capacity)
        window.extend(rows[: 3 * capacity // 2])  # full, evicting
        start = time.perf_counter()
        for i in range(3 * capacity // 2, len(rows), 45):
            window.extend(rows[i : i + 45])
        return time.perf_counter() - start

    small = min(run(400) for _ in range(3))
    large = min(run(40_000) for _ in range(3))
    assert large < 4 * small, (small, large)


def test_state_file_is_pruned_and_counts_survive(tmp_path):
    store = RecordStore(tmp_path / "s.sqlite", keep=10)
    for i in range(5):
        store.append([(1_700_000_000_000 + i * 300_000, f"h{j}", None, *(1.0,) * len(METRICS)) for j in range(4)])
    assert store.stored() == 10 and store.total == 20
    store.close()
    again = RecordStore(tmp_path / "s.sqlite", keep=10)
    assert again.total == 20 and again.stored() == 10 and again.tick == 5
    assert [r.server for r in again.newest(3)] == ["h1", "h2", "h3"]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_bad_state_file_is_named_and_only_moved_aside_on_request(tmp_path, damage):
    path = tmp_path / "state.sqlite"
    store = RecordStore(path)
    store.append([(1_700_000_000_000 + i, "h", None, *(1.0,) * len(METRICS)) for i in range(3000)])
    store.close()
    data = path.read_bytes()
    path.write_bytes(b"this is not sqlite" * 100 if damage == "garbage" else data[: len(data) // 3])
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"state.sqlite{suffix}").unlink(missing_ok=True)
    before = path.read_bytes()
    with pytest.raises(StateFileError, match="--reset-state") as err:
        RecordStore(path)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before  # not overwritten
    fresh = RecordStore(path, reset=True)
    assert fresh.total == 0 and fresh.moved_aside.read_bytes() == before
    fresh.close()


def test_echoes_are_small_and_serialisable():
    assert clip("x" * 1_000_000).startswith("x" * 64) and len(clip("x" * 1_000_000)) < 100
    assert clip(2**80) == "<integer of 81 bits>" and clip(2**53) == 2**53
    assert clip(float("inf")) == "inf" and clip({"a": 1}) is None
    body = invalid_body([{"record": 0, "field": "cpu_user_pct", "message": "too big", "input": clip(10**400),
                          "type": "less_than_equal"},
                         {"record": 0, "field": "mem_used_pct", "message": "Field required", "input": None,
                          "type": "missing"}])
    orjson.dumps(body)
    assert body["status"] == "error" and body["message"] == "Validation failed"
    assert body["errors"][0] == "Missing required columns: ['mem_used_pct'] (record 0)"
    assert iso_ms(253402300799999 + 10**12).startswith("@")  # never raises


def test_duplicate_keys_are_found_at_any_depth():
    assert reject_duplicate_keys(b'{"records": [{"a": 1, "a": 2}]}').startswith("duplicate JSON key 'a'")
    assert reject_duplicate_keys(b'{"records": [], "records": []}') is not None
    assert reject_duplicate_keys(b'{"records": [{"a": 1}, {"a": 2}]}') is None
    assert reject_duplicate_keys(b"{oops") is None  # not JSON: the schema reports it


def test_profiles_by_prefix_and_the_guides_healthy_record_is_typical_of_its_profile():
    assert profile_of("ppdb001") == "ppdb" and profile_of("PPCOND7") == "ppcond" and profile_of("web-01") == "generic"
    df = guide_fleet(days=1, seed=3)
    assert df["server_name"].nunique() == 45 and set(df["server_name"].map(profile_of)) == set(PROFILES)
    assert df.groupby(["timestamp", "server_name"]).size().max() == 1
    cpu = df[["cpu_user_pct", "cpu_sys_pct", "cpu_iowait_pct", "cpu_idle_pct"]].sum(axis=1)
    assert np.allclose(cpu, 100) and (df[list(METRICS)] >= 0).all().all()
    guide = {"cpu_user_pct": 25.3, "cpu_sys_pct": 8.2, "cpu_iowait_pct": 2.1, "cpu_idle_pct": 64.4,
             "mem_used_pct": 72.1, "swap_used_pct": 5.2, "disk_usage_pct": 45.8}
    db = df[df["server_name"].str.startswith("ppdb")]
    for metric, value in guide.items():  # inside the database profile's daytime range
        lo, hi = db[metric].quantile([0.02, 0.98])
        assert lo <= value <= hi, (metric, lo, value, hi)
    assert guide_fleet(days=1, seed=3).equals(df)  # same seed, same fleet


def test_components_see_a_leak_the_latest_record_alone_hides():
    df = guide_fleet(days=1, seed=4)
    server = "ppdb002"
    start = df["timestamp"].min() + pd.Timedelta(hours=6)
    leaked = inject_leak(df, server, start, "close_wait", rate_per_hour=30)
    x_ok = _window.transform(df[df["server_name"] == server][list(METRICS)].to_numpy())
    x_bad = _window.transform(leaked[leaked["server_name"] == server][list(METRICS)].to_numpy())
    prof = _window.profile_stats(_window.transform(df[df["server_name"].str.startswith("ppdb")][list(METRICS)].to_numpy()))
    at = 6 * 12 + 24  # two hours into the leak
    cw = _window.WINDOW_METRICS.index("back_close_wait")
    ok, bad = _window.components(x_ok[:at], prof), _window.components(x_bad[:at], prof)
    assert bad["own"][cw] > 3 * max(ok["own"][cw], 1) and bad["trend"][cw] > ok["trend"][cw]
    assert _window.since(x_bad[:at], cw, prof) <= 24 + 1  # not before the leak began
    short = _window.components(x_ok[:5], prof)
    assert np.isnan(short["own"]).all() and np.isnan(short["trend"]).all()


def test_one_model_folder_format_for_the_book_and_the_daemon(tmp_path):
    """The book's exported window encoder is refused with the reason; an exported encoder of
    record fields gets the daemon's reference and serves; an old daemon folder is named."""
    import json

    import torch

    from obslab.features import FeatureSpec
    from obslab.model import TabularResNet
    from obslab.serve.features import FEATURES, fit_spec
    from obslab.serve.model_store import NoReference, attach_reference, frame_arrays, load_model
    from obslab.train import save_model

    save_model(tmp_path / "book", TabularResNet(n_numeric=2), FeatureSpec(numeric=["req_count", "lat_p99"], categorical=[]))
    with pytest.raises(ValueError, match="req_count.*obslab serve train"):
        load_model(tmp_path / "book")
    with pytest.raises(ValueError, match="cannot score server-metrics records"):
        attach_reference(tmp_path / "book", guide_fleet(days=0.25, seed=1))

    torch.manual_seed(0)
    fleet = guide_fleet(days=0.5, seed=1)
    spec = fit_spec(*frame_arrays(fleet))
    save_model(tmp_path / "enc", TabularResNet(n_numeric=len(FEATURES), d_model=16, n_blocks=1, d_embedding=8), spec)
    with pytest.raises(NoReference, match="obslab serve train --encoder"):
        load_model(tmp_path / "enc")
    model = load_model(attach_reference(tmp_path / "enc", fleet, k=3))
    assert model.k == 3 and set(model.window_thresholds) == set(_window.COMPONENTS) and model.threshold > 0
    scores, dist, idx = model.score(model.reference_features[:4])
    assert scores.shape == (4,) and np.allclose(dist[:, 0], 0, atol=1e-3)  # a reference record is its own neighbour

    # `obslab serve train --encoder DIR` (and `obslab serve --model DIR` at start): the encoder as
    # exported, the daemon's part chosen on a validation fleet beside it
    from obslab.serve.cli import build

    assert build("synth", tmp_path / "x", encoder=tmp_path / "missing").endswith("(needs model.pt and meta.json)")
    served = build("synth", tmp_path / "served", days=0.25, encoder=tmp_path / "enc")
    assert (served / "meta.json").read_bytes() == (tmp_path / "enc" / "meta.json").read_bytes()
    assert load_model(served).serving["calibration"]["on"] == "validation fleet"

    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "model.pt").write_bytes(b"")
    (tmp_path / "old" / "meta.json").write_text(json.dumps({"features": [], "normalisation": {}}))
    with pytest.raises(ValueError, match="older `obslab serve train`"):
        load_model(tmp_path / "old")
