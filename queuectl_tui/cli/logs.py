"""``logs``: an attempt's output, from its log file or, when that is on another host or was
dropped, from the tail the database keeps; ``logs -f`` follows a job through its attempts
(``Follower``)."""

from __future__ import annotations

import sys
import time
from typing import IO

import click

from queuectl_tui import engine, present
from queuectl_tui.cli.options import TEXT, Context, pass_ctx
from queuectl_tui.errors import NotFound, QueueError
from queuectl_tui.present import ago
from queuectl_tui.store.models import COMPLETED, DEAD, Attempt
from queuectl_tui.visible import visible

NOTHING_KEPT = "no output of it is kept in the database (only the latest attempt's last 4 KB is)"


@click.command()
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
        Follower(job, attempts[-1].number if attempts else 1, write).run()
        return
    if not attempts:
        raise QueueError(
            f"job {job_id!r} has not run yet ({present.explain(engine.why_facts(job))})"
        )
    chosen = (
        attempts[-1] if number is None else next((a for a in attempts if a.number == number), None)
    )
    if chosen is None:
        raise NotFound(
            f"job {job_id!r} has no attempt {number} (its attempts are numbered "
            f"{attempts[0].number} to {attempts[-1].number})"
        )
    # The job keeps the output of the attempt that ended last (a later one may be running).
    last = all(a.finished_at is None for a in attempts if a.number > chosen.number)
    elsewhere = engine.log_elsewhere(job, chosen, last=last)
    if elsewhere is not None:
        _print_from_elsewhere(job, chosen, elsewhere, follow, write)
    elif chosen.log_dropped is not None:
        _print_dropped(job, chosen, write)
    else:
        _print_file(chosen, follow, write)


