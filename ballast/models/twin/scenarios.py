"""Scenarios as data: each is a list of effects on demand, lead times, capacities or the WMS feed.

Targets are resolved against the network (`resolve_*` in `paths.py`): a region of hubs, the
most popular SKUs, the busiest replenishment lane, the first plant, a named supplier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EffectKind = Literal["demand", "lead_time", "lead_delay", "capacity", "stale_wms"]


@dataclass(frozen=True)
class Effect:
    """One disturbance from day `start` (inclusive) to `end` (exclusive) of the simulation."""

    kind: EffectKind
    start: int
    end: int
    target: str = "all"  # "all" | "region:DACH" | "top_skus:3" | "busiest_lane" | "first_plant" | "supplier:SUP-01"
    factor: float = 1.0  # demand or lead-time multiplier, capacity multiplier
    add_days: int = 0  # extra lead time (lead_delay)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    effects: tuple[Effect, ...] = ()


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("steady", "demand as in the history; lead times vary a little"),
        Scenario(
            "regional_surge",
            "demand at the DACH hubs (DE, AT, CH) is 1.8x from day 5 to day 18",
            (Effect("demand", 5, 19, "region:DACH", factor=1.8),),
        ),
        Scenario(
            "promotion",
            "the three most popular SKUs sell 3x everywhere for a week from day 7 (not announced to the planner)",
            (Effect("demand", 7, 14, "top_skus:3", factor=3.0),),
        ),
        Scenario(
            "port_congestion",
            "the busiest replenishment lane (plant or DC outbound) takes 3x its lead time for 14 days from day 3",
            (Effect("lead_time", 3, 17, "busiest_lane", factor=3.0),),
        ),
        Scenario(
            "plant_outage",
            "the first plant ships nothing for 7 days from day 4",
            (Effect("capacity", 4, 11, "first_plant", factor=0.0),),
        ),
        Scenario(
            "supplier_delay",
            "every shipment from SUP-01 leaving in days 0-13 arrives 7 days late",
            (Effect("lead_delay", 0, 14, "supplier:SUP-01", add_days=7),),
        ),
        Scenario(
            "data_fault",
            "on day 6 the WMS delivers no fresh inventory snapshot: the cycle must refuse, the simulation goes on",
            (Effect("stale_wms", 6, 7),),
        ),
    )
}


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None


def scenario_names(choice: str) -> list[str]:
    """`all` or a comma-separated list of scenario names, checked."""
    names = list(SCENARIOS) if choice == "all" else [c.strip() for c in choice.split(",") if c.strip()]
    for n in names:
        get_scenario(n)
    return names
