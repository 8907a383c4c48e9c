"""The main screen: ``screen.py`` (layout, drawing, the view, the actions), ``reading.py`` (what
it reads and when), ``keys.py`` (its bindings, tabs and sort orders)."""

from queuectl_tui.tui.screens.main.keys import SORTS, TABS
from queuectl_tui.tui.screens.main.reading import DRAW_EVERY, KEY_QUIET, REST_EVERY
from queuectl_tui.tui.screens.main.screen import MainScreen

__all__ = ["DRAW_EVERY", "KEY_QUIET", "REST_EVERY", "SORTS", "TABS", "MainScreen"]
