"""The forecast cache and results in DuckDB: tables `fc_runs`, `fc_series`, `fc_forecasts`, `fc_run_series`.

* `fc_series` is the cache: one row per fitted (site_id, sku, fingerprint, config_hash) with
  the chosen model, its CV scores, its conformal ratios, the as-of date it was chosen on
  (`selected_as_of`; later refits may keep the choice) and the run that fitted it. A series
  whose history fingerprint and config are already there is not refitted.
* `fc_forecasts` holds the forecast rows of a fit, under the run that fitted them (a later run
  that reuses the fit points at them instead of copying them).
* `fc_run_series` lists, per run, every series it covers and which cache entry it uses; with
  `fc_runs` this gives the full forecast table of any run (`run_forecasts`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

import duckdb
import polars as pl

from ballast.io.warehouse import insert_frame, query_frame, transaction
from ballast.models.forecast import FALLBACK, RATIO_COLUMNS, SCORE_COLUMNS

_RATIO_DDL: Final = "".join(f"{c} DOUBLE, " for c in RATIO_COLUMNS)
# What a kept model choice carries (`recent_choices`), as a select list of fc_series `s`.
_CHOICE_COLUMNS: Final = ", ".join(
    f"s.{c}" for c in ("site_id", "sku", "model", *SCORE_COLUMNS, *RATIO_COLUMNS, "selected_as_of")
)

DDL: Final = (
    """CREATE TABLE IF NOT EXISTS fc_runs (
        run_id VARCHAR PRIMARY KEY,
        as_of DATE NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        horizon_days INTEGER NOT NULL,
        n_series INTEGER NOT NULL,
        n_refit INTEGER NOT NULL,
        forced BOOLEAN NOT NULL,
        model_name VARCHAR,
        model_version VARCHAR,
        config_json VARCHAR NOT NULL,
        demand_digest VARCHAR NOT NULL,
        data_as_of TIMESTAMPTZ,
        origin VARCHAR,
        demand_files_sha256 VARCHAR
    )""",
    # Warehouses created before backfills existed: the same three columns, NULL for old runs.
    "ALTER TABLE fc_runs ADD COLUMN IF NOT EXISTS data_as_of TIMESTAMPTZ",
    "ALTER TABLE fc_runs ADD COLUMN IF NOT EXISTS origin VARCHAR",
    "ALTER TABLE fc_runs ADD COLUMN IF NOT EXISTS demand_files_sha256 VARCHAR",
    f"""CREATE TABLE IF NOT EXISTS fc_series (
        site_id VARCHAR NOT NULL,
        sku VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        config_hash VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        tier VARCHAR NOT NULL,
        demand_class VARCHAR NOT NULL,
        model VARCHAR NOT NULL,
        mase_cv DOUBLE,
        rmsse_cv DOUBLE,
        err_sum DOUBLE,
        y_sum DOUBLE,
        cov80 DOUBLE,
        cov95 DOUBLE,
        snaive_mase_cv DOUBLE,
        mase_holdout DOUBLE,
        snaive_mase_holdout DOUBLE,
        fitted_at TIMESTAMPTZ NOT NULL,
        selected_as_of DATE,
        {_RATIO_DDL}
        PRIMARY KEY (site_id, sku, fingerprint, config_hash)
    )""",
    # Warehouses from before model choices were kept between refits: NULL, so never kept.
    "ALTER TABLE fc_series ADD COLUMN IF NOT EXISTS selected_as_of DATE",
    *(f"ALTER TABLE fc_series ADD COLUMN IF NOT EXISTS {ratio_col} DOUBLE" for ratio_col in RATIO_COLUMNS),
    """CREATE TABLE IF NOT EXISTS fc_forecasts (
        run_id VARCHAR NOT NULL,
        site_id VARCHAR NOT NULL,
        sku VARCHAR NOT NULL,
        day DATE NOT NULL,
        mean DOUBLE NOT NULL,
        q50 DOUBLE NOT NULL,
        q80 DOUBLE NOT NULL,
        q95 DOUBLE NOT NULL,
        lo80 DOUBLE NOT NULL,
        hi80 DOUBLE NOT NULL,
        lo95 DOUBLE NOT NULL,
        hi95 DOUBLE NOT NULL,
        PRIMARY KEY (run_id, site_id, sku, day)
    )""",
    """CREATE TABLE IF NOT EXISTS fc_run_series (
        run_id VARCHAR NOT NULL,
        site_id VARCHAR NOT NULL,
        sku VARCHAR NOT NULL,
        fingerprint VARCHAR NOT NULL,
        config_hash VARCHAR NOT NULL,
        sku_class VARCHAR NOT NULL,
        refit BOOLEAN NOT NULL,
        PRIMARY KEY (run_id, site_id, sku)
    )""",
)

SERIES_COLUMNS: Final = (
    "site_id",
    "sku",
    "fingerprint",
    "config_hash",
    "run_id",
    "tier",
    "demand_class",
    "model",
    *SCORE_COLUMNS,
    "fitted_at",
    "selected_as_of",
    *RATIO_COLUMNS,
)
FORECAST_COLUMNS: Final = (
    "site_id",
    "sku",
    "day",
    "mean",
    "q50",
    "q80",
    "q95",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the `fc_` tables if absent (idempotent)."""
    for stmt in DDL:
        con.execute(stmt)


