"""PostgreSQL for the tests: QUEUECTL_TEST_PG names a server database the tests may create
schemas in (``postgresql://user:password@host:port/dbname``); each test gets a schema of its
own (selected through the URL's ``options=-csearch_path=…``), dropped after it."""

from __future__ import annotations

import os
import tempfile
import uuid
from urllib.parse import quote

PG_URL = os.environ.get("QUEUECTL_TEST_PG") or None
SKIP_REASON = (
    "PostgreSQL tests need a server: set QUEUECTL_TEST_PG=postgresql://user:password"
    "@host:port/dbname (a database where schemas may be created)"
)


def _admin():
    import psycopg2

    conn = psycopg2.connect(PG_URL)
    conn.autocommit = True
    return conn


def schema_url(schema: str) -> str:
    """PG_URL with its search_path set to ``schema``. Commits do not wait for the disk
    (synchronous_commit=off: a crash of the test server may lose the last commits, which no
    test needs), or every commit would cost a WAL flush."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-csearch_path={schema} -csynchronous_commit=off')}"


def fresh_schema() -> tuple[str, str]:
    """(name, URL) of a new empty schema."""
    schema = "t_" + uuid.uuid4().hex[:16]
    conn = _admin()
    try:
        conn.cursor().execute(f'CREATE SCHEMA "{schema}"')
    finally:
        conn.close()
    return schema, schema_url(schema)


def drop_schema(schema: str) -> None:
    conn = _admin()
    try:
        conn.cursor().execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        conn.close()


def v1_on_postgres() -> str:
    """The first release's schema (tests/fixtures/schema_v1.sql) as peewee made it on
    PostgreSQL: serial keys, double precision, a boolean flag, tables in dependency order."""
    from helpers import V1

    lines = [line for line in V1.read_text().splitlines() if line and not line.startswith("--")]
    attempt = next(line for line in lines if line.startswith('CREATE TABLE "attempt"'))
    lines.remove(attempt)
    lines.insert(
        next(i for i, line in enumerate(lines) if line.startswith("CREATE UNIQUE INDEX")), attempt
    )
    sql = "\n".join(lines).replace(" REAL", " DOUBLE PRECISION")
    sql = sql.replace('"seq" INTEGER NOT NULL PRIMARY KEY', '"seq" SERIAL NOT NULL PRIMARY KEY')
    sql = sql.replace('"id" INTEGER NOT NULL PRIMARY KEY', '"id" SERIAL NOT NULL PRIMARY KEY')
    return sql.replace('"cancel_requested" INTEGER', '"cancel_requested" BOOLEAN')


# --- a schema with the queue's tables, made cheaply --------------------------------------------
# Creating the tables, indexes, functions and triggers through open_db is ~50 statements, each a
# round trip (about 1 s of a PostgreSQL test's setup under load). The first call replays what
# open_db did on a template schema, recorded from peewee's log, as one batch, once it has checked
# that a replayed schema equals one open_db made (catalog and rows); if not, open_db it is.

_replay: list | None = None  # [template name, batch] once checked; [] when replay is off


def _fingerprint(cur, schema: str) -> list[str]:
    """What a schema holds, its own name replaced: relations, columns, indexes, constraints,
    triggers, functions, sequences and every row of every table."""
    cur.execute(
        """
        SELECT 'rel ' || c.relname || ' ' || c.relkind::text FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s
        UNION ALL SELECT 'col ' || c.relname || '.' || a.attname || ' '
                || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
                || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
            FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE n.nspname = %(s)s AND a.attnum > 0 AND NOT a.attisdropped
        UNION ALL SELECT 'idx ' || pg_get_indexdef(i.indexrelid) FROM pg_index i
            JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(s)s
        UNION ALL SELECT 'con ' || co.conname || ' ' || pg_get_constraintdef(co.oid)
            FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace
            WHERE n.nspname = %(s)s
        UNION ALL SELECT 'trg ' || pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text
            FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = %(s)s AND NOT t.tgisinternal
        UNION ALL SELECT 'fn ' || pg_get_functiondef(p.oid) FROM pg_proc p
            JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s
        UNION ALL SELECT 'seq ' || sequencename || ' ' || coalesce(last_value::text, '-')
            FROM pg_sequences WHERE schemaname = %(s)s""",
        {"s": schema},
    )
    found = [row[0] for row in cur.fetchall()]
    cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
    for (table,) in cur.fetchall():
        cur.execute(f'SELECT * FROM "{schema}"."{table}"')
        found += [f"row {table} {row!r}" for row in cur.fetchall()]
    return sorted(line.replace(schema, "<schema>") for line in found)


def _record() -> list:
    """[template name, batch]: open_db on a new schema, its statements recorded; checked by
    replaying them into another and comparing the two ([] if they differ)."""
    import logging

    import psycopg2

    from queuectl_tui import store
    from queuectl_tui.store.models import database

    statements: list = []

    class Recorder(logging.Handler):
        def emit(self, record):
            if isinstance(record.msg, tuple) and len(record.msg) == 2:
                statements.append(record.msg)

    log = logging.getLogger("peewee")
    recorder, level = Recorder(), log.level
    log.addHandler(recorder)
    log.setLevel(logging.DEBUG)
    template, url = fresh_schema()
    saved, home = database.obj, os.environ.get("QUEUECTL_HOME")
    database.initialize(None)
    aside = tempfile.TemporaryDirectory()  # open_db makes its logs there, not in the test's home
    os.environ["QUEUECTL_HOME"] = aside.name
    try:
        store.open_db(url)
    finally:
        store.close_db()
        database.initialize(saved)
        log.removeHandler(recorder)
        log.setLevel(level)
        if home is None:
            del os.environ["QUEUECTL_HOME"]
        else:
            os.environ["QUEUECTL_HOME"] = home
        aside.cleanup()
    conn = psycopg2.connect(PG_URL)
    copy, _ = fresh_schema()
    try:
        cur = conn.cursor()
        batch = ";\n".join(cur.mogrify(sql, params or ()).decode() for sql, params in statements)
        _run(copy, batch.replace(template, copy))
        same = _fingerprint(cur, template) == _fingerprint(cur, copy)
    finally:
        conn.close()
        drop_schema(copy)
    return [template, batch] if same else []


def _run(schema: str, batch: str) -> None:
    import psycopg2

    conn = psycopg2.connect(schema_url(schema))
    try:
        with conn:
            conn.cursor().execute(batch)
    finally:
        conn.close()


def _recorded() -> list:
    """``_record()``, made once per run: in a parallel run (pytest-xdist) the first process to
    need it records it and the others read it from a file of the run (recording is an open_db
    and two fingerprints: seconds under load, in each process)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        return _record()
    import fcntl
    import json

    path = os.path.join(tempfile.gettempdir(), f"queuectl-tests-{run}.pg-replay")
    with open(path, "a+") as shared:
        fcntl.flock(shared, fcntl.LOCK_EX)
        shared.seek(0)
        text = shared.read()
        if text:
            return json.loads(text)
        recorded = _record()
        shared.write(json.dumps(recorded))
        return recorded


