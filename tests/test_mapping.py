"""Mapping files, Parquet, GB18030 exports, the customer-view suite and the quarantine table:
an operator's own export ingested without code, and what was rejected kept where ops can query."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamflow.cli import main
from kamflow.core.errors import ConfigError, InputError
from kamflow.expectations import validate_snapshot
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import load_mapping, read_snapshot
from tests.conftest import AS_OF

REPO_ROOT = Path(__file__).resolve().parents[1]
TELCO_MAPPING = REPO_ROOT / "docs" / "examples" / "telco-churn.mapping.yaml"

# A flat export shaped like IBM's public "Telco customer churn" file; blank TotalCharges (a
# single space, as in the original) for three customers, two of them brand new (tenure 0).
TELCO_COLUMNS = ("customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,"
                 "Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn")
TELCO = TELCO_COLUMNS + """
7590-VHVEG,Female,0,Yes,No,1,No,Month-to-month,Yes,Electronic check,29.85,29.85,No
5575-GNVDE,Male,0,No,No,34,Yes,One year,No,Mailed check,56.95,1889.5,No
3668-QPYBK,Male,0,No,No,2,Yes,Month-to-month,Yes,Mailed check,53.85,108.15,Yes
7795-CFOCW,Male,0,No,No,45,No,One year,No,Bank transfer (automatic),42.3,1840.75,No
9237-HQITU,Female,0,No,No,2,Yes,Month-to-month,Yes,Electronic check,70.7,151.65,Yes
4472-LVYGI,Female,0,Yes,Yes,0,No,Two year,Yes,Bank transfer (automatic),52.55, ,No
9305-CDSKC,Female,0,No,No,8,Yes,Month-to-month,Yes,Electronic check,99.65,820.5,Yes
1452-KIOVK,Male,0,No,Yes,22,Yes,Month-to-month,Yes,Credit card (automatic),89.1,1949.4,No
3115-CZMZD,Male,0,No,Yes,0,Yes,Two year,No,Mailed check,20.25, ,No
6713-OKOMC,Female,0,No,No,10,No,Month-to-month,No,Mailed check,29.75,301.9,No
7892-POOKP,Female,1,Yes,No,28,Yes,Month-to-month,Yes,Electronic check,104.8,3046.05,Yes
6388-TABGU,Male,0,No,Yes,62,Yes,One year,No,Bank transfer (automatic),56.15,3487.95,No
9763-GRSKD,Male,0,Yes,Yes,13,Yes,Month-to-month,Yes,Mailed check,49.95,,No
7469-LKBCI,Male,0,No,No,16,Yes,Two year,No,Credit card (automatic),18.95,326.8,No
8091-TTVAX,Male,0,Yes,No,58,Yes,One year,No,Credit card (automatic),100.35,5681.1,No
0280-XJGEX,Male,0,No,No,49,Yes,Month-to-month,Yes,Bank transfer (automatic),103.7,5036.3,Yes
5129-JLPIS,Male,0,No,No,25,Yes,Month-to-month,Yes,Electronic check,105.5,2686.05,No
3655-SNQYZ,Female,0,Yes,Yes,69,Yes,Two year,No,Credit card (automatic),113.25,7895.15,No
"""
BLANK_TOTAL = {"4472-LVYGI", "3115-CZMZD", "9763-GRSKD"}


@pytest.fixture
def telco_dir(tmp_path: Path) -> Path:
    """A directory holding only the flat telco export."""
    out = tmp_path / "telco"
    out.mkdir()
    (out / "telco_churn.csv").write_text(TELCO, encoding="utf-8")
    return out


def mapping_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# --------------------------------------------------------------------------- done-when scenarios

def test_telco_export_is_ingested_with_only_a_mapping_file(telco_dir: Path, kamflow_home: Path,
                                                           capsys) -> None:
    """The shipped telco mapping turns the flat churn export into kamflow's tables: the blank
    TotalCharges rows are quarantined naming that column, and the batch goes on with the rest."""
    code = main(["validate", "--source", str(telco_dir), "--mapping", str(TELCO_MAPPING),
                 "--as-of", AS_OF.isoformat(), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert report["accounts_in"] == 18 and report["accounts_quarantined"] == 3
    records = pd.read_csv(report["quarantine_file"], dtype=str, keep_default_na=False)
    blank = records.loc[records["column"] == "TotalCharges"]
    assert set(blank["account_id"]) == BLANK_TOTAL
    assert set(blank["table"]) == {"billing"} and set(blank["value"]) == {""}
    assert blank["reason"].str.contains("blank, so average_bill cannot be computed").all()
    assert sorted(blank["row"].astype(int)) == [7, 10, 14]  # lines in telco_churn.csv
    held = records.loc[records["expectation"] == "held_back", "account_id"]
    assert set(held) == BLANK_TOTAL
    assert any("no complaints table" in note for note in report["notes"])


def test_telco_mapping_builds_the_expected_accounts(telco_dir: Path) -> None:
    """Renames, labels, templates, constants, arithmetic and dates from as_of land as documented."""
    snapshot = read_snapshot(telco_dir, load_mapping(TELCO_MAPPING), AS_OF)
    accounts = snapshot.tables["accounts"].set_index("account_id")
    one = accounts.loc["5575-GNVDE"]
    assert one["name_zh"] == "客户 5575-GNVDE" and one["industry"] == "enterprise"
    assert one["contract_start"] == pd.Timestamp("2024-01-25")  # 34 months before as_of
    assert one["contract_end"] == pd.Timestamp("2027-11-25")    # One year term from as_of
    assert one["products_held"] == 2.0 and one["new_services"] == 0.0
    billing = snapshot.tables["billing"].set_index("account_id")
    assert billing.loc["5575-GNVDE", "month"] == pd.Timestamp("2026-10-01")
    assert billing.loc["5575-GNVDE", "billed"] == pytest.approx(1889.5 / 34)
    assert snapshot.tables["complaints"].empty and snapshot.tables["sla_incidents"].empty
    # The export's contract and payment method are operator signals, in their declared levels.
    assert one["signal_contract"] == "one_year" and one["signal_payment_method"] == "mailed_check"
    assert accounts.loc["7795-CFOCW", "signal_payment_method"] == "bank_transfer"


@pytest.mark.slow
def test_telco_export_runs_through_the_flow_with_the_good_rows(telco_dir: Path, prefect_api,
                                                               kamflow_home: Path) -> None:
    """`retention_run(mapping=...)` on the flat export completes; no task names a quarantined
    customer."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.retention import retention_run
    from kamflow.worklist import TaskStore

    with temporary_settings({PREFECT_API_URL: prefect_api}):
        state = retention_run(source=str(telco_dir), as_of=AS_OF.isoformat(),
                              mapping=str(TELCO_MAPPING), return_state=True)
    assert state.is_completed(), state.message
    with TaskStore(f"sqlite:///{kamflow_home / 'kamflow.db'}") as store:
        tasks = store.list_tasks()
        recorded = store.quarantine(str(state.state_details.flow_run_id))
    assert not {t.account_id for t in tasks} & BLANK_TOTAL
    assert {r.account_id for r in recorded if r.column_name == "TotalCharges"} == BLANK_TOTAL


