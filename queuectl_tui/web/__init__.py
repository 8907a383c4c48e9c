"""The console in a browser (``queuectl-tui web``, the ``web`` extra): ``server`` serves it
behind a token; ``session`` is what each browser tab runs."""
