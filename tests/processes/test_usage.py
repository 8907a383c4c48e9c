"""What an attempt cost (CPU, peak memory, processes) as `show` reports it, and `ps`: the
running jobs' process trees. Real workers in subprocesses, as a user runs them."""

from __future__ import annotations

import sys

import pytest

from helpers import marked, marked_command, ok, wait_for
from queuectl_tui.run.launch import exec as runner
from queuectl_tui.run.launch.host import JobHost

MB = 1024 * 1024
PY = sys.executable
#: ~200 MB held for a moment in a grandchild, ~1 s of CPU burnt in another.
HEAVY = (
    f'sh -c \'{PY} -c "import time; b = b\\"x\\" * (200 * 2**20); time.sleep(0.8)"\' & '
    f"sh -c '{PY} -c \"import time; t = time.process_time()\n"
    f"while time.process_time() - t < 1.0: pass\"'; wait"
)


def attempts(cli, job_id: str) -> list[dict]:
    return ok(cli("show", job_id, "--json")).json()["attempt_list"]


def drain(cli) -> None:
    ok(cli("worker", "start", "--foreground", "--burst", timeout=120))


def test_an_attempt_records_the_cpu_and_peak_memory_of_its_whole_tree(cli, home):
    ok(cli("enqueue", "--id", "heavy", HEAVY))
    drain(cli)
    [a] = attempts(cli, "heavy")
    assert a["outcome"] == "completed", a
    assert a["cpu_seconds"] >= 0.8, a
    assert a["peak_rss_bytes"] >= 150 * MB, a
    assert a["processes"] >= 4, a  # the job's shell, two sh -c, two pythons (some seen)
    shown = ok(cli("show", "heavy")).out
    assert "cpu" in shown and "peak" in shown and "M" in shown


def test_a_job_of_true_records_near_zero_figures(cli, home):
    ok(cli("enqueue", "--id", "nothing", "true"))
    drain(cli)
    [a] = attempts(cli, "nothing")
    assert a["outcome"] == "completed"
    assert a["cpu_seconds"] is not None and a["cpu_seconds"] <= 0.05, a
    # A figure of its own: its shell's (not empty, and not the worker's size).
    assert a["peak_rss_bytes"] is not None and 256 * 1024 <= a["peak_rss_bytes"] < 20 * MB, a
    assert a["processes"] == 1, a


def test_an_orphan_that_left_the_job_is_charged_to_it(cli, home):
    """A process that outlives its parent (re-parented to the worker, which reaps it) still
    counts: its CPU through wait4."""
    burn = (
        f'{PY} -c "import time; t = time.process_time()\nwhile time.process_time() - t < 0.5: pass"'
    )
    # The job ends once the orphan has burnt its CPU (it says so with a file), under any load.
    ok(
        cli(
            "enqueue",
            "--id",
            "orphan",
            f"sh -c '({burn}; touch burnt) & exit 0'; until [ -e burnt ]; do sleep 0.05; done",
        )
    )
    drain(cli)
    [a] = attempts(cli, "orphan")
    assert a["cpu_seconds"] >= 0.4, a


@pytest.mark.parametrize("way", ["host", "runner"])
def test_the_kernel_accounts_for_reaped_processes_without_sampling(tmp_path, way):
    """Both ways to run a job report the tree's CPU from the kernel's accounting alone (no
    sampler here): the job host from its shell's reaped children, runner from wait4."""
    burn = (
        f"{PY} -c 'import time; t = time.process_time()\nwhile time.process_time() - t < 0.5: pass'"
    )
    options = dict(
        cwd=str(tmp_path),
        env={"PATH": "/usr/bin:/bin"},
        log_path=tmp_path / "log",
        max_log_bytes=10_000,
        timeout=None,
    )
    if way == "host":
        with JobHost() as host:
            result = host.run(f'sh -c "{burn}"', **options)
            second = host.run("true", **options)
        assert second.cost.cpu_seconds <= 0.05, second.cost  # not charged the first job's CPU
    else:
        result = runner.run(f'sh -c "{burn}"', **options)
        assert result.cost.peak_rss_bytes > MB  # the shell's own ru_maxrss at least
    assert result.outcome == "completed", result
    assert result.cost.cpu_seconds >= 0.4, result.cost


def test_ps_lists_a_running_jobs_grandchild(cli, home, mark):
    tree = "sh -c 'sleep 61 & touch started; wait'"
    ok(cli("enqueue", "--id", "tree", marked_command(mark, tree)))
    ok(cli("worker", "start", "--json"))
    wait_for(
        lambda: (home.parent / "started").exists() and marked(mark, "sleep"),
        timeout=30,
        message="the job's grandchild",
    )
    [sleeper] = marked(mark, "sleep")
    rows = wait_for(
        lambda: ok(cli("ps", "--json")).json(), timeout=10, message="ps to list the job"
    )
    [job] = rows
    assert job["id"] == "tree" and job["worker_id"] == 1 and job["runtime"] >= 0
    by_pid = {p["pid"]: p for p in job["processes"]}
    assert sleeper.pid in by_pid, job
    assert by_pid[sleeper.pid]["command"] == "sleep 61"
    assert by_pid[sleeper.pid]["depth"] >= 2  # the job's shell > sh -c > sleep
    assert by_pid[sleeper.pid]["state"] == "sleeping" and by_pid[sleeper.pid]["rss_bytes"] > 0
    text = ok(cli("ps")).out
    assert "tree" in text and "\\_ sleep 61" in text
    ok(cli("cancel", "tree"))


def test_ps_shows_control_characters_visibly(cli, home, mark):
    ok(
        cli(
            "enqueue",
            "--id",
            "esc",
            marked_command(mark, "sh -c 'sleep 62; : \"\x1b]0;owned\x07\"'"),
        )
    )
    ok(cli("worker", "start", "--json"))
    wait_for(lambda: marked(mark, "sleep"), timeout=30, message="the job's sleep")
    text = wait_for(
        lambda: (lambda out: "sleep 62" in out and out)(ok(cli("ps")).out),
        timeout=10,
        message="ps to list the job",
    )
    assert "\x1b" not in text and "\x07" not in text
    assert "^[]0;owned^G" in text
    ok(cli("cancel", "esc"))


def test_ps_without_running_jobs_says_so(cli, home):
    assert ok(cli("ps")).out.strip() == "no job is running"
    assert ok(cli("ps", "--json")).json() == []
