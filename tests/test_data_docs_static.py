"""Data Docs' static files are kept once per home (issue 28), and every page still finds them."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from kamflow.expectations import validate_snapshot, write_validation_files
from kamflow.expectations.datadocs import static_folder, static_references, unused_pages
from kamflow.expectations.files import STATIC
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import read_snapshot

AS_OF = dt.date(2026, 11, 25)


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_two_runs_share_one_copy_of_the_static_files_and_their_pages_find_them(
        tmp_path: Path) -> None:
    write_snapshot(make_snapshot(80, AS_OF, seed=5, bad_share=0.1), tmp_path / "snapshot")
    reports = tmp_path / "home" / "reports"
    for run_id in ("run-1", "run-2"):
        snapshot = read_snapshot(tmp_path / "snapshot")
        outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF,
                                    files=snapshot.files)
        files = write_validation_files(outcome, reports / run_id,
                                       tmp_path / "home" / "quarantine" / run_id, run_id)
        outcome.release_gx()
        assert files.data_docs.is_file()
    shared = static_folder(reports / STATIC)
    assert (shared / "images" / "glossary_scroller.gif").is_file()
    assert sorted(p.name for p in (reports / STATIC).iterdir()) == [shared.name, "pages"]
    # the expectation suites' pages are the same each run: one copy on disk, two names
    suite_1 = reports / "run-1" / "data_docs" / "expectations" / "accounts.html"
    suite_2 = reports / "run-2" / "data_docs" / "expectations" / "accounts.html"
    assert suite_1.stat().st_ino == suite_2.stat().st_ino and suite_1.stat().st_nlink == 3
    assert not unused_pages(reports / STATIC)
    for run_id in ("run-1", "run-2"):
        docs = reports / run_id / "data_docs"
        assert not (docs / "static").exists()
        assert _size(reports / run_id) < 1_000_000, "a run's folder holds no static file"
        assert not list((reports / run_id).rglob(".*")), "no staging file left"
        pages = list(docs.rglob("*.html"))
        assert len(pages) > 1  # the index and the validation pages, at different depths
        for page in pages:
            local = static_references(page)
            assert local, f"{page} links no static file"
            missing = [p for p in local if not p.is_file()]
            assert not missing, f"{page} links missing files {missing[:3]}"
            assert all(p.is_relative_to(shared.resolve()) for p in local)
    shutil.rmtree(reports / "run-1")
    shutil.rmtree(reports / "run-2")
    assert len(unused_pages(reports / STATIC)) == 5  # one per suite, for housekeeping
