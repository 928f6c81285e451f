"""The activity store against real Azurite: idempotent writes and exact counts under concurrency."""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.queue import QueueServiceClient

from activities.layout import account_api, account_recent_key, last_seen_us, raw_from_entity
from activities.reader import ActivityQueries
from activities.writer import ActivityStore
from core.clock import FakeClock
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
    """The listing copies (their recency index rows, RowKey "~...", follow them in the partition)."""
    rows = store.accounts.query_entities("PartitionKey eq @pk and RowKey lt '~'", parameters={"pk": "account"})
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


@pytest.mark.slow
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
    ledger = list(
        store.by_subscription.query_entities(
            "PartitionKey eq @pk and RowKey lt 'f'", parameters={"pk": SUB}, select=["RowKey"]
        )
    )
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


# --- the accounts' recency index -------------------------------------------------------------


def _index(store: ActivityStore) -> list[str]:
    """Check the index invariant and return the account keys in listing order.

    Every copy names exactly one index row, that row exists, sits at the copy's lastSeen and
    holds the copy's properties; there is no other index row.
    """
    rows = list(store.accounts.query_entities("PartitionKey eq @pk", parameters={"pk": "account"}))
    copies = {r["RowKey"]: r for r in rows if not r["RowKey"].startswith("~")}
    index = {r["RowKey"]: r for r in rows if r["RowKey"].startswith("~")}
    assert sorted(index) == sorted(c["index_rk"] for c in copies.values())
    for key, copy in copies.items():
        assert copy["index_rk"] == account_recent_key(last_seen_us(copy), key)
        row = index[copy["index_rk"]]
        assert row["account_key"] == key and account_api(row) == account_api(copy)
        assert row["version"] == copy["version"]
    return [index[rk]["account_key"] for rk in sorted(index)]


def _expected_order(items: list[tuple[dict[str, Any], Any]]) -> list[str]:
    last: dict[str, datetime] = {}
    for _, a in items:
        last[a.user.id] = max(last.get(a.user.id, a.timestamp), a.timestamp)
    return sorted(last, key=lambda k: (-last[k].timestamp(), k))


def test_account_index_follows_last_seen_under_redelivery(storage: Storage) -> None:
    store = ActivityStore(storage)
    first = _items(60, seed=21)
    store.save(SUB, first)
    assert _index(store) == _expected_order(first)
    store.save(SUB, first)  # a redelivery: nothing moves
    assert _index(store) == _expected_order(first)
    later = _items(5, seed=22, start=T0 + timedelta(days=2))
    store.save(SUB, later + first[:10])  # lastSeen moves for some accounts; the old rows go
    assert _index(store) == _expected_order(first + later)
    store.save(SUB, later)
    assert _index(store) == _expected_order(first + later)


