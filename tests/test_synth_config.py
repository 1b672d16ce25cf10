"""Synth settings: step parsing, YAML loading, flag overrides, clear errors."""

import pytest

from obslab.synth import SynthConfig, load_config
from obslab.synth.config import parse_step


def test_defaults_follow_the_issue():
    cfg = SynthConfig()
    assert (cfg.days, cfg.step_s, cfg.hosts_per_service) == (365, 900, 5)
    assert cfg.regions == ["us-east-1", "eu-west-1", "on-prem-dc1"]
    assert len(cfg.services) == 5 and len(cfg.incident_types) == 9


@pytest.mark.parametrize("text,seconds", [("1m", 60), ("15m", 900), ("1h", 3600), ("5", 300)])
def test_parse_step(text, seconds):
    assert parse_step(text) == seconds


@pytest.mark.parametrize("bad", ["30s", "7m", "abc", "0m"])
def test_bad_steps_are_rejected(bad):
    with pytest.raises(ValueError):
        parse_step(bad)


def test_yaml_then_flags(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("days: 4\nstep: 5m\nhosts_per_service: 2\nregions: [a, b]\n")
    cfg = load_config(f, days=2, seed=None)
    assert (cfg.days, cfg.step_s, cfg.hosts_per_service, cfg.regions) == (2, 300, 2, ["a", "b"])
    assert cfg.region_utc_offset["a"] == 0.0


def test_unknown_settings_and_bad_graph_are_named(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("dayz: 4\n")
    with pytest.raises(ValueError, match="dayz"):
        load_config(f)
    with pytest.raises(ValueError, match="nosuch"):
        load_config(dependencies={"web-frontend": ["nosuch"]})
    with pytest.raises(ValueError, match="unknown incident types"):
        load_config(incident_types=["meteor_strike"])
