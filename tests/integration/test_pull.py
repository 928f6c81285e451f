"""The fan-out and the pull against the real emulator and Azurite, handler by handler."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from azure.storage.queue import QueueClient

from activities.layout import account_api, day_counts, day_key
from activities.writer import ActivityStore
from connector import service
from connector.status import connector_body
from core.arm import ArmUnavailable
from core.auth import Principal
from core.runtime import Runtime
from ingestion.fanout import FanoutResult, run_fanout
from ingestion.messages import PullMessage
from ingestion.models import parse_timestamp
from ingestion.normalize import normalize_event
from ingestion.pull import Delivery, pull_subscription, run_pull
from state.records import SubscriptionRecord
from tests.support.platform import make_runtime

pytestmark = pytest.mark.integration

ADMIN = Principal(object_id="a", upn="admin@contoso.com", name="Admin", tenant_id="t", role_ids=frozenset())


def connect(runtime: Runtime) -> Runtime:
    result = service.connect(runtime.connector, runtime.subscriptions, runtime.arm, runtime.clock, ADMIN)
    assert result.outcome == "connected", connector_body(result.view)
    return runtime


def body_of(runtime: Runtime) -> dict[str, Any]:
    return connector_body(service.current_view(runtime.connector, runtime.subscriptions))


def retention(runtime: Runtime) -> int:
    from ingestion.retention import run_retention

    return run_retention(runtime.subscriptions, runtime.activities, runtime.clock, runtime.settings)


def fanout(runtime: Runtime) -> FanoutResult:
    return run_fanout(runtime.connector, runtime.subscriptions, runtime.arm, runtime.pull_queue, runtime.clock)


def drain(runtime: Runtime) -> list[PullMessage]:
    """Take every visible message off the pull queue (what the host would deliver)."""
    out = []
    for msg in runtime.storage.pull_queue.receive_messages(messages_per_page=32, visibility_timeout=60):
        out.append(PullMessage.model_validate_json(msg.content))
        runtime.storage.pull_queue.delete_message(msg)
    return out


def pull_all(runtime: Runtime, *, rounds: int = 50) -> int:
    """Deliver queued messages until the queue is empty; returns how many were handled."""
    handled = 0
    for _ in range(rounds):
        batch = drain(runtime)
        if not batch:
            return handled
        for message in batch:
            pull_subscription(runtime.pull, message)
            handled += 1
    raise AssertionError("the pull queue did not drain")


def message_for(store: Runtime, subscription_id: str, clock: Any) -> PullMessage:
    """The message the fan-out would enqueue for this subscription now."""
    connector = store.connector.get()
    assert connector is not None
    return PullMessage(subscription_id=subscription_id, connection_id=connector.connection_id, enqueued_at=clock.now())


def active_ids(emulator: Any) -> list[str]:
    return [s.subscription_id for s in emulator.subscriptions if s.listed and s.state == "Enabled" and not s.forbidden]


def stored_ids(runtime: Runtime) -> Counter[str]:
    rows = ActivityStore(runtime.storage).activities.query_entities("PartitionKey ne ''", select=["id"])
    return Counter(r["id"] for r in rows)


def expected_events(emulator: Any, subs: list[str], start: Any, end: Any, surfaced_by: Any = None) -> dict[str, Any]:
    """The ARM activities the emulator served in the range: only they become activities."""
    return {e["eventDataId"]: e for sub in subs for e in emulator.arm_events(sub, start, end, surfaced_by=surfaced_by)}


def skipped_events(emulator: Any, subs: list[str], start: Any, end: Any) -> dict[str, Any]:
    """The events of other categories (Policy, ServiceHealth, ...) in the range: read and skipped."""
    return {e["eventDataId"]: e for sub in subs for e in emulator.other_events(sub, start, end)}


def test_fanout_and_pulls_store_exactly_the_events_since_connection(
    runtime: Runtime, emulator: Any, clock: Any
) -> None:
    connected_at = clock.now()
    store = connect(runtime)
    for _ in range(6):  # half an hour of fan-outs every five minutes
        clock.advance(timedelta(minutes=5))
        assert fanout(runtime).enqueued == len(active_ids(emulator))
        pull_all(runtime)
    emulator.set_events_per_hour(0)
    stop = clock.now()
    clock.advance(timedelta(minutes=10))  # every event has surfaced
    fanout(runtime)
    pull_all(runtime)

    # Up to the last window's end: the end events of operations started before `stop` come after it.
    expected = expected_events(emulator, active_ids(emulator), connected_at, clock.now() - timedelta(seconds=60))
    assert expected, "the emulator generated no events"
    got = stored_ids(runtime)
    assert set(got) == set(expected) and set(got.values()) == {1}
    skipped = skipped_events(emulator, active_ids(emulator), connected_at, clock.now() - timedelta(seconds=60))
    assert {e["category"]["value"] for e in skipped.values()} >= {"Policy"}  # read, and never stored
    assert not set(got) & set(skipped)

    acts = ActivityStore(runtime.storage)
    for sub in active_ids(emulator):
        record = store.subscriptions.get(sub)
        assert record is not None and record.status == "OK" and record.next_link is None
        n = sum(1 for e in expected.values() if e["subscriptionId"].lower() == sub)
        assert acts.subscription_count(sub) == n == record.activities
        # The per-day map is copied onto the record with the count: exact, by the event's UTC day.
        per_day = Counter(day_key(parse_timestamp(e["eventTimestamp"])) for e in expected.values()  # type: ignore[arg-type]
                          if e["subscriptionId"].lower() == sub)  # fmt: skip
        assert record.day_counts == acts.subscription_summary(sub)[1]
        assert day_counts(record.day_counts) == dict(per_day)
        assert record.watermark >= stop

    normalized = [normalize_event(e, ingested_at=stop) for e in expected.values()]
    want = Counter(a.user.id.lower() for a in normalized if a.user.id)
    rows = acts.accounts.query_entities("PartitionKey eq 'account'")
    got_counts = {account_api(r)["id"].lower(): account_api(r)["activityCount"] for r in rows}
    assert got_counts == dict(want)


@pytest.mark.slow
def test_forbidden_subscription_is_marked_and_others_go_on(runtime: Runtime, emulator: Any, clock: Any) -> None:
    denied = active_ids(emulator)[0]
    emulator.set_subscription(denied, forbidden=True)
    store = connect(runtime)
    clock.advance(timedelta(minutes=30))
    fanout(runtime)
    handled = pull_all(runtime)
    assert handled == len(active_ids(emulator)) + 1  # the forbidden one was handled once, not retried
    record = store.subscriptions.get(denied)
    assert record is not None and record.status == "Error"
    assert "Reader role" in (record.message or "")
    body = body_of(store)
    assert body["status"] == "Warning" and denied in body["message"]
    others = [store.subscriptions.get(s) for s in active_ids(emulator)]
    assert all(o is not None and o.status == "OK" and o.activities > 0 for o in others)

    emulator.set_subscription(denied, forbidden=False)  # the fix: the next run clears the failure
    clock.advance(timedelta(minutes=5))
    fanout(runtime)
    pull_all(runtime)
    record = store.subscriptions.get(denied)
    assert record is not None and record.status == "OK" and record.message is None
    assert body_of(store)["status"] == "Connected"


@pytest.mark.slow
def test_crash_between_pages_resumes_without_loss_or_duplicates(
    runtime: Runtime, emulator: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.set_events_per_hour(300)
    emulator.event_page_size = 50
    connected_at = clock.now()
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(hours=1))
    message = message_for(store, sub, clock)
    emulator.reset_request_log()
    # The second page fails for good (beyond the pipeline's retries): the message fails.
    emulator.add_fault("5xx", subscription_id=sub, count=-1, status=500)
    original = emulator.take_fault  # let exactly one page through first
    passed = {"n": 0}

    def one_page_then_fail(subscription_id: str) -> Any:
        if passed["n"] == 0:
            passed["n"] += 1
            return None
        return original(subscription_id)

    with monkeypatch.context() as patch, pytest.raises(ArmUnavailable, match="500"):
        patch.setattr(emulator, "take_fault", one_page_then_fail)
        pull_subscription(runtime.pull, message, Delivery(dequeue_count=1))
    emulator.clear_faults()
    mid: SubscriptionRecord | None = store.subscriptions.get(sub)
    assert mid is not None and mid.next_link is not None  # position saved after the stored page
    assert mid.watermark == connected_at  # not moved past unstored events
    assert mid.lease_owner is None and "attempt 1 of 5" in (mid.message or "")
    assert 0 < sum(stored_ids(runtime).values()) <= 50

    pull_subscription(runtime.pull, message, Delivery(dequeue_count=2))
    expected = expected_events(emulator, [sub], connected_at, clock.now() - timedelta(seconds=60), clock.now())
    got = stored_ids(runtime)
    assert set(got) == set(expected) and set(got.values()) == {1}
    done = store.subscriptions.get(sub)
    assert done is not None and done.status == "OK" and done.activities == len(expected)


def test_failing_message_reports_poison_on_the_last_attempt(runtime: Runtime, emulator: Any, clock: Any) -> None:
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(minutes=10))
    message = message_for(store, sub, clock)
    emulator.add_fault("5xx", subscription_id=sub, count=-1, status=503)
    with pytest.raises(Exception):  # noqa: B017 - the host only needs it to raise
        pull_subscription(runtime.pull, message, Delivery(dequeue_count=5, max_dequeue_count=5))
    record = store.subscriptions.get(sub)
    assert record is not None and record.status == "Error"
    assert f"{runtime.settings.pull_queue}-poison" in (record.message or "")
    assert body_of(store)["status"] == "Warning"


def test_throttling_re_enqueues_with_a_visibility_delay(runtime: Runtime, emulator: Any, clock: Any) -> None:
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(minutes=10))
    message = message_for(store, sub, clock)
    emulator.add_fault("429", subscription_id=sub, count=1, retry_after=3600)
    result = pull_subscription(runtime.pull, message)
    assert result.outcome == "throttled"
    assert list(runtime.storage.pull_queue.receive_messages(visibility_timeout=1)) == []  # hidden for an hour
    assert runtime.storage.pull_queue.get_queue_properties().approximate_message_count == 1
    record = store.subscriptions.get(sub)
    assert record is not None and record.status == "OK" and "throttling" in (record.message or "")
    assert record.lease_owner is None

    emulator.add_fault("429", subscription_id=sub, count=2, retry_after=1)  # short: retried inline
    assert pull_subscription(runtime.pull, message).outcome == "caught_up"


@pytest.mark.slow
def test_backlog_is_worked_off_in_bounded_steps(emulator: Any, clock: Any, environ: Any) -> None:
    runtime = make_runtime({**environ, "PULL_MAX_PAGES": "3"}, clock)
    emulator.set_events_per_hour(10)
    emulator.event_page_size = 40
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(days=2))  # an outage of two days
    message = message_for(store, sub, clock)
    first = pull_subscription(runtime.pull, message)
    assert first.outcome == "backlog" and first.pages <= runtime.settings.pull_max_pages
    steps = 1 + pull_all(runtime)
    assert steps > 1
    record = store.subscriptions.get(sub)
    assert record is not None and record.watermark >= clock.now() - timedelta(minutes=2)


@pytest.mark.slow
def test_concurrent_messages_for_one_subscription(runtime: Runtime, emulator: Any, clock: Any) -> None:
    emulator.set_events_per_hour(200)
    emulator.event_page_size = 50
    connected_at = clock.now()
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(hours=2))
    message = message_for(store, sub, clock)
    outcomes: list[str] = []
    together = threading.Barrier(4)

    def pull() -> None:
        together.wait(timeout=30)
        outcomes.append(pull_subscription(runtime.pull, message).outcome)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "caught_up" in outcomes and outcomes.count("skipped") >= 1
    pull_subscription(runtime.pull, message)  # and once more, as a redelivery
    expected = expected_events(emulator, [sub], connected_at, clock.now() - timedelta(seconds=60), clock.now())
    got = stored_ids(runtime)
    assert set(got) == set(expected) and set(got.values()) == {1}
    record = store.subscriptions.get(sub)
    assert record is not None and record.activities == len(expected)


def test_malformed_messages_are_dropped(runtime: Runtime, caplog: pytest.LogCaptureFixture) -> None:
    for body in (b"not json", b"{}", json.dumps({"subscriptionId": "x", "connectionId": "c"}).encode()):
        assert run_pull(runtime.pull, body).outcome == "skipped"
    assert "malformed" in caplog.text


def test_disconnected_connector_enqueues_and_pulls_nothing(runtime: Runtime, emulator: Any, clock: Any) -> None:
    store = connect(runtime)
    connection = store.connector.get().connection_id  # type: ignore[union-attr]
    service.disconnect(store.connector, store.subscriptions, clock, ADMIN)
    clock.advance(timedelta(minutes=5))
    assert fanout(runtime).enqueued == 0
    message = PullMessage(subscription_id=active_ids(emulator)[0], connection_id=connection, enqueued_at=clock.now())
    assert pull_subscription(runtime.pull, message).outcome == "skipped"
    assert sum(stored_ids(runtime).values()) == 0


def test_fanout_adds_new_marks_inactive_and_reports_listing_failure(
    runtime: Runtime, emulator: Any, clock: Any
) -> None:
    store = connect(runtime)
    clock.advance(timedelta(minutes=5))
    new = emulator.add_subscription("Contoso Analytics")
    gone = active_ids(emulator)[1]
    emulator.set_subscription(gone, state="Disabled")
    result = fanout(runtime)
    assert result.enqueued == len(active_ids(emulator))
    added = store.subscriptions.get(new.subscription_id)
    assert added is not None and added.watermark == clock.now()
    body = body_of(store)
    states = {s["subscriptionId"]: s for s in body["subscriptions"]}
    assert states[gone]["status"] == "Inactive" and states[gone]["state"] == "Disabled"
    assert body["lastFanoutAt"] is not None

    emulator.reject_sign_in(True)
    fresh = _fresh_arm(runtime)
    failed = fanout(fresh)
    assert failed.error and "sign in" in failed.error
    assert body_of(store)["status"] == "Error"
    emulator.reject_sign_in(False)
    fanout(_fresh_arm(runtime))
    assert body_of(store)["status"] == "Connected"


def _fresh_arm(runtime: Runtime) -> Runtime:
    """The runtime with a new ARM client: a new credential, so no cached token hides a sign-in failure."""
    from dataclasses import replace

    from core.runtime import build_arm

    return replace(runtime, arm=build_arm(runtime.settings))


def test_queue_messages_are_base64_json(runtime: Runtime, emulator: Any, clock: Any, environ: Any) -> None:
    connect(runtime)
    fanout(runtime)
    plain = QueueClient.from_connection_string(environ["AzureWebJobsStorage"], runtime.settings.pull_queue)
    raw = plain.receive_messages(visibility_timeout=1)
    first = next(iter(raw))
    document = json.loads(base64.b64decode(first.content))
    assert set(document) == {"version", "subscriptionId", "connectionId", "enqueuedAt", "reason"}


class TickingClock:
    """Time that moves on every reading, as wall time does while a pull runs."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def now(self) -> Any:
        return self._inner.advance(timedelta(seconds=2))


