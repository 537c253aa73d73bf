"""Tests of intake: reading a snapshot directory (reader) and the single customer view (view)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kamflow.core.errors import InputError
from kamflow.intake import TABLES, build_customer_view, read_snapshot
from kamflow.intake.schema import SEGMENT_BY_INDUSTRY
from kamflow.intake.view import VIEW_COLUMNS

# --------------------------------------------------------------------------- helpers


def read_rows(path: Path, encoding: str = "utf-8") -> list[list[str]]:
    with path.open(encoding=encoding, newline="") as handle:
        return list(csv.reader(handle))


def write_rows(path: Path, rows: list[list[str]], encoding: str = "utf-8") -> None:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))


def set_cell(path: Path, line: int, column: str, value: str) -> str:
    """Overwrite one cell (``line`` as in an editor: header = 1); return that row's account_id."""
    rows = read_rows(path)
    header = rows[0]
    rows[line - 1][header.index(column)] = value
    write_rows(path, rows)
    return rows[line - 1][header.index("account_id")]


# --------------------------------------------------------------------------- reader


def test_reads_every_table_of_a_generated_snapshot(snapshot_dir: Path, frames: dict) -> None:
    """Each of the four pipeline tables is read with exactly the rows the generator wrote."""
    snapshot = read_snapshot(snapshot_dir)
    assert snapshot.rows() == {name: len(frames[name]) for name in TABLES}
    assert "ground_truth" not in snapshot.tables
    assert snapshot.problems.empty
    assert snapshot.notes == []


def test_typed_columns_numbers_are_float_and_dates_are_datetime(snapshot_dir: Path) -> None:
    """Every schema column gets its declared type: numbers float64, dates and months datetime."""
    snapshot = read_snapshot(snapshot_dir)
    for table in TABLES.values():
        frame = snapshot.tables[table.name]
        for column in table.columns:
            if column.name not in frame and not column.required:
                continue  # an optional column the generated snapshot does not carry
            dtype = frame[column.name].dtype
            if column.kind in ("int", "float", "flag"):
                assert dtype == np.float64, (table.name, column.name, dtype)
            elif column.kind in ("date", "month"):
                assert pd.api.types.is_datetime64_any_dtype(dtype), (table.name, column.name)
            else:
                assert pd.api.types.is_string_dtype(dtype), (table.name, column.name, dtype)


def test_values_survive_the_round_trip(snapshot_dir: Path, frames: dict) -> None:
    """Ids, Chinese names, amounts and dates read back equal to what was generated."""
    snapshot = read_snapshot(snapshot_dir)
    accounts, billing = snapshot.tables["accounts"], snapshot.tables["billing"]
    assert accounts["account_id"].tolist() == frames["accounts"]["account_id"].tolist()
    assert accounts["name_zh"].tolist() == frames["accounts"]["name_zh"].tolist()
    np.testing.assert_allclose(billing["billed"], frames["billing"]["billed"])
    assert (accounts["contract_end"].to_numpy(dtype="datetime64[D]")
            == frames["accounts"]["contract_end"].to_numpy(dtype="datetime64[D]")).all()
    assert billing["month"].iloc[0] == pd.Timestamp(frames["billing"]["month"].iloc[0] + "-01")


def test_row_numbers_are_csv_line_numbers(snapshot_dir: Path) -> None:
    """`_row` is the line of the source file: the first data row is line 2 (header = line 1)."""
    billing = read_snapshot(snapshot_dir).tables["billing"]
    assert billing["_row"].tolist() == list(range(2, len(billing) + 2))


@pytest.mark.parametrize("file_name", ["accounts.csv", "billing.csv"])
def test_missing_required_file_is_refused_naming_it(snapshot_dir: Path, file_name: str) -> None:
    """A missing required file stops intake with an InputError that names the file."""
    (snapshot_dir / file_name).unlink()
    with pytest.raises(InputError, match=f"{file_name}.*missing"):
        read_snapshot(snapshot_dir)


