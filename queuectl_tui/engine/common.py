"""Small pieces shared by the engine's concerns: chunk sizes, the state groups, working
directories, ids and stored environments."""

from __future__ import annotations

import hashlib
import json
import os

from queuectl_tui.errors import InvalidInput
from queuectl_tui.store.models import (
    PROCESSING,
    STATES,
    Environment,
    Job,
    Worker,
)

TAIL_BYTES = 4096
#: Ids per ``IN (...)`` list: well under SQLite's limit on bound parameters.
IN_CHUNK = 500
NOT_RUNNING = tuple(s for s in STATES if s != PROCESSING)


def _check_cwd(cwd: str) -> str:
    try:  # a directory name that is not UTF-8 cannot be stored (nor shown) as text
        cwd.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"the working directory {cwd.encode('utf-8', 'surrogateescape')!r} "
            "has a name that is not UTF-8; enqueue from another directory"
        ) from None
    return cwd


def _new_id() -> str:
    return os.urandom(6).hex()


def environment_row(env: dict[str, str]) -> tuple[str, str]:
    data = json.dumps(env, sort_keys=True)
    return hashlib.sha256(data.encode("utf-8", "surrogateescape")).hexdigest(), data


def check_cwd(cwd: str) -> str:
    """A working directory a job (or a schedule's jobs) may be given: one whose name is UTF-8."""
    return _check_cwd(cwd)


def save_environment(env: dict[str, str]) -> str:
    """Store ``env`` once (jobs and schedules share environments); its digest. The caller
    holds the write transaction."""
    digest, data = environment_row(env)
    Environment.insert(digest=digest, data=data).on_conflict_ignore().execute()
    return digest


def job_environment(job: Job) -> dict[str, str]:
    if job.env_digest is None:
        return {}
    row = Environment.get_or_none(Environment.digest == job.env_digest)
    return json.loads(row.data) if row else {}


def _queues_of(worker: Worker) -> list[str]:
    return worker.queues.split(",") if worker.queues else []
