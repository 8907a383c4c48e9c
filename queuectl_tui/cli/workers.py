"""``worker start|run|stop|list``: the worker processes of this host."""

from __future__ import annotations

import sys
import time

import click

from queuectl_tui import engine, paths, present
from queuectl_tui.cli.options import (
    QUIET,
    SECONDS,
    Context,
    checked_queues,
    json_option,
    pass_ctx,
)
from queuectl_tui.cli.render import emit_json, ids_only, print_workers
from queuectl_tui.errors import QueueError
from queuectl_tui.visible import visible


@click.group()
def worker() -> None:
    """Start, stop and list worker processes."""


@worker.command("start")
@click.option("--count", "-n", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--foreground", is_flag=True, help="Run here, one line per job, until Ctrl+C.")
@click.option("--burst", is_flag=True, help="Exit when no job is due or due soon.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    callback=checked_queues,
    help="Only these queues (repeatable).",
)
@json_option
@pass_ctx
def worker_start(ctx: Context, count, foreground, burst, queues, as_json) -> None:
    """Start workers: detached (they outlive this shell) unless --foreground."""
    ctx.open()
    try:  # said once here rather than as the error of every attempt
        paths.check_private_dir(paths.logs_dir(ctx.db_path))
    except OSError as exc:
        raise QueueError(f"cannot start workers: {exc.strerror or exc}") from None
    from queuectl_tui.run import supervisor

    if not foreground:
        rows = supervisor.start(ctx.db_path, count, queues=list(queues), burst=burst)
        if as_json:
            emit_json([present.worker_dict(r, engine.worker_alive(r)) for r in rows])
        else:
            for row in rows:
                click.echo(f"started worker {row.id} (pid {row.pid})")
        return
    from queuectl_tui.run.loop import run_worker

    if count == 1:
        sys.exit(run_worker(list(queues), burst=burst, echo=True))
    sys.exit(
        supervisor.run_forked(
            ctx.db_path, count, lambda: run_worker(list(queues), burst=burst, echo=True)
        )
    )


@worker.command("run", hidden=True)
@click.option("--queue", "queues", multiple=True, callback=checked_queues)
@click.option("--burst", is_flag=True)
@click.option("--echo", is_flag=True)
@click.option("--log", type=click.Path(dir_okay=False))
@pass_ctx
def worker_run(ctx: Context, queues, burst, echo, log) -> None:
    """Run one worker in this process (what detached workers execute)."""
    ctx.open()
    from queuectl_tui.run.loop import run_worker

    sys.exit(run_worker(list(queues), burst=burst, echo=echo, log=log))


@worker.command("stop")
@click.argument("worker_ids", nargs=-1, type=int)
@click.option("--force", is_flag=True, help="Kill running jobs now (they are retried later).")
@click.option(
    "--wait",
    type=SECONDS,
    default=10.0,
    show_default=True,
    help="How long to wait for them to exit (seconds or 1m), saying meanwhile which "
    "still run which job.",
)
@json_option
@pass_ctx
def worker_stop(ctx: Context, worker_ids, force, wait, as_json) -> None:
    """Stop this host's workers (all, or the given ids). They finish their job first."""
    ctx.open()
    from queuectl_tui.run import supervisor

    deadline = time.monotonic() + wait

    def waiting(rows: list[tuple[int, str | None]]) -> None:  # on stderr: stdout is the result
        if rows:
            left = max(0.0, deadline - time.monotonic())
            click.echo(visible(present.stop_waiting(rows, left)), err=True)

    result = supervisor.stop(
        force=force, wait=wait, worker_ids=list(worker_ids) or None, waiting=waiting
    )
    if as_json:
        emit_json(result)
    elif lines := present.stop_summary(result, force=force):
        click.echo("\n".join(lines))
    if force and (failure := present.stop_failure(result, wait)):
        raise QueueError(failure)


@worker.command("list")
@QUIET
@json_option
@pass_ctx
def worker_list(ctx: Context, quiet, as_json) -> None:
    """Workers with their process, status and current job."""
    ctx.open()
    from queuectl_tui.store.models import Worker

    now = time.time()
    workers = list(Worker.select().order_by(Worker.id))  # one read: rows and table agree
    if quiet:
        ids_only(str(w.id) for w in workers)
        return
    rows = [present.worker_dict(w, engine.worker_alive(w, now=now), now=now) for w in workers]
    if as_json:
        emit_json(rows)
        return
    print_workers(workers, rows, now)
