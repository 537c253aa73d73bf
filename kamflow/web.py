"""``kamflow web``: the small web app behind the one-click links in task emails.

    GET  /t/<token>   the task (account, action, deadline, reason, status) and a button to confirm
    POST /t/<token>   acknowledge or finish the task, then a confirmation page
    GET  /healthz     "ok" (answered at once, never waiting for the task store)

Opening a link changes nothing: mail scanners and link previews fetch links on their own, so
the change needs the button (a POST). A forged, altered or expired token gets 403 and changes
nothing; a task already in the asked state says so (200, nothing recorded twice). A link acts
only while its recipient still owns the task: once the task was reassigned or escalated, the
page says who has it now and changes nothing (409). Every change is recorded in the task's
history as ``by <recipient> (email link)``. It writes through the task store like every other
writer.

Served by uvicorn (Starlette): idle keep-alive connections close after a few seconds, at most
`MAX_CONNECTIONS` requests are handled at once (503 beyond), and a request body over
`MAX_BODY_BYTES` gets 413 (the form carries nothing we need); a malformed or negative
Content-Length gets 400. Request paths hold tokens, so they are never logged. While another
writer holds the task store's lock for more than `STORE_WAIT_SECONDS`, a click gets 503 with
Retry-After (nothing changed). A POST a browser marks as coming from another site
(Sec-Fetch-Site) gets 403.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import socket
import threading
from collections.abc import Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kamflow.core.links import Claim, LinkError, LinkSigner
from kamflow.worklist import TaskStore
from kamflow.worklist.db import StoreBusyError
from kamflow.worklist.store import TaskClosedError

if TYPE_CHECKING:
    import uvicorn

    from kamflow.core.settings import Settings

__all__ = ["MAX_BODY_BYTES", "LinkServer", "WebApp", "asgi_app", "make_server", "run_server",
           "serve", "web_store"]

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024  # the confirm form posts nothing; anything big is not ours
MAX_CONNECTIONS = 64  # concurrent requests before uvicorn answers 503
KEEP_ALIVE_SECONDS = 5  # an idle connection is closed after this
# A click waits this long for another writer (a national dispatch holds SQLite's write lock for
# a while), then gets 503 with Retry-After instead of a request stalled for 30 s.
STORE_WAIT_SECONDS = 1.0
RETRY_AFTER_SECONDS = 5

_WORDS = {
    "ack": ("Acknowledge", "确认接收", "acknowledged", "已确认接收"),
    "done": ("Mark done", "标记完成", "done", "已完成"),
}
_STYLE = ("body{font-family:Arial,'Microsoft YaHei',sans-serif;max-width:40em;margin:2em auto;"
          "color:#222}th{text-align:left;padding-right:1em}td,th{padding:.3em 0}"
          "button{font-size:1.1em;padding:.5em 1.5em}.bad{color:#b00020}.ok{color:#1b5e20}")
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",  # the token must not leak to other sites
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


class WebApp:
    """The link handler, independent of the HTTP server (tests call it directly too)."""

    def __init__(self, store: TaskStore, signer: LinkSigner, timezone: str = "UTC") -> None:
        self.store = store
        self.signer = signer
        self.zone = ZoneInfo(timezone)  # deadlines are shown in the business calendar's zone

    def page(self, method: str, path: str, now: dt.datetime | None = None) -> tuple[int, str]:
        """(HTTP status, HTML page) for a request."""
        if path == "/healthz" and method == "GET":
            return HTTPStatus.OK, "ok"
        if not path.startswith("/t/"):
            return HTTPStatus.NOT_FOUND, _page("Not found / 未找到", "<p>No such page.</p>",
                                               "not-found")
        token = path[3:].split("?", 1)[0]
        try:
            claim = self.signer.verify(token, now)
        except LinkError as exc:
            log.warning("refused a task link: %s", exc)
            return HTTPStatus.FORBIDDEN, _page(
                "Link refused / 链接无效",
                f"<p class='bad'>{html.escape(str(exc))}.</p><p>Nothing was changed. "
                "未做任何更改。</p>", "refused")
        try:
            task = self.store.get_task(claim.task_id)
        except LookupError:
            return HTTPStatus.NOT_FOUND, _page("No such task / 任务不存在",
                                               f"<p>There is no task {claim.task_id}.</p>",
                                               "not-found")
        if claim.issued < _whole_seconds(task.created_at):
            # made for an earlier task with this id (the task store was recreated)
            log.warning("refused a task link of %s made before task %d existed",
                        claim.recipient, task.id)
            return HTTPStatus.GONE, _page(
                "Link refused / 链接无效",
                f"<p class='bad' id='message'>This link was made for an earlier task "
                f"{task.id}, which no longer exists. Nothing was changed. "
                "此链接对应的任务已不存在，未做任何更改。</p>", "stale")
        if not _same_address(task.owner_email, claim.recipient):
            return HTTPStatus.CONFLICT, self._moved(claim, task)
        handed = self._owner_since(task)
        if claim.issued < handed:
            # the task left this recipient and came back: only links made since then act
            log.warning("refused a task link of %s made before task %d came back to them",
                        claim.recipient, task.id)
            return HTTPStatus.CONFLICT, _page(
                f"Task {task.id}: old link / 旧链接", _task_table(task, self.zone) +
                f"<p class='bad' id='message'>This link was made before task {task.id} was "
                f"handed to you again on {handed.astimezone(self.zone):%Y-%m-%d %H:%M}: use "
                "the link in the email about that. Nothing was changed. "
                "此链接早于任务再次转交给您，请使用最新邮件中的链接，未做任何更改。</p>",
                "stale", task.status)
        if method == "GET":
            return HTTPStatus.OK, self._confirm(claim, task, token)
        if method == "POST":
            return self._apply(claim, now)
        return HTTPStatus.METHOD_NOT_ALLOWED, _page("Not allowed", "", "not-allowed")

    def _owner_since(self, task: Any) -> dt.datetime:
        """When the task last came to its current owner (created, reassigned or escalated)."""
        changes = [e.at for e in self.store.history(task.id)
                   if e.event in ("reassigned", "escalated")]
        return _whole_seconds(max(changes, default=task.created_at))

    def _confirm(self, claim: Claim, task: Any, token: str) -> str:
        en, zh, state_en, state_zh = _WORDS[claim.action]
        target = "acknowledged" if claim.action == "ack" else "done"
        if task.status == target:
            return _page(f"Already {state_en} / {state_zh}", _task_table(task, self.zone) +
                         f"<p class='ok'>Task {task.id} is already {state_en}. 任务{state_zh}。"
                         "</p>", "already", task.status)
        body = (_task_table(task, self.zone) +
                # relative: the form posts back to the link's own address, also behind a
                # proxy that serves kamflow under a path prefix
                f"<form method='post' action='{html.escape(token)}'>"
                f"<button type='submit' id='confirm'>{en} / {zh}</button></form>"
                "<p>Nothing changes until you press the button. 点击按钮后才会生效。</p>")
        return _page(f"{en} task {task.id} / {zh}", body, "confirm", task.status)

    def _moved(self, claim: Claim, task: Any) -> str:
        """The link's recipient no longer owns the task: say who does, change nothing."""
        log.warning("refused a task link of %s: task %d is now with %s", claim.recipient,
                    task.id, task.owner_email)
        role = f" ({task.owner_role})" if task.owner_role else ""
        body = (_task_table(task, self.zone) +
                f"<p class='bad' id='message'>This link was sent to "
                f"{html.escape(claim.recipient)}, but task {task.id} is now with "
                f"{html.escape(task.owner_name)} &lt;{html.escape(task.owner_email)}&gt;"
                f"{html.escape(role)}: the link no longer acts on it. Nothing was changed. "
                f"任务已转交 {html.escape(task.owner_name)}，此链接已失效，未做任何更改。</p>")
        return _page(f"Task {task.id} has moved / 任务已转交", body, "moved", task.status)

    def _apply(self, claim: Claim, now: dt.datetime | None) -> tuple[int, str]:
        en, zh, state_en, state_zh = _WORDS[claim.action]
        try:
            task, changed = self.store.transition(
                claim.task_id, claim.action, now or dt.datetime.now(dt.UTC),
                actor=f"{claim.recipient} (email link)")
        except TaskClosedError as exc:
            task = self.store.get_task(claim.task_id)
            return HTTPStatus.CONFLICT, _page(
                "Not changed / 未更改", _task_table(task, self.zone) +
                f"<p class='bad'>{html.escape(str(exc))}.</p>", "conflict", task.status)
        log.info("task %d %s via email link of %s%s", task.id, state_en, claim.recipient,
                 "" if changed else " (no change: already so)")
        message = (f"Task {task.id} is now {state_en}. 任务{state_zh}。" if changed else
                   f"Task {task.id} was already {state_en}. 任务此前{state_zh}。")
        body = _task_table(task, self.zone) + f"<p class='ok' id='message'>{message}</p>"
        return HTTPStatus.OK, _page(f"{state_en.capitalize()} / {state_zh}", body, "changed",
                                    task.status)


