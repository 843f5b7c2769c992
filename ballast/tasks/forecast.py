"""Forecast refresh: the shared work (`run_forecast_refresh`) and its thin Prefect tasks.

`run_forecast_refresh` is what both the CLI and the `forecast_refresh` flow call. It prepares
every series (densify, classify, fingerprint), refits only the series whose (fingerprint,
config) is not in the cache — all of them with `force` — fans the refits out over partitions
through `map_fn`, stores the result in DuckDB and records the refresh as an MLflow run whose
id is the forecast run id plans cite. The flow passes a `map_fn` that maps a Prefect task
over the partitions (one task per partition, not per series: ~15 ms of overhead each).
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from ballast.io import forecast_store, tracking
from ballast.models import demand_class as dc
from ballast.models import forecast as fc
from ballast.models.policy import Policy
from ballast.models.targets import compute_targets, forecast_horizon
from ballast.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PartitionJob:
    """One partition of series to refit: their dense history, their meta, horizon and config."""

    history: pl.DataFrame
    meta: pl.DataFrame
    horizon: int
    config: fc.ForecastConfig
    workers: int = 1
    kept: pl.DataFrame | None = None  # recent model choices of these series (`fc.fit_partition`)


JobMap = Callable[[list[PartitionJob]], list[fc.PartitionResult]]


def run_job(job: PartitionJob, backend: fc.Backend | None = None) -> fc.PartitionResult:
    """Fit one partition (the unit of fan-out)."""
    return fc.fit_partition(
        job.history,
        job.meta,
        job.horizon,
        job.config,
        backend or fc.LocalBackend(workers=job.workers),
        kept=job.kept,
    )


def sequential_jobs(jobs: list[PartitionJob]) -> list[fc.PartitionResult]:
    return [run_job(j) for j in jobs]


def backend_jobs(backend: fc.Backend) -> JobMap:
    """Fit the partitions one after another here, each through `backend` (e.g. StatsForecast's Dask
    backend, which spreads the series of one partition over the cluster)."""

    def run(jobs: list[PartitionJob]) -> list[fc.PartitionResult]:
        return [run_job(j, backend) for j in jobs]

    return run


@dataclass(frozen=True)
class RefreshResult:
    """What a refresh produced; `run_id` is the MLflow run id (and the `fc_runs` key)."""

    run_id: str
    as_of: date
    horizon_days: int
    forecasts: pl.DataFrame
    series: pl.DataFrame
    targets: pl.DataFrame
    accuracy: pl.DataFrame
    n_series: int
    n_refit: int
    model_name: str
    model_version: str
    seconds: dict[str, float] = field(default_factory=dict)


def prepare_series(
    demand: pl.DataFrame, items: pl.DataFrame, as_of: date, horizon: int, config: fc.ForecastConfig
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(dense history, per-series meta with classes, tier, fingerprint and config hash)."""
    dense = dc.densify(demand, as_of, config.fit_window_days)
    stats = dc.series_stats(dense, config.min_history_days)
    abc = dc.abc_classes(dense, items)
    cost = items.select("sku", "unit_cost")
    meta = (
        stats.join(abc.select("sku", "sku_class"), on="sku", how="left")
        .join(cost, on="sku", how="left")
        .with_columns(
            (pl.col("total_qty") * pl.col("unit_cost").fill_null(0.0)).alias("demand_value"),
            pl.col("sku_class").fill_null("C"),
        )
        .drop("unit_cost")
        .join(dc.fingerprints(dense), on=["site_id", "sku"])
    )
    meta = fc.assign_tiers(meta, horizon, config)
    hashes = {t: config.digest(horizon, t) for t in fc.TIERS}
    meta = meta.with_columns(pl.col("tier").replace_strict(hashes).alias("config_hash"))
    return dense, meta


def demand_digest(meta: pl.DataFrame) -> str:
    """One digest of the whole demand history seen: the sorted per-series fingerprints."""
    h = hashlib.sha256()
    for site, sku, fp in meta.sort("site_id", "sku").select("site_id", "sku", "fingerprint").iter_rows():
        h.update(f"{site}\x1f{sku}\x1f{fp}\n".encode())
    return h.hexdigest()


