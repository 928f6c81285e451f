"""Benchmark of the activity search against a real Azurite: the partition design vs a naive table.

    python -m bench.bench_query [--activities 100000] [--users 50] [--subscriptions 10] [--days 30]

Starts its own Azurite (in memory), stores N activities by writing the index rows the measured
queries read (``activitiesbyuser``, ``activitiesbysub``, ``activitiesbytime``, the UPN alias
rows) straight through the entity mapping of ``activities.layout`` with batch transactions
(see ``submit_batch``), plus a "naive" table: the same rows in one table keyed by id, as
``activities`` is, with no raw event. Every measured answer is first checked against the
dataset. Azurite's own per-row cost dominates the set-up (about 0.3 ms per row on one core).

Then it measures, side by side:

* the first page of 100 activities of one user through ``activities.reader`` (the account's
  ledger partition), against the naive approach: filter the naive table on ``user_key``, read
  every match and sort newest first in the app (a table keyed by id has no time order);
* the same naive filter on the time-ordered table (stops after 100 matches, but still a scan);
* the first page of one subscription, and the first page of a one-day range.

Storage requests are counted with a client-wide ``raw_response_hook``. Note that Azurite
evaluates every query against every row of the table, partition or not: its milliseconds show
the cost of scanning, transferring and sorting rows, not the index seek a partition query gets
from Azure Table Storage, where a filter on a non-key property scans every partition and each
answer stops at 1,000 entities, 5 seconds of work or a partition-range boundary, so the naive
approach costs far more requests there than here.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from azure.core.pipeline import PipelineResponse
from azure.core.rest import HttpRequest
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueServiceClient

from activities.layout import (
    UPN_ALIAS_PK,
    account_key,
    activity_properties,
    day_partition,
    epoch_us,
    id_partition,
    ledger_entity,
    safe_key,
    time_index_entity,
)
from activities.reader import ActivityQueries, ActivityQuery
from core.clock import SystemClock
from core.storage import ACCOUNTS_TABLE, BATCH_LIMIT, BY_SUBSCRIPTION_TABLE, BY_TIME_TABLE, BY_USER_TABLE, Storage
from ingestion.models import ActionType, Activity, ActivityUser
from localdev.azurite import Azurite

NAIVE_TABLE = "naive"
PAGE = 100
OPERATIONS: list[tuple[str, ActionType]] = [
    ("Microsoft.Compute/virtualMachines/write", "write"),
    ("Microsoft.Storage/storageAccounts/delete", "delete"),
    ("Microsoft.Network/networkSecurityGroups/write", "write"),
    ("Microsoft.Compute/virtualMachines/restart/action", "action"),
    ("Microsoft.Resources/deployments/read", "read"),
]
END = datetime(2026, 11, 26, tzinfo=UTC)


class RequestCounter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        self.count += 1


@dataclass
class Dataset:
    activities: list[Activity]
    users: list[ActivityUser]
    subscriptions: list[str]


def make_dataset(n: int, n_users: int, n_subs: int, days: int, seed: int = 7) -> Dataset:
    rng = random.Random(seed)
    users = [
        ActivityUser(
            id=str(uuid.UUID(int=rng.getrandbits(128))),
            upn=f"user{i:03d}@contoso.com",
            name=f"User {i}",
            type="user",
        )
        for i in range(n_users)
    ]
    subs = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(n_subs)]
    span_us = days * 86_400_000_000
    start = END - timedelta(days=days)
    activities = []
    for _ in range(n):
        sub = rng.choice(subs)
        op, kind = rng.choice(OPERATIONS)
        group = f"rg-{rng.randrange(9)}"
        at = start + timedelta(microseconds=rng.randrange(span_us))
        activities.append(
            Activity.model_construct(
                id=str(uuid.UUID(int=rng.getrandbits(128))),
                timestamp=at,
                ingested_at=at + timedelta(minutes=3),
                app="Microsoft Azure",
                tenant_id="72f988bf-0000-0000-0000-000000000000",
                subscription_id=sub,
                user=rng.choice(users),
                ip_address=f"203.0.113.{rng.randrange(1, 255)}",
                action=op,
                action_name=op,
                action_type=kind,
                category="Administrative",
                status=rng.choice(["Succeeded", "Succeeded", "Succeeded", "Failed"]),
                sub_status=None,
                resource_id=f"/subscriptions/{sub}/resourceGroups/{group}/providers/{op.rsplit('/', 1)[0]}/r",
                resource_group=group,
                resource_provider=op.split("/")[0],
                resource_type="/".join(op.split("/")[:2]),
                correlation_id=str(uuid.UUID(int=rng.getrandbits(128))),
                operation_id=str(uuid.UUID(int=rng.getrandbits(128))),
                level="Informational",
            )
        )
    return Dataset(activities, users, subs)


# --- loading -------------------------------------------------------------------------------------


def _chunks(
    activities: Iterable[Activity], partition: Callable[[Activity], str]
) -> Iterator[tuple[str, list[Activity]]]:
    by_partition: dict[str, list[Activity]] = defaultdict(list)
    for activity in activities:
        by_partition[partition(activity)].append(activity)
    for pk, items in by_partition.items():
        for start in range(0, len(items), BATCH_LIMIT):
            yield pk, items[start : start + BATCH_LIMIT]


def _naive_entity(activity: Activity) -> dict[str, Any]:
    return {"PartitionKey": id_partition(activity.id), "RowKey": safe_key(activity.id), **activity_properties(activity)}


def _json(entity: dict[str, Any]) -> str:
    """An entity in the Table service's JSON, with the OData types the SDK would add."""
    out: dict[str, Any] = {}
    for name, value in entity.items():
        if isinstance(value, datetime):
            out[name] = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out[name + "@odata.type"] = "Edm.DateTime"
        elif isinstance(value, int) and not isinstance(value, bool) and not -(2**31) <= value < 2**31:
            out[name] = str(value)
            out[name + "@odata.type"] = "Edm.Int64"
        else:
            out[name] = value
    return json.dumps(out, ensure_ascii=False, separators=(",", ":"))


