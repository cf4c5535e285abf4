"""The operator's clock: the one place handlers read the time.

Tests move it instead of sleeping: when ``POLYCULTURE_CLOCK_FILE`` names a file, its content
(seconds, a float) is added to the wall clock, re-read at every call. Nothing else reads it.
"""

from __future__ import annotations

import contextlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

CLOCK_FILE_ENV = "POLYCULTURE_CLOCK_FILE"


class Clock:
    """Wall-clock time in UTC, plus a test offset."""

    def __init__(self) -> None:
        self.offset = timedelta(0)
        path = os.environ.get(CLOCK_FILE_ENV)
        self.offset_file = Path(path) if path else None

    def now(self) -> datetime:
        offset = self.offset
        if self.offset_file is not None:
            with contextlib.suppress(OSError, ValueError):
                offset += timedelta(seconds=float(self.offset_file.read_text().strip() or 0))
        return datetime.now(UTC) + offset


CLOCK = Clock()
