"""Hooks: ``on_completed`` and ``on_dead``, a shell command a worker runs once a job's end is
committed (a notification: ``notify-send``, mail, a webhook with curl).

A hook never changes the job's outcome and never holds up the worker: it is started in a
session of its own and left to run while the worker claims its next job; the worker reaps it
on its way (``Hooks.reap``, at each turn of its loop) and kills its process group past
``TIME_LIMIT``. Its failure (an exit status other than 0, a signal, the time limit, a command
that could not start) is a line in the worker's log (``workers.log`` for detached workers)
and the last one is kept in ``meta`` (``LAST_FAILURE``) for ``status`` to show.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from queuectl_tui import procs

#: A hook is killed (its whole process group) after this many seconds.
TIME_LIMIT = 10.0
#: meta key: the last hook failure, as JSON (see ``record_failure``).
LAST_FAILURE = "hook_last_failure"
#: stderr kept to say why a hook failed.
ERR_TAIL = 300


class JobEnd(NamedTuple):
    """What a hook is told of the end of a job (its environment)."""

    job_id: str
    state: str  # completed or dead
    exit_code: int | None
    error: str | None
    queue: str
    attempt: int


def environment(end: JobEnd) -> dict[str, str]:
    return {
        "QUEUECTL_JOB_ID": end.job_id,
        "QUEUECTL_JOB_STATE": end.state,
        "QUEUECTL_JOB_EXIT_CODE": "" if end.exit_code is None else str(end.exit_code),
        "QUEUECTL_JOB_ERROR": end.error or "",
        "QUEUECTL_JOB_QUEUE": end.queue,
        "QUEUECTL_JOB_ATTEMPT": str(end.attempt),
    }


class _Run(NamedTuple):
    proc: subprocess.Popen[bytes]
    name: str  # on_completed / on_dead
    end: JobEnd
    deadline: float  # monotonic
    err: Any  # a temporary file with its stderr


class Hooks:
    """The hooks a worker has started and not reaped yet."""

    def __init__(self, failed: Callable[[str, JobEnd, str], None]):
        self.failed = failed  # (hook name, job end, why): log and record it
        self.running: list[_Run] = []

    def fire(self, name: str, command: str, end: JobEnd) -> None:
        """Start ``command`` for ``end`` (``sh -c``, the worker's environment plus the job's
        variables, stdin and stdout /dev/null), without waiting for it."""
        err = tempfile.TemporaryFile()  # noqa: SIM115 (closed when the hook is reaped)
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", command],
                env={**os.environ, **environment(end)},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            err.close()
            self.failed(name, end, f"could not start: {exc}")
            return
        procs.spare(proc.pid)  # not a job's leftover: the worker's own (procs.kill_leftovers)
        self.running.append(_Run(proc, name, end, time.monotonic() + TIME_LIMIT, err))

    def reap(self) -> None:
        """Collect the hooks that ended (no zombie stays), kill those past their time limit."""
        if not self.running:
            return
        now, still = time.monotonic(), []
        for run in self.running:
            code = run.proc.poll()
            if code is None and now >= run.deadline:
                _kill_group(run.proc)
                run.proc.wait()
                self._done(run, f"killed after its time limit of {TIME_LIMIT:g}s")
            elif code is None:
                still.append(run)
            elif code != 0:
                why = (
                    f"exit status {code}" if code > 0 else f"killed by {signal.Signals(-code).name}"
                )
                self._done(run, why)
            else:
                self._done(run, None)
        self.running = still

    def next_deadline(self) -> float | None:
        """When (monotonic) the next reap is due, if hooks run."""
        return min(run.deadline for run in self.running) if self.running else None

    def close(self, wait: float = TIME_LIMIT) -> None:
        """At the worker's exit: give the running hooks until their time limit (at most
        ``wait``), then kill what is left."""
        until = time.monotonic() + wait
        while self.running and time.monotonic() < until:
            self.reap()
            time.sleep(0.02)
        for run in self.running:
            _kill_group(run.proc)
            run.proc.wait()
            self._done(run, "killed: its worker stopped")
        self.running = []

    def _done(self, run: _Run, why: str | None) -> None:
        procs.unspare(run.proc.pid)
        try:
            if why is not None:
                run.err.seek(0, os.SEEK_END)
                size = run.err.tell()
                run.err.seek(max(0, size - ERR_TAIL))
                tail = run.err.read().decode("utf-8", "replace").strip()
                if tail:
                    why += f": {tail.splitlines()[-1]}"
        finally:
            run.err.close()
        if why is not None:
            self.failed(run.name, run.end, why)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is the hook's tree
    except (ProcessLookupError, PermissionError):
        pass


def record_failure(
    name: str, end: JobEnd, why: str, *, worker: int | None, now: float | None = None
) -> None:
    """Keep the last failure in ``meta`` (one small write, only when a hook failed)."""
    from queuectl_tui.store import write_transaction
    from queuectl_tui.store.models import Meta

    value = json.dumps(
        {
            "hook": name,
            "job": end.job_id,
            "state": end.state,
            "why": why,
            "worker": worker,
            "at": time.time() if now is None else now,
        }
    )
    with write_transaction():
        Meta.insert(key=LAST_FAILURE, value=value).on_conflict(
            conflict_target=[Meta.key], update={Meta.value: value}
        ).execute()


def last_failure() -> dict[str, Any] | None:
    """The last hook failure any worker recorded (None: none)."""
    from queuectl_tui.store.models import Meta

    row = Meta.get_or_none(Meta.key == LAST_FAILURE)
    if row is None:
        return None
    try:
        return json.loads(row.value)
    except ValueError:
        return None
