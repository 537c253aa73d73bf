"""The domain's words, in Chinese and English, in one place (DOMAIN.md's terms).

Every code kamflow computes or reads (value classes, churn bands, lifecycle stages, industries,
segments, owner roles, task statuses, churn factors, the built-in actions) has a label here in
zh (Simplified Chinese, the staff's language) and en. Code keeps the codes (``high``,
``escalated``, ``contract_ending``); words are made once, at the edge (emails, artifacts, the
CLI), in the reader's language:

    label("value_class", "high", "zh-CN")        -> "高价值"
    factor_phrase("days_to_contract_end", -20, "zh") -> "合同已于 20 天前到期"

A decision carries its churn factors as data (``kamflow.core.factors.Factor``: signal, value,
level, sign); every word about them is made here from that data: ``factor_words`` in the
reader's language for emails, ``ops_factor_text`` in the ops' English for the stored reason
that ``kamflow tasks show`` prints (``contract_ending: contract ended 20 days ago (level
1.00)``). ``Wording`` adds what only a rule set knows (custom action titles, each rule's
description) and composes an email's reason.

Core layer: imports nothing else from kamflow but the core's factors. A test fails if a code
used by scoring, the shipped rules or the task store lacks a label here.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import NamedTuple

from kamflow.core.factors import (
    FACTORS_MARK,
    SIGNAL_WORDS,
    Factor,
    from_reason,
    loads,
)
from kamflow.core.factors import shown as shown_number

__all__ = [
    "KINDS",
    "Factor",
    "Label",
    "UnknownLabel",
    "Wording",
    "codes",
    "effect_words",
    "factor_phrase",
    "factor_words",
    "label",
    "language",
    "ops_factor_text",
    "ops_phrase",
    "outcome_label",
    "timezone_label",
    "yearly_amount",
    "yearly_risk",
]


class Label(NamedTuple):
    zh: str
    en: str


KINDS: dict[str, dict[str, Label]] = {
    # DOMAIN.md "Value assessment": current x potential gives four classes.
    "value_class": {
        "high": Label("高价值", "high value"),
        "secondary": Label("次价值", "secondary value"),
        "potential": Label("潜在价值", "potential value"),
        "low": Label("低价值", "low value"),
    },
    "churn_band": {
        "low": Label("低风险", "low risk"),
        "medium": Label("中风险", "medium risk"),
        "high": Label("高风险", "high risk"),
        "critical": Label("极高风险", "critical risk"),
    },
    "lifecycle_stage": {
        "identification": Label("识别期", "identification"),
        "development": Label("发展期", "development"),
        "stable": Label("稳定期", "stable"),
        "decline": Label("衰退期", "decline"),
    },
    "industry": {
        "government": Label("政府", "government"),
        "military": Label("军队", "military"),
        "finance": Label("金融", "finance"),
        "tourism": Label("旅游", "tourism"),
        "enterprise": Label("一般企业", "general enterprise"),
        "it": Label("信息技术", "IT"),
        "education": Label("教育", "education"),
        "culture": Label("文化", "culture"),
        "health": Label("医疗卫生", "health"),
    },
    # DOMAIN.md "Segment strategies (by industry)".
    "segment": {
        "leadership": Label("领先服务（政府、军队、金融）",
                            "leadership (government, military, finance)"),
        "cost": Label("成本领先（旅游、一般企业）", "cost leadership (tourism, enterprise)"),
        "price_performance": Label("最佳性价比（信息技术）", "best price/performance (IT)"),
        "maintain": Label("维持（教育、文化、医疗）", "maintain (education, culture, health)"),
        "other": Label("其他", "other"),
    },
    # The department's breakdowns (`kamflow report --by`, the weekly management email).
    "report_dimension": {
        "region": Label("地区", "region"),
        "industry": Label("行业", "industry"),
        "class": Label("价值等级", "value class"),
        "manager": Label("客户经理", "account manager"),
    },
    "owner_role": {
        "account_manager": Label("客户经理", "account manager"),
        "key_account_department": Label("大客户部", "key-account department"),
        "sla_team": Label("SLA 保障团队", "SLA team"),
    },
    # The task store's statuses; queued and withdrawn are those of capacity (issue 12), held_out
    # the holdout's control group (issue 23).
    "task_status": {
        "open": Label("待处理", "open"),
        "acknowledged": Label("已确认", "acknowledged"),
        "escalated": Label("已升级", "escalated"),
        "done": Label("已完成", "done"),
        "cancelled": Label("已取消", "cancelled"),
        "queued": Label("排队中", "queued"),
        "withdrawn": Label("已撤回", "withdrawn"),
        "held_out": Label("对照组（不处理）", "held out (control group)"),
    },
    # What a manager records when closing a task (conf/outcomes.yaml lists the codes in use;
    # a code it adds brings its own words there).
    "task_outcome": {
        "renewed": Label("已续约/保持", "renewed or kept"),
        "offer_accepted": Label("接受方案", "offer accepted"),
        "problem_solved": Label("问题已解决", "problem solved"),
        "follow_up": Label("需再跟进", "follow-up needed"),
        "intends_to_leave": Label("明确流失意向", "customer intends to leave"),
        "not_reached": Label("未联系上", "not reached"),
        "not_relevant": Label("无需处理", "not relevant"),
    },
    # What an outcome does to its task (worklist/outcomes.py NEXT_STEPS).
    "outcome_step": {
        "close": Label("完成，开始冷却期", "done; the action's cooldown starts"),
        "follow_up": Label("完成，并生成跟进任务", "done; a follow-up task is raised"),
        "retry": Label("任务保持打开，择日再联系", "stays open with a retry date"),
        "cancel": Label("取消，不计为完成", "cancelled, not counted as done"),
    },
    # The shipped churn factors (conf/scoring.yaml names them); a factor an operator adds is
    # worded by its signal (see factor_phrase).
    "churn_factor": {
        "revenue_decline": Label("收入下降", "revenue decline"),
        "complaints": Label("投诉", "complaints"),
        "sla_breaches": Label("SLA 违约", "SLA breaches"),
        "outage_hours": Label("故障时长", "outage hours"),
        "contract_ending": Label("合同到期", "contract ending"),
        "arrears": Label("欠费", "arrears"),
        "no_contact": Label("长期未联系", "no contact"),
        "relationship_age": Label("客户关系尚浅", "young relationship"),
        "commitment": Label("无合约承诺", "no commitment"),
        "complaint_mix": Label("竞争类投诉", "competitor-type complaints"),
        "revenue_volatility": Label("收入波动", "revenue volatility"),
    },
    # The signal a churn factor reads (scoring.config.CHURN_SIGNALS).
    "churn_signal": {
        "revenue_decline": Label("收入下降", "revenue decline"),
        "complaints_90d": Label("近 90 天投诉次数", "complaints in 90 days"),
        "sla_breaches_90d": Label("近 90 天 SLA 违约次数", "SLA breaches in 90 days"),
        "outage_hours_90d": Label("近 90 天故障时长", "outage hours in 90 days"),
        "days_to_contract_end": Label("距合同到期天数", "days to contract end"),
        "arrears_ratio": Label("欠费占比", "arrears share of billed"),
        "days_since_contact": Label("距上次联系天数", "days since last contact"),
        "relationship_months": Label("成为客户的月数", "months as a customer"),
        "commitment_months": Label("合约剩余月数", "months of commitment left"),
        "competitor_complaints": Label("近一年计费、资费或覆盖类投诉次数",
                                       "billing, price or coverage complaints in a year"),
        "revenue_volatility": Label("月账单波动幅度", "monthly bill volatility"),
    },
    # What moves a rule (rules/language.py RULE_KINDS): a churn warning, or standing care.
    "rule_kind": {
        "risk": Label("风险预警", "risk warning"),
        "proactive": Label("主动关怀", "proactive care"),
    },
    # The built-in actions (DOMAIN.md "Actions"); a rule set's own actions bring their titles.
    "action": {
        "escalate_to_key_account": Label("升级至大客户部",
                                         "Escalation to the key-account department"),
        "manager_visit": Label("客户经理上门拜访", "Account-manager visit"),
        "care_call": Label("主动关怀回访", "Proactive care call"),
        "vip_service": Label("VIP 专属服务", "VIP service review"),
        "sla_review": Label("SLA 服务等级评审",
                            "SLA review (outages and fault handling against contract)"),
        "tailored_offer": Label("一户一策个性化方案", "Personalised solution or offer"),
        "renewal_talk": Label("合同到期续约洽谈", "Renewal talk before contract end"),
        "payment_reminder": Label("欠费提醒", "Payment reminder for arrears"),
        "new_service_pitch": Label("新业务体验营销",
                                   "New-service introduction (experiential marketing)"),
        # Proactive care by value class (rules/care.yaml).
        "account_plan_review": Label("一户一策年度方案回顾",
                                     "Yearly one-to-one account plan review"),
        "experience_offer": Label("新业务免费体验（体验式营销）",
                                  "Free trial of a new service (experiential marketing)"),
        "complaint_follow_up": Label("投诉回访", "Complaint follow-up call"),
    },
}

# IANA zones as staff name them; any other zone is shown by its IANA name.
_TIMEZONES = {
    "Asia/Shanghai": Label("北京时间", "Beijing time"),
    "Asia/Chongqing": Label("北京时间", "Beijing time"),
    "Asia/Harbin": Label("北京时间", "Beijing time"),
    "PRC": Label("北京时间", "Beijing time"),
    "Asia/Hong_Kong": Label("香港时间", "Hong Kong time"),
    "Asia/Macau": Label("澳门时间", "Macau time"),
    "Asia/Taipei": Label("台北时间", "Taipei time"),
    "Asia/Urumqi": Label("新疆时间", "Xinjiang time"),
    "UTC": Label("协调世界时（UTC）", "UTC"),
}


class UnknownLabel(LookupError):
    """A code (or kind, or language) the vocabulary has no words for."""

    def __str__(self) -> str:
        return str(self.args[0])


def language(lang: str) -> str:
    """``zh`` or ``en`` for a language tag (``zh-CN``, ``zh_cn``, ``zh``, ``en``, ``en-GB``)."""
    tag = (lang or "").strip().lower()
    if tag.startswith("zh"):
        return "zh"
    if tag.startswith("en"):
        return "en"
    raise UnknownLabel(f"no words in language {lang!r}: the vocabulary has zh (zh-CN) and en")


def codes(kind: str) -> tuple[str, ...]:
    """Every code of ``kind``, in the vocabulary's order (e.g. value classes best first)."""
    return tuple(_kind(kind))


