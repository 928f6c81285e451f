"""Benchmark of storing pulled pages against a real Azurite, side by side in one run.

- **store**: `ActivityStore.save` (batched transactions, partitions in parallel, ledger rows and
  counts in one transaction per partition) vs the same rows written one request per row.
- **re-read**: saving a page that is already stored (the overlap of every pull, a redelivered
  message) vs storing it the first time. The ledger check makes the re-read one query.

Run: `python -m bench.bench_pull [--pages N]`.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableServiceClient, UpdateMode
from azure.storage.queue import QueueServiceClient

from activities.layout import (
    account_key,
    activity_entity,
    ledger_entity,
    safe_key,
    time_index_entity,
)
from activities.writer import ActivityStore
from bench.bench_parse import activity_pages
from core.storage import Storage
from ingestion.models import Activity
from localdev.azurite import Azurite

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class Counter:
    def __init__(self) -> None:
        self.requests = 0

    def __call__(self, response: Any) -> None:
        self.requests += 1


def _storage(connection_string: str, counter: Counter) -> Storage:
    storage = Storage(
        TableServiceClient.from_connection_string(connection_string, raw_response_hook=counter),
        QueueServiceClient.from_connection_string(connection_string),
        table_prefix="b" + uuid.uuid4().hex[:12],
        pull_queue="bench-" + uuid.uuid4().hex[:8],
    )
    storage.ensure()
    return storage


def naive_save(store: ActivityStore, items: list[tuple[dict[str, Any], Activity]]) -> None:
    """One request per row, the same rows (without the exact-count ledger transactions)."""
    for raw, activity in items:
        store.activities.upsert_entity(activity_entity(activity, raw), mode=UpdateMode.REPLACE)
        store.by_time.upsert_entity(time_index_entity(activity), mode=UpdateMode.REPLACE)
        store.by_subscription.upsert_entity(ledger_entity(safe_key(activity.subscription_id), activity))
        key = account_key(activity.user)
        if key:
            store.by_user.upsert_entity(ledger_entity(key, activity))


def timed(run: Callable[[], None], counter: Counter) -> tuple[float, int]:
    before = counter.requests
    start = time.perf_counter()
    run()
    return time.perf_counter() - start, counter.requests - before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=5, help="pages of 200 events per measurement (default 5)")
    args = parser.parse_args(argv)
    pages = activity_pages(args.pages, ingested_at=NOW)
    events = sum(len(p) for p in pages)

    with Azurite() as azurite:
        counter = Counter()
        ours = ActivityStore(_storage(azurite.connection_string, counter))
        naive = ActivityStore(_storage(azurite.connection_string, counter))
        sub = pages[0][0][1].subscription_id

        stored: list[int] = []

        def batched() -> None:
            for page in pages:
                stored.append(ours.save(sub, page).stored)

        def one_by_one() -> None:
            for page in pages:
                naive_save(naive, page)

        first_s, first_n = timed(batched, counter)
        assert stored == [len(page) for page in pages], f"the first store stored {stored}: not every page was new"
        assert ours.subscription_count(sub) == events
        stored.clear()
        again_s, again_n = timed(batched, counter)  # the same pages again: all already stored
        assert stored == [0] * len(pages), f"the re-read stored {stored}"
        naive_s, naive_n = timed(one_by_one, counter)

    rows = [
        ("save (batched, exact counts)", first_s, first_n),
        ("naive: a request per row", naive_s, naive_n),
        ("re-read of stored pages", again_s, again_n),
    ]
    print(f"{events} events in {args.pages} pages of 200, Azurite in memory")
    print(f"{'path':32} {'seconds':>8} {'events/s':>9} {'requests':>9}")
    for name, seconds, requests in rows:
        print(f"{name:32} {seconds:8.2f} {events / seconds:9.0f} {requests:9d}")
    print(f"naive / batched time: {naive_s / first_s:.1f}x   requests: {naive_n / max(first_n, 1):.1f}x")
    print(f"first store / re-read time: {first_s / again_s:.1f}x   requests: {first_n / max(again_n, 1):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
