"""A corpus of broken exports, each with the outcome staff must see: stop, quarantine or warn.

Most cases run ``kamflow validate`` in process (the real command, its real exit code and output);
two run it as a subprocess, and two go through the real flow on a Prefect server to prove that a
stopped batch creates no task and sends no email.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from kamflow.cli import main
from kamflow.generate import make_snapshot, write_snapshot
from tests.conftest import AS_OF

STOPPED = "no task was created and no email was sent"


@pytest.fixture(scope="module")
def clean_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-account snapshot without planted bad rows, written once."""
    out = tmp_path_factory.mktemp("clean-corpus")
    write_snapshot(make_snapshot(60, AS_OF, seed=3, bad_share=0.0), out)
    (out / "ground_truth.csv").unlink()
    return out


@pytest.fixture
def source(tmp_path: Path, clean_dir: Path) -> Path:
    """A fresh copy of the clean snapshot for one case to break."""
    return Path(shutil.copytree(clean_dir, tmp_path / "snapshot"))


@pytest.fixture
def validate(kamflow_home: Path, capsys: pytest.CaptureFixture[str]):
    """Run `kamflow validate --json` in process; returns (exit code, report or None, stderr)."""
    def run(source: Path, *extra: str) -> tuple[int, dict | None, str]:
        code = main(["validate", "--source", str(source), "--as-of", AS_OF.isoformat(), "--json",
                     *extra])
        out, err = capsys.readouterr()
        return code, (json.loads(out) if out.strip() else None), err
    return run


# --------------------------------------------------------------------------- editing helpers

def rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write(path: Path, table: list[list[str]], encoding: str = "utf-8") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(table)
    path.write_bytes(buffer.getvalue().encode(encoding))


def set_cell(path: Path, line: int, column: str, value: str) -> None:
    table = rows(path)
    table[line - 1][table[0].index(column)] = value
    write(path, table)


def set_column(path: Path, column: str, value: Callable[[str], str]) -> None:
    table = rows(path)
    at = table[0].index(column)
    for row in table[1:]:
        row[at] = value(row[at])
    write(path, table)


def future(days: int) -> str:
    return (AS_OF + dt.timedelta(days=days)).isoformat()


def failed(report: dict, table: str, column: str, expectation: str) -> dict:
    """The one result row for (table, column, expectation) that did not pass."""
    found = [r for r in report["results"] if r["table"] == table and r["column"] == column
             and r["expectation"] == expectation and r["result"] != "ok"]
    assert len(found) == 1, (table, column, expectation, [
        r for r in report["results"] if r["result"] != "ok"])
    return found[0]


def quarantine(report: dict) -> pd.DataFrame:
    return pd.read_csv(report["quarantine_file"], dtype=str, keep_default_na=False)


# --------------------------------------------------------------------------- stop: refused files

def _mixed_encoding(src: Path) -> None:
    path = src / "accounts.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    half = len(lines) // 2  # a UTF-8 export with a GB18030 one pasted under it
    path.write_bytes("".join(lines[:half]).encode("utf-8")
                     + "".join(lines[half:]).encode("gb18030"))


def _both_csv_and_parquet(src: Path) -> None:
    pd.read_csv(src / "complaints.csv", dtype=str).to_parquet(src / "complaints.parquet")