def label(kind: str, code: str, lang: str) -> str:
    """The words for ``code`` of ``kind`` in ``lang``; raises ``UnknownLabel`` naming the kind,
    the code and the codes it knows when there are none."""
    words = _kind(kind).get(code)
    if words is None:
        raise UnknownLabel(f"no {kind} {code!r} in the vocabulary (kamflow/core/vocabulary.py); "
                           f"known: {', '.join(_kind(kind))}")
    return words.zh if language(lang) == "zh" else words.en


def outcome_label(code: str, lang: str, configured: Mapping[str, Label] | None = None) -> str:
    """The words for a task outcome: those conf/outcomes.yaml gives (``configured``), else the
    vocabulary's; ``UnknownLabel`` for a code neither knows."""
    words = (configured or {}).get(code)
    if words is None:
        return label("task_outcome", code, lang)
    return words.zh if language(lang) == "zh" else words.en


def _kind(kind: str) -> dict[str, Label]:
    if kind not in KINDS:
        raise UnknownLabel(f"no kind {kind!r} in the vocabulary; known: {', '.join(KINDS)}")
    return KINDS[kind]


def timezone_label(timezone: str, lang: str) -> str:
    """How staff name an IANA zone (``Asia/Shanghai`` -> 北京时间 / Beijing time); a zone
    without a name here is shown as it is."""
    words = _TIMEZONES.get(timezone)
    if words is None:
        return timezone
    return words.zh if language(lang) == "zh" else words.en


