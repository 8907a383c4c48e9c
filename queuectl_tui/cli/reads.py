"""The commands that read: status, stats, list, show, wait, ps."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from queuectl_tui import engine, paths, present, progress
from queuectl_tui.cli.options import (
    QUIET,
    TEXT,
    WAIT_SECONDS,
    Context,
    checked_queues,
    json_option,
    limit_of,
    pass_ctx,
)
from queuectl_tui.cli.render import (
    emit_json,
    ids_only,
    jobs_table,
    piped,
    print_ended,
    print_job,
    print_ps,
    print_stats,
    print_status,
    ps_tree,
    say_more,
    stats_json,
)
from queuectl_tui.errors import InvalidInput, NotFound
from queuectl_tui.store.models import STATES


@click.command()
@json_option
@pass_ctx
def status(ctx: Context, as_json: bool) -> None:
    """Counts per state, workers alive/busy, how long the oldest due pending job has waited."""
    ctx.open()
    data = engine.stats()
    rows = engine.queue_rows()
    data["paused_all"] = engine.paused_all()
    data["paused_queues"] = [row["name"] for row in rows if row["paused"]]
    data["resumed_queues"] = (
        [row["name"] for row in rows if not row["paused"]] if data["paused_all"] else []
    )
    from queuectl_tui import hooks

    data["hook_failure"] = hooks.last_failure()
    server = paths.is_url(ctx.db_path)  # a file needs no naming; a shared server does
    if server:
        from queuectl_tui.store import describe_target

        data["database"] = {"backend": "postgresql", "url": describe_target(ctx.db_path)}
    if as_json:
        emit_json(data)
        return
    if server:
        click.echo(f"database: {data['database']['url']}")
    print_status(data, piped())


@click.command()
@click.option(
    "--since",
    "since",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Window: attempts finished in the last DURATION (90s, 30m, 1h, 2d).",
)
@click.option("--queue", "queues", multiple=True, type=TEXT, help="Only this queue (repeatable).")
@click.option(
    "--prometheus", is_flag=True, help="Print Prometheus' text format (needs the 'metrics' extra)."
)
@json_option
@pass_ctx
def stats(ctx: Context, since: str, queues, prometheus: bool, as_json: bool) -> None:
    """Execution metrics over a window: completed, failed, dead, throughput, success rate,
    retries, wait and run time percentiles, the oldest due job, the most frequent errors."""
    from queuectl_tui import metrics as figures

    window = figures.parse_duration(since)
    if prometheus:
        if as_json or queues:
            raise InvalidInput(
                "--prometheus takes neither --json nor --queue (it gives every queue)"
            )
        from queuectl_tui import exporter

        exporter.require()
        ctx.open()
        click.echo(exporter.text(window), nl=False)
        return
    ctx.open()
    now = time.time()
    data = figures.execution_stats(now - window, list(queues) or None, now)
    if as_json:
        emit_json(stats_json(data))
        return
    print_stats(data)


@click.command("list")
@click.option(
    "--state",
    type=click.Choice(STATES),
    multiple=True,
    help="Only jobs in this state (repeat for several).",
)
@click.option(
    "--queue", type=TEXT, multiple=True, help="Only jobs in this queue (repeat for several)."
)
@click.option(
    "--search", type=TEXT, help="Only jobs whose id, label, command or error contains this text."
)
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
def list_(ctx: Context, state, queue, search, limit, quiet, as_json) -> None:
    """List jobs, newest first (as the console does). Past --limit, says on stderr how many
    more match. The When column says what a due job waits for (after JOB, paused, limit N/M).

    \b
      queuectl-tui list --state failed --state dead
      queuectl-tui list --state dead -q | xargs queuectl-tui retry
    """
    ctx.open()
    jobs = engine.list_jobs(
        state=state, queue=queue, search=search, limit=limit_of(limit), newest_first=True
    )
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    elif quiet:
        ids_only(job.id for job in jobs)
    else:
        jobs_table(
            jobs, engine.holds(jobs), error_column=bool(set(state) & {"failed", "dead"})
        ).print()
    say_more(more_than_shown(jobs, limit, state=state, queue=queue, search=search))


def more_than_shown(jobs, limit: int, **where) -> int:
    """How many more jobs match than --limit let through (0 when it did not cut)."""
    if limit_of(limit) and len(jobs) == limit:
        return engine.count_jobs(**where) - len(jobs)
    return 0


@click.command()
@click.argument("job_id", type=TEXT)
@json_option
@pass_ctx
def show(ctx: Context, job_id: str, as_json: bool) -> None:
    """Every field and attempt of a job, and why it is where it is."""
    ctx.open()
    job = engine.get_job(job_id)
    attempts = engine.attempts_of(job)
    data = present.job_dict(job, full=True)
    rate = engine.aging_rate()
    data = _with_effective_priority(data, job, rate)
    data["why"] = present.explain(engine.why_facts(job))
    data["queue_paused"] = engine.queue_state(job.queue)["paused"]
    data["dependencies"] = [
        {"id": dep_id, "state": dep_state or "deleted"}
        for dep_id, dep_state in engine.dependencies(job)
    ]
    data["attempt_list"] = [present.attempt_dict(a, engine.log_path(a)) for a in attempts]
    if as_json:
        emit_json(data)
        return
    print_job(data, job, attempts, rate)


def _with_effective_priority(data: dict[str, Any], job, rate: float) -> dict[str, Any]:
    """``effective_priority`` after ``priority``: what a waiting job's claim order goes by
    (priority + priority_aging x minutes due); None for a job that is not waiting."""
    value = (
        round(engine.effective_priority(job, rate=rate), 3)
        if job.state in ("pending", "failed")
        else None
    )
    result = {}
    for key, item in data.items():
        result[key] = item
        if key == "priority":
            result["effective_priority"] = value
    return result


@click.command()
@click.argument("job_ids", nargs=-1, type=TEXT)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    callback=checked_queues,
    help="Every job of this queue, those enqueued meanwhile too (repeatable).",
)
@click.option("--all", "all_jobs", is_flag=True, help="Every job.")
@click.option(
    "--timeout",
    type=WAIT_SECONDS,
    help="Give up after this long (seconds or 90s, 15m, 2h; exit 124), naming the "
    "jobs not finished.",
)
@json_option
@pass_ctx
def wait(ctx: Context, job_ids, queues, all_jobs, timeout, as_json) -> None:
    """Wait until jobs are completed or dead, printing each as it ends.

    Exit 0 if every one completed, 1 if one ended dead (or an id is unknown), 124 if
    --timeout ran out first, 130 on Ctrl+C. Woken by the database's commits, not a fixed
    sleep.
    """
    if all_jobs == bool(job_ids or queues):
        raise InvalidInput("give job ids and/or --queue Q, or --all")
    ctx.open()
    wait_and_exit(list(job_ids), list(queues), timeout, as_json)


def wait_and_exit(
    job_ids: list[str], queues: list[str] | None, timeout: float | None, as_json: bool
) -> None:
    """``wait`` (and ``enqueue --wait``): print each job as it ends; exit 0 when all
    completed, else 1 (124: timeout)."""
    failed = False
    known = []
    for job_id in job_ids:
        try:
            engine.get_job(job_id)
            known.append(job_id)
        except NotFound as exc:
            click.echo(f"error: {exc}", err=True)
            failed = True
    if job_ids and not known and not queues:
        sys.exit(1)
    with progress.bar("waiting", len(known), "ended") as shown:
        failed |= print_ended(
            engine.wait(
                known,
                queues=queues,
                timeout=timeout,
                watching=lambda total: shown.update(total=total),
            ),
            as_json,
            shown,
        )
    sys.exit(1 if failed else 0)


@click.command()
@json_option
@pass_ctx
def ps(ctx: Context, as_json: bool) -> None:
    """The running jobs now, each with its process tree (like ps f).

    CPU % is over each process's lifetime, as ps(1) shows it; RSS is resident memory. Jobs
    running on another host are listed without their processes.
    """
    ctx.open()
    from queuectl_tui.run.monitor import job_trees

    now = time.time()
    trees = job_trees(now=now)
    if as_json:
        emit_json(ps_tree(trees, now))
        return
    print_ps(trees, now)