REFUSED = {
    # kind: (break the snapshot, words the one-paragraph message must contain)
    "missing file": (lambda s: (s / "billing.csv").unlink(), ["billing.csv", "missing"]),
    "empty file": (lambda s: (s / "accounts.csv").write_bytes(b""), ["accounts.csv", "empty"]),
    "malformed quoting": (
        lambda s: (s / "billing.csv").open("a", encoding="utf-8").write(
            'KA0000001,"2026-10,1.0,1.0\n'), ["billing.csv", "well-formed CSV"]),
    "mixed encodings": (_mixed_encoding, ["accounts.csv", "mixes encodings", "line 2",
                                          "line 31"]),
    "UTF-16 export": (lambda s: (s / "complaints.csv").write_bytes(
        (s / "complaints.csv").read_text(encoding="utf-8").encode("utf-16")),
        ["complaints.csv", "UTF-16"]),
    "not a known encoding": (lambda s: (s / "accounts.csv").write_bytes(
        (s / "accounts.csv").read_bytes()[:200] + b"\xff\xfe\xff,x\n"),
        ["accounts.csv", "cannot be decoded"]),
    "header names a column twice": (
        lambda s: write(s / "billing.csv", [["account_id", "month", "billed", "billed", "paid"],
                                            ["KA0000001", "2026-10", "1", "1", "1"]]),
        ["billing.csv", "'billed' twice"]),
    "csv and parquet of one table": (_both_csv_and_parquet, ["complaints.csv",
                                                             "complaints.parquet"]),
}


@pytest.mark.parametrize("kind", list(REFUSED))
def test_unreadable_file_is_refused_naming_it(kind: str, source: Path, validate) -> None:
    """A file that cannot be read as a table stops everything (exit 2) with one paragraph
    naming the file and what is wrong, never a traceback."""
    breaker, words = REFUSED[kind]
    breaker(source)
    code, report, err = validate(source)
    assert code == 2 and report is None
    assert err.startswith("kamflow: ") and len(err.strip().splitlines()) == 1
    for word in words:
        assert word in err, (word, err)
    assert "Traceback" not in err


# --------------------------------------------------------------------------- stop: validation

def _stale(src: Path) -> None:
    # Every billing month six months older: the export stopped updating.
    set_column(src / "billing.csv", "month",
               lambda m: (pd.Period(m, "M") - 6).strftime("%Y-%m"))


def _all_null_required(src: Path) -> None:
    set_column(src / "accounts.csv", "region", lambda _: "")


STOPPED_BY = {
    # kind: (break it, table, column, expectation that stops the batch)
    "header only": (lambda s: write(s / "accounts.csv", rows(s / "accounts.csv")[:1]),
                    "accounts", "", "expect_table_row_count_to_be_between"),
    "missing required column": (
        lambda s: pd.read_csv(s / "billing.csv", dtype=str).drop(columns="paid").to_csv(
            s / "billing.csv", index=False), "billing", "paid", "expect_column_to_exist"),
    "stale snapshot": (_stale, "billing", "month", "expect_column_max_to_be_between"),
}


@pytest.mark.parametrize("kind", list(STOPPED_BY))
def test_broken_batch_is_stopped_naming_the_expectation(kind: str, source: Path,
                                                        validate) -> None:
    """A batch-level failure stops the batch (exit 3): the message names the file, column and
    failed expectation, and says nothing was sent."""
    breaker, table, column, expectation = STOPPED_BY[kind]
    breaker(source)
    code, report, err = validate(source)
    assert code == 3
    assert report["stopped"] and STOPPED in err
    assert failed(report, table, column, expectation)["result"] == "STOP"
    assert f"{table}.csv: {expectation}" in err
    assert (f"column {column!r}" in err) if column else True
    assert "Traceback" not in err


def test_all_null_required_column_stops_by_share(source: Path, validate) -> None:
    """A required column blank in every row quarantines every account, which is more than
    the allowed share: the batch stops and the message says why and which column."""
    _all_null_required(source)
    code, report, err = validate(source)
    assert code == 3
    assert "60 of 60 accounts (100%)" in err and "'region'" in err
    assert failed(report, "accounts", "region", "expect_column_values_to_not_be_null")


# --------------------------------------------------------------------------- quarantine

def _duplicate_complaint_id(src: Path) -> None:
    path = src / "complaints.csv"
    table = rows(path)
    table[3][0] = table[2][0]  # line 4 repeats line 3's ticket number
    write(path, table)


def _gap_in_billing(src: Path) -> None:
    path = src / "billing.csv"
    table = rows(path)
    del table[6]  # KA0000001's 6th month (line 7): its 7th month now follows a gap
    write(path, table)


