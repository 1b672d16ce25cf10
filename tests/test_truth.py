"""The one incident -> phase mapping: boundaries, targets, overlaps, and its three users agree."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings, strategies as st

from obslab.features import window_labels
from obslab.labels import phase_arrays
from obslab.truth import Incident, phases, precedence, qualify

S = 1_000  # one second in ms


def inc(iid, start, end, cool, targets=("db",), root="db", primary=None, fault="latency_spike"):
    return Incident(iid, fault, "high", list(targets), start * S, end * S, cool * S, root,
                    primary_incident_id=primary)


A = inc("a", 100, 200, 300)


def test_event_boundaries_are_half_open():
    t = [99_999, 100_000, 199_999, 200_000, 299_999, 300_000]
    got = phases(t, [A], service=["db"] * 6)
    assert got["phase"].tolist() == ["normal", "fault", "fault", "cooldown", "cooldown", "normal"]
    assert got["is_anomaly"].tolist() == [False, True, True, False, False, False]
    # cooldown rows carry their incident; normal rows none
    assert got["incident_id"].tolist()[1:5] == ["a"] * 4
    assert pd.isna(got["incident_id"][0]) and pd.isna(got["incident_id"][5])


def test_window_boundaries():
    # 10 s windows: one ending exactly at start is normal, one starting exactly at end is cooldown,
    # one straddling the end is still fault, one starting at cooldown_end is normal
    starts = [90 * S, 91 * S, 195 * S, 200 * S, 290 * S, 300 * S]
    got = phases(starts, [A], window_ms=10 * S, service=["db"] * 6)
    assert got["phase"].tolist() == ["normal", "fault", "fault", "cooldown", "cooldown", "normal"]


def test_only_targets_are_affected():
    # a cascade secondary whose root cause (db) is not its target leaves db's rows alone
    sec = inc("a-c1", 100, 250, 320, targets=["web"], root="db", primary="a")
    got = phases([220 * S, 220 * S, 220 * S], [A, sec], service=["db", "web", "cache"])
    assert got["phase"].tolist() == ["cooldown", "fault", "normal"]
    assert got["incident_id"].tolist()[:2] == ["a", "a-c1"]
    assert got["root_cause_service"].tolist()[:2] == ["db", "db"]


def test_no_targets_or_no_service_means_every_row():
    anywhere = inc("x", 100, 200, 300, targets=())
    assert phases([150 * S], [anywhere], service=["cache"])["phase"].tolist() == ["fault"]
    assert phases([150 * S], [A])["phase"].tolist() == ["fault"]  # time only: any incident counts


def test_overlaps_fault_beats_cooldown_then_precedence():
    early = inc("e", 100, 200, 400)  # its cooldown covers the next one's fault
    late = inc("l", 250, 300, 350)
    for order in ([early, late], [late, early]):
        got = phases([260 * S, 320 * S], order, service=["db", "db"])
        assert got["phase"].tolist() == ["fault", "cooldown"]
        assert got["incident_id"].tolist() == ["l", "e"]  # both cooldown at 320 s: earlier start wins
    # a primary claims shared rows before a secondary that started earlier; ties by id, not file order
    primary = inc("p", 120, 200, 300)
    secondary = inc("s", 110, 200, 300, primary="p")
    twin = inc("b", 120, 200, 300)
    assert [i.incident_id for i in precedence([secondary, twin, primary])] == ["b", "p", "s"]
    assert phases([150 * S], [secondary, primary], service=["db"])["incident_id"].tolist() == ["p"]


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="2 times but 1 services"):
        phases([1, 2], [A], service=["db"])


def test_event_labels_windows_and_split_use_the_same_rules():
    incidents = [A, inc("a-c1", 100, 250, 320, targets=["web"], root="db", primary="a")]
    times = np.arange(80, 340, 5, dtype=np.int64) * S
    services = np.array(["db", "web", "cache"] * len(times), dtype=object)
    times = np.repeat(times, 3)
    ev = phases(times, incidents, service=services)
    # labels.parquet's Arrow front end, with chunked input
    phase, fault, iid, root = phase_arrays(pa.chunked_array([times[:7], times[7:]]),
                                           pa.chunked_array([services[:7].tolist(), services[7:].tolist()]),
                                           incidents)
    assert phase.to_pylist() == ev["phase"].tolist()
    assert iid.to_pylist() == [None if pd.isna(v) else v for v in ev["incident_id"]]
    # a 5 s window holding exactly one event instant has that event's phase
    frame = pd.DataFrame({"window_start_ms": times, "service": services})
    win = window_labels(frame, incidents, window_ms=5 * S)
    assert win["phase"].tolist() == ev["phase"].tolist()
    assert win["is_anomaly"].tolist() == ev["is_anomaly"].tolist()


@settings(max_examples=50, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 50), st.integers(1, 20), st.integers(0, 20)), min_size=1,
                      max_size=4),
       width=st.integers(1, 12))
def test_a_window_is_fault_iff_one_of_its_instants_is(spans, width):
    # times in ms here: every instant of every window is checked
    incidents = [Incident(f"i{k}", "f", "high", ["db"], s, s + d, s + d + c, "db") for k, (s, d, c) in enumerate(spans)]
    starts = np.arange(0, 100, dtype=np.int64)
    win = phases(starts, incidents, window_ms=width)["phase"].to_numpy()
    instants = phases(np.arange(0, 100 + width, dtype=np.int64), incidents)["phase"].to_numpy()
    for k, t in enumerate(starts):
        inside = set(instants[t:t + width])
        expect = "fault" if "fault" in inside else "cooldown" if "cooldown" in inside else "normal"
        assert win[k] == expect, (k, width, spans)


def test_qualify_prefixes_ids_and_cascade_links_with_the_run():
    sec = inc("a-c1", 100, 250, 320, targets=["web"], primary="a")
    got = qualify([A, sec], "run-2")
    assert [(i.incident_id, i.primary_incident_id) for i in got] == [("run-2/a", None), ("run-2/a-c1", "run-2/a")]
    assert A.incident_id == "a"  # copies: the catalog read once stays as it is
    assert qualify([A], None) == [A]
