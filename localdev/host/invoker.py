"""Run user functions as the Python worker does, and record every invocation."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from azure.functions import _abc as func_abc

from localdev.host.loader import LoadedFunction
from localdev.host.models import FAILED, HTTP_TRIGGER, SUCCEEDED, TIMER_TRIGGER, Invocation, InvocationLog

logger = logging.getLogger(__name__)


@dataclass
class InvocationResult:
    invocation: Invocation
    returned: Any = None  # what the function returned (an HTTP function's response)
    exception: BaseException | None = field(default=None, repr=False)

    @property
    def succeeded(self) -> bool:
        return self.exception is None


class Invoker:
    """Runs invocations, counts the ones in progress, and logs each as the Functions host does."""

    def __init__(self, log: InvocationLog, function_timeout: float | None = None) -> None:
        self.log = log
        self.function_timeout = function_timeout
        self._cond = threading.Condition()
        self._running = 0
        self._pending = 0
        self._activity = 0

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def busy(self) -> int:
        """Invocations accepted or running."""
        with self._cond:
            return self._running + self._pending

    @property
    def activity(self) -> int:
        """A counter that moves whenever an invocation is accepted, starts or ends."""
        with self._cond:
            return self._activity

    def accept(self) -> None:
        """Count an invocation that will start soon (an admin call), so the host is not idle meanwhile."""
        with self._cond:
            self._pending += 1
            self._activity += 1

    @contextlib.contextmanager
    def _counted(self, accepted: bool) -> Iterator[None]:
        with self._cond:
            if accepted:
                self._pending -= 1
            self._running += 1
            self._activity += 1
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                self._activity += 1
                self._cond.notify_all()

    # -- invoking ----------------------------------------------------------------------------

    def invoke(
        self,
        fn: LoadedFunction,
        trigger_value: Any,
        *,
        reason: str,
        invocation_id: str | None = None,
        accepted: bool = False,
        message_id: str | None = None,
        dequeue_count: int | None = None,
    ) -> InvocationResult:
        """Run one invocation now, in this thread."""
        invocation_id = invocation_id or str(uuid.uuid4())
        # A timer never runs concurrently with itself, as under the Functions host's singleton lock.
        lock = fn.lock if fn.info.trigger == TIMER_TRIGGER else contextlib.nullcontext()
        with self._counted(accepted), lock:
            logger.info("Executing 'Functions.%s' (Reason='%s', Id=%s)", fn.name, reason, invocation_id)
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            returned: Any = None
            error: BaseException | None = None
            try:
                returned = fn.user_function(**{fn.info.binding_name: trigger_value})
                if fn.info.trigger == HTTP_TRIGGER and not isinstance(returned, str | func_abc.HttpResponse | None):
                    kind = type(returned).__name__
                    raise TypeError(f"an HTTP function must return azure.functions.HttpResponse or str, not {kind}")
            except Exception as exc:  # noqa: BLE001 - a failing function is an outcome, as in the worker
                error = exc
            duration = time.perf_counter() - t0
            outcome = SUCCEEDED if error is None else FAILED
            invocation = Invocation(
                function=fn.name,
                trigger=fn.info.trigger,
                invocation_id=invocation_id,
                started=started,
                duration=duration,
                outcome=outcome,
                error=None if error is None else f"{type(error).__name__}: {error}",
                reason=reason,
                message_id=message_id,
                dequeue_count=dequeue_count,
            )
            logger.log(
                logging.INFO if error is None else logging.ERROR,
                "Executed 'Functions.%s' (%s, Trigger=%s, Id=%s, Duration=%dms)",
                fn.name,
                outcome,
                fn.info.trigger,
                invocation_id,
                duration * 1000,
                exc_info=None if error is None else (type(error), error, error.__traceback__),
            )
            timeout = self.function_timeout
            if timeout is not None and duration > timeout:
                logger.warning(
                    "'Functions.%s' ran %.0f s, longer than functionTimeout (%.0f s): the Functions host would "
                    "have cancelled it",
                    fn.name,
                    duration,
                    timeout,
                )
            self.log.append(invocation)
            return InvocationResult(invocation, returned if error is None else None, error)
