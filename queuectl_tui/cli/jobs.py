"""The operator's commands on jobs: retry, cancel, delete, clear, recover, restart, edit."""

from __future__ import annotations

import os
import sys
import time

import click

from queuectl_tui import engine, present, progress, spec
from queuectl_tui.cli.options import (
    DURATION,
    SECONDS,
    TEXT,
    TIMEOUT,
    WAIT_SECONDS,
    Context,
    confirm,
    json_option,
    pass_ctx,
)
from queuectl_tui.cli.render import emit_json, report
from queuectl_tui.errors import InvalidInput, QueueError
from queuectl_tui.store.models import DEAD, STATES
from queuectl_tui.visible import visible


@click.command()
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@json_option
@pass_ctx
def retry(ctx: Context, job_ids, as_json) -> None:
    """Run failed jobs now; bring dead jobs back from the DLQ."""
    ctx.open()
    jobs = engine.retry_many(list(job_ids))
    report(jobs, as_json)


@click.command()
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@click.option(
    "--wait",
    type=SECONDS,
    default=10.0,
    show_default=True,
    help="How long to wait for a running job's worker to kill it (seconds or 1m).",
)
@json_option
@pass_ctx
def cancel(ctx: Context, job_ids, wait, as_json) -> None:
    """Cancel jobs: waiting ones go to the DLQ; running ones are killed by their worker."""
    ctx.open()
    jobs = engine.cancel_many(list(job_ids))
    deadline = time.monotonic() + wait
    while any(j.state == "processing" for j in jobs) and time.monotonic() < deadline:
        time.sleep(0.05)
        jobs = [engine.get_job(j.id) for j in jobs]
    report(jobs, as_json)
    if any(j.state == "processing" for j in jobs):
        raise QueueError(
            "cancellation requested, but the job is still running "
            "(its worker will kill it when it next checks)"
        )


@click.command()
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@json_option
@pass_ctx
def delete(ctx: Context, job_ids, as_json) -> None:
    """Delete jobs (not running ones) with their attempts and logs."""
    ctx.open()
    count = engine.delete(list(job_ids))
    emit_json({"deleted": count}) if as_json else click.echo(f"deleted {count} job(s)")


