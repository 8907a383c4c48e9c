"""Parsing and validating job specs (JSON objects, JSON arrays, JSON Lines, plain commands).

Validation is complete before anything is written: a spec that fails names the key and the
reason in one line, and a bulk input with one bad job enqueues nothing.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, overload

from queuectl_tui.errors import InvalidInput

MAX_COMMAND_BYTES = 64 * 1024
MAX_ID_CHARS = 128
MAX_PRIORITY = 1_000_000
MAX_RETRIES = 100
MAX_TIMEOUT = 30 * 86400.0
MAX_DELAY = 10 * 365 * 86400.0
_QUEUE_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")

MAX_LABEL_CHARS = 200

#: Keys a spec may carry; the record-shape keys are accepted for compatibility and checked.
FIELDS = (
    "id",
    "command",
    "priority",
    "max_retries",
    "timeout",
    "backoff_base",
    "run_at",
    "delay",
    "queue",
    "after",
    "label",
)
RECORD_KEYS = ("scheduled_at", "state", "attempts", "created_at", "updated_at")


def parse_text(text: str) -> list[dict[str, Any]]:
    """Read one object, an array of objects, or JSON Lines; return raw (unvalidated) dicts."""
    return [raw for _, raw in read_specs(text.splitlines(keepends=True))]


def read_specs(lines: Iterable[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, raw dict) from one object, an array of objects, or JSON Lines.

    JSON Lines stream: one line at a time, so memory does not grow with the input. A text whose
    first line is not a whole JSON value (a pretty-printed object or array) is read whole.
    ``where`` names the job in messages ("line 7", "job 2 of 3", "" for a lone object).
    """
    numbered = ((n, line) for n, line in enumerate(lines, 1) if line and not line.isspace())
    first = next(numbered, None)
    if first is None:
        raise InvalidInput("no job spec given (empty input)")
    try:
        data = decode(first[1])
    except NotJSON:  # not one value per line: the whole text is one JSON value
        text = first[1] + "".join(line for _, line in numbered)
        try:
            data = decode(text)
        except InvalidInput as exc:
            raise InvalidInput(f"invalid JSON: {exc}") from None
        yield from _whole(data)
        return
    except InvalidInput as exc:  # JSON, but refused (a key twice, a number too long, ...)
        raise InvalidInput(f"invalid JSON on line {first[0]}: {exc}") from None
    second = next(numbered, None)
    if second is None:
        yield from _whole(data)
        return
    for number, line in itertools.chain([first, second], numbered):
        if number != first[0]:
            try:
                data = _decode_line(line)
            except InvalidInput as exc:
                raise InvalidInput(f"invalid JSON on line {number}: {exc}") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"line {number}: a job spec must be a JSON object")
        yield f"line {number}", data


