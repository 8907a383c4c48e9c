"""The queue's figures for Prometheus (``stats --prometheus``, ``metrics serve``).

Needs the optional extra ``metrics`` (prometheus_client). A custom collector on a registry of
its own reads the database at each scrape: nothing is kept between scrapes, so any number of
workers and CLI processes may change the queue meanwhile. A scrape of ``metrics serve`` that
cannot read the database (a server away, a file unreadable) answers ``queuectl_up 0`` alone,
as exporters do for their backend, and the next one tries again. No click, no textual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from peewee import DatabaseError, InterfaceError, fn

from queuectl_tui import engine, metrics, settings
from queuectl_tui.errors import QueueError
from queuectl_tui.store.models import Attempt, JobCount, Worker, WorkerStatus, database

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric

MISSING = (
    "Prometheus output needs the prometheus_client package: pip install 'queuectl-tui[metrics]'"
)


def require() -> None:
    """Raise a one-line QueueError when the extra is not installed."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        raise QueueError(MISSING) from None


def registry(
    window: float = metrics.DEFAULT_WINDOW,
    clock: Callable[[], float] = time.time,
    on_change: Callable[[Exception | None], None] | None = None,
) -> CollectorRegistry:
    """A fresh CollectorRegistry holding only the queue's collector (see QueueCollector)."""
    require()
    from prometheus_client import CollectorRegistry

    reg = CollectorRegistry(auto_describe=False)
    reg.register(QueueCollector(window, clock, on_change))
    return reg


def text(window: float = metrics.DEFAULT_WINDOW, clock: Callable[[], float] = time.time) -> str:
    """The text exposition format, as a scrape of ``metrics serve`` returns it."""
    from prometheus_client import generate_latest

    return generate_latest(registry(window, clock)).decode("utf-8")


#: Seconds a client may leave its socket idle (its request not sent, the answer not read), and
#: the most one connection may take in all (a client trickling its request a byte at a time):
#: a slow or stuck client must never hold a server thread for good.
CLIENT_TIMEOUT = 10.0
CONNECTION_LIMIT = 60.0


def serve(
    host: str,
    port: int,
    window: float = metrics.DEFAULT_WINDOW,
    on_change: Callable[[Exception | None], None] | None = None,
) -> WSGIServer:
    """Start the HTTP exporter in a daemon thread; returns the server (``server_address``
    has the port actually bound, for port 0). ``on_change(error)`` is told when scrapes stop
    reading the database (the error) and when they read it again (None).

    prometheus_client's WSGI app behind a server of our own: a thread per connection, as
    ``start_http_server``, but each with a socket timeout and a deadline (``CLIENT_TIMEOUT``,
    ``CONNECTION_LIMIT``), and ``HEAD`` answered as ``GET`` without the body (the app says 405)."""
    import socket
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from prometheus_client import make_wsgi_app

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a scrape never keeps the process alive
        address_family = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0][0]

    class Handler(WSGIRequestHandler):
        timeout = CLIENT_TIMEOUT  # applied to the socket by StreamRequestHandler.setup

        def setup(self) -> None:
            super().setup()
            # Past the deadline the socket is shut: a read or write blocked on it returns.
            self._deadline = threading.Timer(CONNECTION_LIMIT, self._cut)
            self._deadline.daemon = True
            self._deadline.start()

        def _cut(self) -> None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        def handle(self) -> None:
            try:
                super().handle()
            except OSError:
                pass  # timed out, cut at the deadline or gone: nothing to answer

        def finish(self) -> None:
            self._deadline.cancel()
            try:
                super().finish()
            except OSError:
                pass

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
            pass  # no line per scrape

    app = _with_head(make_wsgi_app(registry(window, on_change=on_change or _quiet)))
    server = make_server(host, port, app, Server, handler_class=Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="queuectl-metrics").start()
    return server


