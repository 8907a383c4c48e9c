"""The queue on a PostgreSQL server: URLs, connection trouble, several hosts, concurrent claims.

The first tests need no server (a URL is refused or fails cleanly before any connection);
the others run on the schema the ``home`` fixture makes for each test on QUEUECTL_TEST_PG and
are skipped, with the reason, without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest

import helpers
from helpers import (
    cli_env,
    marked,
    marked_command,
    ok,
    run_cli,
    run_command,
    user_error,
    wait_for,
)

on_postgres = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


# --- no server needed ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, code, words",
    [
        ("mysql://u:sekrit@127.0.0.1/q", 2, "unsupported database URL"),
        ("postgresql://u:sekrit@127.0.0.1:99999/q", 2, "bad database URL"),
        ("postgresql://u:sekrit@127.0.0.1:5432", 2, "names no database"),
        (
            "postgresql://u:sekrit@127.0.0.1:1/q",
            1,
            "cannot connect to database postgresql://u:***@127.0.0.1:1/q",
        ),
        (
            "postgres://u:sekrit@127.0.0.1:1/q",
            1,
            "cannot connect to database postgres://u:***@127.0.0.1:1/q",
        ),
    ],
)
def test_a_database_url_is_never_a_path_and_its_password_never_shown(
    home, tmp_path, url, code, words
):
    work = tmp_path / "cwd"
    work.mkdir()
    for args, env in (
        ((("--db", url, "enqueue", "true")), cli_env(home)),
        (("enqueue", "true"), cli_env(home, QUEUECTL_DB=url)),
        (("status", "--json"), cli_env(home, QUEUECTL_DB=url)),
    ):
        line = user_error(run_command(home, *args, cwd=work, env=env), code)
        assert words in line and "sekrit" not in line, line
    assert list(work.iterdir()) == [], "a URL was taken for a path"
    assert not (home / "queuectl.db").exists()


#: Every place a libpq URL can carry a secret: the password before the host, the secret
#: parameters of its query string (their names percent-encoded too), and a parameter whose
#: value is a connection string or URL of its own.
SECRET_URLS = [
    "postgresql://u:sekrit@127.0.0.1:1/q",
    "postgresql://u@127.0.0.1:1/q?password=sekrit",
    "postgresql://u@127.0.0.1:1/q?sslmode=disable&sslpassword=sekrit",
    "postgresql://u@127.0.0.1:1/q?pass%77ord=sekrit",
    "postgresql://u@127.0.0.1:1/q?PASSWORD=sekrit&password=sekrit",
    "postgresql://u@127.0.0.1:1/q?dbname=host%3Dh%20password%3Dsekrit",
    "postgresql://u@127.0.0.1:1/q?dbname=postgresql://v:sekrit@h/r",
    "postgresql://u@127.0.0.1:1/q?oauth_client_secret=sekrit",
]


@pytest.mark.parametrize("url", SECRET_URLS)
def test_no_secret_a_url_carries_is_ever_shown(url):
    from queuectl_tui.store import redact

    shown = redact(url)
    assert "sekrit" not in shown and "***" in shown
    assert shown.startswith("postgresql://u") and "127.0.0.1:1/q" in shown


def test_what_is_not_a_secret_is_shown_as_given():
    from queuectl_tui.store import redact

    for url in (
        "postgresql://u@h:5/q?passfile=/home/u/.pgpass&sslkey=/k&sslmode=require",
        "postgresql://h/q?options=-csearch_path%3Ds&application_name=x",
        "postgresql://h/q",
    ):
        assert redact(url) == url


@pytest.mark.parametrize("url", SECRET_URLS[1:4])
def test_error_messages_show_no_secret_of_the_query_string(home, tmp_path, url):
    for args in (("status",), ("status", "--json"), ("enqueue", "true")):
        line = user_error(run_command(home, *args, env=cli_env(home, QUEUECTL_DB=url)), 1)
        assert "cannot connect to database postgresql://u@127.0.0.1:1/q?" in line, line
        assert "sekrit" not in line, line


def test_without_the_driver_a_url_says_how_to_install_it(home, tmp_path):
    code = "import sys; sys.modules['psycopg2'] = None\nfrom queuectl_tui.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "--db", "postgresql://u:sekrit@h/q", "status"],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=tmp_path,
        timeout=60,
    )
    line = user_error(helpers.Result(proc.returncode, proc.stdout, proc.stderr), 1)
    assert "pip install 'queuectl-tui[postgres]'" in line and "sekrit" not in line


# --- on a server ----------------------------------------------------------------------------------


@on_postgres
def test_status_and_the_console_header_name_the_server_without_its_password(home, db):
    url = helpers.DB_URL
    password = url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    status = ok(run_command(home, "status"))
    assert status.out.startswith("database: postgresql://") and ":***@" in status.out
    assert f":{password}@" not in status.out
    assert ok(run_command(home, "status", "--json")).json()["database"]["backend"] == "postgresql"
    from queuectl_tui.tui.app import QueueApp

    header = QueueApp(url).sub_title
    assert ":***@" in header and f":{password}@" not in header


@on_postgres
def test_status_shows_no_password_given_in_the_query_string(home, db):
    """A role of its own, whose password is nowhere else in the URL (the test server's user,
    password and database share one name), given as ``?password=`` and with ``sslpassword``."""
    from urllib.parse import quote, urlsplit, urlunsplit

    import psycopg2

    role, password = f"r_{os.getpid()}_{time.monotonic_ns()}", f"pw-{time.monotonic_ns()}"
    admin = psycopg2.connect(helpers.DB_URL)
    admin.autocommit = True
    admin.cursor().execute(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    try:
        parts = urlsplit(helpers.DB_URL)
        url = urlunsplit(
            parts._replace(
                netloc=f"{role}@{parts.hostname}:{parts.port}",
                query=f"{parts.query}&password={quote(password)}&sslpassword=other-{password}",
            )
        )
        env = cli_env(home, QUEUECTL_DB=url)
        shown = ok(run_command(home, "status", env=env)).out.splitlines()[0]
        data = ok(run_command(home, "status", "--json", env=env)).json()["database"]
        for text in (shown, data["url"]):
            assert password not in text and "password=***" in text and "sslpassword=***" in text
            assert f"{role}@" in text
    finally:
        admin.cursor().execute(f"DROP ROLE {role}")
        admin.close()


@on_postgres
def test_a_queue_limit_holds_under_concurrent_claimers(db):
    from queuectl_tui import engine, spec

    engine.set_limit("q", 2)
    engine.enqueue([spec.normalize({"command": "true", "queue": "q"}) for _ in range(20)])
    workers = [engine.register_worker() for _ in range(8)]
    claimed, start = [], threading.Barrier(len(workers))

    def claimer(worker):
        start.wait()
        for _ in range(5):
            got = engine.claim(worker)
            if got:
                claimed.append(got[0].id)
        from queuectl_tui.store.models import database

        database.close()

    threads = [threading.Thread(target=claimer, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == 2 and len(set(claimed)) == 2
    assert engine.counts()["processing"] == 2


@on_postgres
def test_recovery_run_by_two_hosts_at_once_recovers_the_job_once(db, home):
    from queuectl_tui import engine, spec
    from queuectl_tui.store.models import Job, Worker

    engine.enqueue([spec.normalize({"id": "j", "command": "true", "max_retries": 3})])
    gone = engine.register_worker()
    Worker.update(host="vanished").where(Worker.id == gone.id).execute()
    job, attempt = engine.claim(Worker.get_by_id(gone.id))
    engine.record_process(attempt, 999_999, 1.0)  # its process was on the vanished host
    Worker.update(heartbeat_at=time.time() - 3600).where(Worker.id == gone.id).execute()
    script = (
        "import json, sys\nfrom queuectl_tui.store import open_db\n"
        "from queuectl_tui import engine\n"
        "open_db(); sys.stdin.read(); print(json.dumps(engine.recover_lost()))"
    )
    hosts = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=cli_env(home, QUEUECTL_HOSTNAME=f"host{n}"),
        )
        for n in (1, 2)
    ]
    outs = [proc.communicate("go", timeout=60)[0] for proc in hosts]  # both released together
    assert all(proc.returncode == 0 for proc in hosts)
    assert sorted(id for out in outs for id in json.loads(out)) == ["j"]
    attempts = engine.attempts_of(Job.get(Job.id == "j"))
    assert [(a.outcome, a.host) for a in attempts] == [("lost", "vanished")]
    assert Job.get(Job.id == "j").state == "failed"


def _group(home: Path, host: str, count: int, **extra: str) -> list[dict]:
    """Start ``count`` detached workers as if on machine ``host`` (its own QUEUECTL_HOME)."""
    env = cli_env(home / host, QUEUECTL_HOSTNAME=host, **extra)
    return ok(run_cli(home, "worker", "start", "-n", str(count), "--json", env=env)).json()


@on_postgres
def test_two_hosts_share_one_queue_and_recover_each_others_jobs(home, tmp_path, mark):
    runs = tmp_path / "runs.txt"
    ok(run_command(home, "config", "set", "lease", "2"))
    ok(run_command(home, "config", "set", "heartbeat_interval", "0.2"))
    ids = [f"j{n}" for n in range(40)]
    for job_id in ids:
        ok(run_command(home, "enqueue", "--id", job_id, f"echo {job_id} >> {runs}"))
    a = _group(home, "host-a", 2)
    b = _group(home, "host-b", 2)
    wait_for(
        lambda: ok(run_command(home, "status", "--json")).json()["jobs"]["completed"] == 40,
        timeout=60,
        message="every job done",
    )
    assert sorted(runs.read_text().split()) == sorted(ids)  # each ran exactly once
    listed = ok(run_command(home, "list", "--limit", "0", "--json")).json()
    assert {j["state"] for j in listed} == {"completed"}
    # host-b stops; host-a dies while it runs a long job; host-b, back, takes the job back
    # once host-a's heartbeats are older than the lease (it cannot see host-a's processes).
    # its own process: the host name is read once per process
    ok(run_cli(home, "worker", "stop", env=cli_env(home / "host-b", QUEUECTL_HOSTNAME="host-b")))
    wait_for(
        lambda: (
            not any(
                psutil.pid_exists(w["pid"]) and psutil.Process(w["pid"]).status() != "zombie"
                for w in b
            )
        ),
        message="host-b's workers to stop",
    )
    script = "if [ -e first ]; then echo again > out; else touch first; sleep 600; fi"
    ok(
        run_command(
            home,
            "enqueue",
            "--id",
            "long",
            "--max-retries",
            "2",
            "--backoff-base",
            "1",
            marked_command(mark, script),
        )
    )
    wait_for(lambda: marked(mark, "sleep"), message="the long job to start on host-a")
    for worker in a:
        os.kill(worker["pid"], signal.SIGKILL)
    for proc in marked(mark):  # the machine went down with its jobs
        proc.kill()
    _group(home, "host-b", 1)
    wait_for(lambda: (tmp_path / "out").exists(), timeout=60, message="host-b to rerun the job")
    shown = ok(run_command(home, "show", "long", "--json")).json()
    tries = [(t["outcome"], t["host"]) for t in shown["attempt_list"]]
    assert tries == [("lost", "host-a"), ("completed", "host-b")], tries
    assert "no heartbeat" in shown["attempt_list"][0]["error"]


@on_postgres
def test_a_worker_whose_connections_drop_carries_on_without_rerunning_its_job(home, tmp_path):
    out = tmp_path / "out"
    [worker] = ok(run_cli(home, "worker", "start", "--json")).json()
    ok(
        run_command(
            home, "enqueue", "--id", "j", f"touch {tmp_path}/started; sleep 1; echo once >> {out}"
        )
    )
    wait_for(lambda: (tmp_path / "started").exists(), message="j to start")
    dropped = _drop_sessions(worker["pid"])
    assert dropped >= 1
    wait_for(
        lambda: ok(run_command(home, "show", "j", "--json")).json()["state"] == "completed",
        message="j to be recorded after the reconnect",
    )
    _drop_sessions(worker["pid"])  # idle now: it notices at its next statement
    ok(run_command(home, "enqueue", "--id", "k", f"echo k >> {out}"))
    wait_for(lambda: out.exists() and out.read_text() == "once\nk\n", message="k to run")
    shown = ok(run_command(home, "show", "j", "--json")).json()
    assert [t["outcome"] for t in shown["attempt_list"]] == ["completed"]
    alive = ok(run_command(home, "worker", "list", "--json")).json()
    assert [w["pid"] for w in alive] == [worker["pid"]] and psutil.pid_exists(worker["pid"])


def _drop_sessions(pid: int) -> int:
    """Terminate every server session of process ``pid`` (as a server restart would)."""
    import psycopg2

    conn = psycopg2.connect(helpers.DB_URL)
    conn.autocommit = True
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name LIKE %s",
            (f"queuectl-tui % {pid}",),
        )
        return cur.fetchone()[0]
    finally:
        conn.close()


@on_postgres
def test_an_unreachable_server_midway_is_one_line(home):
    ok(run_command(home, "enqueue", "--id", "j", "true"))
    broken = helpers.DB_URL.replace("@127.0.0.1:5432/", "@127.0.0.1:1/").replace(
        "@localhost:5432/", "@127.0.0.1:1/"
    )
    if broken == helpers.DB_URL:
        pytest.skip("QUEUECTL_TEST_PG is not on 127.0.0.1:5432")
    line = user_error(run_command(home, "list", env=cli_env(home, QUEUECTL_DB=broken)), 1)
    assert line.startswith("error: cannot connect to database postgresql://")


def _pg_shape(url: str) -> dict:
    """Columns, indexes and triggers of the schema ``url`` names, free of the schema's name."""
    import psycopg2

    conn = psycopg2.connect(url)
    try:
        cur = conn.cursor()
        cur.execute("SELECT current_schema()")
        schema = cur.fetchone()[0]
        cur.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = %s",
            (schema,),
        )
        columns = sorted(cur.fetchall())
        cur.execute(
            "SELECT indexname, replace(indexdef, %s, '') FROM pg_indexes WHERE schemaname = %s",
            (schema + ".", schema),
        )
        indexes = sorted(cur.fetchall())
        cur.execute(
            "SELECT trigger_name, event_manipulation, event_object_table, action_timing, "
            "action_orientation FROM information_schema.triggers "
            "WHERE trigger_schema = %s",
            (schema,),
        )
        triggers = sorted(cur.fetchall())
        return {"columns": columns, "indexes": indexes, "triggers": triggers}
    finally:
        conn.close()