def _print_from_elsewhere(
    job, chosen, elsewhere: tuple[str, str | None], follow: bool, write
) -> None:
    """An attempt run on another host: the tail the database keeps (``-f``: once it ends)."""
    where, tail = elsewhere
    if chosen.finished_at is None:
        if not follow:
            raise QueueError(
                f"{where}; it is still running there: its last output reaches "
                "the database when it ends (logs -f waits for that)"
            )
        click.echo(
            f"{where}; waiting for it to end, to print its last output kept in the database",
            err=True,
        )
        for _ in engine.changes(fallback=0.5):
            done, tail = engine.kept_output(job, chosen)
            if done:
                break
    elif tail is not None:
        click.echo(f"{where}; its last output, kept in the database:", err=True)
    if tail is None:
        raise QueueError(f"{where}; {NOTHING_KEPT}")
    write(tail.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()


def _print_dropped(job, chosen, write) -> None:
    """An attempt whose log the size cap dropped: the tail the database keeps, if it does."""
    why = (
        f"the log of attempt {chosen.number} was dropped "
        f"{ago(time.time() - chosen.log_dropped)} ago: the logs directory was past its "
        "size cap (max_logs_total)"
    )
    done, tail = engine.kept_output(job, chosen)
    if not done or tail is None:
        raise QueueError(f"{why}; {NOTHING_KEPT}")
    click.echo(f"{why}; its last output, kept in the database:", err=True)
    write(tail.encode("utf-8", "replace"))
    sys.stdout.buffer.flush()


def _print_file(chosen, follow: bool, write) -> None:
    """The attempt's log file (``-f``: while the attempt runs). A job's log is made at its
    first byte: no file is no output (yet)."""
    path = engine.log_path(chosen)
    if path is None:  # none was named for it (the demo's generated attempts)
        raise QueueError(f"attempt {chosen.number} has no log file")
    while True:
        done = not follow or Attempt.get_by_id(chosen.seq).finished_at is not None  # first
        try:
            handle = open(path, "rb")  # noqa: SIM115 (closed by the with below, once it is open)
            break
        except FileNotFoundError:
            if done:
                return
            time.sleep(0.2)
        except OSError as exc:
            raise QueueError(
                f"cannot read the log of attempt {chosen.number} ({path}: {exc.strerror or exc})"
            ) from None
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


class Follower:
    """``logs -f``: print attempt ``number`` of the job and every later one as they run, until
    the job is completed (``run`` returns: exit 0) or dead (QueueError: exit 1). Woken by the
    database's commits, as ``wait`` is, and while an attempt runs every 0.1 s for its log
    file's growth (a job still waiting has no log: once a second, as ``wait``). An attempt run
    on another host (its log is there) is followed in the database: where its log is, then,
    when it ends, its last output."""

    def __init__(self, job, number: int, write):
        self.job = job
        self.number = number  # the attempt printed, or the next one to wait for
        self.write = write
        self.attempt: Attempt | None = None  # the attempt being printed (None: none yet)
        self.handle: IO[bytes] | None = None  # its log file, kept open across polls
        self.remote: str | None = None  # where its log is, when on another host

    def run(self) -> None:
        try:
            for _ in engine.changes(fallback=self._fallback):
                # Before the logs: an end read here has all its output written already. One
                # light read per wake-up (every commit wakes it, idle workers' heartbeats too).
                current = engine.follow_look(self.job, self.number)
                self._print_attempts(current)
                if current is None:
                    raise QueueError(f"job {self.job.id!r} was deleted")
                if current.state in (COMPLETED, DEAD) and self.attempt is None:
                    if current.state == DEAD:
                        raise QueueError(f"job {self.job.id!r} is dead: {current.last_error}")
                    return
        finally:
            if self.handle:
                self.handle.close()

    def _fallback(self) -> float:
        """Seconds to wait without a commit: read at each wait."""
        return 1.0 if self.attempt is None else 0.1

    def _print_attempts(self, current) -> None:
        """What the attempts printed since the last look, each one ended moving on to the
        next, until one still runs or none has started."""
        looked = self.number
        while True:
            if self.attempt is None and not self._next_attempt(current, looked):
                return
            attempt = self.attempt
            assert attempt is not None  # taken by _next_attempt
            finished = Attempt.get_by_id(attempt.seq).finished_at is not None  # before reading
            self._open_log(attempt)
            if self.handle:
                _pump(self.handle, self.write)
            if not finished:
                return
            self._end_attempt(attempt)

    def _next_attempt(self, current, looked: int) -> bool:
        """Take the attempt to print next, if it has started."""
        if current is None or (self.number == looked and current.attempt_seq is None):
            return False  # no attempt to follow yet
        self.attempt = (
            Attempt.select()
            .where(Attempt.job == self.job.seq, Attempt.number >= self.number)
            .order_by(Attempt.number)
            .first()
        )
        if self.attempt is None:
            return False
        self.number = self.attempt.number
        if self.number > 1:
            click.echo(f"--- attempt {self.number} ---", err=True)
        return True

    def _open_log(self, attempt: Attempt) -> None:
        """Find where the attempt's output is: its log file here, or another host."""
        if self.handle is not None or self.remote is not None:
            return
        elsewhere = engine.log_elsewhere(self.job, attempt, last=False)
        if elsewhere is not None:
            self.remote = elsewhere[0]
            click.echo(
                f"{self.remote}; its last output is printed when it ends, from the database",
                err=True,
            )
            return
        path = engine.log_path(attempt)
        try:
            # None: the attempt names no log file.
            self.handle = open(path, "rb") if path is not None else None  # noqa: SIM115 (kept open across polls)
        except OSError:  # not there yet
            self.handle = None

    def _end_attempt(self, attempt: Attempt) -> None:
        """The attempt ended: close its log (another host's: print its kept tail)."""
        if self.handle:
            self.handle.close()
        if self.remote is not None:
            tail = engine.kept_output(self.job, attempt)[1]
            if tail is None:
                click.echo(
                    f"(no output of attempt {self.number} is kept in the database)", err=True
                )
            else:
                self.write(tail.encode("utf-8", "replace"))
                sys.stdout.buffer.flush()
        self.attempt = self.handle = self.remote = None
        self.number += 1
