"""The emails speak their reader's language: no code, raw condition or warning level in zh-CN.

A generated snapshot goes through scoring, the shipped rules and the real task store; every
email kamflow then writes (new tasks, the daily digest, escalations) is read as staff read it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html as html_lib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from kamflow import config
from kamflow.core import vocabulary
from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, escalate_overdue, queue_daily_digests
from kamflow.generate import make_snapshot, typed_tables
from kamflow.intake import build_customer_view
from kamflow.rules import RULES_DIR, decide, load_ruleset, wording
from kamflow.scoring import score_accounts
from kamflow.worklist import OwnerDirectory, TaskStore

AS_OF = dt.date(2026, 11, 25)
NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # Wednesday 10:00 in Shanghai
# Codes a reader must never see in a Chinese email (each also a word of some English text).
CODE_KINDS = ("value_class", "churn_band", "lifecycle_stage", "segment", "industry",
              "task_status", "churn_factor", "churn_signal", "action", "owner_role")
ENGLISH_STATUS = ("open", "acknowledged", "escalated", "done", "cancelled", "overdue")


def in_language(owners: OwnerDirectory, language: str) -> OwnerDirectory:
    """The shipped owners directory with everyone reading ``language``."""
    def speak(owner):
        return dataclasses.replace(owner, language=language) if owner else owner

    return dataclasses.replace(
        owners, manager_language=language, fallback=speak(owners.fallback),
        department_head=speak(owners.department_head),
        roles={k: speak(o) for k, o in owners.roles.items()},
        people={k: speak(o) for k, o in owners.people.items()})


@pytest.fixture(scope="module")
def decisions():
    """The shipped rules' decisions on 400 generated accounts."""
    frames = make_snapshot(400, AS_OF, seed=5, bad_share=0.0)
    scored = score_accounts(build_customer_view(typed_tables(frames), AS_OF),
                            config.load_scoring())
    return decide(scored, load_ruleset(RULES_DIR))


@pytest.fixture(scope="module")
def emails(decisions, tmp_path_factory: pytest.TempPathFactory):
    """Per language, (text, html) of every email a run, the next digest and an escalation
    write (each language rendered once for the module)."""
    folder = tmp_path_factory.mktemp("emails")
    return {language: emails_in(language, decisions, folder) for language in ("zh-CN", "en")}


def emails_in(language: str, decisions, tmp_path: Path) -> list[tuple[str, str]]:
    owners = in_language(config.load_owners(), language)
    calendar, links = config.load_calendar(), LinkSigner(b"e" * 32)
    words = wording(load_ruleset(RULES_DIR))
    store = TaskStore(f"sqlite:///{tmp_path / f'{language}.db'}")
    try:
        dispatch(decisions, words, owners, store, "r", NOW, calendar, links)
        store.transition(store.list_tasks(status="open")[0].id, "ack", NOW, "wang")
        later = NOW + dt.timedelta(days=9)  # every task overdue
        queue_daily_digests(store, owners, calendar, later, words, links)
        escalate_overdue(store, owners, calendar, 1.0, later, words, links)
        emails = store.unsent_emails(limit=100_000)
        kinds = {e.kind for e in emails}
        assert {"new_tasks", "daily_digest", "escalation"} <= kinds, kinds
        return [(e.body_text, e.body_html) for e in emails]
    finally:
        store.dispose()


def visible(text: str) -> str:
    """What a reader sees: no markup, no links, no rule ids (an email may show the rule id on
    its 规则编号 line)."""
    text = html_lib.unescape(re.sub(r"<[^>]+>", " ", text))
    text = re.sub(r"https?://\S+", " ", text)
    return RULE_IDS.sub(" ", text)


RULE_IDS = re.compile("|".join(sorted((re.escape(r.id) for r in load_ruleset(RULES_DIR).rules),
                                      key=len, reverse=True)))


def codes_seen(text: str, kinds=CODE_KINDS, extra=ENGLISH_STATUS) -> set[str]:
    words = {code for kind in kinds for code in vocabulary.codes(kind)} | set(extra)
    pattern = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    return set(re.findall(rf"(?<![\w-])(?:{pattern})(?![\w-])", text))


def test_zh_cn_emails_carry_no_code(emails) -> None:
    """Every zh-CN email (text and HTML) reads in Chinese: the rule's description and the
    factors with their values, statuses 待处理/已确认/已升级, 北京时间; no code identifier,
    raw condition, `level 0.x` or English status word."""
    assert len(emails["zh-CN"]) > 10
    for text, html in emails["zh-CN"]:
        for body in (text, html):
            seen = visible(body)
            assert not codes_seen(seen), (codes_seen(seen), body[:3000])
            assert not re.search(r"level \d|Top churn factors|Asia/Shanghai|\w=\S", seen), \
                body[:3000]
    joined = "\n".join(text for text, _ in emails["zh-CN"])
    for words in ("主要流失因素：", "北京时间", "待处理", "已确认", "已升级", "规则编号"):
        assert words in joined, words
    assert re.search(r"收入较前 9 个月下降 \d+%|近 90 天投诉 \d+ 次|合同(已于|将于) \d+ 天", joined)


def test_en_emails_read_the_same_in_english(emails) -> None:
    """English emails carry the rule's description and the factors in English words: no raw
    condition, factor code or warning level either."""
    for text, html in emails["en"]:
        for body in (text, html):
            seen = visible(body)
            assert not codes_seen(seen, ("churn_factor", "churn_signal", "action"), ()) - {
                "complaints", "arrears", "revenue_decline", "commitment"}, body[:3000]
            assert not re.search(r"level \d|Top churn factors|\w=\S", seen), body[:3000]
    joined = "\n".join(text for text, _ in emails["en"])
    assert "Main churn factors:" in joined and "Beijing time" in joined


def test_zh_cn_html_as_chromium_shows_it(emails, tmp_path: Path) -> None:
    """A zh-CN email's HTML, loaded in headless Chromium, shows no code either."""
    _, html = next(e for e in emails["zh-CN"] if "主要流失因素" in e[1])
    page = tmp_path / "email.html"
    page.write_text(html, encoding="utf-8")
    assert shutil.which("chromium"), "Debian's chromium is needed (.ci/run installs it)"
    profile = tempfile.mkdtemp(prefix="kamflow-chromium-")
    try:
        dom = subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120, check=True).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    seen = visible(re.sub(r"<head>.*</head>", " ", dom, flags=re.S))
    assert "主要流失因素" in seen
    assert not codes_seen(seen), codes_seen(seen)