QUARANTINED = {
    # kind: (break it, table, line(s), column, expectation, value, words in the reason)
    "wrong type": (lambda s: set_cell(s / "billing.csv", 5, "billed", "abc"),
                   "billing", [5], "billed", "parse", "abc", "not a valid float"),
    "decimal comma": (lambda s: set_cell(s / "billing.csv", 9, "paid", "1234,56"),
                      "billing", [9], "paid", "parse", "1234,56", "decimal comma"),
    "negative amount": (lambda s: set_cell(s / "billing.csv", 4, "paid", "-10.5"),
                        "billing", [4], "paid", "expect_column_values_to_be_between", "-10.5",
                        "cannot be negative"),
    "duplicate ids": (_duplicate_complaint_id, "complaints", [3, 4], "complaint_id",
                      "expect_column_values_to_be_unique", None, "unique"),
    "orphan row": (lambda s: set_cell(s / "sla_incidents.csv", 3, "account_id", "KA9999999"),
                   "sla_incidents", [3], "account_id", "expect_column_values_to_be_in_set",
                   "KA9999999", "Referential integrity"),
    "date in the future": (lambda s: set_cell(s / "complaints.csv", 2, "opened_date",
                                              future(10)),
                           "complaints", [2], "opened_date",
                           "expect_column_values_to_be_between", future(10), "future"),
    "billing month in the future": (
        lambda s: set_cell(s / "billing.csv", 13, "month", "2027-03"), "billing", [13],
        "month", "expect_column_values_to_be_between", "2027-03-01", "future"),
    "absurdly long field": (lambda s: set_cell(s / "accounts.csv", 6, "name_zh", "长" * 5000),
                            "accounts", [6], "name_zh",
                            "expect_column_value_lengths_to_be_between", "长" * 5000,
                            "broken field"),
    "contract ends before it starts": (
        lambda s: set_cell(s / "accounts.csv", 3, "contract_end", "2001-01-01"), "accounts",
        [3], "contract_end,contract_start", "expect_column_pair_values_a_to_be_greater_than_b",
        "2001-01-01", "cannot end before it starts"),
    "gap in billing months": (_gap_in_billing, "billing", [7], "month",
                              "expect_column_values_to_be_in_set", "2026-05-01", "Continuity"),
    "blank required field": (lambda s: set_cell(s / "accounts.csv", 8, "manager_email", ""),
                             "accounts", [8], "manager_email",
                             "expect_column_values_to_not_be_null", "", "emailed"),
    "NUL in a name": (lambda s: set_cell(s / "accounts.csv", 5, "name_zh", "中国\x00银行"),
                      "accounts", [5], "name_zh", "expect_column_values_to_not_match_regex",
                      "中国\x00银行", "control character"),
    "escape character in a manager's name": (
        lambda s: set_cell(s / "accounts.csv", 7, "account_manager", "王\x1b[31m芳"),
        "accounts", [7], "account_manager", "expect_column_values_to_not_match_regex",
        "王\x1b[31m芳", "control character"),
    "line breaks faking email lines in a name": (
        lambda s: set_cell(s / "accounts.csv", 6, "name_zh", "中国银行\r\nBcc: all@evil.example"),
        "accounts", [6], "name_zh", "expect_column_values_to_not_match_regex",
        "中国银行\r\nBcc: all@evil.example", "fake lines"),
    "line break in a manager's name": (
        lambda s: set_cell(s / "accounts.csv", 8, "account_manager", "王芳\n\n紧急：请点击"),
        "accounts", [8], "account_manager", "expect_column_values_to_not_match_regex",
        "王芳\n\n紧急：请点击", "control character"),
    "tab in an English name": (
        lambda s: set_cell(s / "accounts.csv", 14, "name_en", "Bank\tof China"), "accounts",
        [14], "name_en", "expect_column_values_to_not_match_regex", "Bank\tof China",
        "control character"),
    "Unicode line separator in a region": (
        lambda s: set_cell(s / "accounts.csv", 17, "region", "北京\u2028Bcc: x"), "accounts",
        [17], "region", "expect_column_values_to_not_match_regex", "北京\u2028Bcc: x",
        "control character"),
    "non-ASCII email address": (
        lambda s: set_cell(s / "accounts.csv", 9, "manager_email", "wang@运营商.cn"), "accounts",
        [9], "manager_email", "expect_column_values_to_match_regex", "wang@运营商.cn", "xn--"),
    "address without a domain": (
        lambda s: set_cell(s / "accounts.csv", 18, "manager_email", "wang.operator.cn"),
        "accounts", [18], "manager_email", "expect_column_values_to_match_regex",
        "wang.operator.cn", "emailed"),
    "unknown industry": (lambda s: set_cell(s / "accounts.csv", 4, "industry", "farming"),
                         "accounts", [4], "industry", "expect_column_values_to_be_in_set",
                         "farming", "known industry"),
    "blank company name": (lambda s: set_cell(s / "accounts.csv", 10, "name_zh", ""),
                           "accounts", [10], "name_zh", "expect_column_values_to_not_be_null",
                           "", "name the account"),
    "blank account manager": (lambda s: set_cell(s / "accounts.csv", 11, "account_manager", ""),
                              "accounts", [11], "account_manager",
                              "expect_column_values_to_not_be_null", "", "account manager"),
    "count out of range": (lambda s: set_cell(s / "accounts.csv", 12, "products_held", "5000"),
                           "accounts", [12], "products_held",
                           "expect_column_values_to_be_between", None, "count"),
    "negative cost to serve": (lambda s: set_cell(s / "accounts.csv", 13, "cost_to_serve", "-5"),
                               "accounts", [13], "cost_to_serve",
                               "expect_column_values_to_be_between", None, "cannot be negative"),
    "negative headcount": (lambda s: set_cell(s / "accounts.csv", 16, "employees", "-3"),
                           "accounts", [16], "employees", "expect_column_values_to_be_between",
                           None, "headcount"),
    "last contact after the snapshot": (
        lambda s: set_cell(s / "accounts.csv", 15, "last_contact_date", future(5)), "accounts",
        [15], "last_contact_date", "expect_column_values_to_be_between", future(5), "wrong date"),
    "negative outage": (lambda s: set_cell(s / "sla_incidents.csv", 3, "outage_hours", "-2"),
                        "sla_incidents", [3], "outage_hours",
                        "expect_column_values_to_be_between", None, "cannot be negative"),
    "incident in the future": (
        lambda s: set_cell(s / "sla_incidents.csv", 2, "start_date", future(3)),
        "sla_incidents", [2], "start_date", "expect_column_values_to_be_between", future(3),
        "future"),
    "blank ticket number": (lambda s: set_cell(s / "complaints.csv", 5, "complaint_id", ""),
                            "complaints", [5], "complaint_id",
                            "expect_column_values_to_not_be_null", "", "ticket number"),
    "bill of two billion": (lambda s: set_cell(s / "billing.csv", 6, "billed", "2000000000"),
                            "billing", [6], "billed", "expect_column_values_to_be_between",
                            None, "unit or column error"),
}


