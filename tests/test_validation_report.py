"""The offline validation report: rendered by headless Chromium with the network blocked, in
English and Chinese; the reports a run links to reference no remote asset."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import tempfile
import urllib.parse
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from kamflow.expectations import (
    REPORT_FILES,
    results_markdown,
    validate_snapshot,
    write_data_docs,
    write_offline_report,
)
from kamflow.flows.report import RunSummary, markdown
from kamflow.generate import make_snapshot, write_snapshot
from kamflow.intake import read_snapshot

AS_OF = dt.date(2026, 11, 25)
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
TABLES = ("accounts", "billing", "complaints", "sla_incidents", "customer_view")


@dataclass
class Written:
    """One validated snapshot's files, laid out as a run keeps them under KAMFLOW_HOME."""

    outcome: object
    pages: dict[str, Path]
    quarantine: Path | None
    data_docs: Path
    results_json: Path


def write_run(snapshot_dir: Path, home: Path, run_id: str) -> Written:
    """Validate a snapshot and write what a run writes: quarantine.csv, validation.json, the
    Data Docs and the offline report (the same calls as flows/retention.py)."""
    snapshot = read_snapshot(snapshot_dir)
    outcome = validate_snapshot(snapshot.tables, snapshot.problems, as_of=AS_OF,
                                files=snapshot.files)
    reports = home / "reports" / run_id
    reports.mkdir(parents=True)
    quarantine = None
    if len(outcome.quarantine):
        quarantine = home / "quarantine" / run_id / "quarantine.csv"
        quarantine.parent.mkdir(parents=True)
        outcome.quarantine.to_csv(quarantine, index=False, encoding="utf-8")
    results_json = reports / "validation.json"
    results_json.write_text(json.dumps([r.__dict__ for r in outcome.results], default=str),
                            encoding="utf-8")
    docs = write_data_docs(outcome, reports / "data_docs")
    outcome.release_gx()
    pages = write_offline_report(outcome, reports, run_id=run_id, quarantine_file=quarantine,
                                 data_docs=docs, results_json=results_json)
    return Written(outcome, pages, quarantine, docs, results_json)


@pytest.fixture(scope="module")
def bad_rows(tmp_path_factory: pytest.TempPathFactory, frames: dict) -> Written:
    """The shared 600-account snapshot with its planted bad rows, validated and reported."""
    root = tmp_path_factory.mktemp("report-bad-rows")
    write_snapshot(frames, root / "snapshot")
    return write_run(root / "snapshot", root / "home", "run-bad-rows")


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> Written:
    """A small snapshot whose accounts file lacks manager_email: a critical failure."""
    root = tmp_path_factory.mktemp("report-stopped")
    write_snapshot(make_snapshot(60, AS_OF, seed=3, bad_share=0.0), root / "snapshot")
    accounts = root / "snapshot" / "accounts.csv"
    pd.read_csv(accounts, dtype=str).drop(columns="manager_email").to_csv(accounts, index=False)
    return write_run(root / "snapshot", root / "home", "run-stopped")


# --------------------------------------------------------------------------- the browser

