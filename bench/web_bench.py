"""The web console at rest: ``queuectl-tui web`` with one page open in Chromium, on a queue where
nothing happens. CPU of the server, of the tab's console process and of Chromium over a window,
from /proc/PID/stat (psutil's cpu_times), after the first full screen and a settling pause.

Needs Debian's chromium (``apt-get install -y --no-install-recommends chromium``) and the test
extra (playwright, pyte). Run: python bench/web_bench.py [--seconds 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psutil

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parents[1]


def cpu_seconds(processes: list[psutil.Process]) -> float:
    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def measure(seconds: float, settle: float) -> dict:
    import pyte
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"no Chromium at {CHROMIUM}")
    with tempfile.TemporaryDirectory(prefix="qweb-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
        env.update(QUEUECTL_DB=str(Path(tmp) / "queuectl.db"), PYTHONPATH=str(ROOT))
        server = subprocess.Popen(
            [sys.executable, "-m", "queuectl_tui", "web", "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            url = server.stdout.readline().strip()
            screens = []

            def attach(ws) -> None:
                query = parse_qs(urlsplit(ws.url).query)
                screen = pyte.Screen(int(query["width"][0]), int(query["height"][0]))
                stream = pyte.ByteStream(screen)
                screens.append(screen)
                ws.on("framereceived", lambda data: isinstance(data, bytes) and stream.feed(data))

            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1280, "height": 800})
                    page.on("websocket", attach)
                    start = time.monotonic()
                    page.goto(url, wait_until="domcontentloaded")
                    while not (screens and "The queue is empty" in "\n".join(screens[-1].display)):
                        if time.monotonic() - start > 120:
                            raise SystemExit("the console did not show its first screen")
                        page.wait_for_timeout(20)
                    first_screen = time.monotonic() - start
                    page.wait_for_timeout(settle * 1000)
                    srv = psutil.Process(server.pid)
                    consoles = srv.children(recursive=True)
                    chromium = [
                        p for p in psutil.Process().children(recursive=True) if "chrom" in p.name()
                    ]
                    groups = {"server": [srv], "console": consoles, "chromium": chromium}
                    before = {name: cpu_seconds(procs) for name, procs in groups.items()}
                    t0 = time.monotonic()
                    page.wait_for_timeout(seconds * 1000)
                    span = time.monotonic() - t0
                    after = {name: cpu_seconds(procs) for name, procs in groups.items()}
                finally:
                    browser.close()
        finally:
            server.terminate()
            server.wait(30)
    result = {f"{name}_cpu_pct": 100 * (after[name] - before[name]) / span for name in groups}
    result.update(
        window_s=round(span, 2),
        first_screen_s=round(first_screen, 2),
        consoles=len(consoles),
        load=os.getloadavg(),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="the measured window")
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds between the first screen and the window"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.seconds, args.settle)
    if args.json:
        print(json.dumps(result))
        return
    print(
        f"one page open, {result['window_s']} s: server {result['server_cpu_pct']:.2f}%, "
        f"its console {result['console_cpu_pct']:.2f}%, Chromium {result['chromium_cpu_pct']:.2f}% "
        f"of a core (first screen after {result['first_screen_s']} s; load "
        f"{'/'.join(f'{x:.1f}' for x in result['load'])})"
    )


if __name__ == "__main__":
    main()
