"""Execution metrics over a window of time: what finished, how long jobs waited and ran, what
failed. Plain functions over the models, shared by ``stats``, ``metrics serve`` and the console.

A window is ``since < attempt.finished_at <= now``: one range of the covering index
``attempt_window`` (models.py), so its cost follows the attempts in the window, not the size
of the queue. Counts, rates, means and maxima are exact. Percentiles are exact up to
``SAMPLE_MAX`` attempts in the window; beyond that they come from an even sample (every k-th
attempt id, ``sampled_every`` = k, each read by its rowid), since sorting every attempt of a
busy hour would cost more than the whole query. Per-queue figures read each attempt's job (for
its queue) unless there is only one queue.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from typing import Any

from queuectl_tui.db import is_sqlite
from queuectl_tui.errors import InvalidInput
from queuectl_tui.models import CLAIMABLE_WHERE, FAILED_OUTCOMES_SQL, JobCount, database

PERCENTILES = (50, 95, 99)
SAMPLE_MAX = 10_000
TOP_ERRORS = 5
DEFAULT_WINDOW = 3600.0

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str) -> float:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w`` -> seconds (more than 0)."""
    match = _DURATION.match(text or "")
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if not match or seconds <= 0 or not math.isfinite(seconds):
        raise InvalidInput(f"bad duration {text!r}: expected a number and a unit (s, m, h, d, w), "
                           "e.g. 90s, 30m, 1h, 2d")
    return seconds


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _sql(text: str) -> str:
    """The statements are SQLite's (json_each, INDEXED BY); other drivers take %s markers."""
    return text if is_sqlite() else text.replace("?", "%s")


# The statements, spelt out as literals (values travel as parameters). Each comes in two forms:
# for one queue (every attempt is that queue's: no job read, no GROUP BY, which would sort the
# whole window) and per queue (each attempt's job gives its queue; ?: a JSON list of queues).
_IN_WINDOW = "a.finished_at > ? AND a.finished_at <= ?"
_JOIN_JOB = " JOIN job j ON j.seq = a.job_seq"
_OF_QUEUES = " AND j.queue IN (SELECT value FROM json_each(?))"
_FIGURES = ("count(*), count(*) FILTER (WHERE a.outcome = 'completed'), "
            "count(*) FILTER (WHERE a." + FAILED_OUTCOMES_SQL + "), "
            "count(*) FILTER (WHERE a.number > 1), "
            "max(a.started_at - a.due_at), sum(a.started_at - a.due_at), count(a.due_at), "
            "max(a.duration), sum(a.duration), min(a.seq)")  # a finished attempt has a duration
_TOTALS = "SELECT NULL, " + _FIGURES + " FROM attempt a WHERE " + _IN_WINDOW
_TOTALS_BY_QUEUE = ("SELECT j.queue, " + _FIGURES + " FROM attempt a" + _JOIN_JOB + " WHERE "
                    + _IN_WINDOW + _OF_QUEUES + " GROUP BY j.queue")
_TIMES = "SELECT NULL, a.started_at - a.due_at, a.duration FROM attempt a WHERE " + _IN_WINDOW
_TIMES_BY_QUEUE = ("SELECT j.queue, a.started_at - a.due_at, a.duration FROM attempt a"
                   + _JOIN_JOB + " WHERE " + _IN_WINDOW + _OF_QUEUES)
# Every k-th attempt id from ?1 to ?4 (step ?2 = ?3), each read by its rowid.
_IDS = "WITH RECURSIVE ids(seq) AS (SELECT ? UNION ALL SELECT seq + ? FROM ids WHERE seq + ? <= ?) "
_SAMPLE = (_IDS + "SELECT NULL, a.started_at - a.due_at, a.duration FROM ids "
           "JOIN attempt a ON a.seq = ids.seq WHERE " + _IN_WINDOW)
_SAMPLE_BY_QUEUE = (_IDS + "SELECT j.queue, a.started_at - a.due_at, a.duration FROM ids "
                    "JOIN attempt a ON a.seq = ids.seq" + _JOIN_JOB + " WHERE " + _IN_WINDOW
                    + _OF_QUEUES)
_FAILED_IN_WINDOW = ("FROM job WHERE state IN ('failed', 'dead') AND finished_at > ? "
                     "AND finished_at <= ?")
_FAILURES = "SELECT NULL, state, last_error, count(*) " + _FAILED_IN_WINDOW + " GROUP BY 2, 3"
_FAILURES_BY_QUEUE = ("SELECT queue, state, last_error, count(*) " + _FAILED_IN_WINDOW
                      + " AND queue IN (SELECT value FROM json_each(?)) GROUP BY 1, 2, 3")
_OLDEST_DUE = ("SELECT id, run_at FROM job INDEXED BY job_due WHERE queue = ? AND "
               + CLAIMABLE_WHERE + " ORDER BY run_at LIMIT 1")
_SLICES_HEAD = ("SELECT min(CAST((a.finished_at - ?) / ? AS INTEGER), ?) AS b, count(*), "
                "avg(a.started_at - a.due_at), max(a.started_at - a.due_at), avg(a.duration), "
                "max(a.duration) FROM attempt a")
_SLICES = _SLICES_HEAD + " WHERE " + _IN_WINDOW + " GROUP BY b"
_SLICES_BY_QUEUE = _SLICES_HEAD + _JOIN_JOB + " WHERE " + _IN_WINDOW + _OF_QUEUES + " GROUP BY b"


def queues_with_jobs() -> list[str]:
    rows = JobCount.select(JobCount.queue).where(JobCount.n > 0).distinct().tuples()
    return sorted(name for (name,) in rows)


