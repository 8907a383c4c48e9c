"""Queue settings: their defaults, their validation, and their persistence in the database.

Values are validated when they are set, so that a worker never meets a bad one. Keys accept
either spelling (``max-retries`` or ``max_retries``); the canonical form uses underscores.

Every change also gives the settings a new version (``VERSION_KEY`` in ``meta``), in the same
transaction: a worker reads it with each claim and each look for work (no statement of its
own) and reloads its settings when it differs from the one it holds, so a change applies to
every job claimed after ``config set`` returned.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from peewee import SQL

from queuectl_tui.errors import InvalidInput
from queuectl_tui.spec import parse_seconds, plain_number
from queuectl_tui.store import write_transaction
from queuectl_tui.store.dialects import dialect
from queuectl_tui.store.models import AGING_RATE_SQL, CLAIMABLE, Job, Meta, Setting


class SettingSpec(NamedTuple):  # not a dataclass: ~1 ms less at every start
    """One setting's default, its parser (raises ValueError with the reason) and its help."""

    default: Any
    parse: Callable[[Any], Any]
    help: str


class Settings(NamedTuple):
    """Every setting's value, typed and read-only; workers read fields of it every second (a
    tuple's field is a C-level getter, cheaper than a dict lookup by name)."""

    max_retries: int
    backoff_base: float
    max_backoff: float
    default_timeout: float | None
    poll_interval: float
    heartbeat_interval: float
    lease: float
    priority_aging: float
    max_log_bytes: int
    keep_completed: float | None
    keep_dead: float | None
    max_logs_total: int
    on_completed: str | None
    on_dead: str | None


def _number(
    kind: type, low: float, high: float, *, optional: bool = False, unit: str = ""
) -> Callable[[Any], Any]:
    def parse(raw: Any) -> Any:
        if optional and (
            raw is None
            or (isinstance(raw, str) and raw.strip().lower() in ("none", "null", "", "0"))
        ):
            return None
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            if unit == " s" and isinstance(raw, str):  # seconds: a duration too (5m, 1h30m)
                value = parse_seconds(raw)
            else:
                value = kind(raw.strip()) if isinstance(raw, str) else kind(raw)
        except (TypeError, ValueError, OverflowError, InvalidInput):
            raise ValueError(
                "expected a number of seconds or a duration such as 90s, 15m, 2h30m, 1d"
                if unit == " s"
                else f"expected {'a whole number' if kind is int else 'a number'}"
            ) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a finite number")
        if kind is int and isinstance(raw, float) and raw != int(raw):
            raise ValueError("expected a whole number")
        if not low <= value <= high:
            raise ValueError(f"must be between {text(low)} and {text(high)}{unit}")
        return value

    return parse


def _keep(raw: Any) -> float | None:
    """How long an ended job is kept: a duration, or ``none`` (also ``forever``) to keep it."""
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "forever")):
        return None
    if isinstance(raw, bool):
        raise ValueError("expected a duration")
    try:
        value = parse_seconds(raw)
    except InvalidInput:
        raise ValueError(
            "expected a duration such as 12h, 7d, 30d, or none to keep forever"
        ) from None
    if not 0 <= value <= 100 * 365 * DAY:
        raise ValueError("must be between 0 and 100 years (or none to keep forever)")
    return value


