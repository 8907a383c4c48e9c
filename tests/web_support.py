"""Helpers of the web console tests: the real ``queuectl-tui web`` in a subprocess, and Debian's
Chromium driven by Playwright, whose screen is read by feeding the websocket's frames (what the
page's terminal draws on its canvas) into a terminal emulator (pyte)."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil
import pytest

from helpers import cli_env

CHROMIUM = "/usr/bin/chromium"
#: Headless, and nothing Chromium would fetch from the internet on its own.
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--metrics-recording-only",
    "--mute-audio",
]
_PR_SET_CHILD_SUBREAPER = 36


def need_chromium() -> None:
    """Skip where no Chromium (or no playwright) is installed; on CI (CI=true), fail instead:
    .ci/run installs both there."""
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install -y --no-install-recommends chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
            import pyte  # noqa: F401
        except ImportError as exc:
            missing = f"the test extra is not installed ({exc.name})"
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"the browser test cannot run on CI: {missing}")
    if missing:
        pytest.skip(missing)


@dataclass
class WebServer:
    proc: subprocess.Popen
    url: str  # as printed: with the token

    @property
    def base(self) -> str:
        return self.url.split("?", 1)[0]

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]

    @property
    def port(self) -> int:
        return urlsplit(self.url).port

    def consoles(self) -> list[psutil.Process]:
        """The console processes it runs (one per open tab)."""
        try:
            return [
                p
                for p in psutil.Process(self.proc.pid).children(recursive=True)
                if p.status() != psutil.STATUS_ZOMBIE
            ]
        except psutil.NoSuchProcess:
            return []

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Signal it and wait: (exit code, the rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


@contextlib.contextmanager
def web_server(home: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[WebServer]:
    """``queuectl-tui web --port 0 ARGS`` on the database in ``home``, until its URL is printed;
    stopped (and its consoles with it) afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "queuectl_tui", "web", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or cli_env(home),
        cwd=home.parent,
    )
    server = None
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://"), f"no URL printed: {url!r} {proc.stderr.read()}"
        server = WebServer(proc, url)
        yield server
    finally:
        consoles = server.consoles() if server else []
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
        for console in consoles:
            with contextlib.suppress(psutil.Error):
                console.kill()


# --- the screen, from the websocket ---------------------------------------------------------


@dataclass
class Terminal:
    """What the page's terminal shows, rebuilt from the bytes the server sends it."""

    screen: object = None
    stream: object = None
    frames: int = 0
    sockets: list = field(default_factory=list)

    def attach(self, ws) -> None:
        import pyte

        if not ws.url.split("?")[0].endswith("/ws"):
            return
        query = parse_qs(urlsplit(ws.url).query)
        self.screen = pyte.Screen(int(query["width"][0]), int(query["height"][0]))
        self.stream = pyte.ByteStream(self.screen)
        self.sockets.append(ws)
        ws.on("framereceived", self._received)
        ws.on("framesent", self._sent)

    def _received(self, payload) -> None:
        if isinstance(payload, bytes | bytearray):
            self.frames += 1
            self.stream.feed(bytes(payload))

    def _sent(self, payload) -> None:
        if isinstance(payload, str) and payload.startswith('["resize"'):
            size = json.loads(payload)[1]
            self.screen.resize(size["height"], size["width"])

    def text(self) -> str:
        return "\n".join(self.screen.display) if self.screen else ""


def until(page, condition: Callable[[], object], timeout: float, message: str | Callable[[], str]):
    """Poll while Playwright delivers the page's events (a plain sleep would hold them);
    ``message`` (or what it returns, at the deadline) says what did not come."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            shown = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {shown}")
        page.wait_for_timeout(50)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[tuple[object, Terminal, list]]:
    """(page, its terminal, every URL the page requested) in a headless Chromium; closed after,
    and its processes reaped: this process is their subreaper meanwhile, so that none is left
    a zombie where PID 1 does not reap."""
    from playwright.sync_api import sync_playwright

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    browsers: list[psutil.Process] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                terminal, requests = Terminal(), []
                page.on("websocket", terminal.attach)
                page.on("request", lambda request: requests.append(request.url))
                yield page, terminal, requests
            finally:
                browsers = [
                    p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()
                ]
                browser.close()
    finally:
        _reap(browsers)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _reap(processes: list[psutil.Process], timeout: float = 10.0) -> None:
    """Wait for each to be gone, reaping those left to this process; kill stragglers."""
    deadline = time.monotonic() + timeout
    for proc in processes:
        while time.monotonic() < deadline + 5:
            try:
                if proc.ppid() == os.getpid() and proc.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(proc.pid, 0)
                    break
                if time.monotonic() > deadline:
                    proc.kill()
            except (psutil.NoSuchProcess, ChildProcessError):
                break
            time.sleep(0.02)


def focus_terminal(page) -> None:
    page.locator(".xterm-helper-textarea").focus()