# -- churn factors ---------------------------------------------------------------------------
def factor_phrase(signal: str, shown: float, lang: str) -> str:
    """A churn factor's value in words: ``shown`` is the number as a reader sees it
    (``factors.shown``: the revenue change and arrears in whole %, days and hours whole, counts
    as they are)."""
    zh = language(lang) == "zh"
    n = _number(abs(shown))
    if signal == "revenue_decline":  # shown: the revenue change in %, -38 = down 38 %
        if shown == 0:
            return "收入与前 9 个月持平" if zh else "revenue flat on the previous 9 months"
        way_zh, way_en = ("下降", "down") if shown < 0 else ("上升", "up")
        return (f"收入较前 9 个月{way_zh} {n}%" if zh
                else f"revenue {way_en} {n}% on the previous 9 months")
    if signal == "complaints_90d":
        return f"近 90 天投诉 {n} 次" if zh else _count(shown, "complaint", "in 90 days")
    if signal == "sla_breaches_90d":
        return f"近 90 天 SLA 违约 {n} 次" if zh else _count(shown, "SLA breach", "in 90 days",
                                                           "SLA breaches")
    if signal == "outage_hours_90d":
        return f"近 90 天故障 {n} 小时" if zh else _count(shown, "outage hour", "in 90 days")
    if signal == "days_to_contract_end":
        if shown < 0:
            return f"合同已于 {n} 天前到期" if zh else f"contract ended {_days(n)} ago"
        if shown > 0:
            return f"合同将于 {n} 天后到期" if zh else f"contract ends in {_days(n)}"
        return "合同今天到期" if zh else "contract ends today"
    if signal == "arrears_ratio":
        return f"欠费占计费收入 {n}%" if zh else f"arrears {n}% of billed revenue"
    if signal == "days_since_contact":
        return f"已 {n} 天未联系" if zh else f"no contact for {_days(n)}"
    if signal == "relationship_months":
        return f"成为客户仅 {n} 个月" if zh else f"customer for {n} months"
    if signal == "commitment_months":
        if shown < 0:
            return f"合同已到期 {n} 个月，无合约期" if zh else f"out of contract for {n} months"
        if shown == 0:
            return ("无合约期（按月付费或合同已到期）" if zh
                    else "no commitment (month-to-month or out of contract)")
        return f"合约剩余 {n} 个月" if zh else f"committed for {n} more months"
    if signal == "competitor_complaints":
        return (f"近一年计费、资费或覆盖类投诉 {n} 次" if zh
                else _count(shown, "billing, price or coverage complaint", "in a year"))
    if signal == "revenue_volatility":
        return f"月账单波动 {n}%" if zh else f"monthly bill swings {n}%"
    raise UnknownLabel(f"no churn signal {signal!r} in the vocabulary; known: "
                       + ", ".join(KINDS["churn_signal"]))


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:g}"


