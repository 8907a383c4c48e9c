"""Shared test helpers: run the real CLI in a subprocess, poll a condition with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


#: The PostgreSQL URL of the running test (its own schema), or None on SQLite: set by the
#: ``home`` fixture (conftest.py), passed to every CLI the test starts.
DB_URL: str | None = None


def cli_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUEUECTL_")}
    env["QUEUECTL_HOME"] = str(home)
    if DB_URL:
        env["QUEUECTL_DB"] = DB_URL
    env.update(extra)
    return env


def run_cli(home: Path, *args: str, input: str | None = None, timeout: float = 60,
            cwd: Path | None = None, env: dict[str, str] | None = None) -> Result:
    """Run ``python -m queuectl_tui ARGS`` on the database in ``home`` (cwd: its parent)."""
    proc = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", *args], input=input if input is not None else "",
        capture_output=True, text=True, timeout=timeout, cwd=cwd or home.parent,
        env=env or cli_env(home),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.02,
             message: str = "condition") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)