def chromium_dom(page: Path, screenshot: Path) -> str:
    """The page as headless Chromium renders it with every host unresolvable (no network at
    all), and a screenshot of it kept in tests/screenshots for a person to look at."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is needed for the report check (.ci/run installs it)"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=5000", "--window-size=1400,2400",
             "--host-resolver-rules=MAP * ~NOTFOUND"]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    screenshot.unlink(missing_ok=True)
    outputs = []
    for action in ("--dump-dom", f"--screenshot={screenshot}"):
        profile = tempfile.mkdtemp(prefix="kamflow-chromium-")
        try:
            result = subprocess.run([chromium, *flags, f"--user-data-dir={profile}", action,
                                     page.resolve().as_uri()],
                                    capture_output=True, text=True, timeout=120)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        outputs.append(result.stdout)
    assert screenshot.is_file() and screenshot.stat().st_size > 10_000, \
        "the screenshot is (almost) empty"
    assert "</html>" in outputs[0], "Chromium dumped no DOM"
    return outputs[0]


class Dom(HTMLParser):
    """The rendered DOM, reduced to what the assertions need: the text of each element with an
    id, every table row's cell texts under the section it is in, and every link."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.text_by_id: dict[str, str] = {}
        self.rows: dict[str, list[list[str]]] = {}
        self.links: dict[str, str] = {}  # id (or text) -> href
        self._open_ids: list[tuple[str, int]] = []
        self._depth = 0
        self._section = ""
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._link: tuple[str, str] | None = None
        self._link_text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag not in ("meta", "br", "link", "img", "input"):
            self._depth += 1
            if found.get("id"):
                self._open_ids.append((found["id"] or "", self._depth))
                self.text_by_id.setdefault(found["id"] or "", "")
        if tag == "section":
            self._section = found.get("id") or ""
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "a":
            self._link, self._link_text = (found.get("id") or "", found.get("href") or ""), []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.setdefault(self._section, []).append(self._row)
            self._row = None
        elif tag == "section":
            self._section = ""
        elif tag == "a" and self._link is not None:
            key = self._link[0] or " ".join("".join(self._link_text).split())
            self.links[key] = self._link[1]
            self._link = None
        if tag not in ("meta", "br", "link", "img", "input"):
            while self._open_ids and self._open_ids[-1][1] >= self._depth:
                self._open_ids.pop()
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        for name, _ in self._open_ids:
            self.text_by_id[name] += data
        if self._cell is not None:
            self._cell.append(data)
        if self._link is not None:
            self._link_text.append(data)

    def text(self, element_id: str) -> str:
        return " ".join(self.text_by_id.get(element_id, "").split())

    def row(self, section: str, *cells: str) -> list[str]:
        """The first row of ``section`` holding every one of ``cells`` as a whole cell."""
        for row in self.rows.get(section, []):
            if all(cell in row for cell in cells):
                return row
        raise AssertionError(f"no row with {cells} in {section}: {self.rows.get(section)}")


def rendered(written: Written, language: str, name: str) -> Dom:
    return Dom(chromium_dom(written.pages[language], SCREENSHOTS / f"{name}.{language}.png"))


# --------------------------------------------------------------------------- the report

WORDS = {  # what the page calls things, per language
    "en": {"go": "GO", "stop": "STOP", "quarantined": "quarantined", "row": "row",
           "severity": "row (quarantined)", "other": "中文版",
           "counts": "597 accepted, 3 quarantined",
           "stopped": "no task was created and no email was sent"},
    "zh-CN": {"go": "通过", "stop": "停止", "quarantined": "已隔离", "row": "行号",
              "severity": "行级（隔离）", "other": "English",
              "counts": "597 个通过，3 个被隔离", "stopped": "未创建任何任务，也未发送任何邮件"},
}


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_offline_report_renders_every_suite_failures_and_rows(
        bad_rows: Written, frames: dict, language: str) -> None:
    """With no network, the report shows every table, a failing expectation with its examples
    and their row numbers, the quarantined rows' reasons and the go verdict."""
    words = WORDS[language]
    dom = rendered(bad_rows, language, "validation-report")
    assert dom.text("verdict").startswith(words["go"])
    assert words["counts"] in dom.text("message")
    if language == "en":  # word for word what the CLI and the log say
        assert dom.text("message") == bad_rows.outcome.message
    for table in TABLES:
        assert table in dom.text(f"table-{table}"), table
    # The planted negative billed amount: result, severity, count and the value at its CSV line.
    negative = frames["billing"].loc[frames["billing"]["billed"] < 0]
    line = int(negative.index[0]) + 2  # header is line 1
    value = str(negative["billed"].iloc[0])
    row = dom.row("table-billing", "expect_column_values_to_be_between", "billed",
                  words["quarantined"])
    assert words["severity"] in row and "1" in row
    assert f"{value} ({words['row']} {line})" in " ".join(row)
    # The quarantined rows, with their reasons: the billing row and the account held back.
    account = negative["account_id"].iloc[0]
    assert dom.row("table-billing", str(line), account, "billed", value)
    held_back = " ".join(dom.text_by_id["table-accounts"].split())
    assert f"held back because billing.csv row {line} failed" in held_back
    assert dom.links["quarantine-link"] and dom.links["data-docs-link"]
    assert words["other"] in dom.links


