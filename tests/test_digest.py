"""The daily digest: one email per owner per business day listing all their open tasks."""

from __future__ import annotations

import datetime as dt
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from kamflow.core.links import LinkSigner
from kamflow.flows.delivery import dispatch, queue_daily_digests
from kamflow.worklist import TaskStore
from kamflow.worklist.calendar import BusinessCalendar
from tests.crash_harness import NOW, OWNERS, TITLES, decisions


def test_digest_lists_open_tasks_once_per_owner_and_day(tmp_path: Path) -> None:
    """Each owner gets one digest with all and only their open tasks (overdue marked, with
    links, in their language); a second run that day queues nothing; the next day does."""
    store = TaskStore(f"sqlite:///{tmp_path / 'k.db'}")
    calendar, links = BusinessCalendar(), LinkSigner(b"d" * 32)
    dispatch(decisions(), TITLES, OWNERS, store, "r", NOW, calendar, links)
    wang = [t for t in store.list_tasks() if t.owner_email == "wang@staff.example.test"]
    store.transition(wang[0].id, "done", NOW, "wang")
    later = NOW + dt.timedelta(days=3)  # Saturday morning in Shanghai: tasks are overdue
    assert queue_daily_digests(store, OWNERS, calendar, later, TITLES, links) == 3
    assert queue_daily_digests(store, OWNERS, calendar, later + dt.timedelta(hours=2), TITLES,
                               links) == 0
    digests = {e.recipient: e for e in store.unsent_emails() if e.kind == "daily_digest"}
    assert set(digests) == {"wang@staff.example.test", "ka@staff.example.test",
                            "li@staff.example.test"}
    mine = digests["wang@staff.example.test"]
    assert mine.task_ids == str(wang[1].id)  # the done one is gone
    assert "已逾期" in mine.body_text and "主动关怀回访" in mine.body_text
    assert mine.body_text.count("/t/v1.") == 2  # acknowledge + done links
    assert queue_daily_digests(store, OWNERS, calendar, later + dt.timedelta(days=1), TITLES,
                               links) == 3
    store.dispose()


@pytest.mark.slow
def test_digest_and_sla_watch_word_their_emails_by_the_run_rule_set(
        prefect_api: str, kamflow_home: Path, tmp_path: Path) -> None:
    """daily_digest and sla_watch take ``rules_dir``: their emails use that rule set's action
    titles and rule descriptions, not the shipped rules' ones."""
    import shutil

    import yaml
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from kamflow.flows.digest import daily_digest
    from kamflow.flows.sla_watch import sla_watch
    from kamflow.rules import RULES_DIR

    rules = tmp_path / "rules"
    shutil.copytree(RULES_DIR, rules)
    actions = yaml.safe_load((rules / "actions.yaml").read_text(encoding="utf-8"))
    actions["actions"]["care_call"]["title"] = {"en": "Ring them", "zh": "致电关怀"}
    (rules / "actions.yaml").write_text(yaml.safe_dump(actions, allow_unicode=True),
                                        encoding="utf-8")
    (rules / "extra.yaml").write_text(yaml.safe_dump({"rules": [{
        "id": "r1", "description": {"en": "Critical accounts get a call.",
                                    "zh": "流失风险极高的客户：致电关怀。"},
        "when": {"churn_band": "critical"}, "then": ["care_call"]}]}, allow_unicode=True),
        encoding="utf-8")
    kamflow_home.mkdir(parents=True)
    store = TaskStore(f"sqlite:///{kamflow_home / 'kamflow.db'}")
    dispatch(decisions(), TITLES, OWNERS, store, "seed", NOW, BusinessCalendar(),
             LinkSigner(b"s" * 32))
    store.dispose()
    later = NOW + dt.timedelta(days=9)
    with temporary_settings({PREFECT_API_URL: prefect_api}):
        digest = daily_digest(now=later.isoformat(), force=True, rules_dir=str(rules),
                              return_state=True)
        watch = sla_watch(now=later.isoformat(), rules_dir=str(rules), return_state=True)
    assert digest.is_completed() and watch.is_completed(), (digest.message, watch.message)
    bodies = {path.name: BytesParser(policy=policy.default).parsebytes(path.read_bytes())
              .get_body(("plain",)).get_content()
              for path in (kamflow_home / "outbox").glob("*.eml")
              if path.name.startswith(("digest-", "escalation-"))}
    assert any(n.startswith("digest-") for n in bodies)
    assert any(n.startswith("escalation-") for n in bodies)
    care = [b for b in bodies.values() if "客户 KA1" in b]
    assert care and all("致电关怀" in b and "流失风险极高的客户：致电关怀。" in b for b in care)
    assert not any("主动关怀回访" in b for b in care)
