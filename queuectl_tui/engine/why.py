"""Why a job is where it is: one read for ``present.explain``, which words these facts and
reads nothing itself."""

from __future__ import annotations

import time
from typing import NamedTuple

from queuectl_tui.engine.actions import get_job
from queuectl_tui.engine.queues import Hold, aging_rate, effective_priority, holds
from queuectl_tui.engine.reads import attempts_run
from queuectl_tui.engine.workers import busy, live_workers, worker_alive
from queuectl_tui.store.models import COMPLETED, DEAD, FAILED, PROCESSING, Job, Worker


class WhyFacts(NamedTuple):
    """What ``present.explain`` says of a job, read at ``now``; a fact its sentence does not
    need is left unread (None or 0)."""

    job: Job
    now: float
    runs: int | None = None  # attempts run (ended jobs; a failed one backing off)
    worker: Worker | None = None  # a running job's worker (None: that row is gone)
    worker_alive: bool = False  # that worker is alive
    hold: Hold | None = None  # what holds a waiting job back (``holds``)
    aging_rate: float = 0.0  # ``priority_aging`` (waiting jobs)
    effective_priority: float | None = None  # with aging on, the priority it has reached
    workers: int | None = None  # a due job nothing holds: live workers serving its queue
    working: int = 0  # ... of which busy


def why_facts(job: Job | str, *, now: float | None = None) -> WhyFacts:
    """The facts of ``present.explain`` (a job or its id; NotFound for an unknown id): the
    reads it made while it worded them, made here, only those its sentence needs."""
    if isinstance(job, str):
        job = get_job(job)
    now = time.time() if now is None else now
    if job.state in (COMPLETED, DEAD):
        return WhyFacts(job, now, runs=attempts_run(job))
    if job.state == PROCESSING:
        worker = Worker.get_or_none(Worker.id == job.worker_id)
        return WhyFacts(
            job,
            now,
            worker=worker,
            worker_alive=worker is not None and worker_alive(worker, now=now),
        )
    hold = holds([job]).get(job.seq)
    rate = aging_rate()
    priority = effective_priority(job, now=now, rate=rate) if rate else None
    facts = WhyFacts(job, now, hold=hold, aging_rate=rate, effective_priority=priority)
    if job.run_at > now:
        return facts._replace(runs=attempts_run(job)) if job.state == FAILED else facts
    if hold is not None and (hold.after or hold.paused or hold.at_limit):
        return facts
    serving = [w for w in live_workers(now) if not w.queues or job.queue in w.queues.split(",")]
    return facts._replace(workers=len(serving), working=sum(1 for w in serving if busy(w)))
