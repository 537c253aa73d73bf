"""``kamflow web``: the small web app behind the one-click links in task emails.

    GET  /t/<token>   the task (account, action, deadline, reason, status) and a button to confirm;
                      a "mark done" link also shows the outcome form (conf/outcomes.yaml)
    POST /t/<token>   acknowledge or finish the task, then a confirmation page
    POST /t/<token>/outcome   record the outcome form's outcome, minutes and note
    GET  /healthz     "ok" (answered at once, never waiting for the task store)

The outcome form is bound to the task's owner (the link's recipient; and, when a sign-on proxy
names the user in ``KAMFLOW_WEB_USER_HEADER``, that user), refuses cross-site posts (a
``Sec-Fetch-Site`` other than same-origin/none, or an ``Origin`` of another host: 403), and
carries a key made from the link and the task's history as shown: submitted twice, it records
once.

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
import hashlib
import html
import logging
import re
import socket
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from kamflow.core.links import Claim, LinkError, LinkSigner
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from kamflow.worklist.db import StoreBusyError
from kamflow.worklist.models import HELD_OUT, OPEN_STATUSES
from kamflow.worklist.outcomes import OutcomeList, OutcomeRecord
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

    def __init__(self, store: TaskStore, signer: LinkSigner, timezone: str = "UTC",
                 outcomes: OutcomeList | None = None, calendar: BusinessCalendar | None = None,
                 user_header: str | None = None) -> None:
        self.store = store
        self.signer = signer
        self.zone = ZoneInfo(timezone)  # deadlines are shown in the business calendar's zone
        if outcomes is None:
            from kamflow import config

            outcomes = config.load_outcomes()
        self.outcomes = outcomes
        self.calendar = calendar or BusinessCalendar(timezone=timezone)
        self.user_header = user_header

    def page(self, method: str, path: str, now: dt.datetime | None = None,
             headers: Mapping[str, str] | None = None) -> tuple[int, str]:
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
        task, refused = self._task_of(claim, headers)
        if refused is not None:
            return refused
        if method == "GET":
            page = self._confirm(claim, task, token)
            form = ""
            if claim.action == "done" and task.status in OPEN_STATUSES:
                form = self._outcome_form(task, token)
            elif task.status == HELD_OUT:
                form = ("<p class='bad' id='held-out'>This decision is held out (the holdout's "
                        "control group): nothing is to be done and no outcome is recorded. "
                        "此客户为对照组，无需处理，也不记录处理结果。</p>")
            return HTTPStatus.OK, page.replace(_FORM_SLOT, form, 1)
        if method == "POST":
            return self._apply(claim, now)
        return HTTPStatus.METHOD_NOT_ALLOWED, _page("Not allowed", "", "not-allowed")

    def _owner_since(self, task: Any) -> dt.datetime:
        """When the task last came to its current owner (created, reassigned or escalated)."""
        changes = [e.at for e in self.store.history(task.id)
                   if e.event in ("reassigned", "escalated")]
        return _whole_seconds(max(changes, default=task.created_at))

    def _task_of(self, claim: Claim, headers: Mapping[str, str] | None
                 ) -> tuple[Any, tuple[int, str] | None]:
        """(task, None) when the link may act on its task, else (task or None, the refusal):
        no such task (404), a link made for an earlier task with this id (410), no longer the
        recipient's (409), made before the task came back to them (409), not the signed-on
        user's (403). The one place both the confirm button and the outcome form are
        checked."""
        try:
            task = self.store.get_task(claim.task_id)
        except LookupError:
            return None, (HTTPStatus.NOT_FOUND, _page(
                "No such task / 任务不存在", f"<p>There is no task {claim.task_id}.</p>",
                "not-found"))
        if claim.issued < _whole_seconds(task.created_at):
            # made for an earlier task with this id (the task store was recreated)
            log.warning("refused a task link of %s made before task %d existed",
                        claim.recipient, task.id)
            return task, (HTTPStatus.GONE, _page(
                "Link refused / 链接无效",
                f"<p class='bad' id='message'>This link was made for an earlier task "
                f"{task.id}, which no longer exists. Nothing was changed. "
                "此链接对应的任务已不存在，未做任何更改。</p>", "stale"))
        if not _same_address(task.owner_email, claim.recipient):
            return task, (HTTPStatus.CONFLICT, self._moved(claim, task))
        handed = self._owner_since(task)
        if claim.issued < handed:
            # the task left this recipient and came back: only links made since then act
            log.warning("refused a task link of %s made before task %d came back to them",
                        claim.recipient, task.id)
            return task, (HTTPStatus.CONFLICT, _page(
                f"Task {task.id}: old link / 旧链接", _task_table(task, self.zone) +
                f"<p class='bad' id='message'>This link was made before task {task.id} was "
                f"handed to you again on {handed.astimezone(self.zone):%Y-%m-%d %H:%M}: use "
                "the link in the email about that. Nothing was changed. "
                "此链接早于任务再次转交给您，请使用最新邮件中的链接，未做任何更改。</p>",
                "stale", task.status))
        return task, self._not_the_owner(task, headers)

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
                "<p>Nothing changes until you press the button. 点击按钮后才会生效。</p>"
                + _FORM_SLOT)
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

    # -- the outcome form ---------------------------------------------------------------------
    def _not_the_owner(self, task: Any, headers: Mapping[str, str] | None
                       ) -> tuple[int, str] | None:
        """With a sign-on proxy naming the user (``user_header``): 403 unless it is the task's
        owner (a forwarded link opened by a colleague changes nothing)."""
        if self.user_header is None:
            return None
        user = _header(headers, self.user_header)
        if user and _same_address(user, task.owner_email):
            return None
        log.warning("refused a task link of task %d opened by %s", task.id, user or "nobody")
        return HTTPStatus.FORBIDDEN, _page(
            "Not your task / 非本人任务", _task_table(task, self.zone) +
            f"<p class='bad' id='message'>Task {task.id} is {html.escape(task.owner_email)}'s; "
            f"signed in as {html.escape(user or 'nobody')}, this page changes nothing. "
            "此任务不属于当前登录用户，未做任何更改。</p>", "not-yours", task.status)

    def _form_key(self, token: str, task_id: int) -> str:
        """The key of an outcome form: the link and the task's history as the form was shown,
        so a second submit of the same form records nothing more."""
        seen = len(self.store.history(task_id))
        return hashlib.sha256(f"{token}|{seen}".encode()).hexdigest()[:40]

    def _outcome_form(self, task: Any, token: str) -> str:
        options = "".join(
            f"<option value='{html.escape(o.code)}'>{html.escape(o.label.zh)} / "
            f"{html.escape(o.label.en)}</option>" for o in self.outcomes.outcomes)
        last = ""
        if task.outcome:
            last = (f"<p id='last-outcome'>Last recorded / 上次记录："
                    f"{html.escape(self.outcomes.words(task.outcome, 'zh'))} / "
                    f"{html.escape(self.outcomes.words(task.outcome, 'en'))}"
                    f"{', ' + str(task.minutes_spent) + ' min' if task.minutes_spent else ''}"
                    "</p>")
        # relative, as the confirm form: /t/<token>/outcome also behind a path prefix
        return (f"<h2>Record the outcome / 记录处理结果</h2>{last}"
                f"<form method='post' action='{html.escape(token)}/outcome' id='outcome-form'>"
                f"<input type='hidden' name='key' value='{self._form_key(token, task.id)}'>"
                f"<p><label>Outcome / 结果 <select name='outcome' id='outcome' required>"
                f"<option value=''>—</option>{options}</select></label></p>"
                f"<p><label>Minutes spent / 用时（分钟） <input type='number' name='minutes' "
                f"id='minutes' min='0' max='{self.outcomes.minutes_max}' required></label></p>"
                f"<p><label>Follow-up on / 跟进日期 <input type='date' name='follow_up' "
                f"id='follow-up'></label></p>"
                f"<p><label>Note / 备注 <textarea name='note' id='note' rows='2' "
                f"maxlength='{self.outcomes.note_max_chars}'></textarea></label></p>"
                "<button type='submit' id='record'>Record / 提交</button></form>")

    def record(self, token: str, form: Mapping[str, str], headers: Mapping[str, str],
               now: dt.datetime | None = None) -> tuple[int, str]:
        """POST /t/<token>/outcome: (HTTP status, page). A cross-site post or a bad token is
        refused (403); the form is checked (400 naming the field); the outcome is recorded
        for the link's recipient once per form key."""
        if not _same_site(headers):
            log.warning("refused a cross-site outcome post")
            return HTTPStatus.FORBIDDEN, _page(
                "Refused / 已拒绝", "<p class='bad'>A form from another site cannot record an "
                "outcome. Nothing was changed. 未做任何更改。</p>", "refused")
        try:
            claim = self.signer.verify(token, now)
        except LinkError as exc:
            return HTTPStatus.FORBIDDEN, _page(
                "Link refused / 链接无效", f"<p class='bad'>{html.escape(str(exc))}.</p>"
                "<p>Nothing was changed. 未做任何更改。</p>", "refused")
        if claim.action != "done":
            return HTTPStatus.FORBIDDEN, _page("Link refused / 链接无效",
                                               "<p class='bad'>This link cannot record an "
                                               "outcome.</p>", "refused")
        task, refused = self._task_of(claim, headers)
        if refused is not None:
            return refused
        try:
            record = self._from_form(claim, form)
        except ValueError as exc:
            return HTTPStatus.BAD_REQUEST, _page(
                "Not recorded / 未记录", _task_table(task, self.zone) +
                f"<p class='bad' id='message'>{html.escape(str(exc))}. Nothing was recorded; "
                "go back and correct it. 未记录，请返回修改。</p>", "invalid", task.status)
        moment = now or dt.datetime.now(dt.UTC)
        if record.follow_up_on is not None and \
                record.follow_up_on <= self.calendar.today(moment):
            return HTTPStatus.BAD_REQUEST, _page(
                "Not recorded / 未记录", "<p class='bad' id='message'>The follow-up date must "
                "be after today. 跟进日期须晚于今天。</p>", "invalid", task.status)
        try:
            task, recorded = self.store.record_outcome(
                record, moment, f"{claim.recipient} (email link)", self.calendar)
        except TaskClosedError as exc:
            task = self.store.get_task(claim.task_id)
            return HTTPStatus.CONFLICT, _page(
                "Not changed / 未更改", _task_table(task, self.zone) +
                f"<p class='bad' id='message'>{html.escape(str(exc))}.</p>", "conflict",
                task.status)
        words = (f"{html.escape(self.outcomes.words(record.outcome.code, 'zh'))} / "
                 f"{html.escape(self.outcomes.words(record.outcome.code, 'en'))}")
        message = (f"Recorded: {words}, {record.minutes} min. 已记录。" if recorded else
                   "This form was already submitted: nothing more was recorded. "
                   "此表单已提交过，未重复记录。")
        log.info("task %d outcome %s via email link of %s%s", task.id, record.outcome.code,
                 claim.recipient, "" if recorded else " (already recorded)")
        return HTTPStatus.OK, _page(
            "Outcome recorded / 已记录处理结果", _task_table(task, self.zone) +
            f"<p class='ok' id='message'>{message}</p>", "recorded" if recorded else "already",
            task.status)

    def _from_form(self, claim: Claim, form: Mapping[str, str]) -> OutcomeRecord:
        key = form.get("key", "")
        if not _FORM_KEY.fullmatch(key):
            raise ValueError("the form is incomplete (no key): open the link again")
        try:
            outcome = self.outcomes.get(form.get("outcome", "").strip())
        except LookupError:
            raise ValueError("choose an outcome / 请选择结果") from None
        try:
            minutes = self.outcomes.check_minutes(form.get("minutes", ""))
        except ValueError as exc:
            raise ValueError(f"minutes spent: {exc}") from None
        note = self.outcomes.check_note(form.get("note", ""))
        follow_up = None
        if form.get("follow_up", "").strip() and outcome.then == "follow_up":
            try:
                follow_up = dt.date.fromisoformat(form["follow_up"].strip())
            except ValueError:
                raise ValueError("the follow-up date is not a date YYYY-MM-DD") from None
        return OutcomeRecord(claim.task_id, outcome, minutes, note, follow_up, f"web:{key}",
                             claim.recipient)


