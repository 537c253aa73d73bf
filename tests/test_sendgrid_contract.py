"""The project's SendGrid mail-send contract (tests/contracts) against SendGrid's official extract
(../shared/contracts, present beside the project's own checkout only)."""

from __future__ import annotations

from typing import Any

import pytest

from kamflow.notifications import Email, InlineImage
from kamflow.notifications.sendgrid_backend import MAX_PERSONALIZATIONS, build_batch, build_mail
from tests.sendgrid_contract import CONTRACT, OFFICIAL, load, request_validator

CHART = InlineImage("c@kamflow", b"\x89PNG\r\n\x1a\n-chart-", "churn-trend.png")


def _email(i: int, **changes: Any) -> Email:
    values: dict[str, Any] = {"key": f"outbox-{i}", "sender": "kamflow@operator.example",
                              "to": f"m{i}@operator.example", "subject": f"[kamflow] 任务 {i}",
                              "text": f"王经理，您好 {i}", "html": f"<p>王经理 {i}</p>",
                              "categories": ("kamflow", "new-tasks"),
                              "custom_args": {"task_ids": f"{i},{i + 1}"}}
    values.update(changes)
    return Email(**values)


def kamflow_requests() -> dict[str, dict[str, Any]]:
    """Every shape of request body kamflow sends."""
    return {
        "single": build_mail(_email(0)).get(),
        "single plain": build_mail(_email(1, html=None, categories=(), custom_args={})).get(),
        "single with an inline chart": build_mail(_email(2, html='<img src="cid:c@kamflow">',
                                                         inline_images=(CHART,))).get(),
        "batch": build_batch([_email(i) for i in range(3)]),
        "full batch": build_batch([_email(i) for i in range(MAX_PERSONALIZATIONS)]),
        "template batch": build_batch([_email(i, text="长" * 6000) for i in range(2)],
                                      "d-0123456789abcdef0123456789abcdef"),
    }


def refused_requests() -> dict[str, dict[str, Any]]:
    """Requests SendGrid refuses, each one mistake away from one kamflow sends."""
    good = build_batch([_email(i) for i in range(2)])
    first = good["personalizations"][0]
    return {
        "no sender": {k: v for k, v in good.items() if k != "from"},
        "no personalization": {**good, "personalizations": []},
        "1,001 personalizations": {**good, "personalizations": [first] * 1001},
        "a personalization without to": {**good, "personalizations": [{"subject": "s"}]},
        "a recipient without an address": {**good, "personalizations": [{"to": [{"name": "x"}]}]},
        "a sender that is no address": {**good, "from": {"email": "kamflow"}},
        "an empty body": {**good, "content": []},
        "a repeated category": {**good, "categories": ["kamflow", "kamflow"]},
        "a non-string custom arg": {**good, "personalizations": [
            {**first, "custom_args": {"kamflow_key": 7}}]},
    }


def test_our_contract_accepts_what_kamflow_sends_and_refuses_mistakes() -> None:
    """Every request shape kamflow sends validates under the project's contract; each
    one-mistake variant is refused."""
    ours = request_validator(CONTRACT)
    for name, body in kamflow_requests().items():
        assert [e.message for e in ours.iter_errors(body)] == [], name
    for name, body in refused_requests().items():
        assert not ours.is_valid(body), name


def test_inline_images_travel_as_inline_attachments_with_their_content_id() -> None:
    """A chart the HTML shows by cid goes to SendGrid as an inline attachment with that
    content_id (base64 content, image/png)."""
    import base64

    from kamflow.notifications.sendgrid_backend import batchable

    body = kamflow_requests()["single with an inline chart"]
    assert body["attachments"] == [{
        "content": base64.b64encode(CHART.data).decode("ascii"), "filename": "churn-trend.png",
        "type": "image/png", "disposition": "inline", "content_id": "c@kamflow"}]
    assert not batchable(_email(2, inline_images=(CHART,)))


def test_our_contract_agrees_with_sendgrids_official_extract() -> None:
    """Where SendGrid's official extract is present: it accepts every request kamflow sends, ours
    accepts nothing it refuses (ours is stricter only where SendGrid's error reference says the
    API refuses more), and both require the same fields and the 1,000 limit."""
    if not OFFICIAL.is_file():
        pytest.skip(f"SendGrid's official contract extract is not here ({OFFICIAL}): only the "
                    "project's own contract (tests/contracts) is checked")
    official = request_validator(OFFICIAL)
    for name, body in kamflow_requests().items():
        assert [e.message for e in official.iter_errors(body)] == [], name
    ours = request_validator(CONTRACT)
    stricter = {name for name, body in refused_requests().items()
                if official.is_valid(body) and not ours.is_valid(body)}
    laxer = {name for name, body in refused_requests().items()
             if ours.is_valid(body) and not official.is_valid(body)}
    assert laxer == set()
    # Documented 400s the extract's schema leaves out: "You must have at least one
    # personalization", "The content value must be a string at least one character in length",
    # and custom args' "key/value pairs must be strings".
    assert stricter == {"no personalization", "an empty body", "a non-string custom arg"}

    def request_schema(document: dict[str, Any]) -> dict[str, Any]:
        schema = document["paths"]["/v3/mail/send"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]
        return _resolve(document, schema)

    mine, theirs = request_schema(load(CONTRACT)), request_schema(load(OFFICIAL))
    assert set(mine["required"]) == set(theirs["required"])
    mine_p, theirs_p = (_resolve(d, s["properties"]["personalizations"])
                        for d, s in ((load(CONTRACT), mine), (load(OFFICIAL), theirs)))
    assert mine_p["maxItems"] == theirs_p["maxItems"] == MAX_PERSONALIZATIONS
    assert set(_resolve(load(CONTRACT), mine_p["items"])["required"]) == set(
        _resolve(load(OFFICIAL), theirs_p["items"])["required"])


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, following a local `$ref` ("#/components/...") once."""
    ref = schema.get("$ref")
    if not ref:
        return schema
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node
