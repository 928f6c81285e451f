"""Query planning and execution over the storage layout of `activities.layout`.

One access path per search, never a scan of a whole table:

* ``user`` given: that account's ledger partition in ``activitiesbyuser`` (PartitionKey = the
  account key, RowKey between the ``e``-prefixed inverted-time bounds of ``from``/``to``);
* else ``subscriptionId`` given: that subscription's ledger partition in ``activitiesbysub``;
* else: ``activitiesbytime``, a PartitionKey range over the day partitions between ``from`` and
  ``to`` (all days when unbounded) plus the same RowKey bounds (without the prefix).

Activities per day (the chart) are not counted here: `ActivityQueries.activity_per_day` reads the
per-day maps the writer keeps with the ledger, as copied onto the subscription records, in one
query of their partition (see `activities.layout`).

Every path yields rows newest first (inverted time, then the id's key for ties), so the storage
service's own order is the answer's order and its continuation is the paging position. Other
filters go into the server-side filter string, each value only through ``parameters=`` (the SDK
quotes it); keys derived from the caller's input go through ``safe_key`` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from activities.layout import (
    ACCOUNT_COPY_PK,
    ACCOUNT_RECENT_END,
    ACCOUNT_RECENT_PREFIX,
    ACCOUNT_SUMMARY_RK,
    ACTIVITY_PROPERTIES,
    DAY_COUNTS,
    LEDGER_PREFIX,
    UPN_ALIAS_PK,
    account_api,
    account_recent_key,
    activity_from_properties,
    counts_on_days,
    day_partition,
    epoch_us,
    id_partition,
    inverted_time,
    last_seen_us,
    raw_from_entity,
    safe_key,
)
from activities.tokens import ContinuationSigner, LazySigner, Position, fingerprint, signer_source
from core.clock import Clock
from core.errors import InvalidInput
from core.storage import (
    ACCOUNTS_TABLE,
    ACTIVITIES_TABLE,
    BY_SUBSCRIPTION_TABLE,
    BY_TIME_TABLE,
    BY_USER_TABLE,
    CONNECTOR_TABLE,
    Storage,
)
from core.timefmt import wire_time
from state.tables import SUBSCRIPTION_PK

ACTIVITIES_KIND = "activities"
ACCOUNTS_KIND = "accounts"
MAX_STORAGE_REQUESTS = 10  # per API call; a continuation is returned when the cap is hit
ACCOUNT_PAGE_SIZE = 1000  # the service's maximum page

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_INVERTED = int(inverted_time(EPOCH))  # the largest inverted time; times up to it are representable
_LEDGER_END = chr(ord(LEDGER_PREFIX) + 1)  # every ledger RowKey is below this; summary rows are not ledger rows
_DAY_FIRST = "d"
_DAY_LAST = "d99999999"

# Point reads of many activities at once (an alert's); threads are made on first use.
_POINT_READS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="activity-reads")

ACCOUNT_TYPES = {t.lower(): t for t in ("user", "servicePrincipal", "managedIdentity", "unknown")}


def lowered(value: str | None) -> str | None:
    """A filter value in canonical form (trimmed, lower-cased)."""
    return value.strip().lower() if value is not None else None


@dataclass(frozen=True)
class Window:
    """A listing's time range, on the rows' time: `from` inclusive, `to` exclusive, either open."""

    start: datetime | None = None  # inclusive
    end: datetime | None = None  # exclusive

    def __post_init__(self) -> None:
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidInput("from", "is after to; from is the start (inclusive) and to the end (exclusive)")

    def normalized(self) -> dict[str, str | None]:
        """The filters in a canonical form: what a continuation token is bound to."""
        return {
            "from": wire_time(self.start) if self.start is not None else None,
            "to": wire_time(self.end) if self.end is not None else None,
        }


@dataclass(frozen=True)
class ActivityQuery(Window):
    """The filters of `GET /api/activities`, already validated (see `activity_api.api`)."""

    user: str | None = None
    subscription_id: str | None = None
    action: str | None = None
    status: str | None = None
    ip_address: str | None = None

    def normalized(self) -> dict[str, str | None]:
        return {
            **super().normalized(),
            "user": lowered(self.user),
            "subscriptionId": lowered(self.subscription_id),
            "action": lowered(self.action),
            "status": lowered(self.status),
            "ipAddress": self.ip_address.strip() if self.ip_address is not None else None,
        }

    def fingerprint(self) -> str:
        return fingerprint(ACTIVITIES_KIND, self.normalized())


@dataclass(frozen=True)
class Plan:
    """One server-side query: which table, the filter with @placeholders, and their values."""

    path: Literal["user", "subscription", "time", "policy"]
    table: str
    filter: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass
class Page:
    items: list[dict[str, Any]]
    continuation: str | None
    requests: int = 0  # storage requests this page cost (queries and point reads, not the key)
    plan: Plan | None = None


# --- time bounds ---------------------------------------------------------------------------------


class _Empty(Exception):
    """The range cannot hold any stored activity."""


def _inverted_bound(when: datetime) -> str | None:
    """The RowKey digits just past every row at `when`: rows at or after `when` sort below it.

    None when every representable time is at or after `when` (no bound needed); _Empty when
    none is (the inverted time would not fit the 16-digit key).
    """
    us = epoch_us(when)
    if us <= 0:
        return None
    if us > _MAX_INVERTED:
        raise _Empty
    return f"{_MAX_INVERTED - us + 1:016d}"


def _row_bounds(query: Window) -> tuple[str | None, str | None]:
    """(RowKey ge, RowKey lt) without the ledger prefix: `from` inclusive, `to` exclusive."""
    upper = _inverted_bound(query.start) if query.start is not None else None  # newer rows sort lower
    lower: str | None = None
    if query.end is not None:
        try:
            lower = _inverted_bound(query.end)
        except _Empty:
            lower = None  # `to` is past every representable time: no bound
        else:
            if lower is None:
                raise _Empty  # `to` at or before 1970: nothing is older
    if lower is not None and upper is not None and lower >= upper:
        raise _Empty
    return lower, upper


def _day_bounds(query: Window) -> tuple[str, str]:
    """(PartitionKey ge, PartitionKey le) over the day partitions: newer days have smaller keys."""
    newest = _DAY_FIRST
    oldest = _DAY_LAST
    if query.end is not None and 0 < epoch_us(query.end) <= _MAX_INVERTED:
        newest = day_partition(query.end - timedelta(microseconds=1))
    if query.start is not None and 0 < epoch_us(query.start) <= _MAX_INVERTED:
        oldest = day_partition(query.start)
    return newest, oldest


# --- planning ------------------------------------------------------------------------------------


class Filter:
    """An OData filter built clause by clause, its values as @parameters: the planners' one builder."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.parameters: dict[str, str] = {}

    def add(self, clause: str, **values: str) -> None:
        self.clauses.append(clause)
        self.parameters.update(values)

    def add_day_partitions(self, window: Window) -> bool:
        """The by-time day partitions `window` covers; False when it covers none (nothing can match)."""
        newest, oldest = _day_bounds(window)
        if newest > oldest:
            return False
        self.add("PartitionKey ge @pklo and PartitionKey le @pkhi", pklo=newest, pkhi=oldest)
        return True

    def add_row_bounds(self, lower: str | None, upper: str | None) -> None:
        if lower is not None:
            self.add("RowKey ge @rklo", rklo=lower)
        if upper is not None:
            self.add("RowKey lt @rkhi", rkhi=upper)

    def plan(self, path: Literal["user", "subscription", "time", "policy"], table: str) -> Plan:
        return Plan(path=path, table=table, filter=" and ".join(self.clauses), parameters=self.parameters)


