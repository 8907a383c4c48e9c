"""The headless command line: every queue operation, for people and scripts.

Never imports textual (only the bare ``queuectl-tui`` on a terminal loads the console). Errors
a user can cause print one line on stderr: exit 2 for bad usage or input, 1 for an operation
that failed (unknown job id, wrong state, unusable database).
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import json
import os
import sys
import time
from typing import Any

import click

from queuectl_tui import (
    __version__,
    engine,
    paths,
    present,
    progress,
    schedules,
    settings,
    spec,
    tabular,
)
from queuectl_tui.errors import InvalidInput, NotFound, QueueError
from queuectl_tui.models import COMPLETED, DEAD, STATES
from queuectl_tui.present import ago, size
from queuectl_tui.visible import visible

COMMAND_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Context:
    """What every command shares (click's ``ctx.obj``): where the database is, opened on
    first use."""

    def __init__(self, db: str | None):
        self.db_path = paths.target(db)  # text: pathlib would cost ~3 ms a start
        self._open = False

    def open(self) -> None:
        if not self._open:
            from queuectl_tui.db import open_db
            open_db(self.db_path, progress=True)
            self._open = True


pass_ctx = click.make_pass_decorator(Context)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _limit(limit: int) -> int | None:
    """--limit: 0 means all, and so does anything beyond what SQLite can count to."""
    return None if limit == 0 or limit >= 2**63 else limit


class _Seconds(click.FloatRange):
    """Seconds or a duration (90s, 15m, 2h30m, 1d: ``spec.parse_seconds``, the one parser of
    every option that takes seconds), in a range."""

    name = "duration"

    def convert(self, value, param, ctx):
        if not isinstance(value, float | int):
            try:
                value = spec.parse_seconds(value)
            except InvalidInput:
                self.fail(f"{value!r} is not a number of seconds or a duration "
                          "(90s, 15m, 2h30m, 1d)", param, ctx)
        return super().convert(value, param, ctx)


SECONDS = _Seconds(0, 86400)
WAIT_SECONDS = _Seconds(0)


class _Duration(click.ParamType):
    """A job's seconds option (``--timeout``, ``--delay``): seconds or a duration, read by
    ``spec.parse_seconds`` (a bad one is named by its option); ``none`` passes through where
    allowed. The range is the spec's, checked with the rest of the job."""

    name = "duration"

    def __init__(self, none: bool = False):
        self.none = none

    def convert(self, value, param, ctx):
        if isinstance(value, float | int) or (self.none and str(value).strip().lower() == "none"):
            return value
        try:
            return spec.parse_seconds(TEXT.convert(value, param, ctx))
        except InvalidInput:
            self.fail(f"{value!r} is not a number of seconds or a duration (90s, 15m, 2h30m, 1d)"
                      + (" or 'none'" if self.none else ""), param, ctx)


DURATION = _Duration()
TIMEOUT = _Duration(none=True)


class _Utf8Text(click.ParamType):
    """Text that can be stored and looked up: an argument that is not UTF-8 reaches Python as
    lone surrogates, which SQLite cannot take (a UnicodeEncodeError deep in the driver)."""

    name = "text"

    def convert(self, value, param, ctx):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:  # the bytes as given (Python keeps them as surrogate escapes)
                shown = repr(value.encode("utf-8", "surrogateescape"))
            except UnicodeEncodeError:
                shown = ascii(value)
            self.fail(f"{shown} is not UTF-8 text", param, ctx)
        return value


TEXT = _Utf8Text()


QUIET = click.option("-q", "--quiet", is_flag=True,
                     help="Only the ids, one a line (for xargs).")


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(
        func
    )


# --- the group -------------------------------------------------------------------------------

@click.group(invoke_without_command=True, context_settings=COMMAND_SETTINGS)
@click.option("--db", metavar="PATH|URL", envvar="QUEUECTL_DB",
              help="Database file (default $QUEUECTL_HOME/queuectl.db, ~/.queuectl/queuectl.db), "
                   "or postgresql://user:password@host:port/dbname.")
@click.option("--no-ui", is_flag=True, help="Never open the console; print the status summary.")
@click.version_option(__version__, prog_name="queuectl-tui")
@click.pass_context
def cli(click_ctx: click.Context, db: str | None, no_ui: bool) -> None:
    """A local background job queue for shell commands, with a terminal console.

    Without a command, opens the console on a terminal (or prints the status with --no-ui
    or when not on a terminal).
    """
    click_ctx.obj = Context(db)
    if click_ctx.invoked_subcommand is None:
        if not no_ui and sys.stdin.isatty() and sys.stdout.isatty():
            # The console opens the database itself: a locked or corrupt one is a message on
            # its screen (it creates a missing one first, as any command would).
            from queuectl_tui.tui.app import run_app  # the only path that loads textual
            run_app(click_ctx.obj.db_path)
        else:
            click_ctx.invoke(status)


# --- enqueue ---------------------------------------------------------------------------------

@cli.command(context_settings=COMMAND_SETTINGS)
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
@click.option("--timeout", type=TIMEOUT, metavar="DURATION|none",
              help="Kill the job's process tree after this long: seconds or 90s, 15m, 2h30m, "
                   "1d; 'none': no limit (default: the default_timeout setting).")
@click.option("--backoff-base", type=float, help="After failure k wait base**k seconds.")
@click.option("--run-at", help="ISO-8601 time to run at (local time if no zone).")
@click.option("--delay", type=DURATION, metavar="DURATION",
              help="Run this long from now: seconds or 90s, 15m, 2h30m, 1d.")
@click.option("--queue", help="Queue name (default 'default').")
@click.option("--label", type=TEXT, help="A tag shown beside the id, found by list --search.")
@click.option("--after", "after", multiple=True, type=TEXT, metavar="JOB_ID",
              help="Run only once this job has completed (repeatable).")
@click.option(
    "--wait", "wait_", is_flag=True, help="Then wait for the job(s) to end, as 'wait' does."
)
@json_option
@pass_ctx
def enqueue(ctx: Context, spec_arg, file_, job_id, command, priority, max_retries, timeout,
            backoff_base, run_at, delay, queue, label, after, wait_, as_json) -> None:
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
    overrides = {k: v for k, v in {
        "id": job_id, "command": command, "priority": priority, "max_retries": max_retries,
        "timeout": timeout, "backoff_base": backoff_base, "run_at": run_at, "delay": delay,
        "queue": queue, "label": label, "after": list(after) or None}.items() if v is not None}
    now = time.time()

    def specs():
        for count, (where, raw) in enumerate(raws):
            if count == 1 and ("id" in overrides or "command" in overrides):
                raise InvalidInput(
                    "--id and --command apply to a single job, not to a list of specs"
                )
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

    if not bulk:  # one job from the command line: checked before the database is opened
        checked = [s for _, s in specs()]
        ctx.open()
        jobs = engine.enqueue(checked, now=now)
        if as_json:
            emit_json(present.job_dict(jobs[0]))
        else:
            click.echo(jobs[0].id)
        _dead_on_arrival([(j.id, j.last_error) for j in jobs if j.state == DEAD])
        if wait_:
            _wait_and_exit([j.id for j in jobs], None, None, as_json)
        return
    ctx.open()  # a stream is checked as it is staged: in the database's TEMP space
    waited: list[str] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(_collector_off())
        with shown:  # while the lines are read and added; gone before the ids are printed
            added = stack.enter_context(engine.enqueue_stream(specs(), now=now))
        _print_added(added, as_json, file_)
        _dead_on_arrival(added.dead())
        if wait_:
            waited = list(added.ids())
    if wait_:
        _wait_and_exit(waited, None, None, as_json)


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


def _dead_on_arrival(rows: list[tuple[str, str]]) -> None:
    """Say which new jobs went straight to the DLQ (stdout keeps only the ids)."""
    for job_id, error in rows:
        click.echo(f"note: job {visible(job_id)} went to the DLQ: {visible(error or '')}", err=True)


def _print_added(added, as_json: bool, file_) -> None:
    """The ids (or jobs, --json) a stream enqueued, in input order, a chunk at a time."""
    if as_json and added.count == 1 and file_ is None:
        emit_json(present.job_dict(next(added.jobs())))
    elif as_json:  # the list json.dumps(indent=2) would print, one job at a time
        for n, job in enumerate(added.jobs()):
            text = json.dumps(present.job_dict(job), indent=2, ensure_ascii=False)
            click.echo(("[\n  " if n == 0 else ",\n  ") + text.replace("\n", "\n  "), nl=False)
        click.echo("\n]")
    else:
        ids = added.ids()
        while chunk := list(itertools.islice(ids, 10_000)):
            click.echo("\n".join(chunk))


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
            raise InvalidInput(f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start + 1} "
                               f"of line {number})") from None


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