def test_gb18030_export_with_chinese_names_validates_without_a_flag(
        tmp_path: Path, kamflow_home: Path, capsys) -> None:
    """A snapshot exported in GB18030 (every file) is detected, read with correct Chinese names
    and validated exactly like its UTF-8 original."""
    frames = make_snapshot(80, AS_OF, seed=9)
    out = tmp_path / "gbk"
    write_snapshot(frames, out)
    for path in out.glob("*.csv"):
        path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))
    snapshot = read_snapshot(out)
    assert snapshot.tables["accounts"]["name_zh"].tolist() == frames["accounts"]["name_zh"].tolist()
    assert snapshot.tables["accounts"]["region"].tolist() == frames["accounts"]["region"].tolist()
    code = main(["validate", "--source", str(out), "--as-of", AS_OF.isoformat(), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["accounts_in"] == 80
    assert not [r for r in report["results"]
                if r["result"] != "ok" and r["column"] in ("name_zh", "region")]


# --------------------------------------------------------------------------- mapping rules

def test_value_labels_defaults_and_conversions(tmp_path: Path) -> None:
    """Labels map case-insensitively (Yes/No, 是/否, 1/0), blanks take the default, a decimal
    comma and a day-first date format are converted, unlisted kamflow columns are kept."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "incidents.csv").write_text(
        "编号,客户,日期,时长,违约\n"
        "I1,KA1,03/11/2026,\"1.234,5\",是\n"
        "I2,KA1,04/11/2026,\"2,0\",否\n"
        "I3,KA1,05/11/2026,\"0,5\",\n"
        "I4,KA1,06/11/2026,\"3,5\",YES\n", encoding="utf-8")
    write_snapshot(make_snapshot(30, AS_OF, seed=2, bad_share=0.0), src)
    mapping = load_mapping(mapping_file(tmp_path, """
tables:
  sla_incidents:
    file: incidents.csv
    columns:
      incident_id: 编号
      account_id: 客户
      start_date: {from: 日期, format: "%d/%m/%Y"}
      outage_hours: {from: 时长, decimal: ",", thousands: "."}
      sla_breach: {from: 违约, values: {是: 1, 否: 0, "yes": 1}, default: 0}
"""))
    sla = read_snapshot(src, mapping, AS_OF).tables["sla_incidents"]
    assert sla["start_date"].tolist() == list(pd.to_datetime(
        ["2026-11-03", "2026-11-04", "2026-11-05", "2026-11-06"]))
    assert sla["outage_hours"].tolist() == [1234.5, 2.0, 0.5, 3.5]
    assert sla["sla_breach"].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert sla["_row"].tolist() == [2, 3, 4, 5]


def test_unknown_label_is_a_problem_with_its_row(tmp_path: Path) -> None:
    """A label the mapping does not know is recorded (row, export column, value, known labels)
    and quarantined, never guessed."""
    src = tmp_path / "src"
    write_snapshot(make_snapshot(30, AS_OF, seed=2, bad_share=0.0), src)
    incidents = pd.read_csv(src / "sla_incidents.csv", dtype=str)
    incidents["sla_breach"] = np.where(incidents.index == 1, "Maybe", "Yes")
    incidents.to_csv(src / "sla_incidents.csv", index=False)
    mapping = load_mapping(mapping_file(tmp_path, """
tables:
  sla_incidents:
    file: sla_incidents.csv
    columns:
      sla_breach: {from: sla_breach, values: {"Yes": 1, "No": 0}}
"""))
    snapshot = read_snapshot(src, mapping, AS_OF)
    problem = snapshot.problems.to_dict("records")
    assert len(problem) == 1
    assert problem[0]["row"] == 3 and problem[0]["column"] == "sla_breach"
    assert problem[0]["value"] == "Maybe" and "known: yes, no" in problem[0]["reason"]
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF)
    assert problem[0]["account_id"] not in set(outcome.accepted["accounts"]["account_id"])


def test_expression_division_by_zero_is_recorded(tmp_path: Path) -> None:
    """An arithmetic rule that has no value for a row (division by zero) records the row."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "telco.csv").write_text(TELCO, encoding="utf-8")
    mapping = load_mapping(mapping_file(tmp_path, """
tables:
  accounts: {file: telco.csv, columns: {account_id: customerID}}
  billing:
    file: telco.csv
    columns:
      account_id: customerID
      month: {months_before_as_of: 1}
      billed: {expr: "MonthlyCharges / tenure"}
      paid: MonthlyCharges
"""))
    problems = read_snapshot(src, mapping, AS_OF).problems
    zero = problems.loc[problems["reason"].str.contains("division by zero")]
    assert set(zero["account_id"]) == {"4472-LVYGI", "3115-CZMZD"}  # tenure 0
    assert set(zero["column"]) == {"billed"}


@pytest.mark.parametrize(("text", "key", "message"), [
    ("tables: {bills: {file: b.csv}}", "tables.bills", "unknown table"),
    ("tables: {billing: {file: b.csv, columns: {amount: x}}}", "tables.billing.columns.amount",
     "has no column 'amount'"),
    ("tables: {billing: {file: b.csv, columns: {billed: {from: x, value: 1}}}}",
     "tables.billing.columns.billed", "exactly one of"),
    ("tables: {billing: {file: b.csv, columns: {billed: {expr: 'x ** 2'}}}}",
     "tables.billing.columns.billed.expr", "only numbers"),
    ("tables: {billing: {file: b.csv, columns: {billed: {expr: 'open(x)'}}}}",
     "tables.billing.columns.billed.expr", "the functions are"),
    ("tables: {accounts: none}", "tables.accounts", "required"),
    ("tables: {billing: {file: b.xlsx}}", "tables.billing.file", ".csv or .parquet"),
    ("tables: {billing: {file: b.csv, colums: {}}}", "tables.billing.colums", "unknown key"),
])
def test_bad_mapping_is_refused_naming_the_key(tmp_path: Path, text: str, key: str,
                                               message: str) -> None:
    """A mistake in a mapping file is refused on loading with the file, the key and the fix."""
    path = mapping_file(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value) and f"'{key}'" in str(caught.value)


def test_mapped_column_missing_from_the_export_is_named(tmp_path: Path,
                                                        telco_dir: Path) -> None:
    """A mapping that names a column the file does not have fails naming file, column, key and
    the columns that are there."""
    mapping = load_mapping(mapping_file(tmp_path, """
tables:
  accounts: {file: telco_churn.csv, columns: {account_id: CustomerId}}
"""))
    with pytest.raises(InputError, match="column 'CustomerId'") as caught:
        read_snapshot(telco_dir, mapping, AS_OF)
    message = str(caught.value)
    assert "telco_churn.csv" in message and "tables.accounts.columns.account_id" in message
    assert "customerID" in message


# --------------------------------------------------------------------------- Parquet

def test_parquet_snapshot_reads_like_its_csv(tmp_path: Path, snapshot_dir: Path) -> None:
    """`<table>.parquet` instead of `.csv` gives the same typed tables (ids, names, amounts,
    dates), rows numbered from 1."""
    out = tmp_path / "parquet"
    out.mkdir()
    for name in ("accounts", "billing", "complaints", "sla_incidents"):
        frame = pd.read_csv(snapshot_dir / f"{name}.csv", dtype=str, keep_default_na=False,
                            na_values=[""])
        for column in ("billed", "paid", "outage_hours", "products_held"):
            if column in frame:
                frame[column] = pd.to_numeric(frame[column])
        for column in ("contract_start", "opened_date", "start_date"):
            if column in frame:
                frame[column] = pd.to_datetime(frame[column])
        frame.to_parquet(out / f"{name}.parquet")
    from_csv, from_parquet = read_snapshot(snapshot_dir), read_snapshot(out)
    assert from_parquet.files["billing"] == "billing.parquet"
    for name, frame in from_csv.tables.items():
        columns = [c for c in frame.columns if c != "_row"]
        pd.testing.assert_frame_equal(from_parquet.tables[name][columns], frame[columns],
                                      check_dtype=False)
    assert from_parquet.tables["billing"]["_row"].iloc[0] == 1
    assert from_parquet.problems.empty


# --------------------------------------------------------------------------- customer view

def test_account_missing_from_billing_is_kept_and_reported(tmp_path: Path) -> None:
    """An account with no billing row is not dropped: it is scored with zero revenue and the
    customer-view suite reports it as a warning naming the account."""
    src = tmp_path / "src"
    frames = make_snapshot(40, AS_OF, seed=4, bad_share=0.0)
    frames["billing"] = frames["billing"].loc[frames["billing"]["account_id"] != "KA0000007"]
    write_snapshot(frames, src)
    snapshot = read_snapshot(src)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF)
    assert not outcome.stopped and outcome.accounts_quarantined == 0
    view = outcome.view.set_index("account_id")
    assert view.loc["KA0000007", "billing_months"] == 0 and len(view) == 40
    warned = [r for r in outcome.results if r.table == "customer_view" and not r.success]
    assert [(r.column, r.severity, r.unexpected_count) for r in warned] == [
        ("billing_months", "warning", 1)]


# --------------------------------------------------------------------------- quarantine table

def test_quarantine_rows_are_recorded_in_the_task_store(tmp_path: Path) -> None:
    """record_quarantine bulk-inserts a run's rejected rows with every field; an absurd value
    is cut to fit, never refused."""
    from kamflow.worklist import TaskStore

    frame = pd.DataFrame({
        "table": ["billing", "accounts"], "row": [5, np.nan], "account_id": ["KA1", None],
        "column": ["billed", ""], "value": ["abc", "长" * 5000],
        "expectation": ["parse", "expect_column_value_lengths_to_be_between"],
        "reason": ["not a valid float", "broken field"]})
    with TaskStore(f"sqlite:///{tmp_path / 'kamflow.db'}") as store:
        assert store.record_quarantine("run-1", frame) == 2
        assert store.record_quarantine("run-2", frame.iloc[:0]) == 0
        rows = store.quarantine("run-1")
    assert [(r.table_name, r.row, r.account_id, r.column_name, r.expectation) for r in rows] == [
        ("billing", 5, "KA1", "billed", "parse"),
        ("accounts", None, None, "", "expect_column_value_lengths_to_be_between")]
    assert rows[0].value == "abc" and len(rows[1].value) == 2000


def test_shipped_example_mapping_loads() -> None:
    """Every mapping shipped under docs/examples loads without error."""
    shipped = sorted((REPO_ROOT / "docs" / "examples").glob("*.yaml"))
    assert shipped
    for path in shipped:
        assert load_mapping(path).tables, path


# --------------------------------------------------------------------------- operator signals

REALISTIC_SIGNALS = REPO_ROOT / "docs" / "examples" / "realistic-signals.mapping.yaml"


@pytest.fixture
def realistic_dir(tmp_path: Path) -> Path:
    src = tmp_path / "realistic"
    write_snapshot(make_snapshot(300, AS_OF, seed=5, bad_share=0.0, mode="realistic"), src)
    return src


def test_declared_signals_reach_the_customer_view(realistic_dir: Path) -> None:
    """The shipped example's signals are read, typed and carried into the view as
    signal_<name>: levels relabelled, yes/no as 1/0."""
    mapping = load_mapping(REALISTIC_SIGNALS)
    assert [s.name for s in mapping.signals] == ["contract_type", "auto_pay"]
    snapshot = read_snapshot(realistic_dir, mapping, AS_OF)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF,
                                signals=snapshot.signals)
    assert not outcome.stopped and outcome.accounts_quarantined == 0
    view = outcome.view
    assert set(view["signal_contract_type"]) == {"month_to_month", "one_year", "two_year"}
    assert set(view["signal_auto_pay"]) == {0.0, 1.0}
    raw = pd.read_csv(realistic_dir / "accounts.csv", dtype=str).set_index("account_id")
    expected = raw.loc[view["account_id"], "auto_pay"].eq("yes").astype(float).to_numpy()
    assert (view["signal_auto_pay"].to_numpy() == expected).all()


