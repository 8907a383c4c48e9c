"""What an operator action's thread says back to the screen that asked for it (``QueueApp.act``):
one message on success, one on failure, so both take the same path and carry their types. A
failure no screen handles bubbles up to the app, which shows it as an error notification."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from queuectl_tui.tui.actions import Action


class ActionDone(Message):
    """``action``'s call returned ``result`` (what its summary, or its ``then``, is made of)."""

    def __init__(self, action: Action, result: Any) -> None:
        super().__init__()
        self.action = action
        self.result = result


class ActionFailed(Message):
    """``action``'s call was refused or failed: ``message`` says why (never a traceback);
    ``field`` is the input it is about (``InvalidInput.field``), or None."""

    def __init__(self, action: Action, message: str, field: str | None = None) -> None:
        super().__init__()
        self.action = action
        self.message = message
        self.field = field

    @property
    def label(self) -> str:
        return self.action.label
