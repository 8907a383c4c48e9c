"""``queuectl-tui web``: textual-serve serves the console to browsers, behind a token.

The console enqueues shell commands, so whoever can use this server has a shell as the user who
runs it. Every request (the page, its static files, the websocket, downloads) must carry the
token: once in the URL the command prints, which the server swaps for an HttpOnly cookie (and a
redirect that takes the token out of the address bar). Without it the answer is 401 (no token)
or 403 (a wrong one), before textual-serve's handler runs: no console process starts.

Each browser tab runs ``python -m queuectl_tui.web.session``, its own console on the same
database, named in the environment (``QUEUECTL_DB``), never on a command line where ``ps``
would show a PostgreSQL password. This module loads aiohttp and textual-serve (the ``web``
extra), never textual.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import os
import shlex
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web
from textual_serve.server import Server

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler

TEMPLATES = Path(__file__).with_name("templates")
# What the page may load: from this server only (the guarantee behind "works offline").
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'"
)
STOP_GRACE = 5.0  # seconds the consoles get to quit when the server stops


class Guard:
    """The aiohttp middleware that lets a request through only with the token."""

    def __init__(self, token: str, cookie: str) -> None:
        self._token = token.encode()
        self.cookie = cookie

    def matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), self._token)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        in_query = request.query.get("token")
        given = in_query if in_query is not None else request.cookies.get(self.cookie)
        if not given:
            return refusal(
                401,
                "this server needs its token: open the URL that "
                "'queuectl-tui web' printed (…/?token=…)",
            )
        if not self.matches(given):
            return refusal(403, "wrong token: open the URL that 'queuectl-tui web' printed")
        route = request.match_info.route.name
        if in_query is not None and route == "index" and request.method == "GET":
            # Swap the token for a cookie and drop it from the address bar (and history).
            rest = [(k, v) for k, v in request.query.items() if k != "token"]
            response = web.Response(
                status=303, headers={"Location": "./" + (f"?{urlencode(rest)}" if rest else "")}
            )
            self.set_cookie(response, request)
            protect(response)
            return response
        answer = await handler(request)
        if not answer.prepared:  # the websocket and downloads have sent their headers
            protect(answer, cache=route == "static")
        return answer

    def set_cookie(self, response: web.StreamResponse, request: web.Request) -> None:
        response.set_cookie(
            self.cookie,
            self._token.decode(),
            httponly=True,
            samesite="Strict",
            secure=request.secure or None,
            path="/",
        )


def refusal(status: int, text: str) -> web.Response:
    response = web.Response(status=status, text=f"queuectl web: {text}\n")
    protect(response)
    return response


def protect(response: web.StreamResponse, cache: bool = False) -> None:
    """What the browser may do with a response: load nothing from elsewhere, tell no one where
    it came from, keep only the static files (textual.js is half a megabyte)."""
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Content-Type-Options"] = "nosniff"
    if not cache:
        response.headers["Cache-Control"] = "no-store"


class ConsoleServer(Server):
    """textual-serve's Server with the token in front of every route, our page, no banner, and
    its consoles told to quit when it stops."""

    def __init__(self, command: str, *, token: str, cookie: str, title: str) -> None:
        super().__init__(command, title=title, templates_path=TEMPLATES)
        self.guard = Guard(token, cookie)
        self.sessions: set[asyncio.Task[Any]] = set()

    async def _make_app(self) -> web.Application:
        # textual-serve builds its routes here (index, ws, download, static) and offers no
        # other place to add a middleware before aiohttp freezes the app; the access tests
        # pin that every one of those routes is behind it.
        app = await super()._make_app()
        app.middlewares.append(self.guard.middleware)
        app.middlewares.append(self._track)
        return app

    @web.middleware
    async def _track(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Remember each websocket's handler, to end its console at shutdown."""
        if request.match_info.route.name != "websocket":
            return await handler(request)
        task = asyncio.current_task()
        assert task is not None  # a request's handler runs in a task
        self.sessions.add(task)
        try:
            return await handler(request)
        finally:
            self.sessions.discard(task)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner with its command here; the CLI prints the URL."""

    async def on_shutdown(self, app: web.Application) -> None:
        """Each console's handler, cancelled, closes its websocket and tells its console to
        quit (and waits for it); aiohttp would otherwise wait for the tabs to close."""
        for task in self.sessions:
            task.cancel()
        if self.sessions:
            await asyncio.wait(self.sessions, timeout=STOP_GRACE)


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound here, so that ``--port 0`` is known before the URL is printed."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def is_loopback(sock: socket.socket) -> bool:
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def url_of(host: str, sock: socket.socket, token: str) -> str:
    """The address a person opens: the host as given (a wildcard address becomes this
    machine's name), the port bound."""
    name = host
    with contextlib.suppress(ValueError):
        address = ipaddress.ip_address(host)
        if address.is_unspecified:
            name = socket.gethostname()
        elif address.version == 6:
            name = f"[{host}]"
    return f"http://{name}:{sock.getsockname()[1]}/?token={token}"


def session_command(read_only: bool) -> str:
    """What textual-serve runs (through /bin/sh) for each tab: the console, on pipes."""
    command = f"exec {shlex.quote(sys.executable)} -m queuectl_tui.web.session"
    return command + (" --read-only" if read_only else "")


def quiet_logs() -> None:
    """textual-serve and aiohttp report problems on stderr in one plain line each; there is no
    access log (a request line would carry the token)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("web: %(message)s"))
    for name in ("textual-serve", "aiohttp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def serve(
    sock: socket.socket, *, token: str, title: str, read_only: bool, ready: Callable[[], None]
) -> int:
    """Serve on ``sock`` until SIGTERM or SIGINT; returns the signal's number. ``ready()`` runs
    once requests are answered."""
    quiet_logs()
    server = ConsoleServer(
        session_command(read_only),
        token=token,
        title=title,
        cookie=f"queuectl_web_{sock.getsockname()[1]}",
    )
    return asyncio.run(_serve(server, sock, ready))


async def _serve(server: ConsoleServer, sock: socket.socket, ready: Callable[[], None]) -> int:
    loop = asyncio.get_running_loop()
    stop: asyncio.Future[int] = loop.create_future()

    def stop_on(signum: int) -> None:
        if not stop.done():
            stop.set_result(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_on, signum)
    runner = web.AppRunner(
        await server._make_app(), access_log=None, handle_signals=False, shutdown_timeout=STOP_GRACE
    )
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        ready()
        return await stop
    finally:
        await runner.cleanup()


def environment_for(db: str) -> None:
    """What every tab's console inherits: the database to open, and not the token."""
    os.environ["QUEUECTL_DB"] = db
    os.environ.pop("QUEUECTL_WEB_TOKEN", None)
