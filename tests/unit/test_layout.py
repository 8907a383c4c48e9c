"""The package's shape, read from its source with ``ast`` (nothing is imported or run): no
module over 800 lines, no import circle, backend knowledge in the store only, and neither the
CLI nor the workers importing textual.

Each rule has an allowlist of today's offenders, by name. The lists only shrink: a module
leaves its list when it is fixed, and nothing joins one. An entry that no longer offends fails
the test too, so each list stays a true account of what is left to do (as modules move into
the store, engine, run and cli packages, their entries are renamed or dropped with the move).
"""

from __future__ import annotations

import ast
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from helpers import ROOT

PACKAGE = "queuectl_tui"
SOURCE = ROOT / PACKAGE

MAX_LINES = 800

# --- the allowlists (they only shrink) -----------------------------------------------------

#: Modules over MAX_LINES lines, today. The list only shrinks.
TOO_LONG: set[str] = set()

#: Import circles through module-level imports, each named by its modules, today. The list
#: only shrinks.
MODULE_LEVEL_CIRCLES: set[frozenset[str]] = set()

#: Import circles once imports inside functions count too, today. The list only shrinks.
CIRCLES: set[frozenset[str]] = set()

#: Modules outside the store that know which database they run on, today, each with what it
#: names. The list only shrinks.
BACKEND_KNOWLEDGE: dict[str, set[str]] = {}

#: Modules outside the store that hold SQL text (a statement or a fragment of one) in Python,
#: today. The list only shrinks.
SQL_OUTSIDE_THE_STORE: set[str] = set()

#: Modules that the CLI or a worker imports at module level and that import textual, today.
#: The list only shrinks.
TEXTUAL_IN_CLI_OR_WORKERS: set[str] = set()

#: Modules whose code holds SQL statements as Python strings, today: their statements are
#: moving into named blocks of store/sql/<backend>/*.sql. The list only shrinks.
SQL_IN_PYTHON = {
    # the session's settings (constants of the module interpolated), LISTEN on a channel named
    # by psycopg2.sql.Identifier, and the current schema's name: the connection's own plumbing
    "queuectl_tui.store.postgres",
}


# --- reading the source ---------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool

    def text(self) -> str:
        return _read(self.path)

    def tree(self) -> ast.Module:
        return _parse(self.path)


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


@cache
def _parse(path: Path) -> ast.Module:
    return ast.parse(_read(path), filename=str(path))


