"""Daily demand forecasts per site×SKU with StatsForecast: model choice by cross-validation.

How a series is forecast depends on its demand class and on a compute budget (MEASURED.md:
AutoETS costs ~200× an intermittent model, AutoARIMA ~1,000×):

* tier `intermittent` (intermittent / lumpy): CrostonOptimized, ADIDA, IMAPA, TSB;
* tier `cheap` (smooth / erratic): SeasonalExponentialSmoothingOptimized, SeasonalWindowAverage;
* tier `rich`: the `expensive_budget` smooth/erratic series of highest demand value also try
  AutoETS and AutoTheta; the first `arima_budget` of those (tier `full`) AutoARIMA as well;
* SeasonalNaive joins every tier as the benchmark (and as the fallback if a model fails);
* tier `fallback`: histories too short to cross-validate (new SKU or site) or without any
  demand get `RecentMean`, a mean of the last days with a Poisson-or-wider spread — never a crash.

Each series is fitted on its last `fit_window_days`, cross-validated on `cv_windows` origins
`cv_step_days` apart over the full horizon, and the model with the lowest mean score wins
(MASE for smooth/erratic, RMSSE for intermittent/lumpy, because MAE rewards forecasting zero
for sparse demand, which starves the stock). Intervals are native where the model has them
(SeasonalNaive, ETS, Theta, ARIMA) and conformal otherwise: the quantiles of the model's own
CV errors on the ratio scale (actual / forecast), pooled over windows and horizon days
(cross-conformal: the coverage reported for a CV window uses only the other windows). These
are asymmetric, which is what intermittent demand needs: most days the actual is zero, on a
few it is a whole lump.

Output quantiles: `q80`/`q95` are the 80th/95th percentiles of the day's demand (the upper
ends of the central 60%/90% intervals), `lo80..hi80` and `lo95..hi95` the central 80%/95%
intervals, `q50` the median (the point forecast where intervals are native and symmetric).
Everything is clipped at zero: demand is never negative.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Protocol

import numpy as np
import polars as pl
from scipy import stats

logger = logging.getLogger(__name__)

TIERS: Final = ("fallback", "intermittent", "cheap", "rich", "full")
BENCHMARK: Final = "SeasonalNaive"
FALLBACK: Final = "RecentMean"
CV_LEVELS: Final = (80, 95)
# hi-60 is the 80th percentile and hi-90 the 95th: the quantiles the output names q80 / q95.
OUT_LEVELS: Final = (60, 80, 90, 95)
FORECAST_COLUMNS: Final = ("mean", "q50", "q80", "q95", "lo80", "hi80", "lo95", "hi95")
SELECT_BY: Final = {"smooth": "mase", "erratic": "mase", "intermittent": "rmsse", "lumpy": "rmsse"}
# What a model choice carries to the refits that keep it: its CV scores and conformal ratios.
SCORE_COLUMNS: Final = (
    "mase_cv",
    "rmsse_cv",
    "err_sum",
    "y_sum",
    "cov80",
    "cov95",
    "snaive_mase_cv",
    "mase_holdout",
    "snaive_mase_holdout",
)


@dataclass(frozen=True)
class ForecastConfig:
    """Everything that changes a fitted forecast; its digest is part of the cache key."""

    season_length: int = 7
    fit_window_days: int = 365
    min_history_days: int = 28
    cv_windows: int = 3
    cv_step_days: int = 7
    expensive_budget: int = 300
    arima_budget: int = 30
    seasonal_window_weeks: int = 4
    tsb_alpha_d: float = 0.1
    tsb_alpha_p: float = 0.1
    fallback_days: int = 28
    # A series keeps the model cross-validation chose for this many days of `as_of`: the refits
    # in between fit only that model on the new data (and reuse the choice's conformal ratios).
    # 0 chooses on every refit. CV is ~85% of a refit (pyinstrument, twin network, 71 series).
    reselect_days: int = 7

    def digest(self, h: int, tier: str) -> str:
        """Cache key part: config, horizon, tier and the StatsForecast version. Not
        `reselect_days`: it says when to choose a model again, not how to fit one."""
        import statsforecast

        fit = {k: v for k, v in asdict(self).items() if k != "reselect_days"}
        doc = {**fit, "h": h, "tier": tier, "statsforecast": statsforecast.__version__}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]

    def required_history(self, h: int) -> int:
        """Days needed to cross-validate: the CV span plus a training stretch of 8 weeks."""
        return h + (self.cv_windows - 1) * self.cv_step_days + 8 * self.season_length

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ForecastConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown forecast config keys: {sorted(unknown)}")
        return cls(**doc)


class Backend(Protocol):
    """Where StatsForecast runs. The default runs in-process; a Fugue backend (Dask, Ray, Spark)
    turns the polars frame into its own frame type and StatsForecast dispatches on that type."""

    def to_frame(self, df: pl.DataFrame) -> Any: ...
    def collect(self, result: Any) -> pl.DataFrame: ...


@dataclass(frozen=True)
class LocalBackend:
    """StatsForecast in this process, with `workers` processes for larger batches."""

    workers: int = 1
    min_series_per_worker: int = 100  # below this a process pool costs more than it saves

    def to_frame(self, df: pl.DataFrame) -> pl.DataFrame:
        return df

    def collect(self, result: Any) -> pl.DataFrame:
        return result if isinstance(result, pl.DataFrame) else pl.from_pandas(result)

    def n_jobs(self, n_series: int) -> int:
        return max(1, min(self.workers, n_series // self.min_series_per_worker))


@dataclass(frozen=True)
class DaskBackend:
    """StatsForecast's own distributed path: the series go to the Dask cluster as a Dask
    DataFrame and StatsForecast runs them through Fugue's Dask engine (its `FugueBackend`),
    grouped by series over the workers. It uses the current `dask.distributed` client.

    What differs from `LocalBackend` (statsforecast 2.1.1, `distributed/fugue.py`): model and
    interval columns come back as float32 (the Fugue output schema), in no particular order, with
    `ds`/`cutoff` as pandas timestamps; `collect` restores Float64, dates and order, so
    `fit_partition` returns the same frames.
    """

    npartitions: int = 2  # Dask partitions of the input (Fugue then groups by series)

    def to_frame(self, df: pl.DataFrame) -> Any:
        import dask.dataframe as dd
        from distributed import get_client

        try:
            get_client()
        except ValueError:
            raise RuntimeError(
                "DaskBackend needs a running dask.distributed Client (e.g. `with Client('tcp://scheduler:8786'):`); "
                "without one Fugue would start a cluster of its own"
            ) from None
        pdf = df.to_pandas()
        for col in ("ds", "cutoff"):
            if col in pdf.columns:
                pdf[col] = pdf[col].astype("datetime64[ns]")
        n = max(1, min(self.npartitions, df["unique_id"].n_unique()))
        return dd.from_pandas(pdf, npartitions=n, sort=False)

    def collect(self, result: Any) -> pl.DataFrame:
        pdf = result.compute() if hasattr(result, "compute") else result
        out = pl.from_pandas(pdf.reset_index(drop=True))
        out = out.with_columns(
            *(pl.col(c).cast(pl.Date) for c in ("ds", "cutoff") if c in out.columns and out[c].dtype != pl.Date),
            pl.col(pl.Float32).cast(pl.Float64),
        )
        order = [c for c in ("unique_id", "cutoff", "ds") if c in out.columns]
        return out.sort(order)


@dataclass(frozen=True)
class PartitionResult:
    """Forecast rows and per-series model choice and CV metrics for one batch of series."""

    forecasts: pl.DataFrame
    series: pl.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# candidate models

NATIVE_INTERVALS: Final = frozenset({BENCHMARK, "AutoETS", "AutoTheta", "AutoARIMA"})
# Probabilities of the empirical error quantiles that make the output columns of a model
# without native intervals: lo95, lo80, q50, q80, hi80, q95, hi95.
ERROR_PROBS: Final = {
    "lo95": 0.025,
    "lo80": 0.10,
    "q50": 0.50,
    "q80": 0.80,
    "hi80": 0.90,
    "q95": 0.95,
    "hi95": 0.975,
}
RATIO_COLUMNS: Final = tuple(f"r_{k}" for k in ERROR_PROBS)


@dataclass(frozen=True)
class Candidates:
    """The candidate models of a tier, grouped by how StatsForecast must run them."""

    native: list[Any]  # native intervals, refit per CV window
    plain: list[Any]  # no native intervals (conformal from CV errors), refit per window
    forward: list[Any]  # native intervals, one fit then `forward` over the CV windows

    @property
    def names(self) -> list[str]:
        return [m.alias for m in self.native + self.plain + self.forward]

    def by_name(self, name: str) -> Any:
        for model in self.native + self.plain + self.forward:
            if model.alias == name:
                return model
        raise KeyError(f"model {name!r} is not a candidate")


def candidate_models(tier: str, config: ForecastConfig) -> Candidates:
    """The models a series of `tier` competes with (SeasonalNaive always among them)."""
    from statsforecast.models import (
        ADIDA,
        IMAPA,
        TSB,
        AutoARIMA,
        AutoETS,
        AutoTheta,
        CrostonOptimized,
        SeasonalExponentialSmoothingOptimized,
        SeasonalNaive,
        SeasonalWindowAverage,
    )

    m = config.season_length
    native: list[Any] = [SeasonalNaive(season_length=m, alias=BENCHMARK)]
    plain: list[Any] = []
    forward: list[Any] = []
    if tier == "intermittent":
        plain = [
            CrostonOptimized(alias="CrostonOptimized"),
            ADIDA(alias="ADIDA"),
            IMAPA(alias="IMAPA"),
            TSB(alpha_d=config.tsb_alpha_d, alpha_p=config.tsb_alpha_p, alias="TSB"),
        ]
    elif tier in ("cheap", "rich", "full"):
        plain = [
            SeasonalExponentialSmoothingOptimized(season_length=m, alias="SeasonalESOpt"),
            SeasonalWindowAverage(
                season_length=m, window_size=config.seasonal_window_weeks, alias="SeasonalWindowAverage"
            ),
        ]
        if tier in ("rich", "full"):
            forward = [
                AutoETS(season_length=m, alias="AutoETS"),
                AutoTheta(season_length=m, alias="AutoTheta"),
            ]
        if tier == "full":
            forward.append(AutoARIMA(season_length=m, alias="AutoARIMA"))
    else:
        raise ValueError(f"no candidate models for tier {tier!r}")
    return Candidates(native, plain, forward)


# --------------------------------------------------------------------------------------------
# tiers


def assign_tiers(meta: pl.DataFrame, h: int, config: ForecastConfig) -> pl.DataFrame:
    """Add `tier` to per-series `meta` (needs n_days, n_demand_days, demand_class, demand_value).

    The expensive budget goes to smooth/erratic series by demand value, highest first, so the
    models that cost seconds per series are spent where an error costs the most money.
    """
    required = config.required_history(h)
    smooth = pl.col("demand_class").is_in(["smooth", "erratic"])
    rank = (
        pl.when(smooth).then(pl.col("demand_value")).otherwise(None).rank(method="ordinal", descending=True)
    )
    short = (pl.col("n_days") < required) | (pl.col("n_demand_days") == 0) | (pl.col("demand_class") == "new")
    return (
        meta.with_columns(rank.alias("_rank"))
        .with_columns(
            pl.when(short)
            .then(pl.lit("fallback"))
            .when(~smooth)
            .then(pl.lit("intermittent"))
            .when(pl.col("_rank") <= config.arima_budget)
            .then(pl.lit("full"))
            .when(pl.col("_rank") <= config.expensive_budget)
            .then(pl.lit("rich"))
            .otherwise(pl.lit("cheap"))
            .alias("tier")
        )
        .drop("_rank")
    )


# --------------------------------------------------------------------------------------------
# metrics and selection


def _long_cv(cv: pl.DataFrame, names: list[str], with_levels: bool) -> pl.DataFrame:
    """CV output in long form: unique_id, ds, cutoff, y, model, yhat, lo80, hi80, lo95, hi95.

    Values are clipped at zero (what would be published); intervals are null for models
    without native ones until `_cross_conformal` fills them.
    """
    parts = []
    for name in names:
        cols = [pl.col(name).alias("yhat")]
        for lv in CV_LEVELS:
            for side in ("lo", "hi"):
                src = pl.col(f"{name}-{side}-{lv}") if with_levels else pl.lit(None, dtype=pl.Float64)
                cols.append(src.alias(f"{side}{lv}"))
        parts.append(cv.select("unique_id", "ds", "cutoff", "y", pl.lit(name).alias("model"), *cols))
    out = pl.concat(parts)
    value_cols = ["yhat", "lo80", "hi80", "lo95", "hi95"]
    return out.with_columns(
        pl.col("unique_id").cast(pl.Int64),
        pl.col("y").cast(pl.Float64),
        *(pl.col(c).cast(pl.Float64).fill_nan(None).clip(lower_bound=0.0) for c in value_cols),
    )


def ratio_quantiles(long: pl.DataFrame) -> pl.DataFrame:
    """unique_id, model and one column `r_<key>` per `ERROR_PROBS` key: quantiles of y / yhat.

    Pooled over CV windows and horizon days: a few dozen ratios per series, where a per-day
    quantile would rest on one error per window (statsforecast's ConformalIntervals with 3
    windows covered 65-75% for a nominal 95% here). Ratios, not differences, because the level
    moves between windows: an additive zero-day error −yhat from a window with a low level
    would lift the lower bound above zero in a window with a higher one, and zero days are
    most days of intermittent demand. Days forecast at zero carry no ratio and are left out.
    """
    ratio = pl.col("y") / pl.col("yhat")
    usable = long.filter(pl.col("yhat") > 1e-9)
    return usable.group_by("unique_id", "model").agg(
        ratio.quantile(p, interpolation="linear").alias(f"r_{k}") for k, p in ERROR_PROBS.items()
    )


def _cross_conformal(long: pl.DataFrame) -> pl.DataFrame:
    """Fill intervals of models without native ones: for each CV window, the ratio quantiles of
    the *other* windows (so the coverage measured on a window is out of sample)."""
    plain = long.filter(pl.col("lo80").is_null() & pl.col("yhat").is_not_null())
    if plain.is_empty():
        return long
    filled = []
    for (cutoff,), window in plain.group_by("cutoff"):
        others = ratio_quantiles(plain.filter(pl.col("cutoff") != cutoff))
        w = window.join(others, on=["unique_id", "model"], how="left")
        filled.append(
            w.with_columns(
                (pl.col("yhat") * pl.col(f"r_{k}").fill_null(1.0)).clip(lower_bound=0.0).alias(k)
                for k in ("lo80", "hi80", "lo95", "hi95")
            ).select(long.columns)
        )
    rest = long.join(
        plain.select("unique_id", "model", "cutoff", "ds"),
        on=["unique_id", "model", "cutoff", "ds"],
        how="anti",
    )
    return pl.concat([rest, *filled])


def seasonal_scales(history: pl.DataFrame, before: date | None, m: int) -> pl.DataFrame:
    """unique_id, mae_scale, mse_scale: in-sample seasonal-naive errors up to the first cutoff."""
    h = history if before is None else history.filter(pl.col("ds") <= before)
    diffs = h.with_columns((pl.col("y") - pl.col("y").shift(m).over("unique_id")).alias("d")).drop_nulls("d")
    return diffs.group_by("unique_id").agg(
        pl.col("d").abs().mean().alias("mae_scale"), (pl.col("d") ** 2).mean().alias("mse_scale")
    )


def _scores(long: pl.DataFrame, scales: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Per `by` group: mase, rmsse, error and actual sums, interval coverage."""
    err = pl.col("yhat") - pl.col("y")
    agg = long.group_by(by).agg(
        err.abs().mean().alias("mae"),
        (err**2).mean().alias("mse"),
        err.sum().alias("err_sum"),
        pl.col("y").sum().alias("y_sum"),
        ((pl.col("y") >= pl.col("lo80")) & (pl.col("y") <= pl.col("hi80"))).mean().alias("cov80"),
        ((pl.col("y") >= pl.col("lo95")) & (pl.col("y") <= pl.col("hi95"))).mean().alias("cov95"),
        pl.col("yhat").is_null().any().alias("failed"),
    )
    agg = agg.join(scales, on="unique_id", how="left")
    # A zero scale (constant history) makes MASE undefined: report null, rank by raw error.
    return agg.with_columns(
        pl.when(pl.col("mae_scale") > 0).then(pl.col("mae") / pl.col("mae_scale")).alias("mase"),
        pl.when(pl.col("mse_scale") > 0).then((pl.col("mse") / pl.col("mse_scale")).sqrt()).alias("rmsse"),
    )


