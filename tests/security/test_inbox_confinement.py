"""Inbox paths are confined to the inbox: links and manifests cannot make ingest read anything else."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ballast.io.ingest import ingest_inbox
from ballast.io.landing import land_frame, manifest_path
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from tests import factories as f


def _ingest(settings: Settings):
    with open_warehouse(settings.db_path) as con:
        report = ingest_inbox(con, settings.inbox_dir, settings.archive_dir, f.AS_OF)
        files = con.execute("SELECT file_name, status FROM ingest_files").fetchall()
    return report, files


def test_a_symlink_to_a_file_outside_the_inbox_is_not_read(ballast_home, tmp_path):
    # given: a well-formed extract with its manifest outside the inbox, and a link to it inside
    settings = Settings()
    outside = land_frame(f.sites(), tmp_path / "elsewhere", "sites", f.AS_OF)
    folder = settings.inbox_dir / "sites"
    folder.mkdir(parents=True)
    (folder / outside.name).symlink_to(outside)
    shutil.copy(manifest_path(outside), manifest_path(folder / outside.name))
    # when
    report, files = _ingest(settings)
    # then: refused by name and reason, nothing read, the link and its target left alone
    [outcome] = report.outcomes
    assert outcome.status == "unrecognised" and "is a symbolic link" in outcome.message, outcome
    assert files == []
    assert (folder / outside.name).is_symlink() and outside.exists()


def test_a_linked_extract_folder_is_not_read(ballast_home, tmp_path):
    settings = Settings()
    outside = land_frame(f.items(), tmp_path / "elsewhere", "items", f.AS_OF)
    settings.inbox_dir.mkdir(parents=True)
    (settings.inbox_dir / "items").symlink_to(outside.parent, target_is_directory=True)
    report, files = _ingest(settings)
    assert [o.status for o in report.outcomes] == ["unrecognised"]
    assert "lies outside the inbox" in report.outcomes[0].message
    assert files == [] and outside.exists() and manifest_path(outside).exists()


def test_a_manifest_linked_from_elsewhere_is_not_trusted(ballast_home, tmp_path):
    settings = Settings()
    data = land_frame(f.lanes(), settings.inbox_dir, "lanes", f.AS_OF)
    real = manifest_path(data)
    moved = tmp_path / "manifest.json"
    shutil.move(real, moved)
    real.symlink_to(moved)
    report, files = _ingest(settings)
    assert [o.status for o in report.outcomes] == ["unrecognised"], report
    assert files == [] and data.exists()


def test_a_manifest_naming_another_path_is_rejected(ballast_home):
    # a manifest whose `file` is path-like (or simply another file) does not describe this file
    settings = Settings()
    data = land_frame(f.sites(), settings.inbox_dir, "sites", f.AS_OF)
    doc = json.loads(manifest_path(data).read_text())
    doc["file"] = "../../etc/passwd"
    manifest_path(data).write_text(json.dumps(doc))
    report, files = _ingest(settings)
    [outcome] = report.outcomes
    assert outcome.status == "rejected" and "its manifest describes 'sites' file '../../etc/passwd'" in outcome.message
    assert files == [(data.name, "rejected")]
    assert not data.exists() and (settings.archive_dir / "rejected" / "sites" / data.name).exists()


def test_path_like_names_cannot_leave_the_inbox_or_the_archive(ballast_home):
    # given: files whose names try to climb out (a name cannot hold "/", but can hold dots and quotes)
    settings = Settings()
    folder = settings.inbox_dir / "sites"
    folder.mkdir(parents=True)
    hostile = [
        "..",
        "...csv",
        "..sites_20261123T060000Z.csv",
        "sites_20261123T060000Z.csv;rm -rf ~",
        "x'; DROP TABLE x;--.csv",
    ]
    for name in hostile:
        if name != "..":
            (folder / name).write_text("site_id\n")
    land_frame(f.sites(), settings.inbox_dir, "sites", f.AS_OF)
    # when
    report, files = _ingest(settings)
    # then: only the conventional file is taken; every other name is left where it is
    assert files == [("sites_20261123T060000Z.csv", "landed")]
    archived = sorted(
        p.relative_to(settings.archive_dir).as_posix() for p in settings.archive_dir.rglob("*") if p.is_file()
    )
    assert archived == ["sites/sites_20261123T060000Z.csv", "sites/sites_20261123T060000Z.csv.manifest.json"]
    left = sorted(os.listdir(folder))
    assert left == sorted(n for n in hostile if n != ".."), left
    assert {o.status for o in report.outcomes if Path(o.file).name != "sites_20261123T060000Z.csv"} == {"unrecognised"}
