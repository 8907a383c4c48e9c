"""The console's operator actions, each defined once: the engine (or supervisor) call its CLI
command makes, the question asked first, and what is said after. The jobs screen, a job's
detail, the queues and schedules screens and the forms take them from here. ``QueueApp.act``
asks the question and runs the call in a thread; the result comes back to the screen (or
form) as ``ActionDone`` or ``ActionFailed`` (tui/messages.py): ``finish`` turns the first into
what the screen shows, a form shows the second under the field it names, and the app notifies
any other failure.

A new console action: a function here returning an ``Action``, an ``action_*`` method on the
screen that calls ``self.app.act(actions.x(...), self)``, its key in the screen's BINDINGS, a
row in the README's parity table, and its name in tui/readonly.py's CHANGES.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from queuectl_tui import engine, schedules
from queuectl_tui.run import supervisor
from queuectl_tui.run.monitor import WorkerStats
from queuectl_tui.store.models import DEAD, PROCESSING, Job
from queuectl_tui.tui import data


class ActingScreen(Protocol):
    """A screen that runs actions: says what one did and shows the change."""

    app: Any

    def done(self, message: str, *, clear_marks: bool = False) -> None: ...


@dataclass(frozen=True, eq=False)
class Action:
    """One operator action, ready to run: ``call(*args, **kwargs)`` in a thread."""

    label: str  # what it does, as a failure names it: "could not {label}"
    call: Callable[..., Any]
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    #: (question, title): asked first; "No" does nothing.
    question: tuple[str, str] | None = None
    #: The notification, from the call's result.
    summary: Callable[[Any], str] | None = None
    #: Instead of a summary, what follows on the screen (or form) that asked, given the result:
    #: a form opened, the next question, the form closed.
    then: Callable[[Any, Any], None] | None = None
    clears_marks: bool = False  # the marked jobs were acted on: unmark them
    follows_ends: bool = False  # a notification tells how each running job it left ends
    #: A refusal is shown by the form that asked (under the field it names), not notified.
    in_form: bool = False


def finish(screen: Any, action: Action, result: Any) -> None:
    """What a screen (an ``ActingScreen``) or a form shows once ``action`` returned
    ``result``: a form's actions all have ``then``, a screen's may say a summary."""
    if action.then is not None:
        action.then(screen, result)
    elif action.summary is not None:
        screen.done(action.summary(result), clear_marks=action.clears_marks)


# --- jobs --------------------------------------------------------------------------------------


def retry(ids: list[str], *, one: bool = False) -> Action:
    """Retry failed or dead jobs (``retry``). ``one``: worded for the one job a detail shows."""
    return Action(
        f"retry {ids[0]}" if one else f"retry {len(ids)} job(s)",
        engine.retry_many,
        (ids,),
        summary=lambda jobs: summary("retried", jobs),
        clears_marks=True,
    )


def restart(ids: list[str], *, one: bool = False) -> Action:
    """Run completed or dead jobs again (``restart``)."""
    return Action(
        f"restart {ids[0]}" if one else f"restart {len(ids)} job(s)",
        engine.restart,
        (ids,),
        summary=lambda jobs: summary("restarted", jobs),
        clears_marks=True,
    )


def cancel(ids: list[str], *, running: int | None = None) -> Action:
    """Cancel jobs (``cancel``), asking first. ``running``: how many of them run, as the jobs
    table shows them; None for the one job of a detail (worded for either state)."""
    if running is None:
        question = (
            f"Cancel job {ids[0]}?\nWaiting: it goes to the DLQ. Running: its process "
            "tree is killed.",
            "Cancel job",
        )
        label = f"cancel {ids[0]}"
    else:
        text = f"Cancel {names(ids)}?\nWaiting jobs go to the DLQ as cancelled"
        text += f"; {running} running job(s) have their process tree killed." if running else "."
        question, label = (text, "Cancel jobs"), f"cancel {len(ids)} job(s)"
    return Action(
        label,
        engine.cancel_many,
        (ids,),
        question=question,
        summary=cancelled,
        clears_marks=True,
        follows_ends=True,
    )


def delete(ids: list[str], *, one: bool = False) -> Action:
    """Delete jobs with their attempts and logs (``delete``), asking first. ``one``: the job a
    detail shows, which closes once it is gone."""
    its = "its" if len(ids) == 1 else "their"
    text = f"Delete {names(ids)} with {its} attempts and logs?\nThis cannot be undone."
    if one:
        return Action(
            f"delete {ids[0]}",
            engine.delete,
            (ids,),
            question=(text, "Delete job"),
            then=lambda screen, _count: _closed(screen, f"deleted job {ids[0]}"),
        )
    return Action(
        f"delete {len(ids)} job(s)",
        engine.delete,
        (ids,),
        question=(text, "Delete jobs"),
        summary=lambda n: f"deleted {n} job(s)",
        clears_marks=True,
    )


def not_while_running(job_id: str) -> str:
    """Why a running job is not deleted (the engine refuses it: said before asking)."""
    return f"{job_id} is processing: cancel it first (c), then delete it"


def edit(job_id: str, open_form: Callable[[Any, Job, Callable[[str], None]], None]) -> Action:
    """Read the job afresh, then open the edit form on it (``edit``): ``open_form`` is
    ``modals.edit_job`` (passed in, so this module knows no screen)."""
    return Action(
        f"edit {job_id}",
        engine.get_job,
        (job_id,),
        then=lambda screen, job: open_form(screen.app, job, screen.done),
    )


def enqueue(checked: dict[str, Any], now: float) -> Action:
    """The enqueue form's job (``enqueue``): the form closes with its id."""
    return Action(
        "enqueue",
        engine.enqueue,
        ([checked],),
        {"now": now},
        in_form=True,
        then=lambda form, jobs: form.dismiss([job.id for job in jobs]),
    )