def test_a_caught_up_pull_does_not_chase_the_moving_now(runtime: Runtime, emulator: Any, clock: Any) -> None:
    from dataclasses import replace

    store = connect(runtime)
    clock.advance(timedelta(minutes=5))
    ticking = replace(runtime, clock=TickingClock(clock))
    message = message_for(store, active_ids(emulator)[0], clock)
    result = pull_subscription(ticking.pull, message)
    assert result.outcome == "caught_up" and result.pages == 1
    assert drain(runtime) == []  # no follow-up message


@pytest.mark.slow
def test_retention_timer_deletes_old_activities_and_keeps_accounts(
    runtime: Runtime, emulator: Any, clock: Any, environ: Any
) -> None:

    store = connect(runtime)
    clock.advance(timedelta(hours=1))
    fanout(runtime)
    pull_all(runtime)
    acts = ActivityStore(runtime.storage)
    stored = sum(stored_ids(runtime).values())
    accounts_before = list(acts.accounts.query_entities("PartitionKey eq 'account'"))
    assert stored > 0 and accounts_before

    clock.advance(timedelta(days=runtime.settings.retention_days - 1))
    assert retention(runtime) == 0  # nothing is old enough yet
    clock.advance(timedelta(days=2))
    assert retention(runtime) == stored
    assert sum(stored_ids(runtime).values()) == 0
    assert list(acts.accounts.query_entities("PartitionKey eq 'account'")) == accounts_before
    assert store.connector.get() is not None


