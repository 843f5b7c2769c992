"""Policies as code (DESIGN.md §3): a versioned YAML document loaded into a strict, frozen model.

Unknown keys are rejected, types are not coerced (a quoted number is an error), and every plan
records the policy's `version` and the sha256 of the file it came from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ballast.models.contract import EXTRACTS, SITE_KINDS


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class ServiceLevels(_Strict):
    """Target cycle service level (probability of no stock-out over lead time + review)."""

    default: float = Field(0.95, gt=0.5, lt=1.0)
    by_site_kind: dict[str, float] = Field(default_factory=dict)
    by_sku_class: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> ServiceLevels:
        for kind in self.by_site_kind:
            if kind not in SITE_KINDS:
                raise ValueError(f"by_site_kind: unknown site kind {kind!r}; known: {', '.join(SITE_KINDS)}")
        for name, level in {**self.by_site_kind, **self.by_sku_class}.items():
            if not 0.5 < level < 1.0:
                raise ValueError(f"service level for {name!r} must be in (0.5, 1.0), got {level}")
        return self

    def level(self, site_kind: str, sku_class: str | None) -> float:
        """The stricter of the site-kind and SKU-class levels, else the default."""
        candidates = [self.by_site_kind.get(site_kind), self.by_sku_class.get(sku_class or "")]
        chosen = [c for c in candidates if c is not None]
        return max(chosen) if chosen else self.default


class Approval(_Strict):
    """When an order needs a planner's approval instead of being auto-approved."""

    order_value_above: float = Field(25_000.0, ge=0)
    cross_border: bool = True
    new_lane: bool = True
    share_of_site_stock_above: float = Field(0.5, gt=0, le=1)
    planners: tuple[str, ...] = ()


class Lane(_Strict):
    origin: str
    destination: str
    mode: str | None = None  # None: every mode between the two sites


class CountryPair(_Strict):
    origin_country: str = Field(min_length=2, max_length=2)
    destination_country: str = Field(min_length=2, max_length=2)


class PossessionLimit(_Strict):
    """At most `max_units` of `sku` (every SKU if None) held in `country` at the end of any day."""

    country: str = Field(min_length=2, max_length=2)
    max_units: float = Field(ge=0)
    sku: str | None = None


class MinimumTransfer(_Strict):
    units: float = Field(0.0, ge=0)
    value: float = Field(0.0, ge=0)


class QualityGate(_Strict):
    """Gate thresholds for one extract: the share of rows that may be quarantined before it blocks."""

    max_quarantine_share: float = Field(0.0, ge=0, le=1)


class QualityGates(_Strict):
    default: QualityGate = QualityGate(max_quarantine_share=0.01)
    by_extract: dict[str, QualityGate] = Field(default_factory=dict)
    reconciliation_tolerance: float = Field(0.02, ge=0, description="relative |WMS - book| / book")
    reconciliation_max_share: float = Field(0.05, ge=0, le=1, description="share of pairs outside tolerance")

    @model_validator(mode="after")
    def _check(self) -> QualityGates:
        for name in self.by_extract:
            if name not in EXTRACTS:
                raise ValueError(f"quality_gates.by_extract: unknown extract {name!r}")
        return self

    def for_extract(self, extract: str) -> QualityGate:
        return self.by_extract.get(extract, self.default)


class Solver(_Strict):
    time_limit_seconds: float = Field(60.0, gt=0)
    mip_gap: float = Field(0.01, ge=0, lt=1)
    threads: int = Field(2, ge=1)
    mip_max_nodes: int | None = Field(
        None,
        ge=0,
        description="stop the MIP after this many branch-and-bound nodes (HiGHS `mip_max_nodes`): a work "
        "limit, so the plan is the same however busy the machine is; the time limit stays as a guard",
    )


