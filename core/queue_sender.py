"""Many messages to one queue at once, from one event loop per worker: Queue Storage has no batch send.

A fan-out tick sends one message per subscription. One after another, each send waits for its
round trip. Over threads, the requests pipeline's Python work contends for the GIL: on a 2-core
machine eight sender threads cost more CPU per message than one. Here the storage SDK's async
client keeps `CONCURRENCY` sends in flight on one event loop, in a thread of its own, so that
callers stay plain synchronous code (the handlers, the timer trigger, a test) whether or not their
own thread runs an event loop.

The loop, its thread and the async client are made on the first send and live as long as the
worker (or until `close`, which also runs at interpreter exit); a worker that never fans out
starts none of them.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from azure.core.exceptions import AzureError
from azure.storage.queue.aio import QueueClient as AsyncQueueClient

logger = logging.getLogger(__name__)

SENDER_THREAD = "queue-sender"  # the thread running the sender's event loop

# Sends in flight at once. More overlaps more waiting on the network; past about 32 a 2-core worker
# gains nothing against a local Azurite (bench/bench_fanout.py), and Queue Storage's per-queue
# target (2,000 messages a second) is the ceiling anyway.
CONCURRENCY = 32


ClientFactory = Callable[[AsyncExitStack], AsyncQueueClient]


class QueueSender:
    """Sends bodies to one queue through an async client made by `make_client` on the sender's loop.

    `make_client` registers on the stack whatever must be closed with the client (its credential).
    """

    def __init__(self, make_client: ClientFactory, *, concurrency: int = CONCURRENCY) -> None:
        self._make_client = make_client
        self._concurrency = concurrency
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._client: AsyncQueueClient | None = None
        self._resources = AsyncExitStack()
        self._closes_at_exit = False

    def send_all(self, bodies: Sequence[str]) -> list[AzureError]:
        """Send every body once (the client's retry policy retries each); return the failures, in no order.

        Anything but an `AzureError` (a bug, a cancelled loop) is raised after the sends in flight end.
        """
        if not bodies:
            return []
        return self._run(self._send_all(list(bodies)))

    def close(self, timeout: float = 10) -> None:
        """Close the client and stop the loop; called by `Storage.close` and at interpreter exit."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._close_client(), loop).result(timeout)
        except TimeoutError:
            logger.warning("The queue sender's client did not close within %s s; its connections are dropped", timeout)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._started()).result()

    def _started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name=SENDER_THREAD, daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
                if not self._closes_at_exit:
                    # A worker never closes its runtime: close the connections before the daemon thread dies.
                    atexit.register(self.close)
                    self._closes_at_exit = True
            return self._loop

    async def _send_all(self, bodies: list[str]) -> list[AzureError]:
        if self._client is None:
            client = self._make_client(self._resources)
            self._resources.push_async_callback(client.close)
            self._client = client
        client = self._client
        pending = iter(bodies)
        failed: list[AzureError] = []

        async def sender() -> None:
            for body in pending:  # one iterator shared by the senders: each body is taken once
                try:
                    await client.send_message(body)
                except AzureError as exc:
                    failed.append(exc)

        senders = min(self._concurrency, len(bodies))
        outcomes = await asyncio.gather(*(sender() for _ in range(senders)), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        return failed

    async def _close_client(self) -> None:
        self._client = None
        await self._resources.aclose()