def cached(con: duckdb.DuckDBPyConnection, keys: pl.DataFrame) -> pl.DataFrame:
    """The rows of `keys` (site_id, sku, fingerprint, config_hash) already fitted, with their cache row."""
    ensure_tables(con)
    if keys.is_empty():
        return pl.DataFrame(schema={c: pl.String for c in ("site_id", "sku", "fingerprint", "config_hash")})
    con.register("_fc_keys", keys.select("site_id", "sku", "fingerprint", "config_hash").to_arrow())
    try:
        return query_frame(
            con,
            """SELECT s.* FROM fc_series s
               JOIN _fc_keys k USING (site_id, sku, fingerprint, config_hash)""",
        )
    finally:
        con.unregister("_fc_keys")


def recent_choices(
    con: duckdb.DuckDBPyConnection, keys: pl.DataFrame, since: date, until: date
) -> pl.DataFrame:
    """The newest model choice made by cross-validation between `since` and `until` (as-of
    dates, inclusive) for each (site_id, sku, config_hash) of `keys`: site_id, sku, model,
    `SCORE_COLUMNS`, `RATIO_COLUMNS`, selected_as_of. Fallback fits are no choice."""
    ensure_tables(con)
    if keys.is_empty():
        return query_frame(con, f"SELECT {_CHOICE_COLUMNS} FROM fc_series s LIMIT 0")
    con.register("_fc_keys", keys.select("site_id", "sku", "config_hash").unique().to_arrow())
    try:
        return query_frame(
            con,
            f"""SELECT {_CHOICE_COLUMNS} FROM fc_series s
                JOIN _fc_keys k USING (site_id, sku, config_hash)
                WHERE s.selected_as_of BETWEEN ? AND ? AND s.model <> ?
                QUALIFY row_number() OVER (
                    PARTITION BY s.site_id, s.sku, s.config_hash
                    ORDER BY s.selected_as_of DESC, s.fitted_at DESC) = 1""",
            [since, until, FALLBACK],
        )
    finally:
        con.unregister("_fc_keys")