def row_bounds(window: Window) -> tuple[str | None, str | None] | None:
    """(RowKey ge, RowKey lt) of `window` without the ledger prefix; None when no time can match."""
    try:
        return _row_bounds(window)
    except _Empty:
        return None


def plan_activities(query: ActivityQuery, account: str | None = None) -> Plan | None:
    """The one query that answers `query`; None when nothing can match (no request needed).

    `account` is the resolved account key when `query.user` is set (see `resolve_account_key`).
    """
    bounds = row_bounds(query)
    if bounds is None:
        return None
    row_lo, row_hi = bounds
    where = Filter()
    path: Literal["user", "subscription", "time"]
    if query.user is not None:
        if account is None:
            raise ValueError("a user query needs the resolved account key")
        path, table = "user", BY_USER_TABLE
        where.add("PartitionKey eq @pk", pk=account)
    elif query.subscription_id is not None:
        path, table = "subscription", BY_SUBSCRIPTION_TABLE
        where.add("PartitionKey eq @pk", pk=safe_key(query.subscription_id))
    else:
        path, table = "time", BY_TIME_TABLE
        if not where.add_day_partitions(query):
            return None

    if path != "time":
        # Ledger partitions also hold a summary row: stay inside the `e` prefix.
        where.add_row_bounds(
            LEDGER_PREFIX + (row_lo or ""), LEDGER_PREFIX + row_hi if row_hi is not None else _LEDGER_END
        )
    else:
        where.add_row_bounds(row_lo, row_hi)

    if query.subscription_id is not None and path != "subscription":
        where.add("subscription_lc eq @sub", sub=query.subscription_id.strip().lower())
    if query.action is not None:
        where.add("action_lc eq @action", action=query.action.strip().lower())
    if query.status is not None:
        where.add("status_lc eq @status", status=query.status.strip().lower())
    if query.ip_address is not None:
        where.add("ip_address eq @ip", ip=query.ip_address.strip())
    return where.plan(path, table)