@on_postgres
def test_first_release_upgraded_on_postgres_has_the_shape_of_a_fresh_database(db):
    import psycopg2
    from pg_support import drop_schema, fresh_schema, v1_on_postgres

    from queuectl_tui import engine
    from queuectl_tui import store as dbmod

    fresh = _pg_shape(helpers.DB_URL)
    schema, old = fresh_schema()
    try:
        conn = psycopg2.connect(old)
        conn.autocommit = True
        conn.cursor().execute(v1_on_postgres())
        conn.cursor().execute(
            "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, "
            "backoff_base, run_at, created_at, updated_at, cwd, cancel_requested) VALUES "
            "('old-job', 'echo from v1', 'default', 'pending', 0, 0, 3, 2, 0, 0, 0, '/', false)"
        )
        conn.close()
        dbmod.open_db(old)
        assert dbmod.schema_version() == dbmod.SCHEMA_VERSION
        assert engine.counts()["pending"] == 1
        claimed = engine.claim(engine.register_worker())
        assert claimed is not None and claimed[0].id == "old-job"
        dbmod.close_db()
        assert _pg_shape(old) == fresh
    finally:
        dbmod.close_db()
        drop_schema(schema)


# --- bulk changes: counted once per statement, not once per row ---------------------------------


def _rollup_writes() -> int:
    """Rows of job_count and job_failed_minute written so far in this transaction."""
    from queuectl_tui.store.models import database

    return database.execute_sql(
        "SELECT COALESCE(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables "
        "WHERE relname IN ('job_count', 'job_failed_minute') AND schemaname = current_schema()"
    ).fetchone()[0]


