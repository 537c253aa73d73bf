"""The order a person reads their tasks in, one definition for every email and list.

Must-do work first (escalations, complaint follow-ups, SLA reviews, urgent actions), by priority;
then the tasks appraised by worklist/worth.py by expected net revenue kept per hour, best first;
tasks without an appraisal (raised before it, or with no conf/effects.yaml) by priority, then the
most revenue at risk. Ties: the earliest deadline, then the oldest task.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def number(value: Any) -> float | None:
    """A stored figure to sort by: missing, unreadable or NaN is None."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def net_per_hour(view: Mapping[str, Any]) -> float | None:
    """Expected net revenue kept per hour of a task view, None when it was not appraised."""
    kept = number(view.get("expected_retained_cny_yearly"))
    hours = number(view.get("effort_hours"))
    if kept is None or hours is None:
        return None
    return kept / max(hours, 1e-6)


def urgency(view: Mapping[str, Any]) -> tuple[Any, ...]:
    """The sort key of a task view (without the deadline and id tie-breaks, which the caller
    adds in its own types)."""
    must = bool(view.get("must_do"))
    worth = net_per_hour(view)
    risk = number(view.get("value_at_risk")) or 0.0
    by_priority = must or worth is None
    return (0 if must else 1, int(view["priority"]) if by_priority else 0,
            -risk if by_priority else -(worth or 0.0), -risk)
