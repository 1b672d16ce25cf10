"""What the daemon's flags are worth (issue 16): a model made as `obslab serve train --from synth`
makes it (small: one day, two epochs), its thresholds chosen on a validation fleet, measured on
held-out fleets of other seeds. The bounds come from the data: the target the thresholds were
chosen for, the fleet's own healthy ranges and the leak rates, not from a run of this test."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from obslab.serve.evaluation import VALIDATION_OFFSET, false_alarms, leak_delays
from obslab.serve.fleet import LEAK_KINDS, PROFILES, SYNTH_PER_PROFILE

pytestmark = pytest.mark.slow

HELD_OUT_FA, HELD_OUT_LEAKS = 101, 202


@pytest.fixture(scope="module")
def model(synth_serve_model):
    from obslab.serve.model_store import load_model

    torch.set_num_threads(1)
    out, made = synth_serve_model  # the guide's `obslab serve train --from synth`, trained once per session
    assert made.returncode == 0, made.stderr
    model = load_model(out)
    assert (model.serving["trained_on"]["seed"], model.serving["trained_on"]["days"]) == (0, 1), model.serving["trained_on"]
    return model


def test_held_out_seeds_are_neither_training_nor_validation(model):
    cal = model.serving["calibration"]
    used = {model.serving["trained_on"]["seed"], cal["seed"]}
    assert cal["seed"] == model.serving["trained_on"]["seed"] + VALIDATION_OFFSET
    assert not used & {HELD_OUT_FA, HELD_OUT_LEAKS}


def test_false_alarms_on_a_held_out_fleet_are_not_above_the_target(model, capsys):
    fa = false_alarms(model, days=1, seed=HELD_OUT_FA)
    target = model.serving["calibration"]["target_rate"]
    rate, (low, high) = fa["flagged"]["rate"], fa["flagged"]["ci95"]
    with capsys.disabled():
        print(f"\nheld-out false alarms {100 * rate:.2f} % [{100 * low:.2f}, {100 * high:.2f}] (target "
              f"{100 * target:.2f} %); per profile: " + ", ".join(
                  f"{p} {100 * r['rate']:.2f} % [{100 * r['ci95'][0]:.2f}, {100 * r['ci95'][1]:.2f}]"
                  for p, r in fa["per_profile"].items()))
    assert fa["servers"] == len(PROFILES) * SYNTH_PER_PROFILE and fa["checks"] > 100 * fa["servers"]
    # the interval over servers reaches down to the target: not significantly above what the
    # thresholds were chosen for on the validation fleet
    assert low <= target, (rate, low, high)
    assert set(fa["per_profile"]) == set(PROFILES)
    assert all(r["servers"] == SYNTH_PER_PROFILE for r in fa["per_profile"].values())
    # no profile is flagged most of the time: the profiles' typical values are normal
    assert all(r["rate"] < 0.5 for r in fa["per_profile"].values()), fa["per_profile"]


@pytest.fixture(scope="module")
def leaks(model):
    ld = leak_delays(model, days=1, seed=HELD_OUT_LEAKS)
    print("\n" + ld["table"].drop(columns=["start"]).to_string(index=False, float_format=lambda v: f"{v:.0f}"))
    return ld["table"]


def test_every_leak_is_flagged_and_slow_leaks_before_they_add_a_whole_healthy_range(leaks):
    assert len(leaks) == len(PROFILES) * len(LEAK_KINDS)
    caught = leaks["delay_min"].notna()
    assert caught.all(), leaks[~caught]
    assert np.allclose(leaks["delay_records"], leaks["delay_min"] / 5 + 1)
    # a slow leak (memory, disk: 2 points an hour) is flagged before it has moved the metric by
    # its profile's whole healthy range (where it gets that far within the horizon; capped memory
    # may not)
    slow = leaks[leaks["kind"].isin(["memory", "disk"]) & leaks["range_min"].notna()]
    assert len(slow) >= len(PROFILES)
    assert (slow["delay_min"] <= slow["range_min"]).all(), slow


@pytest.mark.xfail(strict=True, reason="known gap (issue 16): CLOSE_WAIT climbing 24/h leaves a profile's healthy "
                   "range in 20-35 min; the window score flags it 5-25 min later (it needs a few records to see "
                   "a level or a slope); a static alarm at the healthy maximum rings first")
def test_a_climbing_close_wait_is_flagged_before_it_leaves_the_healthy_range(leaks):
    fast = leaks[(leaks["kind"] == "close_wait") & leaks["range_min"].notna()]
    assert len(fast) == len(PROFILES)
    assert (fast["delay_min"] <= fast["range_min"]).all(), fast