@on_postgres
def test_a_bulk_enqueue_retry_and_clear_write_the_counts_once_per_statement(db, tmp_path):
    """3,000 jobs enqueued, killed, retried from the DLQ and cleared: the counts and the
    failure rollup stay exact, and each bulk change writes them a few times per statement,
    not once per job (per job, the same rows are rewritten n times in one transaction, which
    made a bulk enqueue quadratic: 100,000 lines took 40 s)."""
    from test_counts import counted
    from test_metrics import assert_rollups_match_rows

    from queuectl_tui import engine
    from queuectl_tui.store.models import database

    lines = (
        (f"line {n}", {"id": f"b{n}", "command": "true", "queue": "abc"[n % 3]})
        for n in range(3000)
    )
    steps = [
        (
            "enqueue",
            lambda: engine.enqueue_stream(lines, cwd=str(tmp_path), env={}).__enter__(),
            {"pending": 3000},
        ),
        (
            "kill",
            lambda: database.execute_sql(
                "UPDATE job SET state = 'dead', finished_at = 6e7, last_error = 'boom'"
            ),
            {"dead": 3000},
        ),
        ("retry", lambda: engine.dlq_retry(all_dead=True), {"pending": 3000}),
        ("clear", engine.clear, {}),
    ]
    with database.atomic():  # pg_stat_xact_* counts this transaction's writes
        for name, step, expected in steps:
            before = _rollup_writes()
            step()
            counted(**expected)
            assert_rollups_match_rows()
            assert _rollup_writes() - before < 100, name  # 6 statements of 500 rows: ~30


