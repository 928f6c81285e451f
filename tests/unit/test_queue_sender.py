"""The fan-out's sender on a fake async queue client: each body once, bounded concurrency, failures."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError

from core.queue_sender import QueueSender


class FakeAsyncQueue:
    def __init__(self, fail: set[str] | None = None, crash: str | None = None) -> None:
        self.sent: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.closed = 0
        self._fail = fail or set()
        self._crash = crash

    async def send_message(self, body: str) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)  # a round trip: the others get their turn
            if body == self._crash:
                raise ValueError("a bug, not a storage failure")
            if body in self._fail:
                raise HttpResponseError(message=f"503 for {body}")
            self.sent[body] += 1
        finally:
            self.in_flight -= 1

    async def close(self) -> None:
        self.closed += 1


def _sender(fake: FakeAsyncQueue, concurrency: int = 8) -> QueueSender:
    def make(resources: AsyncExitStack) -> Any:
        return fake

    return QueueSender(make, concurrency=concurrency)


def test_every_body_is_sent_once_with_several_in_flight_but_never_more_than_the_limit() -> None:
    fake = FakeAsyncQueue()
    sender = _sender(fake, concurrency=8)
    bodies = [f"m{i}" for i in range(100)]
    try:
        assert sender.send_all(bodies) == []
    finally:
        sender.close()
    assert fake.sent == Counter(bodies)
    assert 1 < fake.most_in_flight <= 8


def test_failures_are_returned_after_every_other_body_was_sent() -> None:
    fake = FakeAsyncQueue(fail={"m3", "m7"})
    sender = _sender(fake)
    bodies = [f"m{i}" for i in range(20)]
    try:
        failures = sender.send_all(bodies)
    finally:
        sender.close()
    assert sorted(str(f.message) for f in failures) == ["503 for m3", "503 for m7"]
    assert set(fake.sent) == set(bodies) - {"m3", "m7"}


def test_an_error_that_is_not_azures_is_raised_not_counted_as_a_failed_send() -> None:
    fake = FakeAsyncQueue(crash="m5")
    sender = _sender(fake, concurrency=4)
    try:
        with pytest.raises(ValueError, match="a bug"):
            sender.send_all([f"m{i}" for i in range(20)])
        # The sender is still usable afterwards.
        assert sender.send_all(["again"]) == []
    finally:
        sender.close()
    assert fake.sent["again"] == 1


def test_the_client_is_made_once_and_closed_with_the_sender() -> None:
    made: list[FakeAsyncQueue] = []

    def make(resources: AsyncExitStack) -> Any:
        made.append(FakeAsyncQueue())
        return made[-1]

    sender = QueueSender(make)
    sender.send_all(["a"])
    sender.send_all(["b"])
    assert len(made) == 1
    sender.close()
    assert made[0].closed == 1
    sender.close()  # closing twice is harmless
    assert made[0].closed == 1


def test_a_failure_of_the_connection_counts_as_a_failed_send() -> None:
    class Unreachable(FakeAsyncQueue):
        async def send_message(self, body: str) -> None:
            raise ServiceRequestError("connection refused")

    sender = _sender(Unreachable())
    try:
        failures = sender.send_all(["a", "b"])
    finally:
        sender.close()
    assert [type(f) for f in failures] == [ServiceRequestError, ServiceRequestError]
