"""Optimistic concurrency: every read-decide-write loop on a record goes through `write_optimistically`.

An attempt reads the record, decides, and writes conditionally (an ETag match, or an insert
that fails when the row exists). When another writer got there first the attempt raises
`StaleWrite` or `AlreadyExists`, and is simply run again on a fresh read, up to
`MAX_WRITE_ATTEMPTS` times; then `WriteContention`, a domain error (409 at the HTTP edge).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from core.errors import Conflict
from core.troubleshooting import text

MAX_WRITE_ATTEMPTS = 8

T = TypeVar("T")


class StaleWrite(Exception):
    """Someone else wrote the record since it was read; read again and retry."""


class AlreadyExists(Exception):
    """An insert found the record already there; read it and retry."""


class WriteContention(Conflict):
    """A record kept changing under every attempt."""

    def __init__(self, what: str) -> None:
        super().__init__(text("StateContention", what=what))


def write_optimistically(attempt: Callable[[], T], *, what: str, jitter: bool = False) -> T:
    """Run `attempt` until it does not meet a concurrent write, at most MAX_WRITE_ATTEMPTS times.

    With `jitter`, a short random pause separates attempts (for records many writers touch at once).
    """
    for number in range(1, MAX_WRITE_ATTEMPTS + 1):
        try:
            return attempt()
        except (StaleWrite, AlreadyExists):
            if jitter:
                time.sleep(random.uniform(0, min(0.02 * 2**number, 0.5)))
    raise WriteContention(what)


def first_then(read: Callable[[], T | None], first: T | None) -> Callable[[], T | None]:
    """A reader for the attempts: `first` (a record just read) on the first attempt, fresh reads after."""
    pending = [first] if first is not None else []

    def current() -> T | None:
        return pending.pop() if pending else read()

    return current