@on_postgres
def test_counts_stay_exact_when_workers_claim_during_a_bulk_enqueue(home, tmp_path):
    runs = tmp_path / "runs.txt"
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text(
        "".join(
            json.dumps({"id": f"b{n}", "command": f"echo b{n} >> {runs}", "queue": "ab"[n % 2]})
            + "\n"
            for n in range(300)
        )
    )
    ok(run_cli(home, "worker", "start", "-n", "2"))
    ok(run_command(home, "enqueue", "--id", "first", f"echo first >> {runs}"))
    ok(run_command(home, "enqueue", "-f", str(jobs)))
    wait_for(
        lambda: ok(run_command(home, "status", "--json")).json()["jobs"]["completed"] == 301,
        timeout=120,
        message="every job done",
    )
    from test_counts import counted

    from queuectl_tui.store import open_db

    open_db(helpers.DB_URL)
    counted(completed=301)
    assert len(runs.read_text().split()) == 301


@on_postgres
def test_a_version_3_database_gets_the_per_statement_counts_on_open(db, tmp_path):
    """Version 3 counted per row (job_count_insert_delete): opened by this version, its
    triggers are replaced, not added to (a job counted twice), and it has a fresh shape."""
    import psycopg2

    from queuectl_tui import engine, spec
    from queuectl_tui import store as dbmod

    fresh = _pg_shape(helpers.DB_URL)
    dbmod.close_db()
    conn = psycopg2.connect(helpers.DB_URL)
    conn.autocommit = True
    conn.cursor().execute(
        "DROP TRIGGER job_counts_insert ON job; DROP TRIGGER job_counts_update ON job; "
        "DROP TRIGGER job_counts_delete ON job; "
        "ALTER TABLE job_count DROP COLUMN slot; "  # added by version 9, with the keys
        "ALTER TABLE job_count ADD PRIMARY KEY (queue, state); "
        "ALTER TABLE attempt_minute DROP COLUMN slot; "
        "ALTER TABLE attempt_minute ADD PRIMARY KEY (minute, queue); "
        "ALTER TABLE job_failed_minute DROP COLUMN slot; "
        "ALTER TABLE job_failed_minute ADD PRIMARY KEY (minute, queue, state, error); "
        "CREATE FUNCTION job_count_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF TG_OP <> 'INSERT' THEN UPDATE job_count SET n = n - 1 WHERE queue = OLD.queue "
        "AND state = OLD.state; END IF; IF TG_OP <> 'DELETE' THEN INSERT INTO job_count "
        "VALUES (NEW.queue, NEW.state, 1) ON CONFLICT (queue, state) DO UPDATE SET "
        "n = job_count.n + 1; END IF; RETURN NULL; END $$; "
        "CREATE TRIGGER job_count_insert_delete AFTER INSERT OR DELETE ON job FOR EACH ROW "
        "EXECUTE FUNCTION job_count_change(); "
        "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, "
        "backoff_base, run_at, created_at, updated_at, cwd, cancel_requested) VALUES "
        "('old-job', 'true', 'default', 'pending', 0, 0, 3, 2, 0, 0, 0, '/', false); "
        "ALTER TABLE job DROP COLUMN paused_token; "  # added by version 5
        "ALTER TABLE job DROP COLUMN label; "  # added by version 7
        "ALTER TABLE job DROP COLUMN schedule; DROP TABLE schedule; "  # added by version 8
        "ALTER TABLE attempt DROP COLUMN log_dropped; "  # added by version 10
        "UPDATE meta SET value = '3' WHERE key = 'schema_version'"
    )
    conn.close()
    dbmod.open_db(helpers.DB_URL)
    assert dbmod.schema_version() == dbmod.SCHEMA_VERSION
    engine.enqueue(
        [spec.normalize({"id": "new-job", "command": "true"})], cwd=str(tmp_path), env={}
    )
    assert engine.counts()["pending"] == 2
    dbmod.close_db()
    assert _pg_shape(helpers.DB_URL) == fresh


