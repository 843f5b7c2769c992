"""MLflow for ballast: one safe initialisation of the store, runs in the ballast experiments,
and the registered forecaster model whose `champion` alias says which forecaster is in force.

A fresh sqlite store is created by running its migrations on first use, and several processes
doing that at once crash (MEASURED.md: 4 of 4). `init_tracking` therefore holds an exclusive
OS lock on `<db>.lock`, beside the database, while it first touches the store in this process;
the others wait and then find the schema in place.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

from ballast.settings import Settings

logger = logging.getLogger(__name__)

FORECASTER_MODEL: Final = "ballast-forecaster"
CHAMPION: Final = "champion"
_initialised: set[str] = set()
# MLflow retries an unreachable server with exponential backoff for ~4 minutes by default; a
# 15-minute cycle must fail well inside its publish budget. Set these variables to override.
HTTP_DEFAULTS: Final = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")


class TrackingUnavailable(RuntimeError):
    """The MLflow store cannot be reached or written, so no run (and nothing needing one) was started."""


def redact(text: str) -> str:
    """`text` with the credentials of every URL in it masked: `http://user:pw@host` → `http://***@host`."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///...` URI, else None."""
    prefix = "sqlite:///"  # sqlite:///rel/path.db is relative, sqlite:////abs/path.db absolute
    if not uri.startswith(prefix):
        return None
    rest = unquote(uri[len(prefix) :].split("?", 1)[0])
    return Path(rest) if rest else None


def artifact_location(settings: Settings) -> str | None:
    """Where a new experiment keeps artifacts: beside a local sqlite store, else the server decides.

    Without this MLflow would write `./mlruns` under whatever directory the process runs in.
    """
    db = sqlite_path(settings.tracking_uri)
    if db is None:
        return None
    return (db.parent / "mlartifacts").resolve().as_uri()


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl.flock) on `path`, created if needed; released on exit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _store_lock(settings: Settings) -> Path | None:
    db = sqlite_path(settings.tracking_uri)
    return db.with_name(db.name + ".lock") if db is not None else None


def init_tracking(settings: Settings) -> None:
    """Point MLflow (tracking and registry) at `settings.tracking_uri`; create the store once, safely."""
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if uri in _initialised:
        return
    lock = _store_lock(settings)
    if lock is None:
        _initialised.add(uri)
        return
    with file_lock(lock):
        # Both stores share the file; touching each runs (or checks) its migrations under the lock.
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_experiments(max_results=1)
        client.search_registered_models(max_results=1)
    _initialised.add(uri)


def ensure_experiment(settings: Settings, name: str) -> str:
    """The id of experiment `name`, created (with a local artifact root) if absent."""
    import mlflow
    from mlflow.exceptions import MlflowException

    init_tracking(settings)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    lock = _store_lock(settings)
    with file_lock(lock) if lock is not None else _nullcontext():
        found = mlflow.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return mlflow.create_experiment(name, artifact_location=artifact_location(settings))
        except MlflowException:  # created meanwhile by a process on another host (server store)
            found = mlflow.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id


@contextmanager
def _nullcontext() -> Iterator[None]:
    yield


def experiment_name(settings: Settings, kind: str | None = None) -> str:
    """`<experiment>` for plans, `<experiment>-<kind>` for other run kinds (e.g. forecast)."""
    return settings.mlflow_experiment if not kind else f"{settings.mlflow_experiment}-{kind}"


@contextmanager
def start_run(
    settings: Settings,
    kind: str | None = None,
    run_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[Any]:
    """An MLflow run in the ballast experiment (`kind` selects `<experiment>-<kind>`).

    Raises `TrackingUnavailable` before anything is written when the store cannot be reached.
    """
    import mlflow

    try:
        exp_id = ensure_experiment(settings, experiment_name(settings, kind))
        active = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags)
    except Exception as exc:  # any failure to reach or write the store: requests, sqlite, OS errors
        # `from None`: MLflow's own message carries the store URI with any credentials in it.
        raise TrackingUnavailable(
            f"cannot start an MLflow run in {redact(settings.tracking_uri)} ({type(exc).__name__}: "
            f"{redact(str(exc))[:500]}); nothing was written — lineage is recorded before a plan is published. "
            "Check BALLAST_MLFLOW_TRACKING_URI and that the store is up."
        ) from None
    with active as run:
        yield run


# --------------------------------------------------------------------------------------------
# the registered forecaster


try:  # the class must exist at import time for MLflow to load it back; MLflow is a dependency
    from mlflow.pyfunc import PythonModel as _PythonModel