def resolve_config(settings: Settings, config: fc.ForecastConfig | None) -> fc.ForecastConfig:
    """An explicit config wins; else the registered champion's; else the default."""
    if config is not None:
        return config
    found = tracking.champion_config(settings)
    if found is None:
        return fc.ForecastConfig()
    return fc.ForecastConfig.from_dict(found[0])


def _metrics(accuracy: pl.DataFrame, series: pl.DataFrame) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in accuracy.iter_rows(named=True):
        cls = row["demand_class"]
        for key, value in row.items():
            if key == "demand_class" or value is None:
                continue
            out[f"{key}_{cls}" if cls != "all" else key] = float(value)
    for model, n in series.group_by("model").len().iter_rows():
        out[f"n_model_{model}"] = float(n)
    for cls, n in series.group_by("demand_class").len().iter_rows():
        out[f"n_class_{cls}"] = float(n)
    return {k: v for k, v in out.items() if v == v}  # MLflow rejects NaN


def run_forecast_refresh(
    con: duckdb.DuckDBPyConnection,
    demand: pl.DataFrame,
    sites: pl.DataFrame,
    items: pl.DataFrame,
    lanes: pl.DataFrame,
    policy: Policy,
    settings: Settings,
    as_of: date,
    force: bool = False,
    *,
    config: fc.ForecastConfig | None = None,
    promote: bool = False,
    n_partitions: int | None = None,
    min_partitions: int = 1,
    workers: int = 1,
    map_fn: JobMap = sequential_jobs,
    now: datetime | None = None,
    data_as_of: datetime | None = None,
    origin: str = "live",
    demand_files_sha256: str | None = None,
) -> RefreshResult:
    """Forecast every site×SKU series for `as_of`, refitting only what changed (all if `force`).

    `n_partitions` fixes the fan-out; by default ~5,000 series a partition, but at least
    `min_partitions` (a cluster's worker count) so every worker gets some.
    """
    import time

    import mlflow

    started = now or datetime.now(UTC)
    seconds: dict[str, float] = {}
    tracking.init_tracking(settings)
    forecast_store.ensure_tables(con)
    config = resolve_config(settings, config)
    t0 = time.perf_counter()
    demand_sites = demand["site_id"].unique().to_list()
    horizon = forecast_horizon(policy, sites, lanes, demand_sites)
    dense, meta = prepare_series(demand, items, as_of, horizon, config)
    seconds["prepare"] = time.perf_counter() - t0

    keys = meta.select("site_id", "sku", "fingerprint", "config_hash")
    hits = pl.DataFrame() if force else forecast_store.cached(con, keys)
    hit_keys = (
        hits.select("site_id", "sku")
        if hits.height
        else pl.DataFrame(schema={"site_id": pl.String, "sku": pl.String})
    )
    todo = meta.join(hit_keys, on=["site_id", "sku"], how="anti")
    kept = kept_choices(con, todo, as_of, config, force)
    logger.info(
        "forecast %s: %d series, %d to refit (%d keeping a model chosen in the last %d days), horizon %d days",
        as_of,
        meta.height,
        todo.height,
        kept.height,
        config.reselect_days,
        horizon,
    )

    t0 = time.perf_counter()
    results: list[fc.PartitionResult] = []
    if todo.height:
        n = n_partitions or max(fc.default_partitions(todo.height), min_partitions)
        jobs = []
        for part in fc.partition_series(todo, n):
            keys = part.select("site_id", "sku")
            history = dense.join(keys, on=["site_id", "sku"], how="semi")
            own = kept.join(keys, on=["site_id", "sku"], how="semi")
            jobs.append(PartitionJob(history, part, horizon, config, workers, own))
        results = map_fn(jobs)
    seconds["fit"] = time.perf_counter() - t0

    with tracking.start_run(settings, kind="forecast", run_name=f"forecast-{as_of}") as run:
        run_id = run.info.run_id
        fitted_at = datetime.now(UTC)
        fresh = (
            pl.concat([r.series for r in results], how="diagonal_relaxed")
            if results
            else pl.DataFrame(schema={"site_id": pl.String, "sku": pl.String, "model": pl.String})
        )
        fresh_fc = pl.concat([r.forecasts for r in results]) if results else pl.DataFrame()
        fitted = (
            todo.select("site_id", "sku", "fingerprint", "config_hash", "tier", "demand_class")
            .join(fresh, on=["site_id", "sku"], how="left")
            .with_columns(pl.lit(run_id).alias("run_id"), pl.lit(fitted_at).alias("fitted_at"))
        )
        if "selected_as_of" not in fitted.columns:
            fitted = fitted.with_columns(pl.lit(None, dtype=pl.Date).alias("selected_as_of"))
        # A choice made by this run's cross-validation (or a fallback fit) is dated today.
        fitted = fitted.with_columns(pl.col("selected_as_of").fill_null(as_of))
        for col in forecast_store.SERIES_COLUMNS:
            if col not in fitted.columns:
                fitted = fitted.with_columns(pl.lit(None, dtype=pl.Float64).alias(col))
        n_chosen = fitted.filter(
            (pl.col("selected_as_of") == as_of) & (pl.col("model") != fc.FALLBACK)
        ).height
        n_kept = fitted.filter(pl.col("selected_as_of") < as_of).height
        if fresh_fc.height:
            fresh_fc = fresh_fc.with_columns(pl.lit(run_id).alias("run_id"))
        run_series = meta.select(
            pl.lit(run_id).alias("run_id"), "site_id", "sku", "fingerprint", "config_hash", "sku_class"
        ).join(todo.select("site_id", "sku", pl.lit(True).alias("refit")), on=["site_id", "sku"], how="left")
        run_series = run_series.with_columns(pl.col("refit").fill_null(False))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cloudpickle and type-hint notices from pyfunc logging
            model_name, model_version = tracking.register_forecaster(
                settings, asdict(config), config.digest(horizon, "all"), promote=promote
            )
        row = {
            "run_id": run_id,
            "as_of": as_of,
            "started_at": started,
            "finished_at": datetime.now(UTC),
            "horizon_days": horizon,
            "n_series": meta.height,
            "n_refit": todo.height,
            "forced": force,
            "model_name": model_name,
            "model_version": model_version,
            "config_json": json.dumps(asdict(config), sort_keys=True),
            "demand_digest": demand_digest(meta),
            # The cycle clock the data was read at (backfills find forecasts "as known at T" by it).
            "data_as_of": data_as_of,
            "origin": origin,
            "demand_files_sha256": demand_files_sha256,
        }
        forecast_store.save_run(con, row, fitted, fresh_fc, run_series)
        forecasts = forecast_store.run_forecasts(con, run_id)
        series = forecast_store.run_series(con, run_id)
        accuracy = fc.accuracy_summary(series)
        targets = compute_targets(forecasts, series, sites, lanes, policy)

        mlflow.log_params(
            {
                **{f"config.{k}": v for k, v in asdict(config).items()},
                "as_of": str(as_of),
                "horizon_days": horizon,
                "force": force,
                "policy_version": policy.version,
                "forecaster": f"{model_name}/{model_version}",
            }
        )
        metrics = _metrics(accuracy, series)
        metrics |= {
            "n_series": float(meta.height),
            "n_refit": float(todo.height),
            "n_series_chosen_by_cv": float(n_chosen),
            "n_series_keeping_choice": float(n_kept),
        }
        metrics |= {f"seconds_{k}": v for k, v in seconds.items()}
        for r in results:
            for k, v in r.seconds.items():
                metrics[f"seconds_{k}"] = metrics.get(f"seconds_{k}", 0.0) + v
        mlflow.log_metrics(metrics)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # source-type ambiguity notice for a local path
            dataset = mlflow.data.from_polars(
                meta.select(
                    "site_id",
                    "sku",
                    "fingerprint",
                    pl.col("n_days").cast(pl.Int64),
                    "demand_class",
                    "sku_class",
                ),
                source=str(settings.db_path),
                name="demand_history",
                digest=row["demand_digest"][:16],
            )
            mlflow.log_input(dataset, context="training")
        mlflow.set_tags({"as_of": str(as_of), "kind": "forecast", "forecaster_version": model_version})
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            forecasts.write_parquet(out / "forecasts.parquet")
            series.write_parquet(out / "series.parquet")
            targets.write_parquet(out / "targets.parquet")
            (out / "accuracy.json").write_text(json.dumps(accuracy.to_dicts(), indent=2, default=str))
            mlflow.log_artifacts(str(out), artifact_path="forecast")

    return RefreshResult(
        run_id=run_id,
        as_of=as_of,
        horizon_days=horizon,
        forecasts=forecasts,
        series=series,
        targets=targets,
        accuracy=accuracy,
        n_series=meta.height,
        n_refit=todo.height,
        model_name=model_name,
        model_version=model_version,
        seconds=seconds,
    )


