"""Security: private files whatever the umask, shared directories left alone, log paths that
user input never reaches, parameterised SQL, and jobs that run with what was recorded at
enqueue (nothing of the worker's own environment)."""

from __future__ import annotations

import ast
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, Result, cli_env, ok, run_cli, run_command, token, user_error, wait_for

# reap (conftest.py): kills whatever a test leaves running, even when it fails half-way.
pytestmark = pytest.mark.usefixtures("reap")


def run_umask0(home: Path, *args: str, env: dict | None = None) -> Result:
    proc = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=home.parent if home.parent.exists() else "/",
        env=env or cli_env(home),
        preexec_fn=lambda: os.umask(0),
    )
    return Result(proc.returncode, proc.stdout, proc.stderr)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_directory_and_file_is_created_private_even_with_umask_0(tmp_path):
    home = tmp_path / "made" / "by" / "queuectl" / "qhome"  # three parents that do not exist yet
    ok(run_umask0(home, "enqueue", "--id", "j", "echo private"))
    worker = ok(run_umask0(home, "worker", "start", "--json")).json()[0]
    wait_for(
        lambda: ok(run_command(home, "show", "j", "--json")).json()["state"] == "completed",
        message="the job to run",
    )
    # While the worker holds the database open its WAL side files exist: private too.
    side = [home / "queuectl.db-wal", home / "queuectl.db-shm"]
    assert all(p.exists() for p in side)
    for directory in [
        tmp_path / "made",
        tmp_path / "made" / "by",
        tmp_path / "made" / "by" / "queuectl",
        home,
        home / "logs",
    ]:
        assert mode(directory) == 0o700, f"{directory} is {oct(mode(directory))}"
    files = [p for p in home.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"queuectl.db", "workers.log", "queuectl.db-wal"}
    assert any(p.name == "j@1-1.log" for p in files)  # the job's log
    for path in files:
        assert mode(path) == 0o600, f"{path} is {oct(mode(path))}"
    ok(run_command(home, "worker", "stop", str(worker["id"])))


def test_an_existing_directory_keeps_its_mode(tmp_path):
    """--db in a shared directory (think /tmp) must not make that directory private."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    db = shared / "team.db"
    env = cli_env(tmp_path / "unused")
    proc = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", "--db", str(db), "enqueue", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert mode(shared) == 0o1777
    assert mode(db) == 0o600 and mode(shared / "logs") == 0o700


PATH_LIKE_IDS = [
    "../../escape",
    "..",
    ".",
    "logs",
    "logs/../../escape2",
    "a/b/c",
    "/tmp/abs-escape",
]


def test_log_paths_never_come_from_job_ids_or_commands(cli, home, tmp_path):
    marker = token()
    ids = [i + ("" if i in ("..", ".", "logs") else f"-{marker}") for i in PATH_LIKE_IDS]
    for job_id in ids:
        ok(cli("enqueue", "--id", job_id, f"echo output of {job_id}"))
    ok(cli("worker", "start", "--foreground", "--burst"))
    for job_id in ids:
        job = ok(cli("show", job_id, "--json")).json()
        assert job["state"] == "completed"
        log = Path(job["attempt_list"][0]["log_file"])
        assert log.parent == home / "logs" and re.fullmatch(
            r"[\w%-][\w.%-]*@\d+-\d+\.log", log.name
        ), log
        assert ok(cli("logs", job_id)).out == f"output of {job_id}\n"
    names = sorted(p.relative_to(home).as_posix() for p in home.rglob("*"))
    assert all(
        n in ("queuectl.db", "logs", "logs/workers.log", "logs/writers.lock")
        or (n.startswith("logs/") and n.count("/") == 1 and "@" in n and n.endswith(".log"))
        for n in names
    ), names
    # Nothing was created where the ids point.
    found = [
        p
        for base in (Path("/tmp"), home.parent, home.parent.parent, tmp_path.parent)
        for p in base.glob(f"*{marker}*")
    ]
    assert found == []


#: engine's runner of the per-job statements, which PREPAREs on PostgreSQL what its callers
#: pass it: its calls are checked where it is called (``_hot`` is one of the SQL calls), and
#: the text it builds is only that literal text, statement names and $N markers.
#: The dialects' own runners (store/dialects.py) likewise: they run the named statements of
#: store/sql (``execute``, ``run``) or what they are given.
_PREPARING = {"_hot", "_prepare", "hot", "run", "execute", "_execute", "copy_in", "begin_snapshot"}


def _sql_calls(tree: ast.AST):
    skip = {
        id(node)
        for fn in ast.walk(tree)
        if isinstance(fn, ast.FunctionDef) and fn.name in _PREPARING
        for node in ast.walk(fn)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and id(node) not in skip:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in ("execute_sql", "executescript", "raw", "SQL", "_hot", "hot"):
                yield node


def _literal_constants(tree: ast.Module, found: set[str] | None = None) -> set[str]:
    """Module-level names bound to SQL text made of string literals only (concatenated, or
    joined from a tuple of literals), such as the worker's prepared hot-path statements, or
    read by name from the package's own .sql files (``load``)."""
    found = set() if found is None else found

    def literal(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str)
        if isinstance(node, ast.Name):
            return node.id in found
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return literal(node.left) and literal(node.right)
        if isinstance(node, ast.Tuple):
            return all(literal(e) for e in node.elts)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "join"
            and not node.keywords
        ):
            return literal(node.func.value) and all(literal(a) for a in node.args)
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "load"
            and not node.keywords
        ):
            return all(literal(a) for a in node.args)  # the blocks of a .sql file of store/sql
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            return literal(node.value)  # one named block of such a file
        return False

    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and literal(stmt.value)
        ):
            found.add(stmt.targets[0].id)
    return found


