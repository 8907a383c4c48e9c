"""Every console action has a CLI command: the README's parity table, checked both ways.

Fails when a key of the console is missing from the table, when an action is listed without a
CLI command (only the keys that merely change the view may say *view*), when a listed command or
option does not exist in the CLI, or when the table lists a key the console does not have.
"""

from __future__ import annotations

import re
import shlex

import click
import pytest

from helpers import ROOT

README = ROOT / "README.md"
#: Actions that only change what the console shows (no queue state is read or written apart
#: from the display itself); everything else needs a CLI command.
VIEW_ONLY = {
    "quit",
    "help",
    "sort",
    "reverse",
    "mark",
    "clear",
    "page",
    "back",
    "cursor_down",
    "cursor_up",
    "first_row",
    "last_row",
}
KEY_NAMES = {
    "question_mark": "?",
    "slash": "/",
    "plus": "+",
    "minus": "-",
    "escape": "esc",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}


def console_bindings() -> dict[tuple[str, str], str]:
    """(screen, key) -> action for every binding of the console."""
    from queuectl_tui.tui.app import QueueApp
    from queuectl_tui.tui.screens.detail import JobDetailScreen
    from queuectl_tui.tui.screens.main import MainScreen
    from queuectl_tui.tui.screens.queues import QueuesScreen
    from queuectl_tui.tui.screens.schedules import SchedulesScreen
    from queuectl_tui.tui.screens.stats import StatsScreen
    from queuectl_tui.tui.widgets.jobs_table import JobsTable, KeyedTable

    result = {}
    for screen, classes in (
        ("any", [QueueApp]),
        ("main", [KeyedTable, JobsTable, MainScreen]),
        ("detail", [JobDetailScreen]),
        ("queues", [KeyedTable, QueuesScreen]),
        ("schedules", [KeyedTable, SchedulesScreen]),
        ("stats", [StatsScreen]),
    ):
        for cls in classes:
            for binding in cls.BINDINGS:
                action = re.sub(r"\(.*\)$", "", binding.action)
                for key in binding.key.split(","):
                    result[(screen, KEY_NAMES.get(key, key))] = action
    return result


def parity_rows() -> list[tuple[str, list[str], str, str]]:
    text = README.read_text()
    match = re.search(r"<!-- section: parity.*?-->(.*?)<!-- /section: parity -->", text, re.S)
    assert match, "README has no parity section"
    rows = []
    for line in match.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or cells[0] in ("screen", "---"):
            continue
        keys = re.findall(r"`([^`]+)`", cells[1])
        rows.append((cells[0], keys, cells[2], cells[3]))
    return rows


def commands_in(cell: str) -> list[str]:
    return [c for c in re.findall(r"`([^`]+)`", cell) if c.startswith("queuectl-tui")]


def resolve(command: str) -> click.Command:
    """The click command a README command line runs; its --options must exist there."""
    from queuectl_tui.cli import cli

    words = shlex.split(command.replace("…", ""))[1:]
    current: click.Command = cli
    options = []
    for word in words:
        if word.startswith("-"):
            options.append(word.split("=")[0])
        elif isinstance(current, click.Group) and current.get_command(None, word):
            current = current.get_command(None, word)
            options = []  # options so far belonged to the group
    known = {opt for param in current.params for opt in [*param.opts, *param.secondary_opts]}
    known |= {"--help", "-h"}
    unknown = [opt for opt in options if opt not in known]
    assert not unknown, f"{command!r}: {current.name} has no option {unknown}"
    return current


def test_every_console_key_is_in_the_parity_table():
    listed = {(screen, key) for screen, keys, _, _ in parity_rows() for key in keys}
    missing = sorted(set(console_bindings()) - listed)
    assert not missing, f"console keys missing from the README parity table: {missing}"


def test_every_console_action_has_a_cli_command():
    bindings = console_bindings()
    for screen, keys, what, cli_cell in parity_rows():
        actions = {bindings.get((screen, key)) for key in keys}
        if actions <= VIEW_ONLY:
            continue
        commands = commands_in(cli_cell)
        assert commands, f"{screen} {keys} ({what}) lists no CLI command"
        for command in commands:
            assert not isinstance(resolve(command), click.Group), (
                f"{command!r} is a group, not a command"
            )


def test_the_table_lists_only_keys_the_console_has():
    bindings = console_bindings()
    stale = [
        (screen, key)
        for screen, keys, _, _ in parity_rows()
        for key in keys
        if (screen, key) not in bindings
    ]
    assert not stale, f"README parity rows for keys the console does not have: {stale}"


@pytest.mark.parametrize(
    "command", ["queuectl-tui dlq retry --all", "queuectl-tui list --search X"]
)
def test_resolve_checks_commands_and_options(command):
    assert resolve(command).name in ("retry", "list")
    with pytest.raises(AssertionError):
        resolve(command + " --no-such-option")
