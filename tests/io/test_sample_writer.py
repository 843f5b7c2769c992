from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ballast.io.landing import Manifest, manifest_path, parse_file_name, sha256_of
from ballast.io.sample_writer import DEFAULT_FORMATS, resolve_formats, write_sample
from ballast.models.contract import EXTRACTS
from ballast.models.sample import POLARS_DTYPES, SampleSpec, generate_network

SPEC = SampleSpec(skus=40, history_days=120)


@pytest.fixture(scope="module")
def frames() -> dict[str, pl.DataFrame]:
    return generate_network(SPEC)


@pytest.fixture(scope="module")
def landed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    inbox = tmp_path_factory.mktemp("inbox")
    return inbox, write_sample(SPEC, inbox)


def _read(path: Path, extract: str) -> pl.DataFrame:
    schema = {c.name: POLARS_DTYPES[c.kind] for c in EXTRACTS[extract].columns}
    if path.suffix == ".csv":
        return pl.read_csv(path, schema=schema)
    return pl.read_parquet(path)


def test_every_extract_lands_once_in_its_folder(landed: tuple[Path, list[Path]]) -> None:
    inbox, paths = landed
    assert [p.parent.name for p in paths] == list(EXTRACTS)
    for path in paths:
        name = parse_file_name(path.name)
        assert name is not None
        assert name.extract == path.parent.name
        assert name.as_of == SPEC.as_of
        assert name.fmt == DEFAULT_FORMATS[name.extract]
        assert path.parent.parent == inbox
    leftovers = [p for p in inbox.rglob("*") if p.name.startswith(".") or p.name.endswith(".part")]
    assert leftovers == []


def test_manifests_match_the_files(landed: tuple[Path, list[Path]], frames: dict[str, pl.DataFrame]) -> None:
    _, paths = landed
    for path in paths:
        manifest = Manifest.from_json(manifest_path(path).read_text())
        assert manifest.file == path.name
        assert manifest.sha256 == sha256_of(path)
        assert manifest.bytes == path.stat().st_size
        assert manifest.rows == frames[manifest.extract].height
        assert manifest.as_of == SPEC.as_of


def test_files_read_back_as_generated(
    landed: tuple[Path, list[Path]], frames: dict[str, pl.DataFrame]
) -> None:
    _, paths = landed
    for path in paths:
        extract = path.parent.name
        assert _read(path, extract).equals(frames[extract]), extract


def test_csv_keeps_sku_leading_zeros_and_utc_marker(landed: tuple[Path, list[Path]]) -> None:
    _, paths = landed
    inventory = next(p for p in paths if p.parent.name == "inventory")
    first_row = inventory.read_text().splitlines()[1]
    assert first_row.startswith("2026-11-23T06:00:00Z,")
    assert ",SKU-000" in first_row


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_one_format_for_all(tmp_path: Path, fmt: str) -> None:
    paths = write_sample(SPEC, tmp_path, fmt=fmt)  # type: ignore[arg-type]
    assert {p.suffix for p in paths} == {f".{fmt}"}


def test_format_may_be_given_in_place_of_the_mapping(tmp_path: Path) -> None:
    # `ballast sample --format parquet` calls write_sample(spec, inbox, "parquet")
    paths = write_sample(SPEC, tmp_path, "parquet")
    assert {p.suffix for p in paths} == {".parquet"}


def test_per_extract_override(tmp_path: Path) -> None:
    paths = write_sample(SPEC, tmp_path, {"demand": "csv", "sites": "parquet"})
    suffix = {p.parent.name: p.suffix for p in paths}
    assert suffix["demand"] == ".csv"
    assert suffix["sites"] == ".parquet"
    assert suffix["items"] == ".csv"


def test_same_spec_lands_identical_bytes(tmp_path: Path, landed: tuple[Path, list[Path]]) -> None:
    _, paths = landed
    again = write_sample(SPEC, tmp_path)
    assert [sha256_of(p) for p in again] == [sha256_of(p) for p in paths]


@pytest.mark.parametrize(
    ("fmt", "overrides"), [("xlsx", None), ("mixed", {"nonsense": "csv"}), ("mixed", {"demand": "json"})]
)
def test_bad_formats_are_rejected(fmt: str, overrides: dict[str, str] | None) -> None:
    with pytest.raises(ValueError, match="must be|unknown extract"):
        resolve_formats(fmt, overrides)  # type: ignore[arg-type]
