"""The state tabs as one widget: labels on the first line, the active one underlined below.

Looks like Textual's Tabs but is a single widget drawing two lines of text (Tabs mounts a
widget per tab plus an underline, and the console's start-up time grows with its widget
count). Clicking a label, or ``activate(tab)``, posts ``TabBar.Changed``.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.text import Text
from textual import events
from textual.message import Message
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget


class TabBar(Widget, can_focus=False):
    COMPONENT_CLASSES = {"tabbar--active", "tabbar--inactive", "tabbar--underline", "tabbar--rule"}
    DEFAULT_CSS = """
    TabBar {
        height: 2;
        .tabbar--active { color: $foreground; text-style: bold; }
        .tabbar--inactive { color: $foreground 50%; }
        .tabbar--underline { color: $primary; }
        .tabbar--rule { color: $foreground 15%; }
    }
    """
    active: reactive[str] = reactive("", layout=False)

    class Changed(Message):
        def __init__(self, tab: str) -> None:
            super().__init__()
            self.tab = tab

    def __init__(self, tabs: list[tuple[str, str]], *, active: str, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tabs = tabs  # (key, label)
        self.set_reactive(TabBar.active, active)

    def activate(self, tab: str) -> None:
        if tab != self.active:
            self.active = tab
            self.post_message(self.Changed(tab))

    def _places(self) -> list[tuple[int, int, str]]:
        """(first cell, end cell, key) of each label, a space either side."""
        places, x = [], 0
        for key, label in self.tabs:
            places.append((x, x + len(label) + 2, key))
            x += len(label) + 2
        return places

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        places = self._places()
        if y == 0:
            text = Text(no_wrap=True, end="")
            for (_, _, key), (_, label) in zip(places, self.tabs, strict=True):
                style = "tabbar--active" if key == self.active else "tabbar--inactive"
                text.append(f" {label} ", self.get_component_rich_style(style))
            segments = list(text.render(self.app.console))
        else:
            rule = self.get_component_rich_style("tabbar--rule")
            mark = self.get_component_rich_style("tabbar--underline")
            start, end = next(((s, e) for s, e, key in places if key == self.active), (0, 0))
            segments = [
                Segment("━" * start, rule),
                Segment("━" * (end - start), mark),
                Segment("━" * max(0, width - end), rule),
            ]
        return Strip(segments).crop_extend(0, width, self.rich_style)

    def watch_active(self) -> None:
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._places():
            if start <= event.x < end:
                self.activate(key)
                return
