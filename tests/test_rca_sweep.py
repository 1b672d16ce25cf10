"""The committed root-cause sweep (data/results/rca_per_incident.csv) is reproducible: one seed
of it, re-run on the committed sample, gives the same per-incident results."""

import pandas as pd
import pytest

from obslab.data import REPO_ROOT
from obslab.rca_runs import RESULT_COLUMNS, rca_seed_sweep, read_rca_results

SAMPLE = REPO_ROOT / "data" / "sample"


def test_committed_table_has_every_method_for_every_incident_and_seed():
    table = read_rca_results()
    sample = table[table["dataset"] == "sample"]
    assert not sample.empty, "the committed sweep lost the sample: run scripts/run_rca.py data/sample"
    assert list(table.columns) == RESULT_COLUMNS
    per_seed = sample.groupby("seed").size()
    assert per_seed.nunique() == 1 and per_seed.iloc[0] == sample["method"].nunique() * sample["incident"].nunique()
    assert set(sample["alert_source"]) <= {"detection", "fallback"}
    assert ((sample["hit@1"] <= sample["hit@3"]) & sample["hit@1"].isin([0, 1])).all()


def test_one_seed_of_the_committed_sweep_reruns_identically():
    table = read_rca_results()
    sample = table[table["dataset"] == "sample"]
    assert not sample.empty, "the committed sweep lost the sample: run scripts/run_rca.py data/sample"
    seed = int(sample["seed"].min())
    got = rca_seed_sweep(SAMPLE, [seed], "sample")
    want = sample[sample["seed"] == seed]
    key = ["method", "incident"]
    got = got.sort_values(key).reset_index(drop=True).astype(str)
    want = want.sort_values(key).reset_index(drop=True).astype(str)
    pd.testing.assert_frame_equal(got, want)


@pytest.mark.slow
def test_a_corpus_is_ranked_run_by_run_with_incidents_keyed_by_run(tmp_path, monkeypatch):
    from obslab.rca_runs import rca_per_incident, rca_runs

    # two runs of the real sample, each on its own clock (a corpus is runs/<name>/)
    for name in ("first", "second"):
        (tmp_path / "runs").mkdir(exist_ok=True)
        (tmp_path / "runs" / name).symlink_to(SAMPLE, target_is_directory=True)
    monkeypatch.setenv("OBSLAB_CACHE", str(tmp_path / "cache"))
    runs = rca_runs(tmp_path, seed=7)
    assert [r.name for r in runs] == ["first", "second"]
    n = len(runs[0].incidents)
    assert n > 0 and all(len(r.incidents) == n for r in runs)
    assert all(i.incident_id.startswith(f"{r.name}/") for r in runs for i in r.incidents)
    # each run keeps only its own rows: the same windows as the sample's, on the sample's clock
    assert len(runs[0].windows) == len(runs[1].windows)
    per = rca_per_incident(runs, 7)
    assert per["incident"].nunique() == 2 * n
    assert set(per["run"]) == {"first", "second"}
    # the signals-only rankings see the same rows at the same alerts in both copies when both
    # alerts fell back to the true start: identical hits
    both = per[(per["method"] == "signals, no graph") & (per["alert_source"] == "fallback")]
    pairs = both.assign(local=both["incident"].str.split("/", n=1).str[1]).pivot_table(
        index="local", columns="run", values="hit@1")
    pairs = pairs.dropna()
    assert (pairs["first"] == pairs["second"]).all()