def _pick(scores: pl.DataFrame, order: list[str], select_by: pl.DataFrame) -> pl.DataFrame:
    """unique_id, model: the lowest selection score per series; ties go to the earlier candidate."""
    ranked = scores.join(select_by, on="unique_id").with_columns(
        pl.when(pl.col("failed"))
        .then(float("inf"))
        .when(pl.col("metric") == "rmsse")
        .then(pl.coalesce(pl.col("rmsse"), pl.col("mse").sqrt()))
        .otherwise(pl.coalesce(pl.col("mase"), pl.col("mae")))
        .fill_null(float("inf"))
        .fill_nan(float("inf"))
        .alias("score"),
        pl.col("model")
        .replace_strict({n: i for i, n in enumerate(order)}, default=len(order))
        .alias("_order"),
    )
    return (
        ranked.sort("unique_id", "score", "_order")
        .group_by("unique_id", maintain_order=True)
        .first()
        .select("unique_id", "model")
    )


def select_models(
    long: pl.DataFrame, history: pl.DataFrame, classes: pl.DataFrame, order: list[str], m: int
) -> pl.DataFrame:
    """Choose a model per series and score it on all CV windows and on a nested hold-out.

    Hold-out: choose on every window but the last, score that choice and SeasonalNaive on the
    last one — the figure that says whether model choice beats the benchmark out of sample.
    Returns unique_id, model, mase_cv, rmsse_cv, err_sum, y_sum, cov80, cov95, snaive_mase_cv,
    mase_holdout, snaive_mase_holdout.
    """
    first_cutoff = long["cutoff"].min()
    last_cutoff = long["cutoff"].max()
    scales = seasonal_scales(history, first_cutoff, m)
    select_by = classes.select(
        "unique_id", pl.col("demand_class").replace_strict(SELECT_BY, default="mase").alias("metric")
    )
    point_scores = _scores(long, scales, ["unique_id", "model"])
    chosen = _pick(point_scores, order, select_by)
    # Coverage only for what is published: the chosen model (and the benchmark, natively).
    keep = long.join(chosen, on=["unique_id", "model"], how="semi")
    all_scores = _scores(_cross_conformal(keep), scales, ["unique_id", "model"])

    earlier = long.filter(pl.col("cutoff") < last_cutoff)
    last = _scores(long.filter(pl.col("cutoff") == last_cutoff), scales, ["unique_id", "model"])
    nested = (
        _pick(_scores(earlier, scales, ["unique_id", "model"]), order, select_by)
        if earlier.height
        else chosen
    )
    holdout = nested.join(last, on=["unique_id", "model"]).select(
        "unique_id", pl.col("mase").alias("mase_holdout")
    )
    bench_last = last.filter(pl.col("model") == BENCHMARK).select(
        "unique_id", pl.col("mase").alias("snaive_mase_holdout")
    )
    bench_all = point_scores.filter(pl.col("model") == BENCHMARK).select(
        "unique_id", pl.col("mase").alias("snaive_mase_cv")
    )
    return (
        all_scores.select(
            "unique_id",
            "model",
            pl.col("mase").alias("mase_cv"),
            pl.col("rmsse").alias("rmsse_cv"),
            "err_sum",
            "y_sum",
            "cov80",
            "cov95",
        )
        .join(bench_all, on="unique_id", how="left")
        .join(holdout, on="unique_id", how="left")
        .join(bench_last, on="unique_id", how="left")
    )


