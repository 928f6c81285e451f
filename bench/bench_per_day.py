"""Benchmark of the activities-per-day read against a real Azurite: one query vs a read per subscription.

    python -m bench.bench_per_day [--subscriptions 10000] [--days 90] [--threads 16]

Starts its own Azurite (in memory) and writes, for N subscriptions, what the connector keeps: the
subscription record (`connector` table, `subscription` partition) with its copy of the day map,
and the summary row of its ledger partition (`activitiesbysub`), each map holding `--days` days.
Then it measures, side by side:

* the chart's read as built (`ActivityQueries.activity_per_day`): one query of the subscription
  partition, projected to three properties, one request per 1,000 subscriptions;
* the alternative: a point read of every subscription's summary row, `--threads` at a time
  (`--point-reads` reads a sample and scales its time to every subscription);
* what the copy costs the connector view (`GET /api/connectors/azure` lists the records): the
  full listing with the day maps, against the same records without them.

Azurite is one process on this machine: the ratios matter more than the milliseconds, and in
Azure each point read is a billed request (N per chart) where the query is N/1,000.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from activities.layout import (
    DAY_COUNTS,
    SUBSCRIPTION_SUMMARY_RK,
    day_counts,
    encode_day_counts,
    safe_key,
)
from activities.reader import ActivityQueries
from core.clock import FakeClock
from core.storage import BY_SUBSCRIPTION_TABLE, CONNECTOR_TABLE, Storage
from localdev.azurite import Azurite
from state.records import SubscriptionRecord
from state.tables import TableSubscriptionState, load_subscriptions

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def _days(index: int, days: int) -> dict[str, int]:
    return {(NOW - timedelta(days=d)).date().isoformat(): (index * 7 + d * 13) % 500 + 1 for d in range(days)}


def _record(index: int, days: int, with_map: bool) -> SubscriptionRecord:
    return SubscriptionRecord(
        subscription_id=str(uuid.UUID(int=index)),
        display_name=f"Subscription {index:05d}",
        state="Enabled",
        discovered_at=NOW,
        connection_id="c",
        watermark=NOW,
        activities=index,
        day_counts=encode_day_counts(_days(index, days)) if with_map else None,
    )


def _timed(what: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = what()
        best = min(best, time.perf_counter() - started)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument(
        "--point-reads", type=int, default=0, help="read only this many summaries point by point (0: all)"
    )
    args = parser.parse_args(argv)
    n = args.subscriptions
    with Azurite() as azurite, ThreadPoolExecutor(args.threads) as pool:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        queues = QueueServiceClient.from_connection_string(azurite.connection_string)
        with_maps = Storage(service, queues, table_prefix="withmap", pull_queue="perday-one")
        without = Storage(service, queues, table_prefix="nomap", pull_queue="perday-two")
        for storage in (with_maps, without):
            storage.ensure()
        print(f"writing {n} subscription records and summary rows ({args.days} days each)...", flush=True)
        load_subscriptions(with_maps.table(CONNECTOR_TABLE), [_record(i, args.days, True) for i in range(n)], pool=pool)
        load_subscriptions(without.table(CONNECTOR_TABLE), [_record(i, args.days, False) for i in range(n)], pool=pool)
        summaries = with_maps.table(BY_SUBSCRIPTION_TABLE)
        list(
            pool.map(
                lambda i: summaries.upsert_entity(
                    {
                        "PartitionKey": safe_key(str(uuid.UUID(int=i))),
                        "RowKey": SUBSCRIPTION_SUMMARY_RK,
                        "count": i,
                        DAY_COUNTS: encode_day_counts(_days(i, args.days)),
                    }
                ),
                range(n),
            )
        )

        reader = ActivityQueries(with_maps, clock=FakeClock(NOW))
        query_s, answer = _timed(lambda: reader.activity_per_day(30, NOW))
        assert len(answer.subscriptions) == n

        def point_reads() -> int:
            def one(i: int) -> dict[str, int]:
                row = summaries.get_entity(safe_key(str(uuid.UUID(int=i))), SUBSCRIPTION_SUMMARY_RK)
                return day_counts(row.get(DAY_COUNTS))

            return len(list(pool.map(one, range(args.point_reads or n))))

        points_s, reads = _timed(point_reads, repeat=1)
        list_with_s, listed = _timed(lambda: TableSubscriptionState(with_maps.table(CONNECTOR_TABLE)).list())
        list_without_s, _ = _timed(lambda: TableSubscriptionState(without.table(CONNECTOR_TABLE)).list())
        assert len(listed) == n and listed[0].day_counts
        size = len(encode_day_counts(_days(0, args.days)))

    scale = n / reads  # point reads of a sample are scaled to every subscription
    print(f"subscriptions: {n}, days per map: {args.days} ({size} characters stored)")
    print(f"chart read, one query:       {answer.requests:6d} requests  {query_s * 1000:9.0f} ms")
    print(
        f"point read per subscription: {n:6d} requests  {points_s * scale * 1000:9.0f} ms ({args.threads} threads"
        + (f"; {reads} read, scaled to {n})" if scale != 1 else ")")
    )
    print(f"  ratio: {points_s * scale / query_s:.1f}x the time, {n / answer.requests:.0f}x the requests")
    print(f"connector view listing with the day maps:    {list_with_s * 1000:7.0f} ms")
    print(f"connector view listing without the day maps: {list_without_s * 1000:7.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
