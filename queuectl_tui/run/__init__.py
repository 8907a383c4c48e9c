"""The worker runtime: the loop that claims and runs jobs (``loop``), how one job's process is
launched (``launch``), and the supervisor of detached workers.

Nothing is imported here, so that importing one of its modules does not load the loop."""