def _key(value: str) -> str:
    return quote(value.replace("'", "''"), safe="")


def submit_batch(table: TableClient, rows: list[dict[str, Any]]) -> None:
    """One insert-or-replace transaction of up to 100 rows of one partition.

    The SDK's `submit_transaction` builds and parses the multipart body with the `email` package,
    which costs about a millisecond per row in Python; this writes the same `$batch` request by
    hand and sends it through the table client's own pipeline (authentication, retries).
    """
    batch, changeset = f"batch_{uuid.uuid4()}", f"changeset_{uuid.uuid4()}"
    base = f"{table.url}/{table.table_name}"
    parts = [f"--{batch}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"]
    for index, row in enumerate(rows):
        payload = _json(row)
        parts.append(
            f"--{changeset}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: {index}\r\n\r\n"
            f"PUT {base}(PartitionKey='{_key(row['PartitionKey'])}',RowKey='{_key(row['RowKey'])}') HTTP/1.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload.encode())}\r\n"
            f"x-ms-version: 2019-02-02\r\nDataServiceVersion: 3.0\r\nAccept: application/json\r\n\r\n"
            f"{payload}\r\n"
        )
    parts.append(f"--{changeset}--\r\n\r\n--{batch}--\r\n")
    request = HttpRequest(
        "POST",
        f"{table.url}/$batch",
        content="".join(parts).encode("utf-8"),
        headers={
            "Content-Type": f"multipart/mixed; boundary={batch}",
            "x-ms-version": "2019-02-02",
            "DataServiceVersion": "3.0",
            "MaxDataServiceVersion": "3.0;NetFx",
            "Accept": "application/json",
        },
    )
    response = table._client.send_request(request, stream=True)
    body = response.read()
    if response.status_code != 202 or _FAILED_PART.search(body):
        raise RuntimeError(f"batch write failed: {response.status_code} {body[:500]!r}")


_FAILED_PART = re.compile(rb"HTTP/1\.1 [45]\d\d")


