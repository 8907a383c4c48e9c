"""What each browser tab runs: ``python -m queuectl_tui.web.session [--read-only]``.

The console on the database that ``QUEUECTL_DB`` names (the server puts it there: a PostgreSQL
URL's password must not show in ``ps``). A code path of its own because ``queuectl-tui`` opens
the console only on a terminal, and textual-serve gives this process pipes, over which
Textual's web driver (chosen by textual-serve through ``TEXTUAL_DRIVER``) speaks.
"""

import os
import sys

if "://" not in os.environ.get("QUEUECTL_DB", ""):  # as __main__: a file needs no PG driver
    from queuectl_tui.store.drivers import skip_server_drivers

    skip_server_drivers()


def main(argv: list[str]) -> None:
    from queuectl_tui import paths
    from queuectl_tui.tui.app import run_app

    run_app(paths.target(None), read_only="--read-only" in argv)


if __name__ == "__main__":
    main(sys.argv[1:])