def test_retention_never_deletes_what_a_backlog_may_still_re_read(emulator: Any, clock: Any, environ: Any) -> None:
    runtime = make_runtime({**environ, "ACTIVITY_RETENTION_DAYS": "10"}, clock)
    emulator.set_events_per_hour(6)
    connect(runtime)
    clock.advance(timedelta(hours=2))
    fanout(runtime)
    pull_all(runtime)
    stored = sum(stored_ids(runtime).values())
    assert stored > 0
    clock.advance(timedelta(days=11))  # no pull for 11 days: the next one re-reads the overlap
    first = retention(runtime)
    assert 0 < first < stored  # the last PULL_OVERLAP_SECONDS before the watermark are kept
    clock.advance(timedelta(days=80))  # now beyond what ARM keeps: nothing can be re-read
    assert retention(runtime) == stored - first


def test_an_unexpected_error_frees_the_subscription_and_says_so(
    runtime: Runtime, emulator: Any, clock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(minutes=30))
    message = message_for(store, sub, clock)

    def broken(self: Any, subscription_id: str, items: Any) -> Any:
        raise RuntimeError("a defect")

    with monkeypatch.context() as patch, pytest.raises(RuntimeError):
        patch.setattr(ActivityStore, "save", broken)
        pull_subscription(runtime.pull, message, Delivery(message_id="m1"))
    record = store.subscriptions.get(sub)
    assert record is not None and record.lease_owner is None
    assert record.status == "Error" and "unexpectedly" in (record.message or "")
    assert pull_subscription(runtime.pull, message, Delivery(message_id="m1")).outcome == "caught_up"


