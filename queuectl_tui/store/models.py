"""Peewee models: the whole persistent state of the queue.

Times are UNIX seconds (floats) so that ordering and arithmetic are cheap and identical on
SQLite and PostgreSQL; the faces render them as ISO-8601 UTC. Every job has an internal
integer ``seq`` (insertion order, keyset pagination, what keeps log file names apart) besides
the user-facing ``id``, which enters a path only escaped (``engine.log_name``).

The tables, their indexes and triggers are made from ``sql/<backend>/schema.sql``, which says
what each column is for; these models map them for the ORM (tests/engine/test_schema.py holds
the two equal).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    CompositeKey,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

if TYPE_CHECKING:
    from peewee import SchemaManager

database = DatabaseProxy()


class JobState(StrEnum):
    """Where a job is. The same five words in the data, in --json and on both faces."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"  # waiting out its backoff before a retry
    DEAD = "dead"  # in the DLQ


PENDING, PROCESSING, COMPLETED, FAILED, DEAD = JobState
#: The state names as plain strings (click's Choice would match enum members by name).
STATES = tuple(state.value for state in JobState)
#: States a worker may claim from (a failed job is waiting out its backoff).
CLAIMABLE = (PENDING, FAILED)


class Outcome(StrEnum):
    """How one attempt ended (``attempt.outcome``; NULL while it runs)."""

    COMPLETED = "completed"
    FAILED = "failed"  # a non-zero exit, or the command could not start
    TIMEOUT = "timeout"
    LOST = "lost"  # its worker died; found by recovery
    INTERRUPTED = "interrupted"  # a forced stop, or never started: gives its retry back
    CANCELLED = "cancelled"


#: Outcomes that count as failed runs (metrics, the throughput chart).
FAILED_OUTCOMES = (Outcome.FAILED, Outcome.TIMEOUT, Outcome.LOST)


class WorkerStatus(StrEnum):
    """What a worker says it is doing (``worker.status``), or ``lost`` on the faces for one
    whose heartbeat stopped (never stored)."""

    IDLE = "idle"
    BUSY = "busy"
    STOPPING = "stopping"  # finishing its job, then exits
    LOST = "lost"


class BaseModel(Model):
    #: Set on each model class by peewee (its stubs leave it out): the table's DDL.
    _schema: ClassVar[SchemaManager]

    class Meta:
        database = database
        legacy_table_names = False


class Meta(BaseModel):
    """Key/value facts about the database itself, such as its schema version."""

    key = CharField(primary_key=True)
    value = TextField()


class Setting(BaseModel):
    key = CharField(primary_key=True)
    value = TextField()  # JSON


class Environment(BaseModel):
    """Environments recorded at enqueue, stored once per distinct content (jobs share them)."""

    digest = CharField(primary_key=True)
    data = TextField()  # JSON object


class Worker(BaseModel):
    #: Never reused: allocated from the ``last_worker_id`` counter in ``meta`` (see
    #: engine.register_worker), not from SQLite's rowid, which hands a deleted top id out again.
    id = AutoField()
    host = CharField()
    pid = IntegerField()
    proc_started = DoubleField()  # psutil create_time: tells our process from a reused PID
    started_at = DoubleField()
    heartbeat_at = DoubleField()
    status = CharField(default=WorkerStatus.IDLE)  # a WorkerStatus but LOST
    current_job = CharField(null=True)
    queues = CharField(null=True)  # comma-separated, NULL = every queue


class Job(BaseModel):
    seq = AutoField()
    id = CharField(unique=True)
    command = TextField()
    queue = CharField(default="default")
    state = CharField(default=PENDING)
    priority = IntegerField(default=0)
    attempts = IntegerField(default=0)
    max_retries = IntegerField()
    backoff_base = DoubleField()
    timeout = DoubleField(null=True)
    run_at = DoubleField()
    created_at = DoubleField()
    updated_at = DoubleField()
    started_at = DoubleField(null=True)
    finished_at = DoubleField(null=True)
    last_error = TextField(null=True)
    exit_code = IntegerField(null=True)
    output_tail = TextField(null=True)
    cwd = TextField()
    env_digest = CharField(null=True)  # -> Environment.digest
    worker_id = IntegerField(null=True)
    cancel_requested = BooleanField(default=False)
    #: Random, fresh at every claim, also stored on that claim's attempt: every write about the
    #: run (record_process, finish, recovery) is fenced on it, so a stale worker never lands.
    claim_token = BigIntegerField(null=True)
    #: How many of the jobs named by ``--after`` have not completed yet; claimable only at 0.
    waiting_on = IntegerField(default=0)
    #: The claim order: ``priority - priority_aging * run_at / 60``. Ordering by effective
    #: priority ``priority + priority_aging * minutes waited since run_at`` is ordering by this,
    #: which does not change with time and so can be indexed. Set at insert (engine) and kept
    #: by a trigger when priority or run_at change (schema.sql); re-keyed when the setting changes.
    rank = DoubleField(default=0)
    #: The claim_token of the run that is paused (its shell stopped by SIGSTOP: ``pause
    #: JOB_ID``, or any stop), set and cleared by the worker that runs it. Compared with
    #: ``claim_token``, so it needs no clearing when that run ends (see ``paused``).
    paused_token = BigIntegerField(null=True)

    @property
    def paused(self) -> bool:
        """Running, but stopped (SIGSTOP): its state stays processing, its worker waits."""
        return (
            self.state == PROCESSING
            and self.paused_token is not None
            and self.paused_token == self.claim_token
        )

    #: A free-text tag shown beside the id and found by ``--search`` (NULL: none).
    label = TextField(null=True)
    #: The schedule that made this job (``schedule add``; NULL: enqueued by hand). A name, not
    #: a key: the job keeps it after its schedule is removed.
    schedule = CharField(null=True)


