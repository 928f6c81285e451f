"""Benchmark of the fan-out against a real Azurite: `run_fanout` vs a bare serial send loop.

    python -m bench.bench_fanout [--subscriptions 1000 [10000]] [--rounds 3] [--latency-ms 0 5]

Starts its own Azurite (in memory) and, for each size, connects a connector record with N
subscriptions (ARM is an in-process list, so both sides list the same subscriptions for free).
Both sides use the clients the app builds (`core.runtime.build_storage`: pooled transport, the
queues' retry policy), each side of each round on a new queue. Side by side in one process,
alternating rounds:

* the bare loop: list the subscriptions and send one pull message each (the same JSON) with
  the sync `QueueClient.send_message`, one after another;
* `run_fanout` as a steady-state tick runs it: the connector record, the subscription records
  (one query, compared with ARM, nothing written), the messages sent 32 at a time through the
  async client (`PullQueue.send_many`, `core/queue_sender.py`) and the connector's lastFanoutAt
  written.

With `--latency-ms`, Azurite's table and queue endpoints are reached through a loopback proxy
that delays every request by that much (`localdev/proxy.py`), as a real storage account's network
does; 0 is Azurite as it is.

Every round checks that the queue holds exactly N messages, one per subscription, and that the
tick wrote no subscription record. It also runs a second tick at once, as a slow tick
overlapping the next would, and checks it enqueues nothing. Azurite shares the machine's cores
with this process, so concurrency helps only by overlapping the client's work with Azurite's;
against Queue Storage, where a send waits on the network, the advantage is larger. Progress goes
to stderr as each side of each round ends; the table to stdout as each size ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from core.arm import ArmSubscription
from core.clock import FakeClock
from core.runtime import build_storage
from core.settings import load_settings
from core.storage import CONNECTOR_TABLE, Storage
from ingestion.fanout import run_fanout
from ingestion.messages import PullMessage, StoragePullQueue
from localdev.azurite import Azurite
from localdev.proxy import LoopbackProxy
from state.records import ConnectorRecord, SubscriptionRecord
from state.tables import TableConnectorState, TableSubscriptionState, load_subscriptions

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


class ListArm:
    def __init__(self, subscriptions: list[ArmSubscription]) -> None:
        self.subscriptions = subscriptions

    def list_subscriptions(self) -> list[ArmSubscription]:
        return list(self.subscriptions)


class CountingSubscriptions(TableSubscriptionState):
    """The real subscription state, counting its writes."""

    writes = 0

    def insert(self, record: SubscriptionRecord) -> SubscriptionRecord:
        self.writes += 1
        return super().insert(record)

    def replace(self, record: SubscriptionRecord) -> SubscriptionRecord:
        self.writes += 1
        return super().replace(record)


def _storage(cs: str, prefix: str, queue: str | None = None) -> Storage:
    """The app's clients on the bench's tables, with `queue` (created) as the pull queue."""
    settings = {"AzureWebJobsStorage": cs, "STORAGE_TABLE_PREFIX": prefix, "PULL_QUEUE": queue or "q" + prefix}
    storage = build_storage(load_settings(settings))
    if queue:
        storage.pull_queue.create_queue()
    return storage


def _setup(cs: str, n: int) -> tuple[str, Storage, TableConnectorState, CountingSubscriptions, ListArm]:
    prefix = "b" + uuid.uuid4().hex[:8]
    storage = _storage(cs, prefix)
    storage.ensure()
    table = storage.table(CONNECTOR_TABLE)
    connector, subscriptions = TableConnectorState(table), CountingSubscriptions(table)
    connection = uuid.uuid4().hex
    connector.insert(
        ConnectorRecord(
            connected=True, connection_id=connection, connected_at=START, connected_by="admin", attempted_at=START
        )
    )
    subs = [ArmSubscription(str(uuid.UUID(int=i + 1)), f"sub {i}", "Enabled") for i in range(n)]
    records = [
        SubscriptionRecord(
            subscription_id=s.subscription_id,
            display_name=s.display_name,
            state=s.state,
            discovered_at=START,
            connection_id=connection,
            watermark=START,
            connected_at=START,
        )
        for s in subs
    ]
    load_subscriptions(table, records)  # set-up only: the tick under test writes one by one
    assert len(subscriptions.list()) == n
    return prefix, storage, connector, subscriptions, ListArm(subs)


def _count(storage: Storage) -> int:
    return int(storage.pull_queue.get_queue_properties().approximate_message_count or 0)


def run_size(cs: str, n: int, rounds: int) -> tuple[float, float, float, float]:
    """Medians over the rounds: serial seconds, tick seconds, and this process's CPU ms per message of each.

    Every side of every round sends to a new queue through clients built for it, as a worker's
    first tick would (the first send opens the connections). Nothing is deleted from a queue:
    Azurite collects the storage of deleted messages once a minute at a cost that grows with the
    square of their number, which at 10,000 stalls it for minutes whichever side is running.
    """
    prefix, storage, connector, subscriptions, arm = _setup(cs, n)
    record = connector.get()
    assert record is not None
    serial_times: list[float] = []
    fanout_times: list[float] = []
    serial_cpu: list[float] = []
    fanout_cpu: list[float] = []
    clock = FakeClock(START + timedelta(minutes=5))
    for round_ in range(1, rounds + 1):
        serial_side = _storage(cs, prefix, f"s{round_}{prefix}")
        try:
            started, cpu = time.perf_counter(), time.process_time()
            for listed in arm.list_subscriptions():
                message = PullMessage(
                    subscription_id=listed.subscription_id, connection_id=record.connection_id, enqueued_at=START
                )
                serial_side.pull_queue.send_message(message.encode())
            serial_times.append(time.perf_counter() - started)
            serial_cpu.append(time.process_time() - cpu)
            assert _count(serial_side) == n
        finally:
            serial_side.close()
        _progress(f"{n} subscriptions, round {round_}: serial loop {serial_times[-1]:.1f} s")

        # Each round is a steady-state tick: every subscription was pulled since the last one.
        clock.advance(timedelta(minutes=5))
        pulled = clock.now() - timedelta(minutes=4)
        load_subscriptions(
            storage.table(CONNECTOR_TABLE), [replace(r, last_pulled_at=pulled) for r in subscriptions.list()]
        )
        tick_side = _storage(cs, prefix, f"t{round_}{prefix}")
        try:
            queue = StoragePullQueue(tick_side.pull_queue, tick_side.pull_sender)
            writes = subscriptions.writes
            started, cpu = time.perf_counter(), time.process_time()
            result = run_fanout(connector, subscriptions, arm, queue, clock)  # type: ignore[arg-type]
            fanout_times.append(time.perf_counter() - started)
            fanout_cpu.append(time.process_time() - cpu)
            _progress(f"{n} subscriptions, round {round_}: run_fanout {fanout_times[-1]:.1f} s")
            assert result.enqueued == n and _count(tick_side) == n
            assert subscriptions.writes == writes, "a steady-state tick wrote subscription records"
            clock.advance(timedelta(seconds=1))
            again = run_fanout(connector, subscriptions, arm, queue, clock)  # type: ignore[arg-type]
            assert again.enqueued == 0 and again.pending == n and _count(tick_side) == n
        finally:
            tick_side.close()
    storage.close()
    return (
        statistics.median(serial_times),
        statistics.median(fanout_times),
        statistics.median(serial_cpu) * 1000 / n,
        statistics.median(fanout_cpu) * 1000 / n,
    )


def _progress(line: str) -> None:
    print(f"  ... {line}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--subscriptions", type=int, nargs="+", default=[1000])
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per size; medians shown")
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 5.0], help="storage latency per request")
    args = parser.parse_args(argv)
    header = (
        f"{'latency ms':>10} {'subscriptions':>13} {'serial loop s':>13} {'run_fanout s':>12} {'ratio':>6} "
        f"{'serial CPU ms/msg':>17} {'run_fanout CPU ms/msg':>21}"
    )
    print(header)
    print("-" * len(header), flush=True)
    with Azurite() as azurite:
        for latency in args.latency_ms:
            with contextlib.ExitStack() as proxies:
                delayed = azurite.connection_string
                if latency:
                    queues, tables = (
                        proxies.enter_context(LoopbackProxy(port, delay=latency / 1000))
                        for port in (azurite.queue_port, azurite.table_port)
                    )
                    delayed = azurite.connection_string_via(queue=queues.port, table=tables.port)
                for n in args.subscriptions:
                    serial, fanout, serial_ms, fanout_ms = run_size(delayed, n, args.rounds)
                    print(
                        f"{latency:>10.1f} {n:>13} {serial:>13.2f} {fanout:>12.2f} {fanout / serial:>5.2f}x "
                        f"{serial_ms:>17.2f} {fanout_ms:>21.2f}",
                        flush=True,
                    )
    load = os.getloadavg()[0]
    print(f"\nLoad average (1 min) at the end: {load:.1f} on {os.cpu_count()} cores.")
    print(
        "\nEach run_fanout wrote no subscription record; a second tick right after it enqueued nothing "
        "(every message still queued)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
