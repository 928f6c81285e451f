"""Table and Queue clients, built once per worker from the storage settings."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypedDict

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode
from azure.storage.queue import (
    BinaryBase64DecodePolicy,
    ExponentialRetry,
    QueueClient,
    QueueServiceClient,
    TextBase64EncodePolicy,
)

from core.optimistic import StaleWrite
from core.queue_sender import QueueSender

logger = logging.getLogger(__name__)

# Logical table names; the physical name is STORAGE_TABLE_PREFIX + this.
CONNECTOR_TABLE = "connector"
ACTIVITIES_TABLE = "activities"
BY_TIME_TABLE = "activitiesbytime"
BY_SUBSCRIPTION_TABLE = "activitiesbysub"
BY_USER_TABLE = "activitiesbyuser"
ACCOUNTS_TABLE = "accounts"
POLICIES_TABLE = "policies"
ALERTS_TABLE = "alerts"
ALERTS_BY_TIME_TABLE = "alertsbytime"
ALERTS_BY_POLICY_TABLE = "alertsbypolicy"
ALERTS_BY_USER_TABLE = "alertsbyuser"
POLICY_COUNTERS_TABLE = "policycounters"
ALL_TABLES = (
    CONNECTOR_TABLE,
    ACTIVITIES_TABLE,
    BY_TIME_TABLE,
    BY_SUBSCRIPTION_TABLE,
    BY_USER_TABLE,
    ACCOUNTS_TABLE,
    POLICIES_TABLE,
    ALERTS_TABLE,
    ALERTS_BY_TIME_TABLE,
    ALERTS_BY_POLICY_TABLE,
    ALERTS_BY_USER_TABLE,
    POLICY_COUNTERS_TABLE,
)


# The queue clients' retries: a connection reset, a timeout or a 5xx (503 server busy) is tried
# again up to 5 times, waiting about 4, 10, 28, 82 and 244 seconds before each (initial_backoff +
# increment_base ** n, n from 1, within random_jitter_range). The SDK's default waits about 18 s before
# the first retry and gives up after 3: a fan-out tick of 10,000 sends that meets a few connection
# resets would stall a sender for 18 s each time. Keyword arguments, because the sync and the async
# clients each build their own `ExponentialRetry` from them. (The table clients keep azure-core's
# default: 3 retries of a reset, a timeout or a 5xx, from 0.8 s, exponential.)
class QueueRetry(TypedDict):
    initial_backoff: int
    increment_base: int
    random_jitter_range: int
    retry_total: int
    retry_read: int
    retry_connect: int
    retry_status: int


QUEUE_RETRY: QueueRetry = {
    "initial_backoff": 1,
    "increment_base": 3,
    "random_jitter_range": 1,
    "retry_total": 5,
    # Each kind has its own cap as well (3 by default): resets, refused connections, 5xx.
    "retry_read": 5,
    "retry_connect": 5,
    "retry_status": 5,
}


def queue_retry() -> ExponentialRetry:
    """The sync queue client's retry policy (`QUEUE_RETRY`)."""
    return ExponentialRetry(**QUEUE_RETRY)


