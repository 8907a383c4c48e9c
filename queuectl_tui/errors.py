"""Errors a user can cause, each carrying the exit code the CLI reports it with."""


class QueueError(Exception):
    """An operation that could not be done (unknown job, wrong state): exit 1."""

    exit_code = 1


class NotFound(QueueError):
    """A job id (or attempt) that does not exist."""


class InvalidInput(QueueError):
    """Input that fails validation (bad JSON, bad value): exit 2, nothing written."""

    exit_code = 2


class DatabaseUnusable(QueueError):
    """The database file is corrupt, locked for too long, unwritable or from a newer schema."""