def _whole(data: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(data, dict):
        yield "", data
    elif isinstance(data, list):
        if not data:
            raise InvalidInput("the JSON array holds no job specs")
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise InvalidInput(f"item {index} of the array: a job spec must be a JSON object")
        for index, item in enumerate(data):
            yield f"job {index + 1} of {len(data)}", item
    else:
        raise InvalidInput(f"a job spec must be a JSON object, not {type(data).__name__}")


def decode(text: str) -> Any:
    """json.loads, but every way it can fail is InvalidInput with a one-line reason.

    Duplicate keys are refused (json would keep the last one silently); numbers beyond
    Python's integer digit limit and nesting beyond the recursion limit are input faults too.
    """
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise NotJSON(str(exc)) from None
    except ValueError:  # int() refused a number: the only other ValueError json raises
        raise InvalidInput(
            f"a number has more than {sys.get_int_max_str_digits()} digits"
        ) from None
    except RecursionError:
        raise InvalidInput("nested too deeply") from None


def _decode_line(line: str) -> Any:
    """decode() without json's Python wrapper around its C scanner (a quarter less time for a
    usual JSON Line); anything unusual goes to decode(), which says what is wrong."""
    try:
        data, end = _SCAN_ONCE(line, 0)
    except Exception:
        return decode(line)
    return decode(line) if line[end:].strip(" \t\n\r") else data


class NotJSON(InvalidInput):
    """Text that is not JSON at all (as opposed to JSON this program refuses)."""


def is_json(text: str) -> bool:
    """Whether ``text`` is one JSON value, however deep or long its numbers (nothing is built)."""
    try:
        json.loads(text, parse_int=len, parse_float=len)
    except ValueError:
        return False
    except RecursionError:
        return _is_json_flat(text)
    return True


_JSON_TOKEN = re.compile(
    r"""[ \t\n\r]*(?:([][{}:,])|("(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*")"""
    r"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|true|false|null|NaN|-?Infinity))"
)


def _is_json_flat(text: str) -> bool:
    """The JSON grammar checked with an explicit stack: for input nested deeper than json can."""
    stack: list[str] = []  # the open brackets
    expect = "value"  # value, value_or_close, key, key_or_close, colon, comma_or_close, end
    pos = 0
    while (match := _JSON_TOKEN.match(text, pos)) is not None:
        pos = match.end()
        punct, string, scalar = match.groups()
        if punct in ("[", "{") and expect in ("value", "value_or_close"):
            stack.append(punct)
            expect = "value_or_close" if punct == "[" else "key_or_close"
            continue
        if punct in ("]", "}"):
            opener, empty = ("[", "value_or_close") if punct == "]" else ("{", "key_or_close")
            if not stack or stack.pop() != opener or expect not in ("comma_or_close", empty):
                return False
        elif punct == "," and expect == "comma_or_close":
            expect = "value" if stack[-1] == "[" else "key"
            continue
        elif punct == ":" and expect == "colon":
            expect = "value"
            continue
        elif string is not None and expect in ("key", "key_or_close"):
            expect = "colon"
            continue
        elif punct is not None or expect not in ("value", "value_or_close"):
            return False
        expect = "comma_or_close" if stack else "end"  # a value (or a closed one) is complete
    return expect == "end" and not text[pos:].strip(" \t\n\r")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise InvalidInput(f"duplicate key {key!r}")
            seen.add(key)
    return data


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)  # one, not one per json.loads
# The C scanner the decoder made for itself (an instance attribute json's stubs leave out).
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = vars(_DECODER)["scan_once"]


