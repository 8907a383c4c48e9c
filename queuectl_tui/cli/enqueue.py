"""``enqueue``: one job from the command line, or a stream of specs from a file or standard
input (read line by line, staged in the database, never held whole)."""

from __future__ import annotations

import contextlib
import gc
import itertools
import os
import sys
import time

import click

from queuectl_tui import engine, present, progress, spec
from queuectl_tui.cli.options import (
    DURATION,
    TEXT,
    TIMEOUT,
    Context,
    json_option,
    pass_ctx,
)
from queuectl_tui.cli.render import dead_on_arrival, emit_json, print_added
from queuectl_tui.errors import InvalidInput
from queuectl_tui.store.models import DEAD


@click.command()
@click.argument("spec_arg", metavar="[SPEC]", required=False)
@click.option(
    "-f",
    "--file",
    "file_",
    type=click.File("rb"),
    help="JSON object, array or JSON Lines ('-' = stdin).",
)
@click.option("--id", "job_id", help="Job id (default: generated).")
@click.option("--command", "command", help="Shell command (instead of SPEC).")
@click.option("--priority", type=int, help="Higher runs first (default 0).")
@click.option("--max-retries", type=int, help="Retries after the first run (default: setting).")
@click.option(
    "--timeout",
    type=TIMEOUT,
    metavar="DURATION|none",
    help="Kill the job's process tree after this long: seconds or 90s, 15m, 2h30m, "
    "1d; 'none': no limit (default: the default_timeout setting).",
)
@click.option("--backoff-base", type=float, help="After failure k wait base**k seconds.")
@click.option("--run-at", help="ISO-8601 time to run at (local time if no zone).")
@click.option(
    "--delay",
    type=DURATION,
    metavar="DURATION",
    help="Run this long from now: seconds or 90s, 15m, 2h30m, 1d.",
)
@click.option("--queue", help="Queue name (default 'default').")
@click.option("--label", type=TEXT, help="A tag shown beside the id, found by list --search.")
@click.option(
    "--after",
    "after",
    multiple=True,
    type=TEXT,
    metavar="JOB_ID",
    help="Run only once this job has completed (repeatable).",
)
@click.option(
    "--wait", "wait_", is_flag=True, help="Then wait for the job(s) to end, as 'wait' does."
)
@json_option
@pass_ctx
def enqueue(
    ctx: Context,
    spec_arg,
    file_,
    job_id,
    command,
    priority,
    max_retries,
    timeout,
    backoff_base,
    run_at,
    delay,
    queue,
    label,
    after,
    wait_,
    as_json,
) -> None:
    """Queue a job. SPEC is a JSON object or a plain shell command.

    In a JSON spec, "timeout" and "delay" take seconds or a duration text ("15m"); a spec
    without "timeout" takes the default_timeout setting, and "timeout": null (or "none") means
    no time limit.

    \b
      queuectl-tui enqueue "sleep 5 && echo done"
      queuectl-tui enqueue '{"id":"job1","command":"echo hi","max_retries":2}'
      queuectl-tui enqueue --id nightly --run-at 2030-01-01T02:00:00Z "make backup"
      queuectl-tui enqueue --delay 2h30m --label cleanup "./prune.sh"
      queuectl-tui enqueue --after build --wait "make deploy"
      queuectl-tui enqueue -f jobs.jsonl
    """
    shown = progress.bar("reading", unit="lines", size=_file_size(file_))
    raws, bulk = _read_specs(spec_arg, file_, command, shown)
    overrides = {
        k: v
        for k, v in {
            "id": job_id,
            "command": command,
            "priority": priority,
            "max_retries": max_retries,
            "timeout": timeout,
            "backoff_base": backoff_base,
            "run_at": run_at,
            "delay": delay,
            "queue": queue,
            "label": label,
            "after": list(after) or None,
        }.items()
        if v is not None
    }
    now = time.time()
    specs = _checked(raws, overrides, now)
    if not bulk:  # one job from the command line: checked before the database is opened
        checked = [s for _, s in specs]
        ctx.open()
        jobs = engine.enqueue(checked, now=now)
        emit_json(present.job_dict(jobs[0])) if as_json else click.echo(jobs[0].id)
        dead_on_arrival([(j.id, j.last_error) for j in jobs if j.state == DEAD])
        waited = [j.id for j in jobs]
    else:
        ctx.open()  # a stream is checked as it is staged: in the database's TEMP space
        waited = _enqueue_stream(specs, now, shown, as_json, file_, wait_)
    if wait_:
        from queuectl_tui.cli.reads import wait_and_exit  # the read commands: only to wait

        wait_and_exit(waited, None, None, as_json)


