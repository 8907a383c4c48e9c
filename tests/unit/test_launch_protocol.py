"""The job host's status lines, parsed at one boundary (``launch.protocol.parse``)."""

from __future__ import annotations

import pytest

from queuectl_tui.run.launch import protocol
from queuectl_tui.run.launch.protocol import (
    Exited,
    NoDirectory,
    Ready,
    Started,
    Unknown,
    Waiting,
)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"r smi", Ready("smi")),
        (b"r -", Ready("-")),
        (b"p 4242", Started(4242)),
        (b"x 0", Exited(0)),
        (b"x 137", Exited(137)),
        (b"x ?", Exited(None)),  # the worker could not read the status; the host's own wait failed
        (b"c", NoDirectory()),
        (b"w", Waiting()),
        (b"p", Unknown(b"p")),
        (b"p 12x", Unknown(b"p 12x")),
        (b"", Unknown(b"")),
        (b"hello there", Unknown(b"hello there")),
    ],
)
def test_each_status_line_is_one_named_message(line, message):
    assert protocol.parse(line) == message


def test_job_control_is_read_from_the_ready_flags():
    assert protocol.parse(b"r hms").job_control
    assert not protocol.parse(b"r hs").job_control
    assert not protocol.parse(b"r -").job_control


def test_what_the_worker_sends_is_one_line_each():
    assert protocol.go("12:3.5") == b": go 12:3.5\n"
    assert (protocol.NO, protocol.PROBE_GO) == (b": no\n", b": go -\n")
    assert (protocol.word(130), protocol.word(None)) == (b"130\n", b"?\n")


@pytest.mark.parametrize(
    ("command", "own"),
    [
        ("echo $$", True),
        ("echo ${$}", True),
        ("kill $!", True),
        ("echo ${!}", True),
        ("echo $HOME", False),
        ("echo '$'", False),
        ("echo $1", False),
    ],
)
def test_only_commands_naming_their_own_pid_get_a_shell_of_their_own(command, own):
    assert protocol.needs_own_shell(command) is own
    assert (b"exec /bin/sh -c" in protocol.job(command, "/", {}, 5)) is own
