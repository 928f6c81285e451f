"""Activities per day against real Azurite: counted with the ledger, exact under redelivery and concurrency,
and read for every subscription in one query."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from activities.layout import (
    DAY_COUNTS,
    DAY_COUNTS_KEPT,
    SUBSCRIPTION_SUMMARY_RK,
    day_counts,
    day_key,
    encode_day_counts,
)
from activities.reader import ActivityQueries
from activities.writer import ActivityStore
from core.clock import FakeClock
from core.storage import CONNECTOR_TABLE, Storage
from ingestion.models import Activity
from ingestion.normalize import normalize_event
from state.records import SubscriptionRecord
from state.subscriptions import close_window
from state.tables import TableSubscriptionState
from tests.support.events import make_event

pytestmark = pytest.mark.integration

SUB = "bbbbbbbb-0000-0000-0000-000000000001"
MIDNIGHT = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


@pytest.fixture
def storage(storage_connection_string: str) -> Storage:
    s = Storage(
        TableServiceClient.from_connection_string(storage_connection_string),
        QueueServiceClient.from_connection_string(storage_connection_string),
        table_prefix="t" + uuid.uuid4().hex[:10],
        pull_queue="q" + uuid.uuid4().hex[:10],
    )
    s.ensure()
    return s


def _items(n: int, start: datetime, step: timedelta, seed: int = 1) -> list[tuple[dict[str, Any], Activity]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        raw = make_event(SUB, start + step * i, rng=rng)
        out.append((raw, normalize_event(raw, ingested_at=start + timedelta(days=1))))
    return out


def _expected(items: list[tuple[dict[str, Any], Activity]]) -> dict[str, int]:
    return dict(Counter(day_key(a.timestamp) for _, a in items))


def _summary_days(store: ActivityStore) -> dict[str, int]:
    return day_counts(store.by_subscription.get_entity(SUB, SUBSCRIPTION_SUMMARY_RK).get(DAY_COUNTS))


def test_events_across_midnight_count_on_two_days_and_a_redelivery_counts_nothing(storage: Storage) -> None:
    store = ActivityStore(storage)
    items = _items(120, MIDNIGHT - timedelta(minutes=30), timedelta(seconds=30))  # 23:30 to 00:29:30
    first = store.save(SUB, items)
    assert day_counts(first.subscription_days) == {"2026-11-20": 60, "2026-11-21": 60} == _summary_days(store)
    again = store.save(SUB, items)  # a redelivered page
    overlap = store.save(SUB, items[90:] + _items(5, MIDNIGHT + timedelta(hours=2), timedelta(minutes=1), seed=2))
    assert again.stored == 0 and again.subscription_days == first.subscription_days
    assert overlap.stored == 5
    assert day_counts(overlap.subscription_days) == {"2026-11-20": 60, "2026-11-21": 65} == _summary_days(store)
    assert sum(day_counts(overlap.subscription_days).values()) == overlap.subscription_total == 125


@pytest.mark.slow
def test_concurrent_overlapping_saves_count_each_day_exactly(storage: Storage) -> None:
    items = _items(300, MIDNIGHT - timedelta(hours=5), timedelta(minutes=2), seed=3)  # 10 hours over two days
    slices = [items[0:200], items[100:300], items[50:250], items, items[::-1]]
    errors: list[BaseException] = []

    def work(part: list[tuple[dict[str, Any], Activity]]) -> None:
        try:
            ActivityStore(storage).save(SUB, part)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in slices]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = ActivityStore(storage)
    assert _summary_days(store) == _expected(items) == {"2026-11-20": 150, "2026-11-21": 150}
    assert store.subscription_count(SUB) == 300


def test_old_days_are_dropped_by_the_same_write(storage: Storage) -> None:
    store = ActivityStore(storage)
    start = MIDNIGHT - timedelta(days=DAY_COUNTS_KEPT + 20)
    old = _items(DAY_COUNTS_KEPT + 20, start, timedelta(days=1), seed=4)  # one event a day
    result = store.save(SUB, old)
    days = _summary_days(store)
    assert len(days) == DAY_COUNTS_KEPT and set(days.values()) == {1}
    assert min(days) == day_key(start + timedelta(days=20)) and max(days) == day_key(MIDNIGHT - timedelta(days=1))
    assert result.subscription_total == DAY_COUNTS_KEPT + 20  # the total still counts every event
    entity = store.by_subscription.get_entity(SUB, SUBSCRIPTION_SUMMARY_RK)
    assert len(entity[DAY_COUNTS]) < 500  # compact: about 4 characters a day


def test_the_chart_reads_every_subscription_in_one_query(storage: Storage) -> None:
    subscriptions = TableSubscriptionState(storage.table(CONNECTOR_TABLE))
    now = MIDNIGHT + timedelta(hours=10)
    for i in range(30):
        record = SubscriptionRecord(
            subscription_id=f"{i:08d}-0000-0000-0000-000000000000",
            display_name=f"Sub {i:02d}",
            state="Enabled",
            discovered_at=now,
            connection_id="c",
            watermark=now,
        )
        inserted = subscriptions.insert(record)
        # What the pull writes after a stored page: the store's count and day map.
        days = encode_day_counts({"2026-11-20": i, "2026-11-21": 2 * i})
        subscriptions.replace(close_window(now, 3 * i, 0, days)(inserted))
    reader = ActivityQueries(storage, clock=FakeClock(now))
    answer = reader.activity_per_day(3, now)
    assert answer.days == ["2026-11-19", "2026-11-20", "2026-11-21"]
    assert [s.display_name for s in answer.subscriptions] == [f"Sub {i:02d}" for i in range(30)]
    assert [s.counts for s in answer.subscriptions] == [[0, i, 2 * i] for i in range(30)]
    assert answer.requests == 1
    stored = subscriptions.get(answer.subscriptions[5].subscription_id)
    assert stored is not None and day_counts(stored.day_counts) == {"2026-11-20": 5, "2026-11-21": 10}
