"""Every output of the command line: tables (rich on a terminal, tab-separated when piped:
``tabular``), plain lines and --json. Reads nothing: a command gathers what it shows and
hands it here (as RQ's rq/cli/helpers.py). User text is shown, never obeyed (``visible``)."""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import click

from queuectl_tui import present, progress, settings, spec, tabular
from queuectl_tui.present import ago, size
from queuectl_tui.store.models import COMPLETED, DEAD, STATES
from queuectl_tui.visible import visible


def emit_json(data: Any) -> None:
    """--json: indented, non-ASCII text as it is."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def dead_on_arrival(rows: Sequence[tuple[str, str | None]]) -> None:
    """Say which new jobs went straight to the DLQ (stdout keeps only the ids)."""
    for job_id, error in rows:
        click.echo(f"note: job {visible(job_id)} went to the DLQ: {visible(error or '')}", err=True)


def print_added(added, as_json: bool, file_) -> None:
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


def print_status(data: dict[str, Any], piped_: bool) -> None:
    """The counts as a table (tab-separated when piped: rich is not even imported), then a line
    each for the workers, the oldest pending job and the paused queues."""
    table = tabular.Table(
        [(name, {"justify": "right"}) for name in (*STATES, "total")],
        piped=piped_,
        box=None,
        pad_edge=False,
    )
    table.add_row(*(data["jobs"][s] for s in STATES), data["total"])
    table.print()
    sys.stdout.write("".join(f"{line}\n" for line in status_lines(data)))


def status_lines(data: dict[str, Any]) -> list[str]:
    """The lines under the counts (user text in them shown, never obeyed)."""
    paused, hook = paused_line(data), hook_line(data.get("hook_failure"))
    return (
        [
            f"workers: {data['workers']['alive']} alive, {data['workers']['busy']} busy",
            f"oldest pending: {ago(data['oldest_pending_age'])}",
        ]
        + ([visible(paused)] if paused else [])
        + ([visible(hook)] if hook else [])
    )


#: ``status`` shows the last hook failure for this long (``--json`` always has it).
HOOK_FAILURE_SHOWN = 86400.0


def hook_line(failure: dict[str, Any] | None) -> str | None:
    """The last hook failure, if recent (None: none)."""
    if not failure or time.time() - failure.get("at", 0) > HOOK_FAILURE_SHOWN:
        return None
    return (
        f"hook failed: {failure['hook']} for {failure['job']} "
        f"({ago(time.time() - failure['at'])} ago, worker {failure.get('worker')}): "
        f"{failure['why']}"
    )


def paused_line(data: dict[str, Any]) -> str | None:
    """Which queues workers take nothing from (None: none)."""
    if data.get("paused_all"):
        return "paused: every queue" + (
            f" but {', '.join(data['resumed_queues'])}" if data["resumed_queues"] else ""
        )
    return f"paused: {', '.join(data['paused_queues'])}" if data.get("paused_queues") else None


def stats_json(data: dict[str, Any]) -> dict[str, Any]:
    """Times of day as ISO-8601 UTC, as in every other --json output."""

    def fig(f: dict[str, Any]) -> dict[str, Any]:
        due = f["oldest_due"]
        return {**f, "oldest_due": due and {**due, "due_at": spec.iso(due["due_at"])}}

    return {
        "since": spec.iso(data["since"]),
        "now": spec.iso(data["now"]),
        "window_seconds": data["window_seconds"],
        "sampled_every": data["sampled_every"],
        "overall": fig(data["overall"]),
        "queues": {name: fig(f) for name, f in data["queues"].items()},
    }


def print_stats(data: dict[str, Any]) -> None:
    """Three narrow tables (counts and rates, wait times, run times), then the oldest due job
    and the most frequent errors: readable at 80 columns."""
    say = say_line
    say(
        f"window: last {ago(data['window_seconds'])} "
        f"({spec.iso(data['since'])} to {spec.iso(data['now'])})"
        + (
            f"; percentiles from 1 attempt in {data['sampled_every']}"
            if data["sampled_every"] > 1
            else ""
        )
    )
    rows = [("all queues", data["overall"])] + list(data["queues"].items())
    flat = piped()

    def table(*columns: str) -> tabular.Table:
        return tabular.Table(
            [
                (name, {"justify": "left" if index == 0 else "right", "overflow": "fold"})
                for index, name in enumerate(columns)
            ],
            piped=flat,
            box=None,
            pad_edge=False,
            padding=(0, 2, 0, 0),
        )

    counts = table("queue", "completed", "failed", "dead", "per min", "success", "retries/job")
    for name, f in rows:
        counts.add_row(
            name,
            f["completed"],
            f["failed_attempts"],
            f["dead"],
            f"{f['throughput_per_min']:.2f}",
            "-" if f["success_rate"] is None else f"{f['success_rate']:.1%}",
            "-" if f["retries_per_job"] is None else f"{f['retries_per_job']:.2f}",
        )
    counts.print()
    for key, title in (("wait", "wait (due to started)"), ("run", "run time")):
        times = table(title, "p50", "p95", "p99", "max", "mean")
        for name, f in rows:
            times.add_row(
                name, *(present.seconds(f[key][p]) for p in ("p50", "p95", "p99", "max", "mean"))
            )
        say("")
        times.print()
    due = data["overall"]["oldest_due"]
    say("")
    say(
        "oldest due: "
        + (f"{due['id']} in queue {due['queue']}, due for {ago(due['waited'])}" if due else "none")
    )
    errors = data["overall"]["top_errors"]
    if errors:
        say("most frequent errors (jobs that failed or died in the window):")
        for item in errors:
            say(f"  {item['count']:>6}  {tabular.one_line(item['error'])}")


def say_line(text: str) -> None:
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


def jobs_table(jobs, holds: dict, *, error_column: bool = False) -> tabular.Table:
    """Jobs as ``list`` and ``dlq list`` show them; a label column when a job has a label; the
    When column says what a due job waits for (``present.when``; ``holds``: ``engine.holds``
    of these jobs, read for all rows at once)."""
    now = time.time()
    labels = any(job.label for job in jobs)
    names = [
        "id",
        *(["label"] if labels else []),
        "state",
        "command",
        "pri",
        "retries",
        "when",
        "last error" if error_column else "exit",
    ]
    table = tabular.Table(
        [
            (
                name,
                {"overflow": "fold" if name in ("command", "last error", "exit") else "ellipsis"},
            )
            for name in names
        ],
        piped=piped(),
    )
    for job in jobs:
        last = (
            (job.last_error or "")
            if error_column
            else ("" if job.exit_code is None else str(job.exit_code))
        )
        table.add_row(
            job.id,
            *([job.label] if labels else []),
            present.job_state(job),
            job.command,
            job.priority,
            present.retries(job),
            present.when(job, now, holds.get(job.seq)),
            last,
        )
    return table


def ids_only(ids) -> None:
    """``-q``: one id a line, nothing else (for ``xargs``)."""
    sys.stdout.write("".join(f"{job_id}\n" for job_id in ids))


def say_more(more: int) -> None:
    """On stderr, how many more jobs match than --limit let through (stdout stays data)."""
    if more > 0:
        click.echo(f"… and {more:,} more (--limit 0 lists them all)", err=True)


def print_job(data: dict[str, Any], job, attempts, rate: float) -> None:
    """``show``: the job's fields, its attempts and what each used, then its output's tail."""
    if not rate or data["effective_priority"] is None:
        del data["effective_priority"]  # the same as priority, or the job is not waiting
    flat = piped()
    fields = tabular.Table(
        [("field", {"style": "bold"}), ("value", {"overflow": "fold"})],
        piped=flat,
        header=False,
        box=None,
        padding=(0, 2),
        pad_edge=False,
        show_edge=False,
    )
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
        table = tabular.Table(
            [
                (name, {"overflow": "fold"})
                for name in ("#", "worker", "started", "duration", "exit", "outcome", "error")
            ],
            piped=flat,
            title="attempts",
        )
        for a in attempts:
            table.add_row(
                a.number,
                a.worker_id,
                spec.iso(a.started_at),
                None if a.duration is None else f"{a.duration:.2f}s",
                a.exit_code,
                a.outcome or "running",
                a.error,
            )
        gap(flat)
        table.print()
        costs = tabular.Table(
            [
                (name, {"justify": "right"})
                for name in ("#", "wall", "cpu", "peak rss", "processes")
            ],
            piped=flat,
            title="what each attempt used",
        )
        for a in attempts:
            costs.add_row(
                a.number,
                None if a.duration is None else f"{a.duration:.2f}s",
                None if a.cpu_seconds is None else f"{a.cpu_seconds:.2f}s",
                size(a.peak_rss_bytes),
                a.processes,
            )
        gap(flat)
        costs.print()
    if job.output_tail:
        gap(flat)
        click.echo("output (tail)" if flat else click.style("output (tail)", bold=True))
        click.echo(visible(job.output_tail.rstrip("\n")))


def gap(flat: bool) -> None:
    """Piped, a blank line between the tables of one output (each has its header line)."""
    if flat:
        click.echo("")


def print_ended(ended, as_json: bool, shown: progress.Bar) -> bool:
    """A line per job as it ends; True if one did not complete."""
    failed = False
    for job in ended:
        shown.advance()
        failed |= job.state != COMPLETED
        if as_json:
            click.echo(
                json.dumps(
                    {
                        "id": job.id,
                        "state": job.state,
                        "exit_code": job.exit_code,
                        "last_error": job.last_error,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            error = f" ({job.last_error})" if job.state == DEAD and job.last_error else ""
            click.echo(visible(f"{job.id}: {job.state}{error}"))
    return failed


def print_ps(trees, now: float) -> None:
    """``ps``: each running job, then its process tree as ps f draws it."""
    if not trees:
        click.echo("no job is running")
        return
    lines = []
    for t in trees:
        lines.append(
            f"job {t.id}  attempt {t.attempt}  worker {t.worker_id or '-'}  "
            f"running {ago(t.runtime(now))}{'  paused' if t.paused else ''}  "
            f"pid {t.pid or '-'}"
        )
        if not t.local:
            lines.append(f"  on host {t.host}: its processes cannot be read from here")
        elif not t.processes:
            lines.append("  (no process: starting, or just ended)")
        else:
            lines.append(f"  {'PID':>7} {'CPU%':>6} {'RSS':>7}  {'STATE':<10} COMMAND")
            for p in t.processes:
                branch = "    " * (p.depth - 1) + "\\_ " if p.depth else ""
                lines.append(
                    f"  {p.pid:>7} {p.cpu_percent or 0.0:>6.1f} {size(p.rss):>7}  "
                    f"{p.state:<10} {branch}{p.command.replace(chr(10), ' ')}"
                )
        lines.append("")
    click.echo(visible("\n".join(lines).rstrip("\n")))  # commands are shown, never obeyed


def ps_tree(trees, now: float) -> list[dict]:
    """``ps --json``: the trees as plain data."""
    return [
        {
            "id": t.id,
            "worker_id": t.worker_id,
            "host": t.host,
            "attempt": t.attempt,
            "started_at": spec.iso(t.started_at),
            "runtime": round(t.runtime(now), 3),
            "pid": t.pid,
            "local": t.local,
            "paused": t.paused,
            "processes": [
                {
                    "pid": p.pid,
                    "ppid": p.ppid,
                    "depth": p.depth,
                    "command": p.command,
                    "cpu_percent": round(p.cpu_percent or 0.0, 1),
                    "rss_bytes": p.rss,
                    "state": p.state,
                }
                for p in t.processes
            ],
        }
        for t in trees
    ]


def print_paused_jobs(jobs, resume: bool) -> None:
    """``pause``/``resume`` of running jobs: what became of each."""
    for job in jobs:
        if resume and not job.paused:  # running on, or already ended
            click.echo(visible(f"resumed job {job.id}"))
        elif job.state != "processing":
            click.echo(visible(f"{job.id}: {job.state} (it ended meanwhile)"))
        elif job.paused and not resume:
            click.echo(visible(f"paused job {job.id}"))
        else:
            click.echo(visible(f"{job.id}: signalled; its worker has not noted it yet"))


def print_queues(rows: list[dict[str, Any]]) -> None:
    """``queue list``: the states in the order of status and the console; "none" as
    ``queue limit Q none`` says."""
    columns = ("queue", *STATES, "paused", "limit")
    table = tabular.Table(
        [(name, {"justify": "left" if name == "queue" else "right"}) for name in columns],
        piped=piped(),
    )
    for r in rows:
        table.add_row(
            r["name"],
            *(r["jobs"][state] for state in STATES),
            "yes" if r["paused"] else "no",
            "none" if r["limit"] is None else r["limit"],
        )
    table.print()


def report(jobs, as_json: bool) -> None:
    """What an action left each job as: ``id: state`` (--json: the jobs)."""
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    else:
        for job in jobs:
            click.echo(f"{job.id}: {job.state}")


def print_dlq_retried(jobs, as_json: bool, all_dead: bool) -> None:
    if as_json:
        emit_json([present.job_dict(j) for j in jobs])
    else:
        click.echo(
            f"{len(jobs)} dead job(s) back to pending"
            if all_dead
            else "\n".join(f"{j.id}: {j.state}" for j in jobs)
        )


def print_schedules(rows: list[dict[str, Any]]) -> None:
    """``schedule list``: due times to the second."""
    table = tabular.Table(
        ["name", "rule", "next run", "last run", "last job", "state", "paused", "skipped"],
        piped=piped(),
    )
    for r in rows:
        table.add_row(
            r["name"],
            r["rule"],
            _second(r["next_run"]),
            _second(r["last_run"]),
            r["last_job"],
            r["last_state"] or ("deleted" if r["last_job"] else None),
            "yes" if r["paused"] else "no",
            f"{_second(r['skipped_at'])}: {r['skipped']}" if r["skipped"] else None,
        )
    table.print()


def _second(iso: str | None) -> str | None:
    """2026-12-06T03:00:00.000Z -> 2026-12-06T03:00:00Z (due times are whole seconds)."""
    return iso.replace(".000Z", "Z") if iso else iso


def print_workers(workers, rows: list[dict[str, Any]], now: float) -> None:
    """``worker list``: each worker row beside its ``present.worker_dict``."""
    table = tabular.Table(
        ["id", "pid", "host", "status", "job", "up", "heartbeat", "alive"], piped=piped()
    )
    for w, row in zip(workers, rows, strict=True):
        table.add_row(
            w.id,
            w.pid,
            w.host,
            w.status,
            w.current_job,
            ago(now - w.started_at),
            f"{ago(row['heartbeat_age'])} ago",
            "yes" if row["alive"] else "no",
        )
    table.print()


def print_settings(rows: list[dict[str, Any]]) -> None:
    """``config list``: each setting with its value, default and meaning."""
    table = tabular.Table(
        [(name, {"overflow": "fold"}) for name in ("key", "value", "default", "meaning")],
        piped=piped(),
    )
    for r in rows:
        table.add_row(r["key"], settings.text(r["value"]), settings.text(r["default"]), r["help"])
    table.print()
