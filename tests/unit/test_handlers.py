"""Connect, disconnect, fan-out and pull on in-memory fakes of the ports: the orchestration logic alone.

The same handlers run against Azurite and the emulator in tests/integration; here every rule is
checked in milliseconds: windows, watermark, lease, the failure table, exactly-once counts.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connector import service
from connector.status import connector_body
from core.arm import ArmAccessDenied, ArmBadRequest, ArmNotFound, ArmThrottled, ArmUnavailable
from core.auth import Principal
from core.clock import FakeClock
from core.optimistic import MAX_WRITE_ATTEMPTS, WriteContention
from core.settings import load_settings
from ingestion.fanout import run_fanout
from ingestion.messages import PullMessage
from ingestion.pull import Delivery, PullPorts, pull_subscription, run_pull
from ingestion.retention import run_retention
from state.records import DETACHED
from state.subscriptions import PENDING_PULL_TIMEOUT, Lease
from tests.fakes import (
    ARM_URL,
    FakeActivityWriter,
    FakeArm,
    FakeConnectorState,
    FakePullQueue,
    FakeSubscriptionState,
)
from tests.support.events import make_event

pytestmark = pytest.mark.unit

START = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
PROD, DEV, OLD = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abc")
ADMIN = Principal(object_id="a1", upn="admin@contoso.com", name="Admin", tenant_id="t", role_ids=frozenset())


@dataclass
class World:
    connector: FakeConnectorState
    subscriptions: FakeSubscriptionState
    arm: FakeArm
    writer: FakeActivityWriter
    queue: FakePullQueue
    clock: FakeClock
    ports: PullPorts

    def connect(self) -> service.ConnectResult:
        return service.connect(self.connector, self.subscriptions, self.arm, self.clock, ADMIN)

    def fanout(self) -> Any:
        return run_fanout(self.connector, self.subscriptions, self.arm, self.queue, self.clock)

    def message(self, subscription_id: str = PROD) -> PullMessage:
        record = self.connector.get()
        assert record is not None
        return PullMessage(subscription_id=subscription_id, connection_id=record.connection_id,
                           enqueued_at=self.clock.now())  # fmt: skip

    def drain(self, rounds: int = 100) -> int:
        handled = 0
        for _ in range(rounds):
            batch = self.queue.take()
            if not batch:
                return handled
            for message in batch:
                pull_subscription(self.ports, message)
                handled += 1
        raise AssertionError("the queue did not drain")

    def add_events(self, subscription_id: str, count: int, start: datetime, end: datetime, seed: int = 1) -> None:
        rng = random.Random(seed)
        span = (end - start).total_seconds()
        for _ in range(count):
            at = start + timedelta(seconds=rng.uniform(0, span))
            self.arm.events[subscription_id].append(make_event(subscription_id, at, rng=rng))

    def expected(self, subscription_id: str, start: datetime, end: datetime) -> set[str]:
        def when(e: dict[str, Any]) -> datetime:
            return datetime.fromisoformat(e["eventTimestamp"][:26]).replace(tzinfo=UTC)

        return {e["eventDataId"] for e in self.arm.events[subscription_id] if start <= when(e) <= end}


class TickingClock:
    """Time that moves on every reading (two seconds), as wall time does while a busy pull runs."""

    def __init__(self, inner: FakeClock) -> None:
        self._inner = inner

    def now(self) -> datetime:
        return self._inner.advance(timedelta(seconds=2))


@pytest.fixture
def world() -> World:
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true", "PULL_MAX_PAGES": "5"})
    clock = FakeClock(START)
    arm = FakeArm(page_size=20)
    arm.add_subscription(PROD, "Prod")
    arm.add_subscription(DEV, "Dev")
    arm.add_subscription(OLD, "Old", state="Disabled")
    connector, subscriptions = FakeConnectorState(), FakeSubscriptionState()
    writer, queue = FakeActivityWriter(), FakePullQueue()
    ports = PullPorts(connector, subscriptions, arm, writer, queue, clock, settings)
    return World(connector, subscriptions, arm, writer, queue, clock, ports)


# --- connect and disconnect -----------------------------------------------------------------------


def test_connect_records_the_connection_and_every_subscription(world: World) -> None:
    result = world.connect()
    assert result.outcome == "connected"
    body = connector_body(result.view)
    assert body["status"] == "Connected" and body["connectedById"] == "a1"
    assert [s["status"] for s in body["subscriptions"]] == ["OK", "Inactive", "OK"]  # Dev, Old, Prod
    assert {s.watermark for s in world.subscriptions.list()} == {START}
    world.clock.advance(timedelta(minutes=5))
    again = world.connect()
    assert again.outcome == "already_connected" and again.view.connector.connected_at == START


@pytest.mark.parametrize(
    ("failure", "fragment"),
    [
        (ArmAccessDenied("no", status=403, arm_code="AuthorizationFailed"), "Activity Log Reader"),
        (None, "no subscription"),
    ],
)
def test_a_failed_probe_is_recorded_as_error(world: World, failure: Exception | None, fragment: str) -> None:
    if failure is None:
        world.arm.subscriptions.clear()
    else:
        world.arm.list_error = failure
    result = world.connect()
    assert result.outcome == "probe_failed"
    body = connector_body(result.view)
    assert body["status"] == "Error" and fragment in body["message"] and world.subscriptions.list() == []


def test_connect_meets_a_concurrent_writer_and_still_records_one_connection(world: World) -> None:
    def someone_else_connects() -> None:
        service.connect(world.connector, world.subscriptions, world.arm, world.clock, replace(ADMIN, object_id="b2"))

    world.connector.before_write = someone_else_connects
    result = world.connect()
    assert result.outcome == "already_connected"  # the other insert won; this attempt read it and agreed
    record = world.connector.get()
    assert record is not None and record.connected_by_id == "b2"


def test_a_record_that_never_stops_changing_is_a_conflict_after_a_bounded_number_of_attempts(world: World) -> None:
    world.connect()
    attempts = []

    def always_interfere() -> None:
        attempts.append(1)
        current = world.connector.get()
        assert current is not None
        world.connector.rows["azure"] = replace(current, etag=f"{current.etag}x")
        world.connector.before_write = always_interfere

    world.connector.before_write = always_interfere
    with pytest.raises(WriteContention):
        service.disconnect(world.connector, world.subscriptions, world.clock, ADMIN)
    assert len(attempts) == MAX_WRITE_ATTEMPTS


def test_disconnect_detaches_every_subscription_and_ends_their_leases(world: World) -> None:
    world.connect()
    prod = world.subscriptions.get(PROD)
    assert prod is not None
    world.subscriptions.replace(replace(prod, lease_owner="m1", lease_until=START + timedelta(minutes=10)))
    view = service.disconnect(world.connector, world.subscriptions, world.clock, replace(ADMIN, upn="sec@contoso.com"))
    assert connector_body(view)["status"] == "Disconnected" and view.connector.disconnected_by == "sec@contoso.com"
    assert {(s.connection_id, s.lease_owner) for s in world.subscriptions.list()} == {(DETACHED, None)}


# --- fan-out ----------------------------------------------------------------------------------------


def test_fanout_enqueues_one_pull_per_active_subscription_and_records_the_run(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    result = world.fanout()
    assert (result.listed, result.enqueued, result.error) == (3, 2, None)
    assert sorted(m.subscription_id for m in world.queue.take()) == [PROD, DEV]
    record = world.connector.get()
    assert record is not None and record.last_fanout_at == world.clock.now()


def test_fanout_of_a_disconnected_connector_does_nothing(world: World) -> None:
    world.connect()
    service.disconnect(world.connector, world.subscriptions, world.clock, ADMIN)
    assert world.fanout().enqueued == 0 and world.queue.sent == []


def test_a_failed_listing_is_the_tick_s_answer_even_when_the_record_read_fails_too(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.connect()
    world.arm.list_error = ArmUnavailable("ARM answered 503")

    def unreadable() -> list[Any]:
        raise OSError("storage unreachable")

    monkeypatch.setattr(world.subscriptions, "list", unreadable)
    result = world.fanout()  # the read's error, never awaited on this path, does not replace the ARM failure
    assert (result.listed, result.enqueued) == (0, 0) and "could not be read" in (result.error or "")


def test_a_failed_listing_is_shown_and_cleared_by_the_next_good_run(world: World) -> None:
    world.connect()
    world.arm.list_error = ArmUnavailable("ARM answered 503")
    assert "could not be read" in (world.fanout().error or "")
    assert connector_body(service.current_view(world.connector, world.subscriptions))["status"] == "Error"
    world.arm.list_error = None
    world.fanout()
    assert connector_body(service.current_view(world.connector, world.subscriptions))["status"] == "Connected"


def _ids(world: World) -> list[str]:
    return sorted(m.subscription_id for m in world.queue.take())


def test_a_subscription_is_enqueued_once_per_tick_even_when_arm_lists_it_twice(world: World) -> None:
    world.connect()
    world.arm.subscriptions.append(world.arm.subscriptions[0])  # a page of the listing repeated
    world.clock.advance(timedelta(minutes=5))
    assert world.fanout().enqueued == 2
    assert _ids(world) == sorted([PROD, DEV])


def test_a_tick_does_not_enqueue_what_an_earlier_tick_enqueued_until_it_is_pulled(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    assert world.fanout().enqueued == 2
    queued = world.queue.take()
    world.clock.advance(timedelta(seconds=1))  # a slow tick: the next one starts as it ends
    result = world.fanout()
    assert (result.enqueued, result.pending) == (0, 2) and world.queue.sent == []
    world.clock.advance(timedelta(minutes=5))  # the queue is still backed up
    assert (world.fanout().enqueued, world.queue.sent) == (0, [])
    world.clock.advance(timedelta(seconds=30))
    pull_subscription(world.ports, queued[0])  # one of the two messages is consumed
    world.clock.advance(timedelta(minutes=5))
    assert world.fanout().enqueued == 1 and _ids(world) == [queued[0].subscription_id]
    pull_subscription(world.ports, queued[1])
    world.clock.advance(timedelta(minutes=5))
    assert _ids(world) == [] and world.fanout().enqueued == 1  # the first one's message is queued again
    assert _ids(world) == [queued[1].subscription_id]


def test_duplicate_ticks_cost_no_arm_reads(world: World) -> None:
    world.connect()
    world.add_events(PROD, 30, START, START + timedelta(minutes=15))
    world.clock.advance(timedelta(minutes=20))
    for _ in range(4):  # ticks back to back while nothing is pulled
        world.fanout()
        world.clock.advance(timedelta(seconds=20))
    assert len(world.queue.sent) == 2
    world.drain()
    assert world.arm.page_reads[PROD] == 2 and world.arm.page_reads[DEV] == 1  # 30 events: two pages of 20


def test_a_running_pull_is_not_enqueued_again(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    world.fanout()
    queued = {m.subscription_id: m for m in world.queue.take()}
    pull_subscription(world.ports, queued[DEV])
    message = queued[PROD]
    lease = Lease(world.subscriptions, world.clock, 600, message.connection_id, owner="running")
    assert lease.acquire(PROD) is not None  # PROD's pull has started and holds the lease
    world.clock.advance(timedelta(minutes=5))
    assert world.fanout().enqueued == 1 and _ids(world) == [DEV]


def test_a_lost_message_blocks_the_subscription_only_until_the_timeout(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    world.fanout()
    world.queue.take()  # lost: never delivered
    world.clock.advance(timedelta(minutes=20))
    assert world.fanout().enqueued == 0
    world.clock.advance(PENDING_PULL_TIMEOUT)
    assert world.fanout().enqueued == 2


def test_a_subscription_found_between_ticks_is_enqueued_at_once(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    world.fanout()
    world.queue.take()
    new = "d0000000-0000-4000-8000-000000000000"
    world.arm.add_subscription(new, "New")
    world.clock.advance(timedelta(minutes=5))
    assert world.fanout().enqueued == 1 and _ids(world) == [new]


def test_a_tick_of_an_earlier_connection_blocks_nothing(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    world.fanout()
    world.queue.take()
    service.disconnect(world.connector, world.subscriptions, world.clock, ADMIN)
    world.clock.advance(timedelta(minutes=1))
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    assert world.fanout().enqueued == 2


def test_a_steady_state_tick_writes_only_the_connector_record(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    world.fanout()
    world.drain()
    world.clock.advance(timedelta(minutes=5))
    before = {r.subscription_id: r.etag for r in world.subscriptions.list()}
    connector_etag = world.connector.get().etag  # type: ignore[union-attr]
    assert world.fanout().enqueued == 2
    assert {r.subscription_id: r.etag for r in world.subscriptions.list()} == before
    assert world.connector.get().etag != connector_etag  # type: ignore[union-attr]


# --- the pull ---------------------------------------------------------------------------------------


def test_pulls_store_every_event_once_and_move_the_watermark_to_the_window_end(world: World) -> None:
    world.connect()
    world.add_events(PROD, 90, START, START + timedelta(hours=1))
    world.add_events(PROD, 5, START - timedelta(hours=1), START, seed=2)  # before the connection: never read
    world.clock.advance(timedelta(hours=1))
    world.fanout()
    world.drain()
    end = world.clock.now() - timedelta(seconds=60)
    assert world.writer.by_subscription[PROD] == world.expected(PROD, START, end)
    record = world.subscriptions.get(PROD)
    assert record is not None and record.watermark == end and record.next_link is None and record.lease_owner is None
    assert record.activities == len(world.expected(PROD, START, end)) and record.status == "OK"
    assert record.last_success_at == world.clock.now()


def test_a_caught_up_pull_costs_three_storage_requests_and_one_arm_read(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=5))
    pull_subscription(world.ports, world.message())
    world.clock.advance(timedelta(minutes=5))  # the next tick: nothing new arrived
    message = world.message()

    def io() -> tuple[int, int, int, int, int]:
        subs, connector = world.subscriptions, world.connector
        return subs.reads, subs.writes, connector.reads, world.writer.saves, world.arm.page_reads[PROD]

    before = io()
    assert pull_subscription(world.ports, message).outcome == "caught_up"
    spent = [after - then for after, then in zip(io(), before, strict=True)]
    # One read of the record; one write taking the lease and opening the window; one write closing
    # it and freeing the lease. No connector read, no activity write, one ARM page.
    assert spent == [1, 2, 0, 0, 1]
    record = world.subscriptions.get(PROD)
    assert record is not None and record.watermark == world.clock.now() - timedelta(seconds=60)
    assert record.lease_owner is None and record.last_success_at == world.clock.now()
    # A duplicate right after (a redelivery, a second message of the tick): nothing to read since
    # the watermark, so one read, and one write saying that the pull ran (for the fan-out).
    before = io()
    assert pull_subscription(world.ports, message).outcome == "caught_up"
    assert [after - then for after, then in zip(io(), before, strict=True)] == [1, 1, 0, 0, 0]


def test_a_failed_page_keeps_the_watermark_and_the_retry_resumes_at_the_saved_page(world: World) -> None:
    world.connect()
    world.add_events(PROD, 90, START, START + timedelta(hours=1))
    world.clock.advance(timedelta(hours=1))
    message = world.message()
    real = world.arm.activity_log_page
    calls = [0]

    def second_page_fails(subscription_id: str, url: str) -> bytes:
        calls[0] += 1
        if calls[0] == 2:
            raise ArmUnavailable("ARM answered 500")
        return real(subscription_id, url)

    world.arm.activity_log_page = second_page_fails  # type: ignore[method-assign]
    with pytest.raises(ArmUnavailable):
        pull_subscription(world.ports, message, Delivery("m1", dequeue_count=1))
    mid = world.subscriptions.get(PROD)
    assert mid is not None and mid.watermark == START and mid.next_link is not None and "&page=1" in mid.next_link
    assert mid.status == "Error" and "attempt 1 of 5" in (mid.message or "") and mid.lease_owner is None
    assert len(world.writer.by_subscription[PROD]) == 20  # the first page is stored

    assert pull_subscription(world.ports, message, Delivery("m1", dequeue_count=2)).outcome == "caught_up"
    done = world.subscriptions.get(PROD)
    assert done is not None and done.status == "OK" and done.watermark > START
    assert world.arm.pages_served[(PROD, f"{START}/{done.watermark}", 0)] == 1  # page 0 was not read again


def test_the_last_attempt_says_the_message_goes_to_the_poison_queue(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    world.arm.fail(PROD, ArmUnavailable("ARM answered 503"))
    with pytest.raises(ArmUnavailable):
        pull_subscription(world.ports, world.message(), Delivery("m1", dequeue_count=5, max_dequeue_count=5))
    record = world.subscriptions.get(PROD)
    assert record is not None and "activity-pull-poison" in (record.message or "")


@pytest.mark.parametrize("error", [ArmAccessDenied("denied", status=403), ArmNotFound("gone", status=404)])
def test_a_refusal_marks_only_that_subscription_and_is_not_retried(world: World, error: Exception) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    world.arm.fail(PROD, error)
    assert pull_subscription(world.ports, world.message()).outcome == "denied"  # no raise: no poison loop
    assert pull_subscription(world.ports, world.message(DEV)).outcome == "caught_up"
    body = connector_body(service.current_view(world.connector, world.subscriptions))
    assert body["status"] == "Warning" and "Prod" in body["message"] and "Dev" not in body["message"]


def test_a_long_throttle_re_enqueues_with_its_delay_instead_of_sleeping(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    world.arm.fail(PROD, ArmThrottled(300))
    assert pull_subscription(world.ports, world.message()).outcome == "throttled"
    (sent,) = world.queue.sent
    assert sent.delay_seconds == 300 and sent.message.reason == "throttled"
    record = world.subscriptions.get(PROD)
    assert record is not None and record.status == "OK" and "resumes at" in (record.message or "")
    assert record.lease_owner is None


def test_a_refused_window_is_opened_anew_on_the_retry(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    world.arm.fail(PROD, ArmBadRequest("The start time cannot be more than 90 days in the past.", status=400))
    with pytest.raises(ArmBadRequest):
        pull_subscription(world.ports, world.message())
    record = world.subscriptions.get(PROD)
    assert record is not None and record.next_link is None and record.window_end is None
    assert "90 days" in (record.message or "")


def test_an_unexpected_error_frees_the_subscription_and_says_so(world: World) -> None:
    world.connect()
    world.add_events(PROD, 5, START, START + timedelta(minutes=5))
    world.clock.advance(timedelta(minutes=10))
    world.writer.fail_with = KeyError("a defect")
    with pytest.raises(KeyError):
        pull_subscription(world.ports, world.message(), Delivery("m1"))
    record = world.subscriptions.get(PROD)
    assert record is not None and record.lease_owner is None and "unexpectedly" in (record.message or "")


def test_a_held_lease_skips_other_messages_but_not_a_redelivery_of_its_own(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(minutes=10))
    prod = world.subscriptions.get(PROD)
    assert prod is not None
    world.subscriptions.replace(replace(prod, lease_owner="m1", lease_until=world.clock.now() + timedelta(minutes=9)))
    assert pull_subscription(world.ports, world.message(), Delivery("m2")).outcome == "skipped"
    assert pull_subscription(world.ports, world.message(), Delivery("m1")).outcome == "caught_up"
    world.clock.advance(timedelta(minutes=10))  # an expired lease is anyone's
    prod = world.subscriptions.get(PROD)
    assert prod is not None
    world.subscriptions.replace(replace(prod, lease_owner="m3", lease_until=world.clock.now() - timedelta(seconds=1)))
    assert pull_subscription(world.ports, world.message(), Delivery("m4")).outcome == "caught_up"


def test_a_disconnect_during_a_pull_stops_it_before_the_next_page(world: World) -> None:
    world.connect()
    world.add_events(PROD, 90, START, START + timedelta(hours=1))
    world.clock.advance(timedelta(hours=1))
    real = world.writer.save
    stored_pages = []

    def disconnect_while_storing(subscription_id: str, items: Any) -> Any:
        stored_pages.append(len(items))
        service.disconnect(world.connector, world.subscriptions, world.clock, ADMIN)
        return real(subscription_id, items)

    world.writer.save = disconnect_while_storing  # type: ignore[method-assign]
    result = pull_subscription(world.ports, world.message())
    assert result.outcome == "lease_lost" and stored_pages == [20]  # the page being stored, and no other
    assert world.arm.page_reads[PROD] <= 2  # at most the page fetched ahead besides it, never stored
    record = world.subscriptions.get(PROD)
    assert record is not None and record.last_success_at is None and record.last_pulled_at is None
    assert record.watermark == START and len(world.writer.by_subscription[PROD]) == 20
    assert pull_subscription(world.ports, world.message()).outcome == "skipped"


def test_each_page_is_read_about_once_per_tick_however_busy_the_subscription(world: World) -> None:
    """A busy stream whose overlap alone holds four times PULL_MAX_PAGES pages: the queue drains each
    tick and reads each event about once in it (the overlap is re-read by the fan-out's message only)."""
    world.connect()
    page, max_pages = world.arm.page_size, world.ports.settings.pull_max_pages
    overlap = timedelta(seconds=world.ports.settings.pull_overlap_seconds)
    world.ports = replace(world.ports, clock=TickingClock(world.clock))  # time passes while a pull runs
    # A steady stream: 4 x PULL_MAX_PAGES pages in every overlap-long stretch, for an hour and a half.
    per_overlap = 4 * max_pages * page
    world.add_events(PROD, per_overlap * 6, START, START + 6 * overlap)
    world.clock.advance(timedelta(minutes=20))
    for tick in range(6):
        before = world.arm.events_served.copy()
        world.queue.send(world.message())  # what the fan-out sends each tick
        messages = world.drain(rounds=40)
        served = world.arm.events_served - before
        assert served, tick
        reads_per_event = sum(served.values()) / len(served)
        assert reads_per_event <= 1.25, (tick, messages, reads_per_event)
        world.clock.advance(timedelta(minutes=5))
    end = world.clock.now() - timedelta(seconds=60)
    assert world.writer.by_subscription[PROD] >= world.expected(PROD, START, end - timedelta(minutes=10))


def test_a_backlog_is_worked_off_in_bounded_steps(world: World) -> None:
    world.connect()
    world.clock.advance(timedelta(hours=30))  # more than one window (six hours) and many pages
    world.add_events(PROD, 600, START, world.clock.now())
    first = pull_subscription(world.ports, world.message())
    assert first.outcome == "backlog" and first.pages == world.ports.settings.pull_max_pages
    assert [s.message.reason for s in world.queue.sent] == ["backlog"]
    world.drain()
    end = world.clock.now() - timedelta(seconds=60)
    assert world.writer.by_subscription[PROD] == world.expected(PROD, START, end)


def test_a_stored_link_elsewhere_is_refused_and_the_window_read_again(world: World) -> None:
    world.connect()
    world.add_events(PROD, 30, START, START + timedelta(minutes=30))
    world.clock.advance(timedelta(hours=1))
    prod = world.subscriptions.get(PROD)
    assert prod is not None
    end = world.clock.now() - timedelta(seconds=60)
    planted = world.arm.activity_log_url(PROD, START, end).replace(ARM_URL, "https://evil.example")
    world.subscriptions.replace(replace(prod, window_start=START, window_end=end, next_link=planted))
    assert pull_subscription(world.ports, world.message()).outcome == "caught_up"
    assert world.writer.by_subscription[PROD] == world.expected(PROD, START, end)


def test_malformed_messages_are_dropped_not_retried(world: World) -> None:
    for body in (b"not json", b"{}", b'{"subscriptionId": "x", "connectionId": "c", "enqueuedAt": "now"}'):
        assert run_pull(world.ports, body).outcome == "skipped"


def test_retention_never_deletes_what_the_overlap_may_re_read(world: World) -> None:
    settings = world.ports.settings.model_copy(update={"retention_days": 1})
    world.connect()
    world.add_events(PROD, 40, START, START + timedelta(hours=2))
    world.clock.advance(timedelta(hours=2))
    world.fanout()
    world.drain()
    stored = len(world.writer.activities)
    world.clock.advance(timedelta(days=2))  # no pull since: the next one re-reads the overlap before the watermark
    deleted = run_retention(world.subscriptions, world.writer, world.clock, settings)
    record = world.subscriptions.get(PROD)
    assert record is not None
    keep_from = record.watermark - timedelta(seconds=settings.pull_overlap_seconds)
    assert 0 < deleted < stored and all(a.timestamp >= keep_from for a in world.writer.activities.values())


def test_other_categories_are_skipped_and_counted_once_however_often_the_overlap_is_read(world: World) -> None:
    world.connect()
    world.add_events(PROD, 30, START, START + timedelta(minutes=20))
    rng = random.Random(5)
    for minute in range(1, 11):
        event = make_event(PROD, START + timedelta(minutes=minute), rng=rng)
        event["category"] = {"value": "Policy", "localizedValue": "Policy"}
        world.arm.events[PROD].append(event)
    for _ in range(3):  # three ticks: each re-reads the overlap, policy events included
        world.clock.advance(timedelta(minutes=8))
        world.fanout()
        world.drain()
    record = world.subscriptions.get(PROD)
    assert record is not None and record.skipped_events == 10
    assert world.writer.by_subscription[PROD] == world.expected(PROD, START, START + timedelta(minutes=20)) - {
        e["eventDataId"] for e in world.arm.events[PROD] if e["category"]["value"] == "Policy"
    }
    body = connector_body(service.current_view(world.connector, world.subscriptions))
    assert [s["skippedEvents"] for s in body["subscriptions"] if s["subscriptionId"] == PROD] == [10]


# --- scale: a tenant of ten thousand subscriptions ---------------------------------------------------


@pytest.mark.slow
def test_a_tick_of_ten_thousand_subscriptions_enqueues_each_once_and_costs_the_model_per_pull() -> None:
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    clock = FakeClock(START)
    arm = FakeArm()
    subs = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(10_000)]
    for n, sub_id in enumerate(subs):
        arm.add_subscription(sub_id, f"Team {n}")
    busy = subs[:5]
    connector, subscriptions = FakeConnectorState(), FakeSubscriptionState()
    writer, queue = FakeActivityWriter(), FakePullQueue()
    world = World(
        connector, subscriptions, arm, writer, queue, clock,
        PullPorts(connector, subscriptions, arm, writer, queue, clock, settings),
    )  # fmt: skip
    world.connect()
    for n, sub_id in enumerate(busy):
        world.add_events(sub_id, 40, START, START + timedelta(minutes=3), seed=n)
    for _ in range(2):
        world.clock.advance(timedelta(minutes=5))
        assert world.fanout().enqueued == 10_000
        messages = queue.take()
        assert sorted(m.subscription_id for m in messages) == subs  # every subscription once
        assert world.fanout().enqueued == 0  # a tick while they wait adds nothing
        reads, writes, pages = subscriptions.reads, subscriptions.writes, sum(arm.page_reads.values())
        outcomes = Counter(pull_subscription(world.ports, m).outcome for m in messages)
        assert outcomes == {"caught_up": 10_000}
        # A caught-up pull: one record read, two writes (lease + window, close + release), one ARM page.
        assert subscriptions.reads - reads == 10_000
        assert subscriptions.writes - writes == 20_000
        assert sum(arm.page_reads.values()) - pages == 10_000
        end = world.clock.now() - timedelta(seconds=60)
        assert all(r.watermark == end and r.lease_owner is None for r in subscriptions.list())
    for sub_id in busy:
        assert writer.by_subscription[sub_id] == world.expected(sub_id, START, START + timedelta(minutes=3)) != set()
