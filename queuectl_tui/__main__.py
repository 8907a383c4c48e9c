"""``python -m queuectl_tui`` and the ``queuectl-tui`` command: ``cli.main``.

The cyclic garbage collector is off while the command line is imported: the imports make a few
hundred thousand objects that all live as long as the process, which the collector would walk
over and over for nothing (~5 ms of a ~100 ms start). Each command runs with it on.
"""

import gc

gc.disable()
try:
    from queuectl_tui.cli import main
finally:
    gc.enable()

if __name__ == "__main__":
    main()
