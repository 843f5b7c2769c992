"""The soft statistical / reconciliation suite: Great Expectations over the staged tables, with Data Docs.

Pandera is the hard gate; what runs here only warns. Each staged extract that has soft checks
gets one GX suite, validated through GX's pandas engine (GX has no polars or DuckDB engine), and
GX's own site builder renders the results as Data Docs HTML into `docs_dir`.

The GX context is ephemeral: suites, validation definitions and results live in memory, and the
only files GX writes are the Data Docs site under `docs_dir` (nothing in the repo, the working
directory or the user's home). Each run's index lists the suites of that run; pages of earlier
runs written to the same folder stay on disk under `validations/<suite>/<run_name>/`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.data_context import EphemeralDataContext
    from great_expectations.expectations import Expectation

    from ballast.models.policy import Policy

logger = logging.getLogger(__name__)

DOCS_SITE_NAME = "ballast"
RECONCILIATION = "reconciliation"
DEMAND_BY_SITE = "demand_by_site"


class StatisticalSuiteError(RuntimeError):
    """Great Expectations itself failed (not the data): the suite could not be evaluated."""


@dataclass(frozen=True, slots=True)
class SuiteThresholds:
    """Bounds of the soft suite; generous on purpose, since a breach only warns."""

    reference_days: int | None = 91  # drift baseline: the 13 weeks before the staged window
    drift_bins: int = 20  # reference quantile bins for the KL divergence
    drift_kl_max: float = 0.25
    drift_holdout: float = 0.01  # weight kept for values outside / between reference bins
    mean_ratio_band: float = 2.0  # recent mean within [reference / band, reference × band]
    site_mean_ratio_band: float = 2.0
    site_mean_mostly: float = 0.9  # share of sites whose mean must stay in the band
    demand_outlier_quantile: float = 0.999  # per-SKU scale taken from the reference
    demand_self_quantile: float = 0.95  # first load: the batch's own scale, robust to 5% spikes
    demand_outlier_factor: float = 5.0
    outlier_mostly: float = 0.999
    max_zero_stock_share: float = 0.3
    commitment_mostly: float = 0.99  # allocated + reserved <= on_hand
    on_hand_outlier_factor: float = 100.0  # × the SKU's median positive on_hand (sites, lots)
    price_above_cost_mostly: float = 0.95
    max_lead_time_days: int = 120
    lead_time_mostly: float = 0.99
    reconciliation_tolerance: float = 0.02
    reconciliation_max_share: float = 0.05

    @classmethod
    def from_policy(cls, policy: Policy) -> SuiteThresholds:
        """Defaults, with the reconciliation bounds the policy's quality gates state."""
        gates = policy.quality_gates
        return cls(
            reconciliation_tolerance=gates.reconciliation_tolerance,
            reconciliation_max_share=gates.reconciliation_max_share,
        )


@dataclass(frozen=True, slots=True)
class FailedExpectation:
    """One expectation that did not hold: which check, on what, and what GX observed."""

    suite: str
    check: str
    expectation: str
    column: str | None
    observed: str


@dataclass(frozen=True, slots=True)
class SuiteResult:
    """Outcome of one suite over one staged frame."""

    suite: str
    success: bool
    rows: int
    evaluated: int
    failed: int


@dataclass(frozen=True, slots=True)
class SuiteReport:
    """Outcome of the soft suite for one run; failures are warnings, never a gate."""

    run_name: str
    suites: tuple[SuiteResult, ...]
    failures: tuple[FailedExpectation, ...]
    docs_index: Path
    skipped: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def success(self) -> bool:
        return all(s.success for s in self.suites)

    def suite(self, name: str) -> SuiteResult:
        """Return the result of one suite by name."""
        for s in self.suites:
            if s.suite == name:
                return s
        raise KeyError(f"no suite {name!r} in run {self.run_name!r}")

    @property
    def failed_checks(self) -> tuple[str, ...]:
        """Names `<suite>.<check>` of the expectations that failed."""
        return tuple(f"{f.suite}.{f.check}" for f in self.failures)


@dataclass(slots=True)
class _Suite:
    """A suite to run: the batch frame, its expectations, and the columns that identify a row."""

    name: str
    frame: pd.DataFrame
    expectations: list[Expectation] = field(default_factory=list)
    index_columns: tuple[str, ...] = ()


# -- frame helpers ---------------------------------------------------------------------------


