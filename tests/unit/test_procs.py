"""Process identity read from /proc (Linux) agrees with psutil, which it stands in for."""

from __future__ import annotations

import os
import signal
import subprocess

import psutil
import pytest

from helpers import wait_for
from queuectl_tui import engine, procs

pytestmark = pytest.mark.skipif(not procs._PROC_STAT, reason="reads /proc/<pid>/stat (Linux)")


def test_process_status_is_psutils_for_the_same_process():
    proc = subprocess.Popen(["sleep", "60"])
    try:
        started = procs.start_time(proc.pid)
        assert started == pytest.approx(
            psutil.Process(proc.pid).create_time(), abs=procs._TOLERANCE
        )
        # Once asleep (a process just started may still be exec'ing: running, then disk-sleep,
        # which two reads in a row could each see).
        wait_for(
            lambda: procs.process_status(proc.pid, started) == psutil.STATUS_SLEEPING,
            message="the sleeping state",
        )
        assert (
            procs.process_status(proc.pid, started)
            == procs.same_process(proc.pid, started).status()
        )
        assert procs.process_status(proc.pid, started + 1) is None  # a reused PID: a stranger
        proc.send_signal(signal.SIGSTOP)
        wait_for(
            lambda: procs.process_status(proc.pid, started) == psutil.STATUS_STOPPED,
            message="the stopped state",
        )
        assert procs.same_process(proc.pid, started).status() == psutil.STATUS_STOPPED
        proc.kill()
        wait_for(
            lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE, message="a zombie"
        )
        assert procs.process_status(proc.pid, started) is None  # exited, not yet reaped
        assert procs.same_process(proc.pid, started) is None
    finally:
        proc.kill()
        proc.wait()
    assert procs.process_status(proc.pid, started) is None
    assert procs.process_status(os.getpid(), procs.start_time(os.getpid())) == psutil.STATUS_RUNNING
    assert procs.process_status(0, 1.0) is None and procs.process_status(-1, 1.0) is None


def test_the_state_names_are_psutils():
    from psutil import _pslinux

    assert {k.decode(): v for k, v in procs._STATUSES.items()} == _pslinux.PROC_STATUSES
    assert engine.STOPPED_STATUSES == (
        psutil.STATUS_STOPPED,
        psutil.STATUS_TRACING_STOP,
        psutil.STATUS_ZOMBIE,
        psutil.STATUS_DEAD,
    )
    assert procs._boot_time() == psutil.boot_time()


def test_the_workers_pane_counts_a_jobs_whole_tree():
    """What the workers pane shows for a busy worker's job: the shell and every descendant
    (found through /proc/PID/task/*/children, not a read of every process on the host)."""
    from queuectl_tui.run.monitor import WorkerMonitor

    shell = subprocess.Popen(
        ["sh", "-c", "sh -c 'sleep 30 & wait' & sleep 30 & wait"], start_new_session=True
    )
    try:
        wait_for(
            lambda: len(psutil.Process(shell.pid).children(recursive=True)) == 3,
            message="the shell's children and grandchild",
        )
        usage = WorkerMonitor().tree(shell.pid, procs.start_time(shell.pid))
        assert usage is not None and usage.processes == 4 and usage.rss > 0
    finally:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()


def test_a_worker_that_exits_between_the_supervisors_looks_counts_as_gone():
    """`worker start` checks each new worker until it registers; one that exits between the
    check that it exists and the read of its status is gone, not a traceback (a race CI hit)."""
    import sys

    from queuectl_tui.run import supervisor

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()  # exited and reaped: no such process any more
    assert supervisor._gone(child.pid)
    assert not supervisor._gone(os.getpid())


def test_crowding_is_runnable_tasks_per_usable_cpu():
    spinners = [
        subprocess.Popen(["sh", "-c", "while :; do :; done"])
        for _ in range(4 * len(os.sched_getaffinity(0)))
    ]
    try:
        # with four spinning shells per CPU, some look finds the CPUs crowded
        wait_for(lambda: (procs.crowding() or 0) > 2, message="crowded CPUs")
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
    assert procs.crowding() is not None