def test_a_bad_level_of_a_categorical_signal_is_quarantined(realistic_dir: Path) -> None:
    """A contract type that is not a declared level fails the expectation made from the
    declaration: the row is quarantined with its file, row, field and the known levels."""
    accounts = pd.read_csv(realistic_dir / "accounts.csv", dtype=str)
    accounts.loc[4, "contract_type"] = "three-year"
    accounts.to_csv(realistic_dir / "accounts.csv", index=False)
    snapshot = read_snapshot(realistic_dir, load_mapping(REALISTIC_SIGNALS), AS_OF)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF,
                                files=snapshot.files, signals=snapshot.signals)
    bad = outcome.quarantine[outcome.quarantine["column"] == "signal_contract_type"]
    assert bad[["table", "row", "account_id", "value"]].to_dict("records") == [
        {"table": "accounts", "row": 6, "account_id": accounts.loc[4, "account_id"],
         "value": "three-year"}]
    assert "month_to_month, one_year, two_year" in bad["reason"].iloc[0]
    failed = [r for r in outcome.results if not r.success and r.column == "signal_contract_type"]
    assert failed and failed[0].source == "accounts.csv"
    assert accounts.loc[4, "account_id"] not in set(outcome.view["account_id"])
    # The signal columns are kamflow's own: the column-set check does not report them.
    assert not any("signal_" in " ".join(r.examples) for r in outcome.results
                   if r.expectation == "expect_table_columns_to_match_set")