def _named_block(node: ast.AST) -> bool:
    """``node`` reads a named block of store/sql/<backend>/*.sql: ``SQLITE_QUERIES[...]`` or
    ``blocks(db, file)[...]`` (store/schema.py), text of a file, never of a value."""
    if not isinstance(node, ast.Subscript):
        return False
    value = node.value
    return (isinstance(value, ast.Name) and value.id.endswith("_QUERIES")) or (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "blocks"
    )


def test_sql_text_is_always_a_literal_values_travel_as_parameters():
    """Every piece of raw SQL in the package is literal text (a string literal, a module
    constant made of literals, or a named statement of store/sql's files); values go in
    parameters. (Everything else is built by peewee, which parameterises all values.)"""
    offenders, seen = [], 0
    trees = {
        path: ast.parse(path.read_text(), str(path))
        for path in sorted((ROOT / "queuectl_tui").rglob("*.py"))
    }
    # A constant of one module may be imported by another (models.CLAIMABLE_WHERE).
    constants: set[str] = set()
    for _ in range(2):  # a second pass for names built from another module's constants
        for tree in trees.values():
            _literal_constants(tree, constants)
    for path, tree in trees.items():
        # A loop over a constant tuple of statements binds each in turn: literal too.
        looped = {
            node.target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Name)
            and node.iter.id in constants
        }
        # A named block of store/sql/<backend>/*.sql (``SQLITE_QUERIES["x"]``, ``blocks(db,
        # file)[name]``), and each statement of one (``for s in statements(block)``).
        named = {
            node.targets[0].id
            for node in ast.walk(tree)
            if isinstance(node, ast.Assign)
            and len(node.targets) == 1
            and isinstance(node.targets[0], ast.Name)
            and _named_block(node.value)
        }
        named |= {
            node.target.id
            for node in ast.walk(tree)
            if isinstance(node, ast.For)
            and isinstance(node.target, ast.Name)
            and isinstance(node.iter, ast.Call)
            and isinstance(node.iter.func, ast.Name)
            and node.iter.func.id == "statements"
            and len(node.iter.args) == 1
            and isinstance(node.iter.args[0], ast.Name)
            and node.iter.args[0].id in named
        }
        for call in _sql_calls(tree):
            seen += 1
            texts = [call.args[0]]
            for text in texts:
                if isinstance(text, ast.Name) and (text.id in constants or text.id in looped):
                    continue
                if _named_block(text) or (isinstance(text, ast.Name) and text.id in named):
                    continue  # a named block of store/sql/<backend>/*.sql
                if (
                    isinstance(text, ast.Subscript)
                    and isinstance(text.value, ast.Attribute)
                    and text.value.attr == "queries"
                    and isinstance(text.slice, ast.Constant)
                ):
                    continue  # a named statement of store/sql/<backend>/queries.sql
                if (
                    isinstance(text, ast.Subscript)
                    and isinstance(text.slice, ast.Constant)
                    and (
                        (
                            isinstance(text.value, ast.Attribute)
                            and text.value.attr in ("queries", "bulk")
                        )
                        or (isinstance(text.value, ast.Name) and text.value.id == "bulk")
                    )
                ):
                    continue  # a named statement of store/sql/<backend>/*.sql (bulk = .bulk)
                if not (isinstance(text, ast.Constant) and isinstance(text.value, str)):
                    offenders.append(f"{path.relative_to(ROOT)}:{call.lineno}")
    assert seen and offenders == []


