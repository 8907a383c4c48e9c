"""The store's statements and dialects: what the move into ``store/`` must not change."""

from __future__ import annotations

import hashlib
import re

from queuectl_tui.store import queries
from queuectl_tui.store.dialects import POSTGRES, SQLITE

#: sha256 (first 16 hex digits) of each hot-path statement as it was before the store held
#: them (engine.py and pgsql.py at cb82d2e; PostgreSQL's forms as engine._sql made them). A
#: changed text loses the claim's INDEXED BY hint or a prepared statement's plan: change a
#: digest here only with a benchmark (bench/run.py) of the new text.
RECORDED = {
    "claim": "c7d42d2970273e51",
    "claim_batch": "076ea4c5a0ff0d0e",
    "claim_locks": "3a608a35d2da77d9",
    "finish_attempt": "38d34e236ee749c3",
    "finish_batch": "b9f19ee86fcd0866",
    "finish_job": "090defb8b0b27008",
    "new_attempt": "e1c7d8c224cb2dd4",
    "next_number": "f7c407cb3efcf069",
    "postgres:finish_attempt": "9ffff59bc41ac56e",
    "postgres:finish_job": "61ffd462dd8dc751",
    "postgres:job_rows": "49a6cf60bec0c6ce",
    "postgres:new_attempt": "4eec3c7393cbb9c5",
    "postgres:next_due": "86eaa9679cfefb3e",
    "postgres:next_number": "9a2a5af2b14f81f0",
    "postgres:oldest_due": "00359870a8b1fd9d",
    "postgres:set_worker": "fa8f853098efdc67",
    "set_worker": "779ab9f0b6456c63",
    "sqlite:job_rows": "39a6b19bf2df847a",
    "sqlite:next_due": "650bf2a11654b3d2",
    "sqlite:oldest_due": "f66701c2552ec67e",
}

SHARED = ("next_number", "new_attempt", "finish_job", "finish_attempt", "set_worker")


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def test_the_hot_path_statements_are_the_texts_measured_before_the_move():
    texts = {name: SQLITE.queries[name] for name in ("claim", *SHARED)}
    texts.update({name: POSTGRES.queries[name]
                  for name in ("claim_batch", "finish_batch", "claim_locks")})
    for dialect in (SQLITE, POSTGRES):
        for name in ("next_due", "oldest_due", "job_rows"):
            texts[f"{dialect.name}:{name}"] = dialect.queries[name]
    for name in SHARED:  # PostgreSQL's form, as it was made from SQLite's at each call
        texts[f"postgres:{name}"] = POSTGRES.queries[name]
    assert {name: digest(text) for name, text in texts.items()} == RECORDED


def markers(text: str) -> list[str]:
    """A statement's parameters: ?, ?N, %s or %(name)s, in order."""
    return re.findall(r"\?\d*|%\(\w+\)s|%s", text)


def test_both_dialects_name_the_same_queries_with_the_same_parameters():
    """Each name is in both files (but for each backend's own statements), and takes the same
    parameters there: as many, or the same names (next_due's queues travel in another shape:
    ``Dialect.next_due_params``)."""
    own = queries.OWN
    assert SQLITE.queries.keys() - own["sqlite"] == POSTGRES.queries.keys() - own["postgres"]
    assert own["sqlite"] <= SQLITE.queries.keys() and own["postgres"] <= POSTGRES.queries.keys()
    for name in SQLITE.queries.keys() - own["sqlite"] - {"next_due"}:
        assert len(markers(SQLITE.queries[name])) == len(markers(POSTGRES.queries[name])), name
    assert set(markers(SQLITE.queries["next_due"])) == {"?2"}
    assert set(markers(POSTGRES.queries["next_due"])) == {"%(queues)s"}


def test_the_claim_names_its_index_on_sqlite():
    assert "INDEXED BY job_claim" in SQLITE.queries["claim"]
    assert "INDEXED BY job_due" in SQLITE.queries["next_due"]
    assert "INDEXED BY job_due" in SQLITE.queries["oldest_due"]


def test_the_store_keeps_the_settings_version_key_of_settings():
    from queuectl_tui.settings import VERSION_KEY
    assert queries.VERSION_KEY == VERSION_KEY