def test_a_redelivered_message_takes_back_its_own_lease(runtime: Runtime, emulator: Any, clock: Any) -> None:
    from dataclasses import replace

    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(minutes=30))
    record = store.subscriptions.get(sub)
    assert record is not None
    # The worker that held the lease for message m1 died without releasing it.
    store.subscriptions.replace(replace(record, lease_owner="m1", lease_until=clock.now() + timedelta(minutes=10)))
    message = message_for(store, sub, clock)
    assert pull_subscription(runtime.pull, message, Delivery(message_id="m2")).outcome == "skipped"
    assert pull_subscription(runtime.pull, message, Delivery(message_id="m1")).outcome == "caught_up"


@pytest.mark.slow
def test_a_disconnect_stops_a_running_pull_before_its_next_page(runtime: Runtime, emulator: Any, clock: Any) -> None:
    emulator.set_events_per_hour(600)
    emulator.event_page_size = 50
    store = connect(runtime)
    sub = active_ids(emulator)[0]
    clock.advance(timedelta(hours=1))
    message = message_for(store, sub, clock)
    emulator.add_fault("slow", subscription_id=sub, count=-1, seconds=0.25)
    emulator.reset_request_log()

    def pages_read() -> int:
        return sum(1 for r in emulator.request_log if sub in r.path.lower() and r.status == 200)

    outcome: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: outcome.update(result=pull_subscription(runtime.pull, message)))
    worker.start()
    deadline = threading.Event()
    while pages_read() < 2 and worker.is_alive():
        deadline.wait(0.05)
    assert pages_read() >= 2, "the pull should still be running"
    service.disconnect(store.connector, store.subscriptions, clock, ADMIN)
    at_disconnect = pages_read()
    worker.join(60)
    emulator.clear_faults()

    assert outcome["result"].outcome == "lease_lost"
    # At most the page in flight and the one fetched ahead while the last page was stored.
    assert pages_read() <= at_disconnect + 2
    record = store.subscriptions.get(sub)
    assert record is not None and record.lease_owner is None
    assert record.last_success_at is None and record.last_pulled_at is None  # no status newer than the disconnect
    assert body_of(store)["status"] == "Disconnected"
    stored = stored_ids(runtime)
    assert stored and set(stored.values()) == {1}
    assert pull_subscription(runtime.pull, message).outcome == "skipped"  # a redelivery after the disconnect

    # A reconnect starts afresh; what the stopped pull stored is neither lost nor counted twice.
    clock.advance(timedelta(minutes=30))
    reconnected_at = clock.now()
    store = connect(runtime)
    clock.advance(timedelta(minutes=20))
    assert pull_subscription(runtime.pull, message_for(store, sub, clock)).outcome == "caught_up"
    after = stored_ids(runtime)
    assert set(after.values()) == {1}
    expected = expected_events(emulator, [sub], reconnected_at, clock.now() - timedelta(seconds=60), clock.now())
    assert set(expected) <= set(after)


