"""Activities per day on the fakes: the pull copies the store's day map onto the record, the handler
answers the chart from it, and bad `days` values are 400s naming `days`."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
import pytest
from hypothesis import given
from hypothesis import strategies as st

from activities.layout import add_day_counts, counts_on_days, day_counts, encode_day_counts
from activities.reader import last_days
from connector import api, service
from core.auth import Principal
from core.clock import FakeClock
from core.errors import Unauthenticated
from core.http import handle_http
from core.runtime import Runtime
from core.settings import load_settings
from ingestion.fanout import run_fanout
from ingestion.pull import PullPorts, pull_subscription
from tests.fakes import (
    FakeActivityReader,
    FakeActivityWriter,
    FakeArm,
    FakeConnectorState,
    FakePullQueue,
    FakeSubscriptionState,
)
from tests.support.events import make_event

pytestmark = pytest.mark.unit

MIDNIGHT = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
PROD, DEV = "a0000000-0000-4000-8000-000000000000", "b0000000-0000-4000-8000-000000000000"
ADMIN = Principal(object_id="a1", upn="admin@contoso.com", name="Admin", tenant_id="t", role_ids=frozenset())


class Tokens:
    def authenticate(self, authorization: str | None) -> Principal:
        if authorization != "Bearer good":
            raise Unauthenticated("An Authorization header with a bearer token is required.")
        return ADMIN


@pytest.fixture
def rt() -> Runtime:
    settings = load_settings({"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    arm = FakeArm(page_size=7)
    arm.add_subscription(PROD, "Prod")
    arm.add_subscription(DEV, "Dev")
    subscriptions = FakeSubscriptionState()
    unused: Any = None
    return Runtime(
        settings=settings,
        clock=FakeClock(MIDNIGHT - timedelta(hours=1)),
        tokens=Tokens(),  # type: ignore[arg-type]
        arm=arm,
        connector=FakeConnectorState(),
        subscriptions=subscriptions,
        activities=FakeActivityWriter(),
        reader=FakeActivityReader(subscriptions),
        pull_queue=FakePullQueue(),
        policies=unused,
        alerts=unused,
        alert_queue=unused,
        engine=unused,
        storage=unused,
    )


def _get(rt: Runtime, query: dict[str, str], token: str = "good") -> tuple[int, Any]:
    req = func.HttpRequest(
        "GET",
        "http://localhost/api/connectors/azure/activity-per-day",
        headers={"Authorization": f"Bearer {token}"},
        params=query,
        body=b"",
    )
    response = handle_http(req, api.activity_per_day, runtime=lambda: rt)
    return response.status_code, json.loads(response.get_body())


def _tick(rt: Runtime, *, again: bool = False) -> None:
    """A fan-out and its pulls; `again` delivers every message twice (a redelivery)."""
    run_fanout(rt.connector, rt.subscriptions, rt.arm, rt.pull_queue, rt.clock)
    ports = PullPorts(rt.connector, rt.subscriptions, rt.arm, rt.activities, rt.pull_queue, rt.clock, rt.settings)
    queue: Any = rt.pull_queue
    for _ in range(50):
        batch = queue.take()
        if not batch:
            return
        for message in batch * (2 if again else 1):
            pull_subscription(ports, message)


def test_the_chart_counts_each_event_once_on_its_utc_day(rt: Runtime) -> None:
    service.connect(rt.connector, rt.subscriptions, rt.arm, rt.clock, ADMIN)
    arm: Any = rt.arm
    rng = random.Random(7)
    times = {PROD: [MIDNIGHT - timedelta(minutes=50) + timedelta(minutes=4 * i) for i in range(25)], DEV: []}
    for sub, moments in times.items():
        arm.events[sub].extend(make_event(sub, at, rng=rng) for at in moments)
    for _ in range(4):  # every five minutes, each tick re-reading the overlap; the last ones delivered twice
        rt.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
        _tick(rt, again=True)

    status, body = _get(rt, {"days": "3"})
    assert status == 200
    assert body["days"] == [day.isoformat() for day in last_days(3, rt.clock.now())]
    want = add_day_counts({}, times[PROD])  # 23:10 .. 00:46: 13 before midnight, 12 after
    assert want == {"2026-11-25": 13, "2026-11-26": 12}
    by_id = {s["subscriptionId"]: s for s in body["subscriptions"]}
    assert [s["displayName"] for s in body["subscriptions"]] == ["Dev", "Prod"]
    assert by_id[PROD]["counts"] == [want.get(day, 0) for day in body["days"]]
    assert by_id[DEV]["counts"] == [0, 0, 0]
    record = rt.subscriptions.get(PROD)
    assert record is not None and day_counts(record.day_counts) == want and record.activities == 25

    status, default = _get(rt, {})
    assert status == 200 and len(default["days"]) == 30 and default["days"][-1] == body["days"][-1]
    assert sum(next(s for s in default["subscriptions"] if s["subscriptionId"] == PROD)["counts"]) == 25


@pytest.mark.parametrize("days", ["0", "91", "-1", "abc", "3.5", "", "1e2"])
def test_days_out_of_range_is_a_400_naming_days(rt: Runtime, days: str) -> None:
    status, body = _get(rt, {"days": days})
    assert status == 400 and body["error"]["code"] == "InvalidInput"
    assert body["error"]["message"].startswith("days:")


def test_an_unknown_parameter_and_a_missing_token_are_refused(rt: Runtime) -> None:
    status, body = _get(rt, {"day": "3"})
    assert status == 400 and body["error"]["message"] == "day: unknown query parameter; the parameters are days"
    status, body = _get(rt, {}, token="bad")
    assert status == 401 and body["error"]["code"] == "Unauthorized"


def test_ninety_days_and_no_subscription(rt: Runtime) -> None:
    status, body = _get(rt, {"days": "90"})
    assert status == 200 and body["subscriptions"] == [] and len(body["days"]) == 90
    assert body["days"][0] == "2026-08-28" and body["days"][-1] == "2026-11-25"


# --- the stored form of the map -----------------------------------------------------------------------


@given(st.dictionaries(st.integers(0, 99), st.integers(0, 10**9), max_size=100))
def test_the_stored_form_round_trips(by_offset: dict[int, int]) -> None:
    counts = {(MIDNIGHT - timedelta(days=d)).date().isoformat(): n for d, n in by_offset.items()}
    stored = encode_day_counts(counts)
    assert day_counts(stored) == {day: n for day, n in counts.items() if n > 0}
    assert len(stored) <= 11 + 100 * 11
    days = [(MIDNIGHT + timedelta(days=5) - timedelta(days=d)).date() for d in range(110)]
    assert counts_on_days(stored, days) == [counts.get(day.isoformat(), 0) for day in days]


@pytest.mark.parametrize("stored", [None, "", "garbage", "2026-13-01/1", "2026-11-26/1,x", 7, '{"2026-11-26": 3}'])
def test_an_unreadable_stored_form_is_an_empty_map(stored: object) -> None:
    assert day_counts(stored) == {}
    assert counts_on_days(stored, [MIDNIGHT.date()]) == [0]


def test_adding_keeps_the_newest_days() -> None:
    start = {"2026-08-01": 5, "2026-11-01": 2}
    later = add_day_counts(start, [MIDNIGHT, MIDNIGHT + timedelta(hours=23), MIDNIGHT - timedelta(seconds=1)], kept=90)
    assert later == {"2026-11-01": 2, "2026-11-25": 1, "2026-11-26": 2}  # 1 August is more than 90 days back
    assert add_day_counts({}, []) == {}