@on_postgres
def test_a_version_5_database_stops_notifying_for_statements_that_change_nothing(db):
    """Versions 4 and 5 sent a NOTIFY for every statement on job, even one that changed no row (an
    idle worker's empty claim, which woke every other idle worker): opened by this version,
    its trigger is replaced, and the shape is a fresh database's."""
    import psycopg2

    from queuectl_tui import store as dbmod

    fresh = _pg_shape(helpers.DB_URL)
    dbmod.close_db()
    conn = psycopg2.connect(helpers.DB_URL)
    conn.autocommit = True
    conn.cursor().execute(
        "DROP TRIGGER job_notify_insert ON job; DROP TRIGGER job_notify_update ON job; "
        "DROP TRIGGER job_notify_delete ON job; "
        "CREATE FUNCTION queuectl_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_notify('queuectl', current_schema()); RETURN NULL; END $$; "
        "CREATE TRIGGER job_notify AFTER INSERT OR UPDATE OR DELETE ON job "
        "FOR EACH STATEMENT EXECUTE FUNCTION queuectl_notify(); "
        "ALTER TABLE job DROP COLUMN label; "  # added by version 7
        "ALTER TABLE job DROP COLUMN schedule; DROP TABLE schedule; "  # added by version 8
        "ALTER TABLE attempt DROP COLUMN log_dropped; "  # added by version 10
        "UPDATE meta SET value = '5' WHERE key = 'schema_version'"
    )
    dbmod.open_db(helpers.DB_URL)
    assert dbmod.schema_version() == dbmod.SCHEMA_VERSION
    cursor = conn.cursor()
    cursor.execute("SELECT current_schema()")
    ours = cursor.fetchone()[0]
    channel = dbmod.notify_channel(ours)  # the schema's own
    cursor.execute(f'LISTEN "{channel}"')
    marker = f"marker {ours}"
    cursor.execute(
        "UPDATE job SET priority = 1 WHERE id = 'no such job'; SELECT pg_notify(%s, %s)",
        (channel, marker),
    )
    got: list[str] = []
    wait_for(
        lambda: (
            conn.poll()
            or got.extend(n.payload for n in conn.notifies if n.payload in (ours, marker))
            or conn.notifies.clear()
            or marker in got
        ),
        timeout=10,
        message="the marker",
    )
    assert got == [marker]
    conn.close()
    dbmod.close_db()
    assert _pg_shape(helpers.DB_URL) == fresh


@on_postgres
def test_a_change_in_another_schema_wakes_no_listener_of_this_one(db, home):
    """Every schema's triggers notified one channel ('queuectl'), so the idle workers and
    waiters of every queue of the database woke at each change of any other (and read
    again). Each schema has a channel of its own: a change in another wakes no one here."""
    import psycopg2
    from pg_support import drop_schema, fresh_schema

    from queuectl_tui.store import postgres as dbmod

    listening = dbmod._listen()  # this session listens as idle workers and waiters do
    ours = dbmod._listener.schema
    schema, other = fresh_schema()
    try:
        # its own process: in this one it would share the listening session's module state
        ok(run_cli(home, "enqueue", "true", env=cli_env(home, QUEUECTL_DB=other)))
        # Then a change here, from another session: notifications come in commit order, so
        # one the other schema's enqueue sent here would come first.
        conn = psycopg2.connect(helpers.DB_URL)
        conn.autocommit = True
        conn.cursor().execute("UPDATE meta SET value = value WHERE key = 'schema_version'")
        conn.close()
        heard: list[str] = []

        def hear() -> list[str]:
            listening.poll()
            heard.extend(note.payload for note in listening.notifies)
            listening.notifies.clear()
            return heard

        wait_for(hear, timeout=10, message="the change here")
        assert heard == [f"{ours} control"]
    finally:
        drop_schema(schema)


