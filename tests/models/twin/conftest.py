"""Tiny hand-made twin networks whose answers can be worked out on paper."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from ballast.models.twin.network import Receipt, TwinNetwork

START = date(2026, 11, 23)


def tiny_network(
    stock: tuple[float, float, float] = (100.0, 10.0, 40.0),
    *,
    lane_capacity: float = np.inf,
    receipts: tuple[Receipt, ...] = (),
) -> TwinNetwork:
    """Supplier SUP → DC → HUB-A, HUB-B; HUB-A ↔ HUB-B lateral lanes; one SKU of volume 1.

    nodes: 0 SUP, 1 DC, 2 HUB-A, 3 HUB-B; lanes: 0 SUP→DC (lead 3, price 5), 1 DC→A (lead 1),
    2 DC→B (lead 1), 3 A→B (lead 1), 4 B→A (lead 1).
    """
    return TwinNetwork(
        start=START,
        nodes=("SUP", "DC", "HUB-A", "HUB-B"),
        kind=("supplier", "dc", "hub", "hub"),
        country=("DE", "DE", "DE", "DE"),
        skus=("SKU-1",),
        unit_cost=np.array([4.0]),
        unit_price=np.array([10.0]),
        holding=np.array([0.01]),
        volume=np.array([1.0]),
        out_capacity=np.array([np.inf, np.inf, np.inf, np.inf]),
        lane_origin=np.array([0, 1, 1, 2, 3]),
        lane_dest=np.array([1, 2, 3, 3, 2]),
        lane_mode=("truck",) * 5,
        lane_lead=np.array([3, 1, 1, 1, 1]),
        lane_cost=np.array([5.0, 0.5, 0.5, 0.2, 0.2]),
        lane_fixed=np.array([0.0, 10.0, 10.0, 0.0, 0.0]),
        lane_capacity=np.array([np.inf, np.inf, np.inf, lane_capacity, lane_capacity]),
        lane_forbidden=np.zeros(5, dtype=bool),
        stock0=np.array([[0.0], [stock[0]], [stock[1]], [stock[2]]]),
        receipts=receipts,
        history=np.tile(np.array([[0.0], [0.0], [5.0], [5.0]])[None, :, :], (28, 1, 1)),
        frames={},
    )


@pytest.fixture
def tiny() -> TwinNetwork:
    return tiny_network()


@pytest.fixture(scope="session")
def small_frames():  # noqa: ANN201
    from ballast.models.sample import generate_network
    from ballast.models.twin.config import load_twin_settings

    settings = load_twin_settings(network={"seed": 7, "plants": 1, "dcs": 2, "hubs": 5, "skus": 6, "history_days": 60})
    return settings, generate_network(settings.sample_spec())


def _world(small_frames, scenario, seed: int, days: int):  # noqa: ANN001, ANN202
    """A world of the small network; `scenario` is a name or a `Scenario`."""
    from ballast.models.policy import load_policy
    from ballast.models.twin.scenarios import get_scenario
    from ballast.models.twin.world import make_network, make_world
    from ballast.settings import PACKAGED_POLICY

    settings, frames = small_frames
    policy, _ = load_policy(PACKAGED_POLICY)
    network = make_network(frames, settings, policy)
    chosen = get_scenario(scenario) if isinstance(scenario, str) else scenario
    return make_world(frames, network, chosen, seed, days, settings, policy)


@pytest.fixture
def world_steady(small_frames):  # noqa: ANN001, ANN201
    return _world(small_frames, "steady", 3, 10)


@pytest.fixture
def make_small_world(small_frames):  # noqa: ANN001, ANN201
    return lambda scenario, seed, days: _world(small_frames, scenario, seed, days)
