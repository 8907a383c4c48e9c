"""The rest of the house: ``config``, ``metrics serve``, ``web`` and ``demo``."""

from __future__ import annotations

import os
import sys

import click

from queuectl_tui import paths, settings
from queuectl_tui.cli.options import Context, json_option, pass_ctx
from queuectl_tui.cli.render import emit_json, print_settings
from queuectl_tui.errors import InvalidInput, QueueError


@click.group()
def config() -> None:
    """Read and change settings (max_retries, backoff_base, timeouts, intervals…)."""


@config.command("list")
@json_option
@pass_ctx
def config_list(ctx: Context, as_json) -> None:
    """Every setting with its value and default."""
    ctx.open()
    rows = settings.describe()
    if as_json:
        emit_json({r["key"]: r["value"] for r in rows})
        return
    print_settings(rows)


@config.command("get")
@click.argument("key")
@json_option
@pass_ctx
def config_get(ctx: Context, key, as_json) -> None:
    """Print one setting."""
    name = settings.canonical(key)
    ctx.open()
    value = settings.get(name)
    emit_json({name: value}) if as_json else click.echo(settings.text(value))


@config.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")  # may look like an option ("-1"): validation, not click, judges it
@json_option
@pass_ctx
def config_set(ctx: Context, key, value, as_json) -> None:
    """Change a setting (validated; new jobs take retry/timeout defaults from here)."""
    name, parsed = settings.validate(key, value)
    ctx.open()
    settings.set_value(name, parsed)
    emit_json({name: parsed}) if as_json else click.echo(f"{name} = {settings.text(parsed)}")


@config.command("reset")
@click.argument("key")
@pass_ctx
def config_reset(ctx: Context, key) -> None:
    """Put a setting back to its default."""
    settings.canonical(key)
    ctx.open()
    name, value = settings.reset(key)
    click.echo(f"{name} = {settings.text(value)} (default)")


# --- metrics ---------------------------------------------------------------------------------


@click.group()
def metrics() -> None:
    """Expose the queue's figures to Prometheus (needs the 'metrics' extra)."""


@metrics.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=9464,
    show_default=True,
    help="Port (0: any free one; the line printed says which).",
)
@click.option(
    "--since",
    "since",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Window of the window_* gauges and the wait/run summaries.",
)
@pass_ctx
def metrics_serve(ctx: Context, host: str, port: int, since: str) -> None:
    """Serve /metrics over HTTP, read from the database at each scrape, until stopped."""
    from queuectl_tui import exporter
    from queuectl_tui import metrics as figures

    window = figures.parse_duration(since)
    exporter.require()
    ctx.open()

    def told(error: Exception | None) -> None:  # one line when scrapes fail, one when they read
        from queuectl_tui.store import describe_db_error, describe_target

        click.echo(
            f"metrics: {describe_db_error(error)}; answering queuectl_up 0"
            if error
            else f"metrics: database {describe_target()} readable again",
            err=True,
        )

    try:
        server = exporter.serve(host, port, window, on_change=told)
    except OSError as exc:
        raise QueueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound = server.server_address
    click.echo(f"serving metrics on http://{host}:{bound[1]}/metrics", err=False)
    sys.stdout.flush()
    import signal
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    server.shutdown()


# --- web -------------------------------------------------------------------------------------

WEB_MISSING = "queuectl-tui web needs the web extra: pip install 'queuectl-tui[web]'"


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on. Anything but loopback lets other machines try.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8000,
    show_default=True,
    help="Port (0: any free one; the URL printed says which).",
)
@click.option(
    "--token",
    envvar="QUEUECTL_WEB_TOKEN",
    metavar="TOKEN",
    help="The access token (default: a new random one). Other users see a command "
    "line in ps: prefer QUEUECTL_WEB_TOKEN.",
)
@click.option(
    "--read-only",
    is_flag=True,
    help="Serve a console that shows everything and refuses every change.",
)
@pass_ctx
def web(ctx: Context, host: str, port: int, token: str | None, read_only: bool) -> None:
    """Serve the console to web browsers until stopped (needs the 'web' extra).

    Prints the URL to open, with its token, on the first line. Each browser tab gets its own
    console on this database, with every key. Whoever has the token has a shell as you (the
    console enqueues commands): keep it on loopback, or behind an HTTPS reverse proxy.
    Stops on Ctrl+C (exit 130) or SIGTERM (exit 0), closing the tabs' consoles.
    """
    try:
        import textual_serve  # noqa: F401
    except ImportError:
        raise QueueError(WEB_MISSING) from None
    from queuectl_tui.web import tokens

    if token is not None and (problem := tokens.problem(token)):
        raise InvalidInput(problem)
    ctx.open()  # an unusable database fails here, once, rather than in every tab
    import signal

    from queuectl_tui.store import close_db, describe_target
    from queuectl_tui.web import server

    close_db()
    db = ctx.db_path if paths.is_url(ctx.db_path) else os.path.abspath(ctx.db_path)
    try:
        sock = server.listening_socket(host, port)
    except OSError as exc:
        raise QueueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    token = token or tokens.new()
    server.environment_for(db)

    def ready() -> None:
        click.echo(server.url_of(host, sock, token))
        sys.stdout.flush()
        if not server.is_loopback(sock):
            click.echo(
                f"warning: listening on {host}, beyond this machine: whoever reaches it "
                "with the token has a remote shell as this user (the console runs "
                "commands), and plain HTTP shows the token to the network; prefer "
                "127.0.0.1 behind an HTTPS reverse proxy, or --read-only",
                err=True,
            )

    stopped_by = server.serve(
        sock,
        token=token,
        title=f"queuectl · {describe_target(db)}",
        read_only=read_only,
        ready=ready,
    )
    sys.exit(130 if stopped_by == signal.SIGINT else 0)


# --- demo ------------------------------------------------------------------------------------


@click.command()
@click.option(
    "--workers",
    "-n",
    type=click.IntRange(0, 8),
    default=2,
    show_default=True,
    help="Detached workers to start on the demo database.",
)
@click.option(
    "--keep", is_flag=True, help="Keep the database and its workers when the console closes."
)
def demo(workers: int, keep: bool) -> None:
    """Open the console on a throwaway database of sample jobs, with live workers.

    The database is made in a new temporary directory (--db does not apply) with a realistic
    mix: successes, a retried success, failures waiting out their backoff, dead jobs, scheduled
    jobs, a long-running job and a trickle of short ones. When the console closes, the demo's
    workers (and any started from the console) are stopped and the directory is deleted,
    unless --keep. Without a terminal it only prepares the database, keeps it, and says where.
    """
    from queuectl_tui import demo as sample

    on_terminal = sys.stdin.isatty() and sys.stdout.isatty()
    with sample.session(workers=workers, keep=keep or not on_terminal) as db_path:
        if on_terminal:
            from queuectl_tui.tui.app import run_app  # the console, as for a bare queuectl-tui

            run_app(db_path)
    if keep or not on_terminal:
        click.echo(
            f"demo database: {db_path}\n"
            f"  open the console: queuectl-tui --db {db_path}\n"
            f"  stop its workers: queuectl-tui --db {db_path} worker stop --force"
        )
