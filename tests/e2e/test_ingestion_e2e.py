"""The whole connector through the local host, the emulator and Azurite, with simulated hours.

The administrator connects over HTTP; the fan-out timer is fired through the host's admin API
every five simulated minutes; the pull queue is served by the host's queue listener. Then the
stored activities are compared with the emulator's ground truth.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from activities.layout import account_api, activity_from_properties, epoch_us, raw_from_entity
from activities.writer import ActivityStore
from core.runtime import Runtime
from ingestion.normalize import normalize_event
from localdev.azurite import ROOT
from tests.support.platform import call, hosted_app

pytestmark = pytest.mark.e2e

# host.json's queue settings, polling faster; maxDequeueCount stays the project's (the handler reads it).
FAST_QUEUES = {
    **json.loads((ROOT / "host.json").read_text())["extensions"]["queues"],
    "visibilityTimeout": "00:00:00",
    "maxPollingInterval": "00:00:00.200",
}


class DuplicatingQueue:
    """Delivers every pull message twice, as an at-least-once queue may."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def send_message(self, content: Any, **kwargs: Any) -> Any:
        self._inner.send_message(content, **kwargs)
        return self._inner.send_message(content, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def environ(environ: dict[str, str]) -> dict[str, str]:
    # A 429 asking for more than 2 s re-enqueues the message (with that delay) instead of waiting.
    return {**environ, "PULL_MAX_INLINE_WAIT_SECONDS": "2"}


@pytest.fixture
def fast_host(runtime: Runtime, environ: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    host_json = json.loads((ROOT / "host.json").read_text())
    host_json["extensions"]["queues"] = FAST_QUEUES
    with hosted_app(environ, monkeypatch, host_json=host_json) as host:
        yield host


def tick(host: Any, clock: Any, minutes: int = 5) -> None:
    clock.advance(timedelta(minutes=minutes))
    host.run_function("fanout", wait=True)
    assert host.wait_idle(timeout=120), "the pull queue did not drain"


def readable(emulator: Any) -> list[str]:
    return [s.subscription_id for s in emulator.subscriptions if s.listed and s.state == "Enabled" and not s.forbidden]


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "every-message-twice"])
def test_connector_stores_exactly_the_events_after_connection(
    fast_host: Any, runtime: Runtime, emulator: Any, clock: Any, duplicate: bool
) -> None:
    if duplicate:
        runtime.storage.pull_queue = DuplicatingQueue(runtime.storage.pull_queue)  # type: ignore[assignment]
    subs = [s for s in emulator.subscriptions if s.state == "Enabled"]
    forbidden = subs[1].subscription_id
    emulator.set_subscription(forbidden, forbidden=True)
    emulator.set_events_per_hour(90)
    connected_at = clock.now()

    admin = emulator.mint_token("global_admin")
    status, body = call(fast_host.base_url, "POST", "/api/connectors/azure", admin)
    assert status == 201, body

    target = subs[0].subscription_id
    late = emulator.inject_event(
        target, at=connected_at + timedelta(minutes=12), delay=timedelta(minutes=11), caller="late@contoso.com"
    )
    emulator.add_fault("429", subscription_id=target, count=2, retry_after=1)  # waited inline
    emulator.add_fault("429", subscription_id=subs[2].subscription_id, count=1, retry_after=3)  # re-enqueued

    new_sub = None
    for step in range(9):
        if step == 1:
            new_sub = emulator.add_subscription("Contoso Created Later")
        tick(fast_host, clock)
    emulator.set_events_per_hour(0)
    end = clock.now()
    for _ in range(3):  # every event has surfaced; the last windows close
        tick(fast_host, clock)
    assert new_sub is not None

    window_end = clock.now() - timedelta(seconds=runtime.settings.pull_lag_seconds)
    # Only ARM activities become activities; the other categories are read and skipped.
    expected = {
        e["eventDataId"]: e for sub in readable(emulator) for e in emulator.arm_events(sub, connected_at, window_end)
    }
    skipped = {
        e["eventDataId"] for sub in readable(emulator) for e in emulator.other_events(sub, connected_at, window_end)
    }
    assert skipped
    assert any(e["subscriptionId"].lower() == new_sub.subscription_id for e in expected.values())
    assert late["eventDataId"] in expected
    assert all(connected_at <= normalize_event(e, ingested_at=end).timestamp for e in expected.values())

    store = ActivityStore(runtime.storage)
    rows = list(store.activities.query_entities("PartitionKey ne ''"))
    ids = Counter(r["id"] for r in rows)
    assert set(ids) == set(expected), (len(ids), len(expected))
    assert set(ids.values()) == {1} and not set(ids) & skipped

    # Normalized as docs/normalization.md says, with the original event kept.
    for row in rows:
        stored = activity_from_properties(row)
        raw = expected[stored.id]
        assert stored == normalize_event(raw, ingested_at=stored.ingested_at)
        assert raw_from_entity(row) == raw
    kinds = {activity_from_properties(r).user.type for r in rows}
    assert {"user", "servicePrincipal", "managedIdentity"} <= kinds
    pairs = Counter(activity_from_properties(r).correlation_id for r in rows)
    assert any(n >= 2 for n in pairs.values()), "no start/end pairs were stored"

    # Every account's count is exact.
    normalized = [normalize_event(e, ingested_at=end) for e in expected.values()]
    want = Counter(a.user.id.lower() for a in normalized if a.user.id)
    accounts = {
        account_api(r)["id"].lower(): account_api(r) for r in store.accounts.query_entities("PartitionKey eq 'account'")
    }
    assert {k: v["activityCount"] for k, v in accounts.items()} == dict(want)

    # The connector's status says what is wrong, and counts what it stored.
    status, body = call(fast_host.base_url, "GET", "/api/connectors/azure", admin)
    assert status == 200
    assert body["status"] == "Warning" and forbidden in body["message"]
    by_id = {s["subscriptionId"]: s for s in body["subscriptions"]}
    assert by_id[forbidden]["status"] == "Error" and "Reader role" in by_id[forbidden]["message"]
    for sub in readable(emulator):
        n = sum(1 for e in expected.values() if e["subscriptionId"].lower() == sub)
        assert by_id[sub]["activities"] == n and by_id[sub]["status"] == "OK"
    disabled = [s for s in body["subscriptions"] if s["state"] == "Disabled"]
    assert disabled and all(s["status"] == "Inactive" and s["activities"] == 0 for s in disabled)

    # And the search API, through the host, finds them: one user's activities, page by page.
    busiest = max((a for a in normalized if a.user.upn), key=lambda a: want[a.user.id.lower()])  # type: ignore[union-attr]
    mine = sorted(
        (a for a in normalized if a.user.id == busiest.user.id), key=lambda a: (-epoch_us(a.timestamp), a.id.lower())
    )  # newest first, ties by id
    seen: list[str] = []
    continuation = None
    while True:
        path = f"/api/activities?user={busiest.user.upn}&limit=7"
        if continuation:
            path += f"&continuation={continuation}"
        status, page = call(fast_host.base_url, "GET", path, admin)
        assert status == 200, page
        seen += [item["id"] for item in page["items"]]
        continuation = page["continuation"]
        if not continuation:
            break
    assert seen == [a.id for a in mine]
    assert len(seen) == len(set(seen)) == want[busiest.user.id.lower()]  # type: ignore[union-attr]
    status, account = call(fast_host.base_url, "GET", f"/api/accounts/{busiest.user.upn}", admin)
    assert status == 200 and account["activityCount"] == len(mine)

    failed = [i for i in fast_host.invocations.snapshot() if i.outcome != "Succeeded"]
    assert failed == []


