"""Execution metrics over a window of time: what finished, how long jobs waited and ran, what
failed. Plain functions over the models, shared by ``stats``, ``metrics serve`` and the console.

A window is ``since < attempt.finished_at <= now``. Its whole minutes are read from the
rollup ``attempt_minute`` (one row per queue and minute, kept by triggers: models.AttemptMinute)
and only the partial minutes at its edges from the attempts, one range each of the covering
index ``attempt_window`` (store/models.py): the cost follows minutes x queues plus the attempts of
two minutes, not the attempts of the window. Counts, rates, means and maxima are exact.
Percentiles are exact up to ``SAMPLE_MAX`` attempts in the window; beyond that they come from
an even sample (every k-th attempt id, ``sampled_every`` = k, each read by its rowid), since
sorting every attempt of a busy hour would cost more than the whole query. Each attempt carries
its queue (copied by the claim), so per-queue figures read no job. The statements are named in
``store/sql/metrics.sql`` (each backend's own forms in ``store/sql/<backend>/metrics.sql``).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from typing import Any

from peewee import fn

from queuectl_tui.errors import InvalidInput
from queuectl_tui.spec import parse_seconds
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import JobCount

PERCENTILES = (50, 95, 99)
SAMPLE_MAX = 10_000
TOP_ERRORS = 5
DEFAULT_WINDOW = 3600.0


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w``, ``2h30m`` or plain seconds -> seconds (more
    than 0), by ``spec.parse_seconds``."""
    try:
        seconds = parse_seconds(text)
    except InvalidInput:
        seconds = 0.0
    if not seconds or seconds <= 0:
        raise InvalidInput(
            f"bad duration {text!r}: expected seconds or a number and a unit "
            "(s, m, h, d, w), e.g. 90s, 30m, 1h, 2h30m, 2d"
        )
    return seconds


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def minute_of(at: float) -> int:
    """The rollup's minute of a finish time: as the triggers compute it (store/schema.py)."""
    return int(at / 60)


def queues_with_jobs() -> list[str]:
    rows = (
        JobCount.select(JobCount.queue)
        .group_by(JobCount.queue)  # PostgreSQL: summed slots
        .having(fn.SUM(JobCount.n) > 0)
        .tuples()
    )
    # execute(): the rows as they are; peewee's stubs type a model query's rows as models.
    return sorted(name for (name,) in rows.execute())


