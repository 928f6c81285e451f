"""The ports: what the handlers need from the outside world, as Protocols.

`core.runtime` builds one adapter per port, once per worker (Table Storage, Queue Storage, ARM);
the tests build in-memory fakes of the same Protocols (`tests/fakes.py`). Handlers take ports as
arguments and never build an adapter themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from activities.reader import ActivityQuery, Page, PerDay
    from activities.writer import SaveResult
    from core.arm import ArmSubscription
    from ingestion.messages import PullMessage
    from ingestion.models import Activity
    from policies.alert_queries import AlertQuery
    from policies.models import Alert, PolicyRecord
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
    def get_activities(self, activity_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Those still stored, in that order, without their raw events."""
        ...

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


class ActivityEvaluator(Protocol):
    """Evaluates activities stored for the first time against the policies (idempotently: see `policies.engine`)."""

    def burst_properties(self, summary: Mapping[str, Any] | None, activities: Sequence[Activity]) -> dict[str, Any]:
        """An account summary's burst counters after counting `activities`; set in the same transaction."""
        ...

    def evaluate(
        self,
        activities: Sequence[Activity],
        first_seen: Mapping[str, datetime],
        accounts: Mapping[str, Mapping[str, Any]] | None = None,
        *,
        part: Literal["all", "early", "late"] = "all",
    ) -> None:
        """`first_seen`: account key -> its earliest stored activity's time; `accounts`: the summaries written.

        `part`: "early" evaluates the policies that need nothing of the accounts (while the writer
        counts them), "late" the others (after), "all" both.
        """
        ...


class PolicyStore(Protocol):
    """The policies. `replace` raises StaleWrite when the record changed since it was read."""

    def list(self) -> list[PolicyRecord]: ...
    def get(self, policy_id: str) -> PolicyRecord | None: ...
    def insert(self, record: PolicyRecord) -> PolicyRecord: ...
    def replace(self, record: PolicyRecord) -> PolicyRecord: ...
    def delete(self, policy_id: str) -> bool: ...


# decide(summary or None, keys not yet in the ledger) -> (their ledger rows' properties, the new summary's)
Decide = Callable[[dict[str, Any] | None, list[str]], tuple[dict[str, dict[str, Any]], dict[str, Any]]]


class AlertStore(Protocol):
    """Alerts, their index copies, and the counters (a ledger of what was counted beside a summary)."""

    def count_once(
        self, partition: str, keys: Sequence[str], decide: Decide
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """Count the keys not yet in the partition's ledger, in one transaction with the summary.

        Returns the summary and the ledger rows of `keys` (the ones found and the ones written).
        """
        ...

    def put_alerts(self, alerts: Sequence[Alert]) -> list[tuple[Alert, bool]]:
        """Create each alert (True), or keep the stored one, merging a burst's new activities (False)."""
        ...

    def get_alert(self, alert_id: str) -> Alert | None: ...
    def replace_alert(self, alert: Alert, *, index: bool = True) -> Alert:
        """If unchanged since read (StaleWrite otherwise); with `index`, its listing copies too."""
        ...

    def search(self, query: AlertQuery, limit: int, continuation: str | None, *, caller: str) -> Page: ...


class AlertQueue(Protocol):
    """The webhook queue: one message per alert to deliver; its `-poison` queue for the given up."""

    def send(self, alert_id: str, *, attempt: int = 1, delay_seconds: int = 0) -> None: ...
    def poison(self, alert_id: str, *, attempt: int) -> None: ...


class WebhookPoster(Protocol):
    """POSTs a body to an https:// URL; the HTTP status, or WebhookFailed when no answer came."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> int: ...
