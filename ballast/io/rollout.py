"""The rollout registry: which policy and forecaster versions are champion or challenger, with history.

* `rollout_versions` — one row per role change (baseline, promote, rollback, set or clear a
  challenger), append-only. A policy row keeps the policy's sha256, `version` field and its
  full YAML text, so any past cycle can be replayed under the exact policy in force then even
  after the file changed; a forecaster row keeps the MLflow registered model version.
* `challenger_plans` — per champion plan, the shadow plan its challenger produced on the same
  inputs (or why it could not).
* `challenger_forecasts` — forecasts of a challenger forecaster, cached by (version, as-of day,
  demand history digest, horizon) so a cycle every 15 minutes does not refit them each time.
  They are kept apart from the `fc_` tables, whose latest run is what the champion plans on.

Every role change writes an entry to the hash-chained audit log in the same transaction.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import duckdb
import polars as pl

from ballast.io.landing import atomic_write_bytes
from ballast.io.plans import append_audit
from ballast.io.warehouse import insert_frame, one, query_frame, transaction
from ballast.models.policy import Policy, load_policy, load_policy_text
from ballast.models.rollout import (
    VersionEvent,
    champion_stack,
    check_rollout_role,
    current_challenger,
    kinds_or_all,
)
from ballast.settings import Settings

DDL: Final = (
    """CREATE TABLE IF NOT EXISTS rollout_versions (
        seq BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,              -- policy | forecaster
        role VARCHAR NOT NULL,              -- champion | challenger
        action VARCHAR NOT NULL,            -- baseline | promote | rollback | set_challenger | clear_challenger
        ref VARCHAR,                        -- policy sha256 | registered model version; NULL: role cleared
        label VARCHAR,                      -- policy version field | model name/version
        yaml_text VARCHAR,                  -- the policy document, byte for byte (UTF-8)
        since TIMESTAMPTZ NOT NULL,
        changed_by VARCHAR NOT NULL,
        reason VARCHAR NOT NULL,
        audit_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS challenger_plans (
        champion_plan_id VARCHAR NOT NULL,
        plan_id VARCHAR,                    -- the shadow plan; NULL when the challenger failed
        status VARCHAR NOT NULL,            -- published | existing | failed
        policy_sha256 VARCHAR,
        forecaster VARCHAR,
        note VARCHAR,
        recorded_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS challenger_forecasts (
        cache_key VARCHAR NOT NULL,
        site_id VARCHAR NOT NULL,
        sku VARCHAR NOT NULL,
        day DATE NOT NULL,
        mean DOUBLE, q50 DOUBLE, q80 DOUBLE, q95 DOUBLE, lo80 DOUBLE, hi80 DOUBLE, lo95 DOUBLE, hi95 DOUBLE
    )""",
    """CREATE TABLE IF NOT EXISTS challenger_forecast_series (
        cache_key VARCHAR NOT NULL,
        site_id VARCHAR NOT NULL,
        sku VARCHAR NOT NULL,
        sku_class VARCHAR,
        demand_class VARCHAR,
        model VARCHAR
    )""",
)
FORECAST_COLUMNS: Final = ("site_id", "sku", "day", "mean", "q50", "q80", "q95", "lo80", "hi80", "lo95", "hi95")


class RolloutError(ValueError):
    """A role change that cannot be made (nothing to promote, nothing to roll back to, bad input)."""


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """A policy version as registered: its document, byte for byte, and who put it in which role when."""

    sha256: str
    version: str
    yaml_text: str
    since: datetime
    by: str
    reason: str
    seq: int

    def policy(self) -> Policy:
        return load_policy_text(self.yaml_text, f"<policy {self.version} sha256 {self.sha256[:12]}>")[0]

    def materialise(self, folder: Path) -> Path:
        """Write the document to `<folder>/<sha256>.yaml` (once) and return the path; its bytes hash to `sha256`."""
        path = folder / f"{self.sha256}.yaml"
        data = self.yaml_text.encode("utf-8")
        if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != self.sha256:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data)
        return path


@dataclass(frozen=True, slots=True)
class ForecasterVersion:
    """A registered forecaster version (MLflow model registry) in a role."""

    name: str
    version: str
    since: datetime
    by: str
    reason: str
    seq: int


@dataclass(frozen=True, slots=True)
class Challenger:
    """What runs in shadow beside the champion: a policy, a forecaster, or both."""

    policy: PolicyVersion | None
    forecaster: ForecasterVersion | None

    def describe(self) -> str:
        parts = []
        if self.policy:
            parts.append(f"policy {self.policy.version} (sha256 {self.policy.sha256[:12]})")
        if self.forecaster:
            parts.append(f"forecaster {self.forecaster.name}/{self.forecaster.version}")
        return " + ".join(parts)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in DDL:
        con.execute(stmt)


def _has_registry(con: duckdb.DuckDBPyConnection) -> bool:
    # Read-only connections cannot create tables: an absent table is an empty registry.
    row = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'rollout_versions'")
    return bool(row and row[0])


def events(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> list[VersionEvent]:
    """The registry's history (of one kind), oldest first."""
    if not _has_registry(con):
        return []
    rows = con.execute(
        """SELECT seq, kind, role, action, ref, label, yaml_text, since, changed_by, reason, audit_seq
           FROM rollout_versions WHERE CAST(? AS VARCHAR) IS NULL OR kind = ? ORDER BY seq""",
        [kind, kind],
    ).fetchall()
    return [VersionEvent(*r) for r in rows]


def _policy_version(e: VersionEvent) -> PolicyVersion:
    assert e.ref is not None
    assert e.yaml_text is not None
    return PolicyVersion(e.ref, e.label or "", e.yaml_text, e.since, e.by, e.reason, e.seq)


def _forecaster_version(e: VersionEvent) -> ForecasterVersion:
    assert e.ref is not None
    name = (e.label or "").rsplit("/", 1)[0] or "ballast-forecaster"
    return ForecasterVersion(name, e.ref, e.since, e.by, e.reason, e.seq)


def policy_in_force(con: duckdb.DuckDBPyConnection, at: datetime) -> PolicyVersion | None:
    """The champion policy in force at `at` (None: nothing registered then; use the settings' policy file)."""
    stack = champion_stack(events(con, "policy"), "policy", at)
    return _policy_version(stack[-1]) if stack else None


def champion_policy(con: duckdb.DuckDBPyConnection) -> PolicyVersion | None:
    """The registered champion policy now (None: the settings' policy file is in force)."""
    stack = champion_stack(events(con, "policy"), "policy")
    return _policy_version(stack[-1]) if stack else None


def champion_forecaster(con: duckdb.DuckDBPyConnection) -> ForecasterVersion | None:
    stack = champion_stack(events(con, "forecaster"), "forecaster")
    return _forecaster_version(stack[-1]) if stack else None


def challenger(con: duckdb.DuckDBPyConnection) -> Challenger | None:
    """What runs in shadow now (a policy, a forecaster or both), or None."""
    history = events(con)
    p, f = current_challenger(history, "policy"), current_challenger(history, "forecaster")
    if p is None and f is None:
        return None
    return Challenger(_policy_version(p) if p else None, _forecaster_version(f) if f else None)


def _insert(
    con: duckdb.DuckDBPyConnection, kind: str, role: str, action: str, ref: str | None, label: str | None,
    yaml_text: str | None, by: str, reason: str, now: datetime, payload: dict,
) -> VersionEvent:
    """One registry row and its audit entry (call inside a transaction)."""
    entry = append_audit(
        con, by, f"rollout_{action}", f"{kind}:{ref or '-'}",
        {"kind": kind, "role": role, "ref": ref, "label": label, "reason": reason} | payload, now,
    )
    seq = one(con, "SELECT coalesce(max(seq), 0) + 1 FROM rollout_versions")[0]  # type: ignore[index]
    event = VersionEvent(seq, kind, role, action, ref, label, yaml_text, now, by, reason, entry.seq)
    con.execute(
        "INSERT INTO rollout_versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [event.seq, kind, role, action, ref, label, yaml_text, now, by, reason, entry.seq],
    )
    return event


def _read_policy_file(path: Path) -> tuple[Policy, str, str]:
    """(policy, sha256, text) of a policy file; the text must be UTF-8 so it is kept byte for byte."""
    policy, sha = load_policy(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RolloutError(f"{path}: a policy file must be UTF-8 to be kept in the rollout registry") from exc
    return policy, sha, text


def _require(by: str, reason: str) -> None:
    if not by.strip():
        raise RolloutError("say who makes the change (--by)")
    if not reason.strip():
        raise RolloutError("say why (--reason); it is kept in the audit log")


def set_challenger(
    con: duckdb.DuckDBPyConnection,
    *,
    by: str,
    reason: str,
    policy_path: Path | None = None,
    forecaster: tuple[str, str] | None = None,
    now: datetime | None = None,
) -> Challenger:
    """Register a challenger policy file and/or forecaster (name, version); it replaces any earlier one of its kind.

    The caller checks that the forecaster version exists in the model registry.
    """
    _require(by, reason)
    if policy_path is None and forecaster is None:
        raise RolloutError("name a challenger: a policy file (--policy) and/or a forecaster version (--forecaster)")
    now = now or datetime.now(UTC)
    ensure_tables(con)
    loaded = _read_policy_file(policy_path) if policy_path is not None else None
    with transaction(con):
        if loaded is not None:
            policy, sha, text = loaded
            _insert(con, "policy", "challenger", "set_challenger", sha, policy.version, text, by, reason, now,
                    {"file": str(policy_path)})
        if forecaster is not None:
            name, version = forecaster
            _insert(con, "forecaster", "challenger", "set_challenger", str(version), f"{name}/{version}", None,
                    by, reason, now, {})
    found = challenger(con)
    assert found is not None
    return found


def clear_challenger(
    con: duckdb.DuckDBPyConnection, *, by: str, reason: str, kinds: list[str] | None = None,
    now: datetime | None = None,
) -> list[str]:
    """Stop shadowing; returns the kinds cleared. Refuses when there is no challenger to clear."""
    _require(by, reason)
    now = now or datetime.now(UTC)
    ensure_tables(con)
    history = events(con)
    present = [k for k in kinds_or_all(kinds) if current_challenger(history, k) is not None]
    if not present:
        raise RolloutError("no challenger is registered (see `ballast challenger show`)")
    with transaction(con):
        for kind in present:
            _insert(con, kind, "challenger", "clear_challenger", None, None, None, by, reason, now, {})
    return present


def _in_force_policy(con: duckdb.DuckDBPyConnection, settings: Settings) -> tuple[Policy, str, str]:
    """(policy, sha256, text) in force: the registered champion, else the settings' policy file."""
    registered = champion_policy(con)
    if registered is not None:
        return registered.policy(), registered.sha256, registered.yaml_text
    return _read_policy_file(settings.policy_path)


def promote(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, by: str, reason: str, kinds: list[str] | None = None,
    now: datetime | None = None,
) -> list[VersionEvent]:
    """Make the registered challenger(s) champion; the champion before stays in the history.

    Only planners of the policy in force may promote, and not the author of the challenger
    policy. Before the first promotion of a kind, the version in force (the settings' policy
    file, the forecaster carrying the MLflow `champion` alias) is recorded as the baseline, so
    a rollback can return to it. A forecaster promotion moves the MLflow alias in the same
    transaction (if the alias cannot be moved, nothing is recorded).
    """
    _require(by, reason)
    now = now or datetime.now(UTC)
    ensure_tables(con)
    history = events(con)
    chosen = [k for k in kinds_or_all(kinds) if current_challenger(history, k) is not None]
    if not chosen:
        raise RolloutError("there is no challenger to promote (register one with `ballast challenger set`)")
    in_force, in_force_sha, in_force_text = _in_force_policy(con, settings)
    new_policy = current_challenger(history, "policy") if "policy" in chosen else None
    author = _policy_version(new_policy).policy().author if new_policy is not None else None
    registrants = tuple(ch.by for k in chosen if (ch := current_challenger(history, k)) is not None)
    check_rollout_role(by, in_force, author, registrants)
    promoted: list[VersionEvent] = []
    with transaction(con):
        for kind in chosen:
            ch = current_challenger(history, kind)
            assert ch is not None
            if not champion_stack(history, kind):
                if kind == "policy":
                    _insert(con, kind, "champion", "baseline", in_force_sha, in_force.version, in_force_text, by,
                            "in force before the first promotion", now, {"file": str(settings.policy_path)})
                else:
                    from ballast.io import tracking  # MLflow is slow to import: only for forecasters

                    current = tracking.champion(settings)
                    if current is not None:
                        _insert(con, kind, "champion", "baseline", str(current.version),
                                f"{tracking.FORECASTER_MODEL}/{current.version}", None, by,
                                "in force before the first promotion", now, {})
            promoted.append(_insert(con, kind, "champion", "promote", ch.ref, ch.label, ch.yaml_text, by, reason,
                                    now, {"challenger_since": ch.since.isoformat()}))
            _insert(con, kind, "challenger", "clear_challenger", None, None, None, by, f"promoted: {reason}", now, {})
        for event in promoted:
            if event.kind == "forecaster":
                from ballast.io import tracking

                tracking.set_champion(settings, str(event.ref), _forecaster_version(event).name)
    return promoted


def rollback(
    con: duckdb.DuckDBPyConnection, settings: Settings, *, by: str, reason: str, kind: str | None = None,
    now: datetime | None = None,
) -> VersionEvent:
    """Return `kind` (default: the kind promoted last) to the champion before the current one."""
    _require(by, reason)
    now = now or datetime.now(UTC)
    ensure_tables(con)
    history = events(con)
    if kind is None:
        changes = [e for e in history if e.role == "champion" and e.action in ("promote", "rollback")]
        if not changes:
            raise RolloutError("nothing was ever promoted: there is no champion to roll back to")
        kind = changes[-1].kind
    kinds_or_all([kind])
    stack = champion_stack(history, kind)
    if len(stack) < 2:
        raise RolloutError(f"no earlier {kind} champion to roll back to (see `ballast champion`)")
    current, previous = stack[-1], stack[-2]
    in_force, _, _ = _in_force_policy(con, settings)
    check_rollout_role(by, in_force)
    with transaction(con):
        event = _insert(con, kind, "champion", "rollback", previous.ref, previous.label, previous.yaml_text, by,
                        reason, now, {"from": current.ref, "from_label": current.label})
        if kind == "forecaster":
            from ballast.io import tracking

            tracking.set_champion(settings, str(previous.ref), _forecaster_version(previous).name)
    return event


def history(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> pl.DataFrame:
    """The registry as a frame, newest first (without the policy texts)."""
    if not _has_registry(con):
        return pl.DataFrame()
    return query_frame(
        con,
        """SELECT seq, since, kind, role, action, ref, label, changed_by AS by, reason, audit_seq FROM rollout_versions
           WHERE CAST(? AS VARCHAR) IS NULL OR kind = ? ORDER BY seq DESC""",
        [kind, kind],
    )


# --------------------------------------------------------------------------------------------
# challenger plans and forecasts


def record_challenger_plan(
    con: duckdb.DuckDBPyConnection, champion_plan_id: str, plan_id: str | None, status: str,
    policy_sha256: str | None, forecaster: str | None, note: str | None, now: datetime,
) -> None:
    ensure_tables(con)
    con.execute(
        "INSERT INTO challenger_plans VALUES (?, ?, ?, ?, ?, ?, ?)",
        [champion_plan_id, plan_id, status, policy_sha256, forecaster, note, now],
    )


def challenger_plans(con: duckdb.DuckDBPyConnection, champion_plan_id: str | None = None) -> pl.DataFrame:
    """Shadow plans computed beside champion plans (of one champion plan), newest first."""
    row = one(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'challenger_plans'")
    if not (row and row[0]):
        return pl.DataFrame()
    return query_frame(
        con,
        """SELECT * FROM challenger_plans WHERE CAST(? AS VARCHAR) IS NULL OR champion_plan_id = ?
           ORDER BY recorded_at DESC""",
        [champion_plan_id, champion_plan_id],
    )


def lanes_used_before(con: duckdb.DuckDBPyConnection, plan_id: str) -> pl.DataFrame:
    """`plans.used_lanes` as the champion saw it: without what plan `plan_id` itself released."""
    return query_frame(
        con,
        """SELECT o.origin, o.destination FROM released_orders r
           JOIN transfer_orders o ON o.order_id = r.order_id AND o.plan_id = r.plan_id
           WHERE r.plan_id <> ?
           UNION
           SELECT s.origin, s.destination FROM stg_in_transit s
           JOIN gate_results g ON g.file_id = s._file_id AND g.outcome IN ('pass', 'pass_with_quarantine')""",
        [plan_id],
    )


def cached_challenger_forecasts(
    con: duckdb.DuckDBPyConnection, cache_key: str
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(forecasts, series) cached under `cache_key`, or None."""
    ensure_tables(con)
    series = query_frame(
        con, "SELECT site_id, sku, sku_class, demand_class, model FROM challenger_forecast_series WHERE cache_key = ?",
        [cache_key],
    )
    if series.is_empty():
        return None
    forecasts = query_frame(
        con,
        f"SELECT {', '.join(FORECAST_COLUMNS)} FROM challenger_forecasts WHERE cache_key = ? "
        "ORDER BY site_id, sku, day",
        [cache_key],
    )
    return forecasts, series


def save_challenger_forecasts(
    con: duckdb.DuckDBPyConnection, cache_key: str, forecasts: pl.DataFrame, series: pl.DataFrame
) -> None:
    ensure_tables(con)
    with transaction(con):
        insert_frame(con, "challenger_forecasts",
                     forecasts.select(FORECAST_COLUMNS).with_columns(pl.lit(cache_key).alias("cache_key")))
        insert_frame(con, "challenger_forecast_series",
                     series.select("site_id", "sku", "sku_class", "demand_class", "model")
                     .with_columns(pl.lit(cache_key).alias("cache_key")))
