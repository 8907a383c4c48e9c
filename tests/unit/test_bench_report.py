"""bench/run.py's report: a run of some groups (``--only postgres``) rewrites their sections of
bench/BENCHMARKS.md and leaves every other figure there as it was."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from helpers import ROOT


@pytest.fixture(scope="module")
def bench_run():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(ROOT / "bench"))


RAW = "Raw figures: `bench/out/results.json` (not committed).\n"
OLD = f"""# Benchmarks

Generated at commit `old`.

## Drain: 2,000 jobs of `true`

| queuectl, 2 workers | 2,719 |

## PostgreSQL (PostgreSQL 15.18, on this machine)

| drain, queuectl, 2 workers | 545 jobs/s |

## Not measured

- scale: seeding failed
- postgres: an old failure

## Why the misses

Notes.

{RAW}"""


def report(*sections: str) -> str:
    return "\n\n".join(
        [
            "# Benchmarks",
            "Generated at commit `new`.",
            *sections,
            "## Why the misses",
            "Notes.",
            RAW,
        ]
    )


def test_a_run_of_the_postgres_group_alone_replaces_its_section_and_keeps_the_others(bench_run):
    new = report("## PostgreSQL (PostgreSQL 15.18, on this machine)\n\n| bar | met |")
    out = bench_run.splice(OLD, new, ["postgres"], ["postgres"])
    assert "| queuectl, 2 workers | 2,719 |" in out
    assert "| bar | met |" in out and "545 jobs/s" not in out
    assert "Generated at commit `old`." in out  # the header describes the run of the other groups
    assert "- scale: seeding failed" in out and "an old failure" not in out
    assert out.index("## PostgreSQL") < out.index("## Why the misses")
    assert out.endswith(RAW) and out.count("Raw figures") == 1


def test_a_group_that_failed_keeps_its_old_section_and_says_why(bench_run):
    new = report("## Not measured\n\n- postgres: RuntimeError: no server")
    out = bench_run.splice(OLD, new, ["postgres"], [])
    assert "545 jobs/s" in out
    assert "- postgres: RuntimeError: no server" in out and "- scale: seeding failed" in out


def test_a_section_the_old_file_lacks_goes_before_the_notes(bench_run):
    section = OLD.index("## PostgreSQL")
    old = OLD[:section] + OLD[OLD.index("## Not measured") :]
    new = report("## PostgreSQL (PostgreSQL 15.18, on this machine)\n\n| bar | met |")
    out = bench_run.splice(old, new, ["postgres"], ["postgres"])
    assert out.index("## Drain") < out.index("## PostgreSQL") < out.index("## Why the misses")
