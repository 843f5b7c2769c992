"""Where ballast keeps things: one settings object, read from `BALLAST_*` environment variables.

Local defaults are the embedded ones (DESIGN.md §1): a DuckDB file, a local MLflow store and
Prefect's ephemeral API, all under one working folder (`BALLAST_HOME`, default the current
directory). Nothing is configured by editing code.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGED_POLICY = Path(__file__).parent / "policies" / "default.yaml"


class Settings(BaseSettings):
    """Paths and endpoints; every field can be set as `BALLAST_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix="BALLAST_", frozen=True)

    home: Path = Path(".")
    db: Path | None = None
    inbox: Path | None = None
    archive: Path | None = None
    outbox: Path | None = None
    reports: Path | None = None
    policy: Path | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_experiment: str = "ballast"

    @cached_property
    def db_path(self) -> Path:
        return self.db or self.home / "data" / "ballast.duckdb"

    @cached_property
    def inbox_dir(self) -> Path:
        return self.inbox or self.home / "inbox"

    @cached_property
    def archive_dir(self) -> Path:
        return self.archive or self.home / "data" / "archive"

    @cached_property
    def outbox_dir(self) -> Path:
        return self.outbox or self.home / "outbox"

    @cached_property
    def reports_dir(self) -> Path:
        return self.reports or self.home / "reports"

    @cached_property
    def policy_path(self) -> Path:
        if self.policy is not None:
            return self.policy
        local = self.home / "policies" / "default.yaml"
        return local if local.exists() else PACKAGED_POLICY

    @cached_property
    def tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.home / 'data' / 'mlflow.db').resolve()}"


def get_settings() -> Settings:
    return Settings()