@pytest.mark.parametrize("table", ["complaints", "sla_incidents"])
def test_missing_optional_file_is_an_empty_table_with_a_note(snapshot_dir: Path,
                                                             table: str) -> None:
    """A missing optional file gives an empty, fully typed table and a note saying so."""
    (snapshot_dir / f"{table}.csv").unlink()
    snapshot = read_snapshot(snapshot_dir)
    frame = snapshot.tables[table]
    assert frame.empty
    assert set(TABLES[table].column_names) <= set(frame.columns)
    assert any(f"{table}.csv" in note for note in snapshot.notes)
    assert len(snapshot.tables["accounts"]) == 600  # the rest is read as usual


def test_missing_snapshot_directory_is_refused(tmp_path: Path) -> None:
    """A snapshot path that is not a directory is an InputError naming it."""
    with pytest.raises(InputError, match="nowhere"):
        read_snapshot(tmp_path / "nowhere")


@pytest.mark.parametrize("file_name", ["accounts.csv", "billing.csv", "complaints.csv"])
def test_zero_byte_file_is_refused_as_empty(snapshot_dir: Path, file_name: str) -> None:
    """A 0-byte file (not even a header) is an InputError naming the file and saying empty."""
    (snapshot_dir / file_name).write_bytes(b"")
    with pytest.raises(InputError, match="empty") as caught:
        read_snapshot(snapshot_dir)
    assert file_name in str(caught.value)


@pytest.mark.parametrize("broken_line", [
    'KA0000001,"unterminated quote,x,y\n',   # a quote that never closes
    "KA0000001,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n",  # more fields than the header
], ids=["open-quote", "extra-fields"])
def test_malformed_csv_is_refused_naming_the_file(snapshot_dir: Path, broken_line: str) -> None:
    """Broken CSV structure is an InputError naming the file, never silently shifted columns."""
    path = snapshot_dir / "accounts.csv"
    path.write_text(path.read_text(encoding="utf-8") + broken_line, encoding="utf-8")
    with pytest.raises(InputError, match="well-formed CSV") as caught:
        read_snapshot(snapshot_dir)
    assert "accounts.csv" in str(caught.value)


def _append_to_data_rows(path: Path, suffix: str) -> None:
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([header, *(row + suffix for row in rows)]) + "\n",
                    encoding="utf-8")


def test_extra_field_on_every_row_is_refused(snapshot_dir: Path) -> None:
    """Rows one field longer than the header are refused, not read with every column shifted."""
    _append_to_data_rows(snapshot_dir / "accounts.csv", ",surplus")
    with pytest.raises(InputError, match="more fields than the header") as caught:
        read_snapshot(snapshot_dir)
    assert "accounts.csv" in str(caught.value)


def test_trailing_comma_on_every_row_is_tolerated(snapshot_dir: Path, frames: dict) -> None:
    """A trailing comma on each data row (a common export quirk) keeps columns in place."""
    _append_to_data_rows(snapshot_dir / "billing.csv", ",")
    billing = read_snapshot(snapshot_dir).tables["billing"]
    assert billing["account_id"].tolist() == frames["billing"]["account_id"].tolist()
    np.testing.assert_allclose(billing["paid"], frames["billing"]["paid"])


def test_gb18030_accounts_file_is_read_without_a_flag(snapshot_dir: Path, frames: dict) -> None:
    """A GB18030/GBK export (common from Chinese systems) is detected and decoded correctly."""
    path = snapshot_dir / "accounts.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("gb18030"))
    with pytest.raises(UnicodeDecodeError):
        path.read_bytes().decode("utf-8")  # precondition: really not UTF-8
    accounts = read_snapshot(snapshot_dir).tables["accounts"]
    assert accounts["name_zh"].tolist() == frames["accounts"]["name_zh"].tolist()
    assert accounts["region"].tolist() == frames["accounts"]["region"].tolist()
    assert accounts["account_manager"].tolist() == frames["accounts"]["account_manager"].tolist()


def test_utf8_bom_does_not_leak_into_the_first_column_name(snapshot_dir: Path,
                                                           frames: dict) -> None:
    """A UTF-8 file with a byte-order mark reads `account_id`, not `\\ufeffaccount_id`."""
    path = snapshot_dir / "accounts.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    accounts = read_snapshot(snapshot_dir).tables["accounts"]
    assert list(accounts.columns)[1] == "account_id"
    assert not any("\ufeff" in column for column in accounts.columns)
    assert accounts["account_id"].tolist() == frames["accounts"]["account_id"].tolist()


