"""Run the expectation suites on a snapshot and split it into accepted rows and quarantine."""

from __future__ import annotations

import copy
import functools
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from intake.schema import TABLES
from kamflow.errors import ConfigError

log = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).resolve().parent
SEVERITIES = ("critical", "row", "warning")
ROW = "_row"
KNOWN = "_known_account"  # derived flag for referential-integrity expectations
QUARANTINE_COLUMNS = ["table", "row", "account_id", "column", "value", "expectation", "reason"]


@dataclass(frozen=True)
class ValidationPolicy:
    # Stop the batch when more than this share of accounts would be quarantined: a mostly-bad
    # export is a broken export, not a set of bad customers.
    max_quarantine_share: float = 0.2


@dataclass(frozen=True)
class ExpectationResult:
    table: str
    expectation: str
    column: str
    severity: str
    success: bool
    unexpected_count: int
    examples: tuple[str, ...]
    notes: str

    def describe(self) -> str:
        """One sentence, ending in a full stop, for the operator."""
        target = f" on column {self.column!r}" if self.column else ""
        # Table- and column-level checks (a missing column, an empty file) have no failing rows.
        rows = f" for {self.unexpected_count} row(s)" if self.unexpected_count else ""
        sample = f" (e.g. {', '.join(self.examples)})" if self.examples else ""
        notes = self.notes.rstrip(". ")
        return (f"{self.table}.csv: {self.expectation}{target} failed{rows}{sample}"
                + (f": {notes}." if notes else "."))


@dataclass
class ValidationOutcome:
    accepted: dict[str, pd.DataFrame]
    quarantine: pd.DataFrame
    results: list[ExpectationResult]
    accounts_in: int
    accounts_quarantined: int
    stopped: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        if not self.stopped:
            return (f"validated {self.accounts_in} accounts: "
                    f"{self.accounts_in - self.accounts_quarantined} accepted, "
                    f"{self.accounts_quarantined} quarantined")
        return ("Batch stopped by validation, so no task was created and no email was sent. "
                + " ".join(self.reasons))


@dataclass(frozen=True)
class Suite:
    table: str
    path: Path
    expectations: tuple[dict[str, Any], ...]


def load_suites(directory: Path = SUITES_DIR) -> dict[str, Suite]:
    """Load every ``*.json`` suite; an expectation GX would silently drop fails loudly here."""
    suites = {}
    for path in sorted(Path(directory).glob("*.json")):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"expectation suite {path} is not valid JSON: {exc}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("expectations", []), list):
            raise ConfigError(f"expectation suite {path} must be a JSON object with a list "
                              "under 'expectations'")
        if doc.get("name") not in TABLES:
            # validate_snapshot runs a suite on the table of its name: any other name would
            # silently never run.
            raise ConfigError(f"expectation suite {path}: 'name' must be the table it checks, "
                              f"one of {', '.join(TABLES)}, not {doc.get('name')!r}")
        if doc["name"] in suites:
            raise ConfigError(f"expectation suite {path}: a suite for table {doc['name']!r} is "
                              f"already defined in {suites[doc['name']].path}")
        expectations = tuple(doc.get("expectations", ()))
        for index, exp in enumerate(expectations):
            if not isinstance(exp, dict) or not isinstance(exp.get("meta", {}), dict):
                raise ConfigError(f"expectation suite {path}, expectation #{index + 1}: must be "
                                  "an object with type, kwargs and meta")
            severity = exp.get("meta", {}).get("severity")
            if severity not in SEVERITIES:
                raise ConfigError(f"expectation suite {path}, expectation #{index + 1} "
                                  f"({exp.get('type')}): meta.severity must be one of "
                                  f"{', '.join(SEVERITIES)}, not {severity!r}")
        try:
            built = _gx_suite(doc["name"], expectations)
        except Exception as exc:  # GX raises pydantic errors for missing or unknown kwargs
            raise ConfigError(f"expectation suite {path}: Great Expectations rejected it: "
                              f"{_first_line(exc)}; fix the type or its kwargs") from None
        if len(built.expectations) != len(expectations):
            known = {e.expectation_type for e in built.expectations}
            dropped = [e.get("type") for e in expectations if e.get("type") not in known]
            raise ConfigError(f"expectation suite {path}: Great Expectations rejected "
                              f"{len(expectations) - len(built.expectations)} expectation(s) "
                              f"({', '.join(map(str, dropped)) or 'invalid arguments'}); "
                              "fix the type or its kwargs")
        suites[doc["name"]] = Suite(doc["name"], path, expectations)
    if not suites:
        raise ConfigError(f"no expectation suites (*.json) found in {directory}")
    return suites