def kept_choices(
    con: duckdb.DuckDBPyConnection, todo: pl.DataFrame, as_of: date, config: fc.ForecastConfig, force: bool
) -> pl.DataFrame:
    """The recent model choices the series to refit keep (`fc.ForecastConfig.reselect_days`).

    A choice counts when it was made for an as-of date in the last `reselect_days` days up to
    `as_of` (never a later one: a backfill must not see a choice made on newer data), under the
    same config and tier (the config hash). `force` and `reselect_days` 0 keep none.
    """
    if force or config.reselect_days <= 0 or todo.is_empty():
        return forecast_store.recent_choices(con, todo.clear(), as_of, as_of)
    since = as_of - timedelta(days=config.reselect_days - 1)
    return forecast_store.recent_choices(con, todo.select("site_id", "sku", "config_hash"), since, as_of)


def latest_or_refresh(
    con: duckdb.DuckDBPyConnection,
    policy: Policy,
    now: datetime,
    refit: bool,
    refresh: Callable[[], RefreshResult],
) -> tuple[str, pl.DataFrame]:
    """What the 15-minute cycle calls: (run id, forecasts from today on), refreshing only if
    told to or if the forecasts in force at `now` are older than `policy.forecasting.max_age_hours`
    (age on the cycle's clock, so a replay of `now` picks the same run)."""
    run = forecast_store.run_in_force(con, now)
    last = run["data_as_of"] if run else None
    if fc.needs_refresh(last, now, policy.forecasting.max_age_hours, refit):
        result = refresh()
        return result.run_id, result.forecasts.filter(pl.col("day") >= now.date())
    assert run is not None
    return run["run_id"], forecast_store.run_forecasts(con, run["run_id"], now.date())


