"""The files every validation keeps, written the same way by a run and by ``kamflow validate``:
``quarantine.csv`` (when a row was quarantined), ``validation.json``, the GX Data Docs, the
offline report (en, zh-CN: it opens without internet access) and ``validation.md``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from kamflow.core.errors import disk_full_stops
from kamflow.core.spreadsheet import safe_frame
from kamflow.expectations.offline_report import write_offline_report
from kamflow.expectations.report import results_markdown
from kamflow.expectations.validate import ValidationOutcome, write_data_docs

STATIC = "data_docs_static"  # under the reports folder: GX's static files, shared by the runs


@dataclass(frozen=True)
class ValidationFiles:
    results_json: Path
    data_docs: Path            # the Data Docs' index page (styled from public CDNs)
    offline_report: Path       # en
    offline_report_zh: Path
    markdown: str              # the counts, linking the offline report first
    quarantine_file: Path | None = None

    def paths(self) -> dict[str, str]:
        """What was written, most useful first (the names `kamflow validate --json` uses)."""
        return {"offline_report": str(self.offline_report),
                "offline_report_zh": str(self.offline_report_zh),
                **({"quarantine_file": str(self.quarantine_file)} if self.quarantine_file
                   else {}),
                "validation_report": str(self.results_json), "data_docs": self.data_docs.as_uri()}


def write_validation_files(outcome: ValidationOutcome, reports: Path, quarantine: Path,
                           run_id: str) -> ValidationFiles:
    """Write the run's validation files: reports under ``reports``, the quarantined rows under
    ``quarantine`` (both the run's own folders). GX's results can be released afterwards.
    A full disk is a `DiskFullError` naming the folder (before any task or email)."""
    with disk_full_stops(reports):
        return _write_validation_files(outcome, reports, quarantine, run_id)


def _write_validation_files(outcome: ValidationOutcome, reports: Path, quarantine: Path,
                            run_id: str) -> ValidationFiles:
    reports.mkdir(parents=True, exist_ok=True)
    results_json = reports / "validation.json"
    results_json.write_text(json.dumps({
        "stopped": outcome.stopped, "message": outcome.message,
        "results": [r.__dict__ for r in outcome.results]}, ensure_ascii=False, indent=2,
        default=str), encoding="utf-8")
    quarantine_file = None
    if len(outcome.quarantine):
        quarantine.mkdir(parents=True, exist_ok=True)
        quarantine_file = quarantine / "quarantine.csv"
        # opened in a spreadsheet: formula-like cells are neutralised (validation.json is exact)
        safe_frame(outcome.quarantine).to_csv(quarantine_file, index=False, encoding="utf-8")
    # GX's static files once for every run, beside the run folders (issue 28)
    docs = write_data_docs(outcome, reports / "data_docs", static=reports.parent / STATIC)
    pages = write_offline_report(outcome, reports, run_id=run_id,
                                 quarantine_file=quarantine_file, data_docs=docs,
                                 results_json=results_json)
    markdown = results_markdown(outcome, docs, pages)
    (reports / "validation.md").write_text(markdown, encoding="utf-8")
    return ValidationFiles(results_json, docs, pages["en"], pages["zh-CN"], markdown,
                           quarantine_file)