def ready_schema() -> tuple[str, str]:
    """(name, URL) of a new schema holding what open_db would have made in it (an empty
    queue), through the recorded batch; an empty schema where replay is off."""
    global _replay
    if _replay is None:
        _replay = _recorded()
    schema, url = fresh_schema()
    if _replay:
        template, batch = _replay
        _run(schema, batch.replace(template, schema))
    return schema, url


_doomed: list[str] = []
_dropper = None


def drop_schema_later(schema: str) -> None:
    """Drop the schema in a thread of its own (DROP ... CASCADE is ~0.3 s nobody waits for);
    ``drop_pending`` at the end of the run waits for the rest."""
    import queue
    import threading

    global _dropper
    if _dropper is None:
        doomed: queue.Queue = queue.Queue()

        def drop_them():
            while (name := doomed.get()) is not None:
                try:
                    drop_schema(name)
                except Exception:  # noqa: BLE001 (a drop left to the end of the run)
                    _doomed.append(name)

        _dropper = (doomed, threading.Thread(target=drop_them, name="drop schemas", daemon=True))
        _dropper[1].start()
    _dropper[0].put(schema)


def drop_pending() -> None:
    """Wait for the schemas given to ``drop_schema_later``; drop those it could not."""
    if _dropper is not None:
        _dropper[0].put(None)
        _dropper[1].join(timeout=120)
    for name in _doomed:
        drop_schema(name)
    if _replay:
        drop_schema(_replay[0])


class TcpProxy:
    """127.0.0.1:``port`` forwarded to ``target`` (host, port): a server that can go away
    (``stop``: connections cut, new ones refused) and come back (``start``, the same port)."""

    def __init__(self, target: tuple[str, int]):
        self.target, self.port, self.listener, self.sockets = target, 0, None, []

    def start(self) -> TcpProxy:
        import socket
        import threading

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen()
        self.port, self.listener = listener.getsockname()[1], listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b) -> None:
        import socket

        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for end in (a, b):
            try:
                end.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        import socket

        for sock in [self.listener, *self.sockets]:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() of the listener's thread
            except OSError:
                pass
            sock.close()
        self.sockets = []
