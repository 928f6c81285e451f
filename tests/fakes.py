"""In-memory fakes of the ports in `core.ports`, for testing orchestration logic in milliseconds.

They keep the adapters' contracts: conditional writes raise `StaleWrite` / `AlreadyExists` on a
stale ETag or an existing row, the activity writer stores each event once and counts exactly,
and the fake ARM pages an event list the way the Activity Log does (`nextLink` until the last
page) and checks links with the real adapter's rules. Each fake counts what it was asked, so a
test can assert the work done (pages read, writes made, messages sent).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from activities.layout import account_key, add_day_counts, encode_day_counts
from activities.reader import ActivityQuery, Page, PerDay, per_day
from activities.writer import SaveResult
from core.arm import ArmClient, ArmSubscription
from core.optimistic import AlreadyExists, StaleWrite
from core.ports import ActivityEvaluator, Decide
from core.timefmt import wire_time
from ingestion.messages import PullMessage
from ingestion.models import Activity, parse_timestamp
from policies.alert_queries import AlertQuery
from policies.models import Alert, PolicyRecord
from state.records import ConnectorRecord, SubscriptionRecord

R = TypeVar("R", ConnectorRecord, SubscriptionRecord)
_etags = itertools.count(1)


class _Row:
    """One conditionally written row; `before_write` lets a test slip in a concurrent writer."""

    def __init__(self) -> None:
        self.rows: dict[str, Any] = {}
        self.reads = 0
        self.writes = 0
        self.before_write: Callable[[], None] | None = None

    def _get(self, key: str) -> Any:
        self.reads += 1
        found = self.rows.get(key)
        return None if found is None else replace(found)

    def _insert(self, key: str, record: R) -> R:
        self._interfere()
        if key in self.rows:
            raise AlreadyExists()
        return self._store(key, record)

    def _replace(self, key: str, record: R) -> R:
        self._interfere()
        current = self.rows.get(key)
        if record.etag is None:
            raise ValueError("a replace needs the ETag of the record that was read")
        if current is None or current.etag != record.etag:
            raise StaleWrite()
        return self._store(key, record)

    def _store(self, key: str, record: R) -> R:
        self.writes += 1
        stored = replace(record, etag=f"W/{next(_etags)}")
        self.rows[key] = stored
        return replace(stored)

    def _interfere(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()


class FakeConnectorState(_Row):
    def get(self) -> ConnectorRecord | None:
        return self._get("azure")

    def insert(self, record: ConnectorRecord) -> ConnectorRecord:
        return self._insert("azure", record)

    def replace(self, record: ConnectorRecord) -> ConnectorRecord:
        return self._replace("azure", record)


class FakeSubscriptionState(_Row):
    def list(self) -> list[SubscriptionRecord]:
        self.reads += 1
        return sorted((replace(r) for r in self.rows.values()), key=lambda s: s.display_name.lower())

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        return self._get(subscription_id)

    def insert(self, record: SubscriptionRecord) -> SubscriptionRecord:
        return self._insert(record.subscription_id, record)

    def replace(self, record: SubscriptionRecord) -> SubscriptionRecord:
        return self._replace(record.subscription_id, record)


class FakeActivityWriter:
    """Keeps each activity once (by id) and exact per-subscription counts, in total and per day.

    With an `evaluator`, each account's summary (its first time and the policies' burst counters)
    changes with the account's ledger, conditionally on the summary's version (a `before_account`
    hook can slip a concurrent writer in between), and the activities new to the subscription are
    evaluated before they are marked stored, as the real writer's order of writes has it.
    """

    def __init__(self, evaluator: ActivityEvaluator | None = None) -> None:
        self.activities: dict[str, Activity] = {}
        self.by_subscription: dict[str, set[str]] = defaultdict(set)
        self.days: dict[str, dict[str, int]] = defaultdict(dict)
        self.accounts: dict[str, tuple[int, dict[str, Any]]] = {}  # key -> (version, summary)
        self.account_ledgers: dict[str, set[str]] = defaultdict(set)
        self.saves = 0
        self.fail_with: Exception | None = None
        self.evaluator = evaluator
        self.before_account: Callable[[], None] | None = None

    @property
    def summaries(self) -> dict[str, dict[str, Any]]:
        return {key: dict(summary) for key, (_, summary) in self.accounts.items()}

    def save(self, subscription_id: str, items: Iterable[tuple[dict[str, Any], Activity]]) -> SaveResult:
        self.saves += 1
        if self.fail_with is not None:
            raise self.fail_with
        received = 0
        fresh: dict[str, Activity] = {}
        for _, activity in items:
            received += 1
            if activity.id not in self.by_subscription[subscription_id]:
                fresh.setdefault(activity.id, activity)
        per_account: dict[str, list[Activity]] = defaultdict(list)
        for activity in fresh.values():
            key = account_key(activity.user)
            if key:
                per_account[key].append(activity)
        for key, acts in per_account.items():
            self._count_for_account(key, acts)
        if self.evaluator is not None and fresh:
            summaries = {key: self.accounts[key][1] for key in per_account}
            first_seen = {key: summary["first_seen"] for key, summary in summaries.items()}
            self.evaluator.evaluate(list(fresh.values()), first_seen, summaries)
        for activity in fresh.values():
            self.by_subscription[subscription_id].add(activity.id)
            self.activities[activity.id] = activity
        self.days[subscription_id] = add_day_counts(self.days[subscription_id], [a.timestamp for a in fresh.values()])
        total = len(self.by_subscription[subscription_id])
        return SaveResult(received, len(fresh), total, encode_day_counts(self.days[subscription_id]))

    def _count_for_account(self, key: str, acts: list[Activity]) -> None:
        while True:
            version, current = self.accounts.get(key, (0, None))
            pending = [a for a in acts if a.id not in self.account_ledgers[key]]
            if not pending:
                return
            merged: dict[str, Any] = dict(current or {})
            first = min(a.timestamp for a in pending)
            merged["first_seen"] = min(first, merged.get("first_seen", first))
            if self.evaluator is not None:
                for name, value in self.evaluator.burst_properties(current, pending).items():
                    if value is None:
                        merged.pop(name, None)
                    else:
                        merged[name] = value
            hook, self.before_account = self.before_account, None
            if hook is not None:
                hook()
            if self.accounts.get(key, (0, None))[0] != version:
                continue  # another writer changed the summary: read again, count again
            self.account_ledgers[key].update(a.id for a in pending)
            self.accounts[key] = (version + 1, merged)

    def index_accounts(self, *, max_rows: int = 5_000) -> int:
        return 0  # the fake keeps no account index

    def delete_older_than(self, cutoff: datetime, *, max_rows: int = 20_000) -> int:
        old = [a.id for a in self.activities.values() if a.timestamp < cutoff][:max_rows]
        for activity_id in old:
            del self.activities[activity_id]
        return len(old)


class FakeActivityReader:
    """The per-day chart's read over the fake subscription records (the copies the pull writes).

    Only `activity_per_day` is faked: the searches are tested on Azurite (tests/integration).
    """

    def __init__(self, subscriptions: FakeSubscriptionState) -> None:
        self.subscriptions = subscriptions

    def activity_per_day(self, days: int, today: datetime) -> PerDay:
        records = self.subscriptions.list()
        answer = per_day(days, today, [(r.subscription_id, r.display_name, r.day_counts) for r in records])
        return replace(answer, requests=1)

    def search(self, query: ActivityQuery, limit: int, continuation: str | None, *, caller: str) -> Page:
        raise NotImplementedError("searches are tested against Azurite")

    def get_activity(self, activity_id: str) -> dict[str, Any] | None:
        raise NotImplementedError("searches are tested against Azurite")

    def get_activities(self, activity_ids: Sequence[str]) -> list[dict[str, Any]]:
        raise NotImplementedError("searches are tested against Azurite")

    def list_accounts(self, limit: int, continuation: str | None, account_type: str | None, *, caller: str) -> Page:
        raise NotImplementedError("searches are tested against Azurite")

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        raise NotImplementedError("searches are tested against Azurite")


@dataclass
class Sent:
    message: PullMessage
    delay_seconds: int


class FakePullQueue:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def send(self, message: PullMessage, *, delay_seconds: int = 0) -> None:
        self.sent.append(Sent(message, delay_seconds))

    def send_many(self, messages: list[PullMessage]) -> None:
        for message in messages:
            self.send(message)

    def take(self) -> list[PullMessage]:
        taken, self.sent = [s.message for s in self.sent], []
        return taken


ARM_URL = "https://arm.test"


class FakeArm:
    """Subscriptions and their Activity Log events, paged like ARM (`page_size` events a page).

    `fail(subscription_id, error, times)` makes the next page requests of that subscription raise.
    Links are checked by the real adapter's rules, for the same endpoint.
    """

    def __init__(self, page_size: int = 50) -> None:
        self.subscriptions: list[ArmSubscription] = []
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.page_size = page_size
        self.page_reads: Counter[str] = Counter()  # subscription id -> pages served
        self.pages_served: Counter[tuple[str, str, int]] = Counter()  # (sub, window, page) -> times
        self.events_served: Counter[str] = Counter()  # event id -> times it was in a page served
        self.list_error: Exception | None = None
        self._failures: dict[str, list[Exception]] = defaultdict(list)
        self._links = ArmClient(ARM_URL, _NoCredential(), f"{ARM_URL}/.default")

    def add_subscription(self, subscription_id: str, name: str, state: str = "Enabled") -> None:
        self.subscriptions.append(ArmSubscription(subscription_id, name, state))

    def fail(self, subscription_id: str, error: Exception, times: int = 1) -> None:
        self._failures[subscription_id].extend([error] * times)

    # --- the port ---

    def list_subscriptions(self) -> list[ArmSubscription]:
        if self.list_error is not None:
            raise self.list_error
        return list(self.subscriptions)

    def activity_log_url(self, subscription_id: str, start: datetime, end: datetime) -> str:
        path = f"/subscriptions/{subscription_id}/providers/Microsoft.Insights/eventtypes/management/values"
        return f"{ARM_URL}{path}?start={wire_time(start)}&end={wire_time(end)}&page=0"

    def check_activity_log_link(self, subscription_id: str, url: str) -> str:
        return self._links.check_activity_log_link(subscription_id, url)

    def activity_log_page(self, subscription_id: str, url: str) -> bytes:
        self.check_activity_log_link(subscription_id, url)
        if self._failures[subscription_id]:
            raise self._failures[subscription_id].pop(0)
        query = parse_qs(urlsplit(url).query)
        start, end = (_parsed(query[name][0]) for name in ("start", "end"))
        page = int(query["page"][0])
        self.page_reads[subscription_id] += 1
        self.pages_served[(subscription_id, f"{start}/{end}", page)] += 1
        inside = sorted((e for e in self.events[subscription_id] if start <= _when(e) <= end), key=_when, reverse=True)
        chunk = inside[page * self.page_size : (page + 1) * self.page_size]
        more = len(inside) > (page + 1) * self.page_size
        next_link = url.replace(f"&page={page}", f"&page={page + 1}") if more else None
        self.events_served.update(e["eventDataId"] for e in chunk)
        return json.dumps({"value": chunk, "nextLink": next_link}).encode()


def _parsed(value: str) -> datetime:
    parsed = parse_timestamp(value)
    assert parsed is not None
    return parsed


def _when(event: dict[str, Any]) -> datetime:
    return _parsed(event["eventTimestamp"])


class _NoCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("the fake ARM makes no request")


# --- policies and alerts ---------------------------------------------------------------------------


class FakePolicyStore:
    """Policies by id, conditional on the ETag like the table adapter."""

    def __init__(self) -> None:
        self.rows: dict[str, PolicyRecord] = {}

    def list(self) -> list[PolicyRecord]:
        return sorted(self.rows.values(), key=lambda r: (r.created_at, r.id))

    def get(self, policy_id: str) -> PolicyRecord | None:
        return self.rows.get(policy_id)

    def insert(self, record: PolicyRecord) -> PolicyRecord:
        if record.id in self.rows:
            raise AlreadyExists()
        return self._store(record)

    def replace(self, record: PolicyRecord) -> PolicyRecord:
        current = self.rows.get(record.id)
        if current is None or record.etag is None or current.etag != record.etag:
            raise StaleWrite()
        return self._store(record)

    def delete(self, policy_id: str) -> bool:
        return self.rows.pop(policy_id, None) is not None

    def _store(self, record: PolicyRecord) -> PolicyRecord:
        stored = replace(record, etag=f"W/{next(_etags)}")
        self.rows[record.id] = stored
        return stored


class FakeAlertStore:
    """Alerts by id and counter partitions (ledger + summary), with the adapter's contracts.

    `before_count` lets a test slip a concurrent writer in between a counter's read and its write
    (the write then fails on the changed summary and is read and decided again, as the adapter does).
    """

    def __init__(self) -> None:
        self.alerts: dict[str, Alert] = {}
        self.ledgers: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.summaries: dict[str, tuple[int, dict[str, Any]]] = {}
        self.creates = 0
        self.before_count: Callable[[], None] | None = None
        self.fail_put: Exception | None = None

    def count_once(
        self, partition: str, keys: Sequence[str], decide: Decide
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        ledger = self.ledgers[partition]
        while True:
            pending = sorted(k for k in set(keys) if k not in ledger)
            version, summary = self.summaries.get(partition, (0, None))
            if not pending:
                return (dict(summary) if summary is not None else None), {k: dict(ledger[k]) for k in keys}
            rows, new_summary = decide(dict(summary) if summary is not None else None, pending)
            hook, self.before_count = self.before_count, None
            if hook is not None:
                hook()
            if self.summaries.get(partition, (0, None))[0] != version or any(k in ledger for k in pending):
                continue  # another writer came first: read again, decide again
            for key in pending:
                ledger[key] = dict(rows[key])
            self.summaries[partition] = (version + 1, dict(new_summary))

    def put_alerts(self, alerts: Sequence[Alert]) -> list[tuple[Alert, bool]]:
        return [self.put_alert(alert) for alert in alerts]

    def put_alert(self, alert: Alert) -> tuple[Alert, bool]:
        if self.fail_put is not None:
            failure, self.fail_put = self.fail_put, None
            raise failure
        current = self.alerts.get(alert.id)
        if current is None:
            self.creates += 1
            self.alerts[alert.id] = replace(alert, etag=f"W/{next(_etags)}")
            return self.alerts[alert.id], True
        ids = list(current.activity_ids)
        ids.extend(i for i in alert.activity_ids if i not in set(ids))
        merged = replace(
            current,
            activity_ids=tuple(ids[:100]),
            activity_count=max(current.activity_count, alert.activity_count),
            last_activity_at=max(current.last_activity_at, alert.last_activity_at),
            etag=f"W/{next(_etags)}",
        )
        self.alerts[alert.id] = merged
        return merged, False

    def get_alert(self, alert_id: str) -> Alert | None:
        return self.alerts.get(alert_id)

    def replace_alert(self, alert: Alert, *, index: bool = True) -> Alert:
        current = self.alerts.get(alert.id)
        if current is None or current.etag != alert.etag:
            raise StaleWrite()
        self.alerts[alert.id] = replace(alert, etag=f"W/{next(_etags)}")
        return self.alerts[alert.id]

    def search(self, query: AlertQuery, limit: int, continuation: str | None, *, caller: str) -> Page:
        raise NotImplementedError("alert searches are tested against Azurite")


@dataclass
class QueuedAlert:
    alert_id: str
    attempt: int
    delay_seconds: int


class FakeAlertQueue:
    def __init__(self) -> None:
        self.sent: list[QueuedAlert] = []
        self.poisoned: list[QueuedAlert] = []

    def send(self, alert_id: str, *, attempt: int = 1, delay_seconds: int = 0) -> None:
        self.sent.append(QueuedAlert(alert_id, attempt, delay_seconds))

    def poison(self, alert_id: str, *, attempt: int) -> None:
        self.poisoned.append(QueuedAlert(alert_id, attempt, 0))

    def take(self) -> list[QueuedAlert]:
        taken, self.sent = self.sent, []
        return taken