def execution_stats(
    since: float, queues: list[str] | None = None, now: float | None = None
) -> dict[str, Any]:
    """Figures per queue and overall for attempts that finished in ``(since, now]``.

    Per queue (and under ``overall``): attempts, completed, failed_attempts (failed, timed
    out, worker lost), dead (jobs that went to the DLQ in the window), throughput_per_min
    (completed per minute of the window), success_rate (completed / (completed + failed
    attempts)), retries_per_job (reruns, i.e. attempts numbered above 1, per first run),
    wait (due -> started) and run (duration) as p50/p95/p99/max/mean seconds with the count and
    sum of the attempts measured, oldest_due (the
    waiting job due the longest, now) and top_errors (most frequent last errors of the jobs
    that failed or died in the window). ``queues`` limits every figure to those queues.
    """
    now = time.time() if now is None else now
    known = queues_with_jobs()
    scope = sorted(set(queues)) if queues else known
    figures = {name: _empty() for name in scope}
    overall = _empty()
    base = [since, now]

    # The minutes wholly inside the window come from the rollup; the partial ones at its edges
    # (and any whose maximum went with a deleted attempt) from the attempts themselves.
    first, last = minute_of(since), minute_of(now)
    rows: list[tuple[Any, ...]] = []
    dirty: list[int] = []
    if last - first >= 2:
        rolled = dialect().execute("window_minutes", [first + 1, last - 1]).fetchall()
        dirty = sorted({row[0] for row in rolled if row[-1]})
        rows = [row[1:-1] for row in rolled if row[0] not in dirty]
    for bounds in _edges(since, now, first, last, dirty):
        rows += dialect().execute("window_scan", bounds).fetchall()

    total, low = 0, None
    for name, n, done, failed, reruns, wmax, wsum, wn, rmax, rsum, rn, seq in rows:
        if not n or (name not in figures and not _grow(figures, name, queues)):
            continue
        total += n
        low = seq if low is None else min(low, seq)
        for fig in (figures[name], overall):
            fig["attempts"] += n
            fig["completed"] += done
            fig["failed_attempts"] += failed
            fig["_reruns"] += reruns
            for key, top, add, count in (("wait", wmax, wsum, wn), ("run", rmax, rsum, rn)):
                if count:
                    fig[key]["max"] = max(fig[key]["max"] or 0.0, top)
                    fig[f"_{key}_sum"] += add
                    fig[f"_{key}_n"] += count

    samples: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in scope}
    every = 1
    if total <= SAMPLE_MAX:  # exact: every attempt of the window
        cursor = dialect().execute("window_times", base)
    else:
        # An even sample without a second pass over the window: every k-th attempt id from the
        # window's first to the last id there is, each read by its rowid (those that finished
        # outside the window, earlier or not yet, are left out by the same condition).
        high = dialect().execute("last_attempt_seq").fetchone()[0]
        every = math.ceil((high - low + 1) / SAMPLE_MAX)
        cursor = dialect().execute("window_sample", [low, every, every, high] + base)
    for name, wait, run in cursor:
        if name in samples:
            if wait is not None:
                samples[name][0].append(wait)
            if run is not None:
                samples[name][1].append(run)
    for name, (waits, runs) in samples.items():
        _percentiles(figures[name], waits, runs)
    _percentiles(
        overall,
        [w for ws, _ in samples.values() for w in ws],
        [r for _, rs in samples.values() for r in rs],
    )

    _failures(figures, overall, since, now, first, last, queues)
    _oldest_due(figures, overall, scope, now)
    minutes = max(now - since, 1e-9) / 60
    for fig in [*figures.values(), overall]:
        _finish(fig, minutes)
    return {
        "since": since,
        "now": now,
        "window_seconds": now - since,
        "sampled_every": every,
        "overall": overall,
        "queues": figures,
    }


def _empty() -> dict[str, Any]:
    return {
        "attempts": 0,
        "completed": 0,
        "failed_attempts": 0,
        "dead": 0,
        "throughput_per_min": 0.0,
        "success_rate": None,
        "retries_per_job": None,
        "wait": _times(),
        "run": _times(),
        "oldest_due": None,
        "top_errors": [],
        "_reruns": 0,
        "_wait_sum": 0.0,
        "_wait_n": 0,
        "_run_sum": 0.0,
        "_run_n": 0,
        "_errors": Counter(),
    }


def _times() -> dict[str, Any]:
    return {
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
        "mean": None,
        "count": 0,
        "sum": 0.0,
    }


def _percentiles(fig: dict[str, Any], waits: list[float], runs: list[float]) -> None:
    for key, values in (("wait", sorted(waits)), ("run", sorted(runs))):
        for p in PERCENTILES:
            fig[key][f"p{p}"] = percentile(values, p)


def _edges(
    since: float, now: float, first: int, last: int, minutes: list[int]
) -> list[list[float]]:
    """Parameters of the scans of the window's partial minutes (``first`` and ``last``, or
    the whole window when it has no whole minute between them) and of ``minutes``. The index
    range is each minute's times with a second to spare either way (a time's minute is its
    quotient, rounded): the minute test then decides, as the triggers did."""
    spans = (
        [(first, first), (last, last)] + [(m, m) for m in minutes]
        if last - first >= 2
        else [(first, last)]
    )
    return [[max(since, low * 60 - 1), min(now, high * 60 + 61), low, high] for low, high in spans]