def _count(shown: float, one: str, tail: str, many: str | None = None) -> str:
    noun = one if shown == 1 else (many or one + "s")
    return f"{_number(shown)} {noun} {tail}"


def _days(n: str) -> str:
    return "1 day" if n == "1" else f"{n} days"


def ops_phrase(signal: str, shown: float) -> str:
    """A churn factor's value as ``kamflow tasks show`` and the stored reason word it, in the
    ops' English (``contract ended 20 days ago``); ``shown`` as for ``factor_phrase``."""
    if signal == "revenue_decline":
        return f"revenue {shown:+.0f}%"
    if signal == "complaints_90d":
        return f"{shown:g} complaints in 90 days"
    if signal == "sla_breaches_90d":
        return f"{shown:g} SLA breaches in 90 days"
    if signal == "outage_hours_90d":
        return f"{shown:.0f} outage hours in 90 days"
    if signal == "days_to_contract_end":
        return (f"contract ends in {shown:.0f} days" if shown >= 0
                else f"contract ended {-shown:.0f} days ago")
    if signal == "arrears_ratio":
        return f"arrears {shown:.0f}% of billed"
    if signal == "days_since_contact":
        return f"no contact for {shown:.0f} days"
    if signal == "relationship_months":
        return f"customer for {shown:.0f} months"
    if signal == "commitment_months":
        return ("no commitment (month-to-month or out of contract)" if shown <= 0
                else f"committed for {shown:.0f} more months")
    if signal == "competitor_complaints":
        return f"{shown:g} billing, price or coverage complaints in a year"
    if signal == "revenue_volatility":
        return f"monthly bill swings {shown:.0f}%"
    return f"{signal} {shown:g}"


