"""Job output and user text made safe to show on a terminal.

A job's output is whatever its command printed: escape sequences in it would reach the
operator's terminal and act there (retitle the window, clear the screen, move the cursor,
hide text). Shown to a person, every control character is written visibly instead, in caret
notation (ESC as ``^[``, BEL as ``^G``, DEL as ``^?``; C1 controls as ``\\x9b``); newlines
and tabs stay what they are. Piped output and stored data keep the bytes as they were.
"""

from __future__ import annotations

_TABLE = {code: f"^{chr(code + 64)}" for code in range(32) if chr(code) not in "\n\t"}
_TABLE[0x7F] = "^?"
_TABLE.update({code: f"\\x{code:02x}" for code in range(0x80, 0xA0)})


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab shown, not obeyed."""
    return text.translate(_TABLE)