def _with_head(app: WSGIApplication) -> WSGIApplication:
    """``app`` answering HEAD as it answers GET, less the body (RFC 9110: a server that
    answers GET should answer HEAD), and saying so in its Allow header."""

    def allow(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        return [
            (name, "OPTIONS,GET,HEAD" if name.lower() == "allow" else value)
            for name, value in headers
        ]

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "HEAD":
            return app(
                environ,
                lambda status, headers, exc_info=None: start_response(
                    status, allow(headers), exc_info
                ),
            )
        answer: list[tuple[str, list[tuple[str, str]]]] = []

        def keep(
            status: str, headers: list[tuple[str, str]], exc_info: object = None
        ) -> Callable[[bytes], object]:
            answer.append((status, headers))
            return lambda data: None  # WSGI's write(): a HEAD answer writes no body

        body = b"".join(app({**environ, "REQUEST_METHOD": "GET"}, keep))
        status, headers = answer[0]
        start_response(
            status,
            [h for h in allow(headers) if h[0].lower() != "content-length"]
            + [("Content-Length", str(len(body)))],
        )
        return []

    return wrapped


def _quiet(error: Exception | None) -> None:
    pass


class QueueCollector:
    """Without ``on_change`` a database error reaches the caller (``stats --prometheus``: one
    line, exit 1). With it (the server) a scrape that fails answers ``queuectl_up 0`` and no
    other figure (a partial set would read as real values), and ``on_change`` is told once
    per outage and once at its end."""

    def __init__(
        self,
        window: float,
        clock: Callable[[], float],
        on_change: Callable[[Exception | None], None] | None = None,
    ) -> None:
        self.window = window
        self.clock = clock
        self.on_change = on_change
        self.failing = False

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily(
            "queuectl_up",
            "1 if this scrape read the database, 0 if it "
            "could not (then no other figure is given).",
        )
        try:
            families, read = list(self._collect(self.clock())), True
        except (DatabaseError, InterfaceError) as exc:
            if self.on_change is None:
                raise
            families, read = [], False
            if not self.failing:
                self.failing = True
                self.on_change(exc)
        finally:
            if threading.current_thread() is not threading.main_thread():
                database.close()  # the server's thread for this scrape: no connection outlives it
        if read and self.failing and self.on_change is not None:
            self.failing = False
            self.on_change(None)
        up.add_metric([], 1 if read else 0)
        yield up
        yield from families

    def _collect(self, now: float) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

        jobs = GaugeMetricFamily(
            "queuectl_jobs", "Jobs per queue and state.", labels=["queue", "state"]
        )
        summed = fn.SUM(JobCount.n)  # PostgreSQL keeps a row per writing session (store/pgsql.py)
        # execute(): the rows as they are; peewee's stubs type a model query's rows as models.
        for queue, state, n in (
            JobCount.select(JobCount.queue, JobCount.state, summed)
            .group_by(JobCount.queue, JobCount.state)
            .order_by(JobCount.queue, JobCount.state)
            .tuples()
            .execute()
        ):
            jobs.add_metric([queue, state], int(n))
        yield jobs

        workers = GaugeMetricFamily(
            "queuectl_workers", "Worker rows by status (lost: presumed dead).", labels=["status"]
        )
        by_status: dict[str, int] = dict.fromkeys(WorkerStatus, 0)
        lease = settings.get("lease")
        for worker in Worker.select():
            status = (
                worker.status
                if engine.worker_alive(worker, now=now, lease=lease)
                else WorkerStatus.LOST
            )
            by_status[status] = by_status.get(status, 0) + 1
        for status, n in by_status.items():
            workers.add_metric([status], n)
        yield workers

        attempts = CounterMetricFamily(
            "queuectl_attempts",
            "Finished attempts recorded in the database, by outcome "
            "(deleting jobs deletes theirs: seen as a counter reset).",
            labels=["outcome"],
        )
        for outcome, n in (
            Attempt.select(Attempt.outcome, fn.COUNT(Attempt.seq))
            .where(Attempt.finished_at.is_null(False))
            .group_by(Attempt.outcome)
            .order_by(Attempt.outcome)
            .tuples()
            .execute()
        ):
            attempts.add_metric([outcome or "unknown"], n)
        yield attempts

        stats = metrics.execution_stats(now - self.window, None, now)
        window = f" over the last {self.window:g} s"
        gauges = [
            ("completed", "Attempts completed" + window),
            ("failed_attempts", "Attempts failed, timed out or lost" + window),
            ("dead", "Jobs that went to the DLQ" + window),
            ("throughput_per_min", "Attempts completed per minute" + window),
            ("success_rate", "Completed / (completed + failed attempts)" + window),
            ("retries_per_job", "Reruns per first run" + window),
        ]
        for key, help_text in gauges:
            family = GaugeMetricFamily(f"queuectl_window_{key}", help_text, labels=["queue"])
            for queue, fig in stats["queues"].items():
                if fig[key] is not None:
                    family.add_metric([queue], fig[key])
            yield family
        oldest = GaugeMetricFamily(
            "queuectl_oldest_due_seconds",
            "How long the waiting job due the longest has been due.",
            labels=["queue"],
        )
        for queue, fig in stats["queues"].items():
            oldest.add_metric([queue], fig["oldest_due"]["waited"] if fig["oldest_due"] else 0.0)
        yield oldest

        for key, name, what in (
            ("wait", "queuectl_attempt_wait_seconds", "From due to started"),
            ("run", "queuectl_attempt_run_seconds", "Run time"),
        ):
            summary = Metric(name, f"{what} of the attempts finished{window}.", "summary")
            for queue, fig in stats["queues"].items():
                times = fig[key]
                for p in metrics.PERCENTILES:
                    if times[f"p{p}"] is not None:
                        summary.add_sample(
                            name, {"queue": queue, "quantile": str(p / 100)}, times[f"p{p}"]
                        )
                summary.add_sample(f"{name}_count", {"queue": queue}, times["count"])
                summary.add_sample(f"{name}_sum", {"queue": queue}, times["sum"])
            yield summary
