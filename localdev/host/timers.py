"""Timer triggers on real wall time, one thread per timer.

As under the Functions host: `runOnStartup` runs the function once when the host starts; after
each run the next occurrence is computed from the current time (occurrences missed while the
function ran are skipped, never queued up); a timer never runs concurrently with itself (the
invoker holds a per-function lock, which admin-API invocations share).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from azure.functions import timer as func_timer

from localdev.host.invoker import Invoker
from localdev.host.loader import LoadedFunction
from localdev.host.schedule import is_past_due

logger = logging.getLogger(__name__)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def timer_request(
    past_due: bool = False, last: datetime | None = None, next_: datetime | None = None
) -> func_timer.TimerRequest:
    return func_timer.TimerRequest(
        past_due=past_due,
        schedule_status={"Last": _iso(last), "Next": _iso(next_), "LastUpdated": _iso(datetime.now(UTC))},
        schedule={"AdjustForDST": True},
    )


class TimerRunner:
    """Fires one timer function on its schedule."""

    def __init__(self, fn: LoadedFunction, invoker: Invoker) -> None:
        assert fn.schedule is not None
        self.fn = fn
        self.schedule = fn.schedule
        self.invoker = invoker
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"timer-{self.fn.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; an invocation already running is left to finish."""
        self._stop.set()

    def _fire(self, scheduled: datetime, last: datetime | None) -> None:
        now = datetime.now(UTC)
        self.invoker.invoke(
            self.fn,
            timer_request(is_past_due(scheduled, now), last, self.schedule.next_after(now)),
            reason=f"Timer fired at {now.isoformat()}",
        )

    def _loop(self) -> None:
        last: datetime | None = None
        try:
            if self.fn.info.run_on_startup and not self._stop.is_set():
                last = datetime.now(UTC)
                self._fire(last, None)
            while not self._stop.is_set():
                upcoming = self.schedule.next_after(datetime.now(UTC))
                while True:
                    remaining = (upcoming - datetime.now(UTC)).total_seconds()
                    if remaining <= 0:
                        break
                    if self._stop.wait(min(remaining, 1.0)):
                        return
                self._fire(upcoming, last)
                last = upcoming
        except Exception:
            logger.exception("Timer '%s' stopped unexpectedly", self.fn.name)