def execution_stats(since: float, queues: list[str] | None = None,
                    now: float | None = None) -> dict[str, Any]:
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
    # Every attempt belongs to a job (they are deleted together) of a queue in job_count: with
    # one queue there and nothing filtered out, no attempt needs its job read for its queue.
    single, by_queue, extra = _scope(known, scope, queues)
    base = [since, now] + extra

    total, low = 0, None
    if by_queue:
        rows = database.execute_sql(_sql(_TOTALS_BY_QUEUE), base).fetchall()
    else:
        rows = database.execute_sql(_sql(_TOTALS), base).fetchall()
    for name, n, done, failed, reruns, wmax, wsum, wn, rmax, rsum, first in rows:
        name = name if by_queue else single
        if not n or name not in figures:
            continue
        total += n
        rn = n
        low = first if low is None else min(low, first)
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
        if by_queue:
            cursor = database.execute_sql(_sql(_TIMES_BY_QUEUE), base)
        else:
            cursor = database.execute_sql(_sql(_TIMES), base)
    else:
        # An even sample without a second pass over the window: every k-th attempt id from the
        # window's first to the last id there is, each read by its rowid (those that finished
        # outside the window, earlier or not yet, are left out by the same condition).
        high = database.execute_sql("SELECT max(seq) FROM attempt").fetchone()[0]
        every = math.ceil((high - low + 1) / SAMPLE_MAX)
        if by_queue:
            cursor = database.execute_sql(_sql(_SAMPLE_BY_QUEUE), [low, every, every, high] + base)
        else:
            cursor = database.execute_sql(_sql(_SAMPLE), [low, every, every, high] + base)
    for name, wait, run in cursor:
        name = name if by_queue else single
        if name in samples:
            if wait is not None:
                samples[name][0].append(wait)
            if run is not None:
                samples[name][1].append(run)
    for name, (waits, runs) in samples.items():
        _percentiles(figures[name], waits, runs)
    _percentiles(overall, [w for ws, _ in samples.values() for w in ws],
                 [r for _, rs in samples.values() for r in rs])

    _failures(figures, overall, scope, single, since, now)
    _oldest_due(figures, overall, scope, now)
    minutes = max(now - since, 1e-9) / 60
    for fig in [*figures.values(), overall]:
        _finish(fig, minutes)
    return {"since": since, "now": now, "window_seconds": now - since, "sampled_every": every,
            "overall": overall, "queues": figures}


def _scope(
    known: list[str], scope: list[str], queues: list[str] | None
) -> tuple[str | None, bool, list]:
    """(the one queue every attempt belongs to, or None; whether to read each attempt's job
    for its queue; the parameters that go with that). Every attempt belongs to a job (they are
    deleted together) of a queue in job_count: with one queue there, and that queue wanted, no
    attempt's job needs reading."""
    single = known[0] if len(known) == 1 and known[0] in scope else None
    by_queue = single is None and (queues is not None or len(known) > 1)
    return single, by_queue, [json.dumps(scope)] if by_queue else []


def _empty() -> dict[str, Any]:
    return {"attempts": 0, "completed": 0, "failed_attempts": 0, "dead": 0,
            "throughput_per_min": 0.0, "success_rate": None, "retries_per_job": None,
            "wait": _times(), "run": _times(),
            "oldest_due": None, "top_errors": [],
            "_reruns": 0, "_wait_sum": 0.0, "_wait_n": 0, "_run_sum": 0.0, "_run_n": 0,
            "_errors": Counter()}


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


def _failures(figures: dict, overall: dict, scope: list[str], single: str | None, since: float,
              now: float) -> None:
    """Jobs that went to the DLQ in the window, and the last errors of those that failed or
    died in it (partial index job_failed: only failing jobs are in it)."""
    if single is not None:  # no need to read or group by the queue
        rows = database.execute_sql(_sql(_FAILURES), [since, now])
    else:
        rows = database.execute_sql(_sql(_FAILURES_BY_QUEUE), [since, now, json.dumps(scope)])
    for name, state, error, n in rows:
        name = single if single is not None else name
        for fig in (figures[name], overall):
            if state == "dead":
                fig["dead"] += n
            fig["_errors"][error or "(no error recorded)"] += n


def _oldest_due(figures: dict, overall: dict, scope: list[str], now: float) -> None:
    """Per queue, the waiting job due the longest: the head of its job_due index."""
    for name in scope:
        row = database.execute_sql(_sql(_OLDEST_DUE), [name]).fetchone()
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


def timeline(since: float, now: float, buckets: int = 30,
             queues: list[str] | None = None) -> list[dict[str, Any]]:
    """The window cut in ``buckets`` equal slices, oldest first: per slice, attempts finished,
    mean and max wait and run time (None when nothing finished in it). The console's chart."""
    width = max(now - since, 1e-9) / buckets
    known = queues_with_jobs()
    scope = sorted(set(queues)) if queues else known
    _single, by_queue, extra = _scope(known, scope, queues)
    series = [{"start": since + i * width, "attempts": 0, "wait_mean": None, "wait_max": None,
               "run_mean": None, "run_max": None} for i in range(buckets)]
    params = [since, width, buckets - 1, since, now, *extra]
    if by_queue:
        rows = database.execute_sql(_sql(_SLICES_BY_QUEUE), params)
    else:
        rows = database.execute_sql(_sql(_SLICES), params)
    for index, n, wmean, wmax, rmean, rmax in rows:  # the last slice includes ``now`` itself
        series[int(index)].update(attempts=n, wait_mean=wmean, wait_max=wmax, run_mean=rmean,
                                  run_max=rmax)
    return series