def validate_snapshot(tables: dict[str, pd.DataFrame], problems: pd.DataFrame,
                      policy: ValidationPolicy = ValidationPolicy(),
                      suites: dict[str, Suite] | None = None) -> ValidationOutcome:
    """Validate every table, quarantine failing rows (and their accounts), decide go or stop."""
    suites = suites if suites is not None else load_suites()
    accounts = tables["accounts"]
    # Without the column, its critical existence check stops the batch below.
    known_ids = (pd.Index(accounts["account_id"].dropna().unique())
                 if "account_id" in accounts else pd.Index([]))
    results: list[ExpectationResult] = []
    records: list[pd.DataFrame] = [_problem_records(problems)]
    for name, suite in suites.items():
        if name not in tables:
            continue
        suite_results, suite_records = _run_suite(suite, tables[name], known_ids)
        results += suite_results
        records += suite_records
    quarantine = pd.concat([r for r in records if not r.empty] or [records[0]],
                           ignore_index=True)

    critical = [r for r in results if r.severity == "critical" and not r.success]
    if critical:
        return ValidationOutcome({}, quarantine, results, len(accounts), 0, True,
                                 [r.describe() for r in critical])

    held = set(quarantine["account_id"].dropna()) & set(known_ids)
    keep = accounts["account_id"].notna() & ~accounts["account_id"].isin(held)
    quarantine = pd.concat([quarantine, _held_back(accounts, quarantine, keep)],
                           ignore_index=True)
    accepted = {"accounts": accounts.loc[keep].reset_index(drop=True)}
    good_ids = set(accepted["accounts"]["account_id"])
    for name, frame in tables.items():
        if name != "accounts":
            accepted[name] = frame.loc[frame["account_id"].isin(good_ids)].reset_index(drop=True)
    outcome = ValidationOutcome(accepted, quarantine, results, len(accounts),
                                int((~keep).sum()))
    share = outcome.accounts_quarantined / max(outcome.accounts_in, 1)
    if share > policy.max_quarantine_share:
        worst = sorted((r for r in results if not r.success and r.severity == "row"),
                       key=lambda r: -r.unexpected_count)[:3]
        outcome.stopped = True
        outcome.accepted = {}
        outcome.reasons = [
            f"{outcome.accounts_quarantined} of {outcome.accounts_in} accounts ({share:.0%}) "
            f"failed row checks, more than the allowed {policy.max_quarantine_share:.0%}: "
            "the export itself looks broken.",
            *(r.describe() for r in worst)]
    return outcome


@functools.cache
def _context() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _gx_suite(name: str, expectations: tuple[dict[str, Any], ...]) -> Any:
    from great_expectations.core import ExpectationSuite

    _context()  # GX needs a context before suites are built
    return ExpectationSuite(name=name, expectations=copy.deepcopy(list(expectations)))


