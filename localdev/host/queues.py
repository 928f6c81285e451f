"""Queue triggers: poll a Storage queue the way the Functions host's queue listener does.

Per function: receive up to `batchSize` messages at a time, invisible for 10 minutes (renewed at
half-time while the function runs), and fetch the next batch once no more than `newBatchThreshold`
are still in flight (so at most `batchSize + newBatchThreshold` at once). Each message runs on the
worker's thread pool (`localdev.host.workers`), as a synchronous function does in the Python
worker: messages in flight beyond its thread count wait there for a thread. An empty queue is
polled again after a randomized exponential back-off from 100 ms up to `maxPollingInterval`;
finding messages resets it. A message is deleted when the function succeeds; on failure it is made
visible again after `visibilityTimeout`, and once it has been dequeued `maxDequeueCount` times it
is copied, unchanged, to `<queue>-poison` (created if missing) and deleted. A message already
dequeued more than `maxDequeueCount` times, or one that is not valid base64 when `messageEncoding`
is "base64", goes to the poison queue without running the function. Messages still running when
the host gives up waiting at shutdown are made visible again, never deleted.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import math
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.functions import queue as func_queue

from localdev.host.hostjson import MIN_POLLING_INTERVAL, QueuesOptions
from localdev.host.invoker import Invoker
from localdev.host.loader import LoadedFunction
from localdev.host.workers import WorkerPool

logger = logging.getLogger(__name__)

# How long a received message stays invisible while its function runs; renewed at half-time.
MESSAGE_VISIBILITY = 600.0
POISON_SUFFIX = "-poison"


class Backoff:
    """Randomized exponential back-off between polls of an empty queue."""

    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum = min(minimum, maximum)
        self.maximum = maximum
        self._current = 0.0

    def next_delay(self, found_messages: bool) -> float:
        if found_messages or self._current == 0.0:
            self._current = self.minimum
        else:
            self._current = min(self.maximum, self._current * 2)
        return min(self.maximum, self._current * random.uniform(0.8, 1.2))


@dataclass
class _InFlight:
    message_id: str
    pop_receipt: str
    renew_at: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: bool = False
    abandoned: bool = False


def decode_message(content: str, encoding: str) -> bytes:
    """The message body the function gets; raises ValueError if it is not valid base64."""
    if encoding == "none":
        return content.encode("utf-8")
    compact = "".join(content.split())
    try:
        return base64.b64decode(compact, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


class QueueListener:
    """Polls one queue for one function."""

    def __init__(self, fn: LoadedFunction, options: QueuesOptions, invoker: Invoker, workers: WorkerPool) -> None:
        assert fn.account is not None and fn.info.queue_name is not None
        self.fn = fn
        self.options = options
        self.invoker = invoker
        self.workers = workers  # the worker's thread pool
        self.queue_name = fn.info.queue_name
        self.poison_name = self.queue_name + POISON_SUFFIX
        self.client = fn.account.queue(self.queue_name)  # raw text: no encode/decode policy
        # Polling backs off on its own; without SDK retries a stop is never held up by a dead account.
        self.poll_client = fn.account.queue(self.queue_name, retry=False)
        self.poison_client = fn.account.queue(self.poison_name)
        self._backoff = Backoff(MIN_POLLING_INTERVAL, options.max_polling_interval)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._in_flight: dict[str, _InFlight] = {}
        self._threads: list[threading.Thread] = []
        self._queue_ready = False
        self._warned = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        self._ensure_queue()
        poller = threading.Thread(target=self._poll_loop, name=f"queue-poll-{self.fn.name}", daemon=True)
        renewer = threading.Thread(target=self._renew_loop, name=f"queue-renew-{self.fn.name}", daemon=True)
        self._threads = [poller, renewer]
        for thread in self._threads:
            thread.start()

    def stop_polling(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads[:1]:  # the poller; the renewer runs on while messages are in flight
            thread.join(timeout=2)

    def abandon_in_flight(self) -> int:
        """Make every message still being processed visible again; its outcome will be ignored."""
        with self._cond:
            entries = list(self._in_flight.values())
        abandoned = 0
        for entry in entries:
            with entry.lock:
                if entry.done or entry.abandoned:
                    continue
                entry.abandoned = True
                abandoned += self._make_visible(entry.message_id, entry.pop_receipt, 0)
        if abandoned:
            logger.warning(
                "Abandoned %d in-flight message(s) on queue '%s'; they are visible again", abandoned, self.queue_name
            )
        return abandoned

    @property
    def in_flight(self) -> int:
        with self._cond:
            return len(self._in_flight)

    def approximate_message_count(self) -> int | None:
        """The queue's approximate message count (visible and invisible), or None if unknown."""
        try:
            return int(self.poll_client.get_queue_properties().approximate_message_count or 0)
        except ResourceNotFoundError:
            return 0
        except AzureError as exc:
            logger.debug("Could not read the length of queue '%s': %s", self.queue_name, exc)
            return None

    # -- polling ----------------------------------------------------------------------------

    def _ensure_queue(self) -> bool:
        try:
            self.poll_client.create_queue()
        except ResourceExistsError:
            pass
        except AzureError as exc:
            self._warn_once("Queue '%s' for function '%s' is not reachable yet (%s); retrying", self.fn.name, exc)
            return False
        self._queue_ready = True
        self._warned = False
        return True

    def _warn_once(self, message: str, *args: Any) -> None:
        """Warn that the queue does not answer, once until it answers again (the queue name comes first)."""
        if not self._warned:
            logger.warning(message, self.queue_name, *args)
            self._warned = True

    def _poll_loop(self) -> None:
        found_since_delay = False
        while not self._stop.is_set():
            with self._cond:
                while len(self._in_flight) > self.options.new_batch_threshold and not self._stop.is_set():
                    self._cond.wait(1.0)
            if self._stop.is_set():
                break
            self._wake.clear()
            messages = self._receive() if self._queue_ready or self._ensure_queue() else []
            if messages and self._stop.is_set():
                for message in messages:  # received as the host stops: visible again for the next host
                    self._make_visible(message.id, message.pop_receipt, 0)
                break
            if messages:
                found_since_delay = True
                for message in messages:
                    self._dispatch(message)
                continue
            self._wake.wait(self._backoff.next_delay(found_since_delay))
            found_since_delay = False

    def _receive(self) -> list[Any]:
        count = self.options.batch_size
        try:
            pages = self.poll_client.receive_messages(
                messages_per_page=count, max_messages=count, visibility_timeout=int(MESSAGE_VISIBILITY)
            ).by_page()
            messages = list(next(pages, []))
        except ResourceNotFoundError:
            self._queue_ready = False
            return []
        except AzureError as exc:
            self._warn_once("Polling queue '%s' failed (%s); retrying", exc)
            return []
        self._warned = False
        return messages

    def _dispatch(self, message: Any) -> None:
        entry = _InFlight(message.id, message.pop_receipt, renew_at=time.monotonic() + MESSAGE_VISIBILITY / 2)
        with self._cond:
            self._in_flight[message.id] = entry
        self.workers.submit(self._process, message, entry)

    def _renew_loop(self) -> None:
        """Keep messages invisible while their functions run longer than half the visibility timeout.

        Runs until the listener is stopped and no message it holds is still being processed.
        """
        while True:
            stopping = self._stop.wait(min(1.0, MESSAGE_VISIBILITY / 4))
            now = time.monotonic()
            with self._cond:
                live = [e for e in self._in_flight.values() if not (e.done or e.abandoned)]
            if stopping and not live:
                return
            entries = [e for e in live if e.renew_at <= now]
            for entry in entries:
                with entry.lock:
                    if entry.done or entry.abandoned:
                        continue
                    try:
                        receipt = self.client.update_message(
                            entry.message_id, entry.pop_receipt, visibility_timeout=int(MESSAGE_VISIBILITY)
                        )
                        entry.pop_receipt = receipt.pop_receipt or entry.pop_receipt
                        logger.debug("Renewed the visibility of message %s", entry.message_id)
                    except AzureError as exc:
                        logger.warning("Could not renew the visibility of message %s: %s", entry.message_id, exc)
                    entry.renew_at = time.monotonic() + MESSAGE_VISIBILITY / 2

    # -- processing ---------------------------------------------------------------------------

    def _process(self, message: Any, entry: _InFlight) -> None:
        try:
            self._handle(message, entry)
        except Exception:
            logger.exception("Handling message %s from queue '%s' failed", message.id, self.queue_name)
        finally:
            with self._cond:
                self._in_flight.pop(message.id, None)
                self._cond.notify_all()

    def _handle(self, message: Any, entry: _InFlight) -> None:
        if entry.abandoned:
            return
        max_dequeue = self.options.max_dequeue_count
        dequeue_count = int(message.dequeue_count or 1)
        if dequeue_count > max_dequeue:
            self._poison(message, entry)
            return
        try:
            body = decode_message(message.content or "", self.options.message_encoding)
        except ValueError:
            logger.warning("Message decoding has failed! Check MessageEncoding settings. MessageId=%s.", message.id)
            self._poison(message, entry)
            return
        trigger_value = func_queue.QueueMessage(
            id=message.id,
            body=body,
            pop_receipt=message.pop_receipt,
            dequeue_count=dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
        )
        result = self.invoker.invoke(
            self.fn,
            trigger_value,
            reason=f"New queue message detected on '{self.queue_name}'.",
            message_id=message.id,
            dequeue_count=dequeue_count,
        )
        with entry.lock:
            if entry.abandoned:
                logger.warning(
                    "Message %s finished after it was abandoned; it stays on queue '%s'", message.id, self.queue_name
                )
                return
            entry.done = True
        if result.succeeded:
            self._delete(entry)
        elif dequeue_count >= max_dequeue:
            self._poison(message, entry)
        else:
            self._make_visible(entry.message_id, entry.pop_receipt, self.options.visibility_timeout)

    def _delete(self, entry: _InFlight) -> None:
        try:
            self.client.delete_message(entry.message_id, entry.pop_receipt)
        except ResourceNotFoundError:
            logger.debug("Message %s was already gone from queue '%s'", entry.message_id, self.queue_name)
        except HttpResponseError as exc:
            logger.warning("Could not delete message %s from queue '%s': %s", entry.message_id, self.queue_name, exc)

    def _make_visible(self, message_id: str, pop_receipt: str, after: float) -> bool:
        """Release a message: visible again `after` seconds from now (else when its visibility timeout ends)."""
        try:
            self.client.update_message(message_id, pop_receipt, visibility_timeout=math.ceil(after))
        except AzureError as exc:
            logger.warning("Could not release message %s on queue '%s': %s", message_id, self.queue_name, exc)
            return False
        return True

    def _poison(self, message: Any, entry: _InFlight) -> None:
        logger.warning(
            "Message has reached MaxDequeueCount of %d. Moving message to queue '%s'.",
            self.options.max_dequeue_count,
            self.poison_name,
        )
        content = message.content or ""
        try:
            self.poison_client.send_message(content)
        except ResourceNotFoundError:
            with contextlib.suppress(ResourceExistsError):
                self.poison_client.create_queue()
            self.poison_client.send_message(content)
        with entry.lock:
            entry.done = True
        self._delete(entry)