def test_hostile_strings_are_data(cli):
    hostile = "x');DROP/**/TABLE/**/job;--"  # ids take no whitespace; SQL does not need it
    ok(cli("enqueue", "--id", hostile, 'echo "\'; DELETE FROM job; --"'))
    ok(cli("enqueue", "--id", "plain", "true"))
    assert [j["id"] for j in ok(cli("list", "--search", "' OR '1'='1", "--json")).json()] == []
    assert [j["id"] for j in ok(cli("list", "--search", "DROP/**/TABLE", "--json")).json()] == [
        hostile
    ]
    ok(cli("worker", "start", "--foreground", "--burst"))
    assert ok(cli("logs", hostile)).out == "'; DELETE FROM job; --\n"
    assert ok(cli("status", "--json")).json()["jobs"]["completed"] == 2


def test_a_job_runs_with_the_enqueuers_environment_and_directory_only(home, tmp_path):
    where = tmp_path / "project"
    where.mkdir()
    out = tmp_path / "seen"
    enqueuer = cli_env(home, FOO="from-enqueue")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "queuectl_tui",
            "enqueue",
            "--id",
            "envjob",
            f"env > {out}.env; pwd > {out}.pwd",
        ],
        capture_output=True,
        text=True,
        cwd=where,
        env=enqueuer,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    worker_env = cli_env(
        home, FOO="from-worker", WORKER_SECRET_TOKEN="hunter2", AWS_SECRET_ACCESS_KEY="worker-only"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "queuectl_tui", "worker", "start", "--foreground", "--burst"],
        capture_output=True,
        text=True,
        cwd="/",
        env=worker_env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    seen = dict(
        line.split("=", 1) for line in Path(f"{out}.env").read_text().splitlines() if "=" in line
    )
    assert seen["FOO"] == "from-enqueue"
    assert "WORKER_SECRET_TOKEN" not in seen and "AWS_SECRET_ACCESS_KEY" not in seen
    # Added: what the shell sets, and the marker by which recovery finds the job's processes.
    assert set(seen) - {"PWD", "SHLVL", "_", "OLDPWD", "QUEUECTL_JOB_PROCESS"} <= set(enqueuer)
    assert Path(f"{out}.pwd").read_text().strip() == str(where)


def test_an_environment_is_deleted_with_the_last_job_that_uses_it(home):
    """The enqueuer's environment (secrets included) is stored once per distinct content; it
    must not outlive the jobs that refer to it (delete, clear, dlq clear)."""
    import sqlite3

    def enqueue(secret: str, *args: str) -> None:
        ok(run_command(home, "enqueue", *args, env=cli_env(home, API_TOKEN=secret)))

    def stored() -> str:
        con = sqlite3.connect(home / "queuectl.db")
        try:
            return " ".join(data for (data,) in con.execute("SELECT data FROM environment"))
        finally:
            con.close()

    enqueue("secret-deleted", "--id", "d1", "true")
    enqueue("secret-deleted", "--id", "d2", "true")  # the same environment, shared
    enqueue("secret-cleared", "--id", "c1", "true")
    enqueue("secret-dead", "--id", "x1", "--max-retries", "0", "false")
    enqueue("secret-kept", "--id", "k1", "--delay", "3600", "true")
    ok(run_cli(home, "worker", "start", "--foreground", "--burst"))
    ok(run_command(home, "delete", "d1"))
    assert "secret-deleted" in stored()  # d2 still refers to it
    ok(run_command(home, "delete", "d2"))
    assert "secret-deleted" not in stored()
    ok(run_command(home, "dlq", "clear", "--yes"))
    assert "secret-dead" not in stored()
    ok(run_command(home, "clear", "--state", "completed", "--yes"))
    assert "secret-cleared" not in stored()
    assert "secret-kept" in stored()  # k1 waits: its environment stays


# --- files planted where logs go -------------------------------------------------------------