def load(storage: Storage, data: Dataset, workers: int = 4) -> int:
    """Write the rows the measured queries read; returns the number of rows written."""
    plans: list[tuple[TableClient, Callable[[Activity], str], Callable[[str, Activity], dict[str, Any]]]] = [
        (storage.table(BY_USER_TABLE), lambda a: account_key(a.user) or "", ledger_entity),
        (storage.table(BY_SUBSCRIPTION_TABLE), lambda a: safe_key(a.subscription_id), ledger_entity),
        (storage.table(BY_TIME_TABLE), lambda a: day_partition(a.timestamp), lambda _, a: time_index_entity(a)),
        (storage.table(NAIVE_TABLE), lambda a: id_partition(a.id), lambda _, a: _naive_entity(a)),
    ]
    written = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = []
        for table, partition, build in plans:
            for pk, chunk in _chunks(data.activities, partition):
                futures.append(
                    pool.submit(lambda t, p, c, b: submit_batch(t, [b(p, a) for a in c]), table, pk, chunk, build)
                )
                written += len(chunk)
        aliases = [
            {"PartitionKey": UPN_ALIAS_PK, "RowKey": safe_key(user.upn), "account_key": account_key(user)}
            for user in data.users
            if user.upn
        ]
        for start in range(0, len(aliases), BATCH_LIMIT):
            futures.append(
                pool.submit(submit_batch, storage.table(ACCOUNTS_TABLE), aliases[start : start + BATCH_LIMIT])
            )
        for done, future in enumerate(futures, 1):
            future.result()
            if done % 500 == 0 or done == len(futures):
                print(f"  loading: {done}/{len(futures)} batches stored", file=sys.stderr, flush=True)
    return written + len(aliases)


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Measure:
    name: str
    table: str
    requests: int
    ms: float
    items: int
    rows_read: int


def measure(name: str, table: str, counter: RequestCounter, run: Callable[[], tuple[int, int]], repeat: int) -> Measure:
    """Median time of `repeat` runs after one warm-up; `run` returns (items answered, rows read from storage)."""
    run()  # warm-up (for the query layer: reads the continuation key once per process)
    times: list[float] = []
    requests = items = rows_read = 0
    for _ in range(repeat):
        before = counter.count
        started = time.perf_counter()
        items, rows_read = run()
        times.append((time.perf_counter() - started) * 1000)
        requests = counter.count - before
    return Measure(name, table, requests, statistics.median(times), items, rows_read)


def naive_user_page(table: TableClient, user_key: str) -> tuple[list[dict[str, Any]], int]:
    """Every row of the user from a table keyed by id, then newest first in the app; and the rows read."""
    rows = [
        dict(row) for row in table.query_entities("user_key eq @u", parameters={"u": user_key}, results_per_page=1000)
    ]
    rows.sort(key=lambda row: (-_us(row["timestamp"]), row["RowKey"]))
    return rows[:PAGE], len(rows)


