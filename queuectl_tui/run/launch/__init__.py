"""Launching one attempt of one job: what every launcher shares.

Two launchers implement ``Launcher``: ``host.JobHost`` (the worker's long-lived shell forks a
subshell per job, the fast way) and ``exec.ExecLauncher`` (``sh -c`` per job, where job control
cannot be had). Both take the same arguments and give the same ``Result``; their documented
differences are listed in ``host``. The job's output goes to a ``Sink``; ``tick`` (called about
every ``TICK`` seconds while the job runs) may answer a ``Stop`` to have the job killed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from queuectl_tui import paths, procs
from queuectl_tui.run.usage import Cost
from queuectl_tui.store.models import Outcome

TAIL_BYTES = 4096
TICK = 0.05


@dataclass
class Result:
    outcome: Outcome
    exit_code: int | None
    error: str | None
    tail: str
    duration: float
    cost: Cost | None = None  # the kernel's accounting of the tree (None: nothing ran)


class Stop(NamedTuple):
    """What ``tick`` answers to have the running job killed, and how its attempt ends."""

    outcome: Outcome
    error: str


CANCEL = Stop(Outcome.CANCELLED, "cancelled")
INTERRUPT = Stop(Outcome.INTERRUPTED, "interrupted: worker stopped by force")

#: Called while a job runs: a ``Stop`` has it killed; anything else lets it run.
Tick = Callable[[], object]
#: The job's process exists and waits at its gate: (pid, its start time). Raising keeps the
#: gate shut: the command never runs.
OnStart = Callable[[int, "float | None"], None]
#: At every tick: is the job stopped (SIGSTOP, paused)?
OnPause = Callable[[bool], None]
#: The job that will probably run next on the same launcher: (command, cwd, env).
Next = tuple[str, str, dict[str, str]]


class Launcher(Protocol):
    """Runs one job at a time to its end; one per worker, not thread-safe."""

    def run(
        self,
        command: str,
        *,
        cwd: str,
        env: dict[str, str],
        log_path: Path,
        max_log_bytes: int,
        timeout: float | None,
        on_start: OnStart = ...,
        tick: Tick = ...,
        on_pause: OnPause = ...,
        then: Next | None = None,
    ) -> Result:
        """Run ``command`` to its end (or until ``timeout`` or a ``Stop`` from ``tick``), with
        exactly ``env``, in ``cwd``, stdin ``/dev/null``, its output in ``log_path`` (the first
        ``max_log_bytes``) and its last KB in the result. ``on_start`` hears of its process
        before the command may run. ``then``: a hint of the next job (a launcher may prepare
        it; it never runs unless asked for)."""
        ...

    @property
    def pid(self) -> int | None:
        """A process of the launcher's own that outlives jobs (None: none): left alone when
        a job's leftovers are killed."""
        ...

    def close(self) -> None:
        """Let go of what the launcher keeps between jobs."""
        ...


def verdict(started: float, timeout: float | None, tick: Tick) -> Stop | None:
    """While a job runs: how it must be stopped now (its time limit passed, or ``tick``
    answered a ``Stop``), else None."""
    if timeout is not None and time.monotonic() - started > timeout:
        return Stop(Outcome.TIMEOUT, f"timed out after {timeout:g}s")
    action = tick()
    return action if isinstance(action, Stop) else None


class LogFile:
    """A job's log, made at its first byte: a job that writes nothing leaves no file (readers
    take a missing log for no output). Making a file costs an inode and a directory entry, the
    largest part of a short job's cost in the worker on a file system without a journal (ext4
    then scans past every recently deleted inode); what making it would refuse is refused here,
    before the job starts (``paths.prepare_private_file``)."""

    def __init__(self, path: Path) -> None:
        paths.prepare_private_file(path)
        self.path = path
        self.fd: int | None = None

    def write(self, data: bytes) -> int:
        if self.fd is None:
            self.fd = paths.create_private_file(self.path)
        return os.write(self.fd, data)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Sink:
    """The job's output: the first ``cap`` bytes to the log, the last few KB kept as the tail,
    the rest counted and dropped (so neither the job nor the worker's memory notices a flood)."""

    def __init__(self, log: LogFile, cap: int):
        self.log, self.cap = log, cap
        self.written = self.total = 0
        self.log_error: str | None = None  # why the log stopped short (disk full, file too large)
        self.tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        part = chunk[: max(self.cap - self.written, 0)] if self.log_error is None else b""
        while part:
            try:
                count = self.log.write(part)
            except OSError as exc:  # a full disk stops the log, never the job
                self.log_error = exc.strerror or str(exc)
                break
            self.written += count
            part = part[count:]
        self.tail += chunk
        if len(self.tail) > 2 * TAIL_BYTES:
            del self.tail[:-TAIL_BYTES]

    def finish(self) -> str:
        """The tail, with a note of what the log lacks (in the log, or where the log cannot
        say it, in the tail the database keeps)."""
        tail = bytes(self.tail[-TAIL_BYTES:]).decode("utf-8", "replace")
        dropped = self.total - self.written
        if self.log_error is not None:
            note = (
                f"\n[queuectl: the log stopped after {self.written} bytes ({self.log_error}); "
                f"{dropped} bytes not kept]\n"
            )
            return (tail + note)[-TAIL_BYTES:]
        if dropped:
            try:
                self.log.write(
                    f"\n[queuectl: output over {self.cap} bytes; "
                    f"{dropped} bytes not kept]\n".encode()
                )
            except OSError:
                pass
        return tail


def failed_to_start(message: str, duration: float = 0.0) -> Result:
    """The result of an attempt whose command never ran, with the reason."""
    return Result(Outcome.FAILED, None, message, message, duration)


def finished(
    code: int | None, tail: str, started: float, cost: Cost, stop: Stop | None = None
) -> Result:
    """The result of a job that ran: as ``stop`` says when it was killed, else by its code."""
    if stop is not None:
        outcome, error = stop
    elif code == 0:
        outcome, error = Outcome.COMPLETED, None
    else:
        outcome = Outcome.FAILED
        error = describe_exit(code) if code is not None else "exit code unknown"
    return Result(outcome, code, error, tail, time.monotonic() - started, cost)


def job_state(pid: int, started: float | None) -> tuple[str, int | None] | None:
    """The job's shell as the kernel shows it now: its state letter (``T``: stopped, ``Z``:
    ended, not reaped yet) and, once ended, its exit code as a shell reports it (128+N for
    signal N); None when it is gone (reaped), is another process (PID reused) or /proc is
    not there."""
    if not procs._PROC_STAT or started is None:
        return None
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        fields = data[data.rindex(b")") + 2 :].split()
        letter, ticks = fields[0].decode(), int(fields[19])
        status = int(fields[49]) if letter == "Z" and len(fields) > 49 else None
    except (OSError, ValueError, IndexError):
        return None
    if abs(ticks / procs._CLOCK_TICKS + procs._boot_time() - started) > procs._TOLERANCE:
        return None
    if status is None:
        return letter, None
    try:
        code = os.waitstatus_to_exitcode(status)
    except ValueError:
        return letter, None
    return letter, 128 - code if code < 0 else code


def describe_exit(code: int) -> str | None:
    if code == 0:
        return None
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    if code == 127:
        return "command not found (exit code 127)"
    if code == 126:
        return "command not executable (exit code 126)"
    return f"exit code {code}"
