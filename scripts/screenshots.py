"""Write the README's console screenshots (SVG) from what ``queuectl-tui demo`` really does.

Builds the demo's database exactly as ``demo`` does (queuectl_tui.demo.session: the sample
history, the live jobs and two detached workers), lets those real workers run the jobs that are
due until every retry has reached its end (the failing jobs through their backoffs into the
DLQ), then freezes the clock at that moment and renders each screen headless. Nothing is faked
but the clock: the logs shown are what the commands printed, the workers and their figures are
the real ones (so two runs differ in times, PIDs and CPU figures). The demo's long job is still
running when the screens are taken; the workers are stopped afterwards.

Takes about three minutes (the failing jobs wait out their backoffs).

Run: python scripts/screenshots.py [--out screenshots] [--size 120x35] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

#: The job whose detail is shown: it fails, retries and ends in the DLQ while the script waits.
DETAIL = "fetch-exchange-rates"
DEADLINE = 600.0  # seconds to wait for the retries to end


async def settle(pilot) -> None:
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def shoot(
    db_path: Path,
    out: Path,
    size: tuple[int, int],
    now: float,
    name: str,
    *keys: str,
    detail: str | None = None,
) -> None:
    from queuectl_tui.tui.app import QueueApp
    from queuectl_tui.tui.screens.detail import JobDetailScreen

    app = QueueApp(db_path, clock=lambda: now, refresh_interval=3600, cursor_blink=False)
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


async def shoot_all(db_path: Path, out: Path, size: tuple[int, int], now: float) -> None:
    await shoot(db_path, out, size, now, "main")
    await shoot(db_path, out, size, now, "dlq", "6")
    await shoot(db_path, out, size, now, "workers", "tab")
    await shoot(db_path, out, size, now, "detail", detail=DETAIL)
    await shoot(
        db_path,
        out,
        size,
        now,
        "enqueue",
        "n",
        *"./nightly.sh --full",
        "tab",
        "tab",
        *"high",
        "ctrl+s",
    )
    await shoot(db_path, out, size, now, "config", "e")
    await shoot(db_path, out, size, now, "help", "question_mark")
    await shoot(db_path, out, (80, 24), now, "main-80x24")


def retries_ended(now: float) -> bool:
    """Every retry has run to its end: no job is backing off, running (but the demo's long one)
    or due and unclaimed. The demo's trickle of short jobs, due every 20 s, does not count."""
    from queuectl_tui import demo
    from queuectl_tui.store.models import FAILED, PENDING, PROCESSING, Job

    ours = ~Job.id.startswith("report-chunk-")
    busy = Job.select().where(
        ours
        & (
            (Job.state == FAILED)
            | ((Job.state == PROCESSING) & (Job.id != demo.LIVE[0][0]))  # the long job runs on
            | ((Job.state == PENDING) & (Job.run_at <= now))
        )
    )
    return not busy.exists()


def check_detail_log() -> None:
    """The detail shows the latest attempt's log: it must come from a real run, whose log holds
    what the command printed (the seeded history's logs are written by the seeding)."""
    from queuectl_tui import engine

    job = engine.get_job(DETAIL)
    latest = engine.attempts_of(job)[-1]
    if latest.pid is None or latest.finished_at is None:
        raise SystemExit(f"{DETAIL}'s latest attempt was not run to its end by a worker")
    print(f"{DETAIL}: attempt {latest.number} ran as pid {latest.pid}, {job.state}; its log:")
    print(engine.log_path(latest).read_text().rstrip())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "screenshots"))
    parser.add_argument("--size", default="120x35")
    parser.add_argument("--workers", type=int, default=2, help="as demo's --workers")
    args = parser.parse_args()
    os.environ.pop("NO_COLOR", None)
    os.environ["TZ"] = "UTC"
    time.tzset()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    size = tuple(int(n) for n in args.size.split("x"))

    from queuectl_tui import demo

    with demo.session(workers=args.workers) as db_path:  # exactly the demo's database and workers
        deadline = time.monotonic() + DEADLINE
        while not retries_ended(time.time()):
            if time.monotonic() > deadline:
                raise SystemExit(f"the demo's retries did not end within {DEADLINE:.0f}s")
            time.sleep(1.0)
        now = time.time()  # the clock of every screen from here on
        check_detail_log()
        asyncio.run(shoot_all(db_path, out, size, now))


if __name__ == "__main__":
    main()
