"""What the CLI and the console show, written once: times and ages, durations, sizes, state
labels, the retry budget, stop summaries, the one-sentence "why", and the ``--json`` shapes.

Both faces render only what this module returns, so they speak with one voice. No textual
and no click here (the CLI never imports textual; a worker imports neither), and no reads:
what it words is read by the engine and handed in (``engine.why_facts`` for ``explain``), so
a face reads once and then words.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from queuectl_tui.spec import iso
from queuectl_tui.store.models import (
    COMPLETED,
    DEAD,
    FAILED,
    PENDING,
    PROCESSING,
    STATES,
    Attempt,
    Job,
    Worker,
)

if TYPE_CHECKING:  # the facts' types: what this module words, never reads
    from queuectl_tui import engine

__all__ = ["iso"]  # re-exported: times of day in --json and in `show`

# --- times and sizes ---------------------------------------------------------------------------


def ago(seconds: float | None) -> str:
    """A compact span, two units at most, truncated to whole seconds: 5s, 3m05s, 2h03m, 1d02h;
    ``-`` for no value."""
    if seconds is None:
        return "-"
    total = int(abs(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"


def seconds(value: float | None) -> str:
    """A measured time (wait, run, CPU): hundredths below 10 s, tenths below a minute, then
    as ``ago``."""
    if value is None:
        return "-"
    return f"{value:.2f}s" if value < 10 else f"{value:.1f}s" if value < 60 else ago(value)


def precise(value: float | None) -> str:
    """A run's duration: hundredths below a minute, then as ``ago``."""
    if value is None:
        return "-"
    return f"{value:.2f}s" if value < 60 else ago(value)


def cpu_time(value: float | None) -> str:
    """CPU seconds an attempt used (user + system, its whole tree)."""
    if value is None:
        return "-"
    return f"{value:.2f}s" if value < 10 else f"{value:.1f}s" if value < 100 else ago(value)


def clock(ts: float | None, now: float) -> str:
    """Local wall-clock time, with the date when it is not within the last day."""
    if ts is None:
        return "-"
    fmt = "%H:%M:%S" if abs(now - ts) < 86400 else "%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(ts))


def short_stamp(ts: float | None) -> str:
    """Month, day and local time to the second (the exact ISO time is in the fields)."""
    return "-" if ts is None else time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


def size(num: float | None) -> str:
    """Bytes in K/M/G."""
    if num is None:
        return "-"
    for unit in ("B", "K", "M", "G"):
        if num < 1024 or unit == "G":
            return f"{num:.0f}{unit}" if unit == "B" or num >= 100 else f"{num:.1f}{unit}"
        num /= 1024
    return f"{num:.1f}T"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%" if value >= 10 else f"{value:.1f}%"


_BARS = "▁▂▃▄▅▆▇█"


def spark(values: list[float], width: int, top: float | None = None) -> str:
    """The last ``width`` values as a one-line bar chart scaled to ``top`` (default: their max)."""
    values = values[-width:] if width > 0 else []
    if not values:
        return ""
    top = max(top or 0.0, max(values), 1e-9)
    return "".join(
        _BARS[min(len(_BARS) - 1, max(0, round(v / top * (len(_BARS) - 1))))] for v in values
    )


# --- jobs ----------------------------------------------------------------------------------------

#: One word per state, the same in the data, in --json, in the CLI and on the console.
STATE_LABEL = {state: state for state in STATES}


def state_label(state: str) -> str:
    return STATE_LABEL.get(state, state)


def job_state(job: Job) -> str:
    """The job's state as the tables show it: a paused running job stays processing."""
    return f"{state_label(job.state)} (paused)" if job.paused else state_label(job.state)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def retries_used(job: Job) -> int:
    """Retries charged to the job's current budget: its runs since enqueue, ``dlq retry`` or
    ``restart`` (``job.attempts``), less the first. Not an attempt number: those continue."""
    return max(0, job.attempts - 1)


def retries(job: Job) -> str:
    """The retry budget in a narrow column: ``1/3`` (1 of its 3 retries used)."""
    return f"{retries_used(job)}/{job.max_retries}"


def budget(job: Job) -> str:
    """The retry budget in words: ``1 of 3 used``."""
    return f"{retries_used(job)} of {job.max_retries} used"


