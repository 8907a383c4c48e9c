"""A cold command loads the engine's concerns it calls, not all of them (engine/__init__ imports
each name at its first use), and a SQLite database loads none of PostgreSQL's modules: what a
process imports is most of a short command's time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import cli_env

ENGINE = "queuectl_tui.engine."


#: Runs the command as ``python -m queuectl_tui`` does, then lists the modules it loaded (as
#: it ends: some load at their first use; ``-X importtime`` misses those importlib loads).
RUN = """
import runpy, sys
listing = sys.argv.pop()
try:
    runpy.run_module("queuectl_tui", run_name="__main__", alter_sys=True)
finally:
    with open(listing, "w") as out:
        out.write("\\n".join(sorted(sys.modules)))
"""


def loaded(home, *args: str) -> set[str]:
    """The modules of the package that ``queuectl-tui ARGS`` loaded, as it ran."""
    listing = home.parent / "modules.txt"
    proc = subprocess.run(
        [sys.executable, "-c", RUN, *args, str(listing)],
        capture_output=True,
        text=True,
        env=cli_env(home),
        cwd=home.parent,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return {m for m in listing.read_text().split() if m.startswith("queuectl_tui")}


def test_a_cold_enqueue_and_status_load_only_the_engine_concerns_they_call(db, home):
    enqueue = loaded(home, "enqueue", "true")
    assert f"{ENGINE}enqueueing" in enqueue  # the report is what we think it is
    unused = ("actions", "claims", "reads", "recovery", "waiting", "why", "workers")
    assert sorted(m for m in enqueue if m.removeprefix(ENGINE) in unused) == []
    assert "queuectl_tui.cli.reads" not in enqueue  # the read commands: only for --wait

    status = loaded(home, "status")
    assert f"{ENGINE}reads" in status
    unused = ("actions", "claims", "enqueueing", "recovery", "waiting", "why")
    assert sorted(m for m in status if m.removeprefix(ENGINE) in unused) == []


@pytest.mark.sqlite_only
def test_a_sqlite_enqueue_and_status_load_no_postgresql_module(db, home):
    postgres = {"queuectl_tui.store.postgres", "queuectl_tui.store.pgsql"}
    for args in (("enqueue", "true"), ("status",)):
        modules = loaded(home, *args)
        assert "queuectl_tui.store.sqlite" in modules  # it did open the database
        assert sorted(modules & postgres) == [], args
