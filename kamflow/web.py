"""``kamflow web``: the small web app behind the one-click links in task emails.

    GET  /t/<token>   the task (account, action, deadline, reason, status) and a button to confirm
    POST /t/<token>   acknowledge or finish the task, then a confirmation page
    GET  /healthz     "ok"

Opening a link changes nothing: mail scanners and link previews fetch links on their own, so
the change needs the button (a POST). A forged, altered or expired token gets 403 and changes
nothing; a task already in the asked state says so (200, nothing recorded twice). Every change
is recorded in the task's history as ``by <recipient> (email link)``. Standard library only
(``http.server``); it writes through the task store like every other writer.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from zoneinfo import ZoneInfo

from kamflow.core.links import Claim, LinkError, LinkSigner
from kamflow.worklist import TaskStore
from kamflow.worklist.store import TaskClosedError

__all__ = ["WebApp", "serve"]

log = logging.getLogger(__name__)

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
        if method == "GET":
            return HTTPStatus.OK, self._confirm(claim, task, token)
        if method == "POST":
            return self._apply(claim, now)
        return HTTPStatus.METHOD_NOT_ALLOWED, _page("Not allowed", "", "not-allowed")

    def _confirm(self, claim: Claim, task: Any, token: str) -> str:
        en, zh, state_en, state_zh = _WORDS[claim.action]
        target = "acknowledged" if claim.action == "ack" else "done"
        if task.status == target:
            return _page(f"Already {state_en} / {state_zh}", _task_table(task, self.zone) +
                         f"<p class='ok'>Task {task.id} is already {state_en}. 任务已{state_zh}。"
                         "</p>", "already", task.status)
        body = (_task_table(task, self.zone) +
                f"<form method='post' action='/t/{html.escape(token)}'>"
                f"<button type='submit' id='confirm'>{en} / {zh}</button></form>"
                "<p>Nothing changes until you press the button. 点击按钮后才会生效。</p>")
        return _page(f"{en} task {task.id} / {zh}", body, "confirm", task.status)

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
        message = (f"Task {task.id} is now {state_en}. 任务已{state_zh}。" if changed else
                   f"Task {task.id} was already {state_en}. 任务此前已{state_zh}。")
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


def make_server(app: WebApp, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server for ``app`` (not started)."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "kamflow-web"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(min(length, 65536))  # the form has no fields we need
            self._answer("POST")

        def _answer(self, method: str) -> None:
            try:
                status, page = app.page(method, self.path)
            except Exception:  # noqa: BLE001 - a bug must not leak a traceback to the browser
                log.exception("kamflow web: error answering %s", method)
                status, page = HTTPStatus.INTERNAL_SERVER_ERROR, _page(
                    "Error / 出错", "<p>Something went wrong; nothing was changed.</p>", "error")
            data = page.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8" if page != "ok"
                             else "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in _HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            # The path holds a token: log the method and status only.
            log.info("kamflow web: %s", " ".join(str(a) for a in args[1:]) if args else "")

    return ThreadingHTTPServer((host, port), Handler)


def serve(app: WebApp, host: str, port: int, ready: threading.Event | None = None) -> None:
    server = make_server(app, host, port)
    if ready is not None:
        ready.set()
    try:
        server.serve_forever()
    finally:
        server.server_close()
