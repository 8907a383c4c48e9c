"""The presentation layer both faces use: one spelling of times, spans and sizes."""

from __future__ import annotations

import pytest

from queuectl_tui import present


@pytest.mark.parametrize("seconds, text", [
    (None, "-"), (0, "0s"), (5.9, "5s"), (185, "3m05s"), (7380, "2h03m"), (93600, "1d02h"),
    (-185, "3m05s"),
])
def test_ago_is_two_units_at_most(seconds, text):
    assert present.ago(seconds) == text


@pytest.mark.parametrize("value, text", [
    (None, "-"), (1.234, "1.23s"), (12.34, "12.3s"), (125, "2m05s"),
])
def test_seconds_keep_their_precision_below_a_minute(value, text):
    assert present.seconds(value) == text


def test_size_in_binary_units():
    assert [present.size(n) for n in (None, 512, 1536, 200 * 1024, 3 * 1024**3)] == [
        "-", "512B", "1.5K", "200K", "3.0G"]
