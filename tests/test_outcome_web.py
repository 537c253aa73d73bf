"""The outcome form behind the email's "mark done" link (issue 23), in a real headless Chromium:
closed with 未联系上 and 15 minutes, shown by `tasks show`, recorded once however often the form
is submitted, refused for another owner and for cross-site posts."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from kamflow import config, notifications
from kamflow.cli import main
from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, drain_outbox
from kamflow.web import WebApp, make_server
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.models import Task
from tests.crash_harness import OWNERS, TITLES, decisions
from tests.test_links_web import SECRET, Browser, fetch, links_in_outbox, raw_post

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
USER = "X-Forwarded-Email"  # as a sign-on proxy (oauth2-proxy) names the user


class Served:
    def __init__(self, home: Path) -> None:
        import threading

        self.store = TaskStore(f"sqlite:///{home / 'kamflow.db'}")
        self.app = WebApp(self.store, LinkSigner(SECRET), "Asia/Shanghai",
                          config.load_outcomes(), BusinessCalendar(), user_header=USER)
        self.server = make_server(self.app, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.signer = self.app.signer = LinkSigner(SECRET, self.base)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.store.dispose()


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    """`kamflow web` on a free port over KAMFLOW_HOME's store, the harness tasks dispatched now
    and their emails in the file outbox."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("KAMFLOW_HOME", str(home))
    monkeypatch.delenv("KAMFLOW_DATABASE_URL", raising=False)
    web = Served(home)
    dispatch(decisions(), TITLES, OWNERS, web.store, "web", dt.datetime.now(dt.UTC),
             BusinessCalendar(), web.signer)
    drain_outbox(web.store, notifications.FileOutbox(tmp_path / "outbox"),
                 "kamflow@operator.example")
    web.outbox = tmp_path / "outbox"  # type: ignore[attr-defined]
    yield web
    web.close()


def outcome_events(web: Served, task_id: int) -> list:
    return [e for e in web.store.history(task_id) if e.outcome is not None]


