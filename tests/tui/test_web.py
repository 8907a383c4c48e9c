"""``queuectl-tui web`` without a browser: who gets in (the token, then its cookie), what each
connection starts, read-only, the command's own messages and exit codes."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time

import pytest
from web_support import web_server

from helpers import cli_env, run_command, run_in_process, user_error

aiohttp = pytest.importorskip("aiohttp", reason="the web extra is not installed")
pyte = pytest.importorskip("pyte", reason="the test extra is not installed")

pytestmark = pytest.mark.usefixtures("reap")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One server for the access tests: each leaves it without a console running."""
    home = tmp_path_factory.mktemp("web") / "qhome"
    with web_server(home) as server:
        server.home = home
        yield server


def client() -> aiohttp.ClientSession:
    """Cookies only as a test sends them; redirects not followed."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


def cookie(server, value: str | None = None) -> dict[str, str]:
    return {"Cookie": f"queuectl_web_{server.port}={value or server.token}"}


async def refused(http, server, status: int, *, query: str = "", headers=None) -> None:
    """Every route answers ``status``, and a websocket is not opened."""
    for path in ("", "static/js/textual.js", "static/", "download/any", "ws"):
        async with http.get(
            server.base + path + query, headers=headers, allow_redirects=False
        ) as response:
            assert response.status == status, (path, query, headers)
            assert "queuectl web:" in await response.text()
    with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
        await http.ws_connect(server.base + "ws" + query, headers=headers)
    assert handshake.value.status == status


async def poll(condition, timeout: float = 30.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.05)
    return value


async def screen_until(ws, text: str, timeout: float = 60.0) -> str:
    """Feed the console's output into a terminal until it shows ``text``; the screen."""
    screen = pyte.Screen(100, 30)
    stream = pyte.ByteStream(screen)
    deadline = time.monotonic() + timeout
    while text not in (shown := "\n".join(screen.display)):
        try:
            message = await ws.receive(timeout=max(0.01, deadline - time.monotonic()))
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {text!r} on:\n{shown}") from None
        assert message.type != aiohttp.WSMsgType.CLOSE, f"closed before {text!r}:\n{shown}"
        if message.type == aiohttp.WSMsgType.BINARY:
            stream.feed(message.data)
    return shown


# --- access ------------------------------------------------------------------------------------


async def test_without_the_token_every_route_is_401_and_no_console_starts(server):
    async with client() as http:
        await refused(http, server, 401)
        await refused(http, server, 401, query="?token=")
    assert server.consoles() == []


async def test_a_wrong_token_is_403_in_the_url_or_the_cookie(server):
    wrong = server.token[:-1] + ("A" if server.token[-1] != "A" else "B")
    async with client() as http:
        await refused(http, server, 403, query=f"?token={wrong}")
        await refused(http, server, 403, query="?token=%C3%A9t%C3%A9")
        await refused(http, server, 403, headers=cookie(server, wrong))
    assert server.consoles() == []


async def test_the_token_sets_an_httponly_cookie_which_opens_the_page(server):
    async with client() as http:
        async with http.get(server.url + "&fontsize=14", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "./?fontsize=14"  # the token leaves the URL
            set_cookie = response.headers["Set-Cookie"]
        assert set_cookie.startswith(f"queuectl_web_{server.port}={server.token};")
        attributes = {part.strip() for part in set_cookie.split(";")}
        assert {"HttpOnly", "Path=/", "SameSite=Strict"} <= attributes
        async with http.get(server.base, headers=cookie(server)) as response:
            assert response.status == 200
            page = await response.text()
            policy = response.headers["Content-Security-Policy"]
        for path in (
            "static/js/textual.js",
            "static/css/xterm.css",
            "static/fonts/RobotoMono-VariableFont_wght.ttf",
        ):
            async with http.get(server.base + path, headers=cookie(server)) as response:
                assert response.status == 200, path
    assert re.search(r"<title>queuectl · .*queuectl\.db</title>", page)
    assert "://" not in page  # every address relative: nothing from another host
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy


async def test_each_connection_runs_its_own_console_on_the_database_until_closed(server):
    async with client() as http:
        ws = await http.ws_connect(server.base + "ws?width=100&height=30", headers=cookie(server))
        (console,) = await poll(server.consoles, message="a console for the connection")
        assert "pending" in await screen_until(ws, "pending")
        command, env = " ".join(console.cmdline()), console.environ()
        await ws.close()
    # The database reaches it in the environment, never on its command line; the token not at all.
    assert env["QUEUECTL_DB"] == str(server.home / "queuectl.db")
    assert "queuectl.db" not in command and server.token not in command
    assert server.token not in " ".join(env.values())
    await poll(lambda: not server.consoles(), message="the console to end with its connection")


async def test_read_only_serves_a_console_that_refuses_an_enqueue(tmp_path):
    home = tmp_path / "qhome"
    with web_server(home, "--read-only") as server:
        async with client() as http:
            ws = await http.ws_connect(
                server.base + "ws?width=100&height=30", headers=cookie(server)
            )
            await screen_until(ws, "read-only")  # the key bar says so
            await ws.send_json(["stdin", "n"])
            shown = await screen_until(ws, "read-only console: enqueue refused")
            assert "Enqueue" not in shown  # neither in the key bar nor as a form
            # Stopped with a tab open: its console quits, and the tab is told.
            (console,) = server.consoles()
            code, _out, err = await asyncio.to_thread(server.stop, signal.SIGTERM)
            assert code == 0 and err == ""
            while (await ws.receive(timeout=30)).type not in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
            ):
                pass  # the frames sent before the end
    assert not console.is_running() or console.status() == "zombie"
    result = run_command(home, "status", "--json")
    assert result.json()["total"] == 0


