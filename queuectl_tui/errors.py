"""Errors a user can cause, each carrying the exit code the CLI reports it with."""


class QueueError(Exception):
    """An operation that could not be done (unknown job, wrong state): exit 1."""

    exit_code = 1


class NotFound(QueueError):
    """A job id (or attempt) that does not exist."""


class InvalidInput(QueueError):
    """Input that fails validation (bad JSON, bad value): exit 2, nothing written. ``field``
    names the job field or setting it is about (None: the input as a whole), so that a form
    puts the message under that field without reading the message."""

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class DatabaseUnusable(QueueError):
    """The database file is corrupt, locked for too long, unwritable or from a newer schema."""
