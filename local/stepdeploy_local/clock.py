"""A virtual clock: waits advance it instantly, real time still flows underneath.

``now() = wall time + offset``; a Wait state or Retry interval of N seconds adds N to the offset
instead of sleeping. Durations measured on this clock therefore include both the real compute time
and the virtual waits, which is what a run on AWS would show.
"""

from __future__ import annotations

import datetime as _dt
import threading
import time


class VirtualClock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self.waited_seconds = 0.0

    def time(self) -> float:
        return time.time() + self._offset

    def now(self, tz: _dt.tzinfo | None = None) -> _dt.datetime:
        value = _dt.datetime.fromtimestamp(self.time(), tz=_dt.UTC)
        if tz is None:
            return value.replace(tzinfo=None)  # naive, like datetime.now()
        return value.astimezone(tz)

    def advance(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._lock:
            self._offset += seconds
            self.waited_seconds += seconds


#: The process-wide clock the compatibility patches use. Replaced by each World.
CLOCK = VirtualClock()


def install(clock: VirtualClock) -> None:
    global CLOCK
    CLOCK = clock


def current() -> VirtualClock:
    return CLOCK
