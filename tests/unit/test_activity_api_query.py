"""Query planning and paging, without storage: the key bounds are exact and paging never loses rows."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from azure.data.tables import TableClient
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from activities.layout import ACCOUNT_SUMMARY_RK, SUBSCRIPTION_SUMMARY_RK, day_partition, inverted_time, safe_key
from activities.reader import ActivityQuery, Plan, plan_activities, run_plan
from core.storage import BY_SUBSCRIPTION_TABLE, BY_TIME_TABLE, BY_USER_TABLE

pytestmark = pytest.mark.unit

T = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
INJECTION = "x' or PartitionKey ne '"
_KEY_CLAUSE = re.compile(r"^(PartitionKey|RowKey) (eq|ge|gt|le|lt) @(\w+)$")
_OPS = {
    "eq": lambda a, b: a == b,
    "ge": lambda a, b: a >= b,
    "gt": lambda a, b: a > b,
    "le": lambda a, b: a <= b,
    "lt": lambda a, b: a < b,
}


def key_match(plan: Plan, pk: str, rk: str) -> bool:
    """Evaluate the key clauses of a plan's filter on one row's keys."""
    keys = {"PartitionKey": pk, "RowKey": rk}
    for clause in plan.filter.split(" and "):
        found = _KEY_CLAUSE.match(clause)
        if found and not _OPS[found.group(2)](keys[found.group(1)], plan.parameters[found.group(3)]):
            return False
    return True


def test_access_path_per_filter() -> None:
    by_user = plan_activities(ActivityQuery(user="Alice@Contoso.com", subscription_id="S1"), "acct")
    assert by_user is not None and (by_user.path, by_user.table) == ("user", BY_USER_TABLE)
    assert by_user.parameters["pk"] == "acct"
    by_sub = plan_activities(ActivityQuery(subscription_id="AAAA-1", status="Failed"))
    assert by_sub is not None and (by_sub.path, by_sub.table) == ("subscription", BY_SUBSCRIPTION_TABLE)
    assert by_sub.parameters["pk"] == "aaaa-1" and by_sub.parameters["status"] == "failed"
    by_time = plan_activities(ActivityQuery(action="Microsoft.Compute/virtualMachines/WRITE"))
    assert by_time is not None and (by_time.path, by_time.table) == ("time", BY_TIME_TABLE)
    assert by_time.parameters["action"] == "microsoft.compute/virtualmachines/write"
    with pytest.raises(ValueError):
        plan_activities(ActivityQuery(user="someone"))


@pytest.mark.parametrize(
    "query",
    [
        ActivityQuery(user=INJECTION, subscription_id=INJECTION, action=INJECTION, status=INJECTION,
                      ip_address=INJECTION),
        ActivityQuery(subscription_id=INJECTION, ip_address="@pk", start=T, end=T + timedelta(days=3)),
        ActivityQuery(action="a b  c", status=" ( ", ip_address="' or ''='"),
    ],
)  # fmt: skip
def test_values_only_travel_as_parameters(query: ActivityQuery) -> None:
    plan = plan_activities(query, safe_key(query.user) if query.user else None)
    assert plan is not None
    assert "'" not in plan.filter and INJECTION not in plan.filter
    words = plan.filter.split(" ")
    assert "" not in words  # the SDK substitutes whole space-separated words only
    placeholders = {word[1:] for word in words if word.startswith("@")}
    assert placeholders == set(plan.parameters), "every placeholder is a whole word and every value is used"
    if query.subscription_id == INJECTION and plan.path == "subscription":
        assert plan.parameters["pk"].startswith("h")  # hashed by safe_key: cannot reach another partition


def test_ledger_paths_never_reach_summary_rows() -> None:
    for query, pk in ((ActivityQuery(user="u"), "u"), (ActivityQuery(subscription_id="s"), "s")):
        plan = plan_activities(query, "u" if query.user else None)
        assert plan is not None
        for summary in (ACCOUNT_SUMMARY_RK, SUBSCRIPTION_SUMMARY_RK):
            assert not key_match(plan, pk, summary)
        assert key_match(plan, pk, "e" + inverted_time(T) + "_id")


def test_empty_ranges_need_no_request() -> None:
    assert plan_activities(ActivityQuery(start=T, end=T)) is None
    assert plan_activities(ActivityQuery(end=datetime(1960, 1, 1, tzinfo=UTC))) is None
    assert plan_activities(ActivityQuery(start=datetime(2400, 1, 1, tzinfo=UTC)), None) is None
    far = plan_activities(ActivityQuery(start=datetime(1, 1, 1, tzinfo=UTC), end=datetime(9999, 1, 1, tzinfo=UTC)))
    assert far is not None and key_match(far, day_partition(T), inverted_time(T) + "_x")


_times = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC))


@st.composite
def _bound(draw: st.DrawFn, ts: datetime) -> datetime | None:
    kind = draw(st.sampled_from(["none", "near", "any", "midnight"]))
    if kind == "none":
        return None
    if kind == "near":
        return ts + timedelta(microseconds=draw(st.integers(-2, 2)))
    if kind == "midnight":
        day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
        return day + timedelta(days=draw(st.integers(-1, 2)))
    return draw(_times)


@settings(max_examples=400)
@given(data=st.data(), ts=_times, path=st.sampled_from(["user", "subscription", "time"]), eid=st.uuids())
def test_key_bounds_are_exactly_the_time_range(data: st.DataObject, ts: datetime, path: str, eid: Any) -> None:
    start = data.draw(_bound(ts), "start")
    end = data.draw(_bound(ts), "end")
    assume(start is None or end is None or start <= end)
    query = ActivityQuery(
        start=start, end=end, user="u" if path == "user" else None, subscription_id="s" if path != "time" else None
    )
    wanted = (start is None or ts >= start) and (end is None or ts < end)
    plan = plan_activities(query, "u" if path == "user" else None)
    if plan is None:
        assert not wanted
        return
    time_rk = f"{inverted_time(ts)}_{eid}"
    if path == "time":
        assert key_match(plan, day_partition(ts), time_rk) == wanted
    else:
        assert key_match(plan, "u" if path == "user" else "s", "e" + time_rk) == wanted


# --- paging ------------------------------------------------------------------------------------


class _Pages:
    def __init__(self, table: FakeTable, per_page: int) -> None:
        self._table = table
        self._per_page = per_page
        self.continuation_token: dict[str, str] | None = None

    def by_page(self, continuation_token: dict[str, str] | None = None) -> _Pages:
        self._start = int(continuation_token["RowKey"]) if continuation_token else 0
        return self

    def __iter__(self) -> _Pages:
        return self

    def __next__(self) -> list[dict[str, Any]]:
        table = self._table
        size = min(self._per_page, table.short[len(table.asked) - 1] if table.short else self._per_page)
        rows = table.rows[self._start : self._start + size]
        end = self._start + size
        self.continuation_token = {"PartitionKey": "p", "RowKey": str(end)} if end < len(table.rows) else None
        return rows


class FakeTable:
    """Serves rows in order; `short[i]` caps the size of the i-th answer (a scan's short or empty page)."""

    def __init__(self, n: int, short: list[int] | None = None) -> None:
        self.rows = [{"RowKey": f"{i:05d}"} for i in range(n)]
        self.short = short
        self.asked: list[int] = []

    def query_entities(
        self, query_filter: str, *, parameters: dict[str, str], results_per_page: int, select: list[str] | None = None
    ) -> _Pages:
        self.asked.append(results_per_page)
        return _Pages(self, results_per_page)


PLAN = Plan(path="time", table=BY_TIME_TABLE, filter="PartitionKey ge @pklo", parameters={"pklo": "d"})


def test_asks_only_for_what_is_still_needed() -> None:
    table = FakeTable(500, short=[30, 0, 25, 100, 100])
    found = run_plan(cast(TableClient, table), PLAN, 100)
    assert table.asked == [100, 70, 70, 45]
    assert len(found.rows) == 100 and found.requests == 4
    assert found.position == {"pk": "p", "rk": "100"}


def test_request_cap_returns_a_position_with_fewer_rows_and_nothing_is_lost() -> None:
    table = FakeTable(60, short=[1] * 200)
    seen: list[str] = []
    position = None
    calls = 0
    while True:
        found = run_plan(cast(TableClient, table), PLAN, 50, position, max_requests=10)
        calls += 1
        assert found.requests <= 10 and len(found.rows) <= 10
        seen.extend(row["RowKey"] for row in found.rows)
        position = found.position
        if position is None:
            break
    assert seen == [row["RowKey"] for row in table.rows] and calls == 6


def test_stops_when_the_service_is_done() -> None:
    table = FakeTable(12)
    found = run_plan(cast(TableClient, table), PLAN, 100)
    assert len(found.rows) == 12 and found.position is None and found.requests == 1