def _read_specs(spec_arg: str | None, file_, command: str | None,
                shown: progress.Bar | None = None):
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
        raise InvalidInput("SPEC is a JSON array, not a job object (a list goes in -f FILE or "
                           "on standard input; a shell command that looks like JSON, in --command)")
    return [("", {"command": spec_arg})], False


# --- reading ---------------------------------------------------------------------------------

@cli.command(context_settings=COMMAND_SETTINGS)
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
        from queuectl_tui.db import describe_target
        data["database"] = {"backend": "postgresql", "url": describe_target(ctx.db_path)}
    if as_json:
        emit_json(data)
        return
    if server:
        click.echo(f"database: {data['database']['url']}")
    _print_status(data, piped())


def _print_status(data: dict[str, Any], piped_: bool) -> None:
    """The counts as a table (tab-separated when piped: rich is not even imported), then a line
    each for the workers, the oldest pending job and the paused queues."""
    table = tabular.Table([(name, {"justify": "right"}) for name in (*STATES, "total")],
                          piped=piped_, box=None, pad_edge=False)
    table.add_row(*(data["jobs"][s] for s in STATES), data["total"])
    table.print()
    sys.stdout.write("".join(f"{line}\n" for line in _status_lines(data)))


def _status_lines(data: dict[str, Any]) -> list[str]:
    """The lines under the counts (user text in them shown, never obeyed)."""
    return [f"workers: {data['workers']['alive']} alive, {data['workers']['busy']} busy",
            f"oldest pending: {ago(data['oldest_pending_age'])}"] + (
                [visible(_paused_line(data))] if _paused_line(data) else []) + (
                [visible(_hook_line(data["hook_failure"]))] if _hook_line(
                    data.get("hook_failure")) else [])


#: ``status`` shows the last hook failure for this long (``--json`` always has it).
HOOK_FAILURE_SHOWN = 86400.0


def _hook_line(failure: dict[str, Any] | None) -> str | None:
    """The last hook failure, if recent (None: none)."""
    if not failure or time.time() - failure.get("at", 0) > HOOK_FAILURE_SHOWN:
        return None
    return (f"hook failed: {failure['hook']} for {failure['job']} "
            f"({ago(time.time() - failure['at'])} ago, worker {failure.get('worker')}): "
            f"{failure['why']}")


def _paused_line(data: dict[str, Any]) -> str | None:
    """Which queues workers take nothing from (None: none)."""
    if data.get("paused_all"):
        return "paused: every queue" + (f" but {', '.join(data['resumed_queues'])}"
                                        if data["resumed_queues"] else "")
    return f"paused: {', '.join(data['paused_queues'])}" if data.get("paused_queues") else None


@cli.command(context_settings=COMMAND_SETTINGS)
@click.option("--since", "since", default="1h", show_default=True, metavar="DURATION",
              help="Window: attempts finished in the last DURATION (90s, 30m, 1h, 2d).")
@click.option("--queue", "queues", multiple=True, type=TEXT, help="Only this queue (repeatable).")
@click.option("--prometheus", is_flag=True,
              help="Print Prometheus' text format (needs the 'metrics' extra).")
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
        emit_json(_stats_json(data))
        return
    _print_stats(data)


def _stats_json(data: dict[str, Any]) -> dict[str, Any]:
    """Times of day as ISO-8601 UTC, as in every other --json output."""
    def fig(f: dict[str, Any]) -> dict[str, Any]:
        due = f["oldest_due"]
        return {**f, "oldest_due": due and {**due, "due_at": spec.iso(due["due_at"])}}

    return {"since": spec.iso(data["since"]), "now": spec.iso(data["now"]),
            "window_seconds": data["window_seconds"], "sampled_every": data["sampled_every"],
            "overall": fig(data["overall"]),
            "queues": {name: fig(f) for name, f in data["queues"].items()}}


def _print_stats(data: dict[str, Any]) -> None:
    """Three narrow tables (counts and rates, wait times, run times), then the oldest due job
    and the most frequent errors: readable at 80 columns."""
    say = _say_line
    say(f"window: last {ago(data['window_seconds'])} "
        f"({spec.iso(data['since'])} to {spec.iso(data['now'])})"
        + (f"; percentiles from 1 attempt in {data['sampled_every']}"
           if data["sampled_every"] > 1 else ""))
    rows = [("all queues", data["overall"])] + list(data["queues"].items())
    flat = piped()

    def table(*columns: str) -> tabular.Table:
        return tabular.Table([(name, {"justify": "left" if index == 0 else "right",
                                      "overflow": "fold"}) for index, name in enumerate(columns)],
                             piped=flat, box=None, pad_edge=False, padding=(0, 2, 0, 0))

    counts = table("queue", "completed", "failed", "dead", "per min", "success", "retries/job")
    for name, f in rows:
        counts.add_row(name, f["completed"], f["failed_attempts"], f["dead"],
                       f"{f['throughput_per_min']:.2f}",
                       "-" if f["success_rate"] is None else f"{f['success_rate']:.1%}",
                       "-" if f["retries_per_job"] is None else f"{f['retries_per_job']:.2f}")
    counts.print()
    for key, title in (("wait", "wait (due to started)"), ("run", "run time")):
        times = table(title, "p50", "p95", "p99", "max", "mean")
        for name, f in rows:
            times.add_row(name, *(present.seconds(f[key][p])
                                  for p in ("p50", "p95", "p99", "max", "mean")))
        say("")
        times.print()
    due = data["overall"]["oldest_due"]
    say("")
    say("oldest due: " + (f"{due['id']} in queue {due['queue']}, due for "
                          f"{ago(due['waited'])}" if due else "none"))
    errors = data["overall"]["top_errors"]
    if errors:
        say("most frequent errors (jobs that failed or died in the window):")
        for item in errors:
            say(f"  {item['count']:>6}  {tabular.one_line(item['error'])}")


