"""PostgreSQL for the tests: QUEUECTL_TEST_PG names a server database the tests may create
schemas in (``postgresql://user:password@host:port/dbname``); each test gets a schema of its
own (selected through the URL's ``options=-csearch_path=…``), dropped after it."""

from __future__ import annotations

import os
import uuid
from urllib.parse import quote

PG_URL = os.environ.get("QUEUECTL_TEST_PG") or None
SKIP_REASON = ("PostgreSQL tests need a server: set QUEUECTL_TEST_PG=postgresql://user:password"
               "@host:port/dbname (a database where schemas may be created)")


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