def resolve(page: Path, href: str) -> Path:
    return (page.parent / urllib.parse.unquote(href)).resolve()


def test_report_links_resolve_to_the_run_files(bad_rows: Written) -> None:
    """The links to quarantine.csv, validation.json, the Data Docs and the other language are
    relative and lead to the files the run wrote (the folder can be copied to a share)."""
    for language, page in bad_rows.pages.items():
        dom = Dom(page.read_text(encoding="utf-8"))
        hrefs = {**dom.links}
        assert not any(h.startswith(("file:", "/", "http")) for h in hrefs.values()), hrefs
        assert resolve(page, hrefs["quarantine-link"]) == bad_rows.quarantine.resolve()
        assert resolve(page, hrefs["data-docs-link"]) == bad_rows.data_docs.resolve()
        others = [h for h in hrefs.values() if h in REPORT_FILES.values()]
        assert others == [REPORT_FILES["zh-CN" if language == "en" else "en"]]
        assert resolve(page, others[0]).is_file()
        assert "internet" in dom.text("data-docs-note") or "互联网" in dom.text("data-docs-note")


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_stopped_batch_renders_its_stop_reason(stopped: Written, language: str) -> None:
    """A critical failure renders as STOP with the reason naming the file and the column."""
    assert stopped.outcome.stopped
    dom = rendered(stopped, language, "validation-report-stopped")
    assert dom.text("verdict").startswith(WORDS[language]["stop"])
    reasons = dom.text("reasons")
    assert "accounts.csv: expect_column_to_exist on column 'manager_email' failed" in reasons
    assert WORDS[language]["stopped"] in dom.text("message")
    row = dom.row("table-accounts", "expect_column_to_exist", "manager_email")
    assert WORDS[language]["stop"] in row


def test_examples_carry_their_row_numbers(bad_rows: Written, frames: dict) -> None:
    """Each failing example of a row check names the source lines it was found in, the same
    lines quarantine.csv names."""
    quarantine = bad_rows.outcome.quarantine
    checked = 0
    for result in bad_rows.outcome.results:
        if result.success or result.severity != "row":
            continue
        assert len(result.example_rows) == len(result.examples) > 0, result
        records = quarantine.loc[(quarantine["table"] == result.table)
                                 & (quarantine["expectation"] == result.expectation)]
        for value, rows in zip(result.examples, result.example_rows, strict=True):
            assert rows, (result, value)
            expected = records.loc[records["value"].fillna("").replace("", "(blank)") == value,
                                   "row"]
            assert set(rows) <= set(expected.astype(int)), (result, value, rows)
            checked += 1
    assert checked >= 3  # the planted bad rows: negative billed, blank e-mail, unknown industry


def test_report_escapes_values_from_the_export(tmp_path: Path) -> None:
    """A cell holding markup is shown as text: the report never runs what an export contains."""
    frames = make_snapshot(40, AS_OF, seed=8, bad_share=0.0)
    frames["accounts"].loc[0, "industry"] = "<script>alert(1)</script>"
    write_snapshot(frames, tmp_path / "snapshot")
    written = write_run(tmp_path / "snapshot", tmp_path / "home", "run-escape")
    html = written.pages["en"].read_text(encoding="utf-8")
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


# --------------------------------------------------------------------------- no remote assets

