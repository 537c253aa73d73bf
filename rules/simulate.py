"""Compare what two rule sets decide on the same scored accounts. Pure: no I/O, no dispatch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

KEY = ["account_id", "action"]
EXAMPLES = 3


@dataclass(frozen=True)
class SimulationDiff:
    current_version: str
    proposed_version: str
    accounts: int
    current_decisions: int
    proposed_decisions: int
    added: pd.DataFrame    # decisions only the proposed rule set makes
    removed: pd.DataFrame  # decisions only the current rule set makes
    changed: pd.DataFrame  # same (account, action), different rule, priority or deadline
    # the proposed decisions held out (the control group, rules/holdout.py), by action
    held_out: dict[str, int] = field(default_factory=dict)

    def by_rule(self, which: str) -> list[dict[str, Any]]:
        """Counts per (rule, action, owner) with a few example accounts."""
        frame = getattr(self, which)
        if frame.empty:
            return []
        rows = []
        for (rule_id, action, owner), group in frame.groupby(
                ["rule_id", "action", "owner_role"], sort=True):
            rows.append({"rule": rule_id, "action": action, "owner": owner,
                         "accounts": len(group),
                         "examples": ", ".join(f"{a} {n}" for a, n in zip(
                             group["account_id"].head(EXAMPLES),
                             group["account_name"].head(EXAMPLES), strict=True))})
        return sorted(rows, key=lambda r: -r["accounts"])

    def as_dict(self) -> dict[str, Any]:
        return {"current_version": self.current_version,
                "proposed_version": self.proposed_version, "accounts": self.accounts,
                "current_decisions": self.current_decisions,
                "proposed_decisions": self.proposed_decisions,
                "added": self.by_rule("added"), "removed": self.by_rule("removed"),
                "changed": len(self.changed), "held_out": self.held_out}

    def markdown(self) -> str:
        lines = [f"# Rule set simulation: {self.current_version} → {self.proposed_version}", "",
                 f"{self.accounts:,} accounts; decisions {self.current_decisions:,} → "
                 f"{self.proposed_decisions:,} ({len(self.added):,} added, "
                 f"{len(self.removed):,} removed, {len(self.changed):,} changed rule, priority "
                 "or deadline). Nothing was dispatched.", ""]
        if self.held_out:
            lines += [f"Held out (the control group: no task, no email): "
                      f"{sum(self.held_out.values()):,} decisions ("
                      + ", ".join(f"{a} {n:,}" for a, n in self.held_out.items()) + ").", ""]
        for which in ("added", "removed"):
            rows = self.by_rule(which)
            lines += [f"## {which.capitalize()} ({len(getattr(self, which)):,})", ""]
            if not rows:
                lines += ["none", ""]
                continue
            lines += ["| rule | action | owner | accounts | examples |", "|---|---|---|---:|---|"]
            lines += [f"| {r['rule']} | {r['action']} | {r['owner']} | {r['accounts']:,} | "
                      f"{r['examples']} |" for r in rows]
            lines.append("")
        return "\n".join(lines)


def compare(current: pd.DataFrame, proposed: pd.DataFrame, accounts: int,
            current_version: str, proposed_version: str) -> SimulationDiff:
    merged = current.merge(proposed, on=KEY, how="outer", suffixes=("_current", ""),
                           indicator=True)
    added = proposed.merge(merged.loc[merged["_merge"] == "right_only", KEY], on=KEY)
    removed = current.merge(merged.loc[merged["_merge"] == "left_only", KEY], on=KEY)
    both = merged.loc[merged["_merge"] == "both"]
    differs = ((both["rule_id"] != both["rule_id_current"])
               | (both["priority"] != both["priority_current"])
               | (both["due_in_days"] != both["due_in_days_current"]))
    changed = both.loc[differs, [*KEY, "rule_id_current", "rule_id", "priority_current",
                                 "priority", "due_in_days_current", "due_in_days"]]
    held = proposed.loc[proposed["held_out"].astype(bool), "action"] \
        if "held_out" in proposed else proposed["action"].iloc[:0]
    return SimulationDiff(current_version, proposed_version, accounts, len(current),
                          len(proposed), added.reset_index(drop=True),
                          removed.reset_index(drop=True), changed.reset_index(drop=True),
                          {str(k): int(v) for k, v in held.value_counts().sort_index().items()})