def _say_line(text: str) -> None:
    """A line of text among tables, user text in it shown, never obeyed."""
    sys.stdout.write(visible(text) + "\n")


def piped() -> bool:
    """True when the output is not a terminal by rich's rules (which rich then writes without
    styles); mirrors rich.console.Console.is_terminal, without importing rich."""
    env = os.environ
    if sys.platform == "win32" or env.get("TTY_COMPATIBLE", "") == "1":
        return False
    if env.get("TTY_COMPATIBLE", "") != "0":
        if env.get("FORCE_COLOR") is not None:
            if env["FORCE_COLOR"] != "":
                return False
        elif _isatty(sys.stdout):
            return False
    return True


def _isatty(stream) -> bool:
    try:
        return bool(getattr(stream, "isatty", None) and stream.isatty())
    except ValueError:  # closed
        return False


def _jobs_table(jobs, *, error_column: bool = False) -> tabular.Table:
    """Jobs as ``list`` and ``dlq list`` show them; a label column when a job has a label; the
    When column says what a due job waits for (``present.when``), read for all rows at once."""
    now = time.time()
    holds = engine.holds(jobs)
    labels = any(job.label for job in jobs)
    names = ["id", *(["label"] if labels else []), "state", "command", "pri", "retries", "when",
             "last error" if error_column else "exit"]
    table = tabular.Table([(name, {"overflow": "fold" if name in ("command", "last error", "exit")
                                   else "ellipsis"}) for name in names], piped=piped())
    for job in jobs:
        last = (
            (job.last_error or "")
            if error_column
            else ("" if job.exit_code is None else str(job.exit_code))
        )
        table.add_row(job.id, *([job.label] if labels else []), present.job_state(job),
                      job.command, job.priority, present.retries(job),
                      present.when(job, now, holds.get(job.seq)), last)
    return table


def _ids_only(ids) -> None:
    """``-q``: one id a line, nothing else (for ``xargs``)."""
    sys.stdout.write("".join(f"{job_id}\n" for job_id in ids))


@cli.command("list", context_settings=COMMAND_SETTINGS)
@click.option("--state", type=click.Choice(STATES), multiple=True,
              help="Only jobs in this state (repeat for several).")
@click.option(
    "--queue", type=TEXT, multiple=True, help="Only jobs in this queue (repeat for several)."
)
@click.option(
    "--search", type=TEXT,
    help="Only jobs whose id, label, command or error contains this text."
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
    jobs = engine.list_jobs(state=state, queue=queue, search=search, limit=_limit(limit),
                            newest_first=True)
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    elif quiet:
        _ids_only(job.id for job in jobs)
    else:
        _jobs_table(jobs, error_column=bool(set(state) & {"failed", "dead"})).print()
    _say_more(jobs, limit, state=state, queue=queue, search=search)


def _say_more(jobs, limit: int, **where) -> None:
    """On stderr, how many more jobs match than --limit let through (stdout stays data)."""
    if _limit(limit) and len(jobs) == limit:
        more = engine.count_jobs(**where) - len(jobs)
        if more > 0:
            click.echo(f"… and {more:,} more (--limit 0 lists them all)", err=True)


@cli.command(context_settings=COMMAND_SETTINGS)
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
    data["why"] = present.explain(job)
    data["queue_paused"] = engine.queue_state(job.queue)["paused"]
    data["dependencies"] = [{"id": dep_id, "state": dep_state or "deleted"}
                            for dep_id, dep_state in engine.dependencies(job)]
    data["attempt_list"] = [present.attempt_dict(a) for a in attempts]
    if as_json:
        emit_json(data)
        return
    if not rate or data["effective_priority"] is None:
        del data["effective_priority"]  # the same as priority, or the job is not waiting
    flat = piped()
    fields = tabular.Table([("field", {"style": "bold"}), ("value", {"overflow": "fold"})],
                           piped=flat, header=False, box=None, padding=(0, 2), pad_edge=False,
                           show_edge=False)
    data["attempts"] = len(attempts)  # every run; the budget's count is on its own row
    for key, value in data.items():
        if key == "dependencies":
            value = ", ".join(f"{d['id']} ({d['state']})" for d in value) or None
        if key == "max_retries":
            key, value = "retry budget", present.budget(job)
        if key == "schedule" and value is None:
            continue  # enqueued by hand
        if key not in ("attempt_list", "output_tail"):
            fields.add_row(key, value)
    fields.print()
    if attempts:
        table = tabular.Table([(name, {"overflow": "fold"}) for name in
                               ("#", "worker", "started", "duration", "exit", "outcome", "error")],
                              piped=flat, title="attempts")
        for a in attempts:
            table.add_row(a.number, a.worker_id, spec.iso(a.started_at),
                          None if a.duration is None else f"{a.duration:.2f}s",
                          a.exit_code, a.outcome or "running", a.error)
        _gap(flat)
        table.print()
        costs = tabular.Table([(name, {"justify": "right"}) for name in
                               ("#", "wall", "cpu", "peak rss", "processes")],
                              piped=flat, title="what each attempt used")
        for a in attempts:
            costs.add_row(a.number, None if a.duration is None else f"{a.duration:.2f}s",
                          None if a.cpu_seconds is None else f"{a.cpu_seconds:.2f}s",
                          size(a.peak_rss_bytes), a.processes)
        _gap(flat)
        costs.print()
    if job.output_tail:
        _gap(flat)
        click.echo("output (tail)" if flat else click.style("output (tail)", bold=True))
        click.echo(visible(job.output_tail.rstrip("\n")))


def _gap(flat: bool) -> None:
    """Piped, a blank line between the tables of one output (each has its header line)."""
    if flat:
        click.echo("")


def _with_effective_priority(data: dict[str, Any], job, rate: float) -> dict[str, Any]:
    """``effective_priority`` after ``priority``: what a waiting job's claim order goes by
    (priority + priority_aging x minutes due); None for a job that is not waiting."""
    value = (round(engine.effective_priority(job, rate=rate), 3)
             if job.state in ("pending", "failed") else None)
    result = {}
    for key, item in data.items():
        result[key] = item
        if key == "priority":
            result["effective_priority"] = value
    return result


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_id", type=TEXT)
@click.option("--attempt", "number", type=int, help="Attempt number (default: the latest).")
@click.option(
    "--follow",
    "-f",
    "-F",
    is_flag=True,
    help="Keep printing until the job is completed or dead (waits for it to start, "
    "follows its retries; exits as 'wait'). With --attempt: while that attempt runs.",
)
@pass_ctx
def logs(ctx: Context, job_id: str, number: int | None, follow: bool) -> None:
    """Print the output of a job's attempt."""
    ctx.open()
    job = engine.get_job(job_id)
    attempts = engine.attempts_of(job)
    write = _log_writer()
    if follow and number is None:
        _follow_job(job, attempts[-1].number if attempts else 1, write)
        return
    if not attempts:
        raise QueueError(f"job {job_id!r} has not run yet ({present.explain(job)})")
    chosen = (
        attempts[-1] if number is None else next((a for a in attempts if a.number == number), None)
    )
    if chosen is None:
        raise NotFound(f"job {job_id!r} has no attempt {number} (its attempts are numbered "
                       f"{attempts[0].number} to {attempts[-1].number})")
    path = engine.log_path(chosen)
    # The job keeps the output of the attempt that ended last (a later one may be running).
    last = all(a.finished_at is None for a in attempts if a.number > chosen.number)
    elsewhere = engine.log_elsewhere(job, chosen, last=last)
    if elsewhere is not None:
        where, tail = elsewhere
        if chosen.finished_at is None:
            if not follow:
                raise QueueError(f"{where}; it is still running there: its last output reaches "
                                 "the database when it ends (logs -f waits for that)")
            click.echo(f"{where}; waiting for it to end, to print its last output kept in the "
                       "database", err=True)
            for _ in engine.changes(fallback=0.5):
                done, tail = engine.kept_output(job, chosen)
                if done:
                    break
        elif tail is not None:
            click.echo(f"{where}; its last output, kept in the database:", err=True)
        if tail is None:
            raise QueueError(f"{where}; no output of it is kept in the database (only the "
                             "latest attempt's last 4 KB is)")
        write(tail.encode("utf-8", "replace"))
        sys.stdout.buffer.flush()
        return
    if chosen.log_dropped is not None:
        why = (f"the log of attempt {chosen.number} was dropped "
               f"{ago(time.time() - chosen.log_dropped)} ago: the logs directory was past its "
               "size cap (max_logs_total)")
        done, tail = engine.kept_output(job, chosen)
        if not done or tail is None:
            raise QueueError(f"{why}; no output of it is kept in the database (only the latest "
                             "attempt's last 4 KB is)")
        click.echo(f"{why}; its last output, kept in the database:", err=True)
        write(tail.encode("utf-8", "replace"))
        sys.stdout.buffer.flush()
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the with below, once it is open)
    except OSError:
        raise QueueError(f"the log of attempt {chosen.number} is gone ({path})") from None
    from queuectl_tui.models import Attempt
    with handle:
        while True:
            done = not follow or Attempt.get_by_id(chosen.seq).finished_at is not None
            _pump(handle, write)  # after the check: an attempt's output is written before it ends
            if done:
                break
            time.sleep(0.2)