#: The aging rate (``priority_aging``, points per minute) as SQL, read in the statement's own
#: transaction. DOUBLE PRECISION is a REAL on SQLite too. Spelt out in the rank triggers of
#: schema.sql (a test holds them equal); here for the statements of settings.py and
#: engine/queues.py.
AGING_RATE_SQL = (
    "COALESCE((SELECT CAST(value AS DOUBLE PRECISION) FROM setting "
    "WHERE key = 'priority_aging'), 0)"
)

#: Rows a claim may take: the condition of the job_claim and job_due indexes (schema.sql; a test
#: holds them equal), spelt out literally: SQLite uses a partial index only when the query
#: repeats its condition with literals, not parameters.
CLAIMABLE_WHERE = "state IN ('pending', 'failed') AND waiting_on = 0"


class JobCount(BaseModel):
    """How many jobs are in each state of each queue, kept exact by triggers on ``job`` (schema.sql)
    in the same transaction as every change: counts (and a queue's running jobs, which its
    limit is checked against at every claim) are read in a few rows, not a scan of every job."""

    queue = CharField()
    state = CharField()
    n = BigIntegerField(default=0)

    class Meta:
        primary_key = CompositeKey("queue", "state")


class Queue(BaseModel):
    """Every queue a job was ever put on, with what a person set on it. A row is added when a
    job names a new queue; the claim visits the rows, so it costs one step per queue."""

    name = CharField(primary_key=True)
    #: True/False when ``pause``/``resume`` named this queue; NULL: as ``pause``/``resume``
    #: without a queue last said (meta ``paused_all``).
    paused = BooleanField(null=True)
    #: At most this many of its jobs run at once across all workers (NULL: no limit).
    max_running = IntegerField(null=True)


class Dependency(BaseModel):
    """``enqueue --after``: the job (``job_seq``) waits until the job ``dep_seq`` completes.
    The id is kept too, to name a dependency that was deleted."""

    job = ForeignKeyField(
        Job,
        field=Job.seq,
        column_name="job_seq",
        on_delete="CASCADE",
        index=False,
        backref="dependency_rows",
    )
    dep_seq = IntegerField(index=True)
    dep_id = CharField()

    class Meta:
        table_name = "job_dep"
        primary_key = CompositeKey("job", "dep_seq")


class Attempt(BaseModel):
    """One run of a job: who ran it, when, how it ended, where its output went."""

    seq = AutoField()
    job = ForeignKeyField(
        Job,
        field=Job.seq,
        column_name="job_seq",
        on_delete="CASCADE",
        index=False,
        backref="attempt_rows",
    )
    number = IntegerField()
    worker_id = IntegerField(null=True)
    host = CharField(null=True)
    pid = IntegerField(null=True)  # the job's shell; its process group has the same id
    pid_started = DoubleField(null=True)
    started_at = DoubleField()
    finished_at = DoubleField(null=True)
    exit_code = IntegerField(null=True)
    duration = DoubleField(null=True)
    outcome = CharField(null=True)  # an Outcome
    error = TextField(null=True)
    log_file = CharField(null=True)  # relative to logs/ (engine.log_name; older: job{seq}-{n}.log)
    claim_token = BigIntegerField(null=True)  # the job's claim_token when this attempt was claimed
    due_at = DoubleField(null=True)  # the job's run_at when claimed: waited = started_at - due_at
    # What the attempt's process tree cost, recorded when it ends (NULL: not measured).
    cpu_seconds = DoubleField(null=True)  # user + system, descendants included
    peak_rss_bytes = BigIntegerField(null=True)
    processes = IntegerField(null=True)  # how many processes the tree started
    #: The job's queue, copied by the claim: the metrics group attempts by it without reading
    #: their jobs, and the rollup below is keyed by it (also when the job is being deleted).
    queue = CharField(null=True)
    #: When its log file was deleted to keep the logs directory under ``max_logs_total``
    #: (retention.cap_logs); NULL: not dropped.
    log_dropped = DoubleField(null=True)

    # Not columns, for the type checker: peewee's accessor of the job's seq (named as the
    # column), and the settings' version a claim read with the attempt (engine.claims).
    job_seq: int
    settings_version: str | None

    class Meta:
        indexes = ((("job", "number"), True),)