@pytest.mark.parametrize(("table", "line", "column", "value", "reason"), [
    ("billing", 5, "billed", "abc", "not a valid float"),
    ("billing", 9, "paid", "1,000.00", "not a valid float"),
    ("billing", 3, "month", "2026-13", "not a valid month"),
    ("accounts", 4, "contract_start", "2021/03/05", "not a valid date"),
    ("accounts", 7, "products_held", "three", "not a valid int"),
    ("sla_incidents", 2, "sla_breach", "maybe", "not a valid flag"),
    ("complaints", 6, "opened_date", "2026-02-30", "not a valid date"),
])
def test_unparseable_cell_is_recorded_with_its_place(snapshot_dir: Path, table: str, line: int,
                                                     column: str, value: str,
                                                     reason: str) -> None:
    """An unparseable cell becomes missing and is recorded with its line, column and reason."""
    account_id = set_cell(snapshot_dir / f"{table}.csv", line, column, value)
    snapshot = read_snapshot(snapshot_dir)
    assert snapshot.problems.to_dict("records") == [{
        "table": table, "row": line, "account_id": account_id, "column": column,
        "value": value, "reason": snapshot.problems["reason"].iloc[0]}]
    assert reason in snapshot.problems["reason"].iloc[0]
    frame = snapshot.tables[table]
    assert pd.isna(frame.loc[frame["_row"] == line, column]).all()


@pytest.mark.parametrize(("text", "expected"), [
    ("1", 1.0), ("0", 0.0), ("yes", 1.0), ("No", 0.0), ("TRUE", 1.0), ("是", 1.0), ("否", 0.0),
])
def test_sla_breach_flag_spellings(snapshot_dir: Path, text: str, expected: float) -> None:
    """The SLA breach flag accepts 1/0, yes/no, true/false and 是/否, case-insensitively."""
    set_cell(snapshot_dir / "sla_incidents.csv", 2, "sla_breach", text)
    snapshot = read_snapshot(snapshot_dir)
    assert snapshot.problems.empty
    assert snapshot.tables["sla_incidents"]["sla_breach"].iloc[0] == expected


# --------------------------------------------------------------------------- customer view

AS_OF = dt.date(2026, 11, 25)


def day(ago: int) -> pd.Timestamp:
    return pd.Timestamp(AS_OF) - pd.Timedelta(days=ago)


def tiny_tables() -> dict[str, pd.DataFrame]:
    """Three accounts with known answers (see the view tests)."""
    accounts = pd.DataFrame({
        "account_id": ["KA1", "KA2", "KA3"],
        "name_zh": ["北京市公安局", "深圳华信科技有限公司", "成都博物馆"],
        "name_en": ["Beijing PSB", np.nan, "Chengdu Museum"],
        "industry": ["government", "it", "culture"],
        "region": ["北京", "广东", "四川"],
        "account_manager": ["王芳", "李伟", "张静"],
        "manager_email": ["wang.fang.1@operator.example", "li.wei.2@operator.example",
                          "zhang.jing.3@operator.example"],
        "contract_start": pd.to_datetime(["2020-11-25", "2024-11-25", "2026-05-25"]),
        "contract_end": pd.to_datetime(["2027-01-04", "2026-11-15", "2029-05-25"]),
        "products_held": [3.0, 1.0, 2.0],
        "new_services": [1.0, np.nan, 0.0],
        "employees": [5000.0, 40.0, 120.0],
        "cost_to_serve": [100.0, 10.0, 5.0],
        "last_contact_date": pd.to_datetime(["2026-10-26", None, "2026-11-24"]),
    })
    months = pd.period_range("2025-10", "2026-11", freq="M").to_timestamp()  # 14 months
    # KA1: 9 earlier months at 1000, the last 3 at 800 of which 500 paid in the last month;
    # plus one month too old (2025-10) and the snapshot's own month (2026-11): both ignored.
    billed = {"2025-10": 99_999.0, "2026-11": 77_777.0}
    ka1 = pd.DataFrame({
        "account_id": "KA1", "month": months,
        "billed": [billed.get(m.strftime("%Y-%m"), 1000.0 if m < pd.Timestamp("2026-08-01")
                                else 800.0) for m in months],
    })
    ka1["paid"] = ka1["billed"]
    ka1.loc[ka1["month"] == pd.Timestamp("2026-10-01"), "paid"] = 500.0
    # KA3: a new account, billed for 2 months only, growing; it overpays an old bill.
    ka3 = pd.DataFrame({"account_id": "KA3", "month": pd.to_datetime(["2026-09-01", "2026-10-01"]),
                        "billed": [300.0, 500.0], "paid": [300.0, 600.0]})
    billing = pd.concat([ka1, ka3], ignore_index=True)  # KA2 has no billing rows at all
    complaints = pd.DataFrame({
        "complaint_id": ["C1", "C2", "C3", "C4", "C5"],
        "account_id": ["KA1", "KA1", "KA1", "KA1", "KA2"],
        "opened_date": [day(1), day(90), day(91), day(200), day(5)],
        "category": ["network", "billing", "price", "other", "service"],
    })
    sla = pd.DataFrame({
        "incident_id": ["I1", "I2", "I3", "I4"],
        "account_id": ["KA1", "KA1", "KA1", "KA3"],
        "start_date": [day(10), day(80), day(120), day(30)],
        "outage_hours": [6.5, 1.5, 20.0, 0.5],
        "sla_breach": [1.0, 0.0, 1.0, 0.0],
    })
    return {"accounts": accounts, "billing": billing, "complaints": complaints,
            "sla_incidents": sla}


