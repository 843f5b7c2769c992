"""Scenarios as data: each is a list of effects on demand, lead times, capacities, the WMS feed
or the network's starting position.

Targets are resolved against the network (`paths.py`): a region of hubs, the most popular SKUs,
the lane that replenishes the busiest hub, the first plant, a named supplier, a kind of site,
the open purchase orders.

The supply-side scenarios (port congestion, plant outage, supplier delay) start from a lean
network (`LEAN_START`): the sample network holds about 48 days of hub demand at and on its way to
the hubs and 130 days of open purchase orders, so nothing upstream of a DC is needed in a 21-day
run, and a disruption there changes no policy's bill. Lean, the hubs hold half of it, the DCs
30% and the plant 20% (of its stock and of its open POs): the plant and the suppliers feed the
network within the run, and what happens to them matters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

EffectKind = Literal["demand", "lead_time", "lead_delay", "capacity", "stale_wms", "start_stock", "receipt_delay"]


@dataclass(frozen=True)
class Effect:
    """One disturbance from day `start` (inclusive) to `end` (exclusive) of the simulation.

    `start_stock` scales the target sites' stock at the start and what is already on its way to
    them (shipments in transit, open POs) by `factor`; `receipt_delay` makes the open purchase
    orders due in the window arrive `add_days` later."""

    kind: EffectKind
    start: int
    end: int
    # "all" | "region:DACH" | "top_skus:3" | "busiest_lane" | "busiest_hub_lane" | "first_plant"
    # | "supplier:SUP-01" | "kind:hub" | "purchase_orders"
    target: str = "all"
    factor: float = 1.0  # demand, lead-time, capacity or starting-stock multiplier
    add_days: int = 0  # extra lead time (lead_delay, receipt_delay)


LEAN_START: tuple[Effect, ...] = (
    Effect("start_stock", 0, 0, "kind:hub", factor=0.5),
    Effect("start_stock", 0, 0, "kind:dc", factor=0.3),
    Effect("start_stock", 0, 0, "kind:plant", factor=0.2),
)


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
            "lean start; the lane that replenishes the busiest hub takes 3x its lead time for 14 days from day 3",
            (*LEAN_START, Effect("lead_time", 3, 17, "busiest_hub_lane", factor=3.0)),
        ),
        Scenario(
            "plant_outage",
            "lean start; the first plant ships nothing for 7 days from day 4",
            (*LEAN_START, Effect("capacity", 4, 11, "first_plant", factor=0.0)),
        ),
        Scenario(
            "supplier_delay",
            "lean start; the open purchase orders due in days 0-13 and every shipment from SUP-01 leaving "
            "in days 0-13 arrive 7 days late",
            (
                *LEAN_START,
                Effect("receipt_delay", 0, 14, "purchase_orders", add_days=7),
                Effect("lead_delay", 0, 14, "supplier:SUP-01", add_days=7),
            ),
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