def factor_words(factor: Factor, lang: str) -> str:
    """One factor in its reader's words (``合同已于 20 天前到期``): an operator signal's from
    the mapping's labels it carries, a shipped signal's from ``factor_phrase``."""
    if factor.words:
        return factor.words[1] if language(lang) == "zh" else factor.words[0]
    return factor_phrase(factor.signal, shown_number(factor.signal, factor.value), lang)


def ops_factor_text(factors: Iterable[Factor]) -> str:
    """Factors as the stored reason and ``kamflow tasks show`` list them, with their names and
    levels: ``revenue_decline: revenue -38% (level 0.95), complaints: ...``."""
    return ", ".join(f"{f.name}: {_ops_words(f)} (level {f.level:.2f})" for f in factors)


def _ops_words(factor: Factor) -> str:
    if factor.words:
        return f"{factor.words[0]}{SIGNAL_WORDS}{factor.words[1]}"
    return ops_phrase(factor.signal, shown_number(factor.signal, factor.value))


# -- a rule set's words ----------------------------------------------------------------------
class Wording(Mapping[str, tuple[str, str]]):
    """The words of one rule set: each action's (en, zh) title, as the run's rules give them
    (``rules.wording``), and each rule's (en, zh) description. A mapping of action titles, so
    it stands wherever a plain ``{action: (en, zh)}`` did; picklable for render workers."""

    def __init__(self, titles: Mapping[str, tuple[str, str]] | None = None,
                 descriptions: Mapping[str, tuple[str, str]] | None = None) -> None:
        self._titles = {k: (str(en), str(zh)) for k, (en, zh) in (titles or {}).items()}
        self.descriptions = {k: (str(en), str(zh)) for k, (en, zh) in
                             (descriptions or {}).items()}

    @classmethod
    def of(cls, titles: Mapping[str, tuple[str, str]] | None) -> Wording:
        """``titles`` as a Wording (a plain title mapping has no rule descriptions)."""
        return titles if isinstance(titles, Wording) else cls(titles)

    def __getitem__(self, action: str) -> tuple[str, str]:
        return self._titles[action]

    def __iter__(self) -> Iterator[str]:
        return iter(self._titles)

    def __len__(self) -> int:
        return len(self._titles)

    def __repr__(self) -> str:
        return f"Wording({len(self._titles)} actions, {len(self.descriptions)} rules)"

    def action_title(self, action: str, lang: str, default: str | None = None) -> str:
        """The rule set's title for ``action``, else the built-in one; ``default`` (else
        ``UnknownLabel``) for an action neither knows."""
        titles = self._titles.get(action)
        if titles is not None:
            return titles[1] if language(lang) == "zh" else titles[0]
        if action in KINDS["action"] or default is None:
            return label("action", action, lang)
        return default

    def rule_description(self, rule_id: str, lang: str) -> str | None:
        words = self.descriptions.get(rule_id)
        if words is None:
            return None
        return words[1] if language(lang) == "zh" else words[0]

    def reason(self, rule_id: str, stored: str, lang: str,
               factors: str | Sequence[Factor] | None = None) -> str:
        """A task's reason for an email in ``lang``: the rule's description, then the top churn
        factors with their values, worded from ``factors`` (the task's, as data or their JSON).
        No condition, code or warning level: those stay in ``kamflow tasks show``. With
        neither a description nor a factor, English keeps the ``stored`` reason and Chinese
        names the rule. A task stored without factors (None: before migration 0015, or text
        only) has them read from its stored reason (``factors.from_reason``)."""
        return _reason(self.rule_description(rule_id, lang), stored, rule_id, language(lang),
                       factors)


def _reason(description: str | None, stored: str, rule_id: str, lang: str,
            factors: str | Sequence[Factor] | None) -> str:
    data = loads(factors) if isinstance(factors, str) else factors
    if data is None:  # stored as text only
        _, mark, tail = stored.rpartition(FACTORS_MARK)
        data = from_reason(tail) if mark else ()
    phrases = _phrases(tuple(data), lang)
    zh = lang == "zh"
    if not phrases:
        if description:
            return description
        return f"由规则 {rule_id} 触发" if zh else stored
    listed = ("；" if zh else "; ").join(phrases)
    if zh:
        head = description.rstrip("。") + "。" if description else ""
        return f"{head}主要流失因素：{listed}。"
    head = description.rstrip(".") + ". " if description else ""
    return f"{head}Main churn factors: {listed}."


