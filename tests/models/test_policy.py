"""Policies as code: valid and invalid example files through the loader; every knob of DESIGN §3."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from ballast.models.policy import Policy, PolicyError, load_policy
from ballast.settings import PACKAGED_POLICY

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "policies" / "examples"
VALID = sorted((EXAMPLES / "valid").glob("*.yaml"))
INVALID = sorted((EXAMPLES / "invalid").glob("*.yaml"))

EXPECTED_PROBLEM = {
    "unknown_key.yaml": "cooldown: unknown key",
    "unknown_nested_key.yaml": "solver.gap: unknown key",
    "quoted_number.yaml": "horizon_days",
    "missing_version.yaml": "version",
    "bad_unmet_demand.yaml": "unmet_demand",
    "freeze_beyond_horizon.yaml": "freeze_window_days cannot exceed horizon_days",
    "unknown_fallback_rung.yaml": "fallback.ladder",
    "not_a_mapping.yaml": "a policy is a mapping",
}


def test_there_are_examples_of_both_kinds():
    assert len(VALID) >= 3
    assert {p.name for p in INVALID} == set(EXPECTED_PROBLEM)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_examples_load(path):
    policy, digest = load_policy(path)
    assert policy.version
    assert len(digest) == 64


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_examples_are_rejected_with_a_clear_message(path):
    with pytest.raises(PolicyError) as err:
        load_policy(path)
    message = str(err.value)
    assert str(path) in message  # names the file
    assert EXPECTED_PROBLEM[path.name] in message  # names the key / rule


def test_default_policy_is_the_packaged_one_and_loads():
    root_default = ROOT / "policies" / "default.yaml"
    assert root_default.read_bytes() == PACKAGED_POLICY.read_bytes()
    policy, _ = load_policy(root_default)
    assert policy.unmet_demand == "lost_sales"
    assert policy.forbidden_lanes[0].origin == "DC-FR-01"


def test_every_design_knob_is_a_field():
    # DESIGN.md §3, knob by knob
    knobs = {
        "version",
        "horizon_days",
        "service_levels",
        "shortage_penalty_per_unit",
        "unmet_demand",
        "safety_stock_method",
        "freeze_window_days",
        "approval",
        "forbidden_lanes",
        "embargoed_country_pairs",
        "possession_limits",
        "minimum_transfer",
        "cooldown_days",
        "staleness_budget_hours",
        "quality_gates",
        "solver",
        "fallback",
        # added with the engine
        "backorder_daily_penalty_share",
        "negotiation_max_rounds",
    }
    assert knobs <= set(Policy.model_fields)
    assert {"time_limit_seconds", "mip_gap"} <= set(Policy.model_fields["solver"].annotation.model_fields)


def test_policy_is_frozen_and_strict():
    policy, _ = load_policy(VALID[0])
    with pytest.raises(ValidationError):
        policy.horizon_days = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Policy.model_validate({"version": "x", "author": "a", "horizon_days": "14"})


def test_service_level_picks_the_stricter_rule():
    policy, _ = load_policy(ROOT / "policies" / "default.yaml")
    assert policy.service_levels.level("dc", "C") == 0.97
    assert policy.service_levels.level("hub", "A") == 0.98
    assert policy.service_levels.level("store", None) == 0.95


def test_backorder_share_and_negotiation_rounds_bounds():
    with pytest.raises(ValidationError):
        Policy.model_validate({"version": "x", "author": "a", "backorder_daily_penalty_share": 1.5})
    with pytest.raises(ValidationError):
        Policy.model_validate({"version": "x", "author": "a", "negotiation_max_rounds": -1})
