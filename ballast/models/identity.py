"""Deterministic plan identity: the same inputs give the same plan id (order ids: `explain.order_id`)."""

from __future__ import annotations

import hashlib
import json


def plan_id(inputs: dict, policy_sha256: str, forecast_ref: str | None, code_version: str, mode: str) -> str:
    """A hash of everything a plan is computed from (DESIGN.md §5)."""
    body = json.dumps(
        {"inputs": inputs, "policy": policy_sha256, "forecast": forecast_ref, "code": code_version, "mode": mode},
        sort_keys=True,
        default=str,
    )
    return "P" + hashlib.sha256(body.encode()).hexdigest()[:15]

