"""The server's side of a PostgreSQL benchmark: a fresh database per measurement, the CPU the
server's processes spend on it, and what its clients asked of it.

- CPU: the server runs on this machine and is shared (test suites of other checkouts use it
  too), so the whole server's CPU would count their work. Counted instead: the backends
  connected to the measured database (found by their process title, ``user db host(port)``)
  and the server's own background processes (WAL writer, checkpointer, background writer,
  autovacuum), read from ``/proc/PID/schedstat`` (nanoseconds) every 20 ms while the drain
  runs, from the postmaster's list of children. A backend's last < 20 ms before it exits is
  lost; the drains stop counting at their last job, before their workers disconnect.
- Statements: ``pg_stat_statements`` must be preloaded (a restart of a shared server), so the
  measured database gets ``log_statement = 'all'`` (``ALTER DATABASE``, for new sessions of
  that database only) and its lines of the server's log are counted: one per statement the
  server was sent (simple protocol ``statement:``, extended protocol ``execute``), which for
  these clients is one round trip each. Logging slows the server, so the count is taken in a
  separate drain from the timed one.
- Transactions and rows: ``pg_stat_database`` of the measured database (commits + rollbacks;
  rows inserted + updated + deleted), read once every backend of it has exited, which is when
  a backend's counts are sure to have reached the statistics.
"""

from __future__ import annotations

import os
import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BACKGROUND = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "logical replication launcher",
    "archiver",
    "stats collector",
    "walreceiver",
)


def connect(url: str):
    import psycopg2

    conn = psycopg2.connect(url)
    conn.autocommit = True
    return conn


def query(conn, sql: str, args: tuple = ()):
    with conn.cursor() as cursor:
        cursor.execute(sql, args)
        return cursor.fetchall()


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def run_ns(pid: int) -> int | None:
    """CPU time of a process so far (user + system, ns); None once it is gone."""
    text = _read(f"/proc/{pid}/schedstat")
    return int(text.split()[0]) if text else None


