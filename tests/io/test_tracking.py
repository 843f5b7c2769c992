import multiprocessing as mp
from pathlib import Path

import pytest

from ballast.io import tracking
from ballast.settings import Settings


def _init_in_child(home: str, barrier) -> str:  # noqa: ANN001
    settings = Settings(home=Path(home))
    barrier.wait()  # every process touches the fresh store at the same moment
    tracking.init_tracking(settings)
    return tracking.ensure_experiment(settings, tracking.experiment_name(settings, "forecast"))


@pytest.mark.slow
def test_concurrent_first_use_of_a_fresh_store(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(4)
        with ctx.Pool(4) as pool:
            ids = pool.starmap(_init_in_child, [(str(tmp_path), barrier)] * 4)
    assert len(set(ids)) == 1  # all four found or created the same experiment, none crashed
    assert (tmp_path / "data" / "mlflow.db").exists()


def test_sqlite_path_and_artifacts_beside_the_store(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert tracking.sqlite_path(settings.tracking_uri) == (tmp_path / "data" / "mlflow.db").resolve()
    assert tracking.sqlite_path("http://mlflow:5000") is None
    assert tracking.artifact_location(settings).endswith("/data/mlartifacts")


def test_run_in_experiment_and_champion_is_reversible(tmp_path: Path) -> None:
    import mlflow

    settings = Settings(home=tmp_path, mlflow_experiment="exp")
    with tracking.start_run(settings, kind="forecast", run_name="r") as run:
        mlflow.log_metric("m", 1.0)
        v1 = tracking.register_forecaster(settings, {"season_length": 7}, "hash-1", promote=False)
        v1_again = tracking.register_forecaster(settings, {"season_length": 7}, "hash-1", promote=False)
        v2 = tracking.register_forecaster(settings, {"season_length": 14}, "hash-2", promote=True)
    exp = mlflow.get_experiment(run.info.experiment_id)
    assert exp.name == "exp-forecast"
    assert exp.artifact_location.startswith((tmp_path / "data").resolve().as_uri())
    assert v1 == v1_again == (tracking.FORECASTER_MODEL, "1")
    assert v2[1] == "2"
    assert str(tracking.champion(settings).version) == "2"
    assert tracking.champion_config(settings) == ({"season_length": 14}, "2")
    # roll back: the alias moves, nothing is deleted
    tracking.set_champion(settings, "1")
    assert tracking.champion_config(settings) == ({"season_length": 7}, "1")