def _checked(raws, overrides: dict, now: float):
    """(where, normalized spec) of each raw spec, the command line's options over it; the
    first bad one raises, naming where it is."""
    for count, (where, raw) in enumerate(raws):
        if count == 1 and ("id" in overrides or "command" in overrides):
            raise InvalidInput("--id and --command apply to a single job, not to a list of specs")
        if "id" in overrides and raw.get("id") is not None:
            raise InvalidInput("give the job id in SPEC or --id, not both")
        merged = {**raw, **overrides} if overrides else raw  # (normalize copies)
        if "delay" in overrides:
            merged.pop("run_at", None)
            merged.pop("scheduled_at", None)
        if "run_at" in overrides:
            merged.pop("delay", None)
            merged.pop("scheduled_at", None)
        try:
            yield where, spec.normalize(merged, now=now)
        except InvalidInput as exc:
            if where:
                raise InvalidInput(f"{where}: {exc}; nothing enqueued") from None
            raise


def _enqueue_stream(
    specs, now: float, shown: progress.Bar, as_json: bool, file_, wait_: bool
) -> list[str]:
    """A stream of specs staged and added in one transaction, its ids (or jobs) printed; the
    ids to wait for (``--wait``), else none."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(_collector_off())
        with shown:  # while the lines are read and added; gone before the ids are printed
            added = stack.enter_context(engine.enqueue_stream(specs, now=now))
        print_added(added, as_json, file_)
        dead_on_arrival(added.dead())
        return list(added.ids()) if wait_ else []


@contextlib.contextmanager
def _collector_off():
    """A stream makes ~10 objects per line and no reference cycle: the cyclic garbage collector
    would look at each of them for nothing (~5% of a bulk enqueue's time); memory stays flat,
    as reference counting frees every line's objects."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _lines(stream, what: str, shown: progress.Bar | None = None):
    """The stream's lines as text; bytes that are not UTF-8 are refused, naming the line.
    ``shown``: a progress bar counting them (on a terminal; the plain loop otherwise)."""
    if shown is not None and shown.drawn:
        yield from _counted_lines(stream, what, shown)
        return
    for number, line in enumerate(stream, 1):
        try:
            yield line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(
                f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start + 1} of line {number})"
            ) from None


def _counted_lines(stream, what: str, shown: progress.Bar):
    """``_lines`` telling the bar every 1,000 lines, then that the jobs are being added."""
    lines = nbytes = 0
    for line in _lines(stream, what):
        lines += 1
        nbytes += len(line)  # characters: near enough to bytes for a bar
        if lines == 1000:
            shown.advance(lines, nbytes)
            lines = nbytes = 0
        yield line
    shown.advance(lines, nbytes)
    shown.update(description="adding to the queue")


def _file_size(file_) -> int | None:
    """The bytes of a regular file given to -f (a pipe's are unknown)."""
    import stat

    try:
        info = os.fstat(file_.fileno())
    except (AttributeError, OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _read_specs(
    spec_arg: str | None, file_, command: str | None, shown: progress.Bar | None = None
):
    """(where, raw spec) pairs, and whether they come from a file or standard input (a stream
    of any length: enqueued through a stage) rather than from the command line."""
    if file_ is not None:
        if spec_arg is not None:
            raise InvalidInput("give SPEC or -f FILE, not both")
        return spec.read_specs(_lines(file_, f"file {file_.name}", shown)), True
    if spec_arg is None and command is None and not sys.stdin.isatty():
        spec_arg = "-"
    if spec_arg == "-":
        lines = _lines(sys.stdin.buffer, "standard input", shown)
        head = []  # up to the first line that is not blank: JSON, or a shell command?
        for line in lines:
            head.append(line)
            if line.strip():
                break
        if "".join(head).lstrip()[:1] in ("{", "["):
            return spec.read_specs(itertools.chain(head, lines)), True
        text = (
            "".join(itertools.chain(head, lines)).replace("\r\n", "\n").replace("\r", "\n").strip()
        )
        return ([("", {"command": text})] if text else spec.read_specs([])), False
    if spec_arg is None:
        if command is None:
            raise InvalidInput("nothing to enqueue: give a SPEC, --command, -f FILE or pipe a spec")
        return [("", {})], False
    if command is not None:
        raise InvalidInput("give SPEC or --command, not both")
    if spec_arg.lstrip().startswith("{"):
        return [("", spec.parse_object(spec_arg))], False
    # "[ -f x ] && …" is a shell command; '[{"command": …}]' is JSON meant as a spec.
    if spec_arg.lstrip().startswith("[") and spec.is_json(spec_arg):
        raise InvalidInput(
            "SPEC is a JSON array, not a job object (a list goes in -f FILE or "
            "on standard input; a shell command that looks like JSON, in --command)"
        )
    return [("", {"command": spec_arg})], False
