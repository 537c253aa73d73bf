"""One-click links: signed and expiring tokens, `kamflow web` serving them, and a task closed
from the link in its email in a real headless Chromium."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from kamflow import notifications
from kamflow.core.links import LinkError, LinkSigner, load_secret
from kamflow.core.settings import Settings
from kamflow.flows.delivery import dispatch, drain_outbox
from kamflow.web import WebApp, make_server
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions

SECRET = b"web-test-secret-0123456789abcdef"


def test_token_round_trip_and_refusals() -> None:
    """A token verifies to its task, action and recipient; altered, forged, expired or
    malformed tokens raise LinkError."""
    signer = LinkSigner(SECRET, ttl=dt.timedelta(days=7))
    token = signer.token(42, "done", "wang@operator.example", NOW)
    claim = signer.verify(token, NOW + dt.timedelta(days=6))
    assert (claim.task_id, claim.action, claim.recipient) == (42, "done", "wang@operator.example")
    version, body, signature = token.split(".")
    other = LinkSigner(b"another-secret-0123456789abcdef").token(42, "done", "x@y.z", NOW)
    forged_body = signer.token(43, "done", "wang@operator.example", NOW).split(".")[1]
    for bad, why in [(f"{version}.{forged_body}.{signature}", "signature"),
                     (other, "signature"), (token[:-2] + "xx", "signature"),
                     ("v1.not-a-token", "not a kamflow"), ("v1.@@@.abc", "malformed")]:
        with pytest.raises(LinkError, match=why):
            signer.verify(bad, NOW)
    with pytest.raises(LinkError, match="expired"):
        signer.verify(token, NOW + dt.timedelta(days=7, seconds=1))


def test_secret_is_generated_once_private_and_env_wins(tmp_path: Path) -> None:
    """Without KAMFLOW_LINK_SECRET a random key is made once under KAMFLOW_HOME (mode 0600) and
    reused; the variable, when set, is used instead."""
    first = load_secret(tmp_path, None)
    assert load_secret(tmp_path, None) == first and len(first) >= 32
    assert (tmp_path / "link-secret").stat().st_mode & 0o777 == 0o600
    configured = Settings.from_env({"KAMFLOW_LINK_SECRET": "from-the-environment-123"})
    assert load_secret(tmp_path, configured.link_secret) == \
        b"from-the-environment-123"


class Web:
    def __init__(self, tmp: Path) -> None:
        self.store = TaskStore(f"sqlite:///{tmp / 'k.db'}")
        self.app = WebApp(self.store, LinkSigner(SECRET), "Asia/Shanghai")
        self.server = make_server(self.app, "127.0.0.1", 0)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.signer = self.app.signer = LinkSigner(SECRET, self.base)  # links name the port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.store.dispose()


@pytest.fixture
def web(tmp_path: Path) -> Iterator[Web]:
    """`kamflow web`'s server on a free loopback port, with tasks dispatched and emailed (file
    outbox) whose links point at it."""
    served = Web(tmp_path)
    dispatch(decisions(), TITLES, OWNERS, served.store, "web", NOW, BusinessCalendar(),
             served.signer)
    drain_outbox(served.store, notifications.FileOutbox(tmp_path / "outbox"),
                 "kamflow@operator.example")
    yield served
    served.close()


def fetch(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8")


def links_in_outbox(outbox: Path) -> dict[str, str]:
    """{href text: url} of the links in the HTML part of every email in the outbox."""
    found: dict[str, str] = {}
    for path in outbox.glob("*.eml"):
        message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
        html = message.get_body(("html",)).get_content()
        for url, label in re.findall(r'<a href="([^"]+)">([^<]+)</a>', html):
            found.setdefault(f"{message['To']} {label}", url)
    return found


def test_opening_a_link_changes_nothing_until_confirmed(web: Web) -> None:
    """GET shows the task and a confirm button and changes nothing; POST marks it; a second POST
    reports it was already so; acknowledging a done task is refused with 409."""
    task = web.store.list_tasks()[0]
    done = web.signer.url(task.id, "done", task.owner_email)
    status, page = fetch(done)
    assert status == 200 and "id='confirm'" in page and task.account_id in page
    assert web.store.get_task(task.id).status == "open"
    status, page = fetch(done, "POST")
    assert status == 200 and "is now done" in page
    assert web.store.get_task(task.id).status == "done"
    assert fetch(done, "POST")[1].count("was already done") == 1
    history = web.store.history(task.id)
    assert [e.event for e in history] == ["created", "done"]
    assert history[-1].detail == f"by {task.owner_email} (email link)"
    status, page = fetch(web.signer.url(task.id, "ack", task.owner_email), "POST")
    assert status == 409 and "already done" in page


def test_forged_altered_or_expired_links_are_refused(web: Web) -> None:
    """A link with a bad signature, another key, a changed task id or an expired time gets 403
    and the task stays as it was."""
    task = web.store.list_tasks()[0]
    good = web.signer.token(task.id, "done", task.owner_email)
    _, body, sig = good.split(".")
    other = web.store.list_tasks()[1]
    swapped = web.signer.token(other.id, "done", task.owner_email).split(".")[1]
    expired = LinkSigner(SECRET, ttl=dt.timedelta(seconds=1)).token(
        task.id, "done", task.owner_email, dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    forged = LinkSigner(b"not-the-server-secret-0123456789").token(task.id, "done", "x@y.z")
    for token in (f"v1.{swapped}.{sig}", f"v1.{body}.{sig[:-3]}abc", expired, forged):
        for method in ("GET", "POST"):
            status, page = fetch(f"{web.base}/t/{token}", method)
            assert status == 403 and "data-outcome='refused'" in page, (token, method)
    assert {t.status for t in web.store.list_tasks()} == {"open"}
    assert fetch(f"{web.base}/nothing")[0] == 404
    assert fetch(f"{web.base}/healthz") == (200, "ok")


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("headless Chromium is needed for this test: install the Debian package "
                    "`chromium` (.ci/run does: apt-get install -y chromium)")
    return path


class Browser:
    """Headless Chromium driven over the DevTools protocol (loopback only)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="kamflow-chromium-")
        self.process = subprocess.Popen(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={self.profile}", "--window-size=1000,800",
             '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.close()
                pytest.fail("headless Chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            page = next(t for t in json.load(r) if t["type"] == "page")
        from websockets.sync.client import connect

        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.counter = 0
        self.call("Page.enable")

    def call(self, method: str, **params: object) -> dict:
        self.counter += 1
        ident = self.counter
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("id") == ident:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message.get("result", {})

    def wait_for_load(self) -> None:
        while True:
            message = json.loads(self.socket.recv(timeout=30))
            if message.get("method") == "Page.loadEventFired":
                return

    def evaluate(self, expression: str) -> object:
        return self.call("Runtime.evaluate", expression=expression,
                         returnByValue=True)["result"].get("value")

    def close(self) -> None:
        if getattr(self, "socket", None) is not None:
            self.socket.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def test_task_is_closed_from_the_link_in_its_email_in_a_real_browser(web: Web,
                                                                     tmp_path: Path) -> None:
    """Headless Chromium opens the "mark done" (标记完成) link taken from the email in the
    outbox, shows the task, the button is clicked, the confirmation page says done, and the task
    is done in the database with the change in its history."""
    links = links_in_outbox(tmp_path / "outbox")
    label, url = next((k, v) for k, v in links.items()
                      if k.startswith("li@staff.example.test") and k.endswith("标记完成"))
    claim = web.signer.verify(url.rsplit("/", 1)[1], NOW)
    assert web.store.get_task(claim.task_id).status == "open"
    # the store was dispatched at the harness's fixed NOW, so the email's token has expired by
    # the wall clock the server checks: the same link (address from the email), signed today
    url = url.rsplit("/", 1)[0] + "/" + web.signer.token(claim.task_id, claim.action,
                                                        claim.recipient, dt.datetime.now(dt.UTC))
    browser = Browser()
    try:
        browser.call("Page.navigate", url=url)
        browser.wait_for_load()
        assert browser.evaluate("document.getElementById('result').dataset.outcome") == "confirm"
        assert web.store.get_task(claim.task_id).status == "open"  # opening changed nothing
        browser.evaluate("document.getElementById('confirm').click()")
        browser.wait_for_load()
        outcome = browser.evaluate("document.getElementById('result').dataset.outcome")
        text = browser.evaluate("document.body.innerText")
        shot = browser.call("Page.captureScreenshot", format="png")["data"]
    finally:
        browser.close()
    import base64

    (tmp_path / "confirmation.png").write_bytes(base64.b64decode(shot))
    assert outcome == "changed" and f"Task {claim.task_id} is now done" in str(text)
    task = web.store.get_task(claim.task_id)
    assert task.status == "done" and task.closed_at is not None
    assert web.store.history(claim.task_id)[-1].detail == "by li@staff.example.test (email link)"


# --------------------------------------------------------------------------- ownership and limits

def test_a_reassigned_task_ignores_the_old_owners_link_and_says_where_it_went(web: Web) -> None:
    """After a reassignment the old owner's link (GET and POST) changes nothing and names the
    new owner; the new owner's own link still works."""
    from kamflow.flows.delivery import reassign_task

    task = next(t for t in web.store.list_tasks() if t.owner_email == "wang@staff.example.test")
    old_link = web.signer.url(task.id, "done", task.owner_email)
    reassign_task(web.store, OWNERS, task.id, "zhao@staff.example.test", "wang", NOW, "leave",
                  links=web.signer)
    for method in ("GET", "POST"):
        status, page = fetch(old_link, method)
        assert status == 409 and "data-outcome='moved'" in page, method
        assert "赵主管 &lt;zhao@staff.example.test&gt;" in page and "Nothing was changed" in page
    assert web.store.get_task(task.id).status == "open"
    assert [e.event for e in web.store.history(task.id)] == ["created", "reassigned"]
    new_link = web.signer.url(task.id, "done", "Zhao@Staff.example.test")  # case does not matter
    status, page = fetch(new_link, "POST")
    assert status == 200 and "is now done" in page
    assert web.store.get_task(task.id).status == "done"


def raw_post(web: Web, path: str, headers: dict[str, str], body: bytes | None = None,
             chunks: list[bytes] | None = None) -> tuple[int, str]:
    """POST with headers as given (http.client does not check them), the body plain or
    chunked."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", web.server.server_address[1],
                                            timeout=10)
    try:
        connection.putrequest("POST", path)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        if body is not None:
            connection.send(body)
        for chunk in chunks or []:
            connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        if chunks is not None:
            connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    except (ConnectionError, http.client.HTTPException):  # closed on us: a refusal too
        return 0, ""
    finally:
        connection.close()


def test_request_bodies_are_bounded(web: Web) -> None:
    """A body over 16 KiB (declared or chunked) gets 413, a negative or malformed Content-Length
    gets 400, and none of them changes the task; a small form body is accepted."""
    from kamflow.web import MAX_BODY_BYTES

    task = web.store.list_tasks()[0]
    path = "/t/" + web.signer.token(task.id, "done", task.owner_email)
    big = b"x" * (MAX_BODY_BYTES + 1)
    assert raw_post(web, path, {"Content-Length": str(len(big))}, big)[0] == 413
    assert raw_post(web, path, {"Content-Length": "99999999999"})[0] == 413
    assert raw_post(web, path, {"Transfer-Encoding": "chunked"},
                    chunks=[b"y" * 8192] * 3)[0] == 413
    for bad in ("-1", "ten", "+5"):
        status, _ = raw_post(web, path, {"Content-Length": bad})
        assert status == 400, bad
    assert web.store.get_task(task.id).status == "open"
    form = b"confirm=1"
    status, page = raw_post(web, path, {"Content-Length": str(len(form)),
                                        "Content-Type": "application/x-www-form-urlencoded"},
                            form)
    assert status == 200 and "is now done" in page


def test_links_point_at_the_public_url(tmp_path: Path) -> None:
    """KAMFLOW_PUBLIC_URL is the base of every link (KAMFLOW_WEB_URL, its older name, still
    works, and the new name wins); a URL without http(s) is refused naming the variable."""
    from kamflow.core.errors import ConfigError

    def signer(env: dict[str, str]) -> LinkSigner:
        return LinkSigner.from_settings(Settings.from_env({"KAMFLOW_HOME": str(tmp_path), **env}))

    public = signer({"KAMFLOW_PUBLIC_URL": "https://kam.operator.example/links/"})
    assert public.url(7, "ack", "a@b.c").startswith("https://kam.operator.example/links/t/v1.")
    assert signer({"KAMFLOW_WEB_URL": "https://old.example"}).base_url == "https://old.example"
    assert signer({"KAMFLOW_WEB_URL": "https://old.example",
                   "KAMFLOW_PUBLIC_URL": "https://new.example"}).base_url == "https://new.example"
    assert signer({}).base_url == "http://127.0.0.1:8765"
    with pytest.raises(ConfigError, match="KAMFLOW_PUBLIC_URL .* must be an http:// or https://"):
        signer({"KAMFLOW_PUBLIC_URL": "kam.operator.example"})


def test_the_confirm_form_posts_back_to_the_link_behind_a_path_prefix(web: Web) -> None:
    """The confirm button posts to the link's own address, also when a proxy serves kamflow
    under a path prefix (KAMFLOW_PUBLIC_URL=https://intranet.example/kamflow)."""
    from urllib.parse import urljoin

    task = web.store.list_tasks()[0]
    token = web.signer.token(task.id, "done", task.owner_email)
    status, page = web.app.page("GET", f"/t/{token}")
    [action] = re.findall(r"<form method='post' action='([^']+)'>", page)
    link = f"https://intranet.example/kamflow/t/{token}"
    assert status == 200 and urljoin(link, action) == link


# --------------------------------------------------------------------------- one link, one task

def _path(signer: LinkSigner, task_id: int, recipient: str, now: dt.datetime,
          action: str = "done") -> str:
    return f"/t/{signer.token(task_id, action, recipient, now)}"


def test_a_link_from_a_recreated_task_store_does_not_act_on_the_new_task(tmp_path: Path) -> None:
    """The task store is recreated and task ids start again: a link made for the old task 1
    is refused (410) by the new task 1, which stays open; the new task's own link works."""
    signer = LinkSigner(SECRET)
    with TaskStore(f"sqlite:///{tmp_path / 'old.db'}") as old:
        dispatch(decisions(), TITLES, OWNERS, old, "old", NOW, BusinessCalendar(), signer)
        first = old.list_tasks()[0]
    stale = _path(signer, first.id, first.owner_email, NOW + dt.timedelta(hours=1))
    later = NOW + dt.timedelta(days=1)
    with TaskStore(f"sqlite:///{tmp_path / 'new.db'}") as new:
        dispatch(decisions(), TITLES, OWNERS, new, "new", later, BusinessCalendar(), signer)
        app = WebApp(new, signer)
        assert new.get_task(first.id).owner_email == first.owner_email  # same id, same owner
        for method in ("GET", "POST"):
            status, page = app.page(method, stale, later + dt.timedelta(hours=1))
            assert status == 410 and "data-outcome='stale'" in page, method
        assert new.get_task(first.id).status == "open"
        fresh = _path(signer, first.id, first.owner_email, later)
        status, page = app.page("POST", fresh, later + dt.timedelta(hours=1))
        assert status == 200 and "is now done" in page


def test_a_link_does_not_act_again_after_the_task_comes_back(tmp_path: Path) -> None:
    """wang's link, then the task goes to zhao (409) and back to wang: the old link still
    changes nothing (409, 'stale'); the link of the email about the return works."""
    from kamflow.flows.delivery import reassign_task

    signer = LinkSigner(SECRET)
    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
        dispatch(decisions(), TITLES, OWNERS, store, "web", NOW, BusinessCalendar(), signer)
        app = WebApp(store, signer)
        task = next(t for t in store.list_tasks() if t.owner_email == "wang@staff.example.test")
        old = _path(signer, task.id, task.owner_email, NOW + dt.timedelta(minutes=30))
        hour = dt.timedelta(hours=1)
        reassign_task(store, OWNERS, task.id, "zhao@staff.example.test", "wang", NOW + hour,
                      "leave", links=signer)
        assert app.page("POST", old, NOW + 2 * hour)[0] == 409
        reassign_task(store, OWNERS, task.id, "wang@staff.example.test", "zhao", NOW + 2 * hour,
                      "back", links=signer)
        for method in ("GET", "POST"):
            status, page = app.page(method, old, NOW + 3 * hour)
            assert status == 409 and "data-outcome='stale'" in page, method
        assert store.get_task(task.id).status == "open"
        again = _path(signer, task.id, task.owner_email, NOW + 2 * hour)  # the email's link
        status, page = app.page("POST", again, NOW + 3 * hour)
        assert status == 200 and "is now done" in page


def test_a_link_sent_before_links_carried_their_time_still_works(tmp_path: Path) -> None:
    """A token without its time (as sent before) is dated by its expiry less the lifetime:
    it works on its task, and is refused by a task created after it."""
    import base64

    signer = LinkSigner(SECRET)

    def legacy(task_id: int, recipient: str, made: dt.datetime) -> str:
        claim = json.dumps({"t": task_id, "a": "done", "r": recipient,
                            "e": int((made + signer.ttl).timestamp())}, separators=(",", ":"))
        body = base64.urlsafe_b64encode(claim.encode()).rstrip(b"=").decode()
        return f"/t/v1.{body}.{signer._sign(body)}"

    with TaskStore(f"sqlite:///{tmp_path / 'k.db'}") as store:
        dispatch(decisions(), TITLES, OWNERS, store, "web", NOW, BusinessCalendar(), signer)
        app = WebApp(store, signer)
        one, two = store.list_tasks()[:2]
        later = NOW + dt.timedelta(hours=2)
        assert app.page("POST", legacy(one.id, one.owner_email, NOW), later)[0] == 200
        before = legacy(two.id, two.owner_email, NOW - dt.timedelta(days=1))
        assert app.page("POST", before, later)[0] == 410


# --------------------------------------------------------------------------- the key file

def test_the_secret_is_whole_or_absent_even_if_its_creation_is_cut_short(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process dying while it makes the key leaves no (empty) key file behind: the key is
    written to a temporary file and linked into place whole; the next start makes one."""
    import secrets as secrets_module

    def cut(_: int) -> str:
        raise KeyboardInterrupt  # the process stopped mid-way
    with monkeypatch.context() as patch:
        patch.setattr(secrets_module, "token_urlsafe", cut)
        with pytest.raises(KeyboardInterrupt):
            load_secret(tmp_path, None)
    assert list(tmp_path.iterdir()) == []
    key = load_secret(tmp_path, None)
    assert len(key) >= 32 and sorted(p.name for p in tmp_path.iterdir()) == ["link-secret"]


def test_processes_starting_together_share_one_secret(tmp_path: Path) -> None:
    """Eight processes asking for the key of a new home at once all get the same key."""
    import concurrent.futures
    import multiprocessing

    for round_ in range(3):
        home = tmp_path / f"home{round_}"
        with concurrent.futures.ProcessPoolExecutor(
                8, mp_context=multiprocessing.get_context("fork")) as pool:
            keys = list(pool.map(load_secret, [home] * 8))
        assert len(set(keys)) == 1 and len(keys[0]) >= 32


@pytest.mark.parametrize("mode", [0o640, 0o644, 0o604], ids=oct)
def test_a_secret_other_users_can_read_is_refused_without_advising_to_delete_it(
        tmp_path: Path, mode: int) -> None:
    key = load_secret(tmp_path, None)
    path = tmp_path / "link-secret"
    path.chmod(mode)
    with pytest.raises(ValueError, match="chmod 600") as refused:
        load_secret(tmp_path, None)
    assert "forge" in str(refused.value) and "delete" not in str(refused.value)
    path.chmod(0o600)
    assert load_secret(tmp_path, None) == key


def test_an_empty_secret_file_is_refused_without_advising_to_delete_it(tmp_path: Path) -> None:
    (tmp_path / "link-secret").write_text("")
    (tmp_path / "link-secret").chmod(0o600)
    with pytest.raises(ValueError, match="restore it from a backup") as refused:
        load_secret(tmp_path, None)
    assert "delete" not in str(refused.value)


def test_a_post_from_another_site_is_refused(web: Web) -> None:
    """A browser's POST marked Sec-Fetch-Site cross-site or same-site gets 403 and changes
    nothing; the confirm form's own POST (same-origin) and one without the header work."""
    one, two = web.store.list_tasks()[:2]
    for site in ("cross-site", "same-site"):
        path = urllib.parse.urlparse(web.signer.url(one.id, "done", one.owner_email)).path
        status, page = raw_post(web, path, {"Sec-Fetch-Site": site, "Content-Length": "0"})
        assert status == 403 and "data-outcome='refused'" in page, site
    assert web.store.get_task(one.id).status == "open"
    path = urllib.parse.urlparse(web.signer.url(one.id, "ack", one.owner_email)).path
    status, page = raw_post(web, path, {"Sec-Fetch-Site": "same-origin", "Content-Length": "0"})
    assert status == 200 and web.store.get_task(one.id).status == "acknowledged"
    assert fetch(web.signer.url(two.id, "done", two.owner_email), "POST")[0] == 200


def test_the_chinese_confirmation_says_it_once(web: Web) -> None:
    """The zh line of the confirmation: 任务已确认接收 (the state word carries 已 already)."""
    task = web.store.list_tasks()[0]
    ack = web.signer.url(task.id, "ack", task.owner_email)
    page = fetch(ack, "POST")[1]
    assert "任务已确认接收。" in page and "已已" not in page
    page = fetch(ack, "POST")[1]
    assert "任务此前已确认接收。" in page and "已已" not in page
    page = fetch(ack)[1]
    assert "任务已确认接收。" in page and "已已" not in page


# --------------------------------------------------------------------------- a locked store

def test_a_locked_store_gets_503_at_once_and_healthz_never_waits(tmp_path: Path) -> None:
    """Another process holds SQLite's write lock: a click is answered 503 with Retry-After in
    under 2 s (not a 500 after 30 s), /healthz answers at once even while 45 clicks wait, and
    once the lock is gone the same click works."""
    import concurrent.futures
    import sqlite3

    from kamflow.web import web_store

    database = tmp_path / "k.db"
    store = web_store(f"sqlite:///{database}")
    dispatch(decisions(), TITLES, OWNERS, store, "web", NOW, BusinessCalendar(),
             LinkSigner(SECRET))
    server = make_server(WebApp(store, LinkSigner(SECRET)), "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    signer = LinkSigner(SECRET, base)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tasks = store.list_tasks()
    lock = sqlite3.connect(database, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the write lock, as a long dispatch holds it
        link = signer.url(tasks[0].id, "done", tasks[0].owner_email)
        started = time.monotonic()
        request = urllib.request.Request(link, method="POST", data=b"")
        with pytest.raises(urllib.error.HTTPError) as busy:
            urllib.request.urlopen(request, timeout=10)
        assert time.monotonic() - started < 2
        assert busy.value.code == 503 and busy.value.headers["Retry-After"] == "5"
        assert "data-outcome='busy'" in busy.value.read().decode("utf-8")

        clicks = [signer.url(tasks[i % len(tasks)].id, "ack", tasks[i % len(tasks)].owner_email)
                  for i in range(45)]
        with concurrent.futures.ThreadPoolExecutor(46) as pool:
            waiting = [pool.submit(fetch, url, "POST") for url in clicks]
            time.sleep(0.2)  # the clicks are in; now the health check
            started = time.monotonic()
            assert fetch(f"{base}/healthz") == (200, "ok")
            health = time.monotonic() - started
            statuses = [f.result(timeout=60)[0] for f in waiting]
        assert health < 1, health
        assert set(statuses) == {503}
    finally:
        lock.rollback()
        lock.close()
    assert fetch(link, "POST")[0] == 200 and store.get_task(tasks[0].id).status == "done"
    server.shutdown()
    server.server_close()
    store.dispose()