def _as_datetime(s: pd.Series) -> pd.Series:
    """Dates as datetime64 so windows compare whatever the frame's date representation."""
    return s if pd.api.types.is_datetime64_any_dtype(s) else pd.to_datetime(s)


def _per_sku_scale(values: pd.Series, skus: pd.Series, q: float | None) -> pd.Series:
    """Return a per-SKU scale (quantile q, or the median of positive values), at least 1."""
    if q is None:
        # Stock-outs would drag a median to zero and make every stocked row look like an outlier.
        positive = values > 0
        values, skus = values[positive], skus[positive]
    grouped = values.groupby(skus, observed=True, sort=False)
    scale = grouped.median() if q is None else grouped.quantile(q)
    # A floor of one unit keeps a SKU with no movement from dividing by zero.
    return scale.clip(lower=1.0)


def _reference_window(
    reference: pd.DataFrame | None, window_start: pd.Timestamp, days: int | None
) -> pd.DataFrame | None:
    """Keep the reference rows strictly before the staged window (and within `days` of it)."""
    if reference is None or reference.empty:
        return None
    dates = _as_datetime(reference["date"])
    keep = dates < window_start
    if days is not None:
        keep &= dates >= window_start - pd.Timedelta(days=days)
    if keep.all():
        return reference  # the usual case; skips copying millions of rows
    ref = reference.loc[keep, ["date", "site_id", "sku", "qty"]]
    return None if ref.empty else ref


def _kl_partition(reference_qty: np.ndarray, bins: int) -> dict[str, list[float]] | None:
    """Build a continuous GX partition object on reference quantile edges (None if degenerate)."""
    edges = np.unique(np.quantile(reference_qty, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        return None
    counts, _ = np.histogram(reference_qty, bins=edges)
    return {"bins": edges.tolist(), "weights": (counts / counts.sum()).tolist()}


# -- suite builders: one per extract -----------------------------------------------------------


def _demand_suites(demand: pd.DataFrame, reference: pd.DataFrame | None, t: SuiteThresholds) -> list[_Suite]:
    """Demand: drift of the staged window against the reference, outliers, per-site means."""
    import great_expectations.expectations as gxe

    window_start = _as_datetime(demand["date"]).min()
    ref = _reference_window(reference, window_start, t.reference_days)
    if ref is None:
        # First load: the batch is its own reference, so take a quantile spikes cannot set.
        scale = _per_sku_scale(demand["qty"], demand["sku"], t.demand_self_quantile)
        basis = f"the SKU's own p{t.demand_self_quantile * 100:g} in this batch"
        logger.info("demand: no reference history before %s; drift checks skipped", window_start)
    else:
        scale = _per_sku_scale(ref["qty"], ref["sku"], t.demand_outlier_quantile)
        basis = f"the SKU's reference p{t.demand_outlier_quantile * 100:g}"
    ratio = demand["qty"] / demand["sku"].map(scale).astype("float64")
    frame = pd.DataFrame({**{c: demand[c] for c in demand.columns}, "qty_vs_sku_scale": ratio}, copy=False)

    suite = _Suite("demand", frame, index_columns=("date", "site_id", "sku"))
    suite.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="qty_vs_sku_scale",
            max_value=t.demand_outlier_factor,
            mostly=t.outlier_mostly,
            meta={"check": "qty_outliers"},
            notes=f"qty divided by {basis} (at least 1 unit); SKUs without history are not checked.",
        )
    )
    suites = [suite]
    if ref is None:
        return suites

    ref_qty = ref["qty"].to_numpy(dtype="float64", na_value=np.nan)
    ref_qty = ref_qty[~np.isnan(ref_qty)]
    ref_mean = float(ref_qty.mean()) if ref_qty.size else 0.0
    partition = _kl_partition(ref_qty, t.drift_bins) if ref_qty.size else None
    if partition is not None:
        suite.expectations.append(
            gxe.ExpectColumnKLDivergenceToBeLessThan(
                column="qty",
                partition_object=partition,
                threshold=t.drift_kl_max,
                tail_weight_holdout=t.drift_holdout,
                internal_weight_holdout=t.drift_holdout,
                meta={"check": "qty_drift_kl"},
                notes=f"Bins are quantiles of {ref_qty.size} reference rows before {window_start:%Y-%m-%d}.",
            )
        )
    if ref_mean > 0:
        suite.expectations.append(
            gxe.ExpectColumnMeanToBeBetween(
                column="qty",
                min_value=ref_mean / t.mean_ratio_band,
                max_value=ref_mean * t.mean_ratio_band,
                meta={"check": "qty_mean_drift"},
                notes=f"Reference mean {ref_mean:.4g} within a factor {t.mean_ratio_band:g}.",
            )
        )
    suites.append(_site_means_suite(demand, ref, t))
    return suites