def test_a_boolean_signal_that_is_not_yes_or_no_is_a_problem_with_its_row(
        realistic_dir: Path) -> None:
    accounts = pd.read_csv(realistic_dir / "accounts.csv", dtype=str)
    accounts.loc[2, "auto_pay"] = "sometimes"
    accounts.to_csv(realistic_dir / "accounts.csv", index=False)
    snapshot = read_snapshot(realistic_dir, load_mapping(REALISTIC_SIGNALS), AS_OF)
    problem = snapshot.problems.to_dict("records")
    assert len(problem) == 1 and problem[0]["row"] == 4
    assert problem[0]["column"] == "auto_pay" and problem[0]["value"] == "sometimes"
    assert "auto_pay" in problem[0]["reason"]


@pytest.mark.parametrize(("signals", "key", "says"), [
    ("  x: {from: C, type: categorical, label: {zh: 合约, en: contract}}",
     "signals.x", "at least two"),
    ("  x: {from: C, type: colour, label: {zh: 合约, en: contract}}", "signals.x.type", "colour"),
    ("  x: {from: C, type: boolean}", "signals.x.label", "required"),
    ("  x: {from: C, type: boolean, label: {zh: 合约}}", "signals.x.label.en", "required"),
    ("  x: {from: C, type: boolean, label: {zh: a, en: b}, colour: red}", "signals.x.colour",
     "unknown"),
    ("  x: {from: C, type: categorical, levels: [a, b], values: {A: c}, label: {zh: a, en: b}}",
     "signals.x", "not one of the levels"),
    ("  Bad-Name: {from: C, type: boolean, label: {zh: a, en: b}}", "signals.Bad-Name",
     "lower-case"),
    ("  x: {from: C, type: boolean, label: {zh: a, en: 'pays | auto'}}", "signals.x.label.en",
     "may not contain"),
])
def test_a_bad_signal_declaration_is_refused_naming_file_and_key(
        tmp_path: Path, signals: str, key: str, says: str) -> None:
    path = mapping_file(tmp_path, "tables:\n  accounts: {file: accounts.csv}\nsignals:\n"
                        + signals + "\n")
    with pytest.raises(ConfigError) as error:
        load_mapping(path)
    assert str(path) in str(error.value) and f"'{key}" in str(error.value)
    assert says in str(error.value)


