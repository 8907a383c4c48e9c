"""A fast way to run jobs: one long-lived ``/bin/sh`` per worker forks a subshell per job.

``exec.run`` execs a fresh ``/bin/sh`` per job; that exec (dynamic loading, shell start-up)
costs more than everything else a tiny job needs. ``JobHost.run`` keeps the contract of
``exec.run`` (same arguments, same ``Result``) but sends each job to a shell that is already
running, which forks a subshell and ``eval``s the command there.

Protocol. The host is ``/bin/sh -s`` in its own session: its stdin (the control pipe) is the
script it runs, its stdout is the status pipe back to the worker, and a third pipe (the word
pipe, which the host opens through ``/proc`` when it needs it) carries the worker's word to a
host that waits on a stopped job (below). At start it takes a pseudo terminal as its
controlling terminal only so that ``set -m`` (job control) is allowed; the worker then closes
the terminal's master, which hangs it up and detaches every process of the session from it,
so jobs have no terminal, as with ``exec.run``. ``protocol`` holds the code the worker
sends and turns the host's lines into messages (``Started``, ``Exited``, ...). For each job the
worker writes one piece of shell code::

    ( cd DIR || report "c"; exec >/proc/$PPID/fd/OUT 2>&1; read the gate from stdin;
      exec </dev/null; set +m; eval COMMAND ) & echo "p $!"; wait $!; _qh_x $?

where ``_qh_x S``, defined once when the host starts, is
``while [ $S -gt 128 ] && kill -0 $!; do echo w; read S from the word pipe; jobs; done;
echo "x $S"``.

Job control makes the subshell the leader of its own process group (``killpg`` takes its
tree). It opens, through ``/proc``, the write end of a pipe the worker created for this job
alone, so nothing a leftover process writes later can reach another job's log. It then waits
for the gate: the worker reads ``p PID``, records the process (``on_start``) and writes
``: go``; ``: no`` (``on_start`` raised) or end-of-file (the worker died) makes the job exit
125 without running the command. A gate line that no job read is a no-op for the host. The
worker drives the job with ``poll`` on the job's pipe and the status pipe, calls ``tick``
about every ``TICK`` seconds, and reads ``x CODE`` when the subshell ends. The host ends when
its control pipe closes: at ``close()``, or when the worker dies (an idle host reads
end-of-file at once; a busy one when its job ends; where util-linux's ``setpriv`` is there,
the host is also started with SIGKILL as its parent-death signal, which ends a host that a job
stopped: it is tied to the worker thread that started it). A host that died is replaced at the next
job; the job it was running fails with "job host died", and is killed with its tree.

Stopped jobs. With job control the host's ``wait`` also returns when the job stops (SIGSTOP,
``pause JOB_ID``), with 128+N, and every later ``wait`` returns at once: the shell never sees a
stopped job continue. A stopped job is paused, not ended. So when ``wait`` says 128+N and the
job is still there (``kill -0``), the host says ``w`` and waits for the worker's word instead.
The worker reads the job's state in /proc at every tick (stopped: paused, reported to
``on_pause``), and once the job has ended (a zombie the host has not reaped yet) it writes the
exit status it reads there to the word pipe; the host reaps the job (``jobs``) and reports
``x CODE``. (A shell that reaps in its signal handler, as bash does, leaves no zombie to read:
the worker says ``?`` and the host asks its own ``wait``, which remembers.)

Bounds. The worker never waits on the host for long: the control pipe is non-blocking, and an
answer the host owes (``p PID`` after a job was sent, ``x CODE`` once the job has ended or was
killed, its reading of what the worker sent) is awaited at most ``ANSWER`` seconds. A host
that does not answer in time (stopped, say, by a job that found its PID) counts as gone: it
is killed and replaced, and the job is recorded as what it was: timed out, cancelled or
interrupted when the worker killed it, else its own exit code read from /proc.

The next job may be sent ahead (``run``'s ``then``): its code follows the running job's gate
line in the control pipe, so the host forks it as soon as the running job ends and its ``p PID``
comes back right behind ``x CODE``, saving the worker a round trip per job. It waits at its gate
like any job; if the worker asks for another job instead, it is told ``: no``. The host reads
nothing while the running job lasts, so only code the pipe takes at once is sent ahead: at most
``PIPE_BUF`` bytes in one non-blocking write, which the kernel makes all or nothing. Longer
code, or a pipe without room, is sent when that job is asked for (one round trip more): a
write that blocked would leave the running job unwatched (its output, timeout, cancel and a
forced stop).

Differences from ``exec.run`` (the command still runs with exactly the given environment,
directory, ``/dev/null`` stdin, default signal dispositions and its own process group):

- A command that mentions ``$$`` or ``$!`` (``$$``, ``${$``, ``$!``, ``${!``) is not
  ``eval``ed by the subshell but run by ``exec /bin/sh -c COMMAND`` from it: in a subshell of
  the host, ``$$`` would be the host's PID (``kill $$`` would kill the host, a trap on a signal
  sent to ``$$`` would never run, files named with ``$$`` would be shared by every job of the
  worker) and ``$!`` the previous job's subshell. Only such jobs pay for the exec, and they keep
  everything else (gate, group, pipe, bounds); their ``$PPID`` is the host. Any other job's
  ``$PPID`` is the worker, as with ``sh -c``.
- A job killed by a signal N reports exit code 128+N (as the shell's ``wait`` sees it), where
  ``exec.run`` reports -N ("killed by SIGKILL"); a timeout or cancel reports 137.
- ``$-`` contains ``s``; a syntax error is reported as ``eval: Syntax error``; builtins of the
  job's own shell see one more descriptor: the hung-up terminal (close-on-exec, so no command
  the job runs inherits it). Every other shell state is the subshell's own copy, so nothing
  (variables, functions, aliases, traps, options, ``$?``, cwd, ``OLDPWD``, umask, descriptors)
  passes from one job to the next.
- Jobs share the host's session instead of leading their own (they still lead their groups).
- Peak memory: the host reaps the job's shell and keeps no figure of it (``wait`` discards
  the kernel's ``ru_maxrss``, and a zombie has no ``VmHWM``), so a job's ``peak_rss_bytes`` is
  the larger of the size of a job's shell that has run a builtin (measured once, at the first
  host: a probe job stops itself with ``kill -STOP 0`` and its ``VmHWM`` is read), what
  sampling saw while the job ran past its first tick (each process's ``VmHWM``, every
  ``SAMPLE_EVERY`` seconds), and the kernel's figure for every process the worker reaped
  itself. ``exec.run`` has the kernel's figure for the whole tree where it is above the
  worker's own (see there).
- Where job control cannot be had (no ``/dev/ptmx``, no ``/proc``), every job falls back to
  ``exec.run``.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
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
    Stop,
    Tick,
    failed_to_start,
    finished,
    job_state,
    protocol,
    verdict,
)
from queuectl_tui.run.launch.exec import run as run_sh_c
from queuectl_tui.run.launch.protocol import (
    Exited,
    Message,
    NoDirectory,
    Ready,
    Started,
    Waiting,
    needs_own_shell,
)
from queuectl_tui.run.usage import Cost
from queuectl_tui.store.models import Outcome

#: Resets every signal the worker may have inherited as ignored (``nohup``, ``cmd &`` from a
#: script) before the host shell starts: a shell cannot undo an ignore it was started with.
_RESET = ("--default-signal",)
_ENV = next((p for p in ("/usr/bin/env", "/bin/env") if os.path.exists(p)), None)
#: And has the host killed when the worker's thread that started it dies (PR_SET_PDEATHSIG,
#: util-linux's setpriv): a host that a job stopped would never read the end of its input.
_SETPRIV = next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.path.exists(p)), None)
_PDEATHSIG = ("--pdeathsig", "KILL")
_DRAIN_IDLE = 0.1  # after a job: how long a silent pipe that is not at end-of-file is read
_DRAIN_LIMIT = 1.0  # and how long a pipe that escaped writers keep busy is read at most
#: Seconds the host may take to give an answer it owes (see "Bounds"); a host that is not
#: stopped answers in microseconds, so this only has to outlast a loaded machine's scheduling.
ANSWER = 3.0

__all__ = ["ANSWER", "JobHost", "needs_own_shell"]


class _HostGone(Exception):
    """The host shell died or stopped answering."""


@dataclass
class _Job:
    """One job on its way through the host: what ``run`` was given, and when it began."""

    command: str
    cwd: str
    env: dict[str, str]
    log: LogFile
    cap: int  # max_log_bytes
    timeout: float | None
    on_start: OnStart
    tick: Tick
    on_pause: OnPause
    started: float  # monotonic


class JobHost:
    """The ``Launcher`` of one worker process; not thread-safe (jobs of one host run one after
    another)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] | None = None
        self._ctl = self._status = -1
        self._word = self._word_r = -1  # the word pipe (the host opens its read end by /proc)
        self._messages: list[Message] = []  # parsed from the status pipe, not taken yet
        self._partial = b""
        self._children_cpu: float | None = None  # the host's reaped children's CPU so far
        self._stat_fd: int | None = None  # the host's /proc/PID/stat, for _children_cpu
        self._reset_signals = _ENV is not None  # and _SETPRIV's, if any: a first try
        self.available = True  # False once job control proved impossible: exec.run is used
        self._queued: _Queued | None = None  # the next job, sent ahead (see ``run``'s ``then``)
        self._shell_rss: int | None = None  # a job shell's size (see "Peak memory")
        self._probed = False

    # --- the host shell ------------------------------------------------------------------

    def close(self, *, kill: bool = False) -> None:
        """End the host: it reads end-of-file on its control pipe and exits (a job sent ahead
        reads end-of-file at its gate and exits without running). ``kill``: at once, for a
        host that stopped answering (SIGKILL ends a stopped process too)."""
        queued, self._queued = self._queued, None
        if queued is not None:
            queued.close()
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if kill:
            proc.kill()
        for fd in (self._ctl, self._word, self._word_r):
            os.close(fd)
        try:
            proc.wait(timeout=ANSWER)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(self._status)
        self._ctl = self._status = self._word = self._word_r = -1
        if self._stat_fd is not None:
            os.close(self._stat_fd)
            self._stat_fd = None

    def __enter__(self) -> JobHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure(self, env: dict[str, str]) -> bool:
        """A live host with exactly ``env``; False when no host can run here."""
        if self._proc is not None and (self._env != env or self._proc.poll() is not None):
            self.close()
        if self._proc is None and self.available:
            try:
                self._start(env)
            except _HostGone:
                if not self._reset_signals:
                    self.available = False
                    return False
                self._reset_signals = False  # an old ``env`` or ``setpriv``: plain sh
                try:
                    self._start(env)
                except _HostGone:
                    self.available = False
            if self.available and not self._probed:
                self._probed = True
                try:
                    self._shell_rss = self._probe()
                except _HostGone:  # no figure, and a fresh host: this one's state is unknown
                    self.close(kill=True)
                    return self._ensure(env)
        return self.available

    def _probe(self) -> int | None:
        """The peak size of a job's shell that has run a builtin: a job of ``kill -STOP 0``
        stops itself there (the host says ``w``), its ``VmHWM`` is read, and it is killed."""
        out = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        assert self._env is not None  # a host is running: started with this environment
        try:
            pid = self._launch("kill -STOP 0", "/", self._env, out)
            started = procs.start_time(pid)
            self._send(protocol.PROBE_GO)
            if not isinstance(self._next(), Waiting):
                raise _HostGone("the probe job did not stop")
            size = usage.hwm(pid) or None
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + ANSWER
            while (seen := job_state(pid, started)) is not None and seen[0] != "Z":
                if time.monotonic() > deadline:
                    raise _HostGone("the probe job did not end")
                time.sleep(0.001)
            self._tell(seen)
            self._exit_code()
            return size
        finally:
            os.close(out)

    def _start(self, env: dict[str, str]) -> None:
        try:
            master, slave = os.openpty()
        except OSError as exc:
            raise _HostGone(str(exc)) from exc
        tty = os.ttyname(slave)
        os.close(slave)  # the host opens it again, as its controlling terminal
        ctl_r, self._ctl = os.pipe()
        self._status, st_w = os.pipe()
        self._word_r, self._word = os.pipe()
        argv = (
            ([_SETPRIV, *_PDEATHSIG] if self._reset_signals and _SETPRIV else [])
            + ([_ENV, *_RESET] if self._reset_signals and _ENV else [])
            + ["/bin/sh", "-s"]
        )
        try:
            self._proc = subprocess.Popen(
                argv,
                stdin=ctl_r,
                stdout=st_w,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            os.close(master)
            for fd in (self._ctl, self._status, st_w, self._word, self._word_r):
                os.close(fd)
            raise _HostGone(str(exc)) from exc
        finally:
            os.close(ctl_r)
        os.set_blocking(self._ctl, False)  # see _send: never blocked by a host that stopped
        os.set_blocking(self._word, False)
        self._env = dict(env)
        self._messages, self._partial = [], b""
        try:
            self._send(protocol.start(tty, st_w, self._word_r))
            ready = self._next(deadline=time.monotonic() + 10)
        except _HostGone:
            ready = None
        finally:
            os.close(st_w)
            os.close(master)  # hang the terminal up: no job gets a controlling terminal
        if not (isinstance(ready, Ready) and ready.job_control):
            self.close(kill=True)
            raise _HostGone(f"no job control in the host shell ({ready!r})")
        self._stat_fd = usage.open_stat(self._proc.pid)
        self._children_cpu = usage.children_cpu(self._stat_fd)

    def _send(self, data: str | bytes) -> None:
        """Write all of ``data`` to the host. The pipe is non-blocking: a host that takes none
        of it for ``ANSWER`` seconds is gone (a blocked write would stop the worker)."""
        data = os.fsencode(data) if isinstance(data, str) else data
        try:
            while data:
                try:
                    data = data[os.write(self._ctl, data) :]
                except BlockingIOError:
                    if not select.select([], [self._ctl], [], ANSWER)[1]:
                        raise _HostGone("the host shell stopped reading") from None
        except OSError as exc:  # EPIPE: the host is gone
            raise _HostGone(str(exc)) from exc

    def _send_ahead(self, data: bytes) -> bool:
        """Write ``data`` only if the pipe takes all of it at once (see "The next job")."""
        if len(data) > select.PIPE_BUF:
            return False
        try:  # non-blocking and at most PIPE_BUF bytes: all written, or nothing
            os.write(self._ctl, data)
        except BlockingIOError:
            return False
        except OSError as exc:
            raise _HostGone(str(exc)) from exc
        return True

    def _tell(self, seen: tuple[str, int | None] | None) -> None:
        """Give a host that waits on an ended job (``w``) the job's exit code."""
        try:
            os.write(self._word, protocol.word(None if seen is None else seen[1]))
        except OSError as exc:
            raise _HostGone(str(exc)) from exc

    def _read_status(self) -> None:
        """Read what the status pipe holds: each whole line becomes a message (the only place
        the host's lines are parsed)."""
        data = os.read(self._status, 4096)
        if not data:
            raise _HostGone("the host shell closed its status pipe")
        *lines, self._partial = (self._partial + data).split(b"\n")
        self._messages.extend(map(protocol.parse, lines))

    def _next(self, deadline: float | None = None) -> Message:
        """The next message (at most until ``deadline``, ``ANSWER`` seconds from now by
        default; end-of-file or the deadline raises _HostGone)."""
        if deadline is None:
            deadline = time.monotonic() + ANSWER
        while not self._messages:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _HostGone("the host shell did not answer")
            if select.select([self._status], [], [], min(left, 0.1))[0]:
                self._read_status()
            elif self._stopped():  # silent for a while: no use waiting if it cannot answer
                raise _HostGone("the host shell is stopped")
        return self._messages.pop(0)

    def _stopped(self) -> bool:
        """Is the host stopped (SIGSTOP)? It cannot answer then: no use waiting for it."""
        try:
            data = os.pread(self._stat_fd, 1024, 0) if self._stat_fd is not None else b""
            return data[data.rindex(b")") + 2 :][:1] in (b"T", b"t")
        except (OSError, ValueError):
            return False

    def _launch(self, command: str, cwd: str, env: dict[str, str], out_w: int) -> int:
        """Send the job; its PID once the host has forked it."""
        self._send(protocol.job(command, cwd, env, out_w))
        return self._started_pid()

    def _started_pid(self) -> int:
        """The PID of the job the host forked last (its ``NoDirectory``, should it come first,
        stays for ``_drive``)."""
        early: list[Message] = []
        deadline = time.monotonic() + ANSWER
        while True:
            message = self._next(deadline)
            if isinstance(message, NoDirectory):
                early.append(message)
                continue
            self._messages[:0] = early
            if not isinstance(message, Started):
                raise _HostGone(f"unexpected answer {message!r}")
            return message.pid

    def _queue(self, command: str, cwd: str, env: dict[str, str]) -> None:
        """Send ``command`` behind the running job if the pipe takes it at once (see ``run``'s
        ``then``); else it is sent when asked for."""
        where = os.path.abspath(cwd)
        if _bad_directory(where):
            return  # sent in full when asked for: it fails there with its reason
        queued = _Queued((command, cwd, env), _Pipe())
        try:
            sent = self._send_ahead(protocol.job(command, where, env, queued.pipe.w))
        except BaseException:
            queued.close()
            raise
        if sent:
            self._queued = queued
        else:
            queued.close()

    def _discard(self, queued: _Queued) -> None:
        """The job sent ahead is not wanted: once forked it is told ``: no`` and exits 125
        without running anything."""
        try:
            self._started_pid()
            self._send(protocol.NO)
            self._exit_code()
        except _HostGone:
            self.close(kill=True)
        finally:
            queued.close()

    # --- one job -------------------------------------------------------------------------

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
        """As ``exec.run``: run ``command`` to its end; ``tick`` may answer a ``Stop`` to have
        its process tree killed and the attempt recorded so; ``on_pause`` hears at every tick
        whether the job is stopped (paused).

        ``then`` (command, cwd, env) is the job that will probably be asked for next: it is sent
        right behind this one, so that the host forks it the moment this one ends, and it waits
        at its gate as any job does. If the next ``run`` asks for another job (or none comes),
        it is told ``: no`` and exits without running anything."""
        queued, self._queued = self._queued, None
        if queued is not None and queued.job != (command, cwd, env):
            self._discard(queued)
            queued = None
        if queued is None and not self._ensure(env):
            return run_sh_c(
                command,
                cwd=cwd,
                env=env,
                log_path=log_path,
                max_log_bytes=max_log_bytes,
                timeout=timeout,
                on_start=on_start,
                tick=tick,
                on_pause=on_pause,
                keep=self.pid,
            )
        started = time.monotonic()
        try:
            log = LogFile(log_path)
        except OSError as exc:
            if queued is not None:
                self._discard(queued)
            return failed_to_start(f"cannot create the log file {log_path}: {exc.strerror or exc}")
        try:
            cwd = os.path.abspath(cwd)
            problem = _bad_directory(cwd)
            if problem:
                if queued is not None:
                    self._discard(queued)
                return _cannot_start(log, problem, cwd)
            job = _Job(
                command, cwd, env, log, max_log_bytes, timeout, on_start, tick, on_pause, started
            )
            return self._run(job, queued, then)
        finally:
            log.close()

    def _run(self, job: _Job, queued: _Queued | None, then: Next | None) -> Result:
        pipe = queued.pipe if queued is not None else _Pipe()
        try:
            pid = None
            if queued is not None:
                try:
                    pid = self._started_pid()
                except _HostGone:  # the host died before forking it: nothing ran
                    self.close(kill=True)
                    if not self._ensure(job.env):
                        message = "cannot start: the job host shell did not start"
                        return _cannot_start(job.log, message, None)
            if pid is None:
                try:
                    pid = self._launch(job.command, job.cwd, job.env, pipe.w)
                except _HostGone:
                    # Nothing ran (no PID, so no "go"): one more try with a fresh host.
                    self.close(kill=True)
                    if not self._ensure(job.env):
                        message = "cannot start: the job host shell did not start"
                        return _cannot_start(job.log, message, None)
                    pid = self._launch(job.command, job.cwd, job.env, pipe.w)
            pid_started = procs.start_time(pid)
            try:
                job.on_start(pid, pid_started)
            except BaseException:
                try:
                    self._send(protocol.NO)  # the job exits without running the command
                    self._exit_code()
                except _HostGone:
                    self.close(kill=True)
                raise
            self._send(protocol.go(procs.marker(pid, pid_started)))
            if then is not None and then[2] == job.env:  # a new environment needs a new host
                try:
                    self._queue(*then)
                except _HostGone:
                    pass  # the job is let go: _drive sees the host gone and ends it
            cost = Cost(pids={pid})
            cost.add_peak(self._shell_rss)
            return self._drive(job, pid, pid_started, pipe, cost)
        except _HostGone as exc:
            self.close(kill=True)
            message = f"cannot start: the job host shell died ({exc})"
            return _cannot_start(job.log, message, None)
        finally:
            pipe.close()

    def _exit_code(self) -> int | None:
        """Wait for the end of a job that was told ``: no`` (it exits at once): its exit code,
        or None when it could not change directory."""
        no_cd = False
        deadline = time.monotonic() + ANSWER
        while True:
            message = self._next(deadline)
            if isinstance(message, NoDirectory):
                no_cd = True
            elif isinstance(message, Exited):
                return None if no_cd else message.code

    @property
    def pid(self) -> int | None:
        """The host shell's PID (None when no host runs)."""
        return self._proc.pid if self._proc is not None else None

    def _job_cpu(self) -> float | None:
        """CPU of the job that just ended: what the host's reaped children cost since the
        last job (the host reaps only job subshells, each with what it reaped)."""
        before = self._children_cpu
        self._children_cpu = now = usage.children_cpu(self._stat_fd) if self._proc else None
        return None if before is None or now is None else now - before

    def _drive(
        self, job: _Job, pid: int, pid_started: float | None, pipe: _Pipe, cost: Cost
    ) -> Result:
        """Watch the running job to its end: its output into the log, its messages, a tick
        every ``TICK`` seconds (its state in /proc, ``on_pause``, ``tick``, the timeout)."""
        sink = Sink(job.log, job.cap)
        poller = select.poll()
        poller.register(pipe.r, select.POLLIN)
        poller.register(self._status, select.POLLIN)
        stop: Stop | None = None
        code: int | None = None
        no_cd = ended = waiting = False  # waiting: the host said "w" (it waits for our word)
        owed: float | None = None  # the host owes us "x CODE" by then (the job ended or was killed)
        next_tick = job.started + TICK
        try:
            while not ended:
                wait = max(next_tick - time.monotonic(), 0)
                for fd, _ in poller.poll(wait * 1000):
                    if fd == pipe.r:
                        sink.feed(os.read(pipe.r, 65536))
                        continue
                    self._read_status()
                    while self._messages and not ended:  # what follows is the next job's
                        message = self._messages.pop(0)
                        if isinstance(message, Exited):
                            code, ended = message.code, True
                        elif isinstance(message, NoDirectory):
                            no_cd = True
                        elif isinstance(message, Waiting):
                            waiting = True
                now = time.monotonic()
                if ended or now < next_tick:
                    continue
                next_tick = now + TICK
                # Past its first tick: the job's state, read from /proc (10 us, 20 times a second).
                seen = job_state(pid, pid_started)
                if pid_started is not None and (seen is None or seen[0] == "Z"):
                    # It has ended (or its reaping is under way): the host owes its exit line.
                    if waiting:
                        self._tell(seen)
                        waiting = False
                    owed = owed or now + ANSWER
                job.on_pause(seen is not None and seen[0] == "T")
                if owed is not None and (now > owed or self._stopped()):
                    raise _HostGone("the host shell did not answer")
                if stop:
                    continue  # killed: waiting for the host to see it end
                stop = verdict(job.started, job.timeout, job.tick)
                if stop:
                    procs.kill_tree(pid, pid_started, wait=0, search=False)
                    owed = now + ANSWER  # dead in microseconds, unless stuck in the kernel
        except _HostGone as exc:
            seen = job_state(pid, pid_started)  # before its host goes: how an ended job ended
            procs.kill_tree(pid, pid_started, wait=0)  # orphaned now: nobody else will end it
            self.close(kill=True)
            if seen is not None and seen[0] == "Z" and seen[1] is not None:
                code = seen[1]  # it had ended: recorded as it ended
            elif stop is None:
                stop = Stop(Outcome.FAILED, f"job host died ({exc})")
        if ended:
            cost.add_cpu(self._job_cpu())
        try:  # whatever the job left behind in its group goes with it
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # and, in a worker (a subreaper), whatever left the group
        procs.kill_leftovers(
            keep=self._proc.pid if self._proc else None, group=pid, reaped=cost.reaped
        )
        pipe.close_write()  # from now on end-of-file means every writer is gone
        _drain(pipe.r, sink)
        if no_cd:
            return _cannot_start(job.log, _directory_error(job.cwd), job.cwd, job.started)
        return finished(code, sink.finish(), job.started, cost, stop)


def _drain(fd: int, sink: Sink) -> None:
    """Read what the job wrote until end-of-file, until the pipe stays silent for a moment, or
    at most ``_DRAIN_LIMIT`` seconds: a process that escaped the job (and, outside a subreaper
    worker, was not killed with it) may hold the pipe open and keep writing."""
    deadline = time.monotonic() + _DRAIN_LIMIT
    while time.monotonic() < deadline and select.select([fd], [], [], _DRAIN_IDLE)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        sink.feed(chunk)


def _bad_directory(cwd: str) -> str | None:
    try:
        if os.path.isdir(cwd):
            return None
        os.stat(cwd)
        return os.strerror(errno.ENOTDIR)
    except OSError as exc:
        return exc.strerror or str(exc)


def _directory_error(cwd: str) -> str:
    return _bad_directory(cwd) or os.strerror(errno.EACCES)


def _cannot_start(
    log: LogFile, problem: str, cwd: str | None, started: float | None = None
) -> Result:
    """The result of a job that could not start: the reason in the log and the row."""
    message = problem if cwd is None else f"cannot start: {problem}: {cwd}"
    try:
        log.write((message + "\n").encode())
    except OSError:
        pass
    return failed_to_start(message, 0.0 if started is None else time.monotonic() - started)


class _Pipe:
    """A job's output pipe, each end closed once: a second close of a number that another
    thread has opened meanwhile (the heartbeat's database connection, a /proc read) closes
    that thread's file, whose later reads and writes then reach whatever takes the number
    next."""

    def __init__(self) -> None:
        self.r, self.w = os.pipe()

    def close_write(self) -> None:
        if self.w >= 0:
            os.close(self.w)
            self.w = -1

    def close(self) -> None:
        self.close_write()
        if self.r >= 0:
            os.close(self.r)
            self.r = -1


class _Queued:
    """A job sent ahead of its turn: what it is, and the pipe its output will come through."""

    def __init__(self, job: Next, pipe: _Pipe) -> None:
        self.job, self.pipe = job, pipe

    def close(self) -> None:
        self.pipe.close()
