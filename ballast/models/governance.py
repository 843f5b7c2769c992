"""Governance: which orders a planner must approve, which are released, and who may decide.

Approval rules come from the policy (`Policy.approval`): an order needs approval when its value
is above the threshold, when it crosses a border (transfers; purchases from foreign suppliers
are the normal case and are judged by value), when it uses a lane no released order has used
before, or when it takes a large share of the origin's available stock. The rest is
auto-approved. Only approved orders departing inside the freeze window are released.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from ballast.models.policy import Policy

AUTO_APPROVED = "auto_approved"
NEEDS_APPROVAL = "needs_approval"
APPROVED = "approved"
REJECTED = "rejected"
RELEASABLE = (AUTO_APPROVED, APPROVED)


class NotAllowed(PermissionError):
    """A decision by someone the policy does not allow to make it."""


def assess_approvals(
    orders: pl.DataFrame,
    sites: pl.DataFrame,
    used_lanes: pl.DataFrame,
    available: pl.DataFrame,
    policy: Policy,
) -> pl.DataFrame:
    """Add `approval_status` and `approval_reasons` (list of sentences) to each order.

    `used_lanes` holds the (origin, destination) pairs goods have already moved on; `available`
    holds (site_id, sku, available) at the plan's as-of.
    """
    rules = policy.approval
    country = sites.select("site_id", "country")
    frame = (
        orders.join(country.rename({"site_id": "origin", "country": "_oc"}), on="origin", how="left")
        .join(country.rename({"site_id": "destination", "country": "_dc"}), on="destination", how="left")
        .join(
            used_lanes.select("origin", "destination").unique().with_columns(pl.lit(True).alias("_used")),
            on=["origin", "destination"],
            how="left",
        )
        .join(available.rename({"site_id": "origin", "available": "_avail"}), on=["origin", "sku"], how="left")
    )
    reasons = []
    reasons.append(
        pl.when(pl.col("value") > rules.order_value_above).then(
            pl.format("order value {} above the {} approval threshold", pl.col("value").round(2), pl.lit(rules.order_value_above))
        )
    )
    if rules.cross_border:
        reasons.append(
            pl.when((pl.col("kind") == "transfer") & (pl.col("_oc") != pl.col("_dc"))).then(
                pl.format("cross-border transfer {}→{}", pl.col("_oc"), pl.col("_dc"))
            )
        )
    if rules.new_lane:
        reasons.append(
            pl.when(pl.col("_used").is_null() & (pl.col("kind") == "transfer")).then(
                pl.format("first transfer ever from {} to {}", pl.col("origin"), pl.col("destination"))
            )
        )
    share = pl.col("qty") / pl.col("_avail")
    reasons.append(
        pl.when((pl.col("kind") == "transfer") & (pl.col("_avail") > 0) & (share > rules.share_of_site_stock_above)).then(
            pl.format("takes {}% of {}'s available stock", (share * 100).round(0), pl.col("origin"))
        )
    )
    frame = frame.with_columns(pl.concat_list(reasons).list.drop_nulls().alias("approval_reasons"))
    return frame.with_columns(
        pl.when(pl.col("approval_reasons").list.len() > 0)
        .then(pl.lit(NEEDS_APPROVAL))
        .otherwise(pl.lit(AUTO_APPROVED))
        .alias("approval_status")
    ).drop("_oc", "_dc", "_used", "_avail")


def in_freeze_window(ship_date: pl.Expr, as_of_date: date, policy: Policy) -> pl.Expr:
    """Orders departing before as_of + freeze window are released; later days are a preview."""
    return ship_date < pl.lit(as_of_date + timedelta(days=policy.freeze_window_days))


def check_approver(by: str, policy: Policy) -> None:
    """Maker-checker: the approver holds the planner role and did not write the policy in force."""
    if by not in policy.approval.planners:
        raise NotAllowed(
            f"{by!r} does not hold the planner role in policy {policy.version} "
            f"(planners: {', '.join(policy.approval.planners) or 'none'})"
        )
    if by == policy.author:
        raise NotAllowed(f"{by!r} wrote policy {policy.version} and may not approve orders under it")