class Fallback(_Strict):
    """The solver fallback ladder (DESIGN.md §4): which rungs may be used, in order."""

    ladder: tuple[Literal["mip", "incumbent", "lp_rounded", "greedy", "empty"], ...] = (
        "mip",
        "incumbent",
        "lp_rounded",
        "greedy",
        "empty",
    )
    on_gate_block: Literal["keep_previous_plan"] = "keep_previous_plan"


class LatencyBudgets(_Strict):
    """Seconds each step of the cycle may take before the cycle degrades to its safe default."""

    ingest: float = Field(120.0, gt=0)
    validate_: float = Field(120.0, gt=0, alias="validate")
    forecast: float = Field(300.0, gt=0)
    solve: float = Field(120.0, gt=0)
    publish: float = Field(60.0, gt=0)


class Forecasting(_Strict):
    max_age_hours: float = Field(24.0, gt=0, description="refit when the latest forecasts are older")
    review_period_days: int = Field(1, ge=0)


class Policy(_Strict):
    """One policy document (DESIGN.md §3)."""

    version: str = Field(min_length=1)
    author: str = Field(min_length=1, description="who wrote this version; may not approve under it")
    description: str = ""
    horizon_days: int = Field(14, ge=1, le=120)
    service_levels: ServiceLevels = ServiceLevels()
    shortage_penalty_per_unit: float = Field(50.0, ge=0)
    shortage_penalty_price_multiple: float = Field(
        1.5, ge=0, description="penalty per unit = max(flat, multiple × unit_price)"
    )
    safety_stock_shortfall_penalty_per_unit: float = Field(2.0, ge=0)
    safety_stock_shortfall_curve: Literal["flat", "expected_shortage"] = Field(
        "flat",
        description="flat: every unit below safety stock costs the penalty above per day. expected_shortage: "
        "the shortfall is cut into equal slices and a unit in a slice costs what it adds to the expected "
        "lost sales per day (shortage penalty × P(demand over the protection period exceeds the mean "
        "by more than the stock left) / protection days), never less than the flat penalty: a small dip "
        "below safety stock stays cheap, a plan that runs stock down to the last units does not",
    )
    safety_stock_shortfall_segments: int = Field(
        4, ge=1, le=12, description="expected_shortage: slices of the shortfall below safety stock"
    )
    release_now_cost_per_unit: float = Field(
        0.0,
        ge=0,
        description="a unit planned to ship inside the freeze window (released by this cycle) costs this "
        "much more than one planned for later: among plans otherwise as good, what can wait is left to a "
        "later cycle, which ships it with the next consolidated move and with what it has learnt",
    )
    release_now_cost_on: Literal["shipments", "changes"] = Field(
        "shipments",
        description="shipments: every unit planned inside the freeze window pays release_now_cost_per_unit. "
        "changes: only the difference from what the previous cycle's plan meant to ship inside this window "
        "pays it, per lane and SKU (putting off a planned move costs as much as adding one), so a move the "
        "last plan put off to today is not put off again a day at a time until the destination runs short",
    )
    release_now_cost_waived: Literal["never", "below_safety_stock"] = Field(
        "never",
        description="below_safety_stock: a destination whose stock, with no new move, would fall below "
        "safety stock on a day only a move released by this cycle can reach (from the arrival of a "
        "move shipped today to the day before one shipped on the first day after the freeze window "
        "could land) pays no "
        "release-now cost on anything bound for it: a move is put off only while putting it off keeps "
        "the destination at safety stock",
    )
    end_of_horizon_cover_days: int = Field(
        0,
        ge=0,
        le=60,
        description="stock a site replenished from above on a lane with a fixed cost still holds when the "
        "horizon ends, up to its safety stock plus this many days of its forecast demand, is credited what "
        "moving it there later would cost per unit (the cheapest lane into it, plus 0.01; nothing where a "
        "lane without a fixed cost reaches it): a lane-day opened anyway also carries what the destination "
        "sells in the days after the horizon, which puts off the next lane-day. The credit opens a "
        "lane-day of its own only where 0.01 a credited unit outweighs the lane's fixed cost. 0: no "
        "credit, a plan ships nothing for after its horizon",
    )
    safety_time_days: int = Field(
        0,
        ge=0,
        le=7,
        description="safety time: a new move is planned to land this many days after its lane's nominal "
        "lead time, so it is shipped that much before the day its destination needs it and a shipment "
        "running late (a truck a day behind, a port holding a container) still lands in time. An order's "
        "arrive date is that planned receipt. Shipments already in transit keep the date the TMS gives",
    )
    unmet_demand: Literal["lost_sales", "backorders"] = "lost_sales"
    backorder_daily_penalty_share: float = Field(
        0.1,
        ge=0,
        le=1,
        description="backorders: each day a unit waits costs this share of its shortage penalty; "
        "a unit still waiting at the horizon's end costs the full penalty as well",
    )
    safety_stock_method: Literal["quantile", "normal"] = "quantile"
    freeze_window_days: int = Field(1, ge=0)
    approval: Approval = Approval()
    forbidden_lanes: tuple[Lane, ...] = ()
    embargoed_country_pairs: tuple[CountryPair, ...] = ()
    possession_limits: tuple[PossessionLimit, ...] = ()
    minimum_transfer: MinimumTransfer = MinimumTransfer()
    cooldown_days: int = Field(7, ge=0)
    staleness_budget_hours: dict[str, float] = Field(default_factory=dict)
    quality_gates: QualityGates = QualityGates()
    solver: Solver = Solver()
    negotiation_max_rounds: int = Field(
        3, ge=0, description="coordinator re-solves after agents reject parts of a plan (0: no negotiation)"
    )
    fallback: Fallback = Fallback()
    latency_budgets_seconds: LatencyBudgets = LatencyBudgets()
    forecasting: Forecasting = Forecasting()

    @model_validator(mode="after")
    def _check(self) -> Policy:
        for name, hours in self.staleness_budget_hours.items():
            if name not in EXTRACTS:
                raise ValueError(f"staleness_budget_hours: unknown extract {name!r}")
            if hours <= 0:
                raise ValueError(f"staleness_budget_hours.{name} must be > 0, got {hours}")
        if self.freeze_window_days > self.horizon_days:
            raise ValueError("freeze_window_days cannot exceed horizon_days")
        return self

    def staleness_budget(self, extract: str) -> float | None:
        """Hours an extract's snapshot may age before the cycle refuses it (None: no budget)."""
        return self.staleness_budget_hours.get(extract)