class Server:
    """A PostgreSQL server named by a URL whose role may create databases."""

    def __init__(self, url: str):
        self.url = url
        conn = connect(url)
        try:
            rows = query(
                conn,
                "SELECT current_setting('server_version'), pg_backend_pid(), "
                "current_setting('log_line_prefix'), current_setting('cluster_name'), "
                "pg_current_logfile(), (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)",
            )
            version, backend, self.log_prefix, self.cluster, logfile, superuser = rows[0]
            data_dir = (
                query(conn, "SELECT current_setting('data_directory')")[0][0] if logfile else None
            )
            # while the connection is open: its backend exits with it (read after the close, its
            # /proc entry was gone on a loaded machine, and the server taken for a remote one)
            self.postmaster, self.why_no_cpu = self._postmaster(backend)
        finally:
            conn.close()
        self.version = f"PostgreSQL {version.split()[0]}"
        self.log_path, self.why_no_statements = self._log(logfile, data_dir, superuser)

    @staticmethod
    def _postmaster(backend: int) -> tuple[int | None, str | None]:
        title = _read(f"/proc/{backend}/cmdline") or ""
        if not title.startswith("postgres"):
            return (
                None,
                "the server is not a process on this machine (no /proc entry for its backend)",
            )
        stat = _read(f"/proc/{backend}/stat") or ""
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if _read(f"/proc/{ppid}/task/{ppid}/children") is None or run_ns(ppid) is None:
            return None, "cannot read the server's processes in /proc"
        return ppid, None

    def _log(
        self, logfile: str | None, data_dir: str | None, superuser: bool
    ) -> tuple[str | None, str | None]:
        if not superuser:
            return None, "log_statement is a superuser's setting, and the role is not one"
        if "%d" not in self.log_prefix:
            return None, f"log_line_prefix '{self.log_prefix}' does not name the database"
        if logfile:  # the logging collector's current file
            path = logfile if logfile.startswith("/") else os.path.join(data_dir, logfile)
        elif self.postmaster:  # stderr, which Debian's pg_ctlcluster sends to a file
            try:
                path = os.readlink(f"/proc/{self.postmaster}/fd/2")
            except OSError as exc:
                return None, f"cannot find the server's log ({exc.strerror})"
        else:
            return None, "the server's log is not readable here"
        if not path.startswith("/") or not os.access(path, os.R_OK):
            return None, f"cannot read the server's log {path}"
        return path, None

    def url_of(self, db: str) -> str:
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path=f"/{db}"))

    @contextmanager
    def database(self, name: str):
        """A new empty database for one measurement: yields (name, URL); dropped after."""
        db = re.sub(r"[^a-z0-9_]", "_", f"qbench_{name}_{os.getpid()}".lower())
        conn = connect(self.url)
        try:
            query_ddl(conn, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            query_ddl(conn, f'CREATE DATABASE "{db}"')
            yield db, self.url_of(db)
        finally:
            query_ddl(conn, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            conn.close()

    def backends(self, db: str) -> int:
        conn = connect(self.url)
        try:
            return query(conn, "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (db,))[
                0
            ][0]
        finally:
            conn.close()

    def quiet(self, db: str, timeout: float = 15) -> None:
        """Wait until no session of ``db`` is left (their statistics are then recorded)."""
        deadline = time.monotonic() + timeout
        while self.backends(db):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sessions of {db} still open after {timeout:.0f} s")
            time.sleep(0.02)
        time.sleep(0.05)

    def db_stats(self, db: str) -> dict:
        conn = connect(self.url)
        try:
            row = query(
                conn,
                "SELECT xact_commit + xact_rollback, tup_inserted + tup_updated + tup_deleted "
                "FROM pg_stat_database WHERE datname = %s",
                (db,),
            )[0]
        finally:
            conn.close()
        return {"transactions": row[0], "rows_written": row[1]}

    @contextmanager
    def statement_log(self, db: str):
        """Log every statement of new sessions of ``db``; yields a function that counts them."""
        if not self.log_path:
            raise RuntimeError(self.why_no_statements)
        conn = connect(self.url)
        try:
            query_ddl(conn, f"ALTER DATABASE \"{db}\" SET log_statement = 'all'")
        finally:
            conn.close()
        start = os.path.getsize(self.log_path)
        mark = re.compile(rf"(^|[\s@\[]){re.escape(db)}([\s\]@,]|$)")

        def count() -> int:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                text = f.read().decode(errors="replace")
            n = 0
            for line in text.splitlines():
                head, sep, rest = line.partition(" LOG:  ")
                if sep and mark.search(head) and rest.startswith(("statement: ", "execute ")):
                    n += 1
            return n

        yield count

    def cpu_meter(self, db: str, exclude: set[int]) -> CpuMeter | None:
        return CpuMeter(self.postmaster, self.cluster, db, exclude) if self.postmaster else None


def query_ddl(conn, sql: str) -> None:
    with conn.cursor() as cursor:
        cursor.execute(sql)


class CpuMeter(threading.Thread):
    """CPU (ns) of the server's processes that work for database ``db``, between start() and
    stop(): its backends (less ``exclude``, e.g. the benchmark's own poller) and the server's
    background processes."""

    def __init__(self, postmaster: int, cluster: str, db: str, exclude: set[int]):
        super().__init__(daemon=True)
        self.postmaster, self.db, self.exclude = postmaster, db, exclude
        self.prefix = f"postgres: {cluster}: " if cluster else "postgres: "
        self.kinds: dict[int, str] = {}  # pid -> "backend" | "background" | "other"
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.halt = threading.Event()

    def kind(self, pid: int) -> str | None:
        if pid in self.kinds:
            return self.kinds[pid]
        title = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
        if not title.startswith(self.prefix):
            return None  # just forked: not titled yet, look again next time
        rest = title[len(self.prefix) :]
        if rest.startswith("autovacuum worker"):
            kind = "background" if self.db in rest.split() else "other"
        elif rest.startswith(BACKGROUND):
            kind = "background"
        else:
            words = rest.split()
            kind = (
                "backend"
                if len(words) > 1 and words[1] == self.db and pid not in self.exclude
                else "other"
            )
        self.kinds[pid] = kind
        return kind

    def sample(self) -> None:
        children = _read(f"/proc/{self.postmaster}/task/{self.postmaster}/children") or ""
        for pid in map(int, children.split()):
            if self.kind(pid) in ("backend", "background"):
                ns = run_ns(pid)
                if ns is not None:
                    self.last[pid] = ns

    def start(self) -> None:
        self.sample()
        # A process alive now counts from now; one that appears later counts from its fork.
        self.first = dict(self.last)
        super().start()

    def run(self) -> None:
        while not self.halt.wait(0.02):
            self.sample()

    def stop(self) -> dict:
        self.halt.set()
        self.join()
        self.sample()
        out = {"backend": 0, "background": 0}
        for pid, ns in self.last.items():
            out[self.kinds[pid]] += ns - self.first.get(pid, 0)
        return {k: v / 1e9 for k, v in out.items()}


def log_tail(path: Path, lines: int = 1) -> str:
    """The last lines of a process's stderr file, for an error message."""
    text = _read(str(path)) or ""
    return " | ".join(text.strip().splitlines()[-lines:])
