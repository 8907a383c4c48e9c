"""Running one attempt of one job: the process, its log, its time limit, its tree.

The job's shell leads a new session (so its process group is its own and a terminal's Ctrl+C
does not reach it). Output goes through a pipe: the first ``max_log_bytes`` land in the
attempt's log file, the last few KB are kept for the database, and the rest is drained and
counted so that a flooding job neither blocks nor grows the worker's memory. When the shell
ends, anything it left running is killed: a job's lifetime is its shell's. That covers its
process group and, in a worker (a child subreaper, which inherits every orphan of its jobs),
also the processes that left the group (setsid, setpgid as in coreutils ``timeout``).
"""

from __future__ import annotations

import os
import resource
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from queuectl_tui.models import Outcome
from queuectl_tui.paths import create_private_file
from queuectl_tui.run import procs, usage
from queuectl_tui.run.usage import Cost

TAIL_BYTES = 4096
TICK = 0.05

#: The job's shell first waits for "go" on its stdin, which the worker writes once it has
#: recorded the shell's PID and start time. A worker that dies before that closes the pipe: the
#: shell reads end-of-file and exits without running the command, so no job ever runs where
#: recovery cannot find and kill it. The same line carries the job's marker, exported to all
#: its processes (recovery finds by it those that left the group). Then stdin becomes /dev/null
#: and the same process (same PID, start time and process group) becomes the job's own
#: ``/bin/sh -c COMMAND``.
_GATE = (f'read -r go mark && [ "$go" = go ] || exit 125; {procs.MARKER_VAR}=$mark; '
         f'export {procs.MARKER_VAR}; exec </dev/null; exec /bin/sh -c "$1"')


@dataclass
class Result:
    outcome: str  # completed | failed | timeout | interrupted | cancelled
    exit_code: int | None
    error: str | None
    tail: str
    duration: float
    cost: Cost | None = None  # the kernel's accounting of the tree (None: nothing ran)


class Sink:
    """The job's output: the first ``cap`` bytes to the log, the last few KB kept as the tail,
    the rest counted and dropped (so neither the job nor the worker's memory notices a flood)."""

    def __init__(self, log_fd: int, cap: int):
        self.log_fd, self.cap = log_fd, cap
        self.written = self.total = 0
        self.log_error: str | None = None  # why the log stopped short (disk full, file too large)
        self.tail = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.total += len(chunk)
        part = chunk[:max(self.cap - self.written, 0)] if self.log_error is None else b""
        while part:
            try:
                count = os.write(self.log_fd, part)
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
            note = (f"\n[queuectl: the log stopped after {self.written} bytes ({self.log_error}); "
                    f"{dropped} bytes not kept]\n")
            return (tail + note)[-TAIL_BYTES:]
        if dropped:
            try:
                os.write(self.log_fd, f"\n[queuectl: output over {self.cap} bytes; "
                                      f"{dropped} bytes not kept]\n".encode())
            except OSError:
                pass
        return tail


class _Drain(threading.Thread):
    """Feeds the pipe to a ``Sink`` on a thread of its own, so the job never blocks on it."""

    def __init__(self, fd: int, sink: Sink):
        super().__init__(daemon=True)
        self.fd, self.sink = fd, sink
        self.stop = threading.Event()

    def run(self) -> None:
        while True:
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if not ready:
                if self.stop.is_set():
                    return
                continue
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.sink.feed(chunk)


def verdict(started: float, timeout: float | None,
            tick: Callable[[], str | tuple[str, str] | None]) -> tuple[str, str] | None:
    """While a job runs: (outcome, error) when it must be killed now (its time limit passed,
    or ``tick`` asks for a cancel or a forced stop, or answers with an (outcome, error) of its
    own), else None."""
    if timeout is not None and time.monotonic() - started > timeout:
        return Outcome.TIMEOUT, f"timed out after {timeout:g}s"
    action = tick()
    if isinstance(action, tuple):
        return action
    if action == "cancel":
        return Outcome.CANCELLED, "cancelled"
    if action == "interrupt":
        return Outcome.INTERRUPTED, "interrupted: worker stopped by force"
    return None


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
        fields = data[data.rindex(b")") + 2:].split()
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