@pytest.mark.parametrize("kind", list(QUARANTINED))
def test_bad_row_is_quarantined_and_the_batch_goes_on(kind: str, source: Path,
                                                      validate) -> None:
    """A bad row is quarantined with its file, line, column, value, expectation and reason; its
    account is held back and the batch goes on (exit 0)."""
    breaker, table, lines, column, expectation, value, words = QUARANTINED[kind]
    breaker(source)
    code, report, err = validate(source)
    assert code == 0, err
    assert not report["stopped"] and err == ""
    records = quarantine(report)
    mine = records.loc[(records["table"] == table) & (records["expectation"] == expectation)
                       & (records["column"] == column)]
    assert sorted(mine["row"].astype(int)) == lines
    if value is not None:
        assert set(mine["value"]) == {value}
    assert mine["reason"].str.contains(words).all(), mine["reason"].tolist()
    # Its account is held back; an orphan row has no account to hold.
    known = set(pd.read_csv(source / "accounts.csv", dtype=str)["account_id"])
    held = set(mine["account_id"]) & known
    assert report["accounts_quarantined"] == len(held)
    assert bool(held) is (kind != "orphan row")


# --------------------------------------------------------------------------- warn

def _swapped_amounts(src: Path) -> None:
    path = src / "billing.csv"
    table = rows(path)
    table[0] = ["account_id", "month", "paid", "billed"]  # the export swapped the two headers
    for row in table[1:]:
        row[2] = f"{float(row[2]) * 1.2:.2f}"  # so "paid" now exceeds "billed" everywhere
    write(path, table)


