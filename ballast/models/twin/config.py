"""Twin settings as data: `defaults.yaml` beside this module, loaded into a strict, frozen model."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ballast.models.sample import SampleSpec

DEFAULTS_PATH = Path(__file__).parent / "defaults.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NetworkSettings(_Strict):
    seed: int = 7
    plants: int = Field(1, ge=1)
    dcs: int = Field(2, ge=2)
    hubs: int = Field(5, ge=5)
    skus: int = Field(20, ge=1)
    history_days: int = Field(120, ge=28)


class DemandSettings(_Strict):
    fit_window_days: int = Field(56, ge=7)
    min_dispersion: float = Field(0.5, gt=0)


class LeadTimeSettings(_Strict):
    delay_probability: float = Field(0.15, ge=0, le=1)
    max_delay_days: int = Field(2, ge=0)


class PlannerSettings(_Strict):
    approver: str | None = None  # None: the policy's first planner
    approve_pending: bool = True


class CostSettings(_Strict):
    purchase_cost: Literal["premium_over_cheapest"] = "premium_over_cheapest"
    overflow_per_volume_day: float = Field(0.0, ge=0)
    # what a lost sale (or a backorder) really costs the business: max(flat, multiple × price) per
    # unit. None: the policy's own penalty. Set, the yardstick stays fixed while the policy's
    # penalty is tuned as a decision knob (a policy that lowers it must not lower its own bill).
    shortage_penalty_per_unit: float | None = Field(None, ge=0)
    shortage_penalty_price_multiple: float | None = Field(None, ge=0)


class BaselineSettings(_Strict):
    service_z: float = Field(1.65, ge=0)
    multipliers: tuple[float, ...] = (0.6, 0.8, 1.0, 1.25, 1.5, 2.0)
    review_days: tuple[int, ...] = (1, 3, 7)
    training_seeds: tuple[int, ...] = (1001, 1002)

    @field_validator("multipliers")
    @classmethod
    def _positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or min(v) <= 0:
            raise ValueError("multipliers must be a non-empty list of positive numbers")
        return v


class BoundSettings(_Strict):
    integer_lanes: bool = True  # binary lane-day switches for fixed costs (MIP); False: LP relaxation
    time_limit_seconds: float = Field(120.0, gt=0)
    mip_gap: float = Field(0.005, ge=0)


class KpiSettings(_Strict):
    ping_pong_days: int = Field(14, ge=1)


class TwinSettings(_Strict):
    """Everything a simulation needs besides the scenario, the seed and the policy."""

    version: str
    network: NetworkSettings = NetworkSettings()
    start: datetime = datetime(2026, 11, 23, 6, tzinfo=UTC)
    days: int = Field(21, ge=1, le=366)
    demand: DemandSettings = DemandSettings()
    lead_time: LeadTimeSettings = LeadTimeSettings()
    planner: PlannerSettings = PlannerSettings()
    costs: CostSettings = CostSettings()
    baselines: BaselineSettings = BaselineSettings()
    bound: BoundSettings = BoundSettings()
    kpis: KpiSettings = KpiSettings()

    @field_validator("start")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("start must carry a time zone (e.g. 2026-11-23T06:00:00Z)")
        return v.astimezone(UTC)

    def sample_spec(self, size: str | None = None) -> SampleSpec:
        """The generated network: the twin's small default, or a named sample size (S, M, L)."""
        from dataclasses import replace

        from ballast.models.sample import SIZES

        if size is not None:
            if size not in SIZES:
                raise ValueError(f"unknown network size {size!r}; known: {', '.join(SIZES)}")
            return replace(SIZES[size], seed=self.network.seed, as_of=self.start)
        n = self.network
        return SampleSpec(
            seed=n.seed,
            plants=n.plants,
            dcs=n.dcs,
            hubs=n.hubs,
            skus=n.skus,
            history_days=n.history_days,
            as_of=self.start,
        )


def load_twin_settings(path: Path | None = None, **overrides: object) -> TwinSettings:
    """Read a twin settings file (default: the packaged one); `overrides` replace top-level keys."""
    path = path or DEFAULTS_PATH
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"twin settings file {path} does not exist") from None
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return TwinSettings.model_validate(raw)
    except ValidationError as exc:
        raise ValueError(f"invalid twin settings in {path}: {exc}") from None