@pytest.fixture
def view() -> pd.DataFrame:
    return build_customer_view(tiny_tables(), AS_OF).set_index("account_id")


def days_between(earlier: str, later: dt.date = AS_OF) -> int:
    return (later - dt.date.fromisoformat(earlier)).days


@pytest.mark.parametrize(("account", "column", "expected"), [
    # billing: 12 months before the snapshot's month; the 3 latest against the 9 before
    ("KA1", "avg_monthly_billed", (9 * 1000 + 3 * 800) / 12),
    ("KA1", "revenue_trend", 800 / 1000 - 1),
    ("KA1", "arrears", 300.0),
    ("KA1", "arrears_ratio", 300 / 2400),
    ("KA1", "billing_months", 12.0),
    ("KA3", "avg_monthly_billed", 400.0),
    ("KA3", "revenue_trend", 0.0),           # no earlier months: no trend, not a crash
    ("KA3", "arrears", 0.0),                 # overpaying one bill never makes arrears negative
    ("KA3", "billing_months", 2.0),
    # events in the last 90 days: as_of - 90 <= date
    ("KA1", "complaints_90d", 2.0),          # 1 and 90 days ago; not 91 or 200
    ("KA2", "complaints_90d", 1.0),
    ("KA3", "complaints_90d", 0.0),
    ("KA1", "sla_breaches_90d", 1.0),        # the 120-day-old breach is outside the window
    ("KA1", "outage_hours_90d", 8.0),
    ("KA3", "sla_breaches_90d", 0.0),
    ("KA3", "outage_hours_90d", 0.5),
    # contract and contact dates
    ("KA1", "days_to_contract_end", 40.0),
    ("KA2", "days_to_contract_end", -10.0),  # lapsed ten days ago
    ("KA1", "tenure_months", round(days_between("2020-11-25") / 30.4375, 1)),
    ("KA2", "tenure_months", round(730 / 30.4375, 1)),
    ("KA3", "tenure_months", 6.0),
    ("KA1", "days_since_contact", 30.0),
    ("KA2", "days_since_contact", 730.0),    # never contacted: counted from contract start
    ("KA3", "days_since_contact", 1.0),
])
def test_view_aggregates(view: pd.DataFrame, account: str, column: str, expected: float) -> None:
    """Each derived column of the customer view has its documented value on hand-built data."""
    assert view.loc[account, column] == pytest.approx(expected, abs=1e-4)


def test_account_without_billing_gets_zeros_and_is_kept(view: pd.DataFrame) -> None:
    """An account with no billing rows stays in the view with zeros and billing_months 0."""
    row = view.loc["KA2"]
    for column in ("avg_monthly_billed", "revenue_trend", "arrears", "arrears_ratio",
                   "billing_months", "sla_breaches_90d", "outage_hours_90d"):
        assert row[column] == 0.0, column


