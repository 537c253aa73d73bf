"""The vocabulary: every code kamflow uses has zh and en words, and the words read right."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from kamflow.core import vocabulary
from kamflow.core.errors import ConfigError
from kamflow.core.factors import from_reason, loads, stored_value
from kamflow.core.settings import DEFAULT_CONF_DIR
from kamflow.core.vocabulary import UnknownLabel, Wording, factor_phrase, label

CJK = re.compile(r"[\u4e00-\u9fff]")


def _used_codes() -> list[tuple[str, str]]:
    """(kind, code) for every code scoring, the shipped rules, intake and the task store use."""
    from kamflow.intake.schema import INDUSTRIES, SEGMENT_BY_INDUSTRY
    from kamflow.rules import RULES_DIR, load_ruleset
    from kamflow.rules.language import CATEGORIES, RULE_KINDS, leaves
    from kamflow.scoring import CHURN_BANDS, VALUE_CLASSES, ScoringConfig
    from kamflow.scoring.config import CHURN_SIGNALS
    from kamflow.scoring.score import LIFECYCLE_STAGES
    from kamflow.worklist import STATUSES

    scoring = ScoringConfig.from_mapping(yaml.safe_load(
        (DEFAULT_CONF_DIR / "scoring.yaml").read_text(encoding="utf-8")))
    ruleset = load_ruleset(RULES_DIR)
    used = [("value_class", c) for c in VALUE_CLASSES]
    used += [("churn_band", c) for c in CHURN_BANDS]
    used += [("lifecycle_stage", c) for c in LIFECYCLE_STAGES]
    used += [("churn_factor", f.name) for f in scoring.factors]
    used += [("churn_signal", s) for s in CHURN_SIGNALS]
    used += [("industry", c) for c in INDUSTRIES]
    used += [("segment", c) for c in (*SEGMENT_BY_INDUSTRY.values(), "other")]
    used += [("task_status", c) for c in STATUSES]
    from kamflow.worklist.measures import DIMENSIONS
    used += [("report_dimension", d) for d in DIMENSIONS]
    used += [("action", a) for a in ruleset.actions]
    used += [("owner_role", r) for r in ruleset.owners]
    used += [("rule_kind", k) for k in RULE_KINDS]
    for kind, values in CATEGORIES.items():
        used += [(kind, v) for v in values or ()]
    for rule in ruleset.rules:  # the values the shipped rules compare against
        for leaf in leaves(rule.when):
            if CATEGORIES.get(leaf.field):
                values = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
                used += [(leaf.field, v) for v in values]
    return sorted(set(used))


@pytest.mark.parametrize(("kind", "code"), _used_codes())
def test_every_used_code_has_zh_and_en_words(kind: str, code: str) -> None:
    """Each code used by scoring, the shipped rules, intake or the task store has words in both
    languages, and the Chinese ones are Chinese."""
    zh, en = label(kind, code, "zh-CN"), label(kind, code, "en")
    assert zh.strip() and en.strip()
    assert CJK.search(zh), (kind, code, zh)


def test_every_signal_has_a_phrase_in_both_languages() -> None:
    """Every churn signal scoring can read is worded with its value in zh and en."""
    from kamflow.scoring.config import CHURN_SIGNALS

    for signal in CHURN_SIGNALS:
        for shown in (-20.0, 0.0, 1.0, 38.0):
            zh, en = factor_phrase(signal, shown, "zh"), factor_phrase(signal, shown, "en")
            assert CJK.search(zh) and not CJK.search(en)
            if shown:
                assert f"{abs(shown):.0f}" in zh and f"{abs(shown):.0f}" in en


def test_unknown_codes_kinds_and_languages_are_clear_errors() -> None:
    """An unknown code names its kind and the known codes; an unknown kind or language too."""
    with pytest.raises(UnknownLabel, match=r"no value_class 'gold'.*known: high, secondary"):
        label("value_class", "gold", "zh")
    with pytest.raises(UnknownLabel, match="no kind 'colour'"):
        label("colour", "red", "en")
    with pytest.raises(UnknownLabel, match="language 'fr'"):
        label("value_class", "high", "fr")
    with pytest.raises(UnknownLabel, match="no churn signal 'mood'"):
        factor_phrase("mood", 1, "en")


@pytest.mark.parametrize(("signal", "shown", "zh", "en"), [
    ("revenue_decline", -38, "收入较前 9 个月下降 38%",
     "revenue down 38% on the previous 9 months"),
    ("complaints_90d", 4, "近 90 天投诉 4 次", "4 complaints in 90 days"),
    ("complaints_90d", 1, "近 90 天投诉 1 次", "1 complaint in 90 days"),
    ("days_to_contract_end", -20, "合同已于 20 天前到期", "contract ended 20 days ago"),
    ("days_to_contract_end", 45, "合同将于 45 天后到期", "contract ends in 45 days"),
    ("arrears_ratio", 25, "欠费占计费收入 25%", "arrears 25% of billed revenue"),
    ("days_since_contact", 120, "已 120 天未联系", "no contact for 120 days"),
])
def test_factor_phrases(signal: str, shown: float, zh: str, en: str) -> None:
    """A factor reads with its value in the reader's language."""
    assert (factor_phrase(signal, shown, "zh-CN"), factor_phrase(signal, shown, "en")) == (zh, en)


