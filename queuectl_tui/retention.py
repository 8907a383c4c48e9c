"""Retention: old ended jobs are deleted (with their attempts, dependency rows and log files)
in small steps, by workers in the background (``keep_completed``, ``keep_dead``) or by hand
(``clear --older-than``).

Why small steps: every claim takes the same write lock, so a step deletes at most
``STEP_ROWS`` jobs and stops early past ``STEP_SECONDS``; the lock is free in between.
Why a lease: one worker prunes at a time (``meta`` key ``pruner``, taken in the first step's
own transaction, so an idle check costs no write). Why the ``PRUNING`` marker: the per-minute
rollups behind ``stats`` keep what is pruned (the schema's delete triggers skip it), so counts of
past windows do not change; ``job_count`` (current counts) follows every delete as always.
A job others wait on (``--after``, a dependent not yet ended) is kept until they end.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from peewee import Tuple

from queuectl_tui import engine, procs
from queuectl_tui.settings import Settings
from queuectl_tui.store import write_transaction
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import COMPLETED, DEAD, PROCESSING, Attempt, Meta

#: A step looks for at most this many jobs, deletes them CHUNK per write transaction (a few
#: ms of lock each), and stops taking more chunks past STEP_SECONDS (a loaded machine is
#: slower per row).
STEP_ROWS = 200
CHUNK = 50
STEP_SECONDS = 0.02
#: How many of a state's oldest jobs (by seq) a worker's look reads: a bounded read however
#: many jobs are kept; a job that ended late behind younger ones goes once those have.
LOOK_ROWS = 1000
#: meta key: "HOLDER UNTIL" of the worker pruning now; renewed by each of its steps (the
#: statements of store/sql/retention.sql name it, as they name store.PRUNING).
LEASE_KEY = "pruner"
LEASE_SECONDS = 30.0


_EVERY_SEQ = 2**62  # "all of them" for a LIMIT
# Lists go in a fixed IN list of CHUNK markers (store/sql/retention.sql), padded with values no
# row has; states and their cutoffs in up to four (state, cutoff) pairs.


def _padded(values: list[Any], pad: object = -1) -> list[Any]:
    return [*values, *[pad] * (CHUNK - len(values))]


def _pairs(cutoff: dict[str, float]) -> list[str | float]:
    return [v for item in [*cutoff.items(), *[("", -1.0)] * (4 - len(cutoff))] for v in item]


def cutoffs(cfg: Settings, now: float) -> dict[str, float]:
    """state -> jobs of that state that ended before this are due to go."""
    rules = {COMPLETED: cfg.keep_completed, DEAD: cfg.keep_dead}
    return {state: now - keep for state, keep in rules.items() if keep is not None}


def find(
    cutoff: dict[str, float],
    *,
    limit: int = STEP_ROWS,
    look: int | None = LOOK_ROWS,
    after: int = 0,
) -> list[int]:
    """Up to ``limit`` seqs due to go (a read, no lock): per state, among its first ``look``
    jobs past seq ``after`` (None: all of them), those older than the state's cutoff and
    that no job still waits on."""
    found: list[int] = []
    for state, before in cutoff.items():
        rows = (
            dialect()
            .execute(
                "prune_find",
                [
                    state,
                    after,
                    _EVERY_SEQ if look is None else look,
                    state,
                    before,
                    limit - len(found),
                ],
            )
            .fetchall()
        )
        found.extend(seq for (seq,) in rows)
        if len(found) >= limit:
            break
    return sorted(found)


def lease_holder(now: float) -> str | None:
    """Who prunes now (None: nobody's lease is current)."""
    row = dialect().execute("prune_lease").fetchone()
    if row is None:
        return None
    holder, _, until = row[0].partition(" ")
    try:
        return holder if float(until) > now else None
    except ValueError:
        return None


def release(holder: str, *, now: float | None = None) -> None:
    """A worker that stops gives its lease back (else the next worker waits for it to lapse).
    A read when it holds none."""
    now = time.time() if now is None else now
    if lease_holder(now) != holder:
        return
    with write_transaction():
        Meta.delete().where(Meta.key == LEASE_KEY, Meta.value.startswith(holder + " ")).execute()


def delete_step(
    seqs: list[int],
    cutoff: dict[str, float],
    *,
    holder: str | None = None,
    now: float | None = None,
) -> int | None:
    """Delete the jobs among ``seqs`` still due to go (checked again under the lock), their
    attempts, dependency rows and log files, in one write transaction that leaves the rollups
    as they are. ``holder``: take or renew the pruning lease first; None when another holds
    it (nothing is written). Returns how many went."""
    now = time.time() if now is None else now
    if not seqs or not cutoff:
        return 0
    if len(seqs) > CHUNK:
        raise ValueError(f"at most {CHUNK} jobs per step")
    names: list[str] = []
    with write_transaction():
        if holder is not None:
            other = lease_holder(now)
            if other is not None and other != holder:
                return None
            dialect().execute("prune_take_lease", [f"{holder} {now + LEASE_SECONDS}"])
        rows = dialect().execute("prune_select", [*_padded(seqs), *_pairs(cutoff)]).fetchall()
        if not rows:
            return 0
        gone = _padded([seq for seq, _, _ in rows])
        dialect().execute("prune_mark")
        met = [seq for seq, _, state in rows if state == COMPLETED]
        if met:  # their dependents have what they waited for (engine.unchain)
            dialect().execute("prune_drop_met", _padded(met))
        if len(met) < len(rows):  # dead ones: any job still waiting on them goes to the DLQ
            engine.unchain([seq for seq, _, state in rows if state != COMPLETED], now=now)
        names = [name for (name,) in dialect().execute("prune_log_files", gone).fetchall() if name]
        dialect().execute("prune_drop_attempts", gone)
        dialect().execute("prune_drop_deps", gone)
        dialect().execute("prune_drop_jobs", gone)
        dialect().execute("prune_unmark")
        # An environment holds the enqueuer's variables, secrets included: it goes with the
        # last job that refers to it (only those of this step are looked at).
        digests = sorted({digest for _, digest, _ in rows if digest})
        if digests:
            dialect().execute("prune_drop_environments", _padded(digests, ""))
    _unlink(names)
    return len(rows)


def _unlink(names: Iterable[str]) -> None:
    logs = engine.logs_dir()
    for name in names:
        try:
            (logs / name).unlink()
        except OSError:
            pass  # gone already, or kept on another host


def prune_step(
    cfg: Settings, *, holder: str, now: float | None = None, rows: int = STEP_ROWS
) -> int | None:
    """One background step of a worker: a read, then (only if something is due and nobody
    else prunes) one short write. Returns how many jobs went (0: nothing due; None: another
    worker prunes)."""
    now = time.time() if now is None else now
    cutoff = cutoffs(cfg, now)
    if not cutoff:
        return 0
    other = lease_holder(now)
    if other is not None and other != holder:
        return None
    seqs = find(cutoff, limit=rows)
    if not seqs:
        return 0
    total, until = 0, time.monotonic() + STEP_SECONDS
    for start in range(0, len(seqs), CHUNK):
        went = delete_step(seqs[start : start + CHUNK], cutoff, holder=holder, now=now)
        if went is None:
            return total or None
        total += went
        if time.monotonic() >= until:
            break
    return total


def clear_older_than(
    seconds: float,
    states: list[str],
    *,
    now: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """``clear --older-than``: every job of ``states`` that ended (or, never having ended, was
    enqueued) more than ``seconds`` ago, in the same short steps as the workers' pruning (the
    stats of past windows keep them). Jobs others still wait on stay."""
    now = time.time() if now is None else now
    total = 0
    for state in dict.fromkeys(s for s in states if s != PROCESSING):
        cutoff, after = {state: now - seconds}, 0
        while True:
            seqs = find(cutoff, limit=STEP_ROWS, look=None, after=after)
            if not seqs:
                break
            went = delete_step(seqs, cutoff, now=now) or 0
            total += went
            after = seqs[-1]
            if progress is not None and went:
                progress(went)
            time.sleep(0.001)  # the writers that queued meanwhile go first
    return total


def count_older_than(seconds: float, states: list[str], *, now: float | None = None) -> int:
    """How many jobs ``clear --older-than`` would look at (for its progress bar)."""
    now = time.time() if now is None else now
    cutoff = {s: now - seconds for s in states if s != PROCESSING}
    if not cutoff:
        return 0
    return dialect().execute("prune_count_due", _pairs(cutoff)).fetchone()[0]


# --- the logs directory's cap ---------------------------------------------------------------

#: Past the cap, files go until the directory is at this share of it (not one file per look).
CAP_TARGET = 0.9


def logs_total() -> int:
    """Bytes in the attempts' log files of this host's logs directory (a listing, no write)."""
    total = 0
    try:
        with os.scandir(engine.logs_dir()) as entries:
            for entry in entries:
                if entry.name.endswith(".log") and not entry.name.startswith("workers.log"):
                    try:
                        total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        pass
    except OSError:
        return 0
    return total


def cap_logs(cap: int, *, now: float | None = None, total: int | None = None) -> int:
    """Keep the log files of this host under ``cap`` bytes: past it, delete those of the
    attempts that ended first until the total is under CAP_TARGET of it, each attempt marked
    ``log_dropped`` (its job's last 4 KB of output stays in the database). Returns how many
    files went; a look under the cap writes nothing."""
    total = logs_total() if total is None else total
    if total <= cap:
        return 0
    now = time.time() if now is None else now
    logs, here, dropped, after = engine.logs_dir(), procs.hostname(), 0, None
    while total > cap * CAP_TARGET:
        query = (
            Attempt.select(Attempt.seq, Attempt.log_file, Attempt.finished_at)
            .where(
                Attempt.finished_at.is_null(False),
                Attempt.log_file.is_null(False),
                Attempt.log_dropped.is_null(),
                (Attempt.host == here) | Attempt.host.is_null(),
            )
            .order_by(Attempt.finished_at, Attempt.seq)
            .limit(STEP_ROWS)
        )
        if after is not None:
            query = query.where(Tuple(Attempt.finished_at, Attempt.seq) > Tuple(*after))
        # execute(): the rows as they are; peewee's stubs type a model query's rows as models.
        rows: list[tuple[int, str, float]] = list(query.tuples().execute())
        if not rows:
            break
        after = rows[-1][2], rows[-1][0]
        chosen: list[tuple[int, str]] = []
        sizes: list[int] = []
        for seq, name, _ in rows:
            try:
                size = (logs / name).stat().st_size
            except OSError:
                continue  # gone already
            chosen.append((seq, name))
            sizes.append(size)
            total -= size
            if total <= cap * CAP_TARGET:
                break
        if not chosen:
            continue
        with write_transaction():  # marked first: a crash between leaves a file, not a lie
            Attempt.update(log_dropped=now).where(
                Attempt.seq.in_([seq for seq, _ in chosen]), Attempt.log_dropped.is_null()
            ).execute()
        _unlink(name for _, name in chosen)
        dropped += len(chosen)
    return dropped