def _run_suite(suite: Suite, frame: pd.DataFrame,
               known_ids: pd.Index) -> tuple[list[ExpectationResult], list[pd.DataFrame]]:
    expectations = copy.deepcopy(list(suite.expectations))
    for exp in expectations:
        column = exp["kwargs"].get("column")
        if exp.get("meta", {}).get("value_set_from") == "accounts.account_id" and column in frame:
            # Referential integrity. Handing GX the id list costs seconds per 100k ids (it
            # validates and serialises the list), so membership is computed once here and GX
            # checks the derived flag; results still name the original column and its value.
            frame = frame.assign(**{KNOWN: frame[column].isin(known_ids)})
            exp["kwargs"] = {**exp["kwargs"], "column": KNOWN, "value_set": [True]}
            exp["meta"]["reports_column"] = column
    gx_suite = _gx_suite(suite.table, tuple(expectations))
    source = _context().data_sources.add_or_update_pandas(f"kamflow_{suite.table}")
    batch = source.add_dataframe_asset(suite.table).add_batch_definition_whole_dataframe(
        "snapshot").get_batch(batch_parameters={"dataframe": frame})
    run = batch.validate(gx_suite, result_format={
        "result_format": "COMPLETE", "unexpected_index_column_names": [ROW]})
    by_row = frame.set_index(ROW)["account_id"] if "account_id" in frame else None
    results, records = [], []
    for result in run.results:
        config = result.expectation_config
        meta = config.meta or {}
        kwargs = config.kwargs
        column = meta.get("reports_column") or kwargs.get("column") or ",".join(
            kwargs.get("column_list", []))
        raised = bool(result.exception_info and result.exception_info.get("raised_exception"))
        if raised and column and all(c in frame for c in column.split(",")):
            # Not a missing column (that is its own critical check): the suite itself is wrong.
            results.append(ExpectationResult(
                suite.table, config.type, column, "critical", False, 0, (),
                f"could not be evaluated ({result.exception_info.get('exception_message')})"))
            continue
        if raised:
            continue  # the column is missing; expect_column_to_exist reports it
        unexpected = result.result.get("unexpected_index_list") or []
        first = column.split(",")[0]
        rows = [item[ROW] for item in unexpected]
        values = (frame.set_index(ROW)[first].reindex(rows).to_numpy() if first in frame
                  else [None] * len(rows))
        examples = tuple(dict.fromkeys(_text(v) or "(blank)" for v in values[:50]))[:3]
        count = result.result.get("unexpected_count") or 0
        results.append(ExpectationResult(
            suite.table, config.type, column, meta.get("severity", "critical"),
            bool(result.success), int(count or len(unexpected)), examples, meta.get("notes", "")))
        if meta.get("severity") == "row" and unexpected:
            records.append(pd.DataFrame({
                "table": suite.table,
                "row": rows,
                "account_id": by_row.reindex(rows).to_numpy() if by_row is not None else None,
                "column": column,
                "value": [_text(v) for v in values],
                "expectation": config.type,
                "reason": meta.get("notes", ""),
            }))
    return results, records


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return " ".join(lines[:3]) if lines else type(exc).__name__


def _text(value: Any) -> str:
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def _problem_records(problems: pd.DataFrame) -> pd.DataFrame:
    frame = problems.copy()
    frame["expectation"] = "parse"
    return frame.reindex(columns=QUARANTINE_COLUMNS)


def _held_back(accounts: pd.DataFrame, quarantine: pd.DataFrame, keep: pd.Series) -> pd.DataFrame:
    """One record per account held back only because one of its rows elsewhere failed."""
    own = quarantine.loc[quarantine["table"] == "accounts", "account_id"]
    held = accounts.loc[~keep & accounts["account_id"].notna() & ~accounts["account_id"].isin(own)]
    if held.empty:
        return pd.DataFrame(columns=QUARANTINE_COLUMNS)
    first = quarantine.drop_duplicates("account_id").set_index("account_id")
    cause = first.reindex(held["account_id"])
    return pd.DataFrame({
        "table": "accounts", "row": held[ROW].to_numpy(),
        "account_id": held["account_id"].to_numpy(), "column": "",
        "value": "", "expectation": "held_back",
        "reason": ("held back because " + cause["table"].astype(str) + ".csv row "
                   + cause["row"].astype(str) + " failed " + cause["expectation"].astype(str)
                   ).to_numpy(),
    })