# --------------------------------------------------------------------------------------------
# Prefect tasks


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a run; the module logger when a task is called with `.fn()`."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


@task(name="fit-forecast-partition", retries=1, cache_policy=NO_CACHE, persist_result=False)
def fit_partition_task(job: PartitionJob) -> fc.PartitionResult:
    """Fit one partition of series."""
    log = _run_logger()
    result = run_job(job)
    log.info(
        "partition: %d series refit in %s",
        job.meta.height,
        {k: round(v, 1) for k, v in result.seconds.items()},
    )
    return result


def prefect_map(jobs: list[PartitionJob]) -> list[fc.PartitionResult]:
    """Map the partition task over the jobs under the flow's task runner; wait for all."""
    futures = fit_partition_task.map(jobs)
    return [f.result() for f in futures]


@task(name="read-forecast-inputs", cache_policy=NO_CACHE, persist_result=False)
def read_inputs_task(
    reader: Callable[[duckdb.DuckDBPyConnection, datetime], dict[str, pl.DataFrame]],
    con: duckdb.DuckDBPyConnection,
    as_of: datetime,
) -> dict[str, pl.DataFrame]:
    """Read demand, sites, items and lanes as of `as_of` with the given reader."""
    log = _run_logger()
    inputs = reader(con, as_of)
    log.info("inputs: %s", {k: v.height for k, v in inputs.items()})
    return inputs


def summary(result: RefreshResult) -> dict[str, Any]:
    """A small JSON-able summary (flow return value, CLI output)."""
    acc = result.accuracy.filter(pl.col("demand_class") == "all").to_dicts()
    return {
        "run_id": result.run_id,
        "as_of": str(result.as_of),
        "horizon_days": result.horizon_days,
        "n_series": result.n_series,
        "n_refit": result.n_refit,
        "forecaster": f"{result.model_name}/{result.model_version}",
        "accuracy": acc[0] if acc else {},
    }