def _log_writer():
    """Writes log bytes to stdout: as they are when piped; on a terminal, escape sequences are
    shown, not obeyed (a person reads it)."""
    out = sys.stdout.buffer
    if not sys.stdout.isatty():
        return out.write
    import codecs
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    return lambda chunk: out.write(visible(decoder.decode(chunk)).encode("utf-8"))


def _pump(handle, write) -> bool:
    """Copy what the log holds beyond what was read; True if there was anything."""
    got = False
    while chunk := handle.read(65536):
        write(chunk)
        got = True
    sys.stdout.buffer.flush()
    return got


def _follow_job(job, number: int, write) -> None:
    """Print attempt ``number`` of the job and every later one as they run, until the job is
    completed (exit 0) or dead (exit 1). Woken by the database's commits, as ``wait`` is, and
    while an attempt runs every 0.1 s for its log file's growth (a job still waiting has no
    log: once a second, as ``wait``). An attempt run on another host (its log is there)
    is followed in the database: where its log is, then, when it ends, its last output."""
    from queuectl_tui.models import Attempt
    attempt = handle = remote = None
    try:
        # The fallback reads ``attempt`` as it is at each wait (late binding wanted).
        for _ in engine.changes(fallback=lambda: 1.0 if attempt is None else 0.1):  # noqa: B023
            # Before the logs: an end read here has all its output written already. One light
            # read per wake-up (every commit wakes it, idle workers' heartbeats too).
            current = engine.follow_look(job, number)
            looked = number
            while True:
                if attempt is None:
                    if current is None or (number == looked and current.attempt_seq is None):
                        break  # no attempt to follow yet
                    attempt = (
                        Attempt.select()
                        .where(Attempt.job == job.seq, Attempt.number >= number)
                        .order_by(Attempt.number)
                        .first()
                    )
                    if attempt is None:
                        break
                    number = attempt.number
                    if number > 1:
                        click.echo(f"--- attempt {number} ---", err=True)
                finished = Attempt.get_by_id(attempt.seq).finished_at is not None  # before reading
                if handle is None and remote is None:
                    elsewhere = engine.log_elsewhere(job, attempt, last=False)
                    if elsewhere is not None:
                        remote = elsewhere[0]
                        click.echo(f"{remote}; its last output is printed when it ends, from "
                                   "the database", err=True)
                if handle is None and remote is None:
                    try:
                        handle = open(engine.log_path(attempt), "rb")  # noqa: SIM115 (kept open across polls)
                    except (OSError, TypeError):  # not there yet (or none: TypeError)
                        handle = None
                if handle:
                    _pump(handle, write)
                if not finished:
                    break
                if handle:
                    handle.close()
                if remote is not None:
                    tail = engine.kept_output(job, attempt)[1]
                    if tail is None:
                        click.echo(f"(no output of attempt {number} is kept in the database)",
                                   err=True)
                    else:
                        write(tail.encode("utf-8", "replace"))
                        sys.stdout.buffer.flush()
                attempt = handle = remote = None
                number += 1
            if current is None:
                raise QueueError(f"job {job.id!r} was deleted")
            if current.state in (COMPLETED, DEAD) and attempt is None:
                if current.state == DEAD:
                    raise QueueError(f"job {job.id!r} is dead: {current.last_error}")
                return
    finally:
        if handle:
            handle.close()


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, type=TEXT)
@click.option(
    "--queue",
    "queues",
    multiple=True,
    callback=lambda c, p, v: [spec.check_queue(q) for q in v],
    help="Every job of this queue, those enqueued meanwhile too (repeatable).",
)
@click.option("--all", "all_jobs", is_flag=True, help="Every job.")
@click.option("--timeout", type=WAIT_SECONDS,
              help="Give up after this long (seconds or 90s, 15m, 2h; exit 124), naming the "
                   "jobs not finished.")
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
    _wait_and_exit(list(job_ids), list(queues), timeout, as_json)


def _wait_and_exit(job_ids: list[str], queues: list[str] | None, timeout: float | None,
                   as_json: bool) -> None:
    """``wait``: print each job as it ends; exit 0 when all completed, else 1 (124: timeout)."""
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
        failed |= _print_ended(engine.wait(known, queues=queues, timeout=timeout,
                                           watching=lambda total: shown.update(total=total)),
                               as_json, shown)
    sys.exit(1 if failed else 0)


def _print_ended(ended, as_json: bool, shown: progress.Bar) -> bool:
    """A line per job as it ends; True if one did not complete."""
    failed = False
    for job in ended:
        shown.advance()
        failed |= job.state != COMPLETED
        if as_json:
            click.echo(json.dumps({"id": job.id, "state": job.state, "exit_code": job.exit_code,
                                   "last_error": job.last_error}, ensure_ascii=False))
        else:
            error = f" ({job.last_error})" if job.state == DEAD and job.last_error else ""
            click.echo(visible(f"{job.id}: {job.state}{error}"))
    return failed


