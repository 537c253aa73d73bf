"""The department head's weekly management email, over six generated days: queued once a week
through the outbox, its charts inline images that load in headless Chromium (zh-CN and en;
screenshots kept in tests/screenshots), its text part carrying the same figures."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import html as html_lib
import io
import re
import shutil
from email import policy
from email.parser import BytesParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from kamflow import config
from kamflow.flows.charts import Line, line_chart_png, png_size
from kamflow.flows.delivery import drain_outbox
from kamflow.flows.weekly_report import KIND, queue_weekly_report, week_key
from kamflow.notifications import FileOutbox
from kamflow.notifications.weekly import CHART_CIDS, chart_caption
from kamflow.worklist import TaskStore
from kamflow.worklist.measures import Ceilings, department_report, headline
from tests.test_department import PLAYED_DAYS, generated  # noqa: F401 - the shared fixture
from tests.test_links_web import Browser
from tests.test_worklist import planned, render

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
NUMBER = re.compile(r"\d{1,3}(?:,\d{3})*(?:\.\d+)?(?: %)?")  # 1,234.5 % as one


@pytest.fixture(scope="module")
def department(generated, tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    """The generated days' store with a few tasks (some acknowledged, one done) and a
    run_figures row per day, as the daily runs would have left it."""
    first, url = generated["first"], generated["url"]
    with TaskStore(url) as store:
        roster = store.roster_rows()
        active = roster.loc[roster["lost_at"].isna()].sort_values("account_id")
        managers = sorted(active["manager_email"].unique())[:2]
        rows = [(a, "care_call", "account_manager", m) for m in managers
                for a in active.loc[active["manager_email"] == m, "account_id"].head(3)]
        raised = first + dt.timedelta(hours=1)  # a run after the roster's first snapshot
        store.raise_tasks(planned(rows, raised), "run-tasks", render, raised)
        tasks = sorted(store.list_tasks(), key=lambda t: t.id)
        store.transition(tasks[0].id, "ack", raised + dt.timedelta(hours=2), "m")
        store.transition(tasks[1].id, "ack", raised + dt.timedelta(hours=6), "m")
        store.transition(tasks[1].id, "done", raised + dt.timedelta(hours=7), "m")
        for day in range(1, PLAYED_DAYS):
            at = first + dt.timedelta(days=day, hours=1)
            found = department_report(store.roster_rows(), store.task_rows(at), at, by=(),
                                      revenue=store.revenue_rows())
            store.record_run_figures(f"run-{day}", at, {**headline(found), "accounts_lost": 0,
                                                         "top_value_share": 0.2,
                                                         "tasks_created": 0})
    return {**generated, "managers": managers}


def weekly_email(department: dict, language: str, tmp_path: Path) -> tuple[object, str]:
    """This week's email to a department head reading ``language``, as the file outbox
    writes it (the real MIME bytes), and its outbox key. Queued twice: one email."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    shutil.copy(department["url"].removeprefix("sqlite:///"), tmp_path / "store.db")
    owners = config.load_owners()
    owners = dataclasses.replace(owners, department_head=dataclasses.replace(
        owners.department_head, language=language))
    timezone = config.load_calendar().timezone
    now = dt.datetime.now(dt.UTC)
    with TaskStore(url) as store:
        key = queue_weekly_report(store, now, owners, timezone, Ceilings())
        assert queue_weekly_report(store, now + dt.timedelta(minutes=5), owners, timezone,
                                   Ceilings()) == key  # same week: not queued again
        queued = [e for e in store.unsent_emails() if e.kind == KIND]
        assert [e.key for e in queued] == [f"weekly-report-{week_key(now, timezone)}"] == [key]
        result = drain_outbox(store, FileOutbox(tmp_path / "outbox"), "kamflow@operator.example")
        assert result.sent >= 1 and not result.failed
    message = BytesParser(policy=policy.default).parsebytes(
        next((tmp_path / "outbox").glob(f"{key}*")).read_bytes())
    assert message["To"] == owners.department_head.email.lower()
    return message, key


def parts(message) -> tuple[str, str, dict[str, bytes]]:
    """(text, html, {content id: image bytes}) of a multipart email."""
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    images = {part["Content-ID"].strip("<>"): part.get_content()
              for part in message.walk() if part.get_content_maintype() == "image"}
    return text, html, images


