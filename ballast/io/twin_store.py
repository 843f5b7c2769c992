"""Where a simulation keeps things, and its results store.

`<BALLAST_HOME>/simulations/<name>/` holds, and nothing else does:
* `runs/<scenario>/seed-<s>/ballast/` — the planner's own BALLAST_HOME for that run (warehouse,
  inbox, archive, outbox, reports, MLflow store): the live ones are never touched;
* `results.duckdb` — one row per run (policy × scenario × seed) with its KPIs, and the daily
  stock per site of every run (for the report);
* `data/mlflow.db` — the simulation's MLflow store, experiment `ballast-twin`, one run per
  policy × scenario × seed (params + KPI metrics);
* `report.html`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from ballast.io.tracking import start_run
from ballast.io.warehouse import transaction
from ballast.models.twin.kpis import ratios_to_bound_of_seed
from ballast.settings import Settings

EXPERIMENT = "ballast-twin"

_DDL = (
    """CREATE TABLE IF NOT EXISTS twin_runs (
        simulation VARCHAR, scenario VARCHAR, seed INTEGER, policy VARCHAR, params JSON, kpis JSON,
        mlflow_run_id VARCHAR, recorded_at TIMESTAMPTZ, PRIMARY KEY (simulation, scenario, seed, policy))""",
    """CREATE TABLE IF NOT EXISTS twin_daily_stock (
        simulation VARCHAR, scenario VARCHAR, seed INTEGER, policy VARCHAR, day INTEGER, site_id VARCHAR,
        units DOUBLE, unmet DOUBLE, overflow DOUBLE)""",
)


@dataclass(frozen=True)
class SimulationHome:
    root: Path

    @classmethod
    def under(cls, home: Path, name: str) -> SimulationHome:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"simulation name {name!r} must be a plain folder name")
        return cls(home / "simulations" / name)

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def results_db(self) -> Path:
        return self.root / "results.duckdb"

    @property
    def report_path(self) -> Path:
        return self.root / "report.html"

    def run_home(self, scenario: str, seed: int) -> Path:
        return self.root / "runs" / scenario / f"seed-{seed}" / "ballast"

    def tracking(self) -> Settings:
        """MLflow settings of the simulation's own store (never the live one)."""
        return Settings(home=self.root, mlflow_experiment=EXPERIMENT, mlflow_tracking_uri=None)


def _connect(db: Path) -> duckdb.DuckDBPyConnection:
    db.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(db))
    for ddl in _DDL:
        con.execute(ddl)
    # stores written before overflow was simulated
    con.execute("ALTER TABLE twin_daily_stock ADD COLUMN IF NOT EXISTS overflow DOUBLE DEFAULT 0")
    return con


def _clean(value: object) -> object:
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def record_run(
    sim: SimulationHome,
    scenario: str,
    seed: int,
    policy: str,
    params: dict,
    kpis: dict[str, float],
    daily: pl.DataFrame,
) -> str:
    """One MLflow run (params + metrics) and one results row; `daily` = (day, site_id, units, unmet[, overflow])."""
    import mlflow

    settings = sim.tracking()
    tags = {"simulation": sim.name, "scenario": scenario, "seed": str(seed), "policy": policy}
    with start_run(settings, run_name=f"{policy} · {scenario} · seed {seed}", tags=tags) as run:
        mlflow.log_params({k: (json.dumps(v) if isinstance(v, dict | list | tuple) else v) for k, v in params.items()})
        mlflow.log_metrics({k: float(v) for k, v in kpis.items() if _clean(v) is not None})
        run_id = run.info.run_id
    with _connect(sim.results_db) as con, transaction(con):  # a rerun replaces a run's rows whole, or not at all
        con.execute(
            "DELETE FROM twin_runs WHERE simulation = ? AND scenario = ? AND seed = ? AND policy = ?",
            [sim.name, scenario, seed, policy],
        )
        con.execute(
            "DELETE FROM twin_daily_stock WHERE simulation = ? AND scenario = ? AND seed = ? AND policy = ?",
            [sim.name, scenario, seed, policy],
        )
        con.execute(
            "INSERT INTO twin_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sim.name,
                scenario,
                seed,
                policy,
                json.dumps(params, default=str),
                json.dumps({k: _clean(v) for k, v in kpis.items()}),
                run_id,
                datetime.now(UTC),
            ],
        )
        if daily.height:
            frame = daily.select(
                pl.lit(sim.name).alias("simulation"),
                pl.lit(scenario).alias("scenario"),
                pl.lit(seed).alias("seed"),
                pl.lit(policy).alias("policy"),
                pl.col("day").cast(pl.Int32),
                "site_id",
                "units",
                "unmet",
                pl.col("overflow") if "overflow" in daily.columns else pl.lit(0.0).alias("overflow"),
            )
            con.register("_daily", frame.to_arrow())
            con.execute("INSERT INTO twin_daily_stock SELECT * FROM _daily")
            con.unregister("_daily")
    return run_id


def load_results(sim: SimulationHome) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(runs with one column per KPI, daily stock) of the simulation."""
    with _connect(sim.results_db) as con:
        runs = con.sql(
            "SELECT scenario, seed, policy, params, kpis, mlflow_run_id FROM twin_runs "
            "WHERE simulation = ? ORDER BY scenario, seed, policy",
            params=[sim.name],
        ).pl()
        daily = con.sql(
            "SELECT scenario, seed, policy, day, site_id, units, unmet, overflow FROM twin_daily_stock "
            "WHERE simulation = ? ORDER BY scenario, seed, policy, day, site_id",
            params=[sim.name],
        ).pl()
    if runs.is_empty():
        return runs, daily
    kpis = pl.DataFrame([json.loads(k) for k in runs["kpis"].to_list()], infer_schema_length=None)
    return pl.concat([runs.drop("kpis"), kpis], how="horizontal"), daily


def find_simulations(path: Path) -> list[SimulationHome]:
    """The simulations at `path`: a simulation folder (with results.duckdb), or every one under a
    BALLAST_HOME's `simulations/`."""
    if (path / "results.duckdb").is_file():
        return [SimulationHome(path)]
    found = sorted(p.parent for p in (path / "simulations").glob("*/results.duckdb"))
    if not found:
        raise FileNotFoundError(f"{path}: no results.duckdb here nor under {path / 'simulations'}")
    return [SimulationHome(p) for p in found]


def load_many(paths: list[Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(runs, daily stock) of several simulations merged, with a `simulation` column, e.g. seeds run
    in separate homes side by side; ratios to the bound are taken from the bound of each run's
    scenario and seed wherever it ran. A (scenario, seed, policy) found twice is refused: the table
    would count it twice."""
    runs: list[pl.DataFrame] = []
    daily: list[pl.DataFrame] = []
    seen: dict[tuple[str, int, str], Path] = {}
    sims = {s.root.resolve(): s for p in paths for s in find_simulations(p)}  # a path given twice counts once
    for sim in sims.values():
        r, d = load_results(sim)
        for key in r.select("scenario", "seed", "policy").iter_rows():
            if key in seen:
                raise ValueError(
                    f"scenario {key[0]} seed {key[1]} policy {key[2]} is in both {seen[key]} and {sim.root}"
                )
            seen[key] = sim.root
        runs.append(r.with_columns(pl.lit(str(sim.root)).alias("simulation")))
        daily.append(d)
    merged = ratios_to_bound_of_seed(pl.concat(runs, how="diagonal_relaxed"))
    return merged, pl.concat(daily, how="diagonal_relaxed")