@pytest.mark.slow
def test_many_pulls_at_once_keep_every_guarantee(runtime: Runtime, emulator: Any, clock: Any) -> None:
    """Pulls as one worker runs them (about 36 at once), three messages of each subscription at once.

    Each subscription's window is read by one message at a time (the lease), every event is stored
    and counted once, the watermark reaches the window's end, and every lease and window is closed
    afterwards; a second round with redeliveries of the same messages changes no count.
    """
    from concurrent.futures import ThreadPoolExecutor

    emulator.event_page_size = 10
    emulator.set_page_latency(0.02)
    emulator.add_subscriptions(7, created_at=clock.now() - timedelta(days=1))
    connected_at = clock.now()
    store = connect(runtime)
    subs = active_ids(emulator)
    assert len(subs) >= 10
    pool = ThreadPoolExecutor(max_workers=3 * len(subs))

    def round_of(messages: list[tuple[PullMessage, str]]) -> Counter[str]:
        together = threading.Barrier(len(messages))

        def pull(message: PullMessage, message_id: str) -> str:
            together.wait(timeout=30)
            return pull_subscription(runtime.pull, message, Delivery(message_id)).outcome

        return Counter(pool.map(lambda item: pull(*item), messages))

    try:
        for minutes in (30, 5):
            clock.advance(timedelta(minutes=minutes))
            messages = [(message_for(store, sub, clock), f"{sub}-{k}") for sub in subs for k in range(3)]
            outcomes = round_of(messages)
            assert set(outcomes) <= {"caught_up", "skipped"}, outcomes
            assert outcomes["caught_up"] >= len(subs)
            assert pull_all(runtime) == 0  # no backlog message: each window was read to its end
            redelivered = round_of(messages)  # the same messages again: their own leases are free
            assert set(redelivered) <= {"caught_up", "skipped"}, redelivered
            end = clock.now() - timedelta(seconds=60)
            expected = expected_events(emulator, subs, connected_at, end, clock.now())
            got = stored_ids(runtime)
            assert set(got) == set(expected) and set(got.values()) == {1}
            for sub in subs:
                record = store.subscriptions.get(sub)
                assert record is not None
                assert record.watermark == end and record.next_link is None and record.window_end is None
                assert record.lease_owner is None and record.status == "OK"
                mine = {i for i, e in expected.items() if e["subscriptionId"].lower() == sub}
                assert record.activities == len(mine)
    finally:
        pool.shutdown()