@cli.command(context_settings=COMMAND_SETTINGS)
@json_option
@pass_ctx
def ps(ctx: Context, as_json: bool) -> None:
    """The running jobs now, each with its process tree (like ps f).

    CPU % is over each process's lifetime, as ps(1) shows it; RSS is resident memory. Jobs
    running on another host are listed without their processes.
    """
    ctx.open()
    from queuectl_tui.monitor import job_trees
    now = time.time()
    trees = job_trees(now=now)
    if as_json:
        emit_json(ps_tree(trees, now))
        return
    if not trees:
        click.echo("no job is running")
        return
    lines = []
    for t in trees:
        lines.append(f"job {t.id}  attempt {t.attempt}  worker {t.worker_id or '-'}  "
                     f"running {ago(t.runtime(now))}{'  paused' if t.paused else ''}  "
                     f"pid {t.pid or '-'}")
        if not t.local:
            lines.append(f"  on host {t.host}: its processes cannot be read from here")
        elif not t.processes:
            lines.append("  (no process: starting, or just ended)")
        else:
            lines.append(f"  {'PID':>7} {'CPU%':>6} {'RSS':>7}  {'STATE':<10} COMMAND")
            for p in t.processes:
                branch = "    " * (p.depth - 1) + "\\_ " if p.depth else ""
                lines.append(f"  {p.pid:>7} {p.cpu_percent or 0.0:>6.1f} {size(p.rss):>7}  "
                             f"{p.state:<10} {branch}{p.command.replace(chr(10), ' ')}")
        lines.append("")
    click.echo(visible("\n".join(lines).rstrip("\n")))  # commands are shown, never obeyed


def ps_tree(trees, now: float) -> list[dict]:
    return [{"id": t.id, "worker_id": t.worker_id, "host": t.host, "attempt": t.attempt,
             "started_at": spec.iso(t.started_at), "runtime": round(t.runtime(now), 3),
             "pid": t.pid, "local": t.local, "paused": t.paused,
             "processes": [{"pid": p.pid, "ppid": p.ppid, "depth": p.depth, "command": p.command,
                            "cpu_percent": round(p.cpu_percent or 0.0, 1), "rss_bytes": p.rss,
                            "state": p.state} for p in t.processes]}
            for t in trees]


# --- operator actions ------------------------------------------------------------------------

@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@json_option
@pass_ctx
def retry(ctx: Context, job_ids, as_json) -> None:
    """Run failed jobs now; bring dead jobs back from the DLQ."""
    ctx.open()
    jobs = engine.retry_many(list(job_ids))
    _report(jobs, as_json, "retrying")


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@click.option("--wait", type=SECONDS, default=10.0, show_default=True,
              help="How long to wait for a running job's worker to kill it (seconds or 1m).")
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
    _report(jobs, as_json, "cancelled")
    if any(j.state == "processing" for j in jobs):
        raise QueueError("cancellation requested, but the job is still running "
                         "(its worker will kill it when it next checks)")


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, required=True, type=TEXT)
@json_option
@pass_ctx
def delete(ctx: Context, job_ids, as_json) -> None:
    """Delete jobs (not running ones) with their attempts and logs."""
    ctx.open()
    count = engine.delete(list(job_ids))
    emit_json({"deleted": count}) if as_json else click.echo(f"deleted {count} job(s)")


@cli.command(context_settings=COMMAND_SETTINGS)
@click.option("--state", "states", type=click.Choice([s for s in STATES if s != "processing"]),
              multiple=True, help="Only this state (repeatable; default: all but processing).")
@click.option("--older-than", "older_than", type=WAIT_SECONDS, metavar="DURATION",
              help="Only jobs that ended (or, never run, were enqueued) longer ago than this "
                   "(7d, 12h); past stats keep them, and jobs others wait on stay.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_ctx
def clear(ctx: Context, states, older_than, yes, as_json) -> None:
    """Delete jobs in bulk (never running ones)."""
    age = "" if older_than is None else f" older than {spec.plain_number(older_than)}s"
    _confirm(yes, f"delete every {'/'.join(states) or 'non-running'} job{age}")
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


@cli.command(context_settings=COMMAND_SETTINGS)
@json_option
@pass_ctx
def recover(ctx: Context, as_json) -> None:
    """Take back now the jobs of workers that are gone (workers also do this on their own)."""
    ctx.open()
    ids = engine.recover_lost()
    emit_json({"recovered": ids}) if as_json else click.echo(f"recovered {len(ids)} job(s)")


@cli.command(context_settings=COMMAND_SETTINGS)
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


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_id", type=TEXT)
@click.option("--command", type=TEXT, help="New shell command.")
@click.option("--priority", type=int, help="New priority.")
@click.option("--run-at", help="Run at this ISO-8601 time (local time if no zone).")
@click.option("--delay", type=DURATION, metavar="DURATION",
              help="Run this long from now: seconds or 90s, 15m, 2h30m, 1d.")
@click.option("--max-retries", type=int, help="New retry budget.")
@click.option("--timeout", type=TIMEOUT, metavar="DURATION|none",
              help="New time limit (seconds or 90s, 15m, 2h30m, 1d); 'none': no limit.")
@click.option("--queue", type=TEXT, help="Move to this queue.")
@click.option("--label", type=TEXT, help="New label ('' removes it).")
@json_option
@pass_ctx
def edit(ctx: Context, job_id, command, priority, run_at, delay, max_retries, timeout, queue,
         label, as_json) -> None:
    """Change a pending or failed job (validated as at enqueue); a running one is refused.

    Without options, opens the job's command in $VISUAL or $EDITOR (as 'pueue edit') and saves
    it if it changed. '--timeout none' and '--label ""' clear those fields.

    \b
      queuectl-tui edit job1 --priority 9 --delay 15m
      queuectl-tui edit job1
    """
    changes = {k: v for k, v in {"command": command, "priority": priority, "run_at": run_at,
                                 "delay": delay, "max_retries": max_retries, "timeout": timeout,
                                 "queue": queue, "label": label}.items() if v is not None}
    if not changes:
        if not (os.environ.get("VISUAL") or os.environ.get("EDITOR")) and not (
                sys.stdin.isatty() and sys.stdout.isatty()):
            raise InvalidInput("nothing to change: give an option, or set $EDITOR (or run on a "
                               "terminal) to edit the command")
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
        raise QueueError(f"job {job_id!r} is {job.state}; only pending or failed jobs can be "
                         "edited")
    edited = click.edit(job.command + "\n", extension=".sh", require_save=True)
    if edited is None or edited.rstrip("\n") == job.command.rstrip("\n"):
        click.echo(visible(f"{job.id}: not changed"), err=True)
        if as_json:
            emit_json(present.job_dict(job))
        return
    job = engine.edit(job_id, {"command": edited.rstrip("\n")})
    emit_json(present.job_dict(job)) if as_json else click.echo(visible(f"{job.id}: edited"))


_QUEUES = click.option("--queue", "queues", multiple=True,
                       callback=lambda c, p, v: [spec.check_queue(q) for q in v],
                       help="This queue (repeatable; default: every queue, new ones too).")


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, type=TEXT, metavar="[JOB_ID]...")
@_QUEUES
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