def _task_table(task: Any, zone: ZoneInfo) -> str:
    due = (task.due_at if task.due_at.tzinfo else task.due_at.replace(tzinfo=dt.UTC)).astimezone(
        zone)
    rows = [("Task / 任务", str(task.id)),
            ("Account / 客户", f"{task.account_name} ({task.account_id})"),
            ("Action / 措施", task.action_title),
            ("Due / 截止", f"{due:%Y-%m-%d %H:%M} ({zone.key})"),
            ("Owner / 负责人", f"{task.owner_name} <{task.owner_email}>"),
            ("Why / 原因", task.reason),
            ("Status / 状态", task.status)]
    cells = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _page(title: str, body: str, outcome: str, status: str = "") -> str:
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>"
            f"<div id='result' data-outcome='{outcome}' data-status='{html.escape(status)}'>"
            f"{body}</div><p style='color:#777'>kamflow 大客户维系</p></body></html>")


def _whole_seconds(stamp: dt.datetime) -> dt.datetime:
    """A stored time (naive UTC from SQLite) as links carry times: aware, to the second."""
    aware = stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)
    return aware.replace(microsecond=0)


def _same_address(one: str, other: str) -> bool:
    return one.strip().casefold() == other.strip().casefold()


# Sec-Fetch-Site values of a request kamflow's own page (or the address bar) makes; None: the
# header is absent (no browser, or an old one).
_OWN_SITE = (None, "same-origin", "none")
_BUSY_PAGE = ("Busy / 系统繁忙", "<p class='bad' id='message'>kamflow is busy recording other "
              f"changes. Nothing was changed: try again in {RETRY_AFTER_SECONDS} seconds. "
              "系统繁忙，未做任何更改，请稍后重试。</p>", "busy")
