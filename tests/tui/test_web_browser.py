"""The console in a real browser: ``queuectl-tui web`` opened in headless Chromium (Debian's,
driven by Playwright), its screen read from the websocket's frames through pyte.

Skipped where no Chromium is installed; on CI (CI=true) that is a failure instead."""

from __future__ import annotations

import re

import pytest
from web_support import chromium, focus_terminal, need_chromium, until, web_server

from helpers import ok, wait_for

pytestmark = [pytest.mark.usefixtures("reap"), pytest.mark.alone]  # a browser: CPU and time


def counts(text: str) -> dict[str, int]:
    """The console's counts line, as the page shows it."""
    return {state: int(n) for state, n in re.findall(r"(pending|completed|dead) (\d+)", text)}


def test_the_console_in_chromium(home, cli):
    need_chromium()
    ok(cli("enqueue", "--id", "waiting-1", "--command", "true"))
    ok(cli("enqueue", "--id", "cancelled-1", "--command", "true"))
    ok(cli("cancel", "cancelled-1"))  # a waiting job cancelled: dead, on the All tab only
    with web_server(home) as server:
        with chromium() as (page, terminal, requests):
            page.goto(server.url, wait_until="domcontentloaded")
            assert page.title().startswith("queuectl · ")
            assert "token=" not in page.url  # swapped for a cookie at once

            seen = terminal.text
            until(
                page,
                lambda: (
                    counts(seen()) == {"pending": 1, "completed": 0, "dead": 1}
                    and "cancelled-1" in seen()
                    and "waiting-1" in seen()
                ),
                timeout=60,
                message=lambda: f"the counts and jobs on the page:\n{seen()}",
            )
            assert len(server.consoles()) == 1  # this tab's console

            ok(cli("enqueue", "--id", "from-the-cli", "--command", "true"))
            until(
                page,
                lambda: "from-the-cli" in seen(),
                timeout=5,
                message=lambda: f"the job enqueued from the CLI on the page:\n{seen()}",
            )

            focus_terminal(page)
            page.keyboard.press("2")  # the Pending tab: the dead job leaves the table
            until(
                page,
                lambda: "cancelled-1" not in seen(),
                timeout=30,
                message=lambda: f"the Pending tab:\n{seen()}",
            )
            assert "from-the-cli" in seen() and "waiting-1" in seen()

            page.keyboard.press("q")
            page.wait_for_selector("body.-closed", state="attached", timeout=30_000)
            assert page.get_by_text("Session ended").is_visible()
            wait_for(lambda: not server.consoles(), timeout=30, message="the console to end")

            # Nothing was asked of another host: the page, its script, style and font came from
            # the server, and the token only ever in the first address.
            others = [url for url in requests if not url.startswith((server.base, "data:"))]
            assert not others, others
            assert [url for url in requests if "token=" in url] == [server.url]
        code, out, err = server.stop()
        assert code == 0 and server.token not in out + err, (out, err)