def test_view_has_one_row_per_account_in_input_order() -> None:
    """The view keeps every account, once, in the order of accounts.csv, with every column."""
    out = build_customer_view(tiny_tables(), AS_OF)
    assert out["account_id"].tolist() == ["KA1", "KA2", "KA3"]
    assert list(out.columns) == VIEW_COLUMNS
    assert not out[[c for c in VIEW_COLUMNS if c not in ("name_en",)]].isna().any().any()


@pytest.mark.parametrize(("account", "segment"), [
    ("KA1", "leadership"), ("KA2", "price_performance"), ("KA3", "maintain")])
def test_segment_follows_industry(view: pd.DataFrame, account: str, segment: str) -> None:
    """The segment strategy comes from the industry (DOMAIN.md's segment table)."""
    assert view.loc[account, "segment"] == segment
    assert SEGMENT_BY_INDUSTRY[view.loc[account, "industry"]] == segment


def test_blank_optional_columns_get_defaults(view: pd.DataFrame) -> None:
    """A blank optional count (new_services) is 0 and a blank English name is empty text."""
    assert view.loc["KA2", "new_services"] == 0.0
    assert view.loc["KA2", "name_en"] == ""


def test_view_does_not_modify_its_input() -> None:
    """build_customer_view is pure: the input tables are unchanged after the call."""
    tables = tiny_tables()
    before = {name: frame.copy(deep=True) for name, frame in tables.items()}
    build_customer_view(tables, AS_OF)
    for name, frame in tables.items():
        pd.testing.assert_frame_equal(frame, before[name])


def test_view_of_a_read_snapshot_has_every_account(snapshot_dir: Path, frames: dict) -> None:
    """On a real read snapshot the view has one row per account and 12 billing months each."""
    snapshot = read_snapshot(snapshot_dir)
    out = build_customer_view(snapshot.tables, AS_OF)
    assert out["account_id"].tolist() == frames["accounts"]["account_id"].tolist()
    assert (out["billing_months"] == 12).all()


def test_arrow_fast_path_reads_exactly_what_the_pandas_path_reads(
        snapshot_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Clean files go through Arrow's reader and parsers; the typed tables and the recorded
    problems are the same as on the pandas path (planted bad rows, blanks, quoted commas,
    padded cells and a BOM included)."""
    from kamflow.intake import files, reader

    billing = snapshot_dir / "billing.csv"
    lines = billing.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace(",", ", ", 1)                   # a padded month cell
    lines[2] = ",".join(lines[2].split(",")[:2] + ["abc", ""])  # bad amount, blank paid
    billing.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    assert files._parse_clean_csv(billing, ",") is not None      # the fast paths are taken
    for kind, text in (("float", " 1.5 "), ("date", "2026-11-25"), ("month", "2026-11")):
        column = pd.Series([text, None], dtype="str").str.strip()
        assert reader._convert_clean_column(column.where(column != ""), kind) is not None
    fast = read_snapshot(snapshot_dir, None, AS_OF)

    monkeypatch.setattr(files, "_parse_clean_csv", lambda path, delimiter: None)
    monkeypatch.setattr(reader, "_convert_clean_column", lambda text, kind: None)
    slow = read_snapshot(snapshot_dir, None, AS_OF)
    assert fast.tables.keys() == slow.tables.keys()
    for name in fast.tables:
        pd.testing.assert_frame_equal(fast.tables[name], slow.tables[name], check_dtype=True)
    pd.testing.assert_frame_equal(fast.problems, slow.problems)
    assert {"billed"} <= set(fast.problems["column"])


def test_arrow_fast_path_hands_malformed_files_to_the_pandas_path(tmp_path: Path) -> None:
    """A short row, a long row, a repeated header or a GBK file: the pandas path decides."""
    from kamflow.intake import files

    cases = {"short.csv": "a,b\n1\n", "long.csv": "a,b\n1,2,3\n", "twice.csv": "a,a\n1,2\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "gbk.csv").write_bytes("a,b\n上海,1\n".encode("gb18030"))
    for name in [*cases, "gbk.csv"]:
        assert files._parse_clean_csv(tmp_path / name, ",") is None, name
    with pytest.raises(InputError, match="more fields than the header"):
        files.read_table_file(tmp_path / "long.csv")