@on_postgres
@pytest.mark.parametrize("length", [14, 54, 55, 63])
def test_a_schemas_channel_is_the_one_its_triggers_notify(home, length):
    """The trigger function and ``notify_channel`` name the channel alike, for names that fit
    beside the prefix and for those too long for it (PostgreSQL's 63-byte identifiers)."""
    import psycopg2
    from pg_support import _admin, drop_schema, schema_url

    from queuectl_tui.store import notify_channel

    name = f"t_{uuid.uuid4().hex[:12]}".ljust(length, "x")
    assert len(notify_channel(name).encode()) <= 63
    admin = _admin()
    try:
        admin.cursor().execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE; CREATE SCHEMA "{name}"')
        listener = psycopg2.connect(helpers.DB_URL)
        listener.autocommit = True
        listener.cursor().execute(f'LISTEN "{notify_channel(name)}"')
        ok(run_command(home, "enqueue", "true", env=cli_env(home, QUEUECTL_DB=schema_url(name))))
        heard: list[str] = []
        wait_for(
            lambda: (
                listener.poll()
                or heard.extend(n.payload for n in listener.notifies)
                or name in heard
            ),
            timeout=10,
            message="the enqueue's notification",
        )
        listener.close()
    finally:
        admin.close()
        drop_schema(name)


@on_postgres
def test_the_oldest_due_job_is_one_index_step_among_many_due_at_once(db):
    """5,000 jobs enqueued together are due at the same moment: ``stats`` names the first of
    them and ``status`` its age after reading a few rows of job, not all of those due then
    (ties broken by seq needed every one of them)."""
    from queuectl_tui import engine, metrics
    from queuectl_tui.store.models import database

    database.execute_sql(
        "INSERT INTO job (id, command, queue, state, priority, attempts, max_retries, "
        "backoff_base, run_at, created_at, updated_at, cwd, cancel_requested) SELECT 'j' || n, "
        "'true', 'q' || (n %% 2), 'pending', 0, 0, 3, 2, 1000, 0, 0, '/', false "
        "FROM generate_series(1, 5000) n"
    )
    database.execute_sql("ANALYZE job")

    def rows_read(func):
        with database.atomic():  # pg_stat_xact_* counts this transaction's reads
            before = _job_rows_read()
            result = func()
            return result, _job_rows_read() - before

    stats, read = rows_read(lambda: metrics.execution_stats(1500, None, 2000))
    assert stats["queues"]["q1"]["oldest_due"]["id"] == "j1" and read < 20
    status, read = rows_read(lambda: engine.stats(now=2000))
    assert status["oldest_pending_age"] == 1000 and read < 20


def _job_rows_read() -> int:
    from queuectl_tui.store.models import database

    return database.execute_sql(
        "SELECT COALESCE(sum(seq_tup_read + idx_tup_fetch), 0) FROM pg_stat_xact_user_tables "
        "WHERE relname = 'job' AND schemaname = current_schema()"
    ).fetchone()[0]


@on_postgres
def test_the_workers_statements_are_prepared_once_per_connection(db, tmp_path, monkeypatch):
    """The batch's statement (its ends and its claim) is planned once per connection, not per job;
    a statement the server will not prepare still runs, without spoiling its transaction."""
    from queuectl_tui import engine, spec
    from queuectl_tui.run.loop import WorkerLoop
    from queuectl_tui.store import dialect, write_transaction
    from queuectl_tui.store.models import Job, database

    engine.enqueue(
        [spec.normalize({"command": f"echo {n}"}) for n in range(20)],
        cwd=str(tmp_path),
        env={"PATH": os.environ["PATH"]},
    )
    assert WorkerLoop(burst=True).run() == 0
    assert {j.state for j in Job.select()} == {"completed"}
    prepared = database.execute_sql("SELECT name, statement FROM pg_prepared_statements")
    texts = " ".join(text for name, text in prepared if name.startswith("queuectl_hot_"))
    assert "queuectl_cycle(" in texts  # the claim, the ends of attempts, the worker's row
    with write_transaction():
        # $1 has no type
        monkeypatch.setitem(dialect().queries, "untyped", "SELECT %s IS NULL")
        assert dialect().run("untyped", (None,)).fetchone() == (True,)
        engine.enqueue([spec.normalize({"id": "after", "command": "true"})])
    assert Job.get(Job.id == "after").state == "pending"


@on_postgres
def test_a_large_bulk_enqueue_leaves_the_planner_fresh_statistics(db, tmp_path):
    """Until the table is analysed the server may plan a claim as a read of every waiting job:
    a bulk enqueue of 10,000 jobs or more analyses it on the spot."""
    from queuectl_tui import engine, spec
    from queuectl_tui.store.models import database

    def planned_rows() -> float:
        return database.execute_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'job'::regclass"
        ).fetchone()[0]

    small = ((f"line {n}", spec.normalize({"command": "true"})) for n in range(100))
    with engine.enqueue_stream(small, cwd=str(tmp_path), env={}):
        pass
    assert planned_rows() < 100  # never analysed (-1), as a fresh table is
    big = ((f"line {n}", spec.normalize({"command": "true"})) for n in range(10_000))
    with engine.enqueue_stream(big, cwd=str(tmp_path), env={}):
        pass
    assert planned_rows() == 10_100