_FORM_SLOT = "<!--outcome-form-->"
_FORM_KEY = re.compile(r"[0-9a-f]{40}")
_FORM_FIELDS = ("key", "outcome", "minutes", "note", "follow_up")


def _header(headers: Mapping[str, str] | None, name: str) -> str:
    if not headers:
        return ""
    wanted = name.lower()
    return next((str(v).strip() for k, v in headers.items() if k.lower() == wanted), "")


def _same_site(headers: Mapping[str, str]) -> bool:
    """A post from this site's own page (or typed by hand): Sec-Fetch-Site same-origin or
    none when the browser says, and an Origin, when sent, of this host. With the pages'
    no-referrer policy a browser sends ``Origin: null``: then Sec-Fetch-Site decides."""
    site = _header(headers, "sec-fetch-site")
    if site and site not in ("same-origin", "none"):
        return False
    origin = _header(headers, "origin")
    if origin == "null":
        return bool(site)
    if origin:
        return origin.split("://", 1)[-1].rstrip("/") == _header(headers, "host")
    return True


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
        return await run_in_threadpool(respond, request.method, request.url.path,
                                       dict(request.headers))

    def respond(method: str, path: str, headers: Mapping[str, str]) -> Response:
        try:
            status, page = app.page(method, path, headers=headers)
        except StoreBusyError:
            log.warning("kamflow web: the task store is busy; answered %s with 503", method)
            return _response(int(HTTPStatus.SERVICE_UNAVAILABLE), _page(*_BUSY_PAGE),
                             {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except Exception:  # noqa: BLE001 - a bug must not leak a traceback to the browser
            log.exception("kamflow web: error answering %s", method)
            status, page = HTTPStatus.INTERNAL_SERVER_ERROR, _page(*_ERROR_PAGE)
        return _response(int(status), page)

    async def outcome(request: Request) -> Response:
        try:
            fields = parse_qs((await request.body()).decode("utf-8", "replace"),
                              max_num_fields=len(_FORM_FIELDS) + 2)
            form = {k: v[0] for k, v in fields.items() if k in _FORM_FIELDS}
            status, page = await run_in_threadpool(app.record, request.path_params["token"],
                                                   form, dict(request.headers))
        except ValueError:  # too many fields: not our form
            status, page = HTTPStatus.BAD_REQUEST, _page("Error 400", "<p>Nothing was "
                                                         "changed.</p>", "refused")
        except StoreBusyError:
            log.warning("kamflow web: the task store is busy; answered an outcome with 503")
            return _response(int(HTTPStatus.SERVICE_UNAVAILABLE), _page(*_BUSY_PAGE),
                             {"Retry-After": str(RETRY_AFTER_SECONDS)})
        except Exception:  # noqa: BLE001 - a bug must not leak a traceback to the browser
            log.exception("kamflow web: error recording an outcome")
            status, page = HTTPStatus.INTERNAL_SERVER_ERROR, _page(*_ERROR_PAGE)
        return _response(int(status), page)

    starlette = Starlette(routes=[Route("/t/{token}/outcome", outcome, methods=["POST"]),
                                  Route("/{path:path}", answer,
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
    calendar = config.load_calendar(settings.conf_dir / "calendar.yaml")
    outcomes = config.load_outcomes(settings.conf_dir / "outcomes.yaml")
    store = web_store(settings.database_url)
    try:
        server = make_server(WebApp(store, signer, calendar.timezone, outcomes, calendar,
                                    settings.web_user_header), host, port)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        announce(f"kamflow web: serving task links on http://{host}:{server.server_address[1]} "
                 f"(links in emails point at {signer.base_url}); Ctrl-C to stop")
        try:
            server.serve_forever()
        finally:
            server.server_close()
    finally:
        store.dispose()
