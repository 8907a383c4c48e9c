"""Queues and the dead-letter queue: pause, resume (queues or running jobs), ``queue list``,
``queue limit``, ``dlq list|retry|clear``."""

from __future__ import annotations

import click

from queuectl_tui import engine, present, progress, spec
from queuectl_tui.cli.options import (
    QUEUES,
    QUIET,
    TEXT,
    TIMEOUT,
    Context,
    confirm,
    json_option,
    limit_of,
    pass_ctx,
)
from queuectl_tui.cli.reads import more_than_shown
from queuectl_tui.cli.render import (
    emit_json,
    ids_only,
    jobs_table,
    print_dlq_retried,
    print_paused_jobs,
    print_queues,
    say_more,
)
from queuectl_tui.errors import InvalidInput, NotFound
from queuectl_tui.store.models import DEAD


@click.command()
@click.argument("job_ids", nargs=-1, type=TEXT, metavar="[JOB_ID]...")
@QUEUES
@json_option
@pass_ctx
def pause(ctx: Context, job_ids, queues, as_json) -> None:
    """Workers claim nothing more from these queues; running jobs finish. Survives restarts.

    With JOB_IDs instead: pause those running jobs (SIGSTOP of their processes, on this host).
    A paused job stays processing and keeps its worker; its --timeout keeps counting."""
    ctx.open()
    if job_ids:
        _pause_jobs(job_ids, queues, as_json, resume=False)
        return
    engine.pause(list(queues) or None)
    click.echo(f"paused {'queue(s) ' + ', '.join(queues) if queues else 'every queue'}")


@click.command()
@click.argument("job_ids", nargs=-1, type=TEXT, metavar="[JOB_ID]...")
@QUEUES
@json_option
@pass_ctx
def resume(ctx: Context, job_ids, queues, as_json) -> None:
    """Let workers claim from these queues again.

    With JOB_IDs instead: resume those paused jobs (SIGCONT, on this host)."""
    ctx.open()
    if job_ids:
        _pause_jobs(job_ids, queues, as_json, resume=True)
        return
    engine.resume(list(queues) or None)
    click.echo(f"resumed {'queue(s) ' + ', '.join(queues) if queues else 'every queue'}")


def _pause_jobs(job_ids, queues, as_json: bool, *, resume: bool) -> None:
    """``pause``/``resume`` JOB_ID...: signal running jobs' processes (on this host)."""
    if queues:
        raise InvalidInput("give job ids or --queue, not both")
    from queuectl_tui.run import supervisor

    try:
        jobs = supervisor.pause_jobs(list(job_ids), resume=resume)
    except NotFound as exc:  # `pause gpu` meant the queue: say how to name one
        queues_known = {row["name"] for row in engine.queue_rows()}
        named = [job_id for job_id in job_ids if job_id in queues_known]
        if not named:
            raise
        verb = "resume" if resume else "pause"
        raise NotFound(
            f"{exc} (to {verb} the queue {named[0]}: {verb} --queue {named[0]})"
        ) from None
    if as_json:
        emit_json([{**present.job_dict(j), "paused": j.paused} for j in jobs])
    else:
        print_paused_jobs(jobs, resume)


@click.group("queue")
def queue_group() -> None:
    """Queues: their counts, pause state and running limit."""


@queue_group.command("list")
@json_option
@pass_ctx
def queue_list(ctx: Context, as_json) -> None:
    """Every queue with jobs or settings: counts per state, paused, limit."""
    ctx.open()
    rows = engine.queue_rows()
    if as_json:
        emit_json(rows)
        return
    print_queues(rows)


@queue_group.command("limit", context_settings={"ignore_unknown_options": True})
@click.argument("queue", type=TEXT)
@click.argument("limit", metavar="N|none")  # "-1" is a value to refuse, not an option
@pass_ctx
def queue_limit(ctx: Context, queue, limit) -> None:
    """At most N jobs of QUEUE run at once across all workers ('none': no limit). A queue that
    no job and no worker names yet is set all the same (a warning says so: a typo?)."""
    spec.check_queue(queue)
    if limit.lower() == "none":
        value = None
    elif limit.isascii() and limit.isdigit() and int(limit) < 2**31:  # not "٣", "３" or "²"
        value = int(limit)
    else:
        raise InvalidInput(f"bad limit {limit!r}: expected a whole number >= 0 or 'none'")
    ctx.open()
    if not engine.queue_known(queue):
        click.echo(
            f"warning: queue {queue!r} has no jobs and no worker names it "
            "(the limit is set all the same)",
            err=True,
        )
    engine.set_limit(queue, value)
    click.echo(f"queue {queue}: " + ("no limit" if value is None else f"at most {value} running"))


# --- dlq -------------------------------------------------------------------------------------


@click.group()
def dlq() -> None:
    """The dead-letter queue: jobs that used up their retries, or were cancelled."""


@dlq.command("list")
@click.option(
    "--limit",
    type=click.IntRange(0),
    default=50,
    show_default=True,
    help="At most this many (0: all).",
)
@QUIET
@json_option
@pass_ctx
def dlq_list(ctx: Context, limit, quiet, as_json) -> None:
    """Dead jobs with their last error, newest first. Past --limit, says on stderr how many
    more there are."""
    ctx.open()
    jobs = engine.list_jobs(state=DEAD, limit=limit_of(limit), newest_first=True)
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    elif quiet:
        ids_only(job.id for job in jobs)
    else:
        jobs_table(jobs, engine.holds(jobs), error_column=True).print()
    say_more(more_than_shown(jobs, limit, state=DEAD))


@dlq.command("retry")
@click.argument("job_ids", nargs=-1, type=TEXT)
@click.option("--all", "all_dead", is_flag=True, help="Every job in the DLQ.")
@click.option(
    "--timeout",
    type=TIMEOUT,
    metavar="DURATION|none",
    help="New time limit (seconds or 90s, 15m, 2h30m, 1d); 'none': no limit.",
)
@click.option("--max-retries", type=int, help="New retry budget.")
@json_option
@pass_ctx
def dlq_retry(ctx: Context, job_ids, all_dead, timeout, max_retries, as_json) -> None:
    """Move dead jobs back to pending with a fresh retry budget (attempt numbers continue)."""
    if bool(job_ids) == all_dead:
        raise InvalidInput("give job ids or --all")
    given = {"timeout": timeout, "max_retries": max_retries}
    overrides = spec.normalize({k: v for k, v in given.items() if v is not None}, partial=True)
    ctx.open()
    with progress.bar(
        "moving to pending", engine.count_jobs(state=DEAD) if all_dead else len(job_ids)
    ) as shown:
        jobs = engine.dlq_retry(
            list(job_ids),
            all_dead=all_dead,
            timeout=overrides.get("timeout"),
            max_retries=overrides.get("max_retries"),
            no_timeout="timeout" in overrides and overrides["timeout"] is None,
            progress=shown.advance,
        )
    print_dlq_retried(jobs, as_json, all_dead)


@dlq.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_ctx
def dlq_clear(ctx: Context, yes, as_json) -> None:
    """Delete every job in the DLQ."""
    confirm(yes, "delete every job in the DLQ")
    ctx.open()
    with progress.bar("deleting", engine.count_jobs(state=DEAD)) as shown:
        count = engine.dlq_clear(progress=shown.advance)
    emit_json({"deleted": count}) if as_json else click.echo(f"deleted {count} dead job(s)")