def _site_means_suite(demand: pd.DataFrame, ref: pd.DataFrame, t: SuiteThresholds) -> _Suite:
    """Per-site mean demand of the window against the site's reference mean."""
    import great_expectations.expectations as gxe

    recent = demand.groupby("site_id", observed=True)["qty"].agg(["size", "mean"])
    before = ref.groupby("site_id", observed=True)["qty"].mean().rename("reference_mean")
    sites = recent.rename(columns={"size": "rows", "mean": "recent_mean"}).join(before, how="left")
    # A site without reference history has no ratio (NaN), and GX leaves nulls out of the share.
    sites["mean_ratio"] = sites["recent_mean"] / sites["reference_mean"]
    suite = _Suite(DEMAND_BY_SITE, sites.reset_index(), index_columns=("site_id",))
    suite.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="mean_ratio",
            min_value=1.0 / t.site_mean_ratio_band,
            max_value=t.site_mean_ratio_band,
            mostly=t.site_mean_mostly,
            meta={"check": "site_mean_band"},
            notes="Mean qty per site in the staged window over the same site's reference mean.",
        )
    )
    return suite


def _inventory_suite(inventory: pd.DataFrame, t: SuiteThresholds) -> _Suite:
    """Inventory: share of zero stock, commitments within on-hand, on-hand outliers."""
    import great_expectations.expectations as gxe

    scale = _per_sku_scale(inventory["on_hand"], inventory["sku"], None)
    frame = pd.DataFrame(
        {
            **{c: inventory[c] for c in inventory.columns},
            "allocated_plus_reserved": inventory["allocated"] + inventory["reserved"],
            "on_hand_vs_sku_median": inventory["on_hand"] / inventory["sku"].map(scale).astype("float64"),
        },
        copy=False,
    )
    suite = _Suite("inventory", frame, index_columns=("site_id", "sku", "lot"))
    suite.expectations += [
        # "on_hand > 0 at least (1 - max share) of the time" is the zero-stock share bound.
        gxe.ExpectColumnValuesToBeBetween(
            column="on_hand",
            min_value=0,
            strict_min=True,
            mostly=1.0 - t.max_zero_stock_share,
            meta={"check": "zero_stock_share"},
            notes=f"At most {t.max_zero_stock_share:.0%} of inventory rows may have no stock.",
        ),
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="on_hand",
            column_B="allocated_plus_reserved",
            or_equal=True,
            mostly=t.commitment_mostly,
            meta={"check": "commitments_within_on_hand"},
        ),
        gxe.ExpectColumnValuesToBeBetween(
            column="on_hand_vs_sku_median",
            max_value=t.on_hand_outlier_factor,
            mostly=t.outlier_mostly,
            meta={"check": "on_hand_outliers"},
            notes="on_hand over the SKU's median positive on_hand across sites and lots (at least 1).",
        ),
    ]
    return suite


def _items_suite(items: pd.DataFrame, t: SuiteThresholds) -> _Suite:
    """Items: selling price not below cost, mostly."""
    import great_expectations.expectations as gxe

    suite = _Suite("items", items, index_columns=("sku",))
    suite.expectations.append(
        gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="unit_price",
            column_B="unit_cost",
            or_equal=True,
            mostly=t.price_above_cost_mostly,
            ignore_row_if="either_value_is_missing",
            meta={"check": "price_not_below_cost"},
        )
    )
    return suite


def _lanes_suite(lanes: pd.DataFrame, t: SuiteThresholds) -> _Suite:
    """Lanes: lead times in a sane range."""
    import great_expectations.expectations as gxe

    suite = _Suite("lanes", lanes, index_columns=("origin", "destination", "mode"))
    suite.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="lead_time_days",
            min_value=0,
            max_value=t.max_lead_time_days,
            mostly=t.lead_time_mostly,
            meta={"check": "lead_time_range"},
        )
    )
    return suite


