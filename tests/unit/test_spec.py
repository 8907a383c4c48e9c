"""Job spec parsing and validation (no database needed)."""

from __future__ import annotations

import pytest

from queuectl_tui import spec
from queuectl_tui.errors import InvalidInput

NOW = 1_800_000_000.0


def test_parse_text_reads_object_array_and_json_lines():
    assert spec.parse_text('{"command": "a"}') == [{"command": "a"}]
    assert spec.parse_text('[{"command": "a"}, {"command": "b"}]') == [
        {"command": "a"},
        {"command": "b"},
    ]
    assert spec.parse_text('{"command": "a"}\n\n{"command": "b"}\n') == [
        {"command": "a"},
        {"command": "b"},
    ]


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ('{"command": ', "invalid JSON"),
        ("[]", "no job specs"),
        ('["echo hi"]', "item 0"),
        ("42", "not int"),
        ('{"command": "a"}\n{"command": ', "line 2"),
        ('{"command": "a"}\n[1]', "line 2"),
    ],
)
def test_parse_text_rejects_bad_input_with_a_reason(text, words):
    with pytest.raises(InvalidInput, match=words):
        spec.parse_text(text)


def test_normalize_keeps_given_fields_typed():
    out = spec.normalize(
        {
            "id": "j1",
            "command": "echo hi",
            "priority": 5,
            "max-retries": 2,
            "timeout": 1.5,
            "backoff_base": 1,
            "queue": "q.1",
        },
        now=NOW,
    )
    assert out == {
        "id": "j1",
        "command": "echo hi",
        "priority": 5,
        "max_retries": 2,
        "timeout": 1.5,
        "backoff_base": 1.0,
        "queue": "q.1",
    }


def test_normalize_accepts_the_full_record_shape():
    out = spec.normalize(
        {
            "id": "j1",
            "command": "true",
            "state": "pending",
            "attempts": 0,
            "max_retries": 3,
            "created_at": "2030-01-01T00:00:00Z",
            "updated_at": "2030-01-01T00:00:00Z",
        },
        now=NOW,
    )
    assert out == {"id": "j1", "command": "true", "max_retries": 3}


def test_schedule_keys():
    assert spec.normalize({"command": "x", "delay": 30}, now=NOW)["run_at"] == NOW + 30
    at = spec.normalize({"command": "x", "run_at": "2030-01-01T00:00:00Z"}, now=NOW)["run_at"]
    assert at == 1893456000.0
    assert (
        spec.normalize({"command": "x", "scheduled_at": "2030-01-01T00:00:00+01:00"}, now=NOW)[
            "run_at"
        ]
        == at - 3600
    )


def test_time_without_zone_is_local_time(monkeypatch):
    import time

    monkeypatch.setenv("TZ", "XXX-05:30")  # POSIX TZ: local = UTC+05:30
    time.tzset()
    try:
        assert spec.parse_time("2030-01-01T00:00:00") == 1893456000.0 - 5.5 * 3600
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(
    "raw, words",
    [
        ({}, "no command"),
        ({"command": ""}, "empty"),
        ({"command": "   "}, "empty"),
        ({"command": 5}, "must be a string"),
        ({"command": ["ls"]}, "must be a string"),
        ({"command": "a\x00b"}, "NUL"),
        ({"command": "x" * (spec.MAX_COMMAND_BYTES + 1)}, "longer"),
        ({"command": "x", "colour": "red"}, "unknown key 'colour'"),
        ({"command": "x", "id": ""}, "id must be"),
        ({"command": "x", "id": "a b"}, "whitespace"),
        ({"command": "x", "id": 7}, "id must be a string"),
        ({"command": "x", "priority": "high"}, "priority must be a whole number"),
        ({"command": "x", "priority": 1.5}, "whole number"),
        ({"command": "x", "priority": True}, "whole number"),
        ({"command": "x", "priority": float("inf")}, "priority"),
        ({"command": "x", "priority": float("nan")}, "priority"),
        ({"command": "x", "max_retries": -1}, "between 0 and 100"),
        ({"command": "x", "max_retries": float("nan")}, "max_retries"),
        ({"command": "x", "max_retries": 1e300}, "between"),
        ({"command": "x", "timeout": 0}, "timeout must be between"),
        ({"command": "x", "timeout": float("inf")}, "timeout must be a number"),
        ({"command": "x", "timeout": "ten"}, "timeout must be a number of seconds or a duration"),
        ({"command": "x", "timeout": "30m2h"}, "timeout must be a number of seconds"),
        ({"command": "x", "delay": "40000d"}, "delay must be between"),
        ({"command": "x", "label": 5}, "label must be a string"),
        ({"command": "x", "label": "two\nlines"}, "control characters"),
        ({"command": "x", "backoff_base": 0.5}, "backoff_base"),
        ({"command": "x", "delay": -1}, "delay"),
        ({"command": "x", "queue": "has space"}, "bad queue"),
        ({"command": "x", "run_at": "tomorrow"}, "not an ISO-8601 time"),
        ({"command": "x", "run_at": 1893456000}, "ISO-8601 string"),
        ({"command": "x", "run_at": "1900-01-01T00:00:00Z"}, "before 1970"),
        ({"command": "x", "run_at": "2030-01-01T00:00:00Z", "delay": 5}, "not both"),
        (
            {
                "command": "x",
                "run_at": "2030-01-01T00:00:00Z",
                "scheduled_at": "2030-01-01T00:00:00Z",
            },
            "not both",
        ),
        ({"command": "x", "state": "completed"}, 'state must be "pending"'),
        ({"command": "x", "attempts": 2}, "attempts must be 0"),
        ({"command": "x", "attempts": False}, "attempts must be 0"),
        ({"command": "x", "created_at": "yesterday"}, "created_at"),
    ],
)
def test_normalize_rejects_bad_specs_naming_the_problem(raw, words):
    with pytest.raises(InvalidInput, match=words):
        spec.normalize(raw, now=NOW)


