"""Deterministic identities: the same inputs give the same plan id, the same order the same key."""

from __future__ import annotations

import hashlib
import json
from datetime import date


def plan_id(inputs: dict, policy_sha256: str, forecast_ref: str | None, code_version: str, mode: str) -> str:
    """A hash of everything a plan is computed from (DESIGN.md §5)."""
    body = json.dumps(
        {"inputs": inputs, "policy": policy_sha256, "forecast": forecast_ref, "code": code_version, "mode": mode},
        sort_keys=True,
        default=str,
    )
    return "P" + hashlib.sha256(body.encode()).hexdigest()[:15]


def order_key(sku: str, origin: str, destination: str, mode: str, ship_date: date) -> str:
    """Idempotency key of a shipment: emitting the same move twice never makes a second order."""
    body = "\x1f".join([sku, origin, destination, mode, ship_date.isoformat()])
    return "O" + hashlib.sha256(body.encode()).hexdigest()[:15]