WARNED = {
    # kind: (break it, table, column, expectation, an example shown)
    "unexpected extra column": (
        lambda s: pd.read_csv(s / "complaints.csv", dtype=str).assign(note="x").to_csv(
            s / "complaints.csv", index=False), "complaints", "",
        "expect_table_columns_to_match_set", "unexpected note"),
    "all-null optional column": (lambda s: set_column(s / "accounts.csv", "employees",
                                                      lambda _: ""),
                                 "accounts", "employees", "expect_column_values_to_not_be_null",
                                 "(blank)"),
    "billed and paid swapped": (_swapped_amounts, "billing", "billed,paid",
                                "expect_column_pair_values_a_to_be_greater_than_b", None),
    "unknown region": (lambda s: set_cell(s / "accounts.csv", 2, "region", "Beijing"),
                       "accounts", "region", "expect_column_values_to_be_in_set", "Beijing"),
    "unknown complaint category": (
        lambda s: set_cell(s / "complaints.csv", 3, "category", "weather"), "complaints",
        "category", "expect_column_values_to_be_in_set", "weather"),
    "English names mostly blank": (lambda s: set_column(s / "accounts.csv", "name_en",
                                                        lambda _: ""),
                                   "accounts", "name_en", "expect_column_values_to_not_be_null",
                                   "(blank)"),
}


@pytest.mark.parametrize("kind", list(WARNED))
def test_suspicious_export_is_reported_as_a_warning(kind: str, source: Path, validate) -> None:
    """A suspicious but usable export is reported (a warning with an example) and nothing is
    quarantined for it: the batch goes on whole."""
    breaker, table, column, expectation, example = WARNED[kind]
    breaker(source)
    code, report, err = validate(source)
    assert code == 0, err
    result = failed(report, table, column, expectation)
    assert result["severity"] == "warning" and result["result"] == "warning"
    if example:
        assert example in result["examples"]
    assert report["accounts_quarantined"] == 0 and report["quarantine_rows"] == 0


def test_utf8_bom_is_read_as_if_it_were_not_there(source: Path, validate) -> None:
    """A UTF-8 byte-order mark (Excel's "CSV UTF-8") changes nothing: every expectation passes."""
    for name in ("accounts.csv", "billing.csv"):
        (source / name).write_bytes(b"\xef\xbb\xbf" + (source / name).read_bytes())
    code, report, _ = validate(source)
    assert code == 0
    assert report["quarantine_rows"] == 0
    assert [r for r in report["results"] if r["result"] != "ok"] == []


# --------------------------------------------------------------------------- as a user runs it

