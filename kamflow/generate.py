"""Deterministic, vectorised generator of sample key-account snapshots.

A *snapshot* is what an operator's systems would export on one day (``as_of``): the CRM account
master, twelve months of billing, a year of complaints and SLA incidents. The generator also
records which accounts it made decline (``ground_truth``), so that scoring can be checked.

Tables (all ``pandas.DataFrame``; see ``docs/input-files.md`` for the column contract):

* ``accounts`` -- one row per key account: ``account_id`` ("KA" + 7 digits), Chinese and English
  company names, ``industry`` (nine values, enterprise ~35 %), ``region`` (eight provinces),
  ``account_manager`` / ``manager_email`` (about one manager per 150 accounts, at least 3, each
  working in one region), contract dates, products held, new services adopted, employees
  (log-normal), monthly cost to serve (2-10 % of revenue) and ``last_contact_date`` (~3 % blank).
* ``billing`` -- twelve rows per account, the twelve calendar months before ``as_of``'s month,
  ordered by account then month. Base monthly revenue is log-normal (median ~15,000 CNY,
  sigma 1.1) with +/-5 % monthly noise; healthy accounts are flat or grow gently and pay in full
  (about 4 % under-pay one month by 1-10 %).
* ``complaints`` / ``sla_incidents`` -- events in the 365 days before ``as_of`` (dates are strictly
  before ``as_of``), ordered by date, with sequential ids. Healthy accounts average ~0.2 complaints
  and ~0.1 incidents a quarter; incidents breach the SLA when the outage exceeds the account's
  restore target (2 h for government, military and finance, 4 h otherwise).
* ``ground_truth`` -- ``account_id``, ``declining`` (0/1). Generator-only; the pipeline never reads
  it.

Exactly ``round(0.12 * accounts)`` accounts are *declining*. Each shows at least two of six
signals: revenue falling over the last 3-4 months (to 20-60 % below its earlier level), extra
complaints and SLA incidents (long outages, mostly breaching) in the last 90 days, arrears in the
last 2-3 months (paid 40-80 % of billed), a contract ending within 90 days (or lapsed up to 30 days
ago), and no contact for more than 120 days. About 3 % of healthy accounts show one signal as noise.

That *easy* mode (the default) is for functional tests: every method scores it near-perfectly.
``mode="realistic"`` judges scoring instead. Churn comes from four latent causes per account
(dissatisfaction with the service, a competitor's pull, financial distress, engagement), the
relationship age (about 20 % of accounts are in their first year, 识别期) and the contract
(month-to-month 40 %, one-year 30 %, two-year 30 %; about 8 % of term contracts have lapsed),
plus logistic noise: the ``churn_rate`` share (default 10 %; 1-3 % a year for key accounts)
with the highest propensity churns within ``horizon_days`` (365) *after* ``as_of``, so the
snapshot is a past one and ``ground_truth`` (same columns, plus ``churn_date``) is observed
after the horizon. Each signal is drawn from some causes only (complaints from dissatisfaction
and the competitor's pull, whose complaints are mostly billing, price and coverage; arrears from
distress; the bill's month-to-month volatility from distress and pull; ...), so none separates
churners; employees, products held and new services tell nothing. ``accounts`` gains
``customer_since``, ``contract_type`` and ``payment_method`` (auto-debit, bank-transfer,
invoice; invoice payers lean to distress), and ``auto_pay`` (yes/no: engaged accounts without
money trouble pay automatically), an operator signal no built-in factor reads
(docs/examples/realistic-signals.mapping.yaml declares it and contract_type as ``signals:``).
Drawn from a second stream seeded by ``seed`` (``auto_pay`` from a third).

*Bad rows* (about ``bad_share`` of the accounts, split evenly over four kinds, at least one of each
when ``accounts >= 200`` and ``bad_share > 0``) exercise the intake validation: a negative billed
amount, a blank ``manager_email``, an ``industry`` of ``"unknown"`` and an orphan billing row whose
``account_id`` (``"KA9999999x"``, ``"KA9999998x"``...) is not in ``accounts``. They are drawn last,
so the rest of the snapshot does not depend on ``bad_share``.

*Days played out* (``make_days`` / ``generate_days``, ``kamflow generate --days N``): day 1 is the
snapshot above; on each later day accounts leave at ``leave_rate``, the others' bills drift and a
few lose most of their revenue (partial churn). Written as ``day-01/`` ... folders with the
ground truth ``departures.csv`` and ``revenue_drops.csv`` beside them.

Everything is drawn from one ``numpy.random.default_rng(seed)``: the same
``(accounts, as_of, seed, bad_share)`` always gives identical frames. Work is done on whole arrays
(no Python loop per account); strings are built with Arrow kernels. One million accounts take a
few seconds to build and as many to write, with a peak of about 1.6 GB of memory.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

__all__ = [
    "ACCOUNT_COLUMNS",
    "BILLING_COLUMNS",
    "COMPLAINT_CATEGORIES",
    "COMPLAINT_COLUMNS",
    "CONTRACT_TYPES",
    "GROUND_TRUTH_COLUMNS",
    "INDUSTRIES",
    "MODES",
    "PAYMENT_METHODS",
    "REGIONS",
    "SLA_COLUMNS",
    "TABLES",
    "DayPlay",
    "generate_days",
    "generate_snapshot",
    "make_days",
    "make_snapshot",
    "write_snapshot",
]

TABLES = ("accounts", "billing", "complaints", "sla_incidents", "ground_truth")
# The realistic mode's latent causes of churn, as ground_truth.csv names them (``cause``): the
# service disappoints, a competitor pulls, money is tight, the account drifts away, nothing
# binds it (no or a lapsing contract), the relationship is new.
CAUSES = ("service", "competitor", "distress", "disengaged", "uncommitted", "new")

ACCOUNT_COLUMNS = (
    "account_id", "name_zh", "name_en", "industry", "region", "account_manager",
    "manager_email", "contract_start", "contract_end", "products_held", "new_services",
    "employees", "cost_to_serve", "last_contact_date",
)
BILLING_COLUMNS = ("account_id", "month", "billed", "paid")
COMPLAINT_COLUMNS = ("complaint_id", "account_id", "opened_date", "category")
SLA_COLUMNS = ("incident_id", "account_id", "start_date", "outage_hours", "sla_breach")
GROUND_TRUTH_COLUMNS = ("account_id", "declining")

# industry -> share of accounts, relative size of revenue
_INDUSTRY_TABLE = (
    ("enterprise", 0.35, 1.0),
    ("finance", 0.12, 1.8),
    ("government", 0.12, 1.4),
    ("it", 0.12, 1.1),
    ("education", 0.08, 0.7),
    ("health", 0.08, 0.8),
    ("tourism", 0.06, 0.6),
    ("culture", 0.04, 0.5),
    ("military", 0.03, 1.3),
)
INDUSTRIES = tuple(row[0] for row in _INDUSTRY_TABLE)

# region -> share of managers, cities (zh, en)
_REGION_TABLE = (
    ("北京", 0.14, (("北京", "Beijing"),)),
    ("上海", 0.14, (("上海", "Shanghai"),)),
    ("广东", 0.18, (("广州", "Guangzhou"), ("深圳", "Shenzhen"), ("佛山", "Foshan"),
                    ("东莞", "Dongguan"))),
    ("江苏", 0.14, (("南京", "Nanjing"), ("苏州", "Suzhou"), ("无锡", "Wuxi"))),
    ("浙江", 0.13, (("杭州", "Hangzhou"), ("宁波", "Ningbo"), ("温州", "Wenzhou"))),
    ("四川", 0.10, (("成都", "Chengdu"), ("绵阳", "Mianyang"))),
    ("湖北", 0.09, (("武汉", "Wuhan"), ("宜昌", "Yichang"))),
    ("陕西", 0.08, (("西安", "Xi'an"), ("宝鸡", "Baoji"))),
)
REGIONS = tuple(row[0] for row in _REGION_TABLE)

COMPLAINT_CATEGORIES = ("network", "billing", "service", "price", "coverage", "other")
_COMPLAINT_P_BASE = (0.25, 0.20, 0.20, 0.10, 0.10, 0.15)
_COMPLAINT_P_DECLINE = (0.35, 0.10, 0.20, 0.20, 0.10, 0.05)

# syllables of trade names (zh, pinyin)
_TRADE_SYLLABLES = (
    ("华", "Hua"), ("信", "Xin"), ("中", "Zhong"), ("恒", "Heng"), ("达", "Da"), ("宏", "Hong"),
    ("远", "Yuan"), ("泰", "Tai"), ("安", "An"), ("联", "Lian"), ("通", "Tong"), ("明", "Ming"),
    ("瑞", "Rui"), ("丰", "Feng"), ("盛", "Sheng"), ("鼎", "Ding"), ("海", "Hai"), ("天", "Tian"),
    ("金", "Jin"), ("嘉", "Jia"), ("和", "He"), ("兴", "Xing"), ("隆", "Long"), ("博", "Bo"),
    ("创", "Chuang"), ("科", "Ke"), ("光", "Guang"), ("星", "Xing"), ("云", "Yun"), ("龙", "Long"),
    ("凯", "Kai"), ("正", "Zheng"), ("德", "De"), ("永", "Yong"), ("富", "Fu"), ("新", "Xin"),
    ("宇", "Yu"), ("东", "Dong"), ("方", "Fang"), ("汇", "Hui"),
)

# (industry, zh suffix, en suffix, name uses a trade name)
_NAME_SUFFIXES = (
    ("government", "市人民政府", "Municipal People's Government", False),
    ("government", "市公安局", "Municipal Public Security Bureau", False),
    ("government", "市税务局", "Municipal Tax Service", False),
    ("government", "市交通运输局", "Municipal Transport Bureau", False),
    ("government", "市卫生健康委员会", "Municipal Health Commission", False),
    ("government", "区人民政府", "District People's Government", True),
    ("government", "区政务服务中心", "District Government Service Center", True),
    ("military", "警备区", "Garrison Command", False),
    ("military", "军分区", "Military Sub-district", False),
    ("military", "武警支队", "Armed Police Detachment", False),
    ("military", "军工科技有限公司", "Defence Technology Co., Ltd.", True),
    ("military", "国防装备研究所", "Defence Equipment Research Institute", True),
    ("finance", "银行", "Bank", True),
    ("finance", "农村商业银行", "Rural Commercial Bank", False),
    ("finance", "证券股份有限公司", "Securities Co., Ltd.", True),
    ("finance", "保险股份有限公司", "Insurance Co., Ltd.", True),
    ("finance", "基金管理有限公司", "Fund Management Co., Ltd.", True),
    ("tourism", "国际旅行社有限公司", "International Travel Service Co., Ltd.", True),
    ("tourism", "大酒店", "Grand Hotel", True),
    ("tourism", "旅游集团有限公司", "Tourism Group Co., Ltd.", True),
    ("tourism", "度假村", "Resort", True),
    ("enterprise", "实业有限公司", "Industrial Co., Ltd.", True),
    ("enterprise", "集团股份有限公司", "Group Co., Ltd.", True),
    ("enterprise", "制造有限公司", "Manufacturing Co., Ltd.", True),
    ("enterprise", "物流有限公司", "Logistics Co., Ltd.", True),
    ("enterprise", "贸易有限公司", "Trading Co., Ltd.", True),
    ("enterprise", "能源有限公司", "Energy Co., Ltd.", True),
    ("it", "科技有限公司", "Technology Co., Ltd.", True),
    ("it", "信息技术有限公司", "Information Technology Co., Ltd.", True),
    ("it", "网络科技有限公司", "Network Technology Co., Ltd.", True),
    ("it", "软件股份有限公司", "Software Co., Ltd.", True),
    ("it", "数据服务有限公司", "Data Services Co., Ltd.", True),
    ("education", "大学", "University", True),
    ("education", "职业技术学院", "Vocational and Technical College", True),
    ("education", "实验中学", "Experimental Middle School", True),
    ("education", "外国语学校", "Foreign Languages School", True),
    ("culture", "文化传媒有限公司", "Culture Media Co., Ltd.", True),
    ("culture", "出版社", "Publishing House", True),
    ("culture", "广播电视台", "Radio and Television Station", False),
    ("culture", "博物馆", "Museum", False),
    ("health", "医院", "Hospital", True),
    ("health", "市人民医院", "Municipal People's Hospital", False),
    ("health", "市中医院", "Municipal Hospital of Traditional Chinese Medicine", False),
    ("health", "医药集团有限公司", "Pharmaceutical Group Co., Ltd.", True),
    ("health", "妇幼保健院", "Maternal and Child Health Hospital", True),
)

_SURNAMES = (
    ("王", "wang"), ("李", "li"), ("张", "zhang"), ("刘", "liu"), ("陈", "chen"), ("杨", "yang"),
    ("黄", "huang"), ("赵", "zhao"), ("吴", "wu"), ("周", "zhou"), ("徐", "xu"), ("孙", "sun"),
    ("马", "ma"), ("朱", "zhu"), ("胡", "hu"), ("郭", "guo"), ("何", "he"), ("高", "gao"),
    ("林", "lin"), ("罗", "luo"), ("郑", "zheng"), ("梁", "liang"), ("谢", "xie"), ("宋", "song"),
    ("唐", "tang"), ("许", "xu"), ("韩", "han"), ("冯", "feng"), ("邓", "deng"), ("曹", "cao"),
    ("彭", "peng"), ("曾", "zeng"), ("肖", "xiao"), ("田", "tian"), ("董", "dong"), ("袁", "yuan"),
    ("潘", "pan"), ("于", "yu"), ("蒋", "jiang"), ("蔡", "cai"),
)
_GIVEN_CHARS = (
    ("芳", "fang"), ("伟", "wei"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"),
    ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("艳", "yan"),
    ("杰", "jie"), ("娟", "juan"), ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("秀", "xiu"),
    ("霞", "xia"), ("平", "ping"), ("刚", "gang"), ("桂", "gui"), ("英", "ying"), ("华", "hua"),
    ("玲", "ling"), ("辉", "hui"), ("鹏", "peng"), ("婷", "ting"), ("雪", "xue"), ("琳", "lin"),
    ("宇", "yu"), ("浩", "hao"), ("欣", "xin"), ("晨", "chen"), ("佳", "jia"), ("倩", "qian"),
    ("颖", "ying"), ("峰", "feng"), ("建", "jian"), ("国", "guo"),
)

EMAIL_DOMAIN = "operator.example"
MAX_ACCOUNTS = 9_999_999  # account_id has 7 digits

DECLINING_SHARE = 0.12
ACCOUNTS_PER_MANAGER = 150

# probability that a declining account shows each signal (at least two are forced)
_SIGNALS = ("revenue", "complaints", "sla", "arrears", "contract_end", "no_contact")
_SIGNAL_P = np.array([0.80, 0.60, 0.45, 0.50, 0.35, 0.50])
_HEALTHY_NOISE_SHARE = 0.03  # healthy accounts that show exactly one signal

_STR = pd.StringDtype(storage="pyarrow", na_value=np.nan)  # pandas' default "str" dtype

# --- the realistic mode (mode="realistic")
MODES = ("easy", "realistic")
REALISTIC_CHURN_RATE = 0.10
CONTRACT_TYPES = ("month-to-month", "one-year", "two-year")
PAYMENT_METHODS = ("auto-debit", "bank-transfer", "invoice")
_CONTRACT_DAYS = np.array([0, 365, 730])
_COMPETITOR_CATEGORIES = [COMPLAINT_CATEGORIES.index(c) for c in ("billing", "price", "coverage")]
_OTHER_CATEGORIES = [COMPLAINT_CATEGORIES.index(c) for c in ("network", "service", "other")]


# --------------------------------------------------------------------------- string helpers
def _decode(codes: np.ndarray, values: Sequence[Any]) -> pa.Array:
    """values[codes] as an Arrow string array, without building Python strings per row."""
    if not isinstance(values, pa.Array):
        values = pa.array(list(values), pa.string())
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes, dtype=np.int32)), values).dictionary_decode()


def _join(*parts: Any) -> pa.Array:
    """Element-wise concatenation of Arrow string arrays / Python str scalars."""
    return pc.binary_join_element_wise(*parts, "")


def _ids(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """prefix + zero-padded numbers, e.g. KA0000001."""
    digits = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, dtype=np.int64)), pa.string()),
                          width, "0")
    return _join(prefix, digits)


def _str_series(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(arr, dtype=_STR)


def _dates(as_of: np.datetime64, days_offset: np.ndarray,
           missing: np.ndarray | None = None) -> np.ndarray:
    """as_of + days_offset as datetime64[s]; NaT where ``missing`` is True."""
    out = (as_of + np.asarray(days_offset, dtype=np.int64).astype("timedelta64[D]"))
    out = out.astype("datetime64[s]")
    if missing is not None:
        out[missing] = np.datetime64("NaT")
    return out


# --------------------------------------------------------------------------- public API
def make_snapshot(
    accounts: int,
    as_of: dt.date,
    seed: int = 7,
    bad_share: float = 0.005,
    mode: str = "easy",
    churn_rate: float | None = None,
    horizon_days: int = 365,
) -> dict[str, pd.DataFrame]:
    """Build a sample snapshot in memory.

    Returns frames keyed ``accounts``, ``billing``, ``complaints``, ``sla_incidents``,
    ``ground_truth``. Date columns are ``datetime64[s]`` (midnight, ``NaT`` when missing),
    text columns pandas' ``str`` dtype (``NaN`` when missing), counts ``int64``, amounts
    ``float64`` rounded to 2 decimals (outage hours to 1). Pure: same arguments, same frames.

    ``mode="easy"`` (the default, for functional tests) plants clear decline signals;
    ``mode="realistic"`` draws churn from latent causes (see the module notes), with
    ``churn_rate`` (default 0.10) the share of accounts that churn within ``horizon_days``
    after ``as_of``.
    """
    n = _check_args(accounts, as_of, seed, bad_share)
    realistic = _check_mode(mode, churn_rate, horizon_days)
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    rng = np.random.default_rng(seed)
    day0 = np.datetime64(as_of, "D")
    idx = np.arange(n)

    # --- managers: about one per 150 accounts, at least 3, each in one region
    m = max(3, round(n / ACCOUNTS_PER_MANAGER))
    n_given = len(_GIVEN_CHARS)
    names_per_surname = n_given + n_given * n_given
    space = len(_SURNAMES) * names_per_surname
    pick = rng.choice(space, size=m, replace=m > space)
    sur, rest = np.divmod(pick, names_per_surname)
    two = rest >= n_given
    g1 = np.where(two, (rest - n_given) // n_given, rest)
    g2 = np.where(two, (rest - n_given) % n_given, n_given)  # n_given -> "" (no second char)
    given_zh = [c for c, _ in _GIVEN_CHARS] + [""]
    given_py = [p for _, p in _GIVEN_CHARS] + [""]
    mgr_name = _join(_decode(sur, [c for c, _ in _SURNAMES]), _decode(g1, given_zh),
                     _decode(g2, given_zh))
    mgr_email = _join(_decode(sur, [p for _, p in _SURNAMES]), ".", _decode(g1, given_py),
                      _decode(g2, given_py), ".",
                      pc.cast(pa.array(np.arange(1, m + 1)), pa.string()), "@" + EMAIL_DOMAIN)
    region_p = np.array([r[1] for r in _REGION_TABLE])
    mgr_region = rng.choice(len(REGIONS), size=m, p=region_p / region_p.sum())
    k = min(m, len(REGIONS))
    mgr_region[:k] = rng.permutation(len(REGIONS))[:k]  # small portfolios still span regions
    mgr_load = rng.gamma(4.0, 0.25, size=m)  # portfolio sizes vary around the mean
    acct_mgr = rng.choice(m, size=n, p=mgr_load / mgr_load.sum())
    k = min(m, n)
    acct_mgr[rng.permutation(n)[:k]] = np.arange(k)  # every manager has an account (if n >= m)
    region = mgr_region[acct_mgr]

    # --- industry, size
    ind_p = np.array([r[1] for r in _INDUSTRY_TABLE])
    industry = rng.choice(len(INDUSTRIES), size=n, p=ind_p / ind_p.sum())
    ind_factor = np.array([r[2] for r in _INDUSTRY_TABLE])
    ind_factor = ind_factor / np.exp(np.sum(ind_p * np.log(ind_factor)))  # keep median ~15,000
    z = rng.standard_normal(n)
    # The realistic mode spreads revenue as DOMAIN.md's 20/80 picture has it (the top fifth of
    # accounts bring about 80 % of revenue); the easy mode keeps its narrower spread (~60 %).
    base = 15_000.0 * ind_factor[industry] * np.exp((1.7 if realistic else 1.1) * z)

    # --- names
    city_zh: list[str] = []
    city_en: list[str] = []
    offsets: list[int] = []
    sizes: list[int] = []
    for _, _, cities in _REGION_TABLE:
        offsets.append(len(city_zh))
        sizes.append(len(cities))
        city_zh += [c for c, _ in cities]
        city_en += [e for _, e in cities]
    city_off, city_cnt = np.array(offsets), np.array(sizes)
    city = city_off[region] + (rng.random(n) * city_cnt[region]).astype(np.int64)

    suf_ind = np.array([INDUSTRIES.index(s[0]) for s in _NAME_SUFFIXES])
    suf_trade = np.array([s[3] for s in _NAME_SUFFIXES])
    order = np.argsort(suf_ind, kind="stable")
    suf_off = np.searchsorted(suf_ind[order], np.arange(len(INDUSTRIES)))
    suf_cnt = np.bincount(suf_ind, minlength=len(INDUSTRIES))
    suffix = order[suf_off[industry] + (rng.random(n) * suf_cnt[industry]).astype(np.int64)]

    s = len(_TRADE_SYLLABLES)
    trade_zh = [a + b for a, _ in _TRADE_SYLLABLES for b, _ in _TRADE_SYLLABLES] + [""]
    trade_en = [a + b.lower() + " " for _, a in _TRADE_SYLLABLES for _, b in _TRADE_SYLLABLES]
    trade_en.append("")
    trade = rng.integers(0, s * s, size=n)
    trade = np.where(suf_trade[suffix], trade, s * s)
    name_zh = _join(_decode(city, city_zh), _decode(trade, trade_zh),
                    _decode(suffix, [x[1] for x in _NAME_SUFFIXES]))
    name_en = _join(_decode(city, city_en), " ", _decode(trade, trade_en),
                    _decode(suffix, [x[2] for x in _NAME_SUFFIXES]))
    name_en = pc.if_else(pa.array(rng.random(n) < 0.08), pa.scalar(None, pa.string()), name_en)

    # --- who declines, and with which signals
    declining = np.zeros(n, dtype=bool)
    declining[rng.permutation(n)[: round(DECLINING_SHARE * n)]] = True
    n_sig = len(_SIGNALS)
    sig = np.zeros((n, n_sig), dtype=bool)
    dec_idx = np.flatnonzero(declining)
    dsig = rng.random((dec_idx.size, n_sig)) < _SIGNAL_P
    few = dsig.sum(axis=1) < 2
    dsig[few, 0] = True  # revenue falls ...
    dsig[few, rng.integers(1, n_sig, size=dec_idx.size)[few]] = True  # ... plus one other sign
    sig[dec_idx] = dsig
    healthy_idx = np.flatnonzero(~declining)
    noisy = healthy_idx[rng.random(healthy_idx.size) < _HEALTHY_NOISE_SHARE]
    sig[noisy, rng.integers(0, n_sig, size=noisy.size)] = True
    s_rev, s_cmp, s_sla, s_arr, s_end, s_contact = (sig[:, j] for j in range(n_sig))
    # Realistic mode: its own stream (the easy draws above and below stay the same), whose
    # latent causes replace who declines and which signals show.
    world = _latent_world(np.random.default_rng([seed, 1]), n, z, churn_rate or
                          REALISTIC_CHURN_RATE, horizon_days,
                          np.random.default_rng([seed, 2])) if realistic else None
    if world is not None:
        declining = world.churned
        s_rev, s_cmp, s_sla, s_arr, s_end, s_contact = (world.signals[:, j]
                                                       for j in range(n_sig))

    # --- billing: 12 calendar months before as_of's month
    t = np.arange(12)
    growth = np.clip(rng.normal(0.003, 0.003, size=n), -0.002, None)
    billed = base[:, None] * (1.0 + growth[:, None]) ** t[None, :]
    billed *= rng.uniform(0.95, 1.05, size=(n, 12))
    drop = rng.uniform(0.2, 0.6, size=n)
    if world is not None:  # a volatile account's bills swing; a partial churn is milder
        billed *= np.exp(world.volatility[:, None] * world.rng.standard_normal((n, 12)))
        drop = world.rng.uniform(0.08, 0.45, size=n)
    drop_months = rng.integers(3, 5, size=n)
    pos = t[None, :] - (12 - drop_months)[:, None]  # 0 = first falling month
    fall = np.where(pos >= 0, 1.0 - drop[:, None] * np.minimum(1.0, (pos + 1) / 2.0), 1.0)
    billed = np.where(s_rev[:, None], billed * fall, billed)
    del fall, pos
    billed = np.round(billed, 2)

    pay = np.ones((n, 12))
    arrear_months = rng.integers(2, 4, size=n)
    arrear_frac = rng.uniform(0.4, 0.8, size=(n, 12))
    in_arrears = s_arr[:, None] & (t[None, :] >= (12 - arrear_months)[:, None])
    pay = np.where(in_arrears, arrear_frac, pay)
    del arrear_frac, in_arrears
    late = np.flatnonzero((rng.random(n) < 0.04) & ~s_arr)  # small healthy under-payments
    pay[late, rng.integers(0, 12, size=late.size)] = rng.uniform(0.9, 0.99, size=late.size)
    paid = np.round(billed * pay, 2)
    del pay

    # --- account master numbers and dates
    contract_start = _dates(day0, -rng.integers(365, 12 * 365 + 1, size=n))
    end_days = np.where(s_end, rng.integers(-30, 91, size=n),
                        rng.integers(-30, 3 * 365 + 1, size=n))
    if world is not None:
        contract_start = _dates(day0, world.contract_start_days)
        end_days = world.contract_end_days
    contract_end = _dates(day0, end_days)
    p_geo = np.clip(0.45 - 0.08 * z, 0.15, 0.75)
    products_held = np.minimum(rng.geometric(p_geo), 12).astype(np.int64)
    new_services = np.minimum(rng.poisson(np.where(declining, 0.5, 0.9)), 5).astype(np.int64)
    if world is not None:  # irrelevant to churn in the realistic world
        new_services = np.minimum(world.rng.poisson(0.8, size=n), 5).astype(np.int64)
    employees = np.maximum(
        1, np.round(np.exp(np.log(250.0) + 0.7 * z + rng.standard_normal(n)))).astype(np.int64)
    cost_to_serve = np.round(np.maximum(
        0.0, base * rng.uniform(0.02, 0.10, size=n) * (1.0 + rng.normal(0.0, 0.1, size=n))), 2)
    contact_ago = np.where(s_contact, rng.integers(121, 541, size=n),
                           1 + np.floor(rng.exponential(30.0, size=n)).astype(np.int64))
    never = rng.random(n) < 0.03
    last_contact = _dates(day0, -np.minimum(contact_ago, 730), missing=never)

    # --- complaints and SLA incidents
    cmp_acct, cmp_days, cmp_cat = _events(
        rng, n, 0.8, np.flatnonzero(s_cmp), 1.5,
        lambda size, extra: np.where(
            extra,
            rng.choice(len(COMPLAINT_CATEGORIES), size=size, p=_COMPLAINT_P_DECLINE),
            rng.choice(len(COMPLAINT_CATEGORIES), size=size, p=_COMPLAINT_P_BASE)))
    if world is not None:  # a competitor's pull shows as billing, price and coverage complaints
        cmp_cat = world.complaint_categories(cmp_acct)
    sla_acct, sla_days, sla_hours = _events(
        rng, n, 0.4, np.flatnonzero(s_sla), 1.0,
        lambda size, extra: np.where(
            extra, rng.lognormal(np.log(9.0), 0.6, size=size),
            rng.lognormal(np.log(1.0), 0.8, size=size)))
    sla_hours = np.maximum(0.1, np.round(sla_hours, 1))
    strict = np.isin(industry, [INDUSTRIES.index(x) for x in ("government", "military", "finance")])
    restore_target = np.where(strict, 2.0, 4.0)
    sla_breach = (sla_hours > restore_target[sla_acct]).astype(np.int64)

    # --- bad rows, drawn last so that the good data does not depend on bad_share
    n_bad = round(bad_share * n / 4) if bad_share > 0 else 0
    if bad_share > 0 and n >= 200:
        n_bad = max(1, n_bad)
    bad = rng.choice(n, size=3 * n_bad, replace=False)
    neg_acct, blank_email, unknown_ind = bad[:n_bad], bad[n_bad:2 * n_bad], bad[2 * n_bad:]
    neg_month = rng.integers(0, 12, size=n_bad)
    billed[neg_acct, neg_month] = -billed[neg_acct, neg_month]
    orphan_month = rng.integers(0, 12, size=n_bad)
    orphan_billed = np.round(15_000.0 * np.exp(1.1 * rng.standard_normal(n_bad)), 2)

    # --- frames
    account_id = _ids("KA", idx + 1, 7)
    email = _decode(acct_mgr, mgr_email)
    blank = np.zeros(n, dtype=bool)
    blank[blank_email] = True
    email = pc.if_else(pa.array(blank), pa.scalar(None, pa.string()), email)
    industry_names = list(INDUSTRIES) + ["unknown"]
    industry_code = industry.copy()
    industry_code[unknown_ind] = len(INDUSTRIES)

    accounts_df = pd.DataFrame({
        "account_id": _str_series(account_id),
        "name_zh": _str_series(name_zh),
        "name_en": _str_series(name_en),
        "industry": _str_series(_decode(industry_code, industry_names)),
        "region": _str_series(_decode(region, REGIONS)),
        "account_manager": _str_series(_decode(acct_mgr, mgr_name)),
        "manager_email": _str_series(email),
        "contract_start": contract_start,
        "contract_end": contract_end,
        "products_held": products_held,
        "new_services": new_services,
        "employees": employees,
        "cost_to_serve": cost_to_serve,
        "last_contact_date": last_contact,
    })
    if world is not None:
        accounts_df["customer_since"] = _dates(day0, world.customer_since_days)
        accounts_df["contract_type"] = _str_series(_decode(world.contract_type, CONTRACT_TYPES))
        accounts_df["payment_method"] = _str_series(_decode(world.payment_method,
                                                            PAYMENT_METHODS))
        accounts_df["auto_pay"] = _str_series(_decode(world.auto_pay.astype(np.int64),
                                                      ("no", "yes")))

    month_labels = np.datetime_as_string(
        np.datetime64(as_of, "M") - np.arange(12, 0, -1).astype("timedelta64[M]"), unit="M")
    bill_ids = _decode(np.repeat(idx, 12), account_id)  # 12 rows per account
    bill_months = _decode(np.tile(t, n), month_labels.tolist())
    if n_bad:
        orphan_ids = _ids("KA", MAX_ACCOUNTS - np.arange(n_bad), 7)
        bill_ids = pa.chunked_array([bill_ids, _join(orphan_ids, "x")])
        bill_months = pa.chunked_array([bill_months, _decode(orphan_month, month_labels.tolist())])
        billed_flat = np.concatenate([billed.ravel(), orphan_billed])
        paid_flat = np.concatenate([paid.ravel(), orphan_billed])
    else:
        billed_flat, paid_flat = billed.ravel(), paid.ravel()
    del billed, paid
    billing_df = pd.DataFrame({
        "account_id": _str_series(bill_ids),
        "month": _str_series(bill_months),
        "billed": billed_flat,
        "paid": paid_flat,
    })

    complaints_df = pd.DataFrame({
        "complaint_id": _str_series(_ids("C", np.arange(1, cmp_acct.size + 1),
                                         max(8, len(str(cmp_acct.size))))),
        "account_id": _str_series(_take(account_id, cmp_acct)),
        "opened_date": _dates(day0, -cmp_days),
        "category": _str_series(_decode(cmp_cat, COMPLAINT_CATEGORIES)),
    })
    sla_df = pd.DataFrame({
        "incident_id": _str_series(_ids("I", np.arange(1, sla_acct.size + 1),
                                        max(8, len(str(sla_acct.size))))),
        "account_id": _str_series(_take(account_id, sla_acct)),
        "start_date": _dates(day0, -sla_days),
        "outage_hours": sla_hours,
        "sla_breach": sla_breach,
    })
    truth_df = pd.DataFrame({
        "account_id": _str_series(account_id),
        "declining": declining.astype(np.int64),
    })
    if world is not None:  # observed after the horizon: when each churner left
        truth_df["churn_date"] = _dates(day0, world.churn_days, missing=~declining)
        if world.cause is not None:
            truth_df["cause"] = _str_series(world.cause)
    return {
        "accounts": accounts_df,
        "billing": billing_df,
        "complaints": complaints_df,
        "sla_incidents": sla_df,
        "ground_truth": truth_df,
    }


def write_snapshot(frames: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, int]:
    """Write each frame to ``out_dir/<name>.csv`` and return ``{name: data rows written}``.

    UTF-8, header row, no index, ``\\n`` line ends, dates as ``YYYY-MM-DD``, missing values as
    empty fields, fields quoted only when they contain a comma, quote or line break. ``out_dir``
    is created if needed; each file is written to a temporary name and then renamed into place,
    so a reader never sees half a file.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for name, frame in frames.items():
        if not name or Path(name).name != name or name.startswith("."):
            raise ValueError(f"table name must be a plain file stem, got {name!r}")
        target = out_dir / f"{name}.csv"
        tmp = out_dir / f".{name}.csv.tmp"
        try:
            _write_csv(frame, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        counts[name] = len(frame)
    return counts


def typed_tables(frames: dict[str, pd.DataFrame],
                 signals: bool = False) -> dict[str, pd.DataFrame]:
    """The generated tables as intake types them, without writing files: billing months as
    dates and a ``_row`` line number (header = line 1) on every table; ground truth left out.
    For tests and benchmarks that skip the CSV round trip. With ``signals`` (realistic mode),
    the accounts also carry the two operator signals as
    docs/examples/realistic-signals.mapping.yaml reads them (tests/test_mapping.py)."""
    tables = {name: frame for name, frame in frames.items() if name != "ground_truth"}
    if signals:
        accounts = tables["accounts"]
        tables["accounts"] = accounts.assign(
            signal_contract_type=accounts["contract_type"].str.replace("-", "_"),
            signal_auto_pay=(accounts["auto_pay"] == "yes").astype(float))
    tables["billing"] = tables["billing"].assign(
        month=pd.to_datetime(tables["billing"]["month"], format="%Y-%m"))
    return {name: frame.assign(_row=np.arange(2, len(frame) + 2))
            for name, frame in tables.items()}


def generate_snapshot(
    out_dir: Path | str,
    accounts: int,
    as_of: dt.date,
    seed: int = 7,
    bad_share: float = 0.005,
    mode: str = "easy",
    churn_rate: float | None = None,
    horizon_days: int = 365,
) -> dict[str, int]:
    """``make_snapshot`` then ``write_snapshot``; returns ``{table name: rows written}``."""
    return write_snapshot(make_snapshot(accounts, as_of, seed=seed, bad_share=bad_share,
                                        mode=mode, churn_rate=churn_rate,
                                        horizon_days=horizon_days), Path(out_dir))


# --------------------------------------------------------------------------- days played out
MAX_LEAVE_RATE = 0.04  # below the roster's partial-export guard (5 % gone at once)
PARTIAL_DROP = (0.6, 0.9)  # a partial churner's revenue falls by 60-90 % at once


@dataclass
class DayPlay:
    """A sequence of daily snapshots (``days[k]``: the frames of day k + 1) and its ground
    truth: ``departures`` (``account_id``, ``day``, ``date``: the first day the account is
    missing) and ``revenue_drops`` (``account_id``, ``day``, ``date``, ``factor``: the day a
    retained account lost most of its revenue, and what of its bill was left)."""

    dates: list[dt.date]
    days: list[dict[str, pd.DataFrame]]
    departures: pd.DataFrame
    revenue_drops: pd.DataFrame


def make_days(accounts: int, start: dt.date, days: int, seed: int = 7,
              leave_rate: float = 0.002, revenue_drift: float = 0.01,
              partial_rate: float = 0.002, bad_share: float = 0.0,
              mode: str = "easy") -> DayPlay:
    """Play ``days`` days out from a snapshot as of ``start`` (day 1, ``make_snapshot``): each
    later day, every account still there leaves with probability ``leave_rate``; the others'
    bills (all twelve months, billed and paid) drift by a log-normal factor of sd
    ``revenue_drift`` a day, and with probability ``partial_rate`` a retained account loses
    60-90 % of its revenue at once (partial churn, 业务流失; once per account). Day k is as of
    ``start + k - 1``; when the month changes, the billing months move with it. Complaints,
    incidents and bad rows of the accounts still there are kept. Deterministic by ``seed``
    (the day-to-day draws come from a stream of their own, so day 1 is ``make_snapshot``)."""
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ValueError(f"days must be a positive int, got {days!r}")
    for name, value, top in (("leave_rate", leave_rate, MAX_LEAVE_RATE),
                             ("revenue_drift", revenue_drift, 0.5),
                             ("partial_rate", partial_rate, 0.5)):
        if not 0.0 <= float(value) <= top:
            raise ValueError(f"{name} must be between 0 and {top}, got {value}"
                             + (" (more than 5 % gone in one snapshot looks like a partial "
                                "export to the roster, which then marks nobody lost)"
                                if name == "leave_rate" else ""))
    first = make_snapshot(accounts, start, seed=seed, bad_share=bad_share, mode=mode)
    rng = np.random.default_rng([seed, 104_729])
    ids = first["accounts"]["account_id"]
    position = pd.Index(ids.to_numpy())
    n = len(ids)
    alive = np.ones(n, dtype=bool)
    factor = np.ones(n)
    dropped = np.zeros(n, dtype=bool)
    left_day = np.zeros(n, dtype=np.int64)
    drops: list[tuple[int, int, float]] = []
    dates = [start + dt.timedelta(days=k) for k in range(days)]
    out = [first]
    for k in range(2, days + 1):
        leaving = alive & (rng.random(n) < leave_rate)
        alive &= ~leaving
        left_day[leaving] = k
        factor[alive] *= np.exp(rng.normal(0.0, revenue_drift, int(alive.sum())))
        falls = alive & ~dropped & (rng.random(n) < partial_rate)
        kept = rng.uniform(1 - PARTIAL_DROP[1], 1 - PARTIAL_DROP[0], int(falls.sum()))
        factor[falls] *= kept
        dropped |= falls
        drops += [(int(i), k, float(f)) for i, f in zip(np.flatnonzero(falls), kept,
                                                         strict=True)]
        out.append(_day_frames(first, position, alive, factor, start, dates[k - 1]))
    def truth(rows: list[tuple[str, int]], **extra: Any) -> pd.DataFrame:
        return pd.DataFrame({"account_id": pd.Series([r[0] for r in rows], dtype=_STR),
                             "day": np.array([r[1] for r in rows], dtype=np.int64),
                             "date": pd.to_datetime([dates[r[1] - 1] for r in rows]).astype(
                                 "datetime64[s]"), **extra})
    gone = np.flatnonzero(left_day)
    departures = truth([(ids.iloc[i], int(left_day[i])) for i in gone])
    revenue_drops = truth([(ids.iloc[i], k) for i, k, _ in drops],
                          factor=np.round(np.array([f for _, _, f in drops], dtype=float), 4))
    return DayPlay(dates, out, departures, revenue_drops)


def _day_frames(first: dict[str, pd.DataFrame], position: pd.Index, alive: np.ndarray,
                factor: np.ndarray, start: dt.date, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Day ``as_of``'s frames: the first day's, of the accounts still there, bills scaled."""
    def keep(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        at = position.get_indexer(frame["account_id"].to_numpy())
        live = np.where(at >= 0, alive[np.maximum(at, 0)], True)  # orphans stay
        return frame.loc[live].reset_index(drop=True), at[live]

    frames = {name: keep(frame)[0] for name, frame in first.items()
              if name not in ("billing",)}
    billing, at = keep(first["billing"])
    scale = np.where(at >= 0, factor[np.maximum(at, 0)], 1.0)
    billing["billed"] = np.round(billing["billed"].to_numpy() * scale, 2)
    billing["paid"] = np.round(billing["paid"].to_numpy() * scale, 2)
    shift = (as_of.year - start.year) * 12 + as_of.month - start.month
    if shift:
        labels = billing["month"].unique()
        moved = {m: (pd.Period(m, "M") + shift).strftime("%Y-%m") for m in labels}
        billing["month"] = billing["month"].map(moved).astype(_STR)
    frames["billing"] = billing
    return {name: frames[name] for name in first}


def generate_days(out_dir: Path | str, accounts: int, start: dt.date, days: int,
                  seed: int = 7, leave_rate: float = 0.002, revenue_drift: float = 0.01,
                  partial_rate: float = 0.002, bad_share: float = 0.0,
                  mode: str = "easy") -> DayPlay:
    """``make_days`` written out: ``out_dir/day-01/`` ... (one snapshot each, as
    ``write_snapshot``) and the ground truth ``out_dir/departures.csv`` and
    ``out_dir/revenue_drops.csv``. Returns what was written."""
    out_dir = Path(out_dir)
    play = make_days(accounts, start, days, seed=seed, leave_rate=leave_rate,
                     revenue_drift=revenue_drift, partial_rate=partial_rate,
                     bad_share=bad_share, mode=mode)
    width = max(2, len(str(days)))
    for k, frames in enumerate(play.days, start=1):
        write_snapshot(frames, out_dir / f"day-{k:0{width}d}")
    write_snapshot({"departures": play.departures, "revenue_drops": play.revenue_drops},
                   out_dir)
    return play


# --------------------------------------------------------------------------- realistic mode
@dataclass(frozen=True)
class _World:
    """The realistic mode's accounts: latent causes, what shows of them, and who churned."""

    rng: np.random.Generator
    churned: np.ndarray              # bool: left within the horizon after as_of
    churn_days: np.ndarray           # days after as_of each churner left
    signals: np.ndarray              # accounts x _SIGNALS, bool
    volatility: np.ndarray           # log-sd of the monthly bill
    competitor_pull: np.ndarray      # share of complaints about billing, price, coverage
    contract_type: np.ndarray        # codes into CONTRACT_TYPES
    payment_method: np.ndarray       # codes into PAYMENT_METHODS
    auto_pay: np.ndarray             # bool: pays by automatic debit of an e-wallet or card
    customer_since_days: np.ndarray  # days from as_of (negative: the past)
    contract_start_days: np.ndarray
    contract_end_days: np.ndarray
    # the latent cause that weighs most in each account's propensity (CAUSES): what a
    # retention action would have to address; the scorer never sees it (ground_truth only)
    cause: np.ndarray | None = None

    def complaint_categories(self, acct: np.ndarray) -> np.ndarray:
        competitor = self.rng.random(acct.size) < self.competitor_pull[acct]
        return np.where(competitor,
                        self.rng.choice(_COMPETITOR_CATEGORIES, size=acct.size,
                                        p=(0.40, 0.35, 0.25)),
                        self.rng.choice(_OTHER_CATEGORIES, size=acct.size, p=(0.50, 0.35, 0.15)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _latent_world(rng: np.random.Generator, n: int, size: np.ndarray, churn_rate: float,
                  horizon_days: int, extra: np.random.Generator) -> _World:
    """Four latent causes per account (dissatisfaction with the service, a competitor's pull,
    financial distress, engagement), a relationship age and a contract. Churn within the
    horizon: the ``churn_rate`` share of accounts with the highest latent propensity plus
    logistic noise (the causes explain part of it, luck the rest). Each observable signal is
    drawn from some of the causes, so it is only partly informative; employees, products held
    and new services tell nothing about churn."""
    dissatisfied, pull, distress, engaged = rng.standard_normal((4, n))
    young = rng.random(n) < 0.2  # in the first year of the relationship (识别期)
    months = np.where(young, rng.uniform(0.5, 12.0, n),
                      np.minimum(12.0 + rng.exponential(48.0, n), 240.0))
    customer_since = -np.round(months * 30.4375).astype(np.int64)
    # Engaged, established accounts commit for longer.
    commitment = 0.6 * engaged - 0.6 * young + rng.standard_normal(n)
    contract_type = np.digitize(commitment, np.quantile(commitment, [0.40, 0.70]))
    term = _CONTRACT_DAYS[contract_type]
    lapsed = (term > 0) & (rng.random(n) < 0.08)  # out of contract, still served
    end = np.where(term == 0, rng.integers(1, 32, n),  # rolling monthly: ends this month
                   np.where(lapsed, rng.integers(-180, 0, n),
                            np.ceil(rng.random(n) * term).astype(np.int64)))
    start = np.where(term == 0, customer_since, np.maximum(customer_since, end - term))
    start = np.minimum(start, end - 1)
    customer_since = np.minimum(customer_since, start)  # a lapsed contract began earlier
    method_score = 0.5 * distress - 0.3 * engaged + rng.standard_normal(n)
    payment_method = np.digitize(method_score, np.quantile(method_score, [0.40, 0.75]))

    ending = (term > 0) & (end >= 0) & (end <= 90)
    # No commitment and a young relationship weigh most, as on real operators' exports.
    propensity = (1.0 * dissatisfied + 0.9 * pull + 0.7 * distress - 0.5 * engaged
                  + 1.3 * (contract_type == 0) + 0.4 * (contract_type == 1) + 0.8 * lapsed
                  + 0.4 * ending + 1.2 * np.exp(-months / 12.0) + 0.2 * (payment_method == 2)
                  + rng.logistic(0.0, 1.0, n))
    churned = np.zeros(n, dtype=bool)
    churned[np.argsort(-propensity, kind="stable")[: round(churn_rate * n)]] = True
    weights = np.column_stack([  # in the order of CAUSES; no draw, so nothing else changes
        1.0 * dissatisfied, 0.9 * pull, 0.7 * distress, -0.5 * engaged,
        1.3 * (contract_type == 0) + 0.4 * (contract_type == 1) + 0.8 * lapsed + 0.4 * ending,
        1.2 * np.exp(-months / 12.0)])
    cause = np.asarray(CAUSES, dtype=object)[np.argmax(weights, axis=1)]

    def shows(logit: np.ndarray) -> np.ndarray:
        return rng.random(n) < _sigmoid(logit)

    signals = np.column_stack([
        shows(-2.4 + 1.0 * pull + 0.7 * distress),        # revenue falls (partial churn)
        shows(-2.0 + 1.1 * dissatisfied + 0.5 * pull),    # extra complaints
        shows(-2.6 + 1.2 * dissatisfied),                 # SLA incidents
        shows(-3.0 + 1.5 * distress),                     # arrears
        ending | lapsed,                                  # contract ending or ended
        shows(-2.4 - 1.1 * engaged),                      # no contact for months
    ])
    volatility = 0.02 + 0.10 * _sigmoid(0.8 * distress + 0.5 * pull - 1.0
                                        + 0.7 * rng.standard_normal(n))
    # An operator signal no built-in factor reads (``auto_pay``, from a stream of its own so
    # every other draw stays as it was): engaged accounts without money trouble sign up for
    # automatic payment; it tells part of what the other signals show only faintly.
    auto_pay = extra.random(n) < _sigmoid(0.2 + 1.5 * engaged - 1.5 * distress)
    return _World(
        rng=rng, churned=churned, churn_days=rng.integers(1, horizon_days + 1, n),
        signals=signals, volatility=volatility,
        competitor_pull=_sigmoid(-0.8 + 0.9 * pull),
        contract_type=contract_type, payment_method=payment_method, auto_pay=auto_pay,
        customer_since_days=customer_since, contract_start_days=start, contract_end_days=end,
        cause=cause)


def _check_mode(mode: str, churn_rate: float | None, horizon_days: int) -> bool:
    """True for the realistic mode; a clear error for a bad mode, rate or horizon."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if churn_rate is not None:
        if mode != "realistic":
            raise ValueError("churn_rate applies to mode='realistic' only (the easy mode "
                             f"always declines {DECLINING_SHARE:.0%} of the accounts)")
        if not 0.0 < float(churn_rate) <= 0.5:
            raise ValueError(f"churn_rate must be above 0 and at most 0.5, got {churn_rate}")
    if isinstance(horizon_days, bool) or not isinstance(horizon_days, (int, np.integer)) \
            or horizon_days < 1:
        raise ValueError(f"horizon_days must be a positive int, got {horizon_days!r}")
    return mode == "realistic"


# --------------------------------------------------------------------------- internals
def _check_args(accounts: Any, as_of: Any, seed: Any, bad_share: float) -> int:
    if isinstance(accounts, bool) or not isinstance(accounts, (int, np.integer)):
        raise TypeError(f"accounts must be an int, got {type(accounts).__name__}")
    if not 1 <= accounts <= MAX_ACCOUNTS:
        raise ValueError(f"accounts must be between 1 and {MAX_ACCOUNTS}, got {accounts}")
    if not isinstance(as_of, dt.date):
        raise TypeError(f"as_of must be a datetime.date, got {type(as_of).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not 0.0 <= float(bad_share) <= 1.0:
        raise ValueError(f"bad_share must be between 0 and 1, got {bad_share}")
    return int(accounts)


def _take(values: pa.Array, positions: np.ndarray) -> pa.Array:
    return pc.take(values, pa.array(np.asarray(positions, dtype=np.int64)))


def _events(rng: np.random.Generator, n: int, base_rate: float, signal_idx: np.ndarray,
            extra_mean: float, draw: Callable[[int, np.ndarray], np.ndarray],
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events over the last 365 days (Poisson base_rate a year for every account) plus, for
    signal_idx, 1 + Poisson(extra_mean) more in the last 90 days. Returns (account positions,
    days before as_of, draw(size, is_extra)), ordered by date then account."""
    base_n = rng.poisson(base_rate, size=n)
    extra_n = 1 + rng.poisson(extra_mean, size=signal_idx.size)
    acct = np.concatenate([np.repeat(np.arange(n), base_n), np.repeat(signal_idx, extra_n)])
    n_base = int(base_n.sum())
    extra = np.zeros(acct.size, dtype=bool)
    extra[n_base:] = True
    days = np.concatenate([rng.integers(1, 366, size=n_base),
                           rng.integers(1, 91, size=acct.size - n_base)])
    values = draw(acct.size, extra)
    order = np.lexsort((acct, -days))  # oldest first, then by account
    return acct[order], days[order], values[order]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow([str(c) for c in frame.columns])
    try:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        for i, field in enumerate(table.schema):
            if pa.types.is_timestamp(field.type):
                table = table.set_column(
                    i, field.name, pc.cast(table.column(i), pa.date32(), safe=False))
        with pa.OSFile(str(path), "wb") as sink:
            sink.write(header.getvalue().encode("utf-8"))
            pacsv.write_csv(table, sink, pacsv.WriteOptions(
                include_header=False, quoting_style="none", batch_size=65_536))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # a value needs quoting (comma, quote, line break) or a column Arrow cannot convert:
        # let pandas write the file (slower; same layout except that whole floats keep ".0")
        frame.to_csv(path, index=False, encoding="utf-8", date_format="%Y-%m-%d", na_rep="",
                     lineterminator="\n")