def _grow(figures: dict[str, dict[str, Any]], name: str, queues: list[str] | None) -> bool:
    """Every queue's figures were asked for: a queue with no jobs left (all pruned by
    retention) still has its past windows, from the rollups."""
    if queues:
        return False
    figures[name] = _empty()
    return True


def _failures(
    figures: dict[str, dict[str, Any]],
    overall: dict[str, Any],
    since: float,
    now: float,
    first: int,
    last: int,
    queues: list[str] | None = None,
) -> None:
    """Jobs that went to the DLQ in the window, and the last errors of those that failed or
    died in it: whole minutes from the rollup, the edges from the partial index job_failed."""
    rows: list[tuple[Any, ...]] = []
    if last - first >= 2:
        rows = dialect().execute("failed_minutes", [first + 1, last - 1]).fetchall()
    for bounds in _edges(since, now, first, last, []):
        rows += dialect().execute("window_failures", bounds).fetchall()
    for name, state, error, n in rows:
        if name not in figures and not _grow(figures, name, queues):
            continue
        for fig in (figures[name], overall):
            if state == "dead":
                fig["dead"] += n
            fig["_errors"][error or "(no error recorded)"] += n


def _oldest_due(
    figures: dict[str, dict[str, Any]], overall: dict[str, Any], scope: list[str], now: float
) -> None:
    """Per queue, the waiting job due the longest: the head of its job_due index."""
    for name in scope:
        row = dialect().execute("queue_oldest_due", [name]).fetchone()
        if row is None or row[1] > now:
            continue
        due = {"id": row[0], "queue": name, "due_at": row[1], "waited": now - row[1]}
        figures[name]["oldest_due"] = due
        if overall["oldest_due"] is None or due["due_at"] < overall["oldest_due"]["due_at"]:
            overall["oldest_due"] = due


def _finish(fig: dict[str, Any], minutes: float) -> None:
    reruns, firsts = fig.pop("_reruns"), fig["attempts"]
    firsts -= reruns
    ended = fig["completed"] + fig["failed_attempts"]
    fig["throughput_per_min"] = fig["completed"] / minutes
    fig["success_rate"] = fig["completed"] / ended if ended else None
    fig["retries_per_job"] = reruns / firsts if firsts else None
    for key in ("wait", "run"):
        total, count = fig.pop(f"_{key}_sum"), fig.pop(f"_{key}_n")
        fig[key].update(mean=total / count if count else None, count=count, sum=total)
    errors = fig.pop("_errors")
    fig["top_errors"] = [
        {"error": error, "count": n}
        for error, n in sorted(errors.items(), key=lambda e: (-e[1], e[0]))[:TOP_ERRORS]
    ]


def timeline(
    since: float, now: float, buckets: int = 30, queues: list[str] | None = None
) -> list[dict[str, Any]]:
    """The window cut in ``buckets`` equal slices, oldest first: per slice, attempts finished,
    mean and max wait and run time (None when nothing finished in it). The console's chart."""
    width = max(now - since, 1e-9) / buckets
    # Every attempt is of a job (they are deleted together), so of a queue that has jobs: only
    # a list of queues given leaves some out.
    by_queue = bool(queues)
    extra = [json.dumps(sorted(set(queues)))] if queues else []
    series = [
        {
            "start": since + i * width,
            "attempts": 0,
            "wait_mean": None,
            "wait_max": None,
            "run_mean": None,
            "run_max": None,
        }
        for i in range(buckets)
    ]
    params = [since, width, buckets - 1, since, now, *extra]
    if by_queue:
        rows = dialect().execute("window_slices_of_queues", params)
    else:
        rows = dialect().execute("window_slices", params)
    for index, n, wmean, wmax, rmean, rmax in rows:  # the last slice includes ``now`` itself
        series[int(index)].update(
            attempts=n, wait_mean=wmean, wait_max=wmax, run_mean=rmean, run_max=rmax
        )
    return series
