"""The activity store against real Azurite: idempotent writes and exact counts under concurrency."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from activities.layout import account_api, raw_from_entity
from activities.writer import ActivityStore
from core.storage import Storage
from ingestion.normalize import normalize_event
from tests.support.events import make_event

pytestmark = pytest.mark.integration

SUB = "aaaaaaaa-0000-0000-0000-000000000001"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def storage(storage_connection_string: str) -> Storage:
    prefix = "t" + uuid.uuid4().hex[:10]
    s = Storage(
        TableServiceClient.from_connection_string(storage_connection_string),
        QueueServiceClient.from_connection_string(storage_connection_string),
        table_prefix=prefix,
        pull_queue="q" + uuid.uuid4().hex[:10],
    )
    s.ensure()
    return s


def _items(n: int, seed: int = 1, start: datetime = T0, sub: str = SUB):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        raw = make_event(sub, start + timedelta(seconds=i * 7), rng=rng)
        out.append((raw, normalize_event(raw, ingested_at=T0 + timedelta(hours=1))))
    return out


def _accounts(store: ActivityStore) -> dict[str, dict]:
    rows = store.accounts.query_entities("PartitionKey eq @pk", parameters={"pk": "account"})
    return {r["RowKey"]: account_api(r) for r in rows}


def test_save_is_idempotent_and_counts_exactly(storage: Storage) -> None:
    store = ActivityStore(storage)
    items = _items(250)
    first = store.save(SUB, items)
    assert (first.received, first.stored, first.subscription_total) == (250, 250, 250)
    again = store.save(SUB, items[100:] + _items(10, seed=2, start=T0 + timedelta(days=1)))
    assert (again.stored, again.subscription_total) == (10, 260)

    later = _items(10, 2, T0 + timedelta(days=1))
    expected = Counter(a.user.id for _, a in items) + Counter(a.user.id for _, a in later)
    accounts = _accounts(store)
    assert {k: v["activityCount"] for k, v in accounts.items()} == dict(expected)
    alice = accounts["11111111-1111-1111-1111-111111111111"]
    assert alice["upn"] == "alice@contoso.com" and alice["type"] == "user" and alice["subscriptions"] == [SUB]
    assert alice["firstSeen"] is not None and alice["firstSeen"] <= alice["lastSeen"]

    raw, activity = items[0]
    row = store.activities.get_entity(activity.id[0], activity.id)
    assert raw_from_entity(row) == raw


def test_concurrent_overlapping_saves_count_each_event_once(storage: Storage) -> None:
    store = ActivityStore(storage)
    items = _items(300, seed=5)
    slices = [items[0:200], items[100:300], items[50:250], items]
    errors: list[BaseException] = []

    def work(part):
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
    assert store.subscription_count(SUB) == 300
    expected = Counter(a.user.id for _, a in items)
    assert {k: v["activityCount"] for k, v in _accounts(store).items()} == dict(expected)
    ledger = list(store.by_subscription.query_entities("PartitionKey eq @pk and RowKey lt 'f'",
                                                        parameters={"pk": SUB}, select=["RowKey"]))
    assert len(ledger) == 300


def test_large_raw_event_is_split_and_round_trips(storage: Storage) -> None:
    store = ActivityStore(storage)
    raw = make_event(SUB, T0, rng=random.Random(9))
    raw["properties"] = {"big": "x" * 200_000, "responseBody": "é" * 40_000}
    activity = normalize_event(raw, ingested_at=T0)
    store.save(SUB, [(raw, activity)])
    row = store.activities.get_entity(activity.id[0], activity.id)
    assert row["raw_chunks"] > 1
    assert raw_from_entity(row) == raw


def test_retention_deletes_old_activities_but_keeps_accounts(storage: Storage) -> None:
    store = ActivityStore(storage)
    old = _items(30, seed=11, start=T0 - timedelta(days=200))
    new = _items(20, seed=12, start=T0)
    store.save(SUB, old + new)
    before = _accounts(store)
    deleted = store.delete_older_than(T0 - timedelta(days=180))
    assert deleted == 30
    left = list(store.by_time.query_entities("PartitionKey ne ''", select=["id"]))
    assert {r["id"] for r in left} == {a.id for _, a in new}
    assert _accounts(store) == before
    for _, a in old:
        with pytest.raises(ResourceNotFoundError):
            store.activities.get_entity(a.id[0], a.id)
    assert store.delete_older_than(T0 - timedelta(days=180)) == 0
