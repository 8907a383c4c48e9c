"""Write the README's console screenshots (SVG) from the seeded demo history.

Seeds the sample history (queuectl_tui.demo.seed) at a fixed time into a throwaway database,
with a harmless ``sleep`` standing in for the running workers, pins their PIDs/CPU/memory,
runs the console headless and saves each screen. The same inputs give the same files.

Run: python scripts/screenshots.py [--out screenshots] [--size 120x35]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def shoot(db_path: Path, out: Path, size: tuple[int, int], name: str, *keys: str,
                detail: str | None = None) -> None:
    from queuectl_tui.demo import FIXED_NOW, pinned_monitor
    from queuectl_tui.tui.app import QueueApp
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = QueueApp(db_path, clock=lambda: FIXED_NOW, monitor=pinned_monitor(), refresh_interval=3600,
                   cursor_blink=False)
    async with app.run_test(size=size) as pilot:
        await settle(pilot)
        if detail:
            await app.push_screen(JobDetailScreen(detail))
            await settle(pilot)
        for key in keys:
            await pilot.press(key)
            await settle(pilot)
        app.save_screenshot(f"{name}.svg", path=str(out))
    print(out / f"{name}.svg")


async def shoot_all(db_path: Path, out: Path, size: tuple[int, int]) -> None:
    await shoot(db_path, out, size, "main")
    await shoot(db_path, out, size, "dlq", "6")
    await shoot(db_path, out, size, "workers", "tab")
    await shoot(db_path, out, size, "detail", detail="fetch-exchange-rates")
    await shoot(db_path, out, size, "enqueue", "n", *"./nightly.sh --full", "tab", "tab", *"high",
                "ctrl+s")
    await shoot(db_path, out, size, "config", "e")
    await shoot(db_path, out, size, "help", "question_mark")
    await shoot(db_path, out, (80, 24), "main-80x24")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "screenshots"))
    parser.add_argument("--size", default="120x35")
    args = parser.parse_args()
    os.environ.pop("NO_COLOR", None)
    os.environ["TZ"] = "UTC"
    time.tzset()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(int(n) for n in args.size.split("x"))

    from queuectl_tui import demo
    from queuectl_tui.db import close_db, open_db

    stand_in = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            db_path = Path(tmp) / "queuectl.db"
            open_db(db_path)
            demo.seed(demo.FIXED_NOW, cwd="/srv/queue-demo", running_pid=stand_in.pid)
            close_db()
            asyncio.run(shoot_all(db_path, out, size))
    finally:
        stand_in.kill()
        stand_in.wait()


if __name__ == "__main__":
    main()