@on_postgres
def test_a_workers_connections_give_up_a_silent_network_within_a_sixth_of_the_lease(db):
    """What libpq is asked for (the two-host tests show the effect): the worker's sessions
    are opened anew with them, the heartbeat's also bounds its statements, and a parameter
    the URL sets itself is left as it is."""
    from queuectl_tui.store import close_db, keep_alive, open_db
    from queuectl_tui.store.models import database

    keep_alive(12.0, bound_statements=True)
    params = database.connection().get_dsn_parameters()
    assert {
        key: params.get(key)
        for key in (
            "tcp_user_timeout",
            "keepalives",
            "keepalives_idle",
            "keepalives_interval",
            "keepalives_count",
            "connect_timeout",
        )
    } == {
        "tcp_user_timeout": "2000",
        "keepalives": "1",
        "keepalives_idle": "2",
        "keepalives_interval": "1",
        "keepalives_count": "3",
        "connect_timeout": "2",
    }
    assert database.execute_sql("SHOW statement_timeout").fetchone()[0] == "2s"
    keep_alive(12.0)  # the main loop's session: no statement bound
    assert database.execute_sql("SHOW statement_timeout").fetchone()[0] == "0"
    close_db()
    open_db(helpers.DB_URL + "&tcp_user_timeout=7000")
    keep_alive(600.0)
    params = database.connection().get_dsn_parameters()
    assert (params["tcp_user_timeout"], params["connect_timeout"]) == ("7000", "10")


# --- no lock for the whole schema on the worker's hot path --------------------------------------


def _claim_held_open(worker, inside: threading.Event, release: threading.Event, monkeypatch):
    """A thread whose claim stops inside its transaction (after the claim, before the commit)
    until ``release`` is set; returns the thread and where its result lands."""
    from queuectl_tui import engine

    real, result = engine.claims._set_worker, []

    def held(*args):
        if threading.current_thread() is thread:
            inside.set()
            release.wait(60)
        return real(*args)

    monkeypatch.setattr(engine.claims, "_set_worker", held)

    def run():
        from queuectl_tui.store.models import database

        try:
            result.append(engine.claim(worker))
        finally:
            database.close()

    thread = threading.Thread(target=run)
    thread.start()
    wait_for(inside.is_set, message="the first claim to be inside its transaction")
    return thread, result


def _in_thread(call):
    """``call()`` in a thread of its own (a connection of its own); returns the thread and the
    list its result lands in."""
    result = []

    def run():
        from queuectl_tui.store.models import database

        try:
            result.append(call())
        finally:
            database.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


@on_postgres
def test_two_workers_claim_side_by_side_and_the_counts_stay_exact(db, monkeypatch):
    """A claim still inside its transaction does not hold up another worker's claim (every
    write transaction took one lock for the whole schema: the second claim waited)."""
    from test_counts import counted

    from queuectl_tui import engine, spec

    engine.enqueue([spec.normalize({"id": f"j{n}", "command": "true"}) for n in range(3)])
    first, second = engine.register_worker(), engine.register_worker()
    inside, release = threading.Event(), threading.Event()
    held, held_result = _claim_held_open(first, inside, release, monkeypatch)
    try:
        other, other_result = _in_thread(lambda: engine.claim(second))
        wait_for(
            lambda: not other.is_alive(),
            timeout=10,
            message="the second claim to return while the first is open",
        )
        assert other_result[0] is not None
    finally:
        release.set()
        held.join()
    assert held_result[0] is not None
    assert {held_result[0][0].id, other_result[0][0].id} < {"j0", "j1", "j2"}
    assert held_result[0][0].id != other_result[0][0].id
    counted(pending=1, processing=2)


@on_postgres
def test_a_claim_inside_a_limited_queue_keeps_others_out_without_waiting(db, monkeypatch):
    """Queue q may run one job: while one claim of it is inside its transaction another
    worker's claim returns at once with nothing (it neither waits nor takes a second place),
    and still nothing once the first has committed; when that job ends, the next claim gets
    one. A queue without a limit is claimed from meanwhile."""
    from queuectl_tui import engine, spec

    engine.set_limit("q", 1)
    engine.enqueue(
        [spec.normalize({"id": f"q{n}", "command": "true", "queue": "q"}) for n in range(3)]
        + [spec.normalize({"id": "f", "command": "true", "queue": "free"})]
    )
    first, second = engine.register_worker(["q"]), engine.register_worker(["q"])
    free = engine.register_worker(["free"])
    inside, release = threading.Event(), threading.Event()
    held, held_result = _claim_held_open(first, inside, release, monkeypatch)
    try:
        other, other_result = _in_thread(lambda: engine.claim(second))
        wait_for(
            lambda: not other.is_alive(),
            timeout=10,
            message="the second claim to return while the first is open",
        )
        assert other_result == [None]
        elsewhere, elsewhere_result = _in_thread(lambda: engine.claim(free))
        wait_for(
            lambda: not elsewhere.is_alive(),
            timeout=10,
            message="a claim of another queue to return while the first is open",
        )
        assert elsewhere_result[0][0].id == "f"
    finally:
        release.set()
        held.join()
    job, attempt = held_result[0]
    assert engine.claim(second) is None
    assert engine.queue_state("q")["running"] == 1
    engine.finish(job, attempt, outcome="completed", exit_code=0)
    got = engine.claim(second)
    assert got is not None and got[0].queue == "q"
    assert engine.queue_state("q")["running"] == 1