def _hook(raw: Any) -> str | None:
    """A shell command (run by ``sh -c``), or ``none`` / empty for no hook."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise ValueError("expected a shell command, or none")
    text = raw.strip()
    if not text or text.lower() == "none":
        return None
    if "\0" in text:
        raise ValueError("a command cannot contain a NUL character")
    return text


DAY = 86400.0
SETTINGS: dict[str, SettingSpec] = {
    "max_retries": SettingSpec(
        3, _number(int, 0, 100), "retries after the first run before a job goes to the DLQ"
    ),
    "backoff_base": SettingSpec(
        2.0, _number(float, 1, 100), "after failure k a job waits backoff_base ** k seconds"
    ),
    "max_backoff": SettingSpec(
        3600.0, _number(float, 0, 30 * DAY, unit=" s"), "cap on any single backoff wait, seconds"
    ),
    "default_timeout": SettingSpec(
        None,
        _number(float, 0.001, 30 * DAY, optional=True, unit=" s"),
        "time limit for jobs that set none, seconds ('none' for no limit)",
    ),
    "poll_interval": SettingSpec(
        1.0,
        _number(float, 0.01, 60, unit=" s"),
        "longest an idle worker sleeps before looking for due jobs again, seconds",
    ),
    "heartbeat_interval": SettingSpec(
        1.0,
        _number(float, 0.05, 300, unit=" s"),
        "how often workers report they are alive, seconds",
    ),
    "lease": SettingSpec(
        30.0,
        _number(float, 1, DAY, unit=" s"),
        "a worker silent for this long is presumed lost and its job is taken back, seconds",
    ),
    "priority_aging": SettingSpec(
        0.0,
        _number(float, 0, 1e6, unit=" per minute"),
        "priority points a due job gains per minute it waits (0: strict priority)",
    ),
    "max_log_bytes": SettingSpec(
        10 * 1024 * 1024,
        _number(int, 1024, 10 * 1024**3, unit=" bytes"),
        "output kept per attempt in its log file; the rest is dropped",
    ),
    "keep_completed": SettingSpec(
        7 * DAY,
        _keep,
        "completed jobs (attempts, logs) are deleted by workers this long after they end "
        "('none': keep forever)",
    ),
    "keep_dead": SettingSpec(
        30 * DAY,
        _keep,
        "dead jobs (the DLQ) are deleted by workers this long after they end "
        "('none': keep forever)",
    ),
    "max_logs_total": SettingSpec(
        1024**3,
        _number(int, 1024 * 1024, 2**50, unit=" bytes"),
        "cap on the logs directory; past it the oldest ended attempts' log files go first "
        "(their last 4 KB stay in the database)",
    ),
    "on_completed": SettingSpec(
        None,
        _hook,
        "shell command a worker runs after a job completes (QUEUECTL_JOB_* set; 'none': no hook)",
    ),
    "on_dead": SettingSpec(
        None,
        _hook,
        "shell command a worker runs after a job dies (QUEUECTL_JOB_* set; 'none': no hook)",
    ),
}


def text(value: Any) -> str:
    """A setting's value as people write it, the same in the CLI, the console and errors:
    ``none`` for no value, numbers without exponents (2592000, not 2.592e+06)."""
    return "none" if value is None else plain_number(value)


def canonical(key: str) -> str:
    name = key.strip().replace("-", "_").lower()
    if name not in SETTINGS:
        raise InvalidInput(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})", field=key)
    return name


def validate(key: str, raw: Any) -> tuple[str, Any]:
    name = canonical(key)
    try:
        return name, SETTINGS[name].parse(raw)
    except ValueError as exc:
        raise InvalidInput(f"bad value {raw!r} for {name}: {exc}", field=name) from None


DEFAULTS = Settings(**{name: spec.default for name, spec in SETTINGS.items()})


#: meta key of the settings' version: a new random token at every change (None: never changed).
VERSION_KEY = "settings_version"


def load() -> Settings:
    """Every setting, stored value or default."""
    stored = {row.key: json.loads(row.value) for row in Setting.select() if row.key in SETTINGS}
    return DEFAULTS._replace(**stored) if stored else DEFAULTS


def load_versioned() -> tuple[str | None, Settings]:
    """(version, settings) as of one moment: compare the version with the one a claim saw."""
    version, stored = None, {}
    for key, value in dialect().execute("settings_versioned").fetchall():
        if key == VERSION_KEY:
            version = value
        elif key in SETTINGS:
            stored[key] = json.loads(value)
    return version, DEFAULTS._replace(**stored) if stored else DEFAULTS


def version() -> str | None:
    """The settings' version alone (one row): cheaper than ``load_versioned`` when unchanged."""
    row = dialect().execute("settings_version").fetchone()
    return row[0] if row else None


def _new_version() -> None:
    """In the changing transaction: workers see another version at their next claim."""
    token = os.urandom(8).hex()
    Meta.insert(key=VERSION_KEY, value=token).on_conflict(
        conflict_target=[Meta.key], update={Meta.value: token}
    ).execute()


def get(key: str) -> Any:
    return getattr(load(), canonical(key))


def set_value(key: str, raw: Any) -> tuple[str, Any]:
    name, value = validate(key, raw)
    with write_transaction():
        Setting.insert(key=name, value=json.dumps(value)).on_conflict(
            conflict_target=[Setting.key], update={Setting.value: json.dumps(value)}
        ).execute()
        _new_version()
        if name == "priority_aging":
            _rerank()
    return name, value


def reset(key: str) -> tuple[str, Any]:
    name = canonical(key)
    with write_transaction():
        Setting.delete().where(Setting.key == name).execute()
        _new_version()
        if name == "priority_aging":
            _rerank()
    return name, SETTINGS[name].default


def _rerank() -> None:
    """A new aging rate applies to the jobs already waiting as if it had always been in force:
    their claim order (``job.rank``) is computed again, in the setting's own transaction."""
    Job.update(rank=Job.priority - SQL(AGING_RATE_SQL) * Job.run_at / 60.0).where(
        Job.state.in_(CLAIMABLE)
    ).execute()


def describe() -> list[dict[str, Any]]:
    values = load()
    return [
        {"key": name, "value": getattr(values, name), "default": spec.default, "help": spec.help}
        for name, spec in SETTINGS.items()
    ]
