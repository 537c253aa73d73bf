"""Tests of expectations: loading the JSON suites, validating a snapshot (go, quarantine, stop)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamflow.core.errors import ConfigError
from kamflow.expectations import ValidationPolicy, load_suites, validate_snapshot
from kamflow.expectations.validate import SUITES_DIR
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import TABLES, Snapshot, build_customer_view, read_snapshot

AS_OF = dt.date(2026, 11, 25)
STOPPED = "no task was created and no email was sent"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory, frames: dict) -> Snapshot:
    """The shared 600-account snapshot (with planted bad rows), as read by intake."""
    out = tmp_path_factory.mktemp("validation-snapshot")
    write_snapshot(frames, out)
    return read_snapshot(out)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """A small (80-account) snapshot without planted bad rows."""
    out = tmp_path_factory.mktemp("clean-snapshot")
    write_snapshot(make_snapshot(80, AS_OF, seed=5, bad_share=0.0), out)
    return read_snapshot(out)


@pytest.fixture(scope="module")
def outcome(snapshot: Snapshot):
    return validate_snapshot(snapshot.tables, snapshot.problems)


def tables_with(snapshot: Snapshot, **replaced: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {**snapshot.tables, **replaced}


def quarantined(outcome, **where: object) -> pd.DataFrame:
    q = outcome.quarantine
    mask = np.ones(len(q), dtype=bool)
    for column, value in where.items():
        mask &= (q[column] == value).to_numpy()
    return q.loc[mask]


# --------------------------------------------------------------------------- known-good

def test_clean_snapshot_passes_whole(clean: Snapshot) -> None:
    """A snapshot without bad rows goes on: nothing quarantined, every row accepted."""
    result = validate_snapshot(clean.tables, clean.problems)
    assert not result.stopped
    assert result.quarantine.empty
    assert result.accounts_quarantined == 0
    for name in TABLES:
        assert len(result.accepted[name]) == len(clean.tables[name])
    assert "80 accepted, 0 quarantined" in result.message


def test_view_is_the_view_of_the_accepted_rows(snapshot: Snapshot) -> None:
    """The view validation builds (from the accepted accounts and the whole side tables, to
    spare copying them) equals the view built from the accepted rows of every table; those
    rows hold no row of a quarantined account."""
    result = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF)
    assert result.accounts_quarantined > 0 and result.view is not None
    accepted = {name: result.accepted[name] for name in TABLES}
    held = set(result.quarantine["account_id"].dropna())
    for name in ("accounts", "billing"):  # both lose the rows of quarantined accounts
        assert len(accepted[name]) < len(snapshot.tables[name]), name
    for name, frame in accepted.items():
        assert not set(frame["account_id"]) & held, name
    expected = build_customer_view(accepted, AS_OF)
    pd.testing.assert_frame_equal(result.view.drop(columns=["_row"]), expected)


# --------------------------------------------------------------------------- planted bad rows

PLANTED = {
    # kind: (table, column, expectation, how to find the planted rows in the generator's frames)
    "negative billed": ("billing", "billed", "expect_column_values_to_be_between",
                        lambda f: f["billing"].loc[f["billing"]["billed"] < 0]),
    "blank manager_email": ("accounts", "manager_email", "expect_column_values_to_not_be_null",
                            lambda f: f["accounts"].loc[f["accounts"]["manager_email"].isna()]),
    "unknown industry": ("accounts", "industry", "expect_column_values_to_be_in_set",
                         lambda f: f["accounts"].loc[f["accounts"]["industry"] == "unknown"]),
    "orphan billing row": ("billing", "account_id", "expect_column_values_to_be_in_set",
                           lambda f: f["billing"].loc[~f["billing"]["account_id"].isin(
                               f["accounts"]["account_id"])]),
}


@pytest.mark.parametrize("kind", PLANTED)
def test_planted_bad_rows_are_quarantined_with_reason(outcome, frames: dict, kind: str) -> None:
    """Each planted bad row is quarantined with table, row, column, value and expectation."""
    table, column, expectation, find = PLANTED[kind]
    planted = find(frames)
    assert len(planted) >= 1  # precondition: the generator planted one
    records = quarantined(outcome, table=table, column=column, expectation=expectation)
    assert sorted(records["account_id"]) == sorted(planted["account_id"])
    assert sorted(records["row"]) == sorted(planted.index + 2)  # CSV line: header is line 1
    assert sorted(records["value"]) == sorted(
        "" if pd.isna(value) else str(value) for value in planted[column])
    assert (records["reason"].str.len() > 0).all()


def test_account_with_a_bad_side_row_is_held_back(outcome, frames: dict) -> None:
    """An account whose billing row failed is held back with a record pointing at that row."""
    negative = frames["billing"].loc[frames["billing"]["billed"] < 0]
    for account_id, index in zip(negative["account_id"], negative.index, strict=True):
        records = quarantined(outcome, account_id=account_id, expectation="held_back")
        assert len(records) == 1
        record = records.iloc[0]
        assert record["table"] == "accounts"
        assert f"billing.csv row {index + 2}" in record["reason"]
        assert account_id not in set(outcome.accepted["accounts"]["account_id"])


def test_planted_bad_rows_do_not_stop_the_run(outcome, frames: dict) -> None:
    """A few bad rows quarantine their accounts; the rest of the batch goes on."""
    assert not outcome.stopped
    assert outcome.accounts_in == len(frames["accounts"])
    assert outcome.accounts_quarantined == 3  # negative billed, blank e-mail, unknown industry
    assert len(outcome.accepted["accounts"]) == len(frames["accounts"]) - 3
    assert "597 accepted, 3 quarantined" in outcome.message


def test_accepted_tables_hold_no_quarantined_account(outcome) -> None:
    """No accepted table keeps a row of an account that has a quarantine record."""
    bad = set(outcome.quarantine["account_id"].dropna())
    good = set(outcome.accepted["accounts"]["account_id"])
    for name, frame in outcome.accepted.items():
        assert not set(frame["account_id"]) & bad, name
        assert set(frame["account_id"]) <= good, name


def test_validation_does_not_modify_the_input(snapshot: Snapshot) -> None:
    """validate_snapshot returns new frames and leaves the input tables as they were."""
    before = {name: frame.copy(deep=True) for name, frame in snapshot.tables.items()}
    validate_snapshot(snapshot.tables, snapshot.problems)
    for name, frame in snapshot.tables.items():
        pd.testing.assert_frame_equal(frame, before[name])


# --------------------------------------------------------------------------- one bad cell each

def _blank(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    out = frame.copy()
    out.loc[3, column] = np.nan
    return out


def _set(column: str, value: object):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        if out[column].dtype == np.float64:
            out[column] = out[column].astype(object if isinstance(value, str) else np.float64)
        out.loc[3, column] = value
        return out
    return change


def _copy_id(column: str):
    def change(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        out.loc[3, column] = out.loc[2, column]
        return out
    return change


@pytest.mark.parametrize(("table", "change", "column", "expectation", "rows"), [
    ("accounts", _copy_id("account_id"), "account_id", "expect_column_values_to_be_unique",
     [4, 5]),
    ("accounts", _set("manager_email", "wang.fang@"), "manager_email",
     "expect_column_values_to_match_regex", [5]),
    ("accounts", _set("products_held", -1.0), "products_held",
     "expect_column_values_to_be_between", [5]),
    ("accounts", _set("cost_to_serve", -5.0), "cost_to_serve",
     "expect_column_values_to_be_between", [5]),
    ("accounts", lambda f: _blank(f, "contract_end"), "contract_end",
     "expect_column_values_to_not_be_null", [5]),
    ("billing", _set("paid", -1.0), "paid", "expect_column_values_to_be_between", [5]),
    ("billing", _set("month", pd.Timestamp("2026-07-01")), "account_id,month",
     "expect_compound_columns_to_be_unique", None),
    ("complaints", _copy_id("complaint_id"), "complaint_id",
     "expect_column_values_to_be_unique", [4, 5]),
    ("complaints", _set("account_id", "KA7777777"), "account_id",
     "expect_column_values_to_be_in_set", [5]),
    ("sla_incidents", _set("outage_hours", -2.0), "outage_hours",
     "expect_column_values_to_be_between", [5]),
    ("sla_incidents", _set("sla_breach", 2.0), "sla_breach",
     "expect_column_values_to_be_in_set", [5]),
    ("sla_incidents", lambda f: _blank(f, "start_date"), "start_date",
     "expect_column_values_to_not_be_null", [5]),
])
def test_one_bad_cell_is_quarantined_by_its_expectation(clean: Snapshot, table: str, change,
                                                        column: str, expectation: str,
                                                        rows: list[int] | None) -> None:
    """Decision table: a bad cell is quarantined by its expectation and its account held."""
    result = validate_snapshot(tables_with(clean, **{table: change(clean.tables[table])}),
                               clean.problems)
    assert not result.stopped
    records = quarantined(result, table=table, expectation=expectation, column=column)
    assert len(records) >= 1
    if rows is not None:
        assert sorted(records["row"]) == rows
    accepted = set(result.accepted["accounts"]["account_id"])
    assert not set(records["account_id"]) & accepted
    accounts = tables_with(clean, **{table: change(clean.tables[table])})["accounts"]
    assert result.accounts_quarantined == accounts["account_id"].isin(records["account_id"]).sum()


def test_duplicate_account_id_quarantines_both_rows(clean: Snapshot) -> None:
    """Two accounts.csv rows with one id: both are quarantined and neither is accepted."""
    accounts = clean.tables["accounts"].copy()
    twin = accounts.loc[0, "account_id"]
    accounts.loc[1, "account_id"] = twin
    result = validate_snapshot(tables_with(clean, accounts=accounts), clean.problems)
    records = quarantined(result, expectation="expect_column_values_to_be_unique")
    assert sorted(records["row"]) == [2, 3]
    assert set(records["account_id"]) == {twin}
    assert twin not in set(result.accepted["accounts"]["account_id"])
    assert twin not in set(result.accepted["billing"]["account_id"])


def test_warning_expectation_reports_but_does_not_quarantine(clean: Snapshot) -> None:
    """A failed warning (many accounts never contacted) is reported, nothing is quarantined."""
    accounts = clean.tables["accounts"].copy()
    accounts.loc[:100, "last_contact_date"] = pd.NaT
    result = validate_snapshot(tables_with(clean, accounts=accounts), clean.problems)
    assert not result.stopped
    assert result.quarantine.empty
    warned = [r for r in result.results if r.column == "last_contact_date" and not r.success]
    assert [r.severity for r in warned] == ["warning"]


def test_parse_problems_from_intake_are_quarantined(clean: Snapshot) -> None:
    """A cell intake could not parse is quarantined as `parse` and its account held back."""
    billing = clean.tables["billing"].copy()
    billing.loc[3, "billed"] = np.nan
    account_id = billing.loc[3, "account_id"]
    problems = pd.DataFrame([{"table": "billing", "row": 5, "account_id": account_id,
                              "column": "billed", "value": "abc",
                              "reason": "not a valid float"}])
    result = validate_snapshot(tables_with(clean, billing=billing), problems)
    parse = quarantined(result, expectation="parse")
    assert parse[["table", "row", "account_id", "column", "value"]].to_dict("records") == [
        {"table": "billing", "row": 5, "account_id": account_id, "column": "billed",
         "value": "abc"}]
    assert len(quarantined(result, account_id=account_id, expectation="held_back")) == 1
    assert account_id not in set(result.accepted["accounts"]["account_id"])


# --------------------------------------------------------------------------- stop the batch

@pytest.mark.parametrize(("table", "column"), [
    ("accounts", "manager_email"),
    ("accounts", "account_id"),
    ("billing", "billed"),
    ("complaints", "opened_date"),
    ("sla_incidents", "sla_breach"),
])
def test_missing_required_column_stops_the_batch(clean: Snapshot, table: str,
                                                 column: str) -> None:
    """A required column missing from a file stops everything, naming the file and column."""
    frame = clean.tables[table].drop(columns=column)
    result = validate_snapshot(tables_with(clean, **{table: frame}), clean.problems)
    assert result.stopped
    assert result.accepted == {}
    assert STOPPED in result.message
    assert f"{table}.csv" in result.message
    assert repr(column) in result.message
    assert "0 row(s)" not in result.message


def test_header_only_accounts_file_stops_the_batch(clean: Snapshot) -> None:
    """An accounts file with a header but no rows is a broken export: the batch stops."""
    accounts = clean.tables["accounts"].iloc[0:0]
    result = validate_snapshot(tables_with(clean, accounts=accounts), clean.problems)
    assert result.stopped
    assert result.accepted == {}
    assert STOPPED in result.message
    assert "accounts.csv" in result.message


def test_too_many_bad_accounts_stop_the_batch(snapshot: Snapshot) -> None:
    """More than max_quarantine_share of bad accounts stops the batch with the share named."""
    accounts = snapshot.tables["accounts"].copy()
    accounts.loc[:179, "industry"] = "unknown"  # 180 of 600, plus the planted bad rows
    result = validate_snapshot(tables_with(snapshot, accounts=accounts), snapshot.problems)
    assert result.stopped
    assert result.accepted == {}
    share = result.accounts_quarantined / 600
    assert share > 0.2
    assert STOPPED in result.message
    assert f"({share:.0%})" in result.message
    assert "20%" in result.message
    assert "'industry'" in result.message  # the worst expectation is named


@pytest.mark.parametrize(("max_share", "stopped"), [
    (0.0, True), (0.004, True), (0.005, False), (0.2, False), (1.0, False)])
def test_quarantine_share_limit_is_inclusive(snapshot: Snapshot, max_share: float,
                                             stopped: bool) -> None:
    """The batch stops only when the quarantined share (3 of 600 = 0.5 %) exceeds the limit."""
    result = validate_snapshot(snapshot.tables, snapshot.problems,
                               ValidationPolicy(max_quarantine_share=max_share))
    assert result.stopped is stopped
    assert (result.accepted == {}) is stopped


# --------------------------------------------------------------------------- suites

def test_every_shipped_suite_loads_with_all_its_expectations() -> None:
    """Each expectations/*.json loads, one per input table and one for the customer view,
    keeping every expectation."""
    suites = load_suites()
    assert set(suites) == {*TABLES, "customer_view"}
    for name, suite in suites.items():
        doc = json.loads((SUITES_DIR / f"{name}.json").read_text(encoding="utf-8"))
        assert len(suite.expectations) == len(doc["expectations"]) > 0, name
        assert suite.path == SUITES_DIR / f"{name}.json"


def test_every_required_schema_column_has_an_existence_check() -> None:
    """Every required column of the schema is guarded by a critical expect_column_to_exist."""
    suites = load_suites()
    for table in TABLES.values():
        exists = {e["kwargs"]["column"] for e in suites[table.name].expectations
                  if e["type"] == "expect_column_to_exist"
                  and e["meta"]["severity"] == "critical"}
        required = {c.name for c in table.columns if c.required}
        assert required <= exists, (table.name, required - exists)


def _suite_dir(tmp_path: Path, bad: dict | str) -> Path:
    """A copy of the shipped suites plus `bad` written as billing.json."""
    directory = tmp_path / "suites"
    shutil.copytree(SUITES_DIR, directory, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    text = bad if isinstance(bad, str) else json.dumps(bad)
    (directory / "billing.json").write_text(text, encoding="utf-8")
    return directory


def _billing_doc() -> dict:
    return json.loads((SUITES_DIR / "billing.json").read_text(encoding="utf-8"))


def _billing_with(expectation: dict) -> dict:
    doc = _billing_doc()
    doc["expectations"].append(expectation)
    return doc


@pytest.mark.parametrize(("bad", "message"), [
    (_billing_with({"type": "expect_column_values_to_be_purple", "kwargs": {"column": "billed"},
                    "meta": {"severity": "row"}}), "expect_column_values_to_be_purple"),
    (_billing_with({"type": "expect_column_values_to_not_be_null", "kwargs": {},
                    "meta": {"severity": "row"}}), "rejected"),
    (_billing_with({"type": "expect_column_values_to_be_between",
                    "kwargs": {"column": "billed", "min_valu": 0},
                    "meta": {"severity": "row"}}), "rejected"),
    (_billing_with({"type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "billed"}, "meta": {"severity": "fatal"}}),
     "severity"),
    (_billing_with({"type": "expect_column_values_to_not_be_null",
                    "kwargs": {"column": "billed"}}), "severity"),
    ({**_billing_doc(), "name": "bills"}, "'name' must be the table"),
    ("{not json", "not valid JSON"),
], ids=["unknown-type", "missing-kwarg", "misspelt-kwarg", "bad-severity", "no-severity",
        "unknown-table", "not-json"])
def test_invalid_suite_is_refused_naming_the_file(tmp_path: Path, bad: dict | str,
                                                  message: str) -> None:
    """An expectation GX would drop or choke on fails loading with the file named."""
    directory = _suite_dir(tmp_path, bad)
    with pytest.raises(ConfigError, match=message) as caught:
        load_suites(directory)
    assert str(directory / "billing.json") in str(caught.value)


def test_two_suites_for_one_table_are_refused(tmp_path: Path) -> None:
    """A second suite for the same table is refused rather than silently replacing the first."""
    directory = _suite_dir(tmp_path, (SUITES_DIR / "billing.json").read_text(encoding="utf-8"))
    shutil.copy(directory / "billing.json", directory / "billing_copy.json")
    with pytest.raises(ConfigError, match="already defined"):
        load_suites(directory)


def test_directory_without_suites_is_refused(tmp_path: Path) -> None:
    """An empty suites directory is a configuration error, not an all-passing validation."""
    with pytest.raises(ConfigError, match="no expectation suites"):
        load_suites(tmp_path)


def test_each_validated_table_is_logged_as_progress(clean: Snapshot, caplog) -> None:
    """A watcher of a long run sees every table's suite finish: rows, expectations, time."""
    caplog.set_level("INFO", logger="kamflow.expectations.validate")
    validate_snapshot(clean.tables, clean.problems, as_of=AS_OF)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validated ")]
    assert [line.split(" (")[0] for line in lines] == [
        "validated accounts", "validated billing", "validated complaints",
        "validated sla_incidents"]
    assert "(2 of 4 tables)" in lines[1] and f"{len(clean.tables['billing']):,} rows" in lines[1]


def test_release_gx_lets_the_validated_frames_go(clean: Snapshot) -> None:
    """After release_gx, GX's current project is no longer the run's context (which holds the
    last validated frames), and validating again still works."""
    from great_expectations.data_context.data_context.context_factory import project_manager

    outcome = validate_snapshot(clean.tables, clean.problems, as_of=AS_OF)
    run_context = outcome.gx_run.context
    assert project_manager.get_current_project() is run_context
    outcome.release_gx()
    assert outcome.gx_run is None
    assert project_manager.get_current_project() is not run_context
    again = validate_snapshot(clean.tables, clean.problems, as_of=AS_OF)
    assert not again.stopped and again.accounts_in == outcome.accounts_in


def test_gx_does_not_keep_a_validated_frame(clean: Snapshot) -> None:
    """GX's execution engine caches each table's last batch; kamflow empties that cache after
    every suite, so a national run does not hold every validated frame until the end."""
    import gc
    import weakref

    from kamflow.expectations import validate as v

    run = v._GxRun(v._suite_parameters(AS_OF, ValidationPolicy()))
    known = v._unique_ids(clean.tables["accounts"]["account_id"])
    expectations, frame = v.prepare(load_suites()["billing"], clean.tables["billing"], known, True)
    alive = weakref.ref(frame)
    result = run.validate("billing", expectations, frame)
    del frame
    gc.collect()
    assert result.success is not None and alive() is None
