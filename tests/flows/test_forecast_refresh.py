from datetime import UTC, datetime, timedelta

import duckdb
import polars as pl
import pytest

from ballast.models import forecast as fc
from ballast.models.policy import Policy
from ballast.settings import Settings
from ballast.tasks.forecast import PartitionJob, fit_partition_task, latest_or_refresh, prepare_series
from tests.io.test_forecast_store import CONFIG, LANES, SITES, items
from tests.models.test_forecast import AS_OF, synthetic_demand


def _reader(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, pl.DataFrame]:
    demand = synthetic_demand().filter(pl.col("sku").is_in(["SM0", "SM1", "IN0", "IN1", "NEW"]))
    return {"demand": demand, "sites": SITES, "items": items(demand), "lanes": LANES}


def test_partition_task_runs_without_prefect() -> None:
    demand = synthetic_demand()
    dense, meta = prepare_series(demand, items(demand), AS_OF, 10, CONFIG)
    result = fit_partition_task.fn(PartitionJob(dense, meta.head(4), 10, CONFIG))
    assert result.forecasts.select("site_id", "sku").n_unique() == 4


@pytest.mark.slow
def test_flow_refreshes_and_records_an_mlflow_run(prefect_harness, ballast_home) -> None:
    import mlflow

    from ballast.flows.forecast_refresh import forecast_refresh

    # when: the flow runs twice on unchanged history
    as_of = datetime.combine(AS_OF, datetime.min.time(), tzinfo=UTC) + timedelta(hours=6)
    first = forecast_refresh(as_of=as_of, reader=_reader, n_partitions=2)
    second = forecast_refresh(as_of=as_of, reader=_reader)

    # then: everything fitted once, nothing the second time
    assert first["n_series"] == 5
    assert first["n_refit"] == 5
    assert second["n_refit"] == 0
    assert first["accuracy"]["mase_holdout"] < first["accuracy"]["snaive_mase_holdout"]

    # and the MLflow run holds params, metrics by class, the dataset digest and the artifacts
    settings = Settings()
    run = mlflow.get_run(first["run_id"])
    assert run.data.params["config.season_length"] == "7"
    for key in (
        "mase",
        "rmsse",
        "bias",
        "cov80",
        "cov95",
        "mase_holdout",
        "snaive_mase_holdout",
        "mase_smooth",
        "cov95_intermittent",
        "n_model_RecentMean",
    ):
        assert key in run.data.metrics, key
    inputs = run.inputs.dataset_inputs
    assert inputs
    assert inputs[0].dataset.name == "demand_history"
    assert inputs[0].dataset.digest
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(first["run_id"], "forecast")}
    assert {
        "forecast/forecasts.parquet",
        "forecast/series.parquet",
        "forecast/targets.parquet",
        "forecast/accuracy.json",
    } <= names
    assert first["forecaster"] == "ballast-forecaster/1"
    assert settings.db_path.exists()


def test_cycle_uses_latest_forecasts_until_too_old(tmp_path) -> None:
    from ballast.tasks.forecast import run_forecast_refresh

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    settings = Settings(home=tmp_path)
    policy = Policy(version="t", author="t", horizon_days=5, forecasting={"max_age_hours": 12.0})
    inputs = _reader(con, datetime.now(UTC))
    calls = []

    def refresh():
        calls.append(1)
        return run_forecast_refresh(
            con, inputs["demand"], SITES, inputs["items"], LANES, policy, settings, AS_OF, config=CONFIG
        )

    now = datetime.now(UTC)
    run_id, first = latest_or_refresh(con, policy, now, refit=False, refresh=refresh)  # nothing yet: fits
    again_id, again = latest_or_refresh(con, policy, now + timedelta(hours=1), refit=False, refresh=refresh)
    assert len(calls) == 1
    assert again_id == run_id
    assert again.height == first.height
    latest_or_refresh(con, policy, now + timedelta(hours=13), refit=False, refresh=refresh)  # too old
    latest_or_refresh(con, policy, now + timedelta(hours=13), refit=True, refresh=refresh)  # told to
    assert len(calls) == 3
    assert fc.needs_refresh(now, now + timedelta(hours=13), 12.0, told=False)
    con.close()
