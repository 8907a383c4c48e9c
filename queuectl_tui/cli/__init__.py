"""The headless command line: every queue operation, for people and scripts.

Never imports textual (only the bare ``queuectl-tui`` on a terminal loads the console). Errors
a user can cause print one line on stderr: exit 2 for bad usage or input, 1 for an operation
that failed (unknown job id, wrong state, unusable database).

The package: ``options`` (the Context, option types), ``render`` (every output), and a module
of commands per subject, each imported only when one of its commands runs (``COMMANDS``): a
command pays for its own imports alone. A new command goes in the module of its subject, and
its name in ``COMMANDS``.
"""

from __future__ import annotations

import gc
import os
import sys

import click

from queuectl_tui import __version__
from queuectl_tui.cli.options import COMMAND_SETTINGS, Context
from queuectl_tui.errors import QueueError

#: Each command of the group: the module of ``queuectl_tui.cli`` that defines it, and its name
#: there.
COMMANDS = {
    "enqueue": ("enqueue", "enqueue"),
    "status": ("reads", "status"),
    "stats": ("reads", "stats"),
    "list": ("reads", "list_"),
    "show": ("reads", "show"),
    "wait": ("reads", "wait"),
    "ps": ("reads", "ps"),
    "logs": ("logs", "logs"),
    "retry": ("jobs", "retry"),
    "cancel": ("jobs", "cancel"),
    "delete": ("jobs", "delete"),
    "clear": ("jobs", "clear"),
    "recover": ("jobs", "recover"),
    "restart": ("jobs", "restart"),
    "edit": ("jobs", "edit"),
    "pause": ("queues", "pause"),
    "resume": ("queues", "resume"),
    "queue": ("queues", "queue_group"),
    "dlq": ("queues", "dlq"),
    "schedule": ("schedule", "schedule"),
    "worker": ("workers", "worker"),
    "config": ("admin", "config"),
    "metrics": ("admin", "metrics"),
    "web": ("admin", "web"),
    "demo": ("admin", "demo"),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when named (``COMMANDS``); ``-h`` lists them all."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            module, name = COMMANDS[cmd_name]
            self.add_command(getattr(_imported(f"queuectl_tui.cli.{module}"), name), cmd_name)
        return self.commands.get(cmd_name)


def _imported(module: str):
    """The module, imported as ``__main__`` imports this package: with the cyclic garbage
    collector off, and, if the process froze what its imports made, frozen too."""
    if module in sys.modules:
        return sys.modules[module]
    enabled = gc.isenabled()
    gc.disable()
    try:
        __import__(module)
    finally:
        if gc.get_freeze_count():
            gc.freeze()
        if enabled:
            gc.enable()
    return sys.modules[module]


@click.group(cls=_LazyGroup, invoke_without_command=True, context_settings=COMMAND_SETTINGS)
@click.option(
    "--db",
    metavar="PATH|URL",
    envvar="QUEUECTL_DB",
    help="Database file (default $QUEUECTL_HOME/queuectl.db, ~/.queuectl/queuectl.db), "
    "or postgresql://user:password@host:port/dbname.",
)
@click.option("--no-ui", is_flag=True, help="Never open the console; print the status summary.")
@click.version_option(__version__, prog_name="queuectl-tui")
@click.pass_context
def cli(click_ctx: click.Context, db: str | None, no_ui: bool) -> None:
    """A local background job queue for shell commands, with a terminal console.

    Without a command, opens the console on a terminal (or prints the status with --no-ui
    or when not on a terminal).
    """
    click_ctx.obj = Context(db)
    if click_ctx.invoked_subcommand is None:
        if not no_ui and sys.stdin.isatty() and sys.stdout.isatty():
            # The console opens the database itself: a locked or corrupt one is a message on
            # its screen (it creates a missing one first, as any command would).
            from queuectl_tui.tui.app import run_app  # the only path that loads textual

            run_app(click_ctx.obj.db_path)
        else:
            status = cli.get_command(click_ctx, "status")
            assert status is not None  # a command of this group
            click_ctx.invoke(status)


def main(argv: list[str] | None = None) -> None:
    """The program: the group, its errors mapped to one line on stderr and an exit code."""
    import sqlite3

    from peewee import DatabaseError as PeeweeDatabaseError
    from peewee import InterfaceError

    # Messages name the command as typed: the short alias qctl, else queuectl-tui.
    name = "qctl" if os.path.basename(sys.argv[0]) == "qctl" else "queuectl-tui"
    try:
        cli.main(args=argv, prog_name=name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # One line like every other error; the usage text is one -h away.
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} -h')" if ctx is not None else ""
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            sys.exit(130)  # Ctrl+C (click made it an Abort): 128 + SIGINT, as shells expect
        click.echo("aborted", err=True)
        sys.exit(1)
    except QueueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (PeeweeDatabaseError, InterfaceError, sqlite3.DatabaseError) as exc:
        from queuectl_tui.store import describe_db_error

        click.echo(f"error: {describe_db_error(exc)}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(
            f"error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
            err=True,
        )
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