@cache
def modules() -> dict[str, Module]:
    found = {}
    for path in sorted(SOURCE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = Module(".".join(parts), path, is_package)
    return found


@dataclass(frozen=True)
class Import:
    target: str  # a module of the package, or the top-level name of another package
    line: int
    in_function: bool  # runs when the function is called, not when the module is imported


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _statements(body: list[ast.stmt], in_function: bool) -> Iterator[tuple[ast.stmt, bool]]:
    """Every statement that may run, with whether it runs only inside a function. The body of
    ``if TYPE_CHECKING:`` never runs: its imports are for the type checker alone."""
    for node in body:
        yield node, in_function
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _statements(node.orelse, in_function)
            continue
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                yield from _statements([c for c in children if isinstance(c, ast.stmt)], inner)
            if field == "handlers":
                for handler in children or ():
                    yield from _statements(handler.body, inner)
        if isinstance(node, ast.Match):
            for case in node.cases:
                yield from _statements(case.body, inner)


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    base = base[: len(base) - node.level + (1 if module.is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


@cache
def imports(name: str) -> tuple[Import, ...]:
    """What module ``name`` imports: a module of the package by its full name (``from a import
    b`` names ``a.b`` when that is a module, else ``a``), anything else by its top-level name."""
    module, known = modules()[name], modules()
    found = []
    for node, in_function in _statements(module.tree().body, False):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names
            ]
        for target in targets:
            if target.split(".")[0] != PACKAGE:
                target = target.split(".")[0]
            found.append(Import(target, node.lineno, in_function))
    return tuple(found)


def graph(*, with_functions: bool) -> dict[str, set[str]]:
    known = modules()
    return {
        name: {
            i.target
            for i in imports(name)
            if i.target in known and i.target != name and (with_functions or not i.in_function)
        }
        for name in known
    }


def circles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


#: What only the store may know: which database it is, its driver, and PostgreSQL's locking
#: clauses and functions (each word as reported, and how it is found).
BACKEND_WORDS = {
    "is_sqlite": re.compile(r"\bis_sqlite\b"),
    "SqliteDatabase": re.compile(r"SqliteDatabase"),
    "PostgresqlDatabase": re.compile(r"PostgresqlDatabase"),
    "psycopg": re.compile(r"psycopg"),
    "SKIP LOCKED": re.compile(r"\bSKIP\s+LOCKED\b", re.IGNORECASE),
    "advisory lock": re.compile(r"advisory", re.IGNORECASE),
}
#: Where backend knowledge belongs (and the .sql files, which are not Python).
STORE = f"{PACKAGE}.store"


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes (words about a backend are fine; code is not)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def backend_words(name: str) -> set[str]:
    """The backend words module ``name``'s code uses: in its names, imports and string
    literals (SQL text among them), not in its comments or docstrings."""
    tree = modules()[name].tree()
    docstrings = _docstrings(tree)
    texts: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            texts.append(node.id)
        elif isinstance(node, ast.Attribute):
            texts.append(node.attr)
        elif isinstance(node, ast.alias):
            texts.append(node.name)
        elif isinstance(node, ast.ImportFrom):
            texts.append(node.module or "")
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            texts.append(node.name)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            texts.append("" if id(node) in docstrings else node.value)
    code = "\0".join(texts)  # no word spans two texts
    return {word for word, pattern in BACKEND_WORDS.items() if pattern.search(code)}


#: SQL in a string literal: a statement's verb or one of its clauses (in capitals, as the
#: package writes SQL; words in messages are not).
SQL_TEXT = re.compile(
    r"\b(SELECT|INSERT (INTO|OR)|UPDATE (\w+ SET|OR)|DELETE FROM|(CREATE|DROP) (TEMP |UNIQUE )?"
    r"(TABLE|INDEX|TRIGGER|FUNCTION)|ALTER TABLE|PRAGMA|WHERE|GROUP BY|ORDER BY|UNION ALL"
    r"|ON CONFLICT|COALESCE\()"
)


def sql_texts(name: str) -> list[str]:
    """The string literals of module ``name`` that hold SQL (docstrings apart)."""
    tree = modules()[name].tree()
    docstrings = _docstrings(tree)
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and SQL_TEXT.search(node.value)
    ]


#: The modules the CLI and the workers start from: the CLI (module or package) and the
#: program's entry, the worker runtime as it is laid out today and as the ``run`` package.
CLI_ROOTS = (f"{PACKAGE}.__main__", f"{PACKAGE}.cli")
WORKER_ROOTS = tuple(
    f"{PACKAGE}.{name}" for name in ("run", "worker", "jobhost", "runner", "supervisor")
)


def _under(name: str, roots: tuple[str, ...]) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def loaded_at_import(roots: list[str]) -> set[str]:
    """The package's modules that importing ``roots`` loads: module-level imports, followed."""
    edges, seen, todo = graph(with_functions=False), set(roots), list(roots)
    while todo:
        for nxt in edges[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _imports_textual(name: str) -> bool:
    return any(i.target == "textual" and not i.in_function for i in imports(name))


#: A string that is an SQL statement: it starts with one of these words, in capitals (as the
#: package writes SQL). PRAGMA settings, transaction control (SAVEPOINT, SET TRANSACTION) and
#: PREPARE/EXECUTE wrappers around a named statement are not statements in this sense.
STATEMENT = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|WITH)\s")


def statement_literals(name: str) -> list[int]:
    """The lines of module ``name`` where a string literal (not a docstring) starts an SQL
    statement, f-strings and literals joined by ``+`` included (their first part)."""
    tree = modules()[name].tree()
    docstrings = _docstrings(tree)
    return sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and STATEMENT.match(node.value)
    )


def _named(found: set[frozenset[str]]) -> list[list[str]]:
    return sorted(sorted(circle) for circle in found)


# --- the rules --------------------------------------------------------------------------------


def test_the_source_is_found():
    """Each rule below reads these: a layout they could not see would pass them all."""
    names = modules()
    assert f"{PACKAGE}.tui.app" in names and len(names) > 40
    assert any(_under(n, CLI_ROOTS[1:]) for n in names), "no CLI module found"
    assert any(_under(n, WORKER_ROOTS) for n in names), "no worker module found"


def test_no_module_is_over_800_lines():
    long = {name for name, m in modules().items() if len(m.text().splitlines()) > MAX_LINES}
    assert not long - TOO_LONG, f"over {MAX_LINES} lines, split them: {sorted(long - TOO_LONG)}"
    assert not TOO_LONG - long, f"no longer too long, off TOO_LONG: {sorted(TOO_LONG - long)}"


def test_no_import_circle_among_module_level_imports():
    """Module-level imports run while a module is being loaded: a circle among them makes one
    module see the other half-initialised, and whether that breaks depends on import order."""
    found = circles(graph(with_functions=False))
    assert not found - MODULE_LEVEL_CIRCLES, f"circles: {_named(found - MODULE_LEVEL_CIRCLES)}"
    assert not MODULE_LEVEL_CIRCLES - found, (
        f"gone, off MODULE_LEVEL_CIRCLES: {_named(MODULE_LEVEL_CIRCLES - found)}"
    )


def test_no_import_circle_counting_imports_inside_functions():
    """An import inside a function runs at call time, when everything is loaded, so it cannot
    break an import: the package uses that on purpose to keep a command's cold start lean
    (the CLI loads the console, psutil or migrations only when it needs them). It does not
    remove the dependency, though: a circle closed by one is still two modules that need each
    other (the job detail and the main screen editing a job), so these count here, with their
    own list. Imports under ``if TYPE_CHECKING:`` never run and count in neither rule."""
    found = circles(graph(with_functions=True))
    assert not found - CIRCLES, f"circles: {_named(found - CIRCLES)}"
    assert not CIRCLES - found, f"gone, off CIRCLES: {_named(CIRCLES - found)}"


