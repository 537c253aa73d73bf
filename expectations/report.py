"""Counts per expectation, for the Prefect artifact and ``kamflow validate``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kamflow.expectations.validate import ExpectationResult, ValidationOutcome

_VERDICT = {"critical": "STOP", "row": "quarantined", "warning": "warning"}


def verdict(result: ExpectationResult) -> str:
    return "ok" if result.success else _VERDICT[result.severity]


def results_table(outcome: ValidationOutcome) -> list[dict[str, Any]]:
    """One row per expectation run: where, what, severity, verdict, failing rows, examples."""
    return [{"table": r.table, "expectation": r.expectation, "column": r.column,
             "severity": r.severity, "result": verdict(r), "failing rows": r.unexpected_count,
             "examples": ", ".join(r.examples)} for r in outcome.results]


def results_markdown(outcome: ValidationOutcome, data_docs: Path | None = None,
                     offline_report: Mapping[str, Path] | None = None) -> str:
    """Markdown: the go/stop line, the offline report's links (first: they open on a closed
    network), the Data Docs' location, failures first, then every count."""
    failed = sum(not r.success for r in outcome.results)
    lines = [f"# Validation: {'stopped' if outcome.stopped else 'passed'}", "",
             f"> {outcome.message}", "",
             f"{len(outcome.results)} expectations run, {failed} not met; "
             f"{len(outcome.quarantine):,} quarantine record(s).", ""]
    lines += report_links(offline_report, data_docs)
    lines += ["| table | expectation | column | severity | result | failing rows | examples |",
              "|---|---|---|---|---|---:|---|"]
    ordered = sorted(outcome.results, key=lambda r: (r.success, r.table))
    lines += [f"| {r['table']} | {r['expectation']} | {_cell(r['column'])} | {r['severity']} | "
              f"{r['result']} | {r['failing rows']:,} | {_cell(r['examples'])} |"
              for r in (results_table(_sorted(outcome, ordered)))]
    return "\n".join(lines) + "\n"


def report_links(offline_report: Mapping[str, Path] | None,
                 data_docs: Path | None) -> list[str]:
    """Markdown lines: the offline report (en, zh-CN) as links, then the Data Docs' URL as text.

    The Data Docs load their styling and scripts from public CDNs and show nothing on a closed
    network, so they are reached from the offline report rather than linked here.
    """
    lines = []
    if offline_report:
        links = " · ".join(f"[{_LANGUAGE_NAMES.get(language, language)}]({Path(page).as_uri()})"
                           for language, page in offline_report.items())
        lines += [f"Validation report (offline HTML, needs no network): {links}", ""]
    if data_docs is not None:
        lines += [f"Data Docs (Great Expectations HTML; needs internet access for its styling "
                  f"and scripts): `{data_docs.as_uri()}`", ""]
    return lines


_LANGUAGE_NAMES = {"en": "English", "zh-CN": "中文"}


def results_text(outcome: ValidationOutcome) -> str:
    """The same counts as a plain-text table for the terminal, failures first."""
    rows = results_table(_sorted(outcome, sorted(outcome.results,
                                                 key=lambda r: (r.success, r.table))))
    width = max([len(f"{r['table']}.{r['column']}") for r in rows] + [12])
    lines = [f"{'result':<12} {'rows':>8}  {'table.column':<{width}}  expectation"]
    for r in rows:
        sample = f"  e.g. {r['examples']}" if r["examples"] and r["result"] != "ok" else ""
        lines.append(f"{r['result']:<12} {r['failing rows']:>8,}  "
                     f"{r['table'] + '.' + r['column']:<{width}}  {r['expectation']}{sample}")
    return "\n".join(lines)


def _sorted(outcome: ValidationOutcome, results: list[ExpectationResult]) -> ValidationOutcome:
    return ValidationOutcome(outcome.accepted, outcome.quarantine, results, outcome.accounts_in,
                             outcome.accounts_quarantined, outcome.stopped, outcome.reasons)


def _cell(text: str) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 80 else text[:79] + "…"