class Storage:
    """The connector's tables, its pull queue and its alert queue (base64, as host.json's messageEncoding expects).

    `pull_sender` sends many pull messages at once (the fan-out); a Storage built without one
    (tests and benchmarks that never fan out) raises if asked for it.
    """

    def __init__(
        self,
        tables: TableServiceClient,
        queues: QueueServiceClient,
        *,
        table_prefix: str,
        pull_queue: str,
        alert_queue: str = "alert-notify",
        pull_sender: QueueSender | None = None,
    ) -> None:
        self._tables = tables
        self._pull_sender = pull_sender
        self._queues = queues
        self._prefix = table_prefix
        self.pull_queue_name = pull_queue
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()
        self._ensured = False
        self.pull_queue = self._queue(pull_queue)
        self.poison_queue = self._queue(f"{pull_queue}-poison")
        self.alert_queue = self._queue(alert_queue)
        self.alert_poison_queue = self._queue(f"{alert_queue}-poison")

    def _queue(self, name: str) -> QueueClient:
        return self._queues.get_queue_client(
            name,
            message_encode_policy=TextBase64EncodePolicy(),
            message_decode_policy=BinaryBase64DecodePolicy(),
        )

    @property
    def pull_sender(self) -> QueueSender:
        if self._pull_sender is None:
            raise RuntimeError("This Storage was built without a pull sender (core.runtime.build_storage makes one)")
        return self._pull_sender

    def table(self, name: str) -> TableClient:
        with self._lock:
            client = self._clients.get(name)
            if client is None:
                client = self._tables.get_table_client(f"{self._prefix}{name}")
                self._clients[name] = client
            return client

    def ensure(self) -> None:
        """Create the tables and queues if missing; once per worker."""
        if self._ensured:
            return

        def create_table(name: str) -> None:
            with contextlib.suppress(ResourceExistsError):
                self._tables.create_table(f"{self._prefix}{name}")

        def create_queue(queue: QueueClient) -> None:
            with contextlib.suppress(ResourceExistsError):
                queue.create_queue()

        # Side by side: on a cold start these 16 requests would otherwise wait one after another.
        queues = (self.pull_queue, self.poison_queue, self.alert_queue, self.alert_poison_queue)
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="ensure") as pool:
            done = [pool.submit(create_table, name) for name in ALL_TABLES]
            done += [pool.submit(create_queue, queue) for queue in queues]
        for future in done:
            future.result()  # the first failure, raised
        self._ensured = True
        logger.info("Storage ready: tables %s* and queue %s", self._prefix, self.pull_queue_name)

    def close(self) -> None:
        if self._pull_sender is not None:
            self._pull_sender.close()
        self._tables.close()
        self._queues.close()


BATCH_LIMIT = 100  # the most operations one entity group transaction takes

# The transaction errors that mean another writer came first (read again and decide again); any other
# (a row too large, a bad property) would fail the same way again, so it is raised as it is.
CONFLICT_CODES = frozenset({"UpdateConditionNotSatisfied", "EntityAlreadyExists"})


def replace_if_unchanged(table: TableClient, entity: dict[str, Any], etag: str) -> dict[str, Any]:
    """Replace the row only if it still has `etag` (the azure-data-tables samples' conditional update).

    Raises `StaleWrite` when another writer changed or deleted it since it was read; returns the
    service's answer (its `etag` is the row's new version).
    """
    try:
        return table.update_entity(
            entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
        )
    except (ResourceModifiedError, ResourceNotFoundError) as exc:
        raise StaleWrite() from exc


def is_conflict(exc: TableTransactionError) -> bool:
    """Whether a failed transaction lost a race (an ETag or an existing row), rather than being invalid."""
    code = getattr(exc, "error_code", None)
    return getattr(code, "value", code) in CONFLICT_CODES


def create_or_replace_if_unchanged(entity: dict[str, Any], read: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """The transaction operation writing `entity` over the row that was `read`.

    A create when none was read (it fails if another writer created the row since), else a
    replace conditional on the ETag it was read with; either failure is a conflict (`is_conflict`).
    """
    if read is None:
        return ("create", entity)
    etag = read.metadata["etag"]  # type: ignore[attr-defined]
    return (
        "update",
        entity,
        {"mode": UpdateMode.REPLACE, "etag": etag, "match_condition": MatchConditions.IfNotModified},
    )


MAX_CONFLICT_RETRIES = 20


def _pause(seconds: float) -> None:
    """The jittered pause between a lost race and the next read (tests replace it)."""
    time.sleep(seconds)


class ConflictRetries:
    """The lost races of one read-decide-transact loop on a partition.

    `submit` sends a transaction: True when it committed; False when another writer came first
    (after a short jittered pause; read again and decide again); the transaction's error when it
    is invalid (it would fail the same way again); `contention` when it lost more than
    MAX_CONFLICT_RETRIES times (raised to the host, which retries the message later).
    """

    def __init__(self, what: str, contention: Callable[[str], Exception]) -> None:
        self._what = what
        self._contention = contention
        self.conflicts = 0

    def submit(self, table: TableClient, operations: list[Any]) -> bool:
        try:
            table.submit_transaction(operations)
        except TableTransactionError as exc:
            if not is_conflict(exc):
                raise
            self.conflicts += 1
            if self.conflicts > MAX_CONFLICT_RETRIES:
                raise self._contention(f"{self._what} kept changing") from exc
            logger.debug("Transaction on %s conflicted (%s); re-reading", self._what, exc.message)
            _pause(random.uniform(0, min(0.05 * 2**self.conflicts, 1.0)))
            return False
        return True