def save_job(job_id: str, changes: dict[str, Any], now: float) -> Action:
    """The edit form's changes (``edit JOB_ID --field …``): the form closes with the job."""
    return Action(
        f"edit {job_id}",
        engine.edit,
        (job_id, changes),
        {"now": now},
        in_form=True,
        then=lambda form, job: form.dismiss(job),
    )


# --- the DLQ -----------------------------------------------------------------------------------


def retry_dlq() -> Action:
    """Every dead job back to pending (``dlq retry --all``), asked with the DLQ's count."""
    return _counting_the_dlq(
        lambda count: Action(
            "retry the DLQ",
            engine.dlq_retry,
            kwargs={"all_dead": True},
            question=(
                f"Move all {count:,} dead job(s) back to pending?\nEach gets a fresh retry "
                "budget; its attempt numbers go on from its last run.",
                "Retry the DLQ",
            ),
            summary=lambda jobs: f"DLQ retried: {len(jobs):,} job(s) pending again",
        )
    )


def clear_dlq() -> Action:
    """Delete every dead job (``dlq clear``), asked with the DLQ's count."""
    return _counting_the_dlq(
        lambda count: Action(
            "clear the DLQ",
            engine.dlq_clear,
            question=(
                f"Delete all {count:,} dead job(s) in the DLQ with their logs?\n"
                "This cannot be undone.",
                "Clear the DLQ",
            ),
            summary=lambda n: f"deleted {n} dead job(s)",
        )
    )


def _counting_the_dlq(then: Callable[[int], Action]) -> Action:
    """Count the DLQ as it is now (the header's count may be a refresh old, or more behind
    another screen), then ask about it; an empty DLQ is only said."""

    def counted(screen: ActingScreen, count: int) -> None:
        if not count:
            screen.app.notify("the DLQ is empty")
        else:
            screen.app.act(then(count), screen)

    return Action("count the DLQ", engine.count_jobs, kwargs={"state": DEAD}, then=counted)


# --- queues ------------------------------------------------------------------------------------


def toggle_pause(queue: str | None) -> Action:
    """Pause a queue, or resume it if paused (``pause``/``resume --queue``); None: every queue
    (resumed when all are paused)."""
    if queue is None:
        return Action(
            "pause or resume every queue",
            data.toggle_pause,
            (None,),
            summary=lambda paused: "every queue paused" if paused else "every queue resumed",
        )
    return Action(
        f"pause or resume queue {queue}",
        data.toggle_pause,
        (queue,),
        summary=lambda paused: f"queue {queue} {'paused' if paused else 'resumed'}",
    )


def set_limit(queue: str, limit: int | None) -> Action:
    """The limit form's limit (``queue limit Q N|none``): the form closes with it."""
    return Action(
        f"set the limit of {queue}",
        engine.set_limit,
        (queue, limit),
        in_form=True,
        then=lambda form, _: form.dismiss(limit),
    )


# --- schedules ---------------------------------------------------------------------------------


def add_schedule(name: str, job: dict[str, Any], options: dict[str, Any]) -> Action:
    """The schedule form's schedule (``schedule add``): the form closes with its name."""
    return Action(
        f"add schedule {name}",
        schedules.add,
        (name, job),
        options,
        in_form=True,
        then=lambda form, _: form.dismiss(name),
    )


