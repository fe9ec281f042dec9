"""Keeping a tool's output within what the model is shown (Settings.run_tool_output_chars)."""

from __future__ import annotations


def clip(text: str, limit: int, hint: str = "") -> str:
    """`text`, or its head and tail with a note saying how much was left out."""
    if len(text) <= limit:
        return text
    note = f"\n[… {{}} characters omitted: output truncated to {limit} characters{hint} …]\n"
    keep = max(limit - len(note) - 10, 0)
    head = text[: keep // 2]
    tail = text[len(text) - (keep - keep // 2) :] if keep else ""
    return head + note.format(len(text) - len(head) - len(tail)) + tail


class OutputCollector:
    """The combined output of a command, kept within a byte budget: the head and the tail
    are kept, the middle only counted (a command may print far more than it is shown)."""

    def __init__(self, chars: int) -> None:
        # UTF-8 takes at most 4 bytes a character: enough bytes for `chars` characters.
        self._half = chars * 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0

    def add(self, data: bytes) -> None:
        self.total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        if data:
            self._tail += data
            if len(self._tail) > self._half:
                del self._tail[: len(self._tail) - self._half]

    @property
    def omitted(self) -> int:
        """Bytes left out between the head and the tail."""
        return self.total - len(self._head) - len(self._tail)

    def text(self) -> str:
        if not self.omitted:
            return (self._head + self._tail).decode("utf-8", errors="replace")
        head = self._head.decode("utf-8", errors="replace")
        tail = self._tail.decode("utf-8", errors="replace")
        return f"{head}\n[… {self.omitted} bytes omitted …]\n{tail}"
