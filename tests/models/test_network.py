"""The network model's inputs: pure helpers of `ballast.models.network`."""

from __future__ import annotations

import numpy as np

from ballast.models.network import Arc, release_now_waived

ARCS = {
    "A>B:road": Arc("A>B:road", "A", "B", "road", "replenishment", 2, 1.0, 0.0, None, None),
    "A>C:road": Arc("A>C:road", "A", "C", "road", "replenishment", 1, 1.0, 0.0, None, None),
}
PIDX = {("B", "X"): 0, ("B", "Y"): 1, ("C", "X"): 2}


def waived(no_action: list[list[float]], safety: list[float], slots, freeze_days: int = 1):
    return release_now_waived(slots, ARCS, PIDX, np.array(no_action, dtype=float), np.array(safety), freeze_days)


def test_a_destination_is_waived_when_only_a_move_released_now_reaches_its_shortfall():
    # B (lead 2) ends day 2 below safety stock on Y: a move shipped today lands on day 2, one left to
    # tomorrow on day 3. C (lead 1) is below safety stock from day 2 on: tomorrow's move lands in time.
    no_action = [
        [9, 9, 9, 9, 9],  # B X
        [9, 8, 4, 3, 2],  # B Y: safety 5
        [9, 6, 4, 2, 0],  # C X: safety 5
    ]
    slots = [("A>B:road", "X", 0), ("A>B:road", "Y", 0), ("A>B:road", "Y", 1), ("A>C:road", "X", 0)]
    assert waived(no_action, [5, 5, 5], slots) == {"B": ("Y", 2)}


def test_days_no_move_released_now_can_reach_and_slots_after_the_window_do_not_count():
    # B Y is short on day 1 (before any move lands) and day 3 (tomorrow's move is there in time);
    # the only slot for C X ships on day 1, after the freeze window
    no_action = [[9] * 5, [9, 1, 9, 1, 9], [0] * 5]
    slots = [("A>B:road", "Y", 0), ("A>C:road", "X", 1)]
    assert waived(no_action, [5, 5, 5], slots) == {}
    # a wider window reaches more days: with 2 days, day 3 of B Y is one only this cycle can reach
    assert waived(no_action, [5, 5, 5], slots, freeze_days=2) == {"B": ("Y", 3), "C": ("X", 2)}


def test_no_safety_stock_or_no_row_waives_nothing():
    no_action = [[0] * 5, [0] * 5, [0] * 5]
    slots = [("A>B:road", "X", 0), ("A>B:road", "Z", 0)]  # Z: a pair with no row
    assert waived(no_action, [0, 0, 0], slots) == {}
