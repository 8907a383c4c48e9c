"""The worker runtime: the loop that claims and runs jobs (``loop``), how one job's process is
launched (``launch``), the supervisor of detached workers, and the process tools they share.

Nothing is imported here, so that a module below the runtime that needs one of its tools (the
engine's recovery kills a lost job's tree with ``run.procs``) does not load the loop."""
