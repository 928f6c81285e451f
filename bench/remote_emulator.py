"""The emulator in a process of its own, steered over a pipe, for benchmarks.

ARM runs elsewhere: in the benchmark's own process, the emulator's event generation would take
the measured process's CPU (the GIL) and count as the app's time. Both processes share one fake
clock (`SharedClock`, epoch seconds in shared memory).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from localdev.emulator import Emulator


class SharedClock:
    """The fake time of both processes (this one and the emulator's): epoch seconds in shared memory."""

    def __init__(self, value: Any) -> None:
        self._value = value

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._value.value, UTC)

    def set(self, when: datetime) -> None:
        self._value.value = when.timestamp()

    def advance(self, delta: timedelta) -> datetime:
        with self._value.get_lock():
            self._value.value += delta.total_seconds()
        return self.now()


def _serve_emulator(conn: Connection, value: Any, latency: float, seed: int) -> None:
    """The emulator in its own process, as ARM is: it must not take this process's CPU (the GIL)."""
    with Emulator(
        clock=SharedClock(value),
        seed=seed,
        check_arm_token_lifetime=False,
        subscription_page_size=1_000,
        page_latency=latency,
    ) as emulator:
        conn.send((emulator.connector_settings(), str(emulator.ca_pem_path)))
        while (request := conn.recv()) is not None:
            name, args, kwargs = request
            if name == "arm_reads":
                result: Any = sum(1 for r in emulator.request_log if r.path.lower().endswith("/management/values"))
            else:
                attribute = getattr(emulator, name)
                result = attribute(*args, **kwargs) if callable(attribute) else attribute
            conn.send(result)


class RemoteEmulator:
    """Steers the emulator process: `remote.call("add_subscriptions", 10)`, `remote.get("page_latency")`."""

    def __init__(self, clock_value: Any, latency: float, seed: int = 12) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve_emulator, args=(child, clock_value, latency, seed), name="emulator", daemon=True
        )
        self._process.start()
        self.settings, self.ca_pem_path = self._conn.recv()
        self.page_latency = latency

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((name, args, kwargs))
        return self._conn.recv()

    get: Callable[..., Any] = call

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()


def shared_clock(start: datetime) -> SharedClock:
    return SharedClock(multiprocessing.get_context("spawn").Value("d", start.timestamp()))