@click.command()
@click.option(
    "--state",
    "states",
    type=click.Choice([s for s in STATES if s != "processing"]),
    multiple=True,
    help="Only this state (repeatable; default: all but processing).",
)
@click.option(
    "--older-than",
    "older_than",
    type=WAIT_SECONDS,
    metavar="DURATION",
    help="Only jobs that ended (or, never run, were enqueued) longer ago than this "
    "(7d, 12h); past stats keep them, and jobs others wait on stay.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_ctx
def clear(ctx: Context, states, older_than, yes, as_json) -> None:
    """Delete jobs in bulk (never running ones)."""
    age = "" if older_than is None else f" older than {spec.plain_number(older_than)}s"
    confirm(yes, f"delete every {'/'.join(states) or 'non-running'} job{age}")
    ctx.open()
    wanted = list(states) or list(engine.NOT_RUNNING)
    if older_than is not None:
        from queuectl_tui import retention

        with progress.bar("deleting", retention.count_older_than(older_than, wanted)) as shown:
            count = retention.clear_older_than(older_than, wanted, progress=shown.advance)
    else:
        with progress.bar("deleting", engine.count_jobs(state=wanted)) as shown:
            count = engine.clear(list(states) or None, progress=shown.advance)
    emit_json({"deleted": count}) if as_json else click.echo(f"deleted {count} job(s)")


@click.command()
@json_option
@pass_ctx
def recover(ctx: Context, as_json) -> None:
    """Take back now the jobs of workers that are gone (workers also do this on their own)."""
    ctx.open()
    ids = engine.recover_lost()
    emit_json({"recovered": ids}) if as_json else click.echo(f"recovered {len(ids)} job(s)")


@click.command()
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@json_option
@pass_ctx
def restart(ctx: Context, job_ids, as_json) -> None:
    """Run completed or dead jobs again: back to pending with a fresh retry budget; their
    attempts are kept and numbering continues. All or none (running or waiting jobs: exit 1)."""
    ctx.open()
    jobs = engine.restart(list(job_ids))
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    for job in [] if as_json else jobs:  # a dependency dead or deleted: back in the DLQ
        error = f" ({job.last_error})" if job.state == DEAD else ""
        click.echo(visible(f"{job.id}: {job.state}{error}"))


@click.command()
@click.argument("job_id", type=TEXT)
@click.option("--command", type=TEXT, help="New shell command.")
@click.option("--priority", type=int, help="New priority.")
@click.option("--run-at", help="Run at this ISO-8601 time (local time if no zone).")
@click.option(
    "--delay",
    type=DURATION,
    metavar="DURATION",
    help="Run this long from now: seconds or 90s, 15m, 2h30m, 1d.",
)
@click.option("--max-retries", type=int, help="New retry budget.")
@click.option(
    "--timeout",
    type=TIMEOUT,
    metavar="DURATION|none",
    help="New time limit (seconds or 90s, 15m, 2h30m, 1d); 'none': no limit.",
)
@click.option("--queue", type=TEXT, help="Move to this queue.")
@click.option("--label", type=TEXT, help="New label ('' removes it).")
@json_option
@pass_ctx
def edit(
    ctx: Context,
    job_id,
    command,
    priority,
    run_at,
    delay,
    max_retries,
    timeout,
    queue,
    label,
    as_json,
) -> None:
    """Change a pending or failed job (validated as at enqueue); a running one is refused.

    Without options, opens the job's command in $VISUAL or $EDITOR (as 'pueue edit') and saves
    it if it changed. '--timeout none' and '--label ""' clear those fields.

    \b
      queuectl-tui edit job1 --priority 9 --delay 15m
      queuectl-tui edit job1
    """
    changes = {
        k: v
        for k, v in {
            "command": command,
            "priority": priority,
            "run_at": run_at,
            "delay": delay,
            "max_retries": max_retries,
            "timeout": timeout,
            "queue": queue,
            "label": label,
        }.items()
        if v is not None
    }
    if not changes:
        if not (os.environ.get("VISUAL") or os.environ.get("EDITOR")) and not (
            sys.stdin.isatty() and sys.stdout.isatty()
        ):
            raise InvalidInput(
                "nothing to change: give an option, or set $EDITOR (or run on a "
                "terminal) to edit the command"
            )
        _edit_in_editor(ctx, job_id, as_json)
        return
    spec.normalize(changes, partial=True)  # bad input: exit 2 before the database opens
    ctx.open()
    job = engine.edit(job_id, changes)
    emit_json(present.job_dict(job)) if as_json else click.echo(visible(f"{job.id}: edited"))


def _edit_in_editor(ctx: Context, job_id: str, as_json: bool) -> None:
    """``edit JOB_ID`` alone: the command in an editor; saved (through ``engine.edit``, which
    checks the state again) only if it changed. A job that cannot be edited is refused before
    the editor opens."""
    ctx.open()
    job = engine.get_job(job_id)
    if job.state not in ("pending", "failed"):
        raise QueueError(
            f"job {job_id!r} is {job.state}; only pending or failed jobs can be edited"
        )
    edited = click.edit(job.command + "\n", extension=".sh", require_save=True)
    if edited is None or edited.rstrip("\n") == job.command.rstrip("\n"):
        click.echo(visible(f"{job.id}: not changed"), err=True)
        if as_json:
            emit_json(present.job_dict(job))
        return
    job = engine.edit(job_id, {"command": edited.rstrip("\n")})
    emit_json(present.job_dict(job)) if as_json else click.echo(visible(f"{job.id}: edited"))
