"""Peewee models: the whole persistent state of the queue.

Times are UNIX seconds (floats) so that ordering and arithmetic are cheap and identical on
SQLite and PostgreSQL; the faces render them as ISO-8601 UTC. Every job has an internal
integer ``seq`` (insertion order, keyset pagination, log file names) besides the user-facing
``id``, which is data only and never becomes part of a path.
"""

from __future__ import annotations

from peewee import (
    AutoField,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
)

database = DatabaseProxy()

PENDING = "pending"
PROCESSING = "processing"
COMPLETED = "completed"
FAILED = "failed"
DEAD = "dead"
STATES = (PENDING, PROCESSING, COMPLETED, FAILED, DEAD)
#: States a worker may claim from (a failed job is waiting out its backoff).
CLAIMABLE = (PENDING, FAILED)


class BaseModel(Model):
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
    status = CharField(default="idle")  # idle | busy | stopping
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


# Claim: the next due job in (priority desc, run_at, seq) order among claimable rows only.
Job.add_index(
    Job.index(Job.priority.desc(), Job.run_at, Job.seq, name="job_claim").where(
        Job.state.in_(CLAIMABLE)
    )
)
# When the next waiting job becomes due (an idle worker's sleep): MIN(run_at) of claimable rows.
Job.add_index(Job.index(Job.run_at, name="job_due").where(Job.state.in_(CLAIMABLE)))
# Per-state pages (ordered by seq) and the oldest pending job come from this one.
Job.add_index(Job.index(Job.state, Job.seq, name="job_state_seq"))


class JobCount(BaseModel):
    """How many jobs are in each state, kept exact by triggers on ``job`` (db.py) in the same
    transaction as every change: counts are read in a few rows, not a scan of every job."""

    state = CharField(primary_key=True)
    n = BigIntegerField(default=0)


class Attempt(BaseModel):
    """One run of a job: who ran it, when, how it ended, where its output went."""

    seq = AutoField()
    job = ForeignKeyField(Job, field=Job.seq, column_name="job_seq", on_delete="CASCADE",
                          index=False, backref="attempt_rows")
    number = IntegerField()
    worker_id = IntegerField(null=True)
    host = CharField(null=True)
    pid = IntegerField(null=True)  # the job's shell; its process group has the same id
    pid_started = DoubleField(null=True)
    started_at = DoubleField()
    finished_at = DoubleField(null=True)
    exit_code = IntegerField(null=True)
    duration = DoubleField(null=True)
    outcome = CharField(null=True)  # completed | failed | timeout | lost | interrupted | cancelled
    error = TextField(null=True)
    log_file = CharField(null=True)  # relative to logs/, built from internal ids only
    claim_token = BigIntegerField(null=True)  # the job's claim_token when this attempt was claimed

    class Meta:
        # finished_at: the console's throughput chart reads the last half hour of attempts.
        indexes = ((("job", "number"), True), (("finished_at",), False))


MODELS = [Meta, Setting, Environment, Worker, Job, JobCount, Attempt]