def test_backend_knowledge_is_in_the_store_only():
    """Which database runs (SQLite or PostgreSQL) is the store's business: the rest of the
    package calls it and never asks. Words in comments and docstrings do not count."""
    outside = [name for name in modules() if not _under(name, (STORE,))]
    found = {name: words for name in outside if (words := backend_words(name))}
    new = {
        n: sorted(w - BACKEND_KNOWLEDGE.get(n, set()))
        for n, w in found.items()
        if w - BACKEND_KNOWLEDGE.get(n, set())
    }
    gone = {
        n: sorted(w - found.get(n, set()))
        for n, w in BACKEND_KNOWLEDGE.items()
        if w - found.get(n, set())
    }
    assert not new, f"backend knowledge outside {STORE}: {new}"
    assert not gone, f"gone, off BACKEND_KNOWLEDGE: {gone}"
    sql = [p.relative_to(ROOT) for p in SOURCE.rglob("*.sql")]
    assert [p for p in sql if not _under(".".join(p.parent.parts), (STORE,))] == []


def test_sql_statements_are_in_sql_files():
    """SQL is written in store/sql/<backend>/*.sql as named blocks (``-- name: X``), where a
    statement can be read and EXPLAINed whole, not glued from Python strings."""
    found = {name: lines for name in modules() if (lines := statement_literals(name))}
    new = {name: lines for name, lines in found.items() if name not in SQL_IN_PYTHON}
    assert not new, f"SQL statements in Python strings (module: lines): {new}"
    gone = SQL_IN_PYTHON - found.keys()
    assert not gone, f"no SQL statement left, off SQL_IN_PYTHON: {sorted(gone)}"


def test_sql_statements_are_in_the_stores_sql_files():
    """A statement is a named block of a ``.sql`` file under ``store/sql`` (run by its name,
    ``dialect().execute(name)``), never Python text outside the store: so that each can be
    read and EXPLAINed whole, and both backends' forms are side by side."""
    outside = [name for name in modules() if not _under(name, (STORE,))]
    found = {name for name in outside if sql_texts(name)}
    new = found - SQL_OUTSIDE_THE_STORE
    assert not new, {n: sql_texts(n)[:3] for n in sorted(new)}
    gone = SQL_OUTSIDE_THE_STORE - found
    assert not gone, f"gone, off SQL_OUTSIDE_THE_STORE: {sorted(gone)}"


def test_the_sql_rule_sees_statements_and_fragments():
    """The rule above reads string literals: a statement, or a fragment glued into one."""
    for text in (
        "SELECT 1",
        "DELETE FROM job WHERE seq = ?",
        "a.queue = ? GROUP BY a.queue",
        "UPDATE job SET state = ?",
        "INSERT OR IGNORE INTO meta VALUES (?, ?)",
        "COALESCE(finished_at, created_at)",
    ):
        assert SQL_TEXT.search(text), text
    for text in ("select a job", "no job was deleted", "Where it runs", "update the queue"):
        assert not SQL_TEXT.search(text), text


def test_the_cli_and_the_workers_never_import_textual():
    """Statically, for every command and every worker module at once: none of the modules
    they load at import time imports textual (the console is loaded inside the function that
    opens it). tests/test_cli.py checks the same at run time, for one command."""
    roots = [n for n in modules() if _under(n, CLI_ROOTS + WORKER_ROOTS)]
    found = {name for name in loaded_at_import(roots) if _imports_textual(name)}
    new, gone = found - TEXTUAL_IN_CLI_OR_WORKERS, TEXTUAL_IN_CLI_OR_WORKERS - found
    assert not new, f"loaded by the CLI or a worker, these import textual: {sorted(new)}"
    assert not gone, f"gone, off TEXTUAL_IN_CLI_OR_WORKERS: {sorted(gone)}"


def test_ci_runs_the_readme_test_command():
    """The README's test command (lint, format and type checks, suite) is what CI runs."""
    readme = (ROOT / "README.md").read_text()
    command = next(
        line
        for line in readme.splitlines()
        if line.startswith("python3 -m venv") and "'.[test]'" in line
    )
    assert ".venv/bin/ruff check ." in command and ".venv/bin/mypy" in command
    assert ".venv/bin/ruff format --check ." in command
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command.replace("pip install -e", "pip install -q -e") in ci


def test_the_type_checks_name_modules_that_exist():
    """pyproject.toml names modules in mypy's overrides (those checked strictly). A module
    moved or renamed leaves the list, so that it says what it does (mypy itself only notes
    an entry that matches nothing)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    named = [
        name.removesuffix(".*")
        for override in config.get("overrides", [])
        for name in override["module"]
        if name.split(".")[0] == PACKAGE
    ]
    assert [name for name in named if name not in modules()] == []
    assert config["packages"] == [PACKAGE]