def test_closing_from_the_email_with_not_reached_and_15_minutes(served: Served,
                                                               capsys) -> None:
    """From the 标记完成 link of li's email: the form, 未联系上 and 15 minutes submitted, the
    page says recorded; `tasks show` shows it; the same form submitted again records nothing
    more; the same link opened as another owner (the proxy names wang) is refused."""
    label, url = next((k, v) for k, v in links_in_outbox(served.outbox).items()
                      if k.startswith("li@staff.example.test") and k.endswith("标记完成"))
    task_id = served.signer.verify(url.rsplit("/", 1)[1]).task_id
    browser = Browser()
    try:
        browser.call("Network.enable")
        browser.call("Network.setExtraHTTPHeaders", headers={USER: "li@staff.example.test"})
        browser.call("Page.navigate", url=url)
        browser.wait_for_load()
        assert browser.evaluate("!!document.getElementById('outcome-form')") is True
        assert "未联系上 / not reached" in str(browser.evaluate("document.body.innerText"))
        assert outcome_events(served, task_id) == []  # opening changed nothing
        browser.evaluate("document.getElementById('outcome').value = 'not_reached';"
                         "document.getElementById('minutes').value = '15';"
                         "document.getElementById('note').value = '<b>关机</b>'")
        form_shot = browser.call("Page.captureScreenshot", format="png")["data"]
        sent = browser.evaluate("new URLSearchParams(new FormData(document.getElementById("
                                "'outcome-form'))).toString()")
        action = browser.evaluate("document.getElementById('outcome-form').action")
        browser.evaluate("document.getElementById('record').click()")
        browser.wait_for_load()
        assert browser.evaluate("document.getElementById('result').dataset.outcome") == \
            "recorded"
        text = str(browser.evaluate("document.body.innerText"))
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
        # the same form submitted again by the browser (as a double click or a resend does;
        # the page's CSP allows no fetch, a form may post to its own site): nothing more
        browser.evaluate(
            f"(() => {{ const f = document.createElement('form'); f.method = 'post';"
            f" f.action = {json.dumps(action)};"
            f" for (const [k, v] of new URLSearchParams({json.dumps(sent)})) {{"
            f" const i = document.createElement('input'); i.type = 'hidden'; i.name = k;"
            f" i.value = v; f.appendChild(i); }}"
            f" document.body.appendChild(f); f.submit(); }})()")
        browser.wait_for_load()
        again = str(browser.evaluate("document.body.innerText"))
        # the same link, opened as wang (another owner)
        browser.call("Network.setExtraHTTPHeaders", headers={USER: "wang@staff.example.test"})
        browser.call("Page.navigate", url=url)
        browser.wait_for_load()
        other = browser.evaluate("document.getElementById('result').dataset.outcome")
        other_text = str(browser.evaluate("document.body.innerText"))
        other_shot = browser.call("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.close()
    SCREENSHOTS.mkdir(exist_ok=True)
    (SCREENSHOTS / "outcome-form.png").write_bytes(base64.b64decode(form_shot))
    (SCREENSHOTS / "outcome-recorded.png").write_bytes(base64.b64decode(shot))
    (SCREENSHOTS / "outcome-not-yours.png").write_bytes(base64.b64decode(other_shot))
    assert "Recorded: 未联系上 / not reached, 15 min" in text
    assert "already submitted: nothing more was recorded" in again
    assert other == "not-yours" and "signed in as wang@staff.example.test" in other_text
    [event] = outcome_events(served, task_id)
    assert (event.event, event.outcome, event.minutes_spent, event.note) == (
        "attempted", "not_reached", 15, "<b>关机</b>")
    task = served.store.get_task(task_id)
    assert task.status == "open" and task.retry_at is not None and task.minutes_spent == 15
    assert main(["tasks", "show", str(task_id)]) == 0
    shown = capsys.readouterr().out
    assert "outcome:     not reached (not_reached), 15 min in all" in shown
    assert "attempted    by li@staff.example.test (email link)" in shown
    assert "outcome not reached (not_reached), 15 min; note: <b>关机</b>" in shown


def test_the_note_is_escaped_on_the_page(served: Served) -> None:
    task = next(t for t in served.store.list_tasks() if t.owner_email == "li@staff.example.test")
    token = served.signer.token(task.id, "done", task.owner_email)
    headers = {USER: "li@staff.example.test"}
    status, page = served.app.page("GET", f"/t/{token}", headers=headers)
    key = page.split("name='key' value='", 1)[1][:40]
    status, page = served.app.record(token, {"key": key, "outcome": "follow_up",
                                             "minutes": "5", "note": "<script>x</script>"},
                                     headers)
    assert status == 200 and "<script>" not in page
    follow = next(t for t in served.store.list_tasks() if t.follow_up_of == task.id)
    status, page = served.app.page("GET", "/t/" + served.signer.token(
        follow.id, "done", follow.owner_email), headers=headers)
    assert status == 200 and "&lt;script&gt;x&lt;/script&gt;" in page and "<script>" not in page


def test_cross_site_posts_another_recipient_and_bad_forms_record_nothing(served: Served
                                                                         ) -> None:
    """A post from another site (Sec-Fetch-Site cross-site, or a foreign Origin) gets 403; the
    link made for another person gets 409; a form without outcome or with bad minutes 400;
    none records anything. A form posted as the owner records."""
    task = next(t for t in served.store.list_tasks() if t.owner_email == "li@staff.example.test")
    token = served.signer.token(task.id, "done", task.owner_email)
    _, page = served.app.page("GET", f"/t/{token}", headers={USER: "li@staff.example.test"})
    key = page.split("name='key' value='", 1)[1][:40]
    path = f"/t/{token}/outcome"

    def post(form: str, **headers: str) -> int:
        body = form.encode()
        return raw_post(served, path, {"Content-Type": "application/x-www-form-urlencoded",
                                       "Content-Length": str(len(body)), USER:
                                       "li@staff.example.test", **headers}, body)[0]

    good = f"key={key}&outcome=renewed&minutes=10"
    assert post(good, **{"Sec-Fetch-Site": "cross-site"}) == 403
    assert post(good, Origin="http://evil.example") == 403
    assert post(f"key={key}&outcome=&minutes=10") == 400
    assert post(f"key={key}&outcome=renewed&minutes=-3") == 400
    assert post(good, **{USER: "wang@staff.example.test"}) == 403
    other = served.signer.token(task.id, "done", "wang@staff.example.test")
    assert raw_post(served, f"/t/{other}/outcome", {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Length": str(len(good)), USER: "wang@staff.example.test"},
        good.encode())[0] == 409
    assert outcome_events(served, task.id) == []
    assert post(good, Origin=served.base, **{"Sec-Fetch-Site": "same-origin"}) == 200
    assert post(good) == 200  # the same form again: "already submitted"
    assert [e.outcome for e in outcome_events(served, task.id)] == ["renewed"]
    assert served.store.get_task(task.id).status == "done"
    assert fetch(f"{served.base}/t/{token}")[0] == 403  # no proxy header: not signed in


def test_a_held_out_decision_gets_no_outcome_form(served: Served) -> None:
    """A link to a held-out decision (the holdout's control group gets none, but one could be
    made) shows no outcome form, and a posted outcome is refused (409) saying it is held out;
    nothing is recorded."""
    task = next(t for t in served.store.list_tasks() if t.owner_email == "li@staff.example.test")
    with served.store.session() as session:  # as dispatch stores a held-out decision
        session.query(Task).filter(Task.id == task.id).update(
            {"status": "held_out", "open_key": None, "released_at": None})
    token = served.signer.token(task.id, "done", task.owner_email)
    headers = {USER: "li@staff.example.test"}
    status, page = served.app.page("GET", f"/t/{token}", headers=headers)
    assert status == 200 and "outcome-form" not in page and "id='held-out'" in page
    status, page = served.app.record(token, {"key": "a" * 40, "outcome": "renewed",
                                             "minutes": "5"}, headers)
    assert status == 409 and "is held out" in page
    assert outcome_events(served, task.id) == []
    assert served.store.get_task(task.id).status == "held_out"