@on_postgres
def test_a_pause_returns_only_after_the_claims_under_way_and_none_claims_after_it(db, monkeypatch):
    """``pause`` waits for a claim already inside its transaction (its lock is exclusive,
    the claims' shared), and once it has returned no claim takes a job of that queue."""
    from queuectl_tui import engine, spec
    from queuectl_tui.store.models import database

    engine.enqueue([spec.normalize({"id": f"j{n}", "command": "true"}) for n in range(3)])
    first, second = engine.register_worker(), engine.register_worker()
    inside, release = threading.Event(), threading.Event()
    held, held_result = _claim_held_open(first, inside, release, monkeypatch)
    try:
        pauser, _ = _in_thread(lambda: engine.pause(["default"]))
        waiting = (  # this process's sessions only
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND pid IN (SELECT pid FROM pg_stat_activity"
            " WHERE application_name = current_setting('application_name'))"
        )
        wait_for(
            lambda: database.execute_sql(waiting).fetchone()[0] == 1,
            message="pause to wait for the claim under way",
        )
        assert pauser.is_alive()
    finally:
        release.set()
        held.join()
    pauser.join(60)
    assert not pauser.is_alive()
    assert held_result[0] is not None  # it had begun before the pause
    assert engine.claim(second) is None
    engine.resume(["default"])
    assert engine.claim(second) is not None


@on_postgres
def test_concurrent_settles_keep_counts_and_rollups_exact(db, tmp_path):
    """Four workers claim and record ends of jobs in two queues side by side (completions,
    failures with retries, deaths): no deadlock, and counts and rollups equal the rows, also
    after the sessions' rows are folded."""
    from test_counts import counted
    from test_metrics import assert_rollups_match_rows

    from queuectl_tui import engine, spec
    from queuectl_tui import store as dbmod
    from queuectl_tui.store.models import JobCount

    engine.enqueue(
        [
            spec.normalize(
                {"id": f"j{n}", "command": "true", "queue": "ab"[n % 2], "max_retries": n % 3}
            )
            for n in range(160)
        ],
        cwd=str(tmp_path),
    )
    errors = []

    def drain():
        from queuectl_tui.store.models import database

        worker = engine.register_worker()
        held: list = []
        try:
            for _ in range(400):
                ended = [
                    engine.Ended(
                        job,
                        attempt,
                        "completed" if job.seq % 4 else "failed",
                        0 if job.seq % 4 else 1,
                    )
                    for job, attempt in held
                ]
                _, held = engine.settle(worker, ended, claim=3, max_backoff=0.0)
                if not held and not ended:
                    break
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    counts = engine.counts()
    assert counts["pending"] == counts["processing"] == 0
    assert counts["completed"] + counts["dead"] + counts["failed"] == 160
    counted(**{k: v for k, v in counts.items() if v})
    assert_rollups_match_rows()
    assert JobCount.select().where(JobCount.n != 0).count() > 4  # rows of several sessions
    dbmod.fold()
    counted(**{k: v for k, v in counts.items() if v})
    assert_rollups_match_rows()
    from queuectl_tui.store.models import database

    slots = database.execute_sql("SELECT count(*) FROM job_count WHERE slot <> 0").fetchone()[0]
    assert slots == 0


@on_postgres
def test_only_changes_to_queues_or_settings_move_the_control_token(db):
    """A worker holding claimed jobs reads the pause flags before starting one only when the
    control token moved: other workers' claims and finishes (changes to jobs) do not move it,
    a pause does."""
    from queuectl_tui import engine, spec
    from queuectl_tui.store import change_token, control_token

    change, control = change_token(), control_token()
    done, _ = _in_thread(lambda: engine.enqueue([spec.normalize({"command": "true"})]))
    done.join()
    wait_for(lambda: change_token() != change, message="the enqueue to be notified")
    assert control_token() == control
    done, _ = _in_thread(lambda: engine.pause(["default"]))
    done.join()
    wait_for(lambda: control_token() != control, message="the pause to be notified")


@on_postgres
def test_a_batch_claims_log_names_are_the_engines(db):
    """A batch claim names its attempts' log files in SQL (queuectl_log_name): the names are
    engine.log_name's, for plain ids and for those it must escape or cut."""
    from queuectl_tui import engine

    ids = [
        "plain-id_1",
        "job1",
        "../a%b/c",
        ".hidden",
        "with space",
        "ünï©ødé",
        "a/" * 60,
        "x" * 98 + "é",
        "x" * 99 + "/",
        "x" * 150,
        "@at",
        "tab\there",
    ]
    for job_id in ids:
        (name,) = db.execute_sql("SELECT queuectl_log_name(%s, 7, 2)", (job_id,)).fetchone()
        assert name == engine.log_name(job_id, 7, 2), job_id