def test_iso_is_utc_with_milliseconds():
    assert spec.iso(1893456000.25) == "2030-01-01T00:00:00.250Z"
    assert spec.iso(None) is None


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"command": "true", "priority": "high"}, "priority"),
        ({"command": "true", "max-retries": -1}, "max_retries"),
        ({"command": "true", "queue": "a b"}, "queue"),
        ({"command": "true", "run_at": "soon"}, "run_at"),
        ({"command": "true", "delay": 5, "run_at": "2030-01-01T00:00:00Z"}, "delay"),
        ({"command": ""}, "command"),
        ({"priority": 1}, "command"),
        ({"command": "true", "colour": "red"}, "colour"),
    ],
)
def test_an_invalid_spec_names_its_field(raw, field):
    with pytest.raises(InvalidInput) as caught:
        spec.normalize(raw)
    assert caught.value.field == field


def test_partial_specs_need_no_command():
    assert spec.normalize({"timeout": 5, "max_retries": 0}, partial=True) == {
        "timeout": 5.0,
        "max_retries": 0,
    }
    with pytest.raises(InvalidInput) as caught:
        spec.normalize({"timeout": -1}, partial=True)
    assert caught.value.field == "timeout"


def test_values_seen_before_are_checked_as_strictly():
    """Queue names checked once are remembered (a bulk input repeats a few): the same text is
    accepted again, anything else is still judged in full, with the same message."""
    assert [spec.normalize({"command": "x", "queue": "emails"})["queue"] for _ in range(3)] == [
        "emails"
    ] * 3
    for value, words in [
        (["emails"], "bad queue ['emails']"),
        ({"emails": 1}, "bad queue"),
        ("emails ", "bad queue 'emails '"),
        (7, "bad queue 7"),
    ]:
        with pytest.raises(InvalidInput, match=words.replace("[", r"\[").replace("]", r"\]")):
            spec.normalize({"command": "x", "queue": value})
    assert spec.normalize({"command": "échos é", "queue": "emails"})["command"] == "échos é"
    with pytest.raises(InvalidInput, match="longer than"):
        spec.normalize({"command": "é" * (spec.MAX_COMMAND_BYTES // 2 + 1)})


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90", 90),
        ("1.5", 1.5),
        ("90s", 90),
        ("15m", 900),
        ("2h30m", 9000),
        ("1d", 86400),
        ("1.5h", 5400),
        ("1w2d", 9 * 86400),
        (" 2H ", 7200),
        (45, 45),
        (2.5, 2.5),
    ],
)
def test_durations_are_seconds_wherever_seconds_are_taken(text, seconds):
    assert spec.parse_seconds(text) == seconds
    assert spec.normalize({"command": "x", "timeout": text})["timeout"] == seconds
    assert spec.normalize({"command": "x", "delay": text}, now=NOW)["run_at"] == NOW + seconds


@pytest.mark.parametrize("text", ["", "h", "5x", "-1h", "30m2h", "1h1h", "nan", "inf", "1e999"])
def test_what_is_not_a_duration_is_refused(text):
    with pytest.raises(InvalidInput, match="a number of seconds or a duration"):
        spec.parse_seconds(text)


def test_a_null_timeout_means_no_time_limit_and_a_missing_one_the_default():
    """Leaving "timeout" out takes default_timeout (engine); null or "none" is no limit."""
    assert "timeout" not in spec.normalize({"command": "x"})
    for value in (None, "none", "NONE"):
        assert spec.normalize({"command": "x", "timeout": value}) == {
            "command": "x",
            "timeout": None,
        }
    assert spec.normalize({"timeout": None, "label": ""}, partial=True) == {
        "timeout": None,
        "label": None,
    }


def test_whole_numbers_are_written_whole_in_errors():
    with pytest.raises(InvalidInput, match=r"not -5$"):
        spec.normalize({"command": "x", "timeout": -5.0})
    with pytest.raises(InvalidInput, match=r"not -5$"):
        spec.normalize({"command": "x", "timeout": "-5"})
    with pytest.raises(InvalidInput, match=r"not 1000$"):
        spec.normalize({"command": "x", "max_retries": 1000.0})