def _reconciliation_suite(recon: pd.DataFrame, t: SuiteThresholds) -> _Suite:
    """Book vs WMS: share of (site, sku) pairs whose relative difference is within tolerance."""
    import great_expectations.expectations as gxe

    suite = _Suite(RECONCILIATION, recon, index_columns=("site_id", "sku"))
    suite.expectations.append(
        gxe.ExpectColumnValuesToBeBetween(
            column="rel_diff",
            min_value=-t.reconciliation_tolerance,
            max_value=t.reconciliation_tolerance,
            mostly=1.0 - t.reconciliation_max_share,
            meta={"check": "book_vs_wms_within_tolerance"},
            notes="rel_diff = (WMS - book) / book; the hard gate has already applied its own bound.",
        )
    )
    return suite


_REQUIRED: dict[str, tuple[str, ...]] = {
    "demand": ("date", "site_id", "sku", "qty"),
    "inventory": ("site_id", "sku", "lot", "on_hand", "allocated", "reserved"),
    "items": ("sku", "unit_cost", "unit_price"),
    "lanes": ("origin", "destination", "mode", "lead_time_days"),
    RECONCILIATION: ("site_id", "sku", "rel_diff"),
}


def _build_suites(
    staged: dict[str, pd.DataFrame], reference_demand: pd.DataFrame | None, t: SuiteThresholds
) -> tuple[list[_Suite], tuple[str, ...]]:
    """Build the suites for the frames present; also name the frames that have no soft checks."""
    builders: dict[str, Callable[[pd.DataFrame], list[_Suite]]] = {
        "demand": lambda df: _demand_suites(df, reference_demand, t),
        "inventory": lambda df: [_inventory_suite(df, t)],
        "items": lambda df: [_items_suite(df, t)],
        "lanes": lambda df: [_lanes_suite(df, t)],
        RECONCILIATION: lambda df: [_reconciliation_suite(df, t)],
    }
    suites: list[_Suite] = []
    skipped: list[str] = []
    for name, frame in staged.items():
        build = builders.get(name)
        if build is None or frame.empty:
            skipped.append(name)
            continue
        missing = [c for c in _REQUIRED[name] if c not in frame.columns]
        if missing:
            raise ValueError(f"staged {name!r} lacks contract column(s) {missing}")
        suites += build(frame)
    return suites, tuple(skipped)


# -- GX plumbing -----------------------------------------------------------------------------


def _context(docs_dir: Path) -> EphemeralDataContext:
    """Open an in-memory GX context whose only files are the Data Docs site in `docs_dir`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        # The documented per-context switch; 1.24.1 ships no analytics client to switch off.
        analytics_enabled=False,
        # tqdm bars would go to stderr of every flow run.
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
        data_docs_sites={
            DOCS_SITE_NAME: {
                "class_name": "SiteBuilder",
                "show_how_to_buttons": False,
                "store_backend": {
                    "class_name": "TupleFilesystemStoreBackend",
                    "base_directory": str(docs_dir),
                },
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            }
        },
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _validate(
    context: EphemeralDataContext, suite: _Suite, run_name: str, run_time: datetime
) -> ExpectationSuiteValidationResult:
    """Run one suite over its frame; results land in the context's in-memory store."""
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier

    asset = context.data_sources.add_pandas(f"{suite.name}_source").add_dataframe_asset(suite.name)
    batch = asset.add_batch_definition_whole_dataframe(f"{suite.name}_batch")
    gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=suite.expectations))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
    )
    result_format: dict[str, Any] = {
        "result_format": "SUMMARY",
        "partial_unexpected_count": 10,
        "unexpected_index_column_names": list(suite.index_columns),
    }
    return definition.run(
        batch_parameters={"dataframe": suite.frame},
        result_format=result_format,
        run_id=RunIdentifier(run_name=run_name, run_time=run_time),
    )


def _fmt(value: object) -> str:
    """Render an observed value short and readable."""
    if value is None:
        return "n/a"
    if isinstance(value, float | np.floating):
        return "inf" if math.isinf(value) else f"{value:.4g}"
    return str(value)


def _where(rows: list[dict[str, Any]], index_columns: tuple[str, ...]) -> str:
    """Name a few unexpected rows by their identifying columns, e.g. `site_id=S1 sku=K3`."""
    return "; ".join(" ".join(f"{c}={row.get(c)}" for c in index_columns) for row in rows)


