"""The keys of every screen (the app's bindings): apart from app.py so that the help screen,
which lists them, needs nothing of the app that opens it."""

from __future__ import annotations

from textual.binding import Binding, BindingType

BINDINGS: list[BindingType] = [
    Binding("q", "quit", "Quit", tooltip="Quit the console (workers keep running)"),
    Binding(
        "question_mark",
        "help",
        "Help",
        key_display="?",
        tooltip="Every key, and what it does where (the help scrolls)",
    ),
]