@functools.lru_cache(maxsize=65536)
def _phrases(factors: tuple[Factor, ...], lang: str) -> tuple[str, ...]:
    # Cached: a run's tasks share a few thousand distinct factor sets. A signal without words
    # here (none that scoring reads; a test checks) is left out, as the reason's text was.
    return tuple(factor_words(f, lang) for f in factors
                 if f.words or f.signal in KINDS["churn_signal"])


# A task's value at risk as its reader sees it: the yearly figure (monthly x 12) in CNY.
YEARLY_RISK = Label("年化风险收入 {amount}", "revenue at risk {amount} a year")


def yearly_amount(monthly: object) -> str:
    """``monthly`` CNY at risk as its yearly amount (``¥147,600``); empty when there is
    none."""
    try:
        value = float(monthly)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not value > 0:  # none, zero or NaN
        return ""
    return f"¥{round(value * 12):,}"


def yearly_risk(monthly: object, lang: str = "en") -> str:
    """``monthly`` CNY at risk as a yearly figure in the reader's words (``年化风险收入
    ¥147,600`` / ``revenue at risk ¥147,600 a year``); empty when there is none."""
    amount = yearly_amount(monthly)
    if not amount:
        return ""
    template = YEARLY_RISK.zh if language(lang) == "zh" else YEARLY_RISK.en
    return template.format(amount=amount)


# What a task is worth (worklist/worth.py): the revenue it is expected to keep a year, net of
# its cost, and the manager's time it takes.
WORTH = Label("预计挽留 {amount}/年 · 约 {hours} 小时",
              "expected to keep {amount} a year · about {hours} hours")
WORTH_NO_GAIN = Label("预计无挽留收益 · 约 {hours} 小时",
                      "no revenue expected to be kept · about {hours} hours")


def hours_text(hours: object) -> str:
    """Hours as a reader counts them: ``0.5``, ``1``, ``1.5`` (one decimal, no trailing 0)."""
    try:
        value = float(hours)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not value >= 0:
        return ""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def worth_line(yearly: object, hours: object, lang: str = "en") -> str:
    """``预计挽留 ¥12,000/年 · 约 0.5 小时`` / ``expected to keep ¥12,000 a year · about 0.5
    hours``; empty when the task was not appraised."""
    time = hours_text(hours)
    if not time:
        return ""
    zh = language(lang) == "zh"
    try:
        value = float(yearly)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""
    if not value > 0:
        label = WORTH_NO_GAIN
        return (label.zh if zh else label.en).format(hours=time)
    label = WORTH
    return (label.zh if zh else label.en).format(amount=f"¥{value:,.0f}", hours=time)