NOBODY = 65534


def _needs_root_for_chown() -> None:
    if os.geteuid() != 0:
        pytest.skip("making a directory owned by another user needs root")


@pytest.mark.parametrize("plant", ["other-owner", "world-writable", "symlink"])
def test_a_logs_directory_that_is_not_ours_alone_is_never_written(tmp_path, plant):
    """``--db /tmp/q.db`` with a /tmp/logs made first by someone else: workers refuse to start
    there, and an attempt (a worker already running) fails with the reason, writing nothing."""
    place = tmp_path / "shared"
    place.mkdir()
    db = str(place / "q.db")
    if plant == "symlink":
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        (place / "logs").symlink_to(elsewhere)
        watched = elsewhere
    else:
        (place / "logs").mkdir()
        (place / "logs").chmod(0o777)
        if plant == "other-owner":
            _needs_root_for_chown()
            os.chown(place / "logs", NOBODY, NOBODY)
        watched = place / "logs"
    ok(
        run_command(
            tmp_path / "unused",
            "--db",
            db,
            "enqueue",
            "--id",
            "j",
            "--max-retries",
            "0",
            "echo secret output",
        )
    )
    line = user_error(run_cli(tmp_path / "unused", "--db", db, "worker", "start"), 1)
    assert "logs directory" in line and "refusing" in line
    ok(run_cli(tmp_path / "unused", "--db", db, "worker", "run", "--burst"))
    job = ok(run_command(tmp_path / "unused", "--db", db, "show", "j", "--json")).json()
    assert job["state"] == "dead"
    assert "logs directory" in job["last_error"] and "refusing" in job["last_error"]
    assert list(watched.iterdir()) == []


def test_a_symlink_at_a_log_path_is_replaced_not_followed(cli, home, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ok(cli("enqueue", "--id", "j", "echo job output"))
    log = home / "logs" / "j@1-1.log"  # the first job's first attempt
    log.symlink_to(victim)
    ok(cli("worker", "start", "--foreground", "--burst"))
    assert victim.read_text() == "precious\n"
    assert not log.is_symlink() and log.read_text() == "job output\n"
    assert ok(cli("show", "j", "--json")).json()["state"] == "completed"


def test_a_log_file_made_before_the_attempt_never_sees_its_output(cli, home):
    """A file already at the log's path (a leftover, or one held open by a reader) is not
    reused: the attempt writes a new file, so an open handle on the old one reads nothing."""
    ok(cli("enqueue", "--id", "j", "echo job output"))
    log = home / "logs" / "j@1-1.log"
    log.write_text("")
    with open(log) as held:
        ok(cli("worker", "start", "--foreground", "--burst"))
        assert held.read() == ""
    assert log.read_text() == "job output\n"


def test_a_leftover_at_a_silent_jobs_log_path_is_removed_not_shown_as_its_output(cli, home):
    """A job's log is made at its first byte, so a job that writes nothing makes none: a
    leftover of ours at its path (a deleted job's whose id and number come back) is removed
    before the job starts, so that nobody reads it as this attempt's output."""
    ok(cli("enqueue", "--id", "j", "true"))
    log = home / "logs" / "j@1-1.log"
    log.write_text("an older job's output\n")
    ok(cli("worker", "start", "--foreground", "--burst"))
    assert ok(cli("show", "j", "--json")).json()["state"] == "completed"
    assert not log.exists()
    assert ok(cli("logs", "j")).out == ""


def test_a_log_path_held_by_another_user_fails_the_attempt(cli, home):
    _needs_root_for_chown()
    ok(cli("enqueue", "--id", "j", "--max-retries", "0", "echo job output"))
    log = home / "logs" / "j@1-1.log"
    log.write_text("theirs\n")
    os.chown(log, NOBODY, NOBODY)
    ok(cli("worker", "start", "--foreground", "--burst"))
    job = ok(cli("show", "j", "--json")).json()
    assert job["state"] == "dead" and f"belongs to uid {NOBODY}" in job["last_error"]
    assert log.read_text() == "theirs\n"


def test_workers_log_is_never_written_through_a_symlink(cli, home, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    ok(cli("status"))  # creates the database and its logs directory
    (home / "logs" / "workers.log").symlink_to(victim)
    line = user_error(cli("worker", "start"), 1)
    assert "workers.log" in line and "symbolic link" in line
    assert victim.read_text() == "precious\n"
