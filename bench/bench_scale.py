"""Scale simulation: a tenant of 10,000 subscriptions through the local Functions host, ARM latency on.

The app runs as in Azure: the local host loads `function_app.py` and runs the pull queue with
`host.json`'s `batchSize`/`newBatchThreshold`, synchronous functions on the worker's thread pool
(`PYTHON_THREADPOOL_THREAD_COUNT`), against Azurite and the Entra ID + ARM emulator answering
every Activity Log page after `--latency` seconds (real ARM: about 0.1-0.3 s, more for the
Activity Log). Most subscriptions are quiet (caught up: one empty page per pull); `--busy` of them
generate `--busy-events-per-hour` each.

1. **Waiting on ARM concurrently**: the same `--compare` caught-up pulls, enqueued at once, run
   by one host with the settings this app ships (host.json, PYTHON_THREADPOOL_THREAD_COUNT from
   infra) and with the defaults the app had before (batchSize 4, newBatchThreshold 2, the worker's
   default thread count): pulls a second side by side.
2. **Fan-out ticks**: `--ticks` ticks five minutes apart (a fake clock shared with the emulator):
   the fan-out (run by the host, as its timer would) lists and enqueues every active
   subscription while the host already pulls. Per tick: the fan-out's time, the messages it sent
   (counted on the wire), the subscription records it wrote (none in a steady state) and its
   storage requests; the tick's time until its last pull is done, pulls a second, the pulls'
   storage requests and ARM reads per pull, the deepest queue seen; then the figures the
   README's capacity model uses, checked against it (storage requests and ARM reads of a
   caught-up pull). A tick stops waiting when no pull finishes for two minutes, and the ticks
   stop after a failed fan-out (both said in the output).

Run: `python -m bench.bench_scale [--subscriptions 10000] [--ticks 3] [--latency 0.2]`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from azure.data.tables import TableServiceClient
from azure.functions import FunctionApp
from azure.storage.queue import QueueServiceClient

from bench.remote_emulator import RemoteEmulator, SharedClock, shared_clock
from connector import service
from core.auth import Principal
from core.queue_sender import SENDER_THREAD
from core.runtime import Runtime, build_runtime, install_runtime, pull_sender
from core.settings import default_values, load_settings
from core.storage import Storage
from core.transport import pooled_transport
from ingestion.fanout import READER_THREAD as FANOUT_READER_THREAD
from ingestion.messages import PullMessage
from localdev.azurite import Azurite
from localdev.host import LocalHost
from localdev.host.workers import default_thread_count

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NEVER = "0 0 0 1 1 *"  # timers run only when the benchmark asks
ADMIN = Principal(object_id="bench", upn="bench@contoso.com", name="Bench", tenant_id="t", role_ids=frozenset())
# What the app shipped before this benchmark existed: host.json's queue batch and the worker's default pool.
BEFORE = {"batchSize": 4, "newBatchThreshold": 2}
# A caught-up pull as the model counts it: read the record, take the lease and open the window,
# close the window and release (3 table requests) and 1 ARM read.
MODEL_STORAGE_PER_CAUGHT_UP_PULL = 3
MODEL_ARM_PER_CAUGHT_UP_PULL = 1


class Counter:
    """Counts the responses of the app's storage clients (a raw_response_hook), thread-safe.

    The fan-out's own requests are told apart by thread: it runs in the thread that invokes it
    (here the main thread), reads the records in its reader thread and sends on the sender's
    loop; pulls run on the host's worker threads.
    """

    FANOUT_THREADS = ("MainThread", FANOUT_READER_THREAD, SENDER_THREAD)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.fanout = 0  # the fan-out's requests
        self.fanout_record_writes = 0  # of which writes to subscription records
        self.fanout_sends = 0  # of which pull messages sent

    def __call__(self, response: Any) -> None:
        fanout = threading.current_thread().name.startswith(self.FANOUT_THREADS)
        request = response.http_request
        url = unquote(request.url)
        # Not a read, not a queue send, not the connector record (PartitionKey 'connector'):
        # an insert or replace of a subscription record.
        record_write = fanout and request.method != "GET" and "/messages" not in url and "'connector'" not in url
        with self._lock:
            self.requests += 1
            self.fanout += fanout
            self.fanout_record_writes += record_write
            self.fanout_sends += fanout and request.method == "POST" and "/messages" in url

    def snapshot(self) -> tuple[int, int, int, int]:
        with self._lock:
            return self.requests, self.fanout, self.fanout_record_writes, self.fanout_sends


OVERRIDES: dict[str, int] = {}


def shipped_settings() -> tuple[dict[str, Any], int]:
    """host.json's queue settings and the thread count infra deploys (or the command line's instead)."""
    queues = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))["extensions"]["queues"]
    text = (ROOT / "infra" / "app" / "api.bicep").read_text(encoding="utf-8")
    marker = "param pythonThreadpoolThreadCount int = "
    threads = int(text.split(marker, 1)[1].split()[0])
    queues = {**queues, **{k: v for k, v in OVERRIDES.items() if k != "threads"}}
    return dict(queues), OVERRIDES.get("threads", threads)


def _function_app() -> FunctionApp:
    """function_app.py imported anew: a FunctionApp builds its functions once, and each host loads its own."""
    name = f"function_app_bench_{uuid.uuid4().hex[:6]}"
    spec = importlib.util.spec_from_file_location(name, ROOT / "function_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app: FunctionApp = module.app
    return app


class World:
    """One app deployment: its own tables and queue, a runtime whose storage requests are counted."""

    def __init__(self, emulator: RemoteEmulator, azurite: Azurite, clock: SharedClock, threads: int) -> None:
        unique = uuid.uuid4().hex[:10]
        self.environ = {
            **default_values(),
            **emulator.settings,
            "AzureWebJobsStorage": azurite.connection_string,
            "STORAGE_TABLE_PREFIX": f"s{unique}",
            "PULL_QUEUE": f"scale-{unique}",
            "ALERT_QUEUE": f"scale-alert-{unique}",
            "FANOUT_SCHEDULE": NEVER,
            "RETENTION_SCHEDULE": NEVER,
            "PYTHON_THREADPOOL_THREAD_COUNT": str(threads),
            "REQUESTS_CA_BUNDLE": str(emulator.ca_pem_path),
        }
        settings = load_settings(self.environ)
        self.counter = Counter()
        storage = Storage(
            TableServiceClient.from_connection_string(
                azurite.connection_string, raw_response_hook=self.counter, transport=pooled_transport()
            ),
            QueueServiceClient.from_connection_string(
                azurite.connection_string, raw_response_hook=self.counter, transport=pooled_transport()
            ),
            table_prefix=settings.table_prefix,
            pull_queue=settings.pull_queue,
            pull_sender=pull_sender(settings, raw_response_hook=self.counter),
        )
        self.runtime: Runtime = build_runtime(settings, clock=clock, storage=storage)
        self.runtime.storage.ensure()
        self.emulator = emulator
        self.clock = clock
        self.cpu_seconds = 0.0  # this process's CPU time over the last drain

    def connect(self) -> str:
        result = service.connect(
            self.runtime.connector, self.runtime.subscriptions, self.runtime.arm, self.runtime.clock, ADMIN
        )
        assert result.outcome == "connected", result.outcome
        return result.view.connector.connection_id

    def host(self, queues: Mapping[str, Any]) -> LocalHost:
        host_json = json.loads((ROOT / "host.json").read_text(encoding="utf-8"))
        host_json["extensions"]["queues"] = {**host_json["extensions"]["queues"], **queues}
        install_runtime(self.runtime)
        return LocalHost(ROOT, app=_function_app(), port=0, environ=self.environ, host_json=host_json)

    def queue_depth(self) -> int:
        return int(self.runtime.storage.pull_queue.get_queue_properties().approximate_message_count or 0)

    def arm_reads(self) -> int:
        return int(self.emulator.call("arm_reads"))

    def close(self) -> None:
        install_runtime(None)
        self.runtime.storage.close()


def pulls_done(host: LocalHost) -> int:
    return sum(1 for i in host.invocations.snapshot() if i.function == "pull")


def drain(world: World, host: LocalHost, expected: int, *, done_before: int, stall: float = 120.0) -> tuple[float, int]:
    """Wait until `expected` pull invocations finished since `done_before` (seconds, deepest queue).

    Gives up when no pull finishes for `stall` seconds (then the figures say so: fewer pulls).
    """
    started = time.perf_counter()
    cpu = time.process_time()
    deepest = 0
    last, last_change = done_before, started
    while True:
        done = pulls_done(host)
        if done - done_before >= expected:
            break
        now = time.perf_counter()
        if done != last:
            last, last_change = done, now
        elif now - last_change > stall:
            print(f"  (no pull finished for {stall:.0f} s: {done - done_before} of {expected} done)", flush=True)
            break
        deepest = max(deepest, world.queue_depth())
        time.sleep(0.5)
    world.cpu_seconds = time.process_time() - cpu
    return time.perf_counter() - started, deepest


def compare(emulator: RemoteEmulator, azurite: Azurite, clock: SharedClock, subs: list[str], count: int) -> float:
    """The same caught-up pulls, run with the shipped settings and with the old ones: pulls a second."""
    queues, threads = shipped_settings()
    ways = (
        (f"shipped: batch {queues['batchSize']}/{queues['newBatchThreshold']}, {threads} threads", queues, threads),
        (
            f"before: batch {BEFORE['batchSize']}/{BEFORE['newBatchThreshold']}, {default_thread_count()} threads",
            BEFORE,
            default_thread_count(),
        ),
    )
    print(
        f"Waiting on ARM concurrently: {count} caught-up pulls enqueued at once, one host process, "
        f"ARM taking {emulator.page_latency:.2f} s a page"
    )
    print(f"{'way':<38} {'seconds':>8} {'pulls/s':>8} {'storage/pull':>13} {'ARM/pull':>9} {'CPU ms/pull':>12}")
    rates: dict[str, float] = {}
    for label, way_queues, way_threads in ways:
        clock.set(START)
        world = World(emulator, azurite, clock, way_threads)
        connection = world.connect()
        clock.set(START + timedelta(minutes=5))
        messages = [PullMessage(subscription_id=s, connection_id=connection, enqueued_at=clock.now()) for s in subs]
        world.runtime.pull_queue.send_many(messages[:count])
        emulator.call("reset_request_log")
        before = world.counter.requests
        with world.host(way_queues) as host:
            seconds, _ = drain(world, host, count, done_before=0)
            outcomes = [i.outcome for i in host.invocations.snapshot() if i.function == "pull"]
        assert outcomes.count("Succeeded") == count, outcomes
        storage = (world.counter.requests - before) / count
        rates[label] = count / seconds
        print(
            f"{label:<38} {seconds:>8.1f} {rates[label]:>8.1f} {storage:>13.2f} {world.arm_reads() / count:>9.2f} "
            f"{world.cpu_seconds * 1000 / count:>12.1f}",
            flush=True,
        )
        world.close()
    shipped, old = rates[ways[0][0]], rates[ways[1][0]]
    print(f"pulls a second, shipped vs before: {shipped / old:.1f}x ({shipped:.0f} vs {old:.0f})")
    return shipped


def ticks(emulator: RemoteEmulator, azurite: Azurite, clock: SharedClock, *, ticks: int, busy: list[str]) -> None:
    queues, threads = shipped_settings()
    clock.set(START)
    world = World(emulator, azurite, clock, threads)
    started = time.perf_counter()
    world.connect()
    subs = len(world.runtime.subscriptions.list())
    print(
        f"\nFan-out ticks: {subs:,} subscriptions ({len(busy)} busy at {emulator.get('events_per_hour'):,.0f} "
        f"events an hour each, the rest quiet), ticks 5 minutes apart, batch {queues['batchSize']}/"
        f"{queues['newBatchThreshold']}, {threads} threads, ARM {emulator.page_latency:.2f} s a page "
        f"(connect took {time.perf_counter() - started:.0f} s)"
    )
    print(
        f"{'tick':>4} {'fan-out s':>9} {'enqueued':>8} {'record writes':>13} {'fan-out requests':>16} "
        f"{'tick s':>7} {'pulls/s':>8} {'storage/pull':>13} {'ARM/pull':>9} {'max depth':>9} {'stored':>7}"
    )
    storage = arm = 0.0
    with world.host(queues) as host:
        for tick in range(1, ticks + 1):
            clock.advance(timedelta(minutes=5))
            emulator.call("reset_request_log")
            requests, fanout, writes, sends = world.counter.snapshot()
            done_before = pulls_done(host)
            t0 = time.perf_counter()
            invocation = host.run_function("fanout", wait=True)
            fanout_s = time.perf_counter() - t0
            after = world.counter.snapshot()
            fanout, writes, sends = after[1] - fanout, after[2] - writes, after[3] - sends
            ran = next(i for i in host.invocations.snapshot() if i.invocation_id == invocation)
            if ran.outcome != "Succeeded":
                print(f"tick {tick}: the fan-out failed after {fanout_s:.0f} s and {sends} sends: {ran.error}")
            # The pulls run while the fan-out still sends (as on one instance): the tick lasts
            # from the fan-out's start until its last pull is done.
            seconds, deepest = drain(world, host, sends, done_before=done_before)
            tick_s = fanout_s + seconds
            storage = (world.counter.requests - requests - fanout) / max(sends, 1)
            arm = world.arm_reads() / max(sends, 1)
            stored = sum((world.runtime.subscriptions.get(s) or _missing(s)).activities for s in busy)
            print(
                f"{tick:>4} {fanout_s:>9.1f} {sends:>8} {writes:>13} {fanout:>16} {tick_s:>7.1f} "
                f"{sends / tick_s:>8.1f} {storage:>13.2f} {arm:>9.2f} {deepest:>9} {stored:>7}",
                flush=True,
            )
            if ran.outcome != "Succeeded":
                break
        quiet_storage, quiet_arm = storage, arm  # the last tick's: all but a handful of its pulls were caught up
    world.close()
    print(
        f"model check, per caught-up pull: {quiet_storage:.2f} storage requests (model "
        f"{MODEL_STORAGE_PER_CAUGHT_UP_PULL}), {quiet_arm:.2f} ARM reads (model {MODEL_ARM_PER_CAUGHT_UP_PULL}); "
        f"the host's own queue requests (receive per batch, delete per message) come on top"
    )


def _missing(sub: str) -> Any:
    raise AssertionError(f"subscription {sub} has no record")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscriptions", type=int, default=10_000, help="subscriptions of the tenant")
    parser.add_argument("--busy", type=int, default=5, help="how many of them are busy")
    parser.add_argument("--busy-events-per-hour", type=float, default=1_200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds ARM takes per page (default 0.2)")
    parser.add_argument("--compare", type=int, default=600, help="caught-up pulls in the side-by-side run")
    parser.add_argument("--ticks", type=int, default=3, help="fan-out ticks over the whole tenant")
    parser.add_argument("--batch-size", type=int, help="instead of host.json's batchSize")
    parser.add_argument("--new-batch-threshold", type=int, help="instead of host.json's newBatchThreshold")
    parser.add_argument("--threads", type=int, help="instead of the PYTHON_THREADPOOL_THREAD_COUNT infra sets")
    args = parser.parse_args(argv)
    for key, value in (
        ("batchSize", args.batch_size),
        ("newBatchThreshold", args.new_batch_threshold),
        ("threads", args.threads),
    ):
        if value is not None:
            OVERRIDES[key] = value
    clock = shared_clock(START)
    emulator = RemoteEmulator(clock._value, args.latency)
    try:
        with Azurite() as azurite:
            os.environ["REQUESTS_CA_BUNDLE"] = str(emulator.ca_pem_path)
            for sub in emulator.get("subscriptions"):  # the six default ones are quiet too
                emulator.call("set_subscription", sub.subscription_id, activity=0.0)
            emulator.call("set_events_per_hour", args.busy_events_per_hour, since=START - timedelta(days=1))
            created = START - timedelta(days=30)
            # The side-by-side run on a tenant of just its quiet subscriptions; then the whole tenant.
            first = emulator.call("add_subscriptions", args.compare, activity=0.0, created_at=created)
            compare(emulator, azurite, clock, [s.subscription_id for s in first], args.compare)
            if args.ticks:
                busy = [s.subscription_id for s in emulator.call("add_subscriptions", args.busy, created_at=created)]
                missing = max(0, args.subscriptions - len(emulator.get("subscriptions")))
                emulator.call("add_subscriptions", missing, activity=0.0, created_at=created)
                ticks(emulator, azurite, clock, ticks=args.ticks, busy=busy)
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
