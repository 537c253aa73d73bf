"""Worklist: tasks with an owner and a deadline, stored with their emails in one transaction.

``plan_tasks`` (pure) routes decisions to owners and sets deadlines; ``TaskStore`` is the only
code that writes the database (tasks, history, and the email outbox), used as a context
manager: ``with TaskStore(url) as store: ...``.
"""

from kamflow.worklist.models import OPEN_STATUSES, STATUSES, OutboxEmail, Task, TaskEvent
from kamflow.worklist.plan import Owner, OwnerDirectory, plan_tasks
from kamflow.worklist.store import (
    QueuedEmail,
    RaiseResult,
    RosterChange,
    TaskClosedError,
    TaskStore,
)

__all__ = ["OPEN_STATUSES", "STATUSES", "OutboxEmail", "Owner", "OwnerDirectory", "QueuedEmail",
           "RaiseResult", "RosterChange", "Task", "TaskClosedError", "TaskEvent", "TaskStore",
           "plan_tasks"]