@cli.command(context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, type=TEXT, metavar="[JOB_ID]...")
@_QUEUES
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
    if queues:
        raise InvalidInput("give job ids or --queue, not both")
    from queuectl_tui import supervisor
    try:
        jobs = supervisor.pause_jobs(list(job_ids), resume=resume)
    except NotFound as exc:  # `pause gpu` meant the queue: say how to name one
        queues_known = {row["name"] for row in engine.queue_rows()}
        named = [job_id for job_id in job_ids if job_id in queues_known]
        if not named:
            raise
        verb = "resume" if resume else "pause"
        raise NotFound(f"{exc} (to {verb} the queue {named[0]}: "
                       f"{verb} --queue {named[0]})") from None
    if as_json:
        emit_json([{**present.job_dict(j), "paused": j.paused} for j in jobs])
        return
    for job in jobs:
        if resume and not job.paused:  # running on, or already ended
            click.echo(visible(f"resumed job {job.id}"))
        elif job.state != "processing":
            click.echo(visible(f"{job.id}: {job.state} (it ended meanwhile)"))
        elif job.paused and not resume:
            click.echo(visible(f"paused job {job.id}"))
        else:
            click.echo(visible(f"{job.id}: signalled; its worker has not noted it yet"))


@cli.group("queue", context_settings=COMMAND_SETTINGS)
def queue_group() -> None:
    """Queues: their counts, pause state and running limit."""


@queue_group.command("list", context_settings=COMMAND_SETTINGS)
@json_option
@pass_ctx
def queue_list(ctx: Context, as_json) -> None:
    """Every queue with jobs or settings: counts per state, paused, limit."""
    ctx.open()
    rows = engine.queue_rows()
    if as_json:
        emit_json(rows)
        return
    # The states in the order of status and the console; "none" as `queue limit Q none` says.
    columns = ("queue", *STATES, "paused", "limit")
    table = tabular.Table([(name, {"justify": "left" if name == "queue" else "right"})
                           for name in columns], piped=piped())
    for r in rows:
        table.add_row(r["name"], *(r["jobs"][state] for state in STATES),
                      "yes" if r["paused"] else "no", "none" if r["limit"] is None else r["limit"])
    table.print()


@queue_group.command("limit", context_settings={**COMMAND_SETTINGS,
                                                 "ignore_unknown_options": True})
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
        click.echo(f"warning: queue {queue!r} has no jobs and no worker names it "
                   "(the limit is set all the same)", err=True)
    engine.set_limit(queue, value)
    click.echo(f"queue {queue}: " + ("no limit" if value is None else f"at most {value} running"))


def _confirm(yes: bool, what: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"refusing to {what} without --yes")
    if not click.confirm(f"{what[0].upper()}{what[1:]}?"):
        raise click.exceptions.Exit(1)


