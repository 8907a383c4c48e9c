"""The footer line: the screen's main keys (bindings with show=True, less those the screen
does not offer as things stand: ``screen.offers(action)``) and the palette key.

It shows what Textual's Footer shows, picked the same way from ``screen.active_bindings``, but
as one line of text in one widget. The stock Footer mounts a widget per key and recomposes them
whenever the focus moves, which was a third of the console's start-up time. Clicking a key
presses it.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widget import Widget


class KeyBar(Widget, can_focus=False):
    COMPONENT_CLASSES = {"keybar--key", "keybar--description"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .keybar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .keybar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
    }
    """

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[Any]) -> None:
        if self.is_attached and screen is self.screen:
            self.refresh()

    def keys(self) -> tuple[list[tuple[str, str, str]], tuple[str, str, str] | None]:
        """([(key, key display, description)], palette key) as the Footer would show them."""
        shown, seen = [], set()
        active = self.screen.active_bindings
        refuses = getattr(self.app, "refuses", lambda node, action: False)  # read-only mode
        offers = getattr(self.screen, "offers", None)  # a screen may offer keys by its state
        for node, binding, enabled, _tooltip in active.values():
            if offers is not None and not offers(binding.action):
                continue
            if (
                binding.show
                and enabled
                and binding.action not in seen
                and not refuses(node, binding.action)
            ):
                seen.add(binding.action)
                shown.append((binding.key, self.app.get_key_display(binding), binding.description))
        palette = None
        if self.app.ENABLE_COMMAND_PALETTE and self.app.COMMAND_PALETTE_BINDING in active:
            binding = active[self.app.COMMAND_PALETTE_BINDING][1]
            palette = (binding.key, self.app.get_key_display(binding), binding.description)
        return shown, palette

    def _item(self, display: str, description: str) -> Text:
        return Text.assemble(
            (f" {display}", self.get_component_rich_style("keybar--key")),
            (f" {description} ", self.get_component_rich_style("keybar--description")),
        )

    def render(self) -> Text:
        shown, palette = self.keys()
        width = self.size.width
        self._spans: list[tuple[int, int, str]] = []  # (first cell, end cell, key) for clicks
        right = Text.assemble(("▏", "dim"), self._item(*palette[1:])) if palette else Text()
        if getattr(self.app, "read_only", False):  # and the keys that change something are gone
            key_style = self.get_component_rich_style("keybar--key")
            right = Text.assemble(("read-only ", key_style), right)
        # The help key always shows (it lists the rest); the others while they fit, in order.
        help_keys = [item for item in shown if item[2] == "Help"]
        reserved = sum(self._item(*item[1:]).cell_len for item in help_keys)
        left = Text(no_wrap=True, overflow="crop", end="")
        others = [item for item in shown if item not in help_keys]
        for key, display, description in others + help_keys:
            piece = self._item(display, description)
            aside = 0 if (key, display, description) in help_keys else reserved
            budget = width - right.cell_len - aside
            if left.cell_len + piece.cell_len > budget:
                continue
            self._spans.append((left.cell_len, left.cell_len + piece.cell_len, key))
            left.append_text(piece)
        gap = max(0, width - left.cell_len - right.cell_len)
        if palette:
            self._spans.append((width - right.cell_len, width, palette[0]))
        return Text.assemble(left, " " * gap, right, no_wrap=True, end="")

    def on_click(self, event: events.Click) -> None:
        for start, end, key in getattr(self, "_spans", []):
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