except ImportError:  # pragma: no cover
    _PythonModel = object  # type: ignore[assignment,misc]


# MLflow warns at class creation that predict() has no type hints; it has none on purpose.
with warnings.catch_warnings():
    warnings.simplefilter("ignore")

    class ForecasterModel(_PythonModel):  # type: ignore[misc,valid-type]
        """The forecasting configuration as an MLflow model: predict() forecasts a demand frame.

        Input: a frame with date, site_id, sku, qty (and optionally as_of/horizon params). Output:
        the forecast frame. The registry versions of this model are what plans cite.
        """

        def load_context(self, context: Any) -> None:
            from ballast.models.forecast import ForecastConfig

            with open(context.artifacts["config"]) as fh:
                self.config = ForecastConfig.from_dict(json.load(fh))

        # No type hints on predict: MLflow would try to derive a schema from them and warn.
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            import polars as pl

            from ballast.models import demand_class as dc
            from ballast.models import forecast as fc

            params = params or {}
            demand = pl.from_pandas(model_input) if not isinstance(model_input, pl.DataFrame) else model_input
            demand = demand.with_columns(pl.col("date").cast(pl.Date))
            as_of = params.get("as_of") or (demand["date"].max() + __import__("datetime").timedelta(days=1))
            h = int(params.get("horizon", 14))
            dense = dc.densify(demand, as_of, self.config.fit_window_days)
            meta = dc.series_stats(dense, self.config.min_history_days).with_columns(
                pl.col("total_qty").alias("demand_value")
            )
            meta = fc.assign_tiers(meta, h, self.config)
            return fc.fit_partition(dense, meta, h, self.config).forecasts.to_pandas()


def champion(settings: Settings, name: str = FORECASTER_MODEL) -> Any | None:
    """The model version carrying the `champion` alias, or None."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    init_tracking(settings)
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def set_champion(settings: Settings, version: str, name: str = FORECASTER_MODEL) -> None:
    """Move the `champion` alias to `version`: how a forecaster change is made, or undone."""
    from mlflow.tracking import MlflowClient

    init_tracking(settings)
    MlflowClient().set_registered_model_alias(name, CHAMPION, str(version))


def register_forecaster(
    settings: Settings, config: dict[str, Any], config_hash: str, promote: bool, name: str = FORECASTER_MODEL
) -> tuple[str, str]:
    """(name, version) of the registered forecaster with this config, logging a new version if needed.

    Must be called inside an active run (the version's source). An existing version with the
    same `config_hash` tag is reused. `promote` moves the `champion` alias to the version.
    """
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        versions = client.search_model_versions(f"name = '{_quote(name)}'")
    except MlflowException:
        versions = []
    for v in versions:
        if v.tags.get("config_hash") == config_hash:
            if promote:
                client.set_registered_model_alias(name, CHAMPION, v.version)
            return name, str(v.version)

    import statsforecast

    with tempfile.TemporaryDirectory() as tmp:
        cfg_path = Path(tmp) / "config.json"
        cfg_path.write_text(json.dumps(config, sort_keys=True, indent=2))
        info = mlflow.pyfunc.log_model(
            name="forecaster",
            python_model=ForecasterModel(),
            artifacts={"config": str(cfg_path)},
            # Stated, not inferred: inference imports and probes the environment for seconds.
            pip_requirements=[f"statsforecast=={statsforecast.__version__}", "polars"],
            registered_model_name=name,
        )
    version = str(info.registered_model_version)
    client.set_model_version_tag(name, version, "config_hash", config_hash)
    if promote or champion(settings, name) is None:
        client.set_registered_model_alias(name, CHAMPION, version)
    return name, version


def _quote(value: str) -> str:
    # MLflow's filter grammar has no parameters; the name is ours, but never let a quote through.
    if "'" in value:
        raise ValueError(f"model name may not contain a quote: {value!r}")
    return value


def champion_config(settings: Settings, name: str = FORECASTER_MODEL) -> tuple[dict[str, Any], str] | None:
    """(config dict, version) of the champion forecaster, or None if nothing is registered."""
    import mlflow

    version = champion(settings, name)
    if version is None:
        return None
    path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}@{CHAMPION}")
    cfg_file = next(Path(path).rglob("config.json"), None)
    if cfg_file is None:
        raise FileNotFoundError(f"{name} v{version.version} has no config.json artifact")
    return json.loads(cfg_file.read_text()), str(version.version)