def kamflow(*args: str, home: Path, api: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAMFLOW_HOME": str(home)}
    env.pop("PREFECT_HOME", None)
    if api:
        env["PREFECT_API_URL"] = api
    return subprocess.run([sys.executable, "-m", "kamflow.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_validate_command_prints_counts_and_where_reports_went(source: Path,
                                                               tmp_path: Path) -> None:
    """`kamflow validate` (a real process) prints a count per expectation and the paths of the
    offline report (en, zh-CN), the quarantine, the JSON report and the Data Docs, which exist;
    a bad row does not stop it."""
    set_cell(source / "billing.csv", 5, "billed", "-1")
    home = tmp_path / "home"
    result = kamflow("validate", "--source", str(source), "--as-of", AS_OF.isoformat(),
                     home=home)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "quarantined" in out and "billing.billed" in out and "e.g. -1" in out
    assert "validated 60 accounts: 59 accepted, 1 quarantined" in out
    paths = dict(line.split(": ", 1) for line in out.splitlines()
                 if line.startswith(("offline report", "quarantine file", "validation report",
                                     "data docs")))
    assert Path(paths["offline report"]).is_file()
    assert "billing" in Path(paths["offline report (中文)"]).read_text(encoding="utf-8")
    assert Path(paths["quarantine file"]).is_file()
    assert Path(paths["validation report"]).is_file()
    docs = paths["data docs (need internet access)"]
    assert docs.startswith("file://")
    index = Path(docs.removeprefix("file://"))
    assert index.is_file() and "billing" in index.read_text(encoding="utf-8")
    assert not (home / "kamflow.db").exists()  # validate touches no task store


def test_validate_command_exits_3_on_a_stopped_batch(source: Path, tmp_path: Path) -> None:
    """A batch that would be stopped exits 3 with the reason on stderr, no traceback."""
    (source / "accounts.csv").write_text(
        (source / "accounts.csv").read_text(encoding="utf-8").splitlines()[0] + "\n",
        encoding="utf-8")
    result = kamflow("validate", "--source", str(source), "--as-of", AS_OF.isoformat(),
                     home=tmp_path / "home")
    assert result.returncode == 3
    assert "accounts.csv: expect_table_row_count_to_be_between" in result.stderr
    assert STOPPED in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


# --------------------------------------------------------------------------- the real flow

@pytest.fixture
def flow_run(prefect_api, kamflow_home):
    """retention_run in process against the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.retention import retention_run

    def run(source: Path, **kwargs):
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            return retention_run(source=str(source), as_of=AS_OF.isoformat(),
                                 return_state=True, **kwargs)
    return run


def artifacts(prefect_api: str, state) -> dict:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api}), \
            get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(str(
                state.state_details.flow_run_id))])))
    return {a.key: a for a in found}


@pytest.mark.slow
def test_mostly_bad_export_through_the_flow_sends_nothing_and_keeps_the_evidence(
        source: Path, flow_run, prefect_api, kamflow_home: Path) -> None:
    """Through the real flow, a batch with future dates in 40% of accounts is stopped: no task,
    no email; the rejected rows are in quarantine.csv and the database, the Data Docs are built
    and both markdown artifacts link them."""
    from kamflow.worklist import TaskStore

    set_column(source / "accounts.csv", "last_contact_date",
               lambda d: future(30) if d and int(d[-1]) % 5 < 2 else d)
    state = flow_run(source)
    assert state.is_failed() and STOPPED in state.message
    assert "last_contact_date" in state.message
    with TaskStore(f"sqlite:///{kamflow_home / 'kamflow.db'}") as store:
        assert store.counts()["tasks"] == 0 and store.counts()["emails"] == 0
        run_id = str(state.state_details.flow_run_id)
        recorded = store.quarantine(run_id)
    assert not list((kamflow_home / "outbox").glob("*.eml"))
    csv_rows = pd.read_csv(kamflow_home / "quarantine" / run_id / "quarantine.csv")
    assert len(recorded) == len(csv_rows) > 0
    assert {r.expectation for r in recorded} == {"expect_column_values_to_be_between"}
    assert all(r.column_name == "last_contact_date" and r.row and r.account_id
               for r in recorded)
    docs = kamflow_home / "reports" / run_id / "data_docs" / "index.html"
    assert docs.is_file()
    found = artifacts(prefect_api, state)
    assert docs.as_uri() in found["validation-results"].data
    assert "| accounts | expect_column_values_to_be_between | last_contact_date |" in \
        found["validation-results"].data
    assert docs.as_uri() in found["retention-summary"].data