def save_run(
    con: duckdb.DuckDBPyConnection,
    run: dict[str, Any],
    fitted: pl.DataFrame,
    forecasts: pl.DataFrame,
    run_series: pl.DataFrame,
) -> None:
    """Record one refresh atomically: the run, the new cache entries and forecasts, the membership."""
    ensure_tables(con)
    with transaction(con):
        con.execute(
            """INSERT INTO fc_runs (run_id, as_of, started_at, finished_at, horizon_days, n_series, n_refit,
                                    forced, model_name, model_version, config_json, demand_digest,
                                    data_as_of, origin, demand_files_sha256)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [
                run["run_id"],
                run["as_of"],
                run["started_at"],
                run["finished_at"],
                run["horizon_days"],
                run["n_series"],
                run["n_refit"],
                run["forced"],
                run.get("model_name"),
                run.get("model_version"),
                run["config_json"],
                run["demand_digest"],
                run.get("data_as_of"),
                run.get("origin") or "live",
                run.get("demand_files_sha256"),
            ],
        )
        if not fitted.is_empty():
            # A forced refit replaces the cache entry of the same key.
            con.register("_fc_fitted", fitted.select(SERIES_COLUMNS).to_arrow())
            try:
                con.execute(
                    """DELETE FROM fc_series s USING _fc_fitted f
                       WHERE s.site_id = f.site_id AND s.sku = f.sku
                         AND s.fingerprint = f.fingerprint AND s.config_hash = f.config_hash"""
                )
            finally:
                con.unregister("_fc_fitted")
            insert_frame(con, "fc_series", fitted.select(SERIES_COLUMNS))
            insert_frame(con, "fc_forecasts", forecasts.select("run_id", *FORECAST_COLUMNS))
        insert_frame(
            con,
            "fc_run_series",
            run_series.select("run_id", "site_id", "sku", "fingerprint", "config_hash", "sku_class", "refit"),
        )


def latest_run(con: duckdb.DuckDBPyConnection, as_of: date | None = None) -> dict[str, Any] | None:
    """The newest finished run (for `as_of` if given), as a dict of its `fc_runs` row."""
    ensure_tables(con)
    rel = con.execute(
        """SELECT * FROM fc_runs WHERE finished_at IS NOT NULL AND (CAST(? AS DATE) IS NULL OR as_of = ?)
           ORDER BY finished_at DESC LIMIT 1""",
        [as_of, as_of],
    )
    rows = rel.fetchall()  # drain the result: a half-read one blocks the connection
    if not rows:
        return None
    return dict(zip([d[0] for d in rel.description], rows[0], strict=True))


# When a run's data was known: its cycle's as-of, or (runs from before the column) when it finished.
_KNOWN_AT = "coalesce(data_as_of, finished_at)"


def _as_dict(rel: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    rows = rel.fetchall()
    if not rows:
        return None
    out = dict(zip([d[0] for d in rel.description], rows[0], strict=True))
    if out.get("data_as_of") is None:
        out["data_as_of"] = out["finished_at"]
    return out


def run_in_force(con: duckdb.DuckDBPyConnection, at: datetime, origin: str = "live") -> dict[str, Any] | None:
    """The newest finished `origin` run whose data was known at `at` (`data_as_of` filled in)."""
    ensure_tables(con)
    rel = con.execute(
        f"""SELECT * FROM fc_runs WHERE finished_at IS NOT NULL AND coalesce(origin, 'live') = ?
              AND {_KNOWN_AT} <= CAST(? AS TIMESTAMPTZ)
            ORDER BY {_KNOWN_AT} DESC, finished_at DESC LIMIT 1""",
        [origin, at],
    )
    return _as_dict(rel)


def run_for_data(
    con: duckdb.DuckDBPyConnection, cutoff: date, demand_files_sha256: str, config_json: str
) -> dict[str, Any] | None:
    """The first run fitted for `cutoff` on exactly these demand files and this config (a backfill reuses it)."""
    ensure_tables(con)
    rel = con.execute(
        """SELECT * FROM fc_runs WHERE finished_at IS NOT NULL AND as_of = ? AND demand_files_sha256 = ?
             AND config_json = ? ORDER BY finished_at LIMIT 1""",
        [cutoff, demand_files_sha256, config_json],
    )
    return _as_dict(rel)


def run_series(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The per-series table of a run: class, model, scores, fingerprint and when it was fitted."""
    return query_frame(
        con,
        """SELECT r.site_id, r.sku, s.demand_class, r.sku_class, s.model, r.fingerprint, s.mase_cv,
                  s.fitted_at, s.tier, s.config_hash, s.run_id AS fit_run_id, r.refit, s.rmsse_cv,
                  s.err_sum, s.y_sum, s.cov80, s.cov95, s.snaive_mase_cv, s.mase_holdout,
                  s.snaive_mase_holdout, s.selected_as_of
           FROM fc_run_series r
           JOIN fc_series s USING (site_id, sku, fingerprint, config_hash)
           WHERE r.run_id = ? ORDER BY r.site_id, r.sku""",
        [run_id],
    )


def run_forecasts(con: duckdb.DuckDBPyConnection, run_id: str, from_day: date | None = None) -> pl.DataFrame:
    """Every forecast row a run stands for (its own fits and the cached ones it reused)."""
    return query_frame(
        con,
        """SELECT f.site_id, f.sku, f.day, f.mean, f.q50, f.q80, f.q95, f.lo80, f.hi80, f.lo95, f.hi95
           FROM fc_run_series r
           JOIN fc_series s USING (site_id, sku, fingerprint, config_hash)
           JOIN fc_forecasts f ON f.run_id = s.run_id AND f.site_id = s.site_id AND f.sku = s.sku
           WHERE r.run_id = ? AND (CAST(? AS DATE) IS NULL OR f.day >= ?)
           ORDER BY f.site_id, f.sku, f.day""",
        [run_id, from_day, from_day],
    )


def latest_forecasts(
    con: duckdb.DuckDBPyConnection, from_day: date | None = None
) -> tuple[dict[str, Any] | None, pl.DataFrame]:
    """The newest run and its forecasts from `from_day` on (what the 15-minute cycle reads)."""
    run = latest_run(con)
    if run is None:
        schema = {c: pl.Float64 for c in FORECAST_COLUMNS} | {
            "site_id": pl.String,
            "sku": pl.String,
            "day": pl.Date,
        }
        return None, pl.DataFrame(schema={c: schema[c] for c in FORECAST_COLUMNS})
    return run, run_forecasts(con, run["run_id"], from_day)


def run_started_before(con: duckdb.DuckDBPyConnection, when: datetime) -> list[str]:
    """Run ids started before `when`, newest first (for housekeeping and reports)."""
    ensure_tables(con)
    rows = con.execute(
        "SELECT run_id FROM fc_runs WHERE started_at < ? ORDER BY started_at DESC", [when]
    ).fetchall()
    return [r[0] for r in rows]