# --- execution -----------------------------------------------------------------------------------


@dataclass
class Rows:
    rows: list[dict[str, Any]]
    position: Position | None  # where the service would continue; None when it is done
    requests: int


def run_plan(
    table: TableClient,
    plan: Plan,
    limit: int,
    position: Position | None = None,
    *,
    max_requests: int = MAX_STORAGE_REQUESTS,
    select: list[str] | None = None,
) -> Rows:
    """Collect up to `limit` rows in the service's order, asking each time only for what is still needed.

    Stops at `limit` rows, when the service has no more, or after `max_requests` requests
    (a scan with a sparse filter can return short or empty pages).
    """
    rows: list[dict[str, Any]] = []
    requests = 0
    token = _to_storage_token(position)
    while True:
        pages = table.query_entities(
            plan.filter,
            parameters=plan.parameters,
            results_per_page=limit - len(rows),
            select=select,
        ).by_page(continuation_token=token)  # type: ignore[arg-type]  # the Tables SDK takes a PK/RK dict
        page = next(pages, None)
        requests += 1
        if page is not None:
            rows.extend(dict(entity) for entity in page)
        token = getattr(pages, "continuation_token", None)
        if not token or len(rows) >= limit or requests >= max_requests:
            break
    return Rows(rows=rows, position=_from_storage_token(token), requests=requests)


def _to_storage_token(position: Position | None) -> dict[str, str | None] | None:
    if position is None:
        return None
    pk, rk = position.get("pk"), position.get("rk")
    valid = all(v is None or isinstance(v, str) for v in (pk, rk)) and not (pk is None and rk is None)
    if not valid:
        raise InvalidInput("continuation", "is not a valid continuation token")
    return {"PartitionKey": pk, "RowKey": rk}


def _from_storage_token(token: Any) -> Position | None:
    if not token or not isinstance(token, dict):
        return None
    pk, rk = token.get("PartitionKey"), token.get("RowKey")
    if not pk and not rk:
        return None
    return {"pk": pk or None, "rk": rk or None}


# --- activities per day --------------------------------------------------------------------------

MAX_DAYS = 90  # the days the per-day chart may ask for (ARM keeps 90 days)
SUBSCRIPTION_PAGE_SIZE = 1000  # the service's maximum page


@dataclass(frozen=True)
class SubscriptionDays:
    subscription_id: str
    display_name: str
    counts: list[int]  # one per day of `PerDay.days`