def toggle_schedule(name: str) -> Action:
    """Pause a schedule, or resume it if paused (``schedule pause|resume``)."""
    return Action(
        f"pause or resume schedule {name}",
        data.toggle_schedule,
        (name,),
        summary=lambda paused: f"schedule {name} {'paused' if paused else 'resumed'}",
    )


def run_schedule(name: str) -> Action:
    """One job of a schedule now (``schedule run``)."""
    return Action(
        f"run schedule {name}", schedules.run_now, (name,), summary=lambda job: f"enqueued {job.id}"
    )


def remove_schedule(name: str) -> Action:
    """Delete a schedule (``schedule remove``), asking first."""
    return Action(
        f"remove schedule {name}",
        schedules.remove,
        (name,),
        question=(f"Remove schedule {name}? The jobs it made stay.", "Are you sure?"),
        summary=lambda _: f"removed schedule {name}",
    )


# --- settings ----------------------------------------------------------------------------------


def read_settings() -> Action:
    """The settings form's rows (``config list``): the form fills its boxes with them."""
    return Action(
        "read the settings", data.read_settings, then=lambda form, rows: form.loaded(rows)
    )


def save_settings(changes: dict[str, Any], resets: list[str]) -> Action:
    """The settings form's changes and resets (``config set|reset``): the form closes with
    their names."""
    return Action(
        "save the settings",
        data.save_settings,
        (changes, resets),
        in_form=True,
        then=lambda form, _: form.dismiss(sorted([*changes, *resets])),
    )


# --- workers -----------------------------------------------------------------------------------


def worker_start(db_path) -> Action:
    """One more detached worker (``worker start``)."""
    return Action(
        "start a worker",
        supervisor.start,
        (db_path, 1),
        summary=lambda rows: ", ".join(f"started worker {r.id} (pid {r.pid})" for r in rows),
    )


def worker_stop(worker: WorkerStats) -> Action:
    """Stop one worker, after its job (``worker stop ID``), asking first."""
    job = f", after it finishes {worker.current_job}" if worker.current_job else ""
    return Action(
        f"stop worker {worker.id}",
        supervisor.stop,
        kwargs={"worker_ids": [worker.id]},
        question=(f"Stop worker {worker.id} (pid {worker.pid}){job}?", "Stop a worker"),
        summary=stopped,
    )


def worker_stop_all(alive: int) -> Action:
    """Stop every worker of this host (``worker stop``), asking first."""
    return Action(
        "stop the workers",
        supervisor.stop,
        question=(
            f"Stop all {alive} worker(s) on this host?\nEach finishes its current job first.",
            "Stop all workers",
        ),
        summary=stopped,
    )


# --- what is said ------------------------------------------------------------------------------


def names(ids: list[str]) -> str:
    """'job a', or '5 jobs (a, b, c…)'."""
    return (
        f"job {ids[0]}"
        if len(ids) == 1
        else f"{len(ids)} jobs ({', '.join(ids[:3])}{'…' if len(ids) > 3 else ''})"
    )


def summary(verb: str, jobs: list[Job]) -> str:
    """'a retried → pending; b retried → pending (+3 more)'."""
    return "; ".join(f"{job.id} {verb} → {job.state}" for job in jobs[:3]) + (
        f" (+{len(jobs) - 3} more)" if len(jobs) > 3 else ""
    )


def cancelled(jobs: list[Job]) -> str:
    """What a cancel did, job by job: a waiting job is dead now; a running one has a cancel
    requested (a notification tells how it ends: ``follows_ends``)."""
    parts = [
        f"{job.id}: cancel requested"
        if job.state == PROCESSING
        else f"{job.id} cancelled ({job.state})"
        for job in jobs[:3]
    ]
    return "; ".join(parts) + (f" (+{len(jobs) - 3} more)" if len(jobs) > 3 else "")


def stopped(result: dict[str, list[int]]) -> str:
    """What stopping workers did: stopped, still finishing a job, found dead."""
    parts = []
    if result["stopped"]:
        parts.append(f"stopped worker(s) {', '.join(map(str, result['stopped']))}")
    if result["still_running"]:
        parts.append(f"still finishing a job: {', '.join(map(str, result['still_running']))}")
    if result["gone"]:
        parts.append(f"removed dead worker(s) {', '.join(map(str, result['gone']))}")
    return "; ".join(parts) or "no workers running"


def _closed(screen: ActingScreen, message: str) -> None:
    """The screen's subject is gone: say so and close it."""
    screen.app.notify(message)
    screen.app.pop_screen()