def visible(html: str) -> str:
    body = re.sub(r"<head>.*</head>", " ", html, flags=re.S)
    return html_lib.unescape(re.sub(r"<[^>]+>", " ", body))


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_weekly_email_carries_the_figures_in_both_parts(
        department: dict, language: str, tmp_path: Path) -> None:
    """Both charts in their places with the caption that says what they show; the plain-text
    part has every figure the HTML shows; the trailing churn rate and counts, the subject and
    each manager's line are the ground truth's."""
    message, key = weekly_email(department, language, tmp_path)
    zh = language == "zh-CN"
    text, html, images = parts(message)
    assert set(images) == set(CHART_CIDS.values())
    assert images[CHART_CIDS["churn"]] != images[CHART_CIDS["value_at_risk"]]
    runs = PLAYED_DAYS - 1  # the department fixture's run_figures rows
    for kind, cid in CHART_CIDS.items():
        # each chart in its place, saying what it shows over how many runs, in both parts
        caption = html_lib.escape(chart_caption(kind, language, runs))
        assert re.search(rf'<img src="cid:{re.escape(cid)}" [^>]*alt="{re.escape(caption)}"'
                         rf'[^>]*><br><small>{re.escape(caption)}</small>', html), caption
        assert chart_caption(kind, language, runs) in text
        assert images[cid].startswith(b"\x89PNG") and png_size(images[cid]) == (640, 260)

    in_html, in_text = NUMBER.findall(visible(html)), NUMBER.findall(text)
    assert set(in_html) <= set(in_text), set(in_html) - set(in_text)
    out = department["out"]
    accounts = pd.read_csv(out / "day-01" / "accounts.csv", dtype={"account_id": str})
    gone = pd.read_csv(out / "departures.csv", dtype={"account_id": str})
    rate = f"{100 * len(gone) / len(accounts):.3f} %"
    # the trailing 12 months: the ground truth's rate and counts, over the ceiling, on its line
    label = "近 12 个月" if zh else "Trailing 12 months"
    [line] = [line for line in text.splitlines() if re.match(rf"- {label}[ （：:]", line)]
    assert rate in line and f"{len(gone)} / {len(accounts)}" in line, line
    assert ("超出上限" if zh else "OVER") in line, line
    assert re.search(rf"<td>{label}.*?</td><td[^>]*>{re.escape(rate)}</td>", html)
    week = key.removeprefix("weekly-report-")
    ceiling = r"\d+\.\d{3} %"
    subject = (rf"大客户周报 {week}：客户流失率 {re.escape(rate)}，上限 {ceiling}（超出上限）"
               if zh else rf"Key-account weekly report {week}: churn {re.escape(rate)} "
                          rf"against a ceiling of {ceiling} \(OVER\)")
    assert re.fullmatch(subject, message["Subject"]), message["Subject"]
    # six days of roster: the "12 months" row says what it covers and that its ceiling is cut
    since = (r"数据自 \d{4}-\d{2}-\d{2} 起，上限按天数折算" if zh
             else r"since \d{4}-\d{2}-\d{2}; ceiling prorated")
    assert re.search(since, line) and re.search(since, visible(html)), line
    for manager in department["managers"]:  # three tasks raised to each (the fixture)
        [line] = [line for line in text.splitlines() if f"<{manager}>" in line]
        assert ("：任务 3 个，按时完成 " if zh else ">: 3 tasks, on time ") in line, line
        assert re.search(rf"<small>{re.escape(manager)}</small></td><td[^>]*>3</td>", html)


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_weekly_email_charts_load_in_chromium(
        department: dict, language: str, tmp_path: Path) -> None:
    """The HTML shows both charts as inline (cid) PNGs that load in Chromium at their size
    (screenshots kept in tests/screenshots)."""
    message, _ = weekly_email(department, language, tmp_path)
    _, html, images = parts(message)
    # what a mail client does with a cid: show the attached part in its place
    page = tmp_path / f"weekly-{language}.html"
    shown = html
    for cid, data in images.items():
        (tmp_path / f"{cid}.png").write_bytes(data)
        shown = shown.replace(f"cid:{cid}", f"{cid}.png")
    page.write_text(shown, encoding="utf-8")
    browser = Browser()
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=900, height=1400,
                     deviceScaleFactor=1, mobile=False)
        browser.call("Page.navigate", url=page.as_uri())
        browser.wait_for_load()
        loaded = browser.evaluate(
            "[...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
    finally:
        browser.close()
    assert loaded == [[True, 640, 260], [True, 640, 260]]
    SCREENSHOTS.mkdir(exist_ok=True)
    screenshot = SCREENSHOTS / f"weekly-report.{language}.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))
    assert screenshot.stat().st_size > 20_000


def test_charts_are_drawn_to_scale() -> None:
    """A chart's lines sit where their values are: a flat ceiling over a rising churn."""
    png = line_chart_png([Line([0.001, 0.002, 0.004], "blue"),
                          Line([0.003, 0.003, 0.003], "red", dashed=True)], ["a", "b", "c"])
    assert png.startswith(b"\x89PNG") and png_size(png) == (640, 260)
    pixels = (imread(io.BytesIO(png), format="png")[..., :3] * 255).round()
    blue = np.argwhere(np.abs(pixels - (31, 119, 180)).max(axis=2) < 12)
    red = np.argwhere(np.abs(pixels - (214, 39, 40)).max(axis=2) < 12)
    assert len(blue) > 100 and len(red) > 50
    left, right = blue[blue[:, 1] < blue[:, 1].min() + 5], blue[blue[:, 1] > blue[:, 1].max() - 5]
    assert left[:, 0].mean() > right[:, 0].mean() + 50  # rising: rows count from the top
    # the flat ceiling (0.3 %) lies between the first (0.1 %) and last (0.4 %) churn points
    assert right[:, 0].mean() < red[:, 0].mean() < left[:, 0].mean()
    assert red[:, 0].max() - red[:, 0].min() < 12
    assert line_chart_png([Line([1.0, 2.0])], ["x", "y"]) == line_chart_png(
        [Line([1.0, 2.0])], ["x", "y"])


def test_weekly_report_flow_sends_one_email_a_week(department: dict, prefect_api: str,
                                                   kamflow_home: Path) -> None:
    """The deployed flow, run twice in one week on a real Prefect server: one email to the
    department head in the file outbox, with its two charts; the second run sends nothing."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.weekly_report import weekly_report

    kamflow_home.mkdir(parents=True)
    shutil.copy(department["url"].removeprefix("sqlite:///"), kamflow_home / "kamflow.db")
    monday = dt.datetime.now(dt.UTC)
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        first = weekly_report(now=monday.isoformat(), return_state=True)
        again = weekly_report(now=(monday + dt.timedelta(hours=1)).isoformat(),
                              return_state=True)
    assert first.is_completed() and again.is_completed(), (first.message, again.message)
    key = f"weekly-report-{week_key(monday, config.load_calendar().timezone)}"
    files = sorted((kamflow_home / "outbox").glob("weekly-report-*"))
    assert [f.name for f in files] == [f"{key}.eml"]
    message = BytesParser(policy=policy.default).parsebytes(files[0].read_bytes())
    assert message["To"] == config.load_owners().department_head.email.lower()
    assert len(parts(message)[2]) == 2


def test_inline_images_make_a_related_html_part_in_the_file_outbox(tmp_path: Path) -> None:
    """SMTP and the file outbox send the same bytes: text, then the HTML related to its
    pictures, each with its Content-ID and inline disposition."""
    from kamflow.notifications import Email, InlineImage
    from kamflow.notifications.message import email_bytes

    png = line_chart_png([Line([0.1, 0.2])], ["a", "b"])
    email = Email(key="weekly-report-2026-W49", sender="kamflow@operator.example",
                  to="head@operator.example", subject="周报", text="流失率 0.100 %",
                  html='<p>流失率</p><img src="cid:churn-trend@kamflow">',
                  inline_images=(InlineImage("churn-trend@kamflow", png, "churn-trend.png"),))
    now = dt.datetime(2026, 12, 7, 0, 0, tzinfo=dt.UTC)
    message = BytesParser(policy=policy.default).parsebytes(email_bytes(email, now=now))
    assert message["X-Kamflow-Key"] == "weekly-report-2026-W49"
    assert message.get_content_type() == "multipart/alternative"
    plain, related = message.get_payload()
    assert plain.get_content() == "流失率 0.100 %\n"
    assert related.get_content_type() == "multipart/related"
    html, picture = related.get_payload()
    assert "cid:churn-trend@kamflow" in html.get_content()
    assert picture["Content-ID"] == "<churn-trend@kamflow>"
    assert picture.get_content_disposition() == "inline" and picture.get_content() == png
    with pytest.raises(ValueError, match="html part"):
        Email(key="k", sender="a@b.c", to="d@e.f", subject="s", text="t",
              inline_images=(InlineImage("x@kamflow", png, "x.png"),))
