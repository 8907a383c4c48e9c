"""Settings: validation, persistence in the database, and the `config` commands."""

from __future__ import annotations

import pytest

from helpers import ok, snapshot, user_error
from queuectl_tui import engine, settings, spec
from queuectl_tui.errors import InvalidInput


def test_defaults_then_stored_values(db):
    assert settings.get("max_retries") == 3
    assert settings.set_value("max-retries", "5") == ("max_retries", 5)
    assert settings.get("max_retries") == 5
    assert settings.reset("max_retries") == ("max_retries", 3)
    assert settings.get("max_retries") == 3


def test_settings_load_as_one_typed_read_only_object(db):
    settings.set_value("lease", "12")
    values = settings.load()
    assert isinstance(values, settings.Settings) and values.lease == 12.0
    assert values.max_retries == 3 and values.default_timeout is None
    assert set(values._fields) == set(settings.SETTINGS)
    with pytest.raises(AttributeError):
        values.lease = 1.0  # type: ignore[misc]


def test_a_stored_value_survives_reopening_the_database(db, home):
    from queuectl_tui.store import close_db, open_db

    settings.set_value("backoff_base", "3.5")
    close_db()
    open_db(home / "queuectl.db")
    assert settings.get("backoff-base") == 3.5


def test_new_jobs_take_their_defaults_from_the_settings(db, tmp_path):
    settings.set_value("max_retries", "7")
    settings.set_value("backoff_base", "1.5")
    settings.set_value("default_timeout", "12")
    job = engine.enqueue([spec.normalize({"command": "true"})], cwd=str(tmp_path), env={})[0]
    assert (job.max_retries, job.backoff_base, job.timeout) == (7, 1.5, 12.0)
    settings.set_value("default_timeout", "none")
    job = engine.enqueue(
        [spec.normalize({"command": "true", "max_retries": 1})], cwd=str(tmp_path), env={}
    )[0]
    assert (job.max_retries, job.timeout) == (1, None)


@pytest.mark.parametrize(
    "key, value",
    [
        ("max_retries", "-1"),
        ("max_retries", "101"),
        ("max_retries", "2.5"),
        ("max_retries", "abc"),
        ("max_retries", ""),
        ("max_retries", float("inf")),
        ("max_retries", float("nan")),
        ("max_retries", True),
        ("backoff_base", "0.5"),
        ("backoff_base", "nan"),
        ("backoff_base", "inf"),
        ("poll_interval", "0"),
        ("lease", "0.5"),
        ("max_log_bytes", "10"),
        ("default_timeout", "-3"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_stored(db, key, value):
    with pytest.raises(InvalidInput, match=f"bad value .* for {key}") as caught:
        settings.set_value(key, value)
    assert caught.value.field == key
    assert settings.get(key) == settings.SETTINGS[key].default


def test_unknown_keys_are_refused(db):
    with pytest.raises(InvalidInput, match="unknown setting 'colour'"):
        settings.set_value("colour", "1")
    with pytest.raises(InvalidInput, match="unknown setting"):
        settings.get("colour")


# --- through the CLI -------------------------------------------------------------------------


def test_config_set_persists_for_a_new_process(cli):
    assert ok(cli("config", "set", "max-retries", "5")).out.strip() == "max_retries = 5"
    assert ok(cli("config", "get", "max_retries")).out.strip() == "5"
    assert ok(cli("config", "list", "--json")).json()["max_retries"] == 5
    job = ok(cli("enqueue", "--json", "true")).json()
    assert job["max_retries"] == 5
    ok(cli("config", "reset", "max_retries"))
    assert ok(cli("config", "get", "max_retries", "--json")).json() == {"max_retries": 3}


def test_config_list_json_has_every_setting(cli):
    data = ok(cli("config", "list", "--json")).json()
    assert set(data) == set(settings.SETTINGS)
    assert data["backoff_base"] == 2.0 and data["default_timeout"] is None


@pytest.mark.parametrize(
    "args",
    [
        ("config", "set", "max_retries", "-1"),
        ("config", "set", "max_retries", "lots"),
        ("config", "set", "backoff_base", "0"),
        ("config", "set", "poll_interval", "nan"),
        ("config", "set", "colour", "red"),
        ("config", "get", "colour"),
        ("config", "reset", "colour"),
    ],
)
def test_config_bad_key_or_value_exits_2_and_changes_nothing(cli, home, args):
    ok(cli("config", "set", "max_retries", "4"))
    before = snapshot(home / "queuectl.db")
    line = user_error(cli(*args), 2)
    assert line.startswith("error: ")
    assert snapshot(home / "queuectl.db") == before
    assert ok(cli("config", "get", "max_retries")).out.strip() == "4"


# --- a change applies to every job claimed after it ---------------------------------------------


def _log_of(job_id: str) -> str:
    from queuectl_tui.store.models import Job

    [attempt] = engine.attempts_of(Job.get(Job.id == job_id))
    return engine.log_path(attempt).read_text()


@pytest.mark.both_backends
def test_a_setting_applies_to_the_next_job_a_running_worker_claims(db, tmp_path):
    """``config set max-log-bytes`` then at once a job printing 200 kB: its log is capped,
    whether the worker was idle or busy with another job when the setting changed (it
    applied a second later, when the worker re-read its settings on a timer)."""
    import threading

    from helpers import wait_for
    from queuectl_tui.run.loop import WorkerLoop
    from queuectl_tui.store.models import Job, Worker, database

    flood = "head -c 200000 /dev/zero | tr '\\0' x"
    loop = WorkerLoop()
    errors: list[BaseException] = []

    def ended(job_id: str):
        return lambda: Job.get(Job.id == job_id).state in ("completed", "dead")

    def drive():
        try:
            wait_for(Worker.select().exists, message="the worker")
            # An idle worker.
            settings.set_value("max-log-bytes", 2000)
            engine.enqueue(
                [spec.normalize({"id": "idle", "command": flood})], cwd=str(tmp_path), env={}
            )
            wait_for(ended("idle"), message="the first job")
            # A busy one: "after" is claimed once "gate" ends, after the change.
            engine.enqueue(
                [
                    spec.normalize(
                        {
                            "id": "gate",
                            "priority": 1,
                            "command": "touch started; while [ ! -e go ]; do sleep 0.02; done",
                        }
                    ),
                    spec.normalize({"id": "after", "command": flood}),
                ],
                cwd=str(tmp_path),
                env={},
            )
            wait_for((tmp_path / "started").exists, message="the gate job")
            settings.set_value("max-log-bytes", 3000)
            (tmp_path / "go").touch()
            wait_for(ended("after"), message="the job after the gate")
        except BaseException as exc:
            errors.append(exc)
        finally:
            loop._on_stop(None, None)
            database.close()

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    assert loop.run() == 0
    thread.join()
    if errors:
        raise errors[0]
    assert "[queuectl: output over 2000 bytes" in _log_of("idle")
    assert len(_log_of("idle")) < 2200
    assert "[queuectl: output over 3000 bytes" in _log_of("after")
    assert len(_log_of("after")) < 3200
