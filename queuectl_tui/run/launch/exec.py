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
from pathlib import Path

from queuectl_tui import procs
from queuectl_tui.run import usage
from queuectl_tui.run.launch import (
    TICK,
    LogFile,
    Next,
    OnPause,
    OnStart,
    Result,
    Sink,
    Tick,
    failed_to_start,
    finished,
    job_state,
    verdict,
)
from queuectl_tui.run.usage import Cost

#: The job's shell first waits for "go" on its stdin, which the worker writes once it has
#: recorded the shell's PID and start time. A worker that dies before that closes the pipe: the
#: shell reads end-of-file and exits without running the command, so no job ever runs where
#: recovery cannot find and kill it. The same line carries the job's marker, exported to all
#: its processes (recovery finds by it those that left the group). Then stdin becomes /dev/null
#: and the same process (same PID, start time and process group) becomes the job's own
#: ``/bin/sh -c COMMAND``.
_GATE = (
    f'read -r go mark && [ "$go" = go ] || exit 125; {procs.MARKER_VAR}=$mark; '
    f'export {procs.MARKER_VAR}; exec </dev/null; exec /bin/sh -c "$1"'
)


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


class ExecLauncher:
    """The ``Launcher`` that runs each job as ``sh -c`` of its own (``run``); it keeps
    nothing between jobs."""

    pid = None

    def run(
        self,
        command: str,
        *,
        cwd: str,
        env: dict[str, str],
        log_path: Path,
        max_log_bytes: int,
        timeout: float | None,
        on_start: OnStart = lambda pid, t: None,
        tick: Tick = lambda: None,
        on_pause: OnPause = lambda paused: None,
        then: Next | None = None,
    ) -> Result:
        return run(
            command,
            cwd=cwd,
            env=env,
            log_path=log_path,
            max_log_bytes=max_log_bytes,
            timeout=timeout,
            on_start=on_start,
            tick=tick,
            on_pause=on_pause,
        )

    def close(self) -> None:
        pass


def run(
    command: str,
    *,
    cwd: str,
    env: dict[str, str],
    log_path: Path,
    max_log_bytes: int,
    timeout: float | None,
    on_start: OnStart = lambda pid, t: None,
    tick: Tick = lambda: None,
    on_pause: OnPause = lambda paused: None,
    keep: int | None = None,
) -> Result:
    """Run ``command`` to its end. ``tick`` is called about every ``TICK`` seconds and may
    answer a ``Stop`` to have the process tree killed and the attempt recorded so;
    ``on_pause`` hears as often whether the job's shell is stopped (SIGSTOP: paused, which
    ``wait4`` without WUNTRACED never reports as an end). ``keep``: a child of the worker that
    is not the job's (its job host), left alone when the job's leftovers are killed."""
    started = time.monotonic()
    try:
        log = LogFile(log_path)
    except OSError as exc:  # logs/ gone or unwritable: the attempt fails with the reason
        return failed_to_start(f"cannot create the log file {log_path}: {exc.strerror or exc}")
    try:
        gate, opener = os.pipe()
        try:
            proc = subprocess.Popen(
                ["/bin/sh", "-c", _GATE, "queuectl-gate", command],
                cwd=cwd,
                env=env,
                stdin=gate,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            os.close(opener)
            message = f"cannot start: {exc.strerror or exc}" + (
                f": {cwd}" if exc.filename == cwd else ""
            )
            try:
                log.write((message + "\n").encode())
            except OSError:
                pass
            return failed_to_start(message)
        finally:
            os.close(gate)
        assert proc.stdout is not None  # stdout=PIPE
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
        drain = _Drain(proc.stdout.fileno(), Sink(log, max_log_bytes))
        drain.start()
        stop = None
        cost = Cost(pids={proc.pid})
        cost.add_peak(floor)
        while not _reap(proc, TICK, cost):
            seen = job_state(proc.pid, pid_started)
            on_pause(seen is not None and seen[0] == "T")
            stop = verdict(started, timeout, tick)
            if stop:
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
        return finished(code, drain.sink.finish(), started, cost, stop)
    finally:
        log.close()


def _reap(proc: subprocess.Popen[bytes], timeout: float | None, cost: Cost) -> bool:
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
        assert deadline is not None  # without one, wait4 (no WNOHANG) returned the pid
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        delay = min(delay * 2, left, 0.05)
        time.sleep(delay)
    return True