#: Attempt outcomes that count as failed runs (metrics, the throughput chart).
FAILED_OUTCOMES_SQL = "outcome IN ('failed', 'timeout', 'lost')"


class AttemptMinute(BaseModel):
    """Finished attempts per minute of ``finished_at`` (``minute`` = int(finished_at / 60)) and
    queue, kept by triggers on ``attempt`` (schema.sql) in the same transaction as every change, so
    that a window's whole minutes cost one row per queue, not one per attempt (metrics.py).
    Counts and sums follow inserts, updates and deletes exactly; a maximum cannot be taken
    back, so a row whose maximum went away is marked ``dirty`` and its minute is read from
    the attempts instead (a row left with no attempts is deleted)."""

    minute = BigIntegerField()
    queue = CharField()
    attempts = BigIntegerField(default=0)
    completed = BigIntegerField(default=0)
    failed = BigIntegerField(default=0)  # outcomes failed, timeout, lost
    reruns = BigIntegerField(default=0)  # attempts numbered above 1
    wait_n = BigIntegerField(default=0)  # attempts with a due time: wait = started_at - due_at
    wait_sum = DoubleField(default=0)
    wait_max = DoubleField(null=True)
    run_n = BigIntegerField(default=0)  # attempts with a duration
    run_sum = DoubleField(default=0)
    run_max = DoubleField(null=True)
    min_seq = BigIntegerField(null=True)  # at or below the first attempt's seq (the sample's start)
    dirty = IntegerField(default=0)

    class Meta:
        table_name = "attempt_minute"
        primary_key = CompositeKey("minute", "queue")


class FailedMinute(BaseModel):
    """Jobs that are failed or dead, per minute of their ``finished_at``, queue, state and last
    error, kept by triggers on ``job`` (schema.sql): a window's DLQ count and most frequent errors
    in one row per (minute, queue, state, error), not one per job. Plain counts, so exact
    through every change (a failed job that is claimed again leaves its row)."""

    minute = BigIntegerField()
    queue = CharField()
    state = CharField()
    error = TextField()  # last_error, '' for none
    n = BigIntegerField(default=0)

    class Meta:
        table_name = "job_failed_minute"
        primary_key = CompositeKey("minute", "queue", "state", "error")


class Schedule(BaseModel):
    """A recurring job (``schedule add``, schedules.py): every DURATION or at the times of a
    cron expression. ``next_at`` is the earliest due time not yet turned into a job; the live
    worker that finds it due makes the job (id ``NAME@<due time>``, unique in ``job``) and moves
    ``next_at`` on in the same transaction, so each due time makes one job however many workers
    look."""

    name = CharField(primary_key=True)
    #: The job each due time makes, as an enqueue spec (JSON: command, queue, priority,
    #: max_retries, timeout): a key left out takes the setting's default at each run.
    spec = TextField()
    cron = CharField(null=True)  # five fields; NULL for an ``every`` schedule
    every = DoubleField(null=True)  # whole seconds between due times, counted from created_at
    tz = CharField(default="UTC")  # the zone the cron fields are read in
    catch_up = CharField(default="latest")  # latest, all or none: due times missed by all workers
    no_overlap = BooleanField(default=False)  # skip a due time while the last job is unfinished
    paused = BooleanField(default=False)
    cwd = TextField()
    env_digest = CharField(null=True)  # -> Environment.digest: the environment of ``schedule add``
    created_at = DoubleField()
    next_at = DoubleField(null=True)  # NULL: no due time left (a cron date that never comes)
    last_at = DoubleField(null=True)  # the due time (or ``schedule run`` time) of the last job made
    last_job = CharField(null=True)  # that job's id
    skipped_at = DoubleField(null=True)  # the last due time that made no job, and why
    skipped_why = TextField(null=True)


#: Every table's model (tests/engine/test_schema.py holds each equal to its table).
MODELS = [
    Meta,
    Setting,
    Environment,
    Worker,
    Job,
    JobCount,
    Queue,
    Dependency,
    Attempt,
    AttemptMinute,
    FailedMinute,
    Schedule,
]