# --------------------------------------------------------------------------------------------
# fitting


def _statsforecast(models: list[Any], n_jobs: int, config: ForecastConfig) -> Any:
    from statsforecast import StatsForecast
    from statsforecast.models import SeasonalNaive

    return StatsForecast(
        models=models,
        freq="1d",
        n_jobs=n_jobs,
        fallback_model=SeasonalNaive(season_length=config.season_length),
    )


def _n_jobs(backend: Backend, df: pl.DataFrame) -> int:
    return backend.n_jobs(df["unique_id"].n_unique()) if isinstance(backend, LocalBackend) else 1


def _cross_validate(
    df: pl.DataFrame,
    models: list[Any],
    h: int,
    config: ForecastConfig,
    refit: bool,
    with_levels: bool,
    backend: Backend,
) -> pl.DataFrame:
    if not models:
        return pl.DataFrame()
    sf = _statsforecast(models, _n_jobs(backend, df), config)
    out = sf.cross_validation(
        df=backend.to_frame(df),
        h=h,
        n_windows=config.cv_windows,
        step_size=config.cv_step_days,
        level=list(CV_LEVELS) if with_levels else None,
        refit=refit,
    )
    return _long_cv(backend.collect(out), [m.alias for m in models], with_levels)


def _forecast(
    df: pl.DataFrame,
    model: Any,
    h: int,
    config: ForecastConfig,
    backend: Backend,
    offsets: pl.DataFrame | None,
) -> pl.DataFrame:
    """Forecast rows for one model: native quantiles, or the point forecast × CV ratio quantiles."""
    sf = _statsforecast([model], _n_jobs(backend, df), config)
    name = model.alias
    if offsets is None:
        out = backend.collect(sf.forecast(df=backend.to_frame(df), h=h, level=list(OUT_LEVELS)))
        return out.select(
            pl.col("unique_id").cast(pl.Int64),
            pl.col("ds").alias("day"),
            pl.col(name).alias("mean"),
            pl.col(name).alias("q50"),
            pl.col(f"{name}-hi-60").alias("q80"),
            pl.col(f"{name}-hi-90").alias("q95"),
            pl.col(f"{name}-lo-80").alias("lo80"),
            pl.col(f"{name}-hi-80").alias("hi80"),
            pl.col(f"{name}-lo-95").alias("lo95"),
            pl.col(f"{name}-hi-95").alias("hi95"),
        )
    out = backend.collect(sf.forecast(df=backend.to_frame(df), h=h))
    out = out.select(
        pl.col("unique_id").cast(pl.Int64), pl.col("ds").alias("day"), pl.col(name).alias("mean")
    )
    out = out.with_columns(pl.col("mean").cast(pl.Float64).fill_nan(None).clip(lower_bound=0.0))
    out = out.join(offsets, on="unique_id", how="left")
    return out.select(
        "unique_id",
        "day",
        "mean",
        *((pl.col("mean") * pl.col(f"r_{k}").fill_null(1.0)).alias(k) for k in ERROR_PROBS),
    )


