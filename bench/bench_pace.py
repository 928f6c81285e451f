"""Benchmark of the pull's pace against the emulator (ARM latency on) and a real Azurite, side by side.

- **ARM's pace**: one busy subscription's window read by one message, the next page fetched while
  the current one is stored vs fetch-then-store. Printed: wall time, the time ARM took to answer
  (the sum of the page requests), and its share of the wall time: how much of the pull is spent
  waiting on ARM rather than on storage.
- **Bounded reads**: a busy subscription whose overlap alone holds several times PULL_MAX_PAGES
  pages, over a few fan-out ticks (time moving while the pulls run, as it does): the page requests
  of a tick per distinct page of the time the tick covers.

Run: `python -m bench.bench_pace [--latency 0.5 1.0 2.0] [--events-per-hour 3000]` (ARM takes 0.5-2 s a
page; "store s/page" shows how long this machine's storage takes, the other side of the race).
"""

from __future__ import annotations

import argparse
import math
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.remote_emulator import RemoteEmulator, SharedClock, shared_clock
from connector import service
from core.auth import Principal
from core.runtime import Runtime, build_runtime
from core.settings import default_values, load_settings
from ingestion.fanout import run_fanout
from ingestion.messages import PullMessage
from ingestion.pull import PullResult, pull_subscription
from localdev.azurite import Azurite

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
ADMIN = Principal(object_id="bench", upn="bench@contoso.com", name="Bench", tenant_id="t", role_ids=frozenset())


class TickingClock:
    """The shared fake time, moved on by every reading: wall time passes while a pull runs."""

    def __init__(self, inner: SharedClock, step: timedelta) -> None:
        self._inner, self._step = inner, step

    def now(self) -> datetime:
        return self._inner.advance(self._step)


def _runtime(emulator: RemoteEmulator, azurite: Azurite, clock: Any, **settings: str) -> Runtime:
    environ = {
        **default_values(),
        **emulator.settings,
        "AzureWebJobsStorage": azurite.connection_string,
        "STORAGE_TABLE_PREFIX": "b" + uuid.uuid4().hex[:10],
        "PULL_QUEUE": "bench-" + uuid.uuid4().hex[:8],
        "ALERT_QUEUE": "bench-alert-" + uuid.uuid4().hex[:8],
        **settings,
    }
    runtime = build_runtime(load_settings(environ), clock=clock)
    runtime.storage.ensure()
    return runtime


def _connect(runtime: Runtime) -> str:
    result = service.connect(runtime.connector, runtime.subscriptions, runtime.arm, runtime.clock, ADMIN)
    assert result.outcome == "connected", result.outcome
    return result.view.connector.connection_id


def _busiest(emulator: RemoteEmulator) -> str:
    subscriptions = emulator.get("subscriptions")
    return next(s.subscription_id for s in subscriptions if s.listed and s.state == "Enabled" and not s.forbidden)


def pace(
    emulator: RemoteEmulator, azurite: Azurite, clock: SharedClock, *, events_per_hour: float, latency: float
) -> None:
    emulator.call("set_page_latency", latency)
    print(
        f"\nARM taking {latency:.2f} s a page: one message reads a 1-hour window of one subscription "
        f"({events_per_hour:,.0f} events an hour)"
    )
    print(f"{'way':<22} {'pages':>5} {'wall s':>7} {'ARM s':>7} {'store s/page':>12} {'waiting on ARM':>15}")
    shares = {}
    for label, prefetch in (("fetch ahead (product)", True), ("fetch-then-store", False)):
        clock.set(START)
        runtime = _runtime(emulator, azurite, clock, PULL_MAX_PAGES="200")
        connection = _connect(runtime)
        sub = _busiest(emulator)
        clock.set(START + timedelta(hours=1))
        message = PullMessage(subscription_id=sub, connection_id=connection, enqueued_at=clock.now())
        started = time.perf_counter()
        result: PullResult = pull_subscription(runtime.pull, message, prefetch=prefetch)
        wall = time.perf_counter() - started
        shares[label] = result.arm_seconds / wall
        store = (wall - result.arm_seconds) / result.pages if not prefetch else float("nan")
        print(
            f"{label:<22} {result.pages:>5} {wall:>7.2f} {result.arm_seconds:>7.2f} {store:>12.2f} "
            f"{shares[label]:>14.0%}",
            flush=True,
        )
        runtime.storage.close()
    print(
        f"share of the wall time spent waiting on ARM: {shares['fetch ahead (product)']:.0%} fetching ahead vs "
        f"{shares['fetch-then-store']:.0%} fetch-then-store"
    )