def stop_summary(result: dict[str, list[int]], *, force: bool = False) -> list[str]:
    """What ``worker stop`` (supervisor.stop) did, one line per kind of outcome. A worker still
    running after a normal stop is finishing its job, which ``--force`` would kill; one still
    running after a forced stop is a failure the caller reports (``stop_failure``)."""
    lines = []
    if result.get("stopped"):
        lines.append(f"stopped worker(s) {', '.join(map(str, result['stopped']))}")
    if result.get("still_running") and not force:
        lines.append(
            "still finishing their job: worker(s) "
            f"{', '.join(map(str, result['still_running']))} (use --force to kill the jobs)"
        )
    if result.get("gone"):
        lines.append(f"removed dead worker(s) {', '.join(map(str, result['gone']))}")
    if not any(result.get(kind) for kind in ("stopped", "still_running", "gone")):
        lines.append("no workers running")
    return lines


def stop_failure(result: dict[str, list[int]], wait: float) -> str | None:
    """After ``worker stop --force``: the workers that did not exit within ``wait`` seconds."""
    if not result.get("still_running"):
        return None
    return f"worker(s) {', '.join(map(str, result['still_running']))} did not stop within {wait:g}s"


def stop_waiting(rows: list[tuple[int, str | None]], left: float) -> str:
    """What ``worker stop`` waits for, as it waits: the workers still running and their jobs."""
    each = ", ".join(
        f"worker {worker_id}" + (f" (running {job_id})" if job_id else "")
        for worker_id, job_id in rows
    )
    return f"waiting up to {ago(math.ceil(left))} for {each} to finish"


def when(job: Job, now: float, hold: engine.Hold | None = None) -> str:
    """When a job runs next (waiting), since when it runs, or how long ago it ended. A due job
    that something holds back (``hold``, from ``engine.holds``) says what: ``held``'s words."""
    if job.state in (PENDING, FAILED):
        if job.run_at > now:
            return f"in {ago(job.run_at - now)}"
        return (held(hold) if hold is not None else None) or "due"
    if job.state == PROCESSING:
        return f"running {ago(now - (job.started_at or now))}"
    return f"{ago(now - (job.finished_at or job.updated_at))} ago"


def held(hold: engine.Hold) -> str | None:
    """What a due job waits for, in a narrow column (the short forms of ``explain``): ``after
    build`` (``after build +2`` for three), ``paused``, ``limit 1/1``; None: nothing."""
    if hold.after:
        first = hold.after[0][0]
        return f"after {first}" + (f" +{len(hold.after) - 1}" if len(hold.after) > 1 else "")
    if hold.paused:
        return "paused"
    if hold.at_limit:
        return f"limit {hold.running}/{hold.limit}"
    return None


def run_time(job: Job, now: float) -> str:
    """How long the job's latest run took, or has taken so far."""
    if job.started_at is None:
        return "-"
    if job.state == PROCESSING:
        return ago(now - job.started_at)
    if job.finished_at is None or job.state == PENDING:
        return "-"
    return precise(max(0.0, job.finished_at - job.started_at))


# --- JSON shapes ---------------------------------------------------------------------------------


def job_dict(job: Job, *, full: bool = False) -> dict[str, Any]:
    data = {
        "id": job.id,
        "label": job.label,
        "command": job.command,
        "state": job.state,
        "attempts": job.attempts,
        "max_retries": job.max_retries,
        "backoff_base": job.backoff_base,
        "timeout": job.timeout,
        "priority": job.priority,
        "queue": job.queue,
        "run_at": iso(job.run_at),
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "last_error": job.last_error,
        "exit_code": job.exit_code,
        "paused": job.paused,
    }
    if full:
        data["cwd"] = job.cwd
        data["output_tail"] = job.output_tail
        data["worker_id"] = job.worker_id
        data["cancel_requested"] = job.cancel_requested
        data["schedule"] = job.schedule  # the schedule that made it (None: enqueued by hand)
    return data