@dataclass(frozen=True)
class PerDay:
    """Activities per UTC day for the last days, per subscription (oldest day first, ending today)."""

    days: list[str]
    subscriptions: list[SubscriptionDays]
    requests: int = 0  # storage requests the answer cost


def last_days(days: int, today: datetime) -> list[date]:
    """The `days` UTC days ending with `today`'s, oldest first."""
    last = today.astimezone(UTC).date()
    return [last - timedelta(days=back) for back in range(days - 1, -1, -1)]


def per_day(days: int, today: datetime, subscriptions: list[tuple[str, str, str | None]]) -> PerDay:
    """The chart's series from (subscription id, display name, stored per-day map) triples."""
    wanted = last_days(days, today)
    series = [
        SubscriptionDays(sub_id, name, counts_on_days(stored, wanted))
        for sub_id, name, stored in sorted(subscriptions, key=lambda s: (s[1].lower(), s[0]))
    ]
    return PerDay(days=[day.isoformat() for day in wanted], subscriptions=series)


# --- the queries the API answers ----------------------------------------------------------------


class ActivityQueries:
    """Searches over what `activities.writer.ActivityStore` wrote."""

    def __init__(
        self,
        storage: Storage,
        *,
        clock: Clock,
        signer: ContinuationSigner | None = None,
        max_requests: int = MAX_STORAGE_REQUESTS,
    ) -> None:
        self._storage = storage
        self._clock = clock
        self._signer_factory = signer_source(signer, storage.table(CONNECTOR_TABLE))
        self._max_requests = max_requests

    def _signer(self, caller: str) -> LazySigner:
        """The tokens of one caller (the principal's object id binds them), the key read only if needed."""
        return LazySigner(self._signer_factory, caller=caller, now=self._clock.now)

    # activities --------------------------------------------------------------------------------

    def resolve_account_key(self, user: str) -> tuple[str, int]:
        """The account key of a UPN (through its alias row) or an object id/app id/caller; and the reads it took."""
        value = user.strip()
        if "@" in value:
            try:
                alias = self._storage.table(ACCOUNTS_TABLE).get_entity(UPN_ALIAS_PK, safe_key(value))
            except ResourceNotFoundError:
                return safe_key(value), 1  # a caller with '@' that is its own id, or nobody
            key = alias.get("account_key")
            return (key if isinstance(key, str) and key else safe_key(value)), 1
        return safe_key(value), 0

    def search(self, query: ActivityQuery, limit: int, continuation: str | None, *, caller: str) -> Page:
        signer = self._signer(caller)
        query_hash = query.fingerprint()
        position = signer.open(continuation, ACTIVITIES_KIND, query_hash) if continuation else None
        requests = 0
        account: str | None = None
        if query.user is not None:
            account, requests = self.resolve_account_key(query.user)
        plan = plan_activities(query, account)
        if plan is None:
            return Page(items=[], continuation=None, requests=requests)
        found = run_plan(
            self._storage.table(plan.table),
            plan,
            limit,
            position,
            max_requests=self._max_requests,
            select=ACTIVITY_PROPERTIES,
        )
        items = [activity_from_properties(row).to_api() for row in found.rows]
        token = signer.issue(ACTIVITIES_KIND, query_hash, found.position) if found.position else None
        return Page(items=items, continuation=token, requests=requests + found.requests, plan=plan)

    def get_activity(self, activity_id: str) -> dict[str, Any] | None:
        try:
            row = self._storage.table(ACTIVITIES_TABLE).get_entity(id_partition(activity_id), safe_key(activity_id))
        except ResourceNotFoundError:
            return None
        entity = dict(row)
        return {**activity_from_properties(entity).to_api(), "raw": raw_from_entity(entity)}

    def get_activities(self, activity_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The activities of `activity_ids` without their raw events, in that order, read side by side.

        An id no longer stored (deleted by retention) is left out.
        """
        table = self._storage.table(ACTIVITIES_TABLE)

        def read(activity_id: str) -> dict[str, Any] | None:
            try:
                row = table.get_entity(id_partition(activity_id), safe_key(activity_id), select=ACTIVITY_PROPERTIES)
            except ResourceNotFoundError:
                return None
            return activity_from_properties(dict(row)).to_api()

        return [found for found in _POINT_READS.map(read, activity_ids) if found is not None]

    # activities per day ------------------------------------------------------------------------

    def activity_per_day(self, days: int, today: datetime) -> PerDay:
        """Every subscription's activities per day, from the copies of the day maps on the subscription
        records (`activities.layout`): one query of their partition, one request per 1,000 subscriptions."""
        rows = (
            self._storage.table(CONNECTOR_TABLE)
            .query_entities(
                "PartitionKey eq @pk",
                parameters={"pk": SUBSCRIPTION_PK},
                select=["RowKey", "display_name", DAY_COUNTS],
                results_per_page=SUBSCRIPTION_PAGE_SIZE,
            )
            .by_page()
        )
        found: list[tuple[str, str, str | None]] = []
        requests = 0
        for page in rows:
            requests += 1
            for row in page:
                sub_id = str(row["RowKey"])
                found.append((sub_id, str(row.get("display_name") or sub_id), row.get(DAY_COUNTS)))
        answer = per_day(days, today, found)
        return PerDay(answer.days, answer.subscriptions, requests=max(requests, 1))

    # accounts ----------------------------------------------------------------------------------

    def list_accounts(self, limit: int, continuation: str | None, account_type: str | None, *, caller: str) -> Page:
        """Accounts, most recently active first (lastSeen descending, then the account key).

        Read from the recency index the writer keeps beside the account copies (RowKey
        `account_recent_key(lastSeen, key)`, one row per account): a page reads its own rows and
        one more, to know whether another page follows. The position is the last account
        returned, so accounts that become active between pages do not shift the rest of the
        listing (they move ahead of the position and are not shown twice).
        """
        canonical_type = None
        if account_type is not None:
            canonical_type = ACCOUNT_TYPES.get(account_type.strip().lower())
            if canonical_type is None:
                raise InvalidInput("type", f"must be one of {', '.join(ACCOUNT_TYPES.values())}")
        query_hash = fingerprint(ACCOUNTS_KIND, {"type": canonical_type})
        signer = self._signer(caller)
        position = signer.open(continuation, ACCOUNTS_KIND, query_hash) if continuation else None
        after = ACCOUNT_RECENT_PREFIX
        if position is not None:
            t, k = position.get("t"), position.get("k")
            if not isinstance(t, int) or not isinstance(k, str) or t > 0:
                raise InvalidInput("continuation", "is not a valid continuation token")
            after = account_recent_key(-t, k)

        query_filter = "PartitionKey eq @pk and RowKey gt @after and RowKey lt @end"
        parameters = {"pk": ACCOUNT_COPY_PK, "after": after, "end": ACCOUNT_RECENT_END}
        if canonical_type is not None:
            query_filter += " and type eq @type"
            parameters["type"] = canonical_type
        pages = (
            self._storage.table(ACCOUNTS_TABLE)
            .query_entities(query_filter, parameters=parameters, results_per_page=min(limit + 1, ACCOUNT_PAGE_SIZE))
            .by_page()
        )
        rows: list[dict[str, Any]] = []
        requests = 0
        for page in pages:
            requests += 1
            rows.extend(dict(entity) for entity in page)
            if len(rows) > limit:
                break
        chosen = rows[:limit]
        token = None
        if len(rows) > limit and chosen:
            last = chosen[-1]
            token = signer.issue(ACCOUNTS_KIND, query_hash, {"t": -last_seen_us(last), "k": last["account_key"]})
        return Page(items=[account_api(row) for row in chosen], continuation=token, requests=requests)

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        key, _ = self.resolve_account_key(account_id)
        try:
            row = self._storage.table(BY_USER_TABLE).get_entity(key, ACCOUNT_SUMMARY_RK)
        except ResourceNotFoundError:
            return None
        return account_api(dict(row))