@pytest.mark.slow
def test_account_index_exact_under_concurrent_saves(storage: Storage) -> None:
    store = ActivityStore(storage)
    subs = [f"aaaaaaaa-0000-0000-0000-00000000000{i}" for i in range(1, 5)]
    parts = [_items(80, seed=30 + i, start=T0 + timedelta(minutes=3 * i), sub=sub) for i, sub in enumerate(subs)]
    errors: list[BaseException] = []

    def work(sub: str, part: list[Any]) -> None:
        try:
            for start in range(0, len(part), 20):  # several saves each, so lastSeen moves while others save
                ActivityStore(storage).save(sub, part[start : start + 20])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(sub, part)) for sub, part in zip(subs, parts, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    everything = [pair for part in parts for pair in part]
    assert _index(store) == _expected_order(everything)
    expected = Counter(a.user.id for _, a in everything)
    assert {k: v["activityCount"] for k, v in _accounts(store).items()} == dict(expected)


class _CrashingAccounts:
    """The accounts table, failing its next transactions as a crash would (nothing is written)."""

    def __init__(self, table: Any, crashes: int) -> None:
        self._table = table
        self.crashes = crashes

    def submit_transaction(self, operations: Any, **kwargs: Any) -> Any:
        if self.crashes:
            self.crashes -= 1
            raise ConnectionError("the worker died before the transaction was sent")
        return self._table.submit_transaction(operations, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._table, name)


def test_account_index_after_a_crash_and_the_retry(storage: Storage) -> None:
    store = ActivityStore(storage)
    first = _items(30, seed=41)
    store.save(SUB, first)
    listed = _index(store)
    crashing = ActivityStore(storage)
    crashing.accounts = _CrashingAccounts(crashing.accounts, crashes=1)  # type: ignore[assignment]
    later = _items(6, seed=42, start=T0 + timedelta(days=1))
    with pytest.raises(ConnectionError):
        crashing.save(SUB, later)
    # The account ledgers moved on, the copies and their index did not: every account is still
    # listed exactly once, at its old place.
    assert sorted(_index(store)) == sorted(listed)
    crashing.save(SUB, later)  # the retry of the message repairs the copies and moves their index rows
    assert _index(store) == _expected_order(first + later)


def _as_before_the_index(store: ActivityStore) -> None:
    """Make the account listing look as the writer left it before the recency index existed."""
    for row in list(store.accounts.query_entities("PartitionKey eq 'account'")):
        if row["RowKey"].startswith("~"):
            store.accounts.delete_entity("account", row["RowKey"])
        else:
            row.pop("index_rk", None)
            store.accounts.upsert_entity(row, mode=UpdateMode.REPLACE)


def test_account_copy_from_before_the_index_is_indexed_by_its_next_save(storage: Storage) -> None:
    store = ActivityStore(storage)
    first = _items(20, seed=51)
    store.save(SUB, first)
    _as_before_the_index(store)
    later = _items(30, seed=52, start=T0 + timedelta(days=1))
    store.save(SUB, later)  # each account's next activity indexes its copy
    assert _index(store) == _expected_order(first + later)


def test_the_daily_maintenance_indexes_copies_from_before_the_index(storage: Storage) -> None:
    store = ActivityStore(storage)
    items = _items(20, seed=61)
    store.save(SUB, items)
    _as_before_the_index(store)
    rows = list(store.accounts.query_entities("PartitionKey eq 'account'"))
    assert rows and not [r for r in rows if r["RowKey"].startswith("~") or r.get("index_rk")]
    assert store.index_accounts() == len(rows)
    assert _index(store) == _expected_order(items)
    assert store.index_accounts() == 0  # idempotent


def test_account_pages_while_accounts_become_active(storage: Storage) -> None:
    store = ActivityStore(storage)
    queries = ActivityQueries(storage, clock=FakeClock(T0 + timedelta(days=30)))
    users = [(f"user{i:02d}@contoso.com", f"User {i}", str(uuid.UUID(int=i + 1)), "203.0.113.9") for i in range(12)]
    rng = random.Random(61)
    items = []
    for i, user in enumerate(users):
        raw = make_event(SUB, T0 + timedelta(minutes=i), rng=rng, user=user)
        items.append((raw, normalize_event(raw, ingested_at=T0)))
    store.save(SUB, items)
    order = [str(uuid.UUID(int=i + 1)) for i in reversed(range(12))]  # newest first

    page = queries.list_accounts(4, None, None, caller="c")
    assert [a["id"] for a in page.items] == order[:4] and page.continuation
    assert page.requests == 1
    # Between pages: an account already shown and one not shown yet become the newest.
    moved = []
    for at, oid in ((1, order[1]), (2, order[8])):
        user = next(u for u in users if u[2] == oid)
        raw = make_event(SUB, T0 + timedelta(hours=at), rng=rng, user=user)
        moved.append((raw, normalize_event(raw, ingested_at=T0)))
    store.save(SUB, moved)
    rest: list[str] = []
    token: str | None = page.continuation
    while token:
        page = queries.list_accounts(4, token, None, caller="c")
        assert page.requests == 1 and len(page.items) <= 4
        rest.extend(a["id"] for a in page.items)
        token = page.continuation
    # The listing goes on after the last account shown: nobody twice, only the one that moved
    # ahead of the position is not shown again (as a sorted read of the whole partition would).
    assert rest == [oid for oid in order[4:] if oid != order[8]]
    assert [a["id"] for a in queries.list_accounts(3, None, None, caller="c").items] == [order[8], order[1], order[0]]
    assert queries.list_accounts(12, None, None, caller="c").continuation is None


def test_activities_are_read_by_id_in_the_order_asked_without_raw_events_and_missing_ones_left_out(
    storage: Storage,
) -> None:
    store = ActivityStore(storage)
    queries = ActivityQueries(storage, clock=FakeClock(T0))
    items = _items(30, seed=5)
    store.save(SUB, items)
    wanted = [a.id for _, a in reversed(items)][:20]
    asked = [*wanted[:10], "/subscriptions/gone/events/1", *wanted[10:]]
    found = queries.get_activities(asked)
    assert [a["id"] for a in found] == wanted
    one = queries.get_activity(wanted[3])
    assert one is not None and one.pop("raw") and found[3] == one  # the same activity, less its raw event
    assert queries.get_activities([]) == []
