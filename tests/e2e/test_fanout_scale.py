"""A fan-out tick over 10,000 subscriptions: the emulator's ARM, real Azurite, the real adapters.

The tenant is caught up: every subscription was pulled since the previous tick. The tick lists
10,000 subscriptions from ARM (10 pages), reads their records in one query, writes none of them,
and puts exactly one pull message per subscription on the queue; a second tick while those
messages wait enqueues nothing and writes nothing either.

It runs in the e2e tier: its 10,000 sends and receives take minutes on a busy 2-core machine.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from core.clock import FakeClock
from core.runtime import Runtime
from core.storage import CONNECTOR_TABLE
from ingestion.fanout import run_fanout
from ingestion.messages import decode
from localdev.azurite import Azurite
from state.records import ACTIVE_STATES, ConnectorRecord, SubscriptionRecord
from state.tables import load_subscriptions
from tests.support.platform import connector_environ, make_runtime

pytestmark = pytest.mark.e2e

TENANT = 10_000


class CountingSubscriptions:
    """The real subscription state, counting its writes (the fan-out's port is this one)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.writes = 0
        self.lists = 0

    def list(self) -> list[SubscriptionRecord]:
        self.lists += 1
        records: list[SubscriptionRecord] = self._inner.list()
        return records

    def get(self, subscription_id: str) -> SubscriptionRecord | None:
        record: SubscriptionRecord | None = self._inner.get(subscription_id)
        return record

    def insert(self, record: SubscriptionRecord) -> SubscriptionRecord:
        self.writes += 1
        stored: SubscriptionRecord = self._inner.insert(record)
        return stored

    def replace(self, record: SubscriptionRecord) -> SubscriptionRecord:
        self.writes += 1
        stored: SubscriptionRecord = self._inner.replace(record)
        return stored


@pytest.fixture
def large_tenant(clock: FakeClock, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Runtime]]:
    from localdev.emulator import Emulator

    with Emulator(clock=clock, seed=11, check_arm_token_lifetime=False, subscription_page_size=1_000) as emu:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(emu.ca_pem_path))
        emu.add_subscriptions(TENANT - len(emu.subscriptions), activity=0.0)
        environ = connector_environ(emu, azurite, FANOUT_SCHEDULE="0 0 0 1 1 *", RETENTION_SCHEDULE="0 0 0 1 1 *")
        runtime = make_runtime(environ, clock)
        try:
            yield emu, runtime
        finally:
            runtime.storage.close()


def _caught_up_tenant(emulator: Any, runtime: Runtime, clock: FakeClock) -> str:
    """Records of every subscription, pulled after the previous tick (written in batches of 100)."""
    connection = uuid.uuid4().hex
    connected_at = clock.now() - timedelta(days=1)
    previous_tick = clock.now() - timedelta(minutes=5)
    runtime.connector.insert(
        ConnectorRecord(
            connected=True,
            connection_id=connection,
            connected_at=connected_at,
            connected_by="admin",
            attempted_at=connected_at,
            last_fanout_at=previous_tick,
        )
    )
    records = [
        SubscriptionRecord(
            subscription_id=s.subscription_id,
            display_name=s.display_name,
            state=s.state,
            discovered_at=connected_at,
            connection_id=connection,
            watermark=previous_tick,
            connected_at=connected_at,
            last_pulled_at=previous_tick + timedelta(minutes=1),
            last_success_at=previous_tick + timedelta(minutes=1),
        )
        for s in emulator.subscriptions
    ]
    load_subscriptions(runtime.storage.table(CONNECTOR_TABLE), records)
    return connection


def _drain(runtime: Runtime) -> list[str]:
    """The subscription of every message on the pull queue (received by 4 readers at once, each
    message hidden once received, so that none is seen twice)."""

    def read() -> list[str]:
        ids: list[str] = []
        while True:
            pages = runtime.storage.pull_queue.receive_messages(messages_per_page=32, visibility_timeout=900).by_page()
            page = list(next(pages, []))
            if not page:
                return ids
            ids.extend(decode(m.content).subscription_id for m in page)

    with ThreadPoolExecutor(max_workers=4) as readers:
        return [i for ids in readers.map(lambda _: read(), range(4)) for i in ids]


@pytest.mark.timeout(900)  # minutes on a busy 2-core machine (pyproject: 300 s per test)
def test_a_tick_of_ten_thousand_subscriptions_enqueues_each_once_and_writes_no_record(
    large_tenant: tuple[Any, Runtime], clock: FakeClock
) -> None:
    emulator, runtime = large_tenant
    _caught_up_tenant(emulator, runtime, clock)
    active = {s.subscription_id for s in emulator.subscriptions if s.state in ACTIVE_STATES}
    assert len(active) > TENANT - 5  # the emulator's few disabled ones are listed, not pulled
    subscriptions = CountingSubscriptions(runtime.subscriptions)

    result = run_fanout(runtime.connector, subscriptions, runtime.arm, runtime.pull_queue, clock)

    assert (result.listed, result.enqueued, result.pending, result.error) == (TENANT, len(active), 0, None)
    assert subscriptions.writes == 0 and subscriptions.lists == 1  # one query, nothing written
    record = runtime.connector.get()
    assert record is not None and record.last_fanout_at == clock.now()
    sent = Counter(_drain(runtime))
    assert set(sent) == active and set(sent.values()) == {1}

    # The next tick comes while those pulls are still queued (a slow drain): nothing again.
    clock.advance(timedelta(minutes=5))
    again = run_fanout(runtime.connector, subscriptions, runtime.arm, runtime.pull_queue, clock)
    assert (again.enqueued, again.pending) == (0, len(active))
    assert subscriptions.writes == 0 and subscriptions.lists == 2
    assert _drain(runtime) == []
