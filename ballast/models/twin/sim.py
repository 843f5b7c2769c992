"""The day step: receive arrivals, ship today's orders within stock and capacities, sell.

Sequence of simulated day t (the planner's snapshot of day t is taken before step t):
1. shipments whose arrival day is t are received;
2. queued orders whose ship day is t (or earlier) leave, each limited by the origin's stock,
   the origin's outbound capacity left today (units) and the lane's capacity left (volume);
   the rest of an order is dropped (counted as short-shipped units);
3. demand is realised: sales from stock, the rest lost (or backordered, per the policy);
4. holding is charged on the stock left at the end of the day.

Costs: holding + transport (own lanes, per unit + fixed per lane-day) + purchases + shortage
penalty + overflow (end-of-day volume above a site's storage capacity, per volume-day). A
purchase is charged its premium over the cheapest purchase price (plus the lane's fixed cost):
goods are needed whoever plans, so only a dearer choice of supplier is a cost. A shipment that
lands after the run's last day is kept apart (`after_window_cost`, reported, not in the total):
the sales it makes fall outside the run, so its cost does too. The perfect-information bound,
which knows when the run ends, never ships such goods; a rolling planner rightly does.

Stock is conserved: initial stock + receipts = stock + shipped out + sold (checked in tests).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.paths import Paths

logger = logging.getLogger(__name__)

Unmet = Literal["lost_sales", "backorders"]


@dataclass(frozen=True)
class Order:
    """An instruction to ship `qty` of `sku` on `lane` on `ship_day` (from a plan or a baseline)."""

    lane: int
    sku: int
    qty: float
    ship_day: int
    ref: str = ""
    needs_approval: bool = False


@dataclass(frozen=True)
class Shipment:
    ref: str
    lane: int  # -1: a purchase order already open at the start (origin unknown)
    origin: int
    dest: int
    sku: int
    qty: float
    ship_day: int  # negative: shipped before the simulation started
    arrive_day: int
    kind: str  # "transfer" | "purchase" | "in_transit" | "purchase_order"


@dataclass
class Ledger:
    """Everything the KPIs and the report need, per day."""

    demand: NDArray[np.float64]  # [day, node, sku]
    sales: NDArray[np.float64]
    unmet: NDArray[np.float64]  # demand not served on its day (lost, or newly backordered)
    backlog: NDArray[np.float64]  # end-of-day backorders
    stock: NDArray[np.float64]  # end-of-day stock
    holding_cost: NDArray[np.float64]  # [day]
    transport_cost: NDArray[np.float64]  # [day] own lanes: per unit + fixed
    purchase_cost: NDArray[np.float64]  # [day] supplier lanes: premium over the cheapest price per unit + fixed
    shortage_cost: NDArray[np.float64]  # [day]
    overflow: NDArray[np.float64] | None = None  # [day, node] end-of-day volume above storage capacity
    overflow_cost: NDArray[np.float64] | None = None  # [day]
    after_window_cost: NDArray[np.float64] | None = None  # [day] transport and purchases landing after the run
    shipments: list[Shipment] = field(default_factory=list)
    short_shipped_units: float = 0.0
    orders_submitted: int = 0
    orders_needing_approval: int = 0
    refused_cycles: list[int] = field(default_factory=list)
    received: float = 0.0  # units received from suppliers and open purchase orders (new to the network)

    def total_cost(self) -> float:
        overflow = float(self.overflow_cost.sum()) if self.overflow_cost is not None else 0.0
        return float(
            self.holding_cost.sum()
            + self.transport_cost.sum()
            + self.purchase_cost.sum()
            + self.shortage_cost.sum()
            + overflow
        )


class Simulator:
    """One policy's run through one realised world (`Paths`); mutable, stepped day by day."""

    def __init__(
        self,
        network: TwinNetwork,
        paths: Paths,
        penalty: NDArray[np.float64],
        *,
        unmet: Unmet = "lost_sales",
        backorder_daily_share: float = 0.1,
        credit: NDArray[np.float64] | None = None,
        overflow_rate: float = 0.0,
    ) -> None:
        self.net, self.paths, self.unmet = network, paths, unmet
        self.overflow_rate = overflow_rate
        self._storage = network.storage()
        self.penalty = penalty
        self.backorder_daily_share = backorder_daily_share
        self.credit = credit if credit is not None else np.zeros(network.n_skus)
        self.day = 0
        self.stock = network.stock0.copy()
        self.backlog = np.zeros_like(self.stock)
        self.pipeline: list[Shipment] = [
            Shipment(r.ref, -1, r.origin, r.dest, r.sku, r.qty, -1, r.day, r.kind) for r in network.receipts
        ]
        self.queue: list[Order] = []
        days, n, k = paths.days, network.n_nodes, network.n_skus
        self.ledger = Ledger(
            demand=np.zeros((days, n, k)),
            sales=np.zeros((days, n, k)),
            unmet=np.zeros((days, n, k)),
            backlog=np.zeros((days, n, k)),
            stock=np.zeros((days, n, k)),
            holding_cost=np.zeros(days),
            transport_cost=np.zeros(days),
            purchase_cost=np.zeros(days),
            shortage_cost=np.zeros(days),
            overflow=np.zeros((days, n)),
            overflow_cost=np.zeros(days),
            after_window_cost=np.zeros(days),
        )
        self._own = ~network.is_supplier

    # ---- what a planner or a baseline may look at (state at the start of `self.day`)

    def inbound(self, include_queue: bool = True) -> NDArray[np.float64]:
        """Units on their way to each node × SKU (in transit, open POs, and queued orders)."""
        out = np.zeros_like(self.stock)
        for s in self.pipeline:
            out[s.dest, s.sku] += s.qty
        if include_queue:
            for o in self.queue:
                out[self.net.lane_dest[o.lane], o.sku] += o.qty
        return out

    def outbound_queued(self) -> NDArray[np.float64]:
        out = np.zeros_like(self.stock)
        for o in self.queue:
            out[self.net.lane_origin[o.lane], o.sku] += o.qty
        return out

    def submit(self, orders: list[Order], *, approvals: int | None = None) -> None:
        """Queue orders; `approvals` = how many of them a planner had to approve."""
        self.queue.extend(orders)
        self.ledger.orders_submitted += len(orders)
        self.ledger.orders_needing_approval += (
            approvals if approvals is not None else sum(o.needs_approval for o in orders)
        )

    def refuse(self) -> None:
        """The planner refused to plan today (stale or blocked data)."""
        self.ledger.refused_cycles.append(self.day)

    # ---- the day step

    def step(self) -> None:
        t, net, led = self.day, self.net, self.ledger
        if t >= self.paths.days:
            raise RuntimeError(f"the simulation has {self.paths.days} days; day {t} is past its end")
        # 1. arrivals
        still: list[Shipment] = []
        for s in self.pipeline:
            if s.arrive_day <= t:
                self.stock[s.dest, s.sku] += s.qty
                if s.origin < 0 or net.is_supplier[s.origin]:
                    led.received += s.qty  # new to the network (a purchase)
            else:
                still.append(s)
        self.pipeline = still
        # 2. shipments
        out_left = self.paths.out_capacity[t].copy()
        lane_left = net.lane_capacity.copy()
        used = np.zeros(net.n_lanes, dtype=bool)
        later: list[Order] = []
        for o in self.queue:
            if o.ship_day > t:
                later.append(o)
                continue
            origin, dest = int(net.lane_origin[o.lane]), int(net.lane_dest[o.lane])
            supplier = bool(net.is_supplier[origin])
            qty = min(o.qty, out_left[origin], lane_left[o.lane] / net.volume[o.sku])
            if not supplier:
                qty = min(qty, self.stock[origin, o.sku])
            qty = float(np.floor(max(qty, 0.0) + 1e-9))
            led.short_shipped_units += o.qty - qty
            if qty <= 0:
                continue
            if not supplier:
                self.stock[origin, o.sku] -= qty
            out_left[origin] -= qty
            lane_left[o.lane] -= qty * net.volume[o.sku]
            unit = net.lane_cost[o.lane] - (self.credit[o.sku] if supplier else 0.0)
            cost = qty * unit + (0.0 if used[o.lane] else net.lane_fixed[o.lane])
            used[o.lane] = True
            arrive = t + int(self.paths.lead[t, o.lane])  # one lead time per lane and day
            if arrive >= self.paths.days:
                led.after_window_cost[t] += cost
            elif supplier:
                led.purchase_cost[t] += cost
            else:
                led.transport_cost[t] += cost
            kind = "purchase" if supplier else "transfer"
            ship = Shipment(o.ref or f"SIM-{t}-{len(led.shipments)}", o.lane, origin, dest, o.sku, qty, t, arrive, kind)
            led.shipments.append(ship)
            self.pipeline.append(ship)
        self.queue = later
        # 3. demand
        demand = self.paths.demand[t] * self._own[:, None]
        led.demand[t] = demand
        if self.unmet == "backorders":
            want = demand + self.backlog
            sales = np.minimum(self.stock, want)
            served_today = np.clip(sales - self.backlog, 0.0, None)
            self.backlog = want - sales
            led.unmet[t] = demand - served_today
            led.backlog[t] = self.backlog
            led.shortage_cost[t] = float((self.backlog * self.penalty[None, :]).sum() * self.backorder_daily_share)
        else:
            sales = np.minimum(self.stock, demand)
            led.unmet[t] = demand - sales
            led.shortage_cost[t] = float((led.unmet[t] * self.penalty[None, :]).sum())
        self.stock -= sales
        led.sales[t] = sales
        # 4. holding
        led.stock[t] = self.stock
        led.holding_cost[t] = float((self.stock * net.holding[None, :]).sum())
        # storage: the simulator cannot refuse goods that arrive; volume above capacity goes to
        # overflow storage at a cost per volume-day (the planner treats capacity as a hard limit)
        volume = self.stock @ net.volume
        led.overflow[t] = np.clip(volume - self._storage, 0.0, None)
        led.overflow_cost[t] = float(led.overflow[t].sum() * self.overflow_rate)
        self.day += 1
        if self.day == self.paths.days and self.unmet == "backorders":
            # a unit still waiting at the end costs the full penalty, as in the policy's model
            self.ledger.shortage_cost[-1] += float((self.backlog * self.penalty[None, :]).sum())

    def position(self) -> NDArray[np.float64]:
        """Units held or on their way, per node × SKU."""
        return self.stock + self.inbound(include_queue=False)

    def run(self, decide: Callable[[Simulator], None]) -> Ledger:
        """Step to the end, asking `decide(self)` for orders at the start of every day."""
        while self.day < self.paths.days:
            decide(self)
            self.step()
        return self.ledger
