"""``python -m queuectl_tui`` and the ``queuectl-tui`` command: ``cli.main``.

The cyclic garbage collector is off while the command line is imported, and what the imports
made is then frozen (never scanned again): a few hundred thousand objects that all live as long
as the process, which the collector would otherwise walk over and over for nothing (~5 ms of a
~100 ms start). Each command runs with it on.

peewee imports the PostgreSQL drivers at its own import whenever they are installed (the driver:
~10 ms and 6 MB of every process); a process whose database is a file (no URL in ``--db`` or
``QUEUECTL_DB``) never uses them, so it does not load them.
"""

import gc
import os
import sys


def _uses_a_server(argv: list[str]) -> bool:
    target = os.environ.get("QUEUECTL_DB", "")
    for i, arg in enumerate(argv):
        if arg == "--db" and i + 1 < len(argv):
            target = argv[i + 1]
        elif arg.startswith("--db="):
            target = arg[len("--db=") :]
    return "://" in target


if not _uses_a_server(sys.argv[1:]):
    from queuectl_tui.store.drivers import skip_server_drivers

    skip_server_drivers()  # peewee's import of them fails: "not installed"

gc.disable()
try:
    from queuectl_tui.cli import main
finally:
    gc.freeze()
    gc.enable()

if __name__ == "__main__":
    main()
