"""The input tables kamflow reads, column by column (documented in docs/input-files.md)."""

from __future__ import annotations

from dataclasses import dataclass

INDUSTRIES = ("government", "military", "finance", "tourism", "enterprise", "it",
              "education", "culture", "health")

# DOMAIN.md's segment strategies, by industry.
SEGMENT_BY_INDUSTRY = {
    "government": "leadership", "military": "leadership", "finance": "leadership",
    "tourism": "cost", "enterprise": "cost",
    "it": "price_performance",
    "education": "maintain", "culture": "maintain", "health": "maintain",
}

# Complaint categories that point to a competitor (DOMAIN.md: price, coverage and billing
# disputes are churn factors), and contract types that bind the customer to no term.
COMPETITOR_COMPLAINTS = ("billing", "price", "coverage")
UNCOMMITTED_CONTRACTS = ("month-to-month", "monthly", "none", "no term", "按月", "无合约")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # str | int | float | date | month | flag
    required: bool = True


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    required: bool = True  # a required file must exist; an optional one may be absent

    @property
    def file_name(self) -> str:
        return f"{self.name}.csv"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


TABLES: dict[str, Table] = {t.name: t for t in (
    Table("accounts", (
        Column("account_id", "str"),
        Column("name_zh", "str"),
        Column("name_en", "str", required=False),
        Column("industry", "str"),
        Column("region", "str"),
        Column("account_manager", "str"),
        Column("manager_email", "str"),
        Column("contract_start", "date"),
        Column("contract_end", "date"),
        Column("products_held", "int"),
        Column("new_services", "int", required=False),
        Column("employees", "int", required=False),
        Column("cost_to_serve", "float", required=False),
        Column("last_contact_date", "date", required=False),
        Column("customer_since", "date", required=False),  # the relationship's start
        Column("contract_type", "str", required=False),    # month-to-month, one-year, ...
    )),
    Table("billing", (
        Column("account_id", "str"),
        Column("month", "month"),
        Column("billed", "float"),
        Column("paid", "float"),
    )),
    Table("complaints", (
        Column("complaint_id", "str"),
        Column("account_id", "str"),
        Column("opened_date", "date"),
        Column("category", "str", required=False),
    ), required=False),
    Table("sla_incidents", (
        Column("incident_id", "str"),
        Column("account_id", "str"),
        Column("start_date", "date"),
        Column("outage_hours", "float"),
        Column("sla_breach", "flag"),
    ), required=False),
)}