def recent_mean_forecast(y: np.ndarray, h: int, window: int) -> dict[str, np.ndarray]:
    """The fallback for short or empty histories: flat mean of the last `window` days.

    Spread: variance max(sample variance, mean) — at least Poisson, because a few days of a
    new SKU understate how uneven demand is — with normal quantiles clipped at zero.
    """
    recent = np.asarray(y[-window:], dtype=np.float64)
    mean = float(recent.mean()) if recent.size else 0.0
    var = float(recent.var(ddof=1)) if recent.size > 1 else 0.0
    sd = math.sqrt(max(var, mean))
    flat = np.full(h, mean)
    return {
        "mean": flat,
        **{k: flat + float(stats.norm.ppf(p)) * sd for k, p in ERROR_PROBS.items() if k != "q50"},
        "q50": flat,
    }


def _fallback_forecasts(
    history: pl.DataFrame, uids: list[int], h: int, config: ForecastConfig
) -> pl.DataFrame:
    sub = history.filter(pl.col("unique_id").is_in(uids)).sort("unique_id", "ds")
    frames = []
    for (uid,), grp in sub.group_by("unique_id", maintain_order=True):
        last = grp["ds"].max()
        days = pl.date_range(last, last + timedelta(days=h), interval="1d", eager=True)[1:]
        cols = recent_mean_forecast(grp["y"].to_numpy(), h, config.fallback_days)
        frames.append(pl.DataFrame({"unique_id": [uid] * h, "day": days, **cols}))
    return pl.concat(frames)


