"""Write screenshots/web.png: the console served by ``queuectl-tui web``, in Chromium.

Builds the database exactly as ``demo`` does (queuectl_tui.demo.session: the sample history,
the live jobs and two detached workers), serves it with ``queuectl-tui web --port 0``, opens the
printed URL in Debian's Chromium (headless, driven by Playwright: ``apt-get install -y
--no-install-recommends chromium`` and the test extra; nothing is downloaded), waits until the
console shows the demo's jobs and both workers (read from the websocket's frames through pyte,
as the browser test does), then saves the page. The demo is live: another run shows other
times and figures.

Run: python scripts/web_screenshot.py [--out screenshots/web.png] [--size 1280x800]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
]
DEADLINE = 120.0  # seconds for the console to show the demo


def shoot(url: str, out: Path, width: int, height: int) -> None:
    import pyte
    from playwright.sync_api import sync_playwright

    screens = []

    def attach(ws) -> None:
        query = parse_qs(urlsplit(ws.url).query)
        screen = pyte.Screen(int(query["width"][0]), int(query["height"][0]))
        stream = pyte.ByteStream(screen)
        screens.append(screen)
        ws.on("framereceived", lambda data: isinstance(data, bytes) and stream.feed(data))

    def shown() -> str:
        return "\n".join(screens[-1].display) if screens else ""

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("websocket", attach)
            page.goto(url, wait_until="domcontentloaded")
            deadline = time.monotonic() + DEADLINE
            while not ("workers 2 alive" in shown() and "fetch-exchange-rates" in shown()):
                if time.monotonic() > deadline:
                    raise SystemExit(f"the console did not show the demo:\n{shown()}")
                page.wait_for_timeout(100)
            page.wait_for_timeout(500)  # the frame just read, drawn on the canvas
            page.screenshot(path=str(out))
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(ROOT / "screenshots" / "web.png"))
    parser.add_argument("--size", default="1280x800", help="the browser's viewport, in pixels")
    args = parser.parse_args()
    width, height = (int(n) for n in args.size.split("x"))
    os.environ.pop("NO_COLOR", None)

    from queuectl_tui import demo

    with demo.session() as db_path:
        env = {**os.environ, "QUEUECTL_DB": str(db_path), "TZ": "UTC"}
        server = subprocess.Popen(
            [sys.executable, "-m", "queuectl_tui", "web", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            shoot(server.stdout.readline().strip(), Path(args.out), width, height)
        finally:
            server.terminate()
            server.wait(30)
    print(args.out)


if __name__ == "__main__":
    main()
