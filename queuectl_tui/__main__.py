"""``python -m queuectl_tui`` and the ``queuectl-tui`` command: ``cli.main``.

The cyclic garbage collector is off while the command line is imported, and what the imports
made is then frozen (never scanned again): a few hundred thousand objects that all live as long
as the process, which the collector would otherwise walk over and over for nothing (~5 ms of a
~100 ms start). Each command runs with it on.
"""

import gc

gc.disable()
try:
    from queuectl_tui.cli import main
finally:
    gc.freeze()
    gc.enable()

if __name__ == "__main__":
    main()
