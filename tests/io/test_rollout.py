"""The rollout registry: champion and challenger versions with history, audited, replayable."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from ballast.io import rollout
from ballast.io.plans import audit_entries, verify_audit
from ballast.io.warehouse import open_warehouse
from ballast.models.governance import NotAllowed
from ballast.models.policy import load_policy
from ballast.settings import Settings

T0 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)


def _policy_file(folder: Path, version: str, author: str = "policy-office", **changes: object) -> Path:
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc.update({"version": version, "author": author, **changes})
    path = folder / f"policy-{version}.yaml"
    # a comment and key order are part of the document: the registry must keep them byte for byte
    path.write_text(f"# challenger {version}\n" + yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def con(ballast_home: Path):
    with open_warehouse(Settings().db_path) as c:
        yield c


def test_empty_registry_means_the_settings_policy_is_in_force(con):
    assert rollout.champion_policy(con) is None
    assert rollout.challenger(con) is None
    assert rollout.policy_in_force(con, T0) is None
    with open_warehouse(Settings().db_path.with_name("other.duckdb")) as fresh:  # no tables at all
        assert rollout.history(fresh).is_empty()


def test_set_challenger_keeps_the_exact_document_and_is_audited(con, tmp_path):
    path = _policy_file(tmp_path, "2026.12.1", shortage_penalty_per_unit=35.0)
    ch = rollout.set_challenger(con, by="ana.planner", reason="try a higher penalty", policy_path=path, now=T0)
    assert ch.policy is not None and ch.forecaster is None
    assert ch.policy.yaml_text.encode() == path.read_bytes()
    assert ch.policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == load_policy(path)[1]
    assert ch.policy.version == "2026.12.1" and ch.policy.policy().shortage_penalty_per_unit == 35.0
    # written back out, the document loads with the same sha256 as the original file
    copy = ch.policy.materialise(tmp_path / "materialised")
    assert load_policy(copy)[1] == ch.policy.sha256
    entries = audit_entries(con)
    assert [e.action for e in entries] == ["rollout_set_challenger"]
    assert json.loads(entries[0].payload)["reason"] == "try a higher penalty"
    assert verify_audit(con) == []


def test_promote_then_rollback_with_history_and_replay_by_time(con, tmp_path):
    settings = Settings()
    baseline_sha = load_policy(settings.policy_path)[1]
    v2 = _policy_file(tmp_path, "2026.12.1", shortage_penalty_per_unit=35.0)
    v2_sha = load_policy(v2)[1]
    rollout.set_challenger(con, by="ana.planner", reason="penalty 35", policy_path=v2, now=T0)

    promoted = rollout.promote(con, settings, by="ben.planner", reason="cheaper in the twin",
                               now=T0 + timedelta(hours=1))
    assert [(e.kind, e.ref) for e in promoted] == [("policy", v2_sha)]
    assert rollout.champion_policy(con).sha256 == v2_sha
    assert rollout.challenger(con) is None  # the challenger became champion
    # the file changes afterwards: the registry still holds what was promoted
    v2.write_text("version: changed\n")
    assert rollout.champion_policy(con).policy().shortage_penalty_per_unit == 35.0

    rollout.rollback(con, settings, by="ana.planner", reason="fill rate dropped", now=T0 + timedelta(hours=3))
    assert rollout.champion_policy(con).sha256 == baseline_sha

    # replay: what was in force when
    assert rollout.policy_in_force(con, T0) is None  # before any registration: the caller uses the settings file
    assert rollout.policy_in_force(con, T0 + timedelta(hours=2)).sha256 == v2_sha
    assert rollout.policy_in_force(con, T0 + timedelta(hours=3)).sha256 == baseline_sha
    baseline_text = rollout.policy_in_force(con, T0 + timedelta(hours=4)).yaml_text
    assert baseline_text.encode() == settings.policy_path.read_bytes()

    actions = [e.action for e in audit_entries(con)]
    assert actions == ["rollout_set_challenger", "rollout_baseline", "rollout_promote", "rollout_clear_challenger",
                       "rollout_rollback"]
    assert verify_audit(con) == []
    hist = rollout.history(con, "policy")
    assert hist.get_column("action").to_list() == ["rollback", "clear_challenger", "promote", "baseline",
                                                    "set_challenger"]

    # nothing earlier than the baseline: a second rollback is refused
    with pytest.raises(rollout.RolloutError, match="no earlier policy champion"):
        rollout.rollback(con, settings, by="ana.planner", reason="again", now=T0 + timedelta(hours=5))


def test_two_promotions_roll_back_one_step_at_a_time(con, tmp_path):
    settings = Settings()
    shas = []
    for i, version in enumerate(("2026.12.1", "2026.12.2")):
        path = _policy_file(tmp_path, version, cooldown_days=3 + i)
        shas.append(load_policy(path)[1])
        rollout.set_challenger(con, by="ana.planner", reason=f"try {version}", policy_path=path,
                               now=T0 + timedelta(hours=2 * i))
        rollout.promote(con, settings, by="ben.planner", reason="better", now=T0 + timedelta(hours=2 * i + 1))
    assert rollout.champion_policy(con).sha256 == shas[1]
    rollout.rollback(con, settings, by="ben.planner", reason="undo", now=T0 + timedelta(hours=5))
    assert rollout.champion_policy(con).sha256 == shas[0]
    rollout.rollback(con, settings, by="ben.planner", reason="undo more", now=T0 + timedelta(hours=6))
    assert rollout.champion_policy(con).sha256 == load_policy(settings.policy_path)[1]
    assert verify_audit(con) == []


def test_refusals_change_nothing(con, tmp_path):
    settings = Settings()
    with pytest.raises(rollout.RolloutError, match="no challenger to promote"):
        rollout.promote(con, settings, by="ana.planner", reason="x")
    with pytest.raises(rollout.RolloutError, match="nothing was ever promoted"):
        rollout.rollback(con, settings, by="ana.planner", reason="x")
    with pytest.raises(rollout.RolloutError, match="no challenger is registered"):
        rollout.clear_challenger(con, by="ana.planner", reason="x")
    with pytest.raises(rollout.RolloutError, match="name a challenger"):
        rollout.set_challenger(con, by="ana.planner", reason="x")
    with pytest.raises(rollout.RolloutError, match="say why"):
        rollout.set_challenger(con, by="ana.planner", reason=" ", policy_path=settings.policy_path)

    path = _policy_file(tmp_path, "2026.12.1", author="ben.planner")
    rollout.set_challenger(con, by="ben.planner", reason="mine", policy_path=path, now=T0)
    before = len(audit_entries(con))
    with pytest.raises(NotAllowed, match="does not hold the planner role"):
        rollout.promote(con, settings, by="mallory", reason="x")
    with pytest.raises(NotAllowed, match="wrote the challenger policy"):
        rollout.promote(con, settings, by="ben.planner", reason="x")
    assert len(audit_entries(con)) == before and rollout.champion_policy(con) is None

    # the file's author is self-declared: whoever registered the challenger may not promote it either
    ghost = _policy_file(tmp_path, "2026.12.2", author="ben.planner")
    rollout.set_challenger(con, by="ana.planner", reason="names ben as author", policy_path=ghost, now=T0)
    before = len(audit_entries(con))
    with pytest.raises(NotAllowed, match="registered the challenger"):
        rollout.promote(con, settings, by="ana.planner", reason="x")
    assert len(audit_entries(con)) == before and rollout.champion_policy(con) is None

    bad = tmp_path / "bad.yaml"
    bad.write_text("version: '1'\nauthor: a\nsurprise: 1\n")
    with pytest.raises(ValueError, match="surprise: unknown key"):
        rollout.set_challenger(con, by="ana.planner", reason="x", policy_path=bad)

    assert rollout.clear_challenger(con, by="ana.planner", reason="not now") == ["policy"]
    assert rollout.challenger(con) is None
    assert verify_audit(con) == []


def test_forecaster_promotion_moves_the_mlflow_alias_and_rollback_moves_it_back(con):
    import mlflow

    from ballast.io import tracking

    settings = Settings()
    tracking.init_tracking(settings)
    with tracking.start_run(settings, kind="forecast", run_name="v1"):
        _, v1 = tracking.register_forecaster(settings, {"fit_window_days": 365}, "cfg-a", promote=True)
    with tracking.start_run(settings, kind="forecast", run_name="v2"):
        _, v2 = tracking.register_forecaster(settings, {"fit_window_days": 120}, "cfg-b", promote=False)
    assert str(tracking.champion(settings).version) == v1
    rollout.set_challenger(con, by="ana.planner", reason="shorter window", forecaster=(tracking.FORECASTER_MODEL, v2),
                           now=T0)
    assert rollout.challenger(con).forecaster.version == v2
    rollout.promote(con, settings, by="ben.planner", reason="lower MASE", now=T0 + timedelta(hours=1))
    assert str(tracking.champion(settings).version) == v2
    assert rollout.champion_forecaster(con).version == v2
    rollout.rollback(con, settings, by="ben.planner", reason="bias", now=T0 + timedelta(hours=2))
    assert str(tracking.champion(settings).version) == v1
    assert rollout.champion_forecaster(con).version == v1
    assert rollout.champion_policy(con) is None  # a forecaster change leaves the policy alone
    assert verify_audit(con) == []
    mlflow.end_run()
