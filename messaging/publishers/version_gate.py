"""Version gates for fast paths built on a library's private internals.

A gate is open only on the releases its fast path was written and tested against (the pinned
ones in requirements.txt). On any other release the caller takes the library's public path, and
the gate logs one warning per process saying so: an upgrade costs speed, never correctness, and
never silently. ``messaging/tests/test_publisher_fast_paths.py`` fails when a pinned release no
longer opens its gate.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import version

logger = logging.getLogger(__name__)


class VersionGate:
    def __init__(self, *, distribution: str, supported: tuple[str, ...], fast_path: str, fallback: str) -> None:
        self.distribution = distribution
        self.supported = supported
        self.fast_path = fast_path
        self.fallback = fallback
        self.installed = version(distribution)
        self._warned = False
        self._lock = threading.Lock()

    def is_open(self) -> bool:
        """True when the installed release may use the fast path; else warns once and returns False."""
        if self.installed in self.supported:
            return True
        with self._lock:
            if not self._warned:
                self._warned = True
                logger.warning(
                    "%s %s is not one of %s: %s is off, using %s",
                    self.distribution,
                    self.installed,
                    ", ".join(self.supported) or "(none)",
                    self.fast_path,
                    self.fallback,
                    extra={"distribution": self.distribution, "installed": self.installed},
                )
        return False
