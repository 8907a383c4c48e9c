"""Parsing and validating job specs (JSON objects, JSON arrays, JSON Lines, plain commands).

Validation is complete before anything is written: a spec that fails names the key and the
reason in one line, and a bulk input with one bad job enqueues nothing.
"""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timezone
from typing import Any

from queuectl_tui.errors import InvalidInput

MAX_COMMAND_BYTES = 64 * 1024
MAX_ID_CHARS = 128
MAX_PRIORITY = 1_000_000
MAX_RETRIES = 100
MAX_TIMEOUT = 30 * 86400.0
MAX_DELAY = 10 * 365 * 86400.0
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

#: Keys a spec may carry; the record-shape keys are accepted for compatibility and checked.
FIELDS = ("id", "command", "priority", "max_retries", "timeout", "backoff_base", "run_at",
          "delay", "queue")
RECORD_KEYS = ("scheduled_at", "state", "attempts", "created_at", "updated_at")


def parse_text(text: str) -> list[dict[str, Any]]:
    """Read one object, an array of objects, or JSON Lines; return raw (unvalidated) dicts."""
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("no job spec given (empty input)")
    try:
        data = json.loads(stripped)
    except json.JSONDecodeError as first_error:
        lines = [line for line in stripped.splitlines() if line.strip()]
        if len(lines) < 2:
            raise InvalidInput(f"invalid JSON: {first_error}") from None
        data = []
        for number, line in enumerate(lines, 1):
            try:
                data.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"invalid JSON on line {number}: {exc}") from None
            if not isinstance(data[-1], dict):
                raise InvalidInput(f"line {number}: a job spec must be a JSON object")
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        if not data:
            raise InvalidInput("the JSON array holds no job specs")
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvalidInput(f"item {index} of the array: a job spec must be a JSON object")
        return data
    raise InvalidInput(f"a job spec must be a JSON object, not {type(data).__name__}")


def parse_object(text: str) -> dict[str, Any]:
    """A single JSON object (the SPEC argument of ``enqueue``)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"invalid JSON: {exc} (to enqueue a shell command that starts with '{{', use --command)"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"a job spec must be a JSON object, not {type(data).__name__}")
    return data


def normalize(raw: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Validate one raw spec; return only the fields given, typed and checked."""
    now = time.time() if now is None else now
    spec: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str):
            raise InvalidInput(f"unknown key {key!r}")
        name = key.replace("-", "_")
        if name == "scheduled_at":
            name = "run_at"
        if name not in FIELDS and name not in RECORD_KEYS:
            raise InvalidInput(f"unknown key {key!r} (allowed: {', '.join(FIELDS)})")
        if name == "run_at" and "run_at" in spec and value is not None:
            raise InvalidInput("give run_at or scheduled_at, not both")
        checked = _check(name, value, now)
        if checked is not None and name in FIELDS:
            spec[name] = checked
    if "command" not in spec:
        raise InvalidInput("the job spec has no command")
    if "delay" in spec:
        if "run_at" in spec:
            raise InvalidInput("give run_at or delay, not both")
        spec["run_at"] = now + spec.pop("delay")
    return spec


def _check(name: str, value: Any, now: float) -> Any:
    if value is None and name in ("id", "timeout", "run_at", "delay", "created_at", "updated_at"):
        return None
    if name == "command":
        return check_command(value)
    if name == "id":
        return check_id(value)
    if name == "queue":
        return check_queue(value)
    if name == "priority":
        return _int(name, value, -MAX_PRIORITY, MAX_PRIORITY)
    if name == "max_retries":
        return _int(name, value, 0, MAX_RETRIES)
    if name == "timeout":
        return _float(name, value, 0.001, MAX_TIMEOUT)
    if name == "backoff_base":
        return _float(name, value, 1, 100)
    if name == "delay":
        return _float(name, value, 0, MAX_DELAY)
    if name == "run_at":
        return parse_time(value, name)
    if name in ("created_at", "updated_at"):
        parse_time(value, name)
        return None
    if name == "state":
        if value != "pending":
            raise InvalidInput(f"a new job's state must be 'pending', not {value!r}")
        return None
    if name == "attempts":
        if value != 0 or isinstance(value, bool):
            raise InvalidInput(f"a new job's attempts must be 0, not {value!r}")
        return None
    raise AssertionError(name)


def check_command(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"command must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInput("command is empty")
    if "\x00" in value:
        raise InvalidInput("command contains a NUL byte")
    try:  # lone surrogates: bytes that were not UTF-8 (e.g. piped in), which nothing can store
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("command is not valid UTF-8 text") from None
    if size > MAX_COMMAND_BYTES:
        raise InvalidInput(f"command is longer than {MAX_COMMAND_BYTES} bytes")
    return value


def check_queue(value: Any) -> str:
    if not isinstance(value, str) or not _QUEUE_RE.match(value):
        raise InvalidInput(f"bad queue {value!r}: use 1-64 letters, digits, '_', '-', '.', ':'")
    return value


def check_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"id must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"id must be 1 to {MAX_ID_CHARS} characters")
    if any(not ch.isprintable() or ch.isspace() for ch in value):
        raise InvalidInput(f"id {value!r} contains whitespace or control characters")
    return value


def _int(name: str, value: Any, low: int, high: int) -> int:
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and not math.isfinite(value)) or value != int(value)):
        raise InvalidInput(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, not {value!r}")
    return int(value)


def _float(name: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number, not {value!r}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low:g} and {high:g}, not {value!r}")
    return float(value)


def parse_time(value: Any, name: str = "run_at") -> float:
    """ISO-8601 to UNIX seconds; a time without a zone is local time."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an ISO-8601 string, not {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(f"{name} {value!r} is not an ISO-8601 time (e.g. 2030-01-31T09:00:00Z)") from None
    if moment.year < 1970:
        raise InvalidInput(f"{name} {value!r} is before 1970")
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()
        stamp = moment.timestamp()
        datetime.fromtimestamp(stamp, timezone.utc)  # printable: year 9999 at the latest, in UTC
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(f"{name} {value!r} is out of range") from None
    return stamp


def iso(ts: float | None) -> str | None:
    """UNIX seconds to ISO-8601 UTC with a Z, millisecond precision."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def ago(seconds: float) -> str:
    """A compact span, two units at most, truncated to whole seconds: 5s, 3m05s, 2h03m, 1d02h."""
    total = int(abs(seconds))
    if total < 60:
        return f"{total}s"
    if total < 3600:
        return f"{total // 60}m{total % 60:02d}s"
    if total < 86400:
        return f"{total // 3600}h{total % 3600 // 60:02d}m"
    return f"{total // 86400}d{total % 86400 // 3600:02d}h"