def test_a_message_that_keeps_failing_ends_in_poison_and_the_status_says_so(
    fast_host: Any, runtime: Runtime, emulator: Any, clock: Any
) -> None:
    admin = emulator.mint_token("global_admin")
    assert call(fast_host.base_url, "POST", "/api/connectors/azure", admin)[0] == 201
    broken = readable(emulator)[0]
    emulator.add_fault("5xx", subscription_id=broken, count=-1, status=503)
    tick(fast_host, clock)
    poison = runtime.storage.poison_queue
    messages = list(poison.peek_messages(max_messages=10))
    assert len(messages) == 1
    assert json.loads(messages[0].content)["subscriptionId"] == broken
    attempts = [i for i in fast_host.invocations.snapshot() if i.function == "pull" and i.outcome == "Failed"]
    assert len(attempts) == FAST_QUEUES["maxDequeueCount"]

    _, body = call(fast_host.base_url, "GET", "/api/connectors/azure", admin)
    sub = next(s for s in body["subscriptions"] if s["subscriptionId"] == broken)
    assert sub["status"] == "Error" and "poison" in sub["message"]
    assert body["status"] == "Warning"

    emulator.clear_faults()  # the next fan-out retries, and the failure clears itself
    tick(fast_host, clock)
    _, body = call(fast_host.base_url, "GET", "/api/connectors/azure", admin)
    assert body["status"] == "Connected"