class Assets(HTMLParser):
    """Every URL a page loads by itself: <link href>, <script src>, <img src>."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"link": "href", "script": "src", "img": "src"}.get(tag)
        value = dict(attrs).get(wanted or "")
        if value:
            self.urls.append(value)


def remote_assets(page: Path) -> list[str]:
    urls = Assets(page.read_text(encoding="utf-8")).urls
    return [u for u in urls if re.match(r"(?i)(https?:)?//", u.strip())]


def linked_html(markdown_text: str) -> list[Path]:
    """The local HTML pages a markdown artifact links to (``[text](file://...html)``)."""
    targets = re.findall(r"\]\((file://[^)\s]+)\)", markdown_text)
    return [Path(urllib.parse.unquote(urllib.parse.urlparse(t).path)) for t in targets
            if t.endswith(".html")]


def test_no_linked_report_references_a_remote_asset(bad_rows: Written) -> None:
    """Neither artifact (run summary, validation results) links an HTML page that loads a
    remote <link>, <script> or <img>; the offline report is linked first, the Data Docs (which
    do load CDN assets: the check sees them) are named as text only."""
    summary = RunSummary(run_id="run-bad-rows", source="snapshot", as_of=AS_OF.isoformat(),
                         offline_report=str(bad_rows.pages["en"]),
                         offline_report_zh=str(bad_rows.pages["zh-CN"]),
                         data_docs=bad_rows.data_docs.as_uri(),
                         quarantine_file=str(bad_rows.quarantine))
    artifacts = {"retention-summary": markdown(summary),
                 "validation-results": results_markdown(bad_rows.outcome, bad_rows.data_docs,
                                                        bad_rows.pages)}
    for key, text in artifacts.items():
        pages = linked_html(text)
        assert {p.resolve() for p in pages} == {p.resolve() for p in bad_rows.pages.values()}, key
        for page in pages:
            assert remote_assets(page) == [], (key, page)
        # The offline report comes before the Data Docs, which are named but not linked.
        assert text.index(bad_rows.pages["en"].as_uri()) < text.index(bad_rows.data_docs.as_uri())
        assert f"({bad_rows.data_docs.as_uri()})" not in text
    assert remote_assets(bad_rows.data_docs), "the check should see the Data Docs' CDN assets"


def test_report_page_has_no_script_at_all(bad_rows: Written, stopped: Written) -> None:
    """The report needs no JavaScript: no <script> element, no inline handler."""
    for written in (bad_rows, stopped):
        for page in written.pages.values():
            html = page.read_text(encoding="utf-8")
            assert "<script" not in html.lower() and not re.search(r"\son\w+=", html)


# --------------------------------------------------------------------------- the real flow

def run_artifacts(prefect_api: str, state) -> dict[str, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: prefect_api}), \
            get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    return {a.key: a.data for a in found}


@pytest.mark.slow
def test_run_links_the_offline_report_first(prefect_api, kamflow_home: Path,
                                            snapshot_dir: Path) -> None:
    """retention_run on a snapshot with bad rows writes both report pages beside the Data
    Docs, puts them in summary.json and links them first in both artifacts; every page the
    artifacts link loads nothing remote; a stopped run (no accounts file rows) does the same."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.core.settings import load_settings
    from kamflow.flows.retention import retention_run, summary_path

    def run(source: Path):
        with temporary_settings({PREFECT_API_URL: prefect_api}):
            state = retention_run(source=str(source), as_of=AS_OF.isoformat(),
                                  return_state=True)
        run_id = str(state.state_details.flow_run_id)
        summary = summary_path(run_id, load_settings()).read_text(encoding="utf-8")
        return state, json.loads(summary), run_id

    state, summary, run_id = run(snapshot_dir)
    assert state.is_completed(), state.message
    reports = kamflow_home / "reports" / run_id
    assert summary["offline_report"] == str(reports / "validation.html")
    assert summary["offline_report_zh"] == str(reports / "validation.zh-CN.html")
    page = Dom(Path(summary["offline_report"]).read_text(encoding="utf-8"))
    assert resolve(reports / "validation.html", page.links["quarantine-link"]) == \
        Path(summary["quarantine_file"]).resolve()
    for key, text in run_artifacts(prefect_api, state).items():
        if key not in ("retention-summary", "validation-results"):
            continue
        linked = linked_html(text)
        assert linked and linked[0] == reports / "validation.html", key
        assert all(remote_assets(p) == [] for p in linked), key
        assert text.index("validation.html") < text.index("data_docs/index.html"), key

    accounts = snapshot_dir / "accounts.csv"
    accounts.write_text(accounts.read_text(encoding="utf-8").splitlines()[0] + "\n",
                        encoding="utf-8")
    state, summary, run_id = run(snapshot_dir)
    assert state.is_failed() and summary["status"] == "stopped by validation"
    page = Dom(Path(summary["offline_report"]).read_text(encoding="utf-8"))
    assert page.text("verdict").startswith("STOP")
    assert "accounts.csv: expect_table_row_count_to_be_between" in page.text("reasons")