async def test_every_route_textual_serve_makes_is_behind_the_token():
    """ConsoleServer adds its guard in textual-serve's private ``_make_app``: this pins that
    every route made there answers 401 without the token (and that they are the ones the
    guard knows by name)."""
    from aiohttp.test_utils import TestClient, TestServer

    from queuectl_tui.web.server import ConsoleServer

    server = ConsoleServer("exit 1", token="t" * 24, cookie="c", title="queuectl")
    app = await server._make_app()
    names = {resource.name for resource in app.router.resources()}
    assert names == {"index", "websocket", "download", "static"}
    async with TestClient(TestServer(app)) as http:
        for resource in app.router.resources():
            info = resource.get_info()
            path = info.get("path") or info.get("formatter") or info["prefix"] + "/js/textual.js"
            response = await http.get(path.replace("{key}", "any"))
            assert response.status == 401, path


# --- the command ----------------------------------------------------------------------------


def test_token_from_the_environment_and_ctrl_c_exits_130(tmp_path):
    home = tmp_path / "qhome"
    token = "from-the-environment-0123"
    with web_server(home, env=cli_env(home, QUEUECTL_WEB_TOKEN=token)) as server:
        assert server.url.endswith(f"/?token={token}")
        code, out, err = server.stop(signal.SIGINT)
    assert code == 130 and out == "" and err == ""


def test_a_non_loopback_address_warns_of_the_remote_shell_and_sigterm_exits_0(tmp_path):
    home = tmp_path / "qhome"
    with web_server(home, "--host", "0.0.0.0") as server:
        assert server.url.startswith("http://") and "0.0.0.0" not in server.url
        code, out, err = server.stop(signal.SIGTERM)
    assert code == 0 and out == ""
    (warning,) = err.splitlines()
    assert warning.startswith("warning: listening on 0.0.0.0") and "remote shell" in warning
    assert server.token not in err


@pytest.mark.parametrize("token", ["short", "with space in it 0123456789", "x" * 257])
def test_an_unusable_token_is_one_line_exit_2(home, token):
    # refused before a server starts: in this process
    line = user_error(run_in_process(home, "web", "--token", token), 2)
    assert "16 to 256 characters" in line and token not in line


def test_an_unusable_database_fails_at_start_not_in_each_tab(home, tmp_path):
    line = user_error(run_in_process(home, "--db", str(tmp_path), "web", "--port", "0"), 1)
    assert "not a database" in line


def test_without_the_web_extra_it_says_how_to_install_it(home):
    blocked = (
        "import sys; sys.modules['textual_serve'] = None; "
        "from queuectl_tui.__main__ import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", blocked, "web"],
        capture_output=True,
        text=True,
        env=cli_env(home),
        timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == (
        "error: queuectl-tui web needs the web extra: pip install 'queuectl-tui[web]'\n"
    )


def test_the_parity_table_has_the_web_face_with_commands_that_exist():
    from test_tui_parity import commands_in, parity_rows, resolve

    (row,) = [row for row in parity_rows() if row[0] == "web"]
    commands = commands_in(row[3])
    assert "queuectl-tui web --read-only" in commands
    assert {resolve(command).name for command in commands} == {"web"}


def test_the_server_never_imports_textual(home):
    """The consoles are the tabs' processes; the server is aiohttp and textual-serve alone."""
    code = (
        "import sys; from queuectl_tui import cli; from queuectl_tui.web import server; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'textual'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(home), timeout=60
    )
    assert proc.returncode == 0 and proc.stdout == "[]\n", proc.stdout + proc.stderr
