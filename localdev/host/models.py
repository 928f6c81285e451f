"""What the local host tells its callers: the hosted functions and the invocations it ran."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

HTTP_TRIGGER = "httpTrigger"
TIMER_TRIGGER = "timerTrigger"
QUEUE_TRIGGER = "queueTrigger"

SUCCEEDED = "Succeeded"
FAILED = "Failed"


@dataclass(frozen=True)
class FunctionInfo:
    """One hosted function, with its trigger's settings resolved (`%NAME%` replaced)."""

    name: str
    trigger: str  # "httpTrigger", "timerTrigger" or "queueTrigger"
    binding_name: str  # the parameter that receives the trigger value
    route: str | None = None  # httpTrigger: the template, without the route prefix
    methods: tuple[str, ...] | None = None  # httpTrigger: allowed methods; None allows any
    auth_level: str | None = None  # httpTrigger: "anonymous", "function" or "admin"
    url: str | None = None  # httpTrigger: the full URL template, once the host has started
    schedule: str | None = None  # timerTrigger
    run_on_startup: bool = False  # timerTrigger
    queue_name: str | None = None  # queueTrigger
    connection: str | None = None  # queueTrigger: the app setting naming the storage account

    @property
    def target(self) -> str:
        """What triggers it, for tables: the methods and route, the schedule or the queue."""
        if self.trigger == HTTP_TRIGGER:
            methods = ",".join(self.methods) if self.methods else "ANY"
            return f"{methods} {self.url or self.route}"
        if self.trigger == TIMER_TRIGGER:
            return f"{self.schedule}" + (" (runOnStartup)" if self.run_on_startup else "")
        return f"{self.queue_name}"


@dataclass(frozen=True)
class Invocation:
    """One finished invocation."""

    function: str
    trigger: str
    invocation_id: str
    started: datetime  # UTC
    duration: float  # seconds
    outcome: str  # "Succeeded" or "Failed"
    error: str | None = None
    reason: str = ""
    message_id: str | None = None  # queueTrigger
    dequeue_count: int | None = None  # queueTrigger

    @property
    def succeeded(self) -> bool:
        return self.outcome == SUCCEEDED


class InvocationLog(Sequence[Invocation]):
    """A thread-safe, append-only list of finished invocations; iterating reads a snapshot."""

    def __init__(self) -> None:
        self._items: list[Invocation] = []
        self._cond = threading.Condition()

    def append(self, invocation: Invocation) -> None:
        with self._cond:
            self._items.append(invocation)
            self._cond.notify_all()

    def snapshot(self) -> list[Invocation]:
        with self._cond:
            return list(self._items)

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    def __getitem__(self, index: Any) -> Any:  # an Invocation, or a list of them for a slice
        with self._cond:
            return self._items[index]

    def __iter__(self) -> Iterator[Invocation]:
        return iter(self.snapshot())

    def __repr__(self) -> str:
        return f"InvocationLog({self.snapshot()!r})"

    def for_function(self, name: str) -> list[Invocation]:
        return [i for i in self.snapshot() if i.function.lower() == name.lower()]

    def find(self, invocation_id: str) -> Invocation | None:
        return next((i for i in self.snapshot() if i.invocation_id == invocation_id), None)

    def wait_for(
        self,
        function: str | None = None,
        count: int = 1,
        timeout: float = 30.0,
        predicate: Callable[[Invocation], bool] | None = None,
    ) -> list[Invocation]:
        """Block until `count` matching invocations finished; returns them (all found so far on timeout)."""

        def matching() -> list[Invocation]:
            return [
                i
                for i in self._items
                if (function is None or i.function.lower() == function.lower()) and (predicate is None or predicate(i))
            ]

        deadline = time.monotonic() + timeout
        with self._cond:
            found = matching()
            while len(found) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
                found = matching()
            return found