def run(command: str, *, cwd: str, env: dict[str, str], log_path: Path, max_log_bytes: int,
        timeout: float | None, on_start: Callable[[int, float | None], None] = lambda pid, t: None,
        tick: Callable[[], str | None] = lambda: None,
        on_pause: Callable[[bool], None] = lambda paused: None, keep: int | None = None) -> Result:
    """Run ``command`` to its end. ``tick`` is called about every 50 ms and may answer
    "cancel" or "interrupt" to have the process tree killed and the attempt recorded so;
    ``on_pause`` hears as often whether the job's shell is stopped (SIGSTOP: paused, which
    ``wait4`` without WUNTRACED never reports as an end). ``keep``: a child of the worker that
    is not the job's (its job host), left alone when the job's leftovers are killed."""
    started = time.monotonic()
    try:
        log_fd = create_private_file(log_path)
    except OSError as exc:  # logs/ gone or unwritable: the attempt fails with the reason
        message = f"cannot create the log file {log_path}: {exc.strerror or exc}"
        return Result(Outcome.FAILED, None, message, message, 0.0)
    try:
        gate, opener = os.pipe()
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _GATE, "queuectl-gate", command], cwd=cwd, env=env, stdin=gate,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            os.close(opener)
            message = f"cannot start: {exc.strerror or exc}" + (
                f": {cwd}" if exc.filename == cwd else ""
            )
            os.write(log_fd, (message + "\n").encode())
            return Result(Outcome.FAILED, None, message, message, 0.0)
        finally:
            os.close(gate)
        pid_started = procs.start_time(proc.pid)
        floor = usage.hwm(proc.pid)  # the shell's own peak so far: the figure of a short job
        try:
            on_start(proc.pid, pid_started)  # recorded: from now on recovery can find the tree
            os.write(opener, f"go {procs.marker(proc.pid, pid_started)}\n".encode())
        except BaseException:
            os.close(opener)  # the shell reads end-of-file and leaves without running anything
            proc.wait()
            proc.stdout.close()
            raise
        os.close(opener)
        drain = _Drain(proc.stdout.fileno(), Sink(log_fd, max_log_bytes))
        drain.start()
        outcome, error = None, None
        cost = Cost(pids={proc.pid})
        cost.add_peak(floor)
        while not _reap(proc, TICK, cost):
            seen = job_state(proc.pid, pid_started)
            on_pause(seen is not None and seen[0] == "T")
            outcome, error = verdict(started, timeout, tick) or (None, None)
            if outcome:
                procs.kill_tree(proc.pid, pid_started, wait=0, search=False)
                _reap(proc, None, cost)
                break
        code = proc.returncode
        try:  # whatever the shell left behind in its group goes with it
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # and, in a worker (a subreaper), whatever left the group
        procs.kill_leftovers(keep=keep, reaped=cost.reaped)
        drain.stop.set()
        drain.join(timeout=5)
        proc.stdout.close()
        tail = drain.sink.finish()
        if outcome is None:
            outcome = Outcome.COMPLETED if code == 0 else Outcome.FAILED
            error = describe_exit(code)
        return Result(outcome, code, error, tail, time.monotonic() - started, cost)
    finally:
        os.close(log_fd)


def _reap(proc: subprocess.Popen, timeout: float | None, cost: Cost) -> bool:
    """``proc.wait(timeout)`` through ``os.wait4``, whose usage of the shell (descendants it
    reaped included) goes to ``cost``, with the shell's own peak (``VmHWM``) at every look
    before its end: the job's figure when the kernel's is the worker's (below). True once it
    is reaped."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.0005
    while proc.returncode is None:
        try:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG if deadline is not None else 0)
        except ChildProcessError:  # reaped elsewhere: its usage is lost, not its end
            proc.wait()
            break
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            # A child of the worker starts out with the worker's own size as its peak (vfork
            # shares the worker's memory until exec, and exec keeps that figure), so the
            # kernel's peak says something of the job only above the worker's own.
            own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            cost.reaped(pid, rusage, peak=rusage.ru_maxrss > own)
            break
        cost.add_peak(usage.hwm(proc.pid))
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        delay = min(delay * 2, left, 0.05)
        time.sleep(delay)
    return True