_ERROR_PAGE = ("Error / 出错", "<p>Something went wrong; nothing was changed.</p>", "error")


def asgi_app(app: WebApp) -> ASGIApp:
    """The Starlette application serving ``app``, inside the request-body bound."""

    async def answer(request: Request) -> Response:
        if request.url.path == "/healthz" and request.method == "GET":
            # answered here, not in the thread pool: requests waiting for a locked store there
            # must not make the health check wait too
            return _response(int(HTTPStatus.OK), "ok")
        if request.method != "GET" and request.headers.get("sec-fetch-site") not in _OWN_SITE:
            # A browser says the POST comes from another site's page: the token is the only
            # credential, so this is no CSRF, but nothing of ours posts from elsewhere.
            log.warning("kamflow web: refused a %s from another site", request.method)
            return _response(int(HTTPStatus.FORBIDDEN), _page(
                "Refused / 已拒绝", "<p class='bad'>This request came from another web site. "
                "Nothing was changed. 请求来自其他网站，未做任何更改。</p>", "refused"))
        # The task store is synchronous: the page is made in Starlette's thread pool.
        return await run_in_threadpool(respond, request.method, request.url.path)

    def respond(method: str, path: str) -> Response:
        try:
            status, page = app.page(method, path)
        except StoreBusyError:
            log.warning("kamflow web: the task store is busy; answered %s with 503", method)
            return _response(int(HTTPStatus.SERVICE_UNAVAILABLE), _page(*_BUSY_PAGE),
                             {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except Exception:  # noqa: BLE001 - a bug must not leak a traceback to the browser
            log.exception("kamflow web: error answering %s", method)
            status, page = HTTPStatus.INTERNAL_SERVER_ERROR, _page(*_ERROR_PAGE)
        return _response(int(status), page)

    starlette = Starlette(routes=[Route("/{path:path}", answer,
                                        methods=["GET", "POST", "PUT", "DELETE", "PATCH"])])
    return BodyLimit(starlette, MAX_BODY_BYTES)


def _response(status: int, page: str, extra: dict[str, str] | None = None) -> Response:
    return Response(page.encode("utf-8"), status_code=status,
                    headers={**_HEADERS, **(extra or {})},
                    media_type="text/plain; charset=utf-8" if page == "ok"
                    else "text/html; charset=utf-8")


class BodyLimit:
    """ASGI middleware: 400 for a malformed or negative Content-Length, 413 for a body over
    ``limit`` bytes (declared, or counted as it arrives when chunked). Logs method and status,
    never the path (it holds the token)."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        declared = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        refusal = self._refusal(declared)
        if refusal is not None:
            log.info("kamflow web: %s refused: %d", method, refusal)
            await _response(refusal, _page(f"Error {refusal}", "<p>Nothing was changed.</p>",
                                           "refused"))(scope, receive, send)
            return
        received = 0
        too_big = False

        async def bounded() -> Any:
            nonlocal received, too_big
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    too_big = True
                    return {"type": "http.disconnect"}
            return message

        status = 0

        async def logged(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        if method in ("GET", "HEAD", "DELETE") and not declared:
            await self.app(scope, receive, logged)
        else:
            # Read (and count) the whole body before the app acts on the request.
            body = bytearray()
            while True:
                message = await bounded()
                if too_big or message["type"] == "http.disconnect":
                    break
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            if too_big:
                log.info("kamflow web: %s refused: 413", method)
                await _response(413, _page("Error 413", "<p>Nothing was changed.</p>",
                                           "refused"))(scope, receive, send)
                return
            sent = False

            async def replay() -> Any:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            await self.app(scope, replay, logged)
        log.info("kamflow web: %s %d", method, status)

    def _refusal(self, declared: list[bytes]) -> int | None:
        if not declared:
            return None
        if len(set(declared)) > 1:
            return 400
        text = declared[0].strip()
        if not text.isdigit():  # negative, signed, empty or not a number
            return 400
        return 413 if int(text) > self.limit else None


class LinkServer:
    """uvicorn serving `asgi_app` on a socket bound at once (port 0: a free port, read it in
    ``server_address``); ``serve_forever`` blocks until ``shutdown`` (from another thread) or
    Ctrl-C (in the main thread)."""

    def __init__(self, app: WebApp, host: str, port: int) -> None:
        import uvicorn

        self.socket = socket.create_server((host, port), family=_family(host), reuse_port=False)
        self.server_address = self.socket.getsockname()[:2]
        self.config = uvicorn.Config(
            asgi_app(app), timeout_keep_alive=KEEP_ALIVE_SECONDS,
            limit_concurrency=MAX_CONNECTIONS, h11_max_incomplete_event_size=MAX_BODY_BYTES,
            access_log=False,  # uvicorn's access log prints the path, which holds the token
            server_header=False, log_config=None, timeout_graceful_shutdown=5)
        self.server: uvicorn.Server = uvicorn.Server(self.config)
        self._stopped = threading.Event()

    def serve_forever(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        self.server.should_exit = True
        self._stopped.wait(timeout=15)

    def server_close(self) -> None:
        self.socket.close()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def web_store(url: str) -> TaskStore:
    """The task store as `kamflow web` opens it: a write waits `STORE_WAIT_SECONDS` for the
    lock, then the click is answered 503."""
    return TaskStore(url, busy_timeout=STORE_WAIT_SECONDS)


def make_server(app: WebApp, host: str = "127.0.0.1", port: int = 8765) -> LinkServer:
    """A server for ``app`` (bound, not started)."""
    return LinkServer(app, host, port)


def serve(app: WebApp, host: str, port: int, ready: threading.Event | None = None) -> None:
    server = make_server(app, host, port)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    finally:
        server.server_close()


def run_server(settings: Settings, host: str, port: int,
               announce: Callable[[str], None] = log.info) -> None:
    """``kamflow web``: serve the links of this installation until Ctrl-C (``announce`` gets the
    line saying where)."""
    from kamflow import config

    signer = LinkSigner.from_settings(settings)
    timezone = config.load_calendar(settings.conf_dir / "calendar.yaml").timezone
    store = web_store(settings.database_url)
    try:
        server = make_server(WebApp(store, signer, timezone), host, port)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        announce(f"kamflow web: serving task links on http://{host}:{server.server_address[1]} "
                 f"(links in emails point at {signer.base_url}); Ctrl-C to stop")
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        store.dispose()
