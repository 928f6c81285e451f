"""The ports: what the handlers need from the outside world, as Protocols.

`core.runtime` builds one adapter per port, once per worker (Table Storage, Queue Storage, ARM);
the tests build in-memory fakes of the same Protocols (`tests/fakes.py`). Handlers take ports as
arguments and never build an adapter themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from activities.reader import ActivityQuery, Page, PerDay
    from activities.writer import SaveResult
    from core.arm import ArmSubscription
    from ingestion.messages import PullMessage
    from ingestion.models import Activity
    from state.records import ConnectorRecord, SubscriptionRecord


class ConnectorState(Protocol):
    """The connector record. Writes raise StaleWrite / AlreadyExists when another writer came first."""

    def get(self) -> ConnectorRecord | None: ...
    def insert(self, record: ConnectorRecord) -> ConnectorRecord: ...
    def replace(self, record: ConnectorRecord) -> ConnectorRecord: ...


class SubscriptionState(Protocol):
    """The subscription records (watermark, lease, window, counts, status), conditional like the connector's."""

    def list(self) -> list[SubscriptionRecord]: ...
    def get(self, subscription_id: str) -> SubscriptionRecord | None: ...
    def insert(self, record: SubscriptionRecord) -> SubscriptionRecord: ...
    def replace(self, record: SubscriptionRecord) -> SubscriptionRecord: ...


class ActivityWriter(Protocol):
    """Stores activities and their accounts exactly once per event; deletes old ones."""

    def save(self, subscription_id: str, items: Iterable[tuple[dict[str, Any], Activity]]) -> SaveResult: ...
    def delete_older_than(self, cutoff: datetime, *, max_rows: int = ...) -> int: ...
    def index_accounts(self, *, max_rows: int = ...) -> int: ...


class ActivityReader(Protocol):
    """Searches what the writer stored; continuation tokens are bound to `caller`."""

    def search(self, query: ActivityQuery, limit: int, continuation: str | None, *, caller: str) -> Page: ...
    def get_activity(self, activity_id: str) -> dict[str, Any] | None: ...
    def list_accounts(self, limit: int, continuation: str | None, account_type: str | None, *, caller: str) -> Page: ...
    def get_account(self, account_id: str) -> dict[str, Any] | None: ...
    def activity_per_day(self, days: int, today: datetime) -> PerDay:
        """Every subscription's activities per UTC day, the `days` days ending with `today`'s."""
        ...


class PullQueue(Protocol):
    """The pull queue: one message per subscription to pull."""

    def send(self, message: PullMessage, *, delay_seconds: int = 0) -> None: ...
    def send_many(self, messages: list[PullMessage]) -> None:
        """Send every message, several at once; raise the first failure after trying them all."""
        ...


class Arm(Protocol):
    """ARM with the connector's own identity. Failures are `core.arm` domain errors."""

    def list_subscriptions(self) -> list[ArmSubscription]: ...
    def activity_log_url(self, subscription_id: str, start: datetime, end: datetime) -> str: ...
    def check_activity_log_link(self, subscription_id: str, url: str) -> str: ...
    def activity_log_page(self, subscription_id: str, url: str) -> bytes: ...