def _report(jobs, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    else:
        for job in jobs:
            click.echo(f"{job.id}: {job.state}")


# --- dlq -------------------------------------------------------------------------------------

@cli.group(context_settings=COMMAND_SETTINGS)
def dlq() -> None:
    """The dead-letter queue: jobs that used up their retries, or were cancelled."""


@dlq.command("list", context_settings=COMMAND_SETTINGS)
@click.option("--limit", type=click.IntRange(0), default=50, show_default=True,
              help="At most this many (0: all).")
@QUIET
@json_option
@pass_ctx
def dlq_list(ctx: Context, limit, quiet, as_json) -> None:
    """Dead jobs with their last error, newest first. Past --limit, says on stderr how many
    more there are."""
    ctx.open()
    jobs = engine.list_jobs(state=DEAD, limit=_limit(limit), newest_first=True)
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    elif quiet:
        _ids_only(job.id for job in jobs)
    else:
        _jobs_table(jobs, error_column=True).print()
    _say_more(jobs, limit, state=DEAD)


@dlq.command("retry", context_settings=COMMAND_SETTINGS)
@click.argument("job_ids", nargs=-1, type=TEXT)
@click.option("--all", "all_dead", is_flag=True, help="Every job in the DLQ.")
@click.option("--timeout", type=TIMEOUT, metavar="DURATION|none",
              help="New time limit (seconds or 90s, 15m, 2h30m, 1d); 'none': no limit.")
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
    with progress.bar("moving to pending", engine.count_jobs(state=DEAD) if all_dead
                      else len(job_ids)) as shown:
        jobs = engine.dlq_retry(list(job_ids), all_dead=all_dead,
                                timeout=overrides.get("timeout"),
                                max_retries=overrides.get("max_retries"),
                                no_timeout="timeout" in overrides and overrides["timeout"] is None,
                                progress=shown.advance)
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    else:
        click.echo(f"{len(jobs)} dead job(s) back to pending" if all_dead
                   else "\n".join(f"{j.id}: {j.state}" for j in jobs))


@dlq.command("clear", context_settings=COMMAND_SETTINGS)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@pass_ctx
def dlq_clear(ctx: Context, yes, as_json) -> None:
    """Delete every job in the DLQ."""
    _confirm(yes, "delete every job in the DLQ")
    ctx.open()
    with progress.bar("deleting", engine.count_jobs(state=DEAD)) as shown:
        count = engine.dlq_clear(progress=shown.advance)
    emit_json({"deleted": count}) if as_json else click.echo(f"deleted {count} dead job(s)")


# --- schedules -------------------------------------------------------------------------------

@cli.group(context_settings=COMMAND_SETTINGS)
def schedule() -> None:
    """Recurring jobs: every DURATION or at cron times, made by the running workers."""


@schedule.command("add", context_settings=COMMAND_SETTINGS)
@click.argument("name", type=TEXT)
@click.argument("command", nargs=-1, required=True, type=TEXT)
@click.option("--cron", type=TEXT, metavar="EXPR",
              help="Five cron fields: minute hour day-of-month month day-of-week.")
@click.option("--every", type=TEXT, metavar="DURATION", help="90s, 15m, 2h30m, 1d (whole seconds).")
@click.option("--tz", default="UTC", show_default=True, type=TEXT, metavar="ZONE",
              help="Read --cron in this zone (e.g. Europe/Paris); DST as cron handles it.")
@click.option("--queue", type=TEXT, help="Queue of its jobs (default 'default').")
@click.option("--priority", type=int, help="Priority of its jobs (default 0).")
@click.option("--timeout", type=TIMEOUT, metavar="DURATION|none",
              help="Time limit of each job (default: the setting); 'none': no limit.")
@click.option("--max-retries", type=int, help="Retries of each job (default: the setting).")
@click.option("--no-overlap", is_flag=True,
              help="Skip a due time while the previous job has not finished.")
@click.option("--catch-up", type=click.Choice(schedules.CATCH_UP), default="latest",
              show_default=True,
              help="Due times missed while no worker ran: one job (latest), each, or none.")
@json_option
@pass_ctx
def schedule_add(ctx: Context, name, command, cron, every, tz, queue, priority, timeout,
                 max_retries, no_overlap, catch_up, as_json) -> None:
    """Add schedule NAME running COMMAND (quote it, or put -- before it). Each due time makes
    one job, NAME@<due time UTC>, whatever the number of workers; a worker must be running.

    \b
      queuectl-tui schedule add backup --cron '30 3 * * *' --tz Europe/Paris -- tar czf b.tgz .
      queuectl-tui schedule add ping --every 5m --no-overlap 'curl -fsS https://example.org'
    """
    given = {"command": " ".join(command), "queue": queue, "priority": priority,
             "timeout": timeout, "max_retries": max_retries}
    job = {k: v for k, v in given.items() if v is not None}
    if timeout is not None and str(timeout).strip().lower() == "none":
        job["timeout"] = None
    schedules.check_name(name)
    ctx.open()
    row = schedules.add(name, job, cron=cron, every=every, tz=tz, catch_up=catch_up,
                        no_overlap=no_overlap)
    if as_json:
        emit_json(next(r for r in schedules.rows() if r["name"] == name))
        return
    click.echo(visible(f"added schedule {name} ({schedules.Rule.of(row).describe()}); "
                       f"next run {schedules.stamp(row.next_at)}"))


@schedule.command("list", context_settings=COMMAND_SETTINGS)
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
    table = tabular.Table(["name", "rule", "next run", "last run", "last job", "state",
                           "paused", "skipped"], piped=piped())
    for r in rows:
        table.add_row(r["name"], r["rule"], _second(r["next_run"]), _second(r["last_run"]),
                      r["last_job"], r["last_state"] or ("deleted" if r["last_job"] else None),
                      "yes" if r["paused"] else "no",
                      f"{_second(r['skipped_at'])}: {r['skipped']}" if r["skipped"] else None)
    table.print()


def _second(iso: str | None) -> str | None:
    """2026-12-06T03:00:00.000Z -> 2026-12-06T03:00:00Z (due times are whole seconds)."""
    return iso.replace(".000Z", "Z") if iso else iso


@schedule.command("remove", context_settings=COMMAND_SETTINGS)
@click.argument("name", type=TEXT)
@pass_ctx
def schedule_remove(ctx: Context, name) -> None:
    """Delete schedule NAME (the jobs it made stay)."""
    ctx.open()
    schedules.remove(name)
    click.echo(visible(f"removed schedule {name}"))


@schedule.command("pause", context_settings=COMMAND_SETTINGS)
@click.argument("name", type=TEXT)
@pass_ctx
def schedule_pause(ctx: Context, name) -> None:
    """Make no jobs of NAME until resumed (the due times meanwhile are skipped)."""
    ctx.open()
    schedules.pause(name)
    click.echo(visible(f"paused schedule {name}"))


@schedule.command("resume", context_settings=COMMAND_SETTINGS)
@click.argument("name", type=TEXT)
@pass_ctx
def schedule_resume(ctx: Context, name) -> None:
    """Make jobs of NAME again, from its next due time."""
    ctx.open()
    row = schedules.resume(name)
    nxt = "none" if row.next_at is None else schedules.stamp(row.next_at)
    click.echo(visible(f"resumed schedule {name}; next run {nxt}"))


@schedule.command("run", context_settings=COMMAND_SETTINGS)
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


# --- workers ---------------------------------------------------------------------------------

@cli.group(context_settings=COMMAND_SETTINGS)
def worker() -> None:
    """Start, stop and list worker processes."""


@worker.command("start", context_settings=COMMAND_SETTINGS)
@click.option("--count", "-n", type=click.IntRange(1, 64), default=1, show_default=True)
@click.option("--foreground", is_flag=True, help="Run here, one line per job, until Ctrl+C.")
@click.option("--burst", is_flag=True, help="Exit when no job is due or due soon.")
@click.option(
    "--queue",
    "queues",
    multiple=True,
    callback=lambda c, p, v: [spec.check_queue(q) for q in v],
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
    from queuectl_tui import supervisor
    if not foreground:
        rows = supervisor.start(ctx.db_path, count, queues=list(queues), burst=burst)
        if as_json:
            emit_json([present.worker_dict(r) for r in rows])
        else:
            for row in rows:
                click.echo(f"started worker {row.id} (pid {row.pid})")
        return
    from queuectl_tui.worker import run_worker
    if count == 1:
        sys.exit(run_worker(list(queues), burst=burst, echo=True))
    sys.exit(supervisor.run_forked(ctx.db_path, count, lambda: run_worker(
        list(queues), burst=burst, echo=True)))


@worker.command("run", hidden=True)
@click.option(
    "--queue", "queues", multiple=True, callback=lambda c, p, v: [spec.check_queue(q) for q in v]
)
@click.option("--burst", is_flag=True)
@click.option("--echo", is_flag=True)
@click.option("--log", type=click.Path(dir_okay=False))
@pass_ctx
def worker_run(ctx: Context, queues, burst, echo, log) -> None:
    """Run one worker in this process (what detached workers execute)."""
    ctx.open()
    from queuectl_tui.worker import run_worker
    sys.exit(run_worker(list(queues), burst=burst, echo=echo, log=log))


@worker.command("stop", context_settings=COMMAND_SETTINGS)
@click.argument("worker_ids", nargs=-1, type=int)
@click.option("--force", is_flag=True, help="Kill running jobs now (they are retried later).")
@click.option("--wait", type=SECONDS, default=10.0, show_default=True,
              help="How long to wait for them to exit (seconds or 1m), saying meanwhile which "
                   "still run which job.")
@json_option
@pass_ctx
def worker_stop(ctx: Context, worker_ids, force, wait, as_json) -> None:
    """Stop this host's workers (all, or the given ids). They finish their job first."""
    ctx.open()
    from queuectl_tui import supervisor
    deadline = time.monotonic() + wait

    def waiting(rows: list[tuple[int, str | None]]) -> None:  # on stderr: stdout is the result
        if rows:
            left = max(0.0, deadline - time.monotonic())
            click.echo(visible(present.stop_waiting(rows, left)), err=True)

    result = supervisor.stop(force=force, wait=wait, worker_ids=list(worker_ids) or None,
                             waiting=waiting)
    if as_json:
        emit_json(result)
    elif lines := present.stop_summary(result, force=force):
        click.echo("\n".join(lines))
    if force and (failure := present.stop_failure(result, wait)):
        raise QueueError(failure)


@worker.command("list", context_settings=COMMAND_SETTINGS)
@QUIET
@json_option
@pass_ctx
def worker_list(ctx: Context, quiet, as_json) -> None:
    """Workers with their process, status and current job."""
    ctx.open()
    from queuectl_tui.models import Worker
    now = time.time()
    workers = list(Worker.select().order_by(Worker.id))  # one read: rows and table agree
    if quiet:
        _ids_only(str(w.id) for w in workers)
        return
    rows = [present.worker_dict(w, now=now) for w in workers]
    if as_json:
        emit_json(rows)
        return
    table = tabular.Table(["id", "pid", "host", "status", "job", "up", "heartbeat", "alive"],
                          piped=piped())
    for w, row in zip(workers, rows, strict=True):
        table.add_row(w.id, w.pid, w.host, w.status, w.current_job,
                      ago(now - w.started_at), f"{ago(row['heartbeat_age'])} ago",
                      "yes" if row["alive"] else "no")
    table.print()


# --- config ----------------------------------------------------------------------------------

@cli.group(context_settings=COMMAND_SETTINGS)
def config() -> None:
    """Read and change settings (max_retries, backoff_base, timeouts, intervals…)."""


@config.command("list", context_settings=COMMAND_SETTINGS)
@json_option
@pass_ctx
def config_list(ctx: Context, as_json) -> None:
    """Every setting with its value and default."""
    ctx.open()
    rows = settings.describe()
    if as_json:
        emit_json({r["key"]: r["value"] for r in rows})
        return
    table = tabular.Table([(name, {"overflow": "fold"})
                           for name in ("key", "value", "default", "meaning")], piped=piped())
    for r in rows:
        table.add_row(r["key"], settings.text(r["value"]), settings.text(r["default"]), r["help"])
    table.print()


@config.command("get", context_settings=COMMAND_SETTINGS)
@click.argument("key")
@json_option
@pass_ctx
def config_get(ctx: Context, key, as_json) -> None:
    """Print one setting."""
    name = settings.canonical(key)
    ctx.open()
    value = settings.get(name)
    emit_json({name: value}) if as_json else click.echo(settings.text(value))


@config.command("set", context_settings={**COMMAND_SETTINGS, "ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")  # may look like an option ("-1"): validation, not click, judges it
@json_option
@pass_ctx
def config_set(ctx: Context, key, value, as_json) -> None:
    """Change a setting (validated; new jobs take retry/timeout defaults from here)."""
    name, parsed = settings.validate(key, value)
    ctx.open()
    settings.set_value(name, parsed)
    emit_json({name: parsed}) if as_json else click.echo(f"{name} = {settings.text(parsed)}")


@config.command("reset", context_settings=COMMAND_SETTINGS)
@click.argument("key")
@pass_ctx
def config_reset(ctx: Context, key) -> None:
    """Put a setting back to its default."""
    settings.canonical(key)
    ctx.open()
    name, value = settings.reset(key)
    click.echo(f"{name} = {settings.text(value)} (default)")


# --- metrics ---------------------------------------------------------------------------------

@cli.group(context_settings=COMMAND_SETTINGS)
def metrics() -> None:
    """Expose the queue's figures to Prometheus (needs the 'metrics' extra)."""


@metrics.command("serve", context_settings=COMMAND_SETTINGS)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9464, show_default=True,
              help="Port (0: any free one; the line printed says which).")
@click.option("--since", "since", default="1h", show_default=True, metavar="DURATION",
              help="Window of the window_* gauges and the wait/run summaries.")
@pass_ctx
def metrics_serve(ctx: Context, host: str, port: int, since: str) -> None:
    """Serve /metrics over HTTP, read from the database at each scrape, until stopped."""
    from queuectl_tui import exporter
    from queuectl_tui import metrics as figures
    window = figures.parse_duration(since)
    exporter.require()
    ctx.open()

    def told(error: Exception | None) -> None:  # one line when scrapes fail, one when they read
        from queuectl_tui.db import describe_db_error, describe_target
        click.echo(f"metrics: {describe_db_error(error)}; answering queuectl_up 0" if error
                   else f"metrics: database {describe_target()} readable again", err=True)

    try:
        server = exporter.serve(host, port, window, on_change=told)
    except OSError as exc:
        raise QueueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = server.server_address
    click.echo(f"serving metrics on http://{host}:{bound[1]}/metrics", err=False)
    sys.stdout.flush()
    import signal
    import threading
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()


# --- web -------------------------------------------------------------------------------------

WEB_MISSING = "queuectl-tui web needs the web extra: pip install 'queuectl-tui[web]'"


@cli.command(context_settings=COMMAND_SETTINGS)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback lets other machines try.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port (0: any free one; the URL printed says which).")
@click.option("--token", envvar="QUEUECTL_WEB_TOKEN", metavar="TOKEN",
              help="The access token (default: a new random one). Other users see a command "
                   "line in ps: prefer QUEUECTL_WEB_TOKEN.")
@click.option("--read-only", is_flag=True,
              help="Serve a console that shows everything and refuses every change.")
@pass_ctx
def web(ctx: Context, host: str, port: int, token: str | None, read_only: bool) -> None:
    """Serve the console to web browsers until stopped (needs the 'web' extra).

    Prints the URL to open, with its token, on the first line. Each browser tab gets its own
    console on this database, with every key. Whoever has the token has a shell as you (the
    console enqueues commands): keep it on loopback, or behind an HTTPS reverse proxy.
    Stops on Ctrl+C (exit 130) or SIGTERM (exit 0), closing the tabs' consoles.
    """
    try:
        import textual_serve  # noqa: F401
    except ImportError:
        raise QueueError(WEB_MISSING) from None
    from queuectl_tui.web import tokens
    if token is not None and (problem := tokens.problem(token)):
        raise InvalidInput(problem)
    ctx.open()  # an unusable database fails here, once, rather than in every tab
    import signal

    from queuectl_tui.db import close_db, describe_target
    from queuectl_tui.web import server
    close_db()
    db = ctx.db_path if paths.is_url(ctx.db_path) else os.path.abspath(ctx.db_path)
    try:
        sock = server.listening_socket(host, port)
    except OSError as exc:
        raise QueueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    token = token or tokens.new()
    server.environment_for(db)

    def ready() -> None:
        click.echo(server.url_of(host, sock, token))
        sys.stdout.flush()
        if not server.is_loopback(sock):
            click.echo(f"warning: listening on {host}, beyond this machine: whoever reaches it "
                       "with the token has a remote shell as this user (the console runs "
                       "commands), and plain HTTP shows the token to the network; prefer "
                       "127.0.0.1 behind an HTTPS reverse proxy, or --read-only", err=True)

    stopped_by = server.serve(sock, token=token, title=f"queuectl · {describe_target(db)}",
                              read_only=read_only, ready=ready)
    sys.exit(130 if stopped_by == signal.SIGINT else 0)


# --- demo ------------------------------------------------------------------------------------

@cli.command(context_settings=COMMAND_SETTINGS)
@click.option("--workers", "-n", type=click.IntRange(0, 8), default=2, show_default=True,
              help="Detached workers to start on the demo database.")
@click.option("--keep", is_flag=True,
              help="Keep the database and its workers when the console closes.")
def demo(workers: int, keep: bool) -> None:
    """Open the console on a throwaway database of sample jobs, with live workers.

    The database is made in a new temporary directory (--db does not apply) with a realistic
    mix: successes, a retried success, failures waiting out their backoff, dead jobs, scheduled
    jobs, a long-running job and a trickle of short ones. When the console closes, the demo's
    workers (and any started from the console) are stopped and the directory is deleted,
    unless --keep. Without a terminal it only prepares the database, keeps it, and says where.
    """
    from queuectl_tui import demo as sample
    on_terminal = sys.stdin.isatty() and sys.stdout.isatty()
    with sample.session(workers=workers, keep=keep or not on_terminal) as db_path:
        if on_terminal:
            from queuectl_tui.tui.app import run_app  # the console, as for a bare queuectl-tui
            run_app(db_path)
    if keep or not on_terminal:
        click.echo(f"demo database: {db_path}\n"
                   f"  open the console: queuectl-tui --db {db_path}\n"
                   f"  stop its workers: queuectl-tui --db {db_path} worker stop --force")


# --- entry point -----------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    import sqlite3

    from peewee import DatabaseError as PeeweeDatabaseError
    from peewee import InterfaceError
    # Messages name the command as typed: the short alias qctl, else queuectl-tui.
    name = "qctl" if os.path.basename(sys.argv[0]) == "qctl" else "queuectl-tui"
    try:
        cli.main(args=argv, prog_name=name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # One line like every other error; the usage text is one -h away.
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            sys.exit(130)  # Ctrl+C (click made it an Abort): 128 + SIGINT, as shells expect
        click.echo("aborted", err=True)
        sys.exit(1)
    except QueueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (PeeweeDatabaseError, InterfaceError, sqlite3.DatabaseError) as exc:
        from queuectl_tui.db import describe_db_error
        click.echo(f"error: {describe_db_error(exc)}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(
            f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
            err=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
