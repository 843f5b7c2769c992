"""Twin settings are data: the packaged file loads; unknown keys and bad values are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from ballast.models.twin.config import load_twin_settings


def test_packaged_defaults_load_and_make_a_small_network() -> None:
    s = load_twin_settings()
    spec = s.sample_spec()
    assert (spec.plants, spec.dcs, spec.hubs, spec.skus) == (1, 2, 5, 20)
    assert s.days == 21 and s.start.tzinfo is not None
    assert s.sample_spec("S").skus == 300  # the default sample network stays selectable


def test_overrides_replace_top_level_keys() -> None:
    assert load_twin_settings(days=5).days == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: x\nnetwork: {hubs: 3}\n", "hubs"),
        ("version: x\nsurprise: 1\n", "surprise"),
        ("version: x\nstart: '2026-11-23T06:00:00'\n", "time zone"),
    ],
)
def test_bad_settings_name_the_problem(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "twin.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_twin_settings(path)


def test_a_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        load_twin_settings(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="unknown network size"):
        load_twin_settings().sample_spec("XL")


def test_the_lost_sale_bill_is_the_twins_not_the_policy_under_test() -> None:
    from ballast.models.policy import Policy
    from ballast.models.twin.world import shortage_yardstick

    cheap = Policy.model_validate(
        {"version": "t", "author": "t", "shortage_penalty_per_unit": 5.0, "shortage_penalty_price_multiple": 0.0}
    )
    assert shortage_yardstick(load_twin_settings(), cheap) == (20.0, 1.5)  # the packaged twin bills a fixed yardstick
    unset = load_twin_settings(costs={"overflow_per_volume_day": 0.0})  # no yardstick in the file
    assert shortage_yardstick(unset, cheap) == (5.0, 0.0)  # unset: the policy's own penalty
