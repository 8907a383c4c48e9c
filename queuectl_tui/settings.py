"""Queue settings: their defaults, their validation, and their persistence in the database.

Values are validated when they are set, so that a worker never meets a bad one. Keys accept
either spelling (``max-retries`` or ``max_retries``); the canonical form uses underscores.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, NamedTuple

from queuectl_tui.errors import InvalidInput
from peewee import SQL

from queuectl_tui.db import write_transaction
from queuectl_tui.models import AGING_RATE_SQL, CLAIMABLE, Job, Setting
from queuectl_tui.spec import plain_number


class Spec(NamedTuple):  # not a dataclass: importing and building one is ~1 ms of every start
    default: Any
    parse: Callable[[Any], Any]
    help: str


def _number(kind: type, low: float, high: float, *, optional: bool = False, unit: str = ""):
    def parse(raw: Any) -> Any:
        if optional and (raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null", "", "0"))):
            return None
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        try:
            value = kind(raw.strip()) if isinstance(raw, str) else kind(raw)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"expected {'a whole number' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a finite number")
        if kind is int and isinstance(raw, float) and raw != int(raw):
            raise ValueError("expected a whole number")
        if not low <= value <= high:
            raise ValueError(f"must be between {text(low)} and {text(high)}{unit}")
        return value

    return parse


DAY = 86400.0
SETTINGS: dict[str, Spec] = {
    "max_retries": Spec(3, _number(int, 0, 100), "retries after the first run before a job goes to the DLQ"),
    "backoff_base": Spec(2.0, _number(float, 1, 100), "after failure k a job waits backoff_base ** k seconds"),
    "max_backoff": Spec(3600.0, _number(float, 0, 30 * DAY, unit=" s"), "cap on any single backoff wait, seconds"),
    "default_timeout": Spec(None, _number(float, 0.001, 30 * DAY, optional=True, unit=" s"),
                            "time limit for jobs that set none, seconds ('none' for no limit)"),
    "poll_interval": Spec(1.0, _number(float, 0.01, 60, unit=" s"),
                          "longest an idle worker sleeps before looking for due jobs again, seconds"),
    "heartbeat_interval": Spec(1.0, _number(float, 0.05, 300, unit=" s"), "how often workers report they are alive, seconds"),
    "lease": Spec(30.0, _number(float, 1, DAY, unit=" s"),
                  "a worker silent for this long is presumed lost and its job is taken back, seconds"),
    "priority_aging": Spec(0.0, _number(float, 0, 1e6, unit=" per minute"),
                           "priority points a due job gains per minute it waits (0: strict priority)"),
    "max_log_bytes": Spec(10 * 1024 * 1024, _number(int, 1024, 10 * 1024**3, unit=" bytes"),
                          "output kept per attempt in its log file; the rest is dropped"),
}


def text(value: Any) -> str:
    """A setting's value as people write it, the same in the CLI, the console and errors:
    ``none`` for no value, numbers without exponents (2592000, not 2.592e+06)."""
    return "none" if value is None else plain_number(value)


def canonical(key: str) -> str:
    name = key.strip().replace("-", "_").lower()
    if name not in SETTINGS:
        raise InvalidInput(f"unknown setting {key!r} (known: {', '.join(SETTINGS)})")
    return name


def validate(key: str, raw: Any) -> tuple[str, Any]:
    name = canonical(key)
    try:
        return name, SETTINGS[name].parse(raw)
    except ValueError as exc:
        raise InvalidInput(f"bad value {raw!r} for {name}: {exc}") from None


def load() -> dict[str, Any]:
    """Every setting, stored value or default."""
    values = {name: spec.default for name, spec in SETTINGS.items()}
    for row in Setting.select():
        if row.key in values:
            values[row.key] = json.loads(row.value)
    return values


def get(key: str) -> Any:
    return load()[canonical(key)]


def set_value(key: str, raw: Any) -> tuple[str, Any]:
    name, value = validate(key, raw)
    with write_transaction():
        Setting.insert(key=name, value=json.dumps(value)).on_conflict(
            conflict_target=[Setting.key], update={Setting.value: json.dumps(value)}).execute()
        if name == "priority_aging":
            _rerank()
    return name, value


def reset(key: str) -> tuple[str, Any]:
    name = canonical(key)
    with write_transaction():
        Setting.delete().where(Setting.key == name).execute()
        if name == "priority_aging":
            _rerank()
    return name, SETTINGS[name].default


def _rerank() -> None:
    """A new aging rate applies to the jobs already waiting as if it had always been in force:
    their claim order (``job.rank``) is computed again, in the setting's own transaction."""
    Job.update(rank=Job.priority - SQL(AGING_RATE_SQL) * Job.run_at / 60.0).where(
        Job.state.in_(CLAIMABLE)).execute()


def describe() -> list[dict[str, Any]]:
    values = load()
    return [
        {"key": name, "value": values[name], "default": spec.default, "help": spec.help}
        for name, spec in SETTINGS.items()
    ]