def bounded_reads(emulator: RemoteEmulator, azurite: Azurite, clock: SharedClock, *, events_per_hour: float) -> None:
    max_pages = 5
    page_size = emulator.get("event_page_size")
    print(
        f"\nBounded reads: {events_per_hour:,.0f} events an hour, PULL_MAX_PAGES {max_pages}: the 15-minute "
        f"overlap alone holds about {events_per_hour / 4 / page_size / max_pages:.1f} x "
        f"PULL_MAX_PAGES pages; 4 ticks 5 minutes apart, time moving 2 s on every clock reading"
    )
    print(f"{'way':<22} {'messages':>8} {'page reads':>10} {'distinct':>8} {'reads per page':>15}")
    for label, prefetch in (("fetch ahead (product)", True), ("fetch-then-store", False)):
        clock.set(START)
        ticking = TickingClock(clock, timedelta(seconds=2))
        runtime = _runtime(emulator, azurite, ticking, PULL_MAX_PAGES=str(max_pages))
        _connect(runtime)
        sub = _busiest(emulator)
        clock.set(START + timedelta(minutes=30))
        messages = reads = distinct = 0
        for _ in range(4):
            emulator.call("reset_request_log")
            before = runtime.subscriptions.get(sub)
            assert before is not None
            tick_start = max(START, before.watermark - timedelta(seconds=runtime.settings.pull_overlap_seconds))
            run_fanout(runtime.connector, runtime.subscriptions, runtime.arm, runtime.pull_queue, ticking)
            for _ in range(200):
                batch = list(runtime.storage.pull_queue.receive_messages(messages_per_page=32, visibility_timeout=60))
                if not batch:
                    break
                for raw in batch:
                    runtime.storage.pull_queue.delete_message(raw)
                    message = PullMessage.model_validate_json(raw.content)
                    if message.subscription_id == sub:
                        pull_subscription(runtime.pull, message, prefetch=prefetch)
                        messages += 1
            after = runtime.subscriptions.get(sub)
            assert after is not None
            reads += sum(1 for r in emulator.get("request_log") if sub in r.path.lower() and r.status == 200)
            covered = len(emulator.call("events", sub, tick_start, after.watermark))
            distinct += max(1, math.ceil(covered / page_size))
            clock.advance(timedelta(minutes=5))
        print(f"{label:<22} {messages:>8} {reads:>10} {distinct:>8} {reads / distinct:>15.2f}", flush=True)
        runtime.storage.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--latency", type=float, nargs="+", default=[0.5, 1.0, 2.0], help="seconds ARM takes per page (0.5-2 s)"
    )
    parser.add_argument("--events-per-hour", type=float, default=3_000)
    args = parser.parse_args(argv)
    clock = shared_clock(START)
    emulator = RemoteEmulator(clock._value, 0.0, seed=11)
    try:
        with Azurite() as azurite:
            os.environ["REQUESTS_CA_BUNDLE"] = emulator.ca_pem_path
            emulator.call("set_events_per_hour", args.events_per_hour, since=START - timedelta(days=1))
            for latency in args.latency:
                pace(emulator, azurite, clock, events_per_hour=args.events_per_hour, latency=latency)
            emulator.call("set_page_latency", 0.05)
            page_size = emulator.get("event_page_size")
            busy = 4 * 5 * page_size * 4  # the 15-minute overlap holds 4 x PULL_MAX_PAGES (5) pages
            emulator.call("set_events_per_hour", busy, since=START - timedelta(days=1))
            bounded_reads(emulator, azurite, clock, events_per_hour=busy)
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