def _observed(r: ExpectationValidationResult, index_columns: tuple[str, ...]) -> str:
    """Describe what GX observed: the aggregate, or the unexpected share with sample rows."""
    result = r.result or {}
    if "unexpected_percent" in result:
        share = result.get("unexpected_percent") or 0.0
        sample = ", ".join(_fmt(v) for v in (result.get("partial_unexpected_list") or [])[:3])
        text = f"{result.get('unexpected_count', 0)} unexpected ({share:.3g}%), e.g. {sample}"
        where = (result.get("partial_unexpected_index_list") or [])[:3]
        return text + (f" at {_where(where, index_columns)}" if where else "")
    if r.expectation_config.type == "expect_column_kl_divergence_to_be_less_than":
        # GX reports an infinite divergence as None.
        kl = result.get("observed_value")
        return _fmt(math.inf if kl is None else kl)
    return _fmt(result.get("observed_value"))


def _exception_message(info: dict[str, Any]) -> str | None:
    """Return the message of an exception GX caught while evaluating, or None."""
    # GX 1.x reports either one flat record or one record per metric it failed to resolve.
    records = [info, *(v for v in info.values() if isinstance(v, dict))]
    for record in records:
        if record.get("raised_exception"):
            return str(record.get("exception_message") or "unknown error")
    return None


def _summarise(
    suite: _Suite, result: ExpectationSuiteValidationResult
) -> tuple[SuiteResult, list[FailedExpectation]]:
    """Turn one GX suite result into ballast's report rows; raise if GX could not evaluate."""
    for r in result.results:
        error = _exception_message(r.exception_info or {})
        if error is not None:
            raise StatisticalSuiteError(
                f"Great Expectations could not evaluate {r.expectation_config.type} "
                f"({(r.expectation_config.meta or {}).get('check')}) in suite {suite.name!r}: {error}"
            )
    failures = [
        FailedExpectation(
            suite=suite.name,
            check=(r.expectation_config.meta or {}).get("check", r.expectation_config.type),
            expectation=r.expectation_config.type,
            column=r.expectation_config.kwargs.get("column") or r.expectation_config.kwargs.get("column_A"),
            observed=_observed(r, suite.index_columns),
        )
        for r in result.results
        if not r.success
    ]
    summary = SuiteResult(
        suite=suite.name,
        success=bool(result.success),
        rows=len(suite.frame),
        evaluated=len(result.results),
        failed=len(failures),
    )
    return summary, failures


def _run_suites(
    suites: Iterable[_Suite], docs_dir: Path, run_name: str
) -> tuple[list[SuiteResult], list[FailedExpectation], Path]:
    """Validate every suite in one context and build the Data Docs site."""
    context = _context(docs_dir)
    run_time = datetime.now(UTC)
    results: list[SuiteResult] = []
    failures: list[FailedExpectation] = []
    for suite in suites:
        started = time.perf_counter()
        summary, failed = _summarise(suite, _validate(context, suite, run_name, run_time))
        logger.debug("suite %s: %d rows in %.2f s", suite.name, summary.rows, time.perf_counter() - started)
        results.append(summary)
        failures += failed
    context.build_data_docs(site_names=[DOCS_SITE_NAME])
    return results, failures, docs_dir / "index.html"


def run_statistical_suite(
    staged: dict[str, pd.DataFrame],
    reference_demand: pd.DataFrame | None,
    docs_dir: Path,
    run_name: str,
    thresholds: SuiteThresholds | None = None,
) -> SuiteReport:
    """Run the soft GX suites over the staged frames, write Data Docs, and report (never gate)."""
    started = time.perf_counter()
    t = thresholds or SuiteThresholds()
    suites, skipped = _build_suites(staged, reference_demand, t)
    docs_dir = Path(docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    try:
        results, failures, index = _run_suites(suites, docs_dir, run_name)
    except StatisticalSuiteError:
        raise
    except Exception as exc:  # GX's own errors carry no common base class worth relying on
        raise StatisticalSuiteError(f"Great Expectations failed during run {run_name!r}: {exc}") from exc
    for f in failures:
        logger.warning("soft check %s.%s failed on %s: %s", f.suite, f.check, f.column, f.observed)
    report = SuiteReport(
        run_name=run_name,
        suites=tuple(results),
        failures=tuple(failures),
        docs_index=index,
        skipped=skipped,
        seconds=time.perf_counter() - started,
    )
    logger.info(
        "statistical suite %s: %d suite(s), %d failed expectation(s), docs at %s",
        run_name,
        len(results),
        len(failures),
        index,
    )
    return report
