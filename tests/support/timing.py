"""Round trips for the delayed-ACK tests: the median of many, so one slow call on a busy machine does not count."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

# Nagle's algorithm with the client's delayed ACK adds about 40 ms to an answer written in two
# pieces; a server without it answers on loopback in a few milliseconds, TLS handshake included.
WELL_UNDER_DELAYED_ACK = 0.025


def median_round_trip(once: Callable[[], None], *, times: int = 20) -> float:
    """Seconds: the median of `times` calls of `once`, after one call to warm up."""
    once()
    taken = []
    for _ in range(times):
        started = time.perf_counter()
        once()
        taken.append(time.perf_counter() - started)
    return statistics.median(taken)