def test_a_numeric_signal_out_of_range_or_blank_when_required_is_quarantined(
        realistic_dir: Path, tmp_path: Path) -> None:
    """min/max and required become expectations; a non-number is a problem at intake."""
    accounts = pd.read_csv(realistic_dir / "accounts.csv", dtype=str)
    accounts["visits"] = "3"
    accounts.loc[1, "visits"] = "-2"
    accounts.loc[3, "visits"] = ""
    accounts.loc[5, "visits"] = "many"
    accounts.to_csv(realistic_dir / "accounts.csv", index=False)
    mapping = load_mapping(mapping_file(tmp_path, """
tables:
  accounts: {file: accounts.csv}
signals:
  visits:
    from: visits
    type: numeric
    min: 0
    max: 50
    required: true
    label: {zh: 拜访次数, en: visits}
"""))
    snapshot = read_snapshot(realistic_dir, mapping, AS_OF)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF,
                                files=snapshot.files, signals=snapshot.signals)
    held = outcome.quarantine[outcome.quarantine["column"].isin(["signal_visits", "visits"])]
    by_row: dict[int, set[str]] = {}
    for record in held.to_dict("records"):
        by_row.setdefault(int(record["row"]), set()).add(record["expectation"])
    assert by_row == {3: {"expect_column_values_to_be_between"},
                      5: {"expect_column_values_to_not_be_null"},
                      # not a number: recorded at intake, then blank for the expectations
                      7: {"parse", "expect_column_values_to_not_be_null"}}
    assert held.loc[held["expectation"] == "parse", "value"].tolist() == ["many"]
    assert len(outcome.view) == 300 - 3