def attempt_dict(attempt: Attempt, log_path: Path | None) -> dict[str, Any]:
    """An attempt in --json; ``log_path``: ``engine.log_path`` of it."""
    return {
        "number": attempt.number,
        "worker_id": attempt.worker_id,
        "host": attempt.host,
        "pid": attempt.pid,
        "started_at": iso(attempt.started_at),
        "finished_at": iso(attempt.finished_at),
        "exit_code": attempt.exit_code,
        "duration": attempt.duration,
        "outcome": attempt.outcome,
        "error": attempt.error,
        "log_file": str(log_path) if log_path is not None else None,
        "cpu_seconds": attempt.cpu_seconds,
        "peak_rss_bytes": attempt.peak_rss_bytes,
        "processes": attempt.processes,
    }


def worker_dict(worker: Worker, alive: bool, *, now: float | None = None) -> dict[str, Any]:
    """A worker in --json; ``alive``: ``engine.worker_alive`` of it at ``now``."""
    now = time.time() if now is None else now
    return {
        "id": worker.id,
        "host": worker.host,
        "pid": worker.pid,
        "status": worker.status,
        "current_job": worker.current_job,
        "queues": worker.queues.split(",") if worker.queues else None,
        "started_at": iso(worker.started_at),
        "heartbeat_at": iso(worker.heartbeat_at),
        "heartbeat_age": round(max(0.0, now - worker.heartbeat_at), 3),
        "alive": alive,
    }


# --- why a job is where it is --------------------------------------------------------------------


def explain(facts: engine.WhyFacts) -> str:
    """Why the job is where it is, in one sentence a person can act on, from the facts
    ``engine.why_facts`` read."""
    job, now = facts.job, facts.now
    if job.state == COMPLETED:
        runs = plural(facts.runs or 0, "attempt")  # read for every ended job
        return f"completed at {iso(job.finished_at)} after {runs}"
    if job.state == DEAD:
        return (
            f"in the DLQ after {plural(facts.runs or 0, 'attempt')}: "
            f"{job.last_error or 'no error recorded'}"
        )
    if job.state == PROCESSING:
        worker = facts.worker
        where = f"worker {job.worker_id}" + (
            f" (pid {worker.pid} on {worker.host})" if worker else " (gone)"
        )
        text = f"running on {where} since {iso(job.started_at)}"
        if not facts.worker_alive:
            text += "; that worker is lost, the job will be taken back when a worker runs recovery"
        if job.paused:
            text += f"; paused (stopped; resume {job.id} continues it" + (
                "; its timeout keeps counting)" if job.timeout else ")"
            )
        if job.cancel_requested:
            text += "; cancellation requested"
        return text
    held = _held(facts)
    if job.run_at > now:
        if job.state == FAILED:
            return (
                f"backing off until {iso(job.run_at)} after attempt {facts.runs} "
                f"failed: {job.last_error}; retry budget {budget(job)}"
                + "".join(f"; {why}" for why in held)
            )
        return f"scheduled for {iso(job.run_at)}" + "".join(f"; {why}" for why in held)
    if held:
        return "due, waiting: " + "; ".join(held)
    if not facts.workers:
        return f"due, waiting: no worker alive for queue {job.queue!r} (start one: worker start)"
    aged = _aged(facts)
    if facts.working == facts.workers:
        return f"due, waiting for a free worker ({facts.working} of {facts.workers} busy)" + aged
    return "due; an idle worker will claim it next" + aged


def _held(facts: engine.WhyFacts) -> list[str]:
    """What holds a waiting job back besides time and workers: its dependencies, its queue
    being paused or at its limit; with aging on, the priority it has reached."""
    reasons: list[str] = []
    job, hold = facts.job, facts.hold  # the facts the When column's short forms come from
    if hold is None:
        return reasons
    if hold.after:
        deps = [f"{dep_id} ({dep_state or 'deleted'})" for dep_id, dep_state in hold.after]
        reasons.append(f"dependencies not completed yet: {', '.join(deps)}")
    if hold.paused:
        reasons.append(f"its queue {job.queue!r} is paused (resume --queue {job.queue})")
    if hold.at_limit:
        reasons.append(
            f"its queue {job.queue!r} is at its limit ({hold.running} of {hold.limit} running)"
        )
    if reasons and (aged := _aged(facts)):
        reasons.append(aged[2:])
    return reasons


def _aged(facts: engine.WhyFacts) -> str:
    if not facts.aging_rate:
        return ""
    return f"; effective priority {facts.effective_priority:.1f} (aging)"