# The effects report (worklist/effects.py): what it says of an action's measured effect.
EFFECT_WORDS: dict[str, Label] = {
    "title": Label("各项动作的实测效果", "The measured effect of each action"),
    "intro": Label(
        "意向处理分析：已下发任务的客户与随机留出对照组（未处理）的客户相比，"
        "{horizon} 天内的流失率；效果 = 对照组流失率 − 处理组流失率（百分点，"
        "正值表示留住了客户），区间为 {confidence} 置信区间。",
        "Intent to treat: churn within {horizon} days of the accounts whose task was released "
        "against the randomly held-out accounts (no task); effect = held-out churn − released "
        "churn, in percentage points (positive keeps customers), with a {confidence} "
        "confidence interval."),
    "known": Label("已知：{effect} 个百分点（{low} 至 {high}）",
                   "known: {effect} points ({low} to {high})"),
    "not_enough": Label("数据尚不足：区间 {low} 至 {high} 个百分点，宽于 {width}；"
                        "还需约 {more} 个决策",
                        "not enough data yet: interval {low} to {high} points, wider than "
                        "{width}; about {more} more decisions needed"),
    "no_holdout": Label("数据尚不足：尚无可比的对照组（或处理组）决策；需约 {more} 个决策",
                        "not enough data yet: no comparable held-out (or released) decision; "
                        "about {more} decisions needed"),
    "power": Label(
        "{action}：按每月 {per_month} 个决策、{share} 留出，需 {needed} 个决策"
        "才能把效果确定在 ±{half} 个百分点内，约 {months} 个月"
        "（含最后一批等待 {horizon} 天的结局）。",
        "{action}: at {per_month} decisions a month with {share} held out, {needed} decisions "
        "are needed to know its effect within ±{half} pp: about {months} months (the "
        "last ones' {horizon}-day wait included)."),
    "power_year": Label("超过一年：需跨地区汇总，或提高留出比例。",
                        "More than a year: pooled across regions, or with a larger holdout."),
    "sizing_title": Label("对照组规模建议", "Sizing the control group"),
    "sizing_intro": Label(
        "每项行动的留出比例：使效果在首次决策后 {within} 个月内（含观察期）确定到 ±{half} 个百分点"
        "的最小比例；已确定的效果降至维护比例 {maintenance}（不为零，以便发现漂移）。成本为对照组"
        "每季度放弃的预计年净挽留收入。建议写入 rules/actions.yaml 的 holdout:。",
        "Each action's holdout share: the smallest that makes its effect known within ±{half} "
        "points within {within} months of its first decision (the horizon included); a known "
        "effect drops to the maintenance share {maintenance} (never zero, so drift stays "
        "visible). The cost is the expected net revenue a year that a quarter's control group "
        "gives up. Set the share as holdout: in rules/actions.yaml."),
    "sizing_known": Label(
        "{action}：效果已确定，留出比例可降至维护比例 {share}（每季度留出约 {held} 个决策，"
        "放弃约 ¥{cost}/年）。",
        "{action}: effect known; the share can drop to the maintenance level {share} (about "
        "{held} decisions held out a quarter, giving up about ¥{cost} a year)."),
    "sizing_sized": Label(
        "{action}：建议留出 {share}，约 {months} 个月后效果确定到 ±{half} 个百分点（每季度留出约 "
        "{held} 个决策，放弃约 ¥{cost}/年）。",
        "{action}: hold out {share}; its effect is known within ±{half} points in about "
        "{months} months (about {held} decisions held out a quarter, giving up about ¥{cost} a "
        "year)."),
    "sizing_too_rare": Label(
        "{action}：决策太少，即使留出上限 {share} 也需约 {months} 个月才能确定到 ±{half} 个"
        "百分点（超过 {within} 个月）；可跨期汇总或接受更宽的区间（每季度留出约 {held} 个决策，"
        "放弃约 ¥{cost}/年）。",
        "{action}: too few decisions; even the largest share, {share}, needs about {months} "
        "months to know its effect within ±{half} points (more than {within}); pool periods or "
        "accept a wider interval (about {held} decisions held out a quarter, giving up about "
        "¥{cost} a year)."),
    "sizing_total": Label("按建议规模，一个季度的对照组合计放弃约 ¥{cost}/年的预计净挽留收入。",
                          "A quarter's control groups, as recommended, give up about ¥{cost} a "
                          "year of expected net revenue kept."),
    "sizing_none": Label("任务库中尚无任何行动的决策：请先运行 `kamflow run`，"
                         "规模建议需要每项行动的决策量。",
                         "No action has decisions in the task store yet: run `kamflow run` "
                         "first; sizing needs each action's volume."),
    "biased": Label("已完成与未完成的比较有偏差（经理联系到的客户与未联系到的本就不同），"
                    "仅供参考。",
                    "Done vs not done is biased (the accounts a manager reaches differ from "
                    "those they do not); shown for reference only."),
    "kept_left": Label("{action}：经理报告“保持”的 {kept} 个客户中，{left} 个（{share}）"
                       "仍在期限内流失。",
                       "{action}: of {kept} accounts reported as kept, {left} ({share}) left "
                       "within the horizon anyway."),
    "none": Label("尚无可衡量的决策（需已过 {horizon} 天期限或已流失）。",
                  "No decision to measure yet (its {horizon}-day horizon must have passed, "
                  "or the account left)."),
}


def effect_words(key: str, lang: str = "en", **values: object) -> str:
    """One sentence of the effects report in the reader's language, ``values`` filled in."""
    words = EFFECT_WORDS[key]
    return (words.zh if language(lang) == "zh" else words.en).format(**values)