def fit_partition(
    history: pl.DataFrame,
    meta: pl.DataFrame,
    h: int,
    config: ForecastConfig,
    backend: Backend | None = None,
    kept: pl.DataFrame | None = None,
) -> PartitionResult:
    """Cross-validate, choose and forecast every series of one partition.

    `history`: site_id, sku, date, qty (dense, daily, ending the day before the first forecast
    day); `meta`: site_id, sku, demand_class, tier. `kept`: site_id, sku, model and what else
    the choice carries (`SCORE_COLUMNS`, `RATIO_COLUMNS`, selected_as_of) for series whose
    model was chosen recently: they skip cross-validation and refit that model alone, with the
    choice's conformal ratios. Returns forecasts (site_id, sku, day, mean, q50, q80, q95, lo80,
    hi80, lo95, hi95) and per series the model, its scores and ratios (kept rows as given).
    """
    import time

    backend = backend or LocalBackend()
    keyed = meta.select("site_id", "sku", "demand_class", "tier").with_row_index("unique_id")
    keyed = keyed.with_columns(pl.col("unique_id").cast(pl.Int64))
    df = (
        history.join(keyed.select("site_id", "sku", "unique_id"), on=["site_id", "sku"])
        .select("unique_id", pl.col("date").alias("ds"), pl.col("qty").cast(pl.Float64).alias("y"))
        .sort("unique_id", "ds")
    )
    # Fit on the recent window only: older demand adds cost, not skill, at daily grain.
    df = df.group_by("unique_id", maintain_order=True).tail(config.fit_window_days)
    kept_keyed = (
        keyed.select("unique_id", "site_id", "sku").join(kept, on=["site_id", "sku"]).drop("site_id", "sku")
        if kept is not None and kept.height
        else pl.DataFrame(schema={"unique_id": pl.Int64, "model": pl.String})
    )
    seconds: dict[str, float] = {}
    forecasts: list[pl.DataFrame] = []
    chosen: list[pl.DataFrame] = []

    for tier in TIERS[1:]:
        in_tier = keyed.filter(pl.col("tier") == tier)
        if in_tier.is_empty():
            continue
        cands = candidate_models(tier, config)
        keep = kept_keyed.join(in_tier.select("unique_id"), on="unique_id", how="semi").filter(
            pl.col("model").is_in(cands.names)
        )
        fresh = in_tier.join(keep.select("unique_id"), on="unique_id", how="anti")
        picks = [keep.select("unique_id", "model")] if keep.height else []
        offsets = [keep.select("unique_id", "model", *RATIO_COLUMNS)] if keep.height else []
        if keep.height:
            chosen.append(keep)
        if fresh.height:
            t0 = time.perf_counter()
            sub = df.join(fresh.select("unique_id"), on="unique_id", how="semi")
            picked, ratios = _choose(sub, fresh, cands, h, config, backend)
            chosen.append(picked.join(ratios, on=["unique_id", "model"], how="left"))
            picks.append(picked.select("unique_id", "model"))
            offsets.append(ratios)
            seconds[f"cv_{tier}"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        all_offsets = pl.concat(offsets, how="diagonal_relaxed")
        for (name,), group in pl.concat(picks).group_by("model"):
            model = cands.by_name(str(name))
            part = df.join(group.select("unique_id"), on="unique_id", how="semi")
            own = (
                None
                if name in NATIVE_INTERVALS
                else all_offsets.filter(pl.col("model") == name).drop("model")
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                forecasts.append(_forecast(part, model, h, config, backend, own))
        seconds[f"forecast_{tier}"] = time.perf_counter() - t0

    fallback_uids = keyed.filter(pl.col("tier") == "fallback")["unique_id"].to_list()
    if fallback_uids:
        forecasts.append(_fallback_forecasts(df, fallback_uids, h, config))
        chosen.append(
            pl.DataFrame(
                {"unique_id": fallback_uids, "model": [FALLBACK] * len(fallback_uids)},
                schema={"unique_id": pl.Int64, "model": pl.String},
            )
        )

    fc = _tidy(pl.concat(forecasts, how="diagonal_relaxed"))
    series = pl.concat(chosen, how="diagonal_relaxed")
    key = keyed.select("unique_id", "site_id", "sku")
    return PartitionResult(
        forecasts=key.join(fc, on="unique_id").drop("unique_id").sort("site_id", "sku", "day"),
        series=key.join(series, on="unique_id").drop("unique_id"),
        seconds=seconds,
    )


def _choose(
    sub: pl.DataFrame,
    in_tier: pl.DataFrame,
    cands: Candidates,
    h: int,
    config: ForecastConfig,
    backend: Backend,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cross-validate a tier's candidates on `sub`: (the choice and its scores per series,
    the chosen model's CV ratio quantiles per series)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        long = pl.concat(
            [
                _cross_validate(sub, cands.native, h, config, refit=True, with_levels=True, backend=backend),
                _cross_validate(sub, cands.plain, h, config, refit=True, with_levels=False, backend=backend),
                _cross_validate(
                    sub, cands.forward, h, config, refit=False, with_levels=True, backend=backend
                ),
            ],
            how="diagonal_relaxed",
        )
    picked = select_models(
        long, sub, in_tier.select("unique_id", "demand_class"), cands.names, config.season_length
    )
    ratios = ratio_quantiles(
        long.join(picked.select("unique_id", "model"), on=["unique_id", "model"], how="semi")
    )
    return picked, ratios


def _tidy(fc: pl.DataFrame) -> pl.DataFrame:
    """Float64, no NaN, non-negative and ordered quantiles (lo95 ≤ lo80 ≤ q50 ≤ q80 ≤ q95, lo ≤ hi)."""
    out = fc.with_columns(
        pl.col(c).cast(pl.Float64).fill_nan(None).fill_null(0.0).clip(lower_bound=0.0)
        for c in FORECAST_COLUMNS
    )
    return (
        out.with_columns(
            pl.min_horizontal("lo80", "q50").alias("lo80"), pl.max_horizontal("hi80", "q50").alias("hi80")
        )
        .with_columns(
            pl.min_horizontal("lo95", "lo80").alias("lo95"),
            pl.max_horizontal("hi95", "hi80").alias("hi95"),
            pl.max_horizontal("q80", "q50").alias("q80"),
        )
        .with_columns(pl.max_horizontal("q95", "q80").alias("q95"), pl.col("day").cast(pl.Date))
        .select("unique_id", "day", *FORECAST_COLUMNS)
    )


# --------------------------------------------------------------------------------------------
# run-level helpers


def needs_refresh(last_fitted_at: datetime | None, now: datetime, max_age_hours: float, told: bool) -> bool:
    """The 15-minute cycle refits only when told to or when the latest forecasts are too old.

    Forecasts exactly `max_age_hours` old are due: a daily cycle at the same hour refits every day,
    not every other day."""
    if told or last_fitted_at is None:
        return True
    return (now - last_fitted_at).total_seconds() >= max_age_hours * 3600


def refit_despite_budget(
    fitted_for: date, horizon_days: int, data_as_of: datetime, now: datetime, max_age_hours: float, plan_days: int
) -> str | None:
    """Why a due refit must run although the last one overran the cycle's forecast budget, or None
    when the cycle may plan on the cached run (forecasts for `fitted_for` onwards, `horizon_days` long,
    on data as of `data_as_of`).

    Skipping is meant for a day: past twice the policy's maximum age, or once the cached forecasts
    no longer reach the end of the `plan_days`-day plan (beyond it the plan would see no demand at
    all and stop replenishing), a late plan is better than a plan on forecasts that have run out."""
    if (now - data_as_of).total_seconds() >= 2 * max_age_hours * 3600:
        hours = (now - data_as_of).total_seconds() / 3600
        return f"is {hours:.0f} h old, over twice the {max_age_hours:.0f} h maximum age"
    covered = (fitted_for - now.date()).days + horizon_days
    if covered < plan_days:
        return f"covers only {max(covered, 0)} of the plan's {plan_days} days"
    return None


def partition_series(meta: pl.DataFrame, n_partitions: int) -> list[pl.DataFrame]:
    """Split series into `n_partitions` groups with similar cost (tiers spread round-robin).

    Sorting by tier before dealing out keeps every partition's share of expensive series equal,
    so one partition does not hold all the AutoARIMA fits.
    """
    n = max(1, min(n_partitions, meta.height))
    dealt = (
        meta.sort("tier", "site_id", "sku")
        .with_row_index("_i")
        .with_columns((pl.col("_i") % n).alias("_part"))
    )
    return [p.drop("_i", "_part") for _, p in dealt.group_by("_part", maintain_order=True)]


def default_partitions(n_series: int, series_per_partition: int = 5_000) -> int:
    """Enough partitions that each is a few seconds of work, few enough that task overhead is nil."""
    return max(1, math.ceil(n_series / series_per_partition))


MapFn = Callable[[Callable[[pl.DataFrame], PartitionResult], list[pl.DataFrame]], list[PartitionResult]]


def sequential_map(
    fn: Callable[[pl.DataFrame], PartitionResult], parts: list[pl.DataFrame]
) -> list[PartitionResult]:
    return [fn(p) for p in parts]


# --------------------------------------------------------------------------------------------
# accuracy


def accuracy_summary(series: pl.DataFrame) -> pl.DataFrame:
    """CV accuracy overall and by demand class: the chosen models against SeasonalNaive.

    Columns: demand_class ('all' first), n_series, n_scored, mase, snaive_mase, rmsse, bias,
    cov80, cov95, mase_holdout, snaive_mase_holdout, beats_snaive_share. MASE/RMSSE are means
    of per-series values (series with an undefined scale left out); bias is pooled
    Σ(forecast − actual) / Σ actual; coverage is the share of CV days inside the interval.
    `*_holdout` score a choice made without the last window on that window (out of sample).
    """
    scored = series.filter(pl.col("model") != FALLBACK)

    def agg(frame: pl.DataFrame) -> list[pl.Expr]:
        return [
            pl.len().alias("n_series"),
            pl.col("mase_cv").is_not_null().sum().alias("n_scored"),
            pl.col("mase_cv").mean().alias("mase"),
            pl.col("snaive_mase_cv").mean().alias("snaive_mase"),
            pl.col("rmsse_cv").mean().alias("rmsse"),
            (pl.col("err_sum").sum() / pl.col("y_sum").sum()).alias("bias"),
            pl.col("cov80").mean().alias("cov80"),
            pl.col("cov95").mean().alias("cov95"),
            pl.col("mase_holdout").mean().alias("mase_holdout"),
            pl.col("snaive_mase_holdout").mean().alias("snaive_mase_holdout"),
            (pl.col("mase_holdout") < pl.col("snaive_mase_holdout")).mean().alias("beats_snaive_share"),
        ]

    both = pl.col("mase_holdout").is_not_null() & pl.col("snaive_mase_holdout").is_not_null()
    # Compare like with like: a series enters the hold-out means only if both scores exist.
    scored = scored.with_columns(
        pl.when(both).then(pl.col("mase_holdout")).alias("mase_holdout"),
        pl.when(both).then(pl.col("snaive_mase_holdout")).alias("snaive_mase_holdout"),
    )
    overall = scored.select(pl.lit("all").alias("demand_class"), *agg(scored))
    by_class = scored.group_by("demand_class").agg(*agg(scored)).sort("demand_class")
    fallback = series.filter(pl.col("model") == FALLBACK)
    out = pl.concat([overall, by_class], how="diagonal_relaxed")
    if fallback.height:
        out = pl.concat(
            [out, pl.DataFrame({"demand_class": ["fallback"], "n_series": [fallback.height]})],
            how="diagonal_relaxed",
        )
    return out.with_columns(pl.col("n_series").cast(pl.Int64), pl.col("n_scored").cast(pl.Int64))