class PolicyError(ValueError):
    """A policy file that cannot be loaded; the message names the file and each offending key."""


def _describe(err: ValidationError, path: Path) -> str:
    lines = [f"{path}: invalid policy ({err.error_count()} problem(s))"]
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "<document>"
        if e["type"] == "extra_forbidden":
            lines.append(f"  - {where}: unknown key (not part of the policy schema)")
        else:
            lines.append(f"  - {where}: {e['msg']}")
    return "\n".join(lines)


def load_policy(path: Path) -> tuple[Policy, str]:
    """Load and check a policy file; return it with the sha256 of the file's bytes."""
    return _load_bytes(path.read_bytes(), path)


def load_policy_text(text: str, source: str = "<policy text>") -> tuple[Policy, str]:
    """Load and check a policy from its YAML text (a version kept in the rollout registry)."""
    return _load_bytes(text.encode("utf-8"), Path(source))


def _load_bytes(data: bytes, path: Path) -> tuple[Policy, str]:
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise PolicyError(f"{path}: a policy is a mapping of keys, got {type(doc).__name__}")
    try:
        # JSON mode: strict types as YAML/JSON know them (a list is a valid tuple, "5" is no number).
        policy = Policy.model_validate_json(json.dumps(doc, default=str))
    except ValidationError as exc:
        raise PolicyError(_describe(exc, path)) from exc
    return policy, hashlib.sha256(data).hexdigest()
