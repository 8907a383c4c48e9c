"""What the commands share: the Context (the database, opened on first use), the option types
and the options many commands take. Parsing only: output is render.py's."""

from __future__ import annotations

import sys

import click

from queuectl_tui import paths, spec
from queuectl_tui.errors import InvalidInput

COMMAND_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class Context:
    """What every command shares (click's ``ctx.obj``): where the database is, opened on
    first use."""

    def __init__(self, db: str | None):
        self.db_path = paths.target(db)  # text: pathlib would cost ~3 ms a start
        self._open = False

    def open(self) -> None:
        if not self._open:
            from queuectl_tui.store import open_db

            open_db(self.db_path, progress=True)
            self._open = True


pass_ctx = click.make_pass_decorator(Context)


def limit_of(limit: int) -> int | None:
    """--limit: 0 means all, and so does anything beyond what SQLite can count to."""
    return None if limit == 0 or limit >= 2**63 else limit


class _Seconds(click.FloatRange):
    """Seconds or a duration (90s, 15m, 2h30m, 1d: ``spec.parse_seconds``, the one parser of
    every option that takes seconds), in a range."""

    name = "duration"

    def convert(self, value, param, ctx):
        if not isinstance(value, float | int):
            try:
                value = spec.parse_seconds(value)
            except InvalidInput:
                self.fail(
                    f"{value!r} is not a number of seconds or a duration (90s, 15m, 2h30m, 1d)",
                    param,
                    ctx,
                )
        return super().convert(value, param, ctx)


SECONDS = _Seconds(0, 86400)
WAIT_SECONDS = _Seconds(0)


class _Duration(click.ParamType):
    """A job's seconds option (``--timeout``, ``--delay``): seconds or a duration, read by
    ``spec.parse_seconds`` (a bad one is named by its option); ``none`` passes through where
    allowed. The range is the spec's, checked with the rest of the job."""

    name = "duration"

    def __init__(self, none: bool = False):
        self.none = none

    def convert(self, value, param, ctx):
        if isinstance(value, float | int) or (self.none and str(value).strip().lower() == "none"):
            return value
        try:
            return spec.parse_seconds(TEXT.convert(value, param, ctx))
        except InvalidInput:
            self.fail(
                f"{value!r} is not a number of seconds or a duration (90s, 15m, 2h30m, 1d)"
                + (" or 'none'" if self.none else ""),
                param,
                ctx,
            )


DURATION = _Duration()
TIMEOUT = _Duration(none=True)


class _Utf8Text(click.ParamType):
    """Text that can be stored and looked up: an argument that is not UTF-8 reaches Python as
    lone surrogates, which SQLite cannot take (a UnicodeEncodeError deep in the driver)."""

    name = "text"

    def convert(self, value, param, ctx):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            try:  # the bytes as given (Python keeps them as surrogate escapes)
                shown = repr(value.encode("utf-8", "surrogateescape"))
            except UnicodeEncodeError:
                shown = ascii(value)
            self.fail(f"{shown} is not UTF-8 text", param, ctx)
        return value


TEXT = _Utf8Text()


QUIET = click.option("-q", "--quiet", is_flag=True, help="Only the ids, one a line (for xargs).")


def json_option(func):
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(
        func
    )


def checked_queues(_ctx, _param, names) -> list[str]:
    """A --queue option's callback: each name checked as at enqueue."""
    return [spec.check_queue(name) for name in names]


QUEUES = click.option(
    "--queue",
    "queues",
    multiple=True,
    callback=checked_queues,
    help="This queue (repeatable; default: every queue, new ones too).",
)


def confirm(yes: bool, what: str) -> None:
    """Ask before a bulk deletion (on a terminal), or refuse without --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise InvalidInput(f"refusing to {what} without --yes")
    if not click.confirm(f"{what[0].upper()}{what[1:]}?"):
        raise click.exceptions.Exit(1)
