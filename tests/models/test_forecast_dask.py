"""StatsForecast's own Dask backend (through Fugue) against the in-process backend, on a real
`distributed.LocalCluster`: the same series, models and forecasts (float32 on the Dask path)."""

from __future__ import annotations

import logging
import warnings

import polars as pl
import pytest

from ballast.models import forecast as fc
from ballast.tasks.forecast import prepare_series
from tests.io.test_forecast_store import items
from tests.models.test_forecast import AS_OF, CONFIG, H, synthetic_demand


def test_dask_backend_refuses_to_start_a_cluster_of_its_own() -> None:
    frame = pl.DataFrame({"unique_id": [0], "ds": [AS_OF], "y": [1.0]})
    with pytest.raises(RuntimeError, match="needs a running dask.distributed Client"):
        fc.DaskBackend().to_frame(frame)


@pytest.mark.slow
def test_fit_partition_on_the_dask_backend_matches_the_local_backend() -> None:
    from distributed import Client, LocalCluster, get_task_stream

    # given: smooth, intermittent, new and dead series; the rich tier (AutoETS/AutoTheta, fitted
    # once and run `forward` over the CV windows) included
    demand = synthetic_demand()
    dense, meta = prepare_series(demand, items(demand), AS_OF, H, CONFIG)
    assert {"intermittent", "cheap", "rich", "fallback"} <= set(meta["tier"])
    local = fc.fit_partition(dense, meta, H, CONFIG, fc.LocalBackend())

    # when: the same partition through StatsForecast's Dask backend on 2 worker processes
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.WARNING) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", FutureWarning)  # pandas groupby.apply notice from dask, via Fugue
        on_dask = fc.fit_partition(dense, meta, H, CONFIG, fc.DaskBackend(npartitions=2))
        workers = set(client.scheduler_info()["workers"])

    # then: the work ran on both workers of the cluster
    assert stream.data and {r["worker"] for r in stream.data} == workers
    # and the same columns, series and chosen models
    assert on_dask.forecasts.schema == local.forecasts.schema
    assert on_dask.series.schema == local.series.schema
    a, b = local.forecasts.sort("site_id", "sku", "day"), on_dask.forecasts.sort("site_id", "sku", "day")
    assert a.select("site_id", "sku", "day").equals(b.select("site_id", "sku", "day"))
    sa, sb = local.series.sort("site_id", "sku"), on_dask.series.sort("site_id", "sku")
    assert sa.select("site_id", "sku", "model").equals(sb.select("site_id", "sku", "model"))
    # and forecasts and scores equal but for float32 rounding (the Fugue output schema is float32)
    for col in fc.FORECAST_COLUMNS:
        assert b[col].to_numpy() == pytest.approx(a[col].to_numpy(), rel=1e-6, abs=1e-5), col
    for col in sa.columns:
        if sa[col].dtype.is_float():
            assert sb[col].to_numpy() == pytest.approx(sa[col].to_numpy(), rel=1e-5, abs=1e-6, nan_ok=True), col