def test_factors_written_by_scoring_are_read_back() -> None:
    """Whatever scoring/explain.py makes of a factor, its data (JSON) and the reason's text
    name the same factor, signal, value (at the precision shown) and level: a task stored as
    text only reads back as the one stored with data."""
    from kamflow.scoring.explain import explain_factors, shown_value

    cases = [("revenue_decline", "revenue_decline", 0.38), ("revenue_decline", "revenue_decline",
                                                           -0.05),
             ("complaints", "complaints_90d", 4.0), ("sla_breaches", "sla_breaches_90d", 2.0),
             ("outage_hours", "outage_hours_90d", 30.4), ("contract_ending",
                                                          "days_to_contract_end", -20.0),
             ("contract_ending", "days_to_contract_end", 45.0),
             ("arrears", "arrears_ratio", 0.25), ("no_contact", "days_since_contact", 120.0),
             ("custom-name", "complaints_90d", 2.5), ("commitment", "commitment_months", 0.0),
             ("commitment", "commitment_months", 7.4), ("volatility", "revenue_volatility", 0.184)]
    for name, signal, value in cases:
        frame = pd.DataFrame({"churn_factor_1": [name], "churn_factor_1_signal": [signal],
                              "churn_factor_1_value": [value], "churn_factor_1_level": [0.75]})
        text, data = (column[0] for column in explain_factors(frame))
        shown = float(shown_value(signal, np.array([value]))[0])
        expected = (vocabulary.Factor(name, signal, stored_value(signal, shown), 0.75),)
        assert loads(data) == expected, data
        assert from_reason("churn_band=critical. Top churn factors: " + text) == expected, text
        assert vocabulary.ops_factor_text(expected) == text


def test_builtin_actions_take_their_titles_from_the_vocabulary(tmp_path: Path) -> None:
    """The shipped actions name no titles: they come from the vocabulary; an action of a rule
    set's own keeps its title, and without one the rule set does not load."""
    from kamflow.rules import RULES_DIR, load_ruleset, load_wording

    shipped = load_ruleset(RULES_DIR)
    assert shipped.actions["care_call"].title_zh == "主动关怀回访"
    assert shipped.actions["care_call"].title_en == "Proactive care call"
    actions = yaml.safe_load((RULES_DIR / "actions.yaml").read_text(encoding="utf-8"))
    assert not any("title" in spec for spec in actions["actions"].values())

    custom = tmp_path / "rules"
    custom.mkdir()
    actions["actions"]["site_survey"] = {"title": {"en": "Site survey", "zh": "现场勘查"},
                                         "owner": "sla_team", "priority": 2, "due_in_days": 3,
                                         "cooldown_days": 30}
    actions["actions"]["care_call"]["title"] = {"en": "Call them", "zh": "回访"}
    (custom / "actions.yaml").write_text(yaml.safe_dump(actions, allow_unicode=True),
                                         encoding="utf-8")
    (custom / "r.yaml").write_text(yaml.safe_dump({"rules": [{
        "id": "survey-outages", "description": {"en": "Outages get a survey.",
                                                "zh": "故障频发：现场勘查。"},
        "when": {"outage_hours_90d": {"gte": 24}}, "then": ["site_survey"]}]},
        allow_unicode=True), encoding="utf-8")
    wording = load_wording(custom)
    assert wording.action_title("site_survey", "zh-CN") == "现场勘查"
    assert wording.action_title("care_call", "zh-CN") == "回访"  # the file's own words win
    assert wording.action_title("renewal_talk", "en") == "Renewal talk before contract end"
    assert wording.rule_description("survey-outages", "zh") == "故障频发：现场勘查。"
    with pytest.raises(UnknownLabel, match="no action 'dance'"):
        wording.action_title("dance", "en")
    assert wording.action_title("dance", "en", default="Dance") == "Dance"

    del actions["actions"]["site_survey"]["title"]
    (custom / "actions.yaml").write_text(yaml.safe_dump(actions), encoding="utf-8")
    with pytest.raises(ConfigError, match="action 'site_survey': missing title"):
        load_ruleset(custom)


def test_a_reason_is_the_rule_description_and_the_factors_in_words() -> None:
    """zh: the rule's Chinese description, then the factors with their values in Chinese; en
    the same in English; no condition, factor code or warning level in either."""
    stored = ("days_to_contract_end=-20.0 (< 0). Top churn factors: revenue_decline: revenue "
              "-38% (level 0.95), complaints: 4 complaints in 90 days (level 1.00), "
              "contract_ending: contract ended 20 days ago (level 1.00)")
    wording = Wording({}, {"renew": ("Contract ended: talk renewal.", "合同已到期：续约洽谈。")})
    assert wording.reason("renew", stored, "zh-CN") == (
        "合同已到期：续约洽谈。主要流失因素：收入较前 9 个月下降 38%；近 90 天投诉 4 次；"
        "合同已于 20 天前到期。")
    assert wording.reason("renew", stored, "en") == (
        "Contract ended: talk renewal. Main churn factors: revenue down 38% on the previous 9 "
        "months; 4 complaints in 90 days; contract ended 20 days ago.")
    # Without the rule's words: Chinese names the rule, English keeps the stored text.
    assert wording.reason("other", "churn_band=critical", "zh") == "由规则 other 触发"
    assert wording.reason("other", "churn_band=critical", "en") == "churn_band=critical"
