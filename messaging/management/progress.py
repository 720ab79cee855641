"""A progress line every few seconds for long commands and scripts (purge, requeue, soak, benchmarks).

Silence for a minute reads as a hang; a line per item floods the console. ``Progress`` prints at
most one line per ``every`` seconds, plus the first call, so a long run always shows it is moving.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO


class Progress:
    """``progress.update(done)`` prints ``<label>: <done>[/<total>] (<rate>/s, <elapsed> s)`` when due."""

    def __init__(
        self,
        label: str,
        *,
        total: int | None = None,
        every: float = 5.0,
        write: Callable[[str], object] | None = None,
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.every = every
        self._clock = clock
        self._started = clock()
        self._last: float | None = None
        out = stream or sys.stderr
        self._write = write or (lambda line: print(line, file=out, flush=True))

    def line(self, done: int, extra: str = "") -> str:
        elapsed = max(self._clock() - self._started, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        tail = f", {extra}" if extra else ""
        return f"{self.label}: {done}{of} ({done / elapsed:,.0f}/s, {elapsed:.0f} s{tail})"

    def update(self, done: int, extra: str = "", *, force: bool = False) -> None:
        """Print a line if ``every`` seconds passed since the last one (or ``force``)."""
        now = self._clock()
        if not force and self._last is not None and now - self._last < self.every:
            return
        self._last = now
        self._write(self.line(done, extra))
