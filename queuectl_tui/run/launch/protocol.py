"""The job host's protocol: the shell code the worker sends, and the lines the host answers.

The host (``host.JobHost``) is ``/bin/sh -s``: what the worker writes to its stdin is the
script it runs (``start``, then one ``job`` per job, then the gate words ``go``/``NO`` and the
``word`` for a host waiting on a stopped job). It answers one line per event on its status
pipe, which ``parse`` turns into a message at one boundary:

=========  ==============  ================================================================
line       message         meaning
=========  ==============  ================================================================
``r F``    ``Ready(F)``    the host is up; ``F`` is its ``$-`` (``m``: job control), or ``-``
``p PID``  ``Started``     it forked the job's subshell, which waits at its gate
``c``      ``NoDirectory`` the job could not change into its directory (its ``x`` follows)
``w``      ``Waiting``     the job stopped (or seems to): the host waits for the worker's word
``x S``    ``Exited(S)``   the job ended with status ``S`` (None: the worker said ``?``)
other      ``Unknown``     kept for the caller to reject or skip
=========  ==============  ================================================================
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from queuectl_tui import procs


# Plain slotted classes (not frozen: a frozen one costs twice as much to build, and two are
# built per job on the drain path).
@dataclass(slots=True)
class Ready:
    flags: str  # the host shell's ``$-``; "-" when it could not say it through /proc

    @property
    def job_control(self) -> bool:
        return "m" in self.flags


@dataclass(slots=True)
class Started:
    pid: int


@dataclass(slots=True)
class Exited:
    code: int | None


@dataclass(slots=True)
class NoDirectory:
    pass


@dataclass(slots=True)
class Waiting:
    pass


@dataclass(slots=True)
class Unknown:
    line: bytes


Message = Ready | Started | Exited | NoDirectory | Waiting | Unknown
NO_DIRECTORY, WAITING = NoDirectory(), Waiting()


def parse(line: bytes) -> Message:
    """One status line of the host (without its newline) as a message."""
    kind, space, rest = line.partition(b" ")
    if space:
        if kind == b"p" and rest.isdigit():
            return Started(int(rest))
        if kind == b"x":  # a status the host could not learn (``?``) is None
            return Exited(int(rest) if rest.isdigit() else None)
        if kind == b"r":
            return Ready(rest.decode("ascii", "replace"))
    elif line == b"c":
        return NO_DIRECTORY
    elif line == b"w":
        return WAITING
    return Unknown(line)


# --- what the worker sends ------------------------------------------------------------------

NO = b": no\n"  # a job at its gate exits 125 without running its command
PROBE_GO = b": go -\n"  # the gate of the host's own probe job (no marker)


def go(marker: str) -> bytes:
    """Open the gate of the job the host forked last, exporting its marker."""
    return f": go {marker}\n".encode()


def word(code: int | None) -> bytes:
    """The exit status of a job the host waits on (``Waiting``); ``?``: ask your own
    ``wait``."""
    return b"?\n" if code is None else b"%d\n" % code


#: Commands that need a shell of their own (``$$``, ``$!``: see ``host``).
_OWN_SHELL = re.compile(r"\$\{?[$!]")


def needs_own_shell(command: str) -> bool:
    """Does ``command`` mention ``$$`` or ``$!``, which only a shell of its own gets right?"""
    return _OWN_SHELL.search(command) is not None


def start(tty: str, status_fd: int, word_fd: int) -> str:
    """The host's first lines: job control through the terminal ``tty`` (then closed),
    the job-end reporter ``_qh_x``, and the ``r`` line, sent through /proc to prove that jobs
    can open their pipes that way."""
    return (
        f"trap : HUP; exec 9<>{shlex.quote(tty)} && set -m; exec 9>&-\n"
        + _ender(word_fd)
        + f'{{ echo "r $-" >/proc/$PPID/fd/{status_fd}; }} 2>/dev/null || echo "r -"\n'
    )


def _ender(word_fd: int) -> str:
    """The host's function that reports a job's end (``_qh_x``, defined once per host so
    that each job's code stays short to parse; jobs unset it). See "Stopped jobs" in
    ``host``."""
    word_path = f"/proc/$PPID/fd/{word_fd}"
    return (
        "_qh_x() { _qh_s=$1; while [ $_qh_s -gt 128 ] && kill -0 $!; do echo w;"
        f' read -r _qh_s <{word_path} || exit; case $_qh_s in "?") wait $!; _qh_s=$?;; esac;'
        ' jobs >/dev/null; done; echo "x $_qh_s"; }\n'
    )


def job(command: str, cwd: str, env: dict[str, str], out_fd: int) -> bytes:
    """The code that runs one job (see ``host``'s docstring): a subshell that changes into
    ``cwd`` (or says ``c``), sends its output to the worker's pipe ``out_fd``, waits at its
    gate, then runs ``command``; the host says ``p PID``, waits and reports ``x CODE``."""
    pwd = env.get("PWD", "")  # unset: as empty, not logical
    try:  # as ``sh -c`` started in cwd: $PWD kept when it names that directory
        logical = bool(pwd) and pwd.startswith("/") and os.path.samefile(pwd, cwd)
    except OSError:
        logical = False
    cd = f"cd -- {shlex.quote(pwd)}" if logical else f"cd -P -- {shlex.quote(cwd)}"
    old = env.get("OLDPWD")
    restore = f"OLDPWD={shlex.quote(old)}" if old is not None else "unset OLDPWD"
    run = "exec /bin/sh -c" if needs_own_shell(command) else "eval"
    return os.fsencode(
        f"( {cd} >/dev/null 2>&1 || {{ echo c; exit 1; }}; {restore}\n"
        f"exec >/proc/$PPID/fd/{out_fd} 2>&1; IFS=' ' read -r _qh_c _qh_g _qh_m"
        f" && [ \"$_qh_c $_qh_g\" = ': go' ] || exit 125\n"
        f"{procs.MARKER_VAR}=$_qh_m; export {procs.MARKER_VAR}\n"
        f"exec </dev/null; unset _qh_c _qh_g _qh_m _qh_s; unset -f _qh_x; set +m;"
        f" {run} {shlex.quote(command)}\n"
        f') & echo "p $!"; wait $!; _qh_x $?\n'
    )
