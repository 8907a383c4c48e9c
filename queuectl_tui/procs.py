"""Process identity and process-tree killing (psutil).

A PID alone is not an identity: the kernel reuses them. A process is "ours" only when both
its PID and its start time match what we recorded, so nothing here ever signals a stranger.
"""

from __future__ import annotations

import os
import signal
import socket

import psutil

_HOST = socket.gethostname()
_TOLERANCE = 0.05  # seconds; create_time is derived from boot time and clock ticks


def hostname() -> str:
    return _HOST


def start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def same_process(pid: int | None, started: float | None) -> psutil.Process | None:
    """The live process with this PID and start time, or None (gone, reused, or a zombie)."""
    if not pid or started is None:
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - started) > _TOLERANCE:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess, ValueError):
        return None


def kill_tree(pid: int | None, started: float | None, *, sig: int = signal.SIGKILL,
              wait: float = 2.0) -> int:
    """Kill a job's shell, its process group and every descendant. Returns how many were hit.

    Descendants are collected before anything is signalled, so children re-parented to init
    by their parent's death are still found; the process group catches those started with
    ``&`` that psutil missed, as long as they did not leave the group. The caller that owns
    the root as a child passes ``wait=0`` and reaps it itself (psutil would steal its status).
    """
    root = same_process(pid, started)
    if root is None:
        return 0
    try:
        victims = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        victims = [root]
    hit = 0
    try:
        os.killpg(pid, sig)  # the job shell leads its own group (start_new_session)
        hit += 1
    except (ProcessLookupError, PermissionError):
        pass
    for proc in victims:
        try:
            proc.send_signal(sig)
            hit += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    if wait:
        psutil.wait_procs(victims, timeout=wait)
    return hit
