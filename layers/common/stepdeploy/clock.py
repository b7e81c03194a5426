"""The one place the product reads the time of day (lock leases, digest claims, deadlines).

On Lambda it is the system clock. A host that runs the handlers on another clock (the local world runs
them on its virtual clock, so that a lease expires when its virtual time has passed) installs that clock's
``time`` function with :func:`use`; nothing else in the product reads the time of day.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

_source: Callable[[], float] = time.time


def now() -> float:
    """Seconds since the epoch."""
    return _source()


def iso_now() -> str:
    """Now as ISO 8601 UTC, to the second (what records store)."""
    return datetime.fromtimestamp(now(), UTC).isoformat(timespec="seconds")


def use(source: Callable[[], float] | None) -> None:
    """Read the time from ``source`` from now on (None: the system clock again)."""
    global _source
    _source = source or time.time