def parse_object(text: str) -> dict[str, Any]:
    """A single JSON object (the SPEC argument of ``enqueue``)."""
    try:
        data = decode(text)
    except NotJSON as exc:
        raise InvalidInput(
            f"invalid JSON: {exc} (to enqueue a shell command that starts with '{{', use --command)"
        ) from None
    except InvalidInput as exc:
        raise InvalidInput(f"invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"a job spec must be a JSON object, not {type(data).__name__}")
    return data


def normalize(
    raw: dict[str, Any], now: float | None = None, *, partial: bool = False
) -> dict[str, Any]:
    """Validate one raw spec; return only the fields given, typed and checked. ``partial``:
    some fields of a job (``edit``, ``dlq retry`` overrides, one form field), no command needed.
    An error names its field (``InvalidInput.field``)."""
    now = time.time() if now is None else now
    spec: dict[str, Any] = {}
    for key, value in raw.items():
        name = _NAMES.get(key)
        if name is None and (
            not isinstance(key, str) or (name := _NAMES.get(key.replace("-", "_"))) is None
        ):
            raise InvalidInput(
                f"unknown key {key!r} (allowed: {', '.join(FIELDS)})",
                field=key if isinstance(key, str) else None,
            )
        if value is None and name in _NULLABLE:
            continue
        if name == "run_at" and "run_at" in spec:
            raise InvalidInput("give run_at or scheduled_at, not both", field="run_at")
        try:
            checked = _CHECKS[name](value)
        except InvalidInput as exc:
            exc.field = exc.field or name
            raise
        if checked is not None or name in CLEARABLE:
            spec[name] = checked
    if "command" not in spec and not partial:
        raise InvalidInput("the job spec has no command", field="command")
    if "delay" in spec:
        if "run_at" in spec:
            raise InvalidInput("give run_at or delay, not both", field="delay")
        spec["run_at"] = now + spec.pop("delay")
    return spec


def _fixed(name: str, want: Any) -> Callable[[Any], None]:
    """A record-shape key that a new job may carry only with its initial value (not stored)."""

    def check(value: Any) -> None:
        if value != want or isinstance(value, bool):
            raise InvalidInput(f"a new job's {name} must be {_json(want)}, not {_json(value)}")

    return check


def _checked_only(_: Any) -> None:
    return None


#: Accepted key -> field (a '-' may stand for '_': see normalize); a dict: one lookup per key.
_NAMES = {**{name: name for name in FIELDS + RECORD_KEYS}, "scheduled_at": "run_at"}
_NULLABLE = {"id", "run_at", "delay", "created_at", "updated_at", "after"}
#: Optional fields whose "no value" is a value of its own, kept as None: a spec's
#: ``"timeout": null`` (or ``"none"``) means no time limit, whatever ``default_timeout`` says
#: (leaving the key out takes the default); ``edit`` clears these with it.
CLEARABLE = frozenset({"timeout", "label"})


def check_command(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"command must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidInput("command is empty")
    if "\x00" in value:
        raise InvalidInput("command contains a NUL byte")
    try:  # lone surrogates: bytes that were not UTF-8 (e.g. piped in), which nothing can store
        size = len(value) if value.isascii() else len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidInput("command is not valid UTF-8 text") from None
    if size > MAX_COMMAND_BYTES:
        raise InvalidInput(f"command is longer than {MAX_COMMAND_BYTES} bytes")
    return value


def check_after(value: Any) -> list[str] | None:
    """``after``: the ids of jobs this one waits for, each once, in the order given (None: none)."""
    if not isinstance(value, list):
        raise InvalidInput(f"after must be a list of job ids, not {type(value).__name__}")
    ids: dict[str, None] = {}
    for item in value:
        if not isinstance(item, str) or not item:
            raise InvalidInput(f"after must hold non-empty job id strings, not {item!r}")
        ids[check_id(item)] = None
    return list(ids) or None


def check_label(value: Any) -> str | None:
    """A free-text tag shown beside the id (pueue's ``--label``); '' or null: none."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"label must be a string, not {_json(value)}")
    if not value.strip():
        return None
    if len(value) > MAX_LABEL_CHARS:
        raise InvalidInput(f"label must be at most {MAX_LABEL_CHARS} characters")
    if not value.isprintable():  # one line, nothing a terminal would obey
        raise InvalidInput(f"label {value!r} contains control characters")
    return value


def check_queue(value: Any) -> str:
    if type(value) is str and value in _GOOD_QUEUES:  # a bulk input names a few queues
        return value
    if not isinstance(value, str) or not _QUEUE_RE.match(value):
        raise InvalidInput(f"bad queue {value!r}: use 1-64 letters, digits, '_', '-', '.', ':'")
    if len(_GOOD_QUEUES) < 1000:
        _GOOD_QUEUES.add(value)
    return value


_GOOD_QUEUES: set[str] = set()


def check_id(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"id must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidInput(f"id must be 1 to {MAX_ID_CHARS} characters")
    if not value.isprintable() or " " in value:  # the only printable whitespace is " "
        raise InvalidInput(f"id {value!r} contains whitespace or control characters")
    return value


def _int(name: str, value: Any, low: int, high: int) -> int:
    if type(value) is int and low <= value <= high:  # the usual case, in one test (bulk input)
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not math.isfinite(value))
        or value != int(value)
    ):
        raise InvalidInput(f"{name} must be a whole number, not {_json(value)}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, not {_json(value)}")
    return int(value)


def _float(name: str, value: Any, low: float, high: float) -> float:
    if (type(value) is float or type(value) is int) and low <= value <= high:  # (NaN fails <=)
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a number, not {_json(value)}")
    if not low <= value <= high:
        raise InvalidInput(
            f"{name} must be between {plain_number(low)} and {plain_number(high)}, "
            f"not {_json(value)}"
        )
    return float(value)


#: A duration: parts of a number and a unit, largest unit first (``2h30m``, ``1d``, ``1.5h``).
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
DURATION_HELP = "a number of seconds or a duration such as 90s, 15m, 2h30m, 1d"


@overload
def parse_seconds(value: Any, name: str = ..., *, none: Literal[False] = ...) -> float: ...
@overload
def parse_seconds(value: Any, name: str = ..., *, none: bool) -> float | None: ...
def parse_seconds(value: Any, name: str = "seconds", *, none: bool = False) -> float | None:
    """Seconds from a number or a text: ``90``, ``1.5``, or a duration ``90s``, ``15m``,
    ``2h30m``, ``1d``, ``1w`` (plain numbers stay seconds). ``none``: ``none`` (and null)
    means no value. The one parser of every option, spec key, setting and form field that
    takes seconds; ranges are the caller's."""
    if none and (value is None or (isinstance(value, str) and value.strip().lower() == "none")):
        return None
    if type(value) is float or type(value) is int:  # a JSON number (range checked by the caller)
        if math.isfinite(value):
            return float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if _PLAIN_NUMBER.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return number
        elif text:
            parts = _DURATION_PART.findall(text)
            units = [unit for _, unit in parts]
            if "".join(amount + unit for amount, unit in parts) == text and units == sorted(
                set(units), key=list(_UNIT_SECONDS).index
            ):
                total = sum(float(amount) * _UNIT_SECONDS[unit] for amount, unit in parts)
                if math.isfinite(total):
                    return total
    raise InvalidInput(
        f"{name} must be {DURATION_HELP}{' (or none)' if none else ''}, not {_json(value)}"
    )


def _seconds(name: str, value: Any, low: float, high: float, *, none: bool = False) -> float | None:
    """A field in seconds: a number or a duration text, within [low, high]."""
    if (type(value) not in (str, float, int)) and (value is not None or not none):
        return _float(name, value, low, high)  # says "must be a number, not true"
    seconds = parse_seconds(value, name, none=none)
    if seconds is None:
        return None
    if not low <= seconds <= high:
        plain = isinstance(value, str) and _PLAIN_NUMBER.fullmatch(value.strip())
        raise InvalidInput(
            f"{name} must be between {plain_number(low)} and {plain_number(high)}, "
            f"not {_json(seconds if plain else value)}"
        )  # -5 as given, "40d"
    return seconds


def _json(value: Any) -> str:
    """A value from a job spec as it was written in JSON (true, "high", null), not as Python;
    a whole number as one (-5, not -5.0: a command-line option may have made it a float)."""
    if type(value) is float and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True)
    except (TypeError, ValueError):
        return repr(value)


def plain_number(value: float) -> str:
    """A number in plain notation, as people write it: 31536000 (not 3.1536e+08), 2, 0.5."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e18:
        return str(int(value))
    return str(value) if not isinstance(value, float) else f"{value:.15f}".rstrip("0").rstrip(".")


def parse_time(value: Any, name: str = "run_at") -> float:
    """ISO-8601 to UNIX seconds; a time without a zone is local time."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be an ISO-8601 string, not {_json(value)}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{name} {value!r} is not an ISO-8601 time (e.g. 2030-01-31T09:00:00Z)"
        ) from None
    if moment.year < 1970:
        raise InvalidInput(f"{name} {value!r} is before 1970")
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()
        stamp = moment.timestamp()
        datetime.fromtimestamp(stamp, UTC)  # printable: year 9999 at the latest, in UTC
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(f"{name} {value!r} is out of range") from None
    return stamp


#: Field -> its check: the value to store, or None for a record-shape key that is not stored.
#: The functions themselves (no lambda around them): normalize calls one per key of each job.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "command": check_command,
    "id": check_id,
    "queue": check_queue,
    "priority": lambda v: _int("priority", v, -MAX_PRIORITY, MAX_PRIORITY),
    "max_retries": lambda v: _int("max_retries", v, 0, MAX_RETRIES),
    "timeout": lambda v: _seconds("timeout", v, 0.001, MAX_TIMEOUT, none=True),
    "backoff_base": lambda v: _float("backoff_base", v, 1, 100),
    "delay": lambda v: _seconds("delay", v, 0, MAX_DELAY),
    "after": check_after,
    "label": check_label,
    "run_at": lambda v: parse_time(v, "run_at"),
    "created_at": lambda v: _checked_only(parse_time(v, "created_at")),
    "updated_at": lambda v: _checked_only(parse_time(v, "updated_at")),
    "state": _fixed("state", "pending"),
    "attempts": _fixed("attempts", 0),
}


def iso(ts: float | None) -> str | None:
    """UNIX seconds to ISO-8601 UTC with a Z, millisecond precision."""
    if ts is None:
        return None
    text = datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")
