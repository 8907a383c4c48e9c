"""``schedule add|list|remove|pause|resume|run``: recurring jobs."""

from __future__ import annotations

import click

from queuectl_tui import present, schedules
from queuectl_tui.cli.options import TEXT, TIMEOUT, Context, json_option, pass_ctx
from queuectl_tui.cli.render import emit_json, print_schedules
from queuectl_tui.visible import visible


@click.group()
def schedule() -> None:
    """Recurring jobs: every DURATION or at cron times, made by the running workers."""


@schedule.command("add")
@click.argument("name", type=TEXT)
@click.argument("command", nargs=-1, required=True, type=TEXT)
@click.option(
    "--cron",
    type=TEXT,
    metavar="EXPR",
    help="Five cron fields: minute hour day-of-month month day-of-week.",
)
@click.option("--every", type=TEXT, metavar="DURATION", help="90s, 15m, 2h30m, 1d (whole seconds).")
@click.option(
    "--tz",
    default="UTC",
    show_default=True,
    type=TEXT,
    metavar="ZONE",
    help="Read --cron in this zone (e.g. Europe/Paris); DST as cron handles it.",
)
@click.option("--queue", type=TEXT, help="Queue of its jobs (default 'default').")
@click.option("--priority", type=int, help="Priority of its jobs (default 0).")
@click.option(
    "--timeout",
    type=TIMEOUT,
    metavar="DURATION|none",
    help="Time limit of each job (default: the setting); 'none': no limit.",
)
@click.option("--max-retries", type=int, help="Retries of each job (default: the setting).")
@click.option(
    "--no-overlap", is_flag=True, help="Skip a due time while the previous job has not finished."
)
@click.option(
    "--catch-up",
    type=click.Choice(schedules.CATCH_UP),
    default="latest",
    show_default=True,
    help="Due times missed while no worker ran: one job (latest), each, or none.",
)
@json_option
@pass_ctx
def schedule_add(
    ctx: Context,
    name,
    command,
    cron,
    every,
    tz,
    queue,
    priority,
    timeout,
    max_retries,
    no_overlap,
    catch_up,
    as_json,
) -> None:
    """Add schedule NAME running COMMAND (quote it, or put -- before it). Each due time makes
    one job, NAME@<due time UTC>, whatever the number of workers; a worker must be running.

    \b
      queuectl-tui schedule add backup --cron '30 3 * * *' --tz Europe/Paris -- tar czf b.tgz .
      queuectl-tui schedule add ping --every 5m --no-overlap 'curl -fsS https://example.org'
    """
    given = {
        "command": " ".join(command),
        "queue": queue,
        "priority": priority,
        "timeout": timeout,
        "max_retries": max_retries,
    }
    job = {k: v for k, v in given.items() if v is not None}
    if timeout is not None and str(timeout).strip().lower() == "none":
        job["timeout"] = None
    schedules.check_name(name)
    ctx.open()
    row = schedules.add(
        name, job, cron=cron, every=every, tz=tz, catch_up=catch_up, no_overlap=no_overlap
    )
    if as_json:
        emit_json(next(r for r in schedules.rows() if r["name"] == name))
        return
    assert row.next_at is not None  # add refuses a rule that never comes due
    click.echo(
        visible(
            f"added schedule {name} ({schedules.Rule.of(row).describe()}); "
            f"next run {schedules.stamp(row.next_at)}"
        )
    )


@schedule.command("list")
@json_option
@pass_ctx
def schedule_list(ctx: Context, as_json) -> None:
    """Every schedule: its rule, next run, last run and its job's state, paused, and the last
    due time that made no job (no-overlap, catch-up) and why."""
    ctx.open()
    rows = schedules.rows()
    if as_json:
        emit_json(rows)
        return
    print_schedules(rows)


@schedule.command("remove")
@click.argument("name", type=TEXT)
@pass_ctx
def schedule_remove(ctx: Context, name) -> None:
    """Delete schedule NAME (the jobs it made stay)."""
    ctx.open()
    schedules.remove(name)
    click.echo(visible(f"removed schedule {name}"))


@schedule.command("pause")
@click.argument("name", type=TEXT)
@pass_ctx
def schedule_pause(ctx: Context, name) -> None:
    """Make no jobs of NAME until resumed (the due times meanwhile are skipped)."""
    ctx.open()
    schedules.pause(name)
    click.echo(visible(f"paused schedule {name}"))


@schedule.command("resume")
@click.argument("name", type=TEXT)
@pass_ctx
def schedule_resume(ctx: Context, name) -> None:
    """Make jobs of NAME again, from its next due time."""
    ctx.open()
    row = schedules.resume(name)
    nxt = "none" if row.next_at is None else schedules.stamp(row.next_at)
    click.echo(visible(f"resumed schedule {name}; next run {nxt}"))


@schedule.command("run")
@click.argument("name", type=TEXT)
@json_option
@pass_ctx
def schedule_run(ctx: Context, name, as_json) -> None:
    """Enqueue one job of NAME now (paused or not), besides its due times."""
    ctx.open()
    job = schedules.run_now(name)
    if as_json:
        emit_json(present.job_dict(job))
    else:
        click.echo(visible(f"enqueued {job.id}"))
