"""``kamflow housekeeping``: apply the retention policy of conf/housekeeping.yaml (issue 28),
or show what it would do (``--dry-run``), or put an archived month back (``--restore``)."""

import json
from typing import Annotated

import typer

from kamflow.cli.app import Json, Verbose, app, command, settings


@command(app, "housekeeping", help="remove old reports and email bodies, archive old tasks",
         description="Apply conf/housekeeping.yaml: remove each run's reports and quarantine "
                     "folders after keep_days.reports, the bodies of emails sent "
                     "keep_days.email_bodies ago (their outbox rows stay), move tasks closed "
                     "keep_days.closed_tasks ago with their history to the Parquet archive "
                     "(kamflow report still reads it), and compact the revenue history. Safe to "
                     "interrupt and to run again: the next run finishes the job. --dry-run "
                     "prints what would be removed or archived and the space it frees, and "
                     "changes nothing. --restore YYYY-MM puts an archived month of closed "
                     "tasks back in the task store (and keeps it out of later archiving).")
def housekeeping(dry_run: Annotated[bool, typer.Option(
                     "--dry-run", help="print what would be done; change nothing")] = False,
                 restore: Annotated[str | None, typer.Option(
                     "--restore", metavar="YYYY-MM",
                     help="put the tasks archived for this month (of closing) back")] = None,
                 json_: Json = False, verbose: Verbose = False) -> int:
    from kamflow.core.errors import KamflowError
    from kamflow.flows.housekeeping import housekeeping as apply
    from kamflow.flows.housekeeping import measure_space, restore_month
    from kamflow.worklist.archive import check_month

    home = settings()
    if restore is not None:
        try:
            check_month(restore)
        except ValueError as exc:
            raise KamflowError(f"--restore: {exc}") from None
        count = restore_month(home, restore)
        print(json.dumps({"restored": restore, "tasks": count}) if json_
              else f"restored {count} task(s) of {restore} to the task store")
        return 0
    result = apply(home, dry_run=dry_run)
    space = measure_space(home, record=False)
    if json_:
        print(json.dumps({**result.as_dict(), "space": space.as_dict()}, default=str))
        return 0
    if dry_run:
        print("dry run: nothing was changed")
    for line in result.lines():
        print(line)
    for path in (*result.report_folders, *result.quarantine_folders):
        print(f"  {'would remove' if dry_run else 'removed'} {path}")
    for line in space.lines():
        print(line.removeprefix("- "))
    return 0