def _us(value: datetime) -> int:
    return epoch_us(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


def naive_time_ordered_user_page(table: TableClient, user_key: str) -> tuple[list[dict[str, Any]], int]:
    """The time-ordered table filtered on user_key: stops at 100 matches, still a filter over all days."""
    pages = table.query_entities("user_key eq @u", parameters={"u": user_key}, results_per_page=PAGE).by_page()
    rows: list[dict[str, Any]] = []
    for page in pages:
        rows.extend(dict(row) for row in page)
        if len(rows) >= PAGE:
            break
    return rows[:PAGE], len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--activities", type=int, default=100_000, help="dataset size (default 100000)")
    parser.add_argument("--users", type=int, default=50, help="distinct users (default 50)")
    parser.add_argument("--subscriptions", type=int, default=10, help="subscriptions (default 10)")
    parser.add_argument("--days", type=int, default=30, help="days the activities span (default 30)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query; the median is shown")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = make_dataset(args.activities, args.users, args.subscriptions, args.days)
    generated = time.perf_counter() - started
    counter = RequestCounter()
    with Azurite() as azurite:
        cs = azurite.connection_string
        storage = Storage(
            TableServiceClient.from_connection_string(cs, raw_response_hook=counter),
            QueueServiceClient.from_connection_string(cs),
            table_prefix="bench",
            pull_queue="bench-pull",
        )
        storage.ensure()
        storage.table(NAIVE_TABLE).create_table()
        rows = load(storage, data)
        loaded = time.perf_counter() - started
        print(
            f"{args.activities} activities, {args.users} users, {args.subscriptions} subscriptions, "
            f"{args.days} days: generated in {generated:.1f} s, stored {rows} rows (4 tables) "
            f"in {loaded - generated:.1f} s ({counter.count} storage requests)\n"
        )

        queries = ActivityQueries(storage, clock=SystemClock())
        user = data.users[0]
        assert user.upn is not None and user.id is not None
        upn, oid, key = user.upn, user.id, safe_key(user.id)
        sub = data.subscriptions[0]
        day_start = (END - timedelta(days=2)).replace(hour=0)
        day_end = day_start + timedelta(days=1)
        naive_table, time_table = storage.table(NAIVE_TABLE), storage.table(BY_TIME_TABLE)

        def layer(query: ActivityQuery) -> Callable[[], tuple[int, int]]:
            def run() -> tuple[int, int]:
                page = queries.search(query, PAGE, None, caller="bench")
                return len(page.items), len(page.items)

            return run

        def naive(
            fetch: Callable[[TableClient, str], tuple[list[dict[str, Any]], int]], table: TableClient
        ) -> Callable[[], tuple[int, int]]:
            def run() -> tuple[int, int]:
                rows, read = fetch(table, key)
                return len(rows), read

            return run

        # Every answer is checked against the dataset before anything is timed.
        def newest(keep: Callable[[Activity], bool]) -> list[str]:
            chosen = sorted(filter(keep, data.activities), key=lambda a: (-epoch_us(a.timestamp), safe_key(a.id)))
            return [a.id for a in chosen[:PAGE]]

        def ids(query: ActivityQuery) -> list[str]:
            return [item["id"] for item in queries.search(query, PAGE, None, caller="bench").items]

        want_user = newest(lambda a: a.user.id == oid)
        assert ids(ActivityQuery(user=upn)) == ids(ActivityQuery(user=oid)) == want_user
        assert [row["id"] for row in naive_user_page(naive_table, key)[0]] == want_user
        assert ids(ActivityQuery(subscription_id=sub)) == newest(lambda a: a.subscription_id == sub)
        assert ids(ActivityQuery(start=day_start, end=day_end)) == newest(lambda a: day_start <= a.timestamp < day_end)

        r = args.repeat
        results = [
            measure("user by UPN (query layer)", BY_USER_TABLE, counter, layer(ActivityQuery(user=upn)), r),
            measure("user by object id (query layer)", BY_USER_TABLE, counter, layer(ActivityQuery(user=oid)), r),
            measure(
                "user, naive: id-keyed table, filter user_key, sort",
                NAIVE_TABLE,
                counter,
                naive(naive_user_page, naive_table),
                r,
            ),
            measure(
                "user, naive: time table, filter user_key",
                BY_TIME_TABLE,
                counter,
                naive(naive_time_ordered_user_page, time_table),
                r,
            ),
            measure(
                "subscription (query layer)",
                BY_SUBSCRIPTION_TABLE,
                counter,
                layer(ActivityQuery(subscription_id=sub)),
                r,
            ),
            measure(
                "one-day range (query layer)",
                BY_TIME_TABLE,
                counter,
                layer(ActivityQuery(start=day_start, end=day_end)),
                r,
            ),
            measure(
                "one-day range + status=Failed (query layer)",
                BY_TIME_TABLE,
                counter,
                layer(ActivityQuery(start=day_start, end=day_end, status="failed")),
                r,
            ),
        ]

    width = max(len(m.name) for m in results)
    header = (
        f"{'first page of 100':<{width}}  {'table':<17} {'requests':>8} {'ms (median)':>11} {'items':>5} "
        f"{'rows read':>9}"
    )
    print(header)
    print("-" * len(header))
    for m in results:
        print(f"{m.name:<{width}}  {m.table:<17} {m.requests:>8} {m.ms:>11.1f} {m.items:>5} {m.rows_read:>9}")
    for base in results[:2]:
        naive_user = results[2]
        print(
            f"naive / {base.name}: {naive_user.requests / max(base.requests, 1):.1f}x requests, "
            f"{naive_user.rows_read / max(base.rows_read, 1):.0f}x rows read, {naive_user.ms / base.ms:.1f}x time"
        )
    print(f"(user {upn}: {sum(1 for a in data.activities if a.user.id == oid)} activities; day {day_start:%Y-%m-%d})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
