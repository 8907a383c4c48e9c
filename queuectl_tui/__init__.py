"""queuectl-tui: a local background job queue for shell commands, with a terminal console."""

__version__ = "0.1.0"
